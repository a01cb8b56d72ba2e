"""Probe (GPU): a batch mixing question lengths and image sizes under Unsloth's trainer and FastVisionModel.

Usage: unsloth_padding_alignment.py FAMILY patched|excluded [4bit]
The tiny model is saved and loaded with ``FastVisionModel.from_pretrained``; its processor is used as returned
(Unsloth's trainer sets right padding). Every row's old log-probs must equal a forward of that row alone, the
token-type fields must line up with the image tokens, and 3 GRPO steps must train. ``excluded`` runs the same
with ``patch(exclude=("left_padded_image_fields",))``, the control. Prints ``RESULT <json>``."""

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helpers
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["UNSLOTH_RETURN_LOGITS"] = "1"  # the row-alone forward needs logits
family, mode = sys.argv[1:3]
load_in_4bit = len(sys.argv) > 3 and sys.argv[3] == "4bit"

import unsloth_vlm_grpo  # noqa: E402

unsloth_vlm_grpo.patch(exclude=("left_padded_image_fields",) if mode == "excluded" else ())
import torch  # noqa: E402
import unsloth  # noqa: E402,F401
from trl import GRPOConfig, GRPOTrainer  # noqa: E402
from unsloth import FastVisionModel  # noqa: E402

from unsloth_vlm_grpo.tiny import build_tiny_vlm  # noqa: E402

from alignment import check_rows_score_as_if_alone  # noqa: E402
from grpo_helpers import varied_colour_dataset  # noqa: E402

result = {"family": family, "mode": mode, "4bit": load_in_4bit}
tiny = build_tiny_vlm(family)
directory = tempfile.mkdtemp()
tiny.model.save_pretrained(directory)
tiny.processor.save_pretrained(directory)
model, processor = FastVisionModel.from_pretrained(directory, load_in_4bit=load_in_4bit)
model = FastVisionModel.get_peft_model(
    model,
    finetune_vision_layers=True,
    finetune_language_layers=True,
    r=8,
    lora_alpha=16,
    lora_dropout=0.0,
    random_state=0,
    use_gradient_checkpointing="unsloth",
)
args = GRPOConfig(
    output_dir=os.path.join(directory, "out"),
    per_device_train_batch_size=8,
    num_generations=2,
    gradient_accumulation_steps=1,
    max_completion_length=3,
    num_iterations=2,
    max_steps=3,
    learning_rate=5e-4,
    logging_steps=1,
    report_to="none",
    save_strategy="no",
    bf16=True,
    optim="adamw_torch",
    seed=0,
)
dataset = varied_colour_dataset(rows=4)
trainer = GRPOTrainer(
    model=model,
    processing_class=processor,
    args=args,
    train_dataset=dataset,
    reward_funcs=lambda completions, **_: [float(i % 2) for i in range(len(completions))],
)
result["trainer_class"] = f"{type(trainer).__module__}.{type(trainer).__qualname__}"
result["padding_side_after_init"] = processor.tokenizer.padding_side
try:
    check_rows_score_as_if_alone(trainer, dataset, tolerance=5e-2)
    result["rows_alone"] = "equal"
except Exception as error:  # noqa: BLE001 - reported, the test reads it
    result["rows_alone"] = f"{type(error).__name__}: {error}"[:600]
result["padding_side_after_batch"] = processor.tokenizer.padding_side
try:
    trainer.train()
    result["outcome"] = "trained"
except Exception as error:  # noqa: BLE001
    result["outcome"] = f"{type(error).__name__}: {error}"[:600]
    result["traceback_tail"] = traceback.format_exc()[-1500:]
result["steps_done"] = trainer.state.global_step
result["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
print("RESULT " + json.dumps(result))

"""Probe (GPU): GRPO through the stock trl.GRPOTrainer with Unsloth's FastVisionModel, as a user runs it.

Usage: unsloth_vision_grpo.py FAMILY ORDER PATCH STRESS STEPS [4bit]
  ORDER: patch_first | unsloth_first | trl_then_patch (``from trl import GRPOTrainer``, patch, then Unsloth); PATCH: patch | strict | none;
  STRESS: stress | calm | two_or_none (calm policy; rows with two images alternate with rows without any, two
  generations each, two steps per generation: a batch then holds as many images as rows) | one_or_two (the
  same with rows of one image and of two, for Llama 3.2 Vision, whose batches need an image in every row).
The tiny model is built offline, saved, and loaded back with FastVisionModel.from_pretrained.
Prints ``RESULT <json>``; a training crash is reported in the result, not raised."""

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

family, order, patch_mode, stress, steps = sys.argv[1:6]
load_in_4bit = len(sys.argv) > 6 and sys.argv[6] == "4bit"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
result = {"family": family, "order": order, "patch": patch_mode, "stress": stress, "4bit": load_in_4bit}


def do_patch():
    import unsloth_vlm_grpo

    report = unsloth_vlm_grpo.patch(strict=(patch_mode == "strict"))
    result["report_skipped"] = [str(entry) for entry in report.skipped]


if order == "trl_then_patch":
    from trl import GRPOTrainer as _imported_before_unsloth  # noqa: F401
if patch_mode != "none" and order in ("patch_first", "trl_then_patch"):
    do_patch()
import unsloth  # noqa: E402,F401
from unsloth import FastVisionModel  # noqa: E402

if patch_mode != "none" and order == "unsloth_first":
    do_patch()

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from unsloth_vlm_grpo._vision_tokens import vision_token_ids  # noqa: E402
from unsloth_vlm_grpo.tiny import build_tiny_vlm, favour_token, solid_image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helpers
from grpo_helpers import distinct_characters_reward, unsloth_vision_lora  # noqa: E402

tiny = build_tiny_vlm(family)
config = tiny.model.config
placeholder = getattr(config, "image_token_id", None) or config.image_token_index
assert placeholder in vision_token_ids(tiny.model.config, tiny.processor)
if stress == "stress":
    favour_token(tiny.model, tiny.processor, placeholder)
directory = tempfile.mkdtemp()
tiny.model.save_pretrained(directory)
tiny.processor.save_pretrained(directory)

model, processor = FastVisionModel.from_pretrained(directory, load_in_4bit=load_in_4bit)
model = unsloth_vision_lora(model)
vision_lora = {
    n: p.detach().float().clone()
    for n, p in model.named_parameters()
    if "lora_" in n and ("visual" in n or "vision" in n)
}
result["vision_lora_count"] = len(vision_lora)
colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
rows = [
    {
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}],
        "image": solid_image(rgb),
        "answer": name,
    }
    for name, rgb in list(colours.items()) * 2
]
generations, steps_per_generation = 4, 1
if stress in ("two_or_none", "one_or_two"):
    rows = []
    for index in range(8):
        images = [solid_image(colours["red"]), solid_image(colours["blue"])] if index % 2 == 0 else []
        if stress == "one_or_two":
            images = images or [solid_image(colours["green"])]
        content = [{"type": "image"}] * len(images) + [{"type": "text", "text": "What colours?"}]
        rows.append({"prompt": [{"role": "user", "content": content}], "images": images})
    generations, steps_per_generation = 2, 2


args = GRPOConfig(
    output_dir=os.path.join(directory, "out"),
    per_device_train_batch_size=4,
    num_generations=generations,
    gradient_accumulation_steps=1,
    steps_per_generation=steps_per_generation,
    max_completion_length=16,
    max_steps=int(steps),
    learning_rate=5e-4,
    logging_steps=1,
    report_to="none",
    save_strategy="no",
    bf16=torch.cuda.is_bf16_supported(),
    fp16=False,
    optim="adamw_torch",
    seed=0,
)
trainer = GRPOTrainer(
    model=model,
    processing_class=processor,
    reward_funcs=distinct_characters_reward,
    args=args,
    train_dataset=Dataset.from_list(rows),
)
result["trainer_class"] = f"{type(trainer).__module__}.{type(trainer).__qualname__}"
result["vision_token_ids"] = vision_token_ids(model.config, processor)
from unsloth_vlm_grpo import record_vision_gradients  # noqa: E402

try:
    with record_vision_gradients(trainer.model) as gradients:
        trainer.train()
    result["outcome"] = "trained"
    result["vision_grad_params"] = len(gradients.norms)
    result["vision_grad_missing"] = gradients.missing
except Exception as error:  # noqa: BLE001 - the control run is expected to fail
    result["outcome"] = "crashed"
    result["error"] = f"{type(error).__name__}: {error}"[:500]
    result["traceback_tail"] = traceback.format_exc()[-1500:]
history = trainer.state.log_history
result["losses"] = [entry["loss"] for entry in history if "loss" in entry]
result["neutralised"] = [entry.get("vision_tokens/neutralised") for entry in history if "loss" in entry]
result["steps_done"] = trainer.state.global_step
if result["outcome"] == "trained":  # after a device-side assert the CUDA context is unusable
    moved = [
        n
        for n, p in model.named_parameters()
        if n in vision_lora and not torch.equal(vision_lora[n], p.detach().float())
    ]
    result["vision_lora_moved"] = len(moved)
print("RESULT " + json.dumps(result))

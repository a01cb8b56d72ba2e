"""Probe (GPU): the learning proof under Unsloth. The colour task (unsloth_vlm_grpo.colour_task) trained
through the patched stock trl.GRPOTrainer on a tiny model loaded with FastVisionModel.

Usage: unsloth_colour_task.py FAMILY MODE IMAGES STEPS [LEARNING_RATE]
  MODE: full (``full_finetuning=True``) | lora (LoRA on vision and language layers);
  IMAGES: images | blank (every image white: reward must stay at chance).
Prints ``RESULT <json>`` with the mean reward per optimizer step.
PROBE_DIAGNOSE=1 also prints a ``DIAG`` line per step (step time, dynamo frames compiled so far, forward hooks
in the model, GPU memory) and turns dynamo's recompile log back on (``import unsloth`` silences
``TORCH_LOGS``): for Gemma 3, whose steps get slower under Unsloth while Qwen2.5-VL's do not."""

import json
import os
import sys
import tempfile
import time

family, mode, images, steps = sys.argv[1:5]
learning_rate = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import unsloth_vlm_grpo  # noqa: E402

unsloth_vlm_grpo.patch(strict=True)
import torch  # noqa: E402
import unsloth  # noqa: E402,F401
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402
from unsloth import FastVisionModel  # noqa: E402

from unsloth_vlm_grpo.colour_task import colour_dataset, exact_colour_reward, give_answer_prior  # noqa: E402
from unsloth_vlm_grpo.tiny import build_tiny_vlm  # noqa: E402

tiny = build_tiny_vlm(family, seed=0)
give_answer_prior(tiny.model, tiny.processor)
directory = tempfile.mkdtemp()
tiny.model.save_pretrained(directory)
tiny.processor.save_pretrained(directory)

if mode == "full":
    model, processor = FastVisionModel.from_pretrained(directory, load_in_4bit=False, full_finetuning=True)
else:
    model, processor = FastVisionModel.from_pretrained(directory, load_in_4bit=False)
    model = FastVisionModel.get_peft_model(
        model,
        finetune_vision_layers=True,
        finetune_language_layers=True,
        r=16,
        lora_alpha=16,
        random_state=0,
        use_gradient_checkpointing="unsloth",
    )
args = GRPOConfig(
    output_dir=os.path.join(directory, "out"),
    max_steps=int(steps),
    per_device_train_batch_size=16,
    num_generations=8,
    gradient_accumulation_steps=1,
    steps_per_generation=1,
    max_completion_length=1,
    learning_rate=learning_rate,
    lr_scheduler_type="cosine",
    warmup_steps=20,
    beta=0.0,
    logging_steps=1,
    report_to="none",
    save_strategy="no",
    seed=0,
    optim="adamw_torch",
    bf16=torch.cuda.is_bf16_supported(),
    disable_tqdm=True,
)


class Diagnose(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        self.began = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        from torch._dynamo.utils import counters

        hooks = sum(len(module._forward_hooks) for module in model.modules())
        print(
            f"DIAG step {state.global_step} {time.perf_counter() - self.began:.3f}s frames "
            f"{counters['frames']['total']} forward_hooks {hooks} "
            f"allocated_MiB {torch.cuda.memory_allocated() >> 20}",
            flush=True,
        )


class Progress(TrainerCallback):
    """A line every 25 steps, so a run cut off by a time limit still shows how far it got."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs and state.global_step % 25 == 0:
            print(
                f"step {state.global_step} reward {logs['reward']:.3f} at {time.perf_counter() - started:.0f}s",
                flush=True,
            )


trainer = GRPOTrainer(
    model=model,
    processing_class=processor,
    reward_funcs=exact_colour_reward,
    args=args,
    train_dataset=colour_dataset(rows=600, blank=images == "blank", seed=0),
    callbacks=[Progress(), Diagnose()] if os.environ.get("PROBE_DIAGNOSE") == "1" else [Progress()],
)
if os.environ.get("PROBE_DIAGNOSE") == "1":
    torch._logging.set_logs(recompiles=True)
started = time.perf_counter()
trainer.train()
rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
result = {
    "family": family,
    "mode": mode,
    "images": images,
    "learning_rate": learning_rate,
    "trainer_class": f"{type(trainer).__module__}.{type(trainer).__qualname__}",
    "rewards": rewards,
    "first_10": sum(rewards[:10]) / 10,
    "seconds": time.perf_counter() - started,
    "last_20": sum(rewards[-20:]) / 20,
}
print("RESULT " + json.dumps(result))

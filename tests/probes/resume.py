"""Probe: checkpoint resume with the library patched in every process.

Usage: resume.py MODE WORKDIR TESTS_DIR, MODE one of
  first    - train 4 of 6 steps, checkpointing every 2, and exit (as if killed after the checkpoint)
  resume   - a new process: patch(), resume from WORKDIR/first/checkpoint-4, train to step 6
  straight - train 6 steps uninterrupted
Saves the trainable (LoRA) weights to WORKDIR/MODE.pt and prints ``RESULT {"global_step": ...}``."""

import json
import sys
from pathlib import Path

mode, workdir, tests_dir = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
sys.path.insert(0, tests_dir)

import torch  # noqa: E402
from trl import GRPOTrainer  # noqa: E402

import unsloth_vlm_grpo  # noqa: E402
from unsloth_vlm_grpo.tiny import build_tiny_vlm  # noqa: E402

from grpo_helpers import (  # noqa: E402
    VISION_AND_LANGUAGE_LORA,  # noqa: E402
    colour_dataset,
    distinct_characters_reward,
    grpo_config,
)

unsloth_vlm_grpo.patch()
tiny = build_tiny_vlm("qwen2_5_vl", seed=0)
output_dir = workdir / ("first" if mode in ("first", "resume") else mode)
args = grpo_config(output_dir, max_steps=6, save_strategy="steps", save_steps=2, learning_rate=1e-2)
trainer = GRPOTrainer(
    model=tiny.model,
    processing_class=tiny.processor,
    reward_funcs=distinct_characters_reward,
    args=args,
    train_dataset=colour_dataset(rows=16),
    peft_config=VISION_AND_LANGUAGE_LORA,
)
if mode == "first":
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                control.should_training_stop = True

    trainer.add_callback(Stop())
    trainer.train()
elif mode == "resume":
    trainer.train(resume_from_checkpoint=str(output_dir / "checkpoint-4"))
else:
    trainer.train()
weights = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
torch.save(weights, workdir / f"{mode}.pt")
print("RESULT " + json.dumps({"global_step": trainer.state.global_step, "trainable": len(weights)}))

"""Probe (CPU): start training Unsloth's generated GRPOTrainer on a tiny VLM, as far as a CPU gets.

Usage: unsloth_cpu_trainer_start.py FAMILY map|streaming. Prints ``RESULT <json>``: the trainer class and the
error ``train()`` raised. UNSLOTH_ALLOW_CPU=1 makes ``import unsloth`` take its GPU code path so
``_patch_trl_rl_trainers`` generates the real class; building it works on CPU, training a model that
FastVisionModel did not load stops at Unsloth's ``for_training`` (FastVisionModel itself needs a GPU)."""

import json
import os
import sys
import tempfile

os.environ["UNSLOTH_ALLOW_CPU"] = "1"
family, dataset_kind = sys.argv[1:3]

import unsloth_vlm_grpo  # noqa: E402

unsloth_vlm_grpo.patch(strict=True)
import unsloth  # noqa: E402,F401
import unsloth.models.rl as rl  # noqa: E402

rl._patch_trl_rl_trainers("grpo_trainer")
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from unsloth_vlm_grpo.colour_task import colour_dataset, exact_colour_reward  # noqa: E402
from unsloth_vlm_grpo.tiny import build_tiny_vlm  # noqa: E402

tiny = build_tiny_vlm(family)
args = GRPOConfig(
    output_dir=tempfile.mkdtemp(),
    max_steps=1,
    per_device_train_batch_size=4,
    num_generations=2,
    max_completion_length=2,
    report_to="none",
    optim="adamw_torch",
    bf16=False,
    use_cpu=True,
)
dataset = colour_dataset(rows=8)
if dataset_kind == "streaming":
    dataset = dataset.to_iterable_dataset()
trainer = GRPOTrainer(
    model=tiny.model,
    processing_class=tiny.processor,
    reward_funcs=exact_colour_reward,
    args=args,
    train_dataset=dataset,
)
result = {
    "trainer_class": f"{type(trainer).__module__}.{type(trainer).__qualname__}",
    "error_type": None,
    "error": None,
}
try:
    trainer.train()
except Exception as error:  # reported, not raised: the test reads it
    result.update(error_type=type(error).__name__, error=str(error))
print("RESULT " + json.dumps(result))

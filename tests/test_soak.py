"""Soak: 200 GRPO steps on a policy pushed to emit image placeholders, with completions of random
length and rows of zero, one and two images mixed: no exception, a finite loss at every step, and
gradients into the vision tower."""

import math
import random

from datasets import Dataset
from trl import GRPOTrainer

import unsloth_vlm_grpo
from unsloth_vlm_grpo.tiny import favour_token, solid_image

from grpo_helpers import COLOURS, VISION_AND_LANGUAGE_LORA, grpo_config

STEPS = 200


def _mixed_rows(count: int = 48) -> list[dict]:
    rng = random.Random(0)
    names = list(COLOURS)
    rows = []
    for _ in range(count):
        images = [solid_image(COLOURS[rng.choice(names)]) for _ in range(rng.choice([0, 1, 1, 2]))]
        content = [{"type": "image"}] * len(images) + [{"type": "text", "text": "Describe the colours."}]
        rows.append({"prompt": [{"role": "user", "content": content}], "images": images})
    return rows


def _length_reward(completions, **kwargs):
    return [float(len(completion[0]["content"])) / 10 for completion in completions]


def test_200_steps_of_stress(tiny_factory, tmp_path):
    unsloth_vlm_grpo.patch()
    try:
        tiny = tiny_factory("qwen2_5_vl")
        favour_token(tiny.model, tiny.processor, tiny.model.config.image_token_id, margin=8.0)
        args = grpo_config(
            tmp_path,
            max_steps=STEPS,
            per_device_train_batch_size=8,
            num_generations=4,
            max_completion_length=12,
            learning_rate=1e-3,
            logging_steps=1,
        )
        trainer = GRPOTrainer(
            model=tiny.model,
            processing_class=tiny.processor,
            reward_funcs=_length_reward,
            args=args,
            train_dataset=Dataset.from_list(_mixed_rows()),
            peft_config=VISION_AND_LANGUAGE_LORA,
        )
        with unsloth_vlm_grpo.record_vision_gradients(trainer.model) as gradients:
            trainer.train()
    finally:
        unsloth_vlm_grpo.unpatch()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == STEPS
    assert all(math.isfinite(entry["loss"]) for entry in logged)
    lengths = {entry["completions/mean_length"] for entry in logged}
    assert len(lengths) > 5, "completion lengths did not vary"
    assert gradients.missing == [] and len(gradients.norms) > 20

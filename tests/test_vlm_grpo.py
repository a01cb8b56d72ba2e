"""A real GRPO run on CPU through the patched stock trl.GRPOTrainer, on tiny VLMs built offline."""

import pytest
import torch
from trl import GRPOTrainer

import unsloth_vlm_grpo
from unsloth_vlm_grpo.tiny import FAMILIES

from grpo_helpers import (
    colour_dataset,
    distinct_characters_reward,
    grpo_config,
    logged_losses,
    saved_and_loaded,
    varied_colour_dataset,
    weights_of,
)


@pytest.mark.parametrize("family", FAMILIES)
def test_patched_stock_trainer_trains_a_tiny_vlm(family, patched, tiny_factory, tmp_path):
    """As a user runs it: model and processor loaded from disk, questions of different lengths and images of
    several sizes and aspect ratios in each batch."""
    model, processor = saved_and_loaded(tiny_factory(family), tmp_path / "checkpoint")  # the image path is live
    before = weights_of(model)
    trainer = GRPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path / "out", per_device_train_batch_size=8, num_generations=2),  # 4 prompts a batch
        train_dataset=varied_colour_dataset().shuffle(seed=0),
    )
    trainer.train()
    assert len(logged_losses(trainer)) == 2
    assert not torch.equal(before, weights_of(model))


@pytest.mark.upstream
def test_unpatched_trainer_cannot_score_on_cpu(tiny_factory, tmp_path):
    """The control: without the library, TRL 1.15's fused-head kernel fails on a machine without a GPU."""
    if torch.cuda.is_available():
        pytest.skip("the control only fails where Triton has no GPU driver")
    unsloth_vlm_grpo.unpatch()
    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path, max_steps=1),
        train_dataset=colour_dataset(),
    )
    with pytest.raises(RuntimeError, match="active drivers"):
        trainer.train()

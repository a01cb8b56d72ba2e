"""Gradients reach the vision tower: every vision LoRA matrix gets a non-zero gradient under TRL's
gradient checkpointing, reentrant or not (Unsloth's checkpointing: tests/gpu)."""

import pytest
from trl import GRPOTrainer

import unsloth_vlm_grpo

from grpo_helpers import VISION_AND_LANGUAGE_LORA, colour_dataset, distinct_characters_reward, grpo_config

pytestmark = pytest.mark.usefixtures("patched")


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "gemma3", "qwen3_vl", "idefics3", "llava_next"])
@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
def test_every_vision_lora_matrix_gets_a_gradient(family, reentrant, tiny_factory, tmp_path):
    tiny = tiny_factory(family)
    args = grpo_config(
        tmp_path, max_steps=3, gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": reentrant}
    )
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=args,
        train_dataset=colour_dataset(),
        peft_config=VISION_AND_LANGUAGE_LORA,
    )
    with unsloth_vlm_grpo.record_vision_gradients(trainer.model) as gradients:
        trainer.train()
    # LoRA's B starts at zero, so A's first gradient is zero: three steps give every matrix its turn.
    assert len(gradients.norms) >= 16  # A and B of 4 linears in each of the 2 tiny vision blocks, at least
    assert gradients.missing == []
    count = len(gradients.norms)
    assert str(gradients).splitlines()[0] == f"{count}/{count} trainable vision parameters got gradients"


def test_recording_hooks_are_removed(tiny_factory):
    tiny = tiny_factory("qwen2_5_vl")
    parameter = next(p for n, p in tiny.model.named_parameters() if "visual" in n)
    with unsloth_vlm_grpo.record_vision_gradients(tiny.model) as gradients:
        assert parameter._backward_hooks
    assert not parameter._backward_hooks
    assert gradients.norms and gradients.missing == sorted(gradients.norms)

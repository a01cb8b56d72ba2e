"""Placeholder safety: a policy pushed to emit image placeholder tokens trains on the patched trainer,
and crashes the unpatched one."""

import pytest
import torch
from trl import GRPOTrainer

import unsloth_vlm_grpo
from unsloth_vlm_grpo.patches.placeholder_neutralisation import neutralise
from unsloth_vlm_grpo.tiny import FAMILIES, favour_token

from conftest import ROOT, run_probe
from grpo_helpers import (
    colour_dataset,
    distinct_characters_reward,
    grpo_config,
    logged_losses,
    saved_and_loaded,
    varied_colour_dataset,
)

pytestmark = pytest.mark.usefixtures("unpatched")


def _stressed_trainer(tiny_factory, family, output_dir, steps):
    """A policy pushed to sample the image placeholder, loaded from disk, on rows of varied lengths and sizes."""
    tiny = tiny_factory(family)
    favour_token(tiny.model, tiny.processor, tiny.model.config.image_token_id)
    model, processor = saved_and_loaded(tiny, output_dir / "checkpoint")
    return GRPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(output_dir / "out", max_steps=steps, per_device_train_batch_size=8, num_generations=2),
        train_dataset=varied_colour_dataset(),
    )


def test_stress_fixture_really_favours_the_placeholder(tiny_factory):
    tiny = tiny_factory("qwen2_5_vl")
    favour_token(tiny.model, tiny.processor, tiny.model.config.image_token_id)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = tiny.processor.apply_chat_template(messages, add_generation_prompt=True)
    from unsloth_vlm_grpo.tiny import solid_image

    inputs = tiny.processor(images=[solid_image((0, 0, 255))], text=[text], return_tensors="pt")
    with torch.no_grad():
        next_token = tiny.model(**inputs).logits[0, -1].argmax().item()
    assert next_token == tiny.model.config.image_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_patched_trainer_survives_20_steps_of_placeholder_pressure(family, tiny_factory, tmp_path):
    unsloth_vlm_grpo.patch()
    trainer = _stressed_trainer(tiny_factory, family, tmp_path, steps=20)
    trainer.train()
    assert len(logged_losses(trainer)) == 20


# mllama is left out: unpatched TRL cannot score it at all (tests/test_mllama.py has its controls).
@pytest.mark.parametrize("family", [family for family in FAMILIES if family != "mllama"])
@pytest.mark.upstream
def test_unpatched_trainer_crashes_under_placeholder_pressure(family, tmp_path):
    result = run_probe(
        [str(ROOT / "tests" / "probes" / "placeholder_control.py"), family, str(ROOT / "tests")],
        tmp_path,
        env={"TRITON_INTERPRET": "1"},
    )
    assert result["outcome"] == "crashed"
    # Idefics3 merges image features with masked_scatter, which fails with its own message.
    messages = ("image tokens do not match", "NoneType", "Number of elements of source < number of ones in mask")
    assert any(message in result["error"] for message in messages), result["error"]


def test_neutralisation_carries_the_run_when_suppression_is_bypassed(tiny_factory, tmp_path):
    # Without suppression, completions contain placeholders.
    report = unsloth_vlm_grpo.patch(exclude=("placeholder_suppression",))
    assert [entry.patch for entry in report.excluded] == ["placeholder_suppression"]
    trainer = _stressed_trainer(tiny_factory, "qwen2_5_vl", tmp_path, steps=3)
    trainer.train()
    assert len(logged_losses(trainer)) == 3
    neutralised = [entry["vision_tokens/neutralised"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(neutralised) > 0


def test_neutralise_masks_only_model_generated_vision_tokens():
    ids, mask, count = neutralise([[5, 9, 7], [9, 9]], [[1, 1, 1], [0, 1]], vision_ids={9}, pad_id=0)
    assert ids == [[5, 0, 7], [9, 0]]  # the tool-response placeholder (mask 0) is kept
    assert mask == [[1, 0, 1], [0, 0]]
    assert count == 2


def test_vllm_generation_with_a_vlm_logs_one_clear_warning(tiny_factory, tmp_path, caplog):
    """vLLM is not installed here, so the trainer is built for transformers generation and then switched:
    the warning comes before the vLLM call, which then fails for lack of vLLM."""
    unsloth_vlm_grpo.patch()
    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path),
        train_dataset=colour_dataset(),
    )
    trainer.use_vllm = True
    for _ in range(2):
        with pytest.raises(AttributeError):
            trainer._generate_single_turn([[1, 2]], None, {}, 1)
    warnings = [r for r in caplog.records if "use_vllm=True" in r.getMessage()]
    assert len(warnings) == 1 and "not covered" in warnings[0].getMessage()


def test_patch_applies_to_trainers_built_before_and_after_it(tiny_factory, tmp_path):
    """patch() changes the trainer class, so it covers every instance: one built before patch() and one
    built after both survive placeholder pressure; after unpatch() both are back to TRL's behaviour."""
    unsloth_vlm_grpo.unpatch()
    before = _stressed_trainer(tiny_factory, "qwen2_5_vl", tmp_path / "before", steps=3)
    unsloth_vlm_grpo.patch()
    after = _stressed_trainer(tiny_factory, "gemma3", tmp_path / "after", steps=3)
    before.train()
    after.train()
    assert len(logged_losses(before)) == 3 and len(logged_losses(after)) == 3
    unsloth_vlm_grpo.unpatch()
    import wrapt

    assert not isinstance(type(before).__dict__["_generate"], wrapt.FunctionWrapper)

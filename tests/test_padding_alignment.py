"""Rows of different prompt lengths score as if each were alone, whatever the processor's padding side.

A user passes a processor loaded from disk; unless its tokenizer config says otherwise it pads on the right
(and Unsloth's generated trainer sets right padding in ``__init__``). TRL left-pads the prompt ids but
builds the scoring forward's per-token image fields with the processor's own padding, so a batch that
mixes question lengths and image sizes had misaligned ``mm_token_type_ids`` / ``token_type_ids`` (wrong
3-D RoPE positions, wrong image-attention mask: silently) or crashed in ``get_rope_index``. Each row's
per-token log-probs from TRL's scoring forward must equal a plain forward of that row alone.
"""

import pytest

import unsloth_vlm_grpo
from unsloth_vlm_grpo.tiny import FAMILIES

from alignment import check_rows_score_as_if_alone
from grpo_helpers import COLOURS, grpo_config, saved_and_loaded, varied_colour_dataset, varied_image


def _trainer(family, padding_side, tmp_path, tiny_factory):
    from trl import GRPOTrainer

    model, processor = saved_and_loaded(tiny_factory(family), tmp_path / "checkpoint")
    processor.tokenizer.padding_side = padding_side
    dataset = varied_colour_dataset(rows=4)
    # num_iterations=2 makes TRL compute the old log-probs in _generate_and_score_completions with the same
    # forward inputs the loss uses.
    args = grpo_config(
        tmp_path / "out", per_device_train_batch_size=8, num_generations=2, max_completion_length=3, num_iterations=2
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=lambda completions, **_: [0.0] * len(completions),
        args=args,
        train_dataset=dataset,
    )
    return trainer, dataset


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("family", FAMILIES)
def test_each_row_scores_as_if_alone(family, padding_side, tmp_path, tiny_factory, patched):
    trainer, dataset = _trainer(family, padding_side, tmp_path, tiny_factory)
    check_rows_score_as_if_alone(trainer, dataset)
    assert processor_padding_side(trainer) == padding_side, "the user's processor keeps its padding side"


@pytest.mark.parametrize("family", ["qwen2_5_vl", "gemma3"])
@pytest.mark.upstream
def test_without_the_patch_right_padding_misaligns(family, tmp_path, tiny_factory):
    """Control: the check above fails for TRL as it is (so it can fail)."""
    unsloth_vlm_grpo.patch(exclude=("left_padded_image_fields",))
    try:
        trainer, dataset = _trainer(family, "right", tmp_path, tiny_factory)
        with pytest.raises((AssertionError, RuntimeError), match="misaligned|shape mismatch"):
            check_rows_score_as_if_alone(trainer, dataset)
    finally:
        unsloth_vlm_grpo.unpatch()


def processor_padding_side(trainer) -> str:
    return trainer.processing_class.tokenizer.padding_side


def test_qwen_batch_of_mixed_image_sizes_and_questions_trains(tmp_path, tiny_factory, patched):
    trainer, _ = _trainer("qwen2_5_vl", "right", tmp_path, tiny_factory)
    trainer.train()
    assert trainer.state.global_step == 2


def test_varied_images_change_the_prompt_length_of_qwen(tiny_factory):
    """The varied data really varies: for Qwen, a larger image gives a longer prompt."""
    processor = tiny_factory("qwen2_5_vl").processor
    lengths = set()
    for size in ((56, 56), (112, 56), (84, 140)):
        text = processor.apply_chat_template(varied_colour_dataset(1)[0]["prompt"], add_generation_prompt=True)
        lengths.add(processor(images=[varied_image(COLOURS["red"], size)], text=[text])["input_ids"][0].__len__())
    assert len(lengths) == 3, lengths

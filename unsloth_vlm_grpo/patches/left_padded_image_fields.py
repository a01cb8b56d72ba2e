"""Pad the scoring forward's per-token image fields on the left, like the prompt ids they go with.

Target: ``GRPOTrainer._generate_and_score_completions`` on TRL's class and on Unsloth's generated class
(trl 1.15.0, unsloth 2026.10.9).
Why: TRL left-pads ``prompt_ids`` itself, but builds the scoring forward's image fields with
``processing_class(images=..., text=..., padding=True)``, padded on the processor's own side. A processor
loaded from disk without a padding side pads on the right, and Unsloth's generated trainer sets right padding
in ``__init__``. In a batch of prompts of different lengths (questions of different lengths, images of
different sizes) ``mm_token_type_ids`` / ``token_type_ids`` then miss the image tokens: Qwen's 3-D RoPE
positions and Gemma 3's image-attention mask are silently wrong, or ``get_rope_index`` fails with "shape
mismatch: value tensor of shape [3, 63] cannot be broadcast to indexing result of shape [3, 61]". The
tokenizer pads on the left for the duration of the call and gets its own side back afterwards.
Remove when: TRL pads the processor's output on the side it pads the prompt ids. Not fixed upstream as of
trl 1.15.0: huggingface/trl#5785 was closed as user configuration, the fixes #5788 and #5789 closed unmerged.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from .._engine import GRPOTrainerMethod, Patch

logger = logging.getLogger("unsloth_vlm_grpo")
_ANNOUNCED = "_unsloth_vlm_grpo_announced_left_padding"


@contextmanager
def padding_on_the_left(processor):
    """Let ``processor`` pad on the left inside the block; its tokenizer's own side is restored after."""
    tokenizer = getattr(processor, "tokenizer", processor)
    side = getattr(tokenizer, "padding_side", None)
    if side in (None, "left"):
        yield
        return
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = side


def _generate_with_left_padding(wrapped, trainer, args, kwargs):
    if not getattr(trainer, "_is_vlm", False):
        return wrapped(*args, **kwargs)
    processor = trainer.processing_class
    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(tokenizer, "padding_side", "left") != "left" and not trainer.__dict__.get(_ANNOUNCED):
        trainer.__dict__[_ANNOUNCED] = True
        logger.info(
            "unsloth_vlm_grpo: the processor pads on the %s; each batch's image fields are padded on the left, "
            "like TRL's prompt ids (the processor's padding side is left as it is).",
            tokenizer.padding_side,
        )
    with padding_on_the_left(processor):
        return wrapped(*args, **kwargs)


PATCH = Patch(
    name="left_padded_image_fields",
    targets=(GRPOTrainerMethod("_generate_and_score_completions"),),
    wrapper=_generate_with_left_padding,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._generate_and_score_completions": "1fa48922792dcd5c",
        "UnslothGRPOTrainer.UnslothGRPOTrainer._generate_and_score_completions": "84f30c64c4829bb0",
    },
    reason="Per-token image fields are padded on the processor's side while prompt ids are left-padded.",
    remove_when="TRL pads processor outputs on the prompt ids' side (huggingface/trl#5785, closed unfixed).",
)

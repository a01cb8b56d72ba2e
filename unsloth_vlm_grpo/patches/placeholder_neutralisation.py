"""Make vision tokens that still appear in a completion harmless before the trainer scores it.

Target: ``GRPOTrainer._generate`` on TRL's class and on Unsloth's generated class (trl 1.15.0,
unsloth 2026.10.9).
Why: ``placeholder_suppression`` covers the trainer's own transformers generation, but completions can
also come from a ``rollout_func``, vLLM or a user's generation config. A placeholder token in a
completion crashes the scoring forward ("Image features and image tokens do not match"). Each such
position the model generated is replaced with the pad token and masked out of the loss through the
``tool_mask`` both trainers already multiply into their loss mask. Tool-response tokens (mask 0) are
left alone: images returned by tools legitimately carry placeholders. Logged once per trainer, and
counted in the ``vision_tokens/neutralised`` metric.
Remove when: TRL validates completions against the processor's placeholder tokens itself (the crash was
reported as huggingface/trl#3847; not fixed as of trl 1.15.0).
"""

from __future__ import annotations

import logging

from .._engine import GRPOTrainerMethod, Patch
from .._vision_tokens import trainer_vision_token_ids

logger = logging.getLogger("unsloth_vlm_grpo")
_WARNED_ATTRIBUTE = "_unsloth_vlm_grpo_warned_neutralised"


def neutralise(completion_ids: list[list[int]], loss_mask: list[list[int]] | None, vision_ids: set[int], pad_id: int):
    """Return (ids, mask, count): vision tokens the model generated replaced by ``pad_id`` and masked."""
    new_ids, new_mask, count = [], [], 0
    for row_index, ids in enumerate(completion_ids):
        row_mask = list(loss_mask[row_index]) if loss_mask is not None else [1] * len(ids)
        row_ids = list(ids)
        for position, token in enumerate(row_ids):
            if token in vision_ids and row_mask[position]:
                row_ids[position], row_mask[position] = pad_id, 0
                count += 1
        new_ids.append(row_ids)
        new_mask.append(row_mask)
    return new_ids, new_mask, count


def _neutralise_vision_tokens(wrapped, trainer, args, kwargs):
    result = wrapped(*args, **kwargs)
    vision_ids = set(trainer_vision_token_ids(trainer))
    if not vision_ids:
        return result
    prompt_ids, completion_ids, tool_mask, *rest = result
    new_ids, new_mask, count = neutralise(completion_ids, tool_mask, vision_ids, trainer._tokenizer.pad_token_id)
    mode = "train" if trainer.model.training else "eval"
    trainer._metrics[mode]["vision_tokens/neutralised"].append(float(count))
    if count == 0:
        return result
    if not getattr(trainer, _WARNED_ATTRIBUTE, False):
        setattr(trainer, _WARNED_ATTRIBUTE, True)
        logger.warning(
            "unsloth_vlm_grpo: %d image/video placeholder token(s) appeared in generated completions; they were "
            "replaced by the pad token and masked out of the loss (logged once; see the "
            "'vision_tokens/neutralised' metric).",
            count,
        )
    return (prompt_ids, new_ids, new_mask, *rest)


PATCH = Patch(
    name="placeholder_neutralisation",
    targets=(GRPOTrainerMethod("_generate"),),
    wrapper=_neutralise_vision_tokens,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._generate": "0c01e7a81b4c106b",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._generate": "8332bb9aa42145b4",
    },
    reason="A placeholder token inside a completion crashes the scoring forward.",
    remove_when="TRL masks vision placeholder tokens in completions itself.",
)

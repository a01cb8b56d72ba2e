"""Give each of TRL's scoring forwards Llama 3.2 Vision's image fields for its own rows.

Targets: ``GRPOTrainer._get_per_token_logps_and_entropies`` (``mllama_scoring_fields``) and
``GRPOTrainer._compute_loss`` (``mllama_loss_fields``) on TRL's class (trl 1.15.0); watched on Unsloth's generated
class (unsloth 2026.10.9), which scores through unsloth_zoo (``unsloth_mllama_vision_inputs``).
Why: TRL's forwards knew nothing of ``aspect_ratio_ids``, ``aspect_ratio_mask`` and ``cross_attention_mask``:
the loss forward failed with "`aspect_ratio_ids` must be provided if `pixel_values` is provided", the old-policy
and reference forwards with "unexpected keyword argument 'cross_attention_mask'"; and TRL slices mllama's
per-sample ``pixel_values`` per image. Each forward chunk now gets its rows of all four fields (the loss's from the
batch ``mllama_batch_fields`` keeps) and a mask built for its own ids: see ``_scoring``.
Remove when: TRL forwards mllama's fields in every scoring forward and slices per-sample image inputs by rows
(not the case as of trl 1.15.0).
"""

from __future__ import annotations

from ..._engine import GRPOTrainerMethod, Patch
from ._scoring import loss_with_image_fields, score_with_image_fields

_VERIFIED = {"trl": "1.15.0", "unsloth": "2026.10.9"}
_REMOVE_WHEN = "TRL forwards mllama's image fields in every scoring forward, sliced by rows."


def _score_with_mllama_fields(wrapped, trainer, args, kwargs):
    return score_with_image_fields(wrapped, trainer, args, kwargs)


def _loss_with_mllama_fields(wrapped, _trainer, args, kwargs):
    return loss_with_image_fields(wrapped, args, kwargs)


SCORING_PATCH = Patch(
    name="mllama_scoring_fields",
    targets=(GRPOTrainerMethod("_get_per_token_logps_and_entropies", classes="trl"),),
    watches=(GRPOTrainerMethod("_get_per_token_logps_and_entropies", classes="unsloth"),),
    wrapper=_score_with_mllama_fields,
    verified=_VERIFIED,
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._get_per_token_logps_and_entropies": "ea73c3909275851d",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._get_per_token_logps_and_entropies": "ddfa41775014afa1",
    },
    reason="TRL's scoring forwards drop mllama's image fields and slice its per-sample pixel_values per image.",
    remove_when=_REMOVE_WHEN,
)
LOSS_PATCH = Patch(
    name="mllama_loss_fields",
    targets=(GRPOTrainerMethod("_compute_loss", classes="trl"),),
    watches=(GRPOTrainerMethod("_compute_loss", classes="unsloth"),),
    wrapper=_loss_with_mllama_fields,
    verified=_VERIFIED,
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._compute_loss": "80295546bbdbf6f7",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._compute_loss": "80295546bbdbf6f7",
    },
    reason="TRL's loss forward drops mllama's image fields.",
    remove_when=_REMOVE_WHEN,
)

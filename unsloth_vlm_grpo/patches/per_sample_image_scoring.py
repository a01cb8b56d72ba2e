"""Give each scoring forward the image inputs of its own rows, for processors whose image inputs are per sample.

Targets: ``GRPOTrainer._get_per_token_logps_and_entropies`` and ``GRPOTrainer._compute_loss`` on TRL's
class (trl 1.15.0). On Unsloth's generated class (unsloth 2026.10.9) they are wrapped but passed through:
it scores with unsloth_zoo's own vision code (``unsloth_mllama_vision_inputs`` gives mllama's fields to it).
Why: TRL 1.15 slices ``pixel_values`` per image, and keeps only the image inputs it knows, which breaks
two families whose inputs are per sample:
- Llama 3.2 Vision (mllama): ``aspect_ratio_ids``, ``aspect_ratio_mask`` and ``cross_attention_mask`` never
  reach the scoring forwards ("`aspect_ratio_ids` must be provided if `pixel_values` is provided",
  "unexpected keyword argument 'cross_attention_mask'"): see ``unsloth_vlm_grpo._mllama_scoring``;
- Idefics3 / SmolVLM: pixel values padded per row are sliced by image index when a batch has as many
  images as rows ("shape '[16, 56, 56]' is invalid for input of size 25088"), and chunks of text-only rows
  get padding images only ("cannot reshape tensor of 0 elements"): see ``unsloth_vlm_grpo._padded_scoring``.
One patch covers both because the engine allows one wrapper per target; other models go to TRL unchanged.
Remove when: TRL slices per-sample image inputs by rows and forwards mllama's processor outputs in every
scoring forward.
"""

from __future__ import annotations

from .._engine import GRPOTrainerMethod, Patch, is_unsloth_generated
from .._mllama_scoring import loss_with_image_fields, score_with_image_fields
from .._padded_scoring import score_padded_chunks_by_rows


def _score_with_per_sample_image_inputs(wrapped, trainer, args, kwargs):
    if is_unsloth_generated(wrapped):
        return wrapped(*args, **kwargs)  # Unsloth's generated trainer scores through its own code
    if wrapped.__name__ == "_compute_loss":
        return loss_with_image_fields(wrapped, args, kwargs)
    return score_with_image_fields(
        wrapped, trainer, args, kwargs, otherwise=lambda: score_padded_chunks_by_rows(wrapped, args, kwargs)
    )


PATCH = Patch(
    name="per_sample_image_scoring",
    targets=(GRPOTrainerMethod("_get_per_token_logps_and_entropies"), GRPOTrainerMethod("_compute_loss")),
    wrapper=_score_with_per_sample_image_inputs,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._get_per_token_logps_and_entropies": "ea73c3909275851d",
        "trl.trainer.grpo_trainer.GRPOTrainer._compute_loss": "80295546bbdbf6f7",
        # Unsloth's generated class scores through unsloth_zoo: the wrapper leaves it alone (declared so a
        # change there is noticed).
        "UnslothGRPOTrainer._UnslothGRPOTrainer._get_per_token_logps_and_entropies": "ddfa41775014afa1",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._compute_loss": "80295546bbdbf6f7",
    },
    reason="TRL 1.15 slices per-sample image inputs per image and drops mllama's image fields from scoring forwards.",
    remove_when="TRL slices per-sample image inputs by rows and forwards mllama's fields in every scoring forward.",
)

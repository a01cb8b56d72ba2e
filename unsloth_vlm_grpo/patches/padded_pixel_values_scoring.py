"""Score Idefics3 / SmolVLM batches chunk by chunk, each chunk with its own rows' images.

Target: ``GRPOTrainer._get_per_token_logps_and_entropies`` on TRL's class (trl 1.15.0); watched on Unsloth's
generated class (unsloth 2026.10.9), which scores with unsloth_zoo's own vision code.
Why: Idefics3-style processors pad ``pixel_values`` per row. TRL slices them by image index when a batch has as
many images as rows ("shape '[16, 56, 56]' is invalid for input of size 25088"), and gives chunks of text-only
rows padding images only ("cannot reshape tensor of 0 elements"): see ``unsloth_vlm_grpo._padded_scoring``.
Other layouts go to TRL unchanged.
Remove when: TRL slices per-sample padded image inputs by rows. huggingface/trl#6570 split Idefics-style pixel
values by sample, but this layout still crashes on trl 1.15.0 without the patch (tested); huggingface/trl#4488
(open) collects the remaining multi-image GRPO problems.
"""

from __future__ import annotations

from .._engine import GRPOTrainerMethod, Patch
from .._padded_scoring import score_padded_chunks_by_rows


def _score_padded_chunks(wrapped, _trainer, args, kwargs):
    return score_padded_chunks_by_rows(wrapped, args, kwargs)


PATCH = Patch(
    name="padded_pixel_values_scoring",
    targets=(GRPOTrainerMethod("_get_per_token_logps_and_entropies", classes="trl"),),
    watches=(GRPOTrainerMethod("_get_per_token_logps_and_entropies", classes="unsloth"),),
    wrapper=_score_padded_chunks,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._get_per_token_logps_and_entropies": "ea73c3909275851d",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._get_per_token_logps_and_entropies": "ddfa41775014afa1",
    },
    reason="TRL slices per-row padded pixel_values (Idefics3) by image and gives text-only chunks padding images.",
    remove_when="TRL slices per-sample padded image inputs by rows.",
)

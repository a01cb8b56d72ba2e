"""Every patch the library applies, in order. One module per patch; each declares its target, the
versions it was verified against, the fingerprint of the target's source, why it exists and when it
can be removed."""

from __future__ import annotations

from . import (
    cpu_fused_logprobs,
    image_batch_normalisation,
    image_dataset_check,
    left_padded_image_fields,
    mixed_image_batches,
    mllama_cross_attention_mask,
    mllama_rows_without_images,
    per_sample_image_scoring,
    per_sample_pixel_values_shuffling,
    placeholder_neutralisation,
    placeholder_suppression,
    reward_images,
    reward_rows,
    stale_input_grad_hooks,
    unsloth_mllama_vision_inputs,
    unsloth_trainer_regeneration,
)

ALL_PATCHES = (
    unsloth_trainer_regeneration.PATCH,
    cpu_fused_logprobs.PATCH,
    placeholder_suppression.PATCH,
    placeholder_neutralisation.PATCH,
    image_dataset_check.PATCH,
    image_batch_normalisation.PATCH,
    left_padded_image_fields.PATCH,
    mixed_image_batches.PATCH,
    reward_rows.PATCH,
    reward_images.PATCH,
    mllama_cross_attention_mask.PATCH,
    mllama_rows_without_images.PATCH,
    per_sample_image_scoring.PATCH,
    per_sample_pixel_values_shuffling.PATCH,
    stale_input_grad_hooks.PATCH,
    unsloth_mllama_vision_inputs.PATCH,
)

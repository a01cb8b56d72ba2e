"""Every patch the library applies, in order. One module per patch; each declares its target, the
versions it was verified against, the fingerprint of the target's source, why it exists and when it
can be removed. (Following the trainer class Unsloth generates is engine plumbing: ``_engine``.)

Patches applied earlier sit inside those applied later on a shared target: ``mllama_batch_fields`` comes before
``image_batch_normalisation`` so that it sees the batch's images already converted.
"""

from __future__ import annotations

from . import (
    cpu_fused_logprobs,
    gemma3_decode_masks,
    image_batch_normalisation,
    image_dataset_check,
    left_padded_image_fields,
    lora_folded_generation,
    mixed_image_batches,
    mllama,
    padded_pixel_values_scoring,
    per_sample_pixel_values_shuffling,
    placeholder_neutralisation,
    placeholder_suppression,
    reward_images,
    reward_rows,
    stale_input_grad_hooks,
    static_cache_generation,
)

ALL_PATCHES = (
    cpu_fused_logprobs.PATCH,
    placeholder_suppression.PATCH,
    placeholder_neutralisation.PATCH,
    image_dataset_check.PATCH,
    *mllama.PATCHES,
    image_batch_normalisation.PATCH,
    left_padded_image_fields.PATCH,
    mixed_image_batches.PATCH,
    reward_rows.PATCH,
    reward_images.PATCH,
    padded_pixel_values_scoring.PATCH,
    per_sample_pixel_values_shuffling.PATCH,
    stale_input_grad_hooks.PATCH,
    static_cache_generation.PATCH,  # opt-in; inside lora_folded_generation: it caches whatever model generates
    # opt-in; outside static_cache_generation and inside lora_folded_generation, so that it sees the copy
    gemma3_decode_masks.PATCH,
    lora_folded_generation.PATCH,  # opt-in
)

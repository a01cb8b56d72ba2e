"""Llama 3.2 Vision (``mllama``): its patches, in the order they are applied.

Mllama is a cross-attention VLM whose processor outputs (``aspect_ratio_ids``, ``aspect_ratio_mask``,
``cross_attention_mask``, per-sample ``pixel_values``) TRL and unsloth_zoo do not know: each module fixes one
place they are lost or misread.
"""

from __future__ import annotations

from . import batch_fields, cross_attention_mask, rows_without_images, scoring_fields, unsloth_vision_inputs

PATCHES = (
    batch_fields.PATCH,
    cross_attention_mask.PATCH,
    rows_without_images.PATCH,
    scoring_fields.SCORING_PATCH,
    scoring_fields.LOSS_PATCH,
    unsloth_vision_inputs.INPUTS_PATCH,
    unsloth_vision_inputs.CHUNKS_PATCH,
)

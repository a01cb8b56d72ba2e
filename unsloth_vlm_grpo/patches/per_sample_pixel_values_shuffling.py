"""Keep Idefics3 / SmolVLM and Llama 3.2 Vision images with their rows when TRL shuffles a generation batch.

Targets: ``split_pixel_values_by_grid`` as TRL's trainer module calls it
(``trl.trainer.grpo_trainer.split_pixel_values_by_grid``, trl 1.15.0) and as the module Unsloth generates
calls it (``UnslothGRPOTrainer.split_pixel_values_by_grid``, unsloth 2026.10.9: it binds the function by
name when it is generated, so a module generated before ``patch()``, as after ``import unsloth`` first,
kept TRL's unwrapped function; measured on an H200: "shape '[4, 56, 56]' is invalid for input of size
25088" at the third step of a SmolVLM run with rows of two images and rows without).
Why: before shuffling a generation batch, ``GRPOTrainer._prepare_inputs`` splits ``pixel_values`` per
sample. Its own docstring says pixel values "already padded to one row per sample (e.g. Idefics,
SmolVLM)" are left as they are, but it tells them apart from the flat one-row-per-image layout by
``pixel_values.size(0) != sum(num_images)``. When the image count equals the row count by coincidence
(rows with two images and rows with none), it splits the padded tensor by image counts: after the
shuffle, rows carry other rows' images, or none. For that layout (5-D pixel values, a 4-D
``pixel_attention_mask``, one entry per row, no other image metadata) the batch is returned as it is,
as TRL intends; the shuffle then permutes ``pixel_values`` and its mask with the rows. Llama 3.2 Vision's
pixel values are per sample too (batch, images, tiles, ...; its fields ride in the batch, see
``image_batch_normalisation``): the same happened to its rows of two images next to rows without (measured on
an H100 under Unsloth, where ``unsloth_mllama_vision_inputs`` stops at "pixel_values has 2 rows for 4
samples"), and such a batch is returned as it is too.
The wrapper also does nothing once ``unpatch()`` has run, should a copy of it be held anywhere else.
Remove when: TRL recognises the per-sample padded layout by its shape rather than by counts (see
huggingface/trl#6570 and the open huggingface/trl#4488; not fixed for this case as of trl 1.15.0).
"""

from __future__ import annotations

import torch

from .._engine import FunctionTarget, Patch, UnslothModuleFunction, is_active
from .._padded_scoring import is_per_sample_padded


def _is_mllama_per_sample(batch: dict, rows: int) -> bool:
    pixel_values = batch.get("pixel_values")
    return (
        isinstance(pixel_values, torch.Tensor)
        and batch.get("aspect_ratio_ids") is not None
        and pixel_values.size(0) == batch["aspect_ratio_ids"].size(0) == rows
    )


def _leave_per_sample_padding_alone(wrapped, _instance, args, kwargs):
    batch = args[0] if args else kwargs.get("batch")
    if is_active() and isinstance(batch, dict) and batch.get("num_images") is not None:
        rows = len(batch["num_images"])
        if is_per_sample_padded(batch, rows) or _is_mllama_per_sample(batch, rows):
            return batch
    return wrapped(*args, **kwargs)


PATCH = Patch(
    name="per_sample_pixel_values_shuffling",
    targets=(
        FunctionTarget("trl.trainer.grpo_trainer", "split_pixel_values_by_grid"),
        UnslothModuleFunction("split_pixel_values_by_grid"),
    ),
    wrapper=_leave_per_sample_padding_alone,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.split_pixel_values_by_grid": "3aca66e33a7978d3",
        "UnslothGRPOTrainer.split_pixel_values_by_grid": "3aca66e33a7978d3",
    },
    reason="Idefics3 and mllama per-sample pixel_values are split by image count before the shuffle when counts agree.",
    remove_when="TRL recognises per-sample padded pixel_values by shape in split_pixel_values_by_grid.",
)

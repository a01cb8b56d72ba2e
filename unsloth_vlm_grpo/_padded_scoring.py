"""Score Idefics3 / SmolVLM batches chunk by chunk with each chunk's own rows' images (used by the
``padded_pixel_values_scoring`` and ``per_sample_pixel_values_shuffling`` patches).

Idefics3-style processors (SmolVLM, Idefics2/3) return ``pixel_values`` padded per sample,
``(rows, max_images, C, H, W)``, with a matching 4-D ``pixel_attention_mask``; a row without images gets
an all-zero padding image. TRL scores in chunks of rows and fails on two kinds of chunk:
- it slices ``pixel_values`` by image index when ``pixel_values.size(0) == sum(num_images)``, which a
  batch of rows with two images and rows with none meets by coincidence: a chunk gets other rows'
  images and the forward fails with "shape '[16, 56, 56]' is invalid for input of size 25088";
- a chunk whose rows have no image still gets their padding images, which Idefics3 drops, and its
  vision model then fails with "cannot reshape tensor of 0 elements into shape [0, -1]".
(Both measured: tiny Idefics3, rows of 2 and 0 images, ``steps_per_generation=2``.) For this layout the
wrapper cuts the chunks itself, by rows, gives each its rows' pixel values and mask, none when its rows
have no image, and concatenates the results as TRL does. Other layouts go to TRL unchanged.
"""

from __future__ import annotations

import torch

_POSITIONAL = ("model", "input_ids", "attention_mask", "logits_to_keep", "batch_size")
_PER_ROW = (
    "input_ids",
    "attention_mask",
    "pixel_values",
    "pixel_attention_mask",
    "token_type_ids",
    "mm_token_type_ids",
)
_OTHER_IMAGE_FIELDS = ("image_grid_thw", "spatial_shapes", "num_tiles", "image_sizes", "image_position_ids")


def is_per_sample_padded(fields: dict, rows: int) -> bool:
    """True for the Idefics3 layout: 5-D pixel values and a 4-D pixel mask, one entry per row."""
    pixel_values, mask = fields.get("pixel_values"), fields.get("pixel_attention_mask")
    return (
        isinstance(pixel_values, torch.Tensor)
        and isinstance(mask, torch.Tensor)
        and pixel_values.ndim == 5
        and mask.ndim == 4
        and pixel_values.size(0) == rows
        and fields.get("num_images") is not None
        and all(fields.get(key) is None for key in _OTHER_IMAGE_FIELDS)
    )


def score_padded_chunks_by_rows(wrapped, args, kwargs):
    """TRL's chunked scoring, with chunks cut by rows for the per-sample padded layout."""
    fields = {**dict(zip(_POSITIONAL, args, strict=False)), **kwargs}
    rows = fields["input_ids"].size(0)
    if not is_per_sample_padded(fields, rows):
        return wrapped(*args, **kwargs)
    chunk_size = fields.get("batch_size") or rows
    results = []
    for start in range(0, rows, chunk_size):
        end = min(start + chunk_size, rows)
        chunk = {
            key: value[start:end] if key in _PER_ROW and value is not None else value for key, value in fields.items()
        }
        chunk["batch_size"] = end - start
        if sum(fields["num_images"][start:end]) == 0:
            chunk["pixel_values"] = chunk["pixel_attention_mask"] = chunk["num_images"] = None
        else:
            chunk["num_images"] = [1] * (end - start)  # one padded entry per row: TRL then slices by rows
        results.append(wrapped(**chunk))
    logps = torch.cat([result[0] for result in results], dim=0)
    entropies = torch.cat([result[1] for result in results], dim=0) if results[0][1] is not None else None
    aux_loss = torch.stack([result[2] for result in results]).mean() if results[0][2] is not None else None
    return logps, entropies, aux_loss

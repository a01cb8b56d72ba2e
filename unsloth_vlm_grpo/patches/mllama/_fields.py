"""Llama 3.2 Vision (``mllama``) helpers shared by its patches: its fields, and its cross-attention mask.

Mllama is a cross-attention VLM: each image is one ``<|image|>`` token in the text, its features enter the
language model through cross-attention layers, and ``cross_attention_mask`` (batch, tokens, images, tiles)
says which image tiles each text token may attend to. The processor derives that mask from the token ids
(each image token opens a range that ends at the next image group or at the end of the sequence), which is
why it can be rebuilt from the ids the model actually receives.
"""

from __future__ import annotations

import torch

MODEL_TYPE = "mllama"
# Per-sample processor outputs of mllama besides pixel_values, all batch-first like it.
FIELDS = ("aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask")


def is_mllama(model) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == MODEL_TYPE


def cross_attention_mask_from_ids(input_ids: torch.Tensor, tiles: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """The (batch, len, images, tiles) mask for ``input_ids`` as padded here, whatever the padding side.

    ``tiles`` (batch, images, tiles) marks each image's real tiles. Ranges follow the processor's rule
    (``get_cross_attention_token_mask``): the last image group's range runs to the end of the sequence, so
    completion tokens attend to the same images as the prompt's last token. An image token beyond the row's
    images (a completion that sampled one) opens no range but, by the same rule, ends the previous image's
    range: tokens after it attend to no image. ``placeholder_suppression`` keeps the policy from sampling it.
    """
    from transformers.models.mllama.processing_mllama import get_cross_attention_token_mask

    batch, length = input_ids.shape
    mask = torch.zeros((batch, length, *tiles.shape[1:]), dtype=torch.long, device=input_ids.device)
    tiles = tiles.to(device=input_ids.device, dtype=torch.long)
    for row, ids in enumerate(input_ids.tolist()):
        images = int(tiles[row].any(dim=-1).sum()) if tiles.shape[1] else 0
        for image, (start, end) in enumerate(get_cross_attention_token_mask(ids, image_token_id)[:images]):
            end = length if end == -1 else min(end, length)
            mask[row, start:end, image] = tiles[row, image]
    return mask


def tiles_of(cross_attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, images, tiles): the tiles each image has, read from a cross-attention mask of any alignment."""
    return cross_attention_mask.amax(dim=1)


def image_inputs(image_processor, images_per_row: list[list]) -> dict[str, torch.Tensor]:
    """``pixel_values``, ``aspect_ratio_ids``, ``aspect_ratio_mask`` and ``tiles`` (batch, images, tiles) for
    rows of images; rows without images get the padding the image processor gives a missing image."""
    rows = [index for index, images in enumerate(images_per_row) if images]
    processed = image_processor(images=[images_per_row[index] for index in rows], return_tensors="pt")
    pixel_values = processed["pixel_values"]
    batch, (images, max_tiles) = len(images_per_row), pixel_values.shape[1:3]
    out = {
        "pixel_values": pixel_values.new_zeros((batch, *pixel_values.shape[1:])),
        "aspect_ratio_ids": torch.zeros((batch, images), dtype=torch.long),
        "aspect_ratio_mask": torch.zeros((batch, images, max_tiles), dtype=torch.long),
        "tiles": torch.zeros((batch, images, max_tiles), dtype=torch.long),
    }
    out["aspect_ratio_mask"][:, :, 0] = 1  # as build_aspect_ratio_mask does for padding images
    for position, row in enumerate(rows):
        out["pixel_values"][row] = pixel_values[position]
        out["aspect_ratio_ids"][row] = processed["aspect_ratio_ids"][position]
        out["aspect_ratio_mask"][row] = processed["aspect_ratio_mask"][position]
        for image, tiles in enumerate(processed["num_tiles"][position]):
            out["tiles"][row, image, :tiles] = 1
    return out

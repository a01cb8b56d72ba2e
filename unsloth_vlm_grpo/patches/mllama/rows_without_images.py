"""Let Llama 3.2 Vision's processor batch rows without images with rows that have them.

Target: ``transformers.models.mllama.processing_mllama.MllamaProcessor.__call__`` (transformers 5.17.0).
Why: the processor refuses such a batch ("If a batch of text is provided, there should be either no images or
at least one image per sample"), and TRL calls it with the whole batch, for generation (through
``apply_chat_template``) and for the scoring inputs. A dataset mixing text-only and image rows could not be
trained at all. Here such a batch is processed as two: the rows with images, and the rows without (neither images
nor image tokens; any other row goes to the processor as it is, which names the problem). The results are put
back in row order: the text fields padded to one length on the tokenizer's padding side when the processor
padded them, and each text-only row given the image inputs the image processor gives a missing image (zero
pixels, aspect ratio id 0, a mask with no tile) and a cross-attention mask attending to nothing. A call this
cannot merge exactly (other outputs such as ``token_type_ids``; unpadded tensors of different lengths) goes to
the processor whole, which answers as it always did.
Remove when: the mllama processor accepts rows without images in a batch with image rows. Asked for in
huggingface/transformers#35937, closed: the guard is kept on purpose (as of transformers 5.17.0).
"""

from __future__ import annotations

import numpy as np
import torch

from ..._engine import FunctionTarget, Patch

MODULE = "transformers.models.mllama.processing_mllama"
_TEXT_FIELDS = ("input_ids", "attention_mask", "cross_attention_mask")
_IMAGE_FIELDS = ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")


def _rows(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value[index] for index in range(len(value))]


def _zeros(like, shape=None):
    shape = like.shape if shape is None else shape
    if torch.is_tensor(like):
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    return np.zeros(shape, dtype=like.dtype)


def _missing_image_inputs(name: str, like):
    """A text-only row's ``name`` (pixel_values, aspect_ratio_ids or aspect_ratio_mask)."""
    row = _zeros(like)
    if name == "aspect_ratio_mask":
        row[..., 0] = 1  # as the image processor pads a missing image
    return row


def _pad_to(row, length: int, value: int, left: bool):
    missing = length - len(row)
    if missing == 0:
        return row
    if isinstance(row, list):
        return [value] * missing + row if left else row + [value] * missing
    padding = _zeros(row, (missing, *row.shape[1:])) + value
    join = torch.cat if torch.is_tensor(row) else np.concatenate
    return join([padding, row] if left else [row, padding])


def _stack(rows: list, like):
    if torch.is_tensor(like):
        return torch.stack(rows)
    if isinstance(like, np.ndarray):
        return np.stack(rows)
    return rows


def _text_setting(kwargs: dict, name: str, default=None):
    """A tokenizer setting as the processor reads it: a keyword of its own, or inside ``text_kwargs``."""
    return kwargs.get(name, kwargs.get("text_kwargs", {}).get(name, default))


def _pads(kwargs: dict) -> bool:
    return _text_setting(kwargs, "padding") not in (None, False, "do_not_pad")


def _merge(processor, kwargs, order: list[int], with_images, without_images):
    """The processor's outputs for the two groups of rows, in row order (``order[row]`` = position in the groups)."""
    padded = _pads(kwargs)
    left = padded and _text_setting(kwargs, "padding_side", processor.tokenizer.padding_side) == "left"
    text_only_ids = _rows(without_images["input_ids"])
    masks = _rows(with_images["cross_attention_mask"])
    masks += [_zeros(masks[0], (len(ids), *masks[0].shape[1:])) for ids in text_only_ids]
    text_rows = {
        "input_ids": _rows(with_images["input_ids"]) + text_only_ids,
        "attention_mask": _rows(with_images["attention_mask"]) + _rows(without_images["attention_mask"]),
        "cross_attention_mask": masks,
    }
    pad_values = {"input_ids": processor.tokenizer.pad_token_id, "attention_mask": 0, "cross_attention_mask": 0}
    # Unpadded, the processor lays every row out from position 0 and the mask out to the longest row.
    length = max(len(mask) for mask in masks)
    merged = {}
    for name, rows in text_rows.items():
        if padded or name == "cross_attention_mask":
            rows = [_pad_to(row, length, pad_values[name], left) for row in rows]
        merged[name] = _stack([rows[position] for position in order], with_images[name])
    for name in _IMAGE_FIELDS:
        value = with_images[name]
        rows = _rows(value) + [_missing_image_inputs(name, value[0]) for _ in text_only_ids]
        merged[name] = _stack([rows[position] for position in order], value)
    return type(with_images)(data=merged)


def _mergeable(kwargs, with_images, without_images) -> bool:
    """Whether the two outputs hold only the fields ``_merge`` knows, in shapes the whole batch could have had."""
    if set(with_images) != {*_TEXT_FIELDS, *_IMAGE_FIELDS} or set(without_images) != set(_TEXT_FIELDS[:2]):
        return False  # e.g. token_type_ids, offset_mapping: not merged here
    if isinstance(with_images["input_ids"], list) or _pads(kwargs):
        return True
    return with_images["input_ids"].shape[1] == without_images["input_ids"].shape[1]


def _is_batch_of_image_lists(images, text) -> bool:
    return (
        isinstance(text, (list, tuple))
        and isinstance(images, (list, tuple))
        and len(images) == len(text)
        and all(row is None or isinstance(row, (list, tuple)) for row in images)
    )


def _process_rows_with_and_without_images(wrapped, processor, args, kwargs):
    images, text = kwargs.get("images"), kwargs.get("text")
    if args or not _is_batch_of_image_lists(images, text):
        return wrapped(*args, **kwargs)
    with_images = [row for row, row_images in enumerate(images) if row_images]
    without_images = [
        row for row, row_images in enumerate(images) if not row_images and processor.image_token not in text[row]
    ]
    if not with_images or not without_images or len(with_images) + len(without_images) != len(text):
        return wrapped(*args, **kwargs)
    first = wrapped(
        **{**kwargs, "images": [images[row] for row in with_images], "text": [text[row] for row in with_images]}
    )
    second = wrapped(**{**kwargs, "images": None, "text": [text[row] for row in without_images]})
    if not _mergeable(kwargs, first, second):
        return wrapped(*args, **kwargs)  # the processor's own answer for the whole batch
    grouped = with_images + without_images
    return _merge(processor, kwargs, [grouped.index(row) for row in range(len(text))], first, second)


PATCH = Patch(
    name="mllama_rows_without_images",
    targets=(FunctionTarget(MODULE, "MllamaProcessor.__call__"),),
    wrapper=_process_rows_with_and_without_images,
    verified={"transformers": "5.17.0"},
    fingerprints={f"{MODULE}.MllamaProcessor.__call__": "8277db81f6258069"},
    reason="Llama 3.2 Vision's processor refuses a batch mixing rows without images and rows with them.",
    remove_when="transformers' MllamaProcessor accepts rows without images next to image rows.",
)

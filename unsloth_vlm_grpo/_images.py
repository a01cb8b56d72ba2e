"""Image inputs for GRPO: every accepted form to an RGB PIL image, and per-row checks with clear errors.

Accepted per image: a PIL image, a file path, raw bytes, a numpy array (or nested lists, as ``datasets``
returns arrays), or the ``{"bytes", "path"}`` dict a ``datasets`` Image feature stores. Every mode becomes
RGB; alpha is composited on white.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

WHITE = (255, 255, 255)


class ImageInputError(ValueError):
    """A dataset row's images are missing, unreadable or do not match the prompt's image placeholders."""


_UNNAMED_ROW = "a row of this batch"


def _where(row: int | None) -> str:
    return f"dataset row {row}" if row is not None else _UNNAMED_ROW


def naming_the_row(error: ImageInputError, rows: str) -> ImageInputError:
    """``error`` with its unnamed row replaced by ``rows`` (e.g. "dataset row 7")."""
    message = str(error)
    if message.startswith(_UNNAMED_ROW):
        message = rows + message[len(_UNNAMED_ROW) :]
    return ImageInputError(message)


def _from_array(value: Any, row: int | None) -> Image.Image:
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageInputError(
            f"{_where(row)}: image array has shape {array.shape}; expected (height, width), "
            "(height, width, 1), (height, width, 3) or (height, width, 4)"
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1):
            raise ImageInputError(f"{_where(row)}: float image array values must lie in [0, 1]")
        array = np.round(np.nan_to_num(array) * 255).astype(np.uint8)
    elif array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer) and array.dtype != np.uint8:
        # Nested lists (how `datasets` returns stored arrays) arrive as int64.
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ImageInputError(
                f"{_where(row)}: integer image array (dtype {array.dtype}) values must lie in [0, 255]; "
                "use uint16 for 16-bit images"
            )
        array = array.astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageInputError(
            f"{_where(row)}: image array dtype {array.dtype} is not supported; use integers in [0, 255], "
            "uint16, bool or float in [0, 1]"
        )
    return Image.fromarray(array)


def _open(source: Any, row: int | None, label: str, decode: bool = True) -> Image.Image:
    try:
        image = Image.open(source)
        if decode:
            image.load()
        else:
            image.verify()  # checks structure without decoding; the image keeps its size but no pixels
    except FileNotFoundError as error:
        raise ImageInputError(f"{_where(row)}: image file {label} does not exist") from error
    except Image.DecompressionBombError as error:
        raise ImageInputError(
            f"{_where(row)}: {label} is too large for Pillow ({error}); resize it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust it (the processor then downsizes it to its own cap)"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageInputError(f"{_where(row)}: {label} is not an image file Pillow can read") from error
    except OSError as error:
        raise ImageInputError(f"{_where(row)}: {label} could not be decoded ({error})") from error
    return image


def load_image(value: Any, row: int | None = None, decode: bool = True) -> Image.Image:
    """Any accepted image form to a PIL image (mode unchanged). With ``decode=False`` files and bytes are
    only opened and verified (header and structure), which is much cheaper than decoding."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, (str, os.PathLike)):
        return _open(os.fspath(value), row, f"'{os.fspath(value)}'", decode)
    if isinstance(value, (bytes, bytearray)):
        return _open(io.BytesIO(value), row, "the image bytes", decode)
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        if value.get("bytes") is not None:
            return _open(io.BytesIO(value["bytes"]), row, f"the image bytes (path {value.get('path')!r})", decode)
        if value.get("path") is not None:
            return load_image(value["path"], row, decode)
        raise ImageInputError(f"{_where(row)}: image entry has neither bytes nor a path")
    if isinstance(value, (np.ndarray, list)):
        return _from_array(value, row)
    raise ImageInputError(
        f"{_where(row)}: an image must be a PIL image, a file path, bytes or an array, not {type(value).__name__}"
    )


def _require_pixels(image: Image.Image, row: int | None) -> None:
    if image.width == 0 or image.height == 0:
        raise ImageInputError(f"{_where(row)}: image has zero size {image.size}")


def to_rgb(image: Image.Image, row: int | None = None) -> Image.Image:
    """RGB copy of ``image``: alpha composited on white, 16/32-bit greyscale scaled to 8 bits."""
    _require_pixels(image, row)
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size and array.max() > 0 else 1.0
        image = Image.fromarray(np.round(array / peak * 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def row_images(row: dict) -> tuple[str | None, list]:
    """(column, images) of a dataset row: ``images`` (a list) or ``image`` (one, or None)."""
    if "images" in row:
        return "images", row["images"]
    if "image" in row:
        return "image", [] if row["image"] is None else [row["image"]]
    return None, []


def count_placeholders(prompt: Any) -> int | None:
    """Unfilled ``{"type": "image"}`` entries in a conversational prompt; None when TRL inserts them itself
    (every content is a plain string)."""
    if not isinstance(prompt, list):
        return None
    contents = [message.get("content") for message in prompt if isinstance(message, dict)]
    if not any(isinstance(content, list) for content in contents):
        return None
    return sum(
        1
        for content in contents
        if isinstance(content, list)
        for part in content
        if isinstance(part, dict) and part.get("type") == "image" and part.get("image") is None
    )


def check_row(row: dict, index: int | None) -> None:
    """Raise ``ImageInputError`` naming the row when its images cannot match its prompt."""
    column, images = row_images(row)
    if column == "images" and images is not None and not isinstance(images, (list, tuple)):
        raise ImageInputError(
            f"{_where(index)}: the 'images' column must hold a list of images, got {type(images).__name__}; "
            "use the 'image' column for one image per row"
        )
    images = list(images or [])
    if any(image is None for image in images):
        raise ImageInputError(f"{_where(index)}: the '{column}' column holds None where an image is expected")
    expected = count_placeholders(row.get("prompt"))
    if expected is not None and expected != len(images):
        raise ImageInputError(
            f"{_where(index)}: the prompt has {expected} image placeholder(s) ({{'type': 'image'}}) but the row "
            f"gives {len(images)} image(s) in '{column or 'images'}'"
        )


def iter_rows_without_decoding(dataset, batch_size: int = 1000) -> Iterator[dict]:
    """Rows of a ``datasets.Dataset`` in its own order (filtered, shuffled, selected and split views
    included, so the n-th row is ``dataset[n]``), with images left as stored ({"bytes", "path"})."""
    columns = [name for name in ("prompt", "image", "images") if name in dataset.column_names]
    view = dataset.select_columns(columns).with_format("arrow")
    for table in view.iter(batch_size=batch_size):
        yield from table.to_pylist()


def check_dataset(dataset) -> int | None:
    """Check every row of a map-style dataset before training: placeholder counts, and that each stored
    image exists, is an image, is not empty and passes ``Image.verify`` (without decoding pixels).
    Returns the index of the first row with an image (None if none)."""
    if "image" not in dataset.column_names and "images" not in dataset.column_names:
        return None
    first_with_image = None
    for index, row in enumerate(iter_rows_without_decoding(dataset)):
        check_row(row, index)
        images = row_images(row)[1] or []
        for image in images:
            _require_pixels(load_image(image, index, decode=False), index)
        if images and first_with_image is None:
            first_with_image = index
    return first_with_image

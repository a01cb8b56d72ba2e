"""Llama 3.2 Vision's image inputs in TRL's scoring and loss forwards (used by the ``mllama_batch_fields``,
``mllama_scoring_fields`` and ``mllama_loss_fields`` patches).

TRL 1.15 knows nothing of mllama's ``aspect_ratio_ids``, ``aspect_ratio_mask`` and
``cross_attention_mask``. Generation gets them (every processor output reaches ``generate``), but the
batch TRL keeps for the loss drops them, so the loss forward fails with "ValueError: `aspect_ratio_ids`
must be provided if `pixel_values` is provided"; the old-policy and reference forwards (``beta > 0``,
``num_iterations > 1`` ...) fail earlier with "TypeError: ... _get_per_token_logps_and_entropies() got an
unexpected keyword argument 'cross_attention_mask'". And mllama's ``pixel_values`` is per sample (batch,
images, tiles, ...), while TRL slices it per image whenever the batch holds as many images as rows.
Here the fields ride in the batch (shuffled and split with it), and each forward chunk gets its rows of
``pixel_values``, ``aspect_ratio_ids``, ``aspect_ratio_mask`` and a ``cross_attention_mask`` built for its
own ids (prompt and completion).
"""

from __future__ import annotations

from contextvars import ContextVar

from ..._images import row_images
from ._fields import FIELDS, cross_attention_mask_from_ids, image_inputs, is_mllama, tiles_of

_LOSS_BATCH: ContextVar[dict | None] = ContextVar("unsloth_vlm_grpo_mllama_loss_batch", default=None)


def carry_into_batch(trainer, rows: list[dict], output: dict) -> dict:
    """Add mllama's per-sample image fields to the batch ``_generate_and_score_completions`` returned.

    The image processor is run again on the rows' images (TRL drops its own results); the
    ``cross_attention_mask`` carried is one position long: it records each image's tiles, and each forward
    builds the full mask for its ids."""
    if not is_mllama(trainer.model) or "pixel_values" not in output:
        return output
    images = [row_images(row)[1] for row in rows]
    fields = image_inputs(trainer.processing_class.image_processor, images)
    device = output["pixel_values"].device
    return {
        **output,
        "aspect_ratio_ids": fields["aspect_ratio_ids"].to(device),
        "aspect_ratio_mask": fields["aspect_ratio_mask"].to(device),
        "cross_attention_mask": fields["tiles"].unsqueeze(1).to(device),
    }


class _RowsOfEachChunk:
    """Stands in for the model in TRL's chunk loop: each call gets the image fields of its own rows."""

    def __init__(self, model, fields: dict, image_token_id: int):
        self._model, self._fields, self._image_token_id, self._next_row = model, fields, image_token_id, 0

    def __call__(self, *args, **kwargs):
        input_ids = kwargs["input_ids"]
        start, end = self._next_row, self._next_row + input_ids.size(0)
        self._next_row = end
        chunk = {key: value[start:end] for key, value in self._fields.items()}
        if "cross_attention_mask" in chunk:
            tiles = tiles_of(chunk["cross_attention_mask"])
            chunk["cross_attention_mask"] = cross_attention_mask_from_ids(input_ids, tiles, self._image_token_id)
        return self._model(*args, **kwargs, **chunk)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def check_every_row_scored(self) -> None:
        rows = next(iter(self._fields.values())).size(0) if self._fields else self._next_row
        if self._next_row != rows:
            raise RuntimeError(f"mllama scoring: the forward chunks covered {self._next_row} of {rows} rows")


def loss_with_image_fields(wrapped, args, kwargs):
    """Run TRL's ``_compute_loss`` with its batch's mllama fields available to the forwards inside it."""
    inputs = args[1] if len(args) > 1 else kwargs["inputs"]
    token = _LOSS_BATCH.set({key: inputs[key] for key in FIELDS if key in inputs})
    try:
        return wrapped(*args, **kwargs)
    finally:
        _LOSS_BATCH.reset(token)


def score_with_image_fields(wrapped, trainer, args, kwargs):
    """TRL's ``_get_per_token_logps_and_entropies`` with mllama's fields per chunk; other models pass through."""
    fields = {key: kwargs.pop(key) for key in FIELDS if key in kwargs}
    if not fields:
        fields = dict(_LOSS_BATCH.get() or {})
    model = args[0] if args else kwargs["model"]
    unwrapped = trainer.accelerator.unwrap_model(model)
    if not fields or not is_mllama(unwrapped):
        return wrapped(*args, **kwargs)
    # Slice per sample here: TRL would slice mllama's per-sample pixel_values per image.
    if kwargs.get("pixel_values") is not None:
        fields["pixel_values"] = kwargs["pixel_values"]
    kwargs = {**kwargs, "pixel_values": None, "num_images": None, "image_sizes": None}
    proxy = _RowsOfEachChunk(model, fields, unwrapped.config.image_token_index)
    if args:
        args = (proxy, *args[1:])
    else:
        kwargs["model"] = proxy
    result = wrapped(*args, **kwargs)
    proxy.check_every_row_scored()
    return result

"""Which token ids stand for images and videos in a model's vocabulary, read per family from its config
and processor (Qwen-VL's ``<|image_pad|>`` and vision start/end, Gemma 3's ``<image_soft_token>`` and
``<start_of_image>``, mllama's ``<|image|>``, Idefics3's ``<image>``, ``<fake_token_around_image>``,
``<global-img>`` and ``<row_i_col_j>``, LLaVA-NeXT's ``<image>`` ...)."""

from __future__ import annotations

_VISION_WORDS = ("image", "video", "vision", "boi", "eoi")
_PROCESSOR_TOKEN_ATTRIBUTES = (
    "image_token",
    "video_token",
    "boi_token",
    "eoi_token",
    "vision_start_token",
    "vision_end_token",
    "fake_image_token",
    "global_image_token",
    "global_image_tag",  # Idefics3 / SmolVLM: <global-img>
    "start_image_token",
    "end_image_token",
)


def _config_token_ids(config) -> set[int]:
    ids = set()
    for key, value in config.to_dict().items():
        is_token_key = key.endswith(("_token_id", "_token_index"))
        if is_token_key and isinstance(value, int) and any(word in key for word in _VISION_WORDS):
            ids.add(value)
    return ids


def _processor_token_ids(processor) -> set[int]:
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        return set()
    ids = set()
    for attribute in _PROCESSOR_TOKEN_ATTRIBUTES:
        token = getattr(processor, attribute, None)
        if isinstance(token, str) and token:
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
                ids.add(token_id)
    for attribute in ("image_token_id", "video_token_id"):
        token_id = getattr(processor, attribute, None)
        if isinstance(token_id, int):
            ids.add(token_id)
    # Idefics3 / SmolVLM tile markers <row_i_col_j>, when the tokenizer has them.
    for token_id in getattr(processor, "row_col_ids", None) or []:
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return ids


def vision_token_ids(model_config, processor) -> list[int]:
    """Sorted ids the policy must never generate: image/video placeholders and vision markers."""
    ids = _config_token_ids(model_config) | _processor_token_ids(processor)
    vocab_size = model_config.get_text_config().vocab_size
    return sorted(token_id for token_id in ids if 0 <= token_id < vocab_size)


def trainer_vision_token_ids(trainer) -> list[int]:
    """The vision token ids for a GRPO trainer, or [] for a text-only trainer."""
    if not getattr(trainer, "_is_vlm", False):
        return []
    return vision_token_ids(trainer.model.config, trainer.processing_class)

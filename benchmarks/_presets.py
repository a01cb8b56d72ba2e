"""Benchmark models: random weights with the real shapes of Qwen2.5-VL-3B and Gemma-3-4B, built offline.

Importing this module imports neither ``unsloth`` nor ``unsloth_vlm_grpo`` (the builders do, lazily).
The processor is the family's real processor class with the tiny tokenizer of ``unsloth_vlm_grpo.tiny``
(about 320 tokens); the model's vocabulary is the real size (larger than the tokenizer: fine for random
weights). ``save_preset`` writes the model, its processor and ``bench_meta.json`` (parameter counts, the
vision token ids every configuration suppresses at generation) to a directory every configuration loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Preset:
    name: str
    family: str  # a family of unsloth_vlm_grpo.tiny
    image_size: int  # images are image_size x image_size; the processor keeps them that size
    real_shapes: bool  # False: the tiny test model of the family


PRESETS = {
    preset.name: preset
    for preset in (
        Preset("qwen2_5_vl_3b", "qwen2_5_vl", 448, True),  # 448x448 -> 32x32 patches -> 256 merged tokens
        Preset("gemma3_4b", "gemma3", 896, True),  # fixed 896x896 -> 256 image tokens
        Preset("tiny-qwen2_5_vl", "qwen2_5_vl", 56, False),
        Preset("tiny-gemma3", "gemma3", 56, False),
    )
}


def _qwen2_5_vl_3b():
    """Qwen2.5-VL-3B-Instruct's configuration (config.json of the released checkpoint), token ids remapped."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from unsloth_vlm_grpo import tiny

    processor = tiny.qwen_processor("qwen2_5_vl", PRESETS["qwen2_5_vl_3b"].image_size)
    token = processor.tokenizer.convert_tokens_to_ids
    text = dict(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        max_window_layers=70,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        bos_token_id=None,
        eos_token_id=token("<|im_end|>"),
        pad_token_id=token("<|endoftext|>"),
        tie_word_embeddings=True,
    )
    vision = dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=2048,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
        tokens_per_second=2,
        hidden_act="silu",
        in_channels=3,
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token("<|image_pad|>"),
        video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"),
        vision_end_token_id=token("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    return Qwen2_5_VLForConditionalGeneration, config, processor


def _gemma3_4b():
    """Gemma-3-4b-it's configuration (config.json of the released checkpoint), token ids remapped."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from unsloth_vlm_grpo import tiny

    processor = tiny.gemma3_processor(PRESETS["gemma3_4b"].image_size, mm_tokens_per_image=256)
    token = processor.tokenizer.convert_tokens_to_ids
    text = dict(
        vocab_size=262208,
        hidden_size=2560,
        intermediate_size=10240,
        num_hidden_layers=34,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        query_pre_attn_scalar=256,
        sliding_window=1024,
        max_position_embeddings=131072,
        bos_token_id=token("<bos>"),
        pad_token_id=token("<pad>"),
        eos_token_id=[token("<end_of_turn>"), token("<eos>")],
    )
    vision = dict(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=27,
        num_attention_heads=16,
        image_size=896,
        patch_size=14,
        vision_use_head=False,
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=256,
        boi_token_index=token("<start_of_image>"),
        eoi_token_index=token("<end_of_image>"),
        image_token_index=token("<image_soft_token>"),
        tie_word_embeddings=True,
    )
    return Gemma3ForConditionalGeneration, config, processor


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Total, vision-tower and rest parameter counts (tied weights counted once)."""
    total = vision = 0
    for name, parameter in model.named_parameters():
        total += parameter.numel()
        if "visual" in name or "vision_tower" in name:
            vision += parameter.numel()
    return {"total": total, "vision": vision, "language_and_rest": total - vision}


def build(preset: Preset, device: str | torch.device):
    """The random model (bf16, on ``device``; "meta" builds no weights) and its processor."""
    if not preset.real_shapes:
        from unsloth_vlm_grpo import tiny

        built = tiny.build_tiny_vlm(preset.family, image_size=preset.image_size)
        return built.model.to(device=device, dtype=torch.bfloat16), built.processor
    model_class, config, processor = _qwen2_5_vl_3b() if preset.family == "qwen2_5_vl" else _gemma3_4b()
    config.dtype = torch.bfloat16
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):  # random init directly on the GPU: seconds instead of minutes on CPU
            model = model_class(config)
    finally:
        torch.set_default_dtype(previous_dtype)
    if preset.family == "gemma3" and str(device) != "meta":
        # Gemma 3 zero-initialises this projection, which would cut the image path.
        with torch.no_grad():
            model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, 0.02)
    return model, processor


def save_preset(preset: Preset, directory: Path, device: str) -> dict:
    """Build ``preset`` on ``device`` and save model, processor and ``bench_meta.json`` to ``directory``."""
    from unsloth_vlm_grpo._vision_tokens import vision_token_ids

    torch.manual_seed(0)
    model, processor = build(preset, device)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    meta = {
        "preset": preset.name,
        "family": preset.family,
        "image_size": preset.image_size,
        "parameters": parameter_counts(model),
        "vocab_size": model.config.get_text_config().vocab_size,
        "tokenizer_size": len(processor.tokenizer),
        "suppress_tokens": vision_token_ids(model.config, processor),
    }
    (directory / "bench_meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def meta_parameter_counts(preset: Preset) -> dict[str, int]:
    """Parameter counts of ``preset`` built on the meta device (no memory, no weights)."""
    model, _ = build(preset, "meta")
    return parameter_counts(model)

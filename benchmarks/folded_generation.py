"""Decode speed of PEFT's unmerged LoRA against the LoRA-folded generation copy (``lora_folded_generation``).

    python benchmarks/folded_generation.py [--preset qwen2_5_vl_3b] [--sequences 8] [--tokens 64]

Builds the preset's random bf16 model on the GPU, adds LoRA r=8 on every linear layer of the language and vision
towers (B perturbed so the adapters matter), then times ``generate`` for the same batch through both paths, in
one process, side by side. Prints one JSON line: ms per decode step for each path, the copy's extra memory,
whether greedy tokens agree, and the first position where they differ (bf16 ties can flip a token).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch
from _presets import PRESETS, build
from peft import LoraConfig, get_peft_model

from unsloth_vlm_grpo.patches.lora_folded_generation import FoldedCopy
from unsloth_vlm_grpo.tiny import VISION_AND_LANGUAGE_LORA_TARGETS, solid_image

logger = logging.getLogger("benchmarks.folded_generation")


def _timed_generate(model, inputs, tokens: int, pad_token_id: int) -> tuple[float, torch.Tensor]:
    settings = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=pad_token_id)
    with torch.no_grad():
        model.generate(**inputs, **{**settings, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        output = model.generate(**inputs, **settings)
        torch.cuda.synchronize()
    return (time.perf_counter() - started) * 1000 / tokens, output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="qwen2_5_vl_3b", choices=sorted(PRESETS))
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    options = parser.parse_args()
    preset = PRESETS[options.preset]
    model, processor = build(preset, "cuda")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=VISION_AND_LANGUAGE_LORA_TARGETS))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.01)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = solid_image((200, 40, 40), preset.image_size)
    inputs = processor(images=[image] * options.sequences, text=[text] * options.sequences, return_tensors="pt")
    inputs = {k: v.to("cuda", torch.bfloat16 if v.is_floating_point() else v.dtype) for k, v in inputs.items()}
    pad = processor.tokenizer.pad_token_id
    unmerged_ms, unmerged = _timed_generate(model, inputs, options.tokens, pad)
    before = torch.cuda.memory_allocated()
    folded = FoldedCopy(model)
    copy_gib = (torch.cuda.memory_allocated() - before) / 2**30
    folded_ms, through_copy = _timed_generate(folded.model, inputs, options.tokens, pad)
    differs = (unmerged != through_copy).any(dim=0).nonzero()
    result = {
        "preset": preset.name,
        "sequences": options.sequences,
        "tokens": options.tokens,
        "adapted_layers": len(folded.pairs),
        "ms_per_decode_step_unmerged": round(unmerged_ms, 2),
        "ms_per_decode_step_folded": round(folded_ms, 2),
        "speedup": round(unmerged_ms / folded_ms, 2),
        "copy_extra_gib": round(copy_gib, 2),
        "greedy_tokens_equal": bool(differs.numel() == 0),
        "first_difference_at": int(differs[0]) if differs.numel() else None,
        "gpu": torch.cuda.get_device_name(0),
    }
    logger.info("%s", json.dumps(result))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()

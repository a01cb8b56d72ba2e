"""Decode speed of TRL's generation path against the fast-generation patches, side by side in one process.

    python benchmarks/fast_generation.py [--preset qwen2_5_vl_3b] [--shapes 8x128,64x256]

Builds the preset's random bf16 model on the GPU, adds LoRA r=8 on every linear layer of the language and vision
towers (B perturbed so the adapters matter), and for each shape (sequences x new tokens; 8 sequences share one
prompt and image, as GRPO's groups do) times greedy ``generate`` through:
  unmerged_dynamic        PEFT's unmerged LoRA, dynamic cache, no compile (what TRL runs)
  folded_dynamic          the LoRA-folded copy (``lora_folded_generation``), dynamic cache
  folded_static_compiled  the folded copy with the kept static cache and compiled decoding (``FAST_GENERATION``
                          but ``gemma3_decode_masks``)
  folded_static_compiled_gemma3_decode_masks  Gemma 3 only: the same, with a decode step's masks built without
                          the image overlay (all of ``FAST_GENERATION``); tokens and logits compared with the above
Per variant: ms per decode step (a warm call), the first call's seconds (compile included), graphs compiled
per call. For the fast path also: CUDA kernel time per decode step (profiler), graphs compiled over calls with
other prompt lengths, greedy agreement with the other paths (first differing position: bf16 ties can flip a
token) and the largest difference of first-token logits from the dynamic cache's. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch
from _presets import PRESETS, build
from peft import LoraConfig, get_peft_model
from transformers import GenerationConfig

from unsloth_vlm_grpo.patches.gemma3_decode_masks import decode_masks_without_image_overlay
from unsloth_vlm_grpo.patches.lora_folded_generation import FoldedCopy
from unsloth_vlm_grpo.patches.static_cache_generation import StaticCacheGeneration, _compiled_graphs
from unsloth_vlm_grpo.tiny import VISION_AND_LANGUAGE_LORA_TARGETS, solid_image

logger = logging.getLogger("benchmarks.fast_generation")
QUESTIONS = (
    "Describe the image.",
    "What colour is the square? Answer with one word.",
    "Describe the colour of this image please, then answer with one word.",
    "What colour is the square? The answer is a colour: red green blue yellow black white purple orange.",
    "You are a helpful assistant. Describe the image, the shape and the colour of this picture please.",
)


def _inputs(processor, preset, sequences: int, question: str) -> dict:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    groups = max(1, sequences // 8)
    images = [solid_image((200, 40 + 20 * g, 40), preset.image_size) for g in range(groups)]
    images = [image for image in images for _ in range(sequences // groups)]
    nested = preset.family in ("gemma3",)
    inputs = processor(
        images=[[image] for image in images] if nested else images, text=[text] * sequences, return_tensors="pt"
    )
    return {k: v.to("cuda", torch.bfloat16 if v.is_floating_point() else v.dtype) for k, v in inputs.items()}


def _config(tokens: int, pad: int) -> GenerationConfig:
    """TRL's settings for transformers generation (disable_compile=True), greedy and of fixed length."""
    return GenerationConfig(
        max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=pad, disable_compile=True,
        output_logits=True, return_dict_in_generate=True,
    )  # fmt: skip


def _timed(generate, inputs, config) -> tuple[float, object, int]:
    torch.cuda.synchronize()
    graphs, started = _compiled_graphs(), time.perf_counter()
    with torch.no_grad():
        output = generate(**inputs, generation_config=config)
    torch.cuda.synchronize()
    return time.perf_counter() - started, output, _compiled_graphs() - graphs


def _kernel_ms_per_step(generate, inputs, config, tokens: int) -> float:
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as trace:
        generate(**inputs, generation_config=config)
        torch.cuda.synchronize()
    kernel_us = sum(event.self_device_time_total for event in trace.key_averages())
    return kernel_us / 1000 / tokens


def first_difference(a: torch.Tensor, b: torch.Tensor):
    differs = (a != b).any(dim=0).nonzero()
    return int(differs[0]) if differs.numel() else None


def tie_at_first_difference(reference, other, prompt_tokens: int) -> dict | None:
    """At the first position where ``other`` picked another token: how far apart the two tokens' logits were
    in ``reference``, in units of bf16's spacing at the row's largest logit (a gap of about one spacing or less is
    a tie)."""
    position = first_difference(reference.sequences, other.sequences)
    if position is None:
        return None
    row = int((reference.sequences[:, position] != other.sequences[:, position]).nonzero()[0])
    logits = reference.logits[position - prompt_tokens][row].float()
    chosen, alternative = int(reference.sequences[row, position]), int(other.sequences[row, position])
    spacing = 2.0 ** (torch.floor(torch.log2(logits.abs().max())).item() - 7)
    gap = (logits[chosen] - logits[alternative]).item()
    return {"position": position - prompt_tokens, "logit": round(logits[chosen].item(), 3), "gap": round(gap, 4),
            "gap_in_bf16_spacings": round(gap / spacing, 2)}  # fmt: skip


def measure_shape(model, folded, processor, preset, sequences: int, tokens: int) -> dict:
    pad = processor.tokenizer.pad_token_id
    inputs = _inputs(processor, preset, sequences, QUESTIONS[0])
    config = _config(tokens, pad)
    fast = StaticCacheGeneration(model.config.get_text_config(decoder=True), compile=True)

    def fast_generate(**kwargs):
        return fast.generate(folded.model.generate, **kwargs)

    def fast_generate_without_overlay(**kwargs):
        with decode_masks_without_image_overlay(folded.model):
            return fast_generate(**kwargs)

    variants = {"unmerged_dynamic": model.generate, "folded_dynamic": folded.model.generate,
                "folded_static_compiled": fast_generate}  # fmt: skip
    if preset.family == "gemma3":
        variants["folded_static_compiled_gemma3_decode_masks"] = fast_generate_without_overlay
    result, outputs = {"sequences": sequences, "tokens": tokens, "prompt_tokens": inputs["input_ids"].shape[1]}, {}
    for name, generate in variants.items():
        first_seconds, _, first_graphs = _timed(generate, inputs, config)
        seconds, outputs[name], graphs = _timed(generate, inputs, config)
        result[name] = {
            "ms_per_decode_step": round(seconds * 1000 / tokens, 2),
            "completion_tokens_per_second": round(sequences * tokens / seconds, 1),
            "first_call_seconds": round(first_seconds, 1),
            "graphs_compiled": [first_graphs, graphs],
        }
        logger.info("%s %dx%d: %s", name, sequences, tokens, result[name])
    fast_result = result["folded_static_compiled"]
    fast_result["cache"] = f"{fast.batch_size}x{fast.cache_length}"
    fast_result["kernel_ms_per_decode_step"] = round(_kernel_ms_per_step(fast_generate, inputs, config, tokens), 2)
    prompt_lengths, sweep_graphs = [], []
    for question in QUESTIONS[1:]:
        other = _inputs(processor, preset, sequences, question)
        _, _, graphs = _timed(fast_generate, other, config)
        prompt_lengths.append(other["input_ids"].shape[1])
        sweep_graphs.append(graphs)
    fast_result["other_prompt_lengths"] = prompt_lengths
    fast_result["graphs_compiled_for_other_prompt_lengths"] = sweep_graphs
    fast_result["cache_after_sweep"] = f"{fast.batch_size}x{fast.cache_length}"
    prompt_tokens = result["prompt_tokens"]
    result["first_difference_fast_vs_folded_dynamic"] = tie_at_first_difference(
        outputs["folded_dynamic"], outputs["folded_static_compiled"], prompt_tokens
    )
    result["first_difference_folded_vs_unmerged_dynamic"] = tie_at_first_difference(
        outputs["unmerged_dynamic"], outputs["folded_dynamic"], prompt_tokens
    )
    first_logits = {name: output.logits[0].float() for name, output in outputs.items()}
    result["first_token_logits_max_abs_diff_fast_vs_folded_dynamic"] = round(
        (first_logits["folded_static_compiled"] - first_logits["folded_dynamic"]).abs().max().item(), 4
    )
    result["first_token_logits_max_abs_diff_folded_vs_unmerged"] = round(
        (first_logits["folded_dynamic"] - first_logits["unmerged_dynamic"]).abs().max().item(), 4
    )
    if "folded_static_compiled_gemma3_decode_masks" in outputs:
        without, with_overlay = outputs["folded_static_compiled_gemma3_decode_masks"], outputs["folded_static_compiled"]
        result["gemma3_decode_masks_vs_fast"] = {
            "same_tokens": torch.equal(without.sequences, with_overlay.sequences),
            "logits_max_abs_diff": (torch.stack(without.logits) - torch.stack(with_overlay.logits)).abs().max().item(),
        }
    result["speedup_fast_vs_unmerged_dynamic"] = round(
        result["unmerged_dynamic"]["ms_per_decode_step"] / fast_result["ms_per_decode_step"], 2
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="qwen2_5_vl_3b", choices=sorted(PRESETS))
    parser.add_argument("--shapes", default="8x128,64x256", help="sequences x new tokens, comma-separated")
    options = parser.parse_args()
    preset = PRESETS[options.preset]
    model, processor = build(preset, "cuda")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=VISION_AND_LANGUAGE_LORA_TARGETS))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.01)
    before = torch.cuda.memory_allocated()
    folded = FoldedCopy(model)
    result = {
        "preset": preset.name,
        "adapted_layers": len(folded.pairs),
        "copy_extra_gib": round((torch.cuda.memory_allocated() - before) / 2**30, 2),
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "shapes": [],
    }
    for shape in options.shapes.split(","):
        sequences, tokens = (int(part) for part in shape.split("x"))
        result["shapes"].append(measure_shape(model, folded, processor, preset, sequences, tokens))
        logger.info("%s", json.dumps(result["shapes"][-1]))
    result["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    logger.info("RESULT %s", json.dumps(result))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("unsloth_vlm_grpo").setLevel(logging.INFO)
    main()

"""Compiled static-cache decoding of a tiny VLM on the CPU: what runs per decode step, with and without Unsloth.

    python benchmarks/compiled_decode_cpu.py FAMILY [--unsloth [--scope off]] [--gemma3-decode-masks] [--graph-breaks]

Generates greedily through ``StaticCacheGeneration`` (``static_cache_generation``) with decoding compiled by
inductor (forced on the CPU with transformers' ``_compile_all_devices``). ``--unsloth`` first applies what
FastVisionModel's loading applies to a model type, ``unsloth_compile_transformers`` (Unsloth's compiled vision
blocks, MLPs, norms, attention and masks; FastVisionModel itself does not load on a CPU), and binds Unsloth's
``generate`` the way FastVisionModel binds it; ``--scope off`` then generates with the same cache and compile
arguments outside unsloth_zoo's ``unsloth_decode_compile`` scope. ``--gemma3-decode-masks`` generates inside
``gemma3_decode_masks``' block (a Gemma 3 decode step's masks without the image overlay). ``--graph-breaks`` logs
Dynamo's graph breaks (torch's ``graph_breaks`` log, switched on after ``import unsloth``, which turns torch's logs
off). Reports:
  image_sizes  graphs compiled by each generation over seven image sizes and aspect ratios (two rows each);
  per_token    over the difference between generations of 40 and 8 new tokens of the same prompts, divided by
               32: ms per decode step (best of three, unprofiled), Dynamo cache lookups and compiled-region calls
               (profiler).
Needs a C++ compiler (inductor on the CPU). Prints ``RESULT <json>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import types
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout; the tests' varied batches
logger = logging.getLogger("benchmarks.compiled_decode_cpu")
SIZES = ((56, 56), (84, 56), (56, 112), (140, 84), (112, 112), (168, 56), (84, 140))
SHORT, LONG = 8, 40


def _profiled_counts(generate) -> Counter:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as trace:
        generate()
    counts = Counter()
    for event in trace.key_averages():
        if event.key == "TorchDynamo Cache Lookup":
            counts["cache_lookups"] += event.count
        elif event.key.startswith("Torch-Compiled Region"):
            counts["compiled_region_calls"] += event.count
    return counts


def _best_seconds(generate, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        generate()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("family")
    parser.add_argument("--unsloth", action="store_true")
    parser.add_argument("--scope", choices=("on", "off"), default="on")
    parser.add_argument("--gemma3-decode-masks", action="store_true")
    parser.add_argument("--graph-breaks", action="store_true")
    options = parser.parse_args()
    if options.unsloth:
        os.environ["UNSLOTH_ALLOW_CPU"] = "1"
        os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", tempfile.mkdtemp(prefix="unsloth_compiled_cache_"))
        import unsloth  # noqa: F401  (before transformers, as Unsloth asks)
        from unsloth.models._utils import unsloth_compile_transformers

    import torch
    from transformers import GenerationConfig

    from unsloth_vlm_grpo.patches.gemma3_decode_masks import decode_masks_without_image_overlay
    from unsloth_vlm_grpo.patches.static_cache_generation import StaticCacheGeneration, _compiled_graphs
    from unsloth_vlm_grpo.tiny import build_tiny_vlm

    from grpo_helpers import VARIED_QUESTIONS, varied_batch

    torch.set_num_threads(1)  # per-step overhead, not the tiny model's arithmetic
    if options.graph_breaks:
        torch._logging.set_logs(graph_breaks=True)
    if options.unsloth:  # the tiny families' model types are their names
        unsloth_compile_transformers(
            dtype=torch.float32, model_name="tiny", model_types=[options.family], fast_residual_stream=False
        )
    tiny = build_tiny_vlm(options.family)
    model = tiny.model.eval()
    if options.unsloth:
        from unsloth.models.vision import unsloth_base_fast_generate

        model._old_generate = model.generate
        model.generate = types.MethodType(unsloth_base_fast_generate, model)
    generation = StaticCacheGeneration(model.config.get_text_config(decoder=True), compile=True)
    generation.compile_config._compile_all_devices = True  # transformers' switch for compiling off CUDA

    def generate(inputs, new_tokens: int):
        config = GenerationConfig(
            max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, disable_compile=True,
            pad_token_id=tiny.processor.tokenizer.pad_token_id,
        )  # fmt: skip
        masks = decode_masks_without_image_overlay(model) if options.gemma3_decode_masks else contextlib.nullcontext()
        with torch.no_grad(), masks:
            if not options.unsloth or options.scope == "on":
                return generation.generate(model.generate, **inputs, generation_config=config)
            cache = generation._cache_for(inputs["input_ids"].shape[0], inputs["input_ids"].shape[1] + new_tokens)
            settings = dict(past_key_values=cache, cache_implementation=None, disable_compile=False,
                            compile_config=generation.compile_config)  # fmt: skip
            return model.generate(**inputs, **settings, generation_config=config)

    result = {
        "family": options.family,
        "unsloth": options.unsloth,
        "scope": options.scope,
        "gemma3_decode_masks": options.gemma3_decode_masks,
    }
    result["image_sizes"] = []
    for size in SIZES:
        inputs = varied_batch(tiny.processor, options.family, [VARIED_QUESTIONS[0]] * 2, [size, size])
        graphs, started = _compiled_graphs(), time.perf_counter()
        generate(inputs, 6)
        result["image_sizes"].append(
            {
                "size": size,
                "prompt_tokens": inputs["input_ids"].shape[1],
                "graphs": _compiled_graphs() - graphs,
                "seconds": round(time.perf_counter() - started, 1),
            }  # fmt: skip
        )
        logger.info("%s", result["image_sizes"][-1])
    inputs = varied_batch(tiny.processor, options.family, VARIED_QUESTIONS[:2], SIZES[:2])
    generate(inputs, LONG)  # compiles what these prompts need
    seconds = {n: _best_seconds(lambda n=n: generate(inputs, n)) for n in (SHORT, LONG)}
    counts = {n: _profiled_counts(lambda n=n: generate(inputs, n)) for n in (SHORT, LONG)}
    steps = LONG - SHORT
    result["per_token"] = {
        "ms": round(1000 * (seconds[LONG] - seconds[SHORT]) / steps, 2),
        **{key: (counts[LONG][key] - counts[SHORT][key]) / steps for key in ("cache_lookups", "compiled_region_calls")},
    }
    result["torch"] = torch.__version__
    logger.info("RESULT %s", json.dumps(result))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    main()

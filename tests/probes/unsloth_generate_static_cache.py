"""Probe (CPU): the kept static cache through Unsloth's real FastVisionModel ``generate``.

Usage: unsloth_generate_static_cache.py FAMILY. FastVisionModel cannot load on a CPU, so Unsloth's
``unsloth_base_fast_generate`` is bound to a tiny transformers model the way FastVisionModel binds it (the
original ``generate`` kept as ``_old_generate``). Two batches of prompts of different lengths and image sizes are
generated greedily through Unsloth's ``generate`` alone and through ``StaticCacheGeneration`` (compile asked for)
in front of it. Unsloth's ``generate`` rewrites the generation config's cache and compile fields and runs in
inference mode; transformers' own compile decision (``_valid_auto_compile_criteria``, which on a CPU says no)
records the settings that reached it.
Prints ``RESULT <json>``."""

import json
import os
import sys
import types
from pathlib import Path

os.environ["UNSLOTH_ALLOW_CPU"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helpers
family = sys.argv[1]

import torch  # noqa: E402
import unsloth  # noqa: E402,F401
from transformers import GenerationConfig  # noqa: E402
from unsloth.models.vision import unsloth_base_fast_generate  # noqa: E402

from unsloth_vlm_grpo.patches.static_cache_generation import StaticCacheGeneration  # noqa: E402
from unsloth_vlm_grpo.tiny import build_tiny_vlm  # noqa: E402

from grpo_helpers import VARIED_QUESTIONS, VARIED_SIZES, varied_batch  # noqa: E402

tiny = build_tiny_vlm(family)
model = tiny.model
model._old_generate = model.generate
model.generate = types.MethodType(unsloth_base_fast_generate, model)


def trl_like_config():
    # TRL's settings (disable_compile=True); a new object per call, since Unsloth's generate rewrites it.
    return GenerationConfig(
        max_new_tokens=8, do_sample=False, pad_token_id=tiny.processor.tokenizer.pad_token_id, disable_compile=True,
        output_logits=True, return_dict_in_generate=True,
    )  # fmt: skip


generation = StaticCacheGeneration(model.config.get_text_config(decoder=True), compile=True)
criteria = model._valid_auto_compile_criteria
reached = []


def recording_criteria(model_kwargs, generation_config):
    reached.append(
        {
            "kept_cache": model_kwargs.get("past_key_values") is generation.cache,
            "disable_compile": generation_config.disable_compile,
            "our_compile_config": generation_config.compile_config is generation.compile_config,
        }
    )
    return criteria(model_kwargs, generation_config)


calls = []
for questions, sizes in ((VARIED_QUESTIONS[:2], VARIED_SIZES[:2]), (VARIED_QUESTIONS[2:], VARIED_SIZES[2:])):
    inputs = varied_batch(tiny.processor, family, questions, sizes)
    alone = model.generate(**inputs, generation_config=trl_like_config())
    model._valid_auto_compile_criteria = recording_criteria
    kept = generation.generate(model.generate, **inputs, generation_config=trl_like_config())
    del model._valid_auto_compile_criteria
    calls.append(
        {
            "prompt_tokens": inputs["input_ids"].shape[1],
            "same_tokens": torch.equal(alone.sequences, kept.sequences),
            "logits_max_abs_diff": float((torch.stack(alone.logits) - torch.stack(kept.logits)).abs().max()),
            "cache_address": generation.cache.layers[0].keys.data_ptr(),
            "cache_holds_inference_tensors": generation.cache.layers[0].keys.is_inference(),
        }
    )
print(
    "RESULT " + json.dumps({"calls": calls, "reached_transformers": reached, "cache_length": generation.cache_length})
)

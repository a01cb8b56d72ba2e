"""Generate with one static KV cache kept across steps, and let transformers compile its decode step.

Target: ``GRPOTrainer._generate_single_turn`` on TRL's class (trl 1.15.0) and Unsloth's generated class
(unsloth 2026.10.9), transformers generation on a CUDA device (not vLLM, continuous batching, FSDP or DeepSpeed).
On CPU it acts only where the user asked for ``GRPOConfig(cache_implementation="static")``, without compiling.
Why: TRL builds its generation config with ``disable_compile=True`` (huggingface/trl#3773) and a dynamic
cache, so every decode step runs eagerly; with ``cache_implementation="static"`` transformers allocates a new
cache on every ``generate`` call, and Unsloth's FastVisionModel ``generate`` forces such a per-call static cache
with compile disabled. H200, Qwen2.5-VL-3B shapes, 8 sequences: 70-103 ms per decode step with PEFT's unmerged
LoRA and a dynamic cache, 20.6 ms unmerged with a static cache and compile, 11-13 ms with LoRA folded in as well
(``lora_folded_generation``), measured 2026-12-02. Here each trainer keeps one ``StaticCache`` (stable
addresses, reset before each call) whose length is a power of two of at least 256 tokens covering prompt +
``max_new_tokens``: a run compiles a bounded, logged number of graphs whatever prompt lengths arrive. A batch of
another size than the cache's (a last partial batch) generates with a dynamic cache instead, so it sets off no
recompile. The cache and compile settings go to ``generate`` as explicit arguments, which transformers applies
after the generation config: Unsloth's ``generate`` rewrites the config's cache and compile fields on every call
(watched below), and explicit arguments survive that (transformers then logs once that passing both a config and
generation arguments is deprecated). Unsloth's generated forwards switch Dynamo's stance unless a compiled decode
is scoped by unsloth_zoo's ``unsloth_decode_compile`` (watched below; without it compiling them raises "attempted
to set_stance in a torch.compile region"), so a compiled generation runs in that scope when unsloth_zoo is loaded,
as Unsloth's own compiled decoding does; the scope covers the eager prefill too, where Unsloth's compiled vision
blocks may compile a new image size and its compiled ``create_causal_mask`` a new variant, such as a prefill on
the initialised kept cache in the second call (seen in a CPU reproduction; counted in the metric below).
Sampling is untouched: every other field of the trainer's generation config is as TRL set it. Compiled graphs
per generation are logged as the metric ``generation/compiled_graphs``. Mllama keeps today's path (no static
cache support in transformers 5.17).
Remove when: TRL generates with a persistent static cache and compiled decoding (not the case as of
trl 1.15.0, transformers 5.17).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

import torch

from .._engine import FunctionTarget, GRPOTrainerMethod, Patch
from .._generation import generate_replaced, generating_model, kept_for_model, other_generation_path

logger = logging.getLogger("unsloth_vlm_grpo")
GENERATION_KEY = "_unsloth_vlm_grpo_static_cache"
SHORTEST_CACHE = 256
STEPS_ASIDE_FOR = {"mllama": "transformers 5.17 has no static cache for Mllama's cross-attention layers"}


def cache_length_for(tokens: int) -> int:
    """The cache length that holds ``tokens``: a power of two, at least ``SHORTEST_CACHE``."""
    length = SHORTEST_CACHE
    while length < tokens:
        length *= 2
    return length


def _unsloth_decode_compile_scope():
    utils = sys.modules.get("unsloth_zoo.temporary_patches.utils")
    scope = getattr(utils, "unsloth_decode_compile", None)
    return scope() if scope is not None else contextlib.nullcontext()


def _compiled_graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


class StaticCacheGeneration:
    """One trainer's static cache, and the ``generate`` calls that use it."""

    def __init__(self, text_config, compile: bool):
        from transformers import CompileConfig

        self.text_config = text_config
        self.compile = compile
        self.compile_config = CompileConfig() if compile else None  # one object: a new one would recompile
        self.cache = None
        self.cache_length = 0  # what it was made for (sliding-window layers hold less)
        self.batch_size = None
        self.said_other_batch_sizes: set[int] = set()
        self.calls = 0
        self.compiled_graphs = 0  # during the latest call

    def _cache_for(self, batch_size: int, tokens: int):
        if self.batch_size is None:
            self.batch_size = batch_size
        if batch_size != self.batch_size:
            if batch_size not in self.said_other_batch_sizes:
                self.said_other_batch_sizes.add(batch_size)
                logger.info(
                    "unsloth_vlm_grpo: a generation batch of %d rows (the static cache holds %d) generates with a "
                    "dynamic cache, so that it compiles nothing",
                    batch_size,
                    self.batch_size,
                )
            return None
        length = cache_length_for(tokens)
        if self.cache is None or self.cache_length < length:
            from transformers import StaticCache

            self.cache = None  # free the shorter one first
            self.cache = StaticCache(config=self.text_config, max_cache_len=length)
            self.cache_length = length
            logger.info(
                "unsloth_vlm_grpo: static KV cache of %d x %d tokens%s",
                batch_size,
                length,
                "; compiling its decode step (the first generation takes 1-2 minutes longer on an H200)"
                if self.compile
                else "",
            )
        with torch.inference_mode():  # Unsloth generates in inference mode: its cache tensors are inference tensors
            self.cache.reset()
        return self.cache

    def generate(self, generate, **kwargs):
        """``generate(**kwargs)`` with the kept cache, or as given for a batch of another size."""
        config = kwargs.get("generation_config")
        input_ids = kwargs.get("input_ids")
        self.compiled_graphs = 0
        if config is None or input_ids is None or "past_key_values" in kwargs:
            return generate(**kwargs)
        tokens = config.max_length if config.max_new_tokens is None else input_ids.shape[1] + config.max_new_tokens
        cache = self._cache_for(input_ids.shape[0], tokens)
        if cache is None:
            return generate(**kwargs)
        settings = {
            "past_key_values": cache,
            "cache_implementation": None,  # the cache is given: transformers refuses both
            "disable_compile": not self.compile,
            "compile_config": self.compile_config,
        }
        graphs_before, started = _compiled_graphs(), time.perf_counter()
        with _unsloth_decode_compile_scope() if self.compile else contextlib.nullcontext():
            output = generate(**{**kwargs, **settings})
        self.calls += 1
        self.compiled_graphs = _compiled_graphs() - graphs_before
        if self.compiled_graphs:
            logger.info(
                "unsloth_vlm_grpo: generation %d compiled %d graph(s) in a call of %.1f s",
                self.calls,
                self.compiled_graphs,
                time.perf_counter() - started,
            )
        return output


def _steps_aside(trainer, model) -> str | None:
    """Why this trainer keeps today's generation path, or None."""
    flag = other_generation_path(trainer)
    if flag:
        return f"{flag} is set"
    model_type = getattr(model.config, "model_type", None)
    if model_type in STEPS_ASIDE_FOR:
        return STEPS_ASIDE_FOR[model_type]
    if model.device.type != "cuda" and trainer.args.cache_implementation != "static":
        return f"decoding is compiled on CUDA only (the model is on {model.device.type})"
    if getattr(model, "hf_quantizer", None) is not None or getattr(model, "is_loaded_in_4bit", False):
        return "transformers does not compile quantised models' decoding"
    return None


def _build_generation(trainer, model) -> StaticCacheGeneration | None:
    reason = _steps_aside(trainer, model)
    if reason is not None:
        logger.info("unsloth_vlm_grpo: generating with TRL's cache settings: %s", reason)
        return None
    return StaticCacheGeneration(model.config.get_text_config(decoder=True), model.device.type == "cuda")


def _generate_with_static_cache(wrapped, trainer, args, kwargs):
    model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
    generate = model.generate
    generating = generating_model(model)  # lora_folded_generation's copy, when it generates: the model to cache for
    generation = kept_for_model(trainer, GENERATION_KEY, generating, lambda: _build_generation(trainer, generating))
    if generation is None:
        return wrapped(*args, **kwargs)
    with generate_replaced(model, lambda **generate_kwargs: generation.generate(generate, **generate_kwargs)):
        result = wrapped(*args, **kwargs)
    trainer._metrics["train" if trainer.model.training else "eval"]["generation/compiled_graphs"].append(
        float(generation.compiled_graphs)
    )
    return result


PATCH = Patch(
    name="static_cache_generation",
    targets=(GRPOTrainerMethod("_generate_single_turn"),),
    wrapper=_generate_with_static_cache,
    verified={"trl": "1.15.0", "transformers": "5.17.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._generate_single_turn": "53f746335e1db41f",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._generate_single_turn": "01050f9caae43331",
        "unsloth.models.vision.unsloth_base_fast_generate": "ef62ce0d33574ec5",
        "unsloth_zoo.temporary_patches.utils.unsloth_decode_compile": "56392a79134ea87d",
    },
    watches=(
        FunctionTarget("unsloth.models.vision", "unsloth_base_fast_generate"),
        FunctionTarget("unsloth_zoo.temporary_patches.utils", "unsloth_decode_compile"),
    ),
    reason="TRL decodes eagerly with a dynamic cache; transformers allocates a new static cache per call.",
    remove_when="TRL generates with a persistent static cache and compiled decoding.",
    opt_in=True,
)

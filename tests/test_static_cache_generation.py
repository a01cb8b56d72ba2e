"""Opt-in patch static_cache_generation: one static KV cache per trainer, kept across generation calls and
sized in powers of two. On CPU (no compile) it must give exactly the dynamic cache's tokens and logits, for every
family that takes it, with prompts of different lengths and images of different sizes in one batch."""

import logging

import pytest
import torch

from unsloth_vlm_grpo.patches.static_cache_generation import (
    GENERATION_KEY,
    StaticCacheGeneration,
    cache_length_for,
)
from unsloth_vlm_grpo.tiny import favour_token

from conftest import ROOT, run_probe
from grpo_helpers import (
    FIVE_QUESTIONS,
    VARIED_QUESTIONS,
    VARIED_SIZES,
    recording_prompt_lengths,
    saved_and_loaded,
    train_recording_completions,
    varied_batch,
)

STATIC = ("static_cache_generation",)
FAST_PATH_FAMILIES = ["qwen2_vl", "qwen2_5_vl", "gemma3", "qwen3_vl", "idefics3", "llava_next"]


@pytest.mark.parametrize("family", FAST_PATH_FAMILIES)
def test_kept_static_cache_gives_the_dynamic_caches_tokens_and_logits(family, tiny_factory, tmp_path):
    model, processor = saved_and_loaded(tiny_factory(family), tmp_path)  # as users load them
    generation = StaticCacheGeneration(model.config.get_text_config(decoder=True), compile=False)
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=10, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id,
        output_logits=True, return_dict_in_generate=True,
    )  # fmt: skip
    batches = [  # the second batch is longer: same cache, other prompt lengths
        varied_batch(processor, family, VARIED_QUESTIONS[:2], VARIED_SIZES[:2]),
        varied_batch(processor, family, VARIED_QUESTIONS[2:], VARIED_SIZES[2:]),
    ]
    addresses = set()
    with torch.no_grad():
        for inputs in batches:
            dynamic = model.generate(**inputs, generation_config=config)
            static = generation.generate(model.generate, **inputs, generation_config=config)
            assert torch.equal(dynamic.sequences, static.sequences)
            torch.testing.assert_close(torch.stack(static.logits), torch.stack(dynamic.logits), rtol=1e-5, atol=1e-5)
            addresses.add(generation.cache.layers[0].keys.data_ptr())
    assert generation.cache_length == 256 and len(addresses) == 1, "one cache, kept across calls"


def _compiling_on_cpu(generation: StaticCacheGeneration) -> StaticCacheGeneration:
    from transformers import CompileConfig

    generation.compile = True
    generation.compile_config = CompileConfig(backend="eager")
    generation.compile_config._compile_all_devices = True  # transformers' switch for compiling off CUDA
    return generation


@pytest.mark.parametrize("family", FAST_PATH_FAMILIES)
def test_one_compiled_decode_serves_five_prompt_lengths(family, tiny_factory, tmp_path):
    """Compiled decoding (Dynamo with its eager backend, so that a CPU needs no C++ compiler; Dynamo's guards
    decide recompiles whatever the backend): the first call compiles, the next four, with prompts of
    four other lengths in the same cache, compile nothing (Gemma 3: once, see below) and give the dynamic
    cache's greedy tokens."""
    from transformers import GenerationConfig

    model, processor = saved_and_loaded(tiny_factory(family), tmp_path)
    generation = _compiling_on_cpu(StaticCacheGeneration(model.config.get_text_config(decoder=True), compile=True))
    config = GenerationConfig(max_new_tokens=6, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    batches = [  # two rows each: the shortest question beside a longer one, images of two sizes
        varied_batch(processor, family, [question, FIVE_QUESTIONS[0]], [VARIED_SIZES[i % 4], VARIED_SIZES[(i + 1) % 4]])
        for i, question in enumerate(FIVE_QUESTIONS)
    ]
    assert len({batch["input_ids"].shape[1] for batch in batches}) == 5
    torch._dynamo.reset()
    graphs = []
    with torch.no_grad():
        for inputs in batches:
            dynamic = model.generate(**inputs, generation_config=config)
            compiled = generation.generate(model.generate, **inputs, generation_config=config)
            graphs.append(generation.compiled_graphs)
            assert torch.equal(compiled, dynamic)
    # Gemma 3's sliding-window cache layers branch on being full: the first generation that passes the window
    # compiles that branch once (transformers' StaticSlidingWindowLayer.update).
    window = getattr(model.config.get_text_config(decoder=True), "sliding_window", None)
    past_window = [window is not None and batch["input_ids"].shape[1] + 6 > window for batch in batches]
    first_past_window = past_window.index(True) if any(past_window) else None
    assert graphs[0] > 0, graphs
    assert graphs[1:] == [int(call == first_past_window) for call in range(1, 5)], (graphs, past_window)
    assert generation.cache_length == 256


def test_gemma3_static_cache_keeps_the_bidirectional_image_mask(tiny_factory):
    """The check above can fail for Gemma 3: its image tokens attend to each other both ways, and without
    that mask (token_type_ids) the logits change."""
    tiny = tiny_factory("gemma3")
    inputs = varied_batch(tiny.processor, "gemma3", VARIED_QUESTIONS[:2], VARIED_SIZES[:2])
    without_mask = {key: value for key, value in inputs.items() if key != "token_type_ids"}
    with torch.no_grad():
        assert (tiny.model(**inputs).logits - tiny.model(**without_mask).logits).abs().max() > 1e-2


def test_cache_lengths_are_powers_of_two_and_other_batch_sizes_compile_nothing(tiny_factory, caplog):
    assert [cache_length_for(tokens) for tokens in (1, 256, 257, 700, 1025)] == [256, 256, 512, 1024, 2048]
    tiny = tiny_factory("qwen2_5_vl")
    generation = StaticCacheGeneration(tiny.model.config.get_text_config(decoder=True), compile=False)
    from transformers import GenerationConfig

    pad = tiny.processor.tokenizer.pad_token_id
    caches = []
    with torch.no_grad(), caplog.at_level(logging.INFO, logger="unsloth_vlm_grpo"):
        for new_tokens in (8, 300, 8):
            inputs = varied_batch(tiny.processor, "qwen2_5_vl", VARIED_QUESTIONS[:2], VARIED_SIZES[:2])
            config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                      pad_token_id=pad)  # fmt: skip
            generation.generate(tiny.model.generate, **inputs, generation_config=config)
            caches.append((generation.cache, generation.cache_length))
        partial = varied_batch(tiny.processor, "qwen2_5_vl", VARIED_QUESTIONS[:1], VARIED_SIZES[:1])
        output = generation.generate(tiny.model.generate, **partial, generation_config=config)
    assert [length for _, length in caches] == [256, 512, 512], "grows, never shrinks"
    assert caches[1][0] is caches[2][0]
    assert output.shape[0] == 1 and generation.cache is caches[2][0]
    assert "a generation batch of 1 rows (the static cache holds 2) generates with a dynamic cache" in caplog.text


def _train(tiny_factory, tmp_path, include, family="qwen2_5_vl", **overrides):
    settings = dict(max_steps=3, per_device_train_batch_size=8, num_generations=2, max_completion_length=12)
    return train_recording_completions(tiny_factory, tmp_path, include, family, **{**settings, **overrides})


def test_training_with_the_kept_cache_samples_and_trains_exactly_as_with_a_dynamic_cache(tiny_factory, tmp_path):
    """Sampling at temperature 1 with top-k/top-p and a repetition penalty, prompts of different lengths: the
    same completions at every step and bit-identical weights, with folded LoRA stacked on top as well."""
    sampling = dict(temperature=1.0, top_k=20, top_p=0.95, repetition_penalty=1.1)
    _, plain_weights, plain_completions = _train(tiny_factory, tmp_path / "plain", (), **sampling)
    trainer, static_weights, static_completions = _train(
        tiny_factory, tmp_path / "static", STATIC + ("lora_folded_generation",), cache_implementation="static",
        **sampling,
    )  # fmt: skip
    assert len(plain_completions) == 3
    assert trainer.__dict__[GENERATION_KEY][1].calls == 3, "every step generated through the kept cache"
    from unsloth_vlm_grpo.patches.lora_folded_generation import FOLDED_COPY_KEY

    assert trainer.__dict__[GENERATION_KEY][0] is trainer.__dict__[FOLDED_COPY_KEY][1].model, "kept for the copy"
    assert static_completions == plain_completions
    assert torch.equal(static_weights, plain_weights)
    logged = [entry["generation/compiled_graphs"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged == [0.0, 0.0, 0.0], "no compile on CPU, and the metric is logged every step"


SAMPLING_SETTINGS = {
    "min_p": dict(temperature=0.7, top_k=0, min_p=0.1),
    "generation_kwargs": dict(generation_kwargs={"typical_p": 0.9, "min_new_tokens": 4}),
    "temperature_1": dict(temperature=1.0),
}


@pytest.mark.parametrize("setting", SAMPLING_SETTINGS)
def test_sampling_settings_and_early_eos_give_the_same_completions(setting, tiny_factory, tmp_path):
    """Both fast-generation patches leave TRL's sampling alone: min-p, the user's ``generation_kwargs``, and
    completions that end early with EOS at different lengths (the tiny model favours EOS), so that finished rows
    are padded while others go on."""

    def train(directory, include, **extra):
        tiny = tiny_factory("qwen2_5_vl")
        favour_token(tiny.model, tiny.processor, tiny.processor.tokenizer.eos_token_id, margin=5.0)
        return _train(tiny_factory, directory, include, model=tiny.model, **SAMPLING_SETTINGS[setting], **extra)

    _, plain_weights, plain_completions = train(tmp_path / "plain", ())
    trainer, fast_weights, fast_completions = train(
        tmp_path / "fast", STATIC + ("lora_folded_generation",), cache_implementation="static"
    )
    assert trainer.__dict__[GENERATION_KEY][1].calls == 3, "every step generated through the kept cache"
    assert fast_completions == plain_completions
    assert torch.equal(fast_weights, plain_weights)
    completions = [ids for step in plain_completions for ids in step]
    lengths = [len(ids) for ids in completions]
    assert min(lengths) < 12 and max(lengths) == 12, lengths
    if setting == "generation_kwargs":  # they reached generation
        assert min(lengths) >= 4, lengths


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava_next"])
def test_compiled_decoding_in_trls_trainer_compiles_in_the_first_step_only(family, tiny_factory, tmp_path, monkeypatch):
    """TRL's trainer with both fast-generation patches and gradient checkpointing (TRL turns it off for each
    generation and on again), compiled decoding forced on CPU with Dynamo's eager backend: the first step
    compiles, the next four compile nothing (the five batches have three prompt lengths). When generation ran the
    trained model (before 2026-12-07), a guard on its embedding's forward hooks, which that toggling changes,
    recompiled in the second step."""
    build, generate = StaticCacheGeneration.__init__, StaticCacheGeneration.generate
    prompt_lengths = []

    def build_compiling_on_cpu(self, text_config, compile):
        build(self, text_config, compile)
        _compiling_on_cpu(self)

    monkeypatch.setattr(StaticCacheGeneration, "__init__", build_compiling_on_cpu)
    monkeypatch.setattr(StaticCacheGeneration, "generate", recording_prompt_lengths(generate, prompt_lengths))
    torch._dynamo.reset()
    trainer, _, completions = _train(
        tiny_factory, tmp_path, STATIC + ("lora_folded_generation",), family=family, cache_implementation="static",
        max_steps=5, gradient_checkpointing=True,
    )  # fmt: skip
    assert len(completions) == 5 and trainer.__dict__[GENERATION_KEY][1].calls == 5
    assert len(set(prompt_lengths)) >= 3, prompt_lengths
    logged = [entry["generation/compiled_graphs"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged[0] > 0 and logged[1:] == [0.0, 0.0, 0.0, 0.0], logged


def test_several_iterations_per_generation_train_exactly_as_with_a_dynamic_cache(tiny_factory, tmp_path):
    """``num_iterations=2``: each generation is reused for a second optimizer step, whose importance ratio
    compares the generation-time policy (old log-probs) with the updated one; the fast path changes none of it."""
    settings = dict(num_iterations=2, max_steps=4)
    _, plain_weights, plain_completions = _train(tiny_factory, tmp_path / "plain", (), **settings)
    trainer, fast_weights, fast_completions = _train(
        tiny_factory, tmp_path / "fast", STATIC + ("lora_folded_generation",), cache_implementation="static", **settings
    )
    assert len(plain_completions) == 2, "two generations for four steps"
    assert fast_completions == plain_completions
    assert torch.equal(fast_weights, plain_weights)
    assert trainer.__dict__[GENERATION_KEY][1].calls == 2


def test_steps_aside_with_one_log_line(tiny_factory, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="unsloth_vlm_grpo"):
        _train(tiny_factory, tmp_path / "cpu", STATIC, max_steps=2)
        _train(tiny_factory, tmp_path / "mllama", STATIC, family="mllama", max_steps=1)
    reasons = [record.getMessage() for record in caplog.records if "with TRL's cache settings" in record.getMessage()]
    assert reasons == [
        "unsloth_vlm_grpo: generating with TRL's cache settings: decoding is compiled on CUDA only (the model is on "
        "cpu)",
        "unsloth_vlm_grpo: generating with TRL's cache settings: transformers 5.17 has no static cache for Mllama's "
        "cross-attention layers",
    ]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "gemma3"])
def test_the_kept_cache_survives_unsloths_generate(family, tmp_path):
    """Through Unsloth's real FastVisionModel ``generate`` (which rewrites the config's cache and compile fields
    and runs in inference mode): the same tokens and logits as Unsloth's generate alone, one cache kept over two
    calls with prompts of other lengths, and transformers' compile decision sees the kept cache and our compile
    settings. Before the settings went as explicit arguments transformers refused the call
    (a cache passed and ``cache_implementation`` set), and resetting a cache of inference tensors outside
    inference mode raised."""
    result = run_probe([str(ROOT / "tests" / "probes" / "unsloth_generate_static_cache.py"), family], tmp_path)
    calls = result["calls"]
    assert len(calls) == 2 and calls[0]["prompt_tokens"] != calls[1]["prompt_tokens"]
    assert all(call["same_tokens"] and call["logits_max_abs_diff"] <= 1e-5 for call in calls), calls
    assert calls[0]["cache_address"] == calls[1]["cache_address"] and calls[1]["cache_holds_inference_tensors"]
    expected = {"kept_cache": True, "disable_compile": False, "our_compile_config": True}
    assert result["reached_transformers"] == [expected, expected], "Unsloth's rewrite did not win"

"""Opt-in patch gemma3_decode_masks: with a static cache, Gemma 3's decode steps get their masks without the
image-block overlay. Generation must be exactly what it was, through sliding-window and full-attention layers and
past the sliding window, with the overlay still built for every prefill; in TRL's trainer it must reach the model
that generates (``lora_folded_generation``'s copy). (That the overlay matters in a prefill is
test_static_cache_generation.py's test_gemma3_static_cache_keeps_the_bidirectional_image_mask.)"""

import copy

import pytest
import torch

from unsloth_vlm_grpo.patches.gemma3_decode_masks import decode_masks_without_image_overlay
from unsloth_vlm_grpo.patches.static_cache_generation import StaticCacheGeneration

from grpo_helpers import VARIED_QUESTIONS, VARIED_SIZES, train_recording_completions, varied_batch

FAST = ("static_cache_generation", "lora_folded_generation")


@pytest.fixture
def overlays(monkeypatch):
    """The query length of every mask built with Gemma 3's image overlay."""
    from transformers.models.gemma3 import modeling_gemma3

    built = []
    build_overlay = modeling_gemma3.create_masks_for_vision_model

    def counting(**kwargs):
        built.append(kwargs["inputs_embeds"].shape[1])
        return build_overlay(**kwargs)

    monkeypatch.setattr(modeling_gemma3, "create_masks_for_vision_model", counting)
    return built


def _gemma3_with_a_full_attention_layer(tiny, directory):
    """The tiny Gemma 3 (two sliding-window layers) with its second layer a full-attention one, as every sixth is
    in the released models, saved and loaded back as users load theirs."""
    from transformers import AutoModelForImageTextToText, Gemma3ForConditionalGeneration

    config = copy.deepcopy(tiny.model.config)
    config.text_config.layer_types = ["sliding_attention", "full_attention"]
    torch.manual_seed(0)
    Gemma3ForConditionalGeneration(config).save_pretrained(directory)
    return AutoModelForImageTextToText.from_pretrained(directory).eval()


def _generate(model, processor, new_tokens: int) -> list:
    from transformers import GenerationConfig

    generation = StaticCacheGeneration(model.config.get_text_config(decoder=True), compile=False)
    config = GenerationConfig(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, output_logits=True,
        return_dict_in_generate=True, pad_token_id=processor.tokenizer.pad_token_id,
    )  # fmt: skip
    batches = [  # prompts of different lengths, images of different sizes; the second batch's are longer
        varied_batch(processor, "gemma3", VARIED_QUESTIONS[:2], VARIED_SIZES[:2]),
        varied_batch(processor, "gemma3", VARIED_QUESTIONS[2:], VARIED_SIZES[2:]),
    ]
    with torch.no_grad():
        return [generation.generate(model.generate, **inputs, generation_config=config) for inputs in batches]


@pytest.mark.parametrize("layers", ["sliding", "sliding_and_full"])
def test_decode_steps_skip_the_image_overlay_and_generate_the_same(layers, tiny_factory, tmp_path, overlays):
    tiny = tiny_factory("gemma3")
    model = tiny.model if layers == "sliding" else _gemma3_with_a_full_attention_layer(tiny, tmp_path)
    new_tokens = model.config.get_text_config().sliding_window + 8  # past the sliding window
    overlays.clear()  # building the tiny model ran forwards
    with_overlay = _generate(model, tiny.processor, new_tokens)
    overlays_at_every_step, overlays[:] = list(overlays), []
    with decode_masks_without_image_overlay(model):
        without = _generate(model, tiny.processor, new_tokens)
    assert "create_masks_for_generate" not in vars(model), "put back after the block"
    assert overlays_at_every_step.count(1) == 2 * (new_tokens - 1), "unpatched: at every decode step"
    assert overlays == [length for length in overlays_at_every_step if length > 1], "patched: in prefills only"
    assert min(overlays) > 1
    for output, reference in zip(without, with_overlay, strict=True):
        assert torch.equal(output.sequences, reference.sequences)
        assert torch.equal(torch.stack(output.logits), torch.stack(reference.logits))


def test_trls_trainer_samples_and_trains_exactly_as_without(tiny_factory, tmp_path, overlays):
    """TRL's trainer with a static cache and the LoRA-folded copy, sampling, prompts of different lengths: the same
    completions at every step and bit-identical weights with the patch, which builds the overlay only in the one
    prefill of each generation."""
    settings = dict(family="gemma3", cache_implementation="static", max_steps=3, per_device_train_batch_size=8,
                    num_generations=2, max_completion_length=12)  # fmt: skip
    _, weights, completions = train_recording_completions(tiny_factory, tmp_path / "without", FAST, **settings)
    overlays_at_every_step, overlays[:] = list(overlays), []
    _, patched_weights, patched_completions = train_recording_completions(
        tiny_factory, tmp_path / "with", (*FAST, "gemma3_decode_masks"), **settings
    )
    assert len(completions) == 3 and patched_completions == completions
    assert torch.equal(patched_weights, weights)
    assert overlays == [length for length in overlays_at_every_step if length > 1], "prefills only"
    assert min(overlays) > 1 and overlays_at_every_step.count(1) >= 3 * 6, "without it, at every decode step"

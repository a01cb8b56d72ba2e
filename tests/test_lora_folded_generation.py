"""Opt-in patch lora_folded_generation: TRL's generation runs through a copy of the model with LoRA folded into
its weights. Same tokens as PEFT's unmerged path, the trained weights never written, the copy refreshed after
every optimizer step."""

from contextlib import contextmanager

import pytest
import torch
from peft import get_peft_model

import unsloth_vlm_grpo
from unsloth_vlm_grpo.patches.lora_folded_generation import FoldedCopy
from unsloth_vlm_grpo.tiny import FAMILIES, single_image_inputs

from grpo_helpers import VISION_AND_LANGUAGE_LORA, train_recording_completions

FOLDING = ("lora_folded_generation",)


def _with_perturbed_lora(model):
    """``model`` with LoRA on vision and language layers; LoRA's B starts at zero: give the adapters a delta."""
    model = get_peft_model(model, VISION_AND_LANGUAGE_LORA)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    return model


def _peft_model(tiny_factory, family):
    tiny = tiny_factory(family)
    return _with_perturbed_lora(tiny.model), tiny.processor


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_through_the_folded_copy_is_token_for_token_the_same(family, tiny_factory):
    model, processor = _peft_model(tiny_factory, family)
    inputs = single_image_inputs(processor, (200, 40, 40), "What colour is the square?")
    settings = dict(max_new_tokens=12, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    with torch.no_grad():
        unmerged = model.generate(**inputs, **settings)
        folded = FoldedCopy(model)
        through_copy = folded.model.generate(**inputs, **settings)
    assert torch.equal(unmerged, through_copy)
    assert len(folded.pairs) >= 16, "language and vision LoRA layers are folded"


def test_refresh_follows_the_trained_weights_in_place(tiny_factory):
    model, processor = _peft_model(tiny_factory, "qwen2_5_vl")
    folded = FoldedCopy(model)
    addresses = [linear.weight.data_ptr() for _, linear in folded.pairs]
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_A" in name:
                parameter.add_(0.1)
    folded.refresh()
    assert [linear.weight.data_ptr() for _, linear in folded.pairs] == addresses
    for layer, linear in folded.pairs:
        expected = layer.base_layer.weight + layer.get_delta_weight(layer.active_adapters[0])
        torch.testing.assert_close(linear.weight, expected, rtol=0, atol=0)
    shared = {parameter.data_ptr() for parameter in model.get_base_model().parameters()}
    assert all(parameter.data_ptr() in shared for name, parameter in folded.model.named_parameters()
               if not any(parameter is linear.weight for _, linear in folded.pairs))  # fmt: skip


def _train(tiny_factory, tmp_path, include) -> tuple[torch.Tensor, list]:
    settings = dict(max_steps=4, per_device_train_batch_size=8, num_generations=2)
    _, weights, completions = train_recording_completions(tiny_factory, tmp_path, include, **settings)
    return weights, completions


def test_training_with_folding_samples_and_trains_exactly_as_without(tiny_factory, tmp_path):
    """Same seed, same sampled completions at every step, bit-identical trained weights: folding changes how
    generation is computed, not what is sampled or trained. (Before the copy dropped TRL's instance ``forward`` and
    its layers' gradient checkpointing, this held only because the copy was never used.)"""
    plain_weights, plain_completions = _train(tiny_factory, tmp_path / "plain", ())
    folded_weights, folded_completions = _train(tiny_factory, tmp_path / "folded", FOLDING)
    assert len(plain_completions) == 4
    assert folded_completions == plain_completions
    assert torch.equal(folded_weights, plain_weights)


@pytest.mark.parametrize("bits", [32, 4])
def test_every_generation_uses_the_current_weights_and_writes_none(bits, tiny_factory, tmp_path, monkeypatch):
    """Over 4 sampled GRPO steps: at each generation the copy holds exactly base + delta of the weights being
    trained (to rounding; a stale copy would be off by a learning-rate step), and generating leaves every trained
    tensor bit-identical. In 4 bits (QLoRA, LoRA added by TRL) the base is the dequantised weight, and the 4-bit
    weights stay bit-identical too."""
    from unsloth_vlm_grpo.patches import lora_folded_generation

    checks = []
    generate_replaced = lora_folded_generation.generate_replaced

    @contextmanager
    def checking(peft_model, generate):
        copy, layers = generate.__self__, lora_folded_generation._lora_layers(peft_model.get_base_model())
        with torch.no_grad():
            folded = {name: copy.get_submodule(name).weight for name in layers}
            current = {
                name: lora_folded_generation._base_weight(layer.base_layer) + layer.get_delta_weight("default")
                for name, layer in layers.items()
            }
            gap = max(float((folded[name] - current[name]).abs().max()) for name in layers)
        before = {name: p.detach().clone() for name, p in peft_model.named_parameters()}
        with generate_replaced(peft_model, generate):
            yield
        checks.append((gap, all(torch.equal(before[name], p) for name, p in peft_model.named_parameters())))

    monkeypatch.setattr(lora_folded_generation, "generate_replaced", checking)
    settings = dict(max_steps=4, per_device_train_batch_size=8, num_generations=2)
    model = _4bit_model(tiny_factory("qwen2_5_vl"), tmp_path / "model") if bits == 4 else None
    before = None if model is None else {n: t.clone() for n, t in model.state_dict().items() if t.dtype == torch.uint8}
    trainer, _, completions = train_recording_completions(tiny_factory, tmp_path, FOLDING, model=model, **settings)
    if bits == 4:
        folded = trainer.__dict__[lora_folded_generation.FOLDED_COPY_KEY][1]
        assert folded is not None and not any(
            type(m).__module__.startswith("bitsandbytes") for m in folded.model.modules()
        )
        base_state = trainer.model.get_base_model().state_dict()
        after = {n.replace(".base_layer", ""): t for n, t in base_state.items() if t.dtype == torch.uint8}
        assert len(after) == len(before) >= 16 and all(torch.equal(before[n], t) for n, t in after.items())
    assert len(checks) == len(completions) == 4
    assert all(gap <= 1e-6 and unchanged for gap, unchanged in checks), checks  # stale: ~lr
    assert any(bool((p != 0).any()) for n, p in trainer.model.named_parameters() if "lora_B" in n), "trained"


@pytest.mark.parametrize("family", ["qwen2_5_vl", "gemma3"])
def test_the_trainers_generation_runs_on_the_folded_weights(family, tiny_factory, tmp_path):
    """Inside TRL's trainer the copy computes with its own folded weights, not through the trained model: TRL
    replaces the trained model's ``forward`` with a closure over it, which a plain deep copy would keep. Changing
    the trained adapters without a refresh changes the trained model's logits and leaves the copy's alone."""
    from unsloth_vlm_grpo.patches.lora_folded_generation import FOLDED_COPY_KEY

    trainer, _, _ = train_recording_completions(tiny_factory, tmp_path, FOLDING, family, max_steps=1)
    folded = trainer.__dict__[FOLDED_COPY_KEY][1]
    assert folded is not None and "forward" in vars(trainer.model.get_base_model()), "TRL patched forward"
    inputs = single_image_inputs(trainer.processing_class, (200, 40, 40), "What colour is the square?")
    trainer.model.eval()
    with torch.no_grad():
        copy_before, trained_before = folded.model(**inputs).logits, trainer.model(**inputs).logits
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.5)
        copy_after, trained_after = folded.model(**inputs).logits, trainer.model(**inputs).logits
    assert (trained_after - trained_before).abs().max() > 1e-3
    assert torch.equal(copy_after, copy_before)


def test_is_opt_in_and_reported(tmp_path):
    report = unsloth_vlm_grpo.patch()
    try:
        assert [entry.patch for entry in report.opt_in] == list(unsloth_vlm_grpo.FAST_GENERATION)
        assert not set(unsloth_vlm_grpo.FAST_GENERATION) & {entry.patch for entry in report.applied + report.excluded}
    finally:
        unsloth_vlm_grpo.unpatch()


def _4bit_model(tiny, directory, dtype=torch.float32):
    """The tiny VLM saved and loaded back in bitsandbytes 4-bit, as QLoRA users load theirs (transformers' default
    compute dtype, float32)."""
    from transformers import AutoModelForImageTextToText, BitsAndBytesConfig

    tiny.model.save_pretrained(directory)
    quantisation = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    return AutoModelForImageTextToText.from_pretrained(
        directory, quantization_config=quantisation, dtype=dtype, device_map={"": "cpu"}
    )


def _qlora_model(tiny_factory, family, directory, dtype=torch.float32):
    """``_4bit_model`` with LoRA on vision and language layers, B perturbed."""
    tiny = tiny_factory(family)
    return _with_perturbed_lora(_4bit_model(tiny, directory, dtype)), tiny.processor


@pytest.mark.parametrize("family", ["qwen2_5_vl", "gemma3"])
def test_a_4bit_model_generates_through_a_dequantised_copy(family, tiny_factory, tmp_path):
    """QLoRA: every 4-bit layer of the copy becomes a plain linear layer (adapted ones hold dequantised base +
    delta), so the copy is no quantised model; greedy tokens are PEFT's over bitsandbytes, and nothing trained or
    quantised is written."""
    import bitsandbytes

    model, processor = _qlora_model(tiny_factory, family, tmp_path)
    assert model.get_base_model().hf_quantizer is not None
    quantised = [n for n, m in model.named_modules() if isinstance(m, bitsandbytes.nn.Linear4bit)]
    assert len(quantised) >= 16
    inputs = single_image_inputs(processor, (200, 40, 40), "What colour is the square?")
    settings = dict(max_new_tokens=12, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    before = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    with torch.no_grad():
        unmerged = model.generate(**inputs, **settings, output_logits=True, return_dict_in_generate=True)
        folded = FoldedCopy(model)
        through_copy = folded.model.generate(**inputs, **settings, output_logits=True, return_dict_in_generate=True)
    assert not any(type(m).__module__.startswith("bitsandbytes") for m in folded.model.modules())
    assert folded.model.hf_quantizer is None and model.get_base_model().hf_quantizer is not None
    folded_4bit = [layer for layer, _ in folded.pairs if isinstance(layer.base_layer, bitsandbytes.nn.Linear4bit)]
    assert len(folded_4bit) + len(folded.rest) == len(quantised)
    assert torch.equal(unmerged.sequences, through_copy.sequences)
    torch.testing.assert_close(torch.stack(through_copy.logits), torch.stack(unmerged.logits), rtol=1e-4, atol=1e-4)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_the_dequantised_copy_keeps_its_dtype_when_bitsandbytes_casts_the_trained_bias(tiny_factory, tmp_path):
    """A model loaded in bf16 computes its 4-bit layers in float32 (transformers' default compute dtype), and
    bitsandbytes casts each such layer's bias to float32 in place at its first forward. The bf16 copy must keep
    bf16 biases of its own (Qwen's q/k/v projections have biases), or its next generation fails."""
    model, processor = _qlora_model(tiny_factory, "qwen2_5_vl", tmp_path, dtype=torch.bfloat16)
    folded = FoldedCopy(model)
    biased = [(layer, linear) for layer, linear in folded.pairs if linear.bias is not None]
    assert biased and {linear.bias.dtype for _, linear in biased} == {torch.bfloat16}
    inputs = single_image_inputs(processor, (200, 40, 40), "What colour is the square?")
    inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
    settings = dict(max_new_tokens=4, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    with torch.no_grad():
        model(**inputs)
        assert {layer.base_layer.bias.dtype for layer, _ in biased} == {torch.float32}, "bitsandbytes cast them"
        folded.refresh()
        generated = folded.model.generate(**inputs, **settings)
    assert {linear.bias.dtype for _, linear in biased} == {torch.bfloat16}
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 4


@pytest.mark.parametrize("precision", ["fp32", "4bit_bf16", "4bit_kbit_prepared"])
def test_the_copys_size_is_known_before_it_is_made(precision, tiny_factory, tmp_path):
    """The memory check below sizes the copy before making it: the same bytes as the copy made, on the model's
    device. In 4 bits every 4-bit layer is dequantised, adapted or not, to the unquantised weights' dtype: bf16 for a
    model loaded in bf16, float32 after peft's kbit preparation (twice the bytes)."""
    from peft import prepare_model_for_kbit_training

    from unsloth_vlm_grpo.patches.lora_folded_generation import copy_bytes_by_device

    if precision == "fp32":
        model, _ = _peft_model(tiny_factory, "qwen2_5_vl")
    else:
        model = _4bit_model(tiny_factory("qwen2_5_vl"), tmp_path, dtype=torch.bfloat16)
        if precision == "4bit_kbit_prepared":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = _with_perturbed_lora(model)
    base = model.get_base_model()
    estimate = copy_bytes_by_device(base, base.dtype)
    folded = FoldedCopy(model)
    assert estimate == {torch.device("cpu"): folded.extra_bytes}
    own = [*folded.rest, *(linear for _, linear in folded.pairs)]
    expected_dtype = {"fp32": torch.float32, "4bit_bf16": torch.bfloat16, "4bit_kbit_prepared": torch.float32}
    assert {linear.weight.dtype for linear in own} == {expected_dtype[precision]}
    assert (len(folded.rest) > 0) == (precision != "fp32")


@pytest.mark.parametrize("spare", [-1, 0])
def test_no_copy_where_it_would_take_more_than_half_the_memory_not_in_use(
    spare, tiny_factory, tmp_path, monkeypatch, caplog
):
    """With the memory not in use on the model's device made just below (spare -1) or exactly (spare 0) twice the
    copy's size, TRL's trainer generates through PEFT's path with one log line saying why, before any copying, or
    through the copy. The memory is asked of CUDA on a GPU; here, on the CPU, the test states it."""
    import copy
    import logging
    from types import SimpleNamespace

    from unsloth_vlm_grpo.patches import lora_folded_generation

    needed, copies = {}, []

    def sizing(base, dtype):
        needed.update(copy_bytes(base, dtype))
        return needed

    def copying(*args, **kwargs):
        copies.append(type(args[0]).__name__)
        return copy.deepcopy(*args, **kwargs)

    copy_bytes = lora_folded_generation.copy_bytes_by_device
    monkeypatch.setattr(lora_folded_generation, "copy_bytes_by_device", sizing)
    monkeypatch.setattr(lora_folded_generation, "available_bytes", lambda device: 2 * needed[device] + spare)
    monkeypatch.setattr(lora_folded_generation, "copy", SimpleNamespace(deepcopy=copying))
    with caplog.at_level(logging.INFO, logger="unsloth_vlm_grpo"):
        trainer, _, completions = train_recording_completions(tiny_factory, tmp_path, FOLDING, max_steps=1)
    folded = trainer.__dict__[lora_folded_generation.FOLDED_COPY_KEY][1]
    ((device, size),) = needed.items()
    assert len(completions) == 1 and size > 0
    lines = [record.getMessage() for record in caplog.records if "generating through" in record.getMessage()]
    if spare < 0:
        assert folded is None and copies == [], "sized before copying anything"
        assert lines == [
            f"unsloth_vlm_grpo: generating through PEFT's unmerged LoRA: the copy would take {size / 2**30:.2f} GiB "
            f"of {device}, more than half of its {(2 * size - 1) / 2**30:.2f} GiB not in use"
        ]
    else:
        assert folded is not None and copies and len(lines) == 1 and "a LoRA-folded copy" in lines[0]

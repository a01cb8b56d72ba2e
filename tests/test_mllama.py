"""Llama 3.2 Vision (mllama) through the patched stock trl.GRPOTrainer, on a tiny model built offline.

Mllama is a cross-attention VLM: one ``<|image|>`` token per image, ``aspect_ratio_ids``/``aspect_ratio_mask``
for the tiles and a ``cross_attention_mask`` saying which tokens see which images. TRL 1.15 forwards none of
them to its scoring forwards, and the processor's mask ignores TRL's left padding."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from trl import GRPOTrainer

import unsloth_vlm_grpo
from unsloth_vlm_grpo.patches.mllama._fields import cross_attention_mask_from_ids, tiles_of
from unsloth_vlm_grpo.tiny import favour_token, solid_image

from conftest import ROOT, run_probe
from grpo_helpers import (
    COLOURS,
    VISION_AND_LANGUAGE_LORA,
    colour_dataset,
    distinct_characters_reward,
    grpo_config,
    logged_losses,
    weights_of,
)


@pytest.fixture
def tiny(tiny_factory):
    return tiny_factory("mllama")  # asserts that logits depend on the image


def _prompt(images: int, question: str = "What colour is it?"):
    return [{"role": "user", "content": [*([{"type": "image"}] * images), {"type": "text", "text": question}]}]


def multi_image_dataset(rows: int = 8) -> Dataset:
    """Rows with one and with two images, so prompt lengths differ and TRL left-pads the shorter ones."""
    names = list(COLOURS)
    records = []
    for index in range(rows):
        count = 1 + index % 2
        images = [solid_image(COLOURS[names[(index + k) % len(names)]]) for k in range(count)]
        question = "Which colours?" if count == 2 else "What colour is the square in this picture, please?"
        records.append({"prompt": _prompt(count, question), "images": images, "answer": names[index % 4]})
    return Dataset.from_list(records)


def _trainer(tiny, output_dir, dataset=None, peft_config=None, **config):
    return GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(output_dir, **config),
        train_dataset=dataset or colour_dataset(),
        peft_config=peft_config,
    )


def test_grpo_run_moves_the_weights(patched, tiny, tmp_path):
    before = weights_of(tiny.model)
    trainer = _trainer(tiny, tmp_path)
    trainer.train()
    assert len(logged_losses(trainer)) == 2
    assert not torch.equal(before, weights_of(tiny.model))


def test_reference_forward_with_lora_and_beta(patched, tiny, tmp_path):
    """beta > 0 adds the reference forward (the adapter disabled), which TRL calls with the processor's
    mllama fields as keywords: "unexpected keyword argument 'cross_attention_mask'" without the patch."""
    trainer = _trainer(tiny, tmp_path, peft_config=VISION_AND_LANGUAGE_LORA, beta=0.04)
    before = weights_of(trainer.model)
    trainer.train()
    assert len(logged_losses(trainer)) == 2
    assert not torch.equal(before, weights_of(trainer.model))


@pytest.mark.upstream
def test_unpatched_loss_forward_lacks_the_aspect_ratio_ids(tiny, tmp_path):
    """The control: TRL 1.15 alone (with only the CPU log-prob fallback) cannot score an mllama batch."""
    unsloth_vlm_grpo.patch(exclude=("mllama_cross_attention_mask", "mllama_scoring_fields", "mllama_loss_fields"))
    try:
        trainer = _trainer(tiny, tmp_path, max_steps=1)
        with pytest.raises(ValueError, match="aspect_ratio_ids` must be provided"):
            trainer.train()
    finally:
        unsloth_vlm_grpo.unpatch()


def test_multi_image_rows_of_different_lengths_train(patched, tiny, tmp_path):
    trainer = _trainer(
        tiny,
        tmp_path,
        dataset=multi_image_dataset(),
        max_steps=3,
        num_iterations=2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
    )
    trainer.train()
    assert len(logged_losses(trainer)) == 3


def test_placeholder_pressure_for_10_steps(patched, tiny, tmp_path):
    image_token = tiny.model.config.image_token_index
    favour_token(tiny.model, tiny.processor, image_token)
    inputs = tiny.processor(
        images=[solid_image((0, 0, 255))],
        text=[tiny.processor.apply_chat_template([_prompt(1, "Hi")], add_generation_prompt=True)[0]],
        return_tensors="pt",
    )
    with torch.no_grad():
        assert tiny.model(**inputs).logits[0, -1].argmax().item() == image_token  # the pressure is real
    trainer = _trainer(tiny, tmp_path, max_steps=10)
    trainer.train()
    assert len(logged_losses(trainer)) == 10
    neutralised = [entry["vision_tokens/neutralised"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(neutralised) == 0  # suppressed at generation, not just neutralised afterwards


@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
def test_every_vision_lora_matrix_gets_a_gradient(patched, tiny, tmp_path, reentrant):
    trainer = _trainer(
        tiny,
        tmp_path,
        peft_config=VISION_AND_LANGUAGE_LORA,
        max_steps=3,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": reentrant},
    )
    with unsloth_vlm_grpo.record_vision_gradients(trainer.model) as gradients:
        trainer.train()
    assert len(gradients.norms) >= 20
    assert gradients.missing == []


def _left_padded_batch(tiny, last_rgb=(0, 255, 0)):
    """A long one-image prompt and a shorter two-image prompt, whose mask the processor lays out unpadded
    (its last image's range then stops short of the padded row's end) and left-padded."""
    processor = tiny.processor
    texts = [
        processor.apply_chat_template(
            [_prompt(1, "What colour is the square in this picture?")], add_generation_prompt=True
        )[0],
        processor.apply_chat_template([_prompt(2, "Hi")], add_generation_prompt=True)[0],
    ]
    images = [[solid_image((255, 0, 0))], [solid_image((0, 0, 255)), solid_image(last_rgb)]]
    unpadded = processor(images=images, text=texts, return_tensors="pt", padding=True)
    processor.tokenizer.padding_side = "left"
    padded = processor(images=images, text=texts, return_tensors="pt", padding=True)
    processor.tokenizer.padding_side = "right"
    return unpadded, padded


def test_rebuilt_mask_matches_the_processor_and_extends_over_the_completion(tiny):
    unpadded, padded = _left_padded_batch(tiny)
    image_token = tiny.model.config.image_token_index
    # TRL's generation call: no padding, so the processor's mask is laid out for unpadded rows.
    rebuilt = cross_attention_mask_from_ids(
        padded["input_ids"], tiles_of(unpadded["cross_attention_mask"]), image_token
    )
    assert torch.equal(rebuilt, padded["cross_attention_mask"])
    assert not torch.equal(unpadded["cross_attention_mask"], padded["cross_attention_mask"])  # the bug it fixes
    completion = torch.full((2, 5), 9)
    extended = cross_attention_mask_from_ids(
        torch.cat([padded["input_ids"], completion], 1), tiles_of(rebuilt), image_token
    )
    last_prompt = extended[:, padded["input_ids"].size(1) - 1]
    for position in range(padded["input_ids"].size(1), extended.size(1)):
        assert torch.equal(extended[:, position], last_prompt)  # completion sees what the last prompt token saw
    # Consecutive image tokens form one group: the short row's completion sees both of its images.
    assert extended[0, -1, 0].sum() > 0 and extended[1, -1, 0].sum() > 0 and extended[1, -1, 1].sum() > 0


def test_generation_with_left_padding_matches_a_full_forward(patched, tiny):
    """Greedy generation over a left-padded batch gives, at every generated position, the logits of one
    forward over prompt+completion: the incremental mask (generation) and the scoring mask agree. As in
    TRL's generation call, the ids are left-padded but the processor's mask is laid out unpadded."""
    unpadded, padded = _left_padded_batch(tiny)
    model = tiny.model
    generation_inputs = {**padded, "cross_attention_mask": unpadded["cross_attention_mask"]}
    prompt = padded["input_ids"]
    with torch.no_grad():
        out = model.generate(
            **generation_inputs,
            max_new_tokens=4,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tiny.processor.tokenizer.pad_token_id,
        )
        full = out.sequences
        mask = torch.cat([padded["attention_mask"], torch.ones_like(full[:, prompt.size(1) :])], 1)
        logits = model(
            input_ids=full,
            attention_mask=mask,
            pixel_values=padded["pixel_values"],
            aspect_ratio_ids=padded["aspect_ratio_ids"],
            aspect_ratio_mask=padded["aspect_ratio_mask"],
            cross_attention_mask=unpadded["cross_attention_mask"],
        ).logits
    for step, scores in enumerate(out.scores):
        torch.testing.assert_close(scores, logits[:, prompt.size(1) - 1 + step], atol=1e-4, rtol=1e-4)


def _first_scores(tiny, mask_layout):
    unpadded, padded = _left_padded_batch(tiny)
    # TRL's generation inputs are left-padded ids with the mask of the processor's unpadded call.
    mask = {"unpadded": unpadded, "padded": padded}[mask_layout]["cross_attention_mask"]
    with torch.no_grad():
        out = tiny.model.generate(
            **{**padded, "cross_attention_mask": mask},
            max_new_tokens=1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tiny.processor.tokenizer.pad_token_id,
        )
    return out.scores[0]


@pytest.mark.upstream
def test_unpatched_generation_misreads_the_processor_mask(tiny):
    """The control: unpatched, the processor's unpadded mask shifts the shorter row's image range, whose last
    prompt token (so its whole completion) then attends to no image: its logits differ from those with a
    mask laid out for the left-padded ids. The longest row (no padding) is unaffected."""
    unsloth_vlm_grpo.unpatch()
    misread, aligned = _first_scores(tiny, "unpadded"), _first_scores(tiny, "padded")
    torch.testing.assert_close(misread[0], aligned[0])
    assert not torch.allclose(misread[1], aligned[1], atol=1e-4)


def test_patched_generation_aligns_the_processor_mask(patched, tiny):
    torch.testing.assert_close(_first_scores(tiny, "unpadded"), _first_scores(tiny, "padded"))


SCORING_PROBE = str(ROOT / "tests" / "probes" / "unsloth_mllama_scoring.py")
SCORES = ("logps_difference_chunks_of_1", "logps_difference_chunks_of_2", "logps_difference_chunks_of_4")


def test_unsloths_generated_trainer_scores_mllama_like_transformers(tmp_path):
    """Unsloth's generated class, for real (its scoring and loss through unsloth_zoo's vision code), against plain
    transformers one row at a time, in float64: rows with one and two images, left-padded, in chunks of 1, 2 and
    4 rows (a chunk of 2 holds 3 images: unsloth_zoo's own chunker would slice mllama's per-sample pixel values by
    image there). The completion log-probs agree to Unsloth's float32 log-softmax, the vision gradient of the
    GRPO loss to 1e-3, and swapping the images changes the log-probs (the image path is live)."""
    result = run_probe([SCORING_PROBE, "patched"], tmp_path)
    assert result["trainer_class"] == "UnslothGRPOTrainer.UnslothGRPOTrainer"
    for name in SCORES:
        assert isinstance(result[name], float) and result[name] < 1e-5, (name, result[name])
    assert result["logps_change_when_images_swap"] > 1e-2
    assert result["loss_vision_gradient_relative_difference"] < 1e-3, result
    assert result["vision_gradient_norm"] > 0.1 * result["reference_vision_gradient_norm"]


@pytest.mark.upstream
def test_unpatched_unsloth_trainer_drops_mllamas_image_fields(tmp_path):
    """The control, as measured on an H200 with unsloth 2026.10.9: without the library, unsloth_zoo's scoring
    never passes aspect_ratio_ids to the model."""
    result = run_probe([SCORING_PROBE, "unpatched"], tmp_path)
    for name in (*SCORES, "loss_vision_gradient_relative_difference"):
        assert result[name] == "ValueError: `aspect_ratio_ids` must be provided if `pixel_values` is provided"


@pytest.mark.parametrize(("family", "dataset"), [("mllama", "map"), ("mllama", "streaming"), ("qwen2_5_vl", "map")])
def test_unsloths_generated_trainer_starts_training_mllama(family, dataset, tmp_path):
    """Through ``train()`` on Unsloth's generated class, mllama gets past the dataset checks and the first batch
    like any family, to Unsloth's own ``for_training``, which a model not loaded by FastVisionModel lacks (that is
    as far as a CPU goes; tests/gpu/test_unsloth_gpu.py trains it)."""
    probe = str(ROOT / "tests" / "probes" / "unsloth_cpu_trainer_start.py")
    result = run_probe([probe, family, dataset], tmp_path)
    assert result["trainer_class"] == "UnslothGRPOTrainer.UnslothGRPOTrainer"
    model_class = "MllamaForConditionalGeneration" if family == "mllama" else "Qwen2_5_VLForConditionalGeneration"
    assert (result["error_type"], result["error"]) == (
        "AttributeError",
        f"'{model_class}' object has no attribute 'for_training'",
    )


def test_a_subclass_of_trls_trainer_trains_mllama(patched, tiny, tmp_path):
    """A user's subclass of TRL's trainer that overrides the scoring method (here to count its calls) still
    trains mllama on images: the patches follow the method to TRL's class."""
    calls = []

    class CountingGRPOTrainer(GRPOTrainer):
        def _get_per_token_logps_and_entropies(self, *args, **kwargs):
            calls.append(1)
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)

    trainer = CountingGRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path, max_steps=1),
        train_dataset=colour_dataset(),
    )
    trainer.train()
    assert len(logged_losses(trainer)) == 1 and calls


def _mixed_conversations():
    """A text-only row longer than every image row, an image row, a short text-only row, a two-image row."""
    red, green, blue = (solid_image(COLOURS[name]) for name in ("red", "green", "blue"))
    contents = [
        [{"type": "text", "text": "Tell me, in a few words, what a colour is and why the sky looks blue?"}],
        [{"type": "image", "image": red}, {"type": "text", "text": "What colour?"}],
        [{"type": "text", "text": "Hi"}],
        [{"type": "image", "image": green}, {"type": "image", "image": blue}, {"type": "text", "text": "Which two?"}],
    ]
    return [[{"role": "user", "content": content}] for content in contents]


def _alone(processor, conversation, **kwargs):
    return processor.apply_chat_template(
        conversation=[conversation],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        **kwargs,
    )


PADDINGS = {
    "unpadded": {},  # as TRL's apply_chat_template call for generation
    "left": {"padding": True, "padding_side": "left", "return_tensors": "pt"},  # as its scoring call
    "right": {"padding": True, "padding_side": "right", "return_tensors": "pt"},
    "numpy, padding in text_kwargs": {"text_kwargs": {"padding": True, "padding_side": "left"}, "return_tensors": "np"},
}


@pytest.mark.parametrize("padding", PADDINGS)
def test_processor_batches_rows_without_images_with_image_rows(patched, tiny, padding):
    """Each row of a mixed batch gets what the processor gives it alone (its ids and mask in the batch's padding;
    a text-only row: no image to attend to, the image inputs of a missing image)."""
    processor, conversations = tiny.processor, _mixed_conversations()
    batch = processor.apply_chat_template(
        conversation=conversations, add_generation_prompt=True, tokenize=True, return_dict=True, **PADDINGS[padding]
    )
    length = max(len(ids) for ids in batch["input_ids"])
    for row, conversation in enumerate(conversations):
        alone = _alone(processor, conversation)
        ids = torch.as_tensor(batch["input_ids"][row])
        mask = torch.as_tensor(batch["cross_attention_mask"][row])
        start = length - alone["input_ids"].shape[1] if padding in ("left", "numpy, padding in text_kwargs") else 0
        torch.testing.assert_close(ids[start : start + alone["input_ids"].shape[1]], alone["input_ids"][0])
        assert torch.as_tensor(batch["attention_mask"][row]).sum() == alone["input_ids"].shape[1]
        assert mask.shape[0] == length and not mask[:start].any()
        if "pixel_values" in alone:
            images = alone["pixel_values"].shape[1]
            torch.testing.assert_close(
                mask[start : start + alone["input_ids"].shape[1], :images],
                torch.as_tensor(alone["cross_attention_mask"][0]),
            )
            torch.testing.assert_close(torch.as_tensor(batch["pixel_values"][row, :images]), alone["pixel_values"][0])
            torch.testing.assert_close(
                torch.as_tensor(batch["aspect_ratio_ids"][row, :images]), alone["aspect_ratio_ids"][0]
            )
        else:
            assert not mask.any() and not batch["pixel_values"][row].any() and not batch["aspect_ratio_ids"][row].any()
            assert batch["aspect_ratio_mask"][row].tolist() == [[1, 0], [1, 0]]
        if padding == "right":  # (the processor's own mask runs on over right padding: the ids say where it ends)
            assert ids[alone["input_ids"].shape[1] :].eq(processor.tokenizer.pad_token_id).all()


def test_processor_calls_it_cannot_merge_get_the_processors_own_answer(patched, tiny):
    """Single images not in per-row lists, and arrays, reach the processor as before; a mixed batch asking for
    outputs the merge does not know (token type ids) gets the processor's own refusal rather than a partial merge."""
    processor, conversations = tiny.processor, _mixed_conversations()
    text = processor.apply_chat_template(conversations[1], add_generation_prompt=True)
    red = solid_image(COLOURS["red"])
    single = processor(images=red, text=[text], return_tensors="pt")
    array = processor(images=[np.asarray(red)], text=[text], return_tensors="pt")
    torch.testing.assert_close(single["pixel_values"], array["pixel_values"])
    with pytest.raises(ValueError, match="there should be either no images or at least one image per sample"):
        processor.apply_chat_template(
            conversation=conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_token_type_ids=True,
        )


@pytest.mark.upstream
def test_unpatched_processor_refuses_rows_without_images_next_to_image_rows(tiny):
    with pytest.raises(ValueError, match="there should be either no images or at least one image per sample"):
        tiny.processor.apply_chat_template(
            conversation=_mixed_conversations(), add_generation_prompt=True, tokenize=True, return_dict=True
        )


def test_rows_of_a_mixed_batch_score_as_they_do_alone(patched, tiny):
    """The model's logits for each row of a left-padded mixed batch equal those of the row alone, given the
    batch's image slots: an image row its own images (and padding slots), a text-only row the inputs of missing
    images. (Transformers' mllama lets tokens that see no image attend to every image slot, padding included:
    that is why a row's logits depend on its batch's slot count at all.)"""
    processor, model, conversations = tiny.processor, tiny.model, _mixed_conversations()
    batch = processor.apply_chat_template(
        conversation=conversations,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )
    slots, tiles = batch["aspect_ratio_mask"].shape[1:]
    with torch.no_grad():
        logits = model(**batch).logits
    for row, conversation in enumerate(conversations):
        alone = _alone(processor, conversation)
        length = alone["input_ids"].shape[1]
        image_inputs = {
            "pixel_values": torch.zeros_like(batch["pixel_values"][:1]),
            "aspect_ratio_ids": torch.zeros((1, slots), dtype=torch.long),
            "aspect_ratio_mask": torch.zeros((1, slots, tiles), dtype=torch.long).index_fill_(2, torch.tensor([0]), 1),
            "cross_attention_mask": torch.zeros((1, length, slots, tiles), dtype=torch.long),
        }
        if "pixel_values" in alone:
            images = alone["pixel_values"].shape[1]
            for name in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask"):
                image_inputs[name][:, :images] = alone[name]
            image_inputs["cross_attention_mask"][:, :, :images] = alone["cross_attention_mask"]
        with torch.no_grad():
            expected = model(
                input_ids=alone["input_ids"], attention_mask=alone["attention_mask"], **image_inputs
            ).logits
        torch.testing.assert_close(logits[row, -length:], expected[0], atol=1e-4, rtol=1e-4)

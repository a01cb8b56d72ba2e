"""Idefics3 / SmolVLM pixel values are padded per row; TRL 1.15 tells that layout from the flat one by
counting images, which fails when a batch's image count equals its row count (rows with two images and
rows with none), and it feeds padding-only images to chunks of text-only rows."""

import pytest
import torch
from datasets import Dataset
from PIL import Image
from trl import GRPOTrainer

import unsloth_vlm_grpo
from grpo_helpers import distinct_characters_reward, grpo_config, logged_losses
from unsloth_vlm_grpo.patches import per_sample_image_scoring, per_sample_pixel_values_shuffling

SCORING_LABEL = "trl.trainer.grpo_trainer.GRPOTrainer._get_per_token_logps_and_entropies"
SHUFFLING_LABEL = "trl.trainer.grpo_trainer.split_pixel_values_by_grid"


@pytest.fixture(autouse=True)
def _unpatched_afterwards():
    yield
    unsloth_vlm_grpo.unpatch()


def _two_or_no_images_trainer(tiny_factory, output_dir):
    colours = [(255, 0, 0), (0, 0, 255)]
    rows = []
    for index in range(8):
        images = [Image.new("RGB", (56, 56), colour) for colour in colours] if index % 2 == 0 else []
        content = [{"type": "image"}] * len(images) + [{"type": "text", "text": "What colours?"}]
        rows.append({"prompt": [{"role": "user", "content": content}], "images": images})
    tiny = tiny_factory("idefics3")
    args = grpo_config(output_dir, max_steps=6, per_device_train_batch_size=4, num_generations=2,
                       steps_per_generation=2)  # fmt: skip
    return GRPOTrainer(model=tiny.model, processing_class=tiny.processor, reward_funcs=distinct_characters_reward,
                       args=args, train_dataset=Dataset.from_list(rows))


def test_idefics3_trains_on_rows_with_two_images_and_rows_with_none(tiny_factory, tmp_path):
    unsloth_vlm_grpo.patch()
    trainer = _two_or_no_images_trainer(tiny_factory, tmp_path)
    trainer.train()
    assert len(logged_losses(trainer)) == 6


def test_without_the_two_patches_the_same_run_crashes(tiny_factory, tmp_path, monkeypatch):
    monkeypatch.setitem(per_sample_image_scoring.PATCH.fingerprints, SCORING_LABEL, "0" * 16)
    monkeypatch.setitem(per_sample_pixel_values_shuffling.PATCH.fingerprints, SHUFFLING_LABEL, "0" * 16)
    report = unsloth_vlm_grpo.patch(strict=False)
    assert sorted(entry.patch for entry in report.skipped) == [
        "per_sample_image_scoring", "per_sample_pixel_values_shuffling"
    ]  # fmt: skip
    trainer = _two_or_no_images_trainer(tiny_factory, tmp_path)
    with pytest.raises(RuntimeError, match="is invalid for input of size|cannot reshape tensor of 0 elements"):
        trainer.train()


def test_padded_pixel_values_stay_with_their_rows_through_the_split():
    import trl.trainer.grpo_trainer as grpo_module

    rows = 4
    pixel_values = torch.arange(rows, dtype=torch.float).view(rows, 1, 1, 1, 1).expand(rows, 2, 3, 4, 4).clone()
    batch = {"prompt_ids": torch.arange(rows).unsqueeze(1), "pixel_values": pixel_values,
             "pixel_attention_mask": torch.ones(rows, 2, 4, 4), "num_images": [2, 0, 2, 0]}  # fmt: skip
    unsloth_vlm_grpo.unpatch()
    assert isinstance(grpo_module.split_pixel_values_by_grid(batch)["pixel_values"], list)  # TRL's misreading
    unsloth_vlm_grpo.patch()
    assert grpo_module.split_pixel_values_by_grid(batch) is batch


def _mllama_two_or_no_images_trainer(tiny_factory, output_dir, reward):
    rows = []
    for index in range(8):
        colour = (255, 0, 0) if index % 4 == 0 else (0, 0, 255)
        images = [Image.new("RGB", (56, 56), colour)] * 2 if index % 2 == 0 else []
        content = [{"type": "image"}] * len(images) + [{"type": "text", "text": "What colours?"}]
        rows.append({"prompt": [{"role": "user", "content": content}], "images": images, "row": index})
    tiny = tiny_factory("mllama")
    args = grpo_config(output_dir, max_steps=4, per_device_train_batch_size=4, num_generations=2,
                       steps_per_generation=2)  # fmt: skip
    return GRPOTrainer(model=tiny.model, processing_class=tiny.processor, reward_funcs=reward,
                       args=args, train_dataset=Dataset.from_list(rows))


def test_mllama_keeps_each_rows_images_through_the_shuffle(tiny_factory, tmp_path):
    """Llama 3.2 Vision, rows of two images next to rows without (4 images for 4 rows): every loss forward gets,
    for each of its rows, that row's own pixel values (red for rows 0 and 4, blue for 2 and 6, none for the rest),
    whatever the shuffle did."""
    unsloth_vlm_grpo.patch()
    seen = []
    trainer = _mllama_two_or_no_images_trainer(tiny_factory, tmp_path, distinct_characters_reward)

    def record(_module, args, kwargs):
        if torch.is_grad_enabled() and kwargs.get("pixel_values") is not None:
            seen.append((kwargs["input_ids"].clone(), kwargs["pixel_values"].detach().clone()))

    trainer.model.model.register_forward_pre_hook(record, with_kwargs=True)  # MllamaModel, inside every forward
    trainer.train()
    assert len(logged_losses(trainer)) == 4 and seen
    processor = trainer.processing_class
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image|>")
    red = processor.image_processor(images=[[Image.new("RGB", (56, 56), (255, 0, 0))]], return_tensors="pt")
    red = red["pixel_values"][0, 0]
    for input_ids, pixel_values in seen:
        for ids, row_pixels in zip(input_ids, pixel_values):
            images = int((ids == image_token).sum())
            assert images in (0, 2)
            assert bool(row_pixels.any()) == (images == 2)
            if images:
                assert torch.equal(row_pixels[0], row_pixels[1])  # the row's own two images, not another row's

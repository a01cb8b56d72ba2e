"""Idefics3 / SmolVLM pixel values are padded per row; TRL 1.15 tells that layout from the flat one by
counting images, which fails when a batch's image count equals its row count (rows with two images and
rows with none), and it feeds padding-only images to chunks of text-only rows."""

import re

import pytest
import torch
from datasets import Dataset
from PIL import Image
from trl import GRPOTrainer

import unsloth_vlm_grpo

from grpo_helpers import distinct_characters_reward, grpo_config, logged_losses

pytestmark = pytest.mark.usefixtures("unpatched")


COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255)}


def _two_or_no_images_trainer(tiny_factory, output_dir, family="idefics3", max_steps=6):
    """Rows with two images of one colour (red for rows 0 and 4, blue for 2 and 6, named in the prompt) next to
    rows without images: a batch of four rows then holds four images."""
    rows = []
    for index in range(8):
        name = ("red" if index % 4 == 0 else "blue") if index % 2 == 0 else "none"
        images = [Image.new("RGB", (56, 56), COLOURS[name])] * 2 if name in COLOURS else []
        content = [{"type": "image"}] * len(images) + [{"type": "text", "text": f"What colours? {name}"}]
        rows.append({"prompt": [{"role": "user", "content": content}], "images": images})
    tiny = tiny_factory(family)
    args = grpo_config(
        output_dir, max_steps=max_steps, per_device_train_batch_size=4, num_generations=2, steps_per_generation=2
    )
    return GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=args,
        train_dataset=Dataset.from_list(rows),
    )


def test_idefics3_trains_on_rows_with_two_images_and_rows_with_none(tiny_factory, tmp_path):
    unsloth_vlm_grpo.patch()
    trainer = _two_or_no_images_trainer(tiny_factory, tmp_path)
    trainer.train()
    assert len(logged_losses(trainer)) == 6


@pytest.mark.upstream
def test_without_the_two_patches_the_same_run_crashes(tiny_factory, tmp_path):
    report = unsloth_vlm_grpo.patch(exclude=("padded_pixel_values_scoring", "per_sample_pixel_values_shuffling"))
    assert sorted(entry.patch for entry in report.excluded) == [
        "padded_pixel_values_scoring",
        "per_sample_pixel_values_shuffling",
    ]
    trainer = _two_or_no_images_trainer(tiny_factory, tmp_path)
    with pytest.raises(RuntimeError, match="is invalid for input of size|cannot reshape tensor of 0 elements"):
        trainer.train()


def test_padded_pixel_values_stay_with_their_rows_through_the_split():
    import trl.trainer.grpo_trainer as grpo_module

    rows = 4
    pixel_values = torch.arange(rows, dtype=torch.float).view(rows, 1, 1, 1, 1).expand(rows, 2, 3, 4, 4).clone()
    batch = {
        "prompt_ids": torch.arange(rows).unsqueeze(1),
        "pixel_values": pixel_values,
        "pixel_attention_mask": torch.ones(rows, 2, 4, 4),
        "num_images": [2, 0, 2, 0],
    }
    unsloth_vlm_grpo.unpatch()
    assert isinstance(grpo_module.split_pixel_values_by_grid(batch)["pixel_values"], list)  # TRL's misreading
    unsloth_vlm_grpo.patch()
    assert grpo_module.split_pixel_values_by_grid(batch) is batch


def _mllama_rows_given_other_images(tiny_factory, output_dir) -> tuple[int, int]:
    """Train mllama on rows of two images next to rows without (four images for four rows); return how many rows
    with images the loss forwards saw, and how many rows got pixel values other than their own (the colour their
    prompt names, or none)."""
    seen = []
    trainer = _two_or_no_images_trainer(tiny_factory, output_dir, family="mllama", max_steps=4)

    def record(_module, args, kwargs):
        if torch.is_grad_enabled() and kwargs.get("pixel_values") is not None:
            seen.append((kwargs["input_ids"].clone(), kwargs["pixel_values"].detach().clone()))

    trainer.model.model.register_forward_pre_hook(record, with_kwargs=True)  # MllamaModel, inside every forward
    trainer.train()
    assert len(logged_losses(trainer)) == 4 and seen
    processor = trainer.processing_class
    expected = {
        name: processor.image_processor(images=[[Image.new("RGB", (56, 56), rgb)] * 2], return_tensors="pt")[
            "pixel_values"
        ][0]
        for name, rgb in COLOURS.items()
    }
    with_images = wrong = 0
    for input_ids, pixel_values in seen:
        for ids, row_pixels in zip(input_ids, pixel_values, strict=True):
            name = re.search(r"What colours\? (red|blue|none)", processor.tokenizer.decode(ids)).group(1)
            with_images += name != "none"
            wrong += not (torch.equal(row_pixels, expected[name]) if name != "none" else not row_pixels.any())
    return with_images, wrong


def test_mllama_keeps_each_rows_images_through_the_shuffle(tiny_factory, tmp_path):
    unsloth_vlm_grpo.patch()
    with_images, wrong = _mllama_rows_given_other_images(tiny_factory, tmp_path)
    assert with_images > 0 and wrong == 0


@pytest.mark.upstream
def test_without_the_shuffling_patch_mllama_rows_train_on_other_rows_images(tiny_factory, tmp_path):
    """The control: TRL's class splits the per-sample pixel values by image count, silently."""
    unsloth_vlm_grpo.patch(exclude=("per_sample_pixel_values_shuffling",))
    _, wrong = _mllama_rows_given_other_images(tiny_factory, tmp_path)
    assert wrong > 0

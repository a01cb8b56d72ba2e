"""Reward functions get ``images=`` (a list per completion, the row's RGB images) with either column layout."""

import pytest
from datasets import Dataset
from PIL import Image
from trl import GRPOTrainer

from grpo_helpers import COLOURS, grpo_config, varied_colour_dataset

pytestmark = pytest.mark.usefixtures("patched")


def _as_images_column(dataset: Dataset) -> Dataset:
    rows = [
        {key: value for key, value in row.items() if key != "image"} | {"images": [row["image"]]} for row in dataset
    ]
    return Dataset.from_list(rows)


@pytest.mark.parametrize("column", ["image", "images"])
def test_reward_functions_get_the_rows_images(column, tiny_factory, tmp_path):
    dataset = varied_colour_dataset(rows=8)
    if column == "images":
        dataset = _as_images_column(dataset)
    seen = []

    def colour_of_the_image(completions, images, answer, **kwargs):
        seen.append((images, answer, kwargs.get("image")))
        return [float(len(row_images) == 1) for row_images in images]

    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=colour_of_the_image,
        args=grpo_config(tmp_path, max_steps=2),
        train_dataset=dataset,
    )
    trainer.train()
    assert len(seen) == 2
    for images, answers, image in seen:
        assert len(images) == len(answers) == 4
        for row_images, answer in zip(images, answers, strict=True):
            assert len(row_images) == 1 and isinstance(row_images[0], Image.Image) and row_images[0].mode == "RGB"
            assert row_images[0].getpixel((0, 0)) == COLOURS[answer]
        assert (image is not None) == (column == "image"), "TRL's own image= stays as TRL passes it"


def test_text_only_rows_get_an_empty_list(tiny_factory, tmp_path):
    rows = list(varied_colour_dataset(rows=4))
    rows += [
        {
            "prompt": [{"role": "user", "content": [{"type": "text", "text": "Say a colour."}]}],
            "image": None,
            "answer": "red",
        }
        for _ in range(4)
    ]
    received = []

    def count_images(completions, images, **kwargs):
        received.extend(len(row_images) for row_images in images)
        return [0.0] * len(completions)

    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=count_images,
        args=grpo_config(tmp_path, max_steps=2, per_device_train_batch_size=8),
        train_dataset=Dataset.from_list(rows),
    )
    trainer.train()
    assert set(received) == {0, 1}

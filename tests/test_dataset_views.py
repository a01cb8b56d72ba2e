"""The check before training reads the rows the user's dataset holds, in its order, and names them as
``dataset[i]`` numbers them: filtered, selected, shuffled, sorted, split and concatenated datasets."""

import os

import pytest
from datasets import Dataset, concatenate_datasets
from PIL import Image
from trl import GRPOTrainer

from unsloth_vlm_grpo import ImageInputError

from grpo_helpers import distinct_characters_reward, grpo_config

BROKEN = 1  # the row of the original dataset whose image file is missing


pytestmark = pytest.mark.usefixtures("patched")


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    """8 rows with image paths, each with its own question; row 1's file does not exist."""
    rows = []
    for index in range(8):
        path = tmp_path / f"{index}.png"
        if index != BROKEN:
            Image.new("RGB", (56, 56), (40 * index, 0, 0)).save(path)
        else:
            path = tmp_path / "missing.png"
        prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Question {index}?"}]}]
        rows.append({"prompt": prompt, "image": str(path), "order": (index * 5) % 8})
    return Dataset.from_list(rows)


def _trainer(tiny_factory, tmp_path, train_dataset):
    tiny = tiny_factory("qwen2_5_vl")
    return GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path / "out", max_steps=1),
        train_dataset=train_dataset,
    )


def _position_of_broken(view) -> int:
    return next(i for i, row in enumerate(view) if row["image"].endswith("missing.png"))


def _expect_broken_row_named(trainer, view):
    row = _position_of_broken(view)
    with pytest.raises(ImageInputError, match=rf"^dataset row {row}: image file '.*missing.png' does not exist"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_filtered_out_row_is_not_checked(dataset, tiny_factory, tmp_path):
    view = dataset.filter(lambda row: os.path.exists(row["image"]))
    assert len(view) == 7
    trainer = _trainer(tiny_factory, tmp_path, view)
    trainer.train()
    assert trainer.state.global_step == 1


@pytest.mark.parametrize(
    "make_view",
    [
        pytest.param(lambda ds: ds.shuffle(seed=0), id="shuffle"),
        pytest.param(lambda ds: ds.select([7, 0, 1]), id="select"),
        pytest.param(lambda ds: ds.sort("order"), id="sort"),
        pytest.param(lambda ds: ds.train_test_split(test_size=3, seed=1)["test"], id="split"),
        pytest.param(lambda ds: concatenate_datasets([ds.select([4, 5]), ds.select([3, 1, 2])]), id="concatenate"),
    ],
)
def test_broken_row_is_named_as_the_view_numbers_it(make_view, dataset, tiny_factory, tmp_path):
    view = make_view(dataset)
    assert _position_of_broken(view) != BROKEN, "the view must move the broken row"
    _expect_broken_row_named(_trainer(tiny_factory, tmp_path, view), view)


def test_split_without_the_broken_row_trains(dataset, tiny_factory, tmp_path):
    split = dataset.train_test_split(test_size=3, seed=1)
    assert all(not row["image"].endswith("missing.png") for row in split["train"])
    trainer = _trainer(tiny_factory, tmp_path, split["train"])
    trainer.train()
    assert trainer.state.global_step == 1


def test_error_during_training_names_the_row(dataset, tiny_factory, tmp_path):
    """A file that disappears after the check is named by its row when a batch reaches it."""
    view = dataset.select([7, 0, 2, 3])
    trainer = _trainer(tiny_factory, tmp_path, view)
    trainer.get_train_dataloader()  # the check passes: every file exists now
    os.remove(view[2]["image"])
    with pytest.raises(ImageInputError, match=r"^dataset row 2: image file .* does not exist"):
        trainer._generate_and_score_completions([view[index] for index in range(4)])

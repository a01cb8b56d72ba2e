"""Image inputs: every accepted form and mode becomes RGB, mixed batches train, bad rows fail early
with the row index and the cause."""

import io

import numpy as np
import pytest
from datasets import Dataset
from PIL import Image
from trl import GRPOTrainer

from unsloth_vlm_grpo._images import ImageInputError, check_row, load_image, to_rgb
from unsloth_vlm_grpo.tiny import FAMILIES

from grpo_helpers import (
    VARIED_QUESTIONS,
    VARIED_SIZES,
    distinct_characters_reward,
    grpo_config,
    logged_losses,
    saved_and_loaded,
)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _prompt(placeholders: int, text: str = "What colour?"):
    return [{"role": "user", "content": [{"type": "image"}] * placeholders + [{"type": "text", "text": text}]}]


# --- conversion -----------------------------------------------------------------------------------


def test_transparent_pixels_are_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    rgb = to_rgb(rgba)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (127, 127, 127)
    assert rgb.getpixel((2, 2)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("LA", (2, 2), (0, 0)), (255, 255, 255)),
        (Image.new("L", (2, 2), 100), (100, 100, 100)),
        (Image.new("1", (2, 2), 1), (255, 255, 255)),
        (Image.new("CMYK", (2, 2), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16)), (255, 255, 255)),
    ],
    ids=["LA-transparent", "L", "1", "CMYK", "I;16"],
)
def test_every_mode_becomes_rgb(image, expected):
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == expected


def test_palette_with_transparency_becomes_white_where_transparent():
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([255, 0, 0] + [0, 255, 0] * 255)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)


def test_accepted_forms_load(tmp_path):
    red = Image.new("RGB", (3, 3), (255, 0, 0))
    path = tmp_path / "red.png"
    red.save(path)
    forms = {
        "path": str(path),
        "pathlike": path,
        "bytes": _png_bytes(red),
        "datasets-dict": {"bytes": _png_bytes(red), "path": None},
        "uint8-array": np.full((3, 3, 3), [255, 0, 0], dtype=np.uint8),
        "float-array": np.full((3, 3, 3), [1.0, 0.0, 0.0]),
        "nested-lists": np.full((3, 3, 3), [255, 0, 0], dtype=np.uint8).tolist(),
    }
    for name, form in forms.items():
        assert to_rgb(load_image(form)).getpixel((1, 1)) == (255, 0, 0), name
    assert to_rgb(load_image(np.zeros((3, 3), dtype=bool))).getpixel((0, 0)) == (0, 0, 0)


# --- errors ---------------------------------------------------------------------------------------


def test_missing_file_names_row_and_path(tmp_path):
    with pytest.raises(ImageInputError, match=r"dataset row 7: image file '.*nope\.png' does not exist"):
        load_image(str(tmp_path / "nope.png"), row=7)


def test_non_image_file_and_truncated_bytes(tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    with pytest.raises(ImageInputError, match="dataset row 2: '.*notes.txt' is not an image file"):
        load_image(str(text_file), row=2)
    truncated = _png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))[:60]
    with pytest.raises(ImageInputError, match="dataset row 3: the image bytes could not be decoded"):
        load_image(truncated, row=3)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 2, 5), dtype=np.uint8), "shape"),
        (np.full((2, 2, 3), 1000, dtype=np.int64), r"dtype int64\) values must lie in \[0, 255\]"),
        (np.zeros((2, 2, 3), dtype=np.complex64), "dtype complex64"),
        (np.full((2, 2), 2.0), r"\[0, 1\]"),
    ],
)
def test_unsupported_arrays(array, message):
    with pytest.raises(ImageInputError, match=f"dataset row 1: .*{message}"):
        load_image(array, row=1)


def test_zero_size_image():
    with pytest.raises(ImageInputError, match="dataset row 0: image has zero size"):
        to_rgb(Image.new("RGB", (0, 4)), row=0)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": _prompt(2), "images": [Image.new("RGB", (2, 2))]}, "2 image placeholder.*gives 1 image"),
        ({"prompt": _prompt(1), "images": []}, "1 image placeholder.*gives 0 image"),
        ({"prompt": _prompt(0), "image": Image.new("RGB", (2, 2))}, "0 image placeholder.*gives 1 image"),
        ({"prompt": _prompt(1), "images": Image.new("RGB", (2, 2))}, "must hold a list"),
        ({"prompt": _prompt(1), "images": [None]}, "holds None"),
        ({"prompt": _prompt(1), "image": None}, "1 image placeholder.*gives 0 image"),
    ],
    ids=[
        "more-placeholders",
        "fewer-placeholders",
        "image-without-placeholder",
        "not-a-list",
        "none-in-list",
        "none-image",
    ],
)
def test_row_checks(row, message):
    with pytest.raises(ImageInputError, match=f"dataset row 5: .*{message}"):
        check_row(row, 5)


def test_string_prompts_get_placeholders_from_trl_and_are_not_counted():
    check_row({"prompt": [{"role": "user", "content": "What colour?"}], "image": Image.new("RGB", (2, 2))}, 0)


# --- through the patched trainer ------------------------------------------------------------------


def _form_rows(form, tmp_path):
    """Eight rows whose images all take one form (a `datasets` column holds one type); half have no image."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)] * 2
    if form == "paths":
        values = []
        for index, colour in enumerate(colours):
            path = tmp_path / f"{index}.png"
            Image.new("RGB", (56, 56), colour).save(path)
            values.append(str(path))
    elif form == "bytes":
        values = [_png_bytes(Image.new("RGBA", (56, 56), colour + (128,))) for colour in colours]
    elif form == "arrays":
        values = [np.full((56, 56, 3), colour, dtype=np.uint8) for colour in colours]
    else:  # PIL images in every mode
        values = [
            Image.new("RGBA", (56, 56), (0, 255, 0, 0)),
            Image.new("LA", (56, 56), (30, 255)),
            Image.new("P", (56, 56), 3),
            Image.new("L", (56, 56), 90),
            Image.new("I;16", (56, 56), 300),
            Image.new("1", (56, 56), 1),
            Image.new("RGB", (56, 56)),
            Image.new("CMYK", (56, 56)),
        ]
    if form == "pil-modes":  # several sizes and aspect ratios too
        values = [value.resize(VARIED_SIZES[(index // 2) % len(VARIED_SIZES)]) for index, value in enumerate(values)]
    questions = [VARIED_QUESTIONS[index % len(VARIED_QUESTIONS)] for index in range(len(values))]
    rows = [
        {"prompt": _prompt(1, question), "images": [value]} for value, question in zip(values, questions, strict=True)
    ]
    for index in (1, 3, 5, 7):
        rows[index] = {"prompt": _prompt(0, questions[index]), "images": []}
    return rows


def _train_recording_image_counts(model, processor, dataset, output_dir) -> list[list[int]]:
    """Train 2 steps; return each reward call's sorted per-row image counts, after checking the losses."""
    image_counts_per_batch = []

    def reward(completions, images, **kwargs):
        image_counts_per_batch.append(sorted(len(row_images or []) for row_images in images))
        return distinct_characters_reward(completions)

    trainer = GRPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=reward,
        args=grpo_config(output_dir, max_steps=2, per_device_train_batch_size=8, num_generations=2),
        train_dataset=dataset,
    )
    trainer.train()
    assert len(logged_losses(trainer)) == 2
    return image_counts_per_batch


@pytest.mark.parametrize("form", ["paths", "bytes", "arrays", "pil-modes"])
def test_image_forms_and_text_only_rows_train(form, patched, tiny_factory, tmp_path):
    tiny = tiny_factory("qwen2_5_vl")
    counts = _train_recording_image_counts(
        tiny.model, tiny.processor, Dataset.from_list(_form_rows(form, tmp_path)), tmp_path
    )
    assert any(batch[0] == 0 and batch[-1] == 1 for batch in counts), counts


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_on_batches_mixing_image_and_text_only_rows(family, patched, tiny_factory, tmp_path):
    """Rows with and without images, of different question lengths, image sizes and modes; model and processor
    loaded from disk."""
    model, processor = saved_and_loaded(tiny_factory(family), tmp_path / "checkpoint")
    counts = _train_recording_image_counts(
        model, processor, Dataset.from_list(_form_rows("pil-modes", tmp_path)), tmp_path / "out"
    )
    assert any(batch[0] == 0 and batch[-1] == 1 for batch in counts), counts


def test_bad_row_fails_before_training_with_its_index(patched, tiny_factory, tmp_path):
    rows = [{"prompt": _prompt(1), "image": Image.new("RGB", (56, 56))} for _ in range(8)]
    rows[6] = {"prompt": _prompt(2), "image": Image.new("RGB", (56, 56))}
    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path),
        train_dataset=Dataset.from_list(rows),
    )
    with pytest.raises(ImageInputError, match="dataset row 6: the prompt has 2 image placeholder"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_missing_file_in_dataset_fails_before_training(patched, tiny_factory, tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (56, 56), (0, 0, 255)).save(good)
    paths = [str(good)] * 8
    paths[3] = str(tmp_path / "missing.png")
    rows = [{"prompt": _prompt(1), "image": path} for path in paths]
    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path),
        train_dataset=Dataset.from_list(rows),
    )
    with pytest.raises(ImageInputError, match="dataset row 3: image file '.*missing.png' does not exist"):
        trainer.train()


@pytest.mark.upstream
def test_trl_has_no_prompt_truncation_that_could_cut_image_tokens():
    """TRL 1.15 removed ``max_prompt_length``: prompts (and their image tokens) are never truncated. If a
    future TRL adds a prompt-length limit, this test fails and the library must guard it."""
    import dataclasses

    from trl import GRPOConfig

    fields = {field.name for field in dataclasses.fields(GRPOConfig)}
    assert not {name for name in fields if "prompt" in name and ("length" in name or "trunc" in name)}

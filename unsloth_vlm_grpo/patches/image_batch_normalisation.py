"""Turn every image of a batch into an RGB PIL image, and check each row, before generation.

Target: ``GRPOTrainer._generate_and_score_completions`` on TRL's class and on Unsloth's generated class
(trl 1.15.0, unsloth 2026.10.9).
Why: TRL passes images straight to the processor, which accepts only some forms and modes: file
paths, raw bytes and arrays fail or are misread, RGBA / LA / P / I;16 / CMYK images are converted by
dropping alpha or not at all. Each image (PIL, path, bytes, numpy array or nested lists, a ``datasets``
``{"bytes", "path"}`` dict) is loaded and converted to RGB with alpha composited on white; each row's
placeholder count is checked. Rows are never dropped: a bad row raises ``ImageInputError``. Text-only
trainers and rows without images pass through unchanged.
Remove when: TRL converts dataset images to RGB itself (not the case as of trl 1.15.0).
"""

from __future__ import annotations

from .._engine import GRPOTrainerMethod, Patch
from .._images import ImageInputError, check_row, load_image, naming_the_row, row_images, to_rgb
from .._rows import describe_trainer_rows


def normalise_row(row: dict) -> dict:
    column, images = row_images(row)
    if column is None:
        return row
    check_row(row, None)
    converted = [to_rgb(load_image(image)) for image in images]
    if column == "image":
        return {**row, "image": converted[0] if converted else None}
    return {**row, "images": converted}


def _normalised(trainer, rows: list[dict]) -> list[dict]:
    converted = []
    for row in rows:
        try:
            converted.append(normalise_row(row))
        except ImageInputError as error:
            raise naming_the_row(error, describe_trainer_rows(trainer, [row])) from error
    return converted


def _normalise_then_generate(wrapped, trainer, args, kwargs):
    if not getattr(trainer, "_is_vlm", False):
        return wrapped(*args, **kwargs)
    if args:
        rows = _normalised(trainer, args[0])
        args = (rows, *args[1:])
    else:
        rows = _normalised(trainer, kwargs["inputs"])
        kwargs = {**kwargs, "inputs": rows}
    return wrapped(*args, **kwargs)


PATCH = Patch(
    name="image_batch_normalisation",
    targets=(GRPOTrainerMethod("_generate_and_score_completions"),),
    wrapper=_normalise_then_generate,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._generate_and_score_completions": "1fa48922792dcd5c",
        "UnslothGRPOTrainer.UnslothGRPOTrainer._generate_and_score_completions": "84f30c64c4829bb0",
    },
    reason="Images in other forms or modes than RGB PIL fail or are misread by the processor.",
    remove_when="TRL converts dataset images to RGB itself.",
)

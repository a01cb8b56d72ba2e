"""Check the training dataset's images against its prompts before the first batch.

Target: ``GRPOTrainer.get_train_dataloader`` on TRL's class and on Unsloth's generated class
(trl 1.15.0, unsloth 2026.10.9).
Why: TRL 1.15 finds a bad image row only when a batch reaches the model, with an error that does not name the
row (or a deep shape error). Before training starts, each row of a map-style dataset is checked without
decoding pixels: ``{"type": "image"}`` placeholders match the images given, the ``images`` column holds lists,
no image is None, each file exists, is an image, is not empty and passes ``Image.verify``; and that the
trainer can use images at all (a processor, not a tokenizer; a model with a vision tower; a processor that
belongs to the model). The first problem raises
``ImageInputError`` (a ``ValueError``) naming the row index and the cause. Streaming datasets are checked per
batch by ``image_batch_normalisation``.
Remove when: TRL validates multimodal rows up front with row indices (no upstream report found as of
trl 1.15.0).
"""

from __future__ import annotations

from .._engine import GRPOTrainerMethod, Patch
from .._images import ImageInputError, check_dataset


def _expected_processor_class(model_type: str) -> str | None:
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    return PROCESSOR_MAPPING_NAMES.get(model_type)


def check_model_and_processor(trainer, row: int) -> None:
    """Raise when a dataset with images meets a trainer that cannot use them."""
    processor = trainer.processing_class
    if not getattr(trainer, "_is_vlm", False):
        raise ImageInputError(
            f"dataset row {row} has an image, but processing_class is a {type(processor).__name__}, not a "
            "processor: pass the model's processor (e.g. AutoProcessor.from_pretrained(...)) so images are used"
        )
    config = trainer.model.config
    if not hasattr(config, "vision_config"):
        raise ImageInputError(
            f"dataset row {row} has an image, but the model ({config.model_type}) has no vision tower: "
            "use a vision-language model, or drop the image columns"
        )
    expected = _expected_processor_class(config.model_type)
    if expected is not None and expected not in {cls.__name__ for cls in type(processor).__mro__}:
        raise ImageInputError(
            f"the processor ({type(processor).__name__}) does not belong to the model ({config.model_type}, which "
            f"uses {expected}): load the model and its processor from the same checkpoint"
        )


def _check_then_load(wrapped, trainer, args, kwargs):
    dataset = trainer.train_dataset
    if hasattr(dataset, "data") and hasattr(dataset, "column_names"):
        with_image = check_dataset(dataset)
        if with_image is not None:
            check_model_and_processor(trainer, with_image)
    return wrapped(*args, **kwargs)


PATCH = Patch(
    name="image_dataset_check",
    targets=(GRPOTrainerMethod("get_train_dataloader"),),
    wrapper=_check_then_load,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer.get_train_dataloader": "2bffe5a57c539e17",
        "UnslothGRPOTrainer._UnslothGRPOTrainer.get_train_dataloader": "2bffe5a57c539e17",
    },
    reason="Bad image rows surface mid-training as errors that do not name the row.",
    remove_when="TRL checks image rows against their prompts before training.",
)

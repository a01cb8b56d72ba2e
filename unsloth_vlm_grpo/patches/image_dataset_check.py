"""Check the training dataset's images against its prompts before the first batch.

Target: ``GRPOTrainer.get_train_dataloader`` on TRL's class and on Unsloth's generated class
(trl 1.15.0, unsloth 2026.10.9).
Why: TRL 1.15 finds a bad image row only when a batch reaches the model, with an error that does not
name the row (or a deep shape error). Before training starts, each row of a map-style dataset is
checked without decoding pixels: ``{"type": "image"}`` placeholders match the images given, the
``images`` column holds lists, no image is None, each file exists, is an image, is not empty and passes
``Image.verify``. The first bad row raises ``ImageInputError`` (a ``ValueError``) naming the row index and
the cause. Streaming datasets are checked per batch by ``image_batch_normalisation``.
Remove when: TRL validates multimodal rows up front with row indices.
"""

from __future__ import annotations

from .._engine import GRPOTrainerMethod, Patch
from .._images import check_dataset


def _check_then_load(wrapped, trainer, args, kwargs):
    dataset = trainer.train_dataset
    if getattr(trainer, "_is_vlm", False) and hasattr(dataset, "data") and hasattr(dataset, "column_names"):
        check_dataset(dataset)
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

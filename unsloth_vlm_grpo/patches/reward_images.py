"""Give reward functions ``images=`` (each completion's row images, a list) whichever image column is used.

Target: ``GRPOTrainer._calculate_rewards`` on TRL's class and on Unsloth's generated class
(trl 1.15.0, unsloth 2026.10.9).
Why: TRL passes every dataset column to reward functions under its own name: with an ``images`` column they
get ``images=`` (a list per completion), with an ``image`` column only ``image=`` (one image per completion),
so a reward written for one layout fails on the other (``images=None`` or a TypeError). Rows with an
``image`` column get ``images=[image]`` too (``[]`` for a row without one); TRL's ``image=`` stays. The images
are RGB PIL images (``image_batch_normalisation`` converted them before generation).
Remove when: TRL passes a column-independent ``images`` argument to reward functions (not the case as of
trl 1.15.0).
"""

from __future__ import annotations

from .._engine import GRPOTrainerMethod, Patch


def with_images_list(row: dict) -> dict:
    if "images" in row or "image" not in row:
        return row
    return {**row, "images": [] if row["image"] is None else [row["image"]]}


def _calculate_rewards_with_images(wrapped, trainer, args, kwargs):
    if not getattr(trainer, "_is_vlm", False):
        return wrapped(*args, **kwargs)
    if args:
        args = ([with_images_list(row) for row in args[0]], *args[1:])
    else:
        kwargs = {**kwargs, "inputs": [with_images_list(row) for row in kwargs["inputs"]]}
    return wrapped(*args, **kwargs)


PATCH = Patch(
    name="reward_images",
    targets=(GRPOTrainerMethod("_calculate_rewards"),),
    wrapper=_calculate_rewards_with_images,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._calculate_rewards": "736ae29b083840b5",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._calculate_rewards": "736ae29b083840b5",
    },
    reason="Reward functions get images= with an 'images' column but only image= with an 'image' column.",
    remove_when="TRL passes images to reward functions under one name for both column layouts.",
)

"""unsloth-vlm-grpo: GRPO for vision-language models with Unsloth and TRL, as a monkeypatch.

import unsloth_vlm_grpo; unsloth_vlm_grpo.patch()   # then the usual trl.GRPOTrainer code
"""

from __future__ import annotations

import logging

from . import _engine
from ._engine import PatchReport
from ._gradients import VisionGradients, record_vision_gradients
from ._images import ImageInputError
from ._versions import VERIFIED_STACK, UnsupportedVersionError

__version__ = "0.1.0"
# The opt-in patches that make generation fast: patch(include=FAST_GENERATION).
FAST_GENERATION = ("static_cache_generation", "gemma3_decode_masks", "lora_folded_generation")
__all__ = [
    "FAST_GENERATION",
    "ImageInputError",
    "PatchReport",
    "UnsupportedVersionError",
    "VERIFIED_STACK",
    "VisionGradients",
    "is_patched",
    "patch",
    "patch_names",
    "record_vision_gradients",
    "unpatch",
]

logging.getLogger("unsloth_vlm_grpo").addHandler(logging.NullHandler())


def patch(strict: bool = True, exclude: tuple[str, ...] = (), include: tuple[str, ...] = ()) -> PatchReport:
    """Patch ``trl.GRPOTrainer`` (TRL's class and Unsloth's generated one) to train VLMs.

    Works before or after ``import unsloth``: targets not imported yet are patched when they are.
    With ``strict=True`` an installed package outside the verified stack raises
    ``UnsupportedVersionError``; with ``strict=False`` only patches whose target source is unchanged are
    applied, and the report says which were skipped. ``exclude`` names patches to leave out, ``include`` the
    opt-in ones to apply (see ``patch_names()``); an unknown name raises ``ValueError``. Calling it again with
    the same options changes nothing; with other options it first undoes the previous call.
    """
    from .patches import ALL_PATCHES

    return _engine.apply(ALL_PATCHES, strict=strict, exclude=exclude, include=include)


def patch_names() -> list[str]:
    """The name of every patch, in the order ``patch()`` applies them (the names ``exclude`` takes)."""
    from .patches import ALL_PATCHES

    return [patch.name for patch in ALL_PATCHES]


def unpatch() -> None:
    """Restore every patched attribute to the original object and remove the library's hooks."""
    _engine.remove()


def is_patched() -> bool:
    return _engine.is_active()

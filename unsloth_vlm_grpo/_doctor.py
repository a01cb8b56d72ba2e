"""``python -m unsloth_vlm_grpo doctor``: what is installed, what was verified, what would be patched."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import TextIO

from . import __version__
from ._engine import FOLLOW_UNSLOTH_TRAINER, plan
from ._versions import check_stack

logger = logging.getLogger("unsloth_vlm_grpo")


def _import_stack(out: TextIO) -> None:
    # Unsloth first, as it asks, so that its trainer is generated as it would be in a user's script.
    for module in ("unsloth", "trl.trainer.grpo_trainer", "trl.kernels.chunked_logprob"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            continue
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 - reported, not fatal
            out.write(f"  cannot import {module}: {type(error).__name__}: {error}\n")


def _gpu_line() -> str:
    import torch

    if torch.cuda.is_available():
        return f"yes: {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"no (torch {torch.__version__}); GPU-only paths (FastVisionModel, 4-bit) are unavailable"


def run_doctor(out: TextIO) -> int:
    from .patches import ALL_PATCHES

    out.write(f"unsloth-vlm-grpo {__version__}\n\nStack (installed vs verified):\n")
    checks = check_stack()
    for check in checks:
        mark = "ok " if check.ok else "BAD"
        out.write(f"  {mark} {check.name:14} {check.installed or 'not installed':14} verified {check.verified}\n")
    out.write("\nImporting the stack:\n")
    _import_stack(out)
    out.write(f"\nGPU visible: {_gpu_line()}\n\nPatches (what patch(strict=False) would do now):\n")
    reasons = {patch.name: patch.reason for patch in (FOLLOW_UNSLOTH_TRAINER, *ALL_PATCHES)}
    last = None
    for entry in plan(ALL_PATCHES):
        if last is not None and entry.patch != last:
            out.write(f"            why: {reasons[last]}\n")
        suffix = f": {entry.detail}" if entry.detail else ""
        out.write(f"  {entry.status:9} {entry.patch} -> {entry.target}{suffix}\n")
        last = entry.patch
    if last is not None:
        out.write(f"            why: {reasons[last]}\n")
    supported = all(check.ok for check in checks)
    out.write(
        "\n"
        + (
            "Stack is supported.\n"
            if supported
            else "Stack is NOT supported: patch() will raise; patch(strict=False) applies only unchanged targets.\n"
        )
    )
    return 0 if supported else 1

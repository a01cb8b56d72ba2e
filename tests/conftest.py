"""Shared test helpers. Tests use real TRL, transformers and Unsloth; anything that imports Unsloth runs
in a subprocess, since Unsloth patches transformers process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def run_python(args: list[str], tmp_path: Path, env: dict[str, str] | None = None, timeout: int = 600):
    """Run ``python ARGS`` in a fresh process; Unsloth compiles into ``tmp_path``."""
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "UNSLOTH_COMPILE_LOCATION": str(tmp_path / "unsloth_compiled_cache"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    process = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    return process


def run_probe(args: list[str], tmp_path: Path, env: dict[str, str] | None = None, timeout: int = 600) -> dict:
    """Run a probe script that prints one line ``RESULT <json>``; fail with its output if it does not."""
    process = run_python(args, tmp_path, env, timeout)
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(
        f"probe {args} exited {process.returncode} without a result\n--- stdout\n{process.stdout[-6000:]}"
        f"\n--- stderr\n{process.stderr[-6000:]}"
    )


@pytest.fixture
def patched():
    """The library patched for the test, unpatched after it."""
    import unsloth_vlm_grpo

    unsloth_vlm_grpo.patch()
    yield
    unsloth_vlm_grpo.unpatch()


@pytest.fixture
def unpatched():
    """The library unpatched before and after the test (tests that patch in their own way)."""
    import unsloth_vlm_grpo

    unsloth_vlm_grpo.unpatch()
    yield
    unsloth_vlm_grpo.unpatch()


@pytest.fixture(scope="session")
def tiny_factory():
    from unsloth_vlm_grpo.tiny import build_tiny_vlm

    return build_tiny_vlm

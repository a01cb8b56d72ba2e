"""The one place that declares which stack this release was verified against.

``pyproject.toml`` pins the same versions; ``tests/test_versions.py`` checks that the two agree.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

# distribution name -> the versions this release was verified against
VERIFIED_STACK: dict[str, str] = {
    "trl": "==1.15.0",
    "transformers": "==5.17.0",
    "unsloth": "==2026.10.9",
    "unsloth-zoo": "==2026.10.9",
    "torch": ">=2.4,<2.15",
}


class UnsupportedVersionError(RuntimeError):
    """Raised by ``patch(strict=True)`` when an installed package is outside the verified stack."""


@dataclass(frozen=True)
class PackageCheck:
    name: str
    installed: str | None
    verified: str

    @property
    def ok(self) -> bool:
        if self.installed is None:
            return False
        try:
            return Version(self.installed) in SpecifierSet(self.verified)
        except InvalidVersion:
            return False

    def describe(self) -> str:
        installed = self.installed or "not installed"
        return f"{self.name} {installed} (verified: {self.verified})"


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None. Tests replace this to simulate other stacks."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_stack() -> list[PackageCheck]:
    return [PackageCheck(name, installed_version(name), spec) for name, spec in VERIFIED_STACK.items()]


def unsupported_version_message(failed: list[PackageCheck]) -> str:
    lines = ["unsloth_vlm_grpo was not verified against the installed stack:"]
    lines += [f"  - {check.describe()}" for check in failed]
    lines.append(
        "Install the verified versions (pip install 'unsloth-vlm-grpo[...]' pins them), or call "
        "unsloth_vlm_grpo.patch(strict=False) to apply only the patches whose targets are unchanged; "
        "`python -m unsloth_vlm_grpo doctor` shows which those are."
    )
    return "\n".join(lines)

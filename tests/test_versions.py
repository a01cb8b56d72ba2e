"""The version guard: one verified matrix, pyproject follows it, other versions get a clear error."""

import tomllib

import pytest
import trl.trainer.grpo_trainer as grpo_trainer
import wrapt
from packaging.requirements import Requirement

import unsloth_vlm_grpo
from unsloth_vlm_grpo import UnsupportedVersionError, _versions

from conftest import ROOT

pytestmark = pytest.mark.usefixtures("unpatched")


def test_pyproject_pins_the_verified_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {Requirement(spec).name: str(Requirement(spec).specifier) for spec in project["dependencies"]}
    for name, spec in _versions.VERIFIED_STACK.items():
        assert pins[name] and set(pins[name].split(",")) == set(spec.split(",")), name


def test_installed_stack_is_the_verified_one():
    failed = [check.describe() for check in _versions.check_stack() if not check.ok]
    assert failed == []


def _pretend_installed(monkeypatch, **versions):
    real = _versions.installed_version
    monkeypatch.setattr(_versions, "installed_version", lambda name: versions.get(name.replace("-", "_"), real(name)))


def test_strict_patch_refuses_unverified_versions_and_names_them(monkeypatch):
    _pretend_installed(monkeypatch, trl="1.16.0", unsloth="2026.11.1")
    with pytest.raises(UnsupportedVersionError) as error:
        unsloth_vlm_grpo.patch()
    message = str(error.value)
    assert "trl 1.16.0 (verified: ==1.15.0)" in message
    assert "unsloth 2026.11.1 (verified: ==2026.10.9)" in message
    assert "strict=False" in message
    assert not unsloth_vlm_grpo.is_patched()


def _generate_of_another_release(self, prompts):
    """Stands in for a TRL release whose ``_generate`` changed: its source differs from the verified one."""
    raise AssertionError("never called")


def test_non_strict_applies_only_patches_whose_target_is_unchanged(monkeypatch, caplog):
    _pretend_installed(monkeypatch, trl="1.16.0")
    label = "trl.trainer.grpo_trainer.GRPOTrainer._generate"
    monkeypatch.setattr(grpo_trainer.GRPOTrainer, "_generate", _generate_of_another_release)
    report = unsloth_vlm_grpo.patch(strict=False)
    skipped = {(entry.patch, entry.target) for entry in report.skipped}
    assert skipped == {("placeholder_neutralisation", label)}
    assert not isinstance(vars(grpo_trainer.GRPOTrainer)["_generate"], wrapt.FunctionWrapper)
    assert isinstance(vars(grpo_trainer.GRPOTrainer)["_generate_single_turn"], wrapt.FunctionWrapper)
    assert any(label in record.getMessage() for record in caplog.records)


def test_strict_patch_refuses_a_changed_target(monkeypatch):
    monkeypatch.setattr(grpo_trainer.GRPOTrainer, "_generate", _generate_of_another_release)
    with pytest.raises(UnsupportedVersionError, match="placeholder_neutralisation"):
        unsloth_vlm_grpo.patch()
    assert not isinstance(vars(grpo_trainer.GRPOTrainer)["_generate_single_turn"], wrapt.FunctionWrapper)


def test_missing_target_is_skipped_when_not_strict_and_refused_when_strict(monkeypatch):
    monkeypatch.delattr(grpo_trainer.GRPOTrainer, "_tokenize_prompts")
    with pytest.raises(UnsupportedVersionError, match="mixed_image_batches.*no method _tokenize_prompts"):
        unsloth_vlm_grpo.patch()
    unsloth_vlm_grpo.unpatch()
    report = unsloth_vlm_grpo.patch(strict=False)
    assert [(entry.patch, entry.detail) for entry in report.skipped] == [("mixed_image_batches", "target missing")]
    assert isinstance(vars(grpo_trainer.GRPOTrainer)["_generate"], wrapt.FunctionWrapper)

"""patch() works in every import order, on the trainer class Unsloth really generates."""

import pytest

from conftest import ROOT, run_probe

UNSLOTH_LABELS = {
    "UnslothGRPOTrainer._UnslothGRPOTrainer._generate",
    "UnslothGRPOTrainer._UnslothGRPOTrainer._generate_single_turn",
    "UnslothGRPOTrainer.split_pixel_values_by_grid",
}


@pytest.mark.parametrize("order", ["unsloth_first", "patch_first", "trl_then_patch"])
def test_unsloth_generated_trainer_is_patched_in_any_import_order(order, tmp_path):
    result = run_probe([str(ROOT / "tests" / "probes" / "import_order.py"), order], tmp_path)
    assert result["live_class_module"] == "UnslothGRPOTrainer"
    assert result["patched"] is True
    assert UNSLOTH_LABELS <= set(result["applied"])
    assert set(result["live_class"].values()) == {"wrapped"}
    assert set(result["watched"].values()) == {"plain"}
    assert set(result["after_second_patch"].values()) == {"wrapped"}
    assert set(result["after_unpatch"].values()) == {"plain"}
    # The generated module's own binding of a wrapped TRL function: one wrapper, whichever came first.
    assert result["generated_function"] == "wrapped"
    assert result["generated_function_after_second_patch"] == "wrapped"
    assert result["generated_function_after_unpatch"] == "plain"
    if order == "trl_then_patch":
        # TRL's own class, imported by the user before Unsloth replaced it, is patched too.
        assert set(result["trl_class"].values()) == {"wrapped"}
        assert set(result["trl_class_after_unpatch"].values()) == {"plain"}


def test_a_copied_wrapper_is_replaced_only_when_the_patch_applies(monkeypatch):
    """A module Unsloth generates after patch() binds TRL's wrapped function. Listing the sites (as
    ``doctor`` does) and a skipped target (strict=False, fingerprint mismatch) leave that binding alone;
    applying gives the module one wrapper of its own, and unpatch() restores the plain function."""
    import dataclasses
    import sys
    import types

    import trl.trainer.grpo_trainer as grpo_module
    import wrapt

    import unsloth_vlm_grpo
    from unsloth_vlm_grpo import _engine
    from unsloth_vlm_grpo.patches import per_sample_pixel_values_shuffling as shuffling

    label = "UnslothGRPOTrainer.split_pixel_values_by_grid"
    unsloth_vlm_grpo.patch()
    try:
        copied = grpo_module.split_pixel_values_by_grid
        assert isinstance(copied, wrapt.FunctionWrapper)
        generated = types.ModuleType("UnslothGRPOTrainer")
        generated.split_pixel_values_by_grid = copied
        monkeypatch.setitem(sys.modules, "UnslothGRPOTrainer", generated)
        shuffling.PATCH.sites()
        assert generated.split_pixel_values_by_grid is copied
        changed = dataclasses.replace(shuffling.PATCH, fingerprints={**shuffling.PATCH.fingerprints, label: "0" * 16})
        report = _engine.apply((changed,), strict=False)
        assert [entry.target for entry in report.skipped] == [label]
        assert generated.split_pixel_values_by_grid is copied
        unsloth_vlm_grpo.patch()  # the verified declaration again: now the generated module is wrapped
        own = generated.split_pixel_values_by_grid
        assert isinstance(own, wrapt.FunctionWrapper) and own is not copied
        assert not isinstance(own.__wrapped__, wrapt.FunctionWrapper)
    finally:
        unsloth_vlm_grpo.unpatch()
    assert not isinstance(generated.split_pixel_values_by_grid, wrapt.FunctionWrapper)

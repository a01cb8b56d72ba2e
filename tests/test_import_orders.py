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

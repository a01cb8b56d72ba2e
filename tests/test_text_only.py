"""Drop-in: text-only GRPO is unchanged by patch() (same losses and weights for the same seed)."""

from conftest import ROOT, run_probe


def test_text_only_grpo_identical_with_and_without_patch(tmp_path):
    result = run_probe([str(ROOT / "tests" / "probes" / "text_only_grpo.py")], tmp_path, env={"TRITON_INTERPRET": "1"})
    assert result["applied"] >= 3
    assert len(result["unpatched_losses"]) == 2
    assert result["patched_losses"] == result["unpatched_losses"]
    assert result["training_moved_weights"] is True
    assert result["weights_equal"] is True

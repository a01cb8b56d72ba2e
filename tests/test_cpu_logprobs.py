"""The CPU fallback for TRL's fused LM head computes what TRL's kernel computes, gradients included."""

from conftest import ROOT, run_probe


def test_cpu_fallback_matches_trl_kernel(tmp_path):
    result = run_probe([str(ROOT / "tests" / "probes" / "cpu_logprobs.py")], tmp_path, env={"TRITON_INTERPRET": "1"})
    assert len(result) == 14
    for name, difference in result.items():
        assert difference < 1e-4, f"{name} differs by {difference}"

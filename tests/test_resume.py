"""Checkpoint resume: a run stopped after a checkpoint and resumed in a new process (patch() applied
again) ends with the same step count and the same LoRA weights as an uninterrupted run."""

import torch

from conftest import ROOT, run_probe

PROBE = str(ROOT / "tests" / "probes" / "resume.py")


def test_resumed_run_matches_uninterrupted_run(tmp_path):
    first = run_probe([PROBE, "first", str(tmp_path), str(ROOT / "tests")], tmp_path)
    assert first["global_step"] == 4
    assert (tmp_path / "first" / "checkpoint-4").is_dir()
    resumed = run_probe([PROBE, "resume", str(tmp_path), str(ROOT / "tests")], tmp_path)
    straight = run_probe([PROBE, "straight", str(tmp_path), str(ROOT / "tests")], tmp_path)
    assert resumed["global_step"] == straight["global_step"] == 6
    resumed_weights = torch.load(tmp_path / "resume.pt")
    straight_weights = torch.load(tmp_path / "straight.pt")
    first_weights = torch.load(tmp_path / "first.pt")
    assert resumed_weights.keys() == straight_weights.keys() and len(resumed_weights) > 20
    moved = [name for name in straight_weights if not torch.equal(first_weights[name], straight_weights[name])]
    assert moved, "steps 5-6 changed nothing: the comparison would be vacuous"
    for name, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], value, rtol=1e-5, atol=1e-6, msg=name)

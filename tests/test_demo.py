"""The demo command runs end to end (short mode) and writes its outputs."""

import json

from PIL import Image

from conftest import run_python


def test_demo_short_run_writes_curve_and_summary(tmp_path):
    process = run_python(
        ["-m", "unsloth_vlm_grpo", "demo", "--steps", "4", "--output-dir", str(tmp_path / "out")],
        tmp_path,
        timeout=600,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps"] == 4
    for key in ("start_reward", "final_reward", "seconds", "blank_control_final_reward"):
        assert isinstance(summary[key], float)
    assert 0.0 <= summary["final_reward"] <= 1.0
    with Image.open(tmp_path / "out" / "reward_curve.png") as curve:
        assert curve.size == (640, 400)
    assert "mean reward" in process.stdout and "Done: reward" in process.stdout


def test_demo_model_option_explains_what_it_needs(tmp_path):
    process = run_python(["-m", "unsloth_vlm_grpo", "demo", "--model", str(tmp_path)], tmp_path, timeout=300)
    assert process.returncode == 2
    assert "needs a CUDA GPU" in process.stdout + process.stderr


def test_demo_family_choices_are_the_tiny_families():
    from unsloth_vlm_grpo.__main__ import DEMO_FAMILIES
    from unsloth_vlm_grpo.tiny import FAMILIES

    assert sorted(DEMO_FAMILIES) == sorted(FAMILIES)

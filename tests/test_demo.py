"""The demo, as the README runs it: it learns, says so, and writes its plot and summary; a run that cannot
keep its promise says so and exits non-zero. (This is also the Gemma 3 learning proof and its blank control:
tests/test_learning.py covers the other families.)"""

import json

from PIL import Image

from unsloth_vlm_grpo.demo import CONTROL_TOLERANCE, PROMISED_REWARD

from conftest import run_python


def test_default_demo_keeps_its_promise(tmp_path):
    process = run_python(
        ["-m", "unsloth_vlm_grpo", "demo", "--output-dir", str(tmp_path / "out")], tmp_path, timeout=900
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output[-4000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["family"] == "gemma3" and summary["seed"] == 0 and summary["steps"] == 300
    assert summary["verdict"] == "met"
    assert summary["start_reward"] < summary["chance"] + CONTROL_TOLERANCE
    assert summary["final_reward"] >= PROMISED_REWARD
    assert abs(summary["blank_control_final_reward"] - summary["chance"]) <= CONTROL_TOLERANCE
    assert len(summary["rewards"]) == 300
    assert "Promise met" in output
    # Both runs show the same progress lines and neither dumps TRL's per-step metrics dictionaries.
    assert output.count("step  300/300  mean reward") == 2
    assert "{'loss'" not in output
    with Image.open(tmp_path / "out" / "reward_curve.png") as curve:
        assert curve.size == (800, 500)


def test_short_demo_says_it_did_not_keep_its_promise(tmp_path):
    process = run_python(
        ["-m", "unsloth_vlm_grpo", "demo", "--steps", "8", "--no-control", "--output-dir", str(tmp_path / "out")],
        tmp_path,
        timeout=600,
    )
    output = process.stdout + process.stderr
    assert process.returncode == 1, output[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["verdict"].startswith("not met: reward ended at")
    assert "Promise NOT met" in output
    assert (tmp_path / "out" / "reward_curve.png").exists()


def test_demo_model_option_explains_what_it_needs(tmp_path):
    process = run_python(["-m", "unsloth_vlm_grpo", "demo", "--model", str(tmp_path)], tmp_path, timeout=300)
    assert process.returncode == 2
    assert "needs a CUDA GPU" in process.stdout + process.stderr


def test_demo_family_choices_are_the_tiny_families():
    from unsloth_vlm_grpo.__main__ import DEMO_FAMILIES
    from unsloth_vlm_grpo.tiny import FAMILIES

    assert sorted(DEMO_FAMILIES) == sorted(FAMILIES)

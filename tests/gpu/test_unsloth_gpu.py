"""GPU: the patched stock trainer with Unsloth's FastVisionModel, as users run it (marker ``gpu``).

Each case (20 GRPO steps) builds a tiny VLM offline whose policy favours the image placeholder token, loads it with
``FastVisionModel.from_pretrained``, adds LoRA to vision and language layers, and trains through
``trl.GRPOTrainer`` (Unsloth's generated class). Run on a GPU machine:
``.venv/bin/python -m pytest -m gpu -n 4`` (Unsloth compiles for ~1-2 minutes per process)."""

import pytest

from conftest import ROOT, run_probe

PROBE = str(ROOT / "tests" / "probes" / "unsloth_vision_grpo.py")
CASES = [
    ("qwen2_5_vl", "patch_first", "16bit"),
    ("qwen2_vl", "unsloth_first", "4bit"),
    ("gemma3", "unsloth_first", "16bit"),
]

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(("family", "order", "precision"), CASES)
def test_patched_unsloth_trainer_survives_placeholder_sampling(family, order, precision, tmp_path):
    result = run_probe([PROBE, family, order, "strict", "stress", "20", precision], tmp_path, timeout=900)
    assert result["trainer_class"] == "UnslothGRPOTrainer.UnslothGRPOTrainer"
    assert result["report_skipped"] == []
    assert result["outcome"] == "trained", result.get("traceback_tail")
    assert result["steps_done"] == 20
    assert result["vision_lora_count"] > 0
    assert result["vision_lora_moved"] == result["vision_lora_count"]
    assert result["vision_grad_params"] == result["vision_lora_count"]
    assert result["vision_grad_missing"] == []


def test_unpatched_unsloth_trainer_crashes_on_placeholder_sampling(tmp_path):
    """The control: the same run without the library hits the measured crash."""
    result = run_probe([PROBE, "qwen2_5_vl", "patch_first", "none", "stress", "6", "16bit"], tmp_path, timeout=900)
    assert result["outcome"] == "crashed"
    assert "Image features and image tokens do not match" in result["error"]

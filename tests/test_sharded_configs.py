"""The documented FSDP2 config (``accelerate_configs/fsdp2.yaml``) shards every language decoder layer and each
vision encoder layer (Idefics3: its attention) of each supported family into FSDP units of their own: launched as users launch it, with
Accelerate's own wrap policy asked about every module (``tests/probes/fsdp2_wrap_plan.py``).

Training under FSDP2 and ZeRO runs only on GPUs (tests/gpu/test_sharded_gpu.py): Accelerate 1.16 builds neither
engine on a CPU-only machine.
"""

import pytest

from unsloth_vlm_grpo.tiny import FAMILIES

from conftest import ROOT, run_probe

PROBE = str(ROOT / "tests" / "probes" / "fsdp2_wrap_plan.py")
CONFIG = str(ROOT / "accelerate_configs" / "fsdp2.yaml")


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> dict:
    launcher = ["-m", "accelerate.commands.launch", "--config_file", CONFIG, "--num_processes", "1"]
    env = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return run_probe([*launcher, PROBE], tmp_path_factory.mktemp("fsdp2"), env, timeout=300)


def test_config_file_selects_fsdp2(plan):
    assert plan["use_fsdp"] == "true" and plan["fsdp_version"] == 2 and plan["reshard_after_forward"] is True


# The vision module each family's _no_split_modules makes a unit, one per encoder layer. Idefics3 (SmolVLM) names
# its vision attention, not its encoder layer: the vision MLPs stay in the enclosing unit.
VISION_UNITS = {
    "qwen2_vl": "Qwen2VLVisionBlock",
    "qwen2_5_vl": "Qwen2_5_VLVisionBlock",
    "gemma3": "SiglipEncoderLayer",
    "qwen3_vl": "Qwen3VLVisionBlock",
    "idefics3": "Idefics3VisionAttention",
    "llava_next": "CLIPEncoderLayer",
    "mllama": "MllamaVisionEncoderLayer",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_language_layer_and_vision_layer_is_its_own_unit(plan, family):
    wrapped = plan["families"][family]
    assert wrapped["wrapped_language"] == wrapped["language_layers"], wrapped
    assert wrapped["wrapped_classes"].get(VISION_UNITS[family], 0) >= wrapped["vision_layers"], wrapped

"""Probe: which blocks of each tiny VLM the documented FSDP2 config shards into their own FSDP units.

Usage::

    accelerate launch --config_file accelerate_configs/fsdp2.yaml --num_processes 1 tests/probes/fsdp2_wrap_plan.py

Accelerate's launcher turns the config file into ``FSDP_*`` environment variables; the plugin built here reads
them back as the trainer's Accelerator does, and Accelerate's own FSDP2 wrap policy is asked about every module
of each tiny model (with PEFT LoRA on vision and language layers, as the trainer sees it). Nothing is sharded:
that needs an accelerator device (GPU runs: tests/gpu/test_sharded_gpu.py). Prints ``RESULT <json>``: per
family, the wrapped module classes and counts, and the number of language decoder layers and vision encoder layers.
"""

from __future__ import annotations

import json
import os
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from accelerate.utils import FullyShardedDataParallelPlugin  # noqa: E402
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402

from unsloth_vlm_grpo._gradients import is_vision_parameter  # noqa: E402
from unsloth_vlm_grpo.tiny import FAMILIES, VISION_AND_LANGUAGE_LORA_TARGETS, build_tiny_vlm  # noqa: E402

plugin = FullyShardedDataParallelPlugin()
result = {
    "use_fsdp": os.environ.get("ACCELERATE_USE_FSDP"),
    "fsdp_version": plugin.fsdp_version,
    "reshard_after_forward": plugin.reshard_after_forward,
    "families": {},
}
for family in FAMILIES:
    model = build_tiny_vlm(family, seed=0).model
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=VISION_AND_LANGUAGE_LORA_TARGETS)
    model = get_peft_model(model, lora)
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    wrapped = [(name, module) for name, module in model.named_modules() if policy is not None and policy(module)]
    config = model.get_base_model().config
    vision = config.vision_config
    result["families"][family] = {
        "wrapped_classes": dict(Counter(type(module).__name__ for _, module in wrapped)),
        "wrapped_vision": sum(is_vision_parameter(name) for name, _ in wrapped),
        "wrapped_language": sum(not is_vision_parameter(name) for name, _ in wrapped),
        "language_layers": config.get_text_config(decoder=True).num_hidden_layers,
        "vision_layers": getattr(vision, "depth", None) or vision.num_hidden_layers,
    }
print("RESULT " + json.dumps(result), flush=True)

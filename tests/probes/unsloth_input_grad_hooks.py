"""Probe: with Unsloth imported, ``gradient_checkpointing_enable`` stacks input-embedding hooks as
transformers' does, and ``stale_input_grad_hooks`` leaves each embedding with the hook of the last call.

Runs on CPU (UNSLOTH_ALLOW_CPU=1 makes ``import unsloth`` install its replacement of
``PreTrainedModel.enable_input_require_grads``). Prints ``RESULT <json>``."""

import json
import os

os.environ["UNSLOTH_ALLOW_CPU"] = "1"

import unsloth  # noqa: E402,F401
from transformers import PreTrainedModel  # noqa: E402

from unsloth_vlm_grpo.patches.stale_input_grad_hooks import (  # noqa: E402
    live_hook_ids,
    prune_stale_input_grad_hooks,
    require_grads_hook_keys,
)
from unsloth_vlm_grpo.tiny import build_tiny_vlm  # noqa: E402


def hooks_per_embedding(model):
    found = {name: require_grads_hook_keys(module) for name, module in model.named_modules()}
    return {name: keys for name, keys in found.items() if keys}


model = build_tiny_vlm("gemma3").model
for _ in range(3):
    model.gradient_checkpointing_enable()
before = hooks_per_embedding(model)
removed = prune_stale_input_grad_hooks(model)
after = hooks_per_embedding(model)
live = live_hook_ids(model)
result = {
    "enable_input_require_grads_file": PreTrainedModel.enable_input_require_grads.__code__.co_filename,
    "before": {name: len(keys) for name, keys in before.items()},
    "after": {name: len(keys) for name, keys in after.items()},
    "removed": removed,
    "after_all_live": all(key in live for keys in after.values() for key in keys),
}
print("RESULT " + json.dumps(result))

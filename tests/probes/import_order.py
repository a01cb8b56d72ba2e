"""Probe: apply patch() in a given import order next to a real Unsloth-generated GRPO trainer.

Usage: python import_order.py {unsloth_first,patch_first,trl_then_patch}. Prints ``RESULT <json>``.
Runs on CPU: UNSLOTH_ALLOW_CPU=1 makes ``import unsloth`` take its GPU code path, and
``_patch_trl_rl_trainers`` then generates the real UnslothGRPOTrainer, as on a GPU.
"""

import json
import os
import sys

import wrapt

os.environ["UNSLOTH_ALLOW_CPU"] = "1"
order = sys.argv[1]
METHODS = ("_generate", "_generate_single_turn")
WATCHED = ("_get_per_token_logps_and_entropies", "_compute_loss")


def generate_unsloth_trainer():
    import unsloth  # noqa: F401
    import unsloth.models.rl as rl

    rl._patch_trl_rl_trainers("grpo_trainer")


def wrap_state(cls, methods=METHODS):
    state = {}
    for name in methods:
        owner = next(k for k in cls.__mro__ if name in vars(k))
        attribute = vars(owner)[name]
        wrapped_once = isinstance(attribute, wrapt.FunctionWrapper)
        stacked = wrapped_once and isinstance(attribute.__wrapped__, wrapt.FunctionWrapper)
        state[name] = "stacked" if stacked else ("wrapped" if wrapped_once else "plain")
    return state


def generated_function_state():
    """The generated module's own binding of a TRL module function that a patch wraps."""
    bound = vars(sys.modules["UnslothGRPOTrainer"])["split_pixel_values_by_grid"]
    wrapped_once = isinstance(bound, wrapt.FunctionWrapper)
    stacked = wrapped_once and isinstance(bound.__wrapped__, wrapt.FunctionWrapper)
    return "stacked" if stacked else ("wrapped" if wrapped_once else "plain")


import unsloth_vlm_grpo  # noqa: E402

trl_class = None
if order == "unsloth_first":
    generate_unsloth_trainer()
    report = unsloth_vlm_grpo.patch()
elif order == "patch_first":
    report = unsloth_vlm_grpo.patch()
    generate_unsloth_trainer()
elif order == "trl_then_patch":
    from trl import GRPOTrainer as trl_class

    report = unsloth_vlm_grpo.patch()
    generate_unsloth_trainer()
else:
    raise SystemExit(f"unknown order {order}")

import trl  # noqa: E402

result = {
    "live_class_module": trl.GRPOTrainer.__module__,
    "live_class": wrap_state(trl.GRPOTrainer),
    "trl_class": wrap_state(trl_class) if trl_class is not None else None,
    "applied": sorted(label for _, label in unsloth_vlm_grpo._engine.applied_sites()),
    "patched": unsloth_vlm_grpo.is_patched(),
    "generated_function": generated_function_state(),
    # Watched by mllama_scoring_fields, mllama_loss_fields, padded_pixel_values_scoring on Unsloth's class.
    "watched": wrap_state(trl.GRPOTrainer, WATCHED),
}
unsloth_vlm_grpo.patch()  # a second call must not stack wrappers
result["after_second_patch"] = wrap_state(trl.GRPOTrainer)
result["generated_function_after_second_patch"] = generated_function_state()
unsloth_vlm_grpo.unpatch()
result["after_unpatch"] = wrap_state(trl.GRPOTrainer)
result["generated_function_after_unpatch"] = generated_function_state()
result["trl_class_after_unpatch"] = wrap_state(trl_class) if trl_class is not None else None
print("RESULT " + json.dumps(result))

"""Remove the input-embedding hooks that each gradient-checkpointing toggle leaves behind.

Target: ``GRPOTrainer._prepare_inputs`` on TRL's class and on Unsloth's generated class (trl 1.15.0,
unsloth 2026.10.9, transformers 5.17.0).
Why: every GRPO generation turns gradient checkpointing off and on again (TRL's
``unwrap_model_for_generation`` and ``disable_gradient_checkpointing``, Unsloth's copies of them), and
each ``gradient_checkpointing_enable`` calls ``enable_input_require_grads``, which registers a new
``make_inputs_require_grads`` forward hook on every input embedding (the text embedding and, in a VLM, the
vision tower's patch embedding) and forgets the handles of the previous ones; transformers' and Unsloth's
versions alike. The hooks pile up, one more per embedding per toggle. Under Unsloth this is what made
Gemma 3 slow down as it trained (measured on an H200: 1.9 s per step at step 2, 3.6 s at step 35): its
compiled ``SiglipVisionEmbeddings_forward`` guards on the number of hooks on ``patch_embedding``, so
every new hook recompiles it ("len(self._modules['patch_embedding']._forward_hooks) != 22"). After
each ``_prepare_inputs`` (where generation and the old/ref log-prob scoring run) the hooks that no model
still holds a handle to are removed from every embedding that also has a hook from the last call; an
embedding whose hooks are all orphaned keeps them, so gradients never stop flowing. Not wrapped at
``enable_input_require_grads`` itself: ``import unsloth`` replaces that class attribute with its own
function, so a wrapper put there by a ``patch()`` that came first would be lost; the trainer method is
followed into Unsloth's generated class in every import order.
Remove when: ``enable_input_require_grads`` removes its earlier hooks (transformers and Unsloth), or TRL
stops re-enabling gradient checkpointing around generation. No upstream report found as of transformers
5.17.0 / unsloth 2026.10.9.
"""

from __future__ import annotations

import logging

import torch

from .._engine import GRPOTrainerMethod, Patch

logger = logging.getLogger("unsloth_vlm_grpo")

HOOK_NAME = "make_inputs_require_grads"


def live_hook_ids(model: torch.nn.Module) -> set[int]:
    """Ids of the hooks each model's last ``enable_input_require_grads`` call registered."""
    live = set()
    for module in model.modules():
        handles = list(getattr(module, "_require_grads_hooks", None) or ())
        single = getattr(module, "_require_grads_hook", None)
        live.update(handle.id for handle in [*handles, single] if handle is not None)
    return live


def require_grads_hook_keys(module: torch.nn.Module) -> list[int]:
    """Keys of the ``make_inputs_require_grads`` forward hooks on this one module, oldest first."""
    return [key for key, hook in module._forward_hooks.items() if getattr(hook, "__name__", "") == HOOK_NAME]


def prune_stale_input_grad_hooks(model: torch.nn.Module) -> int:
    """Remove ``make_inputs_require_grads`` hooks that a later enable call replaced; return how many."""
    live = live_hook_ids(model)
    removed = 0
    for module in model.modules():
        hooks = require_grads_hook_keys(module)
        stale = [key for key in hooks if key not in live]
        if len(stale) == len(hooks):
            continue  # no live hook here: keep what there is rather than cut the gradient path
        for key in stale:
            del module._forward_hooks[key]
            module._forward_hooks_with_kwargs.pop(key, None)
            module._forward_hooks_always_called.pop(key, None)
        removed += len(stale)
    return removed


def _prune_after_prepare_inputs(wrapped, trainer, args, kwargs):
    inputs = wrapped(*args, **kwargs)
    removed = prune_stale_input_grad_hooks(trainer.model)
    if removed:
        logger.debug("unsloth_vlm_grpo: removed %d stale input-embedding hooks", removed)
    return inputs


PATCH = Patch(
    name="stale_input_grad_hooks",
    targets=(GRPOTrainerMethod("_prepare_inputs"),),
    wrapper=_prune_after_prepare_inputs,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9", "transformers": "5.17.0"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._prepare_inputs": "f824e7fb07147956",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._prepare_inputs": "306ebe3c31c10f19",
    },
    reason="Each gradient-checkpointing toggle adds input-embedding hooks; Unsloth's compiled Gemma 3 vision "
    "embedding recompiles for every new one and training slows down step by step.",
    remove_when="enable_input_require_grads replaces its earlier hooks instead of adding to them.",
)

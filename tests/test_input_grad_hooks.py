"""Input-embedding hooks do not pile up over GRPO steps (patch ``stale_input_grad_hooks``).

Each generation toggles gradient checkpointing, and each re-enable adds a ``make_inputs_require_grads``
hook to every input embedding. Under Unsloth, Gemma 3's compiled vision embedding recompiles for each new
hook (GPU run: docs/verification.md); here, on CPU with TRL's class, the hooks are counted directly.
"""

import pytest
import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

import unsloth_vlm_grpo
from unsloth_vlm_grpo.patches.stale_input_grad_hooks import (
    live_hook_ids,
    prune_stale_input_grad_hooks,
    require_grads_hook_keys,
)

from conftest import ROOT, run_probe
from grpo_helpers import VISION_AND_LANGUAGE_LORA, colour_dataset, distinct_characters_reward, grpo_config


def require_grads_hooks(model: torch.nn.Module) -> dict[str, int]:
    counts = {name: len(require_grads_hook_keys(module)) for name, module in model.named_modules()}
    return {name: count for name, count in counts.items() if count}


class CountHooks(TrainerCallback):
    def __init__(self):
        self.per_step: list[dict[str, int]] = []
        self.all_live: list[bool] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.per_step.append(require_grads_hooks(model))
        live = live_hook_ids(model)
        kept = [key for module in model.modules() for key in require_grads_hook_keys(module)]
        self.all_live.append(all(key in live for key in kept))


def train_counting_hooks(tiny, tmp_path, peft: bool) -> tuple[CountHooks, object]:
    """Reentrant checkpointing: there the LoRA matrices get no gradient unless the embedding output
    requires grad, so a pruning that removed the live hook would fail the gradient check."""
    counter = CountHooks()
    args = grpo_config(
        tmp_path, max_steps=4, gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
    )
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=args,
        train_dataset=colour_dataset(),
        callbacks=[counter],
        peft_config=VISION_AND_LANGUAGE_LORA if peft else None,
    )
    with unsloth_vlm_grpo.record_vision_gradients(trainer.model) as gradients:
        trainer.train()
    return counter, gradients


@pytest.mark.parametrize("peft", [True, False], ids=["peft-lora", "full"])
def test_hooks_stay_one_per_embedding_and_gradients_still_flow(peft, tiny_factory, tmp_path):
    unsloth_vlm_grpo.patch()
    try:
        counter, gradients = train_counting_hooks(tiny_factory("gemma3"), tmp_path, peft)
    finally:
        unsloth_vlm_grpo.unpatch()
    first = counter.per_step[0]
    assert any("vision" in name and name.endswith("patch_embedding") for name in first), first
    assert any(name.endswith("embed_tokens") for name in first), first
    assert set(first.values()) == {1}, first
    assert counter.per_step == [first] * 4
    assert counter.all_live == [True] * 4  # the hook kept is the one the model holds a handle to
    assert gradients.norms and gradients.missing == []


@pytest.mark.upstream
def test_unpatched_hooks_pile_up(tiny_factory, tmp_path):
    """The control: every other patch applied, this one not: every step leaves more hooks on each embedding."""
    unsloth_vlm_grpo.patch(exclude=("stale_input_grad_hooks",))
    try:
        counter, _ = train_counting_hooks(tiny_factory("gemma3"), tmp_path, peft=True)
    finally:
        unsloth_vlm_grpo.unpatch()
    patch_embedding_counts = [
        next(count for name, count in step.items() if name.endswith("patch_embedding")) for step in counter.per_step
    ]
    assert patch_embedding_counts == sorted(patch_embedding_counts)
    assert patch_embedding_counts[-1] >= patch_embedding_counts[0] + 3, patch_embedding_counts


def test_an_embedding_whose_hooks_are_all_orphaned_keeps_them():
    """Pruning never leaves an embedding without its hook when no model holds a handle to any of them."""
    embedding = torch.nn.Embedding(4, 2)

    def make_inputs_require_grads(module, inputs, output):
        output.requires_grad_(True)

    embedding.register_forward_hook(make_inputs_require_grads)
    embedding.register_forward_hook(make_inputs_require_grads)
    assert prune_stale_input_grad_hooks(embedding) == 0
    assert require_grads_hooks(embedding) == {"": 2}
    embedding._require_grads_hooks = [embedding.register_forward_hook(make_inputs_require_grads)]
    assert prune_stale_input_grad_hooks(embedding) == 2
    assert list(embedding._forward_hooks) == [embedding._require_grads_hooks[0].id]


def test_unsloths_enable_input_require_grads_stacks_and_is_pruned_to_the_live_hook(tmp_path):
    """With ``import unsloth`` (its replacement of ``enable_input_require_grads``), three enables leave three
    hooks per embedding, and pruning leaves the live one: the names the patch relies on are Unsloth's too.
    When this stops stacking upstream, the patch can go (its removal condition)."""
    result = run_probe([str(ROOT / "tests" / "probes" / "unsloth_input_grad_hooks.py")], tmp_path)
    assert result["enable_input_require_grads_file"].endswith("unsloth/import_fixes.py")
    embeddings = {"model.vision_tower.embeddings.patch_embedding", "model.language_model.embed_tokens"}
    assert result["before"] == dict.fromkeys(embeddings, 3)
    assert result["after"] == dict.fromkeys(embeddings, 1)
    assert result["removed"] == 4 and result["after_all_live"] is True

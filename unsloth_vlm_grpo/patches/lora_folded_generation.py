"""Generate through a copy of the model with LoRA folded into its weights (opt-in: ``patch(include=...)``).

Target: ``GRPOTrainer._generate_single_turn`` on TRL's class (trl 1.15.0), transformers generation of a PEFT
LoRA model (not vLLM, continuous batching, FSDP or DeepSpeed; not Unsloth's class, whose FastVisionModel
has generation paths of its own).
Why: TRL generates through PEFT's unmerged LoRA, so every adapted linear layer runs three matmuls per decode
step (H200, Qwen2.5-VL-3B shapes, LoRA r=8 on 413 linears: 70-103 ms per decode step unmerged, 49 ms merged,
measured 2026-12-02); merging and unmerging the trained weights every step drifts them in bf16
(huggingface/trl#6688). Here generation runs through a structural copy of the base model whose adapted
linears hold ``base + delta`` in tensors of their own, refreshed in place (same addresses) whenever the trained
weights have changed since the last generation; every other tensor is shared, and the trained weights are
never written. Memory: one extra copy of the adapted layers' weights. The copy has no LoRA dropout: with
``lora_dropout > 0`` the sampling distribution is the model's without dropout. Layers it cannot fold (DoRA,
quantised base layers) keep today's path, said once in the log. Linear and convolution layers are folded.
Remove when: TRL or PEFT generate with folded LoRA weights without touching the trained ones (not the case
as of trl 1.15.0 / peft 0.21).
"""

from __future__ import annotations

import copy
import itertools
import logging

import torch

from .._engine import GRPOTrainerMethod, Patch
from .._generation import generate_replaced, kept_for_model, other_generation_path

logger = logging.getLogger("unsloth_vlm_grpo")
FOLDED_COPY_KEY = "_unsloth_vlm_grpo_folded_generation"


class NotFoldable(Exception):
    """The model has LoRA layers this patch cannot fold; generation keeps PEFT's own path."""


def _lora_layers(model) -> dict:
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


_FOLDABLE_BASES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def _check_foldable(name: str, layer) -> None:
    if type(getattr(layer, "base_layer", None)) not in _FOLDABLE_BASES or not hasattr(layer, "get_delta_weight"):
        raise NotFoldable(f"{name} is a {type(layer).__name__} over {type(layer.base_layer).__name__}")
    if layer.merged or any(layer.use_dora.get(adapter, False) for adapter in layer.active_adapters):
        raise NotFoldable(f"{name} is merged or uses DoRA")


class FoldedCopy:
    """A copy of ``peft_model``'s base model that shares every tensor except the adapted linears' weights,
    which hold ``base + delta`` of the active adapters."""

    def __init__(self, peft_model):
        base = peft_model.get_base_model()
        layers = _lora_layers(base)
        for name, layer in layers.items():
            _check_foldable(name, layer)
        shared = {id(tensor): tensor for tensor in itertools.chain(base.parameters(), base.buffers())}
        self.model = copy.deepcopy(base, memo=shared)
        self.model.generation_config = base.generation_config  # TRL overrides it for the call: share it
        # TRL 1.15 sets ``forward`` on the trained model's instance to a closure over that model's own forward (its
        # fused log-prob head); a deep copy keeps the closure, and the copy would generate through the trained,
        # unfolded model. The copy's top-level forward is its class's. (With cast_lm_head_to_fp32 TRL also wraps
        # lm_head.forward; that closure reads the shared, never-adapted head weight, so it is left.)
        vars(self.model).pop("forward", None)
        # The copy is made before TRL switches gradient checkpointing off for generation; a checkpointed layer in
        # training mode drops the KV cache, so the copy's layers never checkpoint.
        for module in self.model.modules():
            if getattr(module, "gradient_checkpointing", False):
                module.gradient_checkpointing = False
        self.pairs = []
        for name, layer in layers.items():
            # The base layer again (a Linear or Conv), sharing everything but a weight of its own.
            base_layer = layer.base_layer
            keep = {id(tensor): tensor for tensor in itertools.chain(base_layer.parameters(), base_layer.buffers())}
            del keep[id(base_layer.weight)]
            folded = copy.deepcopy(base_layer, memo=keep)
            folded.weight.requires_grad_(False)
            self.model.set_submodule(name, folded)
            self.pairs.append((layer, folded))
        self.base = base
        self.refreshed_at = None
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        for layer, folded in self.pairs:
            delta = sum(layer.get_delta_weight(adapter) for adapter in layer.active_adapters if adapter in layer.lora_A)
            torch.add(layer.base_layer.weight, delta, out=folded.weight)

    def refresh_if_trained(self, step: int) -> None:
        """Refresh once per optimizer step: the trained weights change only there."""
        self.model.train(self.base.training)  # dropout and friends as in the model generation would have used
        if self.refreshed_at != step:
            self.refresh()
            self.refreshed_at = step


def _build_folded_copy(trainer, peft_model) -> FoldedCopy | None:
    flag = other_generation_path(trainer)
    if flag:
        logger.info("unsloth_vlm_grpo: generating through PEFT's unmerged LoRA: %s is set", flag)
        return None
    try:
        folded = FoldedCopy(peft_model)
        logger.info("unsloth_vlm_grpo: generating through a LoRA-folded copy of %d adapted layers", len(folded.pairs))
    except NotFoldable as reason:
        folded = None
        logger.info("unsloth_vlm_grpo: generating through PEFT's unmerged LoRA: %s", reason)
    return folded


def _generate_with_folded_lora(wrapped, trainer, args, kwargs):
    from peft import PeftModel

    peft_model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
    if not isinstance(peft_model, PeftModel):
        return wrapped(*args, **kwargs)
    folded = kept_for_model(trainer, FOLDED_COPY_KEY, peft_model, lambda: _build_folded_copy(trainer, peft_model))
    if folded is None:
        return wrapped(*args, **kwargs)
    folded.refresh_if_trained(trainer.state.global_step)
    with generate_replaced(peft_model, folded.model.generate):
        return wrapped(*args, **kwargs)


PATCH = Patch(
    name="lora_folded_generation",
    targets=(GRPOTrainerMethod("_generate_single_turn", classes="trl"),),
    wrapper=_generate_with_folded_lora,
    verified={"trl": "1.15.0", "peft": "0.21"},
    fingerprints={"trl.trainer.grpo_trainer.GRPOTrainer._generate_single_turn": "53f746335e1db41f"},
    reason="TRL generates through PEFT's unmerged LoRA: three matmuls per adapted layer per decode step.",
    remove_when="TRL or PEFT generate with folded LoRA weights without touching the trained ones.",
    opt_in=True,
)

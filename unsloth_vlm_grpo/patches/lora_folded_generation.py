"""Generate through a copy of the model with LoRA folded into its weights (opt-in: ``patch(include=...)``).

Target: ``GRPOTrainer._generate_single_turn`` on TRL's class (trl 1.15.0) and Unsloth's generated class
(unsloth 2026.10.9), transformers generation of a PEFT LoRA model (not vLLM, continuous batching, FSDP or
DeepSpeed). The copy of a FastVisionModel keeps Unsloth's ``generate``, bound to the copy.
Why: TRL generates through PEFT's unmerged LoRA, so every adapted linear layer runs three matmuls per decode
step (H200, Qwen2.5-VL-3B shapes, LoRA r=8 on 413 linears: 70-103 ms per decode step unmerged, 49 ms merged,
measured 2026-12-02); merging and unmerging the trained weights every step drifts them in bf16
(huggingface/trl#6688). Here generation runs through a structural copy of the base model whose adapted
linears hold ``base + delta`` in tensors of their own, refreshed in place (same addresses) whenever the trained
weights have changed since the last generation; every other tensor is shared, and the trained weights are
never written. Memory: one extra copy of the adapted layers' weights. A QLoRA model (bitsandbytes 4-bit) gets a
dequantised copy: every 4-bit layer, adapted or not, becomes a plain linear layer in the dtype of the model's
unquantised weights (bf16 for a model loaded in bf16; fp32 after peft's kbit preparation upcasts them), adapted
ones holding dequantised base + delta, so the copy is no quantised model and its decoding can be compiled; memory
is those layers' weights in that dtype, logged when the copy is made. The copy is made only where it takes at most
half the memory not in use on each CUDA device it goes to, at the first generation (the KV cache, activations and
optimizer states grow after it); otherwise generation keeps PEFT's path, said once in the log. The copy has no LoRA
dropout: with ``lora_dropout > 0`` the sampling distribution is the model's without dropout. Layers it cannot fold
(DoRA, other quantisations) keep today's path, said once in the log. Linear and convolution layers are folded.
Remove when: TRL or PEFT generate with folded LoRA weights without touching the trained ones (not the case
as of trl 1.15.0 / peft 0.21).
"""

from __future__ import annotations

import copy
import itertools
import logging
import sys

import torch

from .._engine import GRPOTrainerMethod, Patch
from .._generation import generate_replaced, kept_for_model, other_generation_path

logger = logging.getLogger("unsloth_vlm_grpo")
FOLDED_COPY_KEY = "_unsloth_vlm_grpo_folded_generation"


class NoFoldedCopy(Exception):
    """No generation copy is made (layers this patch cannot fold, or too little GPU memory): generation keeps
    PEFT's own path."""


def _lora_layers(model) -> dict:
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


_FOLDABLE_BASES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def _is_4bit(module) -> bool:
    bitsandbytes = sys.modules.get("bitsandbytes")  # a model holds bitsandbytes layers only once it is imported
    return bitsandbytes is not None and isinstance(module, bitsandbytes.nn.Linear4bit)


def _check_foldable(name: str, layer) -> None:
    base = getattr(layer, "base_layer", None)
    if not (type(base) in _FOLDABLE_BASES or _is_4bit(base)) or not hasattr(layer, "get_delta_weight"):
        raise NoFoldedCopy(f"{name} is a {type(layer).__name__} over {type(base).__name__}")
    if layer.merged or any(layer.use_dora.get(adapter, False) for adapter in layer.active_adapters):
        raise NoFoldedCopy(f"{name} is merged or uses DoRA")


def _dequantise(layer) -> torch.Tensor:
    from bitsandbytes.functional import dequantize_4bit

    return dequantize_4bit(layer.weight.data, layer.weight.quant_state)


def _dequantised(layer, dtype: torch.dtype) -> torch.nn.Linear:
    """A plain linear layer holding ``layer``'s dequantised 4-bit weight in ``dtype``, and a bias of its own:
    bitsandbytes casts the bias it holds to each input's dtype, in place."""
    linear = torch.nn.Linear(layer.in_features, layer.out_features, bias=False, device="meta")
    linear.weight = torch.nn.Parameter(_dequantise(layer).to(dtype), requires_grad=False)
    if layer.bias is not None:
        linear.bias = torch.nn.Parameter(layer.bias.detach().to(dtype), requires_grad=False)
    return linear


def copy_bytes_by_device(base, dtype: torch.dtype) -> dict[torch.device, int]:
    """The bytes of weights a folded copy of ``base`` holds of its own, by device: each adapted layer's weight
    and each other 4-bit layer's, a 4-bit one dequantised to ``dtype``."""
    adapted = [layer.base_layer for layer in _lora_layers(base).values()]
    seen = {id(layer) for layer in adapted}
    layers = adapted + [module for module in base.modules() if _is_4bit(module) and id(module) not in seen]
    needed: dict[torch.device, int] = {}
    for layer in layers:
        weight = layer.weight
        size = layer.in_features * layer.out_features * dtype.itemsize if _is_4bit(layer) else weight.nbytes
        needed[weight.device] = needed.get(weight.device, 0) + size
    return needed


def available_bytes(device: torch.device) -> int | None:
    """Memory on ``device`` not in use (free on the GPU, plus what PyTorch's allocator holds unused); None off CUDA."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def _check_memory(base, dtype: torch.dtype) -> None:
    for device, needed in copy_bytes_by_device(base, dtype).items():
        available = available_bytes(device)
        if available is not None and 2 * needed > available:
            raise NoFoldedCopy(
                f"the copy would take {needed / 2**30:.2f} GiB of {device}, more than half of its "
                f"{available / 2**30:.2f} GiB not in use"
            )


def _base_weight(base_layer) -> torch.Tensor:
    return _dequantise(base_layer) if _is_4bit(base_layer) else base_layer.weight


class FoldedCopy:
    """A copy of ``peft_model``'s base model that shares every tensor except the adapted linears' weights,
    which hold ``base + delta`` of the active adapters (and, for a 4-bit model, its dequantised weights)."""

    def __init__(self, peft_model):
        base = peft_model.get_base_model()
        layers = _lora_layers(base)
        for name, layer in layers.items():
            _check_foldable(name, layer)
        dtype = base.dtype  # the unquantised weights', so the activations' (fp32 after peft's kbit preparation)
        _check_memory(base, dtype)
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
            base_layer = layer.base_layer
            if _is_4bit(base_layer):
                folded = _dequantised(base_layer, dtype)
            else:  # the base layer again (a Linear or Conv), sharing everything but a weight of its own
                keep = {id(t): t for t in itertools.chain(base_layer.parameters(), base_layer.buffers())}
                del keep[id(base_layer.weight)]
                folded = copy.deepcopy(base_layer, memo=keep)
                folded.weight.requires_grad_(False)
            self.model.set_submodule(name, folded)
            self.pairs.append((layer, folded))
        self._dequantise_the_rest(dtype)
        own = [*self.rest, *(folded for _, folded in self.pairs)]
        self.extra_bytes = sum(layer.weight.numel() * layer.weight.element_size() for layer in own)
        self.base = base
        self.refreshed_at = None
        self.refresh()

    def _dequantise_the_rest(self, dtype: torch.dtype) -> None:
        """4-bit layers LoRA does not adapt (Qwen's vision merger, say) are dequantised too: the copy is then no
        quantised model, which transformers compiles."""
        self.rest = []
        for name, module in list(self.model.named_modules()):
            if _is_4bit(module):
                linear = _dequantised(module, dtype)
                self.model.set_submodule(name, linear)
                self.rest.append(linear)
        leftover = [name for name, m in self.model.named_modules() if type(m).__module__.startswith("bitsandbytes")]
        if leftover:
            raise NoFoldedCopy(f"{leftover[0]} is a {type(self.model.get_submodule(leftover[0])).__name__}")
        quantizer = getattr(self.model, "hf_quantizer", None)
        dequantised = self.rest or any(_is_4bit(layer.base_layer) for layer, _ in self.pairs)
        if quantizer is not None and dequantised:
            if getattr(quantizer.quantization_config, "quant_method", None) != "bitsandbytes":
                raise NoFoldedCopy(f"a {type(quantizer).__name__} model's other layers cannot be dequantised")
            self.model.hf_quantizer = None
            self.model.is_loaded_in_4bit = False

    @torch.no_grad()
    def refresh(self) -> None:
        for layer, folded in self.pairs:
            delta = sum(layer.get_delta_weight(adapter) for adapter in layer.active_adapters if adapter in layer.lora_A)
            torch.add(_base_weight(layer.base_layer), delta, out=folded.weight)
            if folded.bias is not None and folded.bias is not layer.base_layer.bias:  # a dequantised layer's own
                folded.bias.copy_(layer.base_layer.bias)

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
        logger.info(
            "unsloth_vlm_grpo: generating through a LoRA-folded copy of %d adapted layers%s (%.2f GiB of weights of "
            "its own)",
            len(folded.pairs),
            f" and {len(folded.rest)} dequantised 4-bit layers" if folded.rest else "",
            folded.extra_bytes / 2**30,
        )
    except NoFoldedCopy as reason:
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
    targets=(GRPOTrainerMethod("_generate_single_turn"),),
    wrapper=_generate_with_folded_lora,
    verified={"trl": "1.15.0", "peft": "0.21", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._generate_single_turn": "53f746335e1db41f",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._generate_single_turn": "01050f9caae43331",
    },
    reason="TRL generates through PEFT's unmerged LoRA: three matmuls per adapted layer per decode step.",
    remove_when="TRL or PEFT generate with folded LoRA weights without touching the trained ones.",
    opt_in=True,
)

"""Compute TRL's fused LM-head log-probabilities with plain torch when the tensors are on the CPU.

Target: ``trl.kernels.chunked_logprob.ChunkedLogProbFunction.apply`` (trl 1.15.0).
Why: TRL 1.15 scores completions through ``add_fused_lm_head``, whose autograd function launches a Triton
kernel. On a machine without a GPU that fails with ``RuntimeError: 0 active drivers``, so GRPO cannot run
on CPU at all (CI, the demo, laptops). For CPU tensors this computes the same outputs with torch ops and
lets autograd differentiate them. GPU tensors, and CPU tensors under ``TRITON_INTERPRET=1``, still go to
TRL's kernel.
Remove when: TRL's fused head has a CPU path of its own. No upstream report found as of trl 1.15.0
(huggingface/trl#7244, open, proposes Triton kernels with torch fallbacks).
"""

from __future__ import annotations

import os

import torch

from .._engine import FunctionTarget, Patch


def _triton_interprets() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def logprobs_in_torch(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    temperature: float,
    _chunk_size: int,
    final_logit_softcapping: float | None = None,
    logit_scale: float = 1.0,
    outputs: tuple[str, ...] = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1"),
) -> tuple[torch.Tensor | None, ...]:
    """The five outputs of TRL's ``ChunkedLogProbFunction``, from full logits, in float32."""
    device_type = hidden.device.type
    compute_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
    with torch.autocast(device_type, enabled=False):
        logits = hidden.to(compute_dtype) @ weight.to(compute_dtype).t()
        if bias is not None:
            logits = logits + bias.to(compute_dtype)
        logits = logits.float() * logit_scale
        if final_logit_softcapping is not None:
            logits = final_logit_softcapping * torch.tanh(logits / final_logit_softcapping)
        logits = logits / temperature
        log_z = torch.logsumexp(logits, dim=-1)
        log_probs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
        entropy = log_sum_sq_probs = mean_logits = is_top1 = None
        if "entropy" in outputs:
            entropy = log_z - (torch.softmax(logits, dim=-1) * logits).sum(-1)
        if "log_sum_sq_probs" in outputs:
            log_sum_sq_probs = torch.logsumexp(2 * (logits - log_z.unsqueeze(-1)), dim=-1).detach()
        if "mean_logits" in outputs:
            mean_logits = logits.mean(-1).detach()
        if "is_top1" in outputs:
            is_top1 = logits.argmax(-1) == targets
    return log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1


def _route_cpu_tensors_to_torch(wrapped, _instance, args, kwargs):
    hidden = args[0] if args else kwargs["hidden"]
    if hidden.device.type == "cpu" and not _triton_interprets():
        return logprobs_in_torch(*args, **kwargs)
    return wrapped(*args, **kwargs)


PATCH = Patch(
    name="cpu_fused_logprobs",
    targets=(
        FunctionTarget(
            "trl.kernels.chunked_logprob",
            "ChunkedLogProbFunction.apply",
            fingerprint_of="ChunkedLogProbFunction.forward",
        ),
    ),
    wrapper=_route_cpu_tensors_to_torch,
    verified={"trl": "1.15.0"},
    fingerprints={"trl.kernels.chunked_logprob.ChunkedLogProbFunction.apply": "7b88a559faad3917"},
    reason="TRL 1.15's fused LM head runs a Triton kernel that fails on CPU ('0 active drivers').",
    remove_when="TRL's add_fused_lm_head falls back to torch on devices Triton cannot drive.",
)

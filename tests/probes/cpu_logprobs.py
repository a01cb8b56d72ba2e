"""Probe: the CPU fallback against TRL's own fused-head kernel (run under TRITON_INTERPRET=1).

Prints the largest differences in every output and in the gradients of hidden states and weights."""

import json

import torch
from trl.kernels.chunked_logprob import OPTIONAL_OUTPUTS, ChunkedLogProbFunction

from unsloth_vlm_grpo.patches.cpu_fused_logprobs import logprobs_in_torch

result = {}
for softcap, scale, bias in ((None, 1.0, False), (30.0, 0.5, True)):
    torch.manual_seed(0)
    hidden = torch.randn(7, 16, dtype=torch.float64)
    weight = torch.randn(50, 16, dtype=torch.float64)
    bias_tensor = torch.randn(50, dtype=torch.float64) if bias else None
    targets = torch.randint(0, 50, (7,))
    outputs = {}
    for name, function in (("kernel", ChunkedLogProbFunction.apply), ("torch", logprobs_in_torch)):
        h, w = hidden.clone().float().requires_grad_(), weight.clone().float().requires_grad_()
        b = bias_tensor.float() if bias_tensor is not None else None
        log_probs, entropy, lssp, mean, top1 = function(h, w, b, targets, 0.7, 16, softcap, scale, OPTIONAL_OUTPUTS)
        (log_probs.sum() + 0.3 * entropy.sum()).backward()
        outputs[name] = (log_probs, entropy, lssp, mean, top1.float(), h.grad, w.grad)
    names = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "grad_hidden", "grad_weight")
    for index, name in enumerate(names):
        difference = (outputs["kernel"][index] - outputs["torch"][index]).abs().max().item()
        result[f"softcap={softcap}:{name}"] = difference
print("RESULT " + json.dumps(result))

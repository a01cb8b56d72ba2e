"""``record_vision_gradients``: see, on your own model and trainer, which vision-tower parameters get a
gradient during training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

VISION_NAME_PARTS = ("visual", "vision_tower", "vision_model", "vision_encoder", "image_encoder")


def is_vision_parameter(name: str) -> bool:
    return any(part in name for part in VISION_NAME_PARTS)


@dataclass
class VisionGradients:
    """Largest gradient norm seen per trainable vision parameter (0.0: never got a non-zero gradient)."""

    norms: dict[str, float] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        """Trainable vision parameters that never received a non-zero gradient."""
        return sorted(name for name, norm in self.norms.items() if norm == 0.0)

    def __str__(self) -> str:
        lines = [f"{norm:10.3e}  {name}" for name, norm in sorted(self.norms.items())]
        summary = f"{len(self.norms) - len(self.missing)}/{len(self.norms)} trainable vision parameters got gradients"
        return "\n".join([summary, *lines])


@contextmanager
def record_vision_gradients(model: torch.nn.Module) -> Iterator[VisionGradients]:
    """Record gradient norms of every trainable vision-tower parameter while the block runs::

        with unsloth_vlm_grpo.record_vision_gradients(trainer.model) as grads:
            trainer.train()
        print(grads)            # per-parameter norms; grads.missing lists those that got none

    Works with any trainer and gradient-checkpointing mode; the hooks are removed on exit.
    """
    gradients = VisionGradients()
    handles = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad and is_vision_parameter(name):
            gradients.norms[name] = 0.0

            def record(grad: torch.Tensor, name: str = name) -> None:
                gradients.norms[name] = max(gradients.norms[name], float(grad.detach().float().norm()))

            handles.append(parameter.register_hook(record))
    try:
        yield gradients
    finally:
        for handle in handles:
            handle.remove()

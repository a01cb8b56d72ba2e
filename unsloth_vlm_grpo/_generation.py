"""What the generation patches share: whether the trainer generates with transformers on an unsharded model,
a model's ``generate`` replaced for one block, and state kept per trainer for the model it generates with."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

# Trainer flags that send generation elsewhere than transformers ``generate`` of one unsharded model.
OTHER_GENERATION_PATHS = ("use_vllm", "use_transformers_continuous_batching", "is_fsdp_enabled", "is_deepspeed_enabled")


def other_generation_path(trainer) -> str | None:
    """The first of ``OTHER_GENERATION_PATHS`` set on ``trainer``, or None."""
    return next((flag for flag in OTHER_GENERATION_PATHS if getattr(trainer, flag, False)), None)


@contextmanager
def generate_replaced(model, generate: Callable):
    """Inside the block, ``model.generate`` is ``generate``; afterwards whatever it was before."""
    had_own = "generate" in vars(model)
    own = vars(model).get("generate")
    model.generate = generate
    try:
        yield
    finally:
        if had_own:
            model.generate = own
        else:
            del model.generate


def kept_for_model(trainer, key: str, model, build: Callable):
    """``build()``'s value, built once per model the trainer generates with (kept in ``trainer.__dict__[key]``)."""
    kept = trainer.__dict__.get(key)
    if kept is not None and kept[0] is model:
        return kept[1]
    value = build()
    trainer.__dict__[key] = (model, value)
    return value

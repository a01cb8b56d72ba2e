"""What the generation patches share: whether the trainer generates with transformers on an unsharded model,
a model's ``generate`` (or another attribute) replaced for one block, and state kept per trainer for the model it
generates with."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

# Trainer flags that send generation elsewhere than transformers ``generate`` of one unsharded model.
OTHER_GENERATION_PATHS = ("use_vllm", "use_transformers_continuous_batching", "is_fsdp_enabled", "is_deepspeed_enabled")


def other_generation_path(trainer) -> str | None:
    """The first of ``OTHER_GENERATION_PATHS`` set on ``trainer``, or None."""
    return next((flag for flag in OTHER_GENERATION_PATHS if getattr(trainer, flag, False)), None)


@contextmanager
def attribute_replaced(obj, name: str, value):
    """Inside the block, ``obj.<name>`` is ``value`` (an attribute of the instance); afterwards whatever it was."""
    had_own = name in vars(obj)
    own = vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had_own:
            setattr(obj, name, own)
        else:
            delattr(obj, name)


def generate_replaced(model, generate: Callable):
    """Inside the block, ``model.generate`` is ``generate``; afterwards whatever it was before."""
    return attribute_replaced(model, "generate", generate)


def generating_model(model):
    """The model whose ``generate`` runs: ``model``, or the one its ``generate`` is bound to (while
    ``lora_folded_generation`` generates, its copy). Inside ``static_cache_generation``, whose ``generate`` is a
    plain function, this is ``model`` again: wrappers that need the copy sit outside it."""
    return getattr(model.generate, "__self__", model)


def kept_for_model(trainer, key: str, model, build: Callable):
    """``build()``'s value, built once per model the trainer generates with (kept in ``trainer.__dict__[key]``)."""
    kept = trainer.__dict__.get(key)
    if kept is not None and kept[0] is model:
        return kept[1]
    value = build()
    trainer.__dict__[key] = (model, value)
    return value

"""Keep the policy from generating image/video placeholder tokens and vision markers.

Target: ``GRPOTrainer._generate_single_turn`` on TRL's class and on Unsloth's generated class
(trl 1.15.0, unsloth 2026.10.9).
Why: a policy that samples ``<|image_pad|>``, ``<image_soft_token>`` ... inside its completion makes the
scoring forward count more image tokens than there are image features: Qwen2-VL, Qwen2.5-VL and Gemma 3
crash with "Image features and image tokens do not match", or in ``get_rope_index`` with
"'NoneType' object is not an iterator" (measured on an H200, 2026-11-26). For the duration of
each generation call the ids are added to ``suppress_tokens`` of the trainer's generation config and
generation kwargs, so transformers never samples them; text-only trainers are untouched. vLLM
generation is not covered: with a VLM and ``use_vllm=True`` it logs one warning per trainer saying so.
Remove when: TRL suppresses placeholder tokens on every generation path (trl 1.16 does it for
transformers generation only) and the library's minimum trl includes that. The crash: huggingface/trl#3847.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from .._engine import GRPOTrainerMethod, Patch
from .._vision_tokens import trainer_vision_token_ids

logger = logging.getLogger("unsloth_vlm_grpo")
_VLLM_WARNED_ATTRIBUTE = "_unsloth_vlm_grpo_warned_vllm"


@contextmanager
def _suppressed(trainer, token_ids: list[int]):
    config = getattr(trainer, "generation_config", None)
    kwargs = getattr(trainer, "generation_kwargs", None)
    saved_config = getattr(config, "suppress_tokens", None) if config is not None else None
    saved_kwargs = kwargs.get("suppress_tokens") if isinstance(kwargs, dict) else None
    had_kwarg = isinstance(kwargs, dict) and "suppress_tokens" in kwargs
    merged = sorted(set(saved_config or []) | set(saved_kwargs or []) | set(token_ids))
    if config is not None:
        config.suppress_tokens = merged
    if isinstance(kwargs, dict):
        kwargs["suppress_tokens"] = merged
    try:
        yield
    finally:
        if config is not None:
            config.suppress_tokens = saved_config
        if isinstance(kwargs, dict):
            if had_kwarg:
                kwargs["suppress_tokens"] = saved_kwargs
            else:
                kwargs.pop("suppress_tokens", None)


def _warn_about_vllm_once(trainer) -> None:
    if not getattr(trainer, _VLLM_WARNED_ATTRIBUTE, False):
        setattr(trainer, _VLLM_WARNED_ATTRIBUTE, True)
        logger.warning(
            "unsloth_vlm_grpo: vLLM generation (use_vllm=True) with a vision-language model is not covered by this "
            "library's verification: image placeholder tokens are not suppressed there, only neutralised after "
            "generation. Use transformers generation (use_vllm=False) for the verified path."
        )


def _generate_without_vision_tokens(wrapped, trainer, args, kwargs):
    token_ids = trainer_vision_token_ids(trainer)
    if token_ids and trainer.use_vllm:
        _warn_about_vllm_once(trainer)
    if not token_ids or trainer.use_vllm:
        return wrapped(*args, **kwargs)
    with _suppressed(trainer, token_ids):
        return wrapped(*args, **kwargs)


PATCH = Patch(
    name="placeholder_suppression",
    targets=(GRPOTrainerMethod("_generate_single_turn"),),
    wrapper=_generate_without_vision_tokens,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._generate_single_turn": "53f746335e1db41f",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._generate_single_turn": "01050f9caae43331",
    },
    reason="Sampled image placeholder tokens crash the scoring forward (features/tokens mismatch).",
    remove_when="TRL suppresses vision tokens on all generation paths in the minimum supported trl.",
)

"""Give Llama 3.2 Vision's image fields to the forwards of Unsloth's generated trainer, per sample (two patches,
``unsloth_mllama_vision_inputs`` and ``unsloth_mllama_vision_chunks``).

Targets: ``unsloth_zoo.rl_replacements.grpo_get_vision_inputs`` and ``grpo_vision_chunks``
(unsloth_zoo 2026.10.9). Both of the generated trainer's scoring paths (``_get_per_token_logps_and_entropies``
for the old and reference log-probs, ``grpo_accumulated_loss`` for the loss) collect the model's image inputs
with the first and slice them into forward chunks with the second, importing both at call time.
Why: the collected keys are a fixed tuple without mllama's ``aspect_ratio_ids``, ``aspect_ratio_mask`` and
``cross_attention_mask``, so the first scoring forward failed with "`aspect_ratio_ids` must be provided if
`pixel_values` is provided" (measured on an H200 with unsloth 2026.10.9, and on CPU). And the chunker slices
``pixel_values`` by image whenever a batch holds a different number of images than rows, while mllama's
``pixel_values`` is per sample (batch, images, tiles, ...): rows with two images would get other rows' images.
Here an mllama batch (one with ``aspect_ratio_ids``) keeps those fields, and each chunk gets its own rows of
all four; ``mllama_cross_attention_mask`` then rebuilds the mask for each forward's ids, prompt and
completion, from the tiles the chunk's mask records. Other models go to unsloth_zoo unchanged.
Remove when: unsloth_zoo's ``GRPO_VISION_KEYS`` holds mllama's fields and its chunker slices them by sample
(the key tuple came with unslothai/unsloth-zoo#1233 without them; as of unsloth-zoo 2026.10.9).
"""

from __future__ import annotations

from ..._engine import FunctionTarget, Patch
from ._fields import FIELDS

MODULE = "unsloth_zoo.rl_replacements"
_PER_SAMPLE = ("pixel_values", *FIELDS)


def _collect_mllama_fields(wrapped, source):
    collected = wrapped(source)
    get = getattr(source, "get", None)
    if get is None or get("aspect_ratio_ids") is None:
        return collected
    return {**collected, **{key: get(key) for key in FIELDS if get(key) is not None}}


def chunks_by_sample(vision: dict, total_samples: int, batch_size: int) -> list[dict]:
    """One dict per chunk of ``batch_size`` rows, holding those rows of mllama's per-sample inputs."""
    fields = {key: vision[key] for key in _PER_SAMPLE if vision.get(key) is not None}
    for key, value in fields.items():
        if value.shape[0] != total_samples:
            raise ValueError(
                f"Llama 3.2 Vision's {key} has {value.shape[0]} rows for {total_samples} samples: "
                "its image inputs must have one row per sample"
            )
    return [
        {key: value[start : start + batch_size] for key, value in fields.items()}
        for start in range(0, total_samples, batch_size)
    ]


def _collect_then_add_mllama_fields(wrapped, _instance, args, kwargs):
    return _collect_mllama_fields(wrapped, *args, **kwargs)


def _chunks_by_sample_for_mllama(wrapped, _instance, args, kwargs):
    vision = args[0] if args else kwargs["vision"]
    if vision.get("aspect_ratio_ids") is None:
        return wrapped(*args, **kwargs)
    return chunks_by_sample(*args, **kwargs)


_VERIFIED = {"unsloth-zoo": "2026.10.9", "unsloth": "2026.10.9"}
_REMOVE_WHEN = "unsloth_zoo's GRPO_VISION_KEYS holds mllama's fields and grpo_vision_chunks slices them by sample."

INPUTS_PATCH = Patch(
    name="unsloth_mllama_vision_inputs",
    targets=(FunctionTarget(MODULE, "grpo_get_vision_inputs"),),
    wrapper=_collect_then_add_mllama_fields,
    verified=_VERIFIED,
    fingerprints={f"{MODULE}.grpo_get_vision_inputs": "90d3e7abd908d540"},
    reason="unsloth_zoo's GRPO scoring drops mllama's aspect_ratio_ids/aspect_ratio_mask/cross_attention_mask.",
    remove_when=_REMOVE_WHEN,
)
CHUNKS_PATCH = Patch(
    name="unsloth_mllama_vision_chunks",
    targets=(FunctionTarget(MODULE, "grpo_vision_chunks"),),
    wrapper=_chunks_by_sample_for_mllama,
    verified=_VERIFIED,
    fingerprints={f"{MODULE}.grpo_vision_chunks": "b3e525f87ca7ca39"},
    reason="unsloth_zoo's GRPO scoring slices mllama's per-sample pixel_values by image.",
    remove_when=_REMOVE_WHEN,
)

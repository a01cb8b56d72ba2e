"""Build Gemma 3's decode-step attention masks without its image overlay (opt-in: part of ``FAST_GENERATION``).

Target: ``GRPOTrainer._generate_single_turn`` on TRL's class (trl 1.15.0) and Unsloth's generated class
(unsloth 2026.10.9): for the call, the Gemma 3 model that generates (the trained model, or
``lora_folded_generation``'s copy) gets its own ``create_masks_for_generate``. Watched:
``Gemma3ForConditionalGeneration.create_masks_for_generate`` (transformers 5.17.0; Unsloth's compiler replaces the
class with a copy of the same source, so the model's own class is the one wrapped, at each call).
Why: with a static cache ``generate`` builds the masks before every forward, and given ``token_type_ids``
Gemma 3 builds them with its bidirectional image-block overlay, whose mask functions transformers expands with
``vmap``, eagerly and outside the compiled decode step, at every decode step. For a step of one query token per
row (a decode step) the overlay adds nothing: the query is the latest position, causal masking already lets it see
every earlier one, and every later one is masked as padding. Such a step gets the masks built without
``token_type_ids``: the same masks, without the vmap. Prefills (more than one query token) keep the overlay.
Tiny Gemma 3, 2-core CPU, kept static cache, decoding compiled by inductor: 16.05 ms per decode step with the
overlay, 1.31 ms without (2026-12-08, ``benchmarks/compiled_decode_cpu.py``).
Remove when: transformers skips Gemma 3's image overlay for decode steps (not the case as of transformers 5.17.0;
not found reported upstream).
"""

from __future__ import annotations

import contextlib

from .._engine import FunctionTarget, GRPOTrainerMethod, Patch
from .._generation import attribute_replaced, generating_model, other_generation_path

MODULE = "transformers.models.gemma3.modeling_gemma3"
MASKS = "create_masks_for_generate"


def decode_masks_without_image_overlay(model):
    """A block in which ``model``, if it is a Gemma 3 model, builds a decode step's masks without the image overlay."""
    build = getattr(type(model), MASKS, None)
    if getattr(model.config, "model_type", None) != "gemma3" or build is None:
        return contextlib.nullcontext()

    def masks(**kwargs):
        inputs_embeds = kwargs.get("inputs_embeds")
        if inputs_embeds is not None and inputs_embeds.shape[1] == 1:
            kwargs["token_type_ids"] = None
        return build(**kwargs)

    return attribute_replaced(model, MASKS, masks)


def _generating_model(trainer):
    model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
    generating = generating_model(model)
    return generating.get_base_model() if hasattr(generating, "get_base_model") else generating


def _generate_with_decode_masks(wrapped, trainer, args, kwargs):
    if other_generation_path(trainer):
        return wrapped(*args, **kwargs)
    with decode_masks_without_image_overlay(_generating_model(trainer)):
        return wrapped(*args, **kwargs)


PATCH = Patch(
    name="gemma3_decode_masks",
    targets=(GRPOTrainerMethod("_generate_single_turn"),),
    wrapper=_generate_with_decode_masks,
    verified={"trl": "1.15.0", "transformers": "5.17.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._generate_single_turn": "53f746335e1db41f",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._generate_single_turn": "01050f9caae43331",
        f"{MODULE}.Gemma3ForConditionalGeneration.{MASKS}": "167df4c784a29320",
    },
    watches=(FunctionTarget(MODULE, f"Gemma3ForConditionalGeneration.{MASKS}"),),
    reason="Gemma 3's static-cache masks build the image overlay at every decode step, where it adds nothing.",
    remove_when="transformers skips Gemma 3's image overlay for decode steps.",
    opt_in=True,
)

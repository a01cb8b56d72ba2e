"""Rebuild Llama 3.2 Vision's ``cross_attention_mask`` for the token ids the model actually receives.

Targets: ``transformers.models.mllama.modeling_mllama.MllamaModel.forward`` and
``MllamaForConditionalGeneration.prepare_inputs_for_generation`` (transformers 5.17.0).
Why: the processor lays the mask out for the ids *it* tokenised: without padding (TRL's
``apply_chat_template`` call for generation) every row starts at position 0 and zeros fill the end, while
TRL left-pads the prompts. A shorter prompt then has its image range shifted right: its last prompt
positions and, through ``_update_model_kwargs_for_generation`` (which repeats the mask's last position),
every generated token attend to no image. In the scoring forward the mask covers only the prompt, and
``MllamaModel.forward`` indexes it at every prompt+completion position: "IndexError: index 24 is out of
bounds for dimension 0 with size 24" (a 24-token prompt; ``mllama_scoring_fields`` builds full masks for
TRL's own forwards, this covers any other caller). The mask is a function of the ids (each ``<|image|>`` opens a range up
to the next image group or the end of the sequence), so it is rebuilt from the full ids: at generation
(``prepare_inputs_for_generation`` sees all ids so far) and at every forward without a cache (scoring,
prefill). Completion tokens then attend to the same images as the prompt's last token, with any padding.
The tiles of each image are read from the mask given.
Remove when: transformers builds the mask from padded ids and extends it over the sequence itself. Not
reported upstream as of transformers 5.17.0 (related: huggingface/transformers#39379, and its open fix #47845).
"""

from __future__ import annotations

from ..._engine import FunctionTarget, Patch
from ._fields import cross_attention_mask_from_ids, tiles_of

MODULE = "transformers.models.mllama.modeling_mllama"


def _argument(args, kwargs, position, name):
    return args[position] if len(args) > position else kwargs.get(name)


def _rebuilt(model, input_ids, mask):
    config = model.config
    image_token_id = getattr(config, "image_token_id", None)
    if image_token_id is None:
        image_token_id = getattr(config, "image_token_index", None)
    if image_token_id is None:  # MllamaModel's config is the composite config too
        return mask
    return cross_attention_mask_from_ids(input_ids, tiles_of(mask), image_token_id)


def _mask_for_all_ids(wrapped, model, args, kwargs):
    input_ids = _argument(args, kwargs, 0, "input_ids")
    mask = kwargs.get("cross_attention_mask")
    if input_ids is None or mask is None:
        return wrapped(*args, **kwargs)
    if wrapped.__name__ == "forward":
        cache = kwargs.get("past_key_values")
        if cache is not None and cache.get_seq_length() > 0:
            return wrapped(*args, **kwargs)  # a decode step: the mask already spans every position
    return wrapped(*args, **{**kwargs, "cross_attention_mask": _rebuilt(model, input_ids, mask)})


PATCH = Patch(
    name="mllama_cross_attention_mask",
    targets=(
        FunctionTarget(MODULE, "MllamaModel.forward"),
        FunctionTarget(MODULE, "MllamaForConditionalGeneration.prepare_inputs_for_generation"),
    ),
    wrapper=_mask_for_all_ids,
    verified={"transformers": "5.17.0"},
    fingerprints={
        f"{MODULE}.MllamaModel.forward": "1e3929e5c6b140ad",
        f"{MODULE}.MllamaForConditionalGeneration.prepare_inputs_for_generation": "24c576281224a1d5",
    },
    reason="mllama's cross_attention_mask is misaligned with left-padded prompts and covers only the prompt.",
    remove_when="transformers aligns the mask with padding and extends it over generated/scored tokens.",
)

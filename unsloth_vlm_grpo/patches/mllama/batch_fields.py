"""Keep Llama 3.2 Vision's per-sample image fields in the batch TRL returns for the loss.

Target: ``GRPOTrainer._generate_and_score_completions`` on TRL's class and on Unsloth's generated class
(trl 1.15.0, unsloth 2026.10.9).
Why: the batch TRL keeps for the loss drops ``aspect_ratio_ids``, ``aspect_ratio_mask`` and
``cross_attention_mask`` (TRL knows only the inputs of the families it lists), so every forward after
generation lacked them ("`aspect_ratio_ids` must be provided if `pixel_values` is provided"). They are put back
here, computed from the batch's (already normalised) images, for ``mllama_scoring_fields`` /
``mllama_loss_fields`` on TRL's class and ``unsloth_mllama_vision_inputs`` on Unsloth's.
Remove when: TRL forwards every processor output to its scoring forwards (not the case as of trl 1.15.0).
"""

from __future__ import annotations

from ..._engine import GRPOTrainerMethod, Patch
from ._scoring import carry_into_batch


def _generate_then_carry_fields(wrapped, trainer, args, kwargs):
    output = wrapped(*args, **kwargs)
    if not getattr(trainer, "_is_vlm", False):
        return output
    rows = args[0] if args else kwargs["inputs"]
    return carry_into_batch(trainer, rows, output)


PATCH = Patch(
    name="mllama_batch_fields",
    targets=(GRPOTrainerMethod("_generate_and_score_completions"),),
    wrapper=_generate_then_carry_fields,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._generate_and_score_completions": "1fa48922792dcd5c",
        "UnslothGRPOTrainer.UnslothGRPOTrainer._generate_and_score_completions": "84f30c64c4829bb0",
    },
    reason="TRL's loss batch drops mllama's aspect_ratio_ids, aspect_ratio_mask and cross_attention_mask.",
    remove_when="TRL keeps every processor output in the batch it scores the loss on.",
)

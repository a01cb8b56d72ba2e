"""Let rows without images share a batch with rows that have them.

Target: ``GRPOTrainer._tokenize_prompts`` on TRL's class and on Unsloth's generated class (trl 1.15.0,
unsloth 2026.10.9).
Why: ``_tokenize_prompts`` returns ``None`` as the image list of a row without images. The trainer later
passes that list to the processor for the scoring forward, which fails with "only a single or a list of
entries is supported but got type=<class 'NoneType'>" as soon as a batch mixes image and text-only rows.
An empty list is what processors expect for such a row; it is used whenever the batch has any image.
Remove when: TRL returns empty image lists for text-only rows of a multimodal batch. Mixing is meant to work
since huggingface/trl#4203; the crash remains on trl 1.15.0 (no report of it found).
"""

from __future__ import annotations

from .._engine import GRPOTrainerMethod, Patch


def _empty_lists_for_rows_without_images(wrapped, _trainer, args, kwargs):
    prompt_ids, images, multimodal_fields = wrapped(*args, **kwargs)
    if images is not None and any(row is None for row in images):
        images = [[] if row is None else row for row in images]
    return prompt_ids, images, multimodal_fields


PATCH = Patch(
    name="mixed_image_batches",
    targets=(GRPOTrainerMethod("_tokenize_prompts"),),
    wrapper=_empty_lists_for_rows_without_images,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._tokenize_prompts": "d2d27f7c9bfda85f",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._tokenize_prompts": "d2d27f7c9bfda85f",
    },
    reason="A batch mixing image rows and text-only rows crashes the processor call of the scoring forward.",
    remove_when="TRL uses [] for text-only rows in multimodal batches.",
)

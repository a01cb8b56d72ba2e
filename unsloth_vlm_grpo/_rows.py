"""Find which dataset rows a batch came from, for error messages.

TRL's sampler hands the trainer row contents, not row indices. When something goes wrong, the rows are
found again by matching prompts against the dataset. The prompt index is built on first use and kept on
the trainer, so the happy path never pays for it. Datasets that repeat one prompt over many rows (the image
varies, the question does not) cannot be told apart this way; the message then says so.
"""

from __future__ import annotations

import json
from typing import Any

_MAX_LISTED = 20
_CACHE_ATTRIBUTE = "_unsloth_vlm_grpo_rows_by_prompt"


def _key(prompt: Any) -> str:
    return json.dumps(prompt, sort_keys=True, default=str)


def _rows_by_prompt(owner, dataset) -> dict[str, list[int]] | None:
    """Dataset row indices per prompt, built once per dataset and cached on ``owner``; None without indices."""
    column_names = getattr(dataset, "column_names", None) or []
    if not hasattr(dataset, "select_columns") or "prompt" not in column_names or not hasattr(dataset, "__len__"):
        return None  # a streaming or custom dataset: rows have no stable index
    cache = owner.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    if id(dataset) not in cache:
        index: dict[str, list[int]] = {}
        for row_index, row in enumerate(dataset.select_columns(["prompt"])):
            index.setdefault(_key(row["prompt"]), []).append(row_index)
        cache[id(dataset)] = index
    return cache[id(dataset)]


def _listed(rows: list[int]) -> str:
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    return ", ".join(str(row) for row in rows[:_MAX_LISTED]) + more


def describe_batch_rows(owner, dataset, prompts: list[Any]) -> str:
    """Which rows of ``dataset`` hold ``prompts``, in words; never raises."""
    try:
        by_prompt = _rows_by_prompt(owner, dataset)
    except Exception as error:  # noqa: BLE001 - an error message must not be replaced by another
        return f"rows that could not be looked up ({type(error).__name__}: {error})"
    if by_prompt is None:
        return "rows of a dataset without row indices (streaming or custom)"
    distinct = {_key(prompt) for prompt in prompts}
    rows_per_prompt = [by_prompt.get(key, []) for key in distinct]
    rows = sorted({row for found in rows_per_prompt for row in found})
    if not rows:
        return "rows whose prompts were not found in the dataset"
    if any(len(found) > 1 for found in rows_per_prompt):
        return (
            f"one of the dataset rows {_listed(rows)} (they share the batch's {len(distinct)} prompt(s), so "
            "the rows cannot be told apart by prompt)"
        )
    return f"dataset row{'s' if len(rows) > 1 else ''} {_listed(rows)}"


def describe_trainer_rows(trainer, inputs: list[dict]) -> str:
    """Which rows of the dataset the trainer is reading now (evaluation or training) hold ``inputs``."""
    evaluating = not trainer.model.training and trainer.eval_dataset is not None
    dataset = trainer.eval_dataset if evaluating else trainer.train_dataset
    return describe_batch_rows(trainer, dataset, [example.get("prompt") for example in inputs])

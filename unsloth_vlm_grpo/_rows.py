"""Find which training-dataset rows a batch came from, for error messages.

TRL's sampler hands the trainer row contents, not row indices. When something goes wrong, the rows are
found again by matching prompts against the dataset; this reads the prompt column once, so it is done
only on the error path.
"""

from __future__ import annotations

import json
from typing import Any

_MAX_LISTED = 20


def _key(prompt: Any) -> str:
    return json.dumps(prompt, sort_keys=True, default=str)


def dataset_rows_of(dataset, prompts: list[Any]) -> list[int] | None:
    """Sorted indices of the dataset rows whose prompt is one of ``prompts``; None when rows have no index."""
    column_names = getattr(dataset, "column_names", None) or []
    if not hasattr(dataset, "select_columns") or "prompt" not in column_names or not hasattr(dataset, "__len__"):
        return None  # a streaming or custom dataset: rows have no stable index
    wanted = {_key(prompt) for prompt in prompts}
    return [
        index for index, row in enumerate(dataset.select_columns(["prompt"])) if _key(row["prompt"]) in wanted
    ]


def describe_rows(rows: list[int] | None) -> str:
    if rows is None:
        return "rows of a dataset without row indices (streaming or custom)"
    if not rows:
        return "rows whose prompts were not found in the training dataset"
    listed = ", ".join(str(row) for row in rows[:_MAX_LISTED])
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    return f"dataset row{'s' if len(rows) > 1 else ''} {listed}{more}"

"""Name the dataset rows when a reward function fails or returns nothing usable.

Target: ``GRPOTrainer._calculate_rewards`` on TRL's class and on Unsloth's generated class
(trl 1.15.0, unsloth 2026.10.9).
Why: TRL's errors and warnings about reward functions (a wrong number of rewards, an exception
inside the function, None/NaN from every function for a row) do not say which dataset rows the
batch came from, and TRL's sampler does not carry row indices. TRL's behaviour is kept: its
``ValueError`` for a wrong count is re-raised as a ``ValueError`` with TRL's message plus the rows; any
other exception from a reward function gets a note with the rows (same type, same message); the
all-None warning stays and is followed by one naming the row. Rows are found only when something
went wrong, by matching prompts against the training (or, while evaluating, the evaluation) dataset; rows
that share a prompt are named as a group.
Remove when: TRL reports dataset row indices in reward-function errors (huggingface/trl#6534 names the reward
function, not the rows; as of trl 1.15.0).
"""

from __future__ import annotations

import logging

import torch

from .._engine import GRPOTrainerMethod, Patch
from .._rows import describe_trainer_rows

logger = logging.getLogger("unsloth_vlm_grpo")


def _local_rows_without_reward(trainer, rewards_per_func: torch.Tensor, batch_size: int) -> list[int]:
    """Positions in this process's batch where every reward function gave None/NaN."""
    start = trainer.accelerator.process_index * batch_size
    local = rewards_per_func[start : start + batch_size]
    return torch.isnan(local).all(dim=1).nonzero(as_tuple=True)[0].tolist()


def _calculate_rewards_naming_rows(wrapped, trainer, args, kwargs):
    inputs = args[0] if args else kwargs["inputs"]
    try:
        rewards_per_func = wrapped(*args, **kwargs)
    except Exception as error:
        rows = describe_trainer_rows(trainer, inputs)
        if isinstance(error, ValueError) and "rewards, but" in str(error):  # TRL's wrong-count error
            raise ValueError(f"{error} This batch holds {rows}.") from error
        error.add_note(f"unsloth_vlm_grpo: this batch holds {rows}")
        raise
    empty = _local_rows_without_reward(trainer, rewards_per_func, len(inputs))
    if empty:
        rows = describe_trainer_rows(trainer, [inputs[position] for position in empty])
        logger.warning(
            "Every reward function returned None/NaN for %d completion(s) of %s; those completions get no "
            "reward signal. Check the reward functions on these rows.",
            len(empty),
            rows,
        )
    return rewards_per_func


PATCH = Patch(
    name="reward_rows",
    targets=(GRPOTrainerMethod("_calculate_rewards"),),
    wrapper=_calculate_rewards_naming_rows,
    verified={"trl": "1.15.0", "unsloth": "2026.10.9"},
    fingerprints={
        "trl.trainer.grpo_trainer.GRPOTrainer._calculate_rewards": "736ae29b083840b5",
        "UnslothGRPOTrainer._UnslothGRPOTrainer._calculate_rewards": "736ae29b083840b5",
    },
    reason="Reward-function errors and all-None warnings do not name the dataset rows of the batch.",
    remove_when="TRL reports dataset row indices in reward-function errors.",
)

"""DDP on CPU: two processes (gloo) train a tiny VLM through the patched stock ``trl.GRPOTrainer``, launched
as users launch it, with ``accelerate launch``; the probe is ``tests/probes/ddp_grpo.py``.

The run uses docs/multi-gpu.md's ``accelerate_configs/ddp_2gpu.yaml`` (MULTI_GPU, 2 processes: the torchrun
launcher) with ``--mixed_precision no``; without CUDA, ``use_cpu=True`` in the GRPOConfig (the probe sets it)
makes the two processes train on the CPU over gloo (``accelerate launch --multi_gpu --num_processes 2`` does
the same without a config file). Accelerate's
``--cpu`` flag selects its simple launcher, which starts ONE process whatever ``--num_processes`` says
(multi-CPU there means ``--mpirun_hostfile``). ``test_accelerate_cpu_flag_starts_one_process`` pins that,
and its single process (same global batch) is the one-process reference for the prompt split.
The ``check_*`` functions (tests/ddp_checks.py) are shared with tests/gpu/test_ddp_gpu.py (two GPUs, NCCL).
"""

import pytest

from conftest import run_probe
from ddp_checks import (
    CONFIG,
    PROBE,
    by_rank,
    check_gathered_rewards,
    check_prompt_split,
    check_trained,
    check_vision_gradients,
    check_weights_in_sync,
    same_prompts_per_step,
)

STEPS, GLOBAL_BATCH, GENERATIONS, WORLD = 3, 16, 4, 2
LAUNCH = [
    "-m",
    "accelerate.commands.launch",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]
PROBE_ARGS = ["--steps", str(STEPS), "--global-batch", str(GLOBAL_BATCH), "--num-generations", str(GENERATIONS)]
ENV = {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # a CPU test on GPU machines too


def launch(tmp_path, launcher_args: list[str], probe_args: list[str], env=None, timeout=300) -> dict:
    args = [*launcher_args, PROBE, str(tmp_path / "out"), *probe_args]
    return run_probe(args, tmp_path, {**ENV, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    # The documented config file (docs/multi-gpu.md); without CUDA, torchrun's two processes train on the CPU (gloo) and mixed
    # precision is overridden to fp32 (bf16 is for the GPUs).
    launcher = ["-m", "accelerate.commands.launch", "--config_file", CONFIG, "--mixed_precision", "no"]
    result = launch(tmp_path_factory.mktemp("ddp"), launcher, PROBE_ARGS)
    assert result["world_size"] == WORLD and result["finite_losses"]
    return by_rank(result)


def test_both_ranks_train_to_the_end_under_ddp(ranks):
    check_trained(ranks, STEPS, GLOBAL_BATCH, "DistributedType.MULTI_CPU", "gloo")


def test_each_step_splits_its_prompts_across_ranks_with_their_images(ranks):
    check_prompt_split(ranks, STEPS, GLOBAL_BATCH, GENERATIONS)


def test_rewards_and_advantages_are_gathered_as_trl_does(ranks):
    check_gathered_rewards(ranks, STEPS, GLOBAL_BATCH, GENERATIONS)


def test_vision_lora_gets_gradients_on_both_ranks(ranks):
    check_vision_gradients(ranks)


def test_ddp_keeps_the_ranks_weights_identical(ranks):
    check_weights_in_sync(ranks)


@pytest.mark.upstream
def test_accelerate_cpu_flag_starts_one_process(ranks, tmp_path):
    """``accelerate launch --cpu --num_processes 2`` runs the script once, not in two processes (Accelerate
    1.x's simple launcher): pinned so that docs/multi-gpu.md's advice is revisited if Accelerate changes it. That one
    process, with the same global batch, takes the same prompts per step as the two ranks together."""
    result = launch(tmp_path, [*LAUNCH, "--cpu", "--num_processes", str(WORLD)], PROBE_ARGS)
    (single,) = result["ranks"]
    assert result["world_size"] == 1 and single["distributed_type"] == "DistributedType.NO"
    assert single["per_device_train_batch_size"] == GLOBAL_BATCH and single["outcome"] == "trained"
    same_prompts_per_step(single, ranks, STEPS)
    assert single["checksum_before"] == ranks[0]["checksum_before"]

"""DDP on CPU: two processes (gloo) train a tiny VLM through the patched stock ``trl.GRPOTrainer``, launched
as users launch it, with ``accelerate launch``; the probe is ``tests/probes/ddp_grpo.py``.

The run uses docs/multi-gpu.md's ``accelerate_configs/ddp_2gpu.yaml`` (MULTI_GPU, 2 processes: the torchrun
launcher) with ``--mixed_precision no``; without CUDA, ``use_cpu=True`` in the GRPOConfig (the probe sets it)
makes the two processes train on the CPU over gloo (``accelerate launch --multi_gpu --num_processes 2`` does
the same without a config file). Accelerate's
``--cpu`` flag selects its simple launcher, which starts ONE process whatever ``--num_processes`` says
(multi-CPU there means ``--mpirun_hostfile``). ``test_accelerate_cpu_flag_starts_one_process`` pins that,
and its single process (same global batch) is the one-process reference for the prompt split.
The ``check_*`` functions are shared with tests/gpu/test_ddp_gpu.py (two GPUs, NCCL).
"""

import math
import statistics

import pytest

from conftest import ROOT, run_probe

PROBE = str(ROOT / "tests" / "probes" / "ddp_grpo.py")
CONFIG = str(ROOT / "accelerate_configs" / "ddp_2gpu.yaml")  # docs/multi-gpu.md's config (2 processes, MULTI_GPU)
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


def by_rank(result: dict) -> list[dict]:
    return sorted(result["ranks"], key=lambda record: record["rank"])


# --- checks shared with the GPU tests -------------------------------------------------------------------


def check_trained(ranks, steps, global_batch, distributed_type, backend):
    world = len(ranks)
    assert [r["rank"] for r in ranks] == list(range(world))
    for record in ranks:
        assert record["outcome"] == "trained", f"rank {record['rank']}: {record.get('traceback_tail')}"
        assert record["accelerator_world_size"] == world and record["accelerator_rank"] == record["rank"]
        assert record["distributed_type"] == distributed_type and record["backend"] == backend
        assert record["model_wrapped"] == "DistributedDataParallel"
        assert record["per_device_train_batch_size"] == global_batch // world
        assert record["global_step"] == steps
        losses = record["log"]["loss"]
        assert len(losses) == steps and all(math.isfinite(loss) for loss in losses), losses


def check_prompt_split(ranks, steps, global_batch, generations):
    """Every step's prompts are split across ranks, whole groups per rank, each image with its own row."""
    per_rank = global_batch // len(ranks)
    for step in map(str, range(steps)):
        rows = [record["rows_seen"][step] for record in ranks]
        for seen in rows:
            assert len(seen) == per_rank, rows
            # All generations of a prompt stay on one rank (TRL's RepeatSampler), so groups are whole.
            assert all(seen.count(row) == generations for row in seen), rows
        union = set().union(*map(set, rows))
        assert sum(len(set(seen)) for seen in rows) == len(union) == global_batch // generations, (
            f"step {step}: ranks share prompts {rows}"
        )
    for record in ranks:
        assert record["images_checked"] == steps * per_rank
        assert record["misaligned"] == 0, record["misaligned_examples"]


def check_gathered_rewards(ranks, steps, global_batch, generations, tolerance=1e-5):
    """Rewards are gathered from every rank in rank order; advantages are normalised per prompt group over
    the gathered batch; every rank holds the same gathered values and logs their mean."""
    for step in map(str, range(steps)):
        gathered = [record["gathered"][step] for record in ranks]
        assert all(g == gathered[0] for g in gathered), "ranks disagree on the gathered rewards/advantages"
        rewards, advantages = gathered[0]["rewards"], gathered[0]["advantages"]
        local = [reward for record in ranks for reward in record["local_rewards"][step]]
        assert rewards == pytest.approx(local, abs=tolerance)
        for start in range(0, global_batch, generations):
            group = rewards[start : start + generations]
            mean, std = statistics.fmean(group), statistics.stdev(group)
            expected = [(reward - mean) / (std + 1e-4) for reward in group]
            assert advantages[start : start + generations] == pytest.approx(expected, abs=tolerance)
        for record in ranks:
            assert record["log"]["reward"][int(step)] == pytest.approx(statistics.fmean(rewards), abs=tolerance)


def check_vision_gradients(ranks):
    for record in ranks:
        assert record["vision_grad_params"] >= 20, record["vision_grad_params"]
        assert record["vision_grad_missing"] == [], f"rank {record['rank']}: {record['vision_grad_missing']}"


def check_weights_in_sync(ranks):
    """Ranks computed gradients on other prompts: identical weights after the steps mean DDP all-reduced them."""
    before, after = ([record[key] for record in ranks] for key in ("checksum_before", "checksum_after"))
    assert len({a["sha256"] for a in after}) == 1, after
    assert len({a["sum"] for a in after}) == 1, after
    assert after[0]["sha256"] != before[0]["sha256"], "no trainable weight moved"
    assert ranks[0]["local_rewards"] != ranks[1]["local_rewards"]


def check_ddp_run(ranks, steps, global_batch, generations, distributed_type, backend, tolerance=1e-5):
    check_trained(ranks, steps, global_batch, distributed_type, backend)
    check_prompt_split(ranks, steps, global_batch, generations)
    check_gathered_rewards(ranks, steps, global_batch, generations, tolerance)
    check_vision_gradients(ranks)
    check_weights_in_sync(ranks)


def same_prompts_per_step(single: dict, ranks: list[dict], steps: int) -> None:
    """TRL's sampler is seeded by ``args.seed`` and cut into ranks after shuffling: the same global batch
    gives every step the same prompts on one process as on several."""
    for step in map(str, range(steps)):
        split = sorted(row for record in ranks for row in record["rows_seen"][step])
        assert sorted(single["rows_seen"][step]) == split, step


# --- the CPU runs -----------------------------------------------------------------------------------


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

"""Checks of a DDP GRPO run shared by the CPU test (tests/test_ddp.py) and the GPU tests (tests/gpu)."""

import json
import math
import socket
import statistics

import pytest

from conftest import ROOT, run_python

PROBE = str(ROOT / "tests" / "probes" / "ddp_grpo.py")
CONFIG = str(ROOT / "accelerate_configs" / "ddp_2gpu.yaml")  # docs/multi-gpu.md's config (2 processes, MULTI_GPU)


def by_rank(result: dict) -> list[dict]:
    return sorted(result["ranks"], key=lambda record: record["rank"])


# --- launching the probe with accelerate (the GPU tests)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_probe(
    tmp_path, launcher: list[str], probe_args: list[str], world: int, global_batch: int, generations: int, env=None
) -> list[dict]:
    """Run the probe; return every rank's record, or fail with each rank's error and the launcher's output."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    # Its own rendezvous port: under pytest-xdist two launches at once would both take accelerate's 29500.
    args = [
        *launcher,
        "--main_process_port",
        str(free_port()),
        PROBE,
        str(out),
        "--global-batch",
        str(global_batch),
        "--num-generations",
        str(generations),
        *probe_args,
    ]
    process = run_python(args, tmp_path, {"NCCL_NVLS_ENABLE": "0", "OMP_NUM_THREADS": "1", **(env or {})}, timeout=900)
    files = [out / f"rank{r}.json" for r in range(world)]
    records = [json.loads(file.read_text()) for file in files if file.exists()]
    crashed = [r for r in records if r["outcome"] != "trained"]
    if len(records) < world or crashed or process.returncode != 0:
        lines = [f"launcher exited {process.returncode}; {len(records)}/{world} ranks wrote a record"]
        for record in records:
            lines.append(f"rank {record['rank']}: {record['outcome']} {record.get('error', '')}")
            lines.append(record.get("traceback_tail", ""))
        lines += ["--- stdout", process.stdout[-4000:], "--- stderr", process.stderr[-6000:]]
        pytest.fail("\n".join(lines))
    return by_rank({"ranks": records})


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

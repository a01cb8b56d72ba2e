"""GPU: DDP on two GPUs of one machine (marker ``gpu``; skipped unless ``torch.cuda.device_count() >= 2``).

The probe is ``tests/probes/ddp_grpo.py`` (tiny VLM, LoRA on vision and language layers, a reward that checks
every image against its row), launched as the README says::

    NCCL_NVLS_ENABLE=0 accelerate launch --config_file accelerate_configs/ddp_2gpu.yaml tests/probes/ddp_grpo.py OUT

Cases:

- transformers/PEFT model in bf16 with LoRA, TRL's class: the checks of the CPU test (tests/test_ddp.py) on
  NCCL: both ranks finish, prompts split in whole groups with their own images, rewards gathered and
  advantages normalised over the gathered batch, a gradient in every vision LoRA matrix on both ranks,
  identical weights on both ranks afterwards.
- 1 GPU vs 2 GPUs with the same global batch (16 completions, 4 prompts x 4 generations), 10 steps,
  ``beta=0.04``, ``loss_type="grpo"``. What is honestly comparable: the two runs do NOT sample the same
  completions (each rank has its own sampling stream, and bf16 kernels differ with the batch shape), so their
  reward/loss curves are two samples of one process, not equal curves. What must agree:
    * exactly: the prompts of every step (TRL's sampler is seeded by ``args.seed`` and cut into ranks after
      shuffling) and the initial trainable weights;
    * step 1 (the policy is the same, not yet updated): KL to the reference is 0 (the reference is the
      policy with its adapters off and LoRA's B starts at zero), bounded by 1e-3 for bf16 rounding; the loss
      is 0 (ratio 1, KL 0, advantages summing to zero in every group, and ``grpo`` averages per sequence, so
      completion lengths do not weigh it), bounded by 1e-3; the mean token entropy over the step's 16
      completions within 2% (the tiny random policy is near uniform, so its sampled entropies barely vary:
      5.7560 +/- 0.0001 on CPU);
    * the mean reward over the 10 steps (160 completions each) within 4 standard errors of the difference,
      the standard error taken from the logged per-step reward std. The tiny policy barely learns in 10 steps,
      so this mostly tests that DDP does not change what is sampled and scored. It cannot see the gradients'
      scale (Adam's step barely depends on it); the weights-in-sync check shows that gradients are all-reduced.
      The KL curves are logged but not compared: each is one sample (measured on 2 H200s at step 10: 0.00064
      with 1 GPU, 0.0016 with 2).
- Unsloth's FastVisionModel under DDP (16-bit LoRA, Unsloth's gradient checkpointing and generated trainer),
  ``device_map={"": local_rank}``. Either outcome is informative: a pass means supported as far as these
  checks go; a failure reports each rank's exact error and traceback (and the launcher's output when a rank
  wrote nothing). Both ranks share one ``UNSLOTH_COMPILE_LOCATION``, as users' runs share the default
  ``unsloth_compiled_cache``: an error while compiling there points to a race between ranks.
"""

import logging
import math
import statistics

import pytest
import torch

from ddp_checks import (
    CONFIG,
    check_ddp_run,
    check_prompt_split,
    check_trained,
    check_vision_gradients,
    check_weights_in_sync,
    launch_probe,
    same_prompts_per_step,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs"),
]
GLOBAL_BATCH, GENERATIONS = 16, 4
TWO_GPUS = ["-m", "accelerate.commands.launch", "--config_file", CONFIG]
ONE_GPU = [
    "-m",
    "accelerate.commands.launch",
    "--num_processes",
    "1",
    "--num_machines",
    "1",
    "--mixed_precision",
    "bf16",
    "--dynamo_backend",
    "no",
]


def test_peft_bf16_lora_trains_on_two_gpus(tmp_path):
    ranks = launch_probe(
        tmp_path, TWO_GPUS, ["--steps", "4"], world=2, global_batch=GLOBAL_BATCH, generations=GENERATIONS
    )
    assert {r["device"] for r in ranks} == {"cuda:0", "cuda:1"}
    check_ddp_run(ranks, 4, GLOBAL_BATCH, GENERATIONS, "DistributedType.MULTI_GPU", "nccl")


def test_one_gpu_and_two_gpus_agree_on_what_is_comparable(tmp_path):
    steps, probe_args = 10, ["--steps", "10", "--beta", "0.04", "--loss-type", "grpo"]
    # One process seeing two GPUs would get nn.DataParallel from Trainer, which TRL refuses.
    (single,) = launch_probe(
        tmp_path / "one",
        ONE_GPU,
        probe_args,
        world=1,
        global_batch=GLOBAL_BATCH,
        generations=GENERATIONS,
        env={"CUDA_VISIBLE_DEVICES": "0"},
    )
    ranks = launch_probe(
        tmp_path / "two", TWO_GPUS, probe_args, world=2, global_batch=GLOBAL_BATCH, generations=GENERATIONS
    )
    check_ddp_run(ranks, steps, GLOBAL_BATCH, GENERATIONS, "DistributedType.MULTI_GPU", "nccl")
    assert single["outcome"] == "trained" and single["global_step"] == steps
    one, two = single["log"], ranks[0]["log"]
    curves = f"1 GPU: {one}\n2 GPUs: {two}"
    logging.getLogger(__name__).info("loss/reward/KL/entropy per step\n%s", curves)

    same_prompts_per_step(single, ranks, steps)
    assert single["checksum_before"] == ranks[0]["checksum_before"]
    for log in (one, two):
        assert all(math.isfinite(x) for x in log["loss"] + log["reward"] + log["kl"]), curves
        assert abs(log["kl"][0]) <= 1e-3, curves
        assert abs(log["loss"][0]) <= 1e-3, curves
    assert two["entropy"][0] == pytest.approx(one["entropy"][0], rel=0.02), curves

    n = GLOBAL_BATCH * steps
    standard_error = math.sqrt(sum(statistics.fmean(s**2 for s in log["reward_std"]) / n for log in (one, two)))
    difference = statistics.fmean(two["reward"]) - statistics.fmean(one["reward"])
    assert abs(difference) <= 4 * standard_error, f"difference {difference:.4f}, SE {standard_error:.4f}\n{curves}"


def test_unsloth_fast_vision_model_under_ddp(tmp_path):
    """Supported if this passes; otherwise the failure message holds each rank's exact error."""
    ranks = launch_probe(
        tmp_path, TWO_GPUS, ["--steps", "4", "--unsloth"], world=2, global_batch=GLOBAL_BATCH, generations=GENERATIONS
    )
    for record in ranks:
        assert record["trainer_class"] == "UnslothGRPOTrainer.UnslothGRPOTrainer", record["trainer_class"]
    check_trained(ranks, 4, GLOBAL_BATCH, "DistributedType.MULTI_GPU", "nccl")
    check_prompt_split(ranks, 4, GLOBAL_BATCH, GENERATIONS)
    check_vision_gradients(ranks)
    check_weights_in_sync(ranks)

"""Probe: GRPO through the patched stock ``trl.GRPOTrainer`` under DDP, one process per rank.

Usage::

    accelerate launch --num_processes N [--cpu | --multi_gpu] tests/probes/ddp_grpo.py OUTDIR \
        [--family qwen2_5_vl] [--steps 4] [--global-batch 16] [--num-generations 4] [--beta 0.0] \
        [--loss-type grpo] [--max-completion-length 8] [--learning-rate 1e-3] [--unsloth]
        [--fast-generation] [--full-finetune]

Every rank builds the same tiny VLM (``build_tiny_vlm(family, seed=0)``), adds LoRA on language and vision
linear layers (PEFT, or ``FastVisionModel.get_peft_model`` with ``--unsloth``) and trains with
``per_device_train_batch_size = global_batch / N``. Each dataset row ``i`` has a distinct prompt ("Row i:
what colour?"), a solid image whose colour is named by its ``answer`` column, and a 4x4 corner block whose
pixel value is ``i``: the reward function checks, on every rank, that each image it receives shows the
colour of the ``answer`` and the row id of the ``row_id`` at the same position, and that the prompt names
the same row (0 misaligned expected), and records the rows it saw per step.

Launched with an FSDP2 or DeepSpeed ZeRO config (``accelerate_configs/``), the same probe checks sharded
training: weights are read whole (FSDP2's DTensors gathered, ZeRO-3's partitions gathered) for the checksums,
and ``vision_moved`` counts the trained vision weights (LoRA matrices, or every vision parameter with
``--full-finetune``) that changed, since under sharding the gradient hooks may see no gradient on the sharded
parameters.

Each rank writes ``OUTDIR/rank{R}.json`` (also when training raises: ``outcome`` "crashed" with the error),
then rank 0 waits for the others and prints ``RESULT <json>`` with every rank's record. bf16 on CUDA, fp32
on CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
import traceback
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("outdir")
parser.add_argument("--family", default="qwen2_5_vl")
parser.add_argument("--steps", type=int, default=4)
parser.add_argument("--global-batch", type=int, default=16, help="completions per optimizer step, all ranks")
parser.add_argument("--num-generations", type=int, default=4)
parser.add_argument("--beta", type=float, default=0.0)
parser.add_argument("--loss-type", default=None, help="GRPOConfig.loss_type (default: TRL's)")
parser.add_argument("--max-completion-length", type=int, default=8)
parser.add_argument("--learning-rate", type=float, default=1e-3)
parser.add_argument("--rows", type=int, default=64)
parser.add_argument("--unsloth", action="store_true", help="FastVisionModel + Unsloth's generated trainer")
parser.add_argument("--fast-generation", action="store_true", help="patch(include=FAST_GENERATION)")
parser.add_argument(
    "--full-finetune", action="store_true", help="train every weight instead of LoRA (not with --unsloth)"
)
cli = parser.parse_args()

if cli.full_finetune and cli.unsloth:
    parser.error("--full-finetune trains a transformers model; it does not combine with --unsloth")
outdir = Path(cli.outdir)
outdir.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import unsloth_vlm_grpo  # noqa: E402

unsloth_vlm_grpo.patch(include=unsloth_vlm_grpo.FAST_GENERATION if cli.fast_generation else ())
if cli.unsloth:
    import unsloth  # noqa: F401
    from unsloth import FastVisionModel

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from unsloth_vlm_grpo._gradients import is_vision_parameter  # noqa: E402
from unsloth_vlm_grpo.colour_task import completion_text  # noqa: E402
from unsloth_vlm_grpo.patches.lora_folded_generation import FOLDED_COPY_KEY  # noqa: E402
from unsloth_vlm_grpo.patches.static_cache_generation import GENERATION_KEY  # noqa: E402
from unsloth_vlm_grpo.tiny import VISION_AND_LANGUAGE_LORA_TARGETS, build_tiny_vlm  # noqa: E402

# No PartialState here: TrainingArguments resets Accelerate's state and builds its own. The launcher's
# (torchrun's) environment says who this process is; the trainer's accelerator confirms it below.
rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
local_rank = int(os.environ.get("LOCAL_RANK", 0))
on_cuda = torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true")
record: dict = {
    "rank": rank,
    "world_size": world_size,
    "family": cli.family,
    "unsloth": cli.unsloth,
    "outcome": "not started",
}
started = time.time()

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def row_image(name: str, row: int) -> Image.Image:
    image = Image.new("RGB", (56, 56), COLOURS[name])
    image.paste((row, row, row), (0, 0, 4, 4))  # the row id, readable back from the corner
    return image


colour_of = random.Random(0)
rows = []
for index in range(cli.rows):
    name = colour_of.choice(list(COLOURS))
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Row {index}: what colour?"}]}]
    rows.append({"prompt": prompt, "image": row_image(name, index), "answer": name, "row_id": index})

seen: dict[int, list[int]] = {}  # global step (0-based: the step being computed) -> dataset rows
local_rewards: dict[int, list[float]] = {}  # step -> this rank's rewards, in the order TRL passed them
gathered: dict[int, dict[str, list[float]]] = {}  # step -> the trainer's gathered rewards and advantages
misaligned: list[str] = []
images_checked = 0


def _prompt_text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return " ".join(
        (part.get("text") or "")
        for message in prompt
        for part in (message["content"] if isinstance(message["content"], list) else [{"text": message["content"]}])
    )


def aligned_reward(prompts, completions, answer, row_id, **kwargs):
    """Checks that each image, answer, row id and prompt belong to one dataset row; a varying reward."""
    global images_checked
    images = kwargs.get("images") or [[image] for image in kwargs["image"]]
    step = kwargs["trainer_state"].global_step if "trainer_state" in kwargs else -1
    seen.setdefault(step, []).extend(int(r) for r in row_id)
    for position, (image_list, name, row, prompt) in enumerate(zip(images, answer, row_id, prompts, strict=True)):
        image = (image_list[0] if isinstance(image_list, list) else image_list).convert("RGB")
        images_checked += 1
        centre, corner = image.getpixel((28, 28)), image.getpixel((1, 1))
        if centre != COLOURS[name] or corner != (row, row, row) or f"Row {row}:" not in _prompt_text(prompt):
            misaligned.append(
                f"step {step} position {position}: row_id {row} answer {name} centre {centre} "
                f"corner {corner} prompt {_prompt_text(prompt)[-40:]!r}"
            )
    # Bounded and varying: distinct characters of the completion, plus 1 when it names the colour.
    texts = [completion_text(completion) for completion in completions]
    rewards = [min(len(set(text)), 16) / 16 + float(name in text) for text, name in zip(texts, answer, strict=True)]
    local_rewards.setdefault(step, []).extend(rewards)
    return rewards


class GatheredLogs(TrainerCallback):
    """After each step, the rewards and advantages the trainer gathered from every rank (TRL keeps them, for
    its completion logs, in ``_logs``: the whole generation batch, all processes, in rank order)."""

    def __init__(self, trainer, global_batch: int):
        self.trainer, self.global_batch = trainer, global_batch

    def on_step_end(self, args, state, control, **kwargs):
        logs = getattr(self.trainer, "_logs", {})  # absent from a trainer that does not keep them
        if "rewards" in logs and "advantages" in logs:
            gathered[state.global_step - 1] = {
                "rewards": list(logs["rewards"]["aligned_reward"])[-self.global_batch :],
                "advantages": list(logs["advantages"])[-self.global_batch :],
            }


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Each trainable parameter whole, on the CPU: FSDP2's DTensors and ZeRO-3's partitions are gathered
    (collectives: every rank calls this at the same point)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if any(hasattr(p, "ds_id") for _, p in params):
        import deepspeed

        with deepspeed.zero.GatheredParameters([p for _, p in params]):
            return {n: p.detach().to("cpu", copy=True) for n, p in params}
    return {n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().to("cpu", copy=True) for n, p in params}


def checksum(params: dict[str, torch.Tensor]) -> dict:
    digest = hashlib.sha256()
    total = 0.0
    for name in sorted(params):
        tensor = params[name].to("cpu", torch.float64)
        total += float(tensor.sum())
        digest.update(name.encode())
        digest.update(params[name].to("cpu", torch.float32).contiguous().numpy().tobytes())
    return {"sum": total, "sha256": digest.hexdigest(), "count": len(params)}


def write_record() -> None:
    record["seconds"] = round(time.time() - started, 2)
    (outdir / f"rank{rank}.json").write_text(json.dumps(record))


trainer = None
try:
    per_device = cli.global_batch // world_size
    if per_device * world_size != cli.global_batch:
        raise ValueError(f"--global-batch {cli.global_batch} is not divisible by {world_size} processes")
    tiny = build_tiny_vlm(cli.family, seed=0)
    peft_config = None
    if cli.unsloth:
        directory = outdir / f"model_rank{rank}"  # one copy per rank: no write race
        tiny.model.save_pretrained(directory)
        tiny.processor.save_pretrained(directory)
        model, processor = FastVisionModel.from_pretrained(
            str(directory), load_in_4bit=False, device_map={"": local_rank} if on_cuda else None
        )
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helpers
        from grpo_helpers import unsloth_vision_lora

        model = unsloth_vision_lora(model)
    else:
        from peft import LoraConfig

        model, processor = tiny.model, tiny.processor
        if on_cuda:
            model = model.to(torch.bfloat16)
        if not cli.full_finetune:
            peft_config = LoraConfig(
                r=8, lora_alpha=16, lora_dropout=0.0, target_modules=VISION_AND_LANGUAGE_LORA_TARGETS
            )
    args = GRPOConfig(
        output_dir=str(outdir / "trainer"),
        per_device_train_batch_size=per_device,
        num_generations=cli.num_generations,
        max_completion_length=cli.max_completion_length,
        max_steps=cli.steps,
        learning_rate=cli.learning_rate,
        beta=cli.beta,
        gradient_accumulation_steps=1,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=0,
        bf16=on_cuda,
        fp16=False,
        optim="adamw_torch",
        ddp_timeout=300,
        **({"loss_type": cli.loss_type} if cli.loss_type else {}),
        # On a machine without CUDA, launch with `accelerate launch --multi_gpu` (torchrun) and train on the
        # CPU: use_cpu makes TrainingArguments build a gloo (MULTI_CPU) state. `accelerate launch --cpu`
        # starts ONE process whatever --num_processes says (its simple launcher; multi-CPU there means mpirun).
        use_cpu=not on_cuda,
    )
    record["per_device_train_batch_size"] = per_device
    trainer = GRPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=aligned_reward,
        args=args,
        train_dataset=Dataset.from_list(rows),
        peft_config=peft_config,
    )
    record["trainer_class"] = f"{type(trainer).__module__}.{type(trainer).__qualname__}"
    accelerator = trainer.accelerator
    record.update(
        accelerator_rank=accelerator.process_index,
        accelerator_world_size=accelerator.num_processes,
        distributed_type=str(accelerator.distributed_type),
        device=str(accelerator.device),
        backend=str(accelerator.state.backend),
    )
    weights_before = trainable_state(trainer.model)
    record["checksum_before"] = checksum(weights_before)
    trainer.add_callback(GatheredLogs(trainer, cli.global_batch))
    with unsloth_vlm_grpo.record_vision_gradients(trainer.model) as gradients:
        trainer.train()
    record["outcome"] = "trained"
    # What each fast-generation patch kept for this trainer: its generation object, or None where it stepped aside.
    kept = {"lora_folded_generation": FOLDED_COPY_KEY, "static_cache_generation": GENERATION_KEY}
    record["fast_generation"] = {
        name: type(trainer.__dict__[key][1]).__name__ if key in trainer.__dict__ else "absent"
        for name, key in kept.items()
    }
    record["model_wrapped"] = type(trainer.model_wrapped).__name__
    record["vision_grad_params"] = len(gradients.norms)
    record["vision_grad_missing"] = gradients.missing
    weights_after = trainable_state(trainer.model)
    record["checksum_after"] = checksum(weights_after)
    # The trained vision weights: the LoRA matrices, or with --full-finetune every vision parameter.
    vision = [n for n in weights_after if is_vision_parameter(n) and (cli.full_finetune or "lora_" in n)]
    record["vision_trained"] = len(vision)
    record["vision_moved"] = sum(not torch.equal(weights_before[n], weights_after[n]) for n in vision)
except BaseException as error:  # noqa: BLE001 - reported in the rank file, then re-raised
    record["outcome"] = "crashed"
    record["error"] = f"{type(error).__name__}: {error}"[:1000]
    record["traceback_tail"] = traceback.format_exc()[-3000:]
    raise
finally:
    record["rows_seen"] = {str(step): sorted(rows_) for step, rows_ in sorted(seen.items())}
    record["local_rewards"] = {str(step): values for step, values in sorted(local_rewards.items())}
    record["gathered"] = {str(step): values for step, values in sorted(gathered.items())}
    record["images_checked"] = images_checked
    record["misaligned"] = len(misaligned)
    record["misaligned_examples"] = misaligned[:5]
    if trainer is not None:
        record["global_step"] = trainer.state.global_step
        history = [entry for entry in trainer.state.log_history if "loss" in entry]
        keys = ("loss", "reward", "reward_std", "kl", "entropy", "grad_norm")
        record["log"] = {key: [entry.get(key) for entry in history] for key in keys}
    write_record()

trainer.accelerator.wait_for_everyone()
if rank == 0:
    ranks = [json.loads((outdir / f"rank{r}.json").read_text()) for r in range(world_size)]
    losses = ranks[0]["log"]["loss"]
    result = {
        "world_size": world_size,
        "ranks": ranks,
        "finite_losses": bool(losses) and all(math.isfinite(x) for x in losses),
    }
    print("RESULT " + json.dumps(result), flush=True)
sys.stdout.flush()

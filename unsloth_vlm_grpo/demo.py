"""``python -m unsloth_vlm_grpo demo``: train a VLM with the patched stock GRPOTrainer on a task only the
image can answer, show the reward rising, and write ``reward_curve.png`` and ``summary.json``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from PIL import Image, ImageDraw

logger = logging.getLogger("unsloth_vlm_grpo.demo")


def _reward_logger(every: int):
    from transformers import TrainerCallback

    class RewardLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs and (state.global_step % every == 0 or state.global_step == 1):
                logger.info("step %4d/%d  mean reward %.2f", state.global_step, state.max_steps, logs["reward"])

    return RewardLogger()


def draw_reward_curve(curves: dict[str, list[float]], path: Path, chance: float) -> None:
    """A plain line chart of reward per step, drawn with Pillow (no plotting dependency)."""
    width, height, margin = 640, 400, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    steps = max(len(values) for values in curves.values())

    def point(step: int, reward: float) -> tuple[float, float]:
        x = margin + (width - 2 * margin) * step / max(steps - 1, 1)
        return x, height - margin - (height - 2 * margin) * reward

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for reward in (0.0, chance, 0.5, 1.0):
        y = point(0, reward)[1]
        draw.line([margin - 4, y, margin, y], fill="black")
        draw.text((4, y - 6), f"{reward:.2f}", fill="black")
    draw.line([point(0, chance), point(steps - 1, chance)], fill=(180, 180, 180))
    draw.text((margin, 15), "mean reward per GRPO step", fill="black")
    draw.text((width // 2 - 20, height - margin + 15), f"step (0-{steps})", fill="black")
    colours = [(200, 40, 40), (40, 40, 200)]
    for index, (label, values) in enumerate(curves.items()):
        smoothed = [sum(values[max(0, i - 4) : i + 1]) / len(values[max(0, i - 4) : i + 1]) for i in range(len(values))]
        draw.line([point(i, r) for i, r in enumerate(smoothed)], fill=colours[index % 2], width=2)
        draw.text((width - margin - 150, margin + 10 + 15 * index), label, fill=colours[index % 2])
    image.save(path)


def run_demo(output_dir: str, steps: int, seed: int, family: str, control: bool) -> dict:
    import unsloth_vlm_grpo
    from unsloth_vlm_grpo.colour_task import COLOURS, train_colour_task

    unsloth_vlm_grpo.patch()
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    chance = 1 / len(COLOURS)
    logger.info("Training a tiny %s VLM (built offline) to name the colour of a square: %d GRPO steps.", family, steps)
    run = train_colour_task(
        str(output / "checkpoints"), family=family, steps=steps, seed=seed, callbacks=[_reward_logger(10)],
        disable_tqdm=False,
    )  # fmt: skip
    curves = {"images": run.rewards}
    window = max(1, min(20, steps // 5))
    summary = {
        "family": family,
        "steps": len(run.rewards),
        "seconds": round(run.seconds, 1),
        "start_reward": round(run.mean(0, window), 3),
        "final_reward": round(run.mean(-window), 3),
        "chance": round(chance, 3),
        "rewards": run.rewards,
    }
    if control:
        logger.info("Control: the same run with every image blank (reward should stay near %.2f).", chance)
        blank = train_colour_task(str(output / "checkpoints_blank"), family=family, steps=steps, seed=seed, blank=True)
        curves["blank images (control)"] = blank.rewards
        summary["blank_control_final_reward"] = round(blank.mean(-window), 3)
    draw_reward_curve(curves, output / "reward_curve.png", chance)
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    logger.info(
        "Done: reward %.2f -> %.2f over %d steps in %.0f s (chance %.2f). Wrote %s and %s.",
        summary["start_reward"], summary["final_reward"], summary["steps"], summary["seconds"], chance,
        output / "reward_curve.png", output / "summary.json",
    )  # fmt: skip
    return summary


def explain_model_requirements(model_path: str) -> str | None:
    """Why ``--model`` cannot run here, or None when it can (a CUDA GPU and Unsloth)."""
    import torch

    if not os.path.isdir(model_path):
        return f"--model {model_path}: not a local directory (checkpoints are loaded from disk, not a hub)"
    if not torch.cuda.is_available():
        return (
            "--model needs a CUDA GPU: it loads the checkpoint with Unsloth's FastVisionModel, which has no CPU "
            "backend for vision models. Run the demo without --model to train the built-in tiny model on CPU."
        )
    return None


def run_model_demo(model_path: str, output_dir: str, steps: int, seed: int, load_in_4bit: bool) -> dict:
    """Train a local checkpoint with Unsloth's FastVisionModel (LoRA on vision and language) on the task."""
    import unsloth_vlm_grpo

    unsloth_vlm_grpo.patch()
    import unsloth  # noqa: F401
    from trl import GRPOConfig, GRPOTrainer
    from unsloth import FastVisionModel

    from unsloth_vlm_grpo.colour_task import colour_dataset, exact_colour_reward

    model, processor = FastVisionModel.from_pretrained(model_path, load_in_4bit=load_in_4bit)
    model = FastVisionModel.get_peft_model(
        model, finetune_vision_layers=True, finetune_language_layers=True, r=16, lora_alpha=16, random_state=seed,
        use_gradient_checkpointing="unsloth",
    )  # fmt: skip
    args = GRPOConfig(
        output_dir=output_dir, max_steps=steps, per_device_train_batch_size=8, num_generations=8,
        gradient_accumulation_steps=1, max_completion_length=16, learning_rate=5e-5, logging_steps=1,
        report_to="none", save_strategy="no", seed=seed, optim="adamw_8bit" if load_in_4bit else "adamw_torch",
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model, processing_class=processor, reward_funcs=exact_colour_reward, args=args,
        train_dataset=colour_dataset(rows=steps * 2, seed=seed, size=224), callbacks=[_reward_logger(5)],
    )  # fmt: skip
    trainer.train()
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    summary = {"model": model_path, "steps": len(rewards), "rewards": rewards}
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary

"""``python -m unsloth_vlm_grpo demo``: train a VLM with the patched stock GRPOTrainer on a task only the
image can answer, show the reward rising, and write ``reward_curve.png`` and ``summary.json``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger("unsloth_vlm_grpo.demo")

# What the demo promises on any machine (README): the last 20 steps' mean reward, and the blank control's.
PROMISED_REWARD = 0.9
CONTROL_TOLERANCE = 0.15


def _reward_logger(every: int):
    from transformers import TrainerCallback

    class RewardLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs and (state.global_step % every == 0 or state.global_step == 1):
                logger.info("step %4d/%d  mean reward %.2f", state.global_step, state.max_steps, logs["reward"])

    return RewardLogger()


def _smoothed(values: list[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps (shorter at the start)."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def draw_reward_curve(curves: dict[str, list[float]], path: Path, chance: float, title: str) -> None:
    """Mean reward per step: each run's raw curve faint, its smoothed curve bold, chance level dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    window = max(1, min(20, max(len(values) for values in curves.values()) // 10))
    for (label, values), colour in zip(curves.items(), ("tab:blue", "tab:orange"), strict=False):
        steps = np.arange(1, len(values) + 1)
        axes.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        axes.plot(steps, _smoothed(values, window), color=colour, linewidth=2.2, label=f"{label} ({window}-step mean)")
    axes.axhline(chance, color="grey", linestyle="--", linewidth=1.2, label=f"chance ({chance:.2f})")
    axes.set_xlabel("GRPO step")
    axes.set_ylabel("mean reward (1 = right colour)")
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlim(1, max(len(values) for values in curves.values()))
    axes.grid(alpha=0.3)
    axes.legend(loc="center right")
    axes.set_title(title)
    figure.savefig(path)


def judge(final_reward: float, control_reward: float | None, chance: float) -> list[str]:
    """What the demo promises and did not do (empty when it kept every promise)."""
    broken = []
    if final_reward < PROMISED_REWARD:
        broken.append(f"reward ended at {final_reward:.2f}, below the promised {PROMISED_REWARD:.2f}")
    if control_reward is not None and abs(control_reward - chance) > CONTROL_TOLERANCE:
        broken.append(f"the blank control ended at {control_reward:.2f}, not within {CONTROL_TOLERANCE} of chance")
    return broken


def run_demo(output_dir: str, steps: int, seed: int, family: str, control: bool) -> dict:
    import unsloth_vlm_grpo
    from unsloth_vlm_grpo.colour_task import COLOURS, train_colour_task

    unsloth_vlm_grpo.patch()
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    chance = 1 / len(COLOURS)
    logger.info(
        "Training a tiny %s VLM (built offline) to name the colour of a square: %d GRPO steps, seed %d.",
        family,
        steps,
        seed,
    )
    run = train_colour_task(
        str(output / "checkpoints"),
        family=family,
        steps=steps,
        seed=seed,
        callbacks=[_reward_logger(10)],
        disable_tqdm=False,
    )
    curves = {"images": run.rewards}
    window = max(1, min(20, steps // 5))
    summary = {
        "family": family,
        "seed": seed,
        "steps": len(run.rewards),
        "seconds": round(run.seconds, 1),
        "start_reward": round(run.mean(0, window), 3),
        "final_reward": round(run.mean(-window), 3),
        "chance": round(chance, 3),
        "rewards": run.rewards,
    }
    control_reward = None
    if control:
        logger.info("Control: the same run with every image blank (reward should stay near %.2f).", chance)
        blank = train_colour_task(
            str(output / "checkpoints_blank"),
            family=family,
            steps=steps,
            seed=seed,
            blank=True,
            callbacks=[_reward_logger(10)],
            disable_tqdm=False,
        )
        curves["blank images (control)"] = blank.rewards
        control_reward = summary["blank_control_final_reward"] = round(blank.mean(-window), 3)
        summary["seconds"] = round(run.seconds + blank.seconds, 1)
    broken = judge(summary["final_reward"], control_reward, chance)
    summary["verdict"] = "met" if not broken else "not met: " + "; ".join(broken)
    title = f"Tiny {family} VLM, colour task: GRPO mean reward per step ({len(run.rewards)} steps, seed {seed})"
    draw_reward_curve(curves, output / "reward_curve.png", chance, title)
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    control_words = f", blank control {control_reward:.2f}" if control_reward is not None else ""
    logger.info(
        "Done: reward %.2f -> %.2f over %d steps (chance %.2f%s) in %.0f s. Wrote %s and %s.",
        summary["start_reward"],
        summary["final_reward"],
        summary["steps"],
        chance,
        control_words,
        summary["seconds"],
        output / "reward_curve.png",
        output / "summary.json",
    )
    if broken:
        logger.error(
            "Promise NOT met (reward >= %.2f, control within %.2f of chance): %s.",
            PROMISED_REWARD,
            CONTROL_TOLERANCE,
            "; ".join(broken),
        )
    else:
        logger.info(
            "Promise met: the reward rose from chance to >= %.2f%s.",
            PROMISED_REWARD,
            " and the blank control stayed at chance" if control else "",
        )
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
        model,
        finetune_vision_layers=True,
        finetune_language_layers=True,
        r=16,
        lora_alpha=16,
        random_state=seed,
        use_gradient_checkpointing="unsloth",
    )
    args = GRPOConfig(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=8,
        num_generations=8,
        gradient_accumulation_steps=1,
        max_completion_length=16,
        learning_rate=5e-5,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=seed,
        optim="adamw_8bit" if load_in_4bit else "adamw_torch",
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=exact_colour_reward,
        args=args,
        train_dataset=colour_dataset(rows=steps * 2, seed=seed, size=224),
        callbacks=[_reward_logger(5)],
    )
    trainer.train()
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    summary = {"model": model_path, "steps": len(rewards), "rewards": rewards}
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary

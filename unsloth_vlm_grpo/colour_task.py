"""A task only the image can answer: name the colour of a solid square in one word.

Used by the learning-proof tests and the demo. The tiny random model is given a prior that makes the
answer words its likely first tokens (all equally likely, so it starts at chance); GRPO must learn
which word goes with which image. With every image replaced by a blank one, reward must stay at chance.

Settings: full fine-tuning at lr 7e-4 (20 warm-up steps, cosine decay), 32 completions per step (4 prompts
x 8 generations), 300 steps. Measured on a 2-core Intel Xeon (last-20 mean reward): Gemma 3 seeds 0-9
0.96-0.99; Qwen2.5-VL, Qwen3-VL, SmolVLM, LLaVA-NeXT and Llama 3.2 Vision seeds 0-4 0.97-0.99 each; blank
images 0.30-0.36. The earlier settings (lr 1e-3, 16 completions = 2 prompts per step) diverged for some seeds
on some processors (0.54 on an AMD EPYC for Gemma 3 seed 0; 0.90 and a dip to 0.58 here): with 2 images per
step and Adam moving every weight by about the learning rate per step, the policy became confident in wrong
answers for some colours before it was right (entropy 0.15-0.2 at reward 0.3-0.5, every group of 8 answers
alike, so no gradient to undo it). Four prompts per step and a lower rate keep the curve monotonic; scaling
advantages without the group std (scale_rewards="none") did not help (one seed of ten at 0.69).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from datasets import Dataset

from .tiny import build_tiny_vlm, point_output_rows, single_image_inputs, solid_image

COLOURS = {"red": (220, 30, 30), "green": (30, 190, 30), "blue": (30, 30, 220)}
BLANK = (255, 255, 255)
QUESTION = "What colour is the square? Answer with one word."


def colour_dataset(rows: int = 64, blank: bool = False, seed: int = 0, size: int = 56) -> Dataset:
    rng = random.Random(seed)
    names = list(COLOURS)
    records = []
    for _ in range(rows):
        name = rng.choice(names)
        prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
        records.append(
            {"prompt": prompt, "image": solid_image(BLANK if blank else COLOURS[name], size), "answer": name}
        )
    return Dataset.from_list(records)


def completion_text(completion) -> str:
    """A completion as reward functions get it: TRL passes conversational ones as message lists, Unsloth's
    generated trainer as plain text."""
    return completion if isinstance(completion, str) else completion[0]["content"]


def exact_colour_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when the completion's first word is the right colour."""
    texts = [completion_text(completion) for completion in completions]
    return [float(text.strip().split()[:1] == [expected]) for text, expected in zip(texts, answer, strict=True)]


def answer_token_ids(processor) -> list[int]:
    tokenizer = processor.tokenizer
    ids = [tokenizer.encode(word, add_special_tokens=False) for word in COLOURS]
    if any(len(token_ids) != 1 for token_ids in ids):
        raise ValueError(
            f"every colour word must be one token for this task, got {dict(zip(COLOURS, ids, strict=True))}"
        )
    return [token_ids[0] for token_ids in ids]


def give_answer_prior(model, processor, margin: float = 12.0, size: int = 56) -> None:
    """Make the colour words the model's likely first tokens, all equally likely.

    Each word's output-embedding row is set along the mean final hidden state of the prompt, so each gets
    a logit of about ``margin`` and none is favoured: which word fits which image is left to GRPO.
    """
    hidden = []
    for rgb in COLOURS.values():
        inputs = single_image_inputs(processor, rgb, QUESTION, size)
        with torch.no_grad():
            hidden.append(model(**inputs, output_hidden_states=True).hidden_states[-1][0, -1])
    point_output_rows(model, answer_token_ids(processor), torch.stack(hidden).mean(0), margin)


@dataclass
class ColourTaskRun:
    rewards: list[float] = field(default_factory=list)  # mean reward per optimizer step
    seconds: float = 0.0

    def mean(self, first: int = 0, last: int | None = None) -> float:
        window = self.rewards[first:last]
        return sum(window) / len(window)


def train_colour_task(
    output_dir: str,
    family: str = "qwen2_5_vl",
    steps: int = 150,
    blank: bool = False,
    seed: int = 0,
    learning_rate: float = 7e-4,
    callbacks: list | None = None,
    disable_tqdm: bool = True,
    batch_size: int = 32,
    config_overrides: dict | None = None,
    reward=exact_colour_reward,
) -> ColourTaskRun:
    """Fully fine-tune a tiny VLM on the colour task with the stock (patched) GRPOTrainer."""
    import time

    from trl import GRPOConfig, GRPOTrainer

    tiny = build_tiny_vlm(family, seed=seed)
    give_answer_prior(tiny.model, tiny.processor)
    settings = dict(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        num_generations=8,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        max_completion_length=1,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=20,
        beta=0.0,
        gradient_checkpointing=False,
        bf16=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=seed,
        disable_tqdm=disable_tqdm,
    )
    args = GRPOConfig(**{**settings, **(config_overrides or {})})
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=reward,
        args=args,
        train_dataset=colour_dataset(rows=600, blank=blank, seed=seed),
        callbacks=callbacks,
    )
    if not disable_tqdm:
        # Keep the progress bar, but not the full metrics dict it prints at every logged step.
        from transformers.trainer_callback import ProgressCallback

        class ProgressBarOnly(ProgressCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                pass

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(ProgressBarOnly())
    started = time.perf_counter()
    trainer.train()
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    return ColourTaskRun(rewards=rewards, seconds=time.perf_counter() - started)

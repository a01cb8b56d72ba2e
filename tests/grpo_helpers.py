"""A small image GRPO set-up shared by the tests: dataset, reward, config."""

from __future__ import annotations

import math

import torch
from datasets import Dataset
from peft import LoraConfig

from unsloth_vlm_grpo.colour_task import completion_text
from unsloth_vlm_grpo.tiny import VISION_AND_LANGUAGE_LORA_TARGETS, solid_image

# LoRA on every linear layer of the tiny models' language and vision towers.
VISION_AND_LANGUAGE_LORA = LoraConfig(
    r=8, lora_alpha=16, lora_dropout=0.0, target_modules=VISION_AND_LANGUAGE_LORA_TARGETS
)
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def colour_dataset(rows: int = 8) -> Dataset:
    names = list(COLOURS)
    records = []
    for index in range(rows):
        name = names[index % len(names)]
        prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
        records.append({"prompt": prompt, "image": solid_image(COLOURS[name]), "answer": name})
    return Dataset.from_list(records)


def distinct_characters_reward(completions, **kwargs):
    """A reward that varies between completions, so advantages are non-zero and weights move."""
    return [float(len(set(completion_text(completion)))) for completion in completions]


def grpo_config(output_dir, **overrides):
    from trl import GRPOConfig

    settings = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        report_to="none",
        bf16=False,
        logging_steps=1,
        learning_rate=1e-3,
        save_strategy="no",
        seed=0,
        gradient_accumulation_steps=1,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def weights_of(model) -> torch.Tensor:
    return torch.cat([parameter.detach().flatten().clone() for parameter in model.parameters()])


def logged_losses(trainer) -> list[float]:
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(math.isfinite(loss) for loss in losses), losses
    return losses


# Questions of different lengths and images of several sizes and aspect ratios, as real datasets mix them.
VARIED_QUESTIONS = (
    "What colour?",
    "What colour is the square in this picture? Answer with one word.",
    "Name the colour.",
    "Please describe the colour of this image, then answer with one word: which colour is it?",
)
FIVE_QUESTIONS = (*VARIED_QUESTIONS, "Which colour fills this image from edge to edge?")  # five prompt lengths
VARIED_SIZES = ((56, 56), (112, 56), (56, 112), (84, 140))


def varied_image(rgb, size):
    from PIL import Image

    return Image.new("RGB", size, rgb)


def varied_batch(processor, family, questions, sizes):
    """One left-padded processor batch: a question and an image of its own size per row."""
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}] for q in questions]
    texts = [processor.apply_chat_template(message, add_generation_prompt=True) for message in messages]
    images = [varied_image(rgb, size) for rgb, size in zip(list(COLOURS.values()), sizes, strict=False)]
    nested = family in ("gemma3", "mllama", "idefics3")
    processor.tokenizer.padding_side = "left"
    return processor(
        images=[[image] for image in images] if nested else images, text=texts, return_tensors="pt", padding=True
    )


def varied_colour_dataset(rows: int = 8, sizes=VARIED_SIZES, questions=VARIED_QUESTIONS) -> Dataset:
    """Rows whose questions and image sizes differ, so that prompts in one batch differ in length."""
    names = list(COLOURS)
    records = []
    for index in range(rows):
        name = names[index % len(names)]
        question = questions[index % len(questions)]
        size = sizes[(index // 2) % len(sizes)]
        prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        records.append({"prompt": prompt, "image": varied_image(COLOURS[name], size), "answer": name})
    return Dataset.from_list(records)


def saved_and_loaded(tiny, directory):
    """The tiny model and processor as a user gets them: saved, then loaded with the Auto classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    tiny.model.save_pretrained(directory)
    tiny.processor.save_pretrained(directory)
    return AutoModelForImageTextToText.from_pretrained(directory), AutoProcessor.from_pretrained(directory)


def train_recording_completions(
    tiny_factory, output_dir, include=(), family="qwen2_5_vl", model=None, **config_overrides
):
    """``patch(include=include)``, then GRPO with vision and language LoRA on a tiny ``family`` VLM (or ``model``,
    that VLM as loaded elsewhere) and ``varied_colour_dataset()``. Returns the trainer, its final weights and the
    completion ids sampled per step."""
    from trl import GRPOTrainer

    import unsloth_vlm_grpo

    unsloth_vlm_grpo.patch(include=include)
    try:
        tiny = tiny_factory(family)
        trainer = GRPOTrainer(
            model=tiny.model if model is None else model,
            processing_class=tiny.processor,
            reward_funcs=distinct_characters_reward,
            args=grpo_config(output_dir, **config_overrides),
            train_dataset=varied_colour_dataset(),
            peft_config=VISION_AND_LANGUAGE_LORA,
        )
        completions = []
        original = trainer._calculate_rewards

        def recording(inputs, prompts, completions_, completion_ids_list):
            completions.append(completion_ids_list)
            return original(inputs, prompts, completions_, completion_ids_list)

        trainer._calculate_rewards = recording
        trainer.train()
        return trainer, weights_of(trainer.model), completions
    finally:
        unsloth_vlm_grpo.unpatch()


def recording_prompt_lengths(generate, lengths: list):
    """``StaticCacheGeneration.generate`` (passed as ``generate``), recording each call's prompt length in
    ``lengths``."""

    def recording(self, generate_function, **kwargs):
        lengths.append(kwargs["input_ids"].shape[1])
        return generate(self, generate_function, **kwargs)

    return recording


def unsloth_vision_lora(model):
    """LoRA r=8 on the vision and language attention and MLP layers of a FastVisionModel, with Unsloth's
    gradient checkpointing, as the Unsloth probes train it."""
    from unsloth import FastVisionModel

    return FastVisionModel.get_peft_model(
        model,
        finetune_vision_layers=True,
        finetune_language_layers=True,
        finetune_attention_modules=True,
        finetune_mlp_modules=True,
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        random_state=0,
        use_gradient_checkpointing="unsloth",
    )

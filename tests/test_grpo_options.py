"""Every GRPO option TRL 1.15 offers trains a tiny VLM with images through the patched stock trainer:
finite losses and moved weights."""

import pytest
import torch
from datasets import Dataset
from trl import GRPOTrainer

from unsloth_vlm_grpo.tiny import solid_image

from grpo_helpers import (
    COLOURS,
    VISION_AND_LANGUAGE_LORA,
    colour_dataset,
    distinct_characters_reward,
    grpo_config,
    logged_losses,
)

OPTIONS = {
    **{
        f"loss_type={name}": {"loss_type": name}
        for name in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "vespo")
    },
    "loss_type=luspo+sequence": {"loss_type": "luspo", "importance_sampling_level": "sequence"},
    "importance_sampling_level=sequence": {"loss_type": "grpo", "importance_sampling_level": "sequence"},
    "beta=0.1": {"beta": 0.1},
    "num_iterations=2": {"num_iterations": 2},
    "steps_per_generation=2": {"steps_per_generation": 2},
    "gradient_accumulation_steps=2": {"gradient_accumulation_steps": 2},
    "gradient_checkpointing=False": {"gradient_checkpointing": False},
}


pytestmark = pytest.mark.usefixtures("patched")


def _trainable(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _train_and_check(trainer, model):
    before = _trainable(model)
    trainer.train()
    logged_losses(trainer)
    after = _trainable(model)
    assert any(not torch.equal(before[name], after[name]) for name in before), "no trainable weight moved"


@pytest.mark.parametrize("option", list(OPTIONS))
def test_option_trains_with_images(option, tiny_factory, tmp_path):
    tiny = tiny_factory("qwen2_5_vl")
    model = tiny.model
    if OPTIONS[option].get("beta"):
        # Without PEFT, TRL loads the reference model from the policy's path: give it one.
        model.save_pretrained(tmp_path / "policy")
        model = type(model).from_pretrained(tmp_path / "policy")
    trainer = GRPOTrainer(
        model=model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path, **OPTIONS[option]),
        train_dataset=colour_dataset(),
    )
    _train_and_check(trainer, model)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "gemma3"])
def test_peft_lora_with_reference_model_via_disabled_adapter(family, tiny_factory, tmp_path):
    tiny = tiny_factory(family)
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path, beta=0.1, learning_rate=1e-2),
        train_dataset=colour_dataset(),
        peft_config=VISION_AND_LANGUAGE_LORA,
    )
    assert trainer.ref_model is None  # PEFT: the reference pass runs the same model with the adapter disabled
    lora_names = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert any("visual" in name or "vision" in name for name in lora_names)
    _train_and_check(trainer, trainer.model)
    kl = [entry["kl"] for entry in trainer.state.log_history if "kl" in entry]
    assert kl and all(value == value for value in kl)


def test_multi_image_rows_and_reward_sees_every_column(tiny_factory, tmp_path):
    names = list(COLOURS)
    rows = []
    for index in range(8):
        first, second = names[index % 4], names[(index + 1) % 4]
        content = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Which colours?"}]
        rows.append(
            {
                "prompt": [{"role": "user", "content": content}],
                "images": [solid_image(COLOURS[first]), solid_image(COLOURS[second])],
                "answer": f"{first} {second}",
                "row_id": index,
            }
        )
    seen = {}

    def reward(completions, answer, row_id, images=None, **kwargs):
        seen.update(answer=answer, row_id=row_id, images=images)
        return distinct_characters_reward(completions)

    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=reward,
        args=grpo_config(tmp_path),
        train_dataset=Dataset.from_list(rows),
    )
    _train_and_check(trainer, tiny.model)
    assert len(seen["row_id"]) == 4 and all(0 <= row < 8 for row in seen["row_id"])
    assert seen["images"] is not None and all(len(pair) == 2 for pair in seen["images"])

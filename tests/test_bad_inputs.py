"""Bad inputs that are about the trainer, not a single image: each fails before training with the row
and the fix. (Per-image and per-row cases: tests/test_image_inputs.py.)"""

import io

import pytest
from PIL import Image
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl import GRPOTrainer

from unsloth_vlm_grpo import ImageInputError
from unsloth_vlm_grpo._images import load_image

from grpo_helpers import colour_dataset, distinct_characters_reward, grpo_config

pytestmark = pytest.mark.usefixtures("patched")


def _expect_failure_before_training(trainer, message):
    with pytest.raises(ImageInputError, match=message):
        trainer.train()
    assert trainer.state.global_step == 0


def test_tokenizer_instead_of_processor(tiny_factory, tmp_path):
    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor.tokenizer,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path),
        train_dataset=colour_dataset(),
    )
    _expect_failure_before_training(trainer, "dataset row 0 has an image, but processing_class is a .*not a processor")


def test_text_only_model_with_an_image_dataset(tiny_factory, tmp_path):
    tiny = tiny_factory("qwen2_5_vl")
    tokenizer = tiny.processor.tokenizer
    text_model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    trainer = GRPOTrainer(
        model=text_model,
        processing_class=tiny.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path),
        train_dataset=colour_dataset(),
    )
    _expect_failure_before_training(trainer, r"dataset row 0 has an image, but the model \(qwen2\) has no vision tower")


def test_processor_of_another_family(tiny_factory, tmp_path):
    qwen, gemma = tiny_factory("qwen2_5_vl"), tiny_factory("gemma3")
    trainer = GRPOTrainer(
        model=qwen.model,
        processing_class=gemma.processor,
        reward_funcs=distinct_characters_reward,
        args=grpo_config(tmp_path),
        train_dataset=colour_dataset(),
    )
    _expect_failure_before_training(
        trainer,
        r"processor \(Gemma3Processor\) does not belong to the model \(qwen2_5_vl, which uses Qwen2_5_VLProcessor\)",
    )


def test_image_too_large_for_pillow_names_the_limit(monkeypatch):
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageInputError, match="dataset row 4: .*too large.*MAX_IMAGE_PIXELS"):
        load_image(buffer.getvalue(), row=4)


def _numbered_rows(count: int = 6):
    """Rows whose prompts differ, so each prompt identifies its dataset row."""
    from datasets import Dataset

    from unsloth_vlm_grpo.tiny import solid_image

    return Dataset.from_list(
        [
            {
                "prompt": [
                    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Row {row}: colour?"}]}
                ],
                "image": solid_image((40 * row, 0, 0)),
            }
            for row in range(count)
        ]
    )


def _row_of(prompt) -> int:
    text = prompt[0]["content"][-1]["text"] if isinstance(prompt, list) else prompt
    return int(text.split("Row ")[1].split(":")[0])


def _reward_trainer(tiny, reward, tmp_path):
    args = grpo_config(tmp_path, per_device_train_batch_size=8, num_generations=4, max_steps=1, max_completion_length=4)
    return GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=reward,
        args=args,
        train_dataset=_numbered_rows(),
    )


def test_wrong_number_of_rewards_keeps_trls_error_and_names_the_rows(tiny_factory, tmp_path):
    seen = []

    def one_short(prompts, completions, **kwargs):
        seen.extend(_row_of(prompt) for prompt in prompts)
        return [1.0] * (len(completions) - 1)

    trainer = _reward_trainer(tiny_factory("qwen2_5_vl"), one_short, tmp_path)
    with pytest.raises(ValueError, match="returned 7 rewards, but 8 were expected") as caught:
        trainer.train()
    rows = sorted(set(seen))
    assert len(rows) == 2
    assert str(caught.value).endswith(f"This batch holds dataset rows {rows[0]}, {rows[1]}.")


def test_exception_in_a_reward_function_keeps_its_type_and_gets_the_rows(tiny_factory, tmp_path):
    seen = []

    def broken(prompts, completions, **kwargs):
        seen.extend(_row_of(prompt) for prompt in prompts)
        raise KeyError("answer")

    trainer = _reward_trainer(tiny_factory("qwen2_5_vl"), broken, tmp_path)
    with pytest.raises(KeyError, match="answer") as caught:
        trainer.train()
    rows = sorted(set(seen))
    assert caught.value.__notes__ == [f"unsloth_vlm_grpo: this batch holds dataset rows {rows[0]}, {rows[1]}"]


def test_no_reward_for_a_row_warns_with_its_index_and_training_goes_on(tiny_factory, tmp_path, caplog):
    skipped = []

    def none_for_first_prompt(prompts, completions, **kwargs):
        first = _row_of(prompts[0])
        skipped.append(first)
        return [None if _row_of(prompt) == first else 1.0 for prompt in prompts]

    trainer = _reward_trainer(tiny_factory("qwen2_5_vl"), none_for_first_prompt, tmp_path)
    with caplog.at_level("WARNING"):
        trainer.train()
    assert trainer.state.global_step == 1
    messages = [record.getMessage() for record in caplog.records]
    assert any("All reward functions returned None" in message for message in messages)  # TRL's own
    ours = [message for message in messages if message.startswith("Every reward function returned None/NaN")]
    assert ours == [
        f"Every reward function returned None/NaN for 4 completion(s) of dataset row {skipped[0]}; "
        "those completions get no reward signal. Check the reward functions on these rows."
    ]


def test_rows_sharing_a_prompt_are_named_as_a_group(tiny_factory, tmp_path):
    """colour_dataset repeats one question over every row (only the image differs): rows cannot be told apart."""

    def one_short(completions, **kwargs):
        return [1.0] * (len(completions) - 1)

    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(
        model=tiny.model,
        processing_class=tiny.processor,
        reward_funcs=one_short,
        args=grpo_config(tmp_path, max_steps=1),
        train_dataset=colour_dataset(rows=8),
    )
    with pytest.raises(ValueError, match="returned 3 rewards, but 4 were expected") as caught:
        trainer.train()
    assert str(caught.value).endswith(
        "This batch holds one of the dataset rows 0, 1, 2, 3, 4, 5, 6, 7 (they share the batch's 1 prompt(s), so "
        "the rows cannot be told apart by prompt)."
    )

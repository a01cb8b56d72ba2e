"""Bad inputs that are about the trainer, not a single image: each fails before training with the row
and the fix. (Per-image and per-row cases: tests/test_image_inputs.py.)"""

import io

import pytest
from PIL import Image
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl import GRPOTrainer

import unsloth_vlm_grpo
from grpo_helpers import colour_dataset, distinct_characters_reward, grpo_config
from unsloth_vlm_grpo import ImageInputError
from unsloth_vlm_grpo._images import load_image


@pytest.fixture(autouse=True)
def _patched():
    unsloth_vlm_grpo.patch()
    yield
    unsloth_vlm_grpo.unpatch()


def _expect_failure_before_training(trainer, message):
    with pytest.raises(ImageInputError, match=message):
        trainer.train()
    assert trainer.state.global_step == 0


def test_tokenizer_instead_of_processor(tiny_factory, tmp_path):
    tiny = tiny_factory("qwen2_5_vl")
    trainer = GRPOTrainer(model=tiny.model, processing_class=tiny.processor.tokenizer,
                          reward_funcs=distinct_characters_reward, args=grpo_config(tmp_path),
                          train_dataset=colour_dataset())
    _expect_failure_before_training(trainer, "dataset row 0 has an image, but processing_class is a .*not a processor")


def test_text_only_model_with_an_image_dataset(tiny_factory, tmp_path):
    tiny = tiny_factory("qwen2_5_vl")
    tokenizer = tiny.processor.tokenizer
    text_model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))  # fmt: skip
    trainer = GRPOTrainer(model=text_model, processing_class=tiny.processor, reward_funcs=distinct_characters_reward,
                          args=grpo_config(tmp_path), train_dataset=colour_dataset())
    _expect_failure_before_training(trainer, r"dataset row 0 has an image, but the model \(qwen2\) has no vision tower")


def test_processor_of_another_family(tiny_factory, tmp_path):
    qwen, gemma = tiny_factory("qwen2_5_vl"), tiny_factory("gemma3")
    trainer = GRPOTrainer(model=qwen.model, processing_class=gemma.processor, reward_funcs=distinct_characters_reward,
                          args=grpo_config(tmp_path), train_dataset=colour_dataset())
    _expect_failure_before_training(trainer, r"processor \(Gemma3Processor\) does not belong to the model \(qwen2_5_vl, which uses Qwen2_5_VLProcessor\)")


def test_image_too_large_for_pillow_names_the_limit(monkeypatch):
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageInputError, match="dataset row 4: .*too large.*MAX_IMAGE_PIXELS"):
        load_image(buffer.getvalue(), row=4)

"""Probe: a tiny text-only GRPO run, unpatched then patched, same seed. Prints losses and a weight hash.

Run with TRITON_INTERPRET=1 so TRL's own fused-head kernel runs on CPU in both runs (the library's CPU
fallback stands aside under the interpreter), which makes the comparison exact."""

import json

import torch
from datasets import Dataset
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl import GRPOConfig, GRPOTrainer

import unsloth_vlm_grpo
from unsloth_vlm_grpo.tiny import _QWEN_SPECIALS, _train_tokenizer


def train_once(tmp):
    torch.manual_seed(0)
    tokenizer = _train_tokenizer(_QWEN_SPECIALS, 320, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    initial = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
    dataset = Dataset.from_list([{"prompt": f"Say a colour {i}:"} for i in range(8)])

    def reward(completions, **kwargs):
        return [float(len(c)) for c in completions]

    args = GRPOConfig(
        output_dir=tmp,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=6,
        max_steps=2,
        report_to="none",
        bf16=False,
        logging_steps=1,
        seed=0,
        save_strategy="no",
        learning_rate=1e-2,
    )
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=reward, args=args, train_dataset=dataset
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return losses, weights, not torch.equal(initial, weights)


unpatched_losses, unpatched_weights, unpatched_moved = train_once("out_unpatched")
report = unsloth_vlm_grpo.patch()
patched_losses, patched_weights, patched_moved = train_once("out_patched")
print(
    "RESULT "
    + json.dumps(
        {
            "applied": len(report.applied),
            "unpatched_losses": unpatched_losses,
            "patched_losses": patched_losses,
            "weights_equal": bool(torch.equal(unpatched_weights, patched_weights)),
            "training_moved_weights": unpatched_moved and patched_moved,
        }
    )
)

"""Probe (GPU): the fast-generation patches through Unsloth's generated trainer and a FastVisionModel.

Usage: unsloth_fast_generation.py FAMILY 16bit|4bit
The tiny model is built offline, saved and loaded back with FastVisionModel.from_pretrained; LoRA goes on vision
and language layers with Unsloth's gradient checkpointing, and LoRA's B is perturbed so that folding matters.
  greedy: a batch of two prompts of different lengths and image sizes, greedy through Unsloth's own ``generate``
          of the trained model (unmerged LoRA), through the folded copy's (Unsloth's ``generate`` bound to the
          copy) and three times through the patches' path (the copy with the kept static cache, compiled);
  sampled: the same batch sampled (temperature 1, no top-k) through Unsloth's ``generate`` (today's path) and the
          patches' path; each path's generation-time log-probs of its sampled tokens against the trained model's
          scoring forward (the difference TRL's importance sampling corrects for);
  train:  10 GRPO steps through trl.GRPOTrainer (Unsloth's class) with patch(include=FAST_GENERATION), one prompt
          per step, rows of five question lengths and four image sizes and aspect ratios; the prompt length of each
          generation through the kept cache is recorded.
Prints ``RESULT <json>``; a crash is reported in the result, not raised."""

import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]  # shared test helpers; the tie measure
family, precision = sys.argv[1:3]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["UNSLOTH_RETURN_LOGITS"] = "1"  # the scoring forward needs logits
result = {"family": family, "precision": precision}

import unsloth_vlm_grpo  # noqa: E402

unsloth_vlm_grpo.patch(include=unsloth_vlm_grpo.FAST_GENERATION)
import torch  # noqa: E402
import unsloth  # noqa: E402,F401
from fast_generation import tie_at_first_difference  # noqa: E402
from transformers import GenerationConfig  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402
from unsloth import FastVisionModel  # noqa: E402

from unsloth_vlm_grpo.patches import static_cache_generation  # noqa: E402
from unsloth_vlm_grpo.patches.lora_folded_generation import FOLDED_COPY_KEY, FoldedCopy  # noqa: E402
from unsloth_vlm_grpo.patches.static_cache_generation import GENERATION_KEY, StaticCacheGeneration  # noqa: E402
from unsloth_vlm_grpo.tiny import build_tiny_vlm  # noqa: E402

from grpo_helpers import (  # noqa: E402
    FIVE_QUESTIONS,
    VARIED_QUESTIONS,
    VARIED_SIZES,
    distinct_characters_reward,
    recording_prompt_lengths,
    unsloth_vision_lora,
    varied_batch,
    varied_colour_dataset,
)

log_lines = []


class Recorder(logging.Handler):
    def emit(self, record):
        log_lines.append(record.getMessage())


logging.getLogger("unsloth_vlm_grpo").addHandler(Recorder())
logging.getLogger("unsloth_vlm_grpo").setLevel(logging.INFO)

tiny = build_tiny_vlm(family)
directory = tempfile.mkdtemp()
tiny.model.save_pretrained(directory)
tiny.processor.save_pretrained(directory)
model, processor = FastVisionModel.from_pretrained(directory, load_in_4bit=precision == "4bit")
model = unsloth_vision_lora(model)
torch.manual_seed(1)
with torch.no_grad():
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.normal_(std=0.02)


def trl_like_config(**sampling):
    # As TRL builds it (disable_compile=True); a new object per call, since Unsloth's generate rewrites it.
    return GenerationConfig(
        max_new_tokens=16, min_new_tokens=16, pad_token_id=processor.tokenizer.pad_token_id, disable_compile=True,
        output_logits=True, return_dict_in_generate=True, **sampling,
    )  # fmt: skip


def greedy_config():
    return trl_like_config(do_sample=False)


def sampling_config():
    return trl_like_config(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)


def logprob_agreement(output, inputs, prompt_tokens):
    """Generation-time vs scoring log-probs of the sampled tokens, as TRL's importance-sampling metrics name them."""
    completion = output.sequences[:, prompt_tokens:]
    generated = torch.stack(output.logits, dim=1).float().log_softmax(-1)
    generated = generated.gather(-1, completion.unsqueeze(-1)).squeeze(-1)
    batch = dict(inputs, input_ids=output.sequences)
    for key in ("attention_mask", "token_type_ids", "mm_token_type_ids"):
        if key in batch:
            fill = torch.ones_like if key == "attention_mask" else torch.zeros_like
            batch[key] = torch.cat([batch[key], fill(completion)], dim=1)
    logits = model(**batch).logits[:, prompt_tokens - 1 : -1].float()
    scored = logits.log_softmax(-1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)
    difference = scored - generated
    ratio = difference.exp()
    return {
        "sampling_logp_difference/mean": float(difference.abs().mean()),
        "sampling_logp_difference/max": float(difference.abs().max()),
        "importance_sampling_ratio/min": float(ratio.min()),
        "importance_sampling_ratio/mean": float(ratio.mean()),
        "importance_sampling_ratio/max": float(ratio.max()),
        "tokens": completion.numel(),
    }


try:
    rows = 2 if family != "mllama" else 1  # one image per row everywhere; Mllama's tiny processor pads tiles
    inputs = varied_batch(processor, family, VARIED_QUESTIONS[1 : 1 + rows], VARIED_SIZES[1 : 1 + rows]).to("cuda")
    prompt_tokens = inputs["input_ids"].shape[1]
    with torch.no_grad():
        unmerged = model.generate(**inputs, generation_config=greedy_config())
        folded = FoldedCopy(model)
        folded_eager = folded.model.generate(**inputs, generation_config=greedy_config())
        greedy = {
            "folded_layers": len(folded.pairs),
            "dequantised_layers": len(folded.rest),
            "bitsandbytes_modules_in_copy": sum(type(m).__module__.startswith("bitsandbytes") for m in folded.model.modules()),
            "bitsandbytes_modules_in_model": sum(type(m).__module__.startswith("bitsandbytes") for m in model.modules()),
            "folded_vs_unmerged": tie_at_first_difference(unmerged, folded_eager, prompt_tokens),
            "first_logits_max_abs_diff_folded_vs_unmerged": float((unmerged.logits[0] - folded_eager.logits[0]).abs().max()),
            "first_logits_max_abs_unmerged": float(unmerged.logits[0].abs().max()),
        }  # fmt: skip
        if family not in static_cache_generation.STEPS_ASIDE_FOR:
            fast = StaticCacheGeneration(folded.model.config.get_text_config(decoder=True), compile=True)
            graphs = []
            for _ in range(3):  # Unsloth's compiled mask helpers may compile a variant in the second call
                fast_output = fast.generate(folded.model.generate, **inputs, generation_config=greedy_config())
                graphs.append(fast.compiled_graphs)
            greedy["fast_vs_folded"] = tie_at_first_difference(folded_eager, fast_output, prompt_tokens)
            greedy["first_logits_max_abs_diff_fast_vs_folded"] = float(
                (fast_output.logits[0] - folded_eager.logits[0]).abs().max()
            )
            greedy["fast_compiled_graphs_per_call"] = graphs
            torch.manual_seed(2)
            today = model.generate(**inputs, generation_config=sampling_config())
            torch.manual_seed(2)
            fast_sampled = fast.generate(folded.model.generate, **inputs, generation_config=sampling_config())
            greedy["logprob_agreement"] = {
                "today": logprob_agreement(today, inputs, prompt_tokens),
                "fast": logprob_agreement(fast_sampled, inputs, prompt_tokens),
            }
        del folded
    result["greedy"] = greedy
    print("GREEDY " + json.dumps(greedy), flush=True)  # kept should training not finish
except Exception as error:  # noqa: BLE001 - reported to the test
    result["greedy_error"] = f"{type(error).__name__}: {error}"[:600]
    result["greedy_traceback"] = traceback.format_exc()[-2500:]

prompt_lengths = []
StaticCacheGeneration.generate = recording_prompt_lengths(StaticCacheGeneration.generate, prompt_lengths)
args = GRPOConfig(
    output_dir=os.path.join(directory, "out"),
    per_device_train_batch_size=2,  # one prompt per step: each generation has its question's length
    num_generations=2,
    gradient_accumulation_steps=1,
    max_completion_length=16,
    max_steps=10,
    learning_rate=5e-4,
    logging_steps=1,
    report_to="none",
    save_strategy="no",
    bf16=torch.cuda.is_bf16_supported(),
    fp16=False,
    optim="adamw_torch",
    seed=0,
)
trainer = GRPOTrainer(
    model=model,
    processing_class=processor,
    reward_funcs=distinct_characters_reward,
    args=args,
    train_dataset=varied_colour_dataset(rows=10, questions=FIVE_QUESTIONS),
)
result["trainer_class"] = f"{type(trainer).__module__}.{type(trainer).__qualname__}"
vision_lora = {n: p.detach().float().clone() for n, p in model.named_parameters() if "lora_" in n and "vis" in n}
try:
    trainer.train()
    result["outcome"] = "trained"
except Exception as error:  # noqa: BLE001 - reported to the test
    result["outcome"] = "crashed"
    result["error"] = f"{type(error).__name__}: {error}"[:600]
    result["traceback_tail"] = traceback.format_exc()[-2500:]
result["steps_done"] = trainer.state.global_step
result["compiled_graphs_per_step"] = [
    e.get("generation/compiled_graphs") for e in trainer.state.log_history if "loss" in e
]
copy = trainer.__dict__.get(FOLDED_COPY_KEY, (None, None))[1]
static = trainer.__dict__.get(GENERATION_KEY, (None, None))[1]
result["prompt_lengths"] = prompt_lengths
result["trained_folded_layers"] = None if copy is None else len(copy.pairs)
result["trained_static_cache"] = None if static is None else [static.batch_size, static.cache_length, static.compile]
now = dict(model.named_parameters())
result["vision_lora_moved"] = sum(not torch.equal(now[n].detach().float(), v) for n, v in vision_lora.items())
result["vision_lora_count"] = len(vision_lora)
result["log"] = log_lines[-20:]
print("RESULT " + json.dumps(result, default=str))

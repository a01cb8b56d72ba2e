"""GPU: ``patch(include=FAST_GENERATION)`` through Unsloth's generated trainer and FastVisionModel (marker ``gpu``).

Every family in 16 bits, Qwen2.5-VL and Gemma 3 also in 4 bits (the copy is dequantised). Per case one process
(``tests/probes/unsloth_fast_generation.py``): greedy tokens of the patches' path against Unsloth's own
``generate``, sampled log-probs of both paths against the trained model's scoring, then 10 GRPO steps of one
prompt each, of five question lengths and four image sizes and aspect ratios. (On the CPU, with Unsloth's compiler
applied, seven image sizes compiled nothing after the second generation for Qwen2-VL, Qwen2.5-VL, Qwen3-VL and
LLaVA-NeXT; the tiny Gemma 3 and SmolVLM resize every image to one size: ``benchmarks/compiled_decode_cpu.py``.)
Run on a GPU machine: ``python -m pytest -m gpu -n 9 tests/gpu/test_fast_generation_gpu.py``.
"""

import logging

import pytest

from unsloth_vlm_grpo.patches.static_cache_generation import STEPS_ASIDE_FOR

from conftest import ROOT, run_probe

PROBE = str(ROOT / "tests" / "probes" / "unsloth_fast_generation.py")
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "gemma3", "qwen3_vl", "idefics3", "llava_next", "mllama")
CASES = [(family, "16bit") for family in FAMILIES] + [("qwen2_5_vl", "4bit"), ("gemma3", "4bit")]
# bf16 rounds base + delta once where PEFT adds two rounded products: greedy may part at a near-tie, never at a
# clear choice: a gap of a few bf16 spacings (at the row's largest logit), or within the paths' measured
# first-token logit difference.
TIE_SPACINGS = 4

pytestmark = pytest.mark.gpu


def _tie(difference, noise: float) -> bool:
    return (
        difference is None
        or abs(difference["gap_in_bf16_spacings"]) <= TIE_SPACINGS
        or abs(difference["gap"]) <= 2 * noise
    )


@pytest.mark.parametrize(("family", "precision"), CASES)
def test_unsloth_trains_through_the_fast_path(family, precision, tmp_path):
    result = run_probe([PROBE, family, precision], tmp_path, timeout=900)
    logging.getLogger(__name__).info("%s %s: %s", family, precision, {k: v for k, v in result.items() if k != "log"})
    assert result["trainer_class"] == "UnslothGRPOTrainer.UnslothGRPOTrainer"
    assert "greedy_error" not in result, result.get("greedy_traceback")
    assert result["outcome"] == "trained", result.get("traceback_tail")
    assert result["steps_done"] == 10
    assert result["vision_lora_moved"] == result["vision_lora_count"] > 0
    greedy = result["greedy"]
    assert greedy["folded_layers"] > 0 and result["trained_folded_layers"] == greedy["folded_layers"]
    assert greedy["bitsandbytes_modules_in_copy"] == 0
    assert (greedy["bitsandbytes_modules_in_model"] > 0) == (precision == "4bit")
    assert _tie(greedy["folded_vs_unmerged"], greedy["first_logits_max_abs_diff_folded_vs_unmerged"]), greedy
    if family in STEPS_ASIDE_FOR:
        assert result["trained_static_cache"] is None
        assert any(STEPS_ASIDE_FOR[family] in line for line in result["log"]), result["log"]
        return
    assert _tie(greedy["fast_vs_folded"], greedy["first_logits_max_abs_diff_fast_vs_folded"]), greedy
    # The second call compiled one graph on an H100 for idefics3, qwen3_vl and llava_next. A CPU reproduction
    # traced it to Unsloth's compiled create_causal_mask, prefilling on the initialised kept cache; there the third
    # call compiled nothing.
    assert greedy["fast_compiled_graphs_per_call"][0] > 0 and greedy["fast_compiled_graphs_per_call"][2] == 0
    assert result["trained_static_cache"][2] is True, "decoding compiled"
    # Generation-time log-probs of sampled tokens agree with the trained model's scoring as closely as today's path
    # (Unsloth's generate, unmerged LoRA): what TRL's importance-sampling correction would see.
    agreement = greedy["logprob_agreement"]
    fast, today = (agreement[path]["sampling_logp_difference/mean"] for path in ("fast", "today"))
    assert fast <= 2 * today + 0.001, agreement
    # Prompts of five question lengths and four image sizes: graphs are compiled in the first two generations at most.
    lengths = result["prompt_lengths"]
    assert len(lengths) == 10 and len(set(lengths)) >= 5 and len(set(lengths[2:])) >= 4, lengths
    assert all(graphs == 0 for graphs in result["compiled_graphs_per_step"][2:]), result["compiled_graphs_per_step"]

"""The comparison report of benchmarks/grpo_vlm.py: medians, ratios to (a), the physical floor, targets."""

from __future__ import annotations

import datetime
import json
import statistics
from importlib import metadata
from pathlib import Path

CONFIGS = {
    "a": "TRL + PEFT bf16 LoRA (no Unsloth)",
    "b": "Unsloth trainer, no patch",
    "c": "Unsloth + patch(), 16-bit LoRA",
    "d": "Unsloth + patch(), 4-bit QLoRA",
    "e": "TRL + PEFT bf16 LoRA + patch(include=FAST_GENERATION)",
    "f": "Unsloth + patch(include=FAST_GENERATION), 16-bit LoRA",
    "g": "Unsloth + patch(include=FAST_GENERATION), 4-bit QLoRA",
}
BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12}  # bytes/s, HBM spec
PEAK_BF16_FLOPS = 989e12  # H100/H200 dense bf16 spec; ~790e12 is what large matmuls reach


def summarise(result: dict) -> dict:
    """Median seconds per step and its split; tokens/s over the measured steps."""
    if result.get("status") != "ok":
        return {}
    steps = result["steps"]
    median = statistics.median

    def seconds(part):
        return median(part(step) for step in steps)

    return {
        "seconds_per_step": seconds(lambda s: s["seconds"]),
        "generation_seconds": seconds(lambda s: s["generate"]),
        "scoring_seconds": seconds(lambda s: s["generate_and_score"] - s["generate"]),
        "train_seconds": seconds(lambda s: s["seconds"] - s["generate_and_score"]),
        "tokens_per_second": sum(s["completions"] * s["completion_mean_length"] for s in steps)
        / sum(s["seconds"] for s in steps),
        "tokens_per_step": median(s["tokens"] for s in steps),
        "completion_lengths": sorted({s[f"completion_{end}_length"] for s in steps for end in ("min", "max")}),
    }


def floor_seconds(args, meta: dict, device_name: str | None, tokens_per_step: float) -> dict:
    """The physical floor of one step: decoding reads the bf16 weights once per token; training ~6 N T FLOPs."""
    bandwidth = args.bandwidth or next((bw for gpu, bw in BANDWIDTH.items() if gpu in (device_name or "")), None)
    parameters = meta["parameters"]["total"]
    floor = {
        "parameters": parameters,
        "bandwidth": bandwidth,
        "peak_flops": args.peak_flops,
        "train_seconds": 6 * parameters * tokens_per_step / args.peak_flops,
    }
    if bandwidth:
        floor["decode_seconds"] = args.completion_length * 2 * parameters / bandwidth
        floor["seconds"] = floor["decode_seconds"] + floor["train_seconds"]
    return floor


def _fmt(value, spec=".2f", suffix=""):
    return "—" if value is None else f"{value:{spec}}{suffix}"


def report(args, meta: dict, results: list[dict], versions: dict | None = None) -> dict:
    """Print and write the comparison; ``versions`` are the GPU machine's when combining saved runs."""
    summaries = {r["config"]: summarise(r) for r in results}
    device_name = next((r.get("device_name") for r in results if r.get("device_name")), args.device)
    base = summaries.get("a") or {}
    base_memory = next((r.get("peak_allocated_gib") for r in results if r["config"] == "a"), None)
    tokens = next((s["tokens_per_step"] for s in summaries.values() if s), 0)
    floor = floor_seconds(args, meta, device_name, tokens)
    versions = versions or {
        name: _version(name) for name in ("torch", "transformers", "trl", "unsloth", "peft", "bitsandbytes")
    }
    env_line = ", ".join([device_name, datetime.date.today().isoformat(), *(f"{k} {v}" for k, v in versions.items())])
    rows = [
        "| config | status | tokens/s | s/step | generation s | scoring s | backward+optimizer s | peak alloc GiB "
        "| peak reserved GiB | tokens/s ÷ (a) | s/step ÷ (a) | alloc ÷ (a) | × floor | completion lengths |",
        "|" + "---|" * 14,
    ]
    for result in results:
        name, s = result["config"], summaries[result["config"]]
        status = result["status"] if result["status"] == "ok" else f"{result['status']}: {result.get('error', '')}"
        memory = result.get("peak_allocated_gib")
        rows.append(
            "| "
            + " | ".join(
                [
                    f"({name}) {CONFIGS[name]}",
                    status.replace("|", "/").replace("\n", " ")[:200],
                    _fmt(s.get("tokens_per_second"), ".1f"),
                    _fmt(s.get("seconds_per_step")),
                    _fmt(s.get("generation_seconds")),
                    _fmt(s.get("scoring_seconds")),
                    _fmt(s.get("train_seconds")),
                    _fmt(memory),
                    _fmt(result.get("peak_reserved_gib")),
                    _fmt(_ratio(s.get("tokens_per_second"), base.get("tokens_per_second")), ".2f", "×"),
                    _fmt(_ratio(s.get("seconds_per_step"), base.get("seconds_per_step")), ".2f", "×"),
                    _fmt(_ratio(memory, base_memory), ".2f", "×"),
                    _fmt(_ratio(s.get("seconds_per_step"), floor.get("seconds")), ".1f", "×"),
                    ",".join(str(int(n)) for n in s.get("completion_lengths", [])) or "—",
                ]
            )
            + " |"
        )
    step = {name: s.get("seconds_per_step") for name, s in summaries.items()}
    memory = {r["config"]: r.get("peak_allocated_gib") for r in results}
    targets = {
        "patch adds <= 1% step time over (b)": _check(step.get("c"), step.get("b"), lambda c, b: c <= 1.01 * b),
        "(c) tokens/s >= (a)": _check(
            (summaries.get("c") or {}).get("tokens_per_second"), base.get("tokens_per_second"), lambda c, a: c >= a
        ),
        "(d) peak memory <= 50% of (a)": _check(memory.get("d"), base_memory, lambda d, a: d <= 0.5 * a),
    }
    knobs = (
        f"model {args.model} ({_count(meta['parameters']['total'])} parameters, vision "
        f"{_count(meta['parameters']['vision'])}; vocab {meta['vocab_size']}), image {meta['image_size']}x"
        f"{meta['image_size']} random noise, per-device batch {args.batch_size}, num_generations "
        f"{args.num_generations}, gradient_accumulation_steps 1, steps_per_generation 1, completion length "
        f"{args.completion_length} (EOS suppressed with min_new_tokens; vision tokens suppressed in every "
        f"config), LoRA r={args.lora_rank} alpha={args.lora_alpha} on vision + language attention and MLP, "
        f'gradient checkpointing on (Unsloth: "unsloth"), bf16, optim adamw_torch for all (an 8-bit '
        f"optimiser would change the comparison), lr {args.learning_rate}, beta 0, seed {args.seed}, warm-up "
        f"{args.warmup_steps} + measured {args.measured_steps} steps (median)"
    )
    floor_line = "physical floor per step: " + (
        f"{floor['seconds']:.3f} s = decode {args.completion_length} tokens x {2 * floor['parameters'] / 1e9:.2f} GB "
        f"bf16 weights / {floor['bandwidth'] / 1e12:.2f} TB/s ({floor['decode_seconds']:.3f} s) + training 6 x "
        f"{floor['parameters'] / 1e9:.2f}B params x {tokens:.0f} tokens / {floor['peak_flops'] / 1e12:.0f} TFLOP/s "
        f"({floor['train_seconds']:.3f} s; {'dense bf16 spec' if floor['peak_flops'] == PEAK_BF16_FLOPS else 'given'})"
        if "seconds" in floor
        else "not computed (unknown GPU memory bandwidth; pass --bandwidth)"
    )
    target_lines = [f"- {name}: {verdict}" for name, verdict in targets.items()]
    check_lines = [f"- ({r['config']}) {problem}" for r in results for problem in settings_problems(args, r, summaries)]
    check_title = "Checks (settings read back from each trainer, completion lengths from its logged metrics):"
    markdown = (
        "\n".join(
            [
                f"Environment: {env_line}",
                "",
                f"Settings: {knobs}.",
                "",
                *rows,
                "",
                f"{floor_line}.",
                "",
                "Targets:",
                *target_lines,
                "",
                check_title,
                *(check_lines or ["- every configuration that ran used the settings above"]),
            ]
        )
        + "\n"
    )
    output = {
        "environment": env_line,
        "versions": versions,
        "settings": knobs,
        "floor": floor,
        "summaries": summaries,
        "targets": targets,
        "results": results,
        "meta": meta,
    }
    out_dir = Path(args.output_dir)
    (out_dir / "results.json").write_text(json.dumps(output, indent=2, default=str))
    (out_dir / "results.md").write_text(markdown)
    print(markdown)
    return output


def settings_problems(args, result: dict, summaries: dict) -> list[str]:
    """Where a configuration that ran did other work than asked (e.g. Unsloth's config changing a knob)."""
    if result.get("status") != "ok":
        return []
    expected = {
        "per_device_train_batch_size": args.batch_size,
        "num_generations": args.num_generations,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 1,
        "beta": 0.0,
        "max_completion_length": args.completion_length,
        "optim": "adamw_torch",
        "bf16": True,
    }
    problems = [
        f"{name} was {result['args'].get(name)!r}, not {value!r}"
        for name, value in expected.items()
        if str(result["args"].get(name)) != str(value) and result["args"].get(name) != value
    ]
    lengths = summaries[result["config"]]["completion_lengths"]
    if lengths != [args.completion_length]:
        problems.append(f"completion lengths {lengths}, not all {args.completion_length}")
    return problems


def _count(parameters: int) -> str:
    return f"{parameters / 1e9:.3f}B" if parameters >= 1e8 else f"{parameters / 1e6:.2f}M"


def _ratio(value, base):
    return value / base if value is not None and base else None


def _check(value, base, test) -> str:
    if value is None or base is None:
        return "n/a (a configuration did not run)"
    return "met" if test(value, base) else "NOT met"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"

"""GRPO speed and memory for a vision-language model: plain TRL vs Unsloth vs Unsloth + unsloth_vlm_grpo.

    python benchmarks/grpo_vlm.py --model qwen2_5_vl_3b --configs a,b,c,d

Configurations, each in a fresh subprocess of its own (``--child CONFIG``) and working directory:
  a  plain TRL GRPOTrainer + transformers model + PEFT bf16 LoRA (unsloth is never imported)
  b  Unsloth's generated trainer + FastVisionModel, without unsloth_vlm_grpo (a crash is a result)
  c  Unsloth + unsloth_vlm_grpo.patch(), 16-bit LoRA
  d  Unsloth + unsloth_vlm_grpo.patch(), 4-bit QLoRA (bitsandbytes)
  e  as a, with unsloth_vlm_grpo.patch(include=FAST_GENERATION): a kept static cache, compiled decoding
     and LoRA folded into a generation copy
  f  as c, with patch(include=FAST_GENERATION)
  g  as d, with patch(include=FAST_GENERATION): the generation copy is dequantised to 16 bits
The random-weight model is built once (on the GPU) and saved to --cache-dir; every configuration loads it.
Each child prints ``RESULT <json>``; the parent writes results.json and results.md to --output-dir.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # benchmark this checkout's unsloth_vlm_grpo

from _presets import PRESETS, meta_parameter_counts, save_preset  # noqa: E402
from _report import CONFIGS, PEAK_BF16_FLOPS, report  # noqa: E402

GIB = 2**30


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(PRESETS), default="qwen2_5_vl_3b")
    parser.add_argument("--configs", default="a,b,c,d", help=f"comma-separated subset of {','.join(CONFIGS)}")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available")
    parser.add_argument("--batch-size", type=int, default=8, help="per-device batch (completions per step)")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--completion-length", type=int, default=128, help="every completion is exactly this long")
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps run before measuring (compilation)")
    parser.add_argument("--measured-steps", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one extra step after the measured ones (torch profiler): its top operations go to "
        "profile_<config>.txt; the measured steps are timed without the profiler",
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per configuration")
    parser.add_argument("--cache-dir", default="/tmp/bench_models", help="random models are saved here once")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached random model")
    parser.add_argument("--output-dir", default="./benchmark_results")
    parser.add_argument("--bandwidth", type=float, default=None, help="memory bandwidth, bytes/s (default: by GPU)")
    parser.add_argument("--peak-flops", type=float, default=PEAK_BF16_FLOPS, help="bf16 FLOP/s for the floor")
    parser.add_argument("--count-params", action="store_true", help="print the preset's parameter count and exit")
    parser.add_argument(
        "--combine",
        nargs="+",
        metavar="JSON",
        help="no run: one report from saved results.json / results_partial.json files of earlier runs "
        "(same machine and settings; the first full results.json gives the model and versions)",
    )
    parser.add_argument("--child", choices=(*CONFIGS, "build"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.cache_dir = str(Path(args.cache_dir).resolve())
    args.output_dir = str(Path(args.output_dir).resolve())
    args.configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = sorted(set(args.configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {','.join(CONFIGS)}")
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


# ---------------------------------------------------------------- child: one configuration, one process


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _time_on_instance(trainer, name: str, device: str, seconds: dict[int, float]) -> None:
    """Replace ``trainer.<name>`` (on the instance, for TRL's and Unsloth's class alike) with a timed call.

    Time is added to ``seconds[global step]``, with the GPU synchronised around the call; under ``--profile``
    the call is the profiler range ``bench.<name>``.
    """
    from torch.profiler import record_function

    method = getattr(trainer, name)

    @functools.wraps(method)
    def timed(*args, **kwargs):
        _sync(device)
        start = time.perf_counter()
        try:
            with record_function(f"bench.{name}"):
                return method(*args, **kwargs)
        finally:
            _sync(device)
            step = trainer.state.global_step
            seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - start

    setattr(trainer, name, timed)


def _step_timer(device: str, seconds: dict[int, float]):
    """A callback timing each optimizer step, on_step_begin to on_step_end (training_step + optimizer)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            _sync(device)
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _sync(device)
            seconds[state.global_step - 1] = time.perf_counter() - self.start

    return StepTimer()


def _is_kernel(event) -> bool:
    """A GPU kernel; record_function ranges also appear as GPU events spanning their kernels."""
    return event.device_type.name == "CUDA" and not event.is_user_annotation


def _decode_step_timeline(events, region: str = "Torch-Compiled Region") -> list[str]:
    """One decode step in the middle of the profiled generation, as lines: each CPU operation of 20 us or more
    (offset and duration in us, indented by depth), then the GPU kernel time that started in the window. A step
    runs from one call of the compiled decode step to the next: the Dynamo region (``Torch-Compiled Region:
    frame/recompile``) of the generation's last compiled call. A prefill can call other compiled regions (Unsloth's
    vision blocks, say) more often than the decode step runs; inductor's graph names cannot tell graphs apart
    where its FX graph cache is off (they are all "None")."""
    generation = next((e for e in events if e.name == "bench._generate_single_turn"), None)
    if generation is None:
        return ["no generation in the profiled step"]
    start, end = generation.time_range.start, generation.time_range.end
    calls = sorted(
        (e for e in events if e.name.startswith(region) and start <= e.time_range.start <= end),
        key=lambda e: e.time_range.start,
    )
    if not calls:
        return ["no compiled region was called in the generation"]
    decode_region = calls[-1].name
    markers = [e.time_range.start for e in calls if e.name == decode_region]
    if len(markers) < 3:
        return [f"fewer than 3 calls of the decode step's region in the generation: {len(markers)}"]
    middle = len(markers) // 2
    window = markers[middle], markers[middle + 1]

    def depth(event) -> int:
        level = 0
        while event.cpu_parent is not None:
            event, level = event.cpu_parent, level + 1
        return level

    inside = sorted(
        (e for e in events if window[0] <= e.time_range.start < window[1]), key=lambda e: e.time_range.start
    )
    lines = [
        f"decode step window: {window[1] - window[0]:.0f} us, between calls {middle + 1} and {middle + 2} of "
        f"{len(markers)} of the decode step's {decode_region} ({len(calls)} compiled calls in the generation)"
    ]
    kernels = 0.0
    for event in inside:
        duration = event.time_range.end - event.time_range.start
        if _is_kernel(event):
            kernels += duration
        elif duration >= 20:
            offset = event.time_range.start - window[0]
            lines.append(f"{offset:9.0f} {duration:8.0f}  {'  ' * min(depth(event), 12)}{event.name[:90]}")
    lines.append(f"GPU kernel time starting in the window: {kernels:.0f} us")
    return lines


def _step_profiler(step: int, output: Path, device: str, result: dict):
    """A callback profiling global step ``step`` (0-based) whole: the top operations by self time go to
    ``output``, and ``result["profile"]`` gets the step's CUDA kernel time, CUDA graph launches and the
    kernel time inside generation."""
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])

    class StepProfiler(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == step:
                self.trace = profile(activities=activities)
                self.trace.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step - 1 != step:
                return
            _sync(device)
            self.trace.__exit__(None, None, None)
            events = self.trace.key_averages()
            by = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
            tables = [events.table(sort_by=by, row_limit=30), events.table(sort_by="self_cpu_time_total", row_limit=30)]
            output.write_text("\n".join([*tables, *_decode_step_timeline(self.trace.events())]))
            kernel_us = sum(event.self_device_time_total for event in events if _is_kernel(event))
            result["profile"] = {
                "step": step,
                "cuda_kernel_seconds": kernel_us / 1e6,
                "cuda_graph_launches": sum(event.count for event in events if event.key == "cudaGraphLaunch"),
                "generation_cuda_seconds": sum(
                    event.device_time_total
                    for event in events
                    if event.key == "bench._generate_single_turn" and event.device_type.name == "CPU"
                )
                / 1e6,
                "table": str(output),
            }

    return StepProfiler()


def distinct_tokens_reward(completions, completion_ids=None, **kwargs) -> list[float]:
    """Cheap reward with a spread: distinct token ids per completion. Every completion has the same length
    (EOS is suppressed), so a length reward would be constant; the tiny tokenizer decodes few of a real-size
    vocabulary's ids, so text is not used when ids are given."""
    if completion_ids is not None:
        return [float(len(set(ids))) for ids in completion_ids]
    from unsloth_vlm_grpo.colour_task import completion_text  # here, so the parent process imports no training stack

    return [float(len(set(completion_text(completion)))) for completion in completions]


def _noise_dataset(rows: int, size: int, seed: int):
    import numpy as np
    from datasets import Dataset
    from PIL import Image

    rng = np.random.default_rng(seed)
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    images = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(rows)]
    return Dataset.from_list([{"prompt": prompt, "image": image} for image in images])


def _load_plain(args, meta):
    """Config a: transformers model + PEFT LoRA on the linear layers Unsloth's get_peft_model picks."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device_map = {"": args.device} if args.device == "cuda" else None
    model = AutoModelForImageTextToText.from_pretrained(args.model_dir, dtype=torch.bfloat16, device_map=device_map)
    processor = AutoProcessor.from_pretrained(args.model_dir)
    head = model.get_output_embeddings()
    # Unsloth targets every linear layer of vision and language blocks; Qwen's vision merger (two linears
    # outside the blocks) and the LM head are not targeted (checked against unsloth_zoo.get_peft_regex).
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head and ".merger." not in name
    ]
    torch.manual_seed(args.seed)
    config = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=0.0, target_modules=targets)
    return get_peft_model(model, config), processor


def _load_unsloth(args, config_name: str):
    """Configs b, c, d, f, g: FastVisionModel with LoRA on vision and language attention + MLP layers."""
    if config_name != "b":
        import unsloth_vlm_grpo

        unsloth_vlm_grpo.patch(include=unsloth_vlm_grpo.FAST_GENERATION if config_name in ("f", "g") else ())
    import torch
    import unsloth  # noqa: F401  (before trl's names: trl.GRPOTrainer becomes Unsloth's generated class)
    from unsloth import FastVisionModel

    model, processor = FastVisionModel.from_pretrained(
        args.model_dir, load_in_4bit=config_name in ("d", "g"), dtype=torch.bfloat16, full_finetuning=False
    )
    model = FastVisionModel.get_peft_model(
        model,
        finetune_vision_layers=True,
        finetune_language_layers=True,
        finetune_attention_modules=True,
        finetune_mlp_modules=True,
        r=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=0.0,
        bias="none",
        random_state=args.seed,
        use_gradient_checkpointing="unsloth",
    )
    return model, processor


def _steps(args) -> int:
    """Warm-up and measured steps, and the profiled one after them under ``--profile``."""
    return args.warmup_steps + args.measured_steps + (1 if args.profile else 0)


def _grpo_config(args, meta, output_dir: str):
    from trl import GRPOConfig

    generation_kwargs = {"min_new_tokens": args.completion_length, "suppress_tokens": meta["suppress_tokens"]}
    return GRPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=args.batch_size,
        num_generations=args.num_generations,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        max_completion_length=args.completion_length,
        generation_kwargs=generation_kwargs,
        max_steps=_steps(args),
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        beta=0.0,
        optim="adamw_torch",
        bf16=True,
        gradient_checkpointing=True,
        temperature=1.0,
        use_vllm=False,
        seed=args.seed,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=args.device == "cpu",
    )


_CHECKED_ARGS = (
    "per_device_train_batch_size",
    "num_generations",
    "gradient_accumulation_steps",
    "steps_per_generation",
    "max_completion_length",
    "generation_kwargs",
    "learning_rate",
    "beta",
    "optim",
    "bf16",
    "gradient_checkpointing",
    "temperature",
    "seed",
    "max_steps",
    "loss_type",
)


def _generation_path(trainer) -> str:
    """What generated: the kept static cache (and its compile), the LoRA-folded copy, or TRL's own path."""
    from unsloth_vlm_grpo.patches.lora_folded_generation import FOLDED_COPY_KEY
    from unsloth_vlm_grpo.patches.static_cache_generation import GENERATION_KEY

    static = trainer.__dict__.get(GENERATION_KEY, (None, None))[1]
    folded = trainer.__dict__.get(FOLDED_COPY_KEY, (None, None))[1]
    parts = []
    if static is not None:
        parts.append(
            f"static cache {static.batch_size}x{static.cache_length}" + (", compiled" if static.compile else "")
        )
    if folded is not None:
        dequantised = f", {len(folded.rest)} more 4-bit layers dequantised" if folded.rest else ""
        parts.append(f"LoRA folded ({len(folded.pairs)} layers{dequantised}; {folded.extra_bytes / GIB:.2f} GiB)")
    return ", ".join(parts) or "TRL's generate (dynamic cache, eager)"


def run_child(args) -> dict:
    """Train one configuration; every figure comes back as the child's result (a crash too)."""
    result = {"config": args.child, "stage": "load"}
    try:
        meta = json.loads((Path(args.model_dir) / "bench_meta.json").read_text())
        if args.child == "e":
            import unsloth_vlm_grpo

            unsloth_vlm_grpo.patch(include=unsloth_vlm_grpo.FAST_GENERATION)
        if args.child in ("a", "e"):
            model, processor = _load_plain(args, meta)
        else:
            model, processor = _load_unsloth(args, args.child)
        import torch
        from trl import GRPOTrainer

        result["lora_modules"] = sum(1 for name, _ in model.named_modules() if name.endswith("lora_A"))
        result["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows = _steps(args) * max(1, args.batch_size // args.num_generations)
        trainer = GRPOTrainer(
            model=model,
            processing_class=processor,
            reward_funcs=distinct_tokens_reward,
            args=_grpo_config(args, meta, str(Path.cwd() / "trainer_output")),
            train_dataset=_noise_dataset(rows, meta["image_size"], args.seed),
        )
        result["trainer_class"] = f"{type(trainer).__module__}.{type(trainer).__qualname__}"
        result["args"] = {name: getattr(trainer.args, name, None) for name in _CHECKED_ARGS}
        timings = {name: {} for name in ("_generate", "_generate_single_turn", "_generate_and_score_completions")}
        for name, seconds in timings.items():
            _time_on_instance(trainer, name, args.device, seconds)
        step_seconds: dict[int, float] = {}
        trainer.add_callback(_step_timer(args.device, step_seconds))
        if args.profile:
            table = Path(args.output_dir) / f"profile_{args.child}.txt"
            trainer.add_callback(_step_profiler(_steps(args) - 1, table, args.device, result))
        if args.device == "cuda":
            result["device_name"] = torch.cuda.get_device_name()
            result["memory_after_load_gib"] = torch.cuda.memory_allocated() / GIB
            torch.cuda.reset_peak_memory_stats()
        result["stage"] = "train"
        trainer.train()
        result["stage"] = "done"
        result["status"] = "ok"
        if args.device == "cuda":
            result["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
            result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
        logs = {entry["step"]: entry for entry in trainer.state.log_history if "completions/mean_length" in entry}
        measured = range(args.warmup_steps, args.warmup_steps + args.measured_steps)  # 0-based step indices
        result["steps"] = [
            {
                "seconds": step_seconds[i],
                "generate": timings["_generate"].get(i, 0.0),
                "decode": timings["_generate_single_turn"].get(i, 0.0),
                "generate_and_score": timings["_generate_and_score_completions"].get(i, 0.0),
                "completions": args.batch_size,
                "completion_mean_length": logs[i + 1]["completions/mean_length"],
                "completion_min_length": logs[i + 1]["completions/min_length"],
                "completion_max_length": logs[i + 1]["completions/max_length"],
                "tokens": logs[i + 1]["num_tokens"] - (logs[i]["num_tokens"] if i in logs else 0),
            }
            for i in measured
        ]
        result["warmup_seconds"] = [step_seconds.get(i) for i in range(args.warmup_steps)]
        result["compiled_graphs_per_step"] = [
            entry.get("generation/compiled_graphs") for entry in trainer.state.log_history if "loss" in entry
        ]
        result["generation_path"] = _generation_path(trainer)
    except Exception as error:  # noqa: BLE001 - a crash is a benchmark result (config b may crash)
        result["status"] = "crashed"
        result["error"] = f"{type(error).__name__}: {error}"[:600]
        result["traceback_tail"] = traceback.format_exc()[-2000:]
    result["unsloth_imported"] = "unsloth" in sys.modules
    library = sys.modules.get("unsloth_vlm_grpo")
    result["unsloth_vlm_grpo_patched"] = library is not None and library.is_patched()
    if result["unsloth_vlm_grpo_patched"]:
        result["unsloth_vlm_grpo_patches"] = sorted({name for name, _ in library._engine.applied_sites()})
    return result


# ---------------------------------------------------------------- parent: build, run, then report


def _child_env(args, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        "UNSLOTH_COMPILE_LOCATION": str(workdir / "unsloth_compiled_cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    if args.device == "cpu":
        env["TRITON_INTERPRET"] = "1"  # TRL's fused log-prob kernel is Triton; config a stays unpatched
    return env


def _run_subprocess(args, child: str, workdir: Path, log_path: Path, extra: list[str]) -> dict:
    """Run ``--child CHILD``; its RESULT, or a crash/timeout row with the error found in its output."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        *args.argv,
        "--cache-dir",
        args.cache_dir,
        "--device",
        args.device,
        "--child",
        child,
        *extra,
    ]
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=_child_env(args, workdir),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, _ = process.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)  # the child and anything it started (compile workers)
            stdout, _ = process.communicate()
            log.write(stdout)
            return {"config": child, "status": "timeout", "error": f"no result within {args.timeout} s"}
        log.write(stdout)
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            result["wall_seconds"] = time.perf_counter() - started
            return result
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return {
        "config": child,
        "status": "crashed",
        "error": (errors or lines or ["no output"])[-1][:600],
        "returncode": process.returncode,
    }


def _ensure_model(args, scratch: Path) -> dict:
    directory = Path(args.cache_dir) / args.model
    meta_path = directory / "bench_meta.json"
    if meta_path.exists() and not args.rebuild:
        return json.loads(meta_path.read_text())
    print(f"Building random {args.model} in {directory} (once) ...", flush=True)
    build = _run_subprocess(args, "build", scratch / "build", Path(args.output_dir) / "logs" / "build.log", [])
    if build.get("status") != "ok":
        raise SystemExit(f"could not build {args.model}: {build.get('error')}")
    return json.loads(meta_path.read_text())


# Flags of this script -> the trainer argument each run recorded; the report is worded from the flags.
COMBINE_SETTINGS = {
    "batch_size": "per_device_train_batch_size",
    "num_generations": "num_generations",
    "completion_length": "max_completion_length",
    "learning_rate": "learning_rate",
    "seed": "seed",
}


def combine(args) -> int:
    """One report from the results of several runs, e.g. configurations split over time-limited calls."""
    results, meta, versions = {}, None, None
    for path in args.combine:
        saved = json.loads(Path(path).read_text())
        if isinstance(saved, dict):
            meta, versions = meta or saved["meta"], versions or saved["versions"]
            saved = saved["results"]
        results.update({result["config"]: result for result in saved})
    if meta is None:
        raise SystemExit("--combine needs at least one full results.json (it holds the model and the versions)")
    # The report states the step counts the runs used, not this invocation's defaults.
    ran = [r for r in results.values() if r.get("status") == "ok"]
    for flag, key in COMBINE_SETTINGS.items():
        for result in ran:
            if result["args"][key] != getattr(args, flag):
                raise SystemExit(
                    f"--combine: configuration {result['config']} ran with {key}={result['args'][key]}, "
                    f"this command says --{flag.replace('_', '-')} {getattr(args, flag)}; pass the runs' "
                    "settings"
                )
    counts = {(len(r["warmup_seconds"]), len(r["steps"])) for r in ran}
    if len(counts) > 1:
        raise SystemExit(f"--combine: the runs used different warm-up/measured step counts {sorted(counts)}")
    if counts:
        args.warmup_steps, args.measured_steps = counts.pop()
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    report(args, meta, [results[name] for name in sorted(results)], versions)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    preset = PRESETS[args.model]
    if args.count_params:
        counts = meta_parameter_counts(preset)
        print(json.dumps({"model": args.model, **counts, "total_billions": round(counts["total"] / 1e9, 3)}))
        return 0
    if args.combine:
        return combine(args)
    if args.child == "build":
        meta = save_preset(preset, Path(args.cache_dir) / args.model, args.device)
        print("RESULT " + json.dumps({"config": "build", "status": "ok", **meta}), flush=True)
        return 0
    if args.child:
        # the library's own lines (cache, compiles and their seconds, the copy's size) go to the child's log
        logging.basicConfig(format="%(message)s")
        logging.getLogger("unsloth_vlm_grpo").setLevel(logging.INFO)
        print("RESULT " + json.dumps(run_child(args), default=str), flush=True)
        return 0
    if args.device == "cpu" and preset.real_shapes:
        raise SystemExit(f"--model {args.model} needs a CUDA GPU; on CPU use tiny-qwen2_5_vl or tiny-gemma3")
    Path(args.output_dir, "logs").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="grpo_vlm_bench_"))  # one working directory per child
    meta = _ensure_model(args, scratch)
    model_dir = str(Path(args.cache_dir) / args.model)
    results = []
    for name in args.configs:
        if args.device == "cpu" and name != "a":
            print(f"({name}) skipped: needs a CUDA GPU (Unsloth's FastVisionModel has no CPU backend)", flush=True)
            results.append({"config": name, "status": "skipped", "error": "needs a CUDA GPU"})
            continue
        print(f"({name}) {CONFIGS[name]} ...", flush=True)
        log_path = Path(args.output_dir) / "logs" / f"{name}.log"
        result = _run_subprocess(args, name, scratch / name, log_path, ["--model-dir", model_dir])
        print(f"({name}) {result['status']}" + (f": {result.get('error')}" if result["status"] != "ok" else ""))
        results.append(result)
        # Kept after every configuration, so a run cut off by a time limit still leaves what it measured.
        Path(args.output_dir, "results_partial.json").write_text(json.dumps(results, indent=2, default=str))
    report(args, meta, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

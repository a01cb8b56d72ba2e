"""benchmarks/grpo_vlm.py runs configuration (a) on CPU end to end (tiny preset) and reports a sane split; the
full-size presets have the released models' sizes."""

import json
import math

import pytest

from conftest import ROOT, run_python

SCRIPT = str(ROOT / "benchmarks" / "grpo_vlm.py")


def test_benchmark_tiny_plain_trl_on_cpu(tmp_path):
    process = run_python(
        [
            SCRIPT,
            "--model",
            "tiny-qwen2_5_vl",
            "--configs",
            "a,c",
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--num-generations",
            "4",
            "--completion-length",
            "8",
            "--warmup-steps",
            "1",
            "--measured-steps",
            "1",
            "--cache-dir",
            str(tmp_path / "models"),
            "--output-dir",
            str(tmp_path / "out"),
            "--bandwidth",
            "1e11",
        ],
        tmp_path,
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        timeout=300,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    plain, patched = report["results"]
    assert plain["status"] == "ok", plain
    assert plain["unsloth_imported"] is False and plain["unsloth_vlm_grpo_patched"] is False
    assert patched == {"config": "c", "status": "skipped", "error": "needs a CUDA GPU"}
    summary = report["summaries"]["a"]
    assert math.isfinite(summary["tokens_per_second"]) and summary["tokens_per_second"] > 0
    parts = summary["generation_seconds"] + summary["scoring_seconds"] + summary["train_seconds"]
    assert min(summary["generation_seconds"], summary["scoring_seconds"], summary["train_seconds"]) >= 0
    assert math.isclose(parts, summary["seconds_per_step"], rel_tol=0.05)
    assert summary["completion_lengths"] == [8]
    assert plain["args"]["gradient_accumulation_steps"] == 1 and plain["lora_modules"] > 0
    assert report["floor"]["seconds"] > 0
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "| (a) TRL + PEFT bf16 LoRA (no Unsloth) | ok |" in markdown and markdown in process.stdout
    # --combine (runs split over several calls) refuses settings other than the runs', and reports the
    # step counts the runs used, not its own defaults.
    combine = [
        SCRIPT,
        "--model",
        "tiny-qwen2_5_vl",
        "--combine",
        str(tmp_path / "out" / "results.json"),
        "--output-dir",
        str(tmp_path / "combined"),
        "--bandwidth",
        "1e11",
    ]
    refused = run_python(combine, tmp_path, timeout=120)
    assert refused.returncode != 0 and "ran with per_device_train_batch_size=4" in refused.stderr, refused.stderr
    settings = ["--batch-size", "4", "--num-generations", "4", "--completion-length", "8"]
    combined = run_python(combine + settings, tmp_path, timeout=120)
    assert combined.returncode == 0, combined.stdout[-3000:] + combined.stderr[-3000:]
    assert "warm-up 1 + measured 1 steps" in (tmp_path / "combined" / "results.md").read_text()


@pytest.mark.parametrize(
    ("preset", "total", "vision"), [("qwen2_5_vl_3b", 3.75e9, 0.67e9), ("gemma3_4b", 4.30e9, 0.42e9)]
)
def test_presets_have_the_released_models_sizes(preset, total, vision, monkeypatch):
    """Built on the meta device (no weights): the shapes give the released checkpoints' parameter counts
    (Qwen2.5-VL-3B-Instruct 3.75B, of which the vision tower and merger 0.67B; gemma-3-4b-it 4.30B, of
    which the SigLIP vision tower 0.42B), so the benchmark measures models of the real size."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _presets import PRESETS, meta_parameter_counts

    counts = meta_parameter_counts(PRESETS[preset])
    assert counts["total"] == pytest.approx(total, rel=0.005)
    assert counts["vision"] == pytest.approx(vision, rel=0.01)


@pytest.mark.parametrize("fx_graph_cache", [True, False])
def test_decode_step_timeline_is_a_step_of_the_decode_graph(fx_graph_cache, monkeypatch):
    """``--profile``'s decode-step window lies between two calls of the generation's decode step, although a
    prefill (Unsloth's compiled vision blocks, say) calls another compiled region more often. Real inductor
    graphs on the CPU, profiled by torch's profiler, with inductor's FX graph cache on and off (off, every graph
    is named "CompiledFxGraph None")."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from grpo_vlm import _decode_step_timeline

    def vision_block(x):
        return torch.rms_norm(x, (x.shape[-1],)) * 2

    def decode_step(x):
        return (x @ x.T).softmax(-1)

    import torch._inductor.config

    torch._dynamo.reset()
    vision_block, decode_step = torch.compile(vision_block), torch.compile(decode_step)
    x = torch.randn(4, 8)
    with torch._inductor.config.patch(fx_graph_cache=fx_graph_cache):
        vision_block(x), decode_step(x)  # compiled before the profile
    with profile(activities=[ProfilerActivity.CPU]) as trace:
        with record_function("bench._generate_single_turn"):
            for _ in range(30):
                vision_block(x)
            for _ in range(5):
                decode_step(x)
    header, *_, kernels = _decode_step_timeline(trace.events())
    assert "between calls 3 and 4 of 5 of the decode step's Torch-Compiled Region" in header, header
    assert "(35 compiled calls in the generation)" in header, header
    assert kernels.startswith("GPU kernel time starting in the window: 0 us"), kernels

"""`python -m unsloth_vlm_grpo doctor` prints the matrix, the GPU state and the patch plan."""

from conftest import run_python


def test_doctor_on_the_pinned_stack(tmp_path):
    process = run_python(["-m", "unsloth_vlm_grpo", "doctor"], tmp_path, timeout=300)
    out = process.stdout
    assert process.returncode == 0, out + process.stderr
    for line in (
        "ok  trl            1.15.0",
        "ok  transformers   5.17.0",
        "ok  unsloth        2026.10.9",
        "ok  unsloth-zoo    2026.10.9",
    ):
        assert line in out
    assert "GPU visible:" in out
    assert "apply     cpu_fused_logprobs -> trl.kernels.chunked_logprob.ChunkedLogProbFunction.apply" in out
    assert "apply     placeholder_neutralisation" in out
    assert "Stack is supported." in out

"""patch / is_patched / double patch / unpatch identity / repatch cycles, on TRL's real classes."""

import threading

import pytest
import trl.kernels.chunked_logprob as chunked_logprob
import trl.trainer.grpo_trainer as grpo_trainer
import wrapt

import unsloth_vlm_grpo
from unsloth_vlm_grpo.patches import ALL_PATCHES

TRAINER = grpo_trainer.GRPOTrainer
WRAPPED_ON_TRAINER = ("_generate", "_generate_single_turn")


@pytest.fixture(autouse=True)
def _unpatched():
    unsloth_vlm_grpo.unpatch()
    yield
    unsloth_vlm_grpo.unpatch()


def _originals():
    return {name: vars(TRAINER)[name] for name in WRAPPED_ON_TRAINER}


def test_patch_wraps_live_targets_once_and_reports_them():
    originals = _originals()
    report = unsloth_vlm_grpo.patch()
    assert unsloth_vlm_grpo.is_patched()
    applied = {entry.target for entry in report.applied}
    assert "trl.trainer.grpo_trainer.GRPOTrainer._generate" in applied
    assert "trl.kernels.chunked_logprob.ChunkedLogProbFunction.apply" in applied
    for name, original in originals.items():
        attribute = vars(TRAINER)[name]
        assert isinstance(attribute, wrapt.FunctionWrapper)
        assert attribute.__wrapped__ is original
    # Unsloth is not imported in this process: its targets (and unsloth_zoo's) wait for the import, as does
    # mllama's modeling module unless an earlier test imported it.
    pending = [entry.patch for entry in report.pending]
    assert {"unsloth_trainer_regeneration", "unsloth_mllama_vision_inputs"} <= set(pending)
    assert set(pending) <= {"unsloth_trainer_regeneration", "unsloth_mllama_vision_inputs", "mllama_cross_attention_mask"}


def test_second_patch_changes_nothing():
    unsloth_vlm_grpo.patch()
    first = {name: vars(TRAINER)[name] for name in WRAPPED_ON_TRAINER}
    report = unsloth_vlm_grpo.patch()
    assert {name: vars(TRAINER)[name] for name in WRAPPED_ON_TRAINER} == first
    assert all(entry.detail == "already" for entry in report.applied)


def test_unpatch_restores_the_identical_objects():
    originals = _originals()
    apply_was_inherited = "apply" not in vars(chunked_logprob.ChunkedLogProbFunction)
    unsloth_vlm_grpo.patch()
    unsloth_vlm_grpo.unpatch()
    assert not unsloth_vlm_grpo.is_patched()
    for name, original in originals.items():
        assert vars(TRAINER)[name] is original
    assert ("apply" not in vars(chunked_logprob.ChunkedLogProbFunction)) is apply_was_inherited


def test_hundred_cycles_leave_no_stacked_wrappers():
    originals = _originals()
    for _ in range(100):
        unsloth_vlm_grpo.patch()
        unsloth_vlm_grpo.unpatch()
    unsloth_vlm_grpo.patch()
    for name, original in originals.items():
        assert vars(TRAINER)[name].__wrapped__ is original
    unsloth_vlm_grpo.unpatch()
    assert _originals() == originals


def test_concurrent_patch_calls_apply_once():
    originals = _originals()
    threads = [threading.Thread(target=unsloth_vlm_grpo.patch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, original in originals.items():
        assert vars(TRAINER)[name].__wrapped__ is original


def test_every_patch_declares_why_and_when_to_remove():
    for patch in ALL_PATCHES:
        assert patch.reason and patch.remove_when and patch.verified and patch.fingerprints
        module = __import__(patch.wrapper.__module__, fromlist=["__doc__"])
        assert "Remove when" in module.__doc__ and "Target" in module.__doc__

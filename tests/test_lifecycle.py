"""patch / is_patched / double patch / unpatch identity / repatch cycles, on TRL's real classes."""

import pytest
import trl.kernels.chunked_logprob as chunked_logprob
import trl.trainer.grpo_trainer as grpo_trainer
import wrapt

import unsloth_vlm_grpo
from unsloth_vlm_grpo._engine import innermost
from unsloth_vlm_grpo.patches import ALL_PATCHES

TRAINER = grpo_trainer.GRPOTrainer
WRAPPED_ON_TRAINER = ("_generate", "_generate_single_turn")


pytestmark = pytest.mark.usefixtures("unpatched")


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
    # Unsloth is not imported in this process: its targets (and unsloth_zoo's) wait for the import, as do
    # mllama's modeling and processing modules unless an earlier test imported them.
    pending = [entry.patch for entry in report.pending]
    unsloth = {"follow_unsloth_trainer", "unsloth_mllama_vision_inputs", "unsloth_mllama_vision_chunks"}
    assert unsloth <= set(pending)
    mllama = {"mllama_cross_attention_mask", "mllama_rows_without_images"}
    assert set(pending) <= unsloth | mllama


STACKED = "_generate_and_score_completions"
STACKED_BY = ("mllama_batch_fields", "image_batch_normalisation", "left_padded_image_fields")


def _wrapper_depth(value) -> int:
    depth = 0
    while isinstance(value, wrapt.FunctionWrapper):
        value, depth = value.__wrapped__, depth + 1
    return depth


def test_two_patches_stack_on_one_target_and_unwind_exactly():
    declared = {patch.name for patch in ALL_PATCHES if any(getattr(t, "name", None) == STACKED for t in patch.targets)}
    assert declared == set(STACKED_BY)
    original = vars(TRAINER)[STACKED]
    unsloth_vlm_grpo.patch()
    stacked = vars(TRAINER)[STACKED]
    assert _wrapper_depth(stacked) == len(STACKED_BY)
    assert innermost(stacked) is original
    unsloth_vlm_grpo.unpatch()
    assert vars(TRAINER)[STACKED] is original


def test_exclude_leaves_a_patch_out_and_reports_it():
    original = vars(TRAINER)[STACKED]
    report = unsloth_vlm_grpo.patch(exclude=("left_padded_image_fields",))
    assert [entry.patch for entry in report.excluded] == ["left_padded_image_fields"]
    assert "left_padded_image_fields" not in {entry.patch for entry in report.applied}
    assert _wrapper_depth(vars(TRAINER)[STACKED]) == len(STACKED_BY) - 1
    unsloth_vlm_grpo.unpatch()
    assert vars(TRAINER)[STACKED] is original


def test_exclude_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown patch name.*left_padded_image_fields"):
        unsloth_vlm_grpo.patch(exclude=("left_padded_image_field",))
    assert not unsloth_vlm_grpo.is_patched()


def test_any_order_of_patch_exclude_and_unpatch_leaves_no_wrapper_behind():
    original = vars(TRAINER)[STACKED]
    names = unsloth_vlm_grpo.patch_names()
    sequence = [
        (),
        ("left_padded_image_fields",),
        ("image_batch_normalisation",),
        None,
        (),
        tuple(names[1:4]),
        (),
        None,
        None,
        ("image_batch_normalisation", "left_padded_image_fields"),
        (),
    ]
    for exclude in sequence:
        if exclude is None:
            unsloth_vlm_grpo.unpatch()
            assert vars(TRAINER)[STACKED] is original
            continue
        unsloth_vlm_grpo.patch(exclude=exclude)
        expected = len(set(STACKED_BY) - set(exclude))
        assert _wrapper_depth(vars(TRAINER)[STACKED]) == expected, exclude
        assert innermost(vars(TRAINER)[STACKED]) is original
    unsloth_vlm_grpo.unpatch()
    assert vars(TRAINER)[STACKED] is original


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


def test_every_patch_declares_why_and_when_to_remove():
    for patch in ALL_PATCHES:
        assert patch.reason and patch.remove_when and patch.verified and patch.fingerprints
        module = __import__(patch.wrapper.__module__, fromlist=["__doc__"])
        assert "Remove when" in module.__doc__ and "Target" in module.__doc__

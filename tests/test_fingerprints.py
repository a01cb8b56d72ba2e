"""Version-pinned guards (marker ``upstream``): on the pinned stack every patch target exists and its source is the one the
patch was verified against. When trl or unsloth changes a target, exactly these tests fail and name
the patch to re-verify."""

import pytest

from unsloth_vlm_grpo._engine import FOLLOW_UNSLOTH_TRAINER
from unsloth_vlm_grpo.patches import ALL_PATCHES

from conftest import ROOT, run_probe

pytestmark = pytest.mark.upstream

DECLARED = [
    (patch.name, label, value)
    for patch in (FOLLOW_UNSLOTH_TRAINER, *ALL_PATCHES)
    for label, value in patch.fingerprints.items()
]


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    return run_probe([str(ROOT / "tests" / "probes" / "fingerprints.py")], tmp_path_factory.mktemp("fingerprints"))


@pytest.mark.parametrize(("patch_name", "label", "declared"), DECLARED, ids=[f"{p}:{t}" for p, t, _ in DECLARED])
def test_target_exists_with_verified_source(found, patch_name, label, declared):
    assert label in found, f"patch {patch_name}: target {label} no longer exists; re-verify the patch"
    assert found[label]["fingerprint"] == declared, (
        f"patch {patch_name}: the source of {label} changed (now {found[label]['fingerprint']}); "
        "re-verify the patch against it, then update its recorded fingerprint"
    )


def test_every_resolved_target_has_a_declared_fingerprint(found):
    undeclared = {label: entry["patch"] for label, entry in found.items() if label not in {d[1] for d in DECLARED}}
    assert undeclared == {}

"""The README says what the code declares: its patch table lists exactly the patches, in the order applied; no
shipped file points outside the repository."""

import re

import unsloth_vlm_grpo

from conftest import ROOT


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def test_readme_patch_table_lists_every_patch_in_order():
    table = _section((ROOT / "README.md").read_text(), "## What the patches fix")
    listed = re.findall(r"^\| `([a-z0-9_]+)` \|", table, flags=re.MULTILINE)
    assert listed == unsloth_vlm_grpo.patch_names()


def test_no_shipped_file_cites_files_outside_the_repository():
    shipped = [*(ROOT / "unsloth_vlm_grpo").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"), ROOT / "README.md"]
    citing = [str(path.relative_to(ROOT)) for path in shipped if "../shared" in path.read_text()]
    assert citing == []

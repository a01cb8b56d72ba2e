"""The docs say what the code declares: the patch table lists exactly the patches, in the order applied; no
shipped file points outside the repository; every docs page the README links to exists."""

import re

import unsloth_vlm_grpo

from conftest import ROOT


def test_patch_table_lists_every_patch_in_order():
    table = (ROOT / "docs" / "patches.md").read_text()
    listed = re.findall(r"^\| `([a-z0-9_]+)` \|", table, flags=re.MULTILINE)
    assert listed == unsloth_vlm_grpo.patch_names()


def test_no_shipped_file_cites_files_outside_the_repository():
    shipped = [*(ROOT / "unsloth_vlm_grpo").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"), ROOT / "README.md"]
    shipped += list((ROOT / "docs").glob("*.md"))
    citing = [str(path.relative_to(ROOT)) for path in shipped if "../shared" in path.read_text()]
    assert citing == []


def test_readme_links_to_existing_docs():
    links = re.findall(r"\]\((docs/[^)]+)\)", (ROOT / "README.md").read_text())
    assert links and all((ROOT / link).exists() for link in links), links

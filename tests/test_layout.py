"""The README's repository layout is the repository: every path it names exists, and every folder,
script and module of the project is named, so a newcomer finds where a thing goes from it alone."""

from __future__ import annotations

import re
import subprocess

import pytest
from script_utils import ROOT

README = (ROOT / "README.md").read_text()


def layout() -> dict[str, str]:
    """``{folder: its description}`` from the README's layout block."""
    start = README.index("## Repository layout")
    block = re.search(r"```\n(.*?)```", README[start:], re.DOTALL).group(1)
    folders, current = {}, None
    for line in block.splitlines():
        if line and not line[0].isspace():
            current, _, text = line.partition(" ")
            folders[current] = text
        elif current is not None:
            folders[current] += " " + line.strip()
    return folders


def tracked() -> list[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return out.stdout.split()


def test_every_folder_named_exists_and_every_top_level_folder_is_named():
    folders = layout()
    for folder in folders:
        assert (ROOT / folder).is_dir(), f"the layout names {folder}, which does not exist"
    top = {path.split("/")[0] + "/" for path in tracked() if "/" in path and not path.startswith(".")}
    assert top <= set(folders), f"folders missing from the README's layout: {sorted(top - set(folders))}"


@pytest.mark.parametrize("folder", ["genloss/", "models/", "train/"])
def test_every_module_of_the_code_folders_is_named(folder):
    text = layout()[folder]
    modules = sorted(p.stem for p in (ROOT / folder).glob("*.py") if p.stem != "__init__")
    assert modules, folder
    missing = [m for m in modules if not re.search(rf"(?<![A-Za-z0-9/]){re.escape(m)}\b", text)]
    assert not missing, f"modules of {folder} the README's layout does not name: {missing}"
    for sub in sorted(p.name for p in (ROOT / folder).iterdir() if p.is_dir() and p.name != "__pycache__"):
        assert f"{sub}/" in text, f"{folder}{sub}/ is not in the README's layout"


def test_every_file_the_layout_names_exists():
    """Names with an extension (``gan.py``, ``gpu.sh``, ``losses.md``) are files of their folder."""
    for folder, text in layout().items():
        for name in re.findall(r"\b[\w-]+\.(?:py|sh|md)\b", text):
            assert (ROOT / folder / name).is_file(), f"the layout names {folder}{name}, which does not exist"


def test_where_things_go_names_existing_files():
    start = README.index("Where things go:")
    end = README.find("\n\n", start)
    paragraph = README[start: end if end > 0 else None]
    for path in re.findall(r"`([\w/]+\.py)`", paragraph):
        assert (ROOT / path).is_file(), path

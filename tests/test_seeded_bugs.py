"""tools/seeded_bugs.py, without its hours-long campaign: ``--list`` runs, lists the models/ bugs under
their own area, ``--area`` selects them, and every bug still applies (its ``old`` text occurs once
in its file, the edited file parses, its covering tests exist). That last check keeps the bug list
from going stale: code that moves fails here until its bugs' ``old`` texts follow it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "seeded_bugs.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("seeded_bugs", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


seeded_bugs = _load_tool()


def _list(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), "--list", *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def _rows(stdout: str) -> list[tuple[str, str, str]]:
    """(name, area, status) of each line --list prints."""
    return [tuple(line.split()[:3]) for line in stdout.splitlines()]


def test_list_names_every_bug_and_every_edit_applies():
    done = _list()
    rows = _rows(done.stdout)
    assert [name for name, _, _ in rows] == [bug.name for bug in seeded_bugs.BUGS]
    stale = [line for line, (_, _, status) in zip(done.stdout.splitlines(), rows) if status != "ok"]
    assert stale == [], "seeded bugs whose edit no longer applies (update their `old` text):\n" + "\n".join(stale)
    assert done.returncode == 0, done.stderr
    # The area column is the bug's top folder, models/ included (the report's per-area lines use it).
    by_name = {bug.name: bug.path for bug in seeded_bugs.BUGS}
    assert all(area == by_name[name].split("/")[0] for name, area, _ in rows)
    assert ("block_residual_dropped", "models", "ok") in rows
    assert {area for _, area, _ in rows} == {"genloss", "models", "train"}


def test_area_models_selects_exactly_the_models_bugs():
    done = _list("--area", "models")
    assert done.returncode == 0, done.stderr
    expected = [bug.name for bug in seeded_bugs.BUGS if bug.path.startswith("models/")]
    quoted = re.search(r"(\d+) in `models/`", (Path(__file__).parent / "README.md").read_text())
    assert len(expected) == int(quoted.group(1))  # tests/README.md quotes the count per folder
    assert [name for name, _, _ in _rows(done.stdout)] == expected


def test_area_refuses_an_unknown_folder():
    done = _list("--area", "benchmarks")
    assert done.returncode == 2
    assert "invalid choice: 'benchmarks' (choose from 'genloss', 'models', 'train')" in done.stderr


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.py").write_text("def f(x):\n    if x:\n        return x + 1\n    return x + 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_m.py").write_text("class TestF:\n    def test_one(self):\n        pass\n")
    return tmp_path


def test_list_exits_1_naming_a_stale_bug(tree, monkeypatch, capsys):
    applies = seeded_bugs.Bug("applies", "models/m.py", "if x:", "if not x:", ("tests/test_m.py",), "for this test")
    stale = seeded_bugs.Bug("moved_away", "models/m.py", "if y:", "if not y:", ("tests/test_m.py",), "for this test")
    monkeypatch.setattr(seeded_bugs, "ROOT", tree)
    monkeypatch.setattr(seeded_bugs, "BUGS", [applies, stale])
    monkeypatch.setattr(sys, "argv", ["seeded_bugs.py", "--list"])
    with pytest.raises(SystemExit, match=r"^1 of 2 edits no longer apply: update their `old` text$"):
        seeded_bugs.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["applies", "models", "ok"]
    assert lines[1].split()[:2] == ["moved_away", "models"]
    assert "STALE: `old` occurs 0 times in models/m.py" in lines[1]


@pytest.mark.parametrize(("old", "new", "tests", "expected"), [
    ("if x:", "if not x:", ("tests/test_m.py",), None),
    ("if x:", "if not x:", ("tests/test_m.py::TestF::test_one[2]",), None),
    ("if y:", "if not y:", ("tests/test_m.py",), "`old` occurs 0 times in models/m.py"),
    ("return x + 1", "return x", ("tests/test_m.py",), "`old` occurs 2 times in models/m.py"),
    ("        return x + 1\n", "", ("tests/test_m.py",),
     "the edited models/m.py does not parse (expected an indented block after 'if' statement on line 2, line 3)"),
    ("if x:", "if not x:", ("tests/test_gone.py",), "its test file tests/test_gone.py does not exist"),
    ("if x:", "if not x:", ("tests/test_m.py::TestF::test_two",), "its test tests/test_m.py::TestF::test_two does not exist"),
])
def test_check_says_why_an_edit_does_not_apply(tree, old, new, tests, expected):
    bug = seeded_bugs.Bug("b", "models/m.py", old, new, tests, "for this test")
    assert seeded_bugs._check(bug, tree) == expected


def test_check_a_missing_file():
    bug = seeded_bugs.Bug("b", "models/gone.py", "x", "y", ("tests/test_models.py",), "for this test")
    assert seeded_bugs._check(bug, ROOT) == "models/gone.py does not exist"


def test_summary_has_a_line_per_area_models_included():
    def result(name, area, status):
        return {"name": name, "area": area, "status": status}

    results = [result("t1", "train", "caught"), result("t2", "train", "caught"), result("m1", "models", "caught"),
               result("m2", "models", "missed"), result("g1", "genloss", "caught"), result("g2", "genloss", "stale")]
    assert seeded_bugs.summary(results) == [
        "genloss  1/1 caught (100%)",
        "models   1/2 caught (50%)",
        "train    2/2 caught (100%)",
        "all      4/5 caught (80%)",
        "missed: m2",
        "stale (edit no longer applies): g2",
    ]

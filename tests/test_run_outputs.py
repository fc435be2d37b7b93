"""Where a run writes, and what it leaves: a run never changes a file git tracks, the committed
gallery changes only when published (``train/gallery.py``), and a start that fails or
``--overwrite`` on a new run name leaves nothing behind nor reports deleting what wasn't there.

The end-to-end test trains in a throwaway git repository holding a copy of the code and a
committed gallery, with the default output folders, as on a fresh clone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from trainer_utils import ROOT, TINY, StubAccelerator

from train.config import TrainConfig
from train.run import RunPlan, _clear_run, claim_run, git_state, tracked_files
from train.safety import RunError, SettingsError

ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def run(repo: Path, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *cmd], cwd=repo, env=ENV, capture_output=True, text=True, timeout=300)


def make_clone(root: Path) -> Path:
    """A git repository holding this checkout's code (as it is on disk), its .gitignore and a
    committed gallery page, everything committed."""
    repo = root / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("genloss", "models", "train"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=ignore)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    (repo / "samples").mkdir()
    (repo / "samples" / "index.html").write_text("<!doctype html><title>committed gallery</title>\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "clone")
    return repo


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return make_clone(tmp_path_factory.mktemp("clone"))


def test_a_run_and_its_eval_leave_a_clone_clean_and_record_it_clean(clone):
    """The defaults (--output-dir runs, --samples-dir runs/samples) are git-ignored: after a run and
    train/eval.py, git sees no change, and both record ``dirty: false``."""
    assert git_state(clone) == {"commit": git(clone, "rev-parse", "HEAD").strip(), "dirty": False}
    trained = run(clone, "train/gan.py", *TINY, "--max-steps", "2", "--checkpoint-every", "2", "--sample-every", "2",
                  "--detect-clips", "0", "--run-name", "t")
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_dir, gallery = clone / "runs" / "t", clone / "runs" / "samples"
    assert (gallery / "t" / "step-000002.gif").is_file() and (gallery / "index.html").is_file()
    assert git(clone, "status", "--porcelain", "--ignored=no") == ""
    assert json.loads((run_dir / "config.json").read_text())["run"]["git"]["dirty"] is False

    evaluated = run(clone, "train/eval.py", "--checkpoint", "runs/t", "--num", "2", "--lpips", "none")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert f"gallery: {Path('runs/samples/index.html')}" in evaluated.stdout
    assert (gallery / "t" / "eval-2.json").is_file()  # the card links it: the gallery was refreshed
    assert json.loads((run_dir / "eval-2.json").read_text())["git"]["dirty"] is False
    assert git(clone, "status", "--porcelain", "--ignored=no") == ""
    assert (clone / "samples" / "index.html").read_text() == "<!doctype html><title>committed gallery</title>\n"


def test_eval_does_not_refresh_a_tracked_gallery(clone, tmp_path):
    """A run recorded with --samples-dir samples (as older trainers defaulted to): eval.py leaves
    the committed page alone and says how to publish."""
    from train.gallery import refresh_gallery

    (clone / "samples" / "r").mkdir(exist_ok=True)
    (clone / "samples" / "r" / "run.json").write_text(json.dumps({"config": {}}))
    said = refresh_gallery(clone / "samples", "r", tmp_path / "metrics.jsonl")
    assert said == (f"{clone / 'samples'} holds files tracked by git, page not updated (pass --samples-dir, "
                    f"or publish the run with python train/gallery.py --publish {clone / 'samples' / 'r'} --out "
                    f"{clone / 'samples'})")
    assert git(clone, "status", "--porcelain", "--untracked-files=no") == ""
    shutil.rmtree(clone / "samples" / "r")


def test_tracked_files(clone, tmp_path):
    assert tracked_files(clone / "samples") == ["index.html"]
    assert tracked_files(clone / "train") != []
    assert tracked_files(clone / "runs") == []  # ignored run outputs
    assert tracked_files(tmp_path) == []  # in no repository
    assert tracked_files(tmp_path / "missing") == []


# --------------------------------------------------------------------------------------------
# claim_run, in-process


def claim(tmp: Path, run_name: str = "new", overwrite: bool = False, **settings):
    """``claim_run`` of a new run under ``tmp``: ``(lock, lines said)``."""
    config = TrainConfig(**{"output_dir": str(tmp / "runs"), "samples_dir": str(tmp / "samples"), **settings})
    said: list[str] = []
    lock = claim_run(StubAccelerator(), RunPlan(config, run_name), overwrite, said.append)
    return lock, said


def test_a_samples_dir_holding_tracked_files_is_refused(clone):
    with pytest.raises(SettingsError) as info:
        claim(clone, samples_dir=str(clone / "samples"))
    samples = clone / "samples"
    assert str(info.value) == (
        f"--samples-dir {str(samples)!r} holds 1 file(s) tracked by git (e.g. {samples / 'index.html'}): a run "
        "would rewrite them. Pass a --samples-dir outside the tracked files (the default, runs/samples, is "
        "git-ignored); publish a finished run's samples with: python train/gallery.py --publish "
        "<samples-dir>/<run-name> --out <gallery>")
    assert info.value.exit_code == 2
    assert not (clone / "runs" / "new").exists()  # refused before the run folder is made


def test_a_run_named_as_the_samples_dir_is_refused(tmp_path):
    with pytest.raises(SettingsError, match=r"is the run folder of --run-name samples: choose another --run-name"):
        claim(tmp_path, "samples", samples_dir=str(tmp_path / "runs" / "samples"))


def test_claiming_a_new_run_makes_no_checkpoints_folder_and_overwrite_reports_nothing(tmp_path):
    """Before a failed start, claim_run made an empty ``checkpoints/`` (its write check), and
    ``--overwrite`` on a new run name then reported deleting it."""
    lock, said = claim(tmp_path, overwrite=True)
    lock.release()
    assert said == []
    assert not (tmp_path / "runs" / "new" / "checkpoints").exists()
    # An existing checkpoints/ is still checked for writing: a file in its place is an error.
    (tmp_path / "runs" / "other").mkdir()
    (tmp_path / "runs" / "other" / "checkpoints").write_text("x")
    with pytest.raises(RunError, match=r"--output-dir \(checkpoints\) .*checkpoints' can't be created"):
        claim(tmp_path, "other")


def test_overwrite_reports_only_what_held_an_earlier_run(tmp_path):
    run_dir, samples = tmp_path / "runs" / "r", tmp_path / "samples" / "r"
    (run_dir / "checkpoints").mkdir(parents=True)  # empty, as a failed start of older trainers left it
    (run_dir / "tensorboard").mkdir()
    samples.mkdir(parents=True)
    (samples / "step-000002.gif").write_text("x")
    assert _clear_run(run_dir, samples) == [f"--overwrite: deleted the earlier run's {samples}"]
    assert sorted(run_dir.iterdir()) == [] and not samples.exists()  # empty folders removed all the same


def test_a_failed_start_with_overwrite_leaves_no_checkpoints_and_says_nothing_deleted(tmp_path):
    """End to end: a new run name with --overwrite on a dataset folder of only short videos."""
    data = tmp_path / "data"
    data.mkdir()
    iio.imwrite(data / "short.gif", np.zeros((2, 16, 16, 3), np.uint8), duration=100)
    result = run(ROOT, "train/gan.py", *TINY, "--dataset", str(data), "--output-dir", str(tmp_path / "runs"),
                 "--samples-dir", str(tmp_path / "samples"), "--run-name", "fresh", "--overwrite")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: --dataset {data} has no usable video")
    assert "--overwrite" not in result.stdout + result.stderr
    assert not (tmp_path / "runs" / "fresh" / "checkpoints").exists()


# --------------------------------------------------------------------------------------------
# command lines


def test_config_with_resume_is_one_error_line(tmp_path):
    config = tmp_path / "c.json"
    config.write_text("{}")
    result = run(ROOT, "train/gan.py", "--config", str(config), "--resume", "latest")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "gan.py: error: --config can't be combined with --resume: a resumed run keeps its own saved settings "
        "(type only the flags to change)")
    assert len(result.stderr.strip().splitlines()) == 2 and "Traceback" not in result.stderr  # usage + error


def help_entries(text: str) -> list[str]:
    """Each option's help of an argparse ``--help`` text, its lines joined."""
    entries: list[str] = []
    for line in text.splitlines():
        if line.startswith("  -"):
            entries.append(line.strip())
        elif entries and line.startswith("    "):
            entries[-1] += " " + line.strip()
    return entries


@pytest.mark.parametrize("script", ["train/eval.py", "train/sample.py", "train/gan.py", "train/gallery.py"])
def test_help_states_each_default_once(script):
    result = run(ROOT, script, "--help")
    assert result.returncode == 0, result.stderr
    entries = help_entries(result.stdout)
    assert len(entries) >= 3
    for entry in entries:
        assert entry.count("(default:") <= 1, entry
        assert "(default: None)" not in entry, entry
    for flag, default in {"train/eval.py": [("--context-frames", "0"), ("--lpips", "alex"), ("--cpu-threads", "1")],
                          "train/sample.py": [("--num", "16"), ("--fps", "8")]}.get(script, []):
        entry = next(e for e in entries if e.startswith(flag + " "))
        assert f"(default: {default}" in entry, entry

"""Every script in ``benchmarks/`` and ``train/`` runs: ``--help`` of each (exit 0, a usage line),
and a tiny real run of each benchmark (the smallest sizes, one repeat), each in a temporary
working directory; none may write into the repository (``tests/script_utils.py`` watches this
process's writes exactly, and new files from its subprocesses).

The trainer scripts' real runs are the end-to-end tests named in ``COVERED_ELSEWHERE``; a script
added to either folder without an entry here fails ``test_every_script_has_an_entry``. The runs
are in-process (``tests/script_utils.py``: no torch import per script), except ``train/gan.py``
and ``benchmarks/gpu.sh``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from script_utils import (
    ROOT,
    SUBPROCESS_ONLY,
    new_files,
    parse_only,
    repository_files,
    repository_writes,
    run_script,
    scripts,
)

# script -> the tests that run it for real (or why none does)
COVERED_ELSEWHERE = {
    "train/ablate.py": "tests/test_ablate.py (2 variants x 2 seeds of the real trainer)",
    "train/eval.py": "tests/test_eval.py (a checkpoint and folders of clips)",
    "train/gan.py": "tests/test_train.py, tests/test_run_safety.py, tests/test_config.py (the trainer end to end)",
    "train/sample.py": "tests/test_train.py (clips from a run's checkpoint)",
    "train/fetch_real_videos.py": "tests/test_fetch_real_videos.py (archives built there: tests never use the network)",
    "train/gallery.py": "tests/test_gallery.py (the gallery page of runs)",
    "benchmarks/gpu.sh": "test_gpu_sh_plan (DRY_RUN=1) below: its benchmarks' tiny runs are TINY_RUNS",
}
# benchmark -> (flags of a tiny real run, a fragment of the output it must print)
TINY_RUNS = {
    "benchmarks/bench_detect.py": (["--num", "16", "--frames", "3", "--size", "16", "--steps", "2", "--only", "real"],
                                   "total wall time"),
    "benchmarks/bench_diagnostics.py": (["--repeats", "1", "--batch-size", "1"], "diff_augment forward+backward on"),
    "benchmarks/bench_distribution.py": (["--smoke", "--threads", "1"], "covariance / N vs / (N - 1), 256 samples"),
    "benchmarks/bench_flow_accuracy.py": (["--seeds", "1", "--bounds", "3", "--threads", "1"],
                                         "32 frame pairs at 64x64"),
    "benchmarks/bench_lpips.py": (["--smoke", "--nets", "alex", "--threads", "1"],
                                  "| alex | clips (1, 3, 4, 64, 64) frames=2 | fwd+bwd |"),
    "benchmarks/bench_lpips_tlp.py": (["--clips", "1", "--frames", "2", "--size", "64", "--repeats", "1",
                                       "--threads", "1"], "| genloss pairs |"),
    "benchmarks/bench_regularizers.py": (["--trials", "1", "--interval", "2", "--batch", "1", "--frames", "4",
                                          "--size", "16", "--threads", "1"], "image (per frame)"),
    "benchmarks/bench_stop_check.py": (["--calls", "5", "--repeats", "1"], "stop_requested (all-gather of 2 int64)"),
    "benchmarks/bench_temporal.py": (["--smoke", "--threads", "1"], "H=W sweep at T=4"),
    "benchmarks/bench_trainer.py": (["--trials", "1", "--steps", "2", "--settings", "1x1"],
                                    "1 process x 1 thread (default)"),
    "benchmarks/bench_video_memory.py": (["--old-seconds", "--new-seconds", "0.2", "--frames", "2", "--size", "16"],
                                         "| new | 0.2 s (6 frames) |"),
}


def test_every_script_has_an_entry():
    found = scripts()
    assert "benchmarks/bench_trainer.py" in found and "train/gan.py" in found and "benchmarks/_device.py" not in found
    assert sorted(COVERED_ELSEWHERE.keys() | TINY_RUNS.keys()) == found, (
        "a script in benchmarks/ or train/ without a test: give it a tiny run in TINY_RUNS or name the tests "
        "that run it in COVERED_ELSEWHERE")


@pytest.fixture
def untouched_repository():
    """Fails the test if it wrote into the repository (or its subprocesses made files there)."""
    before = repository_files()
    with repository_writes() as writes:
        yield
    assert writes == [], "the script wrote into the repository"
    assert new_files(before) == [], "the script's subprocesses wrote into the repository"


@pytest.mark.usefixtures("untouched_repository")
@pytest.mark.parametrize("script", [s for s in scripts() if s.endswith(".py")])
def test_help(script, tmp_path, capfd):
    if script in SUBPROCESS_ONLY:
        done = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, check=False)
        code, out = done.returncode, done.stdout + done.stderr
    else:
        code = run_script(script, ["--help"], tmp_path)
        out = capfd.readouterr().out
    assert code == 0, out
    assert out.startswith("usage: "), out[:300]
    assert "--help" in out
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["tmp"])  # --help writes nothing


@pytest.mark.usefixtures("untouched_repository")
@pytest.mark.parametrize("script", sorted(TINY_RUNS))
def test_tiny_run(script, tmp_path, capfd):
    argv, expected = TINY_RUNS[script]
    code = run_script(script, argv, tmp_path)
    out, err = capfd.readouterr()
    assert code == 0, f"{script} {' '.join(argv)} exited {code}:\n{out[-2000:]}\n{err[-3000:]}"
    assert expected in out, out[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # nothing but temporary folders (torch's
    # and torchrun's caches stay in TMPDIR)


def test_trainer_help_lists_every_extension_the_reader_takes(tmp_path):
    # --help named four video extensions while train/data.py reads seven.
    from train.data import FRAME_SUFFIXES, VIDEO_SUFFIXES
    from train.options import build_parser

    text = " ".join(build_parser().format_help().split())
    assert f"folder of videos ({' '.join(VIDEO_SUFFIXES)}) or of frame folders ({'/'.join(FRAME_SUFFIXES)})" in text
    assert set(VIDEO_SUFFIXES) >= {".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".gif"}


@pytest.mark.usefixtures("untouched_repository")
def test_gpu_sh_help_and_plan(tmp_path):
    shown = subprocess.run(["bash", str(ROOT / "benchmarks/gpu.sh"), "--help"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, check=False)
    assert shown.returncode == 0 and "usage: " in shown.stdout and "DRY_RUN=1" in shown.stdout
    plan = subprocess.run(["bash", str(ROOT / "benchmarks/gpu.sh"), str(tmp_path / "plan.txt")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "DRY_RUN": "1", "DEVICE": "cpu"})
    assert plan.returncode == 0, plan.stderr
    assert (tmp_path / "plan.txt").read_text() == plan.stdout
    commands = [line.split("   (timeout")[0].split() for line in plan.stdout.splitlines() if line.startswith("python ")]
    assert len(commands) == 7
    for _, script, *argv in commands:  # each planned command names a benchmark and flags it takes
        assert script in TINY_RUNS, script
        assert argv[-2:] == ["--device", "cpu"]
        assert parse_only(script, argv, tmp_path).device == "cpu"


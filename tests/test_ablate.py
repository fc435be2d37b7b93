"""``train/ablate.py``: 2 variants x 2 seeds x 2 steps of the real trainer (``python train/gan.py``),
the table's numbers against the runs' own metrics (mean and sd recomputed here with numpy), the
shared gallery, and a second call that runs nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from trainer_utils import TINY, read_config, read_metrics

from train import ablate

VARIANTS = ("reference", "rec-only")
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation") / "abl"
    argv = ["--out", str(out), "--variants", *VARIANTS, "--seeds", *map(str, SEEDS), "--max-steps", "2",
            "--launcher", "python", "--jobs", "2", "--", *TINY]
    return out, argv, ablate.main(argv)


def _expected(run_dir: Path) -> dict[str, float]:
    """The run's last evaluation, read here: every eval/* value logged at the last step."""
    records = read_metrics(run_dir)
    step = max(r["step"] for r in records if "eval/motion" in r)
    merged = {k: v for r in records if r["step"] == step for k, v in r.items() if k.startswith("eval/")}
    return {"psnr_gain": merged["eval/psnr"] - merged["eval/psnr_baseline"], "motion": merged["eval/motion"],
            "detect_acc": merged["eval/detect_acc"]}


def test_only_a_run_that_finished_with_the_same_flags_is_reused(tmp_path):
    run = ablate.plan_runs(tmp_path, ["no-gdl"], [3], 2, [])[0]
    assert run.name == "no-gdl-seed3" and ablate.finished(tmp_path, run) is None  # never ran
    path = ablate.status_path(tmp_path, run)
    path.parent.mkdir()
    path.write_text(json.dumps({"flags": list(run.flags), "returncode": 1}))
    assert ablate.finished(tmp_path, run) is None  # failed: run again
    path.write_text(json.dumps({"flags": list(run.flags), "returncode": 0, "seconds": 5.0}))
    assert ablate.finished(tmp_path, run)["seconds"] == 5.0
    path.write_text(json.dumps({"flags": [*run.flags, "--augment", "color"], "returncode": 0}))
    with pytest.raises(SystemExit, match="finished with other flags"):
        ablate.finished(tmp_path, run)


def test_table_is_the_runs_metrics(ablation):
    out, _, report = ablation
    saved = json.loads((out / "ablation.json").read_text())
    assert saved["summary"] == report["summary"]
    markdown = (out / "ablation.md").read_text()
    for variant in VARIANTS:
        runs = [_expected(out / "runs" / f"{variant}-seed{seed}") for seed in SEEDS]
        entry = saved["summary"][variant]
        assert entry["runs"] == len(SEEDS)
        cells = []
        for metric, (_, digits) in ablate.METRICS.items():
            if metric == "lpips":  # feature matching without ImageNet weights: no LPIPS column
                assert metric not in entry
                cells.append("—")
                continue
            values = np.array([run[metric] for run in runs])
            assert entry[metric]["n"] == len(SEEDS)
            assert entry[metric]["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-12)
            assert entry[metric]["sd"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-12)
            cells.append(f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}")
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {variant} |"))
        assert row.split(" | ")[3:7] == cells
        assert entry["seconds"] == pytest.approx(sum(
            json.loads((out / "logs" / f"{variant}-seed{s}.json").read_text())["seconds"] for s in SEEDS))
    assert re.search(r"4 runs \(2 variants x seeds 0 1\), 2 steps each", markdown)


def test_each_run_is_the_trainer_with_the_variants_flags(ablation):
    out, _, _ = ablation
    for variant in VARIANTS:
        for seed in SEEDS:
            settings, run = read_config(out / "runs" / f"{variant}-seed{seed}")
            assert (settings["seed"], settings["max_steps"], settings["size"]) == (seed, 2, 16)
            switched_off = variant == "rec-only"
            assert [settings[w] == 0 for w in ("adv_weight", "perceptual_weight", "tdl_weight", "smooth_weight",
                                               "gdl_weight")] == [switched_off] * 5
            assert run["discriminators"].startswith("off") is switched_off
            assert (out / "samples" / f"{variant}-seed{seed}" / "step-000002.gif").is_file()
    page = (out / "samples" / "index.html").read_text()
    assert all(f"{v}-seed{s}" in page for v in VARIANTS for s in SEEDS)  # one gallery, side by side


def test_a_second_call_runs_nothing_and_other_flags_are_refused(ablation, monkeypatch, capsys):
    _, argv, report = ablation

    def no_run(*args):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(ablate, "execute", no_run)
    again = ablate.main(argv)
    assert "4 finished earlier, 0 to run" in capsys.readouterr().out
    assert again["summary"] == report["summary"]
    with pytest.raises(SystemExit, match="finished with other flags"):
        ablate.main([a if a != "2" else "3" for a in argv])  # --max-steps 3 in the same folder


def test_flags_the_ablation_sets_itself_are_refused(capsys):
    with pytest.raises(SystemExit):
        ablate.parse_args(["--seeds", "0", "--", "--seed", "3"])
    assert "--seed after --" in capsys.readouterr().err


def test_table_only_runs_nothing_and_names_the_missing_runs(ablation, monkeypatch, capsys):
    out, argv, report = ablation

    def no_run(*args):
        raise AssertionError("--table-only ran a run")

    monkeypatch.setattr(ablate, "execute", no_run)
    seeds = argv.index("--seeds")
    wider = ["--table-only", *argv[: seeds + 1], "0", "1", "2", *argv[seeds + 3:]]  # seed 2 never ran
    partial = ablate.main(wider)
    assert "6 runs (2 variants x 3 seeds), 4 finished earlier, 2 not run (--table-only)" in capsys.readouterr().out
    assert partial["missing"] == ["reference-seed2", "rec-only-seed2"]
    assert partial["summary"] == report["summary"]  # the finished runs only, unchanged
    assert "Not run (--table-only): reference-seed2, rec-only-seed2." in (out / "ablation.md").read_text()


def test_a_retried_run_overwrites_its_unfinished_folder(tmp_path, monkeypatch):
    # The trainer refuses a run folder holding an earlier attempt unless --overwrite is given;
    # the recorded flags stay the variant's own (a later call compares them).
    import subprocess
    from types import SimpleNamespace

    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: commands.append(command) or SimpleNamespace(returncode=0))
    run = ablate.plan_runs(tmp_path, ["no-gdl"], [3], 2, [])[0]
    (tmp_path / "logs").mkdir()
    first = ablate.execute(tmp_path, run, "python")
    (tmp_path / "runs" / run.name).mkdir(parents=True)  # a failed first attempt left its folder
    second = ablate.execute(tmp_path, run, "python")
    assert commands == [ablate.launch_command("python", list(run.flags)),
                        ablate.launch_command("python", [*run.flags, "--overwrite"])]
    assert first["flags"] == second["flags"] == list(run.flags) and second["returncode"] == 0
    assert json.loads(ablate.status_path(tmp_path, run).read_text())["command"] == commands[1]


def test_table_only_with_no_finished_run_is_an_error_and_writes_nothing(tmp_path, capsys):
    # A fresh clone has the committed table but not the runs' logs: --table-only found no finished
    # run and replaced the table with an empty one.
    out = tmp_path / "abl"
    out.mkdir()
    for name in ("ablation.md", "ablation.json"):
        (out / name).write_text(f"results in {name}\n")
    with pytest.raises(SystemExit) as stop:
        ablate.main(["--out", str(out), "--seeds", "0", "1", "2", "--table-only"])
    assert str(stop.value) == (f"error: --table-only: none of the 18 runs finished in {out} (looked for "
                               f"reference-seed0.json ... rec-only-seed2.json in {out / 'logs'}); nothing written. "
                               "Name the ablation folder with --out.")
    assert sorted(p.name for p in out.iterdir()) == ["ablation.json", "ablation.md"]  # no logs/ either
    assert [(out / n).read_text() for n in ("ablation.md", "ablation.json")] == [
        "results in ablation.md\n", "results in ablation.json\n"]
    assert capsys.readouterr().out == ""


def test_the_default_folder_is_ignored_by_git_and_relative_to_the_working_directory(tmp_path, monkeypatch):
    import subprocess

    root = Path(ablate.__file__).resolve().parents[1]
    args, _ = ablate.parse_args([])
    assert args.out == ablate.DEFAULT_OUT == "runs/ablation"
    for name in ("ablation.md", "ablation.json", "logs/reference-seed0.json", "runs/reference-seed0/config.json"):
        assert subprocess.run(["git", "check-ignore", "-q", f"{args.out}/{name}"], cwd=root, check=False).returncode == 0, name
    # The committed results are tracked, so only an explicit --out ablations/default writes there.
    tracked = subprocess.run(["git", "ls-files", "ablations/default"], cwd=root, capture_output=True, text=True, check=True)
    assert "ablations/default/ablation.md" in tracked.stdout.split()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=f"finished in {tmp_path / 'runs' / 'ablation'} "):
        ablate.main(["--table-only"])
    assert list(tmp_path.iterdir()) == []

"""``train/ablate.py``: 2 variants x 2 seeds x 2 steps of the real trainer (``python train/gan.py``),
the table's numbers against the runs' own metrics (mean and sd recomputed here with numpy), the
shared gallery, and a second call that runs nothing; tables of fake finished runs whose end-of-run
detector used the strong protocol (frame and clip judges), the default one (one judge), or both."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from trainer_utils import TINY, read_config, read_metrics

from train import ablate
from train import metric_registry as registry

VARIANTS = ("reference", "rec-only")
SEEDS = (0, 1)
# The detector's accuracy keys per protocol (the trainer's metrics.jsonl; docs/metrics.md).
DEFAULT_KEYS = ("eval/detect_acc",)
STRONG_KEYS = ("detect/frame_accuracy", "detect/clip_accuracy")


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation") / "abl"
    argv = ["--out", str(out), "--variants", *VARIANTS, "--seeds", *map(str, SEEDS), "--max-steps", "2",
            "--launcher", "python", "--jobs", "2", "--", *TINY]
    return out, argv, ablate.main(argv)


def _expected(run_dir: Path) -> dict[str, float]:
    """The run's last evaluation, read here: every eval/* and detect/* value logged at the last step."""
    records = read_metrics(run_dir)
    step = max(r["step"] for r in records if "eval/motion" in r)
    merged = {k: v for r in records if r["step"] == step for k, v in r.items() if k.startswith(("eval/", "detect/"))}
    return {"psnr_gain": merged["eval/psnr"] - merged["eval/psnr_baseline"], **merged}


def _row(markdown: str, variant: str) -> list[str]:
    """The cells of ``variant``'s row after variant, switched off and seeds, compute included."""
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {variant} |"))
    return [cell.strip() for cell in row.strip("|").split("|")][3:]


def _heads(markdown: str) -> list[str]:
    row = next(line for line in markdown.splitlines() if line.startswith("| variant |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


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
    runs = {v: [_expected(out / "runs" / f"{v}-seed{s}") for s in SEEDS] for v in VARIANTS}
    # The detector's columns are the judges of whichever protocol the trainer ran; no LPIPS
    # (feature matching without ImageNet weights), so no LPIPS column.
    detector = [k for k in (*DEFAULT_KEYS, *STRONG_KEYS) if k in runs["reference"][0]]
    assert detector in ([*DEFAULT_KEYS], [*STRONG_KEYS])
    columns = ["psnr_gain", "eval/motion", *detector]
    assert [c["key"] for c in saved["columns"]] == columns
    assert _heads(markdown)[3:-1] == [ablate.heading(c) for c in columns]
    for variant in VARIANTS:
        entry = saved["summary"][variant]
        assert entry["runs"] == len(SEEDS) and "eval/lpips" not in entry
        cells = []
        for column in columns:
            values = np.array([run[column] for run in runs[variant]])
            assert entry[column]["n"] == len(SEEDS)
            assert entry[column]["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-12)
            assert entry[column]["sd"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-12)
            metric = ablate.column_metric(column)
            cells.append(f"{metric.number(values.mean())} ± {metric.number(values.std(ddof=1))}")
        assert _row(markdown, variant)[:-1] == cells
        assert entry["seconds"] == pytest.approx(sum(
            json.loads((out / "logs" / f"{variant}-seed{s}.json").read_text())["seconds"] for s in SEEDS))
    assert re.search(r"4 runs \(2 variants x seeds 0 1\), 2 steps each", markdown)


# ------------------------------------------------------------------ tables of fake finished runs


def _detector_record(protocol: str, rng: np.random.Generator) -> dict[str, float]:
    """The end-of-run detector's metrics.jsonl record (train/in_training_eval.py: detector_logs)."""
    def judge(accuracy: str, prefix: str, sample_keys: tuple[str, ...] = ()) -> dict:
        acc = float(rng.uniform(0.45, 0.75))
        return {accuracy: acc, f"{prefix}auc": acc + 0.01, f"{accuracy}_low": acc - 0.04,
                f"{accuracy}_high": acc + 0.04, f"{prefix}n_train": 256, f"{prefix}n_test": 256,
                **{k: 128 for k in sample_keys}}

    if protocol == "default":
        return judge("eval/detect_acc", "eval/detect_")
    return {**judge("detect/frame_accuracy", "detect/frame_", ("detect/frame_n_test_clips",)),
            **judge("detect/clip_accuracy", "detect/clip_"), "detect/p_value": 0.2}


def _fake_ablation(out: Path, protocols: dict[str, list[str]], lpips: bool = False, seed: int = 0) -> dict:
    """Finished runs (status .json and metrics.jsonl) of ``{variant: [protocol of seed 0, 1, ...]}``,
    then ``ablate.main --table-only``; returns the report and each run's last values as written."""
    rng = np.random.default_rng(seed)
    seeds = range(len(next(iter(protocols.values()))))
    runs = ablate.plan_runs(out.resolve(), list(protocols), list(seeds), None, [])
    (out / "logs").mkdir(parents=True)
    last = {}
    for run in runs:
        evaluation = {"eval/psnr": float(rng.uniform(20, 24)), "eval/psnr_baseline": float(rng.uniform(13, 15)),
                      "eval/motion": float(rng.uniform(0.8, 1.0))}
        if lpips:
            evaluation["eval/lpips"] = float(rng.uniform(0.05, 0.2))
        detector = _detector_record(protocols[run.variant][run.seed], rng)
        earlier = {k: v + 1.0 for k, v in evaluation.items()}  # an earlier evaluation the table must not read
        records = [{"step": 5, "loss/g": 1.0}, {"step": 5, **earlier}, {"step": 10, "loss/g": 0.5},
                   {"step": 10, **evaluation}, {"step": 10, **detector}]
        (out / "runs" / run.name).mkdir(parents=True)
        (out / "runs" / run.name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        ablate.status_path(out, run).write_text(json.dumps(
            {"variant": run.variant, "seed": run.seed, "flags": list(run.flags), "returncode": 0, "seconds": 60.0}))
        last[run.name] = {"psnr_gain": evaluation["eval/psnr"] - evaluation["eval/psnr_baseline"], **evaluation,
                          **detector}
    argv = ["--out", str(out), "--variants", *protocols, "--seeds", *map(str, seeds), "--table-only"]
    return {"report": ablate.main(argv), "last": last, "markdown": (out / "ablation.md").read_text()}


def _stat_cell(values: list[float], spec: str, runs: int) -> str:
    """A cell written out here: mean ± sample sd in ``spec``, ``(n=k)`` when fewer than ``runs``."""
    text = f"{np.mean(values):{spec}}" + (f" ± {np.std(values, ddof=1):{spec}}" if len(values) > 1 else "")
    return text + (f" (n={len(values)})" if len(values) < runs else "")


def _check_summary(table: dict, variant: str, column: str, seeds: list[int]) -> list[float]:
    values = [table["last"][f"{variant}-seed{s}"][column] for s in seeds]
    stat = table["report"]["summary"][variant][column]
    assert stat["n"] == len(values) and stat["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert stat["sd"] == (pytest.approx(np.std(values, ddof=1), rel=1e-9) if len(values) > 1 else None)
    return values


HEADS = ["variant", "switched off", "seeds"]
GAIN, MOTION = "PSNR gain over copy-last-frame (dB)", "motion"


def test_strong_runs_get_a_frame_and_a_clip_column(tmp_path):
    table = _fake_ablation(tmp_path / "abl", {"reference": ["strong"] * 3, "no-adv": ["strong"] * 3}, lpips=True)
    assert _heads(table["markdown"]) == [*HEADS, GAIN, MOTION, "frame detector accuracy", "clip detector accuracy",
                                         "LPIPS", "compute"]
    assert [c["key"] for c in table["report"]["columns"]] == ["psnr_gain", "eval/motion", *STRONG_KEYS, "eval/lpips"]
    for variant in ("reference", "no-adv"):
        cells = [_stat_cell(_check_summary(table, variant, column, [0, 1, 2]), spec, 3) for column, spec in
                 (("psnr_gain", ".2f"), ("eval/motion", ".4g"), ("detect/frame_accuracy", ".3f"),
                  ("detect/clip_accuracy", ".3f"), ("eval/lpips", ".4g"))]
        assert _row(table["markdown"], variant) == [*cells, "3.0 min"]
        assert "eval/detect_acc" not in table["report"]["summary"][variant]
    # every run's values at its last step, the detector's interval and p-value included
    runs = table["report"]["runs"]
    assert [r["metrics"] for r in runs] == [{"step": 10, **table["last"][f"{r['variant']}-seed{r['seed']}"]} for r in runs]
    assert ("frame detector accuracy: `detect/frame_accuracy`, 0.5 = can't tell from real; clip detector accuracy: "
            "`detect/clip_accuracy`, 0.5 = can't tell from real; LPIPS: `eval/lpips`, lower is better.") in table["markdown"]
    assert "PSNR gain over copy-last-frame: `eval/psnr − eval/psnr_baseline`, higher is better; motion: " \
           "`eval/motion`, 1.0 is right;" in table["markdown"]


def test_default_runs_keep_the_single_detector_column(tmp_path):
    table = _fake_ablation(tmp_path / "abl", {"reference": ["default"] * 2, "rec-only": ["default"] * 2}, seed=1)
    assert _heads(table["markdown"]) == [*HEADS, GAIN, MOTION, "detector accuracy", "compute"]  # no LPIPS: none had it
    for variant in ("reference", "rec-only"):
        cells = [_stat_cell(_check_summary(table, variant, column, [0, 1]), spec, 2) for column, spec in
                 (("psnr_gain", ".2f"), ("eval/motion", ".4g"), ("eval/detect_acc", ".3f"))]
        assert _row(table["markdown"], variant) == [*cells, "2.0 min"]
    assert "detector accuracy: `eval/detect_acc`, 0.5 = can't tell from real." in table["markdown"]


def test_a_mix_of_protocols_shows_what_each_run_has(tmp_path):
    # reference: seed 0 finished before the strong protocol was the default, seeds 1 and 2 after
    table = _fake_ablation(tmp_path / "abl", {"reference": ["default", "strong", "strong"],
                                              "no-gdl": ["default"] * 3}, seed=2)
    assert _heads(table["markdown"]) == [*HEADS, GAIN, MOTION, "detector accuracy", "frame detector accuracy",
                                         "clip detector accuracy", "compute"]
    reference = [_stat_cell(_check_summary(table, "reference", "psnr_gain", [0, 1, 2]), ".2f", 3),
                 _stat_cell(_check_summary(table, "reference", "eval/motion", [0, 1, 2]), ".4g", 3),
                 _stat_cell(_check_summary(table, "reference", "eval/detect_acc", [0]), ".3f", 3),
                 _stat_cell(_check_summary(table, "reference", "detect/frame_accuracy", [1, 2]), ".3f", 3),
                 _stat_cell(_check_summary(table, "reference", "detect/clip_accuracy", [1, 2]), ".3f", 3)]
    assert reference[2].endswith(" (n=1)") and " ± " not in reference[2] and reference[3].endswith(" (n=2)")
    assert _row(table["markdown"], "reference") == [*reference, "3.0 min"]
    no_gdl = [_stat_cell(_check_summary(table, "no-gdl", column, [0, 1, 2]), spec, 3) for column, spec in
              (("psnr_gain", ".2f"), ("eval/motion", ".4g"), ("eval/detect_acc", ".3f"))]
    assert _row(table["markdown"], "no-gdl") == [*no_gdl, "—", "—", "3.0 min"]
    assert set(STRONG_KEYS).isdisjoint(table["report"]["summary"]["no-gdl"])


def test_labels_formats_and_readings_are_the_registrys(tmp_path, monkeypatch):
    # A label, format or direction changed in train/metric_registry.py changes the table, no edit here.
    patched = {"detect/clip_accuracy": {"label": "clip judge", "format": ".1f", "better": "lower"},
               "eval/motion": {"label": "speed ratio", "unit": "x"}, "eval/psnr": {"label": "peak SNR", "format": ".3f"}}
    monkeypatch.setattr(registry, "METRICS", tuple(replace(m, **patched.get(m.name, {})) for m in registry.METRICS))
    table = _fake_ablation(tmp_path / "abl", {"reference": ["strong"] * 2}, seed=3)
    assert _heads(table["markdown"])[3:] == ["peak SNR gain over copy-last-frame (dB)", "speed ratio (x)",
                                             "frame detector accuracy", "clip judge", "compute"]
    gain = _check_summary(table, "reference", "psnr_gain", [0, 1])
    clip = _check_summary(table, "reference", "detect/clip_accuracy", [0, 1])
    cells = _row(table["markdown"], "reference")
    assert (cells[0], cells[3]) == (_stat_cell(gain, ".3f", 2), _stat_cell(clip, ".1f", 2))
    assert "clip judge: `detect/clip_accuracy`, lower is better." in table["markdown"]


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
    assert str(stop.value) == (f"error: --table-only: none of the 21 runs finished in {out} (looked for "
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

"""Ablations of the reference GAN: each loss family switched off in turn, over several seeds.

    python train/ablate.py                                        # 6 variants x seeds 0 1 2 (18 reference runs)
    python train/ablate.py --variants reference no-adv --seeds 0 1 --max-steps 600 --jobs 2
    python train/ablate.py --out runs/augment -- --augment color,translation,cutout   # flags for every run
    python train/ablate.py --table-only                           # tabulate what finished, run nothing

Every run is the real trainer (``accelerate launch train/gan.py``, one process; ``--launcher
python`` runs ``python train/gan.py``) with the current defaults, the flags after ``--``, and the
variant's flags (which win over both), each in its own run folder under one ablation folder::

    <out>/runs/<variant>-seed<k>/       the run: config.json, metrics.jsonl, checkpoints
    <out>/samples/index.html            one gallery for all of them: the variants side by side
    <out>/logs/<variant>-seed<k>.log    the run's output; .json: its flags, exit code and wall time
    <out>/ablation.json, ablation.md    the table (also printed)

``--out`` defaults to ``runs/ablation`` (relative to the working directory; ``runs/`` is ignored by
git). The committed results in ``ablations/default`` are written only when that folder is named.

The table reads each run's last evaluation (``metrics.jsonl``: every ``eval/`` and ``detect/``
value at the last step that has one): the PSNR gain over copying the last context frame
(``eval/psnr - eval/psnr_baseline``), ``eval/motion``, the end-of-run detector's accuracy and
``eval/lpips``; mean ± sample standard deviation (n - 1) over the seeds. The detector's columns are
those the runs have: the strong protocol's frame and clip judges (``detect/frame_accuracy``,
``detect/clip_accuracy``), the default protocol's single judge (``eval/detect_acc``: runs before
the strong protocol, ``--detect-protocol default``), or all three when runs differ; a cell whose
mean is of fewer runs than the variant finished says ``(n=k)``. Labels, units, formats and how to
read each column are :mod:`train.metric_registry`'s; a line under the table names each column's
keys and reading.

Resumable: a run whose ``.json`` says it finished with the same flags is not run again, so the
same command after an interruption runs only what is missing. A run that did not finish is
started afresh (``--overwrite``). A finished run with other flags (another ``--max-steps``, other
pass-through flags) is an error: use another ``--out``. ``--table-only`` runs nothing and
tabulates the finished runs; with none finished it is an error and writes nothing (an empty table
never replaces results).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `train` and `models` are repository code

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402

from train import metric_registry as registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAINER = ROOT / "train" / "gan.py"

# variant -> (what it switches off, the trainer flags that do it). "--perceptual-weight 0" rather
# than "--perceptual none" keeps LPIPS (when it loads) for the evaluation, so eval/lpips compares.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "reference": ("nothing (the current defaults)", []),
    "no-adv": ("the adversarial term", ["--adv-weight", "0"]),
    "no-perceptual": ("the perceptual / feature-matching term", ["--perceptual-weight", "0"]),
    "no-temporal": ("temporal difference and second-order smoothness", ["--tdl-weight", "0", "--smooth-weight", "0"]),
    "no-gdl": ("gradient difference", ["--gdl-weight", "0"]),
    "no-flow-tv": ("the total variation of the generator's flow", ["--flow-tv-weight", "0"]),
    "rec-only": ("everything but reconstruction",
                 ["--adv-weight", "0", "--perceptual-weight", "0", "--tdl-weight", "0", "--smooth-weight", "0",
                  "--gdl-weight", "0", "--flow-tv-weight", "0"]),
}
# The one column no run logs: eval/psnr - eval/psnr_baseline, per run, then over the seeds.
PSNR_GAIN = "psnr_gain"
# The table's columns, in order: PSNR_GAIN, then metrics.jsonl keys (the registry's names). A
# column is shown when some run has it: the detector's judges differ by protocol.
COLUMNS = (PSNR_GAIN, "eval/motion", *(keys.accuracy for keys in registry.DETECTORS), "eval/lpips")
# Flags the ablation sets for each run itself.
OWN_FLAGS = ("--seed", "--run-name", "--output-dir", "--samples-dir", "--resume", "--overwrite", "--max-steps")
# Under runs/, which git ignores: a plain call never writes over the committed ablations/default.
DEFAULT_OUT = "runs/ablation"


@dataclass(frozen=True)
class Run:
    variant: str
    seed: int
    flags: tuple[str, ...]  # the trainer's flags (without --overwrite)

    @property
    def name(self) -> str:
        return f"{self.variant}-seed{self.seed}"


def plan_runs(out: Path, variants: list[str], seeds: list[int], max_steps: int | None, extra: list[str]) -> list[Run]:
    """One :class:`Run` per variant and seed, variant by variant."""
    runs = []
    for variant in variants:
        for seed in seeds:
            flags = [*extra, *VARIANTS[variant][1], "--seed", str(seed), "--run-name", f"{variant}-seed{seed}",
                     "--output-dir", str(out / "runs"), "--samples-dir", str(out / "samples")]
            if max_steps is not None:
                flags += ["--max-steps", str(max_steps)]
            runs.append(Run(variant, seed, tuple(flags)))
    return runs


def launch_command(launcher: str, flags: list[str]) -> list[str]:
    if launcher == "python":
        return [sys.executable, str(TRAINER), *flags]
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", str(TRAINER), *flags]


def status_path(out: Path, run: Run) -> Path:
    return out / "logs" / f"{run.name}.json"


def finished(out: Path, run: Run) -> dict | None:
    """The run's status record if it finished with these flags; ``None`` if it has to run. A run
    that finished with other flags can't be reused, nor silently replaced: ``SystemExit``."""
    path = status_path(out, run)
    if not path.is_file():
        return None
    status = json.loads(path.read_text())
    if status.get("returncode") != 0:
        return None
    if status.get("flags") != list(run.flags):
        raise SystemExit(f"error: {run.name} in {out} finished with other flags:\n  {shlex.join(status.get('flags', []))}"
                         f"\nnot\n  {shlex.join(run.flags)}\nUse another --out for other settings.")
    return status


def execute(out: Path, run: Run, launcher: str) -> dict:
    """Train one run (afresh if an earlier attempt left its folder); returns its status record."""
    flags = list(run.flags)
    if (out / "runs" / run.name).exists():
        flags.append("--overwrite")  # an unfinished earlier attempt: the trainer refuses its folder otherwise
    command = launch_command(launcher, flags)
    log_path = out / "logs" / f"{run.name}.log"
    start = time.time()
    with log_path.open("w") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        returncode = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    status = {"variant": run.variant, "seed": run.seed, "flags": list(run.flags), "command": command,
              "returncode": returncode, "seconds": round(time.time() - start, 1), "log": str(log_path)}
    status_path(out, run).write_text(json.dumps(status, indent=2) + "\n")
    return status


def column_metric(column: str) -> registry.Metric:
    """A column's registry entry: its label, unit, format and direction. The PSNR gain reads as
    PSNR does (same unit, format and direction), labelled as the gain over PSNR's reference."""
    if column != PSNR_GAIN:
        return registry.get(column)
    psnr = registry.get("eval/psnr")
    return replace(psnr, label=f"{psnr.label} gain over {registry.get(psnr.versus).label}", versus=None)


def column_source(column: str) -> str:
    """The ``metrics.jsonl`` keys a column is read from."""
    return f"{column_metric(column).name} − {registry.get('eval/psnr').versus}" if column == PSNR_GAIN else column


def heading(column: str) -> str:
    """A column's head: the registry's label, and the unit in brackets."""
    metric = column_metric(column)
    return f"{metric.label} ({metric.unit})" if metric.unit else metric.label


def last_eval(metrics_path: Path) -> dict[str, float]:
    """A run's values for the table: every ``eval/*`` and ``detect/*`` value logged at the last
    step that has one (the evaluation and the end-of-run detector write separate records), and
    :data:`PSNR_GAIN` when that step has PSNR and its reference."""
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    evals = [r for r in records if any(k.startswith(registry.PREFIXES) for k in r)]
    if not evals:
        return {}
    step = evals[-1]["step"]
    merged = {k: v for r in evals if r["step"] == step for k, v in r.items() if k.startswith(registry.PREFIXES)}
    values = {"step": step}
    psnr = registry.get("eval/psnr")
    if merged.get(psnr.name) is not None and merged.get(psnr.versus) is not None:
        values[PSNR_GAIN] = merged[psnr.name] - merged[psnr.versus]
    values.update({k: v for k, v in merged.items() if v is not None})
    return values


def shown_columns(results: list[dict]) -> list[str]:
    """The :data:`COLUMNS` some finished run has a value of, in order."""
    return [c for c in COLUMNS if any(c in r["metrics"] for r in results if r["returncode"] == 0)]


def summarise(results: list[dict], variants: list[str], columns: list[str]) -> dict[str, dict]:
    """Per variant: ``n`` finished runs, their compute time, and each column's mean, sd (n - 1;
    ``None`` for one value) and n (the runs that have it: fewer when runs differ in protocol)."""
    summary = {}
    for variant in variants:
        done = [r for r in results if r["variant"] == variant and r["returncode"] == 0]
        entry = {"switched_off": VARIANTS[variant][0], "flags": VARIANTS[variant][1], "runs": len(done),
                 "seconds": sum(r["seconds"] for r in done)}
        for column in columns:
            values = [r["metrics"][column] for r in done if column in r["metrics"]]
            if values:
                entry[column] = {"mean": statistics.fmean(values),
                                 "sd": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}
        summary[variant] = entry
    return summary


def _cell(stat: dict | None, metric: registry.Metric, runs: int) -> str:
    if stat is None:
        return "—"
    sd = "" if stat["sd"] is None else f" ± {metric.number(stat['sd'])}"
    some = f" (n={stat['n']})" if stat["n"] < runs else ""  # other runs of the variant lack it
    return f"{metric.number(stat['mean'])}{sd}{some}"


def legend(columns: list[str]) -> str:
    """The line under the table: each column's ``metrics.jsonl`` keys and how to read it."""
    parts = []
    for column in columns:
        metric = column_metric(column)
        parts.append(f"{metric.label}: `{column_source(column)}`" + (f", {metric.reading}" if metric.reading else ""))
    return ("Columns (each run's last evaluation; n=k: only k of the variant's runs have it): "
            + "; ".join(parts) + ".")


def table(summary: dict[str, dict], header: str, columns: list[str]) -> str:
    """``ablation.md``: the header line, one row per variant, then the :func:`legend`."""
    metrics = [column_metric(c) for c in columns]
    lines = [header, "", "| variant | switched off | seeds | " + "".join(f"{heading(c)} | " for c in columns)
             + "compute |", "|---" * (len(columns) + 4) + "|"]
    for variant, entry in summary.items():
        cells = [_cell(entry.get(c), m, entry["runs"]) for c, m in zip(columns, metrics, strict=True)]
        lines.append(f"| {variant} | {entry['switched_off']} | {entry['runs']} | " + "".join(f"{c} | " for c in cells)
                     + f"{entry['seconds'] / 60:.1f} min |")
    return "\n".join([*lines, "", legend(columns)]) + "\n"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The ablation's own flags, and the trainer flags after ``--``."""
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        description="Run the reference GAN with each loss family switched off in turn, over several seeds, and "
        "tabulate PSNR gain, motion, the detector's accuracy (frame and clip judges, or the single judge of the "
        "default protocol) and LPIPS (mean ± sd). Trainer flags go after --.",
        allow_abbrev=False)
    parser.add_argument("--out", default=DEFAULT_OUT, help="the ablation folder (default: %(default)s, ignored by "
                        "git; the committed results are in ablations/default)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
                        help=f"which variants to run, of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds of each variant (default: 0 1 2)")
    parser.add_argument("--max-steps", type=int, help="training steps of every run (default: the trainer's)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default: 1; each run uses "
                        "--cpu-threads torch threads on CPU)")
    parser.add_argument("--table-only", action="store_true", help="run nothing: tabulate the runs that finished "
                        "and name the missing ones (an error, writing nothing, when none finished)")
    parser.add_argument("--launcher", choices=("accelerate", "python"), default="accelerate",
                        help="accelerate launch (one process) or plain python (default: %(default)s)")
    args = parser.parse_args(own)
    if args.jobs < 1 or (args.max_steps is not None and args.max_steps < 1):
        parser.error("--jobs and --max-steps must be >= 1")
    if len(set(args.seeds)) != len(args.seeds) or len(set(args.variants)) != len(args.variants):
        parser.error("--seeds and --variants must not repeat")
    taken = [flag for flag in extra if flag.split("=")[0] in OWN_FLAGS]
    if taken:
        parser.error(f"{', '.join(taken)} after -- : the ablation sets {', '.join(OWN_FLAGS)} itself "
                     "(--max-steps is its own flag)")
    return args, extra


def check_flags(runs: list[Run]) -> None:
    """Parse each variant's flags as the trainer will, so a bad combination stops before any run."""
    from train.options import parse_args as trainer_args

    for run in {r.variant: r for r in runs}.values():
        try:
            trainer_args(list(run.flags))
        except SystemExit as stop:
            raise SystemExit(f"error: variant {run.variant}'s flags are refused by the trainer "
                             f"({shlex.join(run.flags)}); see the message above") from stop


def main(argv: list[str] | None = None) -> dict:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out).resolve()
    runs = plan_runs(out, args.variants, args.seeds, args.max_steps, extra)
    check_flags(runs)
    if not args.table_only:
        (out / "logs").mkdir(parents=True, exist_ok=True)
    statuses = {run: finished(out, run) for run in runs}
    todo = [run for run in runs if statuses[run] is None]
    done = len(runs) - len(todo)
    missing = []
    if args.table_only:
        if not done:  # nothing to tabulate: an empty table would replace whatever <out> holds
            raise SystemExit(f"error: --table-only: none of the {len(runs)} runs finished in {out} (looked for "
                             f"{status_path(out, runs[0]).name} ... {status_path(out, runs[-1]).name} in "
                             f"{out / 'logs'}); nothing written. Name the ablation folder with --out.")
        missing, todo = [run.name for run in todo], []
        for run in runs:
            if statuses[run] is None:
                statuses[run] = {"variant": run.variant, "seed": run.seed, "flags": list(run.flags),
                                 "returncode": None, "seconds": 0.0}
    pending = f"{len(missing)} not run (--table-only)" if args.table_only else f"{len(todo)} to run, {args.jobs} at a time"
    print(f"ablation {out}: {len(runs)} runs ({len(args.variants)} variants x {len(args.seeds)} seeds), "
          f"{done} finished earlier, {pending}", flush=True)
    start = time.time()

    def one(run: Run) -> dict:
        print(f"  {run.name}: started", flush=True)
        status = execute(out, run, args.launcher)
        result = "done" if status["returncode"] == 0 else f"FAILED (exit {status['returncode']}, see {status['log']})"
        print(f"  {run.name}: {result} in {status['seconds']:.0f} s", flush=True)
        return status

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for run, status in zip(todo, pool.map(one, todo), strict=True):
            statuses[run] = status
    results = []
    for run in runs:
        status = dict(statuses[run])
        metrics = out / "runs" / run.name / "metrics.jsonl"
        status["metrics"] = last_eval(metrics) if status["returncode"] == 0 and metrics.is_file() else {}
        status["run_dir"] = str(out / "runs" / run.name)
        results.append(status)
    columns = shown_columns(results)
    summary = summarise(results, args.variants, columns)
    compute = sum(r["seconds"] for r in results)
    steps = sorted({r["metrics"].get("step") for r in results if r["metrics"]} - {None})
    header = (f"Ablation `{out.name}`: {len(runs)} runs ({len(args.variants)} variants x seeds "
              f"{' '.join(map(str, args.seeds))}), {', '.join(map(str, steps)) or '?'} steps each, "
              f"flags `{shlex.join(extra) or '(defaults)'}`; {compute / 60:.1f} min of compute in total "
              f"(sum of the runs' wall times, {args.launcher} launcher). Mean ± sd over seeds.")
    if missing:
        header += f" Not run (--table-only): {', '.join(missing)}."
    report = {"out": str(out), "missing": missing, "variants": args.variants, "seeds": args.seeds, "max_steps": args.max_steps,
              "extra_flags": extra, "launcher": args.launcher, "jobs": args.jobs, "compute_seconds": compute,
              "wall_seconds_this_call": round(time.time() - start, 1),
              "columns": [{"key": c, "label": column_metric(c).label, "source": column_source(c),
                           "unit": column_metric(c).unit, "reading": column_metric(c).reading} for c in columns],
              "summary": summary, "runs": results}
    (out / "ablation.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = table(summary, header, columns)
    (out / "ablation.md").write_text(markdown)
    print(markdown, end="")
    failed = [r["variant"] + f"-seed{r['seed']}" for r in results if r["returncode"] not in (0, None)]
    if failed:
        raise SystemExit(f"error: {len(failed)} run(s) failed: {', '.join(failed)} (logs in {out / 'logs'}); "
                         "the same command reruns them")
    return report


if __name__ == "__main__":
    main()

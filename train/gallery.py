"""The sample gallery page: loss curves, diagnostics, ``run.json`` and a static ``index.html`` of every run.

``update_gallery`` redraws a run's ``curves.png`` (losses and eval metrics) and ``diagnostics.png``
(the loss balance and the discriminators' health, from the ``diag/*`` records; both drawn by
:mod:`train.charts`), records its
``run.json`` (with the warnings of :func:`train.diagnose.diagnose` and the newest
``eval-<step>.json`` that ``train/eval.py`` wrote beside ``metrics.jsonl``, copied into the run's
sample folder) and rewrites ``<samples_dir>/index.html`` from every run folder. The page is static,
uses relative links only and is valid at every moment of a run (files are published atomically,
see :mod:`train.clips`). The clips it shows come from :func:`train.clips.write_clips`. Metric
labels, directions and units come from :mod:`train.metric_registry`: a metric added there shows on
the cards without an edit here. :func:`refresh_gallery` is what the trainer and ``train/eval.py``
call: it never raises for a page it can't write.

The trainer writes its gallery into ``--samples-dir`` (default ``runs/samples``, git-ignored as the
runs are). The repository's committed reference gallery, ``samples/``, changes only on request:

    python train/gallery.py --publish runs/samples/<run-name> [...]   # copy runs in, rewrite the page
    python train/gallery.py --out samples                             # only rewrite samples/index.html
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import string
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

if __name__ == "__main__":  # run as a script: the repository's code is not pip-installed (see train/gan.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train import metric_registry as registry  # noqa: E402
from train.charts import curves_png, diagnostics_png, is_metric, is_number  # noqa: E402
from train.clips import atomic_write  # noqa: E402
from train.diagnose import diagnose  # noqa: E402

__all__ = ["publish", "read_metrics", "refresh_gallery", "update_gallery", "write_index"]

_STEP_FILE = re.compile(r"^step-(\d+)\.gif$")
_EVAL_FILE = re.compile(r"^eval-(\d+)\.json$")
_TEMPLATE = Path(__file__).with_name("gallery_template.html")


# --------------------------------------------------------------------------------------------
# metrics.jsonl


def read_metrics(metrics_path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` that parse; a missing file, blank lines and a partial
    last line (a run still writing) are skipped, as is any record without an integer ``"step"``."""
    try:
        text = Path(metrics_path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records




# --------------------------------------------------------------------------------------------
# run.json and the page


def _sample_steps(run_dir: Path) -> list[int]:
    """Steps whose GIF is in place (written last by ``write_clips``), ascending."""
    if not run_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in run_dir.iterdir() if (m := _STEP_FILE.match(p.name)))


def _latest_eval(records: list[dict]) -> dict | None:
    """The metric values (``eval/*``, ``detect/*``) of the last evaluated step, merged over its
    records (the trainer logs the end-of-run detector as a record of its own at the last step)."""
    evals = [r for r in records if any(is_metric(k) for k in r)]
    if not evals:
        return None
    step = evals[-1]["step"]
    merged = {"step": step}
    for record in evals:
        if record["step"] == step:
            merged.update({k: v for k, v in record.items() if is_metric(k)})
    return merged


_DETECTOR_FIELDS = ("accuracy", "auc", "interval", "n_train", "n_test", "n_test_clips", "protocol", "p_value")


def _detector_summary(result: dict) -> dict:
    """What the card shows of a ``DetectabilityResult.as_dict()``: its judges' numbers."""
    out = {k: result[k] for k in _DETECTOR_FIELDS if k in result}
    for judge in ("frame", "clip"):
        if isinstance(result.get(judge), dict):
            out[judge] = _detector_summary(result[judge])
    return out


def _eval_file(run_dir: Path, sample_dir: Path) -> dict | None:
    """The newest ``eval-<step>.json`` of ``run_dir`` (``train/eval.py``), copied into ``sample_dir``
    so the page can link it; returns what the card shows, or ``None`` if there is none (or it
    can't be read: a warning says so)."""
    found = [(int(m.group(1)), p) for p in run_dir.glob("eval-*.json") if (m := _EVAL_FILE.match(p.name))]
    if not found:
        return None
    step, path = max(found)
    data = _read_json(path)
    if not isinstance(data.get("metrics"), dict):
        warnings.warn(f"gallery: skipping unreadable {path}", RuntimeWarning, stacklevel=3)
        return None
    atomic_write(sample_dir / path.name, path.read_bytes())
    metrics = {}
    for key, value in data["metrics"].items():
        kind = getattr(registry.by_key(key), "kind", None)
        if is_number(value):
            metrics[key] = value
        elif kind == "detector" and isinstance(value, dict):
            metrics[key] = _detector_summary(value)
        elif kind == "set" and isinstance(value, dict):
            protocol = value.get("protocol") or {}
            metrics[key] = {"value": value.get("value"), "std": value.get("std"),
                            **{k: protocol.get(k) for k in ("num_real", "num_fake", "deviations")}}
    return {"file": path.name, "step": data.get("step", step), "clips": data.get("clips") or {},
            "metrics": metrics}


def _fmt(value: object) -> str:
    """Floats with 4 significant digits, always recognisable as floats (``1.0``, not ``1``)."""
    if isinstance(value, float) and math.isfinite(value):
        text = f"{value:.4g}"
        return text if any(c in text for c in ".e") else f"{text}.0"
    return str(value)


def _e(value: object) -> str:
    return html.escape(_fmt(value), quote=True)


def _link(run_name: str, filename: str) -> str:
    """A relative, percent-encoded, HTML-escaped link to a file of a run folder."""
    return html.escape(f"{quote(run_name, safe='')}/{quote(filename)}", quote=True)


def _date(created: object) -> str:
    try:
        moment = datetime.fromisoformat(str(created))
    except ValueError:
        return str(created) if created else "date unknown"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


# config keys shown as loss chips
_LOSS_KEY = re.compile(r"_(weight|loss|gamma|interval|start|ramp|warmup)$")


def _loss_chips(config: dict) -> str:
    """One chip per loss setting (``l1_weight``, ``adv_loss``, ``r1_gamma``...); terms that are
    off (zero weight or gamma, a false flag, the perceptual weight with no perceptual net) greyed."""
    chips = []
    for key, value in config.items():
        if _LOSS_KEY.search(key) and isinstance(value, (int, float, str)):
            off = value is False or (key.endswith(("_weight", "_gamma")) and value == 0)
            off |= key == "perceptual_weight" and config.get("perceptual") == "none"
            text = ("on" if value else "off") if isinstance(value, bool) else _fmt(value)
            label = _e(key.removesuffix("_weight"))
            kind = "chip off" if off else "chip"
            chips.append(f'<span class="{kind}">{label} <b>{html.escape(text)}</b></span>')
    return "".join(chips) or "<i>none recorded</i>"


def _dataset(config: dict) -> str:
    """The data source, with the reading options that change what the model sees (shot cuts,
    frame stride) when they are not the defaults."""
    if not config.get("dataset"):
        return "moving shapes (built-in)"
    parts = [str(config["dataset"])]
    if config.get("shot_cut"):
        parts.append(f"split into shots at {_fmt(config['shot_cut'])}")
    if config.get("frame_stride", 1) != 1:
        parts.append(f"frame stride {_fmt(config['frame_stride'])}")
    return " · ".join(parts)


def _settings(config: dict) -> list[tuple[str, str]]:
    """The key settings, in reading order; keys missing from ``config`` are left out."""
    k, size = config.get("context_frames"), config.get("size")
    shown = {
        "context_frames": ("task", f"continuation ({k} context frames)" if k else "unconditional"),
        "frames": ("frames", config.get("frames")),
        "size": ("size", f"{size}×{size}" if isinstance(size, int) else size),
        "dataset": ("dataset", _dataset(config)),
        "batch_size": ("batch size", config.get("batch_size")),
        "max_steps": ("max steps", config.get("max_steps")),
        "perceptual": ("perceptual", config.get("perceptual")),
        "world_size": ("world size", config.get("world_size")),
        "mixed_precision": ("precision", config.get("mixed_precision")),
        "seed": ("seed", config.get("seed")),
    }
    return [(label, _fmt(value)) for key, (label, value) in shown.items() if key in config]


def _templates() -> dict[str, string.Template]:
    """The ``<!--@name-->`` blocks of ``gallery_template.html``."""
    parts = re.split(r"^<!--@(\w+)-->\n", _TEMPLATE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {name: string.Template(text) for name, text in zip(parts[1::2], parts[2::2])}


def _status(last_step: object, max_steps: object) -> str:
    if isinstance(last_step, int) and isinstance(max_steps, int) and last_step >= max_steps:
        return '<span class="pill done">finished</span>'
    of = f" of {_e(max_steps)}" if max_steps is not None else ""
    return f'<span class="pill live">step {_e(last_step or 0)}{of} · running or stopped</span>'


def _card(label: str, value: str, *notes: str, kind: str = "card") -> str:
    """One metric card; ``value`` and ``notes`` are escaped here (a note may be ``(class, text)``)."""
    small = "".join(f'<small class="{n[0]}">{_e(n[1])}</small>' if isinstance(n, tuple) else f"<small>{_e(n)}</small>"
                    for n in notes if n)
    return f'<div class="{kind}"><span>{_e(label)}</span><b>{_e(value)}</b>{small}</div>'


def _value_card(metric: registry.Metric, value: object, values: dict) -> str | None:
    """A metric's card. With its reference (``metric.versus``) among ``values``: a competing
    predictor's score (copy-last-frame PSNR) as the difference to it, coloured by which side is
    better; a reference level without a direction (the real clips' warping error) as it is."""
    if not is_number(value):
        return None
    reference = values.get(metric.versus) if metric.versus else None
    if not is_number(reference):
        return _card(metric.label, metric.number(value), metric.hint)
    other = registry.get(metric.versus)
    if not other.better:
        return _card(metric.label, metric.number(value), f"{other.label}: {other.number(reference)}")
    ahead = value > reference if metric.better == "higher" else value < reference
    note = ("up" if ahead else "down", f"{metric.delta(value, reference)} vs {other.label} {other.number(reference)}")
    return _card(metric.label, metric.text(value), note)


def _detector_card(keys: registry.DetectorKeys, judge: dict) -> str | None:
    """A detector judge's accuracy with its interval, AUC and counts: 0.5 means generated clips
    can't be told from real ones."""
    metric = registry.get(keys.accuracy)
    accuracy, auc = judge.get("accuracy"), judge.get("auc")
    if not is_number(accuracy):
        return None
    low, high = judge.get("interval") or (None, None)
    interval = f"95% {metric.number(low)}–{metric.number(high)}" if is_number(low) and is_number(high) else ""
    auc_text = f"AUC {metric.number(auc)}" if is_number(auc) else ""
    counts = f"{judge['n_test']} test {keys.sample}s" if is_number(judge.get("n_test")) else ""
    if counts and is_number(judge.get("n_test_clips")):
        counts += f" of {judge['n_test_clips']} clips"
    return _card(metric.label, metric.number(accuracy), " · ".join(t for t in (interval, auc_text) if t),
                 " · ".join(t for t in (counts, metric.reading) if t), kind="card detector")


def _flat_judges(values: dict) -> list[tuple[registry.DetectorKeys, dict]]:
    """The detector judges of flat ``metrics.jsonl`` values (the trainer's end-of-run record)."""
    return [(keys, {"accuracy": values.get(keys.accuracy), "auc": values.get(keys.auc),
                    "interval": (values.get(keys.low), values.get(keys.high)), "n_test": values.get(keys.n_test),
                    "n_test_clips": values.get(keys.n_test_clips)})
            for keys in registry.DETECTORS if keys.accuracy in values]


def _set_card(metric: registry.Metric, result: object) -> str | None:
    """FVD and the like from train/eval.py: value ± std, sample counts, protocol deviations."""
    if not isinstance(result, dict) or not is_number(result.get("value")):
        return None
    value = metric.number(result["value"]) + (f" ± {metric.number(result['std'])}" if is_number(result.get("std")) else "")
    deviations = result.get("deviations") or []
    return _card(metric.label, value, f"{result.get('num_real')} real / {result.get('num_fake')} generated",
                 f"{len(deviations)} deviation(s) from the reference protocol" if deviations else "reference protocol")


def _metric_cards(values: dict) -> list[str]:
    """The cards of ``{metrics.jsonl key: value}`` (train/eval.py's results keyed the same way), in
    the registry's order: one card per detector judge, a reference value (copy-last-frame PSNR) on
    the card of the metric it is the reference of, and the keys the registry lacks last, as logged."""
    judges = dict(_flat_judges(values))
    in_judges = {m.name for keys in registry.DETECTORS for m in keys.metrics()}
    references = {m.versus for m in registry.METRICS if m.versus and m.name in values}
    cards: list[str | None] = []
    for metric in registry.METRICS:
        value = values.get(metric.name)
        if value is None or metric.name in references:
            continue
        if metric.name in in_judges:  # a detector judge's card, on its accuracy key
            cards += [_detector_card(keys, judge) for keys, judge in judges.items() if keys.accuracy == metric.name]
        elif metric.kind == "detector":
            judged = registry.detector_judges(value) if isinstance(value, dict) else []
            cards += [_detector_card(keys, judge) for keys, judge in judged]
        elif metric.kind == "set":
            cards.append(_set_card(metric, value))
        else:
            cards.append(_value_card(metric, value, values))
    cards += [_card(key.removeprefix("eval/"), _fmt(value)) for key, value in values.items()
              if registry.get(key) is None and is_metric(key) and is_number(value)]
    return [c for c in cards if c]


def _eval_cards(latest: dict | None) -> str:
    if not latest:
        return '<p class="empty">No evaluation yet.</p>'
    at = f'<p class="at">eval at step {_e(latest["step"])}</p>'
    return f'<div class="evals">{"".join(_metric_cards(latest))}{at}</div>'


def _eval_file_cards(run_name: str, summary: dict | None) -> str:
    """The card block of ``train/eval.py``'s newest result."""
    if not summary:
        return ""
    metrics, clips = summary.get("metrics") or {}, summary.get("clips") or {}
    cards = _metric_cards({f"eval/{key}": value for key, value in metrics.items()})
    count, source = clips.get("count"), clips.get("source")
    what = " · ".join(_e(t) for t in (f"{count} clips" if count else "", source) if t)
    link = f'<a href="{_link(run_name, summary["file"])}">{_e(summary["file"])}</a>'
    head = f'<h4>train/eval.py at step {_e(summary.get("step"))} · {what} · {link}</h4>'
    return f'<div class="evalfile">{head}<div class="evals">{"".join(cards)}</div></div>'


def _warnings(findings: list[dict]) -> tuple[str, str]:
    """The header badge and the list of a run's :mod:`train.diagnose` warnings (empty when none)."""
    if not findings:
        return "", ""
    count = len(findings)
    badge = f'<span class="pill warn">⚠ {count} warning{"s" if count > 1 else ""}</span>'
    items = "".join(f'<li><b>{_e(f.get("check"))}</b> {_e(f.get("message"))}</li>' for f in findings)
    return badge, f'<ul class="warnings">{items}</ul>'


def _section(record: dict, anchor: str, templates: dict[str, string.Template]) -> str:
    """One run's ``<section>``; every value is escaped here, the templates hold only markup."""
    name, config = record["run_name"], record.get("config") or {}
    steps = record.get("sample_steps") or []
    samples = '<p class="empty">No samples written yet.</p>'
    if steps:
        strips = "\n".join(
            templates["strip"].substitute(step=s, src=_link(name, f"strip-{s:06d}.png")) for s in steps
        )
        samples = templates["samples"].substitute(
            anchor=anchor,
            step=steps[-1],
            gif=_link(name, f"step-{steps[-1]:06d}.gif"),
            mp4=_link(name, f"step-{steps[-1]:06d}.mp4"),
            strips=strips,
        )
    badge, warning_list = _warnings(record.get("warnings") or [])
    return templates["run"].substitute(
        anchor=anchor,
        name=_e(name),
        date=_e(_date(record.get("started"))),
        status=_status(record.get("last_step"), config.get("max_steps")) + badge,
        settings="".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _settings(config)),
        losses=_loss_chips(config),
        warnings=warning_list,
        evals=_eval_cards(record.get("latest_eval")) + _eval_file_cards(name, record.get("eval_file")),
        samples=samples,
        curves=_link(name, "curves.png"),
        diagnostics=_link(name, "diagnostics.png"),
        config="".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in config.items()),
    )


_PSNR, _MOTION = registry.get("eval/psnr"), registry.get("eval/motion")


def _summary_heads() -> dict[str, str]:
    """The summary table's metric column heads, from the registry."""
    detector = registry.get(registry.DEFAULT_DETECTOR.accuracy)
    return {"psnr_head": _e(f"{_PSNR.label} vs {registry.get(_PSNR.versus).label}"),
            "motion_head": _e(f"{_MOTION.label} ({_MOTION.reading})"),
            "detector_head": _e(f"{registry.DEFAULT_DETECTOR.label} ({detector.reading})")}


def _summary_detector(record: dict) -> str:
    """The detector column: the trainer's end-of-run score (each judge's, for the strong
    protocol), else train/eval.py's, if it ran. The row's PSNR and motion are always the run's own
    held-out clips, so eval.py's score on other clips (another folder, or whole videos the run
    never saw) names them."""
    judges, where = _flat_judges(record.get("latest_eval") or {}), ""
    if not judges:
        eval_file = record.get("eval_file") or {}
        detector = (eval_file.get("metrics") or {}).get("detector")
        judges = registry.detector_judges(detector) if isinstance(detector, dict) else []
        clips = eval_file.get("clips") or {}
        if clips.get("split") == "whole":
            where = f" (on {clips.get('dataset')}, never trained on)"
        elif "dataset" in clips and clips["dataset"] != (record.get("config") or {}).get("dataset"):
            where = f" (on {clips.get('dataset') or 'the moving shapes'})"
    shown = [(keys, judge["accuracy"]) for keys, judge in judges if is_number(judge.get("accuracy"))]
    if len(shown) == 1 and not shown[0][0].judge:
        return registry.get(shown[0][0].accuracy).number(shown[0][1]) + where
    text = " · ".join(f"{keys.judge} {registry.get(keys.accuracy).number(value)}" for keys, value in shown)
    return text + where if text else "–"


def _summary_row(record: dict, anchor: str, templates: dict[str, string.Template]) -> str:
    config, latest = record.get("config") or {}, record.get("latest_eval") or {}
    psnr, base, motion = (latest.get(k) for k in (_PSNR.name, _PSNR.versus, _MOTION.name))
    return templates["summary"].substitute(
        anchor=anchor,
        name=_e(record["run_name"]),
        badge=_warnings(record.get("warnings") or [])[0],
        detector=_e(_summary_detector(record)),
        date=_e(_date(record.get("started"))),
        step=_e(record.get("last_step") or 0),
        max_steps=_e(config.get("max_steps", "?")),
        delta=_e(_PSNR.delta(psnr, base)) if is_number(psnr) and is_number(base) else "–",
        motion=_e(_MOTION.number(motion)) if is_number(motion) else "–",
    )


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``, or ``{}`` if it is missing or not a JSON object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _load_runs(samples_dir: Path) -> list[dict]:
    """Every run folder's ``run.json``, newest first (by start time, then file time)."""
    runs = []
    for path in samples_dir.glob("*/run.json"):
        if not (record := _read_json(path)):
            warnings.warn(f"gallery: skipping unreadable {path}", RuntimeWarning, stacklevel=3)
            continue
        record["run_name"] = path.parent.name  # the folder is what links point into
        runs.append((str(record.get("started", "")), path.stat().st_mtime, record))
    runs.sort(key=lambda r: (r[0], r[1]), reverse=True)
    return [r[2] for r in runs]


def _index_html(samples_dir: Path) -> str:
    runs, templates = _load_runs(samples_dir), _templates()
    # Anchors must be unique and safe whatever the run names are.
    slugs = [re.sub(r"[^A-Za-z0-9_-]+", "-", r["run_name"]) for r in runs]
    anchors = [f"run-{i}-{slug}" for i, slug in enumerate(slugs)]
    sections = [_section(r, a, templates) for r, a in zip(runs, anchors)]
    return templates["page"].substitute(
        updated=html.escape(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        count=len(runs),
        summary="\n".join(_summary_row(r, a, templates) for r, a in zip(runs, anchors)),
        **_summary_heads(),
        sections="\n".join(sections) or '<p class="empty">No runs yet.</p>',
    )


def _diagnosis(records: list[dict], config: dict, run_name: str) -> list[dict]:
    """:func:`train.diagnose.diagnose` as dicts; a config it can't read gets a warning, not a broken page."""
    try:
        return [finding.as_dict() for finding in diagnose(records, config)]
    except (TypeError, ValueError) as error:
        warnings.warn(f"gallery: no diagnostics for run {run_name!r}: {error}", RuntimeWarning, stacklevel=3)
        return []


def update_gallery(samples_dir: Path, run_name: str, config: dict, metrics_path: Path) -> Path:
    """Redraw ``curves.png``, ``diagnostics.png`` and ``run.json`` of one run and rewrite
    ``<samples_dir>/index.html``.

    Args:
        samples_dir: the gallery root; each run has a folder ``<samples_dir>/<run_name>/``.
        run_name: this run's folder name.
        config: the trainer's resolved config (any keys; missing ones are left off the page or,
            for the diagnostics, take ``TrainConfig``'s defaults).
        metrics_path: the run's ``metrics.jsonl`` (may be missing, empty or end mid-line). The
            newest ``eval-<step>.json`` beside it (``train/eval.py``) is shown on the run's card.

    Returns:
        The path of ``index.html``.
    """
    if not isinstance(run_name, str) or not run_name or run_name in (".", "..") or "/" in run_name:
        raise ValueError(f"`run_name` must be a folder name (non-empty, no '/'); got {run_name!r}")
    if not isinstance(config, dict):
        raise TypeError(f"`config` must be a dict; got {type(config).__name__}")
    samples_dir = Path(samples_dir)
    run_dir = samples_dir / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    records = read_metrics(metrics_path)
    atomic_write(run_dir / "curves.png", curves_png(records, run_name))
    atomic_write(run_dir / "diagnostics.png", diagnostics_png(records, config, run_name))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    previous = _read_json(run_dir / "run.json")
    record = {
        "run_name": run_name,
        # the config's creation time, else the first time this run reached the gallery
        "started": str(config.get("created") or previous.get("started", now)),
        "updated": now,
        "last_step": max((r["step"] for r in records), default=None),
        "latest_eval": _latest_eval(records),
        "eval_file": _eval_file(Path(metrics_path).parent, run_dir),
        "warnings": _diagnosis(records, config, run_name),
        "sample_steps": _sample_steps(run_dir),
        "config": config,
    }
    atomic_write(run_dir / "run.json", json.dumps(record, indent=2, default=str).encode())
    return write_index(samples_dir)


def refresh_gallery(samples_dir: Path, run_name: str, metrics_path: Path, config: dict | None = None) -> str | None:
    """Redraw one run's card and rewrite the page (:func:`update_gallery`), as the trainer (at each
    sample step and after the end-of-run detector) and ``train/eval.py`` (after writing
    ``eval-<step>.json``) do. The page indexes the run's files and is never a reason to stop: what
    goes wrong is returned, not raised.

    Args:
        samples_dir: the gallery root.
        run_name: the run's folder name in it.
        metrics_path: the run's ``metrics.jsonl`` (its newest ``eval-<step>.json`` beside it shows too).
        config: the run's resolved config; ``None`` reads the one the run's ``run.json`` recorded.

    Returns:
        ``None`` when the page was rewritten, else one line saying why not: a gallery holding files
        git tracks (the repository's committed one changes only when published, :func:`publish`),
        a run the gallery has no readable ``run.json`` of, or a write that failed.
    """
    # Imported here: train.run pulls in accelerate, which drawing the page doesn't need.
    from train.run import tracked_files

    samples_dir = Path(samples_dir)
    if tracked_files(samples_dir):
        return (f"{samples_dir} holds files tracked by git, page not updated (pass --samples-dir, or publish the run "
                f"with python train/gallery.py --publish {samples_dir / run_name} --out {samples_dir})")
    if config is None:
        run_json = samples_dir / run_name / "run.json"
        try:
            config = json.loads(run_json.read_text()).get("config") or {}
        except (OSError, json.JSONDecodeError, AttributeError):
            return f"no readable {run_json}, page not updated (pass --samples-dir)"
    try:
        update_gallery(samples_dir, run_name, config, metrics_path)
    except OSError as error:
        return f"couldn't update the gallery page in {samples_dir} ({error})"
    return None


def write_index(samples_dir: Path) -> Path:
    """Rewrite ``<samples_dir>/index.html`` from the ``run.json`` of every run folder in it (the
    run folders are left as they are). Returns the path of ``index.html``."""
    index = Path(samples_dir) / "index.html"
    atomic_write(index, _index_html(Path(samples_dir)).encode("utf-8"))
    return index


# --------------------------------------------------------------------------------------------
# publishing into a committed gallery


class PublishError(Exception):
    """A ``--publish`` request that can't be met: one ``error: ...`` line and exit status 2."""


def publish(folders: list[Path], out: Path) -> Path:
    """Copy run sample folders (``<samples-dir>/<run-name>``, each with its ``run.json``) into the
    gallery ``out``, each replacing an earlier copy of the same run, then rewrite ``out``'s
    ``index.html`` (:func:`write_index`). A folder that is already in ``out`` is only listed.

    Each run is copied beside its place and renamed into it, so the page never links a half-copied
    run. Raises :class:`PublishError` (before anything is copied) for a folder that isn't a run's.
    Returns the path of ``index.html``.
    """
    out = Path(out)
    folders = [Path(f) for f in folders]
    for folder in folders:
        if not (folder / "run.json").is_file():
            raise PublishError(f"--publish {str(folder)!r} is not a run's sample folder (no run.json in it)")
    if not folders and not out.is_dir():
        raise PublishError(f"--out {str(out)!r} is not a folder (pass --publish <samples-dir>/<run-name> to start one)")
    names = [f.resolve().name for f in folders]
    if len(set(names)) != len(names):
        raise PublishError(f"--publish names two folders of the same run name: {sorted(names)}")
    out.mkdir(parents=True, exist_ok=True)
    for folder, name in zip(folders, names):
        target = out / name
        if folder.resolve() == target.resolve():
            continue
        staging = out / f".tmp-publish-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return write_index(out)


def main(argv: list[str] | None = None) -> Path:
    """``python train/gallery.py [--publish FOLDER ...] [--out DIR]``: see the module docstring."""
    import argparse

    default_out = Path(__file__).resolve().parents[1] / "samples"
    p = argparse.ArgumentParser(description="Publish runs' sample folders into a gallery (by default the "
                                "repository's committed samples/) and rewrite its index.html.")
    p.add_argument("--publish", nargs="+", default=[], metavar="FOLDER",
                   help="run sample folders to copy in (<samples-dir>/<run-name>, written by train/gan.py); "
                        "each replaces an earlier copy of its run. Without: only the page is rewritten")
    p.add_argument("--out", default=str(default_out), help=f"the gallery folder (default: {default_out})")
    args = p.parse_args(argv)
    try:
        index = publish([Path(f) for f in args.publish], Path(args.out))
    except PublishError as error:
        p.exit(2, f"error: {error}\n")
    except OSError as error:  # a full disk, a read-only gallery
        p.exit(1, f"error: writing the gallery {args.out} failed: {error}\n")
    for folder in args.publish:
        print(f"published {folder} -> {Path(args.out) / Path(folder).resolve().name}")
    print(f"wrote {index} ({len(_load_runs(Path(args.out)))} runs)")
    return index


if __name__ == "__main__":
    main()

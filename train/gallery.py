"""The sample gallery page: loss curves, ``run.json`` and a static ``index.html`` of every run.

``update_gallery`` redraws a run's ``curves.png``, records its ``run.json`` and rewrites
``<samples_dir>/index.html`` from every run folder. The page is static, uses relative links only
and is valid at every moment of a run (files are published atomically, see :mod:`train.clips`).
The clips it shows come from :func:`train.clips.write_clips`, re-exported here.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
import string
import warnings
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .clips import atomic_write, write_clips

__all__ = ["read_metrics", "update_gallery", "write_clips"]

_STEP_FILE = re.compile(r"^step-(\d+)\.gif$")
_TEMPLATE = Path(__file__).with_name("gallery_template.html")
_EVAL_NAMES = {  # eval key -> (card label, reading hint); other eval/* keys are shown as logged
    "eval/motion": ("motion", "1.0 is right"),
    "eval/lpips": ("LPIPS", "lower is better"),
    "eval/tlp": ("tLP", "lower is better"),
}


# --------------------------------------------------------------------------------------------
# metrics and curves


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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _series(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """``{key: (steps, values)}`` for every numeric key, in first-logged order."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        for key, value in record.items():
            if key != "step" and _is_number(value):
                steps, values = series.setdefault(key, ([], []))
                steps.append(record["step"])
                values.append(float(value))
    return series


def _smooth(values: list[float]) -> np.ndarray:
    """Debiased exponential moving average over about a tenth of the run, so noisy GAN losses
    show a trend (non-finite values are skipped)."""
    weight = min(0.98, 1.0 - 10.0 / len(values))
    out, average, total = np.empty(len(values)), 0.0, 0.0
    for i, v in enumerate(values):
        if math.isfinite(v):
            average, total = weight * average + (1 - weight) * v, weight * total + (1 - weight)
        out[i] = average / total if total > 0 else math.nan
    return out


def _curves_png(records: list[dict], title: str) -> bytes:
    """One readable panel per logged loss term, then the eval metrics (PSNR with its baseline)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg explicitly: no display needed
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = _series(records)
    panels: list[tuple[str, list[str]]] = [(k, [k]) for k in series if not k.startswith("eval/")]
    evals = [k for k in series if k.startswith("eval/")]
    if "eval/psnr" in evals or "eval/psnr_baseline" in evals:
        pair = [k for k in ("eval/psnr", "eval/psnr_baseline") if k in series]
        panels.append(("eval PSNR (dB)", pair))
    panels += [(k, [k]) for k in evals if k not in ("eval/psnr", "eval/psnr_baseline")]
    columns = min(3, max(1, len(panels)))  # 3 x 360 px: shown near 1:1 on the page
    rows = max(1, math.ceil(len(panels) / columns))
    figure = Figure(figsize=(3.6 * columns, 2.5 * rows + 0.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title.replace("$", r"\$"), fontsize=11, fontweight="bold", color="#1f2328")
    if not panels:
        figure.text(0.5, 0.5, "no metrics logged yet", ha="center", va="center", color="#6b7280")
    for index, (name, keys) in enumerate(panels):
        ax = figure.add_subplot(rows, columns, index + 1)
        for key in keys:
            steps, values = series[key]
            if key.startswith("eval/"):
                style = dict(marker="o", markersize=3, linewidth=1.4)
                if key == "eval/psnr_baseline":
                    style.update(color="#9ca3af", linestyle="--", label="copy last frame")
                else:
                    style.update(color="#2563eb", label="model")
                ax.plot(steps, values, **style)
            else:
                smooth = len(values) >= 40  # raw values pale behind their trend
                dots = dict(marker="o", markersize=3) if len(values) < 20 else {}  # 1 point shows
                ax.plot(steps, values, color="#93c5fd" if smooth else "#1d4ed8", linewidth=0.8, **dots)
                if smooth:
                    ax.plot(steps, _smooth(values), color="#1d4ed8", linewidth=1.4)
        if name == "eval/motion":
            ax.axhspan(0.7, 1.3, color="#22c55e", alpha=0.12, linewidth=0)
            ax.axhline(1.0, color="#16a34a", linewidth=0.8, linestyle=":")
        if len(keys) > 1:
            ax.legend(fontsize=8, frameon=False)
        ax.set_title(name.replace("$", r"\$"), fontsize=10)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.grid(alpha=0.25, linewidth=0.5)
        ax.set_xlabel("step", fontsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# run.json and the page


def _sample_steps(run_dir: Path) -> list[int]:
    """Steps whose GIF is in place (written last by ``write_clips``), ascending."""
    if not run_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in run_dir.iterdir() if (m := _STEP_FILE.match(p.name)))


def _latest_eval(records: list[dict]) -> dict | None:
    evals = [r for r in records if any(k.startswith("eval/") for k in r)]
    if not evals:
        return None
    last = evals[-1]
    return {"step": last["step"], **{k: v for k, v in last.items() if k.startswith("eval/")}}


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


def _settings(config: dict) -> list[tuple[str, str]]:
    """The key settings, in reading order; keys missing from ``config`` are left out."""
    k, size = config.get("context_frames"), config.get("size")
    shown = {
        "context_frames": ("task", f"continuation ({k} context frames)" if k else "unconditional"),
        "frames": ("frames", config.get("frames")),
        "size": ("size", f"{size}×{size}" if isinstance(size, int) else size),
        "dataset": ("dataset", config.get("dataset") or "moving shapes (built-in)"),
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


def _eval_cards(latest: dict | None) -> str:
    if not latest:
        return '<p class="empty">No evaluation yet.</p>'
    cards = []
    psnr, base = latest.get("eval/psnr"), latest.get("eval/psnr_baseline")
    if _is_number(psnr):
        note = ""
        if _is_number(base):
            trend = "up" if psnr > base else "down"
            delta = f"{psnr - base:+.2f} dB vs copy-last-frame {base:.2f}"
            note = f'<small class="{trend}">{delta}</small>'
        cards.append(f'<div class="card"><span>PSNR</span><b>{psnr:.2f} dB</b>{note}</div>')
    for key, value in latest.items():
        if key in ("step", "eval/psnr", "eval/psnr_baseline") or not _is_number(value):
            continue
        label, hint = _EVAL_NAMES.get(key, (key.removeprefix("eval/"), ""))
        card = f"<span>{_e(label)}</span><b>{_e(value)}</b><small>{_e(hint)}</small>"
        cards.append(f'<div class="card">{card}</div>')
    at = f'<p class="at">eval at step {_e(latest["step"])}</p>'
    return f'<div class="evals">{"".join(cards)}{at}</div>'


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
    return templates["run"].substitute(
        anchor=anchor,
        name=_e(name),
        date=_e(_date(record.get("started"))),
        status=_status(record.get("last_step"), config.get("max_steps")),
        settings="".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _settings(config)),
        losses=_loss_chips(config),
        evals=_eval_cards(record.get("latest_eval")),
        samples=samples,
        curves=_link(name, "curves.png"),
        config="".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in config.items()),
    )


def _summary_row(record: dict, anchor: str, templates: dict[str, string.Template]) -> str:
    config, latest = record.get("config") or {}, record.get("latest_eval") or {}
    psnr, base, motion = (latest.get(k) for k in ("eval/psnr", "eval/psnr_baseline", "eval/motion"))
    return templates["summary"].substitute(
        anchor=anchor,
        name=_e(record["run_name"]),
        date=_e(_date(record.get("started"))),
        step=_e(record.get("last_step") or 0),
        max_steps=_e(config.get("max_steps", "?")),
        delta=f"{psnr - base:+.2f} dB" if _is_number(psnr) and _is_number(base) else "–",
        motion=_e(motion) if _is_number(motion) else "–",
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
        sections="\n".join(sections) or '<p class="empty">No runs yet.</p>',
    )


def update_gallery(samples_dir: Path, run_name: str, config: dict, metrics_path: Path) -> Path:
    """Redraw ``curves.png`` and ``run.json`` of one run and rewrite ``<samples_dir>/index.html``.

    Args:
        samples_dir: the gallery root; each run has a folder ``<samples_dir>/<run_name>/``.
        run_name: this run's folder name.
        config: the trainer's resolved config (any keys; missing ones are left off the page).
        metrics_path: the run's ``metrics.jsonl`` (may be missing, empty or end mid-line).

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
    atomic_write(run_dir / "curves.png", _curves_png(records, run_name))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    previous = _read_json(run_dir / "run.json")
    record = {
        "run_name": run_name,
        # the config's creation time, else the first time this run reached the gallery
        "started": str(config.get("created") or previous.get("started", now)),
        "updated": now,
        "last_step": max((r["step"] for r in records), default=None),
        "latest_eval": _latest_eval(records),
        "sample_steps": _sample_steps(run_dir),
        "config": config,
    }
    atomic_write(run_dir / "run.json", json.dumps(record, indent=2, default=str).encode())
    index = samples_dir / "index.html"
    atomic_write(index, _index_html(samples_dir).encode("utf-8"))
    return index

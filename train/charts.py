"""The run's two figures: ``curves.png`` (each loss term and eval metric over the steps) and
``diagnostics.png`` (the loss balance and the discriminators' health, from the ``diag/*`` records).

Both are drawn off-screen with matplotlib's Agg canvas and returned as PNG bytes; :mod:`train.gallery`
writes them beside the run's samples. Panel titles, units and reference curves come from
:mod:`train.metric_registry`, the warning bands from :class:`train.diagnose.Thresholds`.
"""

from __future__ import annotations

import io
import math

import numpy as np

from train import metric_registry as registry
from train.diagnose import DISCRIMINATORS, TERM_WEIGHTS, Thresholds, gradient_shares

__all__ = ["curves_png", "diagnostics_png", "is_metric", "is_number"]


def is_number(value: object) -> bool:
    """A logged number: an int or float, not a bool (JSON's ``true`` would otherwise plot as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _series(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """``{key: (steps, values)}`` for every numeric key, in first-logged order."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        for key, value in record.items():
            if key != "step" and is_number(value):
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


def is_metric(key: str) -> bool:
    """An evaluation metric's key (``eval/``, ``detect/``...: the registry's prefixes), not a loss."""
    return key.startswith(registry.PREFIXES)


def curves_png(records: list[dict], title: str) -> bytes:
    """One readable panel per logged loss term, then one per metric (a metric drawn against its
    reference, as PSNR against copy-last-frame, shares its panel), titled by the registry's label;
    the end-of-run detector (one point) is left out."""
    series = {k: v for k, v in _series(records).items() if not k.startswith("diag/")
              and (not is_metric(k) or getattr(registry.get(k), "curve", True))}
    panels: list[tuple[str, list[str]]] = [(k, [k]) for k in series if not is_metric(k)]
    metrics = [k for k in series if is_metric(k)]
    references = {m.versus for m in map(registry.get, metrics) if m is not None and m.versus in series}
    for key in metrics:
        metric = registry.get(key)
        if key in references:
            continue  # drawn in the panel of the metric it is the reference of
        if metric is None:
            panels.append((key, [key]))
            continue
        title_text = f"{metric.label} ({metric.unit})" if metric.unit else metric.label
        panels.append((title_text, [key] + ([metric.versus] if metric.versus in series else [])))
    columns = min(3, max(1, len(panels)))  # 3 x 360 px: shown near 1:1 on the page
    rows = max(1, math.ceil(len(panels) / columns))
    figure = _figure(columns, rows, 3.6, 2.5, title)
    if not panels:
        figure.text(0.5, 0.5, "no metrics logged yet", ha="center", va="center", color="#6b7280")
    for index, (name, keys) in enumerate(panels):
        ax = figure.add_subplot(rows, columns, index + 1)
        for position, key in enumerate(keys):
            steps, values = series[key]
            if is_metric(key):
                style = dict(marker="o", markersize=3, linewidth=1.4)
                if position:  # the reference
                    style.update(color="#9ca3af", linestyle="--", label=registry.get(key).label)
                else:
                    style.update(color="#2563eb", label="model")
                ax.plot(steps, values, **style)
            else:
                smooth = len(values) >= 40  # raw values pale behind their trend
                dots = dict(marker="o", markersize=3) if len(values) < 20 else {}  # 1 point shows
                ax.plot(steps, values, color="#93c5fd" if smooth else "#1d4ed8", linewidth=0.8, **dots)
                if smooth:
                    ax.plot(steps, _smooth(values), color="#1d4ed8", linewidth=1.4)
        if getattr(registry.get(keys[0]), "better", "") == "one":  # where a ratio that should be 1.0 is fine
            ax.axhspan(0.7, 1.3, color="#22c55e", alpha=0.12, linewidth=0)
            ax.axhline(1.0, color="#16a34a", linewidth=0.8, linestyle=":")
        if len(keys) > 1:
            ax.legend(fontsize=8, frameon=False)
        _style(ax, name)
    return _png(figure)


def _figure(columns: int, rows: int, width: float, height: float, title: str):
    """An Agg figure (no display needed) of ``columns x rows`` panels of ``width x height`` inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height * rows + 0.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title.replace("$", r"\$"), fontsize=11, fontweight="bold", color="#1f2328")
    return figure


def _style(ax, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title.replace("$", r"\$"), fontsize=10)
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.grid(alpha=0.25, linewidth=0.5)
    ax.set_xlabel("step", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()


_TERM_COLOURS = dict(zip(TERM_WEIGHTS, ("#2563eb", "#16a34a", "#f59e0b", "#9333ea", "#64748b", "#0d9488", "#dc2626")))
_DISC_COLOURS = {"video": "#2563eb", "image": "#ea580c"}


def _not_logged(ax, keys: str) -> None:
    ax.text(0.5, 0.5, f"{keys}\nnot logged", ha="center", va="center", color="#6b7280", fontsize=9,
            transform=ax.transAxes)


def diagnostics_png(records: list[dict], config: dict, title: str) -> bytes:
    """Four panels: each generator term's share of the generator gradient (stacked, from
    ``diag/gradnorm/<term>``), the discriminators' accuracy with the bands where
    :mod:`train.diagnose` warns, their mean logits on real and generated clips, and R1."""
    series = _series(records)
    figure = _figure(2, 2, 5.4, 2.6, f"{title}: diagnostics")
    balance, accuracy, logits, r1 = (figure.add_subplot(2, 2, i) for i in range(1, 5))
    adv_start = config.get("adv_start")

    shares = gradient_shares(records)
    if shares:
        steps = sorted({step for points in shares.values() for step, _ in points})
        terms = [t for t in TERM_WEIGHTS if t in shares] + sorted(t for t in shares if t not in TERM_WEIGHTS)
        stacked = []
        for term in terms:
            by_step = dict(shares[term])
            stacked.append([by_step.get(step, 0.0) for step in steps])
        balance.stackplot(steps, stacked, labels=terms, colors=[_TERM_COLOURS.get(t, "#9ca3af") for t in terms],
                          alpha=0.85, linewidth=0)
        balance.set_ylim(0, 1)
        balance.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        _not_logged(balance, "diag/gradnorm/<term>")
    _style(balance, "loss balance: share of the generator gradient")

    t = Thresholds()
    drawn = False
    for disc in DISCRIMINATORS:
        if (key := f"diag/d_accuracy/{disc}") in series:
            accuracy.plot(*series[key], color=_DISC_COLOURS[disc], linewidth=1.2, label=disc)
            drawn = True
        for side, style in (("real", "-"), ("fake", "--")):
            if (key := f"diag/d_{side}/{disc}") in series:
                logits.plot(*series[key], color=_DISC_COLOURS[disc], linestyle=style, linewidth=1.1,
                            label=f"{disc} {side}")
    if drawn:
        accuracy.axhspan(0.5 - t.chance_accuracy, 0.5 + t.chance_accuracy, color="#9ca3af", alpha=0.25, linewidth=0,
                         label="chance")
        accuracy.axhspan(t.win_accuracy, 1.0, color="#ef4444", alpha=0.15, linewidth=0, label="wins outright")
        accuracy.set_ylim(0, 1.02)
        accuracy.legend(fontsize=7, frameon=False, loc="lower right")
    else:
        _not_logged(accuracy, "diag/d_accuracy/<disc>")
    _style(accuracy, "discriminator accuracy")
    if logits.lines:
        logits.axhline(0.0, color="#6b7280", linewidth=0.8, linestyle=":")
        logits.legend(fontsize=7, frameon=False, ncols=2)
    else:
        _not_logged(logits, "diag/d_real/<disc>, diag/d_fake/<disc>")
    _style(logits, "discriminator mean logit: real (solid), generated (dashed)")
    if "d/r1" in series:
        r1.plot(*series["d/r1"], color="#1d4ed8", marker="o", markersize=2, linewidth=0.8)
    else:
        _not_logged(r1, "d/r1")
    _style(r1, "R1 penalty (d/r1)")
    if isinstance(adv_start, int) and not isinstance(adv_start, bool):
        for ax in (balance, accuracy, logits, r1):
            if ax.lines or ax.collections:  # panels with data: where the adversarial term starts
                ax.axvline(adv_start, color="#dc2626", linewidth=0.8, linestyle=":", label="adv starts")
    return _png(figure)

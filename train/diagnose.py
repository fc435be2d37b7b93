"""Warnings about a run's loss balance and discriminators, read from its ``metrics.jsonl`` records.

One function, :func:`diagnose`, used by the trainer (a warning line when a stretch first becomes
long enough, see :class:`Monitor`) and by the gallery (a badge on the run's card). It reads the
records the trainer logs:

* ``diag/gradnorm/<term>``: the L2 norm of each *weighted* generator term's gradient with respect
  to the generated frames (``CompositeLoss(..., gradnorm_wrt=generated)``); a term's share of the
  generator gradient is ``norm / Σ norms`` over the terms logged in that record;
* ``diag/d_accuracy/<disc>`` (and ``diag/d_real``, ``diag/d_fake``), ``<disc>`` = ``video``,
  ``image``: the fraction of real logits > 0 and fake logits < 0
  (``genloss.diagnostics.discriminator_stats``);
* without ``diag/d_accuracy/<disc>`` (runs logged before the diagnostics), the discriminator's
  own loss ``d/adv_<disc>`` against its value at chance (all logits 0) for the ``adv_loss`` kind:
  hinge 2, non-saturating 2 ln 2, LSGAN 1/2, relativistic ln 2 (WGAN has no chance value).

and the run's settings (``config.json``'s ``settings``, or the gallery's flat config): the term
weights (``rec_weight``, ``gdl_weight``, ``tdl_weight``, ``perceptual_weight``, ``smooth_weight``,
``flow_tv_weight``, ``adv_weight``; the four target terms and the flow's weigh 0 in an unconditional run and the perceptual term 0
with ``perceptual: none``), the adversarial schedule (``adv_start``, ``adv_ramp``; ``None``
resolved as ``TrainConfig.adversarial_warmup`` does), ``adv_loss`` and ``max_steps``.

The four checks, with the default :class:`Thresholds`:

=================  ==========================================================================
``d_chance``       a discriminator at chance: accuracy within 0.5 ± 0.05, or its loss within
                   2.5% of the chance value, after the adversarial term starts. It no longer
                   separates real from generated, so its share of the adversarial term teaches nothing.
``d_wins``         a discriminator winning outright: accuracy ≥ 0.95, or its loss ≤ 5% of the
                   chance value, after the adversarial term starts. Its verdict is saturated and
                   the generator gets little useful gradient from it.
``dominant_term``  one term takes more than 95% of the generator gradient (two or more terms
                   logged): the others barely act.
``silent_term``    a term with a non-zero weight has a near-zero gradient: less than 0.1% of the
                   generator gradient (the adversarial term is judged once its ramp is over).
=================  ==========================================================================

A check fires for a *stretch*: consecutive records where it holds, spanning at least
``max(200, 0.1 · max_steps)`` steps (300 of the reference run's 3000) and at least 3 records. Each
record's value is first the median of the 5 records of that series centred on it (within the
steps where the check applies; fewer at the ends), so one or two noisy batches neither start nor
break a stretch. Records before the
check applies (the adversarial start, a zero weight) don't count.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "CHANCE_LOSS", "DISCRIMINATORS", "TERM_WEIGHTS", "Finding", "Monitor", "Thresholds", "diagnose", "gradient_shares",
]

DISCRIMINATORS = ("video", "image")
# generator term -> the setting holding its weight
TERM_WEIGHTS = {"rec": "rec_weight", "gdl": "gdl_weight", "tdl": "tdl_weight", "perceptual": "perceptual_weight",
                "smooth": "smooth_weight", "flow_tv": "flow_tv_weight", "adv": "adv_weight"}
_TARGET_TERMS = ("rec", "gdl", "tdl", "perceptual", "flow_tv")  # weigh 0 without context frames (train/losses.py)
# A discriminator's loss when every logit is 0 (it can't tell the sets apart), per adv_loss kind.
CHANCE_LOSS = {"hinge": 2.0, "non_saturating": 2 * math.log(2), "lsgan": 0.5, "relativistic": math.log(2)}


@dataclass(frozen=True)
class Thresholds:
    """When the checks fire (see the module docstring)."""

    chance_accuracy: float = 0.05  # |accuracy - 0.5| <= this: at chance
    chance_loss: float = 0.025  # |loss - chance| <= this * chance: at chance (no accuracy logged)
    win_accuracy: float = 0.95  # accuracy >= this: the discriminator wins outright
    win_loss: float = 0.05  # loss <= this * chance: wins outright (no accuracy logged)
    dominant_share: float = 0.95  # a term's share of the generator gradient above this drowns the rest
    silent_share: float = 0.001  # a weighted term's share below this does nothing
    stretch_fraction: float = 0.1  # a stretch spans at least this fraction of max_steps...
    min_stretch_steps: int = 200  # ... and at least this many steps
    min_stretch_records: int = 3  # ... over at least this many records
    smooth_records: int = 5  # each value is the median of this many records of its series, centred on it

    def stretch_steps(self, max_steps: int) -> float:
        """The shortest stretch that fires, in steps."""
        return max(self.min_stretch_steps, self.stretch_fraction * max_steps)


@dataclass(frozen=True)
class Finding:
    """One stretch of a run where a check held."""

    check: str  # d_chance, d_wins, dominant_term or silent_term
    subject: str  # the discriminator (video, image) or the generator term
    first_step: int  # the stretch's first and last record
    last_step: int
    ongoing: bool  # it still holds at the run's last record of that series
    value: float  # the median over the stretch: accuracy, loss or share
    measure: str  # what `value` is: "accuracy", "<kind> loss" or "share"
    message: str  # one sentence for the log and the gallery

    @property
    def key(self) -> tuple[str, str, int]:
        """Stable while a stretch grows: report a finding once per key."""
        return self.check, self.subject, self.first_step

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _resolved(settings: Mapping):
    """A ``TrainConfig`` of the settings it knows (others ignored, missing ones at their defaults)."""
    from train.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in settings.items() if k in fields})
    try:
        config.adversarial_warmup()
    except TypeError as error:
        raise TypeError(f"settings: adv_start, adv_ramp and max_steps must be numbers or None: {error}") from error
    return config


def _term_weight(config, term: str, step: int) -> float | None:
    """The factor of ``term`` at ``step`` as ``train/losses.py`` sets it, or ``None`` for a term it
    doesn't know."""
    if term == "adv":
        start, ramp = config.adversarial_warmup()
        if step < start:
            return 0.0
        return config.adv_weight if ramp == 0 or step >= start + ramp else config.adv_weight * (step - start) / ramp
    if term not in TERM_WEIGHTS:
        return None
    if term in _TARGET_TERMS and config.context_frames == 0:
        return 0.0
    if term == "perceptual" and config.perceptual == "none":
        return 0.0
    return float(getattr(config, TERM_WEIGHTS[term]))


def _weighted(config, term: str, step: int) -> bool:
    """Whether ``term`` should act at ``step``: a non-zero weight, and for the adversarial term
    the end of its ramp (while ramping it is small on purpose). Unknown terms: yes, if logged."""
    if term == "adv":
        start, ramp = config.adversarial_warmup()
        return step >= start + ramp and config.adv_weight > 0
    factor = _term_weight(config, term, step)
    return factor is None or factor > 0


def _within(value: float, *, centre: float, tolerance: float) -> bool:
    return abs(value - centre) <= tolerance


def _smoothed(points: list[tuple[int, float]], window: int) -> list[tuple[int, float]]:
    """Each value replaced by the median of the ``window`` values centred on it (fewer at the ends).
    Centred, so a stretch's ends are where the raw values change, not a few records later."""
    values, half = [v for _, v in points], window // 2
    return [(s, statistics.median(values[max(0, i - half) : i + half + 1])) for i, (s, _) in enumerate(points)]


def _stretches(points: list[tuple[int, float]], holds, min_steps: float, min_records: int):
    """``(first, last, median, ongoing)`` of every run of consecutive points where ``holds(value)``."""
    out, run = [], []
    for i, (step, value) in enumerate(points + [(None, None)]):
        if step is not None and holds(value):
            run.append((step, value))
            continue
        if run and run[-1][0] - run[0][0] >= min_steps and len(run) >= min_records:
            out.append((run[0][0], run[-1][0], statistics.median(v for _, v in run), i == len(points)))
        run = []
    return out


def _span(first: int, last: int) -> str:
    return f"from step {first} to {last}"


def _discriminator_findings(records: list[dict], config, t: Thresholds) -> list[Finding]:
    start, _ = config.adversarial_warmup()
    if not config.adv_weight:
        return []  # no adversarial term: what the discriminators do doesn't reach the generator
    kind = config.adv_loss
    chance = CHANCE_LOSS.get(kind)
    min_steps = t.stretch_steps(config.max_steps)
    findings = []
    for disc in DISCRIMINATORS:
        accuracy = [(r["step"], v) for r in records
                    if r["step"] >= start and (v := _number(r.get(f"diag/d_accuracy/{disc}"))) is not None]
        if accuracy:
            points, measure = accuracy, "accuracy"
            at_chance = functools.partial(_within, centre=0.5, tolerance=t.chance_accuracy)
            wins = functools.partial(operator.le, t.win_accuracy)  # win_accuracy <= accuracy
        elif chance is not None:
            points = [(r["step"], v) for r in records
                      if r["step"] >= start and (v := _number(r.get(f"d/adv_{disc}"))) is not None]
            measure = f"{kind} loss"
            at_chance = functools.partial(_within, centre=chance, tolerance=t.chance_loss * chance)
            wins = functools.partial(operator.ge, t.win_loss * chance)  # loss <= win_loss * chance
        else:
            continue
        points = _smoothed(points, t.smooth_records)
        reference = "0.5" if measure == "accuracy" else f"{chance:.4g} at chance"
        for first, last, value, ongoing in _stretches(points, at_chance, min_steps, t.min_stretch_records):
            findings.append(Finding(
                "d_chance", disc, first, last, ongoing, value, measure,
                f"{disc} discriminator at chance {_span(first, last)} ({measure} {value:.3f}, {reference}): "
                "it no longer tells generated from real, so its share of the adversarial term teaches nothing"))
        for first, last, value, ongoing in _stretches(points, wins, min_steps, t.min_stretch_records):
            findings.append(Finding(
                "d_wins", disc, first, last, ongoing, value, measure,
                f"{disc} discriminator wins outright {_span(first, last)} ({measure} {value:.3f}, {reference}): "
                "its verdict is saturated and the generator gets little gradient from it"))
    return findings


def gradient_shares(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Each term's ``(step, share)`` of the generator gradient, from the records that log norms."""
    shares: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        norms = {key.removeprefix("diag/gradnorm/"): v for key, value in record.items()
                 if key.startswith("diag/gradnorm/") and (v := _number(value)) is not None}
        total = sum(norms.values())
        for term, norm in norms.items():
            shares.setdefault(term, []).append((record["step"], norm / total if total > 0 else 0.0))
    return shares


def _balance_findings(records: list[dict], config, t: Thresholds) -> list[Finding]:
    min_steps = t.stretch_steps(config.max_steps)
    counts: dict[int, int] = {}  # terms logged per step
    shares = gradient_shares(records)
    for points in shares.values():
        for step, _ in points:
            counts[step] = counts.get(step, 0) + 1
    findings = []
    for term, points in shares.items():
        several = _smoothed([(s, v) for s, v in points if counts[s] >= 2], t.smooth_records)
        for first, last, value, ongoing in _stretches(several, lambda v: v > t.dominant_share, min_steps,
                                                      t.min_stretch_records):
            findings.append(Finding(
                "dominant_term", term, first, last, ongoing, value, "share",
                f"{term} takes {100 * value:.1f}% of the generator gradient {_span(first, last)}: "
                "the other terms barely act"))

        active = _smoothed([(s, v) for s, v in points if _weighted(config, term, s)], t.smooth_records)
        for first, last, value, ongoing in _stretches(active, lambda v: v < t.silent_share, min_steps,
                                                      t.min_stretch_records):
            weight = _term_weight(config, term, last)
            weight_text = f" with weight {weight:g}" if weight is not None else ""
            findings.append(Finding(
                "silent_term", term, first, last, ongoing, value, "share",
                f"{term}{weight_text} has a near-zero gradient {_span(first, last)} "
                f"({100 * value:.3g}% of the generator gradient): it does nothing"))
    return findings


def diagnose(records: Iterable[Mapping], settings: Mapping, thresholds: Thresholds = Thresholds()) -> list[Finding]:
    """Every stretch of the run where one of the four checks held (see the module docstring).

    Args:
        records: ``metrics.jsonl`` records (dicts with an int ``"step"``), in logged order;
            records without the keys a check reads are ignored by it.
        settings: the run's settings: ``config.json``'s ``"settings"`` or the gallery's flat config.
        thresholds: when the checks fire.

    Returns:
        The findings, discriminators first, each stretch once, in step order per check.
    """
    records = [dict(r) for r in records if isinstance(r.get("step"), int)]
    config = _resolved(settings)
    findings = _discriminator_findings(records, config, thresholds) + _balance_findings(records, config, thresholds)
    return sorted(findings, key=lambda f: (f.check not in ("d_chance", "d_wins"), f.first_step, f.check, f.subject))


class Monitor:
    """:func:`diagnose` during training: feed each logged record, get the findings not yet reported.

    Example (on log steps)::

        monitor = Monitor(cfg.to_dict())
        for finding in monitor.add(record):
            tqdm.write(f"warning: {finding.message}")
    """

    def __init__(self, settings: Mapping, thresholds: Thresholds = Thresholds()) -> None:
        self.settings, self.thresholds = dict(settings), thresholds
        self.records: list[dict] = []
        self.reported: set[tuple[str, str, int]] = set()

    def add(self, record: Mapping) -> list[Finding]:
        """Append ``record``; return the findings whose stretch just became long enough."""
        self.records.append(dict(record))
        new = [f for f in diagnose(self.records, self.settings, self.thresholds) if f.key not in self.reported]
        self.reported.update(f.key for f in new)
        return new

"""One home per metric the trainer, ``train/eval.py`` and the gallery report: its key, label,
direction, unit and format.

The code that computes a metric writes its key (``metrics.jsonl``: ``eval/psnr``; ``train/eval.py``'s
JSON: ``psnr``, the same name without ``eval/``); everything that shows one reads it here: the
in-training evaluation's log line (:func:`train.in_training_eval.format_eval`), ``train/eval.py``'s
report, and the gallery's cards, summary table and curves. A metric added to :data:`METRICS`
appears on the gallery's cards without other edits; ``tests/test_metric_registry.py`` checks that
every key the trainer and ``train/eval.py`` write has an entry.

The detector's keys come in families, one per judge (:class:`DetectorKeys`): the default protocol's
single judge under ``eval/detect_*`` (runs before the strong protocol, and ``--protocol default``),
and the strong protocol's frame and clip judges under ``detect/frame_*`` and ``detect/clip_*``, with
the Bonferroni-corrected p-value of the two in ``detect/p_value`` (docs/detector.md). Numbers of
different protocols never share a key, so a curve or a table never mixes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CLIP_DETECTOR",
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "DETECT_P_VALUE",
    "FRAME_DETECTOR",
    "METRICS",
    "PREFIXES",
    "DetectorKeys",
    "Metric",
    "by_key",
    "detector_judges",
    "get",
]

PREFIXES = ("eval/", "detect/")  # the metrics.jsonl keys that are metrics (the others are losses and diagnostics)

_READING = {  # Metric.better -> how to read a value
    "higher": "higher is better",
    "lower": "lower is better",
    "one": "1.0 is right",
    "half": "0.5 = can't tell from real",
    "": "",
}


@dataclass(frozen=True)
class Metric:
    """How one metric is named and shown.

    Attributes:
        name: its ``metrics.jsonl`` key (``"eval/psnr"``); train/eval.py's JSON key is :attr:`key`.
        label: what reports and the gallery print (``"PSNR"``).
        better: ``"higher"``, ``"lower"``, ``"one"`` (closest to 1.0 is right), ``"half"`` (a
            detector: 0.5 = can't tell generated from real) or ``""`` (no direction: a count, a
            bound, a reference value).
        unit: printed after the value (``"dB"``, ``"px"``); ``""`` for none.
        format: the format spec of a value (``".2f"``, ``".4g"``, ``"d"``).
        versus: the name of the metric it is shown against (PSNR against copy-last-frame, the
            generated clips' warping error against the real clips'); that metric's own card and
            report line are then left out.
        paired: needs each generated clip paired with its true continuation (train/eval.py skips
            it for unpaired folders and unconditional runs).
        kind: ``"value"`` (a number), ``"set"`` (train/eval.py's FVD-like dict: value, std,
            protocol) or ``"detector"`` (a ``DetectabilityResult.as_dict()``).
        curve: drawn as a curve in the gallery's ``curves.png`` (not the end-of-run detector: one point).
    """

    name: str
    label: str
    better: str
    unit: str = ""
    format: str = ".4g"
    versus: str | None = None
    paired: bool = False
    kind: str = "value"
    curve: bool = True

    def __post_init__(self) -> None:
        if self.better not in _READING:
            raise ValueError(f"Metric {self.name!r}: `better` must be one of {sorted(_READING)}; got {self.better!r}")
        if not self.name.startswith(PREFIXES):
            raise ValueError(f"Metric {self.name!r}: the name must start with one of {PREFIXES}")

    @property
    def key(self) -> str:
        """train/eval.py's JSON key: the name without its ``eval/`` prefix."""
        return self.name.removeprefix("eval/")

    @property
    def reading(self) -> str:
        """How to read a value: ``"higher is better"``, ``"1.0 is right"``, ... (``""`` for none)."""
        return _READING[self.better]

    @property
    def hint(self) -> str:
        """The reading with the unit, for a card whose value is shown without it."""
        return ", ".join(t for t in (self.unit, self.reading) if t)

    def number(self, value: object) -> str:
        """``value`` in :attr:`format`, without the unit. Floats always read as floats (``1.0``,
        not ``1``); non-finite and non-numeric values as ``str`` does."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if self.format.endswith("d"):
            return f"{round(value):{self.format}}"
        text = f"{value:{self.format}}"
        if isinstance(value, float) and self.format.endswith("g") and not any(c in text for c in ".e"):
            text += ".0"
        return text

    def text(self, value: object) -> str:
        """``value`` with its unit (``"22.35 dB"``)."""
        return f"{self.number(value)} {self.unit}" if self.unit else self.number(value)

    def delta(self, value: float, reference: float) -> str:
        """``value - reference`` with a sign and the unit (``"+8.33 dB"``)."""
        spec = self.format if not self.format.endswith("d") else ".4g"
        text = f"{value - reference:+{spec}}"
        return f"{text} {self.unit}" if self.unit else text


@dataclass(frozen=True)
class DetectorKeys:
    """The ``metrics.jsonl`` keys of one detector judge's result (``genloss.metrics.detectability``).

    Attributes:
        judge: ``""`` (the default protocol's classifier), ``"frame"`` or ``"clip"`` (the strong
            protocol's two judges: ``result.frame``, ``result.clip``).
        label: what the gallery and reports call it (``"frame detector"``).
        accuracy: the accuracy's key; the interval's are it with ``_low`` / ``_high``.
        prefix: the other keys' common start (``<prefix>auc``, ``<prefix>n_test``...).
        sample: what one training/test sample is (``"clip"`` or ``"frame"``), for the counts' labels.
    """

    judge: str
    label: str
    accuracy: str
    prefix: str
    sample: str = "clip"

    @property
    def auc(self) -> str:
        return f"{self.prefix}auc"

    @property
    def low(self) -> str:
        return f"{self.accuracy}_low"

    @property
    def high(self) -> str:
        return f"{self.accuracy}_high"

    @property
    def n_train(self) -> str:
        return f"{self.prefix}n_train"

    @property
    def n_test(self) -> str:
        return f"{self.prefix}n_test"

    @property
    def n_test_clips(self) -> str | None:
        """Frame samples only: the held-out clips the test frames come from (the interval counts these)."""
        return f"{self.prefix}n_test_clips" if self.sample == "frame" else None

    def metrics(self) -> list[Metric]:
        """The registry entries of this judge's keys."""
        what = f"{self.sample}s"
        out = [Metric(self.accuracy, f"{self.label} accuracy", "half", format=".3f", curve=False),
               Metric(self.auc, f"{self.label} AUC", "half", format=".3f", curve=False),
               Metric(self.low, f"{self.label} accuracy, 95% interval low", "", format=".3f", curve=False),
               Metric(self.high, f"{self.label} accuracy, 95% interval high", "", format=".3f", curve=False),
               Metric(self.n_train, f"{self.label} training {what}", "", format="d", curve=False),
               Metric(self.n_test, f"{self.label} test {what}", "", format="d", curve=False)]
        if self.n_test_clips:
            out.append(Metric(self.n_test_clips, f"{self.label} test clips", "", format="d", curve=False))
        return out


DEFAULT_DETECTOR = DetectorKeys("", "detector", "eval/detect_acc", "eval/detect_")
FRAME_DETECTOR = DetectorKeys("frame", "frame detector", "detect/frame_accuracy", "detect/frame_", sample="frame")
CLIP_DETECTOR = DetectorKeys("clip", "clip detector", "detect/clip_accuracy", "detect/clip_")
DETECTORS = (DEFAULT_DETECTOR, FRAME_DETECTOR, CLIP_DETECTOR)
# Either judge better than chance: Bonferroni over the two, min(1, 2 min(p_frame, p_clip)).
DETECT_P_VALUE = Metric("detect/p_value", "detector p-value", "", format=".3g", curve=False)

METRICS: tuple[Metric, ...] = (  # in the order the gallery's cards and the reports show them
    Metric("eval/psnr", "PSNR", "higher", unit="dB", format=".2f", versus="eval/psnr_baseline", paired=True),
    Metric("eval/psnr_baseline", "copy-last-frame", "higher", unit="dB", format=".2f", paired=True),
    # the detector: train/eval.py's result (a DetectabilityResult.as_dict()), the trainer's
    # end-of-run keys (train/in_training_eval.py: detector_logs)
    Metric("eval/detector", "detector", "half", format=".3f", kind="detector", curve=False),
    *(metric for keys in DETECTORS for metric in keys.metrics()),
    DETECT_P_VALUE,
    Metric("eval/ssim", "SSIM", "higher", paired=True),
    Metric("eval/lpips", "LPIPS", "lower", paired=True),
    Metric("eval/tlp", "tLP", "lower", paired=True),
    Metric("eval/tof", "tOF", "lower", unit="px", paired=True),
    Metric("eval/warping_error", "warping error", "lower", versus="eval/warping_error_real"),
    Metric("eval/warping_error_real", "real clips", ""),
    Metric("eval/motion", "motion", "one"),
    # train/eval.py --checkpoint with context: the generator's output taken apart (Generator.parts)
    Metric("eval/psnr_warp_only", "PSNR, warp alone", "higher", unit="dB", format=".2f",
           versus="eval/psnr_baseline", paired=True, curve=False),
    Metric("eval/psnr_no_flow", "PSNR, flow zeroed", "higher", unit="dB", format=".2f",
           versus="eval/psnr_baseline", paired=True, curve=False),
    # train/eval.py's set metrics (dicts: value, std, protocol)
    Metric("eval/fvd", "FVD", "lower", kind="set"),
    Metric("eval/kvd", "KVD", "lower", kind="set"),
    Metric("eval/fid", "FID", "lower", kind="set"),
    Metric("eval/kid", "KID", "lower", kind="set"),
)

if len({metric.name for metric in METRICS}) != len(METRICS):
    raise ValueError("metric_registry: two METRICS entries share a name")


def get(name: str) -> Metric | None:
    """The entry of a ``metrics.jsonl`` key (``"eval/psnr"``), or ``None`` if it has none. (A
    search, not a dict built at import: an entry added to :data:`METRICS` is found at once.)"""
    return next((metric for metric in METRICS if metric.name == name), None)


def by_key(key: str) -> Metric | None:
    """The entry of a train/eval.py JSON key (``"psnr"``), or ``None`` if it has none."""
    return get(f"eval/{key}")


def detector_judges(detector: dict) -> list[tuple[DetectorKeys, dict]]:
    """``[(keys, judge's result dict)]`` of a ``DetectabilityResult.as_dict()``: the strong
    protocol's frame and clip judges, side by side, else the one judge."""
    if isinstance(detector.get("frame"), dict) and isinstance(detector.get("clip"), dict):
        return [(FRAME_DETECTOR, detector["frame"]), (CLIP_DETECTOR, detector["clip"])]
    return [(DEFAULT_DETECTOR, detector)]

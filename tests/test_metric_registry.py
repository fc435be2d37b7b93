"""train/metric_registry.py: every metric key the trainer and train/eval.py write has an entry,
the reports and the gallery print the entries' labels, and a new entry reaches the gallery's
cards, the trainer's log line and eval.py's report without other edits."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

import genloss.metrics as gm
from test_distribution import I3DStandIn, InceptionStandIn, _save_script
from train import eval as eval_cli
from train import metric_registry as registry
from train.data import MovingShapes
from train.gallery import update_gallery
from train.in_training_eval import detector_logs, evaluate, format_eval
from trainer_utils import StubAccelerator


def l1_distance(x: torch.Tensor, y: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """An LPIPS-like callable (per image pair), so LPIPS and tLP are computed without weights."""
    return (x - y).abs().mean(dim=(1, 2, 3))


class Shift(torch.nn.Module):
    """A stand-in generator: the last context frame, rolled a pixel a frame."""

    def forward(self, context: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([context[:, :, -1].roll(t + 1, dims=-1) for t in range(3)], dim=2)


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    """6 held-out moving-shapes clips of 5 frames at 32x32 (K = 2 below)."""
    return torch.stack([MovingShapes(6, 5, 32, split="heldout")[i] for i in range(6)])


def fake_of(clips: torch.Tensor) -> torch.Tensor:
    return torch.cat([clips[:, :, :2], Shift()(clips[:, :, :2], None)], dim=2)


def trainer_keys(clips: torch.Tensor) -> set[str]:
    """Every key the trainer writes to metrics.jsonl from its evaluation: evaluate() with LPIPS
    (the most keys), and the end-of-run detector's values under both protocols (20 steps: only the
    keys matter here)."""
    values = evaluate(StubAccelerator(), Shift(), clips, torch.zeros(len(clips), 1), 2, l1_distance)
    fake = fake_of(clips)
    keys = set(values)
    for protocol, k in (("default", 0), ("strong", 2)):
        result = gm.detectability(clips, fake, steps=20, protocol=protocol, context_frames=k)
        keys |= set(detector_logs(result))
    return keys


def test_every_key_the_trainer_writes_has_an_entry(clips):
    keys = trainer_keys(clips)
    assert {"eval/psnr", "eval/psnr_baseline", "eval/lpips", "eval/tlp", "eval/motion", "eval/detect_acc",
            "detect/frame_accuracy", "detect/clip_accuracy", "detect/p_value"} <= keys
    assert all(key.startswith(registry.PREFIXES) for key in keys)
    assert [key for key in sorted(keys) if registry.get(key) is None] == []


def test_every_metric_eval_py_writes_has_an_entry(clips, tmp_path):
    """clip_metrics with LPIPS and both extractors (stand-ins): every key of the JSON's ``metrics``
    and of its ``skipped`` is a registry key, and the kinds match the values' shapes."""
    extractors = {"fvd": gm.FeatureExtractor(str(_save_script(I3DStandIn(), tmp_path / "i3d.pt")), video=True),
                  "fid": gm.FeatureExtractor(str(_save_script(InceptionStandIn(), tmp_path / "inc.pt")), video=False)}
    with pytest.warns(UserWarning):  # 6 clips: KID's subsets are small
        metrics, skipped = eval_cli.clip_metrics(clips, fake_of(clips), 2, paired=True, lpips=l1_distance,
                                                 extractors=extractors, protocol="default")
    assert skipped == {}
    assert sorted(metrics) == ["detector", "fid", "fvd", "kid", "kvd", "lpips", "motion", "psnr", "psnr_baseline",
                               "ssim", "tlp", "tof", "warping_error", "warping_error_real"]
    for key, value in metrics.items():
        metric = registry.by_key(key)
        assert metric is not None, key
        assert metric.kind == ("value" if isinstance(value, float) else "detector" if key == "detector" else "set"), key
    _, unpaired = eval_cli.clip_metrics(clips, fake_of(clips), 2, paired=False, protocol="default")
    # The generator taken apart is not a clip metric: eval.py --checkpoint adds it (tests/test_eval.py).
    assert set(eval_cli._ABLATIONS) <= {m.key for m in registry.METRICS if m.paired}
    assert sorted(unpaired) == sorted(m.key for m in registry.METRICS
                                      if m.paired and m.key != "psnr_baseline" and m.key not in eval_cli._ABLATIONS)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data):
        self.text.append(data)


def page_text(index: Path) -> str:
    parser = _Text()
    parser.feed(index.read_text(encoding="utf-8"))
    return " ".join("".join(parser.text).split())


def test_gallery_prints_the_registry_labels(clips, tmp_path):
    """A run whose metrics.jsonl holds every key the trainer writes and whose eval-<step>.json holds
    every metric eval.py writes: the card shows each entry's label (a detector judge's keys on one
    card, under its accuracy's label; a reference value beside its metric), and the summary table's
    heads are the registry's."""
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    values = dict.fromkeys(trainer_keys(clips), 0.5)
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 10, **values}) + "\n")
    detector = gm.detectability(clips, fake_of(clips), steps=5, protocol="strong", context_frames=2).as_dict()
    file_metrics = {m.key: 0.25 for m in registry.METRICS if m.kind == "value" and m.name.startswith("eval/")}
    file_metrics["detector"] = detector
    file_metrics |= {m.key: {"value": 1.5, "std": None, "protocol": {"num_real": 6, "num_fake": 6, "deviations": []}}
                     for m in registry.METRICS if m.kind == "set"}
    (run_dir / "eval-10.json").write_text(json.dumps({"step": 10, "clips": {}, "metrics": file_metrics}))
    text = page_text(update_gallery(tmp_path / "samples", "r", {}, run_dir / "metrics.jsonl"))
    trainer_card, file_card = text.split("train/eval.py at step 10")
    judged = {m.name for keys in registry.DETECTORS for m in keys.metrics()} - {k.accuracy for k in registry.DETECTORS}
    for metric in registry.METRICS:
        if metric.name in judged or metric.kind == "detector":
            continue
        where = [card for card, shown in ((trainer_card, values), (file_card, {f"eval/{k}" for k in file_metrics}))
                 if metric.name in shown]
        assert where, metric.name
        for card in where:
            assert metric.label in card, (metric.name, metric.label)
    for keys in (registry.FRAME_DETECTOR, registry.CLIP_DETECTOR):  # eval.py's strong result: both judges
        assert f"{keys.label} accuracy" in file_card
    psnr, motion = registry.get("eval/psnr"), registry.get("eval/motion")
    assert f"{psnr.label} vs copy-last-frame" in text and f"{motion.label} ({motion.reading})" in text
    assert "detector (0.5 = can't tell from real)" in text


def test_a_new_entry_shows_on_the_cards_and_in_the_reports(clips, tmp_path, monkeypatch):
    """An entry added to METRICS, and nothing else: the trainer's card and eval.py's block show its
    label, value and reading hint, the log line and eval.py's report its label and unit."""
    sharpness = registry.Metric("eval/sharpness", "edge sharpness", "higher", unit="px", format=".3f")
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 4, "eval/motion": 0.9, "eval/sharpness": 1.23456}))
    (run_dir / "eval-4.json").write_text(json.dumps({"step": 4, "metrics": {"motion": 0.8, "sharpness": 2.5}}))

    def cards() -> tuple[str, str]:
        text = page_text(update_gallery(tmp_path / "samples", "r", {}, run_dir / "metrics.jsonl"))
        return tuple(text.split("train/eval.py at step 4"))

    trainer_card, file_card = cards()  # unregistered: shown as logged, under the bare key, without a hint
    assert "sharpness1.235" in trainer_card and "sharpness2.5" in file_card and "edge sharpness" not in trainer_card
    monkeypatch.setattr(registry, "METRICS", (*registry.METRICS, sharpness))
    trainer_card, file_card = cards()
    assert "edge sharpness1.235px, higher is better" in trainer_card
    assert "edge sharpness2.500px, higher is better" in file_card
    assert format_eval({"eval/motion": 0.9, "eval/sharpness": 1.23456}) == (
        "motion 0.9 (1.0 is right), edge sharpness 1.235 px")
    report = eval_cli.summary_lines({"kind": "folders", "real": "a", "fake": "b", "paired": True, "skipped": {},
                                     "clips": {"count": 2, "count_fake": 2, "frames": 4, "size": 8, "context_frames": 1},
                                     "metrics": {"motion": 0.8, "sharpness": 2.5}})
    assert report[1:] == ["  motion          0.8   (1.0 is right)", "  edge sharpness  2.500 px"]


@pytest.mark.parametrize("name,value,text", [
    ("eval/psnr", 22.136, "22.14 dB"),
    ("eval/motion", 1.0, "1.0"),  # a float always reads as one
    ("eval/motion", 0.95812, "0.9581"),
    ("eval/tof", 0.66320, "0.6632 px"),
    ("eval/detect_acc", 0.49609375, "0.496"),
    ("eval/detect_n_test", 512, "512"),
    ("eval/ssim", math.nan, "nan"),
    ("eval/ssim", None, "None"),
])
def test_metric_text(name, value, text):
    assert registry.get(name).text(value) == text


def test_metric_delta_hint_and_bad_entries():
    psnr = registry.get("eval/psnr")
    assert psnr.delta(22.35, 14.02) == "+8.33 dB" and psnr.delta(13.0, 14.02) == "-1.02 dB"
    assert psnr.hint == "dB, higher is better" and registry.get("eval/motion").hint == "1.0 is right"
    assert registry.by_key("psnr") is psnr and registry.get("eval/nothing") is None
    with pytest.raises(ValueError, match="`better` must be one of"):
        registry.Metric("eval/x", "x", "up")
    with pytest.raises(ValueError, match="must start with one of"):
        registry.Metric("psnr", "PSNR", "higher")

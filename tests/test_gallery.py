"""Tests of train/gallery.py: clip files, run.json, the page, and the page in a real browser.

The browser test drives Debian's headless Chromium with Playwright (``executable_path``: no browser
download, no network); it skips when either is missing (``.ci/run`` installs chromium, the dev
extra installs playwright). Set ``GENLOSS_GALLERY_SCREENSHOT=path.png`` to keep its screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from train.clips import BACKGROUND, CONTEXT, GENERATED, TRUTH, atomic_write
from train.clips import write_clips
from train.gallery import _dataset, read_metrics, update_gallery

ROOT = Path(__file__).resolve().parents[1]

ODD_NAME = 'odd <name> & "co"'  # HTML-hostile, but a valid folder name


# --------------------------------------------------------------------------------------------
# helpers


def moving_squares(n: int, t: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``(n, 3, t, size, size)`` clips in [-1, 1]: one flat-coloured 8x8 square per clip moving
    diagonally on a dark background. The square colours are returned by ``square_colours``."""
    colours = square_colours(n, seed)
    video = torch.full((n, 3, t, size, size), -0.9)
    for i in range(n):
        for f in range(t):
            y, x = 4 + f, 4 + 2 * f
            video[i, :, f, y : y + 8, x : x + 8] = colours[i][:, None, None]
    return video


def square_colours(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=generator) * 1.6 - 0.8


def to_rgb(values: torch.Tensor) -> np.ndarray:
    return ((values + 1) * 127.5).round().numpy()


def config_for(run_name: str, created: str, context_frames: int, max_steps: int) -> dict:
    return {
        "run_name": run_name,
        "created": created,
        "max_steps": max_steps,
        "adv_start": 100,
        "adv_ramp": 50,
        "batch_size": 4,
        "frames": 6,
        "context_frames": context_frames,
        "size": 32,
        "dataset": "moving-shapes",
        "perceptual": "feature-matching",
        "world_size": 1,
        "adv_loss": "hinge",
        "l1_weight": 1.0,
        "perceptual_weight": 0.5,
        "adv_weight": 0.05,
        "tdiff_weight": 0.0,
        "r1_gamma": 1.0,
        "r1_interval": 4,
        "mixed_precision": "no",
        "seed": 0,
    }


DIAGNOSTICS = {  # run-a's diag/* records: the video discriminator at chance, smooth silent
    "diag/gradnorm/rec": 1.0, "diag/gradnorm/gdl": 0.3, "diag/gradnorm/adv": 0.2, "diag/gradnorm/smooth": 1e-5,
    "diag/d_accuracy/video": 0.5, "diag/d_accuracy/image": 0.8, "diag/d_real/video": 0.1, "diag/d_fake/video": -0.1,
    "diag/d_real/image": 0.6, "diag/d_fake/image": -0.7,
}
DETECTOR = {"eval/detect_acc": 0.55, "eval/detect_auc": 0.6, "eval/detect_acc_low": 0.4, "eval/detect_acc_high": 0.7,
            "eval/detect_n_train": 32, "eval/detect_n_test": 32}
EVAL_FILE = {  # what train/eval.py writes (the parts the card reads)
    "kind": "checkpoint", "step": 400,
    "clips": {"source": "held-out split of the moving-shapes dataset (seed 0)", "count": 512},
    "metrics": {"psnr": 23.3, "psnr_baseline": 13.84, "ssim": 0.9, "tof": 0.31, "warping_error": 0.012,
                "warping_error_real": 0.009, "motion": 0.85,
                "detector": {"accuracy": 0.65, "auc": 0.7, "interval": [0.62, 0.68], "p_value": 1e-9, "n_train": 512,
                             "n_test": 512},
                "fvd": {"value": 123.4, "std": None, "protocol": {"num_real": 512, "num_fake": 512,
                                                                  "deviations": ["400 real samples"]}}},
}


def write_metrics(path: Path, last_step: int, *, partial: bool, diagnostics: bool = False) -> None:
    lines = []
    for step in range(0, last_step + 1, 10):
        record = {"step": step, "g/adv": 1.0 / (1 + step), "g/l1": 0.5 - step / 1000, "d/hinge": 1.9}
        if diagnostics:
            record.update(DIAGNOSTICS)
        if step % 20 == 0:
            record.update({"eval/psnr": 20.0 + step / 100, "eval/psnr_baseline": 21.0, "eval/motion": 0.9})
        lines.append(json.dumps(record))
    if diagnostics:  # the trainer's end-of-run detector: its own record at the last step
        lines.append(json.dumps({"step": last_step, **DETECTOR}))
    text = "\n".join(lines) + "\n"
    if partial:  # a run killed (or read) in the middle of writing a line
        text += '{"step": 999, "g/ad'
    path.write_text(text)


def build_gallery(root: Path) -> Path:
    """Two runs: a finished continuation run with diagnostics, a detector record and two
    eval.py results, and a newer unconditional run (K=0) with an HTML-hostile name whose metrics
    file ends mid-line. Returns the samples dir."""
    samples = root / "samples"
    truth = moving_squares(3, 6)
    runs = (
        ("run-a", "2026-01-01T10:00:00+00:00", 2, [0, 200, 400], 400, False),
        (ODD_NAME, "2026-01-02T10:00:00+00:00", 0, [0, 20], 100, True),
    )
    for name, created, k, steps, max_steps, partial in runs:
        for step in steps:
            write_clips(samples / name, step, truth[:, :, :k], truth[:, :, k:].flip(-1), truth)
        run_dir = root / "runs" / name
        run_dir.mkdir(parents=True)
        write_metrics(run_dir / "metrics.jsonl", max(steps), partial=partial, diagnostics=k > 0)
        if k > 0:
            (run_dir / "eval-200.json").write_text(json.dumps({**EVAL_FILE, "step": 200}))
            (run_dir / "eval-400.json").write_text(json.dumps(EVAL_FILE))
        update_gallery(samples, name, config_for(name, created, k, max_steps), run_dir / "metrics.jsonl")
    return samples


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    return build_gallery(tmp_path_factory.mktemp("gallery"))


class _Links(HTMLParser):
    """Every ``src``/``href`` and ``id`` of a page, and its visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href"):
                self.links.append(value)
            if key == "id":
                self.ids.add(value)

    def handle_data(self, data):
        self.text.append(data)


def parse(index: Path) -> _Links:
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


# --------------------------------------------------------------------------------------------
# clips


class TestWriteClips:
    def test_files_frame_counts_and_grid_size(self, tmp_path):
        truth = moving_squares(3, 6)
        paths = write_clips(tmp_path / "run", 7, truth[:, :, :2], truth[:, :, 2:], truth)
        assert paths == {
            "gif": tmp_path / "run" / "step-000007.gif",
            "mp4": tmp_path / "run" / "step-000007.mp4",
            "strip": tmp_path / "run" / "strip-000007.png",
        }
        gif = iio.imread(paths["gif"], index=None)
        mp4 = iio.imread(paths["mp4"], plugin="FFMPEG")
        # 3 tiles of 32*4 px + 2*3 px border, 6 px gaps, 22 px label gutter, 8 px margins,
        # padded to multiples of 16: width 22+16+3*134+2*6 = 452 -> 464; height 24+8+2*134+3+12 -> 320.
        assert gif.shape == (6, 320, 464, 3)
        assert mp4.shape == (6, 320, 464, 3)
        assert Image.open(paths["gif"]).info["loop"] == 0
        meta = iio.immeta(paths["mp4"], plugin="FFMPEG")  # what Chromium, Firefox and Safari all play
        assert (meta["codec"], meta["pix_fmt"].split("(")[0], meta["fps"]) == ("h264", "yuv420p", 8.0)
        assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]

    def test_tiles_hold_the_frames_and_context_is_marked(self, tmp_path):
        truth = moving_squares(2, 5)
        generated = -truth[:, :, 2:]  # inverted, so the two rows differ everywhere
        paths = write_clips(tmp_path, 0, truth[:, :, :2], generated, truth)
        gif = iio.imread(paths["gif"], index=None).astype(float)
        mp4 = iio.imread(paths["mp4"], plugin="FFMPEG").astype(float)
        model = torch.cat([truth[:, :, :2], generated], dim=2)
        for s in range(2):
            x0, y0 = 22 + 8 + s * 140, 24  # top-left corner of sample s, model row (border incl.)
            for t in range(5):
                border = CONTEXT if t < 2 else GENERATED
                np.testing.assert_allclose(gif[t, y0, x0], border, atol=6)
                np.testing.assert_allclose(gif[t, y0 + 137, x0], TRUTH, atol=6)  # truth row border
                # the middle 2x2 pixels of the square (4x upscaled) and a background pixel,
                # inside the 3 px border; the MP4 is lossy (yuv420), so it gets a looser tolerance
                for y, x in ((7 + t, 7 + 2 * t), (28, 1)):
                    inside = (slice(y0 + 3 + 4 * y, y0 + 3 + 4 * y + 8), slice(x0 + 3 + 4 * x, x0 + 3 + 4 * x + 8))
                    want = to_rgb(model[s, :, t, y : y + 2, x : x + 2].mean((1, 2)))
                    np.testing.assert_allclose(gif[t][inside].mean((0, 1)), want, atol=6)
                    np.testing.assert_allclose(mp4[t][inside].mean((0, 1)), want, atol=12)
                    below = (slice(inside[0].start + 137, inside[0].stop + 137), inside[1])
                    want = to_rgb(truth[s, :, t, y : y + 2, x : x + 2].mean((1, 2)))
                    np.testing.assert_allclose(gif[t][below].mean((0, 1)), want, atol=6)

    def test_unconditional_k0(self, tmp_path):
        truth = moving_squares(2, 4)
        paths = write_clips(tmp_path, 3, truth[:, :, :0], truth, truth)
        gif = iio.imread(paths["gif"], index=None)
        assert gif.shape[0] == 4
        for t in range(4):
            np.testing.assert_allclose(gif[t, 24, 30], GENERATED, atol=6)  # nothing marked as context
        assert iio.imread(paths["mp4"], plugin="FFMPEG").shape[0] == 4

    def test_strip_size_and_content(self, tmp_path):
        truth = moving_squares(3, 6)
        strip = np.asarray(Image.open(write_clips(tmp_path, 1, truth[:, :, :2], truth[:, :, 2:], truth)["strip"]))
        # first 2 samples, 6 frames, 32*2 px tiles + 2*2 px border, 2 px gaps
        assert strip.shape == (2 * 68 + 3 * 2, 6 * 68 + 7 * 2, 3)
        np.testing.assert_array_equal(strip[2, 2], CONTEXT)  # frame 0 is context
        np.testing.assert_array_equal(strip[2, 2 + 2 * 70], GENERATED)  # frame 2 is generated
        np.testing.assert_array_equal(strip[0, 0], BACKGROUND)
        one = np.asarray(Image.open(write_clips(tmp_path, 2, truth[:1, :, :2], truth[:1, :, 2:], truth[:1])["strip"]))
        assert one.shape == (68 + 2 * 2, 6 * 68 + 7 * 2, 3)

    def test_pixels_round_to_the_nearest_level_and_gif_frames_last_1_over_fps(self, tmp_path):
        # (v + 1) * 127.5 = 100.6: level 101 (truncating would give 100); the PNG strip is lossless.
        v = 100.6 / 127.5 - 1
        truth = torch.full((1, 3, 3, 16, 16), v)
        paths = write_clips(tmp_path, 0, truth[:, :, :1], truth[:, :, 1:], truth, fps=5)
        strip = np.asarray(Image.open(paths["strip"]))
        np.testing.assert_array_equal(strip[2 + 2 + 8, 2 + 2 + 8], [101, 101, 101])  # inside frame 0's tile
        # Pillow takes milliseconds (the GIF stores hundredths): 1000 / 5 = 200 ms per frame.
        gif = Image.open(paths["gif"])
        assert [gif.seek(t) or gif.info["duration"] for t in range(3)] == [200, 200, 200]

    def test_big_frames_are_not_upscaled_and_stay_even(self, tmp_path):
        truth = torch.zeros(1, 3, 2, 130, 130)
        gif = iio.imread(write_clips(tmp_path, 0, truth[:, :, :1], truth[:, :, 1:], truth)["gif"], index=None)
        assert gif.shape[1] % 16 == 0 and gif.shape[2] % 16 == 0
        assert 22 + 16 + 136 <= gif.shape[2] < 22 + 16 + 136 + 16

    def test_many_samples_wrap_into_bands(self, tmp_path):
        truth = moving_squares(10, 3)
        gif = iio.imread(write_clips(tmp_path, 0, truth[:, :, :1], truth[:, :, 1:], truth)["gif"], index=None)
        # 8 columns: 22+16+8*134+7*6 = 1152; 2 bands of 2*134+3+12 px: 24+8+2*283 = 598 -> 608
        assert gif.shape[1:3] == (608, 1152)

    def test_bad_inputs_raise_named_errors(self, tmp_path):
        truth = moving_squares(2, 4)
        with pytest.raises(ValueError, match="`generated` must have shape"):
            write_clips(tmp_path, 0, truth[:, :, :2], truth[:, :, :1], truth)
        with pytest.raises(ValueError, match="`context` must have shape"):
            write_clips(tmp_path, 0, truth[:1, :, :2], truth[:, :, 2:], truth)
        with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
            write_clips(tmp_path, 0, truth[:, :1, :2], truth[:, :1, 2:], truth[:, :1])
        with pytest.raises(TypeError, match="`truth` must be a floating-point"):
            write_clips(tmp_path, 0, truth[:, :, :2], truth[:, :, 2:], truth.to(torch.uint8))
        with pytest.raises(ValueError, match="`step`"):
            write_clips(tmp_path, -1, truth[:, :, :2], truth[:, :, 2:], truth)
        assert not list(tmp_path.iterdir())

    def test_non_finite_values_warn(self, tmp_path):
        truth = moving_squares(1, 3)
        generated = truth[:, :, 1:].clone()
        generated[0, 0, 0, 0, 0] = float("nan")
        with pytest.warns(RuntimeWarning, match="`generated` contains NaN"):
            write_clips(tmp_path, 0, truth[:, :, :1], generated, truth)


def test_importing_clips_leaves_the_umask_alone():
    # os.umask is the only way to read the umask, and it sets it too (process-wide, racing with
    # other threads): importing the module must not call it at all.
    code = ("import os\n"
            "def refuse(*args): raise AssertionError('os.umask called')\n"
            "os.umask = refuse\n"
            "import train.clips, train.gallery\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_published_files_get_the_umask_permissions(tmp_path):
    # Every file type the gallery writes: atomic bytes, and the clips (GIF, PNG, MP4 via ffmpeg).
    code = ("import os, sys, torch\n"
            "from pathlib import Path\n"
            "os.umask(int(sys.argv[2], 8))\n"
            "from train.clips import atomic_write, write_clips\n"
            "out = Path(sys.argv[1])\n"
            "atomic_write(out / 'a.json', b'{}')\n"
            "truth = torch.zeros(1, 3, 3, 16, 16)\n"
            "write_clips(out / 'clips', 0, truth[:, :, :1], truth[:, :, 1:], truth)\n")
    for umask, mode in (("027", 0o640), ("002", 0o664)):
        out = tmp_path / umask
        out.mkdir()
        result = subprocess.run([sys.executable, "-c", code, str(out), umask], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        files = [out / "a.json", *sorted((out / "clips").iterdir())]
        assert [f.name for f in files] == ["a.json", "step-000000.gif", "step-000000.mp4", "strip-000000.png"]
        assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(mode) for f in files}


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    with pytest.raises(TypeError):
        atomic_write(tmp_path / "x.bin", object())  # write_bytes refuses it after the temp file exists
    assert list(tmp_path.iterdir()) == []
    atomic_write(tmp_path / "x.bin", b"1")
    atomic_write(tmp_path / "x.bin", b"22")  # replaces
    assert (tmp_path / "x.bin").read_bytes() == b"22" and len(list(tmp_path.iterdir())) == 1


# --------------------------------------------------------------------------------------------
# metrics, run.json and the page


def test_read_metrics_tolerates_missing_empty_and_partial(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_metrics(path) == []
    path.write_text("")
    assert read_metrics(path) == []
    path.write_text('{"step": 1, "g/l1": 0.5}\n\n["not", "a", "record"]\n{"loss": 2}\n{"step": 2, "g/l1": 0.4}\n{"step": 3, "g')
    assert read_metrics(path) == [{"step": 1, "g/l1": 0.5}, {"step": 2, "g/l1": 0.4}]


def test_run_json(gallery):
    run = json.loads((gallery / "run-a" / "run.json").read_text())
    assert run["run_name"] == "run-a"
    assert run["started"] == "2026-01-01T10:00:00+00:00"
    assert run["config"] == config_for("run-a", "2026-01-01T10:00:00+00:00", 2, 400)
    assert run["sample_steps"] == [0, 200, 400]
    assert run["last_step"] == 400
    # The last eval step's records merged: the periodic eval and the end-of-run detector.
    assert run["latest_eval"] == {"step": 400, "eval/psnr": 24.0, "eval/psnr_baseline": 21.0, "eval/motion": 0.9,
                                  **DETECTOR}
    # The newest eval.py result, copied beside the clips so the page links it.
    assert run["eval_file"]["file"] == "eval-400.json" and run["eval_file"]["step"] == 400
    assert run["eval_file"]["metrics"]["detector"]["interval"] == [0.62, 0.68]
    assert (gallery / "run-a" / "eval-400.json").read_text() == json.dumps(EVAL_FILE)
    # The warnings of train/diagnose.py: video D at chance from the adversarial start, smooth silent.
    assert [(w["check"], w["subject"], w["first_step"], w["last_step"]) for w in run["warnings"]] == [
        ("d_chance", "video", 100, 400), ("silent_term", "smooth", 0, 400)]
    odd = json.loads((gallery / ODD_NAME / "run.json").read_text())
    assert odd["last_step"] == 20  # the partial line (step 999) is ignored
    assert odd["sample_steps"] == [0, 20]
    assert odd["eval_file"] is None and odd["warnings"] == []


def test_curves_and_diagnostics_png(gallery, tmp_path):
    curves = Image.open(gallery / "run-a" / "curves.png")
    # 3 loss panels + PSNR + motion = 5 panels in 3 columns, 2 rows of 360 x 250 px (+ title);
    # the diag/* keys and the detector are not curves here.
    assert curves.size == (1080, 550)
    # Loss balance, D accuracy, D logits, R1: 2 x 2 panels of 540 x 260 px (+ title).
    assert Image.open(gallery / "run-a" / "diagnostics.png").size == (1080, 570)
    index = update_gallery(tmp_path, "fresh", {}, tmp_path / "missing.jsonl")  # nothing logged yet
    assert Image.open(tmp_path / "fresh" / "curves.png").size[0] > 100
    assert Image.open(tmp_path / "fresh" / "diagnostics.png").size == (1080, 570)
    assert "No samples written yet" in index.read_text()


def test_index_links_are_relative_and_exist(gallery):
    page = parse(gallery / "index.html")
    files = [link for link in page.links if not link.startswith("#")]
    # GIF and MP4 twice per run (player + file link), 5 strips, 2 x 2 plots, run-a's eval file
    assert len(files) == 2 * 4 + 5 + 4 + 1
    for link in files:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), link
        assert (gallery / unquote(parts.path)).is_file(), link
    # The player and the file links show the newest sample step (run-a wrote 0, 200 and 400).
    assert [link for link in files if link.startswith("run-a/step-")] == [
        "run-a/step-000400.gif", "run-a/step-000400.mp4"] * 2
    for link in page.links:
        if link.startswith("#"):
            assert link[1:] in page.ids
    assert not [p for p in gallery.rglob(".*")]  # no temporary files left behind


def test_index_newest_first_and_settings(gallery):
    text = "".join(parse(gallery / "index.html").text)
    assert text.index(ODD_NAME) < text.index("run-a")  # created later, so listed first
    assert "continuation (2 context frames)" in text and "unconditional" in text
    assert "+3.00 dB vs copy-last-frame 21.00" in text  # run-a: eval/psnr 24.0 at step 400
    assert "eval at step 400" in text and "finished" in text
    assert "step 20 of 100 · running or stopped" in text  # the partial run
    for setting in ("feature-matching", "32×32", "l1 1.0", "perceptual 0.5", "r1_interval 4", "adv_loss hinge"):
        assert setting in text
    raw = (gallery / "index.html").read_text()
    assert '<span class="chip off">tdiff <b>0.0</b>' in raw  # a zero weight is shown as off
    assert '<span class="chip">r1_interval <b>4</b>' in raw


def test_detector_eval_file_and_warnings_on_the_card(gallery):
    text = " ".join("".join(parse(gallery / "index.html").text).split())
    # The trainer's end-of-run detector, then eval.py's result with its interval, AUC and counts.
    assert "detector accuracy0.55095% 0.400–0.700 · AUC 0.60032 test clips · 0.5 = can't tell from real" in text
    assert "train/eval.py at step 400 · 512 clips · held-out split of the moving-shapes dataset (seed 0)" in text
    assert "detector accuracy0.65095% 0.620–0.680 · AUC 0.700512 test clips" in text
    assert "FVD123.4512 real / 512 generated1 deviation(s) from the reference protocol" in text
    assert "PSNR23.30 dB+9.46 dB vs copy-last-frame 13.84" in text
    assert "warping error0.012real clips: 0.009" in text
    # The summary table's detector column and the warning badge.
    assert text.count("⚠ 2 warnings") == 2  # summary row and card header
    assert "d_chance video discriminator at chance from step 100 to 400 (accuracy 0.500, 0.5)" in text
    assert "silent_term smooth with weight 0.02 has a near-zero gradient from step 0 to 400" in text
    raw = (gallery / "index.html").read_text()
    assert '<td>0.550</td>' in raw and '<td>–</td>' in raw  # run-a's detector; the other run has none


@pytest.mark.parametrize("clips, shown", [
    ({"dataset": "data/bikes", "split": "whole"}, "frame 0.700 · clip 0.600 (on data/bikes, never trained on)"),
    ({"dataset": "data/other", "split": "heldout"}, "frame 0.700 · clip 0.600 (on data/other)"),
    ({"dataset": "data/bbb", "split": "heldout"}, "frame 0.700 · clip 0.600"),  # the run's own held-out clips
    ({}, "frame 0.700 · clip 0.600"),  # an eval file from before eval.py recorded its clips
])
def test_the_summary_names_other_clips_eval_py_judged(tmp_path, clips, shown):
    """The summary row's PSNR and motion are the trainer's, on the run's own held-out clips; a
    detector score that comes from eval.py on other clips says which."""
    run_dir = tmp_path / "runs" / "s"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 30, "eval/psnr": 22.0, "eval/psnr_baseline": 14.0}))
    judge = {"accuracy": 0.7, "interval": [0.65, 0.75], "n_train": 64, "n_test": 64}
    detector = {**judge, "protocol": "strong", "frame": judge, "clip": {**judge, "accuracy": 0.6}}
    (run_dir / "eval-30.json").write_text(json.dumps({"step": 30, "clips": clips, "metrics": {"detector": detector}}))
    index = update_gallery(tmp_path / "samples", "s", {"max_steps": 30, "dataset": "data/bbb"}, run_dir / "metrics.jsonl")
    assert f"<td>{shown}</td>" in index.read_text()


STRONG = {  # the trainer's end-of-run record with the strong protocol: frame and clip judges
    "detect/frame_accuracy": 0.823, "detect/frame_auc": 0.9, "detect/frame_accuracy_low": 0.797,
    "detect/frame_accuracy_high": 0.847, "detect/frame_n_train": 4096, "detect/frame_n_test": 4096,
    "detect/frame_n_test_clips": 1024, "detect/clip_accuracy": 0.556, "detect/clip_auc": 0.57,
    "detect/clip_accuracy_low": 0.526, "detect/clip_accuracy_high": 0.586, "detect/clip_n_train": 1024,
    "detect/clip_n_test": 1024, "detect/p_value": 1e-20,
}


def test_strong_detector_judges_side_by_side(tmp_path):
    """A run whose end-of-run detector used the strong protocol: one card per judge, the frame
    judge's before the clip judge's, with their own intervals, AUCs and counts; the summary column
    shows both. eval.py's strong result (nested judges) gives the same two cards."""
    run_dir = tmp_path / "runs" / "s"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in (
        {"step": 3000, "eval/psnr": 22.0, "eval/psnr_baseline": 14.0, "eval/motion": 0.9}, {"step": 3000, **STRONG})))
    judge = {"accuracy": 0.7, "auc": 0.75, "interval": [0.65, 0.75], "p_value": 1e-5, "n_train": 64, "n_test": 64}
    detector = {**judge, "protocol": "strong", "frame": {**judge, "accuracy": 0.7, "n_test": 128, "n_test_clips": 64},
                "clip": {**judge, "accuracy": 0.6, "interval": [0.55, 0.65]}}
    (run_dir / "eval-3000.json").write_text(json.dumps({"step": 3000, "clips": {"count": 64},
                                                        "metrics": {"detector": detector}}))
    index = update_gallery(tmp_path / "samples", "s", {"max_steps": 3000}, run_dir / "metrics.jsonl")
    text = " ".join("".join(parse(index).text).split())
    frame = ("frame detector accuracy0.82395% 0.797–0.847 · AUC 0.9004096 test frames of 1024 clips · "
             "0.5 = can't tell from real")
    clip = "clip detector accuracy0.55695% 0.526–0.586 · AUC 0.5701024 test clips · 0.5 = can't tell from real"
    trainer, eval_py = text.split("train/eval.py at step 3000")
    assert frame in trainer and clip in trainer and trainer.index(frame) < trainer.index(clip)
    assert "detector p-value1e-20" in trainer
    assert "frame detector accuracy0.70095% 0.650–0.750 · AUC 0.750128 test frames of 64 clips" in eval_py
    assert "clip detector accuracy0.60095% 0.550–0.650 · AUC 0.75064 test clips" in eval_py
    assert "<td>frame 0.823 · clip 0.556</td>" in index.read_text()
    # No curve for the one-point detector: 2 panels (PSNR with its baseline, motion) in one row.
    assert Image.open(tmp_path / "samples" / "s" / "curves.png").size == (720, 300)
    run = json.loads((tmp_path / "samples" / "s" / "run.json").read_text())
    assert run["eval_file"]["metrics"]["detector"]["clip"]["interval"] == [0.55, 0.65]


def test_unreadable_eval_file_is_skipped_with_a_warning(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "eval-5.json").write_text('{"step": 5, "metr')
    with pytest.warns(RuntimeWarning, match="skipping unreadable .*eval-5.json"):
        update_gallery(tmp_path / "samples", "a", {}, tmp_path / "run" / "metrics.jsonl")
    assert json.loads((tmp_path / "samples" / "a" / "run.json").read_text())["eval_file"] is None


def test_index_escapes_run_names(gallery):
    raw = (gallery / "index.html").read_text()
    assert ODD_NAME not in raw and "<name>" not in raw
    assert "odd &lt;name&gt; &amp; &quot;co&quot;" in raw
    assert ODD_NAME in "".join(parse(gallery / "index.html").text)


def test_start_time_without_created_is_kept_across_updates(tmp_path):
    update_gallery(tmp_path, "a", {}, tmp_path / "m.jsonl")
    run_json = tmp_path / "a" / "run.json"
    assert json.loads(run_json.read_text())["started"]  # first update: now
    run_json.write_text(json.dumps({"started": "2025-05-05T05:05:00+00:00"}))
    update_gallery(tmp_path, "a", {"max_steps": 5}, tmp_path / "m.jsonl")
    assert json.loads(run_json.read_text())["started"] == "2025-05-05T05:05:00+00:00"
    assert "2025-05-05 05:05 UTC" in (tmp_path / "index.html").read_text()


def test_loss_chips_mark_terms_that_are_off(tmp_path):
    config = {"perceptual": "none", "perceptual_weight": 0.1, "adv_start": 0, "r1_gamma": 0.0,
              "adaptive_weight": False, "rec_loss": "l1", "lr_g": 0.001}  # fmt: skip
    raw = update_gallery(tmp_path, "a", config, tmp_path / "m.jsonl").read_text()
    assert '<span class="chip off">perceptual <b>0.1</b>' in raw  # no perceptual net: weight unused
    assert '<span class="chip">adv_start <b>0</b>' in raw  # a start step of 0 is not "off"
    assert '<span class="chip off">r1_gamma <b>0.0</b>' in raw
    assert '<span class="chip off">adaptive <b>off</b>' in raw
    assert '<span class="chip">rec_loss <b>l1</b>' in raw
    assert "lr_g" not in raw.split("<details>")[0]  # not a loss setting: only in the full config


def test_page_skips_unreadable_runs_and_runs_without_run_json(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text('{"run_name": "bro')  # e.g. copied half-way
    truth = moving_squares(1, 3)
    write_clips(tmp_path / "clips-only", 0, truth[:, :, :1], truth[:, :, 1:], truth)  # killed before
    with pytest.warns(RuntimeWarning, match="skipping unreadable .*broken"):
        index = update_gallery(tmp_path, "ok", {}, tmp_path / "m.jsonl")
    sections = index.read_text().count('<section class="run"')
    assert sections == 1 and 'id="run-0-ok"' in index.read_text()


def test_update_gallery_rejects_bad_run_names(tmp_path):
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError, match="`run_name`"):
            update_gallery(tmp_path, bad, {}, tmp_path / "m.jsonl")


# --------------------------------------------------------------------------------------------
# the page in a real browser


# Flags for Debian's chromium in a container: no sandbox (no user namespaces), no GPU, nothing that
# reaches the network. Playwright adds --headless and its own pipe.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
]

# Waits (real time, up to 30 s) until every image is complete and every video has its first
# frame or an error, then reports each element's state.
MEDIA_REPORT = """
async () => {
  const deadline = Date.now() + 30000;
  const images = [...document.images], videos = [...document.querySelectorAll('video')];
  const settled = () => images.every(i => i.complete) && videos.every(v => v.readyState >= 2 || v.error);
  while (!settled() && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
  return {
    images: images.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
    videos: videos.map(v => ({src: v.getAttribute('src'), ready: v.readyState, error: v.error && v.error.code,
                              width: v.videoWidth})),
  };
}
"""


def test_page_in_headless_chromium(gallery, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2000})
            page.goto((gallery / "index.html").as_uri())
            report = page.evaluate(MEDIA_REPORT)

            # Latest GIF per run, 5 strips, and per run the curves and the diagnostics panels.
            assert len(report["images"]) == 2 + 3 + 2 + 2 + 2
            broken = [i["src"] for i in report["images"] if i["width"] == 0]
            assert not broken, f"images that did not load: {broken}"
            assert [i["width"] for i in report["images"] if i["src"].endswith("diagnostics.png")] == [1080, 1080]
            assert len(report["videos"]) == 2
            unplayable = [v for v in report["videos"] if v["ready"] < 2 or v["error"] or v["width"] != 464]
            assert not unplayable, f"videos without a first frame: {unplayable}"

            # The eval card, the warnings and the diagnostics panels are rendered and visible.
            run_a = page.locator("section.run", has_text="run-a")
            for selector, text in ((".evalfile h4", "train/eval.py at step 400"),
                                   (".evalfile .card.detector", "0.650"), (".pill.warn", "2 warnings"),
                                   ("ul.warnings li", "at chance")):
                assert run_a.locator(selector).first.is_visible(), selector
                assert text in run_a.locator(selector).first.inner_text(), selector
            panels = run_a.locator("img[alt='loss balance and discriminator health']")
            assert panels.is_visible() and panels.bounding_box()["width"] >= 1000

            screenshot = Path(os.environ.get("GENLOSS_GALLERY_SCREENSHOT", tmp_path / "gallery.png"))
            page.screenshot(path=str(screenshot), full_page=True)
            assert Image.open(screenshot).size[0] >= 1200

            # The GIF/MP4 switch is pure CSS: clicking "MP4" hides the GIF and shows the video.
            visibility = "() => [...document.querySelectorAll('.panes > *')].map(e => getComputedStyle(e).visibility)"
            assert page.evaluate(visibility) == ["visible", "hidden"] * 2
            page.locator(".tab-mp4 + label").first.click()
            assert page.evaluate(visibility) == ["hidden", "visible", "visible", "hidden"]

            # The check itself can fail: a broken image and video are reported as such.
            page.evaluate("() => document.body.insertAdjacentHTML('beforeend', "
                          "'<img src=\"gone.png\"><video src=\"gone.mp4\"></video>')")
            report = page.evaluate(MEDIA_REPORT)
            assert report["images"][-1] == {"src": "gone.png", "width": 0}
            assert report["videos"][-1]["error"] is not None
        finally:
            browser.close()


def test_dataset_setting_names_the_reading_options():
    """A real-footage run's card says how the videos were read: shot cuts and frame stride change
    what the model sees, so two runs on one folder must not look alike when they differ there."""
    assert _dataset({}) == _dataset({"dataset": None, "shot_cut": 0.0}) == "moving shapes (built-in)"
    assert _dataset({"dataset": "data/real", "shot_cut": 0.0, "frame_stride": 1}) == "data/real"
    assert _dataset({"dataset": "data/real", "shot_cut": 0.15, "frame_stride": 2}) == (
        "data/real · split into shots at 0.15 · frame stride 2")


# --------------------------------------------------------------------------------------------
# publishing into a committed gallery (python train/gallery.py)


def gallery_script(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train/gallery.py", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def page_without_time(index: Path) -> str:
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<time>", index.read_text(encoding="utf-8"))


def test_publish_copies_runs_in_and_rewrites_the_page(gallery, tmp_path):
    out = tmp_path / "published"
    done = gallery_script("--publish", str(gallery / "run-a"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"published {gallery / 'run-a'} -> {out / 'run-a'}",
                                        f"wrote {out / 'index.html'} (1 runs)"]
    assert sorted(p.name for p in (out / "run-a").iterdir()) == sorted(p.name for p in (gallery / "run-a").iterdir())
    assert (out / "run-a" / "run.json").read_bytes() == (gallery / "run-a" / "run.json").read_bytes()
    (out / "run-a" / "stale.png").write_bytes(b"x")  # an earlier copy's file: replaced with the run's folder
    assert gallery_script("--publish", str(gallery / "run-a"), str(gallery / ODD_NAME), "--out", str(out)).returncode == 0
    assert not (out / "run-a" / "stale.png").exists()
    page = parse(out / "index.html")
    files = [link for link in page.links if not link.startswith("#")]
    assert files and all((out / unquote(urlsplit(link).path)).is_file() for link in files)
    assert page_without_time(out / "index.html") == page_without_time(gallery / "index.html")  # both runs, as built
    assert not [p for p in out.rglob(".*")]  # no staging folder left


def test_publish_refuses_a_folder_that_is_not_a_runs(gallery, tmp_path):
    (tmp_path / "loose").mkdir()
    failed = gallery_script("--publish", str(gallery / "run-a"), str(tmp_path / "loose"), "--out", str(tmp_path / "o"))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (
        f"error: --publish {str(tmp_path / 'loose')!r} is not a run's sample folder (no run.json in it)")
    assert not (tmp_path / "o").exists()  # checked before anything is copied


def test_the_committed_gallery_rebuilds_to_the_same_page(tmp_path):
    """``python train/gallery.py --out samples`` (no --publish) rewrites only the page: the committed
    one is what the current code writes from the committed run folders, and every link resolves."""
    committed = ROOT / "samples"
    page = parse(committed / "index.html")
    files = [link for link in page.links if not link.startswith("#")]
    assert len(files) > 20 and all((committed / unquote(urlsplit(link).path)).is_file() for link in files)
    copy = tmp_path / "samples"
    shutil.copytree(committed, copy)
    done = gallery_script("--out", str(copy))
    assert done.returncode == 0, done.stderr
    assert page_without_time(copy / "index.html") == page_without_time(committed / "index.html")
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == sorted(p.relative_to(committed)
                                                                         for p in committed.rglob("*"))

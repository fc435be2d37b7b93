"""Tests of train/eval.py and the detector the trainer records at the end of a run.

Every number is checked against a direct call of the genloss.metrics function on the clips
eval.py saved (``--save-clips``), and those clips against an independent rebuild: the held-out
clips from ``MovingShapes`` and the continuation from the checkpoint's EMA weights with the noise
rule spelled out here. The run is the shared 3-step tiny run (conftest ``tiny_run``), copied so
that eval.py's JSON and gallery refresh don't touch the shared folders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torchvision

import genloss as gl
import genloss.metrics as gm
from test_distribution import I3DStandIn, InceptionStandIn, _save_script
from train import eval as eval_cli
from train import metric_registry as registry
from train.build import build_datasets, build_generator
from train.config import load_config
from train.data import MovingShapes, VideoFolder, scan_folder
from train.safety import RunError
from train.in_training_eval import evaluate, lpips_tlp
from trainer_utils import ROOT, StubAccelerator, read_metrics

NUM = 4  # = the tiny run's --detect-clips, so eval.py's detector must equal the trainer's


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory) -> Path:
    """A copy of the tiny run's folders: ``(root, run folder)``."""
    tmp, _, _ = tiny_run
    root = tmp_path_factory.mktemp("eval")
    shutil.copytree(tmp / "runs", root / "runs")
    shutil.copytree(tmp / "samples", root / "samples")
    return root, root / "runs" / "tiny"


@pytest.fixture(scope="module")
def evaluated(run):
    """eval.py on the run folder (its newest checkpoint, 3), with the default (strong) detector
    protocol: ``(result, printed, saved clips)``. The other eval.py calls here pass ``--protocol
    default`` (150 steps instead of 2 x 1200) unless the detector is what they test."""
    root, run_dir = run
    clips = root / "clips.pt"
    args = eval_cli.parse_args(["--checkpoint", str(run_dir), "--num", str(NUM), "--save-clips", str(clips),
                                "--samples-dir", str(root / "samples")])
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = eval_cli.main(args)
    return result, printed.getvalue(), torch.load(clips)


def rebuild(run_dir: Path, count: int, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out clips and their continuations with the noise of ``seed`` (default: the run's),
    rebuilt without train/in_training_eval.py."""
    config, _ = load_config(run_dir / "config.json")
    heldout = MovingShapes(count, config.frames, config.size, seed=config.seed, split="heldout",
                           num_shapes=config.num_shapes)
    real = torch.stack([heldout[i] for i in range(count)])
    generator = build_generator(config)
    weights = run_dir / "checkpoints" / "checkpoint-3" / "ema_generator.pt"
    generator.load_state_dict(torch.load(weights, weights_only=True))
    seed = config.seed if seed is None else seed
    noise = torch.randn(count, config.z_dim, generator=torch.Generator().manual_seed(seed + 12345))
    with torch.no_grad():
        continuation = generator.eval()(real[:, :, : config.context_frames], noise).clamp(-1, 1)
    return real, torch.cat([real[:, :, : config.context_frames], continuation], dim=2)


def ablated(run_dir: Path, count: int) -> dict[str, torch.Tensor]:
    """``{"psnr_warp_only": ..., "psnr_no_flow": ...}``: the continuations of :func:`rebuild`'s
    generator with its colour head zeroed (residual output: no correction, the warp alone) and with
    its flow head zeroed (flow 0: the last frame plus the correction), through ``forward``."""
    config, _ = load_config(run_dir / "config.json")
    real, _ = rebuild(run_dir, count)
    noise = torch.randn(count, config.z_dim, generator=torch.Generator().manual_seed(config.seed + 12345))
    assert config.g_output == "residual"
    out = {}
    for key, heads in (("psnr_warp_only", slice(0, 3)), ("psnr_no_flow", slice(3, 5))):
        generator = build_generator(config)
        generator.load_state_dict(torch.load(run_dir / "checkpoints" / "checkpoint-3" / "ema_generator.pt",
                                             weights_only=True))
        with torch.no_grad():
            generator.head[1].weight[heads] = 0
            generator.head[1].bias[heads] = 0
            out[key] = generator.eval()(real[:, :, : config.context_frames], noise).clamp(-1, 1)
    return out


def fails(argv: list[str], capsys, code: int) -> str:
    """eval.py on ``argv`` exits with ``code`` after one ``error: ...`` line: returned."""
    with pytest.raises(SystemExit) as info:
        eval_cli.main(eval_cli.parse_args(argv))
    assert info.value.code == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


class TestCheckpoint:
    def test_saved_clips(self, run, evaluated):
        _, run_dir = run
        _, _, saved = evaluated
        real, generated = rebuild(run_dir, NUM)
        assert saved["real"].shape == saved["generated"].shape == (NUM, 3, 4, 16, 16)
        torch.testing.assert_close(saved["real"], real, rtol=0, atol=0)
        torch.testing.assert_close(saved["generated"], generated, rtol=0, atol=1e-6)
        assert torch.equal(saved["generated"][:, :, :2], saved["real"][:, :, :2])  # context frames are real
        assert not torch.equal(saved["generated"][:, :, 2:], saved["real"][:, :, 2:])
        assert saved["generated"].abs().max() <= 1 and int(saved["context_frames"]) == 2

    def test_values_equal_direct_metric_calls(self, run, evaluated):
        _, run_dir = run
        result, _, saved = evaluated
        real, fake = saved["real"], saved["generated"]
        m = result["metrics"]
        assert m["psnr"] == pytest.approx(gm.psnr(fake[:, :, 2:], real[:, :, 2:]).mean.item(), rel=1e-6)
        baseline = real[:, :, 1:2].expand(-1, -1, 2, -1, -1)
        assert m["psnr_baseline"] == pytest.approx(gm.psnr(baseline, real[:, :, 2:]).mean.item(), rel=1e-6)
        assert m["ssim"] == pytest.approx(gm.ssim(fake[:, :, 2:], real[:, :, 2:]).mean.item(), rel=1e-6)
        # Temporal metrics: the steps from the last context frame (1) on.
        assert m["tof"] == pytest.approx(gm.tof(fake[:, :, 1:], real[:, :, 1:]).mean.item(), rel=1e-6)
        assert m["warping_error"] == pytest.approx(gm.warping_error(fake[:, :, 1:]).mean.item(), rel=1e-6)
        assert m["warping_error_real"] == pytest.approx(gm.warping_error(real[:, :, 1:]).mean.item(), rel=1e-6)
        motion = (fake[:, :, 2:] - fake[:, :, 1:-1]).abs().mean() / (real[:, :, 2:] - real[:, :, 1:-1]).abs().mean()
        assert m["motion"] == pytest.approx(motion.item(), rel=1e-6)
        # The strong protocol: the frame judge on the 2 generated frames of each clip, the clip judge on whole clips.
        assert m["detector"] == gm.detectability(real, fake, protocol="strong", context_frames=2).as_dict()
        assert m["detector"]["frame"]["n_test"] == 2 * m["detector"]["frame"]["n_test_clips"]
        assert m["detector"]["clip"]["n_test"] + m["detector"]["clip"]["n_train"] == 2 * NUM
        # The generator taken apart: its warp with nothing painted, its output with the flow zeroed.
        # (A zeroed flow head warps by 0, which grid_sample reproduces to ~1e-5: hence 1e-3 dB.)
        for key, video in ablated(run_dir, NUM).items():
            assert m[key] == pytest.approx(gm.psnr(video, real[:, :, 2:]).mean.item(), abs=1e-3)
        values = [m["psnr"], m["psnr_warp_only"], m["psnr_no_flow"], m["psnr_baseline"]]
        assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1 :]) > 1e-3  # four different things
        # 16x16 frames are too small for every LPIPS net but VGG: skipped, and said why.
        assert set(result["skipped"]) == {"lpips", "tlp"} and "lpips" not in m

    def test_json(self, run, evaluated):
        _, run_dir = run
        result, printed, _ = evaluated
        assert json.loads((run_dir / "eval-3.json").read_text()) == result
        assert result["kind"] == "checkpoint" and result["step"] == 3 and result["run_name"] == "tiny"
        assert result["checkpoint"] == str(run_dir / "checkpoints" / "checkpoint-3")
        assert result["clips"] == {"source": "held-out split of the moving-shapes dataset (seed 0)", "dataset": None,
                                   "split": "heldout", "indices": "0..3", "count": NUM, "frames": 4,
                                   "context_frames": 2, "size": 16, "frame_stride": 1, "shot_cut": 0.0}
        assert result["noise"]["seed"] == 0 and result["noise"]["z_dim"] == 32
        assert result["protocol"]["extractors"] == {} and result["protocol"]["lpips"] is None
        assert result["versions"]["torch"] == torch.__version__ and "argv" in result["command"]
        assert result["protocol"]["detector"].startswith("genloss.metrics.detectability, protocol 'strong', seed 0")
        # A compact summary: one line per metric, labelled by the registry (a reference value on its
        # metric's line), the detector's two judges side by side.
        lines = printed.splitlines()
        assert lines[0].startswith("tiny checkpoint-3 (EMA), 4 clips: held-out split")
        labels = ["PSNR", "frame detector", "clip detector", "detector p-value", "SSIM", "tOF", "warping error", "motion",
                  "PSNR, warp alone", "PSNR, flow zeroed"]
        assert labels == [registry.by_key("psnr").label, registry.FRAME_DETECTOR.label, registry.CLIP_DETECTOR.label,
                          registry.DETECT_P_VALUE.label] + [registry.by_key(k).label for k in (
                              "ssim", "tof", "warping_error", "motion", "psnr_warp_only", "psnr_no_flow")]
        rows = [line[2:] for line in lines[1:] if line.startswith("  ") and not line.startswith("  skipped")]
        assert [row[: row.index("  ")] for row in rows] == labels
        m, detector = result["metrics"], result["metrics"]["detector"]
        assert rows[0].split()[1:5] == [f"{m['psnr']:.2f}", "dB", "copy-last-frame", f"{m['psnr_baseline']:.2f}"]
        frame, clip = detector["frame"], detector["clip"]
        assert rows[1].split()[2:4] == [f"{frame['accuracy']:.3f}", "95%"]
        assert f"{frame['n_train']} train / {frame['n_test']} test frames ({frame['n_test_clips']} test clips)" in rows[1]
        assert rows[2].split()[2:4] == [f"{clip['accuracy']:.3f}", "95%"]
        assert f"{clip['n_train']} train / {clip['n_test']} test clips (0.5 = can't tell from real)" in rows[2]
        p_text = f"{detector['p_value']:.3g}"  # a float reads as one: a p-value of 1 (both judges at chance) is "1.0"
        assert rows[3].split()[2] == (p_text if any(c in p_text for c in ".e") else p_text + ".0")
        assert rows[5].split()[1:3] == [f"{m['tof']:.4g}", "px"]
        assert rows[6].split()[3:6] == ["real", "clips", f"{m['warping_error_real']:.4g}"]
        for row, key in zip(rows[8:], ("psnr_warp_only", "psnr_no_flow")):  # each against copy-last
            delta = registry.by_key(key).delta(m[key], m["psnr_baseline"])
            assert row.endswith(f"{m[key]:.2f} dB   copy-last-frame {m['psnr_baseline']:.2f} ({delta})")
        assert any(line.strip().startswith("skipped lpips, tlp: ") for line in lines)
        assert f"wrote {run_dir / 'eval-3.json'}" in lines

    def test_the_trainer_records_the_same_detector(self, run, tmp_path):
        # The trainer's end-of-run record (same clips, noise and protocol: the trainer's is "default"
        # for now) and eval.py's with --protocol default agree.
        _, run_dir = run
        result = eval_cli.main(eval_cli.parse_args(["--checkpoint", str(run_dir), "--protocol", "default",
                                                    "--out", str(tmp_path / "e.json")]))
        assert result["protocol"]["detector"].startswith("genloss.metrics.detectability, protocol 'default'")
        record = [r for r in read_metrics(run_dir) if "eval/detect_acc" in r]
        assert len(record) == 1 and record[0]["step"] == 3
        detector = result["metrics"]["detector"]
        assert record[0] == {"step": 3, "eval/detect_acc": detector["accuracy"], "eval/detect_auc": detector["auc"],
                             "eval/detect_acc_low": detector["interval"][0],
                             "eval/detect_acc_high": detector["interval"][1],
                             "eval/detect_n_train": NUM, "eval/detect_n_test": NUM}

    def test_gallery_card_shows_it(self, run, evaluated):
        root, _ = run
        page = (root / "samples" / "index.html").read_text()
        assert "train/eval.py at step 3 · 4 clips · held-out split" in page
        # The strong protocol's judges side by side on the eval.py block (the trainer's own card
        # above it shows its default-protocol record).
        block = page[page.index('<div class="evalfile">'):]
        assert block.index("<span>frame detector accuracy</span>") < block.index("<span>clip detector accuracy</span>")
        assert (root / "samples" / "tiny" / "eval-3.json").is_file()  # linked from the card
        assert 'href="tiny/eval-3.json"' in page

    def test_dataset_folder_and_errors(self, run, tmp_path, capsys):
        _, run_dir = run
        assert fails(["--checkpoint", str(tmp_path / "nope")], capsys, 2) == (
            f"error: --checkpoint {str(tmp_path / 'nope')!r} does not exist")
        (tmp_path / "empty-run").mkdir()
        assert fails(["--checkpoint", str(tmp_path / "empty-run")], capsys, 2).endswith(
            "is neither a checkpoint-<step> folder nor a run folder with checkpoints")
        # An explicit LPIPS request that can't be met is an error, before anything is generated.
        weights = tmp_path / "squeeze.pth"
        torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), weights)
        assert fails(["--checkpoint", str(run_dir), "--lpips", "squeeze", "--lpips-weights", str(weights)],
                     capsys, 2) == ("error: --lpips-weights given, but LPIPS-squeeze needs frames of at least 17x17; "
                                    "the clips are 16x16")
        assert "i3d_torchscript.pt" in fails(["--checkpoint", str(run_dir), "--fvd-extractor",
                                              str(tmp_path / "i3d_torchscript.pt")], capsys, 2)
        # An output that can't be written: a run-time failure, after the metrics are printed.
        (tmp_path / "file").write_text("x")
        assert fails(["--checkpoint", str(run_dir), "--num", "2", "--out", str(tmp_path / "file" / "e.json")],
                     capsys, 1) == f"error: can't write the result to {tmp_path / 'file' / 'e.json'}: File exists"

    def test_seed_draws_the_noise(self, run, evaluated, tmp_path):
        """--seed s generates from fixed_noise(s): the run's seed (0) again gives the same clips, 1
        other continuations of the same real clips, and other metrics."""
        _, run_dir = run
        result, _, saved = evaluated

        def with_seed(seed: int, protocol: str):
            clips = tmp_path / f"clips-{seed}.pt"
            out = eval_cli.main(eval_cli.parse_args(["--checkpoint", str(run_dir), "--num", str(NUM), "--seed", str(seed),
                                                     "--protocol", protocol, "--save-clips", str(clips),
                                                     "--out", str(tmp_path / f"{seed}.json")]))
            return out, torch.load(clips)

        same, same_clips = with_seed(0, "strong")  # the fixture's protocol: every metric compares equal
        assert torch.equal(same_clips["generated"], saved["generated"]) and same["metrics"] == result["metrics"]
        other, other_clips = with_seed(1, "default")
        assert other["noise"]["seed"] == 1 and result["noise"]["seed"] == 0
        assert torch.equal(other_clips["real"], saved["real"])
        assert torch.equal(other_clips["generated"][:, :, :2], saved["generated"][:, :, :2])  # the context
        assert (other_clips["generated"][:, :, 2:] - saved["generated"][:, :, 2:]).abs().max() > 1e-3
        assert other["metrics"]["psnr"] != result["metrics"]["psnr"]
        _, rebuilt = rebuild(run_dir, NUM, seed=1)
        torch.testing.assert_close(other_clips["generated"], rebuilt, rtol=0, atol=1e-6)

    def test_default_clip_count_is_the_runs_detect_clips(self, run, tmp_path, monkeypatch):
        """Without --num: the run's --detect-clips (so eval.py's detector is the trainer's), else
        DEFAULT_CLIPS when the run had the detector off."""
        root, run_dir = run
        copy = tmp_path / "runs" / "tiny"
        shutil.copytree(run_dir, copy)
        data = json.loads((copy / "config.json").read_text())
        for detect_clips, expected in ((6, 6), (0, 3)):
            data["settings"]["detect_clips"] = detect_clips
            (copy / "config.json").write_text(json.dumps(data))
            monkeypatch.setattr(eval_cli, "DEFAULT_CLIPS", 3)
            result = eval_cli.main(eval_cli.parse_args(["--checkpoint", str(copy), "--lpips", "none",
                                                        "--protocol", "default", "--out", str(tmp_path / "e.json")]))
            assert result["clips"]["count"] == expected and result["metrics"]["detector"]["n_test"] + \
                result["metrics"]["detector"]["n_train"] == 2 * expected


@pytest.mark.parametrize("argv,message", [
    ([], "give either --checkpoint, or --real and --fake"),
    (["--real", "a"], "--real and --fake go together"),
    (["--checkpoint", "r", "--real", "a", "--fake", "b"], "give either --checkpoint, or --real and --fake"),
    (["--real", "a", "--fake", "b"], "need --size"),
    (["--real", "a", "--fake", "b", "--size", "8", "--num", "3"], "--num only apply to --checkpoint"),
    (["--checkpoint", "r", "--size", "8"], "--size only apply to --real/--fake"),
    (["--checkpoint", "r", "--num", "1"], "--num must be >= 2"),
    (["--checkpoint", "r", "--lpips", "none", "--lpips-weights", "w"], "--lpips is 'none'"),
    (["--checkpoint", "r", "--protocol", "frames"], "argument --protocol: invalid choice: 'frames'"),
    (["--checkpoint", "r", "--whole-videos"], "--whole-videos needs --dataset"),
    (["--real", "a", "--fake", "b", "--size", "8", "--whole-videos"], "--whole-videos only apply to --checkpoint"),
])
def test_flag_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        eval_cli.parse_args(argv)
    assert message in capsys.readouterr().err


def write_gif(path: Path, frames: int, seed: int = 0) -> None:
    """A GIF of ``frames`` random 16x16 frames (random, so the writer merges none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8)
    iio.imwrite(path, pixels, duration=100, loop=0)


HELD_OUT_HINT = ("error: --dataset {data}: no video is long enough to hold out a 4-frame clip at its end and keep one "
                 "before it, as the run was trained (the run's --frames 4, the last 20% of each video held out); the "
                 "longest has 7 frames. Pass a --dataset folder with videos of at least 8 frames, or score clips of "
                 "any length with --real/--fake")


@pytest.mark.parametrize("case,code,expected", [
    ("missing", 2, "eval.py: error: --dataset {data!r} is not an existing folder"),
    ("empty", 1, "error: --dataset {data} has no usable video of at least 4 frames (the run's --frames 4) to "
                 "evaluate on (0 usable videos, 0 unreadable skipped, 0 shorter than the clip length skipped, 0 other "
                 "files ignored)"),
    ("not videos", 1, "error: --dataset {data} has no usable video of at least 4 frames (the run's --frames 4) to "
                      "evaluate on (0 usable videos, 1 unreadable skipped, 0 shorter than the clip length skipped, 1 "
                      "other files ignored (notes.txt))"),
    ("too short", 1, "error: --dataset {data} has no usable video of at least 4 frames (the run's --frames 4) to "
                     "evaluate on (0 usable videos, 0 unreadable skipped, 1 shorter than the clip length skipped, 0 "
                     "other files ignored)"),
    ("too short to hold out", 1, HELD_OUT_HINT),
])
def test_dataset_errors_are_one_line_naming_eval_flags(run, tmp_path, case, code, expected):
    """eval.py --dataset with a folder it can't evaluate on: one error line, no traceback, exit 2
    for a folder that isn't there, 1 for one whose videos can't give held-out clips."""
    _, run_dir = run
    data = tmp_path / "data"
    if case != "missing":
        data.mkdir()
    if case == "not videos":
        (data / "broken.mp4").write_bytes(b"not a video")
        (data / "notes.txt").write_text("x")
    elif case == "too short":
        write_gif(data / "short.gif", 3)
    elif case == "too short to hold out":
        write_gif(data / "a.gif", 7)
        write_gif(data / "b.gif", 5, seed=1)
    result = subprocess.run([sys.executable, "train/eval.py", "--checkpoint", str(run_dir), "--dataset", str(data),
                             "--lpips", "none"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "--heldout-fraction" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == expected.format(data=str(data))


def test_dataset_folder_gives_the_trainers_held_out_clips(run, tmp_path):
    """--dataset: clip i is the held-out clip i a run on that folder draws (train.build.build_datasets)."""
    _, run_dir = run
    data = tmp_path / "data"
    write_gif(data / "a.gif", 12)
    write_gif(data / "b.gif", 9, seed=1)
    clips = tmp_path / "clips.pt"
    result = eval_cli.main(eval_cli.parse_args(["--checkpoint", str(run_dir), "--dataset", str(data), "--num", "4",
                                                "--lpips", "none", "--protocol", "default", "--save-clips", str(clips),
                                                "--out", str(tmp_path / "e.json")]))
    config, _ = load_config(run_dir / "config.json")
    _, heldout = build_datasets(dataclasses.replace(config, dataset=str(data)), 1)
    expected = torch.stack([heldout[i] for i in range(4)])
    assert torch.equal(torch.load(clips)["real"], expected)
    assert result["clips"]["source"] == f"held-out end of each video of {data}"


def test_whole_videos_draws_from_every_frame_of_unseen_videos(run, tmp_path):
    """--whole-videos: clip i is VideoFolder's "whole" split clip i (any frame of each video), and the
    JSON says so."""
    _, run_dir = run
    data = tmp_path / "unseen"
    write_gif(data / "a.gif", 12)
    write_gif(data / "b.gif", 9, seed=1)
    clips = tmp_path / "clips.pt"
    result = eval_cli.main(eval_cli.parse_args(["--checkpoint", str(run_dir), "--dataset", str(data), "--whole-videos",
                                                "--num", "4", "--lpips", "none", "--protocol", "default",
                                                "--save-clips", str(clips), "--out", str(tmp_path / "e.json")]))
    config, _ = load_config(run_dir / "config.json")
    scan = scan_folder(data, config.frames, config.size)
    whole = VideoFolder(scan, 4, config.frames, seed=config.seed, split="whole")
    assert torch.equal(torch.load(clips)["real"], torch.stack([whole[i] for i in range(4)]))
    assert result["clips"]["split"] == "whole" and result["clips"]["distinct"] == len(whole.windows) == 9 + 6
    assert result["clips"]["source"] == f"every frame of each video of {data}, none trained on"


def test_whole_videos_refuses_a_video_the_run_trained_on(tmp_path, capsys):
    trained, unseen = tmp_path / "trained", tmp_path / "unseen"
    write_gif(trained / "a.gif", 12)
    write_gif(unseen / "b.gif", 9, seed=1)
    eval_cli._refuse_trained_videos(str(unseen), str(trained))  # distinct videos: fine
    eval_cli._refuse_trained_videos(str(unseen), None)  # a moving-shapes run trained on no video
    (unseen / "copy.gif").write_bytes((trained / "a.gif").read_bytes())
    with pytest.raises(RunError, match=r"the run trained on copy\.gif \(also in its --dataset "):
        eval_cli._refuse_trained_videos(str(unseen), str(trained))
    eval_cli._refuse_trained_videos(str(unseen), str(tmp_path / "moved"))  # can't check: says so
    assert "could not check" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# two folders of clips


def write_clip_folder(root: Path, clips: torch.Tensor, names: list[str]) -> torch.Tensor:
    """Each clip as a folder of PNG frames (lossless); returns the clips as eval.py reads them back."""
    levels = ((clips + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # (N, 3, T, H, W)
    for name, clip in zip(names, levels):
        (root / name).mkdir(parents=True)
        for t in range(clip.shape[1]):
            iio.imwrite(root / name / f"{t:03d}.png", clip[:, t].permute(1, 2, 0).numpy())
    return levels.float() / 127.5 - 1


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Real moving-shapes clips and 'generated' ones (their continuation blurred and shifted),
    6 clips of 5 frames at 32x32, and the stand-in extractors and LPIPS weights."""
    root = tmp_path_factory.mktemp("folders")
    real = torch.stack([MovingShapes(6, 5, 32, seed=3, split="heldout")[i] for i in range(6)])
    fake = real.clone()
    fake[:, :, 2:] = torch.nn.functional.avg_pool3d(real[:, :, 2:], (1, 3, 3), 1, (0, 1, 1)).roll(1, dims=-1)
    names = [f"clip{i}" for i in range(6)]
    real = write_clip_folder(root / "real", real, names)
    fake = write_clip_folder(root / "fake", fake, names)
    torch.manual_seed(0)
    weights = root / "squeeze.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), weights)
    i3d = _save_script(I3DStandIn(), root / "i3d_torchscript.pt")
    inception = _save_script(InceptionStandIn(), root / "inception-2015-12-05.pt")
    return root, real, fake, weights, i3d, inception


def test_folders_paired_against_direct_calls(folders):
    root, real, fake, weights, i3d, inception = folders
    out = root / "eval.json"
    result = eval_cli.main(eval_cli.parse_args([
        "--real", str(root / "real"), "--fake", str(root / "fake"), "--size", "32", "--context-frames", "2",
        "--lpips", "squeeze", "--lpips-weights", str(weights), "--fvd-extractor", str(i3d),
        "--fid-extractor", str(inception), "--protocol", "default", "--out", str(out),
        "--save-clips", str(root / "clips.pt")]))
    assert json.loads(out.read_text()) == result
    assert result["paired"] and result["skipped"] == {}
    saved = torch.load(root / "clips.pt")
    torch.testing.assert_close(saved["real"], real, rtol=0, atol=0)
    torch.testing.assert_close(saved["generated"], fake, rtol=0, atol=0)
    m = result["metrics"]
    assert m["psnr"] == pytest.approx(gm.psnr(fake[:, :, 2:], real[:, :, 2:]).mean.item(), rel=1e-6)
    # Copy-last-frame: the last context frame (1) repeated over the 3 frames after it.
    baseline = real[:, :, 1:2].expand(-1, -1, 3, -1, -1)
    assert m["psnr_baseline"] == pytest.approx(gm.psnr(baseline, real[:, :, 2:]).mean.item(), rel=1e-6)
    # LPIPS over the generated frames and tLP over the steps from frame 1, from one feature pass.
    lpips = gl.LPIPS("squeeze", weights=str(weights))
    distances = gm.lpips(fake[:, :, 2:], real[:, :, 2:], model=lpips).mean.item()
    temporal = gm.tlp(fake[:, :, 1:], real[:, :, 1:], model=lpips).mean.item()
    assert (m["lpips"], m["tlp"]) == (pytest.approx(distances, rel=1e-5), pytest.approx(temporal, rel=1e-5))
    assert m["detector"] == gm.detectability(real, fake).as_dict()
    fvd = gm.FVD(str(i3d), frames=5, context_frames=2)
    fid = gm.FID(str(inception), context_frames=2, include_context=False)
    for metric in (fvd, fid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    direct = fvd.compute()
    assert m["fvd"]["value"] == pytest.approx(direct.value) and m["fvd"]["protocol"] == direct.protocol
    assert m["fid"]["value"] == pytest.approx(fid.compute().value)
    # KVD and KID are fed the FVD/FID extractor pass: the same as their own update() would give.
    kvd = gm.KVD(str(i3d), frames=5, context_frames=2)
    kid = gm.KID(str(inception), context_frames=2, include_context=False)
    for metric in (kvd, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    for name, metric in (("kvd", kvd), ("kid", kid)):
        direct = metric.compute()
        assert (m[name]["value"], m[name]["std"], m[name]["protocol"]) == (
            pytest.approx(direct.value, rel=1e-12), pytest.approx(direct.std, rel=1e-12), direct.protocol)
    assert m["fvd"]["protocol"]["extractor_sha256"] == result["protocol"]["extractors"]["fvd"]["sha256"]
    assert m["kvd"]["protocol"]["num_real"] == 6 and m["kid"]["protocol"]["num_fake"] == 6 * 3


def test_set_metrics_run_each_extractor_once_per_batch():
    """FVD and KVD (FID and KID) share one extractor pass: I3D is what these metrics cost."""
    seen = {"fvd": [], "fid": []}
    extractors = {kind: gm.FeatureExtractor(lambda x, kind=kind: seen[kind].append(len(x)) or x.flatten(1)[:, :6],
                                            video=kind == "fvd") for kind in seen}
    real, fake = torch.rand(5, 3, 4, 8, 8) * 2 - 1, torch.rand(5, 3, 4, 8, 8) - 0.5
    with pytest.warns(UserWarning):  # 5 samples of 6-d features: singular covariances, small KID subsets
        out = eval_cli._set_metrics(real, fake, 2, extractors)
    assert sorted(out) == ["fid", "fvd", "kid", "kvd"]
    assert seen == {"fvd": [5, 5], "fid": [10, 10]}  # real, then generated; 2 frames a clip after the context


def test_clips_pair_by_name_whatever_the_extension():
    real, fake = torch.arange(3.0), torch.arange(3.0) * 10
    _, reordered, paired = eval_cli._pair_by_name(["a.mp4", "b.mp4", "c"], real, ["c", "b.gif", "a.webm"], fake)
    assert paired and reordered.tolist() == [20.0, 10.0, 0.0]
    assert not eval_cli._pair_by_name(["a", "b"], real[:2], ["a", "c"], fake[:2])[2]


def test_folders_unpaired_and_mismatched(folders, tmp_path, capsys):
    root, _, fake, *_ = folders
    renamed = tmp_path / "renamed"
    write_clip_folder(renamed, fake * 1.0, [f"sample{i}" for i in range(6)])
    result = eval_cli.main(eval_cli.parse_args(["--real", str(root / "real"), "--fake", str(renamed),
                                                "--size", "32", "--context-frames", "2", "--lpips", "none",
                                                "--protocol", "default"]))
    assert not result["paired"] and "psnr" not in result["metrics"] and "psnr" in result["skipped"]
    assert "scored as two unpaired sets" in capsys.readouterr().out
    assert result["metrics"]["detector"]["n_test"] == 6
    short = tmp_path / "short"
    write_clip_folder(short, fake[:, :, :4], [f"clip{i}" for i in range(6)])
    assert fails(["--real", str(root / "real"), "--fake", str(short), "--size", "32"], capsys, 2) == (
        "error: --real clips have 5 frames and --fake clips 4; pass --frames T to score the first T of each")
    ragged = tmp_path / "ragged"
    write_clip_folder(ragged, fake[:3, :, :4], ["a", "b", "c"])
    write_clip_folder(ragged, fake[3:], ["d", "e", "f"])
    assert fails(["--real", str(root / "real"), "--fake", str(ragged), "--size", "32"], capsys, 2).endswith(
        "clips have 4 to 5 frames; pass --frames T to score the first T of each")
    assert fails(["--real", str(root / "real"), "--fake", str(tmp_path / "x"), "--size", "32"], capsys, 2) == (
        f"error: --fake {str(tmp_path / 'x')!r} is not a folder")


def test_unpaired_sets_of_different_sizes_compare_mean_motion_per_clip(monkeypatch):
    # 4 real clips against 2 generated ones at half the amplitude: motion is each set's mean
    # per-clip motion from the last context frame on, the generated over the real.
    monkeypatch.setattr(gm, "detectability", lambda *a, **k: type("R", (), {"as_dict": lambda self: {}})())
    g = torch.Generator().manual_seed(0)
    real = torch.rand(4, 3, 5, 8, 8, generator=g) * 2 - 1
    fake = torch.rand(2, 3, 5, 8, 8, generator=g) - 0.5
    metrics, _ = eval_cli.clip_metrics(real, fake, 2, paired=False)
    # (The real clips' sum divided by the generated clips' count would halve it.)
    expected = (mean_abs_step(fake[:, :, 1:]) / mean_abs_step(real[:, :, 1:])).item()
    assert metrics["motion"] == pytest.approx(expected, rel=1e-6)  # float32 sums over ~10^3 values


def mean_abs_step(video: torch.Tensor) -> torch.Tensor:
    """Mean ``|frame[t+1] - frame[t]|`` per clip (same-size clips: the mean over the set), float64."""
    return video.double().diff(dim=2).abs().mean()


# --------------------------------------------------------------------------------------------
# the trainer's evaluate() with LPIPS


def test_trainer_evaluate_lpips_and_tlp(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "squeeze.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), weights)
    lpips = gl.LPIPS("squeeze", weights=str(weights))
    clips = torch.stack([MovingShapes(3, 5, 32, split="heldout")[i] for i in range(3)])

    class Shift(torch.nn.Module):  # a stand-in generator: the last context frame, rolled a pixel a frame
        def forward(self, context, z):
            return torch.stack([context[:, :, -1].roll(t + 1, dims=-1) for t in range(3)], dim=2)

    values = evaluate(StubAccelerator(), Shift(), clips, torch.zeros(3, 1), 2, lpips)
    fake = torch.cat([clips[:, :, :2], Shift()(clips[:, :, :2], None)], dim=2)
    assert values["eval/lpips"] == pytest.approx(gm.lpips(fake[:, :, 2:], clips[:, :, 2:], model=lpips).mean.item(),
                                                 rel=1e-5)
    assert values["eval/tlp"] == pytest.approx(gm.tlp(fake[:, :, 1:], clips[:, :, 1:], model=lpips).mean.item(),
                                               rel=1e-5)
    per_clip_lpips, per_clip_tlp = lpips_tlp(lpips, fake, clips, 0)  # no context: every frame and step
    np.testing.assert_allclose(per_clip_lpips, gm.lpips(fake, clips, model=lpips).per_clip, rtol=1e-5)
    np.testing.assert_allclose(per_clip_tlp, gm.tlp(fake, clips, model=lpips).per_clip, rtol=1e-5)

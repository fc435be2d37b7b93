"""Tests of train/eval.py and the detector the trainer records at the end of a run.

Every number is checked against a direct call of the genloss.metrics function on the clips
eval.py saved (``--save-clips``), and those clips against an independent rebuild: the held-out
clips from ``MovingShapes`` and the continuation from the checkpoint's EMA weights with the noise
rule spelled out here. The run is the shared 3-step tiny run (conftest ``tiny_run``), copied so
that eval.py's JSON and gallery refresh don't touch the shared folders.
"""

from __future__ import annotations

import json
import shutil
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
from train.build import build_generator
from train.config import load_config
from train.data import MovingShapes
from train.evaluate import evaluate, lpips_tlp
from trainer_utils import StubAccelerator, read_metrics

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
    """eval.py on the run folder (its newest checkpoint, 3): ``(result, printed, saved clips)``."""
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


def rebuild(run_dir: Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out clips and their continuations, rebuilt without train/evaluate.py."""
    config, _ = load_config(run_dir / "config.json")
    heldout = MovingShapes(count, config.frames, config.size, seed=config.seed, split="heldout",
                           num_shapes=config.num_shapes)
    real = torch.stack([heldout[i] for i in range(count)])
    generator = build_generator(config)
    weights = run_dir / "checkpoints" / "checkpoint-3" / "ema_generator.pt"
    generator.load_state_dict(torch.load(weights, weights_only=True))
    noise = torch.randn(count, config.z_dim, generator=torch.Generator().manual_seed(config.seed + 12345))
    with torch.no_grad():
        continuation = generator.eval()(real[:, :, : config.context_frames], noise).clamp(-1, 1)
    return real, torch.cat([real[:, :, : config.context_frames], continuation], dim=2)


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

    def test_values_equal_direct_metric_calls(self, evaluated):
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
        assert m["detector"] == gm.detectability(real, fake).as_dict()
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
        # A compact summary: one line per metric.
        lines = printed.splitlines()
        assert lines[0].startswith("tiny checkpoint-3 (EMA), 4 clips: held-out split")
        for label in ("PSNR", "SSIM", "tOF", "warping error", "motion", "detector"):
            assert sum(line.strip().startswith(label) for line in lines) == 1, label
        assert any(line.strip().startswith("skipped lpips, tlp: ") for line in lines)
        assert f"wrote {run_dir / 'eval-3.json'}" in lines

    def test_the_trainer_records_the_same_detector(self, run, evaluated):
        # The trainer's end-of-run record (same clips, noise and protocol) and eval.py's agree.
        _, run_dir = run
        result, _, _ = evaluated
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
        assert (root / "samples" / "tiny" / "eval-3.json").is_file()  # linked from the card
        assert 'href="tiny/eval-3.json"' in page

    def test_dataset_folder_and_errors(self, run, tmp_path):
        _, run_dir = run
        with pytest.raises(SystemExit, match="does not exist"):
            eval_cli.main(eval_cli.parse_args(["--checkpoint", str(tmp_path / "nope")]))
        (tmp_path / "empty-run").mkdir()
        with pytest.raises(SystemExit, match="neither a checkpoint-<step> folder nor a run folder with checkpoints"):
            eval_cli.main(eval_cli.parse_args(["--checkpoint", str(tmp_path / "empty-run")]))
        # An explicit LPIPS request that can't be met is an error, before anything is generated.
        weights = tmp_path / "squeeze.pth"
        torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), weights)
        with pytest.raises(SystemExit, match="LPIPS-squeeze needs frames of at least 17x17; the clips are 16x16"):
            eval_cli.main(eval_cli.parse_args(["--checkpoint", str(run_dir), "--lpips", "squeeze",
                                               "--lpips-weights", str(weights)]))
        with pytest.raises(SystemExit, match="i3d_torchscript.pt"):
            eval_cli.main(eval_cli.parse_args(["--checkpoint", str(run_dir),
                                               "--fvd-extractor", str(tmp_path / "i3d_torchscript.pt")]))


@pytest.mark.parametrize("argv,message", [
    ([], "give either --checkpoint, or --real and --fake"),
    (["--real", "a"], "--real and --fake go together"),
    (["--checkpoint", "r", "--real", "a", "--fake", "b"], "give either --checkpoint, or --real and --fake"),
    (["--real", "a", "--fake", "b"], "need --size"),
    (["--real", "a", "--fake", "b", "--size", "8", "--num", "3"], "--num only apply to --checkpoint"),
    (["--checkpoint", "r", "--size", "8"], "--size only apply to --real/--fake"),
    (["--checkpoint", "r", "--num", "1"], "--num must be >= 2"),
    (["--checkpoint", "r", "--lpips", "none", "--lpips-weights", "w"], "--lpips is 'none'"),
])
def test_flag_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        eval_cli.parse_args(argv)
    assert message in capsys.readouterr().err


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
        "--fid-extractor", str(inception), "--out", str(out), "--save-clips", str(root / "clips.pt")]))
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
                                                "--size", "32", "--context-frames", "2", "--lpips", "none"]))
    assert not result["paired"] and "psnr" not in result["metrics"] and "psnr" in result["skipped"]
    assert "scored as two unpaired sets" in capsys.readouterr().out
    assert result["metrics"]["detector"]["n_test"] == 6
    short = tmp_path / "short"
    write_clip_folder(short, fake[:, :, :4], [f"clip{i}" for i in range(6)])
    with pytest.raises(SystemExit, match="--real clips have 5 frames and --fake clips 4"):
        eval_cli.main(eval_cli.parse_args(["--real", str(root / "real"), "--fake", str(short), "--size", "32"]))
    ragged = tmp_path / "ragged"
    write_clip_folder(ragged, fake[:3, :, :4], ["a", "b", "c"])
    write_clip_folder(ragged, fake[3:], ["d", "e", "f"])
    with pytest.raises(SystemExit, match="clips have 4 to 5 frames; pass --frames T"):
        eval_cli.main(eval_cli.parse_args(["--real", str(root / "real"), "--fake", str(ragged), "--size", "32"]))
    with pytest.raises(SystemExit, match="--fake .* is not a folder"):
        eval_cli.main(eval_cli.parse_args(["--real", str(root / "real"), "--fake", str(tmp_path / "x"),
                                           "--size", "32"]))


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

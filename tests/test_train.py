"""Tests of ``train/gan.py``: end to end (the real script under ``accelerate launch``), and
``train_step`` in-process with a stand-in accelerator.

Tiny settings (16x16, 4 frames, batch 2, a few steps) keep each launch to seconds; the 3-step
reference launch is shared with ``test_config.py`` (``conftest.tiny_run``).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import genloss as gl
from eval_reference import check_eval_record, ema_generator, heldout_clips
from train.build import build_datasets
from train.config import load_config
from train.options import parse_args
from train.safety import RunError
from trainer_utils import TINY_SETTINGS, StubAccelerator, launch, read_config, read_metrics


@pytest.fixture(scope="module")
def run(tiny_run):
    """The shared 3-step run (conftest ``tiny_run``): ``(tmp, result)``."""
    tmp, result, _ = tiny_run
    return tmp, result


class TestReferenceRunOutputs:
    def test_config(self, run):
        tmp, _ = run
        settings, record = read_config(tmp / "runs" / "tiny")
        assert record["world_size"] == 1 and record["global_batch_size"] == 2
        assert record["perceptual"] == "feature-matching"  # no ImageNet weights offline
        assert settings["perceptual"] == "auto"  # what was asked
        assert record["run_name"] == "tiny" and record["resumed_from"] is None
        assert settings["frames"] == 4 and settings["context_frames"] == 2 and settings["max_steps"] == 3
        assert settings["adv_start"] == 0 and settings["adv_ramp"] is None  # as given: ramp left to its default
        assert (record["adv_start"], record["adv_ramp"]) == (0, 0)  # resolved: 3 // 6 == 0

    def test_says_what_perceptual_term_it_uses_once(self, run):
        _, result = run
        lines = (result.stdout + result.stderr).splitlines()
        notices = [i for i, line in enumerate(lines) if "discriminator feature matching instead of LPIPS" in line]
        assert len(notices) == 1
        # One sentence, then one hint line.
        assert lines[notices[0]].startswith("perceptual term:") and lines[notices[0]].count(". ") == 0
        assert lines[notices[0] + 1].strip().startswith("hint: pass --perceptual-weights FILE")

    def test_log_lines_are_not_glued_to_the_progress_bar(self, run):
        _, result = run
        lines = result.stdout.splitlines()
        # Eval results, sample writes and checkpoint saves each start their own line (stdout),
        # while the bar goes to stderr.
        for text in ("step 2: eval PSNR ", "step 3: eval PSNR "):
            assert [line for line in lines if text in line] == [line for line in lines if line.startswith(text)] != []
        assert any(line.strip() == "step 2: saved checkpoint-2" for line in lines), lines
        assert any(line.strip().startswith("step 3: wrote ") and line.strip().endswith("step-000003.gif")
                   for line in lines), lines
        assert "train:" not in result.stdout

    def test_metrics(self, run):
        tmp, _ = run
        records = read_metrics(tmp / "runs" / "tiny")
        train = [r for r in records if "g/total" in r]
        evals = [r for r in records if "eval/psnr" in r]
        assert [r["step"] for r in train] == [1, 2, 3]
        for r in train:
            for term in ("g/rec", "g/gdl", "g/tdl", "g/perceptual", "g/smooth", "g/adv", "d/adv_video", "d/adv_image"):
                assert np.isfinite(r[term]), term
            assert r["skipped_steps"] == 0
        # Lazy R1 on every 2nd step: the 1st and 3rd (records are labelled with completed steps);
        # the 2nd step's record carries the 1st's value, the newest there is.
        assert all("d/r1" in r for r in train)
        assert train[1]["d/r1"] == train[0]["d/r1"] != train[2]["d/r1"]
        assert [r["step"] for r in evals] == [2, 3]
        # Each eval record equals the numbers recomputed here from the held-out clips and the EMA
        # generator checkpointed at that step.
        cfg, _ = load_config(tmp / "runs" / "tiny" / "config.json")
        for r in evals:
            check_eval_record(r, heldout_clips(cfg), ema_generator(tmp / "runs" / "tiny", r["step"], cfg), cfg)

    def test_checkpoints_kept_and_complete(self, run):
        tmp, _ = run
        ckpts = tmp / "runs" / "tiny" / "checkpoints"
        assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2", "checkpoint-3"]
        files = {p.name for p in (ckpts / "checkpoint-3").iterdir()}
        assert {"ema_generator.pt", "model.safetensors", "optimizer.bin", "random_states_0.pkl"} <= files

    def test_clips_decode_with_right_frame_count(self, run):
        tmp, _ = run
        clips = tmp / "samples" / "tiny"
        for step in (2, 3):
            gif = iio.imread(clips / f"step-{step:06d}.gif", index=None)
            mp4 = np.stack(list(iio.imiter(clips / f"step-{step:06d}.mp4")))
            assert gif.shape[0] == 4 and mp4.shape[0] == 4  # one animation frame per clip frame
            assert gif.std() > 0
            # A grid of --sample-clips 2 clips (the run evaluates 4): the canvas size says how many.
            from train.clips import _grid_frames

            def canvas(n):
                return _grid_frames(np.zeros((n, 2, 16, 16, 3), np.uint8), np.zeros((n, 2, 16, 16, 3), np.uint8),
                                    np.zeros((n, 4, 16, 16, 3), np.uint8))[0].shape
            assert gif.shape[1:] == canvas(2) != canvas(4)
            assert (clips / f"strip-{step:06d}.png").is_file()

    def test_gallery_links_exist(self, run):
        tmp, _ = run
        index = tmp / "samples" / "index.html"
        links = _links(index.read_text())
        assert any(link.endswith("step-000003.gif") for link in links)
        assert any(link.endswith("step-000003.mp4") for link in links)
        for link in links:
            if not re.match(r"^(https?:|#|data:|mailto:)", link):
                assert (index.parent / link.split("#")[0]).exists(), link

    def test_resume_is_exact(self, run, tmp_path):
        # Resume the run from checkpoint-2 as if it had been killed during step 3: it must print the
        # step, drop the metrics logged after the checkpoint, and end with exactly the weights of
        # the uninterrupted run (models, optimisers, EMA, RNG and data position all restored).
        tmp, _ = run
        import shutil

        shutil.copytree(tmp / "runs", tmp_path / "runs")
        ckpts = tmp_path / "runs" / "tiny" / "checkpoints"
        shutil.rmtree(ckpts / "checkpoint-3")
        (ckpts / ".tmp-checkpoint-3").mkdir()  # a save that was killed before its rename
        result = launch(tmp_path, "--run-name", "tiny", "--max-steps", "3", "--resume", "latest",
                        "--checkpoint-every", "2", "--sample-every", "2", "--adv-start", "0", "--r1-interval", "2")
        assert "resumed from" in result.stdout and "checkpoint-2 at step 2" in result.stdout
        records = read_metrics(tmp_path / "runs" / "tiny")
        assert [r["step"] for r in records if "g/total" in r] == [1, 2, 3]
        assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2", "checkpoint-3"]
        original = torch.load(tmp / "runs" / "tiny" / "checkpoints" / "checkpoint-3" / "ema_generator.pt")
        resumed = torch.load(ckpts / "checkpoint-3" / "ema_generator.pt")
        for name, value in original.items():
            torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)

    def test_sample_script_writes_clips_from_checkpoint(self, run, tmp_path, monkeypatch):
        # The clips written are the first held-out clips, continued by the checkpoint's EMA
        # generator with the run's fixed noise (recomputed here).
        import train.clips
        from train import sample
        from train.in_training_eval import fixed_noise

        tmp, _ = run
        written, write_clips = [], train.clips.write_clips
        monkeypatch.setattr(train.clips, "write_clips", lambda *a, **k: written.append(a) or write_clips(*a, **k))
        ckpt = tmp / "runs" / "tiny" / "checkpoints" / "checkpoint-3"
        paths = sample.main(sample.parse_args(["--checkpoint", str(ckpt), "--num", "3", "--out", str(tmp_path)]))
        gif = iio.imread(paths["gif"], index=None)
        assert gif.shape[0] == 4
        cfg, _ = load_config(tmp / "runs" / "tiny" / "config.json")
        clips = heldout_clips(dataclasses.replace(cfg, eval_clips=3))
        generator = ema_generator(tmp / "runs" / "tiny", 3, cfg)
        with torch.no_grad():
            expected = generator(clips[:, :, :2], fixed_noise(3, cfg.z_dim, cfg.seed))
            other_noise = generator(clips[:2, :, :2], fixed_noise(2, cfg.z_dim, 5))
        ((_, step, context, generated, truth),) = written
        assert step == 3
        torch.testing.assert_close(truth, clips, rtol=0, atol=0)
        torch.testing.assert_close(context, clips[:, :, :2], rtol=0, atol=0)
        torch.testing.assert_close(generated, expected.clamp(-1, 1), rtol=0, atol=0)
        # --seed: the same noise rule with another seed.
        assert not torch.equal(other_noise, expected[:2])
        sample.main(sample.parse_args(["--checkpoint", str(ckpt), "--num", "2", "--seed", "5",
                                       "--out", str(tmp_path / "seed-5")]))
        torch.testing.assert_close(written[-1][3], other_noise.clamp(-1, 1), rtol=0, atol=0)


def _step_parts(**settings):
    """A tiny GAN, its losses and a batch, built in-process for ``train_step``."""
    from train.build import build_models
    from train.config import TrainConfig
    from train.gan import GAN
    from train.losses import build_losses

    cfg = TrainConfig(**{**TINY_SETTINGS, "adv_start": 0, "adv_ramp": 0, "r1_interval": 1, **settings})
    cfg.validate(environment=False)
    torch.manual_seed(0)
    generator, d_image, d_video = build_models(cfg)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam([*d_image.parameters(), *d_video.parameters()], lr=cfg.lr_d, betas=(0.5, 0.99))
    gan = GAN(generator, d_image, d_video, opt_g, opt_d, d_image, d_video, generator.last_layer)
    train_set, _ = build_datasets(cfg, 4)
    real = torch.stack([train_set[i] for i in range(cfg.batch_size)])
    return cfg, gan, build_losses(cfg, None, "feature-matching"), real


def _state(gan) -> dict:
    """Copies of every weight and optimiser state of ``gan``."""
    return copy.deepcopy({"g": gan.generator.state_dict(), "di": gan.d_image.state_dict(),
                          "dv": gan.d_video.state_dict(), "opt_g": gan.opt_g.state_dict(),
                          "opt_d": gan.opt_d.state_dict()})


def _assert_same(a, b, path="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}/{i}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


class TestTrainStep:
    @pytest.mark.parametrize("half", ["discriminator", "generator"])
    def test_a_nonfinite_half_changes_nothing(self, half):
        # A finite step first (so Adam has state to restore), then a step whose discriminator or
        # generator loss is NaN: neither optimiser may step, nor may the discriminators keep the
        # update they took before the generator's half turned out non-finite.
        from train.gan import train_step

        cfg, gan, losses, real = _step_parts()
        accelerator = StubAccelerator()
        before = _state(gan)
        ok, _ = train_step(0, real, gan, losses, cfg, accelerator)
        assert ok
        after_first = _state(gan)
        for key in ("g", "di", "dv"):  # the control: a finite step changes every model
            assert any(not torch.equal(before[key][n], after_first[key][n]) for n in before[key]), key
        nan_term = "adv_video" if half == "discriminator" else "rec"
        composite = getattr(losses, half)
        setattr(losses, half, gl.CompositeLoss({**composite.terms, nan_term: float("nan")}))
        ok, logs = train_step(1, real, gan, losses, cfg, accelerator)
        assert not ok
        assert not torch.isfinite(logs["d/total" if half == "discriminator" else "g/total"])
        _assert_same(_state(gan), after_first)

    def test_adaptive_weight_scales_the_adversarial_term(self, monkeypatch):
        # The same step with and without --adaptive-weight: the adversarial term's logged value is
        # multiplied by genloss.adaptive_weight(rec, adv, last layer), computed on that step's
        # tensors (before this refactor it was silently dropped in some configurations).
        import train.gan as gan_module
        from train.gan import train_step

        seen, adaptive_weight = [], gl.adaptive_weight

        def spy(rec, adv, last_layer):
            weight = adaptive_weight(rec, adv, last_layer)
            seen.append((rec.detach(), last_layer, weight))
            return weight

        logs = {}
        for adaptive in (False, True):
            cfg, gan, losses, real = _step_parts(adaptive_weight=adaptive)
            torch.manual_seed(1)
            monkeypatch.setattr(gan_module.gl, "adaptive_weight", spy)
            _, logs[adaptive] = train_step(0, real, gan, losses, cfg, StubAccelerator())
        assert len(seen) == 1
        rec, last_layer, weight = seen[0]
        assert last_layer is gan.last_layer
        assert torch.equal(rec, logs[True]["g/rec"])
        assert weight.item() != 1.0
        torch.testing.assert_close(logs[True]["g/adv"], weight * logs[False]["g/adv"], rtol=1e-6, atol=0)


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.links.append(value)


def _links(html: str) -> list[str]:
    parser = _LinkParser()
    parser.feed(html)
    return parser.links


def test_two_process_cpu_run_is_one_ddp_job(tmp_path):
    launch(tmp_path, "--run-name", "ddp", "--max-steps", "2", "--adv-start", "0", "--r1-interval", "1",
           processes=2)
    _, record = read_config(tmp_path / "runs" / "ddp")
    assert record["world_size"] == 2
    assert record["global_batch_size"] == 4
    records = read_metrics(tmp_path / "runs" / "ddp")
    sync = [r for r in records if "ranks_in_sync" in r]
    # Different seeds and data shards per rank: identical weights at the end prove DDP averaged the gradients.
    assert sync and sync[-1]["ranks_in_sync"] is True
    assert len(set(sync[-1]["rank_weight_checksums"])) == 1
    ckpt = tmp_path / "runs" / "ddp" / "checkpoints" / "checkpoint-2"
    assert (ckpt / "random_states_0.pkl").is_file() and (ckpt / "random_states_1.pkl").is_file()


def test_refuses_processes_that_are_not_one_job():
    from train.run import check_one_job

    check_one_job(2, {"WORLD_SIZE": "2"})
    check_one_job(1, {})
    with pytest.raises(SystemExit, match="launched as 2 processes .* sees a job of 1: the processes would train separately"):
        check_one_job(1, {"WORLD_SIZE": "2"})


def _write_dataset(root: Path) -> None:
    rng = np.random.default_rng(0)

    def frames(n):
        video = np.zeros((n, 24, 24, 3), dtype=np.uint8)
        for t in range(n):
            video[t, 6:14, 2 + 2 * t : 10 + 2 * t] = rng.integers(100, 255, size=3)
        return video

    iio.imwrite(root / "a.mp4", frames(8), fps=8, codec="libx264", macro_block_size=1)
    iio.imwrite(root / "b.gif", frames(6), duration=100, loop=0)
    (root / "c").mkdir()
    for t, frame in enumerate(frames(7)):
        iio.imwrite(root / "c" / f"{t:02d}.png", frame)
    iio.imwrite(root / "short.gif", frames(2), duration=100, loop=0)
    (root / "corrupt.webm").write_bytes(b"\x1aE\xdf\xa3 not really a webm")


def test_dataset_folder_run_with_lpips(tmp_path):
    # Also the explicit LPIPS path: a seeded random SqueezeNet saved as a torchvision state dict
    # stands in for the ImageNet weights (no network in tests).
    import torchvision

    torch.manual_seed(0)
    weights = tmp_path / "squeezenet.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), weights)
    data = tmp_path / "data"
    data.mkdir()
    _write_dataset(data)
    result = launch(tmp_path, "--run-name", "folder", "--max-steps", "2", "--dataset", str(data), "--size", "32",
                    "--perceptual", "lpips-squeeze", "--perceptual-weights", str(weights))
    out = result.stdout + result.stderr
    assert "skipped unreadable file corrupt.webm" in out
    assert "skipped short.gif (2 frames)" in out
    assert "3 usable videos, 1 unreadable skipped, 1 shorter than the clip length skipped" in out
    settings, record = read_config(tmp_path / "runs" / "folder")
    assert settings["perceptual"] == record["perceptual"] == "lpips-squeeze"
    records = read_metrics(tmp_path / "runs" / "folder")
    evals = [r for r in records if "eval/psnr" in r][-1]
    assert [r for r in records if "g/perceptual" in r]
    # PSNR, baseline, motion, LPIPS and tLP recomputed from the final EMA generator on the first
    # held-out clips of the folder (the end of each video).
    from train.data import VideoFolder, scan_folder

    cfg, _ = load_config(tmp_path / "runs" / "folder" / "config.json")
    heldout = VideoFolder(scan_folder(data, cfg.frames, cfg.size), cfg.eval_clips, cfg.frames, seed=cfg.seed,
                          split="heldout")
    clips = torch.stack([heldout[i] for i in range(cfg.eval_clips)])
    check_eval_record(evals, clips, ema_generator(tmp_path / "runs" / "folder", 2, cfg), cfg,
                      lpips=gl.LPIPS("squeeze", weights=weights))


def test_dataset_with_nothing_usable_stops_before_training(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"nope")
    iio.imwrite(tmp_path / "short.gif", np.zeros((2, 16, 16, 3), np.uint8), duration=100)
    options = parse_args(["--dataset", str(tmp_path), "--frames", "4"])
    with pytest.raises(RunError, match="no usable video with at least 4 frames"):
        build_datasets(options.config, 10, log=lambda *_: None)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--context-frames", "8", "--frames", "8"], "--context-frames must be in"),
        (["--size", "20"], "--size must be a multiple of 8"),
        (["--dataset", "/nonexistent/videos"], "is not an existing folder"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--perceptual", "none", "--perceptual-weights", __file__], "--perceptual is 'none'"),
        (["--perceptual-weights", "/nonexistent.pth"], "is not an existing file"),
        (["--resume", "/nonexistent/checkpoint-3"], "neither 'latest' nor an existing checkpoint"),
        (["--run-name", "a/b"], "--run-name must be"),
        (["--adv-weight", "nan"], "--adv-weight must be >= 0"),
        (["--frames", "2"], "--frames must be >= 3"),
        (["--g-channels", "12"], "multiple of 8"),
    ],
)
def test_flag_validation(flags, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(flags)
    assert message in capsys.readouterr().err


def test_fp16_on_cpu_is_refused(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(SystemExit):
        parse_args(["--mixed-precision", "fp16"])
    assert "fp16 needs a CUDA GPU" in capsys.readouterr().err


def test_every_flag_has_help():
    from train.options import build_parser

    for action in build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings
            assert all("_" not in s for s in action.option_strings), action.option_strings


def test_unconditional_run(tmp_path):
    launch(tmp_path, "--run-name", "uncond", "--max-steps", "2", "--context-frames", "0")
    settings, record = read_config(tmp_path / "runs" / "uncond")
    assert settings["context_frames"] == 0 and record["adv_start"] == 0  # no warm-up without a target
    records = read_metrics(tmp_path / "runs" / "uncond")
    train = [r for r in records if "g/total" in r][-1]
    assert {"g/adv", "g/smooth"} <= set(train) and not {"g/rec", "g/gdl", "g/tdl", "g/perceptual"} & set(train)
    evals = [r for r in records if "eval/motion" in r][-1]
    cfg, _ = load_config(tmp_path / "runs" / "uncond" / "config.json")
    # Motion against the held-out clips' own (no continuation to compare with), from the EMA generator.
    check_eval_record(evals, heldout_clips(cfg), ema_generator(tmp_path / "runs" / "uncond", 2, cfg), cfg)
    gif = iio.imread(tmp_path / "samples" / "uncond" / "step-000002.gif", index=None)
    assert gif.shape[0] == 4


def test_nonfinite_losses_are_skipped_then_stop_with_checkpoint(tmp_path):
    # A huge discriminator learning rate blows its weights up after one step: from then on the
    # feature-matching and adversarial losses are NaN, the steps are skipped, and the run stops.
    result = launch(tmp_path, "--run-name", "nan", "--max-steps", "8", "--lr-d", "1e38",
                    "--nonfinite-patience", "2", check=False)
    assert result.returncode != 0
    assert "2 steps in a row up to step 2 had a non-finite loss or gradient" in result.stderr
    assert (tmp_path / "runs" / "nan" / "checkpoints" / "checkpoint-2").is_dir()
    records = read_metrics(tmp_path / "runs" / "nan")
    assert [r["skipped_steps"] for r in records if "skipped_steps" in r] == [1, 2]
    assert records[-1]["g/total"] is None  # NaN is logged as null (valid JSON)


def test_lpips_on_frames_too_small_is_a_clear_error(tmp_path):
    import torchvision

    from train.build import build_perceptual

    weights = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), weights)
    with pytest.raises(RunError, match="--perceptual lpips-alex can't take --size 16 frames"):
        build_perceptual("lpips-alex", str(weights), 16)
    module, used, message = build_perceptual("auto", str(weights), 16)
    assert module is None and used == "feature-matching" and "can't take 16x16 frames" in message
    module, used, _ = build_perceptual("auto", str(weights), 32)
    assert module is not None and used == "lpips-alex"

"""End-to-end tests of ``train/gan.py``: launch the real script with ``accelerate launch``.

Tiny settings (16x16, 4 frames, batch 2, a few steps) keep each launch to seconds; launches are
shared between assertions through module-scoped fixtures.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from train.options import parse_args
from train.setup import build_datasets

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
TINY = ["--size", "16", "--frames", "4", "--batch-size", "2", "--eval-clips", "4", "--sample-clips", "2",
        "--g-channels", "8", "--d-channels", "8", "--log-every", "1", "--eval-every", "2"]


def launch(tmp: Path, *flags: str, processes: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    """``accelerate launch [--multi_gpu --num_processes N] train/gan.py`` from the repo root."""
    launcher = ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no"]
    if processes > 1:
        launcher = ["--multi_gpu", *launcher]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    cmd = [*ACCELERATE, *launcher, "train/gan.py", *TINY, "--output-dir", str(tmp / "runs"),
           "--samples-dir", str(tmp / "samples"), *flags]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}\nexit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 3-step run with checkpoints at 2 and 3 and every loss term on from step 0."""
    tmp = tmp_path_factory.mktemp("train")
    result = launch(tmp, "--run-name", "tiny", "--max-steps", "3", "--checkpoint-every", "2",
                    "--sample-every", "2", "--adv-start", "0", "--r1-interval", "2", "--keep-checkpoints", "2")
    return tmp, result


class TestReferenceRunOutputs:
    def test_config(self, run):
        tmp, _ = run
        config = json.loads((tmp / "runs" / "tiny" / "config.json").read_text())
        assert config["world_size"] == 1
        assert config["perceptual"] == "feature-matching"  # no ImageNet weights offline
        assert config["perceptual_requested"] == "auto"
        for key in ("max_steps", "batch_size", "frames", "context_frames", "size", "adv_loss", "r1_gamma",
                    "adv_start", "adv_ramp", "seed", "mixed_precision", "grad_accum", "run_name"):
            assert key in config
        assert config["frames"] == 4 and config["context_frames"] == 2 and config["run_name"] == "tiny"

    def test_says_what_perceptual_term_it_uses_once(self, run):
        _, result = run
        out = result.stdout + result.stderr
        assert out.count("using discriminator feature matching instead") == 1

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
        # Lazy R1 on every 2nd step: the 1st and 3rd (records are labelled with completed steps).
        assert ["d/r1" in r for r in train] == [True, False, True]
        assert [r["step"] for r in evals] == [2, 3]
        for r in evals:
            assert r["eval/psnr_baseline"] > 0 and r["eval/psnr"] > 0 and r["eval/motion"] >= 0

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

    def test_sample_script_writes_clips_from_checkpoint(self, run, tmp_path):
        tmp, _ = run
        from train import sample

        ckpt = tmp / "runs" / "tiny" / "checkpoints" / "checkpoint-3"
        paths = sample.main(sample.parse_args(["--checkpoint", str(ckpt), "--num", "3", "--out", str(tmp_path)]))
        gif = iio.imread(paths["gif"], index=None)
        assert gif.shape[0] == 4
        # The sampled clips use the EMA weights of the checkpoint: same as the training-time samples.
        config = json.loads((tmp / "runs" / "tiny" / "config.json").read_text())
        assert config["context_frames"] == 2


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
    config = json.loads((tmp_path / "runs" / "ddp" / "config.json").read_text())
    assert config["world_size"] == 2
    assert config["global_batch_size"] == 4
    records = read_metrics(tmp_path / "runs" / "ddp")
    sync = [r for r in records if "ranks_in_sync" in r]
    # Different seeds and data shards per rank: identical weights at the end prove DDP averaged the gradients.
    assert sync and sync[-1]["ranks_in_sync"] is True
    assert len(set(sync[-1]["rank_weight_checksums"])) == 1
    ckpt = tmp_path / "runs" / "ddp" / "checkpoints" / "checkpoint-2"
    assert (ckpt / "random_states_0.pkl").is_file() and (ckpt / "random_states_1.pkl").is_file()


def test_refuses_processes_that_are_not_one_job():
    from train.gan import check_one_job

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
    config = json.loads((tmp_path / "runs" / "folder" / "config.json").read_text())
    assert config["perceptual"] == "lpips-squeeze"
    records = read_metrics(tmp_path / "runs" / "folder")
    evals = [r for r in records if "eval/psnr" in r][-1]
    assert evals["eval/lpips"] >= 0 and evals["eval/tlp"] >= 0
    assert [r for r in records if "g/perceptual" in r]


def test_dataset_with_nothing_usable_stops_before_training(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"nope")
    iio.imwrite(tmp_path / "short.gif", np.zeros((2, 16, 16, 3), np.uint8), duration=100)
    args = parse_args(["--dataset", str(tmp_path), "--frames", "4"])
    with pytest.raises(SystemExit, match="no usable video with at least 4 frames"):
        build_datasets(vars(args), 10, log=lambda *_: None)


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
    config = json.loads((tmp_path / "runs" / "uncond" / "config.json").read_text())
    assert config["context_frames"] == 0 and config["adv_start"] == 0  # no warm-up without a target
    records = read_metrics(tmp_path / "runs" / "uncond")
    train = [r for r in records if "g/total" in r][-1]
    assert {"g/adv", "g/smooth"} <= set(train) and not {"g/rec", "g/gdl", "g/tdl", "g/perceptual"} & set(train)
    evals = [r for r in records if "eval/motion" in r][-1]
    assert "eval/psnr" not in evals and "eval/psnr_baseline" not in evals
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

    from train.setup import build_perceptual

    weights = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), weights)
    with pytest.raises(SystemExit, match="--perceptual lpips-alex can't take --size 16 frames"):
        build_perceptual("lpips-alex", str(weights), 16)
    module, used, message = build_perceptual("auto", str(weights), 16)
    assert module is None and used == "feature-matching" and "can't take 16x16 frames" in message
    module, used, _ = build_perceptual("auto", str(weights), 32)
    assert module is not None and used == "lpips-alex"

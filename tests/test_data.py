"""Datasets of the trainer: procedural moving shapes and folders of videos / frame folders."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from train.data import MovingShapes, VideoFolder, scan_folder
from train.state import EMA, NonFiniteGuard, NonFiniteLossError, latest_checkpoint, prune_checkpoints, staging_dir


class TestMovingShapes:
    def test_shape_range_and_determinism(self):
        ds = MovingShapes(10, frames=6, size=32, seed=3)
        clip = ds[4]
        assert clip.shape == (3, 6, 32, 32)
        assert clip.dtype == torch.float32
        assert clip.min() >= -1 and clip.max() <= 1
        assert clip.min() == -1  # dark background
        torch.testing.assert_close(clip, MovingShapes(10, frames=6, size=32, seed=3)[4], rtol=0, atol=0)
        assert not torch.equal(clip, ds[5])
        assert not torch.equal(clip, MovingShapes(10, frames=6, size=32, seed=4)[4])

    def test_heldout_split_differs_from_train(self):
        train = MovingShapes(5, frames=4, size=16, split="train")
        held = MovingShapes(5, frames=4, size=16, split="heldout")
        for i in range(5):
            assert not torch.equal(train[i], held[i])

    def test_shapes_move(self):
        clip = MovingShapes(1, frames=8, size=32)[0]
        change = (clip[:, 1:] - clip[:, :-1]).abs().flatten(1).sum(dim=1)
        assert (change > 0).all()  # every frame pair differs: velocities are at least 1 px/frame

    def test_bad_split(self):
        with pytest.raises(ValueError, match="split"):
            MovingShapes(1, frames=4, size=16, split="test")


def _frames(n: int, size: int = 20) -> np.ndarray:
    frames = np.zeros((n, size, size, 3), dtype=np.uint8)
    for t in range(n):
        frames[t, 4:10, t : t + 6] = (200, 80, 40)
    return frames


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    iio.imwrite(root / "clip.mp4", _frames(10, 32), fps=8, codec="libx264", macro_block_size=1)
    iio.imwrite(root / "anim.gif", _frames(9), duration=100, loop=0)
    (root / "frames").mkdir()
    for t, frame in enumerate(_frames(8)):
        iio.imwrite(root / "frames" / f"{t:03d}.png", frame)
    iio.imwrite(root / "short.gif", _frames(3), duration=100, loop=0)
    (root / "broken.mp4").write_bytes(b"this is not a video")
    (root / "notes.txt").write_text("ignored")
    return root


class TestVideoFolder:
    def test_scan_reports_corrupt_and_short(self, video_folder):
        scan = scan_folder(video_folder, frames=6, size=16)
        assert sorted(scan.names) == ["anim.gif", "clip.mp4", "frames"]
        assert len(scan.corrupt) == 1 and scan.corrupt[0].startswith("broken.mp4: ")
        assert scan.too_short == ["short.gif (3 frames)"]
        assert scan.summary() == "3 usable videos, 1 unreadable skipped, 1 shorter than the clip length skipped"
        for video in scan.videos:
            assert video.dtype == torch.uint8 and video.shape[0] == 3 and video.shape[2:] == (16, 16)

    def test_clip_lengths_and_values(self, video_folder):
        scan = scan_folder(video_folder, frames=6, size=16)
        assert sorted(v.shape[1] for v in scan.videos) == [8, 9, 10]
        ds = VideoFolder(scan, 20, frames=6, seed=1)
        clip = ds[7]
        assert clip.shape == (3, 6, 16, 16)
        assert -1 <= clip.min() and clip.max() <= 1
        torch.testing.assert_close(clip, VideoFolder(scan, 20, frames=6, seed=1)[7], rtol=0, atol=0)

    def test_gif_decodes_to_the_written_frames(self, tmp_path):
        frames = _frames(7, 16)
        iio.imwrite(tmp_path / "a.gif", frames, duration=100, loop=0)
        scan = scan_folder(tmp_path, frames=7, size=16)
        decoded = scan.videos[0].permute(1, 2, 3, 0).numpy()  # (N, H, W, C)
        np.testing.assert_allclose(decoded.astype(float), frames.astype(float), atol=8)

    def test_heldout_with_few_videos_warns(self, video_folder):
        scan = scan_folder(video_folder, frames=6, size=16)
        with pytest.warns(UserWarning, match="held-out clips come from the training videos"):
            VideoFolder(scan, 4, frames=6, split="heldout")

    def test_nothing_usable(self, tmp_path):
        (tmp_path / "x.gif").write_bytes(b"GIF89a broken")
        scan = scan_folder(tmp_path, frames=4, size=16)
        assert scan.videos == [] and len(scan.corrupt) == 1
        with pytest.raises(ValueError, match="no usable videos"):
            VideoFolder(scan, 4, frames=4)


class TestState:
    def test_latest_ignores_staging_and_other_names(self, tmp_path):
        for name in ("checkpoint-5", "checkpoint-20", "checkpoint-100x", "notes"):
            (tmp_path / name).mkdir()
        staging_dir(tmp_path, 300).mkdir()  # a save killed before its rename
        assert latest_checkpoint(tmp_path).name == "checkpoint-20"
        assert latest_checkpoint(tmp_path / "missing") is None

    def test_prune_keeps_newest(self, tmp_path):
        for step in (1, 10, 2, 30):
            (tmp_path / f"checkpoint-{step}").mkdir()
        deleted = prune_checkpoints(tmp_path, keep=2)
        assert sorted(p.name for p in deleted) == ["checkpoint-1", "checkpoint-2"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-30"]

    def test_nonfinite_guard(self):
        guard = NonFiniteGuard(patience=2)
        assert guard.update(False) is True and not guard.exhausted
        assert guard.update(True) is False and guard.in_a_row == 0
        guard.update(False)
        guard.update(False)
        assert guard.exhausted
        with pytest.raises(NonFiniteLossError, match="2 steps in a row up to step 7"):
            guard.check(7)

    def test_ema_formula(self):
        model = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(0.0)
        ema = EMA(model, decay=0.9)
        with torch.no_grad():
            model.weight.fill_(1.0)
        ema.update(model)  # d = min(0.9, 1/10) = 0.1 -> 0.1 * 0 + 0.9 * 1
        torch.testing.assert_close(ema.model.weight, torch.tensor([[0.9]]))
        ema.update(model)  # d = min(0.9, 2/11)
        torch.testing.assert_close(ema.model.weight, torch.tensor([[0.9 * 2 / 11 + 9 / 11]]))
        restored = EMA(model, decay=0.9)
        restored.load_state_dict(ema.state_dict())
        assert restored.updates == 2
        torch.testing.assert_close(restored.model.weight, ema.model.weight)

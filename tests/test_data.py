"""Datasets of the trainer: procedural moving shapes and folders of videos / frame folders."""

from __future__ import annotations

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from train.config import ConfigError, TrainConfig
from train.data import (
    ZOOM,
    FolderScan,
    MovingShapes,
    VideoFolder,
    frame_changes,
    scan_folder,
    shared_videos,
    split_shots,
    temporal_split,
)
from train.state import (
    EMA,
    NonFiniteGuard,
    NonFiniteLossError,
    OptimizerSnapshot,
    TrainState,
    latest_checkpoint,
    latest_in_run,
    prune_checkpoints,
    staging_dir,
)


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


def _write_video(path, frames: np.ndarray, fps: int = 8) -> None:
    """Near-lossless H.264 (crf 0, 4:4:4) in whatever container ``path``'s suffix names, via ffmpeg."""
    n, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, quality=None, pix_fmt_out="yuv444p",
                                         codec="libx264", macro_block_size=1, output_params=["-crf", "0"])
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


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
    iio.imwrite(root / "stray.png", _frames(1)[0])  # a frame outside any frame folder
    (root / "frames" / "info.txt").write_text("not a frame")
    return root


class TestVideoFolder:
    def test_scan_reports_corrupt_short_and_other_files(self, video_folder):
        scan = scan_folder(video_folder, frames=4, size=16)
        assert scan.names == ["anim.gif", "clip.mp4", "frames"]
        assert len(scan.corrupt) == 1 and scan.corrupt[0].startswith("broken.mp4: ")
        assert scan.too_short == ["short.gif (3 frames)"]
        assert scan.unknown == ["frames/info.txt", "notes.txt", "stray.png"]
        assert scan.train_only == []
        assert scan.summary() == (
            "3 usable videos, 1 unreadable skipped, 1 shorter than the clip length skipped, "
            "3 other files ignored (frames/info.txt, notes.txt, stray.png) [frame images belong in one "
            "sub-folder per video]; the last 20% of each video is held out for evaluation"
        )
        for video in scan.videos:
            assert video.dtype == torch.uint8 and video.shape[0] == 3 and video.shape[2:] == (16, 16)

    def test_summary_names_videos_too_short_to_split(self, video_folder):
        # 6-frame clips: 8, 9 and 10 frames cannot give a training and a held-out clip each.
        scan = scan_folder(video_folder, frames=6, size=16)
        assert scan.train_only == ["anim.gif (9 frames)", "clip.mp4 (10 frames)", "frames (8 frames)"]
        assert scan.summary().endswith(
            "; the last 20% of each video is held out for evaluation, but 3 too short to split are "
            "training only (anim.gif (9 frames), clip.mp4 (10 frames), frames (8 frames))"
        )
        VideoFolder(scan, 4, frames=6, split="train")[0]
        with pytest.raises(ValueError, match="no video is long enough to hold out its last 20% .* longest has 10"):
            VideoFolder(scan, 4, frames=6, split="heldout")

    def test_clip_lengths_and_values(self, video_folder):
        scan = scan_folder(video_folder, frames=6, size=16)
        assert [v.shape[1] for v in scan.videos] == [9, 10, 8]
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

    def test_whole_split_draws_from_every_frame(self, video_folder):
        # Videos of 9, 10 and 8 frames: the held-out split starts clips only in each video's last
        # part, the whole split anywhere, frame 0 included.
        scan = scan_folder(video_folder, frames=4, size=16)
        whole = VideoFolder(scan, 200, frames=4, seed=0, split="whole")
        heldout = VideoFolder(scan, 200, frames=4, seed=0, split="heldout")
        assert whole.parts == [(0, 0, 9), (1, 0, 10), (2, 0, 8)]
        assert [p[1] for p in heldout.parts] == [temporal_split(n, 4)[1].start for n in (9, 10, 8)]
        # Every (video, start) window once, shuffled, then again in the same order.
        assert sorted(whole.windows) == [(v, s) for v, n in enumerate((9, 10, 8)) for s in range(n - 3)]
        assert whole.windows != sorted(whole.windows)
        for i in (0, 5, 17):
            v, start = whole.windows[i]
            assert (v, start) in _locate(scan, whole[i])
            assert torch.equal(whole[i], whole[i + len(whole.windows)])
        assert not set().union(*(_locate(scan, heldout[i]) for i in range(50))) & {(v, 0) for v in range(3)}
        with pytest.raises(ValueError, match="split"):
            MovingShapes(1, frames=4, size=16, split="whole")

    def test_nothing_usable(self, tmp_path):
        (tmp_path / "x.gif").write_bytes(b"GIF89a broken")
        scan = scan_folder(tmp_path, frames=4, size=16)
        assert scan.videos == [] and len(scan.corrupt) == 1
        with pytest.raises(ValueError, match="no usable videos"):
            VideoFolder(scan, 4, frames=4)


def _locate(scan, clip) -> set[tuple[int, int]]:
    """Every ``(video, first frame)`` whose frames equal a clip the folder gave (some videos of the
    fixture share frames)."""
    levels = torch.round((clip + 1) * 127.5).to(torch.uint8)
    found = {(v, start) for v, video in enumerate(scan.videos) for start in range(video.shape[1] - clip.shape[1] + 1)
             if torch.equal(video[:, start : start + clip.shape[1]], levels)}
    assert found, "clip not found in any video"
    return found


class TestSharedVideos:
    def test_same_file_link_or_bytes_are_shared_other_videos_not(self, tmp_path, video_folder):
        ours, theirs = tmp_path / "ours", tmp_path / "theirs"
        ours.mkdir(), theirs.mkdir()
        (ours / "linked.mp4").symlink_to(video_folder / "clip.mp4")
        (ours / "renamed.gif").write_bytes((video_folder / "anim.gif").read_bytes())
        (ours / "own.gif").write_bytes((video_folder / "short.gif").read_bytes())
        (ours / "frames").symlink_to(video_folder / "frames", target_is_directory=True)
        for name in ("clip.mp4", "anim.gif"):
            (theirs / name).write_bytes((video_folder / name).read_bytes())
        (theirs / "frames").symlink_to(video_folder / "frames", target_is_directory=True)
        # Same size, other bytes: hashed, and not shared.
        size = (video_folder / "short.gif").stat().st_size
        (theirs / "decoy.gif").write_bytes(bytes(size))
        assert shared_videos(ours, theirs) == ["frames", "linked.mp4", "renamed.gif"]
        (tmp_path / "empty").mkdir()
        assert shared_videos(ours, tmp_path / "empty") == []


class TestFiles:
    def test_video_extensions_any_case(self, tmp_path):
        frames = np.random.default_rng(0).integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
        for name in ("upper.MP4", "phone.mov", "clip.mkv", "clip.m4v", "Old.AVI"):
            _write_video(tmp_path / name, frames)
        scan = scan_folder(tmp_path, frames=5, size=16)
        assert scan.names == ["Old.AVI", "clip.m4v", "clip.mkv", "phone.mov", "upper.MP4"]
        assert scan.corrupt == [] and scan.unknown == []
        for video in scan.videos:
            decoded = video.permute(1, 2, 3, 0).numpy().astype(int)  # (N, H, W, C)
            # Lossless H.264 in YUV 4:4:4: only the RGB <-> YUV conversion rounds (a few levels).
            np.testing.assert_allclose(decoded, frames.astype(int), atol=4)

    def test_frame_formats_become_rgb(self, tmp_path):
        rng = np.random.default_rng(0)
        grey = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
        alpha = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)  # 0 (transparent) included
        alpha[0, 0] = 0
        rgb = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        grey16 = rng.integers(0, 65536, size=(8, 8), dtype=np.uint16)
        folder = tmp_path / "frames"
        folder.mkdir()
        Image.fromarray(grey, "L").save(folder / "1.png")
        Image.fromarray(np.stack([grey, alpha], -1), "LA").save(folder / "2.png")
        Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), "RGBA").save(folder / "3.png")
        Image.fromarray(grey16).save(folder / "10.png")  # 16-bit grey; "10" sorts after "3" (natural order)
        scan = scan_folder(tmp_path, frames=4, size=8)
        assert scan.names == ["frames"] and scan.corrupt == []
        decoded = scan.videos[0].permute(1, 2, 3, 0).numpy()  # (N, H, W, C); size 8 = no resampling
        grey3 = np.repeat(grey[..., None], 3, -1)
        np.testing.assert_array_equal(decoded[0], grey3)
        np.testing.assert_array_equal(decoded[1], grey3)  # alpha dropped, grey kept
        np.testing.assert_array_equal(decoded[2], rgb)  # alpha dropped, stored colour kept
        grey8 = np.floor(grey16 / 257 + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(decoded[3], np.repeat(grey8[..., None], 3, -1))

    def test_progress_bar_only_when_asked(self, video_folder, capsys):
        scan_folder(video_folder, frames=6, size=16, progress=False)
        captured = capsys.readouterr()
        assert captured.err == "" and captured.out == ""
        scan_folder(video_folder, frames=6, size=16, progress=True)
        err = capsys.readouterr().err
        assert f"scanning {video_folder}" in err and "5/5" in err  # 5 candidates, broken and short included

    def test_bounded_reader_matches_the_full_resolution_path(self, tmp_path):
        # The reader this one replaced: decode every frame at full size, then one float resize of
        # the whole stack (antialiased bilinear, shorter side to `size`, centre crop, round).
        frames = np.random.default_rng(1).integers(0, 256, size=(7, 36, 50, 3), dtype=np.uint8)
        iio.imwrite(tmp_path / "noise.mp4", frames, fps=8, codec="libx264", macro_block_size=1)
        decoded = torch.from_numpy(np.stack(list(iio.imiter(tmp_path / "noise.mp4"))))
        x = decoded.permute(0, 3, 1, 2).double()
        x = F.interpolate(x, size=(16, 22), mode="bilinear", antialias=True, align_corners=False)
        expected = x[..., :, 3:19].round().clamp(0, 255).permute(1, 0, 2, 3)  # (C, N, 16, 16)
        video = scan_folder(tmp_path, frames=7, size=16).videos[0]
        assert video.shape == expected.shape == (3, 7, 16, 16)
        # The uint8 resampling kernel rounds its fixed-point sum once: at most one level apart.
        diff = (video.double() - expected).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.3


class TestTemporalSplit:
    def test_known_cuts(self):
        assert temporal_split(40, 5) == (range(0, 32), range(32, 40))  # 20% of 40 = 8
        assert temporal_split(17, 5) == (range(0, 12), range(12, 17))  # 20% = 3.4 < one clip: 5
        assert temporal_split(31, 5) == (range(0, 25), range(25, 31))  # round(6.2) = 6
        assert temporal_split(23, 5) == (range(0, 18), range(18, 23))  # round(4.6) = 5
        assert temporal_split(30, 1, 0.1) == (range(0, 27), range(27, 30))  # 0.1 * 30 is 3.0000000000000004
        assert temporal_split(9, 5) == (range(0, 9), range(9, 9))  # too short: training only
        assert temporal_split(10, 5) == (range(0, 5), range(5, 10))
        assert temporal_split(100, 5, 0.5) == (range(0, 50), range(50, 100))
        # An exact half rounds up: 0.25 * 18 = 4.5 -> 5 (Python's round() would give 4).
        assert temporal_split(18, 2, 0.25) == (range(0, 13), range(13, 18))

    @pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
    def test_bad_fraction(self, fraction, tmp_path):
        with pytest.raises(ValueError, match="`heldout_fraction` must be in \\(0, 1\\)"):
            temporal_split(10, 2, fraction)
        with pytest.raises(ValueError, match="`heldout_fraction`"):
            scan_folder(tmp_path, frames=2, size=8, heldout_fraction=fraction)


# Video lengths and, for 5-frame clips, the first held-out frame of each (20% held out, at least
# one clip; 8 frames cannot give a clip to both parts, so that video is training only).
_LENGTHS = [40, 23, 61, 8, 31, 17]
_CUTS = [32, 18, 49, 8, 25, 12]


def _labelled_scan(count: int, heldout_fraction: float = 0.2) -> FolderScan:
    """Tiny videos whose every pixel says which video and frame it is: R = video, G + 256 B = frame."""
    videos = []
    for v, n in enumerate(_LENGTHS[:count]):
        t = torch.arange(n)
        video = torch.stack([torch.full((n,), v), t % 256, t // 256]).to(torch.uint8)  # (C, N)
        videos.append(video[:, :, None, None].expand(3, n, 2, 2).contiguous())
    names = [f"v{v}.mp4" for v in range(count)]
    return FolderScan(videos, names, [], [], heldout_fraction=heldout_fraction)


def _frames_used(dataset: VideoFolder, clips: int) -> dict[int, set[int]]:
    """For each video, the frames that clips ``0 .. clips-1`` of ``dataset`` contain."""
    used: dict[int, set[int]] = {}
    for i in range(clips):
        pixels = ((dataset[i] + 1) * 127.5).round().long()[:, :, 0, 0]  # (C, T)
        video = int(pixels[0, 0])
        assert (pixels[0] == video).all()  # one video per clip
        frames = (pixels[1] + 256 * pixels[2]).tolist()
        assert frames == list(range(frames[0], frames[0] + dataset.frames))  # consecutive frames
        used.setdefault(video, set()).update(frames)
    return used


class TestHeldOut:
    @pytest.mark.parametrize("count", [1, 3, 5, 6])
    def test_training_and_heldout_clips_never_overlap(self, count):
        scan = _labelled_scan(count)
        train = _frames_used(VideoFolder(scan, 1000, frames=5, seed=3, split="train"), 1000)
        held = _frames_used(VideoFolder(scan, 400, frames=5, seed=3, split="heldout"), 400)
        for v in range(count):
            n, cut = _LENGTHS[v], _CUTS[v]
            # Enough clips to reach every frame: training covers exactly the frames before the cut,
            # held-out clips exactly the frames after it, and nothing else.
            assert train[v] == set(range(cut)), v
            if cut < n:
                assert held[v] == set(range(cut, n)), v
            else:
                assert v not in held  # training only
        assert set(train) == set(range(count))

    def test_fraction_reaches_the_dataset_through_the_scan(self, tmp_path):
        # End to end: PNG frame folders (lossless), 70% of each video held out. 10 frames -> cut at
        # 3, 20 -> 6; 8 frames would split at the default 20% but is training only at 70%.
        for v, n in enumerate((10, 20, 8)):
            (tmp_path / f"v{v}").mkdir()
            for t in range(n):
                iio.imwrite(tmp_path / f"v{v}" / f"{t:02d}.png", np.full((4, 6, 3), (v, t, 0), np.uint8))
        scan = scan_folder(tmp_path, frames=3, size=4, heldout_fraction=0.7)
        assert scan.heldout_fraction == 0.7 and scan.train_only == ["v2 (8 frames)"]
        assert "the last 70% of each video is held out" in scan.summary()
        train = _frames_used(VideoFolder(scan, 300, frames=3, split="train"), 300)
        held = _frames_used(VideoFolder(scan, 300, frames=3, split="heldout"), 300)
        assert train == {0: set(range(3)), 1: set(range(6)), 2: set(range(8))}
        assert held == {0: set(range(3, 10)), 1: set(range(6, 20))}

    def test_clips_depend_only_on_seed_split_and_index(self):
        scan = _labelled_scan(6)
        a = VideoFolder(scan, 50, frames=5, seed=7, split="train")
        b = VideoFolder(_labelled_scan(6), 50, frames=5, seed=7, split="train")
        for i in (0, 13, 49):
            torch.testing.assert_close(a[i], b[i], rtol=0, atol=0)
        assert any(not torch.equal(a[i], VideoFolder(scan, 50, frames=5, seed=8)[i]) for i in range(5))

    def test_frames_longer_than_a_scanned_video(self):
        with pytest.raises(ValueError, match="`frames` is 9 but video 'v3.mp4' has 8"):
            VideoFolder(_labelled_scan(4), 10, frames=9)


class TestState:
    def test_latest_ignores_staging_and_other_names(self, tmp_path):
        for name in ("checkpoint-5", "checkpoint-20", "checkpoint-100x", "notes"):
            (tmp_path / name).mkdir()
        staging_dir(tmp_path, 300).mkdir()  # a save killed before its rename
        assert latest_checkpoint(tmp_path).name == "checkpoint-20"
        assert latest_checkpoint(tmp_path / "missing") is None

    def test_latest_in_run_prefers_the_higher_step_of_checkpoints_and_rescue(self, tmp_path):
        for name in ("checkpoints/checkpoint-4", "checkpoints/checkpoint-2", "rescue/checkpoint-6"):
            (tmp_path / name).mkdir(parents=True)
        assert latest_in_run(tmp_path) == tmp_path / "rescue" / "checkpoint-6"  # a save that failed over
        (tmp_path / "checkpoints" / "checkpoint-6").mkdir()
        assert latest_in_run(tmp_path) == tmp_path / "checkpoints" / "checkpoint-6"  # a tie: checkpoints/
        (tmp_path / "checkpoints" / "checkpoint-9").mkdir()
        assert latest_in_run(tmp_path) == tmp_path / "checkpoints" / "checkpoint-9"
        assert latest_in_run(tmp_path / "missing") is None

    def test_prune_keeps_newest(self, tmp_path):
        # 7 checkpoints, keep 3: deleting the first `keep` instead of all but the last `keep` would
        # delete a different set (with 2 * keep checkpoints the two coincide), and name order
        # (1, 10, 1000, 2, 200, 30, 9) differs from step order.
        for step in (1, 10, 2, 30, 200, 9, 1000):
            (tmp_path / f"checkpoint-{step}").mkdir()
        staging_dir(tmp_path, 5000).mkdir()  # a save in progress is neither counted nor deleted
        deleted = prune_checkpoints(tmp_path, keep=3)
        assert sorted(p.name for p in deleted) == ["checkpoint-1", "checkpoint-10", "checkpoint-2", "checkpoint-9"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            ".tmp-checkpoint-5000", "checkpoint-1000", "checkpoint-200", "checkpoint-30"
        ]

    def test_snapshot_taken_before_the_first_step_restores_an_empty_adam_state(self):
        # The discriminators' first step creates Adam's moments; when that step is undone (a
        # non-finite generator half), the next step must be a first step again: a move of exactly
        # lr * g / (|g| + eps) from the restored weights, as a fresh Adam makes it.
        weight = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
        opt = torch.optim.Adam([weight], lr=0.1, betas=(0.5, 0.99))
        snapshot = OptimizerSnapshot(opt)
        weight.grad = torch.tensor([3.0, 1.0], dtype=torch.float64)
        opt.step()
        snapshot.restore()
        assert torch.equal(weight.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64)) and len(opt.state) == 0
        weight.grad = torch.tensor([-1.0, 4.0], dtype=torch.float64)
        opt.step()
        expected = torch.tensor([1.0, -2.0], dtype=torch.float64) - 0.1 * weight.grad / (weight.grad.abs() + 1e-8)
        torch.testing.assert_close(weight.detach(), expected, rtol=1e-15, atol=0)

    def test_restore_after_a_step_gives_back_the_moments_of_that_step(self):
        # A skipped step later in a run: the snapshot holds step 1's Adam moments, and the step
        # after the undone one continues from them, as Adam stepped on g1 then g3 does.
        def fresh():
            weight = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
            return weight, torch.optim.Adam([weight], lr=0.1, betas=(0.5, 0.99))

        g1, g2, g3 = ([3.0, 1.0], [-1.0, 4.0], [0.5, -2.0])
        weight, opt = fresh()
        weight.grad = torch.tensor(g1, dtype=torch.float64)
        opt.step()
        snapshot = OptimizerSnapshot(opt)
        weight.grad = torch.tensor(g2, dtype=torch.float64)
        opt.step()
        snapshot.restore()
        weight.grad = torch.tensor(g3, dtype=torch.float64)
        opt.step()
        reference, ref_opt = fresh()
        for g in (g1, g3):
            reference.grad = torch.tensor(g, dtype=torch.float64)
            ref_opt.step()
        assert torch.equal(weight.detach(), reference.detach())  # the same arithmetic: bit equality
        assert int(opt.state[weight]["step"]) == 2

    def test_train_state_round_trip(self):
        saved = TrainState()
        saved.step, saved.skipped = 17, 3
        loaded = TrainState()
        loaded.load_state_dict(saved.state_dict())
        assert (loaded.step, loaded.skipped) == (17, 3)

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


def test_frame_stride_keeps_every_kth_frame_before_the_split(tmp_path):
    """--frame-stride k: the scan holds frames 0, k, 2k, ... of the decoded video, and the length
    checks and the temporal split count those."""
    frames = 23
    clip = torch.linspace(-1, 1, frames).view(1, frames, 1, 1).expand(3, frames, 16, 16)
    folder = tmp_path / "videos" / "ramp"
    folder.mkdir(parents=True)
    for i in range(frames):
        pixels = ((clip[:, i].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    full = scan_folder(tmp_path / "videos", 3, 16)
    strided = scan_folder(tmp_path / "videos", 3, 16, frame_stride=3)
    assert full.videos[0].shape[1] == frames
    assert torch.equal(strided.videos[0], full.videos[0][:, ::3])
    assert strided.videos[0].shape[1] == 8  # frames 0, 3, ..., 21
    assert temporal_split(8, 3) == (range(0, 5), range(5, 8))
    # Too short once strided: skipped and named, like any short video.
    assert scan_folder(tmp_path / "videos", 9, 16, frame_stride=3).too_short == ["ramp (8 frames)"]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="frame_stride"):
            scan_folder(tmp_path / "videos", 3, 16, frame_stride=bad)


def test_frame_stride_needs_a_dataset():
    with pytest.raises(ConfigError, match="--frame-stride applies to --dataset"):
        TrainConfig(frame_stride=2).validate()
    TrainConfig(frame_stride=1).validate()


def test_shot_cut_splits_videos_at_edited_cuts(tmp_path):
    """--shot-cut: a cut (most pixels change at once) starts a new shot, each shot is a video with
    its own held-out end, and smooth motion, however fast, never splits."""
    size, n = 32, 40
    x = torch.arange(size).float()
    frames = []
    for i in range(n):
        if i < 25:  # shot 1: a bright bar sliding 1 px per frame on black
            frame = ((x.view(1, -1) - i).abs() < 3).float().expand(size, size) * 255
        else:  # shot 2: a flat grey field, brightening slowly
            frame = torch.full((size, size), 120.0 + i)
        frames.append(frame.round().to(torch.uint8))
    video = torch.stack(frames).unsqueeze(0).expand(3, -1, -1, -1).contiguous()  # (3, N, H, W)

    changes = frame_changes(video)
    # Recomputed here: once the bar is inside the frame, its two moving edges change 2 columns of
    # 32 by the full range; the cut to grey changes every pixel.
    assert changes[5].item() == pytest.approx(2 / 32, abs=1e-6)
    assert changes[24].item() == pytest.approx(((video[0, 25].float() - video[0, 24].float()).abs().mean() / 255).item())
    assert changes[24] > 0.4
    assert split_shots(video, 0.3) == [(0, 25), (25, 40)]
    assert split_shots(video, 0.9) == [(0, 40)]  # no change that large: one shot

    folder = tmp_path / "videos" / "two-shots"
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(video[:, i].permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    scan = scan_folder(tmp_path / "videos", 6, size, shot_cut=0.3)
    assert scan.names == ["two-shots [frames 0-24]", "two-shots [frames 25-39]"]
    assert scan.shot_cuts == 1 and "1 shot cuts" in scan.summary()
    assert torch.equal(scan.videos[1], video[:, 25:])
    # Every held-out clip lies inside one shot's end; no training clip crosses the cut either.
    for split in ("train", "heldout"):
        data = VideoFolder(scan, 50, 6, split=split)
        for i in range(50):
            clip = ((data[i] + 1) * 127.5).round().to(torch.uint8)
            in_first = any(torch.equal(clip, video[:, s:s + 6]) for s in range(0, 25 - 5))
            in_second = any(torch.equal(clip, video[:, s:s + 6]) for s in range(25, 40 - 5))
            assert in_first != in_second, (split, i)
    with pytest.raises(ValueError, match="shot_cut"):
        scan_folder(tmp_path / "videos", 6, size, shot_cut=1.5)


def test_shot_cut_needs_a_dataset_and_a_share():
    with pytest.raises(ConfigError, match="--shot-cut applies to --dataset"):
        TrainConfig(shot_cut=0.2).validate()
    with pytest.raises(ConfigError, match="--shot-cut must be in"):
        TrainConfig(shot_cut=1.0, dataset=".").validate()


class TestClipAugment:
    """``VideoFolder(augment=...)``: flips, time reversal and double speed of training clips."""

    @staticmethod
    def _scan() -> FolderScan:
        """One 60-frame video of 2x4 frames: R = frame, G = column (so a mirror shows), B = 0."""
        n = 60
        t = torch.arange(n).view(n, 1, 1).expand(n, 2, 4)
        x = torch.arange(4).view(1, 1, 4).expand(n, 2, 4) * 50
        video = torch.stack([t, x, torch.zeros_like(t)]).to(torch.uint8)  # (C, N, H, W)
        return FolderScan([video], ["v.mp4"], [], [], heldout_fraction=0.2)

    @staticmethod
    def _read(clip: Tensor) -> tuple[list[int], bool]:
        pixels = ((clip + 1) * 127.5).round().long()  # (C, T, H, W)
        frames = pixels[0, :, 0, 0].tolist()
        columns = pixels[1, 0, 0].tolist()
        assert columns in ([0, 50, 100, 150], [150, 100, 50, 0])
        return frames, columns[0] == 150

    def test_each_clip_is_a_window_flipped_reversed_or_sped_up_about_half_the_time(self):
        ds = VideoFolder(self._scan(), 400, frames=5, seed=2, split="train", augment=("flip", "reverse", "speed"))
        counts = {"flip": 0, "reverse": 0, "speed": 0}
        for i in range(400):
            frames, flipped = self._read(ds[i])
            forward = frames if frames[0] < frames[-1] else frames[::-1]
            stride = forward[1] - forward[0]
            assert stride in (1, 2) and forward == list(range(forward[0], forward[0] + 5 * stride, stride)), frames
            assert forward[-1] < 48  # the training part: the first 80% of the 60 frames
            counts["flip"] += flipped
            counts["reverse"] += frames[0] > frames[-1]
            counts["speed"] += stride == 2
        for name, count in counts.items():  # Binomial(400, 1/2): 200 +- 10, so 140..260 is > 6 sigma
            assert 140 < count < 260, (name, count)

    def test_only_the_named_augmentations_and_the_others_draws_unchanged(self):
        scan = self._scan()
        both = VideoFolder(scan, 64, frames=5, seed=2, split="train", augment=("flip", "reverse"))
        flips = VideoFolder(scan, 64, frames=5, seed=2, split="train", augment=("flip",))
        for i in range(64):
            frames, flipped = self._read(flips[i])
            assert frames == sorted(frames) and frames[1] - frames[0] == 1  # neither reversed nor sped up
            both_frames, both_flipped = self._read(both[i])
            assert both_flipped == flipped and sorted(both_frames) == frames  # the flip draw is the same

    def test_without_augmentation_clips_are_as_before(self):
        """No draws are added: the clips are those of a VideoFolder without the option (old runs replay)."""
        scan = self._scan()
        plain, off = VideoFolder(scan, 32, frames=5, seed=2), VideoFolder(scan, 32, frames=5, seed=2, augment=())
        for i in range(32):
            rng = np.random.default_rng([2, 0, i])  # the clip's generator: video, then start
            video, first, end = plain.parts[int(rng.integers(len(plain.parts)))]
            start = first + int(rng.integers(end - first - 5 + 1))
            assert self._read(off[i])[0] == list(range(start, start + 5))
            torch.testing.assert_close(off[i], plain[i], rtol=0, atol=0)

    def test_zoom_crops_the_zoomed_copy_and_resizes_it_down(self, tmp_path):
        # A video whose pixels say where they are: R = 4 * column, G = 4 * row of a 64x64 frame, B =
        # 8 * frame. Scanned at 16 (and 32 for zoom), a zoomed clip covers a square of the 64x64
        # frame from half its side (2x) to all of it (1x), the same in every frame, frames in order.
        n, full = 20, 64
        ys, xs = np.meshgrid(np.arange(full), np.arange(full), indexing="ij")
        frames = np.stack([np.stack([4 * xs, 4 * ys, np.full_like(xs, 8 * t)], -1) for t in range(n)]).astype(np.uint8)
        folder = tmp_path / "v"
        folder.mkdir()
        for t, frame in enumerate(frames):
            iio.imwrite(folder / f"{t:03d}.png", frame)
        scan = scan_folder(tmp_path, frames=4, size=16, zoom=ZOOM)
        assert [v.shape for v in scan.zoomed] == [(3, n, 32, 32)]
        plain = scan_folder(tmp_path, frames=4, size=16)
        assert plain.zoomed == [] and torch.equal(plain.videos[0], scan.videos[0])
        ds = VideoFolder(scan, 300, frames=4, seed=0, augment=("zoom",))
        spans = []
        for i in range(300):
            # The clip's generator as VideoFolder draws it: video, the three other augmentations'
            # draws, start, then the zoom draw.
            rng = np.random.default_rng([0, 0, i])
            _, first, end = ds.parts[int(rng.integers(len(ds.parts)))]
            rng.random(3)
            start = first + int(rng.integers(end - first - 4 + 1))
            clip = ((ds[i] + 1) * 127.5).round()  # (C, T, H, W) levels
            t = clip[2, :, 8, 8] / 8
            assert t.tolist() == [start, start + 1, start + 2, start + 3]  # consecutive frames, in order
            if not rng.random() < 0.5:
                assert torch.equal(ds[i], scan.videos[0][:, start : start + 4].float() / 127.5 - 1)
                continue
            # R rises linearly left to right, the same on every row and frame: the crop is a square
            # window of the source, the same in every frame.
            red = clip[0, :, 0, :] / 4  # source column at each output column
            span = (red[0, -1] - red[0, 0]).item() * 16 / 15  # source columns the crop covers
            spans.append(span)
            assert 0.5 * full * 0.9 <= span <= full * 1.02, span  # between 2x and 1x magnification
            assert torch.equal(clip[1, :, :, 0], clip[1, :1, :, 0].expand(4, -1))
            assert torch.equal(clip[0, :, 0, :], clip[0, :1, 0, :].expand(4, -1))
        assert 105 < len(spans) < 195  # Binomial(300, 1/2): 150 +- 8.7
        assert min(spans) < 0.6 * full and max(spans) > 0.9 * full  # the whole range of magnifications
        with pytest.raises(ValueError, match=r"scan_folder\(\.\.\., zoom=2\)"):
            VideoFolder(plain, 4, frames=4, augment=("zoom",))

    def test_held_out_clips_are_never_augmented_and_bad_names_are_refused(self):
        with pytest.raises(ValueError, match=r"`augment` applies to the train split only"):
            VideoFolder(self._scan(), 4, frames=5, split="heldout", augment=("flip",))
        with pytest.raises(ValueError, match="augment"):
            VideoFolder(self._scan(), 4, frames=5, augment=("jitter",))

    @pytest.mark.parametrize("value, message", [
        ("flip,flip", "--clip-augment must be a comma-separated subset of flip, reverse, speed, zoom without repeats; "
                      "got 'flip,flip'"),
        ("jitter", "--clip-augment must be a comma-separated subset of flip, reverse, speed, zoom without repeats; "
                   "got 'jitter'"),
    ])
    def test_the_setting_is_checked_and_reaches_the_training_set(self, value, message, tmp_path):
        from train.config import ConfigError, TrainConfig

        with pytest.raises(ConfigError) as error:
            TrainConfig(dataset=str(tmp_path), clip_augment=value).validate(environment=False)
        assert str(error.value) == message
        with pytest.raises(ConfigError, match="--clip-augment applies to --dataset folders"):
            TrainConfig(clip_augment="flip").validate(environment=False)
        assert TrainConfig(dataset=str(tmp_path), clip_augment=" speed,flip").clip_augments() == ("speed", "flip")

    def test_the_trainer_decodes_the_zoomed_copy_only_for_zoom(self, video_folder):
        from train.build import build_datasets
        from train.config import TrainConfig

        for augment, zoomed in (("flip,zoom", 3), ("flip", 0)):
            cfg = TrainConfig(dataset=str(video_folder), clip_augment=augment, frames=4, size=16)
            train, heldout = build_datasets(cfg, 8)
            assert len(train.zoomed) == zoomed and heldout.augment == frozenset()
            assert all(z.shape[-1] == ZOOM * 16 for z in train.zoomed)


class TestClipDraw:
    """``VideoFolder(draw=...)`` and ``--clip-draw``: which video a training clip comes from."""

    def test_window_weights_are_each_parts_share_of_the_windows(self):
        scan = _labelled_scan(4)
        ds = VideoFolder(scan, 10, frames=5, draw="window")
        # Training parts are frames [0, cut): cut - 5 + 1 windows each (the cuts are the split's).
        windows = np.array([c - 5 + 1 for c in _CUTS[:4]], dtype=np.float64)
        np.testing.assert_allclose(ds.draw_weights, windows / windows.sum(), rtol=0, atol=1e-15)
        assert VideoFolder(scan, 10, frames=5).draw_weights is None

    @pytest.mark.parametrize("draw", ["video", "window"])
    def test_clips_come_from_each_video_as_often_as_its_weight(self, draw):
        scan = _labelled_scan(4)
        n = 4000
        ds = VideoFolder(scan, n, frames=5, seed=1, draw=draw)
        counts = np.bincount([int(((ds[i][0, 0, 0, 0] + 1) * 127.5).round()) for i in range(n)], minlength=4)
        windows = np.array([c - 5 + 1 for c in _CUTS[:4]], dtype=np.float64)
        p = windows / windows.sum() if draw == "window" else np.full(4, 0.25)
        sd = np.sqrt(n * p * (1 - p))
        assert (np.abs(counts - n * p) < 4 * sd).all(), (counts, n * p)
        # The two draws are far apart on these parts (windows 28, 14, 45, 4): the test tells them apart.
        other = np.full(4, 0.25) if draw == "window" else windows / windows.sum()
        assert (np.abs(counts - n * other) > 4 * np.sqrt(n * other * (1 - other))).any()

    def test_bad_values_are_refused(self, tmp_path):
        with pytest.raises(ValueError, match="draw"):
            VideoFolder(_labelled_scan(2), 4, frames=5, draw="shot")
        with pytest.raises(ValueError, match=r"`draw` applies to the train split only; got 'window' with split 'heldout'"):
            VideoFolder(_labelled_scan(2), 4, frames=5, split="heldout", draw="window")
        with pytest.raises(ConfigError, match="--clip-draw applies to --dataset folders"):
            TrainConfig(clip_draw="window").validate(environment=False)
        with pytest.raises(ConfigError, match="clip-draw"):
            TrainConfig(dataset=str(tmp_path), clip_draw="shot").validate(environment=False)

    def test_the_setting_reaches_the_training_set_only(self, video_folder):
        from train.build import build_datasets

        train, heldout = build_datasets(TrainConfig(dataset=str(video_folder), clip_draw="window", frames=4, size=16), 8)
        assert train.draw_weights is not None and heldout.draw_weights is None
        assert build_datasets(TrainConfig(dataset=str(video_folder), frames=4, size=16), 8)[0].draw_weights is None

"""Datasets for the reference video GAN: procedural moving shapes, or a folder of videos.

Both datasets map an index to one clip ``(C, T, H, W)`` in [-1, 1], deterministically: the index
and the seed pick everything random about the clip. So the data loader needs no shuffling, every
rank of a distributed job sees different clips (its shard of the indices), and a resumed run sees
exactly the clips the interrupted one would have.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "FRAME_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FolderScan",
    "MovingShapes",
    "VideoFolder",
    "scan_folder",
]

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")

# Split ids mixed into the seed so the held-out clips never coincide with training clips.
_SPLITS = {"train": 0, "heldout": 1}

# Bright, saturated colours that stay distinct from the dark background and from each other.
_PALETTE = np.array(
    [
        [1.0, 0.25, 0.2],
        [0.2, 0.85, 0.3],
        [0.25, 0.45, 1.0],
        [1.0, 0.85, 0.2],
        [0.9, 0.3, 0.95],
        [0.2, 0.9, 0.95],
    ],
    dtype=np.float32,
)


class MovingShapes(Dataset):
    """A few coloured discs and squares moving at constant velocity and bouncing off the borders.

    Each shape has a random colour, size, start position and velocity; positions are sub-pixel
    and the edges anti-aliased, so motion is smooth at any speed. Clip ``i`` of a split is the
    same on every machine for a given seed.

    Args:
        length: number of clips (indices ``0 .. length-1``).
        frames: frames per clip ``T``.
        size: frame height and width.
        seed: base seed.
        split: ``"train"`` or ``"heldout"`` (disjoint random streams).
        num_shapes: shapes per clip.
        speed: ``(min, max)`` speed in pixels per frame, scaled with ``size / 32``.
    """

    def __init__(
        self,
        length: int,
        frames: int,
        size: int,
        *,
        seed: int = 0,
        split: str = "train",
        num_shapes: int = 2,
        speed: tuple[float, float] = (1.0, 2.0),
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"`split` must be one of {sorted(_SPLITS)}; got {split!r}")
        self.length, self.frames, self.size = length, frames, size
        self.seed, self.split, self.num_shapes = seed, split, num_shapes
        self.speed = speed
        ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
        self._grid = (ys.astype(np.float32), xs.astype(np.float32))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tensor:
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        size, frames = self.size, self.frames
        scale = size / 32
        video = np.zeros((frames, size, size, 3), dtype=np.float32)
        ys, xs = self._grid
        for _ in range(self.num_shapes):
            radius = rng.uniform(3.5, 6.0) * scale
            square = rng.random() < 0.5
            colour = _PALETTE[rng.integers(len(_PALETTE))]
            pos = rng.uniform(radius, size - radius, size=2)
            angle = rng.uniform(0, 2 * math.pi)
            vel = rng.uniform(*self.speed) * scale * np.array([math.sin(angle), math.cos(angle)])
            for t in range(frames):
                dy, dx = ys - pos[0], xs - pos[1]
                if square:
                    dist = np.maximum(np.abs(dy), np.abs(dx))
                else:
                    dist = np.sqrt(dy * dy + dx * dx)
                # Anti-aliased coverage: 1 inside, 0 outside, a one-pixel linear ramp at the edge.
                alpha = np.clip(radius - dist + 0.5, 0.0, 1.0)[..., None]
                video[t] = video[t] * (1 - alpha) + colour * alpha  # later shapes occlude earlier
                pos, vel = _bounce(pos + vel, vel, radius, size)
        clip = torch.from_numpy(video) * 2 - 1
        return rearrange(clip, "t h w c -> c t h w")


def _bounce(pos: np.ndarray, vel: np.ndarray, radius: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflect a position that left ``[radius, size - radius]`` back inside and flip its velocity."""
    pos, vel = pos.copy(), vel.copy()
    for axis in range(2):
        low, high = radius, size - radius
        if pos[axis] < low:
            pos[axis], vel[axis] = 2 * low - pos[axis], -vel[axis]
        elif pos[axis] > high:
            pos[axis], vel[axis] = 2 * high - pos[axis], -vel[axis]
    return pos, vel


# ----------------------------------------------------------------------------------------------
# A folder of videos or of frame folders


@dataclass
class FolderScan:
    """What :func:`scan_folder` found: the usable videos and what it skipped, by name."""

    videos: list[Tensor]  # each (C, N, size, size) uint8 with N >= frames
    names: list[str]  # source path of each usable video, relative to the folder
    corrupt: list[str]  # unreadable files, "name: reason"
    too_short: list[str]  # readable but fewer than `frames` frames, "name (N frames)"

    def summary(self) -> str:
        return (
            f"{len(self.videos)} usable videos, {len(self.corrupt)} unreadable skipped, "
            f"{len(self.too_short)} shorter than the clip length skipped"
        )


def _read_video(path: Path) -> np.ndarray:
    """All frames of a video file or a folder of frame images as ``(N, H, W, 3)`` uint8."""
    import imageio.v3 as iio

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        frames = [iio.imread(p) for p in files]
    else:
        frames = list(iio.imiter(path))
    if not frames:
        raise ValueError("no frames")
    out = []
    for frame in frames:
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=-1)
        if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
            raise ValueError(f"unexpected frame shape {frame.shape}")
        if out and frame.shape[:2] != out[0].shape[:2]:
            raise ValueError(f"frames of different sizes {out[0].shape[:2]} and {frame.shape[:2]}")
        out.append(frame[..., :3].astype(np.uint8))
    return np.stack(out)


def _resize_crop(video: np.ndarray, size: int) -> Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(3, N, size, size)`` uint8: shorter side to ``size``, centre crop."""
    x = rearrange(torch.from_numpy(video), "n h w c -> n c h w").float()
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[..., top : top + size, left : left + size]
    return rearrange(x.round().clamp(0, 255).to(torch.uint8), "n c h w -> c n h w")


def _candidates(root: Path) -> list[Path]:
    """Video files and frame folders under ``root`` (recursively), sorted."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            found.append(path)
        elif path.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir()):
            found.append(path)
    return found


def scan_folder(root: str | Path, frames: int, size: int) -> FolderScan:
    """Decode every video under ``root`` at ``size`` resolution, skipping broken and short ones.

    Videos are kept in memory as uint8 at the training resolution (a 64x64, 300-frame clip is
    3.7 MB), which keeps the training loop free of decoding work.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--dataset {str(root)!r} is not a folder")
    scan = FolderScan([], [], [], [])
    for path in _candidates(root):
        name = str(path.relative_to(root))
        try:
            video = _read_video(path)
        except Exception as error:  # imageio raises many kinds of errors for broken files
            scan.corrupt.append(f"{name}: {type(error).__name__}: {error}".splitlines()[0][:200])
            continue
        if len(video) < frames:
            scan.too_short.append(f"{name} ({len(video)} frames)")
            continue
        scan.videos.append(_resize_crop(video, size))
        scan.names.append(name)
    return scan


class VideoFolder(Dataset):
    """Random ``T``-frame clips from decoded videos (see :func:`scan_folder`).

    Clip ``i`` comes from a video and start frame drawn from a generator seeded by
    ``(seed, split, i)``. The held-out split reads every fifth video when there are at least
    five, and otherwise shares the videos with training (with a warning).

    Args:
        scan: the result of :func:`scan_folder`.
        length: number of clips (indices).
        frames: frames per clip ``T``.
        seed: base seed.
        split: ``"train"`` or ``"heldout"``.
    """

    def __init__(self, scan: FolderScan, length: int, frames: int, *, seed: int = 0, split: str = "train") -> None:
        if split not in _SPLITS:
            raise ValueError(f"`split` must be one of {sorted(_SPLITS)}; got {split!r}")
        if not scan.videos:
            raise ValueError("no usable videos: " + scan.summary())
        videos = scan.videos
        if len(videos) >= 5:
            held = set(range(0, len(videos), 5))
            keep = held if split == "heldout" else set(range(len(videos))) - held
            videos = [v for i, v in enumerate(videos) if i in keep]
        elif split == "heldout":
            warnings.warn(
                f"only {len(videos)} usable videos (< 5): the held-out clips come from the "
                "training videos, so eval numbers measure fit, not generalisation",
                stacklevel=2,
            )
        self.videos, self.length, self.frames = videos, length, frames
        self.seed, self.split = seed, split

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tensor:
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        video = self.videos[int(rng.integers(len(self.videos)))]
        start = int(rng.integers(video.shape[1] - self.frames + 1))
        clip = video[:, start : start + self.frames].float()
        return clip / 127.5 - 1  # (C, T, H, W) in [-1, 1]

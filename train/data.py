"""Datasets for the reference video GAN: procedural moving shapes, or a folder of videos.

Both datasets map an index to one clip ``(C, T, H, W)`` in [-1, 1], deterministically: the index
and the seed pick everything random about the clip. So the data loader needs no shuffling, every
rank of a distributed job sees different clips (its shard of the indices), and a resumed run sees
exactly the clips the interrupted one would have.

A folder of videos is split in time, not by video: the end of every video is held out for
evaluation (:func:`temporal_split`), so even a single video gives both splits and no training clip
shares a frame with a held-out one.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from genloss._checks import check_choice

__all__ = [
    "FRAME_SUFFIXES",
    "HELDOUT_FRACTION",
    "VIDEO_SUFFIXES",
    "FolderScan",
    "MovingShapes",
    "VideoFolder",
    "scan_folder",
    "frame_changes",
    "shared_videos",
    "split_shots",
    "temporal_split",
]

# Matched case-insensitively. GIF goes through Pillow, every other video through ffmpeg.
VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")

# Share of every video, at its end, held out for evaluation. A fifth keeps most frames for
# training while a 10-second clip still holds out 2 s (dozens of distinct clips at 30 fps).
HELDOUT_FRACTION = 0.2

# Split ids mixed into the seed so the held-out clips never coincide with training clips. "whole"
# draws from every frame of a video: only for videos the run never trained on (eval.py --whole-videos).
_SPLITS = {"train": 0, "heldout": 1, "whole": 2}
# Training-clip augmentations of --dataset videos (VideoFolder's train split; never the held-out one).
CLIP_AUGMENTS = ("flip", "reverse", "speed", "zoom")
# The three drawn together, in this order, before the clip's start (zoom is drawn after it).
_DRAWN_FIRST = CLIP_AUGMENTS[:3]
# How a training clip's video is drawn: every video (or shot) equally often, or every training
# window equally often (so a video's share of the clips is its share of the windows).
CLIP_DRAWS = ("video", "window")
# The zoom augmentation's largest magnification: the folder is also decoded at ZOOM x --size, so a
# zoomed clip is a crop of that copy resized down (never up: no upsampling blur in the targets).
ZOOM = 2

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
        check_choice("split", split, ("train", "heldout"))
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


def temporal_split(num_frames: int, frames: int, heldout_fraction: float = HELDOUT_FRACTION) -> tuple[range, range]:
    """The frames of one video used for training and those held out for evaluation.

    The held-out part is the end of the video, ``h = max(⌊heldout_fraction · num_frames + 1/2⌋, frames)``
    frames long (the share rounded half up, and at least one clip); training uses the
    ``num_frames - h`` frames before it. A video too short to give a clip to each part
    (``num_frames - h < frames``) is used for training only, and its held-out range is empty.
    Clips are drawn inside their split's range, so no training clip contains a held-out frame. The
    two parts touch: the first held-out frame directly follows the last training frame (no gap,
    which short videos could not spare).

    Args:
        num_frames: frames in the video, at least ``frames``.
        frames: frames per clip ``T``.
        heldout_fraction: share of each video held out, in (0, 1).

    Returns:
        ``(range(0, cut), range(cut, num_frames))``, ``cut`` being the first held-out frame
        (``cut == num_frames`` for a training-only video).
    """
    _check_heldout_fraction(heldout_fraction)
    if frames < 1:
        raise ValueError(f"`frames` must be at least 1; got {frames}")
    if num_frames < frames:
        raise ValueError(f"`num_frames` must be at least `frames` ({frames}); got {num_frames}")
    held = max(math.floor(heldout_fraction * num_frames + 0.5), frames)  # round half up
    cut = num_frames - held if num_frames - held >= frames else num_frames
    return range(0, cut), range(cut, num_frames)


def _check_heldout_fraction(heldout_fraction: float) -> None:
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"`heldout_fraction` must be in (0, 1); got {heldout_fraction!r}")


@dataclass
class FolderScan:
    """What :func:`scan_folder` found: the usable videos and what it skipped, by name."""

    videos: list[Tensor]  # each (C, N, size, size) uint8 with N >= frames
    names: list[str]  # source path of each usable video, relative to the folder
    corrupt: list[str]  # unreadable files, "name: reason"
    too_short: list[str]  # readable but fewer than `frames` frames, "name (N frames)"
    unknown: list[str] = field(default_factory=list)  # files neither a video nor a frame of a frame folder
    train_only: list[str] = field(default_factory=list)  # usable, too short to hold out an end, "name (N frames)"
    heldout_fraction: float = HELDOUT_FRACTION  # share of each video's end held out (see temporal_split)
    shot_cuts: int = 0  # cuts found by scan_folder(shot_cut=...); each shot is one of `videos`
    zoomed: list[Tensor] = field(default_factory=list)  # scan_folder(zoom=z): `videos` again at z x size, or []

    def summary(self) -> str:
        text = (
            f"{len(self.videos)} usable videos, {len(self.corrupt)} unreadable skipped, "
            f"{len(self.too_short)} shorter than the clip length skipped, "
            f"{len(self.unknown)} other files ignored"
        )
        if self.unknown:
            text += f" ({_listed(self.unknown)})"
            if any(Path(name).suffix.lower() in FRAME_SUFFIXES for name in self.unknown):
                text += " [frame images belong in one sub-folder per video]"
        if self.shot_cuts:
            text += f"; {self.shot_cuts} shot cuts split the videos into shots, each used as a video"
        if self.videos:
            text += f"; the last {100 * self.heldout_fraction:g}% of each video is held out for evaluation"
        if self.train_only:
            text += f", but {len(self.train_only)} too short to split are training only ({_listed(self.train_only)})"
        return text


def _listed(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def shared_videos(folder: str | Path, other: str | Path) -> list[str]:
    """The videos of ``folder`` (paths relative to it) that ``other`` also holds: the same file or
    frame folder once links are resolved, or a video file with the same bytes under any name.

    Bytes are hashed only for files of equal size, so two folders of distinct videos cost a listing.
    """
    @functools.cache  # a candidate of `other` is hashed once, however many files of `folder` match its size
    def digest(path: Path) -> str:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    theirs = _find(Path(other))[0]
    resolved = {p.resolve() for p in theirs}
    by_size: dict[int, list[Path]] = {}
    for p in theirs:
        if p.is_file():
            by_size.setdefault(p.stat().st_size, []).append(p)
    shared = []
    for path in _find(Path(folder))[0]:
        same = path.resolve() in resolved
        if not same and path.is_file():
            candidates = by_size.get(path.stat().st_size, [])
            same = bool(candidates) and digest(path) in {digest(c) for c in candidates}
        if same:
            shared.append(str(path.relative_to(folder)))
    return shared


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _is_frame(path: Path) -> bool:
    return path.suffix.lower() in FRAME_SUFFIXES


def _natural_key(name: str) -> list:
    """Sort key that puts ``frame_2`` before ``frame_10``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _find(root: Path) -> tuple[list[Path], list[Path]]:
    """Video files and frame folders under ``root`` (recursively, sorted), and all other files.

    A frame folder is a folder that directly holds frame images. Frame images lying directly in
    ``root`` are not a video (``root`` would otherwise swallow a whole folder of clips), so they count
    as other files.
    """
    found, other = [], []
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            if any(p.is_file() and _is_frame(p) for p in path.iterdir()):
                found.append(path)
        elif _is_video(path):
            found.append(path)
        elif not (_is_frame(path) and path.parent != root):  # frames of a frame folder are accounted for
            other.append(path)
    return found, other


def _frames_of(path: Path) -> Iterator[np.ndarray]:
    """The frames of a video file or a frame folder, decoded one at a time, as the decoder gives them."""
    import imageio.v3 as iio

    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and _is_frame(p)]
        for file in sorted(files, key=lambda p: _natural_key(p.name)):
            yield iio.imread(file, plugin="pillow", index=0)  # index=0: the first frame of an APNG
    elif path.suffix.lower() == ".gif":
        yield from iio.imiter(path, plugin="pillow")
    else:
        # imageio-ffmpeg directly: a pipe from an ffmpeg process that decodes every container and
        # codec it knows (and applies rotation metadata), one rgb24 frame per read.
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        try:
            try:
                width, height = next(reader)["size"]
            except IndexError as error:  # the header parser found no "Video:" stream line
                raise ValueError("ffmpeg found no video stream") from error
            for buffer in reader:
                yield np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3)
        finally:
            reader.close()  # stops ffmpeg when the caller stops early (an error, a frame-size change)


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    """One decoded frame as ``(H, W, 3)`` uint8 RGB.

    Grey (``(H, W)`` or ``(H, W, 1)``) is repeated into three channels. Alpha (grey+alpha
    ``(H, W, 2)``, RGBA ``(H, W, 4)``) is dropped and the stored colour kept, as Pillow's
    ``convert("RGB")`` and ffmpeg's rgb24 output (every video file) do: a transparent pixel keeps
    whatever colour it stores, so flatten such frames onto a background first if that matters.
    16-bit frames are scaled to 8 bits (``round(v / 257)``).
    """
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"unexpected frame shape {frame.shape}: expected (H, W) or (H, W, C) with C in 1..4")
    if frame.dtype == np.uint16:
        frame = ((2 * frame.astype(np.uint32) + 257) // 514).astype(np.uint8)  # round(v / 257)
    elif frame.dtype == np.bool_:
        frame = frame.astype(np.uint8) * 255
    elif frame.dtype != np.uint8:
        raise ValueError(f"unexpected frame dtype {frame.dtype}: expected uint8, uint16 or bool")
    colour = frame[..., :1] if frame.shape[-1] <= 2 else frame[..., :3]
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    return colour


def _resize_crop(frame: np.ndarray, size: int) -> Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, size, size)`` uint8: shorter side to ``size``, centre crop.

    Antialiased bilinear resampling on uint8 in and out: torch's fixed-point kernel for it is about
    5x faster than the float one on a 1080p frame and gives the same values to within one level
    (it rounds once, at the end; the float path it replaced rounded the float result).
    """
    h, w = frame.shape[:2]
    x = rearrange(torch.from_numpy(np.require(frame, requirements="CW")), "h w c -> 1 c h w")
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[0, :, top : top + size, left : left + size].contiguous()  # a copy: frees the uncropped frame


def _read_video(path: Path, size: int, on_frame: Callable[[int], None] | None = None,
                *, also: int | None = None) -> tuple[Tensor, Tensor | None]:
    """Decode ``path`` frame by frame, resizing each as it comes: ``(3, N, size, size)`` uint8, and
    with ``also`` the same frames at ``also x also`` (else ``None``).

    Memory holds one full-size frame at a time plus the small resized ones, instead of the whole
    video at full size (a 4-second 1080p clip took 4.5 GB that way).
    """
    out: list[Tensor] = []
    extra: list[Tensor] = []
    first_shape = None
    for frame in _frames_of(path):
        frame = _to_rgb(frame)
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            raise ValueError(f"frames of different sizes {first_shape[:2]} and {frame.shape[:2]}")
        out.append(_resize_crop(frame, size))
        if also is not None:
            extra.append(_resize_crop(frame, also))
        if on_frame is not None:
            on_frame(len(out))
    if not out:
        raise ValueError("no frames")
    return torch.stack(out, dim=1), (torch.stack(extra, dim=1) if also is not None else None)


def scan_folder(
    root: str | Path,
    frames: int,
    size: int,
    *,
    heldout_fraction: float = HELDOUT_FRACTION,
    frame_stride: int = 1,
    shot_cut: float = 0.0,
    progress: bool = False,
    zoom: int = 1,
) -> FolderScan:
    """Decode every video under ``root`` at ``size`` resolution, skipping broken and short ones.

    Each video is decoded one frame at a time and every frame is resized as soon as it is decoded,
    so memory holds one full-size frame plus the result: ``3 x N x size x size`` bytes per video (a
    64x64, 300-frame clip is 3.7 MB). Reading a 60-second 1080p clip at 64x64 peaks at 85 MB above
    the imports, plus 0.2 GB in the ffmpeg process, and takes 13 s of CPU time
    (``benchmarks/bench_video_memory.py``; all frames at full size took 1 GB per second of video).
    Keeping the decoded clips in memory keeps decoding out of the training loop.

    Args:
        root: folder searched recursively for video files (``VIDEO_SUFFIXES``, any case: MP4, WebM,
            AVI, MOV, MKV and M4V through ffmpeg, GIF through Pillow) and frame folders (folders
            holding ``FRAME_SUFFIXES`` images, one frame per file, in natural name order). Every
            other file is counted and named in the summary.
        frames: clip length ``T``; shorter videos are skipped and named.
        size: training resolution. The shorter side is resized to ``size`` (antialiased bilinear)
            and the centre cropped to ``size x size``.
        heldout_fraction: share of every video, at its end, held out for evaluation (see
            :func:`temporal_split`); recorded in the scan for :class:`VideoFolder`.
        frame_stride: keep frames ``0, k, 2k, ...`` of every video (``k`` times the motion between
            consecutive frames, as a lower frame rate); lengths, ``frames`` and the split count the
            kept frames.
        shot_cut: when positive, split every video into shots at the frames whose mean absolute
            change from the previous frame exceeds this fraction of the pixel range
            (:func:`split_shots`, after ``frame_stride``); each shot is then a video of its own,
            with its own held-out end, so no clip spans an edited cut. 0 = off.
        progress: show a progress bar on stderr (pass ``accelerator.is_main_process``).
        zoom: when above 1, also keep every video at ``zoom * size`` (``scan.zoomed``, the same
            frames and shots) for :class:`VideoFolder`'s ``zoom`` augmentation; ``zoom**2`` times
            the memory again.

    Returns:
        A :class:`FolderScan`; its ``summary()`` is one line for the log.
    """
    _check_heldout_fraction(heldout_fraction)
    if isinstance(frame_stride, bool) or not isinstance(frame_stride, int) or frame_stride < 1:
        raise ValueError(f"`frame_stride` must be a positive int; got {frame_stride!r}")
    if isinstance(shot_cut, bool) or not isinstance(shot_cut, (int, float)) or not 0 <= shot_cut < 1:
        raise ValueError(f"`shot_cut` must be a number in [0, 1); got {shot_cut!r}")
    if isinstance(zoom, bool) or not isinstance(zoom, int) or zoom < 1:
        raise ValueError(f"`zoom` must be a positive int; got {zoom!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--dataset {str(root)!r} is not a folder")
    found, other = _find(root)
    scan = FolderScan([], [], [], [], [str(p.relative_to(root)) for p in other], [], heldout_fraction)
    bar = tqdm(found, desc=f"scanning {root}", unit="video", disable=not progress)
    for path in bar:
        name = str(path.relative_to(root))
        on_frame = _frame_counter(bar, name) if progress else None
        try:
            video, big = _read_video(path, size, on_frame, also=zoom * size if zoom > 1 else None)
        except Exception as error:  # the decoders raise many kinds of errors for broken files
            scan.corrupt.append(f"{name}: {type(error).__name__}: {error}".splitlines()[0][:200])
            continue
        if progress:  # its frame count once decoded (on_frame shows counts only while long videos decode)
            bar.set_postfix_str(f"{name}: {video.shape[1]} frames", refresh=False)
        video = video[:, ::frame_stride].contiguous()
        if big is not None:
            big = big[:, ::frame_stride]
        shots = split_shots(video, shot_cut) if shot_cut else [(0, video.shape[1])]
        scan.shot_cuts += len(shots) - 1
        for start, stop in shots:
            part = video[:, start:stop].contiguous()  # a no-op for a single shot
            part_name = name if len(shots) == 1 else f"{name} [frames {start}-{stop - 1}]"
            num_frames = part.shape[1]
            if num_frames < frames:
                scan.too_short.append(f"{part_name} ({num_frames} frames)")
                continue
            if not temporal_split(num_frames, frames, heldout_fraction)[1]:
                scan.train_only.append(f"{part_name} ({num_frames} frames)")
            scan.videos.append(part)
            scan.names.append(part_name)
            if big is not None:  # shots found at --size, so both copies cut at the same frames
                scan.zoomed.append(big[:, start:stop].contiguous())
    return scan


def frame_changes(video: Tensor) -> Tensor:
    """``(N - 1,)`` mean absolute change between consecutive frames of a ``(C, N, H, W)`` uint8
    video, as a fraction of the pixel range (0 = identical frames, 1 = black to white)."""
    video = video.float()
    return (video[:, 1:] - video[:, :-1]).abs().mean(dim=(0, 2, 3)) / 255


def split_shots(video: Tensor, shot_cut: float) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` frame ranges of the shots of a ``(C, N, H, W)`` uint8 video: a new
    shot starts at every frame whose :func:`frame_changes` value from the previous frame exceeds
    ``shot_cut``. Written out rather than taken from a shot-detection library: at training
    resolution an edited cut changes most pixels at once (0.2-0.5 of the range on the bundled
    clips), while fast camera motion stays below 0.1, so one threshold on this mean separates them.
    """
    cuts = (frame_changes(video) > shot_cut).nonzero().flatten().add(1).tolist()
    bounds = [0, *cuts, video.shape[1]]
    return list(zip(bounds[:-1], bounds[1:]))


def _frame_counter(bar: tqdm, name: str) -> Callable[[int], None]:
    """A callback showing ``name: N frames`` next to the bar while a long video decodes: half a
    second after its start, then at most twice a second (the scan shows each decoded count after)."""
    shown = [time.monotonic()]

    def on_frame(count: int) -> None:
        now = time.monotonic()
        if now - shown[0] >= 0.5:
            bar.set_postfix_str(f"{name}: {count} frames")
            shown[0] = now

    return on_frame


class VideoFolder(Dataset):
    """Random ``T``-frame clips from decoded videos (see :func:`scan_folder`).

    Every video is split in time (:func:`temporal_split` with the scan's ``heldout_fraction``): the
    training split draws clips from the start of each video, the held-out split from its end, so
    no training clip shares a frame with a held-out clip. Clip ``i`` comes from a video (uniformly
    among those with a part in this split, or with ``draw="window"`` in proportion to the part's
    windows) and a start frame inside that part, both drawn from a generator seeded by
    ``(seed, split, i)``.

    Args:
        scan: the result of :func:`scan_folder`.
        length: number of clips (indices).
        frames: frames per clip ``T``: the ``frames`` given to :func:`scan_folder`.
        seed: base seed.
        split: ``"train"``, ``"heldout"``, or ``"whole"``: every distinct clip of each video, for
            a folder of videos the model never trained on (a whole-video hold-out). The whole
            split is drawn without replacement: clip ``i`` is the ``i``-th of all ``(video, start)``
            windows in an order shuffled by ``seed``, so no clip repeats before all were given
            (``len(self.windows)``) and a detector's two halves never share one.
        augment: for the train split, any of :data:`CLIP_AUGMENTS`, each drawn per clip from the
            clip's own generator: ``flip`` mirrors it left-right (p = 1/2), ``reverse`` plays it
            backwards (p = 1/2), ``speed`` takes every 2nd frame (p = 1/2, where the part is long
            enough: twice the motion per frame). Real footage offers a few hundred frames; these
            are motions the model would otherwise never see, and each is as plausible as the
            original (mirror-symmetric scenes, time-symmetric motion of rigid objects). ``zoom``
            (p = 1/2) crops a random square from the scan's ``zoomed`` copy (``scan_folder(zoom=
            ZOOM)``) and resizes it down to ``size``: magnification uniform in crop side between 1x
            and ``ZOOM``x, at a random place, so the clip's motion in pixels grows with it and the
            model sees other framings of the same footage.
        draw: for the train split, ``"video"`` (each video, or shot of a ``shot_cut`` scan, as
            often as any other) or ``"window"``: each video in proportion to its ``T``-frame
            windows, ``P(v) = (L_v - T + 1) / sum_u (L_u - T + 1)`` for a part of ``L_v`` frames, so
            every training window is equally likely and a folder whose one video has several shots
            is not drawn mostly from that video. The probabilities are :attr:`draw_weights`.

    Raises:
        ValueError: no usable video; a video shorter than ``frames``; for ``"heldout"``, no video
            long enough to hold out its end (see ``scan.train_only``).
    """

    def __init__(self, scan: FolderScan, length: int, frames: int, *, seed: int = 0, split: str = "train",
                 augment: tuple[str, ...] = (), draw: str = "video") -> None:
        check_choice("split", split, tuple(_SPLITS))
        for name in augment:
            check_choice("augment", name, CLIP_AUGMENTS)
        check_choice("draw", draw, CLIP_DRAWS)
        if augment and split != "train":
            raise ValueError(f"`augment` applies to the train split only; got {tuple(augment)} with split {split!r}")
        if draw != "video" and split != "train":
            raise ValueError(f"`draw` applies to the train split only; got {draw!r} with split {split!r}")
        self.augment = frozenset(augment)
        if "zoom" in self.augment and len(scan.zoomed) != len(scan.videos):
            raise ValueError("the `zoom` augmentation crops the scan's zoomed copy of each video: scan the folder "
                             f"with scan_folder(..., zoom={ZOOM})")
        self.zoomed = scan.zoomed
        if not scan.videos:
            raise ValueError("no usable videos: " + scan.summary())
        self.videos, self.length, self.frames = scan.videos, length, frames
        self.seed, self.split = seed, split
        # (video index, first frame, end frame) of every part this split draws clips from.
        self.parts: list[tuple[int, int, int]] = []
        for i, video in enumerate(scan.videos):
            if video.shape[1] < frames:
                raise ValueError(
                    f"`frames` is {frames} but video {scan.names[i]!r} has {video.shape[1]}: "
                    "scan the folder with the clip length you train with"
                )
            if split == "whole":
                part = range(video.shape[1])
            else:
                part = temporal_split(video.shape[1], frames, scan.heldout_fraction)[split == "heldout"]
            if len(part) >= frames:
                self.parts.append((i, part.start, part.stop))
        if not self.parts:
            longest = max(video.shape[1] for video in scan.videos)
            raise ValueError(
                f"no video is long enough to hold out its last {100 * scan.heldout_fraction:g}% "
                f"and keep a {frames}-frame clip on each side (the longest has {longest} frames); "
                "use longer videos, fewer frames per clip or a smaller held-out fraction"
            )
        # None: uniform over the parts (an integer draw, as before `draw` existed, so such runs repeat).
        self.draw_weights: np.ndarray | None = None
        if draw == "window":
            counts = np.array([end - first - frames + 1 for _, first, end in self.parts], dtype=np.float64)
            self.draw_weights = counts / counts.sum()
        self.windows: list[tuple[int, int]] = []
        if split == "whole":
            every = [(v, start) for v, first, end in self.parts for start in range(first, end - frames + 1)]
            order = np.random.default_rng([seed, _SPLITS["whole"]]).permutation(len(every))
            self.windows = [every[i] for i in order]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tensor:
        if self.windows:
            video, start = self.windows[index % len(self.windows)]
            return self.videos[video][:, start : start + self.frames].float() / 127.5 - 1
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        if self.draw_weights is None:
            video, first, end = self.parts[int(rng.integers(len(self.parts)))]
        else:
            video, first, end = self.parts[int(rng.choice(len(self.parts), p=self.draw_weights))]
        # Drawn in a fixed order whatever is enabled, so enabling one augmentation leaves the others'
        # draws alone; not drawn at all without augmentation, so such clips are what they always were.
        flip = reverse = fast = False
        if self.augment:
            flip, reverse, fast = (rng.random(3) < 0.5) & np.array([a in self.augment for a in _DRAWN_FIRST])
        stride = 2 if fast and end - first >= 2 * self.frames - 1 else 1
        span = stride * (self.frames - 1) + 1
        start = first + int(rng.integers(end - first - span + 1))
        clip = self.videos[video][:, start : start + span : stride]  # (C, T, H, W) uint8
        if "zoom" in self.augment and rng.random() < 0.5:  # drawn after the others: their draws unchanged
            big = self.zoomed[video]
            size, full = clip.shape[-1], big.shape[-1]
            side = int(rng.integers(size, full + 1))
            top, left = (int(v) for v in rng.integers(full - side + 1, size=2))
            crop = rearrange(big[:, start : start + span : stride, top : top + side, left : left + side],
                             "c t h w -> t c h w")
            crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            clip = rearrange(crop, "t c h w -> c t h w")
        clip = clip.float()
        if flip:
            clip = clip.flip(-1)
        if reverse:
            clip = clip.flip(1)
        return clip / 127.5 - 1  # (C, T, H, W) in [-1, 1]

"""Clip rendering for the sample gallery: GIF + MP4 grids and progression strips.

``write_clips`` renders one sample step of a run into ``<run_dir>/step-NNNNNN.{gif,mp4}`` and
``<run_dir>/strip-NNNNNN.png``. Every file is written to a temporary name and moved into place
with ``os.replace``, so a viewer of the gallery never sees half a file.

Grid layout (one animation frame per clip frame ``t``): samples side by side, up to ``MAX_COLUMNS``
per band; in each band the top row is the model (context frames with an amber frame, generated
frames with a blue frame) and the bottom row the ground truth (grey frame). A timeline above the
grid shows which frame is playing and where the context ends.
"""

from __future__ import annotations

import io
import math
import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from genloss._checks import check_video

__all__ = ["atomic_write", "published", "write_clips"]

MAX_COLUMNS = 8  # samples per band of the clip grid; more samples wrap into further bands
TILE_PX = 128  # small frames are upscaled (nearest) by an integer factor towards this size
STRIP_PX = 64  # same for the progression strip thumbnails
STRIP_SAMPLES = 2  # samples shown in each progression strip

BACKGROUND = (20, 22, 27)
INK = (200, 204, 212)
CONTEXT = (245, 166, 35)  # amber: frames given to the model
GENERATED = (59, 130, 246)  # blue: frames the model produced
TRUTH = (107, 114, 128)  # grey: ground truth
BORDER, GAP, MARGIN, HEADER, GUTTER = 3, 6, 8, 24, 22  # grid geometry, in output pixels


# --------------------------------------------------------------------------------------------
# atomic files


def _new_hidden_file(path: Path) -> Path:
    """Create an empty, uniquely named hidden file beside ``path``, with mode ``0o666`` less the
    process umask (the mode any new file gets). ``tempfile.mkstemp`` would make it 0600, and
    fixing that afterwards means knowing the umask, which can only be read by setting it:
    ``os.umask`` is process-wide, so that would race with other threads creating files."""
    for _ in range(100):
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(6)}{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path} after 100 tries")


@contextmanager
def published(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path``; on success it atomically becomes ``path``
    (with the permissions of any new file: ``0o666`` less the umask)."""
    tmp = _new_hidden_file(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left if something failed


def atomic_write(path: Path, data: bytes) -> None:
    with published(path) as tmp:
        tmp.write_bytes(data)


def _image_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# clip rendering


def _to_uint8(name: str, video: Tensor) -> np.ndarray:
    """``(N, C, T, H, W)`` in [-1, 1] on any device -> ``(N, T, H, W, C)`` uint8 on the host."""
    video = video.detach().float().cpu()
    if not torch.isfinite(video).all():
        warnings.warn(
            f"write_clips: `{name}` contains NaN or Inf; those pixels are drawn black",
            RuntimeWarning,
            stacklevel=3,
        )
        video = torch.nan_to_num(video, nan=-1.0, posinf=1.0, neginf=-1.0)
    # Values a hair outside [-1, 1] (resampling overshoot) are clamped: display quantisation.
    pixels = ((video.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return rearrange(pixels, "n c t h w -> n t h w c").numpy()


def _check_clips(context: Tensor, generated: Tensor, truth: Tensor) -> None:
    """Validate the three clip tensors against each other."""
    context = check_video("context", context, min_frames=0)
    generated = check_video("generated", generated)
    truth = check_video("truth", truth)
    n, c, t, h, w = truth.shape
    if c != 3:
        raise ValueError(f"`truth` must have 3 (RGB) channels in dim 1; got {tuple(truth.shape)}")
    k = context.shape[2]
    for name, x, frames in (("context", context, k), ("generated", generated, t - k)):
        expected = (n, c, frames, h, w)
        if tuple(x.shape) != expected:
            raise ValueError(
                f"`{name}` must have shape (N, C, {'K' if name == 'context' else 'T-K'}, H, W) = "
                f"{expected} to match `truth` {tuple(truth.shape)} and K={k} context frames; "
                f"got {tuple(x.shape)}"
            )


def _upscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of an ``(H, W, C)`` frame by an integer factor."""
    return frame.repeat(factor, axis=0).repeat(factor, axis=1)


def _paste(canvas: np.ndarray, frame: np.ndarray, y: int, x: int, colour: tuple, border: int):
    """Draw ``frame`` at ``(y, x)`` inside a ``border``-pixel frame of ``colour``."""
    h, w = frame.shape[:2]
    canvas[y : y + h + 2 * border, x : x + w + 2 * border] = colour
    canvas[y + border : y + border + h, x + border : x + border + w] = frame


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or without FreeType: bitmap font
        return ImageFont.load_default()


def _draw_header(canvas: np.ndarray, t: int, k: int, frames: int) -> np.ndarray:
    """Timeline (one cell per frame, context amber, generated blue, current one filled) + label."""
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for i in range(frames):
        x, colour = GUTTER + MARGIN + i * 15, CONTEXT if i < k else GENERATED
        draw.rectangle((x, 6, x + 12, 18), fill=colour if i == t else None, outline=colour)
    label = f"frame {t + 1}/{frames}  " + ("context (given)" if t < k else "generated")
    colour = CONTEXT if t < k else INK
    draw.text((GUTTER + MARGIN + frames * 15 + 8, 5), label, fill=colour, font=_font(13))
    return np.asarray(image)


def _row_label(canvas: np.ndarray, text: str, y: int, height: int) -> None:
    """Write ``text`` rotated 90 degrees into the left gutter, centred on rows ``y .. y+height``."""
    font = _font(12)
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    label = Image.new("RGB", (box[2] + 2, GUTTER - 4), BACKGROUND)
    ImageDraw.Draw(label).text((1, 1), text, fill=INK, font=font)
    label = np.asarray(label.rotate(90, expand=True))[:height]
    top = y + max(0, (height - label.shape[0]) // 2)
    canvas[top : top + label.shape[0], 2 : 2 + label.shape[1]] = label


def _padded(size: int, multiple: int = 16) -> int:
    # H.264 works on 16x16 macro blocks; padding here keeps ffmpeg from resizing the grid.
    return math.ceil(size / multiple) * multiple


def _grid_frames(context: np.ndarray, generated: np.ndarray, truth: np.ndarray) -> list[np.ndarray]:
    """The animated grid, one ``(H, W, 3)`` uint8 image per clip frame."""
    n, t, h, w = truth.shape[:4]
    k = context.shape[1]
    model = np.concatenate([context, generated], axis=1)  # (N, T, H, W, C)
    factor = max(1, TILE_PX // max(h, w))
    tile_h, tile_w = h * factor + 2 * BORDER, w * factor + 2 * BORDER
    columns = min(n, MAX_COLUMNS)
    bands = math.ceil(n / columns)
    band_h = 2 * tile_h + BORDER + 2 * GAP
    width = _padded(GUTTER + 2 * MARGIN + columns * tile_w + (columns - 1) * GAP)
    height = _padded(HEADER + MARGIN + bands * band_h)
    background = np.empty((height, width, 3), np.uint8)
    background[:] = BACKGROUND
    for band in range(bands):
        y = HEADER + band * band_h
        _row_label(background, "model", y, tile_h)
        _row_label(background, "truth", y + tile_h + BORDER, tile_h)
    frames = []
    for i in range(t):
        canvas = background.copy()
        for s in range(n):
            band, column = divmod(s, columns)
            x = GUTTER + MARGIN + column * (tile_w + GAP)
            y = HEADER + band * band_h
            marked = CONTEXT if i < k else GENERATED
            _paste(canvas, _upscale(model[s, i], factor), y, x, marked, BORDER)
            _paste(canvas, _upscale(truth[s, i], factor), y + tile_h + BORDER, x, TRUTH, BORDER)
        frames.append(_draw_header(canvas, i, k, t))
    return frames


def _strip(context: np.ndarray, generated: np.ndarray) -> Image.Image:
    """Frames side by side for the first ``STRIP_SAMPLES`` samples, context framed amber."""
    model = np.concatenate([context, generated], axis=1)[:STRIP_SAMPLES]  # (S, T, H, W, C)
    s, t, h, w = model.shape[:4]
    k = context.shape[1]
    factor = max(1, STRIP_PX // max(h, w))
    border, gap = 2, 2
    tile_h, tile_w = h * factor + 2 * border, w * factor + 2 * border
    canvas = np.empty((s * tile_h + (s + 1) * gap, t * tile_w + (t + 1) * gap, 3), np.uint8)
    canvas[:] = BACKGROUND
    for row in range(s):
        for i in range(t):
            colour = CONTEXT if i < k else GENERATED
            y, x = gap + row * (tile_h + gap), gap + i * (tile_w + gap)
            _paste(canvas, _upscale(model[row, i], factor), y, x, colour, border)
    return Image.fromarray(canvas)


def _gif_bytes(frames: list[np.ndarray], fps: int) -> bytes:
    images = [Image.fromarray(f).quantize(255, method=Image.Quantize.MEDIANCUT) for f in frames]
    # loop=0: forever; no optimize, so every frame stays full-size and decoders count exactly T.
    return _image_bytes(images[0], format="GIF", save_all=True, append_images=images[1:],
                        duration=round(1000 / fps), loop=0, disposal=1, optimize=False)  # fmt: skip


def _write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """H.264 / yuv420p with the index up front (``+faststart``): what every browser plays."""
    height, width = frames[0].shape[:2]
    with published(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p", quality=None, macro_block_size=16, ffmpeg_log_level="error",
            output_params=["-crf", "18", "-preset", "medium", "-movflags", "+faststart"],
        )  # fmt: skip
        writer.send(None)  # start the generator
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()


def write_clips(
    run_dir: Path, step: int, context: Tensor, generated: Tensor, truth: Tensor, *, fps: int = 8
) -> dict[str, Path]:
    """Write one sample step: an animated grid as GIF and MP4, and a progression strip PNG.

    Each animation frame ``t`` shows, per sample, the model row (context frame ``t`` for
    ``t < K`` framed amber, then generated frame ``t - K`` framed blue) above the ground-truth row
    (framed grey); for ``K = 0`` the truth row is simply a real clip for reference. Frames are
    upscaled (nearest) by an integer factor towards 128 px and the grid is padded to multiples of
    16 px, so the MP4 (H.264, yuv420p) is never resized by the encoder.

    Args:
        run_dir: the run's sample folder (created if missing).
        step: training step, used in the file names (``step-000100.gif``).
        context: ``(N, 3, K, H, W)`` context frames in [-1, 1]; ``K`` may be 0.
        generated: ``(N, 3, T-K, H, W)`` generated continuation in [-1, 1].
        truth: ``(N, 3, T, H, W)`` ground-truth clips in [-1, 1].
        fps: playback rate of the GIF and MP4.

    Returns:
        ``{"gif": path, "mp4": path, "strip": path}``.
    """
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"`step` must be a non-negative int; got {step!r}")
    if not isinstance(fps, int) or isinstance(fps, bool) or fps < 1:
        raise ValueError(f"`fps` must be a positive int; got {fps!r}")
    _check_clips(context, generated, truth)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx, gen = _to_uint8("context", context), _to_uint8("generated", generated)
    real = _to_uint8("truth", truth)
    frames = _grid_frames(ctx, gen, real)
    paths = {
        "gif": run_dir / f"step-{step:06d}.gif",
        "mp4": run_dir / f"step-{step:06d}.mp4",
        "strip": run_dir / f"strip-{step:06d}.png",
    }
    atomic_write(paths["strip"], _image_bytes(_strip(ctx, gen), format="PNG", optimize=True))
    _write_mp4(paths["mp4"], frames, fps)
    # The GIF goes last: the gallery lists a step once its GIF exists, so the others are there too.
    atomic_write(paths["gif"], _gif_bytes(frames, fps))
    return paths

"""The sample gallery: clip grids (GIF + MP4), progression strips, loss curves and a static page.

``write_clips`` renders one sample step of a run into ``<run_dir>/step-NNNNNN.{gif,mp4}`` and
``<run_dir>/strip-NNNNNN.png``; ``update_gallery`` redraws the run's ``curves.png``, records
``run.json`` and rewrites ``<samples_dir>/index.html`` from every run folder. The page is static,
uses relative links only and is valid at every moment of a run: every file is written to a temporary
name and moved into place with ``os.replace``, so a viewer never sees half a file.

Grid layout (one animation frame per clip frame ``t``): samples side by side, up to ``MAX_COLUMNS``
per band; in each band the top row is the model (context frames with an amber frame, generated
frames with a blue frame) and the bottom row the ground truth (grey frame). A timeline above the
grid shows which frame is playing and where the context ends.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
import string
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import imageio_ffmpeg
import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from genloss._checks import check_video

__all__ = ["read_metrics", "update_gallery", "write_clips"]

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

_STEP_FILE = re.compile(r"^step-(\d+)\.gif$")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask so published files get the usual 0644, not mkstemp's 0600
_TEMPLATE = Path(__file__).with_name("gallery_template.html")
_EVAL_NAMES = {  # eval key -> (card label, reading hint); other eval/* keys are shown as logged
    "eval/motion": ("motion", "1.0 is right"),
    "eval/lpips": ("LPIPS", "lower is better"),
    "eval/tlp": ("tLP", "lower is better"),
}


# --------------------------------------------------------------------------------------------
# atomic files


@contextmanager
def _published(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path``; on success it atomically becomes ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # only left if something failed


def _atomic_write(path: Path, data: bytes) -> None:
    with _published(path) as tmp:
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
    with _published(path) as tmp:
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
    _atomic_write(paths["strip"], _image_bytes(_strip(ctx, gen), format="PNG", optimize=True))
    _write_mp4(paths["mp4"], frames, fps)
    # The GIF goes last: the gallery lists a step once its GIF exists, so the others are there too.
    _atomic_write(paths["gif"], _gif_bytes(frames, fps))
    return paths


# --------------------------------------------------------------------------------------------
# metrics and curves


def read_metrics(metrics_path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` that parse; a missing file, blank lines and a partial
    last line (a run still writing) are skipped, as is any record without an integer ``"step"``."""
    try:
        text = Path(metrics_path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _series(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """``{key: (steps, values)}`` for every numeric key, in first-logged order."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        for key, value in record.items():
            if key != "step" and _is_number(value):
                steps, values = series.setdefault(key, ([], []))
                steps.append(record["step"])
                values.append(float(value))
    return series


def _smooth(values: list[float]) -> np.ndarray:
    """Debiased exponential moving average over about a tenth of the run, so noisy GAN losses
    show a trend (non-finite values are skipped)."""
    weight = min(0.98, 1.0 - 10.0 / len(values))
    out, average, total = np.empty(len(values)), 0.0, 0.0
    for i, v in enumerate(values):
        if math.isfinite(v):
            average, total = weight * average + (1 - weight) * v, weight * total + (1 - weight)
        out[i] = average / total if total > 0 else math.nan
    return out


def _curves_png(records: list[dict], title: str) -> bytes:
    """One readable panel per logged loss term, then the eval metrics (PSNR with its baseline)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg explicitly: no display needed
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = _series(records)
    panels: list[tuple[str, list[str]]] = [(k, [k]) for k in series if not k.startswith("eval/")]
    evals = [k for k in series if k.startswith("eval/")]
    if "eval/psnr" in evals or "eval/psnr_baseline" in evals:
        pair = [k for k in ("eval/psnr", "eval/psnr_baseline") if k in series]
        panels.append(("eval PSNR (dB)", pair))
    panels += [(k, [k]) for k in evals if k not in ("eval/psnr", "eval/psnr_baseline")]
    columns = min(3, max(1, len(panels)))  # 3 x 360 px: shown near 1:1 on the page
    rows = max(1, math.ceil(len(panels) / columns))
    figure = Figure(figsize=(3.6 * columns, 2.5 * rows + 0.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title.replace("$", r"\$"), fontsize=11, fontweight="bold", color="#1f2328")
    if not panels:
        figure.text(0.5, 0.5, "no metrics logged yet", ha="center", va="center", color="#6b7280")
    for index, (name, keys) in enumerate(panels):
        ax = figure.add_subplot(rows, columns, index + 1)
        for key in keys:
            steps, values = series[key]
            if key.startswith("eval/"):
                style = dict(marker="o", markersize=3, linewidth=1.4)
                if key == "eval/psnr_baseline":
                    style.update(color="#9ca3af", linestyle="--", label="copy last frame")
                else:
                    style.update(color="#2563eb", label="model")
                ax.plot(steps, values, **style)
            else:
                smooth = len(values) >= 40  # raw values pale behind their trend
                dots = dict(marker="o", markersize=3) if len(values) < 20 else {}  # 1 point shows
                ax.plot(steps, values, color="#93c5fd" if smooth else "#1d4ed8", linewidth=0.8, **dots)
                if smooth:
                    ax.plot(steps, _smooth(values), color="#1d4ed8", linewidth=1.4)
        if name == "eval/motion":
            ax.axhspan(0.7, 1.3, color="#22c55e", alpha=0.12, linewidth=0)
            ax.axhline(1.0, color="#16a34a", linewidth=0.8, linestyle=":")
        if len(keys) > 1:
            ax.legend(fontsize=8, frameon=False)
        ax.set_title(name.replace("$", r"\$"), fontsize=10)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.grid(alpha=0.25, linewidth=0.5)
        ax.set_xlabel("step", fontsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# run.json and the page


def _sample_steps(run_dir: Path) -> list[int]:
    """Steps whose GIF is in place (written last by ``write_clips``), ascending."""
    if not run_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in run_dir.iterdir() if (m := _STEP_FILE.match(p.name)))


def _latest_eval(records: list[dict]) -> dict | None:
    evals = [r for r in records if any(k.startswith("eval/") for k in r)]
    if not evals:
        return None
    last = evals[-1]
    return {"step": last["step"], **{k: v for k, v in last.items() if k.startswith("eval/")}}


def _fmt(value: object) -> str:
    """Floats with 4 significant digits, always recognisable as floats (``1.0``, not ``1``)."""
    if isinstance(value, float) and math.isfinite(value):
        text = f"{value:.4g}"
        return text if any(c in text for c in ".e") else f"{text}.0"
    return str(value)


def _e(value: object) -> str:
    return html.escape(_fmt(value), quote=True)


def _link(run_name: str, filename: str) -> str:
    """A relative, percent-encoded, HTML-escaped link to a file of a run folder."""
    return html.escape(f"{quote(run_name, safe='')}/{quote(filename)}", quote=True)


def _date(created: object) -> str:
    try:
        moment = datetime.fromisoformat(str(created))
    except ValueError:
        return str(created) if created else "date unknown"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


# config keys shown as loss chips
_LOSS_KEY = re.compile(r"_(weight|loss|gamma|interval|start|ramp|warmup)$")


def _loss_chips(config: dict) -> str:
    """One chip per loss setting (``l1_weight``, ``adv_loss``, ``r1_gamma``...); terms that are
    off (zero weight or gamma, a false flag, the perceptual weight with no perceptual net) greyed."""
    chips = []
    for key, value in config.items():
        if _LOSS_KEY.search(key) and isinstance(value, (int, float, str)):
            off = value is False or (key.endswith(("_weight", "_gamma")) and value == 0)
            off |= key == "perceptual_weight" and config.get("perceptual") == "none"
            text = ("on" if value else "off") if isinstance(value, bool) else _fmt(value)
            label = _e(key.removesuffix("_weight"))
            kind = "chip off" if off else "chip"
            chips.append(f'<span class="{kind}">{label} <b>{html.escape(text)}</b></span>')
    return "".join(chips) or "<i>none recorded</i>"


def _settings(config: dict) -> list[tuple[str, str]]:
    """The key settings, in reading order; keys missing from ``config`` are left out."""
    k, size = config.get("context_frames"), config.get("size")
    shown = {
        "context_frames": ("task", f"continuation ({k} context frames)" if k else "unconditional"),
        "frames": ("frames", config.get("frames")),
        "size": ("size", f"{size}×{size}" if isinstance(size, int) else size),
        "dataset": ("dataset", config.get("dataset") or "moving shapes (built-in)"),
        "batch_size": ("batch size", config.get("batch_size")),
        "max_steps": ("max steps", config.get("max_steps")),
        "perceptual": ("perceptual", config.get("perceptual")),
        "world_size": ("world size", config.get("world_size")),
        "mixed_precision": ("precision", config.get("mixed_precision")),
        "seed": ("seed", config.get("seed")),
    }
    return [(label, _fmt(value)) for key, (label, value) in shown.items() if key in config]


def _templates() -> dict[str, string.Template]:
    """The ``<!--@name-->`` blocks of ``gallery_template.html``."""
    parts = re.split(r"^<!--@(\w+)-->\n", _TEMPLATE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {name: string.Template(text) for name, text in zip(parts[1::2], parts[2::2])}


def _status(last_step: object, max_steps: object) -> str:
    if isinstance(last_step, int) and isinstance(max_steps, int) and last_step >= max_steps:
        return '<span class="pill done">finished</span>'
    of = f" of {_e(max_steps)}" if max_steps is not None else ""
    return f'<span class="pill live">step {_e(last_step or 0)}{of} · running or stopped</span>'


def _eval_cards(latest: dict | None) -> str:
    if not latest:
        return '<p class="empty">No evaluation yet.</p>'
    cards = []
    psnr, base = latest.get("eval/psnr"), latest.get("eval/psnr_baseline")
    if _is_number(psnr):
        note = ""
        if _is_number(base):
            trend = "up" if psnr > base else "down"
            delta = f"{psnr - base:+.2f} dB vs copy-last-frame {base:.2f}"
            note = f'<small class="{trend}">{delta}</small>'
        cards.append(f'<div class="card"><span>PSNR</span><b>{psnr:.2f} dB</b>{note}</div>')
    for key, value in latest.items():
        if key in ("step", "eval/psnr", "eval/psnr_baseline") or not _is_number(value):
            continue
        label, hint = _EVAL_NAMES.get(key, (key.removeprefix("eval/"), ""))
        card = f"<span>{_e(label)}</span><b>{_e(value)}</b><small>{_e(hint)}</small>"
        cards.append(f'<div class="card">{card}</div>')
    at = f'<p class="at">eval at step {_e(latest["step"])}</p>'
    return f'<div class="evals">{"".join(cards)}{at}</div>'


def _section(record: dict, anchor: str, templates: dict[str, string.Template]) -> str:
    """One run's ``<section>``; every value is escaped here, the templates hold only markup."""
    name, config = record["run_name"], record.get("config") or {}
    steps = record.get("sample_steps") or []
    samples = '<p class="empty">No samples written yet.</p>'
    if steps:
        strips = "\n".join(
            templates["strip"].substitute(step=s, src=_link(name, f"strip-{s:06d}.png")) for s in steps
        )
        samples = templates["samples"].substitute(
            anchor=anchor,
            step=steps[-1],
            gif=_link(name, f"step-{steps[-1]:06d}.gif"),
            mp4=_link(name, f"step-{steps[-1]:06d}.mp4"),
            strips=strips,
        )
    return templates["run"].substitute(
        anchor=anchor,
        name=_e(name),
        date=_e(_date(record.get("started"))),
        status=_status(record.get("last_step"), config.get("max_steps")),
        settings="".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _settings(config)),
        losses=_loss_chips(config),
        evals=_eval_cards(record.get("latest_eval")),
        samples=samples,
        curves=_link(name, "curves.png"),
        config="".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in config.items()),
    )


def _summary_row(record: dict, anchor: str, templates: dict[str, string.Template]) -> str:
    config, latest = record.get("config") or {}, record.get("latest_eval") or {}
    psnr, base, motion = (latest.get(k) for k in ("eval/psnr", "eval/psnr_baseline", "eval/motion"))
    return templates["summary"].substitute(
        anchor=anchor,
        name=_e(record["run_name"]),
        date=_e(_date(record.get("started"))),
        step=_e(record.get("last_step") or 0),
        max_steps=_e(config.get("max_steps", "?")),
        delta=f"{psnr - base:+.2f} dB" if _is_number(psnr) and _is_number(base) else "–",
        motion=_e(motion) if _is_number(motion) else "–",
    )


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``, or ``{}`` if it is missing or not a JSON object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _load_runs(samples_dir: Path) -> list[dict]:
    """Every run folder's ``run.json``, newest first (by start time, then file time)."""
    runs = []
    for path in samples_dir.glob("*/run.json"):
        if not (record := _read_json(path)):
            warnings.warn(f"gallery: skipping unreadable {path}", RuntimeWarning, stacklevel=3)
            continue
        record["run_name"] = path.parent.name  # the folder is what links point into
        runs.append((str(record.get("started", "")), path.stat().st_mtime, record))
    runs.sort(key=lambda r: (r[0], r[1]), reverse=True)
    return [r[2] for r in runs]


def _index_html(samples_dir: Path) -> str:
    runs, templates = _load_runs(samples_dir), _templates()
    # Anchors must be unique and safe whatever the run names are.
    slugs = [re.sub(r"[^A-Za-z0-9_-]+", "-", r["run_name"]) for r in runs]
    anchors = [f"run-{i}-{slug}" for i, slug in enumerate(slugs)]
    sections = [_section(r, a, templates) for r, a in zip(runs, anchors)]
    return templates["page"].substitute(
        updated=html.escape(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        count=len(runs),
        summary="\n".join(_summary_row(r, a, templates) for r, a in zip(runs, anchors)),
        sections="\n".join(sections) or '<p class="empty">No runs yet.</p>',
    )


def update_gallery(samples_dir: Path, run_name: str, config: dict, metrics_path: Path) -> Path:
    """Redraw ``curves.png`` and ``run.json`` of one run and rewrite ``<samples_dir>/index.html``.

    Args:
        samples_dir: the gallery root; each run has a folder ``<samples_dir>/<run_name>/``.
        run_name: this run's folder name.
        config: the trainer's resolved config (any keys; missing ones are left off the page).
        metrics_path: the run's ``metrics.jsonl`` (may be missing, empty or end mid-line).

    Returns:
        The path of ``index.html``.
    """
    if not isinstance(run_name, str) or not run_name or run_name in (".", "..") or "/" in run_name:
        raise ValueError(f"`run_name` must be a folder name (non-empty, no '/'); got {run_name!r}")
    if not isinstance(config, dict):
        raise TypeError(f"`config` must be a dict; got {type(config).__name__}")
    samples_dir = Path(samples_dir)
    run_dir = samples_dir / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    records = read_metrics(metrics_path)
    _atomic_write(run_dir / "curves.png", _curves_png(records, run_name))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    previous = _read_json(run_dir / "run.json")
    record = {
        "run_name": run_name,
        # the config's creation time, else the first time this run reached the gallery
        "started": str(config.get("created") or previous.get("started", now)),
        "updated": now,
        "last_step": max((r["step"] for r in records), default=None),
        "latest_eval": _latest_eval(records),
        "sample_steps": _sample_steps(run_dir),
        "config": config,
    }
    _atomic_write(run_dir / "run.json", json.dumps(record, indent=2, default=str).encode())
    index = samples_dir / "index.html"
    _atomic_write(index, _index_html(samples_dir).encode("utf-8"))
    return index

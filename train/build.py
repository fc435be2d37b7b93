"""Build the models, the perceptual term and the datasets from a run's settings.

Shared by ``train/gan.py`` and ``train/sample.py`` so a checkpoint is always rebuilt exactly as
it was trained (from the run's ``config.json``).
"""

from __future__ import annotations

import dataclasses

from torch import nn

import genloss as gl
from models import DiscriminatorConfig, Generator, GeneratorConfig, ImageDiscriminator, VideoDiscriminator
from train.config import TrainConfig
from train.data import ZOOM, MovingShapes, VideoFolder, scan_folder
from train.safety import RunError

__all__ = ["build_datasets", "build_generator", "build_models", "build_perceptual"]


def build_generator(cfg: TrainConfig) -> Generator:
    return Generator(GeneratorConfig(
        frames=cfg.frames, context_frames=cfg.context_frames, size=cfg.size,
        z_dim=cfg.z_dim, base_channels=cfg.g_channels, output_scale=cfg.g_output_scale,
        output=cfg.g_output, flow_prior=cfg.g_flow_prior, warp_mode=cfg.g_warp,
    ))


def build_models(cfg: TrainConfig) -> tuple[Generator, ImageDiscriminator, VideoDiscriminator]:
    d_config = DiscriminatorConfig(size=cfg.size, base_channels=cfg.d_channels, spectral_norm=cfg.spectral_norm)
    # --video-d-input clip+diff: the clip and its frame differences (models.with_frame_differences), 2C channels
    video_channels = d_config.channels * (2 if cfg.video_d_input == "clip+diff" else 1)
    image_channels = d_config.channels * (2 if cfg.d_image_input == "frame+context" else 1)  # and its context
    image_config = dataclasses.replace(d_config, channels=image_channels, levels=cfg.d_image_levels,
                                       trunk=cfg.d_image_trunk)
    return (build_generator(cfg), ImageDiscriminator(image_config),
            VideoDiscriminator(dataclasses.replace(d_config, channels=video_channels)))


def _too_small(module: nn.Module, size: int) -> str | None:
    """Why LPIPS can't take ``size`` x ``size`` frames (its backbone pools them away), or ``None``."""
    if size < module.min_size:
        return f"it needs frames of at least {module.min_size}x{module.min_size}"
    return None


def build_perceptual(choice: str, weights_path: str | None, size: int,
                     resumed: str | None = None) -> tuple[nn.Module | None, str, str]:
    """The LPIPS module (or ``None``), what is used, and the notice that says so.

    ``choice`` is a ``--perceptual`` value. ``"auto"`` tries LPIPS-alex with ImageNet weights from
    the torch hub cache (no download) and otherwise falls back to discriminator feature matching;
    the notice is then one sentence saying why plus a hint. An explicit request can't fall back:
    an ``lpips-*`` choice, or a ``weights_path`` that can't be loaded, is a :class:`RunError`.
    ``resumed`` is the term a resumed run trained with (its ``config.json``'s ``run.perceptual``):
    ``auto`` then uses that term again, whatever the hub cache holds today, and fails if it can't.
    Returns ``(module, used, notice)`` with ``used`` in ``lpips-alex | lpips-vgg |
    lpips-squeeze | feature-matching | none``.
    """
    if choice == "none":
        return None, "none", "perceptual term: off (--perceptual none)"
    net = "alex" if choice == "auto" else choice.removeprefix("lpips-")
    weights = weights_path if weights_path is not None else "imagenet"
    fallback = "perceptual term: discriminator feature matching instead of LPIPS-alex"
    if choice == "auto" and resumed == "feature-matching":
        return None, "feature-matching", (f"{fallback}, as this run started (--perceptual auto keeps a resumed "
                                          "run's term)")
    if choice != "auto" or weights_path is not None or resumed == "lpips-alex":
        why = ("--perceptual auto, which a resumed run that trained with LPIPS-alex keeps"
               if choice == "auto" and resumed == "lpips-alex" else f"--perceptual {choice}")
        module = _load_lpips(net, weights, download=choice != "auto", why=why)
        if (reason := _too_small(module, size)) is None:
            auto = "; --perceptual auto" if choice == "auto" else ""
            return module, f"lpips-{net}", f"perceptual term: LPIPS-{net} ({weights}{auto})"
        if choice != "auto":
            raise RunError(f"--perceptual {choice} can't take --size {size} frames ({reason}); "
                           "use a larger --size, another net (lpips-vgg works from 16) or --perceptual none")
        return None, "feature-matching", (
            f"{fallback} (it can't take {size}x{size} frames: {reason}).\n"
            "  hint: --perceptual lpips-vgg works from 16x16."
        )
    try:
        module = gl.LPIPS(net, weights=weights, download=False)
    except gl.WeightsNotFoundError:
        return None, "feature-matching", (
            f"{fallback} (no ImageNet weights in the torch hub cache).\n"
            "  hint: pass --perceptual-weights FILE (torchvision's alexnet-owt-7be5be79.pth) to use LPIPS, "
            "or --perceptual none to train without the term."
        )
    except Exception as error:  # noqa: BLE001 (a broken cached file: unpickling, shapes, I/O)
        return None, "feature-matching", (
            f"{fallback} (the cached ImageNet weights can't be loaded: {_first_line(error)}).\n"
            "  hint: pass --perceptual-weights FILE with torchvision's alexnet state dict to use LPIPS."
        )
    if (reason := _too_small(module, size)) is not None:
        return None, "feature-matching", (
            f"{fallback} (it can't take {size}x{size} frames: {reason}).\n"
            "  hint: --perceptual lpips-vgg works from 16x16."
        )
    return module, "lpips-alex", f"perceptual term: LPIPS-alex ({weights}; --perceptual auto)"


def _load_lpips(net: str, weights: str, download: bool, why: str) -> nn.Module:
    """``gl.LPIPS(net, weights=...)`` for an explicit request: any failure is a :class:`RunError`."""
    what = f"--perceptual-weights {weights!r}" if weights != "imagenet" else f"the ImageNet weights of {net}"
    try:
        return gl.LPIPS(net, weights=weights, download=download)
    except Exception as error:  # noqa: BLE001 (unpickling, wrong keys or shapes, I/O: all mean "can't load")
        raise RunError(f"{what} can't be loaded for LPIPS-{net} ({why}): {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def build_datasets(cfg: TrainConfig, train_length: int, log=print, progress: bool = False) -> tuple:
    """The training and held-out datasets: procedural shapes, or clips from ``cfg.dataset``
    (every file it skipped or ignored is logged by name, then the scan's summary).

    ``progress`` shows a bar while a dataset folder is decoded (pass it on the main process only).
    Raises :class:`RunError` when a dataset folder has nothing usable, or no video long enough to
    hold out its end (``--heldout-fraction``).
    """
    frames, size, seed = cfg.frames, cfg.size, cfg.seed
    heldout = max(cfg.eval_clips, cfg.detect_clips)  # the end-of-run detector reads the first detect_clips
    if cfg.dataset is None:
        kwargs = dict(frames=frames, size=size, seed=seed, num_shapes=cfg.num_shapes)
        return (MovingShapes(train_length, split="train", **kwargs),
                MovingShapes(heldout, split="heldout", **kwargs))
    scan = scan_folder(cfg.dataset, frames, size, heldout_fraction=cfg.heldout_fraction,
                       frame_stride=cfg.frame_stride, shot_cut=cfg.shot_cut, progress=progress,
                       zoom=ZOOM if "zoom" in cfg.clip_augments() else 1)
    for line in scan.corrupt:
        log(f"dataset: skipped unreadable file {line}")
    for line in scan.too_short:
        log(f"dataset: skipped {line}, shorter than --frames {frames}")
    for name in scan.unknown:
        log(f"dataset: ignored {name}, neither a video nor a frame of a frame folder")
    for line in scan.train_only:
        log(f"dataset: {line} is too short to hold out its last {100 * cfg.heldout_fraction:g}%: training only")
    stride = f"; --frame-stride {cfg.frame_stride}: 1 frame in {cfg.frame_stride} kept" if cfg.frame_stride > 1 else ""
    log(f"dataset {cfg.dataset}: {scan.summary()}{stride}")
    if not scan.videos:
        raise RunError(f"--dataset {cfg.dataset} has no usable video with at least {frames} frames "
                       f"({scan.summary()}); nothing to train on")
    try:
        return (VideoFolder(scan, train_length, frames, seed=seed, split="train", augment=cfg.clip_augments(),
                            draw=cfg.clip_draw),
                VideoFolder(scan, heldout, frames, seed=seed, split="heldout"))
    except ValueError as error:  # no video long enough to split: the message says what to change
        raise RunError(f"--dataset {cfg.dataset}: {error} (--heldout-fraction)") from None

"""Build the models, the perceptual term and the datasets from a run's settings.

Shared by ``train/gan.py`` and ``train/sample.py`` so a checkpoint is always rebuilt exactly as
it was trained (from the run's ``config.json``).
"""

from __future__ import annotations

from torch import nn

import genloss as gl
from models import DiscriminatorConfig, Generator, GeneratorConfig, ImageDiscriminator, VideoDiscriminator
from train.config import TrainConfig
from train.data import MovingShapes, VideoFolder, scan_folder

__all__ = ["build_datasets", "build_generator", "build_models", "build_perceptual"]


def build_generator(cfg: TrainConfig) -> Generator:
    return Generator(GeneratorConfig(
        frames=cfg.frames, context_frames=cfg.context_frames, size=cfg.size,
        z_dim=cfg.z_dim, base_channels=cfg.g_channels, output_scale=cfg.g_output_scale,
    ))


def build_models(cfg: TrainConfig) -> tuple[Generator, ImageDiscriminator, VideoDiscriminator]:
    d_config = DiscriminatorConfig(size=cfg.size, base_channels=cfg.d_channels, spectral_norm=cfg.spectral_norm)
    return build_generator(cfg), ImageDiscriminator(d_config), VideoDiscriminator(d_config)


def _too_small(module: nn.Module, size: int) -> str | None:
    """Why LPIPS can't take ``size`` x ``size`` frames (its backbone pools them away), or ``None``."""
    if size < module.min_size:
        return f"it needs frames of at least {module.min_size}x{module.min_size}"
    return None


def build_perceptual(choice: str, weights_path: str | None, size: int) -> tuple[nn.Module | None, str, str]:
    """The LPIPS module (or ``None``), what is used, and the notice that says so.

    ``choice`` is a ``--perceptual`` value. ``"auto"`` tries LPIPS-alex with ImageNet weights from
    ``weights_path`` or the torch hub cache (no download) and otherwise falls back to
    discriminator feature matching; the notice is then one sentence saying why plus a hint.
    Explicit ``lpips-*`` choices raise if the weights can't be had.
    Returns ``(module, used, notice)`` with ``used`` in ``lpips-alex | lpips-vgg |
    lpips-squeeze | feature-matching | none``.
    """
    if choice == "none":
        return None, "none", "perceptual term: off (--perceptual none)"
    net = "alex" if choice == "auto" else choice.removeprefix("lpips-")
    weights = weights_path if weights_path is not None else "imagenet"
    if choice != "auto":
        module = gl.LPIPS(net, weights=weights)
        if (reason := _too_small(module, size)) is not None:
            raise SystemExit(f"error: --perceptual {choice} can't take --size {size} frames ({reason}); "
                             "use a larger --size, another net (lpips-vgg works from 16) or --perceptual none")
        return module, choice, f"perceptual term: LPIPS-{net} ({weights})"
    fallback = "perceptual term: discriminator feature matching instead of LPIPS-alex"
    try:
        module = gl.LPIPS(net, weights=weights, download=False)
    except gl.WeightsNotFoundError:
        return None, "feature-matching", (
            f"{fallback} (no ImageNet weights in the torch hub cache).\n"
            "  hint: pass --perceptual-weights FILE (torchvision's alexnet-owt-7be5be79.pth) to use LPIPS, "
            "or --perceptual none to train without the term."
        )
    except (OSError, RuntimeError, ValueError) as error:
        return None, "feature-matching", (
            f"{fallback} ({weights} can't be loaded: {str(error).splitlines()[0]}).\n"
            "  hint: pass --perceptual-weights FILE with torchvision's alexnet state dict to use LPIPS."
        )
    if (reason := _too_small(module, size)) is not None:
        return None, "feature-matching", (
            f"{fallback} (it can't take {size}x{size} frames: {reason}).\n"
            "  hint: --perceptual lpips-vgg works from 16x16."
        )
    return module, "lpips-alex", f"perceptual term: LPIPS-alex ({weights}; --perceptual auto)"


def build_datasets(cfg: TrainConfig, train_length: int, log=print, progress: bool = False) -> tuple:
    """The training and held-out datasets: procedural shapes, or clips from ``cfg.dataset``.

    ``progress`` shows a bar while a dataset folder is decoded (pass it on the main process only).
    Raises ``SystemExit`` with the list of skipped files when a dataset folder has nothing usable.
    """
    frames, size, seed = cfg.frames, cfg.size, cfg.seed
    heldout = max(cfg.eval_clips, cfg.detect_clips)  # the end-of-run detector reads the first detect_clips
    if cfg.dataset is None:
        kwargs = dict(frames=frames, size=size, seed=seed, num_shapes=cfg.num_shapes)
        return (MovingShapes(train_length, split="train", **kwargs),
                MovingShapes(heldout, split="heldout", **kwargs))
    scan = scan_folder(cfg.dataset, frames, size, progress=progress)
    for line in scan.corrupt:
        log(f"dataset: skipped unreadable file {line}")
    for line in scan.too_short:
        log(f"dataset: skipped {line}, shorter than --frames {frames}")
    log(f"dataset {cfg.dataset}: {scan.summary()}")
    if not scan.videos:
        raise SystemExit(
            f"error: --dataset {cfg.dataset} has no usable video with at least {frames} frames "
            f"({scan.summary()}); nothing to train on"
        )
    return (VideoFolder(scan, train_length, frames, seed=seed, split="train"),
            VideoFolder(scan, heldout, frames, seed=seed, split="heldout"))

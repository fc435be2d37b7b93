"""Video quality metrics: per frame, per clip and over the batch.

Every metric takes clips ``(B, C, T, H, W)`` with pixels in [-1, 1], runs under
:func:`torch.no_grad` and returns a :class:`MetricResult`:

* ``per_frame``: ``(B, T)`` for frame metrics (PSNR, SSIM, LPIPS), ``(B, T - 1)`` for metrics of
  consecutive frame pairs (tLP, tOF, warping error);
* ``per_clip``: ``(B,)``, the mean of ``per_frame`` over its time axis;
* ``mean``: a 0-d tensor, the mean of ``per_clip``.

Averaging per-frame values (rather than pooling errors over the clip first) is the convention of
the video super-resolution and consistency literature (TecoGAN, Lai et al.), so numbers compare
with those papers' tables. Metrics are computed in float32 (float64 stays float64).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from ._checks import check_same_shape, check_video

__all__ = [
    "MetricResult",
    "lpips",
    "psnr",
    "ssim",
]

# PSNR's MSE floor, relative to data_range^2: identical frames score 10 * log10(1e10) = 100 dB.
_PSNR_MSE_FLOOR = 1e-10


@dataclass(frozen=True)
class MetricResult:
    """A metric's values per frame (or frame pair), per clip and over the batch.

    Attributes:
        per_frame: ``(B, T)`` or ``(B, T - 1)`` for pairwise metrics; ``None`` where undefined.
        per_clip: ``(B,)``, the mean over frames.
        mean: 0-d tensor, the mean over clips.
    """

    per_frame: Tensor | None
    per_clip: Tensor
    mean: Tensor

    @classmethod
    def from_per_frame(cls, per_frame: Tensor) -> MetricResult:
        """Build the result from ``(B, T')`` per-frame values by averaging over time, then clips."""
        per_clip = per_frame.mean(dim=1)
        return cls(per_frame=per_frame, per_clip=per_clip, mean=per_clip.mean())


def _as_float(x: Tensor) -> Tensor:
    """Half precision is upcast: squared errors and log10 need float32's range."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_pair(pred: object, target: object, min_frames: int = 1) -> tuple[Tensor, Tensor]:
    pred = check_video("pred", pred, min_frames=min_frames)
    target = check_video("target", target, min_frames=min_frames)
    check_same_shape("pred", pred, "target", target)
    return _as_float(pred), _as_float(target)


@torch.no_grad()
def psnr(pred: Tensor, target: Tensor, *, data_range: float = 2.0) -> MetricResult:
    """Peak signal-to-noise ratio in dB, per frame and per clip.

    ``PSNR_t = 10 log10(data_range^2 / MSE_t)`` with ``MSE_t`` the mean squared error of frame
    ``t`` over channels and pixels. A clip's PSNR is the mean of its frames' PSNR (not the PSNR of
    the clip's pooled MSE). ``MSE_t`` is clamped below at ``1e-10 * data_range^2``, so identical
    frames give a finite 100 dB instead of ``inf``.

    Args:
        pred: ``(B, C, T, H, W)`` in [-1, 1].
        target: same shape as ``pred``.
        data_range: ``max - min`` of the pixel range; 2.0 for [-1, 1].

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T)``.

    Example:
        >>> x = torch.zeros(1, 3, 2, 8, 8)
        >>> psnr(x, x + 0.1).mean   # MSE 0.01 -> 10 log10(4 / 0.01)
        tensor(26.0206)
    """
    pred, target = _check_pair(pred, target)
    if not data_range > 0:
        raise ValueError(f"`data_range` must be positive; got {data_range!r}")
    mse = (pred - target).square().mean(dim=(1, 3, 4))  # (B, T)
    peak = data_range * data_range
    per_frame = 10.0 * torch.log10(peak / mse.clamp_min(_PSNR_MSE_FLOOR * peak))
    return MetricResult.from_per_frame(per_frame)


@torch.no_grad()
def ssim(pred: Tensor, target: Tensor) -> MetricResult:
    """Structural similarity (SSIM), per frame and per clip, via ``pytorch_msssim``.

    Frames are mapped from [-1, 1] to [0, 1] and compared with ``data_range=1``: SSIM's luminance
    term is not shift-invariant, so this is the [0, 1] convention papers report. Gaussian window
    11 px, sigma 1.5, ``K = (0.01, 0.03)``; the per-frame value averages the channels' SSIM maps.

    Args:
        pred: ``(B, C, T, H, W)`` in [-1, 1], ``H, W >= 11``.
        target: same shape as ``pred``.

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T)``; 1 for identical clips.

    Reference: Wang et al., "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 2004.
    """
    from pytorch_msssim import ssim as _ssim

    pred, target = _check_pair(pred, target)
    if min(pred.shape[-2:]) < 11:
        raise ValueError(
            f"`pred` frames must be at least 11x11 for SSIM's 11-px window; "
            f"got shape {tuple(pred.shape)}"
        )
    b = pred.shape[0]
    frames_p = rearrange((pred + 1) / 2, "b c t h w -> (b t) c h w")
    frames_t = rearrange((target + 1) / 2, "b c t h w -> (b t) c h w")
    values = _ssim(frames_p, frames_t, data_range=1.0, size_average=False)  # (B * T,)
    return MetricResult.from_per_frame(rearrange(values, "(b t) -> b t", b=b))


def _call_lpips(model: Callable[..., Tensor], x: Tensor, y: Tensor) -> Tensor:
    """``model(x, y, reduction="none")`` on ``(N, C, H, W)`` frames, checked to return ``(N,)``."""
    if not callable(model):
        raise TypeError(
            f"`model` must be an LPIPS-like callable `model(x, y, reduction='none') -> (N,)`; "
            f"got {type(model).__name__}"
        )
    out = model(x, y, reduction="none")
    if not isinstance(out, Tensor) or out.shape != x.shape[:1]:
        found = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"`model(x, y, reduction='none')` must return one value per frame pair, shape "
            f"({x.shape[0]},); got {found}"
        )
    return out


@torch.no_grad()
def lpips(pred: Tensor, target: Tensor, *, model: Callable[..., Tensor]) -> MetricResult:
    """LPIPS distance per frame and per clip, all frames in one ``model`` call.

    Args:
        pred: ``(B, C, T, H, W)`` in [-1, 1].
        target: same shape as ``pred``.
        model: e.g. ``genloss.LPIPS("alex")``; any callable ``model(x, y, reduction="none")``
            mapping two ``(N, C, H, W)`` batches to ``(N,)`` distances.

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T)``; 0 for identical clips.

    Reference: Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
    Metric", CVPR 2018.
    """
    pred, target = _check_pair(pred, target)
    b = pred.shape[0]
    values = _call_lpips(
        model,
        rearrange(pred, "b c t h w -> (b t) c h w"),
        rearrange(target, "b c t h w -> (b t) c h w"),
    )
    return MetricResult.from_per_frame(rearrange(values.float(), "(b t) -> b t", b=b))


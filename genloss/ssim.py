"""SSIM and MS-SSIM as losses (``1 - similarity``) on images and videos, via ``pytorch_msssim``.

Pixels in [-1, 1] by default (``value_range=(-1, 1)``). SSIM's luminance term
``(2 μx μy + C1) / (μx² + μy² + C1)`` assumes non-negative intensities (it is not shift
invariant and turns negative for means of opposite sign), so inputs are shifted to
``[0, high - low]`` and scored with ``data_range = high - low``: the same number as SSIM on the
[0, 1] (or [0, 255]) images. Videos ``(B, C, T, H, W)`` are scored frame by
frame with the 2-D index and averaged over frames (``pytorch_msssim`` on a 5-D tensor would use a
3-D window across time instead — not the usual video SSIM). Half-precision inputs are computed in
float32: the local variances are differences of small squares.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_msssim
from einops import rearrange
from torch import Tensor

from ._checks import (
    ReductionModule,
    at_least_float32,
    check_image_or_video,
    check_reduction,
    check_same_shape,
    reduce_per_sample,
)

__all__ = ["MSSSIMLoss", "SSIMLoss", "frame_ssim", "ms_ssim_loss", "ssim_loss"]

MS_SSIM_LEVELS = 5


def _frames(
    name: str,
    pred: Tensor,
    target: Tensor,
    value_range: tuple[float, float],
    min_side: int,
    why: str,
) -> tuple[Tensor, Tensor, int, float]:
    """Validate, fold time into batch, cast half to float32 and shift to ``[0, high - low]``.

    Returns the frames, T and the data range.
    """
    check_image_or_video("pred", pred)
    check_image_or_video("target", target)
    check_same_shape("pred", pred, "target", target)
    if min(pred.shape[-2:]) < min_side:
        raise ValueError(
            f"{name} needs H and W of at least {min_side} ({why}); got shape {tuple(pred.shape)}"
        )
    t = pred.shape[2] if pred.ndim == 5 else 1
    if pred.ndim == 5:
        pred = rearrange(pred, "b c t h w -> (b t) c h w")
        target = rearrange(target, "b c t h w -> (b t) c h w")
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise ValueError(f"`value_range` must be (low, high) with high > low; got {value_range!r}")
    if pred.dtype != target.dtype:  # pytorch_msssim needs one dtype
        pred, target = pred.float(), target.float()
    pred, target = at_least_float32(pred), at_least_float32(target)
    return pred - low, target - low, t, high - low


def frame_ssim(
    pred: Tensor,
    target: Tensor,
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
    win_size: int = 11,
    win_sigma: float = 1.5,
) -> Tensor:
    """SSIM of every frame, the mean of its channels' SSIM maps: ``(B, 1)`` or ``(B, T)``.

    The similarity behind :func:`ssim_loss` and :func:`genloss.metrics.ssim` (arguments as for
    :func:`ssim_loss`); images count as clips of one frame. In float32 for half inputs.
    """
    p, t_, frames, data_range = _frames(
        "ssim_loss", pred, target, value_range, win_size, f"the {win_size}-pixel window"
    )
    similarity = pytorch_msssim.ssim(
        p, t_, data_range=data_range, size_average=False, win_size=win_size, win_sigma=win_sigma
    )
    return rearrange(similarity, "(b t) -> b t", t=frames)


def ssim_loss(
    pred: Tensor,
    target: Tensor,
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
    win_size: int = 11,
    win_sigma: float = 1.5,
    reduction: str = "mean",
) -> Tensor:
    """``1 - SSIM(pred, target)`` per sample (mean over channels, and over frames for videos).

    SSIM is Wang et al.'s index with a Gaussian window, ``K = (0.01, 0.03)`` and
    ``C_i = (K_i · L)²``, computed by ``pytorch_msssim.ssim`` on the inputs shifted to
    ``[0, L]``, ``L = high - low`` of ``value_range``.

    Args:
        pred: ``(B, C, H, W)`` or ``(B, C, T, H, W)``, ``H, W >= win_size``.
        target: same shape.
        value_range: ``(low, high)`` of the pixels: ``(-1, 1)``, ``(0, 1)`` or ``(0, 255)``.
        win_size, win_sigma: the Gaussian window (odd size).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``; 0 for identical inputs.

    Reference: Wang et al., "Image Quality Assessment: From Error Visibility to Structural
    Similarity", IEEE TIP 2004.
    """
    check_reduction(reduction)
    similarity = frame_ssim(
        pred, target, value_range=value_range, win_size=win_size, win_sigma=win_sigma
    )
    return reduce_per_sample(1 - similarity.mean(dim=1), reduction)


def ms_ssim_loss(
    pred: Tensor,
    target: Tensor,
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
    win_size: int = 11,
    win_sigma: float = 1.5,
    weights: Sequence[float] | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``1 - MS-SSIM(pred, target)`` per sample, as ``pytorch_msssim.ms_ssim``.

    Five scales by default (weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333), so H and W must
    exceed ``(win_size - 1) · 16`` (161 px for the 11-px window): use a smaller ``win_size``
    (e.g. 3 → 33 px) for small frames.

    Args:
        pred: ``(B, C, H, W)`` or ``(B, C, T, H, W)``.
        target: same shape.
        value_range, win_size, win_sigma: as for ``ssim_loss``.
        weights: per-scale exponents (their count is the number of scales).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Reference: Wang, Simoncelli and Bovik, "Multiscale Structural Similarity for Image Quality
    Assessment", Asilomar 2003.
    """
    check_reduction(reduction)
    min_side = (win_size - 1) * 2 ** (MS_SSIM_LEVELS - 1) + 1
    p, t_, frames, data_range = _frames(
        "ms_ssim_loss",
        pred,
        target,
        value_range,
        min_side,
        f"{MS_SSIM_LEVELS} scales of a {win_size}-pixel window",
    )
    similarity = pytorch_msssim.ms_ssim(
        p,
        t_,
        data_range=data_range,
        size_average=False,
        win_size=win_size,
        win_sigma=win_sigma,
        weights=None if weights is None else list(weights),
    )
    per_frame = rearrange(similarity, "(b t) -> b t", t=frames)
    return reduce_per_sample(1 - per_frame.mean(dim=1), reduction)


class SSIMLoss(ReductionModule):
    """Module form of ``ssim_loss``: stores the options."""

    def __init__(
        self,
        *,
        value_range: tuple[float, float] = (-1.0, 1.0),
        win_size: int = 11,
        win_sigma: float = 1.5,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.value_range, self.win_size, self.win_sigma = tuple(value_range), win_size, win_sigma

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return ssim_loss(
            pred,
            target,
            value_range=self.value_range,
            win_size=self.win_size,
            win_sigma=self.win_sigma,
            reduction=self.reduction,
        )


class MSSSIMLoss(ReductionModule):
    """Module form of ``ms_ssim_loss``: stores the options."""

    def __init__(
        self,
        *,
        value_range: tuple[float, float] = (-1.0, 1.0),
        win_size: int = 11,
        win_sigma: float = 1.5,
        weights: Sequence[float] | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.value_range, self.win_size, self.win_sigma = tuple(value_range), win_size, win_sigma
        self.weights = None if weights is None else tuple(weights)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return ms_ssim_loss(
            pred,
            target,
            value_range=self.value_range,
            win_size=self.win_size,
            win_sigma=self.win_sigma,
            weights=self.weights,
            reduction=self.reduction,
        )

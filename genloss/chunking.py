"""Consistency of chunked video decoding: overlapping temporal windows decoded separately
should agree where they overlap.

A clip ``(B, C, T, H, W)`` is cut into windows of ``size`` frames every ``stride`` frames
(:func:`overlapping_windows`); the tokenizer encodes and decodes each window on its own; the
decoded windows ``(B, N, C, size, H, W)`` then go to :func:`window_consistency_loss`.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor

from ._checks import (
    ReductionModule,
    at_least_float32,
    check_choice,
    check_float_tensor,
    check_ndim,
    check_reduction,
    check_video,
    per_sample_mean,
    reduce_per_sample,
)

__all__ = ["WindowConsistencyLoss", "overlapping_windows", "window_consistency_loss"]


def _check_stride(stride: object, size: int, what: str) -> int:
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride < size:
        raise ValueError(
            f"`stride` must be an int in [1, {size - 1}] so that consecutive windows of {size} "
            f"frames ({what}) overlap; got {stride!r}"
        )
    return stride


def overlapping_windows(video: Tensor, size: int, stride: int) -> Tensor:
    """Windows of ``size`` frames starting every ``stride`` frames: ``(B, N, C, size, H, W)``.

    ``N = (T − size) // stride + 1``; trailing frames that fill no window are dropped (as
    Cosmos's ``VideoConsistencyLoss.shuffle``, a ``Tensor.unfold`` over time).

    Args:
        video: ``(B, C, T, H, W)`` with ``T >= size``.
        size: frames per window (>= 2).
        stride: frames between window starts, ``1 <= stride < size``.

    Returns:
        ``(B, N, C, size, H, W)``; fold with ``'b n c t h w -> (b n) c t h w'`` to decode.
    """
    check_video("video", video)
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= video.shape[2]:
        raise ValueError(f"`size` must be an int in [2, T={video.shape[2]}]; got {size!r}")
    _check_stride(stride, size, "size")
    windows = video.unfold(2, size, stride)  # (B, C, N, H, W, size)
    return rearrange(windows, "b c n h w t -> b n c t h w")


def window_consistency_loss(
    windows: Tensor, *, stride: int, distance: str = "l1", reduction: str = "mean"
) -> Tensor:
    """Disagreement of consecutive decoded windows on their overlapping frames.

    Window ``n`` covers frames ``[n·s, n·s + K)``; windows ``n`` and ``n + 1`` share ``K − s``
    frames: frames ``s..K−1`` of window n and ``0..K−s−1`` of window n+1. The loss is
    ``mean |w_n[:, s:] − w_{n+1}[:, :K−s]|`` (``distance="l2"``: squared) over every pair and
    overlapping element; a sample's value is its mean.

    Args:
        windows: ``(B, N, C, K, H, W)`` decoded windows, ``N >= 2``, in time order.
        stride: frames between window starts ``s``, ``1 <= s < K``.
        distance: ``"l1"`` or ``"l2"``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: NVIDIA Cosmos tokenizer, nvidia-cosmos/cosmos-predict1
    ``cosmos_predict1/tokenizer/training/losses/continuous.py`` (``VideoConsistencyLoss``,
    its ``frame_consistency`` term).
    """
    check_float_tensor("windows", windows)
    check_ndim("windows", windows, 6, "(B, N, C, K, H, W) of decoded windows")
    check_choice("distance", distance, ("l1", "l2"))
    check_reduction(reduction)
    if windows.shape[1] < 2:
        raise ValueError(f"`windows` must hold at least 2 windows (dim 1); got shape {tuple(windows.shape)}")
    size = windows.shape[3]
    _check_stride(stride, size, "dim 3 of `windows`")
    w = at_least_float32(windows)
    diff = w[:, :-1, :, stride:] - w[:, 1:, :, : size - stride]
    values = diff.abs() if distance == "l1" else diff.square()
    return reduce_per_sample(per_sample_mean(values), reduction)


class WindowConsistencyLoss(ReductionModule):
    """Module form of :func:`window_consistency_loss`."""

    def __init__(self, stride: int, *, distance: str = "l1", reduction: str = "mean") -> None:
        super().__init__(reduction)
        check_choice("distance", distance, ("l1", "l2"))
        self.stride, self.distance = stride, distance

    def forward(self, windows: Tensor) -> Tensor:
        return window_consistency_loss(windows, stride=self.stride, distance=self.distance,
                                       reduction=self.reduction)

"""Reconstruction losses: pixel distances between a prediction and its target.

All take ``pred`` and ``target`` of the same shape: images ``(B, C, H, W)``, videos
``(B, C, T, H, W)`` or any other ``(B, ...)`` layout for the elementwise ones. An optional
``mask`` broadcastable to ``pred`` weights each element; with ``reduction="mean"`` the result is
``sum(mask * e) / sum(mask)`` (the mask counted at ``e``'s full shape).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    ReductionModule,
    at_least_float32,
    check_float_tensor,
    check_image_or_video,
    check_mask,
    check_ndim,
    check_reduction,
    check_same_shape,
    per_sample_mean,
    reduce_masked,
    reduce_per_sample,
)

__all__ = [
    "CharbonnierLoss",
    "GradientDifferenceLoss",
    "HuberLoss",
    "L1Loss",
    "MSELoss",
    "charbonnier_loss",
    "gradient_difference_loss",
    "huber_loss",
    "l1_loss",
    "mse_loss",
]


def _elementwise(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None,
    reduction: str,
    distance: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """Validate, apply ``distance`` elementwise, then reduce (with the optional mask)."""
    check_float_tensor("pred", pred)
    check_float_tensor("target", target)
    check_ndim("pred", pred, range(1, 9), "(B, ...)")
    check_same_shape("pred", pred, "target", target)
    check_reduction(reduction)
    if mask is not None:
        mask = check_mask(mask, pred)
    return reduce_masked(distance(pred, target), reduction, mask)


def l1_loss(
    pred: Tensor, target: Tensor, *, mask: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Mean absolute error.

    ``e = |pred - target|``, then reduced.

    Args:
        pred: ``(B, ...)`` prediction, e.g. ``(B, C, H, W)`` or ``(B, C, T, H, W)``.
        target: same shape as ``pred``.
        mask: optional weights in [0, 1], broadcastable to ``pred``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (elementwise, ``pred``'s shape).

    Returns:
        A scalar, or the elementwise tensor for ``"none"``.

    Example:
        >>> l1_loss(torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4))
        tensor(1.)
    """
    return _elementwise(pred, target, mask, reduction, lambda p, t: (p - t).abs())


def mse_loss(
    pred: Tensor, target: Tensor, *, mask: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Mean squared error.

    ``e = (pred - target)^2``, then reduced.

    Args:
        pred: ``(B, ...)`` prediction.
        target: same shape as ``pred``.
        mask: optional weights in [0, 1], broadcastable to ``pred``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (elementwise).

    Returns:
        A scalar, or the elementwise tensor for ``"none"``.
    """
    return _elementwise(pred, target, mask, reduction, lambda p, t: (p - t).square())


def huber_loss(
    pred: Tensor,
    target: Tensor,
    *,
    delta: float = 1.0,
    mask: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Huber loss, exactly as :func:`torch.nn.functional.huber_loss`.

    ``e = 0.5 d^2`` if ``|d| < delta`` else ``delta (|d| - 0.5 delta)``, with ``d = pred - target``.

    Args:
        pred: ``(B, ...)`` prediction.
        target: same shape as ``pred``.
        delta: where the quadratic part turns linear; must be positive.
        mask: optional weights in [0, 1], broadcastable to ``pred``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (elementwise).

    Returns:
        A scalar, or the elementwise tensor for ``"none"``.

    Reference: Huber, "Robust Estimation of a Location Parameter", 1964.
    """
    if not delta > 0:
        raise ValueError(f"`delta` must be positive; got {delta!r}")
    return _elementwise(
        pred,
        target,
        mask,
        reduction,
        lambda p, t: F.huber_loss(p, t, delta=delta, reduction="none"),
    )


def charbonnier_loss(
    pred: Tensor,
    target: Tensor,
    *,
    eps: float = 1e-3,
    mask: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Charbonnier (smooth L1) loss.

    ``e = sqrt((pred - target)^2 + eps^2)``: L1 away from 0, differentiable at 0.
    Half-precision inputs are computed in float32 (``eps^2`` is below float16's normal range).

    Args:
        pred: ``(B, ...)`` prediction.
        target: same shape as ``pred``.
        eps: smoothing constant; must be positive.
        mask: optional weights in [0, 1], broadcastable to ``pred``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (elementwise).

    Returns:
        A scalar, or the elementwise tensor for ``"none"`` (float32 for half inputs).

    Reference: Charbonnier et al., "Two deterministic half-quadratic regularization algorithms
    for computed imaging", ICIP 1994; Lai et al., "Deep Laplacian Pyramid Networks", CVPR 2017.
    """
    if not eps > 0:
        raise ValueError(f"`eps` must be positive; got {eps!r}")

    def distance(p: Tensor, t: Tensor) -> Tensor:
        return (at_least_float32(p - t).square() + eps * eps).sqrt()

    return _elementwise(pred, target, mask, reduction, distance)


def gradient_difference_loss(
    pred: Tensor, target: Tensor, *, alpha: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Gradient difference loss (GDL): match the magnitude of spatial image gradients.

    With ``dx v = v[..., :, 1:] - v[..., :, :-1]`` and ``dy v = v[..., 1:, :] - v[..., :-1, :]``::

        gx = | |dx p| - |dx t| |^alpha        (..., H, W-1)
        gy = | |dy p| - |dy t| |^alpha        (..., H-1, W)
        loss = (mean(gx) + mean(gy)) / 2

    Videos are treated frame by frame (only spatial differences; see :mod:`genloss.temporal`
    for differences over time). This is a per-sample loss: ``"none"`` returns ``(B,)``, each
    sample's ``(mean(gx_b) + mean(gy_b)) / 2``; ``"mean"`` averages those, ``"sum"`` adds them.

    Args:
        pred: ``(B, C, H, W)`` or ``(B, C, T, H, W)``, ``H, W >= 2``.
        target: same shape as ``pred``.
        alpha: exponent; must be positive (1 or 2 in the paper).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Mathieu, Couprie, LeCun, "Deep multi-scale video prediction beyond mean square
    error", ICLR 2016, eq. 5.
    """
    check_image_or_video("pred", pred)
    check_image_or_video("target", target)
    check_same_shape("pred", pred, "target", target)
    check_reduction(reduction)
    if not alpha > 0:
        raise ValueError(f"`alpha` must be positive; got {alpha!r}")
    if pred.shape[-1] < 2 or pred.shape[-2] < 2:
        raise ValueError(
            f"`pred` needs H >= 2 and W >= 2 for finite differences; got shape {tuple(pred.shape)}"
        )

    def spatial_term(dim: int) -> Tensor:
        dp = pred.diff(dim=dim).abs()
        dt = target.diff(dim=dim).abs()
        return per_sample_mean((dp - dt).abs().pow(alpha))

    per_sample = 0.5 * (spatial_term(-1) + spatial_term(-2))
    return reduce_per_sample(per_sample, reduction)


class L1Loss(ReductionModule):
    """Module form of :func:`l1_loss`."""

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return l1_loss(pred, target, mask=mask, reduction=self.reduction)


class MSELoss(ReductionModule):
    """Module form of :func:`mse_loss`."""

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return mse_loss(pred, target, mask=mask, reduction=self.reduction)


class HuberLoss(ReductionModule):
    """Module form of :func:`huber_loss`."""

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return huber_loss(pred, target, delta=self.delta, mask=mask, reduction=self.reduction)


class CharbonnierLoss(ReductionModule):
    """Module form of :func:`charbonnier_loss`."""

    def __init__(self, eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return charbonnier_loss(pred, target, eps=self.eps, mask=mask, reduction=self.reduction)


class GradientDifferenceLoss(ReductionModule):
    """Module form of :func:`gradient_difference_loss`."""

    def __init__(self, alpha: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.alpha = alpha

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return gradient_difference_loss(pred, target, alpha=self.alpha, reduction=self.reduction)

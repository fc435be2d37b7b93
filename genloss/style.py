"""Gram-matrix (style) losses on feature maps, per frame or across the frames of a clip
(Cosmos tokenizer's temporal Gram).

The features come from any network the caller runs (a VGG trunk, say): images ``(B, C, h, w)``
or clips ``(B, C, T, h, w)``.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor

from ._checks import (
    ReductionModule,
    at_least_float32,
    check_image_or_video,
    check_reduction,
    check_same_shape,
    per_sample_mean,
    reduce_per_sample,
)

__all__ = ["GramLoss", "gram_loss", "spatial_gram", "temporal_gram"]


def spatial_gram(features: Tensor) -> Tensor:
    """``G = F Fᵀ / (h w)`` per image or per frame: ``(B, C, h, w) -> (B, C, C)``,
    ``(B, C, T, h, w) -> (B, T, C, C)``.

    Normalised by the positions only, as Cosmos's ``_gram_matrix`` (``genloss.gram_matrix``
    also divides by C).
    """
    f = at_least_float32(features)
    if f.ndim == 5:
        f = rearrange(f, "b c t h w -> b t c (h w)")
    else:
        f = f.flatten(2)
    return f @ f.transpose(-1, -2) / f.shape[-1]


def temporal_gram(features: Tensor) -> Tensor:
    """``G = F Fᵀ / (T h w)`` over every position of every frame: ``(B, C, T, h, w) -> (B, C, C)``.

    One Gram matrix per clip (Cosmos's ``_temporal_gram_matrix``): it matches the channel
    co-activation statistics of the whole clip, not of each frame.
    """
    f = at_least_float32(features).flatten(2)  # (B, C, T·h·w)
    return f @ f.transpose(1, 2) / f.shape[-1]


def gram_loss(
    pred_features: Tensor,
    target_features: Tensor,
    *,
    temporal: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Squared distance of Gram matrices: ``mean (G(φ_pred) − G(φ_target))²`` per sample.

    Images use :func:`spatial_gram`. Clips use :func:`temporal_gram` with ``temporal=True``
    (Cosmos) or per-frame :func:`spatial_gram` otherwise (a clip's value is then the mean over
    its frames). Gradients flow into both inputs; detach the target's features yourself.

    Args:
        pred_features: ``(B, C, h, w)`` or ``(B, C, T, h, w)`` features of the prediction.
        target_features: same shape.
        temporal: one Gram matrix per clip (needs 5-D features).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    References: Gatys et al., "Image Style Transfer Using Convolutional Neural Networks", CVPR
    2016; NVIDIA Cosmos tokenizer, nvidia-cosmos/cosmos-predict1
    ``cosmos_predict1/tokenizer/training/losses/continuous.py`` (``PerceptualLoss``).
    """
    check_image_or_video("pred_features", pred_features)
    check_image_or_video("target_features", target_features)
    check_same_shape("pred_features", pred_features, "target_features", target_features)
    check_reduction(reduction)
    if temporal:
        if pred_features.ndim != 5:
            raise ValueError(
                "`temporal=True` needs clip features (B, C, T, h, w); "
                f"got shape {tuple(pred_features.shape)}"
            )
        gp, gt = temporal_gram(pred_features), temporal_gram(target_features)
    else:
        gp, gt = spatial_gram(pred_features), spatial_gram(target_features)
    return reduce_per_sample(per_sample_mean((gp - gt).square()), reduction)


class GramLoss(ReductionModule):
    """Module form of :func:`gram_loss`."""

    def __init__(self, *, temporal: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.temporal = temporal

    def forward(self, pred_features: Tensor, target_features: Tensor) -> Tensor:
        return gram_loss(pred_features, target_features, temporal=self.temporal,
                         reduction=self.reduction)


"""Discriminator feature matching: the generator matches the discriminator's intermediate features.

``feature_matching_loss`` compares a discriminator's features on real and fake inputs
(Salimans et al. 2016; pix2pixHD). The VGG content/style loss lives in :mod:`genloss.vgg`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._checks import (
    check_float_tensor,
    check_reduction,
    check_same_shape,
    per_sample_mean,
    reduce_per_sample,
)

__all__ = ["feature_matching_loss"]


def _flatten_layers(name: str, features: object) -> list[Tensor]:
    """A list of tensors, or a list of such lists (one per discriminator), flattened in order."""
    if isinstance(features, Tensor) or not isinstance(features, Sequence) or not features:
        raise TypeError(
            f"`{name}` must be a non-empty list of feature tensors (or a list of such lists); "
            f"got {type(features).__name__}"
        )
    flat: list[Tensor] = []
    for item in features:
        flat.extend(_flatten_layers(name, item) if not isinstance(item, Tensor) else [item])
    for i, tensor in enumerate(flat):
        check_float_tensor(f"{name}[{i}]", tensor)
    return flat


def feature_matching_loss(
    real_features: Sequence[Tensor] | Sequence[Sequence[Tensor]],
    fake_features: Sequence[Tensor] | Sequence[Sequence[Tensor]],
    *,
    reduction: str = "mean",
) -> Tensor:
    """Discriminator feature matching: the mean over layers of the L1 distance.

    ``L = (1/L) Σ_l mean |D_l(real) - D_l(fake)|``, the real side detached, so the gradient
    flows into the generator through the fake features only (Wang et al. 2018, pix2pixHD).

    Args:
        real_features: ``L`` tensors ``(B, ...)`` — the discriminator's intermediate outputs on
            real data — or a list of such lists for several (multi-scale) discriminators,
            flattened in order.
        fake_features: the same layers on generated data, same shapes.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per sample ``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with
    Conditional GANs", CVPR 2018.
    """
    check_reduction(reduction)
    real = _flatten_layers("real_features", real_features)
    fake = _flatten_layers("fake_features", fake_features)
    if len(real) != len(fake):
        raise ValueError(
            f"`real_features` and `fake_features` must have the same number of layers; "
            f"got {len(real)} and {len(fake)}"
        )
    for i, (r, f) in enumerate(zip(real, fake, strict=True)):
        check_same_shape(f"real_features[{i}]", r, f"fake_features[{i}]", f)
        if r.ndim < 1 or r.shape[0] != real[0].shape[0]:
            raise ValueError(
                f"every layer must share the batch size {real[0].shape[0]}; "
                f"`real_features[{i}]` has shape {tuple(r.shape)}"
            )
    per_layer = [per_sample_mean((r.detach() - f).abs()) for r, f in zip(real, fake, strict=True)]
    return reduce_per_sample(torch.stack(per_layer).mean(dim=0), reduction)

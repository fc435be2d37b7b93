"""Frequency-domain reconstruction losses: 3-D Haar wavelet subbands (WF-VAE) and a Laplacian
pyramid (Burt & Adelson), both comparing the high-frequency detail of a reconstruction.

Videos ``(B, C, T, H, W)``; the Laplacian loss also takes images ``(B, C, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ._checks import (
    ReductionModule,
    at_least_float32,
    check_image_or_video,
    check_positive_int,
    check_reduction,
    check_same_shape,
    check_video,
    per_sample_mean,
    reduce_per_sample,
)

__all__ = [
    "HAAR_SUBBANDS",
    "LaplacianPyramidLoss",
    "WaveletLoss",
    "haar_wavelet_3d",
    "laplacian_pyramid",
    "laplacian_pyramid_loss",
    "wavelet_loss",
]

#: Subband names in the order :func:`haar_wavelet_3d` returns them: time, height, width, each
#: L (sum, low-pass) or H (difference, high-pass). Index ``4·t + 2·h + w`` with L = 0, H = 1.
HAAR_SUBBANDS = ("LLL", "LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH")
#: The 5-tap binomial kernel of Burt & Adelson's pyramid.
BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def _haar_axis(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Orthonormal 1-D Haar step along ``dim``: ``((a + b)/√2, (a − b)/√2)`` of pairs."""
    even = x.narrow(dim, 0, x.shape[dim] // 2 * 2)
    pairs = even.unflatten(dim, (x.shape[dim] // 2, 2))
    a, b = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)
    return (a + b) / math.sqrt(2), (a - b) / math.sqrt(2)


def haar_wavelet_3d(video: Tensor, *, causal: bool = False) -> Tensor:
    """One level of the orthonormal 3-D Haar transform: 8 subbands of every 2×2×2 block.

    For subband ``(s_t, s_h, s_w)``, with ``s_L = (1, 1)`` and ``s_H = (1, −1)``::

        W[s](t, y, x) = Σ_{i,j,k ∈ {0,1}} s_t[i] s_h[j] s_w[k] · v[2t+i, 2y+j, 2x+k] / (2√2)

    (WF-VAE's ``HaarWaveletTransform3D`` filters, 0.3536 = 1/(2√2)). The transform is
    orthonormal: the subbands hold the signal's energy exactly.

    Args:
        video: ``(B, C, T, H, W)`` with T, H, W even; with ``causal=True``, T odd and H, W even.
        causal: repeat the first frame once in front before pairing frames, as WF-VAE's
            ``CausalConv3d`` pads time, so a ``1 + 2k``-frame clip gives ``k + 1`` frames.

    Returns:
        ``(B, C, 8, T', H/2, W/2)``, subbands in :data:`HAAR_SUBBANDS` order (index 0 = LLL,
        the low-pass; 1..7 the high-frequency detail).

    Reference: Li et al., "WF-VAE: Enhancing Video VAE by Wavelet-Driven Energy Flow for Latent
    Video Diffusion Model", CVPR 2025 (PKU-YuanGroup/WF-VAE
    ``causalvideovae/model/modules/wavelet.py``).
    """
    check_video("video", video)
    t, h, w = video.shape[2:]
    if causal:
        if t % 2 != 1:
            raise ValueError(f"`video` must have an odd number of frames with causal=True; got T={t}")
        video = torch.cat([video[:, :, :1], video], dim=2)
    elif t % 2:
        raise ValueError(f"`video` must have an even number of frames (or use causal=True); got T={t}")
    if h % 2 or w % 2:
        raise ValueError(f"`video` must have even height and width; got shape {tuple(video.shape)}")
    bands = [video]
    for dim in (2, 3, 4):  # time, height, width: L of each axis before H
        bands = [half for band in bands for half in _haar_axis(band, dim)]
    return torch.stack(bands, dim=2)


def wavelet_loss(
    pred: Tensor,
    target: Tensor,
    *,
    levels: int = 1,
    causal: bool = False,
    include_low: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """L1 between the 3-D Haar high-frequency subbands of a reconstruction and its target.

    Level 1 transforms the clips; each further level transforms the previous LLL band. A
    sample's value is ``Σ_levels mean |W_k(pred) − W_k(target)|`` over the 7 detail subbands k
    of that level (and the last level's LLL too with ``include_low=True``).

    Args:
        pred: ``(B, C, T, H, W)``; every level's T, H, W must be even (or T odd with ``causal``).
        target: same shape as ``pred``.
        levels: number of decomposition levels (>= 1).
        causal: as for :func:`haar_wavelet_3d`, at every level.
        include_low: also compare the last level's low-pass LLL band.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: WF-VAE (CVPR 2025), whose training adds an L1 on wavelet coefficients
    (``causalvideovae/model/losses/perceptual_loss.py``, ``wl_loss``).
    """
    check_video("pred", pred)
    check_video("target", target)
    check_same_shape("pred", pred, "target", target)
    check_reduction(reduction)
    check_positive_int("levels", levels)
    p, t = pred, target
    total = pred.new_zeros(pred.shape[0], dtype=at_least_float32(pred).dtype)
    for level in range(levels):
        wp, wt = haar_wavelet_3d(p, causal=causal), haar_wavelet_3d(t, causal=causal)
        first = 0 if include_low and level == levels - 1 else 1
        total = total + per_sample_mean((wp[:, :, first:] - wt[:, :, first:]).abs())
        p, t = wp[:, :, 0], wt[:, :, 0]
    return reduce_per_sample(total, reduction)


def _binomial_kernel(dtype: torch.dtype, device: torch.device) -> Tensor:
    k = torch.tensor(BINOMIAL_5, dtype=dtype, device=device)
    k = k / k.sum()
    return torch.outer(k, k)  # (5, 5)


def _blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Depthwise 5×5 blur of ``(N, C, H, W)`` with reflect padding."""
    c = x.shape[1]
    weight = kernel.expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), weight, groups=c)


def laplacian_pyramid(images: Tensor, levels: int = 3) -> list[Tensor]:
    """Burt–Adelson Laplacian pyramid: ``levels`` band-pass images, then the low-pass residual.

    ``g_0 = x``; ``g_{l+1} = (K * g_l)[::2, ::2]`` (``K`` the 5×5 binomial kernel
    ``[1, 4, 6, 4, 1]ᵀ[1, 4, 6, 4, 1] / 256``, reflect padding); the expansion ``E(g)``
    inserts zeros between the samples of ``g`` and blurs with ``4K``, cropped to ``g_l``'s
    size; ``L_l = g_l − E(g_{l+1})``.

    Args:
        images: ``(N, C, H, W)``, at least 3×3 at the coarsest level blurred.
        levels: number of band-pass levels (>= 1).

    Returns:
        ``[L_0, ..., L_{levels-1}, g_levels]``.

    Reference: Burt & Adelson, "The Laplacian Pyramid as a Compact Image Code", IEEE Trans.
    Communications 1983.
    """
    kernel = _binomial_kernel(images.dtype, images.device)
    pyramid, current = [], images
    for _ in range(levels):
        low = _blur(current, kernel)[:, :, ::2, ::2]
        up = torch.zeros_like(current)
        up[:, :, ::2, ::2] = low
        pyramid.append(current - _blur(up, 4 * kernel))
        current = low
    pyramid.append(current)
    return pyramid


def laplacian_pyramid_loss(
    pred: Tensor,
    target: Tensor,
    *,
    levels: int = 3,
    weights: Sequence[float] | None = None,
    reduction: str = "mean",
) -> Tensor:
    """L1 between the Laplacian-pyramid band-pass levels of a reconstruction and its target.

    Per sample ``Σ_l w_l · mean |L_l(pred) − L_l(target)|`` over the ``levels`` band-pass
    levels of :func:`laplacian_pyramid` (the low-pass residual is left out: this loss looks
    at detail only). Default ``w_l = 2^{−2l}`` (Bojanowski et al.'s Lap1). Videos are taken
    frame by frame and a clip's value is the mean over its frames.

    Args:
        pred: ``(B, C, H, W)`` or ``(B, C, T, H, W)``; the frames must be large enough for
            ``levels`` halvings with reflect padding (at least ``3 · 2^(levels − 1)`` pixels).
        target: same shape as ``pred``.
        levels: number of band-pass levels.
        weights: one factor per level, or None for ``2^{−2l}``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Bojanowski et al., "Optimizing the Latent Space of Generative Networks", ICML
    2018, eq. 3; Burt & Adelson 1983.
    """
    check_image_or_video("pred", pred)
    check_image_or_video("target", target)
    check_same_shape("pred", pred, "target", target)
    check_reduction(reduction)
    check_positive_int("levels", levels)
    weights = [4.0**-level for level in range(levels)] if weights is None else list(weights)
    if len(weights) != levels:
        raise ValueError(f"`weights` must hold one factor per level ({levels}); got {len(weights)}")
    smallest = 3 * 2 ** (levels - 1)
    if min(pred.shape[-2:]) < smallest:
        raise ValueError(
            f"`pred` frames must be at least {smallest}x{smallest} pixels for {levels} levels; "
            f"got shape {tuple(pred.shape)}"
        )
    frames = pred.shape[2] if pred.ndim == 5 else 1
    fold = "b c t h w -> (b t) c h w"
    p = at_least_float32(rearrange(pred, fold) if pred.ndim == 5 else pred)
    t = at_least_float32(rearrange(target, fold) if target.ndim == 5 else target)
    per_frame = p.new_zeros(p.shape[0])
    for weight, lp, lt in zip(weights, laplacian_pyramid(p, levels), laplacian_pyramid(t, levels)):
        per_frame = per_frame + weight * per_sample_mean((lp - lt).abs())
    return reduce_per_sample(per_frame.unflatten(0, (-1, frames)).mean(dim=1), reduction)


class WaveletLoss(ReductionModule):
    """Module form of :func:`wavelet_loss`."""

    def __init__(
        self, levels: int = 1, *, causal: bool = False, include_low: bool = False, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self.levels, self.causal, self.include_low = levels, causal, include_low

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return wavelet_loss(pred, target, levels=self.levels, causal=self.causal,
                            include_low=self.include_low, reduction=self.reduction)


class LaplacianPyramidLoss(ReductionModule):
    """Module form of :func:`laplacian_pyramid_loss`."""

    def __init__(
        self, levels: int = 3, *, weights: Sequence[float] | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self.levels = levels
        self.weights = None if weights is None else tuple(float(w) for w in weights)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return laplacian_pyramid_loss(pred, target, levels=self.levels, weights=self.weights,
                                      reduction=self.reduction)

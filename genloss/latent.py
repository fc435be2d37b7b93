"""Losses of continuous (VAE-style) video tokenizers: the learned-variance NLL, the KL of a
diagonal Gaussian posterior, and the latent outlier penalty.

Images ``(B, C, H, W)``, videos ``(B, C, T, H, W)``; latents ``(B, C, ...)`` (channels first).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from ._checks import (
    ReductionModule,
    at_least_float32,
    check_broadcastable,
    check_float_tensor,
    check_image_or_video,
    check_ndim,
    check_reduction,
    check_same_shape,
    per_sample_mean,
    reduce_masked,
    reduce_per_sample,
)

__all__ = [
    "DiagonalGaussianKL",
    "LogvarNLLLoss",
    "OutlierPenaltyLoss",
    "diagonal_gaussian_kl",
    "logvar_nll_loss",
    "outlier_penalty_loss",
]

#: ldm's ``DiagonalGaussianDistribution`` clamps the log-variance to this range.
LDM_LOGVAR_CLAMP = (-30.0, 20.0)


def _per_sample_shape(name: str, x: Tensor, like: Tensor) -> Tensor:
    """A ``(B,)`` tensor viewed as ``(B, 1, ..., 1)``; any other shape must broadcast to ``like``."""
    if x.ndim == 1 and x.shape[0] == like.shape[0] and like.ndim > 1:
        return x.reshape(-1, *([1] * (like.ndim - 1)))
    check_broadcastable(name, x, "pred", like.shape)
    return x


def logvar_nll_loss(
    pred: Tensor,
    target: Tensor,
    logvar: Tensor | float,
    *,
    perceptual: Tensor | None = None,
    perceptual_weight: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """Reconstruction NLL with a learned log-variance (LDM's and VidTok's ``nll_loss``).

    ``e = (|pred - target| + perceptual_weight · p) / exp(logvar) + logvar`` elementwise, with
    ``p`` the optional per-sample (or per-pixel) perceptual distance broadcast over every pixel,
    as ``LPIPSWithDiscriminator`` adds its ``(B, 1, 1, 1)`` LPIPS map to the L1 map. The
    references reduce with ``sum(e) / B`` (``reduction="sum"`` divided by the batch size).

    Args:
        pred: ``(B, ...)`` reconstruction, e.g. ``(B, C, H, W)`` or ``(B, C, T, H, W)``.
        target: same shape as ``pred``.
        logvar: the learned log-variance: a float or a tensor broadcastable to ``pred`` (usually
            a 0-d ``nn.Parameter``).
        perceptual: optional ``(B,)`` per-sample distances (viewed as ``(B, 1, ..., 1)``) or a
            tensor broadcastable to ``pred``, e.g. LPIPS with ``reduction="none"``.
        perceptual_weight: factor of ``perceptual``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (elementwise, ``pred``'s shape).

    Returns:
        A scalar, or the elementwise tensor for ``"none"``.

    References: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models",
    CVPR 2022 (CompVis/latent-diffusion ``ldm/modules/losses/contperceptual.py``); Tang et al.,
    "VidTok", 2024 (microsoft/VidTok ``vidtok/modules/losses.py``).
    """
    check_float_tensor("pred", pred)
    check_float_tensor("target", target)
    check_ndim("pred", pred, range(1, 9), "(B, ...)")
    check_same_shape("pred", pred, "target", target)
    check_reduction(reduction)
    if isinstance(logvar, Tensor):
        check_float_tensor("logvar", logvar)
        check_broadcastable("logvar", logvar, "pred", pred.shape)
    elif isinstance(logvar, bool) or not isinstance(logvar, (int, float)):
        raise TypeError(f"`logvar` must be a float or a tensor; got {type(logvar).__name__}")
    else:
        logvar = torch.tensor(float(logvar), dtype=pred.dtype, device=pred.device)
    rec = (pred - target).abs()
    if perceptual is not None:
        check_float_tensor("perceptual", perceptual)
        rec = rec + perceptual_weight * _per_sample_shape("perceptual", perceptual, pred)
    return reduce_masked(rec / torch.exp(logvar) + logvar, reduction)


def diagonal_gaussian_kl(
    mean: Tensor,
    logvar: Tensor,
    *,
    clamp: tuple[float, float] | None = LDM_LOGVAR_CLAMP,
    reduction: str = "mean",
) -> Tensor:
    """KL divergence of a diagonal Gaussian posterior from the standard normal prior.

    ``KL_b = 0.5 · Σ_i (μ_i² + σ_i² − 1 − log σ_i²)`` over every non-batch element of sample b
    (ldm's ``DiagonalGaussianDistribution.kl()``), with ``log σ²`` first clamped to ``clamp``
    as ldm does when it builds the distribution. Each sample's value is the KL of its whole
    latent (a sum over elements, not a mean: this is the divergence itself); ``"mean"`` is the
    batch mean, which is the references' ``sum(kl) / B``.

    Args:
        mean: ``(B, C, ...)`` posterior means.
        logvar: same shape: posterior log-variances.
        clamp: ``(low, high)`` for ``logvar`` (ldm: ``(-30, 20)``), or None.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, appendix B;
    CompVis/latent-diffusion ``ldm/modules/distributions/distributions.py``.
    """
    check_float_tensor("mean", mean)
    check_float_tensor("logvar", logvar)
    check_ndim("mean", mean, range(2, 9), "(B, C, ...) of posterior means")
    check_same_shape("mean", mean, "logvar", logvar)
    check_reduction(reduction)
    mean, logvar = at_least_float32(mean), at_least_float32(logvar)
    if clamp is not None:
        logvar = logvar.clamp(*clamp)
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)
    return reduce_per_sample(kl.flatten(1).sum(dim=1), reduction)


def outlier_penalty_loss(
    latents: Tensor,
    *,
    r: float = 3.0,
    detach_stats: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Outlier penalty (OPL): hinge on latent vectors far from their frame's mean.

    With ``μ_c`` and ``σ_c`` the mean and standard deviation (unbiased, as ``torch.std``) of
    channel c over the spatial positions of one frame, and norms over the channels::

        OPL = mean_{h, w} max(‖z[:, h, w] − μ‖₂ − r·‖σ‖₂, 0)

    Videos ``(B, C, T, H, W)`` are taken frame by frame; a sample's value is the mean over its
    frames and positions. It keeps a few latent positions from carrying huge values (high-norm
    "spots" that decode to artefacts).

    Args:
        latents: ``(B, C, H, W)`` or ``(B, C, T, H, W)`` latents, at least 2 positions per frame.
        r: how many (norms of) standard deviations a vector may lie from the mean for free.
        detach_stats: compute ``μ`` and ``σ`` without gradient (a fixed threshold per step).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Polyak et al., "Movie Gen: A Cast of Media Foundation Models", 2024, §3.1.1
    (the temporal autoencoder's outlier penalty loss). The Open-Sora 2.0 repository
    (hpcaitech/Open-Sora ``opensora/models/vae/losses.py``) ships no such term; this follows
    Movie Gen's published formula.
    """
    check_image_or_video("latents", latents)
    check_reduction(reduction)
    if isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0:
        raise ValueError(f"`r` must be a non-negative float; got {r!r}")
    z = at_least_float32(latents)
    if z.ndim == 5:
        z = rearrange(z, "b c t h w -> b t c h w")
    else:
        z = z.unsqueeze(1)  # (B, 1, C, H, W)
    if z.shape[-1] * z.shape[-2] < 2:
        raise ValueError(
            f"`latents` need at least 2 spatial positions per frame for a standard deviation; "
            f"got shape {tuple(latents.shape)}"
        )
    mu = z.mean(dim=(-2, -1), keepdim=True)  # (B, T, C, 1, 1)
    sigma = z.std(dim=(-2, -1), keepdim=True)
    if detach_stats:
        mu, sigma = mu.detach(), sigma.detach()
    distance = (z - mu).norm(dim=2)  # (B, T, H, W)
    threshold = r * sigma.norm(dim=2)  # (B, T, 1, 1)
    return reduce_per_sample(per_sample_mean(torch.relu(distance - threshold)), reduction)


class LogvarNLLLoss(ReductionModule):
    """Module form of :func:`logvar_nll_loss` that owns the log-variance parameter.

    Args:
        logvar_init: initial log-variance (LDM and VidTok: 0).
        learn_logvar: whether the log-variance is trained (VidTok: True; WF-VAE: False).
        perceptual_weight: factor of the optional perceptual input.
        reduction: as for the function.
    """

    def __init__(
        self,
        logvar_init: float = 0.0,
        *,
        learn_logvar: bool = True,
        perceptual_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.logvar = torch.nn.Parameter(torch.tensor(float(logvar_init)), requires_grad=learn_logvar)
        self.perceptual_weight = perceptual_weight

    def forward(self, pred: Tensor, target: Tensor, perceptual: Tensor | None = None) -> Tensor:
        return logvar_nll_loss(pred, target, self.logvar, perceptual=perceptual,
                               perceptual_weight=self.perceptual_weight, reduction=self.reduction)


class DiagonalGaussianKL(ReductionModule):
    """Module form of :func:`diagonal_gaussian_kl`."""

    def __init__(
        self, clamp: tuple[float, float] | None = LDM_LOGVAR_CLAMP, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self.clamp = clamp

    def forward(self, mean: Tensor, logvar: Tensor) -> Tensor:
        return diagonal_gaussian_kl(mean, logvar, clamp=self.clamp, reduction=self.reduction)


class OutlierPenaltyLoss(ReductionModule):
    """Module form of :func:`outlier_penalty_loss`."""

    def __init__(self, r: float = 3.0, *, detach_stats: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.r, self.detach_stats = r, detach_stats

    def forward(self, latents: Tensor) -> Tensor:
        return outlier_penalty_loss(latents, r=self.r, detach_stats=self.detach_stats,
                                    reduction=self.reduction)

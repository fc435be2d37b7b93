"""Clip-by-clip video metrics against a reference: per frame, per clip and over the batch.

Every metric takes clips ``(B, C, T, H, W)`` with pixels in [-1, 1], runs under
:func:`torch.no_grad` and returns a :class:`MetricResult`:

* ``per_frame``: ``(B, T)`` for frame metrics (PSNR, SSIM, LPIPS), ``(B, T - 1)`` for metrics of
  consecutive frame pairs (tLP, tOF, warping error);
* ``per_clip``: ``(B,)``, the mean of ``per_frame`` over its time axis;
* ``mean``: a 0-d tensor, the mean of ``per_clip``.

Averaging per-frame values (rather than pooling errors over the clip first) is the convention of
the video super-resolution and consistency literature (TecoGAN, Lai et al.), so numbers compare
with those papers' tables. Metrics are computed in float32 (float64 stays float64).

Pixels are checked as the losses check them (:func:`genloss._checks.check_pixel_range`): NaN, inf
and values outside [-1.5, 1.5] (such as [0, 255] floats, which would give silently wrong numbers)
raise ``ValueError``. The check reads the values, one device synchronisation per clip tensor;
``check_range=False`` skips it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from .._checks import (
    at_least_float32,
    check_flow,
    check_mask,
    check_pixel_range,
    check_same_shape,
    check_video,
    masked_mean,
)
from ..flow import FlowEstimator, video_flow, video_flow_and_mask
from ..perceptual import LPIPS, call_lpips
from ..ssim import frame_ssim
from ..temporal import temporal_lpips_per_step, warp

__all__ = [
    "MetricResult",
    "lpips",
    "lpips_and_tlp",
    "psnr",
    "ssim",
    "tlp",
    "tof",
    "warping_error",
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


def _check_pair(
    pred: object, target: object, check_range: bool, min_frames: int = 1
) -> tuple[Tensor, Tensor]:
    """Two clips of one shape, pixels in range unless ``check_range`` is False; half precision
    upcast (squared errors and log10 need float32)."""
    pred = check_video("pred", pred, min_frames=min_frames)
    target = check_video("target", target, min_frames=min_frames)
    check_same_shape("pred", pred, "target", target)
    if check_range:
        check_pixel_range("pred", pred)
        check_pixel_range("target", target)
    return at_least_float32(pred), at_least_float32(target)


@torch.no_grad()
def psnr(
    pred: Tensor, target: Tensor, *, data_range: float = 2.0, check_range: bool = True
) -> MetricResult:
    """Peak signal-to-noise ratio in dB, per frame and per clip.

    ``PSNR_t = 10 log10(data_range^2 / MSE_t)`` with ``MSE_t`` the mean squared error of frame
    ``t`` over channels and pixels. A clip's PSNR is the mean of its frames' PSNR (not the PSNR of
    the clip's pooled MSE). ``MSE_t`` is clamped below at ``1e-10 * data_range^2``, so identical
    frames give a finite 100 dB instead of ``inf``.

    Args:
        pred: ``(B, C, T, H, W)`` in [-1, 1].
        target: same shape as ``pred``.
        data_range: ``max - min`` of the pixel range; 2.0 for [-1, 1].
        check_range: reject NaN, inf and pixels off the scale ``data_range`` says: outside
            [-1.5, 1.5] for the default 2.0, else outside ``[-data_range, data_range]`` (which holds
            ``[0, data_range]`` and ``[-data_range / 2, data_range / 2]``). One device sync each.

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T)``.

    Example:
        >>> x = torch.zeros(1, 3, 2, 8, 8)
        >>> psnr(x, x + 0.1).mean   # MSE 0.01 -> 10 log10(4 / 0.01)
        tensor(26.0206)
    """
    pred, target = _check_pair(pred, target, check_range=False)
    if not data_range > 0:
        raise ValueError(f"`data_range` must be positive; got {data_range!r}")
    if check_range:
        _check_psnr_range(pred, target, data_range)
    mse = (pred - target).square().mean(dim=(1, 3, 4))  # (B, T)
    peak = data_range * data_range
    per_frame = 10.0 * torch.log10(peak / mse.clamp_min(_PSNR_MSE_FLOOR * peak))
    return MetricResult.from_per_frame(per_frame)


def _check_psnr_range(pred: Tensor, target: Tensor, data_range: float) -> None:
    """Pixels on the scale ``data_range`` says (PSNR's peak is only right on that scale)."""
    if data_range == 2.0:  # the library's [-1, 1], with the limits every metric and loss uses
        for name, x in (("pred", pred), ("target", target)):
            check_pixel_range(
                name, x, hint="use x / 127.5 - 1, or pass data_range=255 for [0, 255] pixels"
            )
        return
    # PSNR depends on the pixels only through their differences, so any range of width
    # data_range is right; [0, R] and [-R/2, R/2] both lie within [-R, R].
    half = data_range / 2
    expected = f"[0, {data_range:g}] or [{-half:g}, {half:g}] (data_range={data_range:g})"
    for name, x in (("pred", pred), ("target", target)):
        check_pixel_range(name, x, -data_range, data_range, expected=expected, hint=None)


@torch.no_grad()
def ssim(pred: Tensor, target: Tensor, *, check_range: bool = True) -> MetricResult:
    """Structural similarity (SSIM), per frame and per clip: the similarity of ``ssim_loss``.

    :func:`genloss.ssim.frame_ssim` (via ``pytorch_msssim``) compares the frames shifted to [0, 2]
    with ``data_range=2``, which gives, to the bit, the number on [0, 1] with ``data_range=1`` that
    papers report: SSIM's luminance term is not shift-invariant, but it is scale-invariant once
    ``C_i = (K_i · data_range)²`` scale with the range. Gaussian window 11 px, sigma 1.5,
    ``K = (0.01, 0.03)``; the per-frame value averages the channels' SSIM maps.

    Args:
        pred: ``(B, C, T, H, W)`` in [-1, 1], ``H, W >= 11``.
        target: same shape as ``pred``.
        check_range: reject NaN, inf and pixels outside [-1.5, 1.5] (one device sync each).

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T)``; 1 for identical clips.

    Reference: Wang et al., "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 2004.
    """
    pred, target = _check_pair(pred, target, check_range)
    if min(pred.shape[-2:]) < 11:
        raise ValueError(
            f"`pred` frames must be at least 11x11 for SSIM's 11-px window; "
            f"got shape {tuple(pred.shape)}"
        )
    return MetricResult.from_per_frame(frame_ssim(pred, target))


def _lpips_features(model: LPIPS, pred: Tensor, target: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Both clips' unit features, each frame through the trunk once."""
    return model.unit_features(pred, name="pred"), model.unit_features(target, name="target")


def _result(values: Tensor) -> MetricResult:
    """``MetricResult`` of ``(B, T')`` values in at least float32."""
    return MetricResult.from_per_frame(at_least_float32(values))


@torch.no_grad()
def lpips(
    pred: Tensor, target: Tensor, *, model: Callable[..., Tensor], check_range: bool = True
) -> MetricResult:
    """LPIPS distance per frame and per clip.

    A :class:`genloss.LPIPS` ``model`` runs every frame through its trunk once and compares the
    unit features (``model.unit_features``, ``model.feature_distance``); any other callable is
    called once on all ``B T`` frame pairs as ``model(x, y, reduction="none")``.

    Args:
        pred: ``(B, C, T, H, W)`` in [-1, 1].
        target: same shape as ``pred``.
        model: ``genloss.LPIPS("alex")``, or any callable ``model(x, y, reduction="none")``
            mapping two ``(N, C, H, W)`` batches to ``(N,)`` distances.
        check_range: reject NaN, inf and pixels outside [-1.5, 1.5] (one device sync each); a
            ``genloss.LPIPS`` also checks by its own ``check_range``.

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T)``; 0 for identical clips.

    Reference: Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
    Metric", CVPR 2018.
    """
    pred, target = _check_pair(pred, target, check_range)
    if isinstance(model, LPIPS):
        return _result(model.feature_distance(*_lpips_features(model, pred, target)))
    values = call_lpips(
        model,
        rearrange(pred, "b c t h w -> (b t) c h w"),
        rearrange(target, "b c t h w -> (b t) c h w"),
    )
    return _result(rearrange(values, "(b t) -> b t", b=pred.shape[0]))


@torch.no_grad()
def tlp(
    pred: Tensor, target: Tensor, *, model: Callable[..., Tensor], check_range: bool = True
) -> MetricResult:
    """Temporal LPIPS (tLP): how far the perceptual change between frames is from the target's.

    Per step ``|LPIPS(p_t, p_{t-1}) - LPIPS(r_t, r_{t-1})|``, ``t = 1 .. T - 1``; lower is
    better, 0 when the clips change alike. TecoGAN's tables report ``100 x`` this value.
    :func:`genloss.temporal_lpips_loss` is the differentiable form and calls ``model`` the same
    way: a :class:`genloss.LPIPS` runs each frame through its trunk once, any other callable
    scores all ``2 B (T - 1)`` frame pairs in one call. :func:`lpips_and_tlp` computes this and
    :func:`lpips` from one feature pass.

    Args:
        pred: ``(B, C, T, H, W)`` with ``T >= 2``, in [-1, 1].
        target: same shape as ``pred``.
        model: an LPIPS-like callable, as for :func:`lpips`.
        check_range: as for :func:`lpips`.

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T - 1)`` (one value per step).

    Reference: Chu et al., "Learning Temporal Coherence via Self-Supervision for GAN-based Video
    Generation" (TecoGAN), ACM TOG 2020, sec. 5.
    """
    pred, target = _check_pair(pred, target, check_range, min_frames=2)
    return _result(temporal_lpips_per_step(pred, target, model=model))


@torch.no_grad()
def lpips_and_tlp(
    pred: Tensor, target: Tensor, *, model: Callable[..., Tensor], check_range: bool = True
) -> tuple[MetricResult, MetricResult]:
    """:func:`lpips` and :func:`tlp` together, from one pass of each frame through the trunk.

    With a :class:`genloss.LPIPS` ``model`` the ``2 B T`` frames of both clips go through the
    trunk once, and all three sets of distances come from their unit features:
    ``LPIPS(p_t, r_t)``, ``LPIPS(p_t, p_{t-1})`` and ``LPIPS(r_t, r_{t-1})``. Scoring those pairs
    with a pair-by-pair LPIPS runs ``2 B T + 4 B (T - 1)`` frames, about 3x as many. Any other
    callable is called as :func:`lpips` and :func:`tlp` call it (two calls).

    Args:
        pred: ``(B, C, T, H, W)`` with ``T >= 2``, in [-1, 1].
        target: same shape as ``pred``.
        model: ``genloss.LPIPS(...)`` or an LPIPS-like callable, as for :func:`lpips`.
        check_range: as for :func:`lpips`.

    Returns:
        ``(lpips, tlp)``: :class:`MetricResult` with ``per_frame`` ``(B, T)`` and ``(B, T - 1)``,
        equal to ``lpips(pred, target, model=model)`` and ``tlp(pred, target, model=model)``.

    Example:
        >>> lpips_result, tlp_result = lpips_and_tlp(fake, real, model=gl.LPIPS("alex"))  # doctest: +SKIP
    """
    pred, target = _check_pair(pred, target, check_range, min_frames=2)
    if not isinstance(model, LPIPS):
        # Checked above: the two calls need not scan the pixels again.
        return (
            lpips(pred, target, model=model, check_range=False),
            tlp(pred, target, model=model, check_range=False),
        )
    pred_units, target_units = _lpips_features(model, pred, target)
    per_step = (model.step_distance(pred_units) - model.step_distance(target_units)).abs()
    return _result(model.feature_distance(pred_units, target_units)), _result(per_step)


@torch.no_grad()
def tof(
    pred: Tensor,
    target: Tensor,
    *,
    flow_fn: FlowEstimator | None = None,
    check_range: bool = True,
) -> MetricResult:
    """Temporal optical-flow error (tOF): end-point distance between the clips' motion.

    Per step, the mean over pixels of ``||OF(p_{t-1}, p_t) - OF(r_{t-1}, r_t)||_2`` (flows in
    pixels from frame ``t - 1`` to ``t``), both clips' flows in one estimator call. TecoGAN
    used OpenCV's Farneback flow and cropped the borders; here the flow is ``flow_fn`` (default
    :func:`genloss.flow.estimate_flow`) over the whole frame, so compare numbers only between
    runs of this function. TecoGAN's tables report ``10 x`` this value.

    Args:
        pred: ``(B, C, T, H, W)`` with ``T >= 2``, in [-1, 1].
        target: same shape as ``pred``.
        flow_fn: ``flow_fn(frames_a, frames_b) -> (N, 2, H, W)``, the flow from a to b.
        check_range: reject NaN, inf and pixels outside [-1.5, 1.5] (one device sync each).

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T - 1)``; 0 for identical clips.

    Reference: Chu et al., TecoGAN, ACM TOG 2020, sec. 5.
    """
    pred, target = _check_pair(pred, target, check_range, min_frames=2)
    flows = video_flow(torch.cat((pred, target)), flow_fn, direction="forward").float()
    flow_p, flow_t = flows.chunk(2)  # (B, 2, T - 1, H, W) each
    per_step = (flow_p - flow_t).square().sum(dim=1).sqrt().mean(dim=(2, 3))  # (B, T - 1)
    return MetricResult.from_per_frame(per_step)


@torch.no_grad()
def warping_error(
    video: Tensor,
    *,
    flow: Tensor | None = None,
    flow_fn: FlowEstimator | None = None,
    mask: Tensor | None = None,
    motion_boundaries: bool = True,
    check_range: bool = True,
) -> MetricResult:
    """Warping error (Lai et al. 2018): masked mean squared residual after flow warping.

    Per step ``E_t = sum(M_t * (v_{t+1} - warp(v_t, F_t))^2) / sum(M_t)``, the mask counted
    over channels too (a per-element mean over the unmasked pixels), with ``F_t`` the backward
    flow from frame ``t + 1`` to ``t``. A step whose mask is all zero scores 0.

    Lai et al.'s numbers are this value ``/ 4``: their ``evaluate_WarpError.py`` reads the
    occlusion mask as a 3-channel image, so its normaliser ``N = sum(mask)`` counts channels and
    the error is the same per-element mean, but on [0, 1] pixels (half the differences of
    [-1, 1], a quarter of the squares). Their script warps frame ``t`` back onto ``t - 1`` with
    the forward flow; this function on ``video.flip(2)`` does exactly that.

    Flow and mask:
      * ``flow=None``: the flows are estimated with ``flow_fn`` (default
        :func:`genloss.flow.estimate_flow`); if ``mask`` is also ``None``, the non-occlusion mask
        comes from the forward-backward check and, with ``motion_boundaries=True``, the
        motion-boundary test (:func:`genloss.flow.video_flow_and_mask`), which is Lai et al.'s
        protocol.
      * ``flow`` given: used as is; ``mask=None`` then means every pixel counts.
    To score a generated clip against the motion of its reference, estimate
    ``flow, mask = video_flow_and_mask(reference)`` and pass both.

    Args:
        video: ``(B, C, T, H, W)`` with ``T >= 2``, in [-1, 1].
        flow: optional ``(B, 2, T - 1, H, W)`` backward flows in pixels (channel 0 = x).
        flow_fn: estimator used when ``flow`` is ``None``; passing both is an error.
        mask: optional weights in [0, 1] broadcastable to ``(B, C, T - 1, H, W)``.
        motion_boundaries: whether the estimated mask also drops motion boundaries (see
            :func:`genloss.occlusion_mask`); ``False`` with a given ``flow`` or ``mask`` (no
            estimated mask) is an error.
        check_range: reject NaN, inf and pixels of ``video`` outside [-1.5, 1.5] (one device
            sync); ``flow`` and ``mask`` are not scanned.

    Returns:
        :class:`MetricResult` with ``per_frame`` ``(B, T - 1)``; lower is more consistent.

    Reference: Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, sec. 5.
    """
    video = check_video("video", video, min_frames=2)
    if check_range:
        check_pixel_range("video", video)
    video = at_least_float32(video)
    following = video[:, :, 1:]
    if flow is not None and flow_fn is not None:
        raise ValueError("pass either `flow` or `flow_fn` to warping_error, not both")
    if not isinstance(motion_boundaries, bool):
        raise TypeError(
            f"`motion_boundaries` must be a bool; got {type(motion_boundaries).__name__}"
        )
    if not motion_boundaries and (flow is not None or mask is not None):
        raise ValueError(
            "`motion_boundaries=False` applies to the estimated mask only; with `flow` or "
            "`mask` given warping_error estimates no mask"
        )
    if flow is None:
        if mask is None:
            flow, mask = video_flow_and_mask(
                video, flow_fn, motion_boundaries=motion_boundaries
            )
        else:
            flow = video_flow(video, flow_fn)
    flow = check_flow(flow, following, "video[:, :, 1:]")
    if mask is not None:
        mask = check_mask(mask, following, "video[:, :, 1:]")
    residual = (following - warp(video[:, :, :-1], flow)).square()
    return MetricResult.from_per_frame(masked_mean(residual, mask, dim=(1, 3, 4)))

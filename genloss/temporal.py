"""Temporal losses for videos ``(B, C, T, H, W)``: frame differences, flow warping, ping-pong, tLP.

All losses here are per-sample: ``reduction="none"`` returns ``(B,)``, each clip's value being
the mean over its non-batch elements (the masked mean for :func:`flow_warping_loss`); ``"mean"``
averages those values and ``"sum"`` adds them.

Flow convention (as :func:`warp` defines it): a flow has 2 channels in pixels, channel 0 the x
(width) displacement and channel 1 the y (height) displacement, and warping is backward::

    warp(frames, flow)[..., y, x] = frames[..., y + flow[:, 1, ..., y, x], x + flow[:, 0, ..., y, x]]

For a clip, ``flow[:, :, t]`` is the backward flow from frame ``t + 1`` to frame ``t``, so
``warp(video[:, :, t], flow[:, :, t]) ≈ video[:, :, t + 1]``. :func:`genloss.flow.video_flow`
estimates such flows without pretrained weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ._checks import (
    ReductionModule,
    at_least_float32,
    check_choice,
    check_float_tensor,
    check_flow,
    check_image_or_video,
    check_mask,
    check_reduction,
    check_same_shape,
    check_video,
    masked_mean,
    per_sample_mean,
    reduce_per_sample,
)
from .perceptual import LPIPS, call_lpips

__all__ = [
    "FlowSmoothnessLoss",
    "FlowWarpingLoss",
    "PingPongLoss",
    "TemporalDifferenceLoss",
    "TemporalLPIPSLoss",
    "TemporalSmoothnessLoss",
    "flow_smoothness_loss",
    "flow_warping_loss",
    "occlusion_mask",
    "ping_pong_loss",
    "splat",
    "temporal_difference_loss",
    "temporal_lpips_loss",
    "temporal_lpips_per_step",
    "temporal_smoothness_loss",
    "warp",
]

PADDING_MODES = ("border", "zeros", "reflection")
WARP_MODES = ("bilinear", "bicubic")


def _time_diff(video: Tensor) -> Tensor:
    """``v[:, :, 1:] - v[:, :, :-1]``: ``(B, C, T, H, W) -> (B, C, T - 1, H, W)``."""
    return video[:, :, 1:] - video[:, :, :-1]


def _sampling_grid(flow: Tensor) -> Tensor:
    """Pixel flow ``(N, 2, H, W)`` -> ``grid_sample`` grid ``(N, H, W, 2)`` (align_corners=True).

    With ``align_corners=True`` pixel centre ``i`` sits at ``-1 + 2 i / (size - 1)``, so a pixel
    coordinate ``p`` normalises to ``2 p / (size - 1) - 1``.
    """
    _, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    x = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    y = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack((x, y), dim=-1)


def warp(frames: Tensor, flow: Tensor, *, padding_mode: str = "border", mode: str = "bilinear") -> Tensor:
    """Backward-warp frames with a dense flow in pixels (bilinear or bicubic sampling).

    ``out[..., y, x] = frames[..., y + flow[:, 1, ..., y, x], x + flow[:, 0, ..., y, x]]``,
    sampled by ``grid_sample`` with ``align_corners=True``, so integer flows move pixels exactly.
    Bilinear sampling averages neighbours at sub-pixel positions, a low-pass filter that softens
    every warped frame (most at half-pixel shifts); ``mode="bicubic"`` interpolates with Keys'
    cubic convolution kernel (a = -0.75, 4x4 taps), which keeps more of the texture but can
    overshoot the input range near edges. Differentiable with respect to both ``frames`` and
    ``flow``. Half-precision inputs
    are sampled in float32 (float16 cannot hold pixel coordinates past 2048 to sub-pixel
    precision) and the result is cast back to ``frames``' dtype.

    Args:
        frames: images ``(B, C, H, W)`` or videos ``(B, C, T, H, W)``.
        flow: ``(B, 2, H, W)`` or ``(B, 2, T, H, W)``; channel 0 is the x (width)
            displacement, channel 1 the y (height) displacement, both in pixels.
        padding_mode: where samples fall outside the frame: ``"border"`` (repeat the edge),
            ``"zeros"`` or ``"reflection"``.
        mode: ``"bilinear"`` (2x2 taps) or ``"bicubic"`` (4x4 taps).

    Returns:
        The warped frames, ``frames``' shape and dtype.

    Example:
        >>> img = torch.arange(16.0).view(1, 1, 4, 4)
        >>> flow = torch.zeros(1, 2, 4, 4); flow[:, 0] = 1.0   # read one pixel to the right
        >>> warp(img, flow)[0, 0, 0]
        tensor([1., 2., 3., 3.])
    """
    frames = check_image_or_video("frames", frames)
    flow = check_flow(flow, frames, "frames")
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    check_choice("mode", mode, WARP_MODES)
    dtype = torch.promote_types(frames.dtype, flow.dtype)  # grid_sample takes one dtype
    is_video = frames.ndim == 5
    if is_video:
        frames_2d = rearrange(frames, "b c t h w -> (b t) c h w")
        flow_2d = rearrange(flow, "b two t h w -> (b t) two h w")
    else:
        frames_2d, flow_2d = frames, flow
    out = F.grid_sample(
        at_least_float32(frames_2d.to(dtype)),
        _sampling_grid(at_least_float32(flow_2d.to(dtype))),
        mode=mode,
        padding_mode=padding_mode,
        align_corners=True,
    ).to(frames.dtype)
    if is_video:
        out = rearrange(out, "(b t) c h w -> b c t h w", b=frames.shape[0])
    return out


def splat(frames: Tensor, flow: Tensor, importance: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Forward-warp frames along a dense flow in pixels (bilinear softmax splatting).

    Every source pixel ``p`` is sent to ``p + flow(p)`` and shared among the 4 target pixels
    around it with bilinear weights ``b(p, q)``; where several land on one target, the one with the
    larger ``importance`` ``z`` wins (Niklaus & Liu, "Softmax Splatting for Video Frame
    Interpolation", CVPR 2020)::

        out[q] = Σ_p b(p, q) e^{z_p} frames[p] / Σ_p b(p, q) e^{z_p}     coverage[q] = Σ_p b(p, q)

    Unlike :func:`warp`, the flow lives on the *source* grid: each pixel carries its own
    displacement, so a rigid object moves with its own flow and keeps its shape even where that
    flow is blurred across the object's border (the border pixels only split their weight). Where
    nothing lands (``coverage`` 0: disoccluded areas and the frame's edge), ``out`` is 0; blend a
    fill there, e.g. ``c * out + (1 - c) * fill`` with ``c = coverage.clamp(max=1)``. Targets
    outside the frame are dropped. Differentiable with respect to ``frames``, ``flow`` (through
    the bilinear weights) and ``importance``. Half precision is computed in float32 and cast back.

    Written here rather than taken from a package: the reference CUDA kernels (``softsplat``) do
    not run on the CPU; this is plain ``scatter_add`` and runs on any device.

    Args:
        frames: images ``(B, C, H, W)`` or videos ``(B, C, T, H, W)``.
        flow: ``(B, 2, H, W)`` or ``(B, 2, T, H, W)``: channel 0 the x (width) displacement,
            channel 1 the y (height) displacement of each source pixel, in pixels.
        importance: ``(B, 1, ...)`` like ``flow`` with one channel, the log weight ``z``; ``None``
            weighs every pixel equally (average splatting). Keep its spread
            within about 80 per image: ``e^{z - max z}`` underflows in float32 below that, and such
            pixels then land with no weight.

    Returns:
        ``(out, coverage)``: ``out`` has ``frames``' shape and dtype, ``coverage`` is
        ``(B, 1, ...)``, the bilinear weight that landed on each target pixel (1 for a
        translation by any flow, away from the frame's edge).

    Example:
        >>> img = torch.arange(4.0).view(1, 1, 1, 4)
        >>> flow = torch.zeros(1, 2, 1, 4); flow[:, 0] = 1.0   # every pixel one to the right
        >>> out, coverage = splat(img, flow)
        >>> out[0, 0, 0], coverage[0, 0, 0]
        (tensor([0., 0., 1., 2.]), tensor([0., 1., 1., 1.]))
    """
    frames = check_image_or_video("frames", frames)
    flow = check_flow(flow, frames, "frames")
    if importance is not None:
        importance = check_float_tensor("importance", importance)
        expected = (frames.shape[0], 1, *frames.shape[2:])
        if tuple(importance.shape) != expected:
            raise ValueError(f"`importance` must have shape {expected} (one channel, like `flow`); "
                             f"got {tuple(importance.shape)}")
    is_video = frames.ndim == 5
    pattern = "b c t h w -> (b t) c h w"
    dtype = torch.promote_types(torch.promote_types(frames.dtype, flow.dtype), torch.float32)  # fp16 -> fp32
    x = frames.to(dtype)
    f = flow.to(dtype)
    z = importance.to(dtype) if importance is not None else None
    if is_video:
        x, f = rearrange(x, pattern), rearrange(f, pattern)
        z = rearrange(z, pattern) if z is not None else None
    n, c, h, w = x.shape
    # Softmax weights; the per-image maximum is subtracted so e^z never overflows (it cancels in the ratio).
    weight = torch.ones_like(f[:, :1]) if z is None else torch.exp(z - z.amax(dim=(2, 3), keepdim=True))
    values = torch.cat([x * weight, weight, torch.ones_like(weight)], dim=1).flatten(2)  # (N, C + 2, HW)
    ys = torch.arange(h, device=x.device, dtype=dtype).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=dtype).view(1, 1, w)
    tx, ty = xs + f[:, 0], ys + f[:, 1]  # (N, H, W): where each source pixel lands
    x0, y0 = tx.floor(), ty.floor()
    sums = torch.zeros_like(values)
    for dx in (0, 1):
        for dy in (0, 1):
            cx, cy = x0 + dx, y0 + dy
            bilinear = (1 - (tx - cx).abs()) * (1 - (ty - cy).abs())  # (N, H, W), in [0, 1]
            inside = (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
            index = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).long().flatten(1)  # (N, HW)
            share = (bilinear * inside).flatten(1).unsqueeze(1)  # (N, 1, HW)
            sums = sums.scatter_add(2, index.unsqueeze(1).expand(n, c + 2, h * w), values * share)
    sums = sums.view(n, c + 2, h, w)
    total = sums[:, c : c + 1]
    out = sums[:, :c] / total.clamp_min(torch.finfo(dtype).tiny)  # 0 where nothing landed
    coverage = sums[:, c + 1 :]
    if is_video:
        out = rearrange(out, "(b t) c h w -> b c t h w", b=frames.shape[0])
        coverage = rearrange(coverage, "(b t) c h w -> b c t h w", b=frames.shape[0])
    return out.to(frames.dtype), coverage.to(frames.dtype)


def temporal_difference_loss(pred: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """Match the prediction's frame-to-frame changes to the target's.

    ``e = |Δpred - Δtarget|`` with ``Δv = v[:, :, 1:] - v[:, :, :-1]``, ``(B, C, T - 1, H, W)``;
    each clip's value is the mean of its ``e``.

    Args:
        pred: ``(B, C, T, H, W)`` with ``T >= 2``.
        target: same shape as ``pred``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: the temporal-difference term of video prediction and enhancement work, e.g.
    Jiang et al., "Super SloMo" (CVPR 2018) and Mathieu et al. (ICLR 2016).
    """
    check_video("pred", pred, min_frames=2)
    check_video("target", target, min_frames=2)
    check_same_shape("pred", pred, "target", target)
    check_reduction(reduction)
    e = (_time_diff(pred) - _time_diff(target)).abs()
    return reduce_per_sample(per_sample_mean(e), reduction)


def _check_order(order: object) -> None:
    if order not in (1, 2) or isinstance(order, bool):
        raise ValueError(f"`order` must be 1 or 2; got {order!r}")


def temporal_smoothness_loss(video: Tensor, *, order: int = 1, reduction: str = "mean") -> Tensor:
    """Penalise change over time; needs no target (usable for unconditional generation).

    Order 1: ``e = |v[t + 1] - v[t]|``, ``(B, C, T - 1, H, W)``.
    Order 2: ``e = |v[t + 1] - 2 v[t] + v[t - 1]|``, ``(B, C, T - 2, H, W)``: zero for any
    motion-free linear-in-time change (fades), so it penalises flicker and jerks rather than
    steady change. Each clip's value is the mean of its ``e``.

    Args:
        video: ``(B, C, T, H, W)`` with ``T >= order + 1``.
        order: 1 or 2.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.
    """
    _check_order(order)
    check_video("video", video, min_frames=order + 1)
    check_reduction(reduction)
    e = _time_diff(video)
    if order == 2:
        e = _time_diff(e)
    return reduce_per_sample(per_sample_mean(e.abs()), reduction)


def _check_edge_weight(edge_weight: object) -> None:
    if not isinstance(edge_weight, (int, float)) or isinstance(edge_weight, bool) or edge_weight < 0:
        raise ValueError(f"`edge_weight` must be a number >= 0; got {edge_weight!r}")


def flow_smoothness_loss(
    flow: Tensor, *, image: Tensor | None = None, edge_weight: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """First-order smoothness of a dense flow: its total variation, optionally edge-aware.

    ``e_x = w_x |flow[..., y, x + 1] - flow[..., y, x]|`` and ``e_y`` likewise down the rows, for
    both channels (and every frame of a video flow), with ``w_x = exp(-edge_weight ·
    mean_c |image[..., y, x + 1] - image[..., y, x]|)`` (1 without ``image`` or with
    ``edge_weight=0``). Each sample's value is ``mean(e_x) + mean(e_y)``. An L1 penalty lets the
    flow jump at motion boundaries and flattens it elsewhere: a rigid object's flow becomes
    constant over it and its surroundings, so warping moves its outline whole (a square keeps its
    corners) rather than bending it where a smooth flow falls off. The edge-aware weights let it
    jump where the image has an edge.

    Args:
        flow: ``(B, 2, H, W)`` or ``(B, 2, T, H, W)``, in pixels (channel 0 = x).
        image: optional ``(B, C, H, W)`` or ``(B, C, T, H, W)`` on the flow's grid (same B, T,
            H, W), e.g. the frames the flow warps into; a constant for the loss.
        edge_weight: ``λ >= 0`` of the edge-aware weights (UFlow uses 150 for images in [0, 1]).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Rudin, Osher and Fatemi, "Nonlinear total variation based noise removal
    algorithms", Physica D 1992; the edge-aware form as in Jonschkowski et al., "What Matters in
    Unsupervised Optical Flow" (UFlow), ECCV 2020, first-order smoothness.
    """
    flow = check_image_or_video("flow", flow)
    if flow.shape[1] != 2:
        raise ValueError(f"`flow` must have 2 channels (x, y displacement) in dim 1; got shape {tuple(flow.shape)}")
    if flow.shape[-1] < 2 or flow.shape[-2] < 2:
        raise ValueError(f"`flow` must be at least 2x2 pixels to have differences; got shape {tuple(flow.shape)}")
    _check_edge_weight(edge_weight)
    check_reduction(reduction)
    dx = (flow[..., :, 1:] - flow[..., :, :-1]).abs()  # (B, 2, [T,] H, W - 1)
    dy = (flow[..., 1:, :] - flow[..., :-1, :]).abs()  # (B, 2, [T,] H - 1, W)
    if image is not None:
        image = check_image_or_video("image", image)
        if image.ndim != flow.ndim or image.shape[0] != flow.shape[0] or image.shape[2:] != flow.shape[2:]:
            raise ValueError(f"`image` must be on the flow's grid: shape (B, C, {', '.join(map(str, flow.shape[2:]))}) "
                             f"with B={flow.shape[0]}; got {tuple(image.shape)}")
        if edge_weight > 0:
            image = image.detach()
            dx = dx * torch.exp(-edge_weight * (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True))
            dy = dy * torch.exp(-edge_weight * (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True))
    return reduce_per_sample(per_sample_mean(dx) + per_sample_mean(dy), reduction)


def flow_warping_loss(
    video: Tensor, flow: Tensor, *, mask: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Short-term temporal consistency: each frame against its predecessor warped by the flow.

    ``e_t = |video[:, :, t + 1] - warp(video[:, :, t], flow[:, :, t])|`` for
    ``t = 0 .. T - 2``; each clip's value is the (masked) mean of its ``e``:
    ``sum(mask * e) / sum(mask)`` per clip, the mask counted at ``e``'s shape
    ``(B, C, T - 1, H, W)``. The flow is usually estimated on the reference (input) clip, the
    mask from a forward-backward check (:func:`occlusion_mask`), and both treated as constants.

    Args:
        video: ``(B, C, T, H, W)`` with ``T >= 2``; gradients flow into it.
        flow: ``(B, 2, T - 1, H, W)``; ``flow[:, :, t]`` is the backward flow from frame
            ``t + 1`` to frame ``t`` in pixels (channel 0 = x).
        mask: optional weights in [0, 1] broadcastable to ``(B, C, T - 1, H, W)``, e.g. the
            ``(B, 1, T - 1, H, W)`` non-occlusion mask; defined on frame ``t + 1``'s grid.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Example:
        >>> flow = genloss.flow.video_flow(target)                   # (B, 2, T - 1, H, W)
        >>> loss = flow_warping_loss(pred, flow)

    Reference: Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, eq. 3.
    """
    check_video("video", video, min_frames=2)
    following = video[:, :, 1:]
    flow = check_flow(flow, following, "video[:, :, 1:]")
    check_reduction(reduction)
    if mask is not None:
        mask = check_mask(mask, following, "video[:, :, 1:]")
    e = (following - warp(video[:, :, :-1], flow)).abs()
    return reduce_per_sample(masked_mean(e, mask, dim=tuple(range(1, e.ndim))), reduction)


# Ruder et al.'s motion-boundary test (also Lai et al.'s ``detect_occlusion``): a flow gradient
# above 1% of the flow's own magnitude, plus 0.002 px^2 of slack, marks a motion boundary.
MOTION_BOUNDARY_RELATIVE = 0.01
MOTION_BOUNDARY_ABSOLUTE = 0.002


def _motion_boundaries(flow: Tensor) -> Tensor:
    """``(B, 2, [T,] H, W)`` flow -> bool ``(B, 1, [T,] H, W)``, True on motion boundaries.

    ``|∇u|^2 + |∇v|^2 > 0.01 |w|^2 + 0.002`` with forward differences within each frame,
    ``∂x u[y, x] = u[y, x + 1] - u[y, x]``, and 0 in the last column (``∂y``: last row), which is
    Lai et al.'s ``compute_flow_gradients`` (their sign is opposite; it is squared away).
    """
    dx = F.pad(flow.diff(dim=-1), (0, 1))
    dy = F.pad(flow.diff(dim=-2), (0, 0, 0, 1))
    gradient = (dx.square() + dy.square()).sum(dim=1, keepdim=True)
    magnitude = flow.square().sum(dim=1, keepdim=True)
    return gradient > MOTION_BOUNDARY_RELATIVE * magnitude + MOTION_BOUNDARY_ABSOLUTE


def occlusion_mask(
    flow_forward: Tensor,
    flow_backward: Tensor,
    *,
    alpha: float = 0.01,
    beta: float = 0.5,
    motion_boundaries: bool = True,
) -> Tensor:
    """Non-occlusion mask: 1 where the flow is trusted, 0 at occlusions and motion boundaries.

    With ``w_f = flow_forward = (u, v)`` and ``ŵ_b = warp(flow_backward, w_f)`` (the backward
    flow read at ``x + w_f(x)``), a pixel is kept where the forward-backward check holds::

        |w_f + ŵ_b|^2 < alpha (|w_f|^2 + |ŵ_b|^2) + beta

    and, with ``motion_boundaries=True`` (the default), it is not on a motion boundary::

        |∇u|^2 + |∇v|^2 <= 0.01 |w_f|^2 + 0.002

    with forward differences inside each frame (``∂x u[y, x] = u[y, x + 1] - u[y, x]``, 0 in the
    last column; ``∂y`` likewise, 0 in the last row), as Lai et al.'s ``detect_occlusion`` computes
    them. There the flow is unreliable even where the two directions agree (a pixel beside a
    moving edge may belong to either side). ``motion_boundaries=False`` is the forward-backward
    check alone.

    The mask lives on ``flow_forward``'s grid. To mask :func:`flow_warping_loss` (whose residual
    lives on frame ``t + 1``) pass the backward flows ``t + 1 -> t`` first and the forward flows
    ``t -> t + 1`` second; :func:`genloss.flow.video_flow_and_mask` does this.

    Args:
        flow_forward: ``(B, 2, H, W)`` or ``(B, 2, T, H, W)``, in pixels (channel 0 = x).
        flow_backward: same shape; the flow in the opposite direction.
        alpha: relative tolerance (0.01 in the papers).
        beta: absolute tolerance in squared pixels (0.5 in the papers).
        motion_boundaries: also drop motion boundaries of ``flow_forward`` (Ruder et al., Lai
            et al.).

    Returns:
        ``(B, 1, H, W)`` or ``(B, 1, T, H, W)`` of 0/1 in ``flow_forward``'s dtype; not
        differentiable (a comparison).

    Example:
        >>> fw = torch.zeros(1, 2, 12, 12); fw[:, 0, :6] = 2.0   # rows 0-5 move 2 px right
        >>> occlusion_mask(fw, -fw)[0, 0, :, 0]                    # row 5 borders the still rows
        tensor([1., 1., 1., 1., 1., 0., 1., 1., 1., 1., 1., 1.])

    Reference: Sundaram, Brox, Keutzer, "Dense point trajectories by GPU-accelerated large
    displacement optical flow", ECCV 2010; Ruder et al., "Artistic style transfer for videos",
    GCPR 2016, sec. 3.2; Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018.
    """
    check_image_or_video("flow_forward", flow_forward)
    if flow_forward.shape[1] != 2:
        raise ValueError(
            f"`flow_forward` must have 2 channels (x, y) in dim 1; "
            f"got shape {tuple(flow_forward.shape)}"
        )
    check_float_tensor("flow_backward", flow_backward)
    check_same_shape("flow_forward", flow_forward, "flow_backward", flow_backward)
    if not alpha >= 0 or not beta >= 0:
        raise ValueError(f"`alpha` and `beta` must be non-negative; got {alpha!r} and {beta!r}")
    if not isinstance(motion_boundaries, bool):
        raise TypeError(
            f"`motion_boundaries` must be a bool; got {type(motion_boundaries).__name__}"
        )
    backward_at_target = warp(flow_backward, flow_forward)
    mismatch = (flow_forward + backward_at_target).square().sum(dim=1, keepdim=True)
    magnitude = flow_forward.square().sum(dim=1, keepdim=True) + backward_at_target.square().sum(
        dim=1, keepdim=True
    )
    keep = mismatch < alpha * magnitude + beta
    if motion_boundaries:
        keep &= ~_motion_boundaries(flow_forward)
    return keep.to(flow_forward.dtype)


def ping_pong_loss(
    forward_video: Tensor, backward_video: Tensor, *, reduction: str = "mean"
) -> Tensor:
    """Ping-pong loss: a recurrent generator run forwards and backwards should agree.

    ``e = |f - b|`` where ``f`` is the clip generated running forward in time and ``b`` the one
    generated running backward, re-ordered into forward time order (``b.flip(2)`` if the
    generator emitted it in reverse). Each clip's value is the mean of its ``e``.

    Args:
        forward_video: ``(B, C, T, H, W)`` with ``T >= 2``.
        backward_video: same shape, in forward time order.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Chu et al., "Learning Temporal Coherence via Self-Supervision for GAN-based Video
    Generation" (TecoGAN), ACM TOG 2020, eq. 6.
    """
    check_video("forward_video", forward_video, min_frames=2)
    check_video("backward_video", backward_video, min_frames=2)
    check_same_shape("forward_video", forward_video, "backward_video", backward_video)
    check_reduction(reduction)
    return reduce_per_sample(per_sample_mean((forward_video - backward_video).abs()), reduction)


def temporal_lpips_per_step(
    pred: Tensor, target: Tensor, *, model: Callable[..., Tensor]
) -> Tensor:
    """``|LPIPS(p_t, p_{t-1}) - LPIPS(r_t, r_{t-1})|`` for every step: ``(B, T - 1)``.

    A :class:`genloss.LPIPS` ``model`` takes the feature path: each frame of ``pred`` (with a
    graph) and of ``target`` (without one) goes through the trunk once, and the step distances
    come from the unit features. Any other callable gets the generic pair contract: all
    ``2 B (T - 1)`` frame pairs of both clips in one ``model(x, y, reduction="none")`` call,
    with whatever gradients ``model`` gives its two inputs.
    """
    check_video("pred", pred, min_frames=2)
    check_video("target", target, min_frames=2)
    check_same_shape("pred", pred, "target", target)
    if isinstance(model, LPIPS):
        with torch.no_grad():  # the target is a constant: no graph through its trunk pass
            target_steps = model.step_distance(model.unit_features(target, name="target"))
        pred_steps = model.step_distance(model.unit_features(pred, name="pred"))
        return (pred_steps - target_steps).abs()
    both = torch.cat((pred, target), dim=0)  # (2B, C, T, H, W)
    current = rearrange(both[:, :, 1:], "n c t h w -> (n t) c h w")
    previous = rearrange(both[:, :, :-1], "n c t h w -> (n t) c h w")
    distances = call_lpips(model, current, previous)
    distances = rearrange(distances, "(two b t) -> two b t", two=2, b=pred.shape[0])
    return (distances[0] - distances[1]).abs()


def temporal_lpips_loss(
    pred: Tensor, target: Tensor, *, model: Callable[..., Tensor], reduction: str = "mean"
) -> Tensor:
    """Temporal LPIPS (tLP) as a differentiable loss: match the perceptual change between frames.

    Per step ``|LPIPS(p_t, p_{t-1}) - LPIPS(r_t, r_{t-1})|``, ``t = 1 .. T - 1``; each clip's
    value is the mean over steps. :func:`genloss.metrics.tlp` is the same quantity without
    gradients.

    How ``model`` is called:
      * :class:`genloss.LPIPS` (the feature path): every frame goes through the trunk once
        (``model.unit_features``), ``pred``'s with a graph and ``target``'s without, and the
        distances come from the features (``model.step_distance``). Gradients reach every frame
        of ``pred`` through both pairs it is in, and none reaches ``target``. All ``T`` frames
        are used: ``model.frames`` applies to ``model(pred, target)`` only.
      * any other callable (the generic contract): all ``2 B (T - 1)`` frame pairs of both clips
        in one ``model(x, y, reduction="none")`` call; gradients reach ``pred`` through whichever
        inputs ``model`` differentiates (``lpips.LPIPS`` differentiates both).

    Args:
        pred: ``(B, C, T, H, W)`` with ``T >= 2``, in [-1, 1]; gradients flow into it.
        target: same shape as ``pred``.
        model: ``genloss.LPIPS("alex")``, or any callable ``model(x, y, reduction="none")``
            mapping two ``(N, C, H, W)`` batches to ``(N,)`` distances.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Chu et al., "Learning Temporal Coherence via Self-Supervision for GAN-based Video
    Generation" (TecoGAN), ACM TOG 2020, sec. 5 (tLP).
    """
    check_reduction(reduction)
    per_step = temporal_lpips_per_step(pred, target, model=model)
    return reduce_per_sample(per_step.mean(dim=1), reduction)


class TemporalDifferenceLoss(ReductionModule):
    """Module form of :func:`temporal_difference_loss`."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return temporal_difference_loss(pred, target, reduction=self.reduction)


class TemporalSmoothnessLoss(ReductionModule):
    """Module form of :func:`temporal_smoothness_loss`."""

    def __init__(self, order: int = 1, reduction: str = "mean") -> None:
        super().__init__(reduction)
        _check_order(order)
        self.order = order

    def forward(self, video: Tensor) -> Tensor:
        return temporal_smoothness_loss(video, order=self.order, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"order={self.order}, {super().extra_repr()}"


class FlowSmoothnessLoss(ReductionModule):
    """Module form of :func:`flow_smoothness_loss`."""

    def __init__(self, edge_weight: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        _check_edge_weight(edge_weight)
        self.edge_weight = edge_weight

    def forward(self, flow: Tensor, image: Tensor | None = None) -> Tensor:
        return flow_smoothness_loss(flow, image=image, edge_weight=self.edge_weight, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"edge_weight={self.edge_weight}, {super().extra_repr()}"


class FlowWarpingLoss(ReductionModule):
    """Module form of :func:`flow_warping_loss`."""

    def forward(self, video: Tensor, flow: Tensor, mask: Tensor | None = None) -> Tensor:
        return flow_warping_loss(video, flow, mask=mask, reduction=self.reduction)


class PingPongLoss(ReductionModule):
    """Module form of :func:`ping_pong_loss`."""

    def forward(self, forward_video: Tensor, backward_video: Tensor) -> Tensor:
        return ping_pong_loss(forward_video, backward_video, reduction=self.reduction)


class TemporalLPIPSLoss(ReductionModule):
    """Module form of :func:`temporal_lpips_loss`; holds the LPIPS ``model`` (a submodule if it
    is an ``nn.Module``, so ``.to(device)`` moves it)."""

    def __init__(self, model: Callable[..., Tensor], reduction: str = "mean") -> None:
        super().__init__(reduction)
        if not callable(model):
            raise TypeError(f"`model` must be an LPIPS-like callable; got {type(model).__name__}")
        self.model = model

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return temporal_lpips_loss(pred, target, model=self.model, reduction=self.reduction)

"""Weight-free optical flow (coarse-to-fine Lucas-Kanade) and per-clip flow helpers.

Flow-based losses and metrics need flow, and FlowNet/RAFT weights cannot be assumed, so
:func:`estimate_flow` is a classical estimator in plain torch, batched over frames and
device-agnostic. Any callable with its signature can replace it, e.g. torchvision's RAFT::

    raft = torchvision.models.optical_flow.raft_small(weights="DEFAULT").eval()
    estimator = lambda a, b: raft(a, b)[-1]     # frames in [-1, 1], H and W divisible by 8
    flow = video_flow(video, estimator)

Convention (RAFT's): ``estimate_flow(frames_a, frames_b)`` is the flow *from a to b*, on ``a``'s
pixel grid: ``frames_a[..., y, x] ≈ frames_b[..., y + flow[:, 1, y, x], x + flow[:, 0, y, x]]``,
i.e. ``warp(frames_b, flow) ≈ frames_a``. :func:`video_flow` then returns, by default, the
backward flows that :func:`genloss.flow_warping_loss` takes:
``warp(video[:, :, t], flow[:, :, t]) ≈ video[:, :, t + 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ._checks import (
    check_choice,
    check_float_tensor,
    check_ndim,
    check_returned_shape,
    check_same_shape,
    check_video,
)
from .temporal import occlusion_mask, warp

__all__ = [
    "FlowEstimator",
    "estimate_flow",
    "video_flow",
    "video_flow_and_mask",
]

_CPU_CHUNK_PIXELS = 1 << 16
# Integer flows searched at the coarsest level: +-2 px there is +-16 px at 64x64 with 4 levels.
_SEARCH_RADIUS = 2
_PROPAGATION_JUMPS = (4, 2, 1)
_PROPAGATION_PASSES = 2

FlowEstimator = Callable[[Tensor, Tensor], Tensor]
"""``(frames_a (N, C, H, W), frames_b (N, C, H, W)) -> flow (N, 2, H, W)``, the flow from a to b."""


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of every channel of ``(N, K, H, W)``, edges replicated."""
    radius = max(1, math.ceil(2.5 * sigma))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    n, k, h, w = x.shape
    # One single-channel conv over (N K) maps: faster on CPU than a grouped (depthwise) conv.
    y = F.pad(x.reshape(n * k, 1, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(F.conv2d(y, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    return y.view(n, k, h, w)


def _gradients(image: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences of ``(N, 1, H, W)`` (one-sided at the edges): ``d/dx``, ``d/dy``."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2])
    gy = 0.5 * (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1])
    return gx, gy


def _median3x3(flow: Tensor) -> Tensor:
    """3x3 median of each channel of ``(N, 2, H, W)``: removes isolated outliers between levels."""
    patches = F.pad(flow, (1, 1, 1, 1), mode="replicate").unfold(2, 3, 1).unfold(3, 3, 1)
    return rearrange(patches, "n c h w kh kw -> n c h w (kh kw)").median(dim=-1).values


def _inside(flow: Tensor) -> Tensor:
    """``(N, 1, H, W)`` bool: where ``x + flow(x)`` lies inside the frame."""
    _, _, h, w = flow.shape
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w) + flow[:, 0]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1) + flow[:, 1]
    return ((xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)).unsqueeze(1)


def _refine(
    a: Tensor, b: Tensor, flow: Tensor, iterations: int, sigma: float, eps: float
) -> Tensor:
    """Gauss-Newton Lucas-Kanade steps at one pyramid level: minimise, over a Gaussian window,
    ``sum w (b(x + flow + d) - a(x))^2`` for the update ``d``, re-warping ``b`` each time."""
    for _ in range(iterations):
        b_warped = warp(b, flow)
        # Averaging both images' gradients (symmetric LK) converges faster than either alone.
        gx, gy = _gradients(0.5 * (a + b_warped))
        # Pixels whose match lies outside frame b carry no information: drop them from the sums
        # (border padding would otherwise pull their neighbours' flow towards zero).
        inside = _inside(flow).to(a.dtype)
        gx, gy = gx * inside, gy * inside
        gt = b_warped - a
        sums = _gaussian_blur(torch.cat((gx * gx, gx * gy, gy * gy, gx * gt, gy * gt), 1), sigma)
        sxx, sxy, syy, sxt, syt = sums.unbind(1)
        # Tikhonov term eps keeps the 2x2 solve stable in flat or edge-only windows.
        sxx, syy = sxx + eps, syy + eps
        det = sxx * syy - sxy * sxy
        du = (sxy * syt - syy * sxt) / det
        dv = (sxy * sxt - sxx * syt) / det
        # The linearisation holds within about a pixel: larger steps are where LK diverges.
        step = torch.stack((du, dv), dim=1).clamp(-1.0, 1.0)
        # Light smoothing couples neighbouring windows (a local-global hybrid, Bruhn et al. 2005)
        # and keeps weakly textured pixels from drifting. It is a normalised convolution
        # (Knutsson and Westin 1993): pixels whose match left the frame carry no data, so they
        # take their neighbours' flow instead of dragging it (the floor keeps all-outside
        # regions a plain blur).
        weight = inside + 1e-3
        smoothed = _gaussian_blur(torch.cat(((flow + step) * weight, weight), 1), 1.0)
        flow = smoothed[:, :2] / smoothed[:, 2:]
    return _median3x3(flow)


def _match_cost(a: Tensor, b: Tensor, flows: Tensor, sigma: float) -> Tensor:
    """Gaussian-windowed mean of ``(b(x + flow) - a(x))^2`` over in-frame matches.

    ``a``, ``b``: ``(N, 1, H, W)``; ``flows``: ``(K N, 2, H, W)``, K candidate flows for each
    frame pair, candidate-major. Returns ``(K, N, 1, H, W)``; ``inf`` where no match in the
    window lies inside frame b (nothing to compare there).
    """
    k = flows.shape[0] // a.shape[0]
    a, b = a.repeat(k, 1, 1, 1), b.repeat(k, 1, 1, 1)
    inside = _inside(flows).to(a.dtype)
    residual = (warp(b, flows) - a).square() * inside
    sums = _gaussian_blur(torch.cat((residual, inside), 1), sigma)
    cost = sums[:, :1] / sums[:, 1:].clamp_min(1e-3)
    cost = cost.masked_fill(sums[:, 1:] < 1e-3, float("inf"))
    return cost.view(k, -1, *cost.shape[1:])


def _keep_best(flow: Tensor, cost: Tensor, candidates: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
    """Per pixel, the lowest-cost flow among the current one and ``K`` candidates.

    ``candidates``: ``(K N, 2, H, W)``, ``costs``: ``(K, N, 1, H, W)`` from :func:`_match_cost`.
    The current flow wins ties, so flat regions keep it.
    """
    best, index = costs.min(dim=0)
    candidates = candidates.view(costs.shape[0], *flow.shape)
    picked = candidates.gather(0, index.expand(-1, 2, -1, -1).unsqueeze(0))[0]
    better = best < cost
    return torch.where(better, picked, flow), torch.where(better, best, cost)


def _search(a: Tensor, b: Tensor, radius: int, sigma: float) -> Tensor:
    """Exhaustive integer search at the coarsest level: each pixel takes the flow in
    ``[-radius, radius]^2`` with the lowest windowed cost (zero on ties).

    LK only converges from within about a pixel of the answer; at the coarsest level a few
    pixels are a large displacement, so this sets where LK starts.
    """
    flow = a.new_zeros(a.shape[0], 2, *a.shape[-2:])
    if radius < 1:
        return flow
    cost = _match_cost(a, b, flow, sigma)[0]
    steps = torch.arange(-radius, radius + 1, device=a.device, dtype=a.dtype)
    shifts = torch.cartesian_prod(steps, steps)  # (K, 2) as (dx, dy)
    shifts = shifts[shifts.abs().sum(dim=1) > 0]
    candidates = shifts.view(-1, 1, 2, 1, 1).expand(-1, *flow.shape).reshape(-1, *flow.shape[1:])
    flow, _ = _keep_best(flow, cost, candidates, _match_cost(a, b, candidates, sigma))
    return flow


def _shifted(flow: Tensor, dy: int, dx: int) -> Tensor:
    """``flow`` read at ``(y + dy, x + dx)``, edges repeated."""
    pad = max(abs(dy), abs(dx))
    padded = F.pad(flow, (pad, pad, pad, pad), mode="replicate")
    h, w = flow.shape[-2:]
    return padded[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def _propagate(a: Tensor, b: Tensor, flow: Tensor, sigma: float) -> Tensor:
    """Let each pixel adopt a neighbour's flow where it matches better (PatchMatch-style
    propagation, Barnes et al. 2009, run in parallel with halving jumps of 4, 2, 1 px, twice).

    Coarse-to-fine LK keeps a region in a wrong local minimum once a coarse level put it there
    (fine textures have little to lock on to at coarse levels); the correct flow of the
    surrounding region then spreads into it because it explains the frames better.
    """
    cost = _match_cost(a, b, flow, sigma)[0]
    for _ in range(_PROPAGATION_PASSES):
        for jump in _PROPAGATION_JUMPS:
            candidates = torch.cat(
                [_shifted(flow, dy, dx) for dy, dx in ((jump, 0), (-jump, 0), (0, jump), (0, -jump))]
            )
            flow, cost = _keep_best(flow, cost, candidates, _match_cost(a, b, candidates, sigma))
    return flow


@torch.no_grad()
def estimate_flow(
    frames_a: Tensor,
    frames_b: Tensor,
    *,
    levels: int | None = None,
    iterations: int = 5,
    window_sigma: float = 2.0,
    eps: float = 1e-5,
) -> Tensor:
    """Dense optical flow from ``frames_a`` to ``frames_b`` by coarse-to-fine Lucas-Kanade.

    Frames are averaged over channels (grey) and put in an image pyramid (Gaussian blur, then
    area downsampling by 2). At the coarsest level each pixel starts from the integer flow in
    ``[-2, 2]^2`` px (16 px at 64x64) that best matches its Gaussian window. From there up, the
    flow is upsampled, each pixel may adopt a neighbour's flow (4, 2 and 1 px away, twice) where
    that matches its window better (PatchMatch-style propagation, Barnes et al. 2009; not at the
    finest level), and ``iterations`` Gauss-Newton steps warp ``frames_b`` towards ``frames_a``
    and solve, per pixel, the Gaussian-windowed least-squares system
    ``[Σ gx², Σ gx gy; Σ gx gy, Σ gy²] d = -[Σ gx gt; Σ gy gt]`` (plus ``eps`` on the
    diagonal). Each step is clamped to 1 px per axis and the flow lightly smoothed (a Gaussian
    of sigma 1 px that ignores pixels whose match left the frame); a 3x3 median filter ends each
    level (Sun, Roth, Black, "Secrets of Optical Flow Estimation and Their Principles", CVPR
    2010). Windows are compared by their mean squared residual over in-frame matches. Batched
    over ``N``; runs without gradients; computed in float32 (float64 stays float64).

    Scope: a classical estimator for consistency losses and metrics, not a RAFT replacement.
    Measured on smooth random textures at 64x64 (4 levels, 12 px from the borders,
    ``benchmarks/bench_flow_accuracy.py``, 768 texture and shift cases per bound): translations
    of up to 9 px per axis are recovered to within 0.3 px everywhere in the interior (worst case
    0.25 px), sub-pixel ones likewise; at 10 px to within 1 px (worst 0.5 px); from 11 px a few
    textures are missed by many pixels (1 case in 768 at 11 px; one pyramid level fewer already
    misses 14 in 256 at 10 px). Without the coarse search and the propagation,
    coarse-to-fine LK alone missed by up to 16 px in 10 of 256 cases at 9 px: fine textures
    leave little for the coarse levels to lock on to. Pixels whose match leaves the frame are
    excluded from the fit. It blurs motion boundaries (:func:`genloss.occlusion_mask` drops
    them), and untextured regions, which carry no motion information, get whatever flow the
    smoothing brings in from textured neighbours.

    Args:
        frames_a: ``(N, C, H, W)``.
        frames_b: same shape.
        levels: pyramid levels; default: halve while the short side stays at least 8 px
            (4 levels at 64x64).
        iterations: Gauss-Newton steps per level.
        window_sigma: standard deviation (pixels) of the Gaussian window.
        eps: diagonal regularisation of the per-pixel 2x2 system, in squared grey levels
            per pixel (1e-5: a gradient of 0.003 per pixel; 1e-4 slowed convergence in the
            weakly textured windows of smooth textures, 0.32 px worst case against 0.20).

    Returns:
        ``(N, 2, H, W)`` flow in pixels, channel 0 = x:
        ``warp(frames_b, flow) ≈ frames_a``.

    Reference: Lucas and Kanade, "An Iterative Image Registration Technique with an Application to
    Stereo Vision", IJCAI 1981; Bouguet, "Pyramidal Implementation of the Lucas Kanade Feature
    Tracker", Intel 2001; Barnes et al., "PatchMatch", SIGGRAPH 2009; Knutsson and Westin,
    "Normalized and Differential Convolution", CVPR 1993.
    """
    check_float_tensor("frames_a", frames_a)
    check_ndim("frames_a", frames_a, 4, "(N, C, H, W) batch of frames")
    check_float_tensor("frames_b", frames_b)
    check_same_shape("frames_a", frames_a, "frames_b", frames_b)
    if levels is not None and (not isinstance(levels, int) or levels < 1):
        raise ValueError(f"`levels` must be a positive int or None; got {levels!r}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"`iterations` must be a positive int; got {iterations!r}")
    if not window_sigma > 0 or not eps > 0:
        raise ValueError(
            f"`window_sigma` and `eps` must be positive; got {window_sigma!r} and {eps!r}"
        )
    if levels is None:
        levels = 1 + max(0, int(math.log2(min(frames_a.shape[-2:]) / 8)))
    dtype = torch.float64 if frames_a.dtype == torch.float64 else torch.float32
    grey_a = frames_a.to(dtype).mean(1, keepdim=True)
    grey_b = frames_b.to(dtype).mean(1, keepdim=True)
    # On CPU the ~40 memory-bound passes per iteration run 2-3x faster when a chunk's maps stay
    # in cache (measured at 256x256); GPUs want the whole batch at once.
    chunk = len(grey_a)
    if grey_a.device.type == "cpu":
        chunk = max(1, _CPU_CHUNK_PIXELS // (grey_a.shape[-2] * grey_a.shape[-1]))
    flows = [
        _coarse_to_fine(a, b, levels, iterations, window_sigma, eps)
        for a, b in zip(grey_a.split(chunk), grey_b.split(chunk))
    ]
    return torch.cat(flows).to(frames_a.dtype)


def _coarse_to_fine(
    a: Tensor, b: Tensor, levels: int, iterations: int, sigma: float, eps: float
) -> Tensor:
    """The pyramid loop of :func:`estimate_flow` on grey ``(N, 1, H, W)`` frames."""
    pyramid = [(a, b)]
    for _ in range(levels - 1):
        a, b = pyramid[-1]
        size = (max(1, a.shape[-2] // 2), max(1, a.shape[-1] // 2))
        # Blur before halving: aliased coarse levels send LK to wrong minima.
        a, b = (F.interpolate(_gaussian_blur(x, 1.0), size=size, mode="area") for x in (a, b))
        pyramid.append((a, b))

    flow = _search(*pyramid[-1], radius=_SEARCH_RADIUS, sigma=sigma)
    for level in reversed(range(levels)):
        a, b = pyramid[level]
        h, w = a.shape[-2:]
        if flow.shape[-2:] != (h, w):
            scale = flow.new_tensor([w / flow.shape[-1], h / flow.shape[-2]]).view(1, 2, 1, 1)
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False) * scale
            # The finest level starts within LK's reach of the answer; skipping it there saves
            # most of the propagation's cost (3/4 of the pixels).
            if level > 0:
                flow = _propagate(a, b, flow, sigma)
        flow = _refine(a, b, flow, iterations, sigma, eps)
    return flow


def _pairs_flow(estimator: FlowEstimator, a: Tensor, b: Tensor) -> Tensor:
    """``estimator(a, b)`` with its output checked to be ``(N, 2, H, W)``."""
    flow = estimator(a, b)
    expected = (a.shape[0], 2, *a.shape[-2:])
    check_returned_shape(
        "estimator(frames_a, frames_b)", flow, expected, "a flow of shape (N, 2, H, W) ="
    )
    return flow


def video_flow(
    video: Tensor, estimator: FlowEstimator | None = None, *, direction: str = "backward"
) -> Tensor:
    """Flow between consecutive frames of each clip, all pairs in one estimator call.

    ``direction="backward"`` (default): ``flow[:, :, t]`` is the flow from frame ``t + 1`` to
    frame ``t`` (on frame ``t + 1``'s grid), so ``warp(video[:, :, t], flow[:, :, t]) ≈
    video[:, :, t + 1]``: what :func:`genloss.flow_warping_loss` takes.
    ``direction="forward"``: the flow from frame ``t`` to frame ``t + 1`` (on frame ``t``'s grid).

    Args:
        video: ``(B, C, T, H, W)`` with ``T >= 2``.
        estimator: ``estimator(frames_a, frames_b) -> (N, 2, H, W)``, the flow from a to b;
            default :func:`estimate_flow`.
        direction: ``"backward"`` or ``"forward"``.

    Returns:
        ``(B, 2, T - 1, H, W)`` flow in pixels.
    """
    check_video("video", video, min_frames=2)
    check_choice("direction", direction, ("backward", "forward"))
    estimator = estimate_flow if estimator is None else estimator
    previous = rearrange(video[:, :, :-1], "b c t h w -> (b t) c h w")
    following = rearrange(video[:, :, 1:], "b c t h w -> (b t) c h w")
    if direction == "backward":
        flow = _pairs_flow(estimator, following, previous)
    else:
        flow = _pairs_flow(estimator, previous, following)
    return rearrange(flow, "(b t) two h w -> b two t h w", b=video.shape[0])


def video_flow_and_mask(
    video: Tensor,
    estimator: FlowEstimator | None = None,
    *,
    alpha: float = 0.01,
    beta: float = 0.5,
    motion_boundaries: bool = True,
) -> tuple[Tensor, Tensor]:
    """Backward flows and their non-occlusion mask, for :func:`genloss.flow_warping_loss`.

    Estimates both directions in one estimator call and keeps the pixels of frame ``t + 1`` that
    pass the forward-backward check and lie off the backward flow's motion boundaries
    (:func:`genloss.occlusion_mask` with the backward flow first, so the mask lies on frame
    ``t + 1``'s grid, where the warping residual is). This is Lai et al.'s protocol
    (``detect_occlusion`` in their ``compute_flow_occlusion.py``), with this estimator's flow
    in place of FlowNet2's.

    Args:
        video: ``(B, C, T, H, W)`` with ``T >= 2``.
        estimator: as in :func:`video_flow`; default :func:`estimate_flow`.
        alpha: relative tolerance of the check.
        beta: absolute tolerance of the check, in squared pixels.
        motion_boundaries: also drop motion boundaries (``|∇u|^2 + |∇v|^2 > 0.01 |w|^2 + 0.002``);
            ``False`` keeps the forward-backward check alone.

    Returns:
        ``(flow, mask)``: ``(B, 2, T - 1, H, W)`` backward flows and a ``(B, 1, T - 1, H, W)``
        0/1 mask.
    """
    check_video("video", video, min_frames=2)
    estimator = estimate_flow if estimator is None else estimator
    b = video.shape[0]
    previous = rearrange(video[:, :, :-1], "b c t h w -> (b t) c h w")
    following = rearrange(video[:, :, 1:], "b c t h w -> (b t) c h w")
    both = _pairs_flow(
        estimator, torch.cat((following, previous)), torch.cat((previous, following))
    )
    both = rearrange(both, "(two b t) c h w -> two b c t h w", two=2, b=b)
    backward, forward = both[0], both[1]
    mask = occlusion_mask(
        backward, forward, alpha=alpha, beta=beta, motion_boundaries=motion_boundaries
    )
    return backward, mask

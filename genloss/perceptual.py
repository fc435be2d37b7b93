"""LPIPS: the learned perceptual distance of Zhang et al. 2018, as a frozen training loss.

Own implementation on torchvision trunks (AlexNet, VGG16, SqueezeNet 1.1) with the calibration
("lin") weights of the installed ``lpips`` package, so that given the same trunk weights the
values equal ``lpips.LPIPS(net=..., version="0.1")``. Differences from the package, all aimed at
use as a loss: frozen completely, target features computed without a graph, normalisation in
float32 with a gradient that stays finite at ``pred == target``, videos ``(B, C, T, H, W)``
with optional frame subsampling, input checks, and a faster forward/backward on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ._backbones import (
    TRUNKS,
    StemConv,
    WeightsNotFoundError,
    build_trunk,
    lpips_lin_weights,
    min_input_size,
)
from ._checks import (
    at_least_float32,
    check_choice,
    check_pixel_range,
    check_reduction,
    check_returned_shape,
    reduce_per_sample,
)
from ._frozen import (
    FramesTooSmallError,
    FramewiseLoss,
    select_frames,
)

__all__ = [
    "LPIPS",
    "FramesTooSmallError",
    "WeightsNotFoundError",
    "call_lpips",
    "check_pixel_range",
    "select_frames",
]

LPIPS_NETS = ("alex", "vgg", "squeeze")
# lpips.normalize_tensor: f / (||f|| + eps); computed in float32, where 1e-10 is representable.
NORM_EPS = 1e-10
# LPIPS(stable=True): f / sqrt(||f||^2 + eps). The normalisation's input gradient is then at most
# 1 / sqrt(eps) = 1e4 (the package's form reaches 1 / NORM_EPS = 1e10 where f vanishes), and the
# value moves by a relative eps / (2 ||f||^2): below 1e-6 wherever ||f|| > 0.1.
STABLE_NORM_EPS = 1e-8
# How many leading trunk layers run channels_last on CPU depends on the kernels oneDNN dispatches
# to. channels_last makes the 3-channel stem conv and the max-pools several times faster on every
# CPU we measured; the small deep 3x3 convs are faster NCHW on an AVX-512 Xeon but faster
# channels_last on an AVX2 EPYC (there, 1 thread: alex fwd+bwd 188 -> 173 ms on (4, 3, 8, 64, 64)
# clips, vgg 1377 -> 1071 ms). Measured with benchmarks/bench_lpips.py. Other ISAs, like CUDA,
# run the whole trunk channels_last.
AVX512_CHANNELS_LAST_LAYERS = {"alex": 6, "vgg": 0, "squeeze": 13}


def cpu_channels_last_layers(net: str, depth: int) -> int:
    """Number of leading layers of ``net``'s ``depth``-layer trunk that run channels_last on CPU."""
    if torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return min(AVX512_CHANNELS_LAST_LAYERS[net], depth)
    return depth


def call_lpips(model: Callable[..., Tensor], x: Tensor, y: Tensor) -> Tensor:
    """The pair contract of LPIPS-like callables: ``model(x, y, reduction="none")`` on
    ``(N, C, H, W)`` frames, checked to return one distance per pair, ``(N,)``.

    How tLP and the metrics call a ``model`` that is not a :class:`LPIPS` (the ``lpips`` package
    wrapped in a function, another perceptual distance).
    """
    if not callable(model):
        raise TypeError(
            f"`model` must be an LPIPS-like callable `model(x, y, reduction='none') -> (N,)`; "
            f"got {type(model).__name__}"
        )
    out = model(x, y, reduction="none")
    check_returned_shape(
        "model(x, y, reduction='none')", out, (x.shape[0],), "one value per frame pair, shape"
    )
    return out


def _channel_norm(features: Tensor, eps: float = 0.0) -> Tensor:
    """``sqrt(‖f‖₂² + eps)`` over channels, ``(N, C, h, w) -> (N, 1, h, w)``; no usable gradient.

    ``square().sum().sqrt()`` rather than ``torch.linalg.vector_norm``: on CPU the latter is 5-35x
    slower over the channel axis of NCHW maps (and over h, w of channels_last ones), measured
    on (32, 64..384, 15..3, 15..3) LPIPS taps.
    """
    squares = features.square().sum(dim=1, keepdim=True)
    return (squares + eps if eps else squares).sqrt()


def _norm_and_radius(features: Tensor, stable: bool) -> tuple[Tensor, Tensor]:
    """``(n, r)`` with ``f / r`` the unit features and ``∂r/∂f = f / n``.

    Default (the package's): ``n = ‖f‖``, ``r = n + 1e-10``. Stable: ``n = r = sqrt(‖f‖² + 1e-8)``.
    """
    if stable:
        radius = _channel_norm(features, STABLE_NORM_EPS)
        return radius, radius
    norm = _channel_norm(features)
    return norm, norm + NORM_EPS


def _normalisation_grad(g: Tensor, f: Tensor, norm: Tensor, radius: Tensor) -> Tensor:
    """The input gradient of ``u = f / r``, ``r = ‖f‖ + eps`` (norms over dim 1), given ``g = ∂L/∂u``::

        ∂L/∂f = g / r - f · (Σ_c g_c f_c) / (r² ‖f‖)

    It stays finite (``g / eps``, not the NaN of ``sqrt``'s gradient) where ``f`` is the zero vector.
    For the stable ``r = sqrt(‖f‖² + eps)``, ``∂r/∂f = f / r``: pass ``norm = radius = r``.
    """
    # Divided by the clamped norm first: at f = 0 that gives 0 / tiny = 0, where r² · tiny would
    # underflow to 0 and make 0 / 0.
    radial = (g * f).sum(dim=1, keepdim=True) / norm.clamp_min(torch.finfo(norm.dtype).tiny)
    return torch.addcmul(g / radius, f, radial / radius.square(), value=-1.0)


class _UnitNormalize(torch.autograd.Function):
    """``f / (‖f‖₂ over channels + eps)`` as one autograd node with the gradient written out.

    Autograd would record square, sum, sqrt, add and divide (and ``sqrt``'s gradient is NaN at
    the zero vector); this node keeps three tensors and uses ``_normalisation_grad``.
    """

    @staticmethod
    def forward(ctx, features: Tensor, stable: bool) -> Tensor:  # type: ignore[override]
        norm, radius = _norm_and_radius(features, stable)
        ctx.save_for_backward(features, norm, radius)
        return features / radius

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        features, norm, radius = ctx.saved_tensors
        return _normalisation_grad(grad, features, norm, radius), None


def _unit(features: Tensor, stable: bool = False) -> Tensor:
    """``f / (‖f‖₂ over channels + eps)`` (stable: ``f / sqrt(‖f‖₂² + eps)``) in at least float32."""
    features = at_least_float32(features)
    if torch.is_grad_enabled() and features.requires_grad:
        return _UnitNormalize.apply(features, stable)
    return features / _norm_and_radius(features, stable)[1]


class _LayerDistance(torch.autograd.Function):
    """One layer's term ``mean_hw Σ_c w_c (f/(‖f‖+eps) - t̂)²`` per sample, with a fused gradient.

    Written out, the gradient needs four passes over the feature map instead of the dozen that
    autograd records for norm, divide, subtract, square and the 1x1 "lin" convolution, and it is
    0 (not NaN, as for the package's ``sqrt``) where ``f`` is the zero vector. With
    ``r = ‖f‖ + eps``, ``d = f/r - t̂`` and ``g = ∂L/∂(f/r) = 2 w d / (h w)``::

        ∂L/∂f = g / r - f · (Σ_c g_c f_c) / (r² ‖f‖)
    """

    @staticmethod
    def forward(ctx, features: Tensor, target_unit: Tensor, weight: Tensor, stable: bool) -> Tensor:  # type: ignore[override]
        f = at_least_float32(features)
        norm, radius = _norm_and_radius(f, stable)  # (N, 1, h, w); the gradient is written out below
        # t̂ - f/r = -d in one pass; only its square enters the value
        neg_diff = torch.addcdiv(target_unit, f, radius, value=-1.0)  # (N, C, h, w)
        ctx.save_for_backward(f, norm, radius, neg_diff, weight)
        ctx.in_dtype = features.dtype
        h, w = f.shape[-2:]
        # (N, C) means of squares, then the weighted channel sum (not a matmul: autocast would
        # make that half precision)
        means = neg_diff.square().sum(dim=(2, 3)) / (h * w)
        return (means * weight.to(means.dtype)).sum(dim=1)  # (N,)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        f, norm, radius, neg_diff, weight = ctx.saved_tensors
        h, w = f.shape[-2:]
        # (N, C, 1, 1) coefficients: -2 w_c · grad_n / (h w), the sign undoing neg_diff's
        coeff = (
            (-2.0 / (h * w))
            * grad.to(f.dtype)[:, None, None, None]
            * weight.to(f.dtype)[None, :, None, None]
        )
        grad_f = _normalisation_grad(neg_diff * coeff, f, norm, radius)
        return grad_f.to(ctx.in_dtype), None, None, None


class LPIPS(FramewiseLoss):
    """Learned Perceptual Image Patch Similarity, for images and videos, as a frozen loss.

    For unit-normalised trunk features ``f̂_l`` (channel-wise L2) of layer ``l`` and the
    calibration weights ``w_l``::

        d(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c} (f̂_l(x) - f̂_l(y))²_{c,h,w}

    with the trunk applied to ``(x - shift) / scale`` (the package's scaling layer). A video's
    value is the mean of ``d`` over its (selected) frames.

    Args:
        net: ``"alex"`` (default, the usual loss), ``"vgg"`` or ``"squeeze"``.
        weights: trunk weights: ``"imagenet"`` (torchvision's checkpoint from the torch hub cache,
            downloaded once if missing and ``download`` is true; else ``WeightsNotFoundError``
            naming the file), a path to a torchvision state dict of the whole network
            (``alexnet``, ``vgg16`` or ``squeezenet1_1`` key names) or ``"random"`` (seeded,
            warns: for offline smoke runs only). ``.weights_source`` records what was loaded.
        frames: evaluate at most this many frames per clip (cost scales with it, not with T);
            ``None`` uses every frame. Images ignore it.
        frame_sampling: ``"auto"`` (default): random frames while the owning model is in
            training mode (a parent's ``.train()`` is recorded, though this module itself stays
            in eval mode), evenly spaced after ``.eval()`` — so validation is deterministic;
            ``"uniform"`` or ``"random"`` force one of them.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per sample ``(B,)``); ``forward`` can
            override it per call.
        check_range: reject NaN, inf and values outside [-1.5, 1.5] (one device sync per call).
        download: allow the one download attempt for ``weights="imagenet"``.
        stable: normalise features by ``sqrt(‖f‖² + 1e-8)`` instead of the package's
            ``‖f‖ + 1e-10``. The normalisation's gradient is then bounded by 1e4 (the package's
            form reaches 1e10 where a feature vector vanishes; the package's own autograd gives
            NaN there), at the cost of values that differ from the package by a relative
            ``1e-8 / (2‖f‖²)`` per feature vector. Off by default: exactly the package's values.

    Shapes:
        ``pred`` and ``target``: ``(B, 3, H, W)`` or ``(B, 3, T, H, W)``, pixels in [-1, 1], any
        float dtype (computed in the module's dtype, float32 unless converted; autocast applies
        to the convolutions, normalisation runs in float32). Output: scalar, or ``(B,)`` for
        ``"none"`` — float32.

    Speed (same values as the package, see benchmarks/bench_lpips.py): the target's features
    are computed without a graph (and, when nothing needs a gradient, in one trunk pass with
    ``pred``); each layer's normalise-difference-weight-average is one autograd node with a
    hand-written gradient (``_LayerDistance``); the stem conv's input gradient avoids oneDNN's
    slow 3-channel backward kernel (``StemConv``); on CPU the layers run channels_last where that is
    faster on the machine's ISA (``cpu_channels_last_layers``).

    Example:
        >>> lpips = LPIPS("alex", weights="random")  # doctest: +SKIP
        >>> lpips(pred, target, reduction="none").shape  # doctest: +SKIP
        torch.Size([4])

    Reference: Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
    Metric", CVPR 2018.
    """

    def __init__(
        self,
        net: str = "alex",
        *,
        weights: str | os.PathLike = "imagenet",
        frames: int | None = None,
        frame_sampling: str = "auto",
        reduction: str = "mean",
        check_range: bool = True,
        download: bool = True,
        stable: bool = False,
    ) -> None:
        super().__init__()
        check_choice("net", net, LPIPS_NETS)
        self.configure(frames, frame_sampling, reduction, check_range)
        self.net = net
        spec = TRUNKS[net]
        self.trunk, self.weights_source = build_trunk(net, weights, download=download)
        self.min_size = min_input_size(self.trunk)
        self.taps = spec.taps
        # Weights stored in the layout their layer runs in, so no conv re-lays them out per call.
        self.cpu_channels_last = cpu_channels_last_layers(net, len(self.trunk))
        for layer in self.trunk[: self.cpu_channels_last].modules():
            if isinstance(layer, nn.Conv2d):
                layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)
        self.lins = nn.ParameterList(nn.Parameter(w) for w in lpips_lin_weights(net))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        if not isinstance(stable, bool):
            raise TypeError(f"`stable` must be a bool; got {type(stable).__name__}")
        self.stable = stable
        self.freeze()

    def extra_repr(self) -> str:
        stable = ", stable=True" if self.stable else ""
        return f"net={self.net!r}, weights_source={self.weights_source!r}, frames={self.frames}{stable}"

    def features(self, x: Tensor) -> list[Tensor]:
        """Trunk activations at the LPIPS taps for ``(N, 3, H, W)`` pixels in [-1, 1]."""
        h = (x.to(self.shift.dtype) - self.shift) / self.scale
        nhwc = self.cpu_channels_last if h.device.type == "cpu" else len(self.trunk)
        if nhwc:
            h = h.contiguous(memory_format=torch.channels_last)
        taps = []
        for i, layer in enumerate(self.trunk):
            if i == nhwc:
                h = h.contiguous()
            if i == 0 and h.requires_grad:
                h = StemConv.apply(h, layer)
            else:
                h = layer(h)
            if i in self.taps:
                taps.append(h)
        return taps

    def unit_features(self, x: Tensor, *, name: str = "x") -> list[Tensor]:
        """Unit-normalised tap features ``f̂_l`` of every frame of ``x``, one trunk pass per frame.

        ``f̂_l = f_l / (‖f_l‖₂ over channels + 1e-10)`` (``stable=True``: ``/ sqrt(‖f_l‖₂² + 1e-8)``),
        the per-frame half of LPIPS: distances follow from them (:meth:`feature_distance`,
        :meth:`step_distance`) without running a frame through the trunk again for every pair it
        is in. :func:`genloss.temporal_lpips_loss` and
        :mod:`genloss.metrics` use this path. Gradients flow into ``x`` when it requires one
        (finite where a feature vector vanishes); call it under ``torch.no_grad()`` for a constant
        side, such as a target.

        Args:
            x: images ``(N, 3, H, W)`` or clips ``(B, 3, T, H, W)``, pixels in [-1, 1], checked as
                in ``forward``. Every frame is used (``frames`` applies to ``forward`` only).
            name: the argument's name in error messages.

        Returns:
            One tensor per tap: ``(N, C_l, h_l, w_l)`` for images, ``(B, T, C_l, h_l, w_l)`` for
            clips; float32 (the module's dtype if that is float64).
        """
        x = self.check_frames(name, x)
        if x.ndim == 4:
            return [_unit(f, self.stable) for f in self.features(x)]
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        unfold = "(b t) c h w -> b t c h w"
        return [rearrange(_unit(f, self.stable), unfold, b=x.shape[0]) for f in self.features(frames)]

    def feature_distance(self, a: list[Tensor], b: list[Tensor]) -> Tensor:
        """LPIPS from unit features: ``d = Σ_l mean_{h,w} Σ_c w_{l,c} (a_l - b_l)²_{c,h,w}``.

        Args:
            a, b: :meth:`unit_features` results (or slices of them), one ``(..., C_l, h_l, w_l)``
                tensor per tap, ``a_l`` and ``b_l`` of equal shapes.

        Returns:
            ``(...)``: one distance per frame pair (the features' leading dims), differentiable
            with respect to whichever side carries a graph.
        """
        taps = len(self.lins)
        if len(a) != taps or len(b) != taps:
            raise ValueError(
                f"`a` and `b` must hold {taps} tensors, one per {self.net} tap (as unit_features "
                f"returns); got {len(a)} and {len(b)}"
            )
        total = 0
        for layer, (x, y, w) in enumerate(zip(a, b, self.lins)):
            if x.shape != y.shape or x.shape[-3] != w.numel():
                raise ValueError(
                    f"tap {layer} of `a` and `b` must have one shape (..., {w.numel()}, h, w); "
                    f"got {tuple(x.shape)} and {tuple(y.shape)}"
                )
            # mean_hw(Σ_c w_c s_c) = Σ_c w_c mean_hw(s_c): average first, then one weighted sum
            # (not a matmul: autocast would make that half precision)
            means = (x - y).square().mean(dim=(-2, -1))
            total = total + (means * w.to(means.dtype)).sum(dim=-1)
        return total

    def step_distance(self, units: list[Tensor]) -> Tensor:
        """``LPIPS(x_t, x_{t-1})`` for every step of clips, from their :meth:`unit_features`.

        Args:
            units: ``unit_features`` of clips: one ``(B, T, C_l, h_l, w_l)`` tensor per tap.

        Returns:
            ``(B, T - 1)``.
        """
        if not units or units[0].ndim != 5 or units[0].shape[1] < 2:
            found = tuple(units[0].shape) if units else "nothing"
            raise ValueError(
                "`units` must be the unit_features of clips, (B, T, C, h, w) per tap with T >= 2; "
                f"got {found} for the first tap"
            )
        return self.feature_distance([u[:, 1:] for u in units], [u[:, :-1] for u in units])

    def _distance(self, pred: Tensor, target: Tensor, spatial: bool) -> Tensor:
        """Per-frame distances ``(N,)`` (or maps ``(N, 1, H, W)``) for ``(N, 3, H, W)`` frames."""
        if torch.is_grad_enabled() and pred.requires_grad:
            with torch.no_grad():  # the target branch never builds a graph
                target_units = [_unit(f, self.stable) for f in self.features(target)]
            pred_feats = self.features(pred)
            if not spatial:
                return sum(
                    _LayerDistance.apply(f, t, w, self.stable)
                    for f, t, w in zip(pred_feats, target_units, self.lins, strict=True)
                )
            pred_units = [_unit(f, self.stable) for f in pred_feats]
        else:  # nothing to differentiate (the target never is): one trunk pass over both
            n = pred.shape[0]
            with torch.no_grad():
                units = [_unit(f, self.stable) for f in self.features(torch.cat([pred, target]))]
            pred_units, target_units = [u[:n] for u in units], [u[n:] for u in units]
            if not spatial:
                return self.feature_distance(pred_units, target_units)
        total = 0
        for p, t, w in zip(pred_units, target_units, self.lins, strict=True):
            layer_map = ((p - t).square() * w.float()[:, None, None]).sum(dim=1, keepdim=True)
            total = total + F.interpolate(
                layer_map, size=pred.shape[-2:], mode="bilinear", align_corners=False
            )
        return total

    def forward(
        self, pred: Tensor, target: Tensor, *, reduction: str | None = None, spatial: bool = False
    ) -> Tensor:
        """LPIPS between ``pred`` and ``target`` (gradients flow into ``pred`` only).

        Args:
            pred: ``(B, 3, H, W)`` or ``(B, 3, T, H, W)``, pixels in [-1, 1].
            target: same shape as ``pred``.
            reduction: overrides the module's reduction for this call.
            spatial: with ``"none"``, return distance maps ``(B, 1, H, W)`` (videos:
                ``(B, 1, k, H, W)`` over the evaluated frames), each layer's map bilinearly
                upsampled to the input size and summed as in ``lpips.LPIPS(spatial=True)``;
                ``"mean"``/``"sum"`` reduce each sample's map mean.

        Returns:
            A float32 scalar, or ``(B,)`` (or the maps) for ``"none"``.
        """
        reduction = self.reduction if reduction is None else reduction
        check_reduction(reduction)
        pred, target, k = self.frames_of(pred, target)
        values = self._distance(pred, target, spatial)
        if k is not None:
            pattern = "(b t) 1 h w -> b 1 t h w" if spatial else "(b t) -> b t"
            values = rearrange(values, pattern, t=k)
        if spatial and reduction == "none":
            return values
        per_sample = values.flatten(1).mean(dim=1) if values.ndim > 1 else values
        return reduce_per_sample(per_sample, reduction)

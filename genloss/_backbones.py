"""Frozen torchvision trunks for the perceptual losses: construction and weight loading.

Weights come from one of three places, chosen by ``weights``:

* ``"imagenet"``: torchvision's ImageNet checkpoint, read from the torch hub cache
  (``torch.hub.get_dir()/checkpoints/<file>``, the file torchvision itself would download);
  if absent and ``download=True``, one download attempt; failing that, ``WeightsNotFoundError``
  naming the expected file and how to pass a copy with ``weights=PATH``.
* a path: a torchvision state dict of the whole network (``features.*`` keys; the
  ``classifier.*`` keys are ignored), checked key by key and shape by shape.
* ``"random"``: a seeded random trunk for offline smoke runs (warns: meaningless perceptually).

Nothing here touches the network unless ``weights="imagenet"`` is asked for, the file is not
cached and ``download`` is true.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "TRUNKS",
    "StemConv",
    "TrunkSpec",
    "WeightsNotFoundError",
    "build_trunk",
    "lpips_lin_weights",
    "min_input_size",
    "subpixel_weight",
]

RANDOM_SEED = 0


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights could not be found in the cache, downloaded or read from a path."""


@dataclass(frozen=True)
class TrunkSpec:
    """How to build one torchvision trunk and where its features are tapped."""

    arch: str  # torchvision constructor name, also the state-dict architecture
    taps: tuple[int, ...]  # indices into ``.features`` whose outputs are the tapped layers
    channels: tuple[int, ...]  # channels of each tapped layer
    names: tuple[str, ...]  # conventional layer names of the taps
    url: str  # torchvision's ImageNet checkpoint


# Taps follow lpips.pretrained_networks (alex, vgg, squeeze) so the values match the package.
TRUNKS: dict[str, TrunkSpec] = {
    "alex": TrunkSpec(
        "alexnet",
        (1, 4, 7, 9, 11),
        (64, 192, 384, 256, 256),
        ("relu1", "relu2", "relu3", "relu4", "relu5"),
        tvm.AlexNet_Weights.IMAGENET1K_V1.url,
    ),
    "vgg": TrunkSpec(
        "vgg16",
        (3, 8, 15, 22, 29),
        (64, 128, 256, 512, 512),
        ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
        tvm.VGG16_Weights.IMAGENET1K_V1.url,
    ),
    "squeeze": TrunkSpec(
        "squeezenet1_1",
        (1, 4, 7, 9, 10, 11, 12),
        (64, 128, 256, 384, 384, 512, 512),
        ("relu1", "fire2", "fire4", "fire5", "fire6", "fire7", "fire8"),
        tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1.url,
    ),
    # Not an LPIPS net: VGG19 feeds the content/style loss (pix2pixHD taps relu1_1 .. relu5_1).
    "vgg19": TrunkSpec(
        "vgg19",
        (1, 6, 11, 20, 29),
        (64, 128, 256, 512, 512),
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        tvm.VGG19_Weights.IMAGENET1K_V1.url,
    ),
}


def _empty_features(spec: TrunkSpec, depth: int) -> nn.Sequential:
    """``features[:depth]`` of the torchvision net, allocated but uninitialised.

    Built on the meta device first so the (large, unused) classifier is never allocated.
    """
    with torch.device("meta"):
        net = getattr(tvm, spec.arch)(weights=None)
    return net.features[:depth].to_empty(device="cpu")


def _randomise(features: nn.Sequential, seed: int) -> None:
    """Kaiming-normal conv weights (fan_out, as torchvision's VGG), zero biases, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                nn.init.zeros_(module.bias)


def _cache_file(spec: TrunkSpec) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(spec.url)


def _imagenet_state(spec: TrunkSpec, net: str, download: bool) -> tuple[dict, str]:
    """torchvision's ImageNet state dict from the hub cache, or one download attempt."""
    cached = _cache_file(spec)
    if cached.is_file():
        return _read_state(cached, net), f"imagenet:{cached}"
    reason = "download=False"
    if download:
        try:
            state = torch.hub.load_state_dict_from_url(
                spec.url, map_location="cpu", progress=False, check_hash=True, weights_only=True
            )
            return state, f"imagenet:{cached}"
        except Exception as error:  # noqa: BLE001 - any network or hash failure means "not available"
            reason = f"the download from {spec.url} failed ({type(error).__name__}: {error})"
    raise WeightsNotFoundError(
        f"weights='imagenet' for net={net!r}: torchvision's ImageNet checkpoint is not in the torch "
        f"hub cache (expected {cached}) and {reason}. Download {spec.url} on a machine with "
        f"network access, then either copy it to {cached} or pass its path: "
        f"weights='/path/to/{cached.name}'."
    )


def _read_state(path: Path, net: str) -> dict:
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file for net={net!r} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(
            f"weights file {path} for net={net!r} could not be read as a torch state dict "
            f"({type(error).__name__}: {error})"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"weights file {path} for net={net!r} must hold a state dict (name -> tensor); "
            f"got {type(state).__name__}"
        )
    return state


def _listed(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _load_features(features: nn.Sequential, state: dict, where: str, spec: TrunkSpec) -> None:
    """Load the ``features.*`` entries of a whole-network state dict, strictly."""
    expected = {f"features.{k}": v for k, v in features.state_dict().items()}
    missing = sorted(k for k in expected if k not in state)
    # A whole-network checkpoint also holds deeper features and the classifier: both are fine.
    unexpected = sorted(
        k for k in state if not k.startswith(("features.", "classifier.")) and k not in expected
    )
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listed(unexpected)}")
        if wrong_shape:
            parts.append(f"wrong shapes: {_listed(wrong_shape)}")
        raise ValueError(
            f"{where} is not a torchvision {spec.arch} state dict; " + "; ".join(parts)
        )
    with torch.no_grad():
        features.load_state_dict({k[len("features.") :]: state[k] for k in expected})


def build_trunk(
    net: str, weights: str | os.PathLike, *, download: bool = True, depth: int | None = None
) -> tuple[nn.Sequential, str]:
    """The frozen ``features[:depth]`` of ``net``'s torchvision model (default: to its last tap).

    Returns:
        ``(features, source)``: the ``nn.Sequential`` (float32, CPU, eval, no gradients) and a
        string saying which weights were loaded (``"imagenet:<file>"``, ``"file:<path>"`` or
        ``"random(seed=0)"``), for run configs.
    """
    spec = TRUNKS[net]
    features = _empty_features(spec, spec.taps[-1] + 1 if depth is None else depth)
    if isinstance(weights, str) and weights == "random":
        warnings.warn(
            f"net={net!r} uses a seeded RANDOM backbone (weights='random'): its distances are "
            "meaningless perceptually; use it for offline smoke runs only",
            UserWarning,
            stacklevel=3,
        )
        _randomise(features, RANDOM_SEED)
        source = f"random(seed={RANDOM_SEED})"
    elif isinstance(weights, str) and weights == "imagenet":
        state, source = _imagenet_state(spec, net, download)
        _load_features(features, state, source[len("imagenet:") :], spec)
    elif isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        _load_features(features, _read_state(path, net), str(path), spec)
        source = f"file:{path.resolve()}"
    else:
        raise TypeError(
            "`weights` must be 'imagenet', 'random' or a path to a torchvision state dict; "
            f"got {type(weights).__name__}"
        )
    return features.eval().requires_grad_(False), source


def lpips_lin_weights(net: str) -> list[Tensor]:
    """The lpips package's v0.1 calibration weights for ``net``: one ``(C_l,)`` vector per tap.

    Read from the installed package's ``weights/v0.1/<net>.pth`` (never copied into genloss).
    """
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "LPIPS needs the calibration weights shipped with the `lpips` package: pip install lpips"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    state = _read_state(path, net)
    weights = [state[f"lin{i}.model.1.weight"].flatten().float() for i in range(len(state))]
    expected = TRUNKS[net].channels
    if tuple(w.numel() for w in weights) != expected:
        raise ValueError(
            f"{path}: lin weights have {[w.numel() for w in weights]} channels, expected {expected}"
        )
    return weights


def min_input_size(layers: nn.Sequential, limit: int = 1024) -> int:
    """The smallest square input that every conv and pool of ``layers`` accepts.

    Follows torch's output-size arithmetic (floor, or ceil for ``ceil_mode`` pools, whose last
    window must start inside the padded input); Fire and other modules keep the size.
    """

    def pair(value: int | tuple[int, ...]) -> int:
        return value if isinstance(value, int) else value[0]

    for size in range(1, limit):
        current = size
        for layer in layers:
            if not isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                continue
            k, s, p = pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)
            ceil = getattr(layer, "ceil_mode", False)
            span = current + 2 * p - pair(layer.dilation) * (k - 1) - 1 + (s - 1 if ceil else 0)
            out = span // s + 1  # floor division, as torch's div_rtn
            if ceil and (out - 1) * s >= current + p:
                out -= 1
            if out < 1:
                break
            current = out
        else:
            return size
    raise ValueError(f"no input up to {limit} pixels fits these layers")


# From this stride on, the stem conv's input gradient runs faster as one sub-pixel conv with C·s²
# outputs (alex: stride 4, 48 outputs) than as matmul + fold; below it, C·s² outputs are too few
# for oneDNN's conv kernels (squeeze: stride 2, vgg: stride 1), measured on a Xeon (AVX-512).
SUBPIXEL_MIN_STRIDE = 3


def subpixel_weight(weight: Tensor, stride: int) -> Tensor:
    """The transposed conv of a square conv with ``weight`` and ``stride`` as a stride-1 conv.

    ``grad_in[y] = Σ_{y + p = s·m + i} W[i] grad_out[m]``: splitting ``i = r + s·u`` by the
    phase ``r = (y + p) mod s``, each phase is a correlation of ``grad_out`` with the taps
    ``W[r + s·u]`` (``u < J = ceil(k / s)``), flipped. All ``s²`` phases of the ``C`` input
    channels become the ``C·s²`` output channels of one conv, interleaved by ``pixel_shuffle``
    (Shi et al. 2016). ``(O, C, k, k) -> (C·s², O, J, J)``, channels_last.
    """
    out_channels, in_channels, k, _ = weight.shape
    taps = math.ceil(k / stride)
    extra = stride * taps - k  # zero taps past the kernel
    padded = F.pad(weight, (0, extra, 0, extra))  # (O, C, s·J, s·J), index i = u·s + r
    split = rearrange(padded, "o c (uy ry) (ux rx) -> c ry rx o uy ux", ry=stride, rx=stride)
    flipped = split.flip(-2, -1)  # u -> t = J - 1 - u
    phases = rearrange(flipped, "c ry rx o ty tx -> (c ry rx) o ty tx")
    return phases.contiguous(memory_format=torch.channels_last)


class StemConv(torch.autograd.Function):
    """A trunk's first (frozen, 3-input-channel) conv with a faster input gradient.

    oneDNN's backward-data kernel for a conv with 3 input channels runs several times slower
    than its forward. For large strides the gradient is one sub-pixel conv
    (``subpixel_weight``) + ``pixel_shuffle``; otherwise the matrix product ``Wᵀ·grad`` followed
    by ``fold`` (col2im). Both cost about what the forward does. The weights get no gradient;
    the conv must be square with dilation 1 and one group, as every torchvision trunk stem is.
    """

    @staticmethod
    def forward(ctx, x: Tensor, conv: nn.Conv2d) -> Tensor:  # type: ignore[override]
        ctx.conv, ctx.size = conv, x.shape[-2:]
        return conv(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        conv, (h, w) = ctx.conv, ctx.size
        (k, _), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
        if s >= SUBPIXEL_MIN_STRIDE:
            # rebuilt from the current weight each time (a few small ops): never stale
            subpixel = subpixel_weight(conv.weight.detach().to(grad.dtype), s)
            taps = math.ceil(k / s)
            # Phase outputs m = 0 .. (size - 1 + p) // s, each from grad_out[m - taps + 1 .. m]:
            # the conv's own zero padding gives m < Ho + taps - 1; any further m has no terms.
            rows, cols = (h - 1 + p) // s + 1, (w - 1 + p) // s + 1
            phases = F.conv2d(grad, subpixel, padding=taps - 1)  # (N, C·s², Ho+J-1, Wo+J-1)
            missing_rows, missing_cols = rows - phases.shape[-2], cols - phases.shape[-1]
            if missing_rows > 0 or missing_cols > 0:
                phases = F.pad(phases, (0, max(0, missing_cols), 0, max(0, missing_rows)))
            full = F.pixel_shuffle(phases, s)
            return full[:, :, p : p + h, p : p + w], None
        weight = conv.weight.to(grad.dtype).flatten(1)  # (O, C·k·k)
        columns = torch.matmul(weight.t(), grad.flatten(2))  # (N, C·k·k, Ho·Wo)
        grad_input = F.fold(columns, (h, w), k, padding=p, stride=s)
        return grad_input, None

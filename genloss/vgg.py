"""VGG perceptual loss on frozen ImageNet VGG features: content and Gram-matrix style terms.

``VGGLoss`` compares the VGG16/VGG19 features of a prediction and its target: an L1/L2 content
term (Johnson et al. 2016; pix2pixHD's VGG loss) plus an optional Gram-matrix style term (Gatys
et al. 2016). Weights, frame selection and input checks work as for ``LPIPS`` (both build on
:class:`genloss._frozen.FramewiseLoss`).
"""

from __future__ import annotations

import os

import torch
import torchvision.models as tvm
from einops import rearrange
from torch import Tensor, nn

from ._backbones import build_trunk, min_input_size
from ._checks import check_choice, check_reduction, per_sample_mean, reduce_per_sample
from ._frozen import FramewiseLoss

__all__ = ["VGGLoss", "gram_matrix", "vgg_layer_names"]

VGG_NETS = {"vgg16": "vgg", "vgg19": "vgg19"}
# pix2pixHD's VGG loss: VGG19 relu1_1 .. relu5_1 weighted 1/32 .. 1.
DEFAULT_LAYERS = {
    "vgg19": {
        "relu1_1": 1 / 32,
        "relu2_1": 1 / 16,
        "relu3_1": 1 / 8,
        "relu4_1": 1 / 4,
        "relu5_1": 1.0,
    },
    "vgg16": {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0},
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def gram_matrix(features: Tensor) -> Tensor:
    """``G = F Fᵀ / (C h w)`` for features ``(N, C, h, w)``, computed in float32: ``(N, C, C)``."""
    f = rearrange(features.float(), "n c h w -> n c (h w)")
    return torch.bmm(f, f.transpose(1, 2)) / f[0].numel()


def vgg_layer_names(net: str = "vgg19") -> dict[str, int]:
    """``{"conv1_1": 0, "relu1_1": 1, ..., "pool5": 36}``: names of torchvision VGG's ``features``."""
    check_choice("net", net, tuple(VGG_NETS))
    with torch.device("meta"):
        features = getattr(tvm, net)(weights=None).features
    names, block, conv = {}, 1, 0
    for index, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            conv += 1
            names[f"conv{block}_{conv}"] = index
        elif isinstance(layer, nn.ReLU):
            names[f"relu{block}_{conv}"] = index
        else:
            names[f"pool{block}"] = index
            block, conv = block + 1, 0
    return names


class VGGLoss(FramewiseLoss):
    """VGG perceptual loss: weighted feature (content) distance plus a Gram-matrix style term.

    With ImageNet-normalised inputs and features ``φ_l`` at the chosen layers::

        content = Σ_l λ_l · mean |φ_l(p) - φ_l(t)|        (criterion="l1"; "mse": squared)
        style   = Σ_l λ_l · mean (G(φ_l(p)) - G(φ_l(t)))², G(F) = F Fᵀ / (C h w)
        loss    = content_weight · content + style_weight · style

    Videos ``(B, C, T, H, W)`` are averaged over their (selected) frames, as for ``LPIPS``.

    Args:
        net: ``"vgg19"`` (default; pix2pixHD) or ``"vgg16"`` (Johnson et al.).
        layers: ``{layer name: λ}`` (names from ``vgg_layer_names``: ``"relu3_1"``, ...);
            default: VGG19 ``relu1_1..relu5_1`` weighted ``1/32 .. 1``, VGG16
            ``relu1_2, relu2_2, relu3_3, relu4_3`` weighted 1.
        content_weight, style_weight: the two terms' factors (style off by default).
        criterion: ``"l1"`` or ``"mse"`` for the content term.
        weights, download, frames, frame_sampling, check_range, reduction: as for ``LPIPS``
            (``weights`` a path holds a torchvision ``vgg16``/``vgg19`` state dict).

    Shapes:
        ``pred``, ``target``: ``(B, 3, H, W)`` or ``(B, 3, T, H, W)`` in [-1, 1]. Output: scalar
        or ``(B,)`` for ``"none"``. Gradients flow into ``pred`` only.

    References: Johnson et al., "Perceptual Losses for Real-Time Style Transfer and
    Super-Resolution", ECCV 2016; Gatys et al., "Image Style Transfer Using Convolutional
    Neural Networks", CVPR 2016; Wang et al. (pix2pixHD), CVPR 2018.
    """

    def __init__(
        self,
        net: str = "vgg19",
        *,
        layers: dict[str, float] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 0.0,
        criterion: str = "l1",
        weights: str | os.PathLike = "imagenet",
        frames: int | None = None,
        frame_sampling: str = "auto",
        reduction: str = "mean",
        check_range: bool = True,
        download: bool = True,
    ) -> None:
        super().__init__()
        check_choice("net", net, tuple(VGG_NETS))
        check_choice("criterion", criterion, ("l1", "mse"))
        self.configure(frames, frame_sampling, reduction, check_range)
        layers = dict(DEFAULT_LAYERS[net] if layers is None else layers)
        names = vgg_layer_names(net)
        unknown = [name for name in layers if name not in names]
        if not layers or unknown:
            raise ValueError(
                f"`layers` must name layers of {net} (see vgg_layer_names({net!r}), e.g. "
                f"{', '.join(n for n in names if n.startswith('relu'))}); "
                f"got unknown {unknown or 'nothing'}"
            )
        self.net, self.criterion = net, criterion
        self.content_weight, self.style_weight = float(content_weight), float(style_weight)
        self.layer_index = {name: names[name] for name in layers}
        self.layer_weights = layers
        depth = max(self.layer_index.values()) + 1
        self.trunk, self.weights_source = build_trunk(
            VGG_NETS[net], weights, download=download, depth=depth
        )
        self.min_size = min_input_size(self.trunk)
        # [-1, 1] -> [0, 1] -> ImageNet normalisation, folded into one affine map.
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("shift", (2 * mean - 1).view(1, 3, 1, 1))
        self.register_buffer("scale", (2 * std).view(1, 3, 1, 1))
        self.freeze()

    def features(self, x: Tensor) -> dict[str, Tensor]:
        """``{layer name: (N, C_l, h_l, w_l)}`` for frames ``(N, 3, H, W)`` in [-1, 1]."""
        h = (x.to(self.shift.dtype) - self.shift) / self.scale
        wanted = {index: name for name, index in self.layer_index.items()}
        out = {}
        for index, layer in enumerate(self.trunk):
            h = layer(h)
            if index in wanted:
                following = self.trunk[index + 1] if index + 1 < len(self.trunk) else None
                # a tapped conv output would be overwritten by the in-place ReLU after it
                in_place = isinstance(following, nn.ReLU) and following.inplace
                out[wanted[index]] = h.clone() if in_place else h
        return out

    def terms(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample ``(content, style)``, each ``(B,)``, unweighted by the two factors."""
        pred, target, k = self.frames_of(pred, target)
        with torch.no_grad():
            target_features = self.features(target)
        pred_features = self.features(pred)
        content = style = torch.zeros(pred.shape[0], device=pred.device)
        for name, weight in self.layer_weights.items():
            p, t = pred_features[name].float(), target_features[name].float()
            distance = (p - t).abs() if self.criterion == "l1" else (p - t).square()
            content = content + weight * per_sample_mean(distance)
            if self.style_weight:
                style = style + weight * per_sample_mean((gram_matrix(p) - gram_matrix(t)).square())
        # (b t) frames -> mean per clip
        return (
            rearrange(content, "(b t) -> b t", t=k or 1).mean(dim=1),
            rearrange(style, "(b t) -> b t", t=k or 1).mean(dim=1),
        )

    def forward(self, pred: Tensor, target: Tensor, *, reduction: str | None = None) -> Tensor:
        """``content_weight · content + style_weight · style``, reduced."""
        reduction = self.reduction if reduction is None else reduction
        check_reduction(reduction)
        content, style = self.terms(pred, target)
        return reduce_per_sample(
            self.content_weight * content + self.style_weight * style, reduction
        )

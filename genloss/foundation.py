"""Foundation-feature perceptual loss: distances between the patch features of a frozen ViT
(DINOv2-style) loaded from a local file, with random shifts against patch aliasing.

The backbone is never downloaded: pass a TorchScript file, or a module of your ViT's
architecture plus the path of its state dict.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ._backbones import WeightsNotFoundError, _read_state
from ._checks import (
    check_choice,
    check_positive_int,
    check_reduction,
    per_sample_mean,
    reduce_per_sample,
)
from ._frozen import FramewiseLoss

__all__ = ["FoundationPerceptualLoss", "load_backbone"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DISTANCES = ("cosine", "mse")


def load_backbone(
    backbone: str | os.PathLike | nn.Module, weights: str | os.PathLike | None = None
) -> tuple[nn.Module, str]:
    """A frozen feature network from a local file: ``(module, source)``.

    Args:
        backbone: the path of a TorchScript file (``weights`` must be None), or an ``nn.Module``
            of the ViT's architecture.
        weights: with a module, the path of its state dict (loaded strictly: every key, every
            shape); None uses the module's weights as they are.

    Returns:
        The module (eval mode, no parameter requiring grad) and a string naming where its
        weights came from, for run configs.
    """
    if isinstance(backbone, nn.Module):
        source = f"module:{type(backbone).__qualname__}"
        if weights is not None:
            path = Path(weights).expanduser()
            state = _read_state(path, "foundation backbone")
            expected = backbone.state_dict()
            missing = sorted(set(expected) - set(state))
            unexpected = sorted(set(state) - set(expected))
            wrong = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
                           for k, v in expected.items() if k in state and state[k].shape != v.shape)
            if missing or unexpected or wrong:
                raise ValueError(
                    f"{path} is not a state dict of the backbone {type(backbone).__qualname__}: "
                    f"missing keys {missing[:8]}, unexpected keys {unexpected[:8]}, wrong shapes {wrong[:8]}"
                )
            with torch.no_grad():
                backbone.load_state_dict(state)
            source = f"file:{path.resolve()}"
    elif isinstance(backbone, (str, os.PathLike)):
        if weights is not None:
            raise ValueError(
                "`weights` is for a state dict loaded into a module; a TorchScript `backbone` "
                f"file carries its own weights (got backbone={str(backbone)!r}, weights={str(weights)!r})"
            )
        path = Path(backbone).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"backbone TorchScript file not found: {path}")
        with warnings.catch_warnings():
            # torch >= 2.9 deprecates torch.jit.load; TorchScript is still how frozen nets are shipped.
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
            try:
                backbone = torch.jit.load(str(path), map_location="cpu")
            except (RuntimeError, ValueError) as error:
                raise ValueError(
                    f"`backbone` {str(path)!r} could not be loaded as a TorchScript file (for a state "
                    f"dict, pass a module of the architecture and weights=PATH): {error}"
                ) from error
        source = f"torchscript:{path.resolve()}"
    else:
        raise TypeError(
            "`backbone` must be the path of a TorchScript file or an nn.Module; "
            f"got {type(backbone).__name__}"
        )
    backbone.eval()
    for parameter in backbone.parameters():  # ScriptModules have no requires_grad_()
        parameter.requires_grad_(False)
    return backbone, source


def _as_list(features: object) -> list[Tensor]:
    """The backbone's output as a list of ``(N, L, D)`` token or ``(N, D, h, w)`` maps."""
    items = list(features) if isinstance(features, (list, tuple)) else [features]
    if not items or not all(isinstance(f, Tensor) and f.ndim in (3, 4) for f in items):
        found = [tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__ for f in items]
        raise ValueError(
            "the backbone must return (N, L, D) tokens, (N, D, h, w) maps, or a list of them; "
            f"got {found}"
        )
    return [rearrange(f, "n d h w -> n (h w) d") if f.ndim == 4 else f for f in items]


class FoundationPerceptualLoss(FramewiseLoss):
    """Perceptual distance in the feature space of a frozen ViT (DINOv2-style).

    With ``φ_l`` the backbone's token features (one or more layers) of ImageNet-normalised
    frames, per frame::

        cosine: d = mean_l mean_tokens (1 − cos(φ_l(p), φ_l(t)))     (cosine over the feature dim)
        mse:    d = mean_l mean (φ_l(p) − φ_l(t))²

    With ``random_shift`` both frames are cropped at the same random offset ``(dy, dx)``,
    ``0 <= dy, dx < patch_size``, to ``floor((H − patch_size + 1) / patch_size)`` patches per
    side, so the patch grid does not sit on the same pixels every step (patch aliasing). One
    offset per call, drawn from ``generator`` (or torch's global RNG). Videos: each clip's
    value is the mean over its (selected) frames, as for ``LPIPS``.

    Args:
        backbone: a TorchScript file path, or an ``nn.Module`` (see :func:`load_backbone`). It
            maps ``(N, 3, H, W)`` normalised frames to ``(N, L, D)`` tokens, ``(N, D, h, w)``
            maps, or a list of them.
        weights: state-dict path for a module ``backbone``; None otherwise.
        patch_size: the ViT's patch size (DINOv2: 14).
        random_shift: crop at a random sub-patch offset (True) or use the frames whole.
        distance: ``"cosine"`` or ``"mse"``.
        mean, std: per-channel normalisation after mapping [-1, 1] to [0, 1] (ImageNet's).
        frames, frame_sampling, check_range, reduction: as for ``LPIPS``.

    Shapes:
        ``pred``, ``target``: ``(B, 3, H, W)`` or ``(B, 3, T, H, W)`` in [-1, 1]. Output: scalar
        or ``(B,)``. Gradients flow into ``pred`` only. The backbone is frozen and stays in eval
        mode when a parent calls ``.train()``.

    References: Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision",
    TMLR 2024; Yao et al., "Reconstruction vs. Generation: Taming Optimization Dilemma in Latent
    Diffusion Models" (VA-VAE), CVPR 2025, for foundation-feature alignment of tokenizers.
    """

    def __init__(
        self,
        backbone: str | os.PathLike | nn.Module,
        *,
        weights: str | os.PathLike | None = None,
        patch_size: int,
        random_shift: bool = True,
        distance: str = "cosine",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        frames: int | None = None,
        frame_sampling: str = "auto",
        check_range: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_choice("distance", distance, DISTANCES)
        check_positive_int("patch_size", patch_size)
        self.configure(frames, frame_sampling, reduction, check_range)
        self.backbone, self.weights_source = load_backbone(backbone, weights)
        self.patch_size, self.random_shift, self.distance = patch_size, bool(random_shift), distance
        self.min_size = 2 * patch_size - 1 if random_shift else patch_size
        # [-1, 1] -> [0, 1] -> (x - mean) / std, folded into one affine map; kept as floats and
        # made in the backbone's dtype at each call, so a float64 backbone gets float64 constants.
        self.shift_values = tuple(2 * m - 1 for m in mean)
        self.scale_values = tuple(2 * s for s in std)
        self.freeze()

    def crop(self, x: Tensor, offset: tuple[int, int]) -> Tensor:
        """``x[..., dy : dy + S_h, dx : dx + S_w]``, ``S = floor((size − p + 1) / p) · p``."""
        p = self.patch_size
        (dy, dx), (h, w) = offset, x.shape[-2:]
        size_h, size_w = (h - p + 1) // p * p, (w - p + 1) // p * p
        return x[..., dy : dy + size_h, dx : dx + size_w]

    def draw_offset(self, generator: torch.Generator | None = None) -> tuple[int, int]:
        """One ``(dy, dx)`` in ``[0, patch_size)²`` from ``generator`` (CPU) or the global RNG."""
        dy, dx = torch.randint(0, self.patch_size, (2,), generator=generator).tolist()
        return dy, dx

    def features(self, frames: Tensor) -> list[Tensor]:
        """Token features ``[(N, L, D), ...]`` of frames ``(N, 3, H, W)`` in [-1, 1]."""
        dtype = next(self.backbone.parameters(), frames).dtype
        shift = torch.tensor(self.shift_values, dtype=dtype, device=frames.device).view(1, 3, 1, 1)
        scale = torch.tensor(self.scale_values, dtype=dtype, device=frames.device).view(1, 3, 1, 1)
        return _as_list(self.backbone((frames.to(dtype) - shift) / scale))

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        *,
        generator: torch.Generator | None = None,
        reduction: str | None = None,
    ) -> Tensor:
        reduction = self.reduction if reduction is None else reduction
        check_reduction(reduction)
        pred, target, k = self.frames_of(pred, target)
        if self.random_shift:
            offset = self.draw_offset(generator)
            pred, target = self.crop(pred, offset), self.crop(target, offset)
        with torch.no_grad():
            target_features = self.features(target)
        pred_features = self.features(pred)
        if len(pred_features) != len(target_features):
            raise ValueError("the backbone returned a different number of layers for pred and target")
        per_frame = pred.new_zeros(pred.shape[0], dtype=torch.promote_types(pred.dtype, torch.float32))
        for fp, ft in zip(pred_features, target_features):
            fp, ft = fp.to(per_frame.dtype), ft.to(per_frame.dtype)
            if self.distance == "cosine":
                d = 1 - F.cosine_similarity(fp, ft, dim=-1)  # (N, L)
            else:
                d = (fp - ft).square()
            per_frame = per_frame + per_sample_mean(d)
        per_frame = per_frame / len(pred_features)
        return reduce_per_sample(rearrange(per_frame, "(b t) -> b t", t=k or 1).mean(dim=1), reduction)

    def extra_repr(self) -> str:
        return (f"patch_size={self.patch_size}, random_shift={self.random_shift}, "
                f"distance={self.distance!r}, weights={self.weights_source!r}, "
                f"reduction={self.reduction!r}")

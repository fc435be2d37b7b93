"""The two discriminators of the reference video GAN (as in MoCoGAN and DIGAN).

The image discriminator judges single frames (is each frame a plausible picture?); the video
discriminator judges whole clips with 3-D convolutions (is the motion plausible, is the
continuation consistent with its context?). Both are PatchGAN-style: they return a map of
logits, and a list of intermediate features for feature matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["TRUNKS", "DiscriminatorConfig", "ImageDiscriminator", "VideoDiscriminator", "sample_frames", "with_frame_differences"]


TRUNKS = ("strided", "local")  # the image discriminator's layers (see _LocalTrunk for why "local")


@dataclass
class DiscriminatorConfig:
    channels: int = 3  # input channels: C colours, or 2C for clips with their frame differences
    size: int = 32  # frame height = width; must be divisible by 2 ** levels
    base_channels: int = 32  # width of the first layer, doubled per level (capped at 8x)
    levels: int = 3  # stride-2 layers; the logit map is size / 2 ** levels wide
    spectral_norm: bool = False  # wrap every convolution in spectral normalisation
    trunk: str = "strided"  # "strided" (stride-2 convs) or "local" (full-resolution convs, max pooling; images only)

    def validate(self) -> None:
        if self.trunk not in TRUNKS:
            raise ValueError(f"discriminator trunk must be one of {TRUNKS}; got {self.trunk!r}")
        step = 2**self.levels
        if self.size % step or self.size < 2 * step:
            raise ValueError(
                f"discriminator size must be a multiple of {step} and at least {2 * step} "
                f"(levels={self.levels}); got {self.size}"
            )


def _maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(layer) if enabled else layer


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)  # every activation of both discriminators


class _Trunk(nn.Module):
    """Stride-2 conv layers with LeakyReLU, then a 3x3 conv to one logit per patch."""

    def __init__(self, config: DiscriminatorConfig, conv: type[nn.Module], kernel, strides: list, padding) -> None:
        super().__init__()
        config.validate()
        widths = [config.channels] + [config.base_channels * min(2**i, 8) for i in range(config.levels)]
        self.layers = nn.ModuleList(
            nn.Sequential(_maybe_sn(conv(widths[i], widths[i + 1], kernel, strides[i], padding), config.spectral_norm),
                          _leaky())
            for i in range(config.levels)
        )
        self.to_logits = _maybe_sn(conv(widths[-1], 1, 3, 1, 1), config.spectral_norm)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return self.to_logits(x), features


class _LocalTrunk(nn.Module):
    """Two 3x3 convs at full resolution, then per level a 2x2 max pool and a 3x3 conv (width
    doubled, capped at 8x), LeakyReLU(0.2) after each conv; a 3x3 conv to one logit per patch.

    Why: pixel-wide artefacts (a rounded corner, a 1 px shrink) are differences between
    neighbouring pixels, which a stride-2 first layer never compares at full resolution, and
    which strided (or average-pooled) downsampling dilutes while max pooling keeps the strongest
    local response. Trained offline on the default run's generated frames (seed 0, 1500 steps of
    64 + 64 frames, width 16), the strided trunk tells them from real at 0.56, this one at 0.94,
    about what the strong protocol's :class:`genloss.metrics.LocalDetector` reaches.
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        config.validate()
        sn, w = config.spectral_norm, config.base_channels
        widths = [w * min(2**i, 8) for i in range(config.levels + 1)]
        stages = [nn.Sequential(_maybe_sn(nn.Conv2d(config.channels, w, 3, 1, 1), sn), _leaky(),
                                _maybe_sn(nn.Conv2d(w, w, 3, 1, 1), sn), _leaky())]
        stages += [nn.Sequential(nn.MaxPool2d(2), _maybe_sn(nn.Conv2d(widths[i], widths[i + 1], 3, 1, 1), sn),
                                 _leaky())
                   for i in range(config.levels)]
        self.layers = nn.ModuleList(stages)
        self.to_logits = _maybe_sn(nn.Conv2d(widths[-1], 1, 3, 1, 1), sn)

    forward = _Trunk.forward


class ImageDiscriminator(nn.Module):
    """Per-frame PatchGAN: ``(N, C, H, W) -> logits (N, 1, H / 2^L, W / 2^L)`` and features, with
    the ``"strided"`` trunk (stride-2 4x4 convs) or the ``"local"`` one (:class:`_LocalTrunk`)."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        if config.trunk == "local":
            self.trunk = _LocalTrunk(config)
        else:
            self.trunk = _Trunk(config, nn.Conv2d, 4, [2] * config.levels, 1)

    def forward(self, frames: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self.trunk(frames)  # (N, 1, h, w), [(N, c_i, H / 2^i, W / 2^i)]


class VideoDiscriminator(nn.Module):
    """Clip PatchGAN with 3-D convs: ``(B, C, T, H, W) -> logits (B, 1, T', H / 2^L, W / 2^L)``.

    Space is halved per layer and time from the second layer on (``T' = T / 2^(L-1)``, rounded
    up), so every logit sees the motion across most of the clip through the 3-frame kernels.
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        if config.trunk != "strided":
            raise ValueError(f"the video discriminator has only the 'strided' trunk; got trunk={config.trunk!r}")
        self.config = config
        # Time is kept by the first layer and halved by the others (T = 8 -> 8, 4, 2).
        strides = [(1, 2, 2)] + [(2, 2, 2)] * (config.levels - 1)
        self.trunk = _Trunk(config, nn.Conv3d, (3, 4, 4), strides, (1, 1, 1))

    def forward(self, video: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self.trunk(video)  # (B, 1, T', h, w), [(B, c_i, T_i, H / 2^i, W / 2^i)]


def sample_frames(video: Tensor, indices: Tensor) -> Tensor:
    """Pick frames ``indices`` (``(n,)``) of every clip: ``(B, C, T, H, W) -> (B * n, C, H, W)``.

    Real and generated clips should be sampled with the same indices so the image
    discriminator compares like with like.
    """
    return rearrange(torch.index_select(video, 2, indices), "b c n h w -> (b n) c h w")


def with_frame_differences(video: Tensor) -> Tensor:
    """The clip and its frame differences as channels: ``(B, C, T, H, W) -> (B, 2C, T, H, W)``.

    ``out[:, :C] = x`` and ``out[:, C:, t] = x_t - x_{t-1}``, 0 for ``t = 0``. A video
    discriminator built with ``channels=2C`` then sees the motion directly rather than having
    to find it with its first 3-frame kernels.
    """
    differences = torch.diff(video, dim=2, prepend=video[:, :, :1])  # (B, C, T, H, W), first frame 0
    return torch.cat([video, differences], dim=1)

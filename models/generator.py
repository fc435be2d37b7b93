"""The reference video generator: continue a clip from K context frames and a noise vector.

Read top to bottom: encode the context frames (and their differences, which carry the motion) to
a low-resolution feature map; add the noise and a learned embedding per future frame; mix across
time and space with factorised (2+1)-D residual blocks; decode with skip connections from the
encoder (by default to half resolution: the heads' smooth maps are upsampled bilinearly, while the
warp itself samples the full-resolution frame). With context (K > 0) the decoder predicts, per future frame, a flow
field, a blend mask and a colour image: the frame is ``m * warp(last context frame, flow) +
(1 - m) * colour``, so moving content is displaced rather than repainted. With ``output="residual"``
the colour head is instead a correction added to the warped frame, ``clamp(warp(last, flow) + 2 *
tanh(r), -1, 1)``: the texture of the last frame is carried over by construction and the network
only paints what the warp gets wrong, which is what transfers to footage it has never seen. With
``flow_prior=True`` the motion seen in the context is measured without weights
(:func:`genloss.estimate_flow` from the last context frame to the one before) and extrapolated at
constant velocity, ``(i + 1) * F`` for the i-th continuation frame; the network sees ``F`` as two
more input channels and its flow head adds a correction to the extrapolation, so the generator
starts as "keep moving as the context moved" rather than "stand still", on any footage.
Unconditional (K = 0) the colour image is the frame. Every output is in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from genloss import estimate_flow, warp
from genloss.temporal import WARP_MODES

__all__ = ["OUTPUTS", "Generator", "GeneratorConfig"]

OUTPUTS = ("blend", "residual")  # how a continuation frame is made from the warped last frame


@dataclass
class GeneratorConfig:
    channels: int = 3  # colour channels C of the video
    frames: int = 6  # clip length T (context + generated)
    context_frames: int = 2  # K context frames given; 0 = unconditional generation
    size: int = 32  # frame height = width; must be divisible by 2 ** levels
    z_dim: int = 32  # noise vector size
    base_channels: int = 16  # feature width at full resolution, doubled per level
    levels: int = 2  # down-sampling steps between the frames and the bottleneck
    blocks: int = 1  # (2+1)-D residual blocks at the bottleneck
    output_scale: int = 2  # heads run at size / output_scale, bilinearly upsampled (1 or 2)
    max_flow: float = 8.0  # largest displacement per future frame in pixels at size 32 (scales with size)
    output: str = "blend"  # with context: "blend" (mask between warp and colour) or "residual" (warp + correction)
    flow_prior: bool = False  # add the context's measured flow, extrapolated, to the flow head (needs K >= 2)
    warp_mode: str = "bilinear"  # how the warp samples the last frame: "bilinear" (softens) or "bicubic" (sharper)

    @property
    def future_frames(self) -> int:
        return self.frames - self.context_frames

    def validate(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2; got {self.frames}")
        if not 0 <= self.context_frames < self.frames:
            raise ValueError(
                f"context_frames must be in [0, frames); got {self.context_frames} with frames {self.frames}"
            )
        step = 2**self.levels
        if self.size < 4 * step or self.size % step:
            raise ValueError(
                f"size must be a multiple of {step} and at least {4 * step} "
                f"(levels={self.levels}); got {self.size}"
            )
        if self.output_scale not in (1, 2) or self.output_scale > step:
            raise ValueError(f"output_scale must be 1 or 2; got {self.output_scale}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}; got {self.output!r}")
        if self.warp_mode not in WARP_MODES:
            raise ValueError(f"warp_mode must be one of {WARP_MODES}; got {self.warp_mode!r}")
        if self.flow_prior and self.context_frames < 2:
            raise ValueError(f"flow_prior needs at least 2 context frames to measure motion; got {self.context_frames}")
        if self.base_channels % 8:
            raise ValueError(f"base_channels must be a multiple of 8 (group norm); got {self.base_channels}")


def conv2p1(c_in: int, c_out: int) -> nn.Sequential:
    """A factorised 3-D convolution: 3x3 over space, then 3 over time (R(2+1)D, Tran et al. 2018)."""
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, (1, 3, 3), padding=(0, 1, 1)),
        nn.Conv3d(c_out, c_out, (3, 1, 1), padding=(1, 0, 0)),
    )


class Block(nn.Module):
    """Residual (2+1)-D block on ``(B, C, T, H, W)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), conv2p1(width, width),
                                  nn.GroupNorm(8, width), nn.SiLU(), conv2p1(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Continue a video: ``(context (B, C, K, H, W), z (B, z_dim)) -> (B, C, T - K, H, W)``."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        config.validate()
        self.config = cfg = config
        widths = [cfg.base_channels * 2**i for i in range(cfg.levels + 1)]  # full res -> bottleneck
        bottom = cfg.size // 2**cfg.levels
        k = cfg.context_frames
        if k > 0:
            # Input: the K frames and their K-1 differences (and the measured flow), stacked as channels of one image.
            self.stem = nn.Conv2d(cfg.channels * (2 * k - 1) + 2 * cfg.flow_prior, widths[0], 3, padding=1)
            self.down = nn.ModuleList(
                nn.Sequential(nn.SiLU(), nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1))
                for i in range(cfg.levels)
            )
        else:
            self.const = nn.Parameter(torch.randn(widths[-1], bottom, bottom) * 0.1)
        self.from_z = nn.Linear(cfg.z_dim, widths[-1])
        self.time_embedding = nn.Parameter(torch.randn(widths[-1], cfg.future_frames, 1, 1) * 0.1)
        self.blocks = nn.Sequential(*(Block(widths[-1]) for _ in range(cfg.blocks)))
        # Decoder: upsample, (2+1)-D conv, add the encoder's map at that scale (shared by all frames).
        first = 1 if cfg.output_scale == 2 else 0  # the finest level decoded
        self.up = nn.ModuleList(
            nn.Sequential(nn.GroupNorm(8, widths[i + 1]), nn.SiLU(), conv2p1(widths[i + 1], widths[i]))
            for i in reversed(range(first, cfg.levels))
        )
        # Heads: C colour channels, plus 2 flow channels and (blend) 1 mask channel when warping the context.
        self.out_channels = cfg.channels + ((3 if cfg.output == "blend" else 2) if k > 0 else 0)
        self.head = nn.Sequential(nn.SiLU(), nn.Conv3d(widths[first], self.out_channels, (1, 3, 3), padding=(0, 1, 1)))
        nn.init.zeros_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)
        if k > 0 and cfg.output == "blend":
            # Start as "copy the last frame": zero flow, mask ~0.95 on the warp (residual: zero correction).
            nn.init.constant_(self.head[1].bias[cfg.channels + 2], 3.0)

    @property
    def last_layer(self) -> Tensor:
        """The output layer's weight, for :func:`genloss.adaptive_weight`."""
        return self.head[1].weight

    def forward(self, context: Tensor, z: Tensor, *, return_flow: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        """The continuation ``(B, C, T - K, H, W)``; with ``return_flow`` also the flow it warped
        the last context frame with, ``(B, 2, T - K, H, W)`` in pixels (``None`` without context)."""
        parts = self.parts(context, z, ablations=False)
        return (parts["frames"], parts.get("flow")) if return_flow else parts["frames"]

    def parts(self, context: Tensor, z: Tensor, *, ablations: bool = True) -> dict[str, Tensor]:
        """The continuation and the two halves it is made of, to see which one costs what.

        ``frames`` is :meth:`forward`'s output. With context, also ``flow`` (pixels) and two
        ablations, each ``(B, C, T - K, H, W)`` in [-1, 1]: ``warp_only``, the warped last context
        frame with nothing painted (residual: no correction; blend: mask 1), and ``no_flow``, the
        same output with the flow set to zero, the warp replaced by the last frame itself
        (residual: ``clamp(last + 2 tanh(r))``; blend: ``m * last + (1 - m) * colour``). Against
        copying the last frame, ``warp_only`` says what the flow gains, ``no_flow`` what the paint
        gains (``ablations=False`` leaves both out). Without context, ``{"frames": colour}``.
        """
        cfg = self.config
        b = z.shape[0]
        future = cfg.future_frames
        if tuple(context.shape[1:]) != (cfg.channels, cfg.context_frames, cfg.size, cfg.size):
            raise ValueError(
                f"`context` must be (B, {cfg.channels}, {cfg.context_frames}, {cfg.size}, {cfg.size}); "
                f"got {tuple(context.shape)}"
            )
        skips: list[Tensor] = []
        flow_range = cfg.max_flow * cfg.size / 32
        if cfg.context_frames > 0:
            diffs = context[:, :, 1:] - context[:, :, :-1]  # (B, C, K-1, H, W): the motion
            x = rearrange(torch.cat([context, diffs], dim=2), "b c k h w -> b (k c) h w")
            if cfg.flow_prior:  # backward flow of the last step: warp(previous, seen) ≈ last
                seen = estimate_flow(context[:, :, -1], context[:, :, -2])  # (B, 2, H, W), no gradient
                x = torch.cat([x, seen / flow_range], dim=1)
            x = self.stem(x)  # (B, w0, H, W)
            for down in self.down:
                skips.append(x)
                x = down(x)  # (B, w_i, H / 2^i, W / 2^i)
        else:
            x = repeat(self.const, "c h w -> b c h w", b=b)
        x = x + rearrange(self.from_z(z), "b c -> b c 1 1")  # noise: (B, wL, h, w)
        x = rearrange(x, "b c h w -> b c 1 h w") + self.time_embedding  # (B, wL, T-K, h, w)
        x = self.blocks(x)
        for up in self.up:
            x = up(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))  # (B, w, T-K, 2h, 2w)
            if skips:
                x = x + rearrange(skips.pop(), "b c h w -> b c 1 h w")  # same map for every frame
        out = self.head(x)  # (B, C [+ 3], T-K, H / s, W / s)
        if cfg.output_scale > 1:
            out = F.interpolate(out, size=(future, cfg.size, cfg.size), mode="trilinear", align_corners=False)
        colour = torch.tanh(out[:, : cfg.channels])  # (B, C, T-K, H, W)
        if cfg.context_frames == 0:
            return {"frames": colour}
        flow = torch.tanh(out[:, cfg.channels : cfg.channels + 2]) * flow_range
        if cfg.flow_prior:  # constant velocity: frame i after the last one is (i + 1) steps away
            steps = torch.arange(1, future + 1, device=flow.device, dtype=flow.dtype).view(1, 1, future, 1, 1)
            flow = flow + steps * rearrange(seen, "b two h w -> b two 1 h w")
        last = repeat(context[:, :, -1], "b c h w -> b c t h w", t=future)
        warped = warp(last, flow, mode=cfg.warp_mode)  # (B, C, T-K, H, W): the last frame displaced
        if cfg.output == "residual":  # colour is tanh(r): the correction 2 tanh(r) reaches any pixel value
            def made(base: Tensor) -> Tensor:
                return (base + 2 * colour).clamp(-1, 1)
        else:
            mask = torch.sigmoid(out[:, cfg.channels + 2 :])  # (B, 1, T-K, H, W)

            def made(base: Tensor) -> Tensor:
                return mask * base + (1 - mask) * colour
        # Bicubic sampling can overshoot [-1, 1] near edges; the ablations are shown and scored as frames.
        parts = {"frames": made(warped), "flow": flow}
        if ablations:
            parts.update(warp_only=warped.clamp(-1, 1), no_flow=made(last))
        return parts

"""Subtle fakes of the moving-shapes clips, for calibrating the detector protocols.

``train.data.MovingShapes`` renders each shape's coverage with a one-pixel linear ramp and keeps
no mask, so the shape-level fakes (rounded corners, shrunk shapes) can't be made from its pixels.
:func:`render` draws the *same* shapes (the same random stream per clip: size, kind, colour,
start, velocity, bounces) with a supersampled mask instead: each pixel's coverage is the mean of
``SUPERSAMPLE``² binary samples of the shape. The real set and every fake of the calibration come
from this renderer, so a fake differs from its real clip only by its modification. Unmodified, it
agrees with ``MovingShapes`` to within one pixel's anti-aliasing at the edges
(tests/test_detect.py checks this).

Fakes (``context`` leading frames stay real, as in a continuation; the rest are modified):

* ``blur``: Gaussian, sigma 0.5 px (radius 2, replicate padding), every generated frame;
* ``rounded``: each shape's mask filtered by a 3x3-pixel box filter and re-thresholded at 0.5
  (at the supersampled resolution, so the edges stay anti-aliased): a square's corners become
  round, straight edges stay where they were;
* ``shrunk``: every shape's radius (half-side for squares) 1 px smaller;
* ``darker``: every colour 10% darker (pixel values in [0, 1] times 0.9; the background is black);
* ``repeated``: generated frame ``context`` shown twice (it replaces frame ``context + 1``), a
  clip-level fake: every frame on its own is a real frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from train.data import _PALETTE, _SPLITS, _bounce

SUPERSAMPLE = 5  # odd, so a 3-pixel box is 15 samples wide and centred on a sample
CONTEXT = 2  # frames given to the generator, kept real in every fake
FAKES = ("blur", "rounded", "shrunk", "darker", "repeated")


def _params(index: int, seed: int, frames: int, size: int, num_shapes: int = 2,
            speed: tuple[float, float] = (1.0, 2.0)) -> list[tuple[float, bool, np.ndarray, np.ndarray]]:
    """``[(radius, square, colour, positions (T, 2))]`` of clip ``index``, drawn exactly as
    ``MovingShapes(split="heldout", seed=seed)[index]`` draws them."""
    rng = np.random.default_rng([seed, _SPLITS["heldout"], index])
    scale = size / 32
    shapes = []
    for _ in range(num_shapes):
        radius = rng.uniform(3.5, 6.0) * scale
        square = rng.random() < 0.5
        colour = _PALETTE[rng.integers(len(_PALETTE))]
        pos = rng.uniform(radius, size - radius, size=2)
        angle = rng.uniform(0, 2 * math.pi)
        vel = rng.uniform(*speed) * scale * np.array([math.sin(angle), math.cos(angle)])
        positions = []
        for _ in range(frames):
            positions.append(pos)
            pos, vel = _bounce(pos + vel, vel, radius, size)
        shapes.append((radius, square, colour, np.stack(positions)))
    return shapes


def _coverage(radius: torch.Tensor, square: torch.Tensor, positions: torch.Tensor, size: int,
              rounded: bool) -> torch.Tensor:
    """``(M, T, size, size)`` coverage in [0, 1] of M shapes in each frame, supersampled.

    Args: ``radius`` ``(M,)``, ``square`` ``(M,)`` bool, ``positions`` ``(M, T, 2)`` as (y, x).
    """
    s = SUPERSAMPLE
    m, t = positions.shape[:2]
    grid = (torch.arange(size * s, dtype=torch.float32) + 0.5) / s
    dy = (grid.view(1, 1, -1, 1) - positions[..., 0, None, None]).abs()  # (M, T, size·s, 1)
    dx = (grid.view(1, 1, 1, -1) - positions[..., 1, None, None]).abs()  # (M, T, 1, size·s)
    square = square.view(m, 1, 1, 1)
    dist = torch.where(square, torch.maximum(dy, dx), torch.sqrt(dy * dy + dx * dx))
    mask = (dist <= radius.view(m, 1, 1, 1)).float().view(m * t, 1, size * s, size * s)
    if rounded:  # 3x3-pixel box filter (separable, zeros outside the frame), re-thresholded at 0.5
        width = 3 * s
        box = F.avg_pool2d(mask, (width, 1), stride=1, padding=(width // 2, 0), count_include_pad=True)
        box = F.avg_pool2d(box, (1, width), stride=1, padding=(0, width // 2), count_include_pad=True)
        mask = (box >= 0.5).float()
    return F.avg_pool2d(mask, s).view(m, t, size, size)


def render(num: int, frames: int = 6, size: int = 32, *, seed: int = 0, fake: str | None = None,
           context: int = CONTEXT, chunk: int = 32) -> torch.Tensor:
    """``(num, 3, frames, size, size)`` held-out moving-shapes clips in [-1, 1], real or ``fake``.

    ``fake`` is ``None`` (real), or ``"rounded"`` / ``"shrunk"`` (shape-level: the shapes of
    frames ``context ..`` are drawn modified); for the pixel-level fakes use :func:`make_fake`.
    Clips are drawn ``chunk`` at a time (memory: about ``chunk·frames·(5·size)²`` floats).
    """
    if fake not in (None, "rounded", "shrunk"):
        raise ValueError(f"`fake` must be None, 'rounded' or 'shrunk' here; got {fake!r}")
    out = []
    for first in range(0, num, chunk):
        params = [_params(i, seed, frames, size) for i in range(first, min(first + chunk, num))]
        n, k = len(params), len(params[0])
        radius = torch.tensor([[p[0] for p in clip] for clip in params], dtype=torch.float32)  # (n, k)
        square = torch.tensor([[p[1] for p in clip] for clip in params])
        colour = torch.tensor(np.array([[p[2] for p in clip] for clip in params]), dtype=torch.float32)  # (n, k, 3)
        positions = torch.tensor(np.array([[p[3] for p in clip] for clip in params]), dtype=torch.float32)
        alpha = _coverage(radius.flatten(), square.flatten(), positions.flatten(0, 1), size, rounded=False)
        if fake is not None:
            later = positions[:, :, context:].flatten(0, 1)
            alpha[:, context:] = _coverage(radius.flatten() - float(fake == "shrunk"), square.flatten(), later,
                                           size, rounded=fake == "rounded")
        alpha = alpha.view(n, k, frames, size, size, 1)
        clips = torch.zeros(n, frames, size, size, 3)
        for j in range(k):  # later shapes occlude earlier, as in MovingShapes
            clips = clips * (1 - alpha[:, j]) + colour[:, j].view(n, 1, 1, 1, 3) * alpha[:, j]
        out.append(clips)
    return (torch.cat(out) * 2 - 1).permute(0, 4, 1, 2, 3).contiguous()  # (N, T, H, W, C) -> (N, C, T, H, W)


def gaussian_blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(N, C, T, H, W)`` with every frame through a separable Gaussian (radius ceil(3 sigma), replicate padding)."""
    radius = math.ceil(3 * sigma)
    taps = torch.exp(-torch.arange(-radius, radius + 1.0, device=frames.device) ** 2 / (2 * sigma**2))
    taps = (taps / taps.sum()).to(frames.dtype)
    b, c, t, h, w = frames.shape
    x = F.pad(frames.permute(0, 2, 1, 3, 4).reshape(-1, 1, h, w), (radius,) * 4, mode="replicate")
    x = F.conv2d(F.conv2d(x, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))
    return x.view(b, t, c, h, w).permute(0, 2, 1, 3, 4).contiguous()


def make_fake(name: str, num: int, frames: int = 6, size: int = 32, *, seed: int = 0,
              context: int = CONTEXT, real: torch.Tensor | None = None) -> torch.Tensor:
    """The fake ``name`` (:data:`FAKES`) of ``render(num, frames, size, seed=seed)`` (pass
    ``real`` to reuse an already rendered real set for the pixel-level fakes)."""
    if name in ("rounded", "shrunk"):
        return render(num, frames, size, seed=seed, fake=name, context=context)
    if name not in FAKES:
        raise ValueError(f"`name` must be one of {FAKES}; got {name!r}")
    real = render(num, frames, size, seed=seed) if real is None else real
    out = real.clone()
    if name == "blur":
        out[:, :, context:] = gaussian_blur(real[:, :, context:], 0.5)
    elif name == "darker":
        out[:, :, context:] = ((real[:, :, context:] + 1) / 2 * 0.9) * 2 - 1
    else:  # "repeated"
        out[:, :, context + 1] = real[:, :, context]
    return out

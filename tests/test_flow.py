"""Tests for genloss.flow: the weight-free estimator recovers known motion, conventions match warp."""

from __future__ import annotations

import math

import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

import genloss as gl
from genloss import flow as fl

SIZE, MARGIN, PAD = 64, 12, 12


def _texture(n: int, size: int, *, cell: int = 4, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB texture in [-1, 1]: bicubic upsampling of coarse Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, size // cell, size // cell, generator=g)
    x = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (x / x.abs().amax()).clamp(-1, 1)


def _shifted_pair(dx: int, dy: int, *, cell: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two crops of one texture with a(x) = b(x + d): the flow from a to b is d everywhere."""
    big = _texture(2, SIZE + 2 * PAD, cell=cell, seed=seed)
    a = big[:, :, PAD : PAD + SIZE, PAD : PAD + SIZE]
    b = big[:, :, PAD - dy : PAD - dy + SIZE, PAD - dx : PAD - dx + SIZE]
    return a, b


def _interior(flow: torch.Tensor) -> torch.Tensor:
    return flow[..., MARGIN:-MARGIN, MARGIN:-MARGIN]


class TestBuildingBlocks:
    def test_gradients_are_central_differences(self) -> None:
        # central differences are exact on 3x - 2y + xy/2: d/dx = 3 + y/2, d/dy = -2 + x/2
        y, x = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
        image = (3 * x - 2 * y + 0.5 * x * y).double().view(1, 1, 6, 7)
        gx, gy = fl._gradients(image)
        inner = (..., slice(1, -1), slice(1, -1))
        torch.testing.assert_close(gx[inner], (3 + 0.5 * y).double()[1:-1, 1:-1].expand(1, 1, 4, 5), rtol=0, atol=1e-12)
        torch.testing.assert_close(gy[inner], (-2 + 0.5 * x).double()[1:-1, 1:-1].expand(1, 1, 4, 5), rtol=0, atol=1e-12)

    @pytest.mark.parametrize("sigma", [1.0, 2.0])
    def test_gaussian_blur_equals_scipy(self, sigma: float) -> None:
        # the sampled Gaussian normalised over ceil(2.5 sigma) taps each side, edges replicated
        x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        expected = scipy.ndimage.gaussian_filter(
            x.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=math.ceil(2.5 * sigma) / sigma
        )
        torch.testing.assert_close(fl._gaussian_blur(x, sigma), torch.from_numpy(expected), rtol=0, atol=1e-12)


class TestEstimateFlow:
    @pytest.mark.parametrize(("dx", "dy", "cell"), [(1, 0, 4), (0, -2, 4), (3, -2, 4), (-2, 3, 8), (6, 5, 8)])
    def test_recovers_integer_translation(self, dx: int, dy: int, cell: int) -> None:
        a, b = _shifted_pair(dx, dy, cell=cell)
        flow = fl.estimate_flow(a, b)
        assert flow.shape == (2, 2, SIZE, SIZE)
        error = (_interior(flow) - torch.tensor([dx, dy]).view(1, 2, 1, 1)).abs()
        assert error.max().item() < 0.5
        assert error.mean().item() < 0.05

    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("cell", [4, 8])
    def test_largest_claimed_translations(self, cell: int, seed: int) -> None:
        """The docstring's bounds at 64x64: 9 px per axis within 0.3 px in the interior, 10 px
        within 1 px.

        Fine textures (cell 4) are where plain coarse-to-fine LK fails: their coarse levels are
        nearly blank (before the coarse search and propagation, shift (9, 6) at seed 0 missed by
        6 px), and a pyramid one level shallower misses some 10-px shifts by many pixels. One
        call estimates 10 shifts x 2 textures."""
        at_9 = [(9, 6), (-9, 9), (6, -9), (-9, -4), (9, -9)]
        at_10 = [(10, 5), (-10, 10), (5, -10), (-10, -5), (10, -10)]
        pairs = [_shifted_pair(dx, dy, cell=cell, seed=seed) for dx, dy in at_9 + at_10]
        a, b = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        flow = fl.estimate_flow(a, b)
        truth = torch.tensor(at_9 + at_10, dtype=torch.float32).repeat_interleave(2, dim=0)
        error = (_interior(flow) - truth.view(-1, 2, 1, 1)).norm(dim=1).flatten(1).amax(dim=1)
        shifts = [s for s in at_9 + at_10 for _ in (0, 1)]
        assert error[:10].max().item() < 0.3, dict(zip(shifts[:10], error[:10].tolist()))
        assert error[10:].max().item() < 1.0, dict(zip(shifts[10:], error[10:].tolist()))

    def test_recovers_subpixel_translation(self) -> None:
        a = _texture(2, SIZE, cell=8, seed=1)
        true = torch.zeros(2, 2, SIZE, SIZE)
        true[:, 0], true[:, 1] = 1.5, -0.75
        b = gl.warp(a, -true)  # b(x) = a(x - d), so a(x) ≈ b(x + d)
        flow = fl.estimate_flow(a, b)
        assert (_interior(flow) - _interior(true)).abs().max().item() < 0.5

    def test_identical_frames_give_zero_flow(self) -> None:
        a = _texture(1, 32)
        assert fl.estimate_flow(a, a.clone()).abs().max().item() < 1e-4
        # flat frames match every candidate flow equally well: ties keep the current (zero) flow
        flat = torch.full((1, 3, 32, 32), 0.25)
        assert torch.equal(fl.estimate_flow(flat, flat.clone()), torch.zeros(1, 2, 32, 32))

    def test_convention_matches_warp(self) -> None:
        a, b = _shifted_pair(2, -1)
        flow = fl.estimate_flow(a, b)
        residual = _interior(gl.warp(b, flow) - a).abs().mean()
        assert residual.item() < 0.02 < _interior(b - a).abs().mean().item()

    def test_no_grad_dtype_and_batch_independence(self) -> None:
        a = _texture(2, 24, seed=3)
        b = gl.warp(a, torch.full((2, 2, 24, 24), 0.7))
        flow64 = fl.estimate_flow(a.double().requires_grad_(), b.double())
        assert flow64.dtype == torch.float64 and not flow64.requires_grad
        flow = fl.estimate_flow(a, b)
        torch.testing.assert_close(flow64.float(), flow, atol=1e-3, rtol=0)
        torch.testing.assert_close(fl.estimate_flow(a[:1], b[:1]), flow[:1], atol=1e-5, rtol=0)

    def test_errors(self) -> None:
        x = torch.zeros(1, 3, 16, 16)
        with pytest.raises(ValueError, match=r"`frames_a` must be a 4-D tensor"):
            fl.estimate_flow(torch.zeros(1, 3, 2, 16, 16), torch.zeros(1, 3, 2, 16, 16))
        with pytest.raises(ValueError, match=r"`frames_a` and `frames_b` must have the same shape"):
            fl.estimate_flow(x, torch.zeros(1, 3, 16, 8))
        with pytest.raises(ValueError, match=r"`levels` must be a positive int"):
            fl.estimate_flow(x, x, levels=0)
        with pytest.raises(ValueError, match=r"`iterations` must be a positive int"):
            fl.estimate_flow(x, x, iterations=0)
        with pytest.raises(ValueError, match=r"`window_sigma` and `eps` must be positive; got 2.0 and 0$"):
            fl.estimate_flow(x, x, eps=0)
        with pytest.raises(ValueError, match=r"`window_sigma` and `eps` must be positive; got -1 and 1e-05$"):
            fl.estimate_flow(x, x, window_sigma=-1)


def _translating_video(dx: int, dy: int, frames: int = 3) -> torch.Tensor:
    """v_{t+1}(x) = v_t(x - d): every backward flow is -d, every forward flow +d."""
    size, pad = 48, 4 * frames
    big = _texture(1, size + 2 * pad, seed=2)
    crops = [big[:, :, pad - t * dy : pad - t * dy + size, pad - t * dx : pad - t * dx + size] for t in range(frames)]
    return torch.stack(crops, dim=2)


class TestVideoFlow:
    def test_backward_and_forward_directions(self) -> None:
        video = _translating_video(2, -1)
        backward = fl.video_flow(video)
        forward = fl.video_flow(video, direction="forward")
        assert backward.shape == forward.shape == (1, 2, 2, 48, 48)
        d = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1, 1)
        assert (_interior(backward) + d).abs().max().item() < 0.5
        assert (_interior(forward) - d).abs().max().item() < 0.5

    def test_feeds_flow_warping_loss(self) -> None:
        video = _translating_video(1, 1)
        flow = fl.video_flow(video)
        wrong = gl.flow_warping_loss(video, torch.zeros_like(flow))
        right = gl.flow_warping_loss(video, flow)
        assert right.item() < 0.1 * wrong.item()

    def test_custom_estimator_one_call(self) -> None:
        calls = []

        def estimator(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            calls.append(a.shape[0])
            return torch.ones(a.shape[0], 2, *a.shape[-2:])

        video = torch.zeros(2, 3, 4, 8, 8)
        assert torch.equal(fl.video_flow(video, estimator), torch.ones(2, 2, 3, 8, 8))
        assert calls == [6]

    def test_flow_and_mask(self) -> None:
        video = _translating_video(1, -1)
        flow, mask = fl.video_flow_and_mask(video)
        assert flow.shape == (1, 2, 2, 48, 48) and mask.shape == (1, 1, 2, 48, 48)
        assert _interior(mask).min().item() == 1.0  # consistent motion: nothing occluded inside
        torch.testing.assert_close(flow, fl.video_flow(video), atol=1e-5, rtol=0)

    def test_flow_and_mask_drops_motion_boundaries(self) -> None:
        # A stub estimator: rows 0-5 move 2 px right, rows 6-11 stand still, and the two
        # directions agree exactly, so only the motion-boundary test drops pixels (row 5).
        def estimator(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            flow = torch.zeros(a.shape[0], 2, 12, 12)
            flow[:, 0, :6] = 2.0
            half = a.shape[0] // 2  # first half: the backward flows, second half: forward
            flow[half:] *= -1
            return flow

        video = torch.zeros(2, 3, 3, 12, 12)
        flow, mask = fl.video_flow_and_mask(video, estimator)
        expected = torch.ones(2, 1, 2, 12, 12)
        expected[..., 5, :] = 0.0
        assert torch.equal(mask, expected)
        _, plain = fl.video_flow_and_mask(video, estimator, motion_boundaries=False)
        assert torch.equal(plain, torch.ones(2, 1, 2, 12, 12))
        assert torch.equal(mask, gl.occlusion_mask(flow, -flow))

    def test_mask_lies_on_the_backward_flows_grid(self) -> None:
        # Stub flows that disagree: backward (t+1 -> t) moves rows 0-5 by +2 px, forward moves
        # rows 0-6 by -2 px. On the backward flow's grid (frame t+1, where the warping residual
        # is) row 5 is its motion boundary and row 6 fails the forward-backward check; on the
        # forward flow's grid only row 6 would be dropped.
        def estimator(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            flow = torch.zeros(a.shape[0], 2, 12, 12)
            half = a.shape[0] // 2  # first half: the backward flows, second half: forward
            flow[:half, 0, :6] = 2.0
            flow[half:, 0, :7] = -2.0
            return flow

        flow, mask = fl.video_flow_and_mask(torch.zeros(1, 3, 2, 12, 12), estimator)
        assert torch.equal(flow, estimator(torch.zeros(2, 3, 12, 12), None)[:1].unsqueeze(2))
        expected = torch.ones(1, 1, 1, 12, 12)
        expected[..., 5:7, :] = 0.0
        assert torch.equal(mask, expected)

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"`video` must have at least 2 frames"):
            fl.video_flow(torch.zeros(1, 3, 1, 8, 8))
        with pytest.raises(ValueError, match=r"`direction` must be one of"):
            fl.video_flow(torch.zeros(1, 3, 2, 8, 8), direction="both")
        with pytest.raises(ValueError, match=r"must return a flow of shape \(N, 2, H, W\) = \(1, 2, 8, 8\)"):
            fl.video_flow(torch.zeros(1, 3, 2, 8, 8), lambda a, b: torch.zeros(1, 3, 8, 8))

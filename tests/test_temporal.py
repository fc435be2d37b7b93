"""Tests for genloss.temporal: warp convention, known answers, independent formulas, errors."""

from __future__ import annotations

import math
import numpy as np
import pytest
import torch

import genloss as gl
from genloss import temporal as T
from lpips_reference import pairwise, reference, write_trunk


def _video(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """float64 against an independent formula: equal up to summation order."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)


def _mean_abs_lpips(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Differentiable stand-in for LPIPS with the same calling convention: (N,) for "none"."""
    values = (x - y).abs().flatten(1).mean(dim=1)
    return values if reduction == "none" else values.mean()


def _translated_clip(dx: int, dy: int, frames: int = 3, size: int = 12) -> torch.Tensor:
    """Frame t is a crop of one large image shifted by (t*dx, t*dy): v_{t+1}(x) = v_t(x - d)."""
    big = _video(1, 2, size + 2 * frames * 4, size + 2 * frames * 4, seed=3)
    o = frames * 4
    crops = [big[:, :, o - t * dy : o - t * dy + size, o - t * dx : o - t * dx + size] for t in range(frames)]
    return torch.stack(crops, dim=2)  # (1, 2, T, size, size)


class TestWarp:
    def test_hand_built_example(self) -> None:
        img = torch.arange(12.0).view(1, 1, 3, 4)
        flow = torch.zeros(1, 2, 3, 4)
        flow[0, 0, 1, 2] = -2.0  # pixel (y=1, x=2) reads x = 0
        flow[0, 1, 0, 3] = 2.0  # pixel (y=0, x=3) reads y = 2
        flow[0, 0, 2, 1] = 0.5  # pixel (y=2, x=1) reads halfway between x=1 and x=2
        out = T.warp(img, flow)
        expected = img.clone()
        expected[0, 0, 1, 2] = img[0, 0, 1, 0]
        expected[0, 0, 0, 3] = img[0, 0, 2, 3]
        expected[0, 0, 2, 1] = 0.5 * (img[0, 0, 2, 1] + img[0, 0, 2, 2])
        torch.testing.assert_close(out, expected)

    def test_zero_flow_is_identity(self) -> None:
        video = _video(2, 3, 4, 5, 7)
        torch.testing.assert_close(T.warp(video, torch.zeros(2, 2, 4, 5, 7)), video)

    @pytest.mark.parametrize(("dx", "dy"), [(1, 0), (0, -2), (2, 1), (-1, -1)])
    def test_integer_translation_is_exact_in_interior(self, dx: int, dy: int) -> None:
        img = _video(2, 3, 9, 10)
        flow = torch.zeros(2, 2, 9, 10)
        flow[:, 0], flow[:, 1] = dx, dy
        out = T.warp(img, flow)
        # out[y, x] = img[y + dy, x + dx] wherever that lies inside the frame.
        ys, xs = slice(max(0, -dy), 9 - max(0, dy)), slice(max(0, -dx), 10 - max(0, dx))
        shifted = torch.roll(img, shifts=(-dy, -dx), dims=(2, 3))
        # Exact up to float32 rounding of the pixel -> [-1, 1] -> pixel round trip.
        torch.testing.assert_close(out[..., ys, xs], shifted[..., ys, xs], atol=1e-6, rtol=0)
        assert not torch.allclose(out, img)

    def test_matches_independent_bilinear_formula(self) -> None:
        img = _video(1, 1, 6, 7, dtype=torch.float64)
        flow = _video(1, 2, 6, 7, seed=1, dtype=torch.float64) * 0.9  # stays near the frame
        out = T.warp(img, flow, padding_mode="border")
        expected = torch.empty_like(out)
        for y in range(6):
            for x in range(7):
                sx = min(max(x + flow[0, 0, y, x].item(), 0.0), 6.0)
                sy = min(max(y + flow[0, 1, y, x].item(), 0.0), 5.0)
                x0, y0 = min(int(sx), 5), min(int(sy), 4)
                fx, fy = sx - x0, sy - y0
                p = img[0, 0]
                expected[0, 0, y, x] = (
                    (1 - fx) * (1 - fy) * p[y0, x0]
                    + fx * (1 - fy) * p[y0, x0 + 1]
                    + (1 - fx) * fy * p[y0 + 1, x0]
                    + fx * fy * p[y0 + 1, x0 + 1]
                )
        # float64: grid_sample's round trip through [-1, 1] coordinates costs ~1e-15.
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)

    def test_bicubic_matches_independent_keys_kernel(self) -> None:
        # Keys' cubic convolution with a = -0.75 (what grid_sample's bicubic mode uses), 4 taps per
        # axis; "border" padding clamps each tap that falls outside the frame to the nearest edge
        # pixel (the sample point itself is not clamped), which the frame's outer pixels exercise.
        def keys(d: float, a: float = -0.75) -> float:
            d = abs(d)
            if d <= 1:
                return (a + 2) * d**3 - (a + 3) * d**2 + 1
            return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a if d < 2 else 0.0

        h, w = 10, 11
        img = _video(1, 1, h, w, dtype=torch.float64)
        flow = _video(1, 2, h, w, seed=3, dtype=torch.float64) * 1.3
        out = T.warp(img, flow, mode="bicubic")
        p = img[0, 0]
        expected = torch.empty_like(out)
        for y in range(h):
            for x in range(w):
                sx, sy = x + flow[0, 0, y, x].item(), y + flow[0, 1, y, x].item()
                x0, y0 = math.floor(sx), math.floor(sy)
                total = 0.0
                for j in range(y0 - 1, y0 + 3):
                    for i in range(x0 - 1, x0 + 3):
                        tap = p[min(max(j, 0), h - 1), min(max(i, 0), w - 1)].item()
                        total += keys(sy - j) * keys(sx - i) * tap
                expected[0, 0, y, x] = total
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)

    def test_bicubic_keeps_texture_bilinear_blurs(self) -> None:
        # Stripes of period 4 (1, 1, -1, -1, ...) shifted by half a pixel. Inside a stripe the Keys
        # taps at t = 1/2, (-3/32, 19/32, 19/32, -3/32), read (-1, 1, 1, -1): 44/32 = 1.375, where
        # bilinear reads (1 + 1) / 2 = 1; across a stripe edge both give 0.
        stripes = torch.where(torch.arange(16) % 4 < 2, 1.0, -1.0)
        img = stripes.expand(1, 1, 8, 16).clone()
        flow = torch.zeros(1, 2, 8, 16)
        flow[:, 0] = 0.5
        expected = {"bilinear": torch.tensor([-1.0, 0.0, 1.0, 0.0]), "bicubic": torch.tensor([-1.375, 0.0, 1.375, 0.0])}
        for mode, period in expected.items():
            row = T.warp(img, flow, mode=mode)[0, 0, 4, 2:-2]  # x = 2 samples 2.5, inside a -1 stripe
            torch.testing.assert_close(row, period.repeat(3), atol=1e-5, rtol=0)

    def test_bad_mode_names_the_argument(self) -> None:
        with pytest.raises(ValueError, match="mode"):
            T.warp(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 4), mode="nearest")

    def test_zeros_padding_outside_frame(self) -> None:
        img = torch.ones(1, 1, 3, 3)
        flow = torch.full((1, 2, 3, 3), 5.0)
        assert torch.equal(T.warp(img, flow, padding_mode="zeros"), torch.zeros(1, 1, 3, 3))
        assert torch.equal(T.warp(img, flow, padding_mode="border"), img)

    def test_video_equals_frame_by_frame(self) -> None:
        video = _video(2, 3, 3, 6, 6)
        flow = _video(2, 2, 3, 6, 6, seed=2) * 2
        out = T.warp(video, flow)
        for t in range(3):
            torch.testing.assert_close(out[:, :, t], T.warp(video[:, :, t], flow[:, :, t]))

    def test_half_precision_keeps_dtype(self) -> None:
        img = _video(1, 3, 5, 5)
        flow = torch.ones(1, 2, 5, 5)
        out = T.warp(img.to(torch.bfloat16), flow.to(torch.bfloat16))
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), T.warp(img, flow), atol=2e-2, rtol=0)

    def test_gradcheck(self) -> None:
        img = _video(1, 2, 4, 5, dtype=torch.float64).requires_grad_()
        # Non-integer sample positions: bilinear sampling is not differentiable at pixel centres.
        flow = (0.3 + 0.4 * _video(1, 2, 4, 5, seed=1, dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, f: T.warp(a, f), (img, flow))

    def test_bad_flow(self) -> None:
        with pytest.raises(ValueError, match=r"`flow` must have shape \(B, 2, H, W\) = \(1, 2, 4, 4\)"):
            T.warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
        with pytest.raises(ValueError, match=r"`flow` must have shape \(B, 2, T, H, W\)"):
            T.warp(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 2, 4, 4))
        with pytest.raises(ValueError, match=r"`flow` must have shape \(B, 2, H, W\) = \(2, 2, 4, 4\).*got \(1, 2, 4, 4\)"):
            T.warp(torch.zeros(2, 3, 4, 4), torch.zeros(1, 2, 4, 4))  # no broadcasting over the batch
        with pytest.raises(ValueError, match=r"`padding_mode` must be one of"):
            T.warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), padding_mode="wrap")
        with pytest.raises(ValueError, match=r"`frames` must be a 4-D or 5-D tensor"):
            T.warp(torch.zeros(3, 4, 4), torch.zeros(1, 2, 4, 4))


def _splat_by_loops(frames: torch.Tensor, flow: torch.Tensor, z: torch.Tensor | None) -> tuple:
    """Softmax splatting pixel by pixel, from its definition (Niklaus & Liu 2020, eq. 4)."""
    n, c, h, w = frames.shape
    num = torch.zeros(n, c, h, w, dtype=torch.float64)
    den = torch.zeros(n, h, w, dtype=torch.float64)
    cov = torch.zeros(n, h, w, dtype=torch.float64)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                tx, ty = x + float(flow[b, 0, y, x]), y + float(flow[b, 1, y, x])
                e = float(torch.exp(z[b, 0, y, x])) if z is not None else 1.0
                for qx in (int(np.floor(tx)), int(np.floor(tx)) + 1):
                    for qy in (int(np.floor(ty)), int(np.floor(ty)) + 1):
                        share = max(0.0, 1 - abs(tx - qx)) * max(0.0, 1 - abs(ty - qy))
                        if 0 <= qx < w and 0 <= qy < h:
                            num[b, :, qy, qx] += share * e * frames[b, :, y, x]
                            den[b, qy, qx] += share * e
                            cov[b, qy, qx] += share
    out = torch.where(den[:, None] > 0, num / den[:, None].clamp_min(1e-300), torch.zeros(()))
    return out, cov[:, None]


class TestSplat:
    @pytest.mark.parametrize("with_importance", [False, True])
    def test_equals_the_definition_pixel_by_pixel(self, with_importance: bool) -> None:
        frames = _video(2, 3, 5, 6, seed=1, dtype=torch.float64)
        flow = _video(2, 2, 5, 6, seed=2, dtype=torch.float64) * 2.5  # sub-pixel, some leave the frame
        z = _video(2, 1, 5, 6, seed=3, dtype=torch.float64) * 3 if with_importance else None
        out, coverage = gl.splat(frames, flow, z)
        expected_out, expected_coverage = _splat_by_loops(frames, flow, z)
        torch.testing.assert_close(out, expected_out, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(coverage, expected_coverage, rtol=1e-10, atol=1e-12)

    def test_integer_flow_moves_pixels_and_leaves_a_hole(self) -> None:
        img = _video(1, 2, 4, 5, seed=4)
        flow = torch.zeros(1, 2, 4, 5)
        flow[:, 0], flow[:, 1] = 2.0, -1.0  # two to the right, one up
        out, coverage = gl.splat(img, flow)
        expected = torch.zeros_like(img)
        expected[:, :, :3, 2:] = img[:, :, 1:, :3]
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(coverage, (expected[:, :1] != 0).float())

    def test_a_constant_flow_is_the_backward_warp_by_its_opposite(self) -> None:
        # p lands at p + d, shared bilinearly: target q gets the bilinear sample at q - d.
        img = _video(1, 3, 8, 8, seed=5, dtype=torch.float64)
        flow = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
        flow[:, 0], flow[:, 1] = 0.3, 0.6
        out, coverage = gl.splat(img, flow)
        backward = gl.warp(img, -flow)
        _close(out[..., 1:, 1:], backward[..., 1:, 1:])  # the first row and column are partly holes
        _close(coverage[..., 1:, 1:], torch.ones_like(coverage[..., 1:, 1:]))

    def test_the_more_important_pixel_wins_a_collision(self) -> None:
        img = torch.tensor([[[[1.0, -1.0]]]])  # (1, 1, 1, 2)
        flow = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # the left pixel lands on the right one
        z = torch.tensor([[[[0.0, 0.0]]]])
        assert gl.splat(img, flow, z)[0][0, 0, 0, 1].item() == pytest.approx(0.0)  # equal: the average
        z = torch.tensor([[[[6.0, 0.0]]]])
        expected = (np.exp(6.0) - 1) / (np.exp(6.0) + 1)
        assert gl.splat(img, flow, z)[0][0, 0, 0, 1].item() == pytest.approx(expected, rel=1e-6)

    def test_video_is_frame_by_frame(self) -> None:
        video = _video(2, 3, 3, 6, 6, seed=6)
        flow = _video(2, 2, 3, 6, 6, seed=7) * 2
        z = _video(2, 1, 3, 6, 6, seed=8)
        out, coverage = gl.splat(video, flow, z)
        for t in range(3):
            out_t, coverage_t = gl.splat(video[:, :, t], flow[:, :, t], z[:, :, t])
            torch.testing.assert_close(out[:, :, t], out_t)
            torch.testing.assert_close(coverage[:, :, t], coverage_t)

    def test_gradients_reach_frames_flow_and_importance(self) -> None:
        frames = _video(1, 2, 4, 4, seed=9, dtype=torch.float64).requires_grad_()
        flow = (_video(1, 2, 4, 4, seed=10, dtype=torch.float64) * 0.4).requires_grad_()  # no pixel on a grid line
        z = _video(1, 1, 4, 4, seed=11, dtype=torch.float64).requires_grad_()
        assert torch.autograd.gradcheck(lambda *a: gl.splat(*a)[0].sum() + gl.splat(*a)[1].sum(), (frames, flow, z))

    def test_half_precision_is_computed_in_float32(self) -> None:
        img = _video(1, 3, 6, 6, seed=12)
        flow = _video(1, 2, 6, 6, seed=13) * 2
        out, coverage = gl.splat(img.half(), flow.half())
        assert out.dtype == coverage.dtype == torch.float16
        expected, _ = gl.splat(img.half().float(), flow.half().float())
        torch.testing.assert_close(out.float(), expected, atol=1e-3, rtol=1e-3)

    def test_errors_name_the_argument(self) -> None:
        img = torch.zeros(1, 3, 4, 4)
        with pytest.raises(ValueError, match="`flow` must have shape"):
            gl.splat(img, torch.zeros(1, 2, 4, 5))
        with pytest.raises(ValueError, match="`importance` must have shape"):
            gl.splat(img, torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
        with pytest.raises(TypeError, match="importance"):
            gl.splat(img, torch.zeros(1, 2, 4, 4), [0.0])


class TestTemporalDifference:
    def test_independent_formula(self) -> None:
        pred, target = _video(2, 3, 4, 5, 5, dtype=torch.float64), _video(2, 3, 4, 5, 5, seed=1, dtype=torch.float64)
        per_clip = [
            torch.stack(
                [
                    ((pred[b, :, t] - pred[b, :, t - 1]) - (target[b, :, t] - target[b, :, t - 1])).abs().mean()
                    for t in range(1, 4)
                ]
            ).mean()
            for b in range(2)
        ]
        expected = torch.stack(per_clip)
        _close(T.temporal_difference_loss(pred, target, reduction="none"), expected)
        _close(T.temporal_difference_loss(pred, target), expected.mean())
        _close(T.temporal_difference_loss(pred, target, reduction="sum"), expected.sum())

    def test_constant_offset_costs_nothing(self) -> None:
        target = _video(2, 3, 4, 5, 5)
        assert T.temporal_difference_loss(target + 0.5, target).item() == pytest.approx(0.0, abs=1e-6)

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"`pred` must have at least 2 frames"):
            T.temporal_difference_loss(torch.zeros(1, 3, 1, 4, 4), torch.zeros(1, 3, 1, 4, 4))
        with pytest.raises(ValueError, match=r"`pred` must be a 5-D tensor"):
            T.temporal_difference_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
        with pytest.raises(ValueError, match=r"`reduction` must be one of"):
            T.temporal_difference_loss(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 3, 2, 4, 4), reduction="avg")


class TestTemporalSmoothness:
    def test_first_order_formula(self) -> None:
        video = _video(2, 1, 3, 2, 2, dtype=torch.float64)
        expected = torch.stack([(video[b, :, 1:] - video[b, :, :-1]).abs().mean() for b in range(2)])
        _close(T.temporal_smoothness_loss(video, reduction="none"), expected)

    def test_second_order_formula(self) -> None:
        video = _video(2, 3, 5, 4, 4, dtype=torch.float64)
        second = video[:, :, 2:] - 2 * video[:, :, 1:-1] + video[:, :, :-2]
        expected = second.abs().flatten(1).mean(1)
        _close(T.temporal_smoothness_loss(video, order=2, reduction="none"), expected)

    def test_linear_ramp_has_zero_second_order(self) -> None:
        base, slope = _video(2, 3, 1, 6, 6), _video(2, 3, 1, 6, 6, seed=1) * 0.1
        ramp = base + slope * torch.arange(5.0).view(1, 1, 5, 1, 1)
        assert T.temporal_smoothness_loss(ramp, order=2).item() == pytest.approx(0.0, abs=1e-6)
        assert T.temporal_smoothness_loss(ramp, order=1).item() == pytest.approx(slope.abs().mean().item(), rel=1e-5)

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"`video` must have at least 3 frames"):
            T.temporal_smoothness_loss(torch.zeros(1, 3, 2, 4, 4), order=2)
        with pytest.raises(ValueError, match=r"`order` must be 1 or 2; got 3"):
            T.temporal_smoothness_loss(torch.zeros(1, 3, 4, 4, 4), order=3)
        with pytest.raises(ValueError, match=r"`order` must be 1 or 2"):
            T.TemporalSmoothnessLoss(order=0)
        with pytest.raises(TypeError, match=r"`video` must be a floating-point tensor"):
            T.temporal_smoothness_loss(torch.zeros(1, 3, 4, 4, 4, dtype=torch.long))


class TestFlowSmoothness:
    @staticmethod
    def _by_loops(flow: np.ndarray, image: np.ndarray | None, lam: float) -> np.ndarray:
        """Per sample, pixel by pixel: mean of w_x |f[y, x+1] - f[y, x]| plus mean of the rows'."""
        out = []
        for b in range(flow.shape[0]):
            ex, ey = [], []
            for c in range(2):
                for t in np.ndindex(*flow.shape[2:-2]):
                    f = flow[(b, c, *t)]
                    g = None if image is None else image[b][(slice(None), *t)]  # (C, H, W)
                    for y in range(f.shape[0]):
                        for x in range(f.shape[1]):
                            if x + 1 < f.shape[1]:
                                w = 1.0 if g is None else np.exp(-lam * np.abs(g[:, y, x + 1] - g[:, y, x]).mean())
                                ex.append(w * abs(f[y, x + 1] - f[y, x]))
                            if y + 1 < f.shape[0]:
                                w = 1.0 if g is None else np.exp(-lam * np.abs(g[:, y + 1, x] - g[:, y, x]).mean())
                                ey.append(w * abs(f[y + 1, x] - f[y, x]))
            out.append(np.mean(ex) + np.mean(ey))
        return np.array(out)

    @pytest.mark.parametrize("video", [False, True])
    def test_equals_the_definition_pixel_by_pixel(self, video: bool) -> None:
        shape = (2, 2, 3, 4, 5) if video else (2, 2, 4, 5)
        flow = _video(*shape, dtype=torch.float64) * 3
        image = _video(2, 3, *shape[2:], seed=1, dtype=torch.float64)
        _close(T.flow_smoothness_loss(flow, reduction="none"),
               torch.from_numpy(self._by_loops(flow.numpy(), None, 0.0)))
        _close(T.flow_smoothness_loss(flow, image=image, edge_weight=2.5, reduction="none"),
               torch.from_numpy(self._by_loops(flow.numpy(), image.numpy(), 2.5)))
        per_sample = self._by_loops(flow.numpy(), None, 0.0)
        assert T.flow_smoothness_loss(flow).item() == pytest.approx(per_sample.mean(), rel=1e-12)
        assert T.flow_smoothness_loss(flow, reduction="sum").item() == pytest.approx(per_sample.sum(), rel=1e-12)
        assert gl.FlowSmoothnessLoss(edge_weight=2.5)(flow, image).item() == pytest.approx(
            self._by_loops(flow.numpy(), image.numpy(), 2.5).mean(), rel=1e-12)

    def test_known_answers(self) -> None:
        constant = torch.full((1, 2, 6, 6), 1.5)
        assert T.flow_smoothness_loss(constant).item() == 0.0  # a rigid translation costs nothing
        step = torch.zeros(1, 2, 4, 4)
        step[:, 0, :, 2:] = 2.0  # x flow jumps by 2 px between columns 1 and 2, on every row
        # e_x: a jump of 2 in each of the 4 rows, over 2 channels x 4 rows x 3 differences; e_y: 0
        assert T.flow_smoothness_loss(step).item() == pytest.approx(4 * 2 / 24)
        edge = torch.zeros(1, 1, 4, 4)
        edge[..., 2:] = 1.0  # the image has an edge where the flow jumps: the jump costs exp(-λ)
        assert T.flow_smoothness_loss(step, image=edge, edge_weight=3.0).item() == pytest.approx(
            4 * 2 * math.exp(-3.0) / 24)
        assert T.flow_smoothness_loss(step, image=edge, edge_weight=0.0).item() == pytest.approx(4 * 2 / 24)

    def test_gradient_reaches_the_flow_not_the_image(self) -> None:
        flow = _video(1, 2, 5, 5, dtype=torch.float64).requires_grad_(True)
        image = _video(1, 3, 5, 5, seed=2, dtype=torch.float64).requires_grad_(True)
        T.flow_smoothness_loss(flow, image=image, edge_weight=1.0).backward()
        assert flow.grad is not None and flow.grad.abs().sum() > 0 and image.grad is None

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"`flow` must have 2 channels .* got shape \(1, 3, 4, 4\)"):
            T.flow_smoothness_loss(torch.zeros(1, 3, 4, 4))
        with pytest.raises(ValueError, match=r"`flow` must be at least 2x2 pixels"):
            T.flow_smoothness_loss(torch.zeros(1, 2, 1, 4))
        with pytest.raises(ValueError, match=r"`image` must be on the flow's grid: shape \(B, C, 4, 4\) with B=1; "
                                             r"got \(1, 3, 5, 5\)"):
            T.flow_smoothness_loss(torch.zeros(1, 2, 4, 4), image=torch.zeros(1, 3, 5, 5), edge_weight=1.0)
        with pytest.raises(ValueError, match=r"`edge_weight` must be a number >= 0; got -1"):
            T.flow_smoothness_loss(torch.zeros(1, 2, 4, 4), edge_weight=-1)
        with pytest.raises(ValueError, match=r"`edge_weight` must be a number >= 0; got True"):
            gl.FlowSmoothnessLoss(edge_weight=True)
        with pytest.raises(TypeError, match=r"`flow` must be a floating-point tensor"):
            T.flow_smoothness_loss(torch.zeros(1, 2, 4, 4, dtype=torch.long))
        with pytest.raises(ValueError, match=r"`reduction` must be"):
            T.flow_smoothness_loss(torch.zeros(1, 2, 4, 4), reduction="max")


class TestFlowWarpingLoss:
    def test_translated_clip_right_flow_zero_wrong_flow_not(self) -> None:
        dx, dy = 1, -1
        video = _translated_clip(dx, dy)  # v_{t+1}(x) = v_t(x - d): backward flow is -d
        flow = torch.zeros(1, 2, 2, 12, 12)
        flow[:, 0], flow[:, 1] = -dx, -dy
        # Only pixels whose source stays inside frame t are exact: mask the entering border.
        mask = torch.zeros(1, 1, 1, 12, 12)
        mask[..., 1:-1, 1:-1] = 1
        assert T.flow_warping_loss(video, flow, mask=mask).item() == pytest.approx(0.0, abs=1e-6)
        assert T.flow_warping_loss(video, -flow, mask=mask).item() > 0.1
        assert T.flow_warping_loss(video, torch.zeros_like(flow), mask=mask).item() > 0.1

    def test_independent_formula_with_mask(self) -> None:
        video = _video(2, 3, 3, 5, 5, dtype=torch.float64)
        flow = _video(2, 2, 2, 5, 5, seed=1, dtype=torch.float64) * 1.5
        mask = (_video(2, 1, 2, 5, 5, seed=2) > 0).double()
        got = T.flow_warping_loss(video, flow, mask=mask, reduction="none")
        for b in range(2):
            num, den = 0.0, 0.0
            for t in range(2):
                warped = T.warp(video[b : b + 1, :, t], flow[b : b + 1, :, t])
                e = (video[b : b + 1, :, t + 1] - warped).abs()
                num += (e * mask[b : b + 1, :, t]).sum()
                den += mask[b : b + 1, :, t].sum() * 3
            _close(got[b], num / den)
        unmasked = T.flow_warping_loss(video, flow, reduction="none")
        _close(unmasked, (video[:, :, 1:] - T.warp(video[:, :, :-1], flow)).abs().flatten(1).mean(1))

    def test_all_zero_mask_gives_zero(self) -> None:
        video = _video(1, 3, 2, 4, 4)
        loss = T.flow_warping_loss(video, torch.zeros(1, 2, 1, 4, 4), mask=torch.zeros(1, 1, 1, 1, 1))
        assert loss.item() == 0.0

    def test_errors(self) -> None:
        video = torch.zeros(2, 3, 4, 8, 8)
        with pytest.raises(ValueError, match=r"`flow` must have shape .*\(2, 2, 3, 8, 8\).*got \(2, 2, 4, 8, 8\)"):
            T.flow_warping_loss(video, torch.zeros(2, 2, 4, 8, 8))
        with pytest.raises(ValueError, match=r"`flow` must have shape.*got \(2, 3, 3, 8, 8\)"):
            T.flow_warping_loss(video, torch.zeros(2, 3, 3, 8, 8))
        with pytest.raises(ValueError, match=r"`flow` must have shape.*got \(2, 2, 3, 4, 4\)"):
            T.flow_warping_loss(video, torch.zeros(2, 2, 3, 4, 4))
        with pytest.raises(ValueError, match=r"`mask` must broadcast to the shape of `video\[:, :, 1:\]`"):
            T.flow_warping_loss(video, torch.zeros(2, 2, 3, 8, 8), mask=torch.ones(2, 1, 4, 8, 8))
        with pytest.raises(ValueError, match=r"`video` must have at least 2 frames"):
            T.flow_warping_loss(torch.zeros(2, 3, 1, 8, 8), torch.zeros(2, 2, 0, 8, 8))


class TestOcclusionMask:
    def test_consistent_flows_all_ones(self) -> None:
        forward = torch.zeros(2, 2, 3, 6, 6)
        forward[:, 0], forward[:, 1] = 2.0, -1.0
        mask = T.occlusion_mask(forward, -forward)
        assert mask.shape == (2, 1, 3, 6, 6)
        assert torch.equal(mask, torch.ones_like(mask))
        assert torch.equal(T.occlusion_mask(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)), torch.ones(1, 1, 4, 4))

    def test_inconsistent_flows_all_zeros(self) -> None:
        forward = torch.full((2, 2, 6, 6), 2.0)
        mask = T.occlusion_mask(forward, forward)  # should be -forward
        assert torch.equal(mask, torch.zeros(2, 1, 6, 6))

    def test_independent_formula(self) -> None:
        forward = _video(1, 2, 5, 5, dtype=torch.float64) * 2
        backward = -forward + 0.6 * _video(1, 2, 5, 5, seed=1, dtype=torch.float64)
        got = T.occlusion_mask(forward, backward, alpha=0.05, beta=0.3, motion_boundaries=False)
        b_at = T.warp(backward, forward)
        lhs = ((forward + b_at) ** 2).sum(1, keepdim=True)
        rhs = 0.05 * ((forward**2).sum(1, keepdim=True) + (b_at**2).sum(1, keepdim=True)) + 0.3
        assert torch.equal(got, (lhs < rhs).double())
        assert 0 < got.sum() < got.numel()  # the example exercises both outcomes

    def test_motion_boundary_known_answer(self) -> None:
        # Rows 0-5 move 2 px right, rows 6-11 stand still: the two directions agree everywhere,
        # so only the motion-boundary test can drop a pixel. With forward differences
        # u[y + 1] - u[y], the jump shows in row 5 only (Lai et al.'s detect_occlusion).
        fw = torch.zeros(1, 2, 12, 12)
        fw[:, 0, :6] = 2.0
        expected = torch.ones(1, 1, 12, 12)
        expected[:, :, 5] = 0.0
        assert torch.equal(T.occlusion_mask(fw, -fw), expected)
        assert torch.equal(T.occlusion_mask(fw, -fw, motion_boundaries=False), torch.ones(1, 1, 12, 12))
        # The same jump across columns: column 5, and the last column has no forward neighbour.
        fw_t = fw.transpose(-1, -2).flip(1)  # v jumps between columns 5 and 6
        assert torch.equal(T.occlusion_mask(fw_t, -fw_t), expected.transpose(-1, -2))

    def test_motion_boundary_threshold_scales_with_magnitude(self) -> None:
        # |∇w|^2 = 1 against 0.01 |w|^2 + 0.002: a boundary on a slow flow, none on a fast one.
        slow = torch.zeros(1, 2, 4, 4)
        slow[:, 0, :, 2:] = 1.0  # u jumps 0 -> 1 between columns 1 and 2
        assert T.occlusion_mask(slow, -slow)[0, 0, :, 1].sum() == 0
        fast = slow + torch.tensor([12.0, 0.0]).view(1, 2, 1, 1)  # |w|^2 >= 144: 1.44 > 1
        assert torch.equal(T.occlusion_mask(fast, -fast, beta=10.0), torch.ones(1, 1, 4, 4))

    def test_matches_numpy_transcription_of_lai_detect_occlusion(self) -> None:
        """Forward-backward check and motion boundaries, pixel by pixel in numpy (float64)."""
        g = torch.Generator().manual_seed(5)
        # Piecewise-constant flows (boundaries) plus noise (forward-backward failures).
        fw = torch.zeros(2, 2, 3, 9, 10, dtype=torch.float64)
        fw[:, 0, :, :, 5:] = 1.5
        fw[:, 1, :, 4:] -= 0.8
        fw += 0.3 * torch.randn(fw.shape, generator=g, dtype=torch.float64)
        bw = -fw + 0.5 * torch.randn(fw.shape, generator=g, dtype=torch.float64)
        got = T.occlusion_mask(fw, bw).numpy()

        f, b = fw.numpy(), bw.numpy()
        h, w = f.shape[-2:]
        expected = np.ones((2, 1, 3, h, w))
        boundary_only = fb_only = 0
        for n in range(2):
            for t in range(3):
                u, v = f[n, 0, t], f[n, 1, t]
                for y in range(h):
                    for x in range(w):
                        # Backward flow sampled bilinearly at x + w_f(x), clamped to the frame.
                        sx = min(max(x + u[y, x], 0.0), w - 1.0)
                        sy = min(max(y + v[y, x], 0.0), h - 1.0)
                        x0, y0 = min(int(sx), w - 2), min(int(sy), h - 2)
                        ax, ay = sx - x0, sy - y0
                        bs = [
                            (1 - ax) * (1 - ay) * b[n, c, t, y0, x0] + ax * (1 - ay) * b[n, c, t, y0, x0 + 1]
                            + (1 - ax) * ay * b[n, c, t, y0 + 1, x0] + ax * ay * b[n, c, t, y0 + 1, x0 + 1]
                            for c in (0, 1)
                        ]
                        fw_sq = u[y, x] ** 2 + v[y, x] ** 2
                        mismatch = (u[y, x] + bs[0]) ** 2 + (v[y, x] + bs[1]) ** 2
                        consistent = mismatch < 0.01 * (fw_sq + bs[0] ** 2 + bs[1] ** 2) + 0.5
                        # Forward differences, zero in the last column / row.
                        grad = 0.0
                        for comp in (u, v):
                            if x + 1 < w:
                                grad += (comp[y, x + 1] - comp[y, x]) ** 2
                            if y + 1 < h:
                                grad += (comp[y + 1, x] - comp[y, x]) ** 2
                        boundary = grad > 0.01 * fw_sq + 0.002
                        expected[n, 0, t, y, x] = float(consistent and not boundary)
                        boundary_only += consistent and boundary
                        fb_only += (not consistent) and not boundary
        np.testing.assert_array_equal(got, expected)
        assert boundary_only > 0 and fb_only > 0 and 0 < expected.sum() < expected.size

    def test_motion_boundaries_stay_within_frames(self) -> None:
        # A flow that changes only over time has no spatial gradient: no boundary anywhere.
        fw = torch.zeros(1, 2, 3, 6, 6)
        fw[:, 0, 1], fw[:, 0, 2] = 3.0, -3.0
        assert torch.equal(T.occlusion_mask(fw, -fw), torch.ones(1, 1, 3, 6, 6))

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"`flow_forward` must have 2 channels"):
            T.occlusion_mask(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
        with pytest.raises(ValueError, match=r"`flow_forward` and `flow_backward` must have the same shape"):
            T.occlusion_mask(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))
        with pytest.raises(TypeError, match=r"`motion_boundaries` must be a bool; got str"):
            T.occlusion_mask(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), motion_boundaries="yes")
        for alpha, beta in ((-0.01, 0.5), (0.01, -0.5)):
            with pytest.raises(ValueError, match=rf"`alpha` and `beta` must be non-negative; got {alpha} and {beta}"):
                T.occlusion_mask(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), alpha=alpha, beta=beta)


class TestPingPong:
    def test_formula_and_perfect(self) -> None:
        f, b = _video(2, 3, 3, 4, 4, dtype=torch.float64), _video(2, 3, 3, 4, 4, seed=1, dtype=torch.float64)
        _close(T.ping_pong_loss(f, b, reduction="none"), (f - b).abs().flatten(1).mean(1))
        assert T.ping_pong_loss(f, f.clone()).item() == 0.0

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"`forward_video` and `backward_video` must have the same shape"):
            T.ping_pong_loss(torch.zeros(1, 3, 3, 4, 4), torch.zeros(1, 3, 2, 4, 4))


@pytest.fixture(scope="module")
def alex_and_package(tmp_path_factory) -> tuple[gl.LPIPS, object]:
    """genloss.LPIPS("alex") and the lpips package on one seeded random trunk."""
    path = write_trunk("alex", tmp_path_factory.mktemp("trunk"))
    return gl.LPIPS("alex", weights=path), reference("alex", path)


class TestTemporalLPIPS:
    def test_independent_formula(self) -> None:
        pred, target = _video(2, 3, 4, 6, 6, dtype=torch.float64), _video(2, 3, 4, 6, 6, seed=1, dtype=torch.float64)
        d = lambda a, b: (a - b).abs().mean()  # noqa: E731
        expected = torch.stack(
            [
                torch.stack(
                    [
                        (d(pred[b, :, t], pred[b, :, t - 1]) - d(target[b, :, t], target[b, :, t - 1])).abs()
                        for t in range(1, 4)
                    ]
                ).mean()
                for b in range(2)
            ]
        )
        got = T.temporal_lpips_loss(pred, target, model=_mean_abs_lpips, reduction="none")
        _close(got, expected)

    def test_one_model_call_for_all_pairs(self) -> None:
        calls = []

        def model(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
            calls.append(x.shape)
            return _mean_abs_lpips(x, y, reduction)

        T.temporal_lpips_loss(_video(2, 3, 5, 4, 4), _video(2, 3, 5, 4, 4, seed=1), model=model)
        assert calls == [torch.Size([2 * 2 * 4, 3, 4, 4])]

    def test_lpips_feature_path_equals_package_pairs_in_float64(self, alex_and_package) -> None:
        # genloss.LPIPS takes the feature path (each frame through the trunk once); the package,
        # a generic callable, scores the 2B(T-1) pairs and differentiates both frames of each,
        # so values AND gradients must agree. Float64: they agree to ~1e-17.
        ours, package = (m.double() for m in alex_and_package)
        pred = _video(2, 3, 4, 32, 32, dtype=torch.float64)
        target = _video(2, 3, 4, 32, 32, seed=1, dtype=torch.float64)
        values, grads = [], []
        for model in (ours, pairwise(package)):
            x = pred.clone().requires_grad_()
            loss = T.temporal_lpips_loss(x, target, model=model, reduction="none")
            loss.sum().backward()
            values.append(loss.detach())
            grads.append(x.grad)
        torch.testing.assert_close(values[0], values[1], atol=1e-12, rtol=0)
        torch.testing.assert_close(grads[0], grads[1], atol=1e-13, rtol=1e-9)
        assert grads[0][:, :, 0].abs().sum() > 0 and grads[0][:, :, -1].abs().sum() > 0
        module = T.TemporalLPIPSLoss(ours, reduction="none")
        torch.testing.assert_close(module(pred, target), values[0], atol=0, rtol=0)

    def test_lpips_feature_path_float32(self, alex_and_package) -> None:
        ours, package = (m.float() for m in alex_and_package)
        pred, target = _video(2, 3, 3, 32, 32), _video(2, 3, 3, 32, 32, seed=1)
        got = T.temporal_lpips_loss(pred, target, model=ours, reduction="none")
        expected = T.temporal_lpips_loss(pred, target, model=pairwise(package), reduction="none")
        # float32: ~1e-8 apart (values ~0.01); convolution kernels round differently
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)

    def test_lpips_gradients_reach_pred_only_and_stay_finite(self, alex_and_package) -> None:
        ours = alex_and_package[0].float()
        target = _video(1, 3, 3, 32, 32, seed=1).requires_grad_()
        pred = _video(1, 3, 3, 32, 32).requires_grad_()
        T.temporal_lpips_loss(pred, target, model=ours).backward()
        assert target.grad is None and pred.grad.abs().sum() > 0
        # identical frames (p_t == p_{t-1}), a clip equal to its target, and flat frames whose
        # features vanish: value 0, gradients finite
        still = _video(1, 3, 1, 32, 32).expand(1, 3, 3, 32, 32)
        flat = torch.full((1, 3, 3, 32, 32), -1.0)
        for clip in (still, flat):
            x = clip.clone().requires_grad_()
            loss = T.temporal_lpips_loss(x, clip.clone(), model=ours)
            loss.backward()
            assert loss.item() == 0.0 and torch.isfinite(x.grad).all()

    def test_lpips_runs_each_frame_through_the_trunk_once(self, alex_and_package, monkeypatch) -> None:
        ours = alex_and_package[0].float()
        frames = []
        trunk = ours.features
        monkeypatch.setattr(ours, "features", lambda x: frames.append(x.shape[0]) or trunk(x))
        pred = _video(2, 3, 5, 32, 32).requires_grad_()
        T.temporal_lpips_loss(pred, _video(2, 3, 5, 32, 32, seed=1), model=ours).backward()
        assert sum(frames) == 2 * 2 * 5  # B T frames of each clip, not 2 B (T - 1) pairs

    def test_lpips_range_checked_on_both_clips(self, alex_and_package) -> None:
        ours = alex_and_package[0].float()
        inside, outside = _video(1, 3, 2, 32, 32), _video(1, 3, 2, 32, 32)
        outside[0, 0, 1, 4, 4] = 1.7
        for name, args in (("pred", (outside, inside)), ("target", (inside, outside))):
            with pytest.raises(ValueError, match=rf"`{name}` must hold pixels in \[-1, 1\]"):
                T.temporal_lpips_loss(*args, model=ours)

    def test_bad_model(self) -> None:
        video = torch.zeros(1, 3, 2, 4, 4)
        with pytest.raises(TypeError, match=r"`model` must be an LPIPS-like callable"):
            T.temporal_lpips_loss(video, video, model=3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"must return one value per frame pair, shape \(2,\)"):
            T.temporal_lpips_loss(video, video, model=lambda x, y, reduction: (x - y).mean())


LOSSES = [
    ("temporal_difference", lambda v, w: T.temporal_difference_loss(v, w), T.TemporalDifferenceLoss(), 2),
    ("smoothness_1", lambda v, w: T.temporal_smoothness_loss(v), T.TemporalSmoothnessLoss(), 1),
    ("smoothness_2", lambda v, w: T.temporal_smoothness_loss(v, order=2), T.TemporalSmoothnessLoss(order=2), 1),
    ("ping_pong", lambda v, w: T.ping_pong_loss(v, w), T.PingPongLoss(), 2),
    ("tlp", lambda v, w: T.temporal_lpips_loss(v, w, model=_mean_abs_lpips), T.TemporalLPIPSLoss(_mean_abs_lpips), 2),
]


class TestCommon:
    @pytest.mark.parametrize(("name", "fn", "module", "n_args"), LOSSES, ids=[x[0] for x in LOSSES])
    def test_function_equals_module_and_gradients_flow(self, name, fn, module, n_args) -> None:  # noqa: ANN001
        v = _video(2, 3, 4, 6, 6).requires_grad_()
        w = _video(2, 3, 4, 6, 6, seed=1)
        loss = fn(v, w)
        torch.testing.assert_close(module(*(v, w)[:n_args]), loss)
        loss.backward()
        assert v.grad is not None and v.grad.abs().sum() > 0

    def test_flow_warping_function_equals_module_and_gradients_reach_video_and_flow(self) -> None:
        v = _video(2, 3, 3, 6, 6).requires_grad_()
        flow = (0.3 + _video(2, 2, 2, 6, 6, seed=1)).requires_grad_()
        mask = torch.ones(2, 1, 2, 6, 6)
        loss = T.flow_warping_loss(v, flow, mask=mask)
        torch.testing.assert_close(T.FlowWarpingLoss()(v, flow, mask), loss)
        loss.backward()
        assert v.grad.abs().sum() > 0 and flow.grad.abs().sum() > 0

    def test_gradcheck_float64(self) -> None:
        v = _video(1, 2, 3, 3, 3, dtype=torch.float64).requires_grad_()
        w = _video(1, 2, 3, 3, 3, seed=1, dtype=torch.float64)
        flow = 0.3 + 0.4 * _video(1, 2, 2, 3, 3, seed=2, dtype=torch.float64)
        for fn in (
            lambda x: T.temporal_difference_loss(x, w),
            lambda x: T.temporal_smoothness_loss(x, order=2),
            lambda x: T.ping_pong_loss(x, w),
            lambda x: T.flow_warping_loss(x, flow),
            lambda x: T.temporal_lpips_loss(x, w, model=_mean_abs_lpips),
        ):
            assert torch.autograd.gradcheck(fn, (v,))

    def test_reductions(self) -> None:
        v, w = _video(3, 1, 3, 2, 2, dtype=torch.float64), _video(3, 1, 3, 2, 2, seed=1, dtype=torch.float64)
        none = T.ping_pong_loss(v, w, reduction="none")
        assert none.shape == (3,)
        _close(T.ping_pong_loss(v, w, reduction="sum"), none.sum())
        _close(T.ping_pong_loss(v, w), none.mean())

    def test_exported(self) -> None:
        for name in T.__all__:
            if name not in ("temporal_lpips_per_step",):
                assert getattr(gl, name) is getattr(T, name)

"""Tests for genloss.metrics: known answers, independent formulas, reference packages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genloss as gl
from genloss import metrics
from lpips_reference import reference, write_trunk


def _clips(*shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(*shape, generator=g) * 2 - 1
    b = (a + 0.2 * torch.randn(*shape, generator=g)).clamp(-1, 1)
    return a, b


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """float64 against an independent formula: equal up to summation order."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)


class TestPSNR:
    def test_known_answer(self) -> None:
        x = torch.zeros(1, 3, 2, 8, 8, dtype=torch.float64)
        result = metrics.psnr(x, x + 0.1)
        expected = 10 * math.log10(4 / 0.1**2)
        _close(result.per_frame, torch.full((1, 2), expected, dtype=torch.float64))
        _close(result.mean, torch.tensor(expected, dtype=torch.float64))

    def test_independent_formula_per_frame_then_mean(self) -> None:
        pred, target = (c.double() for c in _clips(2, 3, 4, 8, 8))
        result = metrics.psnr(pred, target)
        for b in range(2):
            frames = []
            for t in range(4):
                mse = ((pred[b, :, t] - target[b, :, t]) ** 2).mean().item()
                frames.append(10 * math.log10(4.0 / mse))
            assert result.per_frame[b].tolist() == pytest.approx(frames, rel=1e-12)
            assert result.per_clip[b].item() == pytest.approx(sum(frames) / 4, rel=1e-12)
        assert result.per_frame.shape == (2, 4)
        assert result.per_clip.shape == (2,)
        assert result.mean.shape == ()
        torch.testing.assert_close(result.mean, result.per_clip.mean())

    def test_identical_clips_are_finite(self) -> None:
        x = torch.rand(2, 3, 2, 8, 8)
        result = metrics.psnr(x, x)
        torch.testing.assert_close(result.per_clip, torch.full((2,), 100.0))

    def test_data_range(self) -> None:
        pred, target = (c.double() for c in _clips(1, 1, 2, 4, 4))
        a = metrics.psnr(pred, target, data_range=2.0).mean
        b = metrics.psnr(pred, target, data_range=1.0).mean
        assert (a - b).item() == pytest.approx(20 * math.log10(2.0), rel=1e-12)

    def test_no_grad_and_result_is_frozen(self) -> None:
        pred = torch.rand(1, 3, 2, 4, 4, requires_grad=True)
        result = metrics.psnr(pred, torch.zeros(1, 3, 2, 4, 4))
        assert not result.mean.requires_grad
        with pytest.raises(AttributeError):
            result.mean = torch.tensor(0.0)  # type: ignore[misc]

    def test_bad_input(self) -> None:
        x = torch.zeros(2, 3, 8, 8)
        with pytest.raises(ValueError, match=r"`pred` must be a 5-D tensor"):
            metrics.psnr(x, x)
        with pytest.raises(ValueError, match=r"`pred` and `target` must have the same shape"):
            metrics.psnr(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 3, 3, 4, 4))
        with pytest.raises(ValueError, match=r"`data_range` must be positive"):
            metrics.psnr(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 3, 2, 4, 4), data_range=0)


def _mean_abs_lpips(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Stand-in for LPIPS with its calling convention: (N,) distances for reduction="none"."""
    values = (x - y).abs().flatten(1).mean(dim=1)
    return values if reduction == "none" else values.mean()


def _texture_clip(dx: int, dy: int, frames: int = 3, size: int = 48, seed: int = 0) -> torch.Tensor:
    """Smooth random texture translating by d per frame: v_{t+1}(x) = v_t(x - d)."""
    g = torch.Generator().manual_seed(seed)
    pad = 4 * frames
    coarse = torch.randn(1, 3, (size + 2 * pad) // 4, (size + 2 * pad) // 4, generator=g)
    big = torch.nn.functional.interpolate(coarse, size=(size + 2 * pad,) * 2, mode="bicubic")
    big = (big / big.abs().amax()).clamp(-1, 1)
    crops = [
        big[:, :, pad - t * dy : pad - t * dy + size, pad - t * dx : pad - t * dx + size]
        for t in range(frames)
    ]
    return torch.stack(crops, dim=2)


class TestSSIM:
    def test_matches_pytorch_msssim_frame_by_frame(self) -> None:
        from pytorch_msssim import ssim as reference

        pred, target = _clips(2, 3, 3, 16, 16)
        result = metrics.ssim(pred, target)
        assert result.per_frame.shape == (2, 3)
        for b in range(2):
            for t in range(3):
                expected = reference(
                    (pred[b : b + 1, :, t] + 1) / 2, (target[b : b + 1, :, t] + 1) / 2, data_range=1.0
                )
                torch.testing.assert_close(result.per_frame[b, t], expected, rtol=0, atol=0)  # the same computation
        torch.testing.assert_close(result.per_clip, result.per_frame.mean(1))

    def test_identical_is_one(self) -> None:
        x = _clips(1, 3, 2, 16, 16)[0]
        torch.testing.assert_close(metrics.ssim(x, x).mean, torch.tensor(1.0))

    def test_too_small(self) -> None:
        with pytest.raises(ValueError, match=r"at least 11x11"):
            metrics.ssim(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 8))


@pytest.fixture(scope="module")
def alex_and_package(tmp_path_factory) -> tuple:
    """genloss.LPIPS("alex") and the lpips package on one seeded random trunk."""
    path = write_trunk("alex", tmp_path_factory.mktemp("trunk"))
    return gl.LPIPS("alex", weights=path), reference("alex", path)


class TestLPIPSAndTLP:
    def test_lpips_per_frame(self) -> None:
        pred, target = (c.double() for c in _clips(2, 3, 3, 8, 8))
        result = metrics.lpips(pred, target, model=_mean_abs_lpips)
        expected = (pred - target).abs().mean(dim=(1, 3, 4))
        _close(result.per_frame, expected)
        _close(result.mean, expected.mean())

    def test_tlp_per_step_and_equals_loss(self) -> None:
        pred, target = (c.double() for c in _clips(2, 3, 4, 8, 8))
        result = metrics.tlp(pred, target, model=_mean_abs_lpips)
        assert result.per_frame.shape == (2, 3)
        d_p = (pred[:, :, 1:] - pred[:, :, :-1]).abs().mean(dim=(1, 3, 4))
        d_t = (target[:, :, 1:] - target[:, :, :-1]).abs().mean(dim=(1, 3, 4))
        _close(result.per_frame, (d_p - d_t).abs())
        loss = gl.temporal_lpips_loss(pred, target, model=_mean_abs_lpips, reduction="none")
        _close(result.per_clip, loss)
        assert metrics.tlp(target, target, model=_mean_abs_lpips).mean.item() == 0.0

    def test_tlp_needs_two_frames(self) -> None:
        x = torch.zeros(1, 3, 1, 8, 8)
        with pytest.raises(ValueError, match=r"`pred` must have at least 2 frames"):
            metrics.tlp(x, x, model=_mean_abs_lpips)

    def test_lpips_and_tlp_with_a_generic_callable(self) -> None:
        pred, target = _clips(2, 3, 4, 8, 8)
        both = metrics.lpips_and_tlp(pred, target, model=_mean_abs_lpips)
        for got, expected in zip(
            both,
            (metrics.lpips(pred, target, model=_mean_abs_lpips), metrics.tlp(pred, target, model=_mean_abs_lpips)),
            strict=True,
        ):
            torch.testing.assert_close(got.per_frame, expected.per_frame, atol=0, rtol=0)
        with pytest.raises(ValueError, match=r"`pred` must have at least 2 frames"):
            metrics.lpips_and_tlp(pred[:, :, :1], target[:, :, :1], model=_mean_abs_lpips)

    def test_genloss_lpips_equals_package_pair_by_pair(self, alex_and_package) -> None:
        # genloss.LPIPS goes through its feature path (each frame through the trunk once); the
        # package is called pair by pair. Float64: they agree to ~1e-17.
        ours, package = (m.double() for m in alex_and_package)
        pred, target = (c.double() for c in _clips(2, 3, 4, 32, 32))
        per_frame = torch.stack(
            [package(pred[:, :, t], target[:, :, t]).flatten() for t in range(4)], 1
        )
        step = lambda v: torch.stack(  # noqa: E731
            [package(v[:, :, t], v[:, :, t - 1]).flatten() for t in range(1, 4)], 1
        )
        per_step = (step(pred) - step(target)).abs()
        results = {
            "lpips": metrics.lpips(pred, target, model=ours),
            "tlp": metrics.tlp(pred, target, model=ours),
        }
        results["both_lpips"], results["both_tlp"] = metrics.lpips_and_tlp(pred, target, model=ours)
        for name, result in results.items():
            expected = per_step if name.endswith("tlp") else per_frame
            assert result.per_frame.dtype == torch.float64
            torch.testing.assert_close(result.per_frame, expected, atol=1e-12, rtol=0, msg=name)
            torch.testing.assert_close(result.mean, expected.mean(), atol=1e-12, rtol=0, msg=name)
        assert metrics.lpips(pred, pred, model=ours).mean.item() == 0.0
        assert metrics.tlp(pred, pred, model=ours).mean.item() == 0.0

    def test_genloss_lpips_one_trunk_pass_per_frame(self, alex_and_package, monkeypatch) -> None:
        ours = alex_and_package[0].float()
        frames = []
        trunk = ours.features
        monkeypatch.setattr(ours, "features", lambda x: frames.append(x.shape[0]) or trunk(x))
        pred, target = _clips(2, 3, 5, 32, 32)
        metrics.lpips_and_tlp(pred, target, model=ours)
        assert sum(frames) == 2 * 2 * 5  # the B T frames of each clip once, not 6 B T - 4 B
        frames.clear()
        metrics.tlp(pred, target, model=ours)
        assert sum(frames) == 2 * 2 * 5

    @pytest.mark.parametrize("metric", ["lpips", "tlp", "lpips_and_tlp"])
    def test_genloss_lpips_checks_both_clips(self, alex_and_package, metric) -> None:
        ours = alex_and_package[0].float()
        inside, outside = _clips(1, 3, 2, 32, 32)[0], _clips(1, 3, 2, 32, 32)[0]
        outside[0, 2, 1, 7, 7] = -2.0
        fn = getattr(metrics, metric)
        for name, args in (("pred", (outside, inside)), ("target", (inside, outside))):
            with pytest.raises(ValueError, match=rf"`{name}` must hold pixels in \[-1, 1\]"):
                fn(*args, model=ours)


class TestTOF:
    def test_identical_clips_zero(self) -> None:
        clip = _texture_clip(1, 0)
        result = metrics.tof(clip, clip.clone())
        assert result.per_frame.shape == (1, 2)
        assert result.mean.item() == 0.0

    def test_known_motion_difference(self) -> None:
        # Motion (1, 0) per frame against a static clip: the flows differ by 1 px inside.
        moving = _texture_clip(1, 0)
        static = moving[:, :, :1].expand_as(moving).contiguous()
        constant = lambda v: lambda a, b: torch.full((a.shape[0], 2, *a.shape[-2:]), v)  # noqa: E731
        torch.testing.assert_close(metrics.tof(moving, static, flow_fn=constant(0.5)).mean, torch.tensor(0.0))
        value = metrics.tof(moving, static).mean.item()
        assert 0.7 < value < 1.2

    def test_custom_estimator_is_used(self) -> None:
        calls = []

        def estimator(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            calls.append(a.shape[0])
            flow = torch.zeros(a.shape[0], 2, *a.shape[-2:])
            flow[: a.shape[0] // 2, 0] = 3.0  # the first half of the batch is pred's pairs
            flow[: a.shape[0] // 2, 1] = 4.0
            return flow

        x = torch.zeros(2, 3, 3, 8, 8)
        result = metrics.tof(x, x, flow_fn=estimator)
        torch.testing.assert_close(result.per_frame, torch.full((2, 2), 5.0))
        assert calls == [2 * 2 * 2]

    def test_flows_go_from_the_previous_frame_to_the_next(self) -> None:
        # A stub whose x flow is frame b's value: tOF's step t compares OF(p_{t-1}, p_t) with
        # OF(r_{t-1}, r_t), so it reads |p_t - r_t| (the reverse direction would read t - 1's).
        def estimator(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            flow = torch.zeros(a.shape[0], 2, *a.shape[-2:], dtype=a.dtype)
            flow[:, 0] = b.mean(dim=1)
            return flow

        pred = torch.tensor([0.0, 0.5, -0.5, 1.0]).view(1, 1, 4, 1, 1).expand(1, 3, 4, 4, 4)
        target = torch.tensor([0.25, 0.0, 0.0, 0.0]).view(1, 1, 4, 1, 1).expand(1, 3, 4, 4, 4)
        result = metrics.tof(pred, target, flow_fn=estimator)
        torch.testing.assert_close(result.per_frame, torch.tensor([[0.5, 0.5, 1.0]]), rtol=0, atol=0)


class TestWarpingError:
    def test_given_flow_formula_and_mask(self) -> None:
        video = _clips(2, 3, 3, 6, 6)[0].double()
        flow = 1.5 * _clips(2, 2, 2, 6, 6, seed=1)[0].double()
        mask = (_clips(2, 1, 2, 6, 6, seed=2)[0] > 0).double()
        import genloss as gl

        residual = (video[:, :, 1:] - gl.warp(video[:, :, :-1], flow)) ** 2
        unmasked = metrics.warping_error(video, flow=flow)
        _close(unmasked.per_frame, residual.mean(dim=(1, 3, 4)))
        masked = metrics.warping_error(video, flow=flow, mask=mask)
        m = mask.expand_as(residual)
        expected = (residual * m).sum(dim=(1, 3, 4)) / m.sum(dim=(1, 3, 4))
        _close(masked.per_frame, expected)

    def test_translating_clip_is_consistent_and_flicker_is_not(self) -> None:
        clip = _texture_clip(2, -1, frames=4)
        consistent = metrics.warping_error(clip).mean.item()
        flicker = torch.tensor([0.0, 0.3, 0.0, 0.3]).view(1, 1, 4, 1, 1)
        flickering = metrics.warping_error((clip + flicker).clamp(-1, 1)).mean.item()
        noisy = metrics.warping_error((clip + 0.3 * torch.randn_like(clip)).clamp(-1, 1)).mean.item()
        assert consistent < 1e-3
        assert flickering > 20 * consistent and noisy > 20 * consistent

    def test_lai_evaluation_script_reports_a_quarter(self) -> None:
        """Lai et al.'s evaluate_WarpError.py, transcribed in numpy: [0, 1] frames, the occlusion
        mask read as a 3-channel image, err_t = sum((mask * (warp(I_t, F) - I_{t-1}))^2) / sum(mask),
        averaged over steps, then over videos. Their flow is the forward flow t-1 -> t."""
        g = torch.Generator().manual_seed(4)
        b, c, t, h, w = 2, 3, 4, 7, 8
        video = torch.rand(b, c, t, h, w, generator=g, dtype=torch.float64) * 2 - 1
        forward = 2.5 * (torch.rand(b, 2, t - 1, h, w, generator=g, dtype=torch.float64) - 0.5)
        occluded = torch.rand(b, 1, t - 1, h, w, generator=g, dtype=torch.float64) < 0.3

        frames = ((video.numpy() + 1) / 2).transpose(0, 2, 3, 4, 1)  # (B, T, H, W, C) in [0, 1]
        flows = forward.numpy().transpose(0, 2, 3, 4, 1)  # (B, T-1, H, W, 2)
        occ = np.repeat(occluded.numpy().transpose(0, 2, 3, 4, 1), 3, axis=-1).astype(np.float64)

        def bilinear(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
            out = np.empty_like(img)
            for y in range(h):
                for x in range(w):
                    sx = min(max(x + flow[y, x, 0], 0.0), w - 1.0)
                    sy = min(max(y + flow[y, x, 1], 0.0), h - 1.0)
                    x0, y0 = min(int(sx), w - 2), min(int(sy), h - 2)
                    ax, ay = sx - x0, sy - y0
                    out[y, x] = ((1 - ax) * (1 - ay) * img[y0, x0] + ax * (1 - ay) * img[y0, x0 + 1]
                                 + (1 - ax) * ay * img[y0 + 1, x0] + ax * ay * img[y0 + 1, x0 + 1])
            return out

        per_video = []
        for n in range(b):
            err = 0.0
            for step in range(1, t):
                noc = 1 - occ[n, step - 1]
                diff = (bilinear(frames[n, step], flows[n, step - 1]) - frames[n, step - 1]) * noc
                err += np.sum(np.square(diff)) / np.sum(noc)
            per_video.append(err / (t - 1))
        lai = float(np.mean(per_video))

        # The same steps in genloss's direction: the reversed clip with its backward flows.
        ours = metrics.warping_error(
            video.flip(2), flow=forward.flip(2), mask=(~occluded).double().flip(2)
        )
        assert math.isclose(ours.mean.item() / 4, lai, rel_tol=1e-12)
        np.testing.assert_allclose(ours.per_clip.numpy() / 4, per_video, rtol=1e-12)

    @staticmethod
    def _boundary_estimator(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Both directions agree; rows 0-3 move 1 px right, the rest stand still."""
        flow = torch.zeros(a.shape[0], 2, *a.shape[-2:], dtype=a.dtype)
        flow[:, 0, :4] = 1.0
        flow[a.shape[0] // 2 :] *= -1  # video_flow_and_mask: backward flows first, then forward
        return flow

    def test_estimated_mask_drops_motion_boundaries(self) -> None:
        video = _clips(2, 3, 3, 8, 8, seed=3)[0].double()
        flow, mask = gl.video_flow_and_mask(video, self._boundary_estimator)
        assert mask[..., 3, :].sum() == 0 and mask.sum() == mask.numel() * 7 / 8
        residual = (video[:, :, 1:] - gl.warp(video[:, :, :-1], flow)) ** 2
        m = mask.expand_as(residual)
        expected = (residual * m).sum(dim=(1, 3, 4)) / m.sum(dim=(1, 3, 4))
        got = metrics.warping_error(video, flow_fn=self._boundary_estimator)
        torch.testing.assert_close(got.per_frame, expected, rtol=1e-12, atol=0)
        plain = metrics.warping_error(video, flow_fn=self._boundary_estimator, motion_boundaries=False)
        torch.testing.assert_close(plain.per_frame, residual.mean(dim=(1, 3, 4)), rtol=1e-12, atol=0)

    def test_given_mask_with_estimated_backward_flow(self) -> None:
        # A mask but no flow: the flows are estimated from frame t + 1 to frame t, as flow_warping_loss
        # takes them. The stub's flow depends on the order of its arguments.
        def estimator(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            flow = torch.zeros(a.shape[0], 2, *a.shape[-2:], dtype=a.dtype)
            flow[:, 0] = 2 * a.mean(dim=1) - b.mean(dim=1)
            return flow

        video = _clips(2, 3, 3, 6, 6, seed=5)[0].double()
        mask = (_clips(2, 1, 2, 6, 6, seed=6)[0] > 0).double()
        flow = torch.stack([estimator(video[:, :, t + 1], video[:, :, t]) for t in range(2)], dim=2)
        residual = (video[:, :, 1:] - gl.warp(video[:, :, :-1], flow)) ** 2
        m = mask.expand_as(residual)
        expected = (residual * m).sum(dim=(1, 3, 4)) / m.sum(dim=(1, 3, 4))
        got = metrics.warping_error(video, flow_fn=estimator, mask=mask)
        torch.testing.assert_close(got.per_frame, expected, rtol=1e-12, atol=0)

    def test_errors(self) -> None:
        video = torch.zeros(1, 3, 3, 8, 8)
        with pytest.raises(ValueError, match=r"`motion_boundaries=False` applies to the estimated mask"):
            metrics.warping_error(video, flow=torch.zeros(1, 2, 2, 8, 8), motion_boundaries=False)
        with pytest.raises(TypeError, match=r"`motion_boundaries` must be a bool; got int"):
            metrics.warping_error(video, motion_boundaries=1)
        with pytest.raises(ValueError, match=r"either `flow` or `flow_fn`"):
            metrics.warping_error(video, flow=torch.zeros(1, 2, 2, 8, 8), flow_fn=lambda a, b: a)
        with pytest.raises(ValueError, match=r"`flow` must have shape .* got \(1, 2, 3, 8, 8\)"):
            metrics.warping_error(video, flow=torch.zeros(1, 2, 3, 8, 8))
        with pytest.raises(ValueError, match=r"`mask` must broadcast"):
            metrics.warping_error(video, flow=torch.zeros(1, 2, 2, 8, 8), mask=torch.ones(1, 1, 3, 8, 8))
        with pytest.raises(ValueError, match=r"`video` must be a 5-D tensor"):
            metrics.warping_error(torch.zeros(1, 3, 8, 8))

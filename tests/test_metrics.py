"""Tests for genloss.metrics: known answers, independent formulas, reference packages."""

from __future__ import annotations

import math

import pytest
import torch

from genloss import metrics


def _clips(*shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(*shape, generator=g) * 2 - 1
    b = (a + 0.2 * torch.randn(*shape, generator=g)).clamp(-1, 1)
    return a, b


class TestPSNR:
    def test_known_answer(self) -> None:
        x = torch.zeros(1, 3, 2, 8, 8)
        result = metrics.psnr(x, x + 0.1)
        expected = 10 * math.log10(4 / 0.01)
        torch.testing.assert_close(result.per_frame, torch.full((1, 2), expected))
        torch.testing.assert_close(result.mean, torch.tensor(expected))

    def test_independent_formula_per_frame_then_mean(self) -> None:
        pred, target = _clips(2, 3, 4, 8, 8)
        result = metrics.psnr(pred, target)
        for b in range(2):
            frames = []
            for t in range(4):
                mse = ((pred[b, :, t] - target[b, :, t]) ** 2).mean().item()
                frames.append(10 * math.log10(4.0 / mse))
            assert result.per_frame[b].tolist() == pytest.approx(frames, rel=1e-5)
            assert result.per_clip[b].item() == pytest.approx(sum(frames) / 4, rel=1e-5)
        assert result.per_frame.shape == (2, 4)
        assert result.per_clip.shape == (2,)
        assert result.mean.shape == ()
        torch.testing.assert_close(result.mean, result.per_clip.mean())

    def test_identical_clips_are_finite(self) -> None:
        x = torch.rand(2, 3, 2, 8, 8)
        result = metrics.psnr(x, x)
        torch.testing.assert_close(result.per_clip, torch.full((2,), 100.0))

    def test_data_range(self) -> None:
        pred, target = _clips(1, 1, 2, 4, 4)
        a = metrics.psnr(pred, target, data_range=2.0).mean
        b = metrics.psnr(pred, target, data_range=1.0).mean
        assert (a - b).item() == pytest.approx(20 * math.log10(2.0), rel=1e-5)

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

"""SSIM / MS-SSIM losses: equal to 1 - pytorch_msssim on images, per-frame on videos."""

from __future__ import annotations

import re

import pytest
import pytorch_msssim
import torch

import genloss as gl
from genloss.ssim import frame_ssim


def pair(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=gen) * 2 - 1
    return x, (x + 0.3 * torch.randn(shape, generator=gen)).clamp(-1, 1)


class TestSSIM:
    def test_images_equal_pytorch_msssim(self):
        x, y = pair((3, 3, 32, 32))
        expected = 1 - pytorch_msssim.ssim(
            (x + 1) / 2, (y + 1) / 2, data_range=1.0, size_average=False
        )
        # The same computation (1 - pytorch_msssim on [0, 1]): equal to the bit.
        torch.testing.assert_close(gl.ssim_loss(x, y, reduction="none"), expected, rtol=0, atol=0)
        torch.testing.assert_close(gl.SSIMLoss()(x, y), expected.mean(), rtol=0, atol=0)
        torch.testing.assert_close(gl.ssim_loss(x, y, reduction="sum"), expected.sum(), rtol=0, atol=0)
        assert gl.ssim_loss(x, x).abs() < 1e-6
        # another window (size and sigma) reaches pytorch_msssim, from the function and the module
        other = 1 - pytorch_msssim.ssim(
            (x + 1) / 2, (y + 1) / 2, data_range=1.0, size_average=False, win_size=7, win_sigma=0.8
        )
        assert not torch.allclose(other, expected, rtol=1e-3, atol=0)
        for loss in (gl.SSIMLoss(win_size=7, win_sigma=0.8, reduction="none"),
                     lambda a, b: gl.ssim_loss(a, b, win_size=7, win_sigma=0.8, reduction="none")):
            torch.testing.assert_close(loss(x, y), other, rtol=0, atol=0)
        # the same images on [0, 255]: the same loss, up to float32 rounding of the x255 scale
        x255, y255 = (x + 1) * 127.5, (y + 1) * 127.5
        torch.testing.assert_close(
            gl.ssim_loss(x255, y255, value_range=(0, 255), reduction="none"), expected, rtol=0, atol=1e-6
        )

    def test_video_is_per_frame_mean(self):
        x, y = pair((2, 3, 4, 24, 24), 1)
        frames = torch.stack(
            [gl.ssim_loss(x[:, :, t], y[:, :, t], reduction="none") for t in range(4)], 1
        )
        # a mean over 4 float32 frames, summed in another order: ~1e-7 relative
        torch.testing.assert_close(gl.ssim_loss(x, y, reduction="none"), frames.mean(1), rtol=1e-6, atol=0)

    def test_half_and_gradient(self):
        x, y = pair((2, 3, 16, 16), 2)
        xh = x.half().requires_grad_(True)
        value = gl.ssim_loss(xh, y.half())
        value.backward()
        assert value.dtype == torch.float32 and torch.isfinite(xh.grad).all()
        torch.testing.assert_close(value, gl.ssim_loss(x, y), atol=2e-3, rtol=0)

    def test_errors(self):
        with pytest.raises(ValueError, match="must have the same shape"):
            gl.ssim_loss(torch.zeros(1, 3, 16, 16), torch.zeros(2, 3, 16, 16))
        x = torch.zeros(1, 3, 33, 33)  # big enough for 5 scales of a 3-px window
        for loss in (gl.ssim_loss, gl.ms_ssim_loss):
            with pytest.raises(ValueError, match=re.escape("`value_range` must be (low, high) with high > low; got (1, -1)")):
                loss(x, x, value_range=(1, -1), win_size=3)


    def test_frame_ssim_is_the_metric(self):
        # On [0, 2] with data_range 2, as on [0, 1] with data_range 1, to the bit: doubling the
        # pixels doubles every mean and quadruples every (co)variance and C_i, all exactly.
        v, w = pair((2, 3, 3, 16, 16), 5)
        expected = torch.stack(
            [
                pytorch_msssim.ssim(
                    (v[:, :, t] + 1) / 2, (w[:, :, t] + 1) / 2, data_range=1.0, size_average=False
                )
                for t in range(3)
            ],
            dim=1,
        )
        assert torch.equal(frame_ssim(v, w), expected)
        assert torch.equal(gl.metrics.ssim(v, w).per_frame, expected)
        assert frame_ssim(v[:, :, 0], w[:, :, 0]).shape == (2, 1)


class TestMSSSIM:
    def test_images_and_video(self):
        x, y = pair((2, 3, 40, 40), 3)
        expected = 1 - pytorch_msssim.ms_ssim(
            x + 1, y + 1, data_range=2.0, size_average=False, win_size=3
        )
        torch.testing.assert_close(gl.ms_ssim_loss(x, y, win_size=3, reduction="none"), expected, rtol=0, atol=0)
        torch.testing.assert_close(gl.MSSSIMLoss(win_size=3)(x, y), expected.mean(), rtol=0, atol=0)
        # the window's sigma and the per-scale weights reach pytorch_msssim (not its defaults)
        weights = (0.5, 0.2, 0.1, 0.1, 0.1)
        custom = 1 - pytorch_msssim.ms_ssim(
            x + 1, y + 1, data_range=2.0, size_average=False, win_size=3, win_sigma=0.8, weights=list(weights)
        )
        assert not torch.allclose(custom, expected, rtol=1e-3, atol=0)
        got = gl.ms_ssim_loss(x, y, win_size=3, win_sigma=0.8, weights=weights, reduction="none")
        torch.testing.assert_close(got, custom, rtol=0, atol=0)
        module = gl.MSSSIMLoss(win_size=3, win_sigma=0.8, weights=weights, reduction="none")
        torch.testing.assert_close(module(x, y), custom, rtol=0, atol=0)
        v, w = pair((1, 3, 2, 40, 40), 4)
        frames = torch.stack(
            [gl.ms_ssim_loss(v[:, :, t], w[:, :, t], win_size=3) for t in range(2)]
        )
        torch.testing.assert_close(gl.ms_ssim_loss(v, w, win_size=3), frames.mean(), rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    ("loss", "side", "message"),
    [
        (gl.ssim_loss, 8, "ssim_loss needs H and W of at least 11 (the 11-pixel window)"),
        (
            gl.ms_ssim_loss,
            64,
            "ms_ssim_loss needs H and W of at least 161 (5 scales of a 11-pixel window)",
        ),
    ],
)
def test_too_small(loss, side, message):
    x = torch.zeros(1, 3, side, side)
    with pytest.raises(ValueError, match=re.escape(f"{message}; got shape {tuple(x.shape)}")):
        loss(x, x)

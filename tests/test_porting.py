"""Conversion factors to other codebases (docs/losses.md, "Coming from another codebase").

Each test re-derives the other codebase's formula from its definition, independently of genloss,
and checks the factor the docs state. Sources read (not copied):
CompVis/taming-transformers ``taming/modules/losses/vqperceptual.py``; NVIDIA/pix2pixHD
``models/pix2pixHD_model.py`` (feature matching) and ``models/networks.py``
(``MultiscaleDiscriminator``, ``NLayerDiscriminator`` with ``getIntermFeat``);
phoenix104104/fast_blind_video_consistency ``train.py`` (short-term temporal loss);
VainF/pytorch-msssim ``ms_ssim``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genloss as gl


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


class TestTamingTransformers:
    """taming: ``d_loss = disc_factor * 0.5 * (mean(relu(1 - r)) + mean(relu(1 + f)))`` (hinge),
    ``0.5 * (mean(softplus(-r)) + mean(softplus(f)))`` (vanilla); ``g_loss = -mean(f)`` for both."""

    def test_discriminator_losses_are_half_of_genloss(self) -> None:
        r, f = _rand(4, 1, 6, 6, seed=1), _rand(4, 1, 6, 6, seed=2)  # PatchGAN logit maps
        relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
        softplus = lambda x: np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)  # noqa: E731
        rn, fn = r.numpy(), f.numpy()
        taming_hinge = 0.5 * (relu(1 - rn).mean() + relu(1 + fn).mean())
        taming_vanilla = 0.5 * (softplus(-rn).mean() + softplus(fn).mean())
        ours_hinge = gl.discriminator_loss(r, f, kind="hinge").item()
        ours_vanilla = gl.discriminator_loss(r, f, kind="non_saturating").item()
        assert ours_hinge / 2 == pytest.approx(taming_hinge, rel=1e-14)
        assert ours_vanilla / 2 == pytest.approx(taming_vanilla, rel=1e-14)

    def test_generator_loss_is_minus_mean_for_both_kinds(self) -> None:
        f = _rand(4, 1, 6, 6, seed=3)
        taming_g = -f.numpy().mean()  # the same line whether disc_loss is "hinge" or "vanilla"
        assert gl.generator_loss(f, kind="hinge").item() == pytest.approx(taming_g, rel=1e-14)
        # Not the non-saturating generator loss one would pair with a "vanilla" discriminator.
        assert gl.generator_loss(f, kind="non_saturating").item() != pytest.approx(taming_g, rel=1e-3)


def _multiscale_features(num_d: int, n_layers: int, seed: int) -> list[list[torch.Tensor]]:
    """What pix2pixHD's MultiscaleDiscriminator(getIntermFeat=True) returns: num_D lists of
    n_layers_D + 2 outputs each (n_layers_D + 1 conv blocks, then the 1-channel logits)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(num_d):
        size = 32 >> i  # each discriminator sees the input downsampled i times
        layers = [torch.randn(2, 8 * 2**j, max(2, size >> j), max(2, size >> j), generator=g, dtype=torch.float64)
                  for j in range(n_layers + 1)]
        layers.append(torch.randn(2, 1, max(2, size >> n_layers), max(2, size >> n_layers), generator=g, dtype=torch.float64))
        out.append(layers)
    return out


class TestPix2PixHD:
    @pytest.mark.parametrize(("n_layers_d", "num_d"), [(3, 2), (3, 3), (1, 1), (2, 4), (5, 2)])
    def test_feature_matching_is_four_lambda_times_genloss_without_logits(self, n_layers_d: int, num_d: int) -> None:
        real = _multiscale_features(num_d, n_layers_d, seed=0)
        fake = _multiscale_features(num_d, n_layers_d, seed=1)
        lambda_feat = 10.0
        # pix2pixHD: feat_weights = 4 / (n_layers_D + 1), D_weights = 1 / num_D, and the loop
        # `for j in range(len(pred_fake[i]) - 1)` leaves out each discriminator's logits.
        feat_weights, d_weights = 4.0 / (n_layers_d + 1), 1.0 / num_d
        theirs = 0.0
        for i in range(num_d):
            for j in range(len(fake[i]) - 1):
                l1 = np.abs(fake[i][j].numpy() - real[i][j].numpy()).mean()
                theirs += d_weights * feat_weights * l1 * lambda_feat
        ours = gl.feature_matching_loss([d[:-1] for d in real], [d[:-1] for d in fake]).item()
        assert 4 * lambda_feat * ours == pytest.approx(theirs, rel=1e-13)
        with_logits = gl.feature_matching_loss(real, fake).item()
        assert 4 * lambda_feat * with_logits != pytest.approx(theirs, rel=1e-3)


class TestLaiTemporalLoss:
    """Lai et al.'s train.py, short-term loss: per step t, ``w_ST * L1(o_t * m, warp(o_{t-1}) * m)``
    with ``L1`` the mean over all elements (B, C, H, W), summed over steps, frames in [0, 1]."""

    def test_divides_by_all_elements_not_by_the_mask_sum(self) -> None:
        b, c, t, h, w = 3, 3, 4, 6, 7
        video = _rand(b, c, t, h, w, seed=4).tanh()  # [-1, 1]
        flow = 1.5 * _rand(b, 2, t - 1, h, w, seed=5)
        # Lai's mask is soft, exp(-alpha * ...), one channel: any weights in [0, 1].
        mask = torch.rand(b, 1, t - 1, h, w, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        w_st = 100.0

        frames = (video + 1) / 2  # Lai's [0, 1]; warping commutes with this affine map
        warped = gl.warp(frames[:, :, :-1], flow)
        lai = 0.0
        for step in range(t - 1):
            m = mask[:, :, step].numpy()
            e = np.abs(frames[:, :, step + 1].numpy() * m - warped[:, :, step].numpy() * m)
            lai += w_st * e.mean()  # nn.L1Loss(): the mean over B * C * H * W elements

        ours = gl.flow_warping_loss(video, flow, mask=mask, reduction="none")  # (B,)
        mask_mean = mask.mean(dim=(1, 2, 3, 4))  # over each clip's (T - 1) * H * W pixels
        converted = 0.5 * w_st * (t - 1) * (ours * mask_mean).mean().item()
        assert converted == pytest.approx(lai, rel=1e-12)
        # With every pixel kept the conversion is the constant 0.5 * w_ST * (T - 1).
        full = torch.ones_like(mask)
        lai_full = sum(
            w_st * np.abs(frames[:, :, s + 1].numpy() - warped[:, :, s].numpy()).mean() for s in range(t - 1)
        )
        ours_full = gl.flow_warping_loss(video, flow, mask=full).item()
        assert 0.5 * w_st * (t - 1) * ours_full == pytest.approx(lai_full, rel=1e-12)


class TestGradientDifferenceLoss:
    @pytest.mark.parametrize("alpha", [1.0, 2.0])
    @pytest.mark.parametrize(("h", "w"), [(6, 6), (5, 9)])
    def test_mean_of_the_two_directions_and_the_sum_form(self, alpha: float, h: int, w: int) -> None:
        pred, target = _rand(2, 3, h, w, seed=7), _rand(2, 3, h, w, seed=8)
        p, t = pred.numpy(), target.numpy()
        # Mathieu et al.'s eq. 5 as a sum over pixels, per image.
        gx = np.abs(np.abs(p[..., :, 1:] - p[..., :, :-1]) - np.abs(t[..., :, 1:] - t[..., :, :-1])) ** alpha
        gy = np.abs(np.abs(p[..., 1:, :] - p[..., :-1, :]) - np.abs(t[..., 1:, :] - t[..., :-1, :])) ** alpha
        sum_x, sum_y = gx.sum(axis=(1, 2, 3)), gy.sum(axis=(1, 2, 3))
        n_x, n_y = 3 * h * (w - 1), 3 * (h - 1) * w
        ours = gl.gradient_difference_loss(pred, target, alpha=alpha, reduction="none").numpy()
        np.testing.assert_allclose(ours, (sum_x / n_x + sum_y / n_y) / 2, rtol=1e-13)
        if h == w:  # square frames: the sum form is 2 * C * H * (W - 1) times genloss
            np.testing.assert_allclose(sum_x + sum_y, 2 * n_x * ours, rtol=1e-13)


def _gauss(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ms_ssim_numpy(x: np.ndarray, y: np.ndarray, data_range: float, win: int, pad: str) -> np.ndarray:
    """MS-SSIM of ``(N, C, H, W)`` per image, Wang et al. 2003 with pytorch-msssim's choices
    (valid Gaussian filtering, relu on cs and on the last level's SSIM), the 2x2 average between
    levels padding an odd side with one row/column in front: zeros (``pad="zeros"``, counted in
    the average) or a copy of the edge (``pad="edge"``)."""
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    g = _gauss(win, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[-2:]
        a = sum(g[k] * a[..., k : h - win + 1 + k, :] for k in range(win))
        return sum(g[k] * a[..., :, k : w - win + 1 + k] for k in range(win))

    value = np.ones(x.shape[:2])
    for level, weight in enumerate(weights):
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if level < len(weights) - 1:
            value *= np.maximum(cs.mean(axis=(-2, -1)), 0) ** weight
            front = ((0, 0), (0, 0), (x.shape[-2] % 2, 0), (x.shape[-1] % 2, 0))
            mode = "constant" if pad == "zeros" else "edge"
            x, y = np.pad(x, front, mode=mode), np.pad(y, front, mode=mode)
            n, c, h, w = x.shape
            x = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
            y = y.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
        else:
            ssim = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
            value *= np.maximum(ssim.mean(axis=(-2, -1)), 0) ** weight
    return value.mean(axis=1)


class TestMSSSIMPadding:
    @pytest.mark.parametrize(("h", "w"), [(37, 41), (36, 36), (36, 39)])
    def test_odd_levels_are_zero_padded_like_pytorch_msssim(self, h: int, w: int) -> None:
        # (36, 36) is even at the top and odd (9 x 9) at the fourth level.
        target = _rand(2, 3, h, w, seed=9).tanh()
        pred = (target + 0.3 * _rand(2, 3, h, w, seed=10)).clamp(-1, 1)
        ours = 1 - gl.ms_ssim_loss(pred, target, win_size=3, reduction="none").numpy()
        x, y = pred.numpy() + 1, target.numpy() + 1  # genloss scores [-1, 1] as [0, 2]
        zeros = _ms_ssim_numpy(x, y, 2.0, 3, pad="zeros")
        edge = _ms_ssim_numpy(x, y, 2.0, 3, pad="edge")
        # pytorch-msssim builds its window in float32 and casts it: ~4e-7 relative here.
        np.testing.assert_allclose(ours, zeros, rtol=1e-6)
        assert np.abs(ours - edge).min() > 1e-3  # the padding choice shows in the value

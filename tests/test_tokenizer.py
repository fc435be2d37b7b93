"""Tokenizer-side terms against independent formulas written out here (float64, tight tolerance):
the learned-variance NLL and the diagonal-Gaussian KL (ldm), VQ codebook/commitment (VQ-VAE),
the LFQ entropy (vector-quantize-pytorch and Open-MAGVIT2's formulas re-derived with explicit
code enumeration), Gram and temporal Gram (Cosmos), the 3-D Haar transform (a written-out
2x2x2 block and PyWavelets), the Laplacian pyramid (numpy loops with the same kernel),
overlapping-window consistency (Cosmos) and the outlier penalty (Movie Gen's eq.).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import genloss as gl

TOL = dict(rtol=1e-12, atol=1e-12)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------ latent (VAE)


class TestLogvarNLL:
    def test_formula_with_perceptual(self):
        x, y = rand(2, 3, 4, 4, seed=1), rand(2, 3, 4, 4, seed=2)
        logvar = torch.tensor(0.3, dtype=torch.float64)
        p = torch.tensor([0.2, 0.7], dtype=torch.float64)
        expected = ((x - y).abs() + 0.5 * p.view(2, 1, 1, 1)) / math.exp(0.3) + 0.3
        out = gl.logvar_nll_loss(x, y, logvar, perceptual=p, perceptual_weight=0.5, reduction="none")
        torch.testing.assert_close(out, expected, **TOL)
        torch.testing.assert_close(gl.logvar_nll_loss(x, y, logvar, perceptual=p, perceptual_weight=0.5),
                                   expected.mean(), **TOL)
        torch.testing.assert_close(gl.logvar_nll_loss(x, y, 0.3, perceptual=p, perceptual_weight=0.5,
                                                      reduction="sum"), expected.sum(), **TOL)

    def test_gradient_of_logvar_is_one_minus_rec_over_variance(self):
        # d/ds [r e^{-s} + s] = 1 - r e^{-s} per element: the optimum is s = log(mean r).
        x, y = rand(2, 3, 4, 4, seed=3), rand(2, 3, 4, 4, seed=4)
        s = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
        gl.logvar_nll_loss(x, y, s).backward()
        torch.testing.assert_close(s.grad, 1 - ((x - y).abs() * math.exp(-0.1)).mean(), **TOL)

    def test_module_owns_the_parameter(self):
        module = gl.LogvarNLLLoss(0.5, learn_logvar=False)
        x, y = rand(1, 3, 2, 2, seed=5), rand(1, 3, 2, 2, seed=6)
        assert not module.logvar.requires_grad
        torch.testing.assert_close(module(x, y).double(), gl.logvar_nll_loss(x, y, 0.5), rtol=1e-6, atol=1e-7)

    def test_bad_perceptual_shape(self):
        x = rand(2, 3, 4, 4)
        with pytest.raises(ValueError, match="perceptual"):
            gl.logvar_nll_loss(x, x, 0.0, perceptual=torch.ones(3, dtype=torch.float64))


class TestDiagonalGaussianKL:
    def test_formula(self):
        mean, logvar = rand(3, 2, 2, 3, 3, seed=7), rand(3, 2, 2, 3, 3, seed=8)
        # KL(N(mu, s^2) || N(0, 1)) = log(1/s) + (s^2 + mu^2)/2 - 1/2, per element, summed.
        s = torch.exp(0.5 * logvar)
        per_element = torch.log(1 / s) + (s**2 + mean**2) / 2 - 0.5
        expected = per_element.flatten(1).sum(1)
        torch.testing.assert_close(gl.diagonal_gaussian_kl(mean, logvar, reduction="none"), expected, **TOL)
        torch.testing.assert_close(gl.diagonal_gaussian_kl(mean, logvar), expected.sum() / 3, **TOL)

    def test_ldm_clamp(self):
        mean = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
        logvar = torch.full((1, 1, 1, 1), 50.0, dtype=torch.float64)
        expected = 0.5 * (math.exp(20.0) - 1 - 20.0)
        assert gl.diagonal_gaussian_kl(mean, logvar).item() == pytest.approx(expected, rel=1e-12)
        assert gl.diagonal_gaussian_kl(mean, logvar, clamp=None).item() == pytest.approx(
            0.5 * (math.exp(50.0) - 51.0), rel=1e-12)

    def test_zero_at_prior(self):
        z = torch.zeros(2, 4, 3, 3, dtype=torch.float64)
        assert gl.diagonal_gaussian_kl(z, z).item() == 0.0


class TestOutlierPenalty:
    def written_out(self, z, r):
        # Movie Gen eq.: per frame, mean over (h, w) of max(||z_hw - mu|| - r ||sigma||, 0)
        b, c, h, w = z.shape
        out = torch.zeros(b, dtype=torch.float64)
        for i in range(b):
            mu = [z[i, k].mean() for k in range(c)]
            sd = [z[i, k].std() for k in range(c)]
            sd_norm = math.sqrt(sum(float(v) ** 2 for v in sd))
            total = 0.0
            for y, x in itertools.product(range(h), range(w)):
                d = math.sqrt(sum((float(z[i, k, y, x]) - float(mu[k])) ** 2 for k in range(c)))
                total += max(d - r * sd_norm, 0.0)
            out[i] = total / (h * w)
        return out

    def test_images(self):
        z = rand(2, 3, 4, 5, seed=9)
        z[0, :, 1, 2] += 6.0  # an outlier vector
        expected = self.written_out(z, 1.5)
        assert expected[0] > 0
        torch.testing.assert_close(gl.outlier_penalty_loss(z, r=1.5, reduction="none"), expected, **TOL)

    def test_videos_are_frame_by_frame(self):
        z = rand(2, 3, 2, 4, 4, seed=10)
        frames = [self.written_out(z[:, :, t], 1.0) for t in range(2)]
        torch.testing.assert_close(gl.outlier_penalty_loss(z, r=1.0, reduction="none"),
                                   (frames[0] + frames[1]) / 2, **TOL)

    def test_module(self):
        z = rand(2, 3, 4, 4, seed=11)
        torch.testing.assert_close(gl.OutlierPenaltyLoss(0.5)(z), gl.outlier_penalty_loss(z, r=0.5), **TOL)


# ---------------------------------------------------------------------------- quantization


class TestVQ:
    def test_values_and_gradients(self):
        z_e = rand(2, 4, 3, 3, seed=12).requires_grad_()
        z_q = rand(2, 4, 3, 3, seed=13).requires_grad_()
        sq = (z_e - z_q).detach().square()
        torch.testing.assert_close(gl.codebook_loss(z_e, z_q), sq.mean(), **TOL)
        torch.testing.assert_close(gl.commitment_loss(z_e, z_q, reduction="none"), sq.flatten(1).mean(1), **TOL)
        loss = gl.vector_quantization_loss(z_e, z_q, beta=0.25)
        torch.testing.assert_close(loss, 1.25 * sq.mean(), **TOL)
        loss.backward()
        n = sq.numel()
        # codebook term: d/dz_q (z_q - sg z_e)^2 / n; commitment: beta * d/dz_e (z_e - sg z_q)^2 / n
        torch.testing.assert_close(z_q.grad, 2 * (z_q - z_e).detach() / n, **TOL)
        torch.testing.assert_close(z_e.grad, 0.25 * 2 * (z_e - z_q).detach() / n, **TOL)

    def test_module(self):
        z_e, z_q = rand(2, 4, 3, seed=14), rand(2, 4, 3, seed=15)
        torch.testing.assert_close(gl.VectorQuantizationLoss(0.5)(z_e, z_q),
                                   gl.vector_quantization_loss(z_e, z_q, beta=0.5), **TOL)


def lfq_written_out(z, *, temperature, gamma, eps, log, num_codebooks=1):
    """Entropies by enumerating the 2^d codes in Python, token by token."""
    b, dim = z.shape[:2]
    d = dim // num_codebooks
    codes = [torch.tensor(c, dtype=torch.float64) for c in itertools.product([-1.0, 1.0], repeat=d)]
    tokens = z.flatten(2).permute(0, 2, 1)  # (B, N, D)
    per_sample, averages = [], [torch.zeros(len(codes), dtype=torch.float64) for _ in range(num_codebooks)]
    count = 0
    for i in range(b):
        entropies = []
        for n in range(tokens.shape[1]):
            for k in range(num_codebooks):
                v = tokens[i, n, k * d:(k + 1) * d]
                logits = torch.stack([2 * (v * c).sum() / temperature for c in codes])
                q = torch.exp(logits - logits.max())
                q = q / q.sum()
                logq = torch.log(q.clamp_min(eps)) if log == "clamp" else torch.log_softmax(logits, 0)
                entropies.append(-(q * logq).sum())
                averages[k] += q
            count += 1
        per_sample.append(torch.stack(entropies).mean())
    batch = []
    for avg in averages:
        avg = avg / count
        loga = torch.log(avg.clamp_min(eps)) if log == "clamp" else torch.log(avg + eps)
        batch.append(-(avg * loga).sum())
    return torch.stack(per_sample), torch.stack(batch).mean()


class TestLFQ:
    @pytest.mark.parametrize("log", ["clamp", "add"])
    @pytest.mark.parametrize("num_codebooks", [1, 2])
    def test_against_enumeration(self, log, num_codebooks):
        z = 0.02 * rand(2, 4, 2, 3, seed=16)  # small: soft assignments, entropies far from 0
        per_sample, batch = lfq_written_out(z, temperature=0.01, gamma=1.0, eps=1e-5, log=log,
                                            num_codebooks=num_codebooks)
        got_ps, got_b = gl.lfq_entropy_terms(z, num_codebooks=num_codebooks, log=log)
        torch.testing.assert_close(got_ps, per_sample, **TOL)
        torch.testing.assert_close(got_b, batch, **TOL)
        loss = gl.lfq_entropy_loss(z, num_codebooks=num_codebooks, codebook_weight=2.5, sample_weight=0.7,
                                   log=log, reduction="none")
        torch.testing.assert_close(loss, 0.7 * per_sample - 2.5 * batch, **TOL)
        torch.testing.assert_close(gl.lfq_entropy_loss(z, num_codebooks=num_codebooks, log=log),
                                   per_sample.mean() - batch, **TOL)

    def test_known_extremes(self):
        # Confident, evenly spread tokens: per-token entropy ~0, batch entropy log(4) (2 bits).
        codes = torch.tensor([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=torch.float64)
        z = codes.t().reshape(1, 2, 4, 1)  # 4 tokens, one per code
        per_sample, batch = gl.lfq_entropy_terms(z)
        assert per_sample.item() == pytest.approx(0.0, abs=1e-9)
        assert batch.item() == pytest.approx(math.log(4), rel=1e-9)

    def test_module_and_checks(self):
        z = 0.05 * rand(2, 3, 4, seed=17)
        torch.testing.assert_close(gl.LFQEntropyLoss(codebook_weight=2.0)(z),
                                   gl.lfq_entropy_loss(z, codebook_weight=2.0), **TOL)
        with pytest.raises(ValueError, match="num_codebooks"):
            gl.lfq_entropy_loss(z, num_codebooks=2)
        with pytest.raises(ValueError, match="`log`"):
            gl.lfq_entropy_loss(z, log="exact")


# ---------------------------------------------------------------------------------- style


class TestGram:
    def test_spatial_and_temporal(self):
        fp, ft = rand(2, 3, 2, 4, 5, seed=18), rand(2, 3, 2, 4, 5, seed=19)

        def gram(f, norm):  # written out with loops over channels
            c = f.shape[0]
            return torch.stack([torch.stack([(f[i] * f[j]).sum() / norm for j in range(c)]) for i in range(c)])

        temporal = torch.stack([((gram(fp[b], 40) - gram(ft[b], 40)) ** 2).mean() for b in range(2)])
        torch.testing.assert_close(gl.gram_loss(fp, ft, temporal=True, reduction="none"), temporal, **TOL)
        per_frame = torch.stack([torch.stack([((gram(fp[b, :, t], 20) - gram(ft[b, :, t], 20)) ** 2).mean()
                                              for t in range(2)]).mean() for b in range(2)])
        torch.testing.assert_close(gl.gram_loss(fp, ft, reduction="none"), per_frame, **TOL)
        image = torch.stack([((gram(fp[b, :, 0], 20) - gram(ft[b, :, 0], 20)) ** 2).mean() for b in range(2)])
        torch.testing.assert_close(gl.gram_loss(fp[:, :, 0], ft[:, :, 0], reduction="none"), image, **TOL)
        torch.testing.assert_close(gl.GramLoss(temporal=True)(fp, ft), temporal.mean(), **TOL)

    def test_temporal_needs_clips(self):
        with pytest.raises(ValueError, match="temporal=True"):
            gl.gram_loss(rand(1, 2, 3, 3), rand(1, 2, 3, 3), temporal=True)


# ------------------------------------------------------------------------------ frequency


class TestHaar3D:
    def test_written_out_block(self):
        v = rand(1, 1, 2, 2, 2, seed=20)
        out = gl.haar_wavelet_3d(v)
        assert out.shape == (1, 1, 8, 1, 1, 1)
        signs = {"L": (1, 1), "H": (1, -1)}
        for index, name in enumerate(gl.frequency.HAAR_SUBBANDS):
            st, sh, sw = (signs[c] for c in name)
            expected = sum(st[i] * sh[j] * sw[k] * v[0, 0, i, j, k]
                           for i, j, k in itertools.product(range(2), repeat=3)) / (2 * math.sqrt(2))
            torch.testing.assert_close(out[0, 0, index, 0, 0, 0], expected, **TOL)

    def test_against_pywavelets(self):
        import pywt  # a dev dependency: the reference this is checked against
        v = rand(2, 3, 4, 6, 8, seed=21)
        out = gl.haar_wavelet_3d(v)
        for b, c in itertools.product(range(2), range(3)):
            coeffs = pywt.dwtn(v[b, c].numpy(), "haar")  # keys: 'a'/'d' per axis (t, h, w)
            for index, name in enumerate(gl.frequency.HAAR_SUBBANDS):
                key = name.replace("L", "a").replace("H", "d").lower()
                np.testing.assert_allclose(out[b, c, index].numpy(), coeffs[key], rtol=1e-12, atol=1e-12)

    def test_orthonormal_and_causal(self):
        v = rand(1, 2, 5, 4, 4, seed=22)
        out = gl.haar_wavelet_3d(v, causal=True)
        padded = torch.cat([v[:, :, :1], v], dim=2)
        torch.testing.assert_close(out.square().sum(), padded.square().sum(), **TOL)
        torch.testing.assert_close(out, gl.haar_wavelet_3d(padded), **TOL)
        with pytest.raises(ValueError, match="odd"):
            gl.haar_wavelet_3d(rand(1, 1, 4, 2, 2), causal=True)
        with pytest.raises(ValueError, match="even"):
            gl.haar_wavelet_3d(rand(1, 1, 3, 2, 2))

    def test_wavelet_loss_levels(self):
        p, t = rand(2, 1, 4, 4, 4, seed=23), rand(2, 1, 4, 4, 4, seed=24)
        wp, wt = gl.haar_wavelet_3d(p), gl.haar_wavelet_3d(t)
        level1 = (wp[:, :, 1:] - wt[:, :, 1:]).abs().flatten(1).mean(1)
        wp2, wt2 = gl.haar_wavelet_3d(wp[:, :, 0]), gl.haar_wavelet_3d(wt[:, :, 0])
        level2 = (wp2 - wt2).abs().flatten(1).mean(1)  # include_low: all 8 bands
        torch.testing.assert_close(gl.wavelet_loss(p, t, reduction="none"), level1, **TOL)
        torch.testing.assert_close(gl.wavelet_loss(p, t, levels=2, include_low=True, reduction="none"),
                                   level1 + level2, **TOL)
        torch.testing.assert_close(gl.WaveletLoss(2, include_low=True)(p, t), (level1 + level2).mean(), **TOL)
        # a constant offset lives in LLL only: no high-frequency loss
        assert gl.wavelet_loss(p, p + 0.5).item() == pytest.approx(0.0, abs=1e-14)


def np_blur(x, kernel):
    """Separable 5-tap blur with numpy's reflect padding (no edge repeat), loops over taps."""
    padded = np.pad(x, 2, mode="reflect")
    h, w = x.shape
    rows = sum(kernel[i] * padded[i:i + h, :] for i in range(5))
    return sum(kernel[j] * rows[:, j:j + w] for j in range(5))


def np_pyramid(x, levels):
    kernel = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
    bands, g = [], x
    for _ in range(levels):
        low = np_blur(g, kernel)[::2, ::2]
        up = np.zeros_like(g)
        up[::2, ::2] = low
        bands.append(g - 4 * np_blur(up, kernel))
        g = low
    return bands + [g]


class TestLaplacian:
    def test_pyramid_against_numpy(self):
        x = rand(1, 1, 12, 10, seed=25)
        ours = gl.laplacian_pyramid(x, 3)
        ref = np_pyramid(x[0, 0].numpy(), 3)
        for a, b in zip(ours, ref):
            np.testing.assert_allclose(a[0, 0].numpy(), b, rtol=1e-12, atol=1e-12)
        # reconstruction: g_l = L_l + E(g_{l+1}) telescopes back to x
        assert len(ours) == 4

    def test_loss_against_numpy(self):
        p, t = rand(2, 2, 3, 12, 12, seed=26), rand(2, 2, 3, 12, 12, seed=27)
        expected = np.zeros(2)
        for b in range(2):
            frames = []
            for f in range(3):
                total = 0.0
                for level in range(2):
                    diffs = [np.abs(np_pyramid(p[b, c, f].numpy(), 2)[level] - np_pyramid(t[b, c, f].numpy(), 2)[level])
                             for c in range(2)]
                    total += 4.0**-level * np.mean(np.stack(diffs))
                frames.append(total)
            expected[b] = np.mean(frames)
        got = gl.laplacian_pyramid_loss(p, t, levels=2, reduction="none")
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gl.LaplacianPyramidLoss(2)(p, t), got.mean(), **TOL)

    def test_constant_offset_is_free_and_checks(self):
        p = rand(1, 3, 8, 8, seed=28)
        assert gl.laplacian_pyramid_loss(p, p + 1.0, levels=2).item() == pytest.approx(0.0, abs=1e-13)
        with pytest.raises(ValueError, match="at least 12x12"):
            gl.laplacian_pyramid_loss(p, p, levels=3)
        with pytest.raises(ValueError, match="one factor per level"):
            gl.laplacian_pyramid_loss(p, p, levels=2, weights=[1.0])


# ---------------------------------------------------------------------- chunked decoding


class TestWindowConsistency:
    def test_against_cosmos_formula(self):
        video = rand(2, 3, 7, 2, 2, seed=29)
        windows = gl.overlapping_windows(video, 4, 1)
        assert windows.shape == (2, 4, 3, 4, 2, 2)
        torch.testing.assert_close(windows[:, 2], video[:, :, 2:6], **TOL)
        decoded = windows + 0.1 * rand(*windows.shape, seed=30)
        # Cosmos: mean |videos[:, :-1, :, step:] - videos[:, 1:, :, :-step]|
        expected = (decoded[:, :-1, :, 1:] - decoded[:, 1:, :, :-1]).abs().flatten(1).mean(1)
        torch.testing.assert_close(gl.window_consistency_loss(decoded, stride=1, reduction="none"), expected, **TOL)
        # written out for stride 2: window n frame 2+j against window n+1 frame j
        decoded2 = gl.overlapping_windows(video, 4, 2) + 0.1 * rand(2, 2, 3, 4, 2, 2, seed=31)
        diffs = [(decoded2[:, 0, :, 2 + j] - decoded2[:, 1, :, j]).square() for j in range(2)]
        expected2 = torch.stack(diffs, 1).flatten(1).mean(1)
        torch.testing.assert_close(gl.window_consistency_loss(decoded2, stride=2, distance="l2", reduction="none"),
                                   expected2, **TOL)
        torch.testing.assert_close(gl.WindowConsistencyLoss(2, distance="l2")(decoded2), expected2.mean(), **TOL)

    def test_undecoded_windows_agree(self):
        windows = gl.overlapping_windows(rand(1, 2, 9, 3, 3, seed=32), 5, 2)
        assert gl.window_consistency_loss(windows, stride=2).item() == 0.0

    def test_checks(self):
        with pytest.raises(ValueError, match="stride"):
            gl.window_consistency_loss(rand(1, 2, 1, 3, 2, 2), stride=3)
        with pytest.raises(ValueError, match="at least 2 windows"):
            gl.window_consistency_loss(rand(1, 1, 1, 3, 2, 2), stride=1)


@pytest.mark.parametrize("fn, args", [
    (gl.logvar_nll_loss, (rand(2, 3, 4, 4), rand(2, 3, 4, 4), 0.0)),
    (gl.codebook_loss, (rand(2, 3, 4), rand(2, 3, 4))),
    (gl.lfq_entropy_loss, (rand(2, 3, 4),)),
    (gl.outlier_penalty_loss, (rand(2, 3, 4, 4),)),
    (gl.wavelet_loss, (rand(1, 1, 2, 2, 2), rand(1, 1, 2, 2, 2))),
])
def test_unknown_reduction(fn, args):
    with pytest.raises(ValueError, match="reduction"):
        fn(*args, reduction="avg")

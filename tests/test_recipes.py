"""Recipe presets against each codebase's loss written out here, step by step as its released code
computes it (float64): taming's VQLPIPSWithDiscriminator, Open-MAGVIT2's video loss (SEED-Voken),
magvit2-pytorch's VideoTokenizer, VidTok's GeneralLPIPSWithDiscriminator, WF-VAE's
LPIPSWithDiscriminator3D, Cosmos's TokenizerLoss and OmniTokenizer's forward. Tiny seeded
networks stand in for the discriminators and LPIPS; the decoder's "last layer" is a per-channel
scale the reconstruction depends on, so the adaptive weights are real gradient ratios.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

import genloss as gl
from genloss import recipes

TOL = dict(rtol=1e-10, atol=1e-12)
B, T, H, W = 2, 3, 8, 8


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def seeded(module, seed):
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p, std=0.3)
    return module.double()


def perceptual(a, b):
    """A stand-in for LPIPS(reduction='none'): one value per frame."""
    return (a.tanh() - b.tanh()).square().flatten(1).mean(1)


def batch(video=True, seed=0):
    """``(inputs, reconstructions, last_layer)``: reconstructions = base · last_layer (per channel)."""
    shape = (B, 3, T, H, W) if video else (B, 3, H, W)
    inputs = rand(*shape, seed=seed).clamp(-1, 1)
    last = (1 + 0.1 * rand(3, seed=seed + 1)).requires_grad_()
    view = (1, 3, 1, 1, 1) if video else (1, 3, 1, 1)
    recon = (inputs + 0.3 * rand(*shape, seed=seed + 2)) * last.view(view)
    return inputs, recon, last


def adaptive(nll, g, last, eps=1e-4, top=1e4):
    """taming's calculate_adaptive_weight (without the discriminator weight)."""
    nll_grads = torch.autograd.grad(nll, last, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g, last, retain_graph=True)[0]
    return torch.clamp(torch.norm(nll_grads) / (torch.norm(g_grads) + eps), 0.0, top).detach()


def sigmoid_ce_ones(logits):
    """Open-MAGVIT2/VidTok's _sigmoid_cross_entropy_with_logits with labels 1, as written there."""
    zeros = torch.zeros_like(logits)
    cond = logits >= zeros
    relu = torch.where(cond, logits, zeros)
    neg_abs = torch.where(cond, -logits, logits)
    return relu - logits + torch.log1p(torch.exp(neg_abs))


def hinge_d(real, fake):
    return 0.5 * (torch.mean(F.relu(1.0 - real)) + torch.mean(F.relu(1.0 + fake)))


def all_codes(bits):
    idx = torch.arange(2**bits)
    return ((idx[:, None] & (2 ** torch.arange(bits))) != 0).double() * 2 - 1


# ---------------------------------------------------------------------------------- taming


class TestTaming:
    def setup_method(self):
        self.D = seeded(nn.Conv2d(3, 1, 3), 1)
        self.recipe = recipes.taming_vqgan(perceptual=perceptual, discriminator=self.D, disc_start=10)

    def reference(self, step, x, xr, z_e, z_q, last):
        rec_loss = torch.abs(x - xr) + 1.0 * perceptual(x, xr).view(-1, 1, 1, 1)
        nll = torch.mean(rec_loss)
        g = -torch.mean(self.D(xr))
        d_weight = adaptive(nll, g, last) * 0.8
        disc_factor = 1.0 if step >= 10 else 0.0
        q = torch.mean((z_q.detach() - z_e) ** 2) + 0.25 * torch.mean((z_q - z_e.detach()) ** 2)
        return nll + d_weight * disc_factor * g + 1.0 * q

    @pytest.mark.parametrize("step", [9, 10])
    def test_total(self, step):
        x, xr, last = batch(video=False)
        z_e, z_q = rand(B, 4, 2, 2, seed=5).requires_grad_(), rand(B, 4, 2, 2, seed=6).requires_grad_()
        total, logs = self.recipe(step, **self.recipe.generator_thunks(
            inputs=x, reconstructions=xr, z_e=z_e, z_q=z_q, last_layer=last))
        torch.testing.assert_close(total, self.reference(step, x, xr, z_e, z_q, last), **TOL)
        assert ("adv" in logs) == (step >= 10)
        d_total, _ = self.recipe.discriminator(step, **self.recipe.discriminator_thunks(inputs=x, reconstructions=xr))
        expected_d = hinge_d(self.D(x), self.D(xr)) * (1.0 if step >= 10 else 0.0)
        # before the start no term runs: CompositeLoss's total is then a float32 zero
        torch.testing.assert_close(d_total, expected_d, check_dtype=False, **TOL)

    def test_beta_sits_on_the_codebook_term(self):
        # legacy VectorQuantizer2: the codebook (z_q) gradient is scaled by beta, z_e's is not.
        x, xr, last = batch(video=False)
        z_e, z_q = rand(B, 4, 2, 2, seed=7).requires_grad_(), rand(B, 4, 2, 2, seed=8).requires_grad_()
        total, _ = self.recipe(0, **self.recipe.generator_thunks(
            inputs=x, reconstructions=xr, z_e=z_e, z_q=z_q, last_layer=last))
        total.backward()
        n = z_e.numel()
        torch.testing.assert_close(z_e.grad, 2 * (z_e - z_q).detach() / n, **TOL)
        torch.testing.assert_close(z_q.grad, 0.25 * 2 * (z_q - z_e).detach() / n, **TOL)


# -------------------------------------------------------------------------------- Open-MAGVIT2


def open_magvit2_entropy(z, temperature=0.01, eps=1e-5):
    """lookup_free_quantize.entropy_loss on 2 x·codebook logits, as Open-MAGVIT2 computes it."""
    x = rearrange(z, "b d ... -> b (...) d")
    logits = 2 * torch.einsum("bnd,jd->bnj", x, all_codes(z.shape[1]))
    probs = F.softmax(logits / temperature, -1)
    log_probs = F.log_softmax(logits / temperature + eps, -1)
    avg_probs = probs.reshape(-1, probs.shape[-1]).mean(0)
    avg_entropy = -torch.sum(avg_probs * torch.log(avg_probs + eps))
    sample_entropy = torch.mean(-torch.sum(probs * log_probs, -1))
    return sample_entropy - avg_entropy


class TestOpenMagvit2Video:
    def setup_method(self):
        self.D = seeded(nn.Conv3d(3, 1, (2, 3, 3)), 2)
        self.recipe = recipes.open_magvit2_video(perceptual=perceptual, discriminator=self.D)

    def test_generator_total(self):
        x, xr, _ = batch()
        z = 0.05 * rand(B, 4, 2, 2, 2, seed=9)
        total, logs = self.recipe(0, **self.recipe.generator_thunks(inputs=x, reconstructions=xr, latents=z))
        fold = "b c t h w -> (b t) c h w"
        fx, fxr = rearrange(x, fold), rearrange(xr, fold)
        nll = torch.mean(torch.abs(fx - fxr) + 1.0 * perceptual(fx, fxr).view(-1, 1, 1, 1))
        logits = self.D(xr)
        g = torch.mean(sigmoid_ce_ones(logits.reshape(B, -1).mean(-1)))
        quantized = torch.where(z > 0, 1.0, -1.0).double()
        commit = F.mse_loss(z, quantized)
        expected = nll + 0.3 * 1.0 * g + 0.1 * open_magvit2_entropy(z) + 0.25 * commit
        torch.testing.assert_close(total, expected, **TOL)
        assert set(logs) == {"rec", "perceptual", "adv", "entropy", "commitment", "total"}

    def test_discriminator_with_lecam_ema(self):
        x, xr, _ = batch()
        ema_real = ema_fake = 0.0
        for seed in (0, 1):  # two steps: the EMAs carry over
            x, xr = x + 0.1 * seed, xr - 0.1 * seed
            d_total, _ = self.recipe.discriminator(5, **self.recipe.discriminator_thunks(inputs=x, reconstructions=xr))
            r, f = self.D(x), self.D(xr)
            ema_real = ema_real * 0.999 + torch.mean(r).item() * 0.001
            ema_fake = ema_fake * 0.999 + torch.mean(f).item() * 0.001
            lecam = torch.mean(F.relu(r - ema_fake).pow(2)) + torch.mean(F.relu(ema_real - f).pow(2))
            torch.testing.assert_close(d_total, 1.0 * (lecam * 0.05 + hinge_d(r, f)), **TOL)

    def test_adaptive_variant_and_enlarge_schedule(self):
        recipe = recipes.open_magvit2_video(perceptual=perceptual, discriminator=self.D, gen_loss_weight=None,
                                            codebook_enlarge_ratio=3, codebook_enlarge_steps=2000)
        x, xr, last = batch()
        z = 0.05 * rand(B, 4, 2, 2, 2, seed=10)
        total, _ = recipe(500, **recipe.generator_thunks(inputs=x, reconstructions=xr, latents=z, last_layer=last))
        fold = "b c t h w -> (b t) c h w"
        fx, fxr = rearrange(x, fold), rearrange(xr, fold)
        nll = torch.mean(torch.abs(fx - fxr) + perceptual(fx, fxr).view(-1, 1, 1, 1))
        g = torch.mean(sigmoid_ce_ones(self.D(xr).reshape(B, -1).mean(-1)))
        scale_codebook = 0.1 * open_magvit2_entropy(z)
        scale_codebook = 3 * max(0, 1 - 500 / 2000) * scale_codebook + scale_codebook
        commit = F.mse_loss(z, torch.where(z > 0, 1.0, -1.0).double())
        expected = nll + adaptive(nll, g, last) * 0.8 * g + scale_codebook + 0.25 * commit
        torch.testing.assert_close(total, expected, **TOL)


# ------------------------------------------------------------------------------ magvit2-pytorch


def lucidrains_lfq_aux(z, gamma=2.5, entropy_weight=0.1, commit_weight=1.0, clamp=10.0):
    """vector-quantize-pytorch LFQ.forward's aux loss (one codebook, inv_temperature 100)."""
    x = (z / clamp).tanh() * clamp
    x = rearrange(x, "b d ... -> (b ...) d")
    codebook = all_codes(x.shape[-1])
    distance = -2 * torch.einsum("id,jd->ij", x, codebook)
    prob = (-distance * 100.0).softmax(dim=-1)

    def entropy(p):
        return (-p * p.clamp(min=1e-5).log()).sum(dim=-1)

    per_sample_entropy = entropy(prob).mean()
    codebook_entropy = entropy(prob.mean(0)).mean()
    quantized = torch.where(x > 0, 1.0, -1.0).double()
    commit = F.mse_loss(x, quantized)
    return (per_sample_entropy - gamma * codebook_entropy) * entropy_weight + commit * commit_weight


def pick(video, index):
    return video[torch.arange(video.shape[0]), :, index]


class TestMagvit2Pytorch:
    def setup_method(self):
        self.D = seeded(nn.Conv2d(3, 1, 3), 3)
        self.vgg = seeded(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)), 4)
        self.recipe = recipes.magvit2_pytorch(perceptual_features=self.vgg, discriminator=self.D,
                                              discr_start_after_step=2)

    @pytest.mark.parametrize("step", [1, 2])
    def test_generator_total(self, step):
        x, xr, last = batch()
        z = 0.1 * rand(B, 3, 2, 2, 2, seed=11)
        total, _ = self.recipe(step, **self.recipe.generator_thunks(
            inputs=x, reconstructions=xr, latents=z, last_layer=last, generator=torch.Generator().manual_seed(7)))
        gen = torch.Generator().manual_seed(7)
        perc_idx, gan_idx = torch.randint(0, T, (B,), generator=gen), torch.randint(0, T, (B,), generator=gen)
        perceptual_loss = F.mse_loss(self.vgg(pick(x, perc_idx)), self.vgg(pick(xr, perc_idx)))
        expected = F.mse_loss(x, xr) + lucidrains_lfq_aux(z) * 1.0 + perceptual_loss * 0.1
        if step + 1 > 2:  # the trainer's train_adversarially
            gen_loss = -self.D(pick(xr, gan_idx)).mean()
            norm_p = torch.autograd.grad(perceptual_loss, last, retain_graph=True)[0].norm(p=2)
            norm_g = torch.autograd.grad(gen_loss, last, retain_graph=True)[0].norm(p=2)
            weight = (norm_p / norm_g.clamp(min=1e-3)).clamp(max=1e3)
            expected = expected + gen_loss * weight * 1.0
        torch.testing.assert_close(total, expected, **TOL)

    @pytest.mark.parametrize("step", [4, 5])
    def test_discriminator_gradient_penalty_every_4(self, step):
        x, xr, _ = batch()
        d_total, logs = self.recipe.discriminator(step, **self.recipe.discriminator_thunks(
            inputs=x, reconstructions=xr, generator=torch.Generator().manual_seed(3)))
        index = torch.randint(0, T, (B,), generator=torch.Generator().manual_seed(3))
        real, fake = pick(x, index).requires_grad_(), pick(xr, index).detach().requires_grad_()
        real_logits, fake_logits = self.D(real), self.D(fake)
        expected = (F.relu(1 + fake_logits) + F.relu(1 - real_logits)).mean()
        if step % 4 == 0:
            def gp(images, output):
                grads = torch.autograd.grad(output, images, torch.ones_like(output), create_graph=True)[0]
                return (rearrange(grads, "b ... -> b (...)").norm(2, dim=1) ** 2).mean()
            expected = expected + (gp(real, real_logits) + gp(fake, fake_logits)) * 10.0
        torch.testing.assert_close(d_total, expected, **TOL)
        assert ("gradient_penalty" in logs) == (step % 4 == 0)


# ---------------------------------------------------------------------------------- VidTok


def kl_ldm(mean, logvar):
    logvar = torch.clamp(logvar, -30.0, 20.0)
    kl = 0.5 * torch.sum(torch.pow(mean, 2) + torch.exp(logvar) - 1.0 - logvar, dim=[1, 2, 3])
    return torch.sum(kl) / kl.shape[0]


class TestVidTok:
    def setup_method(self):
        self.D = seeded(nn.Conv2d(3, 1, 3), 5)
        self.recipe = recipes.vidtok_kl(perceptual=perceptual, discriminator=self.D, disc_start=3)

    @pytest.mark.parametrize("step", [2, 3])
    def test_generator_total(self, step):
        x, xr, last = batch()
        mean, post_logvar = rand(B, 4, 2, 2, 2, seed=12), rand(B, 4, 2, 2, 2, seed=13)
        logvar = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
        total, _ = self.recipe(step, **self.recipe.generator_thunks(
            inputs=x, reconstructions=xr, posterior_mean=mean, posterior_logvar=post_logvar,
            logvar=logvar, last_layer=last))
        fx, fxr = (rearrange(v, "b c t h w -> (b t) c h w") for v in (x, xr))
        rec_loss = torch.abs(fx - fxr) + 1.0 * perceptual(fx, fxr).view(-1, 1, 1, 1)
        nll = rec_loss / torch.exp(logvar) + logvar
        nll = torch.sum(nll) / nll.shape[0]
        g = torch.mean(sigmoid_ce_ones(self.D(fxr).reshape(fxr.shape[0], -1).mean(-1)))
        d_weight = adaptive(nll, g, last) * 0.2
        disc_factor = 1.0 if step >= 3 else 0.0
        expected = nll + d_weight * disc_factor * g + 1e-6 * kl_ldm(mean, post_logvar)
        torch.testing.assert_close(total, expected, **TOL)

    def test_discriminator_on_frames(self):
        x, xr, _ = batch()
        d_total, _ = self.recipe.discriminator(3, **self.recipe.discriminator_thunks(inputs=x, reconstructions=xr))
        fx, fxr = (rearrange(v, "b c t h w -> (b t) c h w") for v in (x, xr))
        r, f = self.D(fx), self.D(fxr)
        ema_real, ema_fake = torch.mean(r).item() * 0.001, torch.mean(f).item() * 0.001
        lecam = torch.mean(F.relu(r - ema_fake).pow(2)) + torch.mean(F.relu(ema_real - f).pow(2))
        torch.testing.assert_close(d_total, lecam * 0.005 + hinge_d(r, f), **TOL)


# ---------------------------------------------------------------------------------- WF-VAE


class TestWFVAE:
    def setup_method(self):
        self.D = seeded(nn.Conv3d(3, 1, (2, 3, 3)), 6)
        self.recipe = recipes.wf_vae(perceptual=perceptual, discriminator=self.D, disc_start=1)

    @pytest.mark.parametrize("step", [0, 1])
    def test_generator_total(self, step):
        x, xr, last = batch()
        mean, post_logvar = rand(B, 4, 2, 2, 2, seed=14), rand(B, 4, 2, 2, 2, seed=15)
        coeffs = [rand(B, 24, 2, 4, 4, seed=s) for s in range(20, 24)]
        total, _ = self.recipe(step, **self.recipe.generator_thunks(
            inputs=x, reconstructions=xr, posterior_mean=mean, posterior_logvar=post_logvar,
            wavelet_coeffs=coeffs, last_layer=last))
        logvar = torch.zeros((), dtype=torch.float64)
        fx, fxr = (rearrange(v, "b c t h w -> (b t) c h w") for v in (x, xr))
        rec_loss = torch.abs(fx - fxr) + 1.0 * perceptual(fx, fxr).view(-1, 1, 1, 1)
        nll = rec_loss / torch.exp(logvar) + logvar
        nll = torch.sum(nll) / nll.shape[0]
        wl = torch.sum(torch.abs(coeffs[0] - coeffs[1])) / B + torch.sum(torch.abs(coeffs[2] - coeffs[3])) / B
        expected = nll + 1e-6 * kl_ldm(mean, post_logvar) + 0.1 * wl
        if step >= 1:
            g = -torch.mean(self.D(xr))
            expected = expected + adaptive(nll, g, last, eps=1e-6, top=1e6) * 0.5 * 1.0 * g
        torch.testing.assert_close(total, expected, **TOL)
        d_total, _ = self.recipe.discriminator(step, **self.recipe.discriminator_thunks(inputs=x, reconstructions=xr))
        torch.testing.assert_close(d_total, hinge_d(self.D(x), self.D(xr)) * (1.0 if step >= 1 else 0.0),
                                   check_dtype=False, **TOL)


# ---------------------------------------------------------------------------------- Cosmos


class TestCosmos:
    def setup_method(self):
        self.net = seeded(nn.ModuleList([nn.Conv2d(3, 2, 3, padding=1)] + [nn.Conv2d(2, 2, 3, padding=1)
                                                                         for _ in range(4)]), 8)
        self.recipe = recipes.cosmos_continuous(features=self.features)

    def features(self, frames):
        outs, h = [], frames
        for conv in self.net:
            h = torch.relu(conv(h))
            outs.append(h)
        return outs

    @pytest.mark.parametrize("step", [499999, 500000])
    def test_total(self, step):
        x, xr, _ = batch()
        mean, logvar = rand(B, 4, 2, 2, 2, seed=16), rand(B, 4, 2, 2, 2, seed=17)
        total, logs = self.recipe(step, **self.recipe.generator_thunks(
            inputs=x, reconstructions=xr, posterior_mean=mean, posterior_logvar=logvar))
        weights = [1.0 / 2.6, 1.0 / 4.8, 1.0 / 3.7, 1.0 / 5.6, 10.0 / 1.5]
        lpips_w, gram_w = (0.1, 0.0) if step < 500000 else (0.073, 0.062)
        color = torch.mean(torch.abs(x - xr))
        kl = torch.mean(0.5 * (torch.pow(mean, 2) + torch.exp(logvar) - 1.0 - logvar))
        fx, fxr = (rearrange(v, "b c t h w -> (b t) c h w") for v in (x, xr))
        outs0, outs1 = self.features(fx), self.features(fxr)
        val = sum(w * torch.abs(a - b).mean([1, 2, 3]) for w, a, b in zip(weights, outs0, outs1))
        expected = color + 1e-6 * kl + lpips_w * val.mean()

        def temporal_gram(f):  # Cosmos's batch2time then reshape to (B, C, T h w)
            f = rearrange(f, "(b t) c h w -> b c t h w", b=B)
            r = torch.reshape(f, [B, f.shape[1], -1])
            return torch.matmul(r, r.transpose(1, 2)) / float(f.shape[2] * f.shape[3] * f.shape[4])

        gram = sum(w * ((temporal_gram(a) - temporal_gram(b)) ** 2).mean([1, 2]) for w, a, b in zip(weights, outs0, outs1))
        expected = expected + gram_w * gram.mean()
        torch.testing.assert_close(total, expected, **TOL)
        assert ("gram" in logs) == (step >= 500000)
        assert self.recipe.discriminator is None


# ----------------------------------------------------------------------------- OmniTokenizer


class FeatureD(nn.Module):
    """A discriminator returning (logits, [features..., logits]) like OmniTokenizer's."""

    def __init__(self, conv, seed):
        super().__init__()
        self.a, self.b = conv(3, 2), conv(2, 1)
        seeded(self, seed)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        out = self.b(h)
        return out, [h, out]


class TestOmniTokenizer:
    def setup_method(self):
        self.Di = FeatureD(lambda i, o: nn.Conv2d(i, o, 3), 9)
        self.Dv = FeatureD(lambda i, o: nn.Conv3d(i, o, (2, 3, 3)), 10)
        self.recipe = recipes.omnitokenizer(perceptual=perceptual, image_discriminator=self.Di,
                                            video_discriminator=self.Dv)

    def test_generator_and_discriminator(self):
        x, xr, _ = batch()
        z_e, z_q = rand(B, 8, 2, 2, 2, seed=18), rand(B, 8, 2, 2, 2, seed=19)
        total, _ = self.recipe(0, **self.recipe.generator_thunks(
            inputs=x, reconstructions=xr, z_e=z_e, z_q=z_q, generator=torch.Generator().manual_seed(4)))
        idx = torch.randint(0, T, (B,), generator=torch.Generator().manual_seed(4))
        frames, frames_recon = pick(x, idx), pick(xr, idx)
        recon_loss = F.l1_loss(xr, x) * 4.0
        commitment = F.mse_loss(z_q.detach(), z_e) * 1.0
        perceptual_loss = perceptual(frames, frames_recon).mean() * 4.0
        logits_image_fake, pred_image_fake = self.Di(frames_recon)
        logits_video_fake, pred_video_fake = self.Dv(xr)
        g_loss = 0.01 * -torch.mean(logits_image_fake) + 1.0 * -torch.mean(logits_video_fake)
        _, pred_image_real = self.Di(frames)
        _, pred_video_real = self.Dv(x)
        feat = sum(1.0 * F.l1_loss(pred_image_fake[i], pred_image_real[i].detach()) for i in range(len(pred_image_fake) - 1))
        feat = feat + sum(1.0 * F.l1_loss(pred_video_fake[i], pred_video_real[i].detach())
                          for i in range(len(pred_video_fake) - 1))
        expected = recon_loss + commitment + 1.0 * g_loss + perceptual_loss + 1.0 * 4.0 * feat
        torch.testing.assert_close(total, expected, **TOL)
        d_total, _ = self.recipe.discriminator(0, **self.recipe.discriminator_thunks(
            inputs=x, reconstructions=xr, generator=torch.Generator().manual_seed(4)))
        d_image = hinge_d(self.Di(frames)[0], self.Di(frames_recon)[0])
        d_video = hinge_d(self.Dv(x)[0], self.Dv(xr)[0])
        torch.testing.assert_close(d_total, 1.0 * (0.01 * d_image + 1.0 * d_video), **TOL)


# ------------------------------------------------------------------------------- the table


FACTORIES = ["taming_vqgan", "open_magvit2_video", "magvit2_pytorch", "vidtok_kl", "wf_vae",
             "cosmos_continuous", "omnitokenizer"]


@pytest.mark.parametrize("name", FACTORIES)
def test_sources_are_named(name):
    factory = getattr(recipes, name)
    doc = factory.__doc__
    assert "Source:" in doc
    recipe = {
        "magvit2_pytorch": lambda: factory(perceptual_features=None, discriminator=None),
        "cosmos_continuous": lambda: factory(features=None),
        "omnitokenizer": lambda: factory(perceptual=None, image_discriminator=None, video_discriminator=None),
    }.get(name, lambda: factory(perceptual=None, discriminator=None))()
    assert isinstance(recipe, gl.CompositeLoss) and recipe.name == name and recipe.sources
    for source in recipe.sources:
        repository, path = source.split(": ")
        assert path.split("/")[-1] in doc, f"{name}'s docstring does not cite {path}"


def test_schedules():
    piecewise = recipes.Piecewise([10, 20], [0.0, 1.0, 2.0])
    assert [piecewise(s) for s in (0, 9, 10, 19, 20, 99)] == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    every = recipes.EveryK(10.0, 4, start=2)
    assert [every(s) for s in range(9)] == [0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 10.0]
    decay = recipes.LinearDecay(0.1, 3.0, 2000)
    assert [decay(s) for s in (0, 1000, 2000, 5000)] == pytest.approx([0.4, 0.25, 0.1, 0.1])

"""Adversarial losses: every kind against an independent formula, every reduction, errors."""

import math

import pytest
import torch
import torch.nn.functional as F

import genloss as gl

LOGIT_SHAPES = [(4,), (4, 1), (4, 1, 5, 5), (4, 8), (4, 1, 3, 4, 4)]  # scalar, patch, per-frame, video patch


def logits(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


def softplus(x):
    return torch.log1p(torch.exp(x))  # independent of F.softplus's thresholding


# Per-sample reference terms, written with plain elementwise math and a Python loop over samples.
D_TERMS = {
    "hinge": (lambda r: torch.clamp(1 - r, min=0), lambda f: torch.clamp(1 + f, min=0)),
    "non_saturating": (lambda r: softplus(-r), lambda f: softplus(f)),
    "lsgan": (lambda r: 0.5 * (r - 1) ** 2, lambda f: 0.5 * f**2),
    "wgan": (lambda r: -r, lambda f: f),
}
G_TERMS = {
    "hinge": lambda f: -f,
    "non_saturating": lambda f: softplus(-f),
    "lsgan": lambda f: 0.5 * (f - 1) ** 2,
    "wgan": lambda f: -f,
}


def per_sample(x):
    return torch.stack([x[b].mean() for b in range(x.shape[0])])


def close(actual, expected):
    """float64 formulas: equal up to summation order (~1e-16 relative)."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)


def close32(actual, expected):
    """float32 against torch's BCE: a mean over 100 logits rounds at ~1e-7 relative."""
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0)


class TestDiscriminatorLoss:
    @pytest.mark.parametrize("kind", list(D_TERMS))
    @pytest.mark.parametrize("shape", LOGIT_SHAPES)
    def test_formula(self, kind, shape):
        r, f = logits(shape, 0), logits(shape, 1)
        real_term, fake_term = D_TERMS[kind]
        expected = per_sample(real_term(r)) + per_sample(fake_term(f))
        close(gl.discriminator_loss(r, f, kind=kind, reduction="none"), expected)
        close(gl.discriminator_loss(r, f, kind=kind), expected.mean())
        close(gl.discriminator_loss(r, f, kind=kind, reduction="sum"), expected.sum())
        # For equally sized samples "mean" is the mean over all logits, as in the API table.
        close(gl.discriminator_loss(r, f, kind=kind), real_term(r).mean() + fake_term(f).mean())

    @pytest.mark.parametrize("shape", LOGIT_SHAPES)
    def test_relativistic(self, shape):
        r, f = logits(shape, 0), logits(shape, 1)
        expected = per_sample(softplus(f - r))
        close(gl.discriminator_loss(r, f, kind="relativistic", reduction="none"), expected)
        close(gl.discriminator_loss(r, f, kind="relativistic"), expected.mean())

    def test_known_answers(self):
        r, f = torch.full((2, 1), 1.0), torch.full((2, 1), -1.0)
        # A discriminator exactly at the hinge margins costs 0.
        assert gl.discriminator_loss(r, f, kind="hinge").item() == 0.0
        assert gl.discriminator_loss(r, torch.zeros(2, 1), kind="lsgan").item() == 0.0
        assert gl.discriminator_loss(r, f, kind="wgan").item() == -2.0
        # An undecided discriminator (all logits 0) pays log 2 on each side.
        zeros = torch.zeros(3, 1, 4, 4)
        assert gl.discriminator_loss(zeros, zeros, kind="non_saturating").item() == pytest.approx(2 * math.log(2))
        assert gl.discriminator_loss(zeros, zeros, kind="relativistic").item() == pytest.approx(math.log(2))

    def test_non_saturating_is_bce_on_logits(self):
        r, f = logits((4, 1, 5, 5), 0).float(), logits((4, 1, 5, 5), 1).float()
        bce = F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + F.binary_cross_entropy_with_logits(
            f, torch.zeros_like(f)
        )
        close32(gl.discriminator_loss(r, f, kind="non_saturating"), bce)

    def test_unequal_batches(self):
        # Non-relativistic kinds do not pair samples: different batch sizes are fine except for "none".
        r, f = logits((4, 1), 0), logits((6, 1), 1)
        expected = torch.clamp(1 - r, min=0).mean() + torch.clamp(1 + f, min=0).mean()
        close(gl.discriminator_loss(r, f), expected)
        with pytest.raises(ValueError, match="need the same batch size; got 4 and 6"):
            gl.discriminator_loss(r, f, reduction="none")

    @pytest.mark.parametrize("kind", gl.KINDS)
    def test_gradcheck(self, kind):
        r = logits((2, 1, 2, 2), 0).requires_grad_(True)
        f = logits((2, 1, 2, 2), 1).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda a, b: gl.discriminator_loss(a, b, kind=kind), (r, f))


class TestGeneratorLoss:
    @pytest.mark.parametrize("kind", list(G_TERMS))
    @pytest.mark.parametrize("shape", LOGIT_SHAPES)
    def test_formula(self, kind, shape):
        f = logits(shape, 1)
        expected = per_sample(G_TERMS[kind](f))
        close(gl.generator_loss(f, kind=kind, reduction="none"), expected)
        close(gl.generator_loss(f, kind=kind), expected.mean())
        close(gl.generator_loss(f, kind=kind, reduction="sum"), expected.sum())

    def test_relativistic(self):
        r, f = logits((4, 1, 5, 5), 0), logits((4, 1, 5, 5), 1)
        expected = per_sample(softplus(r - f))
        out = gl.generator_loss(f, kind="relativistic", real_logits=r, reduction="none")
        close(out, expected)
        # The generator's and the discriminator's relativistic losses are mirror images.
        close(gl.generator_loss(f, kind="relativistic", real_logits=r), gl.discriminator_loss(f, r, kind="relativistic"))

    def test_non_saturating_is_bce(self):
        f = logits((4, 1, 5, 5), 1).float()
        bce = F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
        close32(gl.generator_loss(f, kind="non_saturating"), bce)

    @pytest.mark.parametrize("kind", gl.KINDS)
    def test_gradcheck(self, kind):
        f = logits((2, 3), 1).requires_grad_(True)
        r = logits((2, 3), 0)
        assert torch.autograd.gradcheck(lambda x: gl.generator_loss(x, kind=kind, real_logits=r), (f,))


class TestModule:
    @pytest.mark.parametrize("kind", gl.KINDS)
    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    def test_module_equals_function(self, kind, reduction):
        r, f = logits((4, 1, 3, 3), 0), logits((4, 1, 3, 3), 1)
        adv = gl.AdversarialLoss(kind, reduction=reduction)
        assert torch.equal(adv.discriminator(r, f), gl.discriminator_loss(r, f, kind=kind, reduction=reduction))
        g = gl.generator_loss(f, kind=kind, real_logits=r, reduction=reduction)
        assert torch.equal(adv.generator(f, r), g)
        assert torch.equal(adv(f, r), g)
        assert "kind=" in repr(adv)


class TestErrors:
    def test_unknown_kind_lists_kinds(self):
        msg = r"`kind` must be one of 'hinge', 'non_saturating', 'lsgan', 'wgan', 'relativistic'; got 'vanilla'"
        with pytest.raises(ValueError, match=msg):
            gl.discriminator_loss(torch.zeros(2), torch.zeros(2), kind="vanilla")
        with pytest.raises(ValueError, match=msg):
            gl.generator_loss(torch.zeros(2), kind="vanilla")
        with pytest.raises(ValueError, match=msg):
            gl.AdversarialLoss("vanilla")

    def test_relativistic_needs_real_logits(self):
        with pytest.raises(ValueError, match=r"kind='relativistic' .* pass `real_logits` with the same shape as `fake_logits` \(2, 1\)"):
            gl.generator_loss(torch.zeros(2, 1), kind="relativistic")

    def test_relativistic_needs_matching_shapes(self):
        msg = r"`real_logits` and `fake_logits` must have the same shape; got \(2,\) and \(2, 1\)"
        with pytest.raises(ValueError, match=msg):
            gl.discriminator_loss(torch.zeros(2), torch.zeros(2, 1), kind="relativistic")
        with pytest.raises(ValueError, match=msg):
            gl.generator_loss(torch.zeros(2, 1), kind="relativistic", real_logits=torch.zeros(2))

    def test_bad_tensors(self):
        with pytest.raises(TypeError, match="`fake_logits` must be a floating-point tensor .* got dtype torch.int64"):
            gl.generator_loss(torch.zeros(2, dtype=torch.long))
        with pytest.raises(ValueError, match=r"`real_logits` must be a .*\(B, \.\.\.\) of logits; got shape \(\)"):
            gl.discriminator_loss(torch.tensor(1.0), torch.zeros(2))
        with pytest.raises(ValueError, match="`reduction` must be one of"):
            gl.generator_loss(torch.zeros(2), reduction="mean ")

    def test_empty_logits(self):
        # the shared check_logits: an empty batch would average to NaN
        with pytest.raises(ValueError, match=r"`fake_logits` must hold at least one logit; got shape \(0, 1\)"):
            gl.discriminator_loss(torch.zeros(2, 1), torch.zeros(0, 1))
        with pytest.raises(ValueError, match=r"`fake_logits` must hold at least one logit; got shape \(2, 0\)"):
            gl.generator_loss(torch.zeros(2, 0))

"""Diagnostics: gradient norms against hand-written autograd, discriminator stats against a hand count."""

import math

import pytest
import torch
from torch import nn

import genloss as gl


def tiny_setup(dtype=torch.float64, seed=0):
    """A generator layer, a patch discriminator and a target: ``fake`` is a non-leaf (B, C, H, W)."""
    torch.manual_seed(seed)
    g = nn.Conv2d(2, 3, 3, padding=1).to(dtype)
    d = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, stride=2)).to(dtype)
    z = torch.randn(2, 2, 6, 6, dtype=dtype)
    target = torch.randn(2, 3, 6, 6, dtype=dtype)
    return g, d, z, target


def weighted_terms(g, d, z, target):
    fake = g(z)
    terms = {
        "rec": 1.0 * gl.l1_loss(fake, target),
        "adv": 0.1 * gl.generator_loss(d(fake)),
        "gdl": 0.5 * gl.gradient_difference_loss(fake, target),
    }
    return fake, terms


class TestGradientNorms:
    def test_matches_backward_per_term(self):
        # Reference: a fresh forward per term, .backward() into the retained grad of `fake`,
        # norm as sqrt(sum of squares) in float64 (no autograd.grad, no shared graph).
        g, d, z, target = tiny_setup()
        fake, terms = weighted_terms(g, d, z, target)
        ours = gl.gradient_norms(terms, fake)
        assert list(ours) == ["rec", "adv", "gdl"]
        for name in terms:
            ref_fake, ref_terms = weighted_terms(g, d, z, target)
            ref_fake.retain_grad()
            ref_terms[name].backward()
            expected = ref_fake.grad.square().sum().sqrt()
            assert ours[name].dtype == torch.float32 and ours[name].shape == ()
            assert not ours[name].requires_grad
            assert ours[name].item() > 0
            # float64 gradients, result rounded to float32: one float32 ulp.
            assert ours[name].item() == pytest.approx(expected.item(), rel=1e-7)

    def test_known_answers(self):
        x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
        w = torch.randn(3, 4, 5, dtype=torch.float64)
        norms = gl.gradient_norms({"linear": (w * x).sum(), "mean": 2.0 * x.mean(), "neg": -3.0 * x.mean()}, x)
        assert norms["linear"].item() == pytest.approx(w.norm().item(), rel=1e-7)
        assert norms["mean"].item() == pytest.approx(2.0 / math.sqrt(60), rel=1e-7)  # 2/N everywhere
        assert norms["neg"].item() == pytest.approx(3.0 / math.sqrt(60), rel=1e-7)

    def test_sequence_of_tensors(self):
        a = torch.randn(2, 3, requires_grad=True)
        b = torch.randn(4, requires_grad=True)
        u, v = torch.randn(2, 3), torch.randn(4)
        norms = gl.gradient_norms({"both": (u * a).sum() + (v * b).sum(), "only_a": (u * a).sum()}, [a, b])
        assert norms["both"].item() == pytest.approx(math.hypot(u.norm().item(), v.norm().item()), rel=1e-6)
        assert norms["only_a"].item() == pytest.approx(u.norm().item(), rel=1e-6)

    def test_graph_is_kept_and_grads_untouched(self):
        g, d, z, target = tiny_setup()
        _, terms = weighted_terms(g, d, z, target)
        sum(terms.values()).backward()
        expected = [p.grad.clone() for p in [*g.parameters(), *d.parameters()]]
        g.zero_grad(set_to_none=True)
        d.zero_grad(set_to_none=True)

        fake, terms = weighted_terms(g, d, z, target)
        gl.gradient_norms(terms, fake)
        assert all(p.grad is None for p in [*g.parameters(), *d.parameters()])  # no .grad written
        sum(terms.values()).backward()  # would raise if the graph had been freed
        for p, e in zip([*g.parameters(), *d.parameters()], expected):
            assert torch.equal(p.grad, e)

    def test_independent_terms_get_zero(self):
        x = torch.randn(4, requires_grad=True)
        other = torch.randn(4, requires_grad=True)
        norms = gl.gradient_norms(
            {"other": other.square().sum(), "constant": torch.tensor(3.0), "x": x.sum()}, x
        )
        assert norms["other"].item() == 0.0 and norms["constant"].item() == 0.0
        assert norms["x"].item() == pytest.approx(2.0)  # ||(1, 1, 1, 1)||
        assert all(v.dtype == torch.float32 and v.shape == () for v in norms.values())
        assert gl.gradient_norms({}, x) == {}

    def test_autocast_bfloat16(self):
        g, d, z, target = tiny_setup(torch.float32)
        fake, terms = weighted_terms(g, d, z, target)
        reference = gl.gradient_norms(terms, fake)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fake, terms = weighted_terms(g, d, z, target)
            ours = gl.gradient_norms(terms, fake)
        assert fake.dtype == torch.bfloat16
        for name in terms:
            assert ours[name].dtype == torch.float32
            # bfloat16 keeps 8 bits of mantissa through a few layers: a few percent.
            assert ours[name].item() == pytest.approx(reference[name].item(), rel=5e-2)

    def test_no_overflow_of_squares(self):
        # bfloat16 gradients of 1e30: their squares overflow float32, their norm does not.
        x = torch.zeros(64, dtype=torch.bfloat16, requires_grad=True)
        big = torch.tensor(1e30, dtype=torch.bfloat16)
        norm = gl.gradient_norms({"big": (x * big).float().sum()}, x)["big"]
        assert torch.isfinite(norm)
        assert norm.item() == pytest.approx(big.double().item() * 8, rel=1e-6)  # sqrt(64) = 8

    def test_half_gradients_normed_in_float32(self):
        x = torch.zeros(3, dtype=torch.bfloat16, requires_grad=True)
        norm = gl.gradient_norms({"sum": x.float().sum()}, x)["sum"]
        assert norm.item() == torch.tensor(3.0).sqrt().item()  # bfloat16 would give 1.734

    def test_grad_scale_rescues_float16_underflow(self):
        x = torch.zeros(16, dtype=torch.float16, requires_grad=True)
        term = (x.float() * 1e-9).sum()  # each gradient entry 1e-9 < float16's smallest subnormal
        assert gl.gradient_norms({"t": term}, x)["t"].item() == 0.0
        scaled = gl.gradient_norms({"t": term}, x, grad_scale=2.0**16)["t"]
        # 1e-9 * 2^16 rounded to float16 (11-bit mantissa), times sqrt(16).
        assert scaled.item() == pytest.approx(4e-9, rel=1e-3)

    def test_errors(self):
        x = torch.randn(3, requires_grad=True)
        with pytest.raises(TypeError, match="`terms` must be a mapping"):
            gl.gradient_norms([x.sum()], x)
        with pytest.raises(ValueError, match=r"`terms\['a'\]` must be a scalar \(0-d\) loss tensor; got shape \(3,\)"):
            gl.gradient_norms({"a": x * 2}, x)
        with pytest.raises(TypeError, match=r"`terms\['a'\]` must be a floating-point tensor"):
            gl.gradient_norms({"a": torch.tensor(1)}, x)
        with pytest.raises(ValueError, match="`wrt` must be part of the autograd graph"):
            gl.gradient_norms({"a": x.sum()}, x.detach())
        with pytest.raises(ValueError, match=r"`wrt\[1\]` must be part of the autograd graph"):
            gl.gradient_norms({"a": x.sum()}, [x, torch.ones(2)])
        with pytest.raises(TypeError, match="non-empty sequence of tensors; got an empty sequence"):
            gl.gradient_norms({"a": x.sum()}, [])
        with pytest.raises(TypeError, match="`wrt` must be a tensor or a non-empty sequence of tensors; got int"):
            gl.gradient_norms({"a": x.sum()}, 3)
        with pytest.raises(ValueError, match="`grad_scale` must be a positive float"):
            gl.gradient_norms({"a": x.sum()}, x, grad_scale=0.0)


def hand_count(real, fake):
    """Accuracy and means by Python loops over plain floats."""
    r, f = real.flatten().tolist(), fake.flatten().tolist()
    correct = sum(v > 0 for v in r) + sum(v < 0 for v in f)
    return correct / (len(r) + len(f)), math.fsum(r) / len(r), math.fsum(f) / len(f)


class TestDiscriminatorStats:
    @pytest.mark.parametrize(
        "real_shape, fake_shape",
        [((4,), (4,)), ((3, 1, 4, 4), (5, 1, 4, 4)), ((2, 1, 3, 2, 2), (2, 1, 3, 2, 2)), ((6, 1), (2, 1))],
    )
    def test_against_hand_count(self, real_shape, fake_shape):
        torch.manual_seed(0)
        real = torch.randn(real_shape).round()  # rounding leaves exact zeros: counted wrong both ways
        fake = torch.randn(fake_shape).round() - 0.3
        stats = gl.discriminator_stats(real, fake)
        accuracy, real_mean, fake_mean = hand_count(real, fake)
        assert set(stats) == {"real_mean", "fake_mean", "accuracy"}
        for v in stats.values():
            assert v.shape == () and v.dtype == torch.float32 and not v.requires_grad
        assert stats["accuracy"].item() == pytest.approx(accuracy, rel=1e-7)
        assert stats["real_mean"].item() == pytest.approx(real_mean, rel=1e-6, abs=1e-7)
        assert stats["fake_mean"].item() == pytest.approx(fake_mean, rel=1e-6, abs=1e-7)

    def test_known_answers(self):
        pos, neg, zero = torch.ones(2, 1, 3, 3), -torch.ones(3, 1, 3, 3), torch.zeros(2, 1, 3, 3)
        assert gl.discriminator_stats(pos, neg)["accuracy"].item() == 1.0
        assert gl.discriminator_stats(neg, pos)["accuracy"].item() == 0.0
        assert gl.discriminator_stats(zero, zero)["accuracy"].item() == 0.0
        # Each logit is one vote: 2*9 right real logits out of 2*9 + 3*9.
        assert gl.discriminator_stats(pos, pos.repeat(2, 1, 1, 1)[:3])["accuracy"].item() == pytest.approx(18 / 45)

    def test_detached_and_half_precision(self):
        real = torch.full((4, 1, 64, 64), 60000.0, dtype=torch.float16, requires_grad=True)
        fake = -real.detach()
        stats = gl.discriminator_stats(real * 1, fake)  # a float16 sum of these would overflow
        assert stats["real_mean"].item() == 60000.0 and stats["fake_mean"].item() == -60000.0
        assert stats["accuracy"].item() == 1.0 and not stats["real_mean"].requires_grad
        # The mean 0.5 + 2^-12 lies between two float16 numbers; float32 holds it exactly.
        small = gl.discriminator_stats(torch.tensor([1.0, 2.0**-11], dtype=torch.float16), fake)
        assert small["real_mean"].item() == 0.5 + 2.0**-12

    def test_errors(self):
        ok = torch.randn(2, 3)
        with pytest.raises(ValueError, match=r"`real_logits` must be a 1-D or .* tensor \(B, \.\.\.\) of logits; got shape \(\)"):
            gl.discriminator_stats(torch.tensor(1.0), ok)
        with pytest.raises(TypeError, match="`fake_logits` must be a floating-point tensor"):
            gl.discriminator_stats(ok, torch.ones(2, dtype=torch.long))
        with pytest.raises(ValueError, match=r"`fake_logits` must hold at least one logit; got shape \(0, 3\)"):
            gl.discriminator_stats(ok, torch.empty(0, 3))

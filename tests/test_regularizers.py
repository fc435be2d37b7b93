"""Regularizers: R1/R2 against hand-written autograd, finite-difference R1/R2, WGAN-GP exact answers, LeCam (and its
state), adaptive weight, lazy."""

import io

import pytest
import torch
from torch import nn

import genloss as gl


def tiny_d2(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, stride=2))


def tiny_d3(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv3d(4, 1, 2, stride=2))


def close(actual, expected):
    """float64 against an independent computation: equal up to summation order."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)


def per_sample_r1(d, x):
    """Hand-written R1: one autograd.grad per sample, sum of squares."""
    values = []
    for b in range(x.shape[0]):
        xb = x[b : b + 1].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(d(xb).sum(), xb, create_graph=True)
        values.append((g**2).sum())
    return torch.stack(values)


class TestR1:
    @pytest.mark.parametrize("make_d, shape", [(tiny_d2, (3, 3, 8, 8)), (tiny_d3, (2, 3, 4, 6, 6))])
    def test_matches_hand_written_autograd(self, make_d, shape):
        d = make_d().double()
        x = torch.randn(shape, dtype=torch.float64).requires_grad_(True)
        ref = per_sample_r1(d, x)
        close(gl.r1_penalty(d(x), x, reduction="none"), ref)
        close(gl.r1_penalty(d(x), x), ref.mean())
        close(gl.r1_penalty(d(x), x, reduction="sum"), ref.sum())

    def test_linear_discriminator_exact(self):
        # D(x) = <w, x>: the gradient is w for every sample, so R1 = ||w||^2.
        w = torch.randn(3 * 4 * 4, dtype=torch.float64)
        x = torch.randn(5, 3, 4, 4, dtype=torch.float64, requires_grad=True)
        out = gl.r1_penalty(x.flatten(1) @ w, x, reduction="none")
        close(out, (w**2).sum().expand(5))

    def test_reaches_discriminator_weights(self):
        d = tiny_d2().double()
        x = torch.randn(3, 3, 8, 8, dtype=torch.float64).requires_grad_(True)
        weights = [d[0].weight, d[2].weight]  # biases do not change the input gradient
        gl.r1_penalty(d(x), x).backward()
        ours = [w.grad.clone() for w in weights]
        d.zero_grad()
        per_sample_r1(d, x).mean().backward()
        for a, b in zip(ours, [w.grad for w in weights]):
            assert a.abs().sum() > 0
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)  # float64 double backward

    def test_r2_is_r1_on_fakes(self):
        d = tiny_d2()
        fake = torch.randn(2, 3, 8, 8).requires_grad_(True)
        assert torch.equal(gl.r2_penalty(d(fake), fake), gl.r1_penalty(d(fake), fake))

    def test_autocast_bfloat16_is_float32_and_finite(self):
        d = tiny_d3()
        x = torch.randn(2, 3, 4, 6, 6).requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = d(x)
            r1 = gl.r1_penalty(logits, x)
        assert logits.dtype == torch.bfloat16
        assert r1.dtype == torch.float32 and torch.isfinite(r1)
        ref = gl.r1_penalty(d(x), x)
        assert torch.allclose(r1, ref, rtol=0.1)  # bf16 has 8 bits of mantissa
        r1.backward()
        assert all(torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0 for w in (d[0].weight, d[2].weight))

    def test_gradscaler_float16_recipe(self):
        # A discriminator whose input gradients (~1e-9) underflow in float16: weights of +-3e-5
        # are exact enough in float16, but products of two of them fall below its subnormals.
        torch.manual_seed(0)
        d = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 1))
        with torch.no_grad():
            d[0].weight.copy_(d[0].weight.sign() * 3e-5)
            d[2].weight.copy_(d[2].weight.sign() * 3e-5)
        x = torch.randn(4, 3, 8, 8).requires_grad_(True)
        reference = gl.r1_penalty(d(x), x)  # float32 throughout

        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)
        with torch.autocast("cpu", dtype=torch.float16):
            logits = d(x)
        assert logits.dtype == torch.float16
        unscaled = gl.r1_penalty(logits, x)
        scaled = gl.r1_penalty(logits, x, grad_scale=scaler.get_scale())
        assert torch.allclose(scaled, reference, rtol=0.05, atol=0)
        assert not torch.allclose(unscaled, reference, rtol=0.5, atol=0)  # what the recipe is for

        # The documented step: the scaled penalty goes into the scaled loss and the step is taken.
        opt = torch.optim.SGD(d.parameters(), lr=1.0)
        before = d[0].weight.detach().clone()
        scaler.scale(logits.float().mean() + 10.0 * scaled).backward()
        scaler.step(opt)
        scaler.update()
        assert torch.isfinite(d[0].weight).all() and not torch.equal(d[0].weight, before)

    def test_errors(self):
        d = tiny_d2()
        x = torch.randn(2, 3, 8, 8)
        with pytest.raises(ValueError, match="`real_inputs` must require grad"):
            gl.r1_penalty(d(x), x)
        xg = x.requires_grad_(True)
        with pytest.raises(ValueError, match=r"same batch size; got shapes \(1, 1, 3, 3\) and \(2, 3, 8, 8\)"):
            gl.r1_penalty(d(xg)[:1], xg)
        with pytest.raises(TypeError, match="`fake_logits` must be a floating-point tensor"):
            gl.r2_penalty(torch.zeros(2, dtype=torch.long), xg)


class TestGradientPenalty:
    def test_linear_critic_exact(self):
        w = torch.randn(3 * 4 * 4, dtype=torch.float64)
        critic = lambda x: x.flatten(1) @ w + 0.5  # noqa: E731
        real, fake = torch.randn(6, 3, 4, 4, dtype=torch.float64), torch.randn(6, 3, 4, 4, dtype=torch.float64)
        expected = (w.norm() - 1) ** 2
        close(gl.gradient_penalty(critic, real, fake), expected)
        close(gl.gradient_penalty(critic, real, fake, reduction="none"), expected.expand(6))
        # A unit-norm gradient costs nothing.
        unit = lambda x: x.flatten(1) @ (w / w.norm())  # noqa: E731
        assert gl.gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)

    def test_interpolation_against_manual(self):
        critic = lambda x: (x**2).sum(dim=(1, 2, 3))  # noqa: E731  gradient 2 x^
        real, fake = torch.randn(4, 2, 3, 3, dtype=torch.float64), torch.randn(4, 2, 3, 3, dtype=torch.float64)
        out = gl.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7), reduction="none")
        a = torch.rand((4, 1, 1, 1), generator=torch.Generator().manual_seed(7)).double()  # drawn in float32
        x_hat = a * real + (1 - a) * fake
        expected = ((2 * x_hat).flatten(1).norm(dim=1) - 1) ** 2
        close(out, expected)
        # Taken at the interpolates: neither at the real nor at the generated samples (the old
        # assertion here checked the test's own torch.rand draw, which could not fail).
        at = lambda x: ((2 * x).flatten(1).norm(dim=1) - 1) ** 2  # noqa: E731
        assert ((out - at(real)).abs() > 1e-3).all() and ((out - at(fake)).abs() > 1e-3).all()

    def test_backpropagates_into_critic_not_generator(self):
        critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 1))
        real = torch.randn(3, 3, 2, 2)
        fake = torch.randn(3, 3, 2, 2, requires_grad=True)
        gl.gradient_penalty(critic, real, fake).backward()
        assert critic[1].weight.grad.abs().sum() > 0
        assert fake.grad is None  # interpolates are detached from the generator

    def test_autocast_bfloat16(self):
        critic = tiny_d2()
        real, fake = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            gp = gl.gradient_penalty(lambda x: critic(x).flatten(1).sum(1), real, fake)
        assert gp.dtype == torch.float32 and torch.isfinite(gp)
        gp.backward()
        assert torch.isfinite(critic[0].weight.grad).all() and critic[0].weight.grad.abs().sum() > 0

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"`real` and `fake` must have the same shape; got \(2, 3\) and \(3, 3\)"):
            gl.gradient_penalty(lambda x: x.sum(1), torch.zeros(2, 3), torch.zeros(3, 3))


class TestLeCam:
    def test_formula(self):
        r, f = torch.randn(4, 1, 3, 3, dtype=torch.float64), torch.randn(4, 1, 3, 3, dtype=torch.float64)
        ema_r, ema_f = 0.3, -0.2
        expected = (torch.clamp(r - ema_f, min=0) ** 2).mean() + (torch.clamp(ema_r - f, min=0) ** 2).mean()
        close(gl.lecam_penalty(r, f, ema_r, ema_f), expected)
        close(gl.lecam_penalty(r, f, torch.tensor(ema_r, dtype=torch.float64), torch.tensor(ema_f, dtype=torch.float64)),
              expected)
        per = gl.lecam_penalty(r, f, ema_r, ema_f, reduction="none")
        assert per.shape == (4,)
        close(per.mean(), expected)

    def test_known_answer(self):
        # Real logits below the fake EMA and fake logits above the real EMA cost nothing.
        assert gl.lecam_penalty(torch.full((2,), -1.0), torch.full((2,), 1.0), 0.0, 0.0).item() == 0.0
        assert gl.lecam_penalty(torch.full((2,), 2.0), torch.full((2,), -3.0), 1.0, 0.0).item() == 4.0 + 16.0

    def test_ema_tracker(self):
        ema = gl.LeCamEMA(decay=0.9)
        ema.update(torch.full((4,), 2.0), torch.full((4,), -2.0))
        assert ema.ema_real.item() == pytest.approx(2.0) and ema.ema_fake.item() == pytest.approx(-2.0)
        ema.update(torch.full((4,), 1.0), torch.full((4,), 0.0))
        assert ema.ema_real.item() == pytest.approx(0.9 * 2 + 0.1 * 1)
        assert ema.ema_fake.item() == pytest.approx(0.9 * -2 + 0.1 * 0)
        assert set(ema.state_dict()) == {"ema_real", "ema_fake", "initialized"}
        r, f = torch.randn(4), torch.randn(4)
        assert torch.equal(ema(r, f), gl.lecam_penalty(r, f, ema.ema_real, ema.ema_fake))
        with pytest.raises(ValueError, match=r"`decay` must be in \[0, 1\); got 1.0"):
            gl.LeCamEMA(decay=1.0)

    def test_ema_is_not_differentiated(self):
        ema_r = torch.tensor(0.5, requires_grad=True)
        r = torch.randn(3, requires_grad=True)
        gl.lecam_penalty(r, torch.randn(3), ema_r, 0.0).backward()
        assert ema_r.grad is None and r.grad is not None


class TestAdaptiveWeight:
    def test_formula(self):
        # Quadratic losses, so the gradients w * a and w * b depend on w: a weight computed with a
        # graph (create_graph=True, not detached) would require grad and add d(weight)/dw * gen
        # to the caller's backward below.
        w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
        a, b = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
        rec, gen = (w.square() * a).sum() / 2, (w.square() * b).sum() / 2  # gradients w * a and w * b
        out = gl.adaptive_weight(rec, gen, w)
        expected = (w * a).norm() / ((w * b).norm() + 1e-4)
        torch.testing.assert_close(out, expected.detach(), rtol=1e-14, atol=0)
        assert not out.requires_grad
        # Both graphs survive for the caller's backward.
        (rec + out * gen).backward()
        torch.testing.assert_close(w.grad, (w * a + out * w * b).detach(), rtol=1e-14, atol=1e-15)

    def test_clamped(self):
        w = torch.randn(3, requires_grad=True)
        rec, gen = (w * 1e3).sum(), (w * 0.0).sum()
        assert gl.adaptive_weight(rec, gen, w).item() == 1e4
        assert gl.adaptive_weight(rec, gen, w, max_weight=7.0).item() == 7.0

    def test_errors(self):
        w = torch.randn(3, requires_grad=True)
        with pytest.raises(ValueError, match=r"`generator_loss` must be a scalar \(0-d\) loss; got shape \(3,\)"):
            gl.adaptive_weight(w.sum(), w * 2, w)
        with pytest.raises(ValueError, match="`last_layer_weight` must require grad"):
            gl.adaptive_weight(w.sum(), w.sum(), torch.randn(3))


class TestLazyRegularizer:
    def test_due_steps_and_gain(self):
        lazy = gl.LazyRegularizer(interval=4)
        calls = []

        def penalty():
            calls.append(1)
            return torch.tensor(2.0)

        out = [lazy(step, penalty) for step in range(12)]
        assert [o is not None for o in out] == [s % 4 == 0 for s in range(12)]
        assert len(calls) == 3  # never evaluated off-schedule
        assert all(o.item() == 8.0 for o in out if o is not None)
        # Over a whole number of intervals the applied total equals applying it every step.
        assert sum(o.item() for o in out if o is not None) == 12 * 2.0

    def test_interval_one_is_every_step(self):
        lazy = gl.LazyRegularizer(interval=1)
        assert all(lazy.due(s) for s in range(5))
        assert lazy(3, lambda: torch.tensor(1.5)).item() == 1.5

    @pytest.mark.parametrize("bad", [0, -1, 2.0, True])
    def test_bad_interval(self, bad):
        with pytest.raises(ValueError, match="`interval` must be a positive int"):
            gl.LazyRegularizer(interval=bad)


class OnceDifferentiableTanh(torch.autograd.Function):
    """tanh whose backward is not differentiable: a stand-in for fused kernels without double backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(x) ** 2)


def smooth_d(seed=0):
    """A float64 conv discriminator with smooth activations (finite differences see no kinks)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Conv2d(4, 1, 3, stride=2)).double()


def directions(k, shape, seed):
    """The draws r1_penalty_fd documents: randn((K, *shape)) in float32 from a seeded generator."""
    return torch.randn((k, *shape), generator=torch.Generator().manual_seed(seed)).double()


class TestR1FiniteDifference:
    def test_linear_discriminator_equals_directional_formula(self):
        # D(x) = <w, x>: the central difference is exactly <w, v>, so the estimate is mean_k <w, v_k>^2.
        w = torch.randn(3 * 4 * 4, dtype=torch.float64)
        x = torch.randn(5, 3, 4, 4, dtype=torch.float64)
        d = lambda z: z.flatten(1) @ w  # noqa: E731
        out = gl.r1_penalty_fd(d, x, directions=6, generator=torch.Generator().manual_seed(3), reduction="none")
        v = directions(6, x.shape, 3)
        expected = (v.flatten(2) @ w).square().mean(dim=0)  # (K, B) slopes -> (B,)
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=0)

    def test_expectation_is_r1(self):
        # E[<w, v>^2] = ||w||^2 = R1 of the linear D. Each slope^2 is ||w||^2 chi^2_1, so the mean of
        # K B = 8192 draws has relative standard deviation sqrt(2 / 8192) = 1.6%: 4 sigma is 6.25%.
        w = torch.randn(3 * 4 * 4, dtype=torch.float64)
        x = torch.randn(4, 3, 4, 4, dtype=torch.float64, requires_grad=True)
        exact = gl.r1_penalty(x.flatten(1) @ w, x)
        torch.testing.assert_close(exact, w.square().sum())
        estimate = gl.r1_penalty_fd(lambda z: z.flatten(1) @ w, x, directions=2048,
                                    generator=torch.Generator().manual_seed(0))
        assert abs(estimate.item() / exact.item() - 1) < 4 * (2 / 8192) ** 0.5

    def test_quadratic_discriminator_has_no_step_bias(self):
        # D(x) = x'Ax/2 + b'x per sample: the central difference is exactly (Ax + b).v for any h.
        n = 2 * 3 * 3
        a = torch.randn(n, n, dtype=torch.float64)
        a = a + a.T
        b = torch.randn(n, dtype=torch.float64)
        d = lambda z: 0.5 * ((z.flatten(1) @ a) * z.flatten(1)).sum(1) + z.flatten(1) @ b  # noqa: E731
        x = torch.randn(3, 2, 3, 3, dtype=torch.float64)
        grad = x.flatten(1) @ a + b  # (B, n)
        v = directions(5, x.shape, 1).flatten(2)  # (K, B, n)
        expected = (v * grad).sum(-1).square().mean(0)
        for h in (1e-3, 0.5):
            out = gl.r1_penalty_fd(d, x, h=h, directions=5, generator=torch.Generator().manual_seed(1),
                                   reduction="none")
            torch.testing.assert_close(out, expected, rtol=1e-8, atol=0)

    def test_smooth_conv_discriminator_matches_exact_gradient(self):
        # Per draw, the central difference of a smooth D is g.v up to O(h^2): with g from autograd
        # and the same draws, estimate = mean_k (g . v_k)^2 within h^2-size error; and with many
        # draws it approaches the exact R1 (K = 4096: sigma = sqrt(2/4096) = 2.2% per sample, 5 sigma).
        d = smooth_d()
        x = torch.randn(3, 3, 8, 8, dtype=torch.float64, requires_grad=True)
        exact = gl.r1_penalty(d(x), x, reduction="none")
        (g,) = torch.autograd.grad(d(x).sum(), x)
        v = directions(7, x.shape, 2)
        expected = (v * g).flatten(2).sum(-1).square().mean(0)
        out = gl.r1_penalty_fd(d, x, h=1e-4, directions=7, generator=torch.Generator().manual_seed(2),
                               reduction="none")
        torch.testing.assert_close(out, expected, rtol=1e-7, atol=0)
        many = gl.r1_penalty_fd(d, x, directions=4096, generator=torch.Generator().manual_seed(5), reduction="none")
        assert ((many / exact - 1).abs() < 5 * (2 / 4096) ** 0.5).all()

    def test_discriminator_weight_gradient_without_double_backward(self):
        # A D with a once-differentiable op. The exact R1's double backward cannot see through it:
        # torch drops that path (or, in other versions, raises). The estimate needs one ordinary
        # backward; its weight gradient equals the gradient of mean_k (grad_x D . v_k)^2 taken by
        # double backward through an all-autograd twin of D (torch.tanh), up to O(h^2).
        torch.manual_seed(0)
        w = torch.randn(12, dtype=torch.float64, requires_grad=True)
        x = torch.randn(3, 3, 2, 2, dtype=torch.float64)
        d_once = lambda z: OnceDifferentiableTanh.apply(z.flatten(1) @ w)  # noqa: E731
        d_twin = lambda z: torch.tanh(z.flatten(1) @ w)  # noqa: E731

        xg = x.clone().requires_grad_(True)
        (true_grad,) = torch.autograd.grad(gl.r1_penalty(d_twin(xg), xg), w)
        try:
            (once_grad,) = torch.autograd.grad(gl.r1_penalty(d_once(xg), xg), w)
        except RuntimeError:
            pass
        else:
            assert not torch.allclose(once_grad, true_grad, rtol=0.1)

        estimate = gl.r1_penalty_fd(d_once, x, h=1e-5, directions=3, generator=torch.Generator().manual_seed(4))
        (fd_grad,) = torch.autograd.grad(estimate, w)
        v = directions(3, x.shape, 4)
        (g,) = torch.autograd.grad(d_twin(xg).sum(), xg, create_graph=True)
        per_draw = (v * g).flatten(2).sum(-1).square().mean(0).mean()
        (expected,) = torch.autograd.grad(per_draw, w)
        torch.testing.assert_close(fd_grad, expected, rtol=1e-6, atol=1e-12)

    def test_inputs_detached_generator_and_r2(self):
        d = smooth_d()
        real = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
        run = lambda f, seed: f(d, real, generator=torch.Generator().manual_seed(seed))  # noqa: E731
        out = run(gl.r1_penalty_fd, 0)
        out.backward()
        assert real.grad is None and d[0].weight.grad.abs().sum() > 0  # the discriminator only
        assert torch.equal(run(gl.r1_penalty_fd, 0), out) and not torch.equal(run(gl.r1_penalty_fd, 1), out)
        assert torch.equal(run(gl.r2_penalty_fd, 0), out)
        assert gl.r1_penalty_fd(d, real, directions=2).dtype == torch.float64
        assert gl.r1_penalty_fd(d.float(), real.float(), reduction="sum").dtype == torch.float32

    def test_errors(self):
        d, x = smooth_d(), torch.randn(2, 3, 8, 8, dtype=torch.float64)
        with pytest.raises(ValueError, match="`h` must be a positive finite float; got 0"):
            gl.r1_penalty_fd(d, x, h=0)
        with pytest.raises(ValueError, match="`directions` must be a positive int; got 0"):
            gl.r1_penalty_fd(d, x, directions=0)
        with pytest.raises(TypeError, match="`discriminator` must be callable; got Tensor"):
            gl.r1_penalty_fd(x, x)
        with pytest.raises(ValueError, match=r"must map a batch of 16 inputs to \(16, \.\.\.\) logits; got \(1,\)"):
            gl.r1_penalty_fd(lambda z: z.sum().reshape(1), x)
        with pytest.raises(TypeError, match="`fake_inputs` must be a floating-point tensor"):
            gl.r2_penalty_fd(d, torch.zeros(2, 3, 8, 8, dtype=torch.long))
        with pytest.raises(ValueError, match="`reduction` must be one of"):
            gl.r1_penalty_fd(d, x, reduction="avg")


class TestLeCamState:
    def test_resume_is_bit_identical(self):
        # Save mid-run (state_dict through torch.save), load into a fresh tracker, continue: the
        # averages and the penalties equal the uninterrupted run's bit for bit.
        gen = torch.Generator().manual_seed(0)
        batches = [(torch.randn(4, 1, 3, 3, generator=gen), torch.randn(4, 1, 3, 3, generator=gen) - 1)
                   for _ in range(6)]

        def run(ema, steps):
            out = []
            for r, f in steps:
                ema.update(r, f)
                out.append(ema(r, f))
            return out

        for cut in (0, 1, 3):  # before any update (the first update copies), after one, mid-run
            whole = gl.LeCamEMA(decay=0.9)
            expected = run(whole, batches)
            first = gl.LeCamEMA(decay=0.9)
            run(first, batches[:cut])
            buffer = io.BytesIO()
            torch.save(first.state_dict(), buffer)
            buffer.seek(0)
            resumed = gl.LeCamEMA(decay=0.9)
            resumed.load_state_dict(torch.load(buffer))
            got = run(resumed, batches[cut:])
            assert all(torch.equal(a, b) for a, b in zip(got, expected[cut:], strict=True))
            assert torch.equal(resumed.ema_real, whole.ema_real) and torch.equal(resumed.ema_fake, whole.ema_fake)

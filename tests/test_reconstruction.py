"""Reconstruction losses: known answers, torch.nn.functional equivalence, masks, gradcheck, errors."""

import pytest
import torch
import torch.nn.functional as F

import genloss as gl

SHAPES = [(2, 3, 8, 8), (2, 3, 4, 8, 8)]  # image, video


def pair(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=dtype) * 2 - 1, torch.rand(shape, generator=g, dtype=dtype) * 2 - 1)


def close(actual, expected):
    """float64 against an independent formula: equal up to summation order."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)


ELEMENTWISE = {
    # name: (function, module class, independent elementwise formula)
    "l1": (gl.l1_loss, gl.L1Loss, lambda p, t: (p - t).abs()),
    "mse": (gl.mse_loss, gl.MSELoss, lambda p, t: (p - t) ** 2),
    "huber": (gl.huber_loss, gl.HuberLoss, lambda p, t: F.huber_loss(p, t, reduction="none")),
    "charbonnier": (gl.charbonnier_loss, gl.CharbonnierLoss, lambda p, t: torch.sqrt((p - t) ** 2 + 1e-3**2)),
}


class TestElementwise:
    @pytest.mark.parametrize("name", ELEMENTWISE)
    @pytest.mark.parametrize("shape", SHAPES)
    def test_reductions_match_formula(self, name, shape):
        fn, _, formula = ELEMENTWISE[name]
        p, t = pair(shape)
        e = formula(p, t)
        close(fn(p, t, reduction="none"), e)
        assert fn(p, t, reduction="none").shape == shape
        close(fn(p, t), e.mean())
        close(fn(p, t, reduction="sum"), e.sum())

    def test_torch_equivalence(self):
        p, t = pair((2, 3, 4, 8, 8))
        for red in ("mean", "sum", "none"):
            close(gl.l1_loss(p, t, reduction=red), F.l1_loss(p, t, reduction=red))
            close(gl.mse_loss(p, t, reduction=red), F.mse_loss(p, t, reduction=red))
            for delta in (0.1, 1.0, 3.0):
                ours = gl.huber_loss(p, t, delta=delta, reduction=red)
                close(ours, F.huber_loss(p, t, delta=delta, reduction=red))

    def test_known_answers(self):
        zeros, ones = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
        assert gl.l1_loss(zeros, ones).item() == 1.0
        assert gl.mse_loss(zeros, 2 * ones).item() == 4.0
        # Huber at |d| = 2, delta = 1: delta * (|d| - delta / 2) = 1.5.
        assert gl.huber_loss(zeros, 2 * ones).item() == pytest.approx(1.5)
        # A perfect prediction costs 0 (Charbonnier: exactly eps).
        assert gl.l1_loss(ones, ones).item() == 0.0
        assert gl.charbonnier_loss(ones, ones, eps=1e-3).item() == pytest.approx(1e-3)
        # Charbonnier with 3-4-5: sqrt(3^2 + 4^2) = 5.
        assert gl.charbonnier_loss(zeros, 3 * ones, eps=4.0).item() == pytest.approx(5.0)

    @pytest.mark.parametrize("name", ELEMENTWISE)
    def test_mask(self, name):
        fn, _, formula = ELEMENTWISE[name]
        p, t = pair((2, 3, 4, 6, 6))
        mask = (torch.rand(2, 1, 4, 6, 6, generator=torch.Generator().manual_seed(3)) > 0.5).float()
        e = formula(p, t)
        expected_mean = (mask * e).sum() / mask.expand_as(e).sum()
        close(fn(p, t, mask=mask), expected_mean)
        close(fn(p, t, mask=mask, reduction="sum"), (mask * e).sum())
        close(fn(p, t, mask=mask, reduction="none"), mask * e)
        # A bool mask means the same as its float version.
        close(fn(p, t, mask=mask.bool()), expected_mean)
        # A mask of ones changes nothing; an all-zero mask gives 0, not NaN.
        close(fn(p, t, mask=torch.ones(1)), fn(p, t))
        assert fn(p, t, mask=torch.zeros(1)).item() == 0.0

    def test_mask_fractional_weights(self):
        p, t = torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, 3.0]]]])
        mask = torch.tensor([0.25, 0.75])
        # (0.25 * 1 + 0.75 * 3) / (0.25 + 0.75) = 2.5
        assert gl.l1_loss(p, t, mask=mask).item() == pytest.approx(2.5)

    @pytest.mark.parametrize("name", ELEMENTWISE)
    def test_module_equals_function(self, name):
        fn, cls, _ = ELEMENTWISE[name]
        p, t = pair((2, 3, 8, 8))
        for red in ("mean", "sum", "none"):
            assert torch.equal(cls(reduction=red)(p, t), fn(p, t, reduction=red))

    def test_modules_pass_their_options(self):
        # non-default options, against torch's own Huber and the Charbonnier formula
        p, t = pair((2, 3, 4, 4), seed=2)
        close(gl.HuberLoss(delta=0.2, reduction="none")(p, t), F.huber_loss(p, t, delta=0.2, reduction="none"))
        close(gl.CharbonnierLoss(eps=0.5)(p, t), torch.sqrt((p - t) ** 2 + 0.25).mean())

    @pytest.mark.parametrize("name", ELEMENTWISE)
    def test_gradcheck(self, name):
        fn, _, _ = ELEMENTWISE[name]
        p, t = pair((1, 2, 3, 3), seed=1, dtype=torch.float64)
        p.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x: fn(x, t), (p,))

    def test_half_precision(self):
        p, t = pair((2, 3, 8, 8))
        for dtype in (torch.float16, torch.bfloat16):
            out = gl.charbonnier_loss(p.to(dtype), t.to(dtype))
            assert out.dtype == torch.float32  # eps^2 is below float16's normal range
            assert torch.isfinite(out)
            assert gl.l1_loss(p.to(dtype), t.to(dtype)).dtype == dtype


class TestGradientDifference:
    @staticmethod
    def reference(p, t, alpha):
        # Mathieu et al. eq. 5 with explicit loops over the two directions, per sample.
        gx = ((p[..., :, 1:] - p[..., :, :-1]).abs() - (t[..., :, 1:] - t[..., :, :-1]).abs()).abs() ** alpha
        gy = ((p[..., 1:, :] - p[..., :-1, :]).abs() - (t[..., 1:, :] - t[..., :-1, :]).abs()).abs() ** alpha
        return torch.stack([(gx[b].mean() + gy[b].mean()) / 2 for b in range(p.shape[0])])

    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("alpha", [1.0, 2.0])
    def test_formula(self, shape, alpha):
        p, t = pair(shape)
        ref = self.reference(p, t, alpha)
        close(gl.gradient_difference_loss(p, t, alpha=alpha, reduction="none"), ref)
        close(gl.gradient_difference_loss(p, t, alpha=alpha), ref.mean())
        close(gl.gradient_difference_loss(p, t, alpha=alpha, reduction="sum"), ref.sum())

    def test_known_answers(self):
        # A horizontal ramp with step 1 against a flat target: |dx| = 1 everywhere, dy = 0.
        ramp = torch.arange(4.0).expand(1, 1, 3, 4)
        flat = torch.zeros(1, 1, 3, 4)
        assert gl.gradient_difference_loss(ramp, flat).item() == pytest.approx(0.5)
        # Shifting intensities by a constant leaves every gradient unchanged.
        assert gl.gradient_difference_loss(ramp + 0.5, ramp).item() == 0.0
        # The sign of a gradient does not matter, only its magnitude.
        assert gl.gradient_difference_loss(ramp, ramp.flip(-1)).item() == 0.0

    def test_module_and_gradcheck(self):
        p, t = pair((1, 1, 2, 4, 4), dtype=torch.float64)
        assert torch.equal(gl.GradientDifferenceLoss(alpha=2.0)(p, t), gl.gradient_difference_loss(p, t, alpha=2.0))
        p.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x: gl.gradient_difference_loss(x, t, alpha=2.0), (p,))

    def test_errors(self):
        p = torch.zeros(2, 3, 8, 8)
        with pytest.raises(ValueError, match=r"`pred` must be a 4-D or 5-D tensor .* got shape \(3, 8, 8\)"):
            gl.gradient_difference_loss(p[0], p[0])
        with pytest.raises(ValueError, match="H >= 2 and W >= 2"):
            gl.gradient_difference_loss(p[..., :1], p[..., :1])
        with pytest.raises(ValueError, match="`alpha` must be positive"):
            gl.gradient_difference_loss(p, p, alpha=0)


class TestErrors:
    def test_shape_mismatch_is_not_broadcast(self):
        with pytest.raises(ValueError, match=r"`pred` and `target` must have the same shape; got \(4,\) and \(4, 1\)"):
            gl.l1_loss(torch.zeros(4), torch.zeros(4, 1))

    def test_integer_tensor(self):
        with pytest.raises(TypeError, match=r"`target` must be a floating-point tensor .* got dtype torch.int64"):
            gl.mse_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))

    def test_not_a_tensor(self):
        with pytest.raises(TypeError, match="`pred` must be a torch.Tensor; got list"):
            gl.l1_loss([0.0], torch.zeros(1))

    def test_scalar_input(self):
        with pytest.raises(ValueError, match=r"`pred` must be a .*tensor \(B, \.\.\.\); got shape \(\) \(0-D\)"):
            gl.l1_loss(torch.tensor(0.0), torch.tensor(0.0))

    def test_unknown_reduction(self):
        with pytest.raises(ValueError, match=r"`reduction` must be one of 'mean', 'sum', 'none'; got 'avg'"):
            gl.l1_loss(torch.zeros(2, 3), torch.zeros(2, 3), reduction="avg")
        with pytest.raises(ValueError, match="`reduction` must be one of"):
            gl.L1Loss(reduction="batchmean")

    def test_mask_errors(self):
        p = torch.zeros(2, 3, 8, 8)
        with pytest.raises(ValueError, match=r"`mask` must broadcast to the shape of `pred` \(2, 3, 8, 8\); got shape \(2, 3, 8\)"):
            gl.l1_loss(p, p, mask=torch.ones(2, 3, 8))
        with pytest.raises(ValueError, match="`mask` must broadcast"):
            gl.l1_loss(p, p, mask=torch.ones(1, 2, 3, 8, 8))  # would grow pred
        with pytest.raises(TypeError, match="`mask` must be a bool or floating-point tensor; got dtype torch.int64"):
            gl.l1_loss(p, p, mask=torch.ones(2, 3, 8, 8, dtype=torch.long))

    def test_option_errors(self):
        p = torch.zeros(2, 3)
        with pytest.raises(ValueError, match="`delta` must be positive; got 0"):
            gl.huber_loss(p, p, delta=0)
        with pytest.raises(ValueError, match="`eps` must be positive; got -1"):
            gl.charbonnier_loss(p, p, eps=-1)

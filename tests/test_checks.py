"""genloss._checks: the shared masked mean and half-precision upcast, against float64 formulas."""

from __future__ import annotations

import pytest
import torch

import genloss as gl
from genloss._checks import (
    at_least_float32,
    check_broadcastable,
    check_same_shape,
    masked_mean,
    reduce_masked,
)


def values_and_mask(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(2, 3, 4, 5, 5, generator=gen, dtype=torch.float64)
    mask = torch.rand(2, 1, 4, 5, 5, generator=gen, dtype=torch.float64)  # broadcast over channels
    return values, mask


class TestMaskedMean:
    def test_formula_over_dims(self):
        values, mask = values_and_mask()
        weights = mask.expand(2, 3, 4, 5, 5)
        # per (sample, step), as warping_error reduces: channels and pixels
        expected = torch.tensor(
            [
                [(w * v).sum() / w.sum() for w, v in zip(weights[b].unbind(1), values[b].unbind(1))]
                for b in range(2)
            ],
            dtype=torch.float64,
        )
        got = masked_mean(values, mask, dim=(1, 3, 4))
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
        # everything at once: the mask counted 3 times per pixel, once per channel it broadcasts to
        whole = (weights * values).sum() / (3 * mask.sum())
        torch.testing.assert_close(masked_mean(values, mask), whole, rtol=1e-12, atol=0)
        torch.testing.assert_close(reduce_masked(values, "mean", mask), whole, rtol=1e-12, atol=0)

    def test_no_mask_is_the_mean(self):
        values, _ = values_and_mask(1)
        assert torch.equal(masked_mean(values, None, dim=(1, 2)), values.mean(dim=(1, 2)))
        assert torch.equal(masked_mean(values, None), values.mean())

    def test_all_zero_mask_gives_zero(self):
        values, mask = values_and_mask(2)
        mask[1] = 0
        out = masked_mean(values, mask, dim=(1, 2, 3, 4))
        assert out[1] == 0 and out[0] > 0

    def test_count_in_float32_for_half_masks(self):
        # float16 cannot hold 2049 (it rounds to 2048): the count is summed in the product's float32
        values = torch.full((2049,), 0.5)
        assert masked_mean(values, torch.ones(2049, dtype=torch.float16)) == 0.5


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_at_least_float32(dtype, expected):
    x = torch.tensor([1.5, -2.25], dtype=dtype)
    out = at_least_float32(x)
    assert out.dtype == expected and torch.equal(out.double(), x.double())
    if dtype == expected:
        assert out is x  # no copy


class TestNoSilentBroadcasting:
    def test_batch_sizes_must_match(self):
        one, two = torch.zeros(1, 3, 4, 4), torch.zeros(2, 3, 4, 4)
        check_same_shape("pred", two, "target", two.clone())
        with pytest.raises(ValueError, match=r"`pred` and `target` must have the same shape; got \(1, 3, 4, 4\) and \(2, 3, 4, 4\)"):
            check_same_shape("pred", one, "target", two)
        with pytest.raises(ValueError, match="must have the same shape"):
            gl.l1_loss(two, one)  # a batch of 1 would otherwise broadcast

    def test_mask_may_not_grow_pred(self):
        pred = torch.zeros(1, 3, 4, 4)
        check_broadcastable("mask", torch.ones(1, 1, 4, 4), "pred", pred.shape)
        check_broadcastable("mask", torch.ones(4), "pred", pred.shape)
        # Same number of dims, but the mask's batch of 2 would make the loss (2, 3, 4, 4).
        with pytest.raises(ValueError, match=r"`mask` must broadcast to the shape of `pred` \(1, 3, 4, 4\); got shape \(2, 1, 4, 4\)"):
            check_broadcastable("mask", torch.ones(2, 1, 4, 4), "pred", pred.shape)
        with pytest.raises(ValueError, match="`mask` must broadcast"):
            gl.mse_loss(pred, pred, mask=torch.ones(2, 1, 4, 4))

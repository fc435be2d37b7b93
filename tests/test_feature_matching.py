"""Discriminator feature matching, against independent computations."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

import genloss as gl


def feats(seed: int, shapes=((2, 4, 8, 8), (2, 8, 4, 4), (2, 1, 3, 3))) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]


def close(actual, expected):
    """float64 against an independent formula: equal up to summation order."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)


class TestFeatureMatching:
    def test_formula_and_reductions(self):
        real, fake = feats(0), feats(1)
        per_layer = torch.stack(
            [(r - f).abs().flatten(1).mean(1) for r, f in zip(real, fake, strict=True)]
        )
        expected = per_layer.mean(0)
        close(gl.feature_matching_loss(real, fake, reduction="none"), expected)
        close(gl.feature_matching_loss(real, fake), expected.mean())
        close(
            gl.feature_matching_loss(real, fake, reduction="sum"), expected.sum()
        )
        # nested lists (several discriminators) are flattened in order
        close(
            gl.feature_matching_loss([real[:2], real[2:]], [fake[:2], fake[2:]]), expected.mean()
        )
        # pix2pixHD's formulation (equal-size layers): mean over layers of F.l1_loss
        same_size = feats(0, ((2, 3, 4, 4),) * 2), feats(1, ((2, 3, 4, 4),) * 2)
        close(
            gl.feature_matching_loss(*same_size),
            sum(F.l1_loss(f, r) for r, f in zip(*same_size, strict=True)) / 2,
        )

    def test_real_side_detached(self):
        real = [f.requires_grad_(True) for f in feats(0)]
        fake = [f.requires_grad_(True) for f in feats(1)]
        gl.feature_matching_loss(real, fake).backward()
        assert all(r.grad is None for r in real) and all(f.grad is not None for f in fake)

    def test_errors(self):
        with pytest.raises(ValueError, match=re.escape("same number of layers; got 3 and 2")):
            gl.feature_matching_loss(feats(0), feats(1)[:2])
        bad = feats(1)
        bad[1] = torch.zeros(2, 8, 5, 5)
        with pytest.raises(
            ValueError,
            match=re.escape("`real_features[1]` and `fake_features[1]` must have the same shape"),
        ):
            gl.feature_matching_loss(feats(0), bad)
        with pytest.raises(TypeError, match="non-empty list of feature tensors"):
            gl.feature_matching_loss(torch.zeros(2, 3), torch.zeros(2, 3))

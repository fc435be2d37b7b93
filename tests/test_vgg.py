"""The VGG content/style loss (genloss.vgg), against torchvision's VGG16 run by hand."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision.models as tvm

import genloss as gl
from lpips_reference import random_features_state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A seeded random VGG16 ``features`` state dict (relu1_2 .. relu3_3 is all the test needs)."""
    state = random_features_state("vgg", seed=3)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(state, path)
    return path, state


class TestVGGLoss:
    LAYERS = {"relu1_2": 0.5, "conv2_2": 2.0, "relu3_3": 1.0}

    def reference_features(self, state, x):
        with torch.device("meta"):
            features = tvm.vgg16(weights=None).features[:16]
        features = features.to_empty(device="cpu").eval()
        features.load_state_dict(
            {k[len("features.") :]: v for k, v in state.items() if int(k.split(".")[1]) < 16}
        )
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        h = ((x + 1) / 2 - mean) / std
        out = {}
        for i, layer in enumerate(features):
            h = layer(h if not isinstance(layer, torch.nn.ReLU) else h.clone())
            out[i] = h
        return {"relu1_2": out[3], "conv2_2": out[7], "relu3_3": out[15]}

    def test_content_and_style_formula(self, vgg_file):
        path, state = vgg_file
        loss = gl.VGGLoss(
            "vgg16", layers=self.LAYERS, weights=path, style_weight=10.0, criterion="mse"
        )
        gen = torch.Generator().manual_seed(4)
        x, y = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
        fx, fy = self.reference_features(state, x), self.reference_features(state, y)
        content = sum(
            w * (fx[n] - fy[n]).square().flatten(1).mean(1) for n, w in self.LAYERS.items()
        )

        def gram(f):
            n, c, h, w = f.shape
            m = f.reshape(n, c, h * w)
            return m @ m.transpose(1, 2) / (c * h * w)

        style = sum(
            w * (gram(fx[n]) - gram(fy[n])).square().flatten(1).mean(1)
            for n, w in self.LAYERS.items()
        )
        got_content, got_style = loss.terms(x, y)
        torch.testing.assert_close(got_content, content, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got_style, style, rtol=1e-4, atol=1e-9)
        torch.testing.assert_close(
            loss(x, y, reduction="none"), content + 10.0 * style, rtol=1e-4, atol=1e-6
        )
        torch.testing.assert_close(gl.gram_matrix(fx["relu1_2"]), gram(fx["relu1_2"]))

    def test_l1_video_and_frozen(self, vgg_file):
        path, _ = vgg_file
        loss = gl.VGGLoss("vgg16", layers={"relu2_2": 1.0}, weights=path)
        assert loss.weights_source.startswith("file:") and len(loss.trunk) == 9
        gen = torch.Generator().manual_seed(5)
        x, y = (torch.rand(2, 3, 3, 16, 16, generator=gen) * 2 - 1 for _ in range(2))
        x.requires_grad_(True)
        per_frame = torch.stack(
            [loss(x[:, :, t], y[:, :, t], reduction="none") for t in range(3)], 1
        )
        value = loss(x, y, reduction="none")
        torch.testing.assert_close(value, per_frame.mean(1))
        value.sum().backward()
        assert torch.isfinite(x.grad).all()
        torch.nn.Sequential(loss).train()
        assert not loss.training and all(not p.requires_grad for p in loss.parameters())

    def test_errors(self, vgg_file):
        path, _ = vgg_file
        with pytest.raises(ValueError, match=re.escape("got unknown ['relu9_9']")):
            gl.VGGLoss("vgg16", layers={"relu9_9": 1.0}, weights=path)
        with pytest.raises(
            ValueError, match=re.escape("`net` must be one of 'vgg16', 'vgg19'; got 'alex'")
        ):
            gl.VGGLoss("alex", weights=path)
        assert (
            gl.vgg_layer_names("vgg19")["relu5_1"] == 29
            and gl.vgg_layer_names("vgg16")["relu4_3"] == 22
        )


def test_vgg_names_have_one_home():
    # genloss.vgg and the package re-export; the old path through feature_matching is gone (unreleased)
    from genloss import feature_matching, vgg

    for name in vgg.__all__:
        assert getattr(vgg, name) is getattr(gl, name)
        assert not hasattr(feature_matching, name)

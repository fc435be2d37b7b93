"""The reference video GAN's models: shapes, output range, the warping path, config checks."""

from __future__ import annotations

import pytest
import torch

from genloss import warp
from models import DiscriminatorConfig, Generator, GeneratorConfig, ImageDiscriminator, VideoDiscriminator, sample_frames


def _context(b=2, k=2, size=32, seed=0):
    return torch.rand(b, 3, k, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class TestGenerator:
    @pytest.mark.parametrize("k,output_scale", [(2, 2), (3, 1), (1, 2)])
    def test_shape_and_range(self, k, output_scale):
        torch.manual_seed(0)
        g = Generator(GeneratorConfig(frames=6, context_frames=k, size=32, output_scale=output_scale))
        with torch.no_grad():  # push weights far from init so tanh/sigmoid saturate somewhere
            for p in g.parameters():
                p.add_(torch.randn_like(p))
        out = g(_context(k=k), torch.randn(2, 32))
        assert out.shape == (2, 3, 6 - k, 32, 32)
        assert out.min() >= -1 and out.max() <= 1

    def test_unconditional(self):
        g = Generator(GeneratorConfig(frames=5, context_frames=0, size=16, levels=2))
        out = g(torch.zeros(3, 3, 0, 16, 16), torch.randn(3, 32))
        assert out.shape == (3, 3, 5, 16, 16)
        assert out.min() >= -1 and out.max() <= 1

    def test_starts_as_faded_copy_of_last_frame(self):
        # Zero-initialised head: flow 0, colour 0, mask sigmoid(3) -> out = sigmoid(3) * last frame.
        # float64: the trilinear upsampling and the warp's coordinate round trip cost ~1e-15.
        g = Generator(GeneratorConfig(frames=5, context_frames=2, size=16)).double()
        ctx = _context(k=2, size=16).double()
        out = g(ctx, torch.randn(2, 32, dtype=torch.float64))
        expected = torch.sigmoid(torch.tensor(3.0, dtype=torch.float64)) * ctx[:, :, -1:].expand_as(out)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)

    def test_output_is_blend_of_warp_and_colour(self):
        # With a hand-set head bias the output must equal m * warp(last, flow) + (1 - m) * colour.
        cfg = GeneratorConfig(frames=4, context_frames=2, size=16)
        g = Generator(cfg).double()
        with torch.no_grad():
            g.head[1].bias.copy_(torch.tensor([0.2, -0.1, 0.3, 0.5, -0.25, 0.0], dtype=torch.float64))
        ctx = _context(k=2, size=16, seed=1).double()
        out = g(ctx, torch.randn(2, 32, dtype=torch.float64))
        colour = torch.tanh(torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)).view(1, 3, 1, 1, 1)
        flow = (torch.tanh(torch.tensor([0.5, -0.25], dtype=torch.float64)) * cfg.max_flow * 16 / 32).view(1, 2, 1, 1, 1)
        last = ctx[:, :, -1:].expand(2, 3, 2, 16, 16)
        expected = 0.5 * warp(last, flow.expand(2, 2, 2, 16, 16)) + 0.5 * colour
        torch.testing.assert_close(out, expected.expand_as(out), rtol=1e-12, atol=1e-12)  # float64, as above

    def test_gradients_reach_every_parameter(self):
        g = Generator(GeneratorConfig(frames=5, context_frames=2, size=16))
        with torch.no_grad():
            g.head[1].weight.normal_(0, 0.1)  # the zero-initialised head would block the rest
        g(_context(k=2, size=16), torch.randn(2, 32)).square().mean().backward()
        missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert missing == []

    @pytest.mark.parametrize(
        "kwargs,match",
        [
            (dict(frames=4, context_frames=4), "context_frames must be in"),
            (dict(size=18), "size must be a multiple of 4"),
            (dict(base_channels=12), "multiple of 8"),
            (dict(output_scale=3), "output_scale"),
        ],
    )
    def test_bad_config(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            Generator(GeneratorConfig(**kwargs))

    def test_bad_context_shape(self):
        g = Generator(GeneratorConfig(frames=4, context_frames=2, size=16))
        with pytest.raises(ValueError, match=r"`context` must be \(B, 3, 2, 16, 16\)"):
            g(torch.zeros(1, 3, 1, 16, 16), torch.randn(1, 32))


class TestDiscriminators:
    def test_image_discriminator(self):
        d = ImageDiscriminator(DiscriminatorConfig(size=32, base_channels=8))
        logits, features = d(torch.randn(5, 3, 32, 32))
        assert logits.shape == (5, 1, 4, 4)
        assert [f.shape[1:] for f in features] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]

    def test_video_discriminator_halves_time(self):
        d = VideoDiscriminator(DiscriminatorConfig(size=32, base_channels=8))
        logits, features = d(torch.randn(2, 3, 8, 32, 32))
        assert logits.shape == (2, 1, 2, 4, 4)
        assert [tuple(f.shape[2:]) for f in features] == [(8, 16, 16), (4, 8, 8), (2, 4, 4)]

    def test_spectral_norm(self):
        d = ImageDiscriminator(DiscriminatorConfig(size=16, base_channels=8, levels=2, spectral_norm=True))
        d(torch.randn(2, 3, 16, 16))
        weight = d.trunk.layers[0][0].weight  # the normalised weight
        sigma = torch.linalg.matrix_norm(weight.flatten(1), ord=2)
        assert sigma < 1.5  # one power iteration per call: close to 1, far below the raw norm

    def test_bad_size(self):
        with pytest.raises(ValueError, match="multiple of 8"):
            VideoDiscriminator(DiscriminatorConfig(size=20))

    def test_sample_frames(self):
        video = torch.arange(2 * 1 * 4 * 1 * 1, dtype=torch.float32).view(2, 1, 4, 1, 1)
        frames = sample_frames(video, torch.tensor([3, 1]))
        assert frames.shape == (4, 1, 1, 1)
        assert frames.flatten().tolist() == [3.0, 1.0, 7.0, 5.0]

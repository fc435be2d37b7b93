"""The reference video GAN's models: shapes, output range, the warping path, config checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genloss import estimate_flow, warp
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

    def test_residual_starts_as_an_exact_copy_of_the_last_frame(self):
        # Zero-initialised head: flow 0 and correction 0, so every continuation frame is the last one.
        g = Generator(GeneratorConfig(frames=5, context_frames=2, size=16, output="residual")).double()
        ctx = _context(k=2, size=16).double()
        out = g(ctx, torch.randn(2, 32, dtype=torch.float64))
        torch.testing.assert_close(out, ctx[:, :, -1:].expand_as(out), rtol=1e-12, atol=1e-12)

    def test_flow_prior_starts_by_extrapolating_the_context_motion(self):
        # A smooth texture moving 1 px right and 0.5 px down per frame: with a zero head the residual
        # generator's continuation is warp(last, (i + 1) F), F measured from the two context frames
        # (estimate_flow is weight-free); it must predict the moving texture far better than a copy
        # of the last frame, where the plain generator is that copy.
        g_ = torch.Generator().manual_seed(0)
        big = F.avg_pool2d(torch.rand(1, 3, 96, 96, generator=g_), 5, 1, 2) * 2 - 1
        big = F.interpolate(big, scale_factor=2, mode="bilinear", align_corners=False)  # (1, 3, 192, 192)
        shift = lambda t: torch.roll(big, shifts=(t, 2 * t), dims=(2, 3))[:, :, 32:160, 32:160]  # (1, 3, 128, 128)
        video = torch.stack([F.avg_pool2d(shift(t), 2) for t in range(6)], 2)  # (1, 3, 6, 64, 64)
        ctx, future = video[:, :, :2], video[:, :, 2:]
        cfg = GeneratorConfig(frames=6, context_frames=2, size=64, output="residual", flow_prior=True)
        out = Generator(cfg)(ctx, torch.randn(1, 32)).detach()
        seen = estimate_flow(ctx[:, :, 1], ctx[:, :, 0])
        steps = torch.arange(1, 5, dtype=torch.float32).view(1, 1, 4, 1, 1)
        expected = warp(ctx[:, :, 1:].expand(-1, -1, 4, -1, -1), steps * seen[:, :, None]).clamp(-1, 1)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        inner = (..., slice(12, -12), slice(12, -12))  # away from the borders the shift wraps into
        copy_error = (ctx[:, :, 1:] - future).abs()[inner].mean()
        assert (out - future).abs()[inner].mean() < 0.2 * copy_error
        plain = Generator(GeneratorConfig(frames=6, context_frames=2, size=64, output="residual"))(ctx, torch.randn(1, 32))
        torch.testing.assert_close(plain.detach(), ctx[:, :, 1:].expand_as(plain))

    @pytest.mark.parametrize("output", ["residual", "blend"])
    def test_parts_are_the_output_with_a_head_switched_off(self, output):
        """``parts``: ``frames`` is the forward output; ``warp_only`` is the forward output with the
        paint switched off in the weights (residual: colour head zeroed, the correction 2 tanh(0) = 0;
        blend: the mask's bias at +1e4, sigmoid = 1); ``no_flow`` with the flow head zeroed."""
        torch.manual_seed(0)
        cfg = GeneratorConfig(frames=5, context_frames=2, size=16, output=output, warp_mode="bicubic")
        g = Generator(cfg).double()
        with torch.no_grad():  # a trained-looking head: every output channel non-zero
            g.head[1].weight.normal_(0, 0.3)
            g.head[1].bias.normal_(0, 0.3)
        ctx, z = torch.rand(3, 3, 2, 16, 16, dtype=torch.float64) * 2 - 1, torch.randn(3, 32, dtype=torch.float64)
        parts = g.parts(ctx, z)
        assert sorted(parts) == ["flow", "frames", "no_flow", "warp_only"]
        frames, flow = g(ctx, z, return_flow=True)
        torch.testing.assert_close(parts["frames"], frames, rtol=0, atol=0)
        torch.testing.assert_close(parts["flow"], flow, rtol=0, atol=0)
        assert flow.abs().max() > 0.5  # the ablations below differ from the output

        def switched_off(channels: slice, bias: float = 0.0) -> torch.Tensor:
            h = Generator(cfg).double()
            h.load_state_dict(g.state_dict())
            with torch.no_grad():
                h.head[1].weight[channels] = 0
                h.head[1].bias[channels] = bias
            return h(ctx, z)

        paint = slice(0, 3) if output == "residual" else slice(5, 6)
        torch.testing.assert_close(parts["warp_only"], switched_off(paint, 0.0 if output == "residual" else 1e4).clamp(-1, 1))
        # A zero flow samples every pixel at its own place: bicubic grid_sample reproduces it to ~1e-6.
        torch.testing.assert_close(parts["no_flow"], switched_off(slice(3, 5)), rtol=0, atol=1e-6)
        assert (parts["warp_only"] - frames).abs().max() > 0.1 and (parts["no_flow"] - frames).abs().max() > 0.1
        assert g.parts(ctx, z, ablations=False).keys() == {"frames", "flow"}
        assert Generator(GeneratorConfig(frames=5, context_frames=0, size=16, levels=2)).parts(
            torch.zeros(2, 3, 0, 16, 16), torch.randn(2, 32)).keys() == {"frames"}

    def test_gradients_reach_every_parameter(self):
        g = Generator(GeneratorConfig(frames=5, context_frames=2, size=16))
        with torch.no_grad():
            g.head[1].weight.normal_(0, 0.1)  # the zero-initialised head would block the rest
        g(_context(k=2, size=16), torch.randn(2, 32)).square().mean().backward()
        missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert missing == []

    @pytest.mark.parametrize("k,output_scale,output,flow_prior,warp_mode", [
        (2, 2, "blend", False, "bilinear"), (3, 1, "blend", False, "bilinear"), (0, 2, "blend", False, "bilinear"),
        (2, 2, "residual", False, "bilinear"), (2, 2, "residual", True, "bilinear"), (3, 1, "blend", True, "bilinear"),
        (2, 2, "residual", False, "bicubic"), (3, 2, "blend", False, "bicubic")])
    def test_forward_equals_the_architecture_written_out(self, k, output_scale, output, flow_prior, warp_mode):
        """The generator's forward against its architecture written out with torch.nn.functional,
        from its own (randomised) weights: stem on the K frames and their K-1 differences, SiLU +
        stride-2 convs, noise and time embedding, a residual (2+1)-D block, nearest upsampling with
        the encoder's skip, the head, the flow scaled by size/32 and the blend on the last frame
        (or, ``output="residual"``, the warped last frame plus 2 tanh of the colour head, clamped).
        With ``flow_prior`` the stem also gets the flow measured between the last two context frames
        (over the flow range) and continuation frame i adds (i + 1) times it to the head's flow.
        ``warp_mode`` is the warp's sampling. Size 16, so a flow range not scaled with the size is
        off by 2x. float64: both sides run the same ops, so they agree to rounding."""
        torch.manual_seed(0)
        cfg = GeneratorConfig(frames=5, context_frames=k, size=16, z_dim=6, base_channels=8, output_scale=output_scale,
                              output=output, flow_prior=flow_prior, warp_mode=warp_mode)
        g = Generator(cfg).double()
        with torch.no_grad():  # every weight random (the head starts at zero), biases included
            for p in g.parameters():
                p.copy_(torch.randn_like(p) * 0.3)
        ctx = _context(k=k, size=16, seed=3).double()
        z = torch.randn(2, 6, dtype=torch.float64)
        w = dict(g.named_parameters())

        def conv2p1(x, name):
            x = F.conv3d(x, w[f"{name}.0.weight"], w[f"{name}.0.bias"], padding=(0, 1, 1))
            return F.conv3d(x, w[f"{name}.1.weight"], w[f"{name}.1.bias"], padding=(1, 0, 0))

        def norm(x, name):
            return F.group_norm(x, 8, w[f"{name}.weight"], w[f"{name}.bias"])

        skips = []
        if k:
            frames = [ctx[:, :, i] for i in range(k)] + [ctx[:, :, i] - ctx[:, :, i - 1] for i in range(1, k)]
            if flow_prior:
                seen = estimate_flow(ctx[:, :, -1], ctx[:, :, -2])
                frames.append(seen / (cfg.max_flow * 16 / 32))
            x = F.conv2d(torch.cat(frames, 1), w["stem.weight"], w["stem.bias"], padding=1)
            for i in range(2):
                skips.append(x)
                x = F.conv2d(F.silu(x), w[f"down.{i}.1.weight"], w[f"down.{i}.1.bias"], stride=2, padding=1)
        else:
            x = w["const"].expand(2, -1, -1, -1)
        x = x + F.linear(z, w["from_z.weight"], w["from_z.bias"])[:, :, None, None]
        x = x[:, :, None] + w["time_embedding"]
        h = conv2p1(F.silu(norm(x, "blocks.0.body.0")), "blocks.0.body.2")
        x = x + conv2p1(F.silu(norm(h, "blocks.0.body.3")), "blocks.0.body.5")
        for i in range(2 if output_scale == 1 else 1):
            x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)  # nearest, x2 in space
            x = conv2p1(F.silu(norm(x, f"up.{i}.0")), f"up.{i}.2")
            if skips:
                x = x + skips.pop()[:, :, None]
        out = F.conv3d(F.silu(x), w["head.1.weight"], w["head.1.bias"], padding=(0, 1, 1))
        if output_scale == 2:
            out = F.interpolate(out, size=(5 - k, 16, 16), mode="trilinear", align_corners=False)
        colour = torch.tanh(out[:, :3])
        if k:
            flow = torch.tanh(out[:, 3:5]) * cfg.max_flow * 16 / 32
            if flow_prior:
                flow = flow + torch.stack([(i + 1) * seen for i in range(5 - k)], dim=2)
            last = ctx[:, :, -1:].expand(-1, -1, 5 - k, -1, -1)
            if output == "residual":
                assert out.shape[1] == 5  # no mask channel
                expected = (warp(last, flow, mode=warp_mode) + 2 * colour).clamp(-1, 1)
            else:
                mask = torch.sigmoid(out[:, 5:])
                expected = mask * warp(last, flow, mode=warp_mode) + (1 - mask) * colour
        else:
            expected = colour
        with torch.no_grad():
            torch.testing.assert_close(g(ctx, z), expected, rtol=1e-12, atol=1e-12)

    @pytest.mark.parametrize(
        "kwargs,match",
        [
            (dict(frames=4, context_frames=4), "context_frames must be in"),
            (dict(size=18), "size must be a multiple of 4"),
            (dict(base_channels=12), "multiple of 8"),
            (dict(output_scale=3), "output_scale"),
            (dict(output="mix"), "output must be one of"),
            (dict(warp_mode="nearest"), "warp_mode must be one of"),
            (dict(context_frames=1, flow_prior=True), "flow_prior needs at least 2 context frames"),
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
        # Every convolution of both discriminators is normalised, the logit layer included.
        from torch.nn.utils.parametrize import is_parametrized

        for disc in (d, VideoDiscriminator(DiscriminatorConfig(size=16, base_channels=8, levels=2, spectral_norm=True))):
            convs = [m for m in disc.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
            assert len(convs) == 3 and all(is_parametrized(m, "weight") for m in convs)

    @pytest.mark.parametrize("video", [False, True])
    def test_forward_equals_the_architecture_written_out(self, video):
        """Stride-2 convs (time kept by the video discriminator's first layer), LeakyReLU(0.2)
        after each, then a 3x3(x3) conv to the logits; the features are the activations.
        float64, same ops on both sides."""
        torch.manual_seed(0)
        cfg = DiscriminatorConfig(size=16, base_channels=8, levels=2)
        d = (VideoDiscriminator if video else ImageDiscriminator)(cfg).double()
        x = torch.randn(2, 3, 4, 16, 16, dtype=torch.float64) if video else torch.randn(2, 3, 16, 16, dtype=torch.float64)
        conv = F.conv3d if video else F.conv2d
        strides = [(1, 2, 2), (2, 2, 2)] if video else [2, 2]
        w, h, features = dict(d.named_parameters()), x, []
        for i in range(2):
            h = F.leaky_relu(conv(h, w[f"trunk.layers.{i}.0.weight"], w[f"trunk.layers.{i}.0.bias"], stride=strides[i],
                                  padding=1), 0.2)
            features.append(h)
        expected = conv(h, w["trunk.to_logits.weight"], w["trunk.to_logits.bias"], padding=1)
        with torch.no_grad():
            logits, got = d(x)
        torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)
        for a, b in zip(got, features, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

    def test_local_trunk_equals_the_architecture_written_out(self):
        """Two 3x3 convs at full resolution, then per level a 2x2 max pool and a 3x3 conv (width
        doubled), LeakyReLU(0.2) after each conv, a 3x3 conv to the logits; the features are the
        activations at the end of each stage. float64, same ops on both sides."""
        torch.manual_seed(0)
        d = ImageDiscriminator(DiscriminatorConfig(size=16, base_channels=4, levels=2, trunk="local")).double()
        x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
        w = dict(d.named_parameters())

        def conv(h, name):
            return F.leaky_relu(F.conv2d(h, w[f"trunk.layers.{name}.weight"], w[f"trunk.layers.{name}.bias"],
                                         padding=1), 0.2)

        h = conv(conv(x, "0.0"), "0.2")
        features = [h]
        for i in (1, 2):
            h = conv(F.max_pool2d(h, 2), f"{i}.1")
            features.append(h)
        expected = F.conv2d(h, w["trunk.to_logits.weight"], w["trunk.to_logits.bias"], padding=1)
        with torch.no_grad():
            logits, got = d(x)
        assert logits.shape == (2, 1, 4, 4)  # a logit per 4x4 patch, as the strided trunk with 2 levels
        assert [f.shape[1:] for f in got] == [(4, 16, 16), (8, 8, 8), (16, 4, 4)]
        torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)
        for a, b in zip(got, features, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

    def test_local_trunk_spectral_norm_wraps_every_conv(self):
        from torch.nn.utils.parametrize import is_parametrized

        d = ImageDiscriminator(DiscriminatorConfig(size=16, base_channels=4, levels=2, trunk="local", spectral_norm=True))
        convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 5 and all(is_parametrized(m, "weight") for m in convs)  # 2 full-res, 2 pooled, logits

    def test_bad_trunk(self):
        with pytest.raises(ValueError, match="trunk must be one of .*'strided'.*got 'pooled'"):
            ImageDiscriminator(DiscriminatorConfig(trunk="pooled"))
        with pytest.raises(ValueError, match="video discriminator has only the 'strided' trunk; got trunk='local'"):
            VideoDiscriminator(DiscriminatorConfig(trunk="local"))

    def test_bad_size(self):
        with pytest.raises(ValueError, match="multiple of 8"):
            VideoDiscriminator(DiscriminatorConfig(size=20))

    def test_sample_frames(self):
        video = torch.arange(2 * 1 * 4 * 1 * 1, dtype=torch.float32).view(2, 1, 4, 1, 1)
        frames = sample_frames(video, torch.tensor([3, 1]))
        assert frames.shape == (4, 1, 1, 1)
        assert frames.flatten().tolist() == [3.0, 1.0, 7.0, 5.0]

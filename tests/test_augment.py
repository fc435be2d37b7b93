"""DiffAugment: each op against its formula, time-consistency for videos, reproducibility, gradients."""

import pytest
import torch

import genloss as gl
from genloss.augment import apply_augment, sample_augment_params


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def video(b=3, c=3, t=4, h=8, w=8, seed=0, dtype=torch.float32):
    return torch.rand(b, c, t, h, w, generator=seeded(seed), dtype=dtype) * 2 - 1


class TestOps:
    """``apply_augment`` with given parameters against each op's formula, written out by hand."""

    def test_brightness_adds_a_constant_per_clip(self):
        x = video()
        out = apply_augment(x, {"brightness": torch.tensor([0.25, -0.5, 0.0])})
        for b, offset in enumerate([0.25, -0.5, 0.0]):
            assert torch.equal(out[b], x[b] + offset)

    def test_saturation_scales_around_the_channel_mean(self):
        x = video(dtype=torch.float64)
        factors = [0.0, 1.5, 1.0]
        out = apply_augment(x, {"saturation": torch.tensor(factors)})
        for b, s in enumerate(factors):
            gray = (x[b, 0] + x[b, 1] + x[b, 2]) / 3  # (T, H, W)
            assert torch.allclose(out[b], (x[b] - gray) * s + gray, rtol=0, atol=1e-15)
        assert torch.allclose(out[0], out[0, :1].expand_as(out[0]))  # factor 0: grey

    def test_contrast_scales_around_each_frames_mean(self):
        x = video(dtype=torch.float64)
        factors = [0.5, 1.25, 1.0]
        out = apply_augment(x, {"contrast": torch.tensor(factors)})
        for b, s in enumerate(factors):
            for t in range(x.shape[2]):
                frame = x[b, :, t]
                mean = frame.sum() / frame.numel()
                assert torch.allclose(out[b, :, t], (frame - mean) * s + mean, rtol=0, atol=1e-15)

    def test_translation_by_known_shifts(self):
        x = torch.arange(2 * 1 * 2 * 5 * 6, dtype=torch.float32).view(2, 1, 2, 5, 6) + 1
        shifts = [(2, -1), (-5, 3)]  # the second moves everything out vertically
        out = apply_augment(x, {"translation": torch.tensor(shifts)})
        for b, (dy, dx) in enumerate(shifts):
            for i in range(5):
                for j in range(6):
                    si, sj = i - dy, j - dx
                    inside = 0 <= si < 5 and 0 <= sj < 6
                    expected = x[b, :, :, si, sj] if inside else torch.zeros(1, 2)
                    assert torch.equal(out[b, :, :, i, j], expected), (b, i, j)

    def test_cutout_zeroes_the_box(self):
        x = video() + 5  # no zeros of its own
        boxes = [(1, 2, 5, 6), (0, 0, 8, 8), (3, 3, 3, 7)]  # an empty box for the third clip
        out = apply_augment(x, {"cutout": torch.tensor(boxes)})
        for b, (top, left, bottom, right) in enumerate(boxes):
            inside = torch.zeros(8, 8, dtype=torch.bool)
            inside[top:bottom, left:right] = True
            assert torch.equal(out[b][:, :, inside], torch.zeros_like(out[b][:, :, inside]))
            assert torch.equal(out[b][:, :, ~inside], x[b][:, :, ~inside])

    def test_ops_apply_in_the_mappings_order(self):
        x = video()
        bright_then_cut = apply_augment(x, {"brightness": torch.ones(3) * 0.5, "cutout": torch.tensor([[0, 0, 8, 8]] * 3)})
        cut_then_bright = apply_augment(x, {"cutout": torch.tensor([[0, 0, 8, 8]] * 3), "brightness": torch.ones(3) * 0.5})
        assert torch.equal(bright_then_cut, torch.zeros_like(x)) and torch.equal(cut_then_bright, torch.full_like(x, 0.5))


class TestSampling:
    """The drawn parameters follow the reference implementation's ranges."""

    def test_colour_ranges(self):
        x = torch.zeros(4000, 3, 1, 1)
        p = sample_augment_params(x, "color", generator=seeded())
        assert list(p) == ["brightness", "saturation", "contrast"]
        for op, (low, high) in {"brightness": (-0.5, 0.5), "saturation": (0.0, 2.0), "contrast": (0.5, 1.5)}.items():
            v = p[op]
            assert v.shape == (4000,) and v.dtype == torch.float32
            assert v.min() >= low and v.max() < high
            # Uniform: the extremes come within 1% of the ends, the mean within 3 sigma of the middle.
            assert v.min() < low + 0.01 * (high - low) and v.max() > high - 0.01 * (high - low)
            assert abs(v.mean().item() - (low + high) / 2) < 3 * (high - low) / (12 * 4000) ** 0.5

    @pytest.mark.parametrize("h, w, ratio, sh, sw", [(8, 8, 0.25, 2, 2), (32, 16, 0.125, 4, 2), (6, 12, 0.125, 1, 2)])
    def test_translation_range(self, h, w, ratio, sh, sw):
        # s = int(side * ratio + 0.5): 6 / 8 = 0.75 rounds up to 1.
        p = sample_augment_params(torch.zeros(500, 1, h, w), "translation", translation_ratio=ratio, generator=seeded())
        t = p["translation"]
        assert t.shape == (500, 2) and t.dtype == torch.int64
        assert set(t[:, 0].tolist()) == set(range(-sh, sh + 1))
        assert set(t[:, 1].tolist()) == set(range(-sw, sw + 1))

    @pytest.mark.parametrize("side, size", [(16, 8), (5, 3), (7, 4)])
    def test_cutout_size_and_centres(self, side, size):
        # Box side int(side / 2 + 0.5); centre uniform in [0, side] (even box) or [0, side - 1] (odd),
        # so the box runs from centre - size // 2 for `size` pixels, clipped to the frame.
        p = sample_augment_params(torch.zeros(2000, 1, side, side), "cutout", generator=seeded())["cutout"]
        top, left, bottom, right = p.unbind(1)
        centres = set()
        for t, b in zip(top.tolist(), bottom.tolist()):
            unclipped = [c - size // 2 for c in range(side + 1 - size % 2)]
            start = next(s for s in unclipped if max(s, 0) == t and min(s + size, side) == b)
            centres.add(start + size // 2)
        assert centres == set(range(side + 1 - size % 2))  # every centre drawn
        assert ((bottom - top) == size).any() and ((bottom - top) < size).any()  # inside, and clipped
        assert ((right - left) <= size).all() and (left >= 0).all() and (right <= side).all()

    def test_draw_ignores_time_channels_and_dtype(self):
        a = sample_augment_params(torch.zeros(4, 3, 8, 8), generator=seeded(3))
        b = sample_augment_params(torch.zeros(4, 1, 5, 8, 8, dtype=torch.float64), generator=seeded(3))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class TestDiffAugment:
    def test_reproducible_with_a_generator(self):
        x = video()
        assert torch.equal(gl.diff_augment(x, generator=seeded(1)), gl.diff_augment(x, generator=seeded(1)))
        assert not torch.equal(gl.diff_augment(x, generator=seeded(1)), gl.diff_augment(x, generator=seeded(2)))
        # Without one it draws from the global RNG.
        torch.manual_seed(5)
        first = gl.diff_augment(x)
        torch.manual_seed(5)
        assert torch.equal(first, gl.diff_augment(x))

    def test_is_sample_then_apply(self):
        x = video()
        p = sample_augment_params(x, generator=seeded(4))
        assert torch.equal(gl.diff_augment(x, generator=seeded(4)), apply_augment(x, p))

    def test_every_frame_gets_its_clips_transform(self):
        x = video(t=5, dtype=torch.float64)
        out = gl.diff_augment(x, generator=seeded(7))
        p = sample_augment_params(x, generator=seeded(7))
        for t in range(5):  # each frame, augmented alone as an image with the same draw
            frame = gl.diff_augment(x[:, :, t], generator=seeded(7))
            # Equal up to the summation order of the per-frame means (float64 rounding).
            assert torch.allclose(out[:, :, t], frame, rtol=0, atol=1e-15)
            assert torch.allclose(out[:, :, t], apply_augment(x[:, :, t], p), rtol=0, atol=1e-15)

    def test_static_video_stays_static(self):
        frame = video(t=1)
        out = gl.diff_augment(frame.expand(-1, -1, 6, -1, -1), generator=seeded(0))
        assert torch.equal(out, out[:, :, :1].expand_as(out))
        assert not torch.equal(out, frame.expand_as(out))  # it was augmented

    def test_clips_are_independent(self):
        clip = video(b=1)
        out = gl.diff_augment(clip.expand(6, -1, -1, -1, -1), generator=seeded(0))
        assert all(not torch.equal(out[i], out[j]) for i in range(6) for j in range(i))
        # No cross-talk: changing clip 1 leaves clip 0's output alone (same draw).
        x = video(b=2)
        y = x.clone()
        y[1] = 0
        assert torch.equal(gl.diff_augment(x, generator=seeded(0))[0], gl.diff_augment(y, generator=seeded(0))[0])
        # And the draws of different clips are uncorrelated.
        p = sample_augment_params(torch.zeros(20000, 1, 1, 1), "brightness", generator=seeded(0))["brightness"]
        assert abs(torch.corrcoef(torch.stack([p[:-1], p[1:]]))[0, 1].item()) < 4 / 20000**0.5

    def test_empty_policy_is_identity(self):
        x = video()
        assert gl.diff_augment(x, "") is x and gl.diff_augment(x, "  ") is x
        assert torch.equal(gl.DiffAugment("")(x), x)

    @pytest.mark.parametrize("shape", [(2, 3, 2, 4, 4), (2, 3, 5, 4)])
    def test_gradcheck(self, shape):
        x = torch.rand(shape, dtype=torch.float64, generator=seeded()).mul(2).sub(1).requires_grad_(True)
        policy = "color,translation,cutout"
        assert torch.autograd.gradcheck(lambda v: gl.diff_augment(v, policy, generator=seeded(2)), (x,))

    def test_dtypes_and_shapes(self):
        for dtype in (torch.float16, torch.bfloat16, torch.float64):
            x = video(dtype=dtype)
            out = gl.diff_augment(x, generator=seeded())
            assert out.dtype == dtype and out.shape == x.shape
        assert gl.diff_augment(torch.zeros(2, 1, 4, 4), generator=seeded()).shape == (2, 1, 4, 4)

    def test_module_stores_config_only(self):
        # two different ratios, so that passing one for the other shows
        m = gl.DiffAugment("translation,cutout", translation_ratio=0.25, cutout_ratio=0.75)
        assert list(m.parameters()) == [] and list(m.buffers()) == []
        x = video()
        expected = gl.diff_augment(x, "translation,cutout", translation_ratio=0.25, cutout_ratio=0.75, generator=seeded(9))
        swapped = gl.diff_augment(x, "translation,cutout", translation_ratio=0.75, cutout_ratio=0.25, generator=seeded(9))
        assert not torch.equal(swapped, expected)
        assert torch.equal(m(x, generator=seeded(9)), expected)
        assert "policy='translation,cutout', translation_ratio=0.25, cutout_ratio=0.75" in repr(m)

    def test_errors(self):
        x = video()
        with pytest.raises(ValueError, match=r"`policy` must be a comma-separated list of 'color', 'brightness', "
                                             r"'saturation', 'contrast', 'translation', 'cutout'; got 'flip'"):
            gl.diff_augment(x, "color,flip")
        with pytest.raises(ValueError, match="names 'contrast' twice"):
            gl.diff_augment(x, "color,contrast")
        with pytest.raises(ValueError, match="got '' in 'color,,cutout'"):
            gl.diff_augment(x, "color,,cutout")
        with pytest.raises(ValueError, match="got 'flip'"):
            gl.DiffAugment("flip")
        with pytest.raises(TypeError, match="`policy` must be a comma-separated string; got list"):
            gl.diff_augment(x, ["color"])
        with pytest.raises(ValueError, match=r"`x` must be a 4-D or 5-D tensor .* got shape \(3, 8, 8\)"):
            gl.diff_augment(torch.zeros(3, 8, 8))
        with pytest.raises(TypeError, match="`x` must be a floating-point tensor"):
            gl.diff_augment(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
        with pytest.raises(ValueError, match="`cutout_ratio` must be a number in"):
            gl.diff_augment(x, cutout_ratio=1.5)
        with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
            gl.diff_augment(x, generator=0)
        with pytest.raises(ValueError, match=r"`params\['brightness'\]` must have shape \(3,\) for a batch of 3; got \(2,\)"):
            apply_augment(x, {"brightness": torch.zeros(2)})
        with pytest.raises(TypeError, match=r"`params\['translation'\]` must be an integer tensor"):
            apply_augment(x, {"translation": torch.zeros(3, 2)})
        with pytest.raises(ValueError, match=r"`params` keys must be among"):
            apply_augment(x, {"color": torch.zeros(3)})

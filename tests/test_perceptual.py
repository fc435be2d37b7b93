"""LPIPS: equality with the lpips package on shared random trunks, loss behaviour, weights, errors."""

from __future__ import annotations

import copy
import itertools
import re
import warnings

import lpips
import pytest
import torch
from torch import nn

import genloss as gl
import genloss.perceptual as perceptual
from genloss._backbones import TRUNKS, StemConv, min_input_size
from genloss.perceptual import FramesTooSmallError, select_frames
from lpips_reference import ARCH, reference, write_trunk

SIZE = {"alex": 64, "vgg": 32, "squeeze": 64}
# How many leading trunk layers run channels_last on CPU: every choice must give the same values.
LAYOUTS = {"nchw": lambda depth: 0, "half": lambda depth: depth // 2, "nhwc": lambda depth: depth}


@pytest.fixture(scope="module")
def trunk_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trunks")
    return {net: write_trunk(net, folder) for net in ARCH}


@pytest.fixture(scope="module")
def references(trunk_files):
    return {net: reference(net, trunk_files[net]) for net in ARCH}


def images(b: int, size: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, size, size, generator=generator, dtype=torch.float64) * 2 - 1).to(dtype)


@pytest.fixture(scope="module")
def alex(trunk_files):
    return gl.LPIPS("alex", weights=trunk_files["alex"])


def values_maps_and_gradients(model, x, y):
    """``model(x, y)`` per sample, its spatial maps and the gradient into ``x``."""
    x = x.clone().requires_grad_(True)
    if isinstance(model, lpips.LPIPS):
        values = model(x, y).flatten()
        model.spatial = True  # read by lpips.LPIPS.forward; saves building a second model
        maps = model(x, y)
        model.spatial = False
    else:
        values = model(x, y, reduction="none")
        maps = model(x, y, reduction="none", spatial=True)
    values.sum().backward()
    return values.detach(), maps.detach(), x.grad


class TestEqualsPackage:
    @pytest.mark.parametrize("layout", list(LAYOUTS))
    @pytest.mark.parametrize("net", list(ARCH))
    def test_float32_on_every_cpu_layout(self, net, layout, trunk_files, references, monkeypatch):
        # whatever layers run channels_last (the choice depends on the CPU), the numbers are the
        # package's
        monkeypatch.setattr(
            perceptual, "cpu_channels_last_layers", lambda name, depth: LAYOUTS[layout](depth)
        )
        ours = gl.LPIPS(net, weights=trunk_files[net])
        ref = references[net]
        x, y = images(2, SIZE[net], 0), images(2, SIZE[net], 1)
        got, got_maps, got_grad = values_maps_and_gradients(ours, x, y)
        expected, maps, grad = values_maps_and_gradients(ref, x, y)
        assert got.shape == (2,) and got_maps.shape == (2, 1, SIZE[net], SIZE[net])
        # float32: the two agree to ~2e-8 (a few ulp of values ~0.05-0.25); convolution kernels
        # and layouts round differently, so 1e-6 (and 3e-8 on gradients of size ~5e-4)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(got_maps, maps, atol=1e-6, rtol=0)
        torch.testing.assert_close(got_grad, grad, atol=3e-8, rtol=0)
        for lin, ref_lin in zip(ours.lins, ref.lins, strict=True):  # the package's calibration
            assert lin.equal(ref_lin.model[1].weight.flatten())
        # the no-grad path (pred and target in one trunk pass) gives the same numbers
        with torch.no_grad():
            torch.testing.assert_close(ours(x, y, reduction="none"), expected, atol=1e-6, rtol=0)

    @pytest.mark.parametrize("net", list(ARCH))
    def test_float64(self, net, trunk_files, references):
        # In float64 the two agree to ~1e-17, so a tolerance of 1e-12 catches any change of the
        # formula, e.g. a normalisation epsilon of 1e-6 instead of 1e-10 (values move by ~5e-9).
        ours = gl.LPIPS(net, weights=trunk_files[net]).double()
        ref = copy.deepcopy(references[net]).double()
        size = 16 if net == "vgg" else SIZE[net]  # vgg's smallest input: float64 VGG is slow
        x, y = images(2, size, 2, torch.float64), images(2, size, 3, torch.float64)
        for got, expected in zip(
            values_maps_and_gradients(ours, x, y), values_maps_and_gradients(ref, x, y), strict=True
        ):
            assert got.dtype == torch.float64
            torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-9)


class TestFeaturePath:
    """``unit_features`` once per frame, distances from features: the path tLP and metrics use."""

    @pytest.mark.parametrize("net", ["alex", "squeeze"])
    def test_equals_package_in_float64(self, net, trunk_files, references):
        ours = gl.LPIPS(net, weights=trunk_files[net]).double()
        ref = copy.deepcopy(references[net]).double()
        gen = torch.Generator().manual_seed(4)
        clips = torch.rand(2, 3, 3, 40, 40, generator=gen, dtype=torch.float64) * 2 - 1
        frames = clips[:, :, 1]
        # the package's normalised features of the same frames
        expected = [lpips.normalize_tensor(f) for f in ref.net(ref.scaling_layer(frames))]
        units = ours.unit_features(frames)
        assert len(units) == len(expected)
        for got, want in zip(units, expected, strict=True):
            torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-9)
        clip_units = ours.unit_features(clips)  # (B, T, C, h, w) per tap
        assert [tuple(u.shape) for u in clip_units] == [
            (2, 3, *u.shape[1:]) for u in units
        ]
        # Not bit-equal: the CPU convolution may pick another kernel for a batch of 6 frames than for 2
        # (seen with torch 2.14 under load); float64 rounding of a 3x3x64 sum bounds the difference.
        torch.testing.assert_close(clip_units[0][:, 1], units[0], atol=1e-14, rtol=0)
        # distances: pred against target per frame, and consecutive frames of one clip
        other = torch.rand(2, 3, 3, 40, 40, generator=gen, dtype=torch.float64) * 2 - 1
        per_frame = ours.feature_distance(clip_units, ours.unit_features(other))
        steps = ours.step_distance(clip_units)
        for t in range(3):
            torch.testing.assert_close(
                per_frame[:, t], ref(clips[:, :, t], other[:, :, t]).flatten(), atol=1e-12, rtol=0
            )
        for t in (1, 2):
            torch.testing.assert_close(
                steps[:, t - 1], ref(clips[:, :, t], clips[:, :, t - 1]).flatten(), atol=1e-12, rtol=0
            )

    def test_normalisation_gradient(self):
        # the hand-written gradient of f / (||f|| + eps) against autograd's numerical one
        f = torch.randn(2, 5, 3, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(perceptual._unit, (f,))
        # at a zero feature vector: finite, g / eps (the radial term vanishes with f)
        f = torch.randn(1, 4, 2, 2, dtype=torch.float64)
        f[0, :, 1, 0] = 0.0
        f.requires_grad_(True)
        g = torch.randn(1, 4, 2, 2, dtype=torch.float64)
        (grad,) = torch.autograd.grad(perceptual._unit(f), f, g)
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad[0, :, 1, 0], g[0, :, 1, 0] / perceptual.NORM_EPS)

    def test_errors(self, alex):
        units = alex.unit_features(images(2, 32, 0))
        with pytest.raises(ValueError, match=re.escape("must hold 5 tensors, one per alex tap")):
            alex.feature_distance(units[:4], units[:4])
        with pytest.raises(ValueError, match=re.escape("tap 0 of `a` and `b` must have one shape")):
            alex.feature_distance(units, [u[:1] for u in units])
        with pytest.raises(ValueError, match=re.escape("`units` must be the unit_features of clips")):
            alex.step_distance(units)
        with pytest.raises(ValueError, match=re.escape("`clip` must hold pixels in [-1, 1]")):
            alex.unit_features(torch.full((1, 3, 2, 32, 32), 2.0), name="clip")
        with pytest.raises(FramesTooSmallError, match=re.escape("`clip` frames must be at least 31x31")):
            alex.unit_features(torch.zeros(1, 3, 2, 30, 32), name="clip")


class TestReductionsAndVideo:
    def test_reductions(self, alex):
        x, y = images(3, 32, 2), images(3, 32, 3)
        per = alex(x, y, reduction="none")
        torch.testing.assert_close(alex(x, y), per.mean())
        torch.testing.assert_close(alex(x, y, reduction="sum"), per.sum())
        assert gl.LPIPS("alex", weights=alex.weights_source[5:], reduction="sum")(
            x, y
        ) == pytest.approx(per.sum().item(), abs=1e-6)

    def test_identical_inputs_cost_zero(self, alex):
        x = images(2, 32, 4)
        assert alex(x, x.clone(), reduction="none").abs().max() < 1e-6

    def test_video_is_mean_over_frames(self, alex):
        gen = torch.Generator().manual_seed(5)
        x, y = (torch.rand(2, 3, 4, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
        per_frame = torch.stack(
            [alex(x[:, :, t], y[:, :, t], reduction="none") for t in range(4)], 1
        )
        torch.testing.assert_close(
            alex(x, y, reduction="none"), per_frame.mean(1), atol=1e-6, rtol=0
        )
        maps = alex(x, y, reduction="none", spatial=True)
        assert maps.shape == (2, 1, 4, 32, 32)

    def test_frames_uniform_picks_bin_centres(self, trunk_files):
        gen = torch.Generator().manual_seed(6)
        x, y = (torch.rand(2, 3, 8, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
        loss = gl.LPIPS("alex", weights=trunk_files["alex"], frames=2)
        full = gl.LPIPS("alex", weights=trunk_files["alex"])
        # centres of 2 bins of [0, 8): frames 2 and 6
        expected = full(x[:, :, [2, 6]], y[:, :, [2, 6]], reduction="none")
        torch.testing.assert_close(loss(x, y, reduction="none"), expected, atol=1e-6, rtol=0)
        assert select_frames((x,), 1, random=False)[0].equal(x[:, :, 4:5])

    def test_frames_sampled_by_the_loss_while_parent_trains(self, trunk_files):
        # With frames=2 a clip's loss is the mean of its per-frame distances d[b, t] over the two
        # frames it evaluated. Noise doubling from frame to frame makes d grow about 3x per frame,
        # so all 15 pair means of a clip differ and the loss names the frames it used.
        steps, k, uniform = 6, 2, (1, 4)  # evenly spaced: the centres of 2 bins of [0, 6)
        gen = torch.Generator().manual_seed(7)
        x = torch.rand(4, 3, steps, 32, 32, generator=gen) * 2 - 1
        noise = 0.03 * 2.0 ** torch.arange(steps).view(1, 1, steps, 1, 1)
        y = (x + noise * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
        full = gl.LPIPS("alex", weights=trunk_files["alex"])
        with torch.no_grad():
            d = torch.stack([full(x[:, :, t], y[:, :, t], reduction="none") for t in range(steps)], 1)
        subsets = list(itertools.combinations(range(steps), k))
        means = torch.stack([d[:, list(s)].mean(dim=1) for s in subsets], 1)  # (B, 15)
        assert means.sort(dim=1).values.diff(dim=1).min() > 1e-4

        def frames_used(values: torch.Tensor) -> list[tuple[int, ...]]:
            error, index = (means - values[:, None]).abs().min(dim=1)
            assert (error < 1e-6).all(), "each clip's loss is LPIPS over k of its frames"
            return [subsets[i] for i in index.tolist()]

        loss = gl.LPIPS("alex", weights=trunk_files["alex"], frames=k)  # frame_sampling="auto"
        parent = torch.nn.Sequential(loss)
        parent.train()
        torch.manual_seed(0)
        first = frames_used(loss(x, y, reduction="none"))
        torch.manual_seed(0)
        clock = torch.arange(steps, dtype=torch.float32).view(1, 1, steps, 1, 1).expand(4, 1, -1, 1, 1)
        drawn = select_frames((clock,), k, random=True)[0][:, 0, :, 0, 0]
        assert first == [tuple(row) for row in drawn.long().tolist()]  # the seeded RNG's frames
        assert len(set(first)) > 1 and first != [uniform] * 4  # per clip, not evenly spaced
        torch.manual_seed(1)
        assert frames_used(loss(x, y, reduction="none")) != first  # another seed, another draw
        # The drawn frames stay in time order: per-frame maps of later (noisier) frames come later.
        maps = loss(x, y, reduction="none", spatial=True)
        assert maps.shape == (4, 1, k, 32, 32)
        assert (maps.mean(dim=(1, 3, 4)).diff(dim=1) > 0).all()
        parent.eval()
        assert frames_used(loss(x, y, reduction="none")) == [uniform] * 4
        forced = gl.LPIPS("alex", weights=trunk_files["alex"], frames=k, frame_sampling="uniform")
        torch.nn.Sequential(forced).train()
        assert frames_used(forced(x, y, reduction="none")) == [uniform] * 4


class TestTrainingBehaviour:
    def test_frozen_and_eval_forever(self, alex):
        parent = torch.nn.Sequential(alex, torch.nn.Linear(2, 2))
        parent.train()
        assert all(not p.requires_grad for p in alex.parameters())
        assert not alex.training and not any(m.training for m in alex.modules())
        assert parent[1].training

    def test_finite_gradient_where_features_vanish(self, alex):
        # A constant image gives all-zero ReLU features at many positions: the package's
        # sqrt(sum f^2) has a NaN gradient there, ours must stay finite.
        x = torch.full((2, 3, 64, 64), -1.0, requires_grad=True)
        value = alex(x, x.detach().clone())
        value.backward()
        assert value.item() == 0.0
        assert torch.isfinite(x.grad).all()
        y = images(2, 64, 7)
        x.grad = None
        alex(x, y).backward()
        assert torch.isfinite(x.grad).all()

    def test_target_gets_no_graph(self, alex):
        x, y = images(2, 32, 8).requires_grad_(True), images(2, 32, 9).requires_grad_(True)
        alex(x, y).backward()
        assert x.grad is not None and y.grad is None
        assert not alex(x.detach(), y).requires_grad  # nor when only the target asks for one

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_inputs(self, alex, dtype):
        x, y = images(2, 64, 10), images(2, 64, 11)
        full = alex(x, y, reduction="none")
        xh = x.to(dtype).requires_grad_(True)
        half = alex(xh, y.to(dtype), reduction="none")
        half.sum().backward()
        assert half.dtype == torch.float32 and torch.isfinite(xh.grad).all()
        torch.testing.assert_close(half, full, atol=2e-3, rtol=2e-2)

    def test_autocast_bfloat16(self, alex):
        x, y = images(2, 64, 12).requires_grad_(True), images(2, 64, 13)
        full = alex(x, y, reduction="none").detach()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = alex(x, y, reduction="none")
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(x.grad).all()
        torch.testing.assert_close(value.float(), full, atol=1e-2, rtol=5e-2)


class TestInputErrors:
    def test_integer_tensor(self, alex):
        x = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
        with pytest.raises(
            TypeError,
            match=re.escape(
                "`pred` must be a floating-point tensor with pixels in [-1, 1]; got dtype torch.uint8"
            ),
        ):
            alex(x, x)

    def test_0_255_range(self, alex):
        x = torch.full((1, 3, 32, 32), 200.0)
        with pytest.raises(
            ValueError, match=re.escape("`pred` must hold pixels in [-1, 1]")
        ) as info:
            alex(x, images(1, 32, 0))
        assert "got values in [200, 200]" in str(info.value) and "127.5" in str(info.value)
        unchecked = gl.LPIPS("alex", weights=alex.weights_source[5:], check_range=False)
        assert torch.isfinite(unchecked(x, images(1, 32, 0)))

    @pytest.mark.parametrize("side", ["pred", "target"])
    @pytest.mark.parametrize("loss", ["lpips", "vgg"])
    def test_either_input_out_of_range(self, loss, side, trunk_files):
        # both frozen-network losses check both inputs (VGGLoss shares LPIPS's input handling)
        if loss == "lpips":
            module = gl.LPIPS("alex", weights=trunk_files["alex"])
        else:
            module = gl.VGGLoss("vgg16", layers={"relu1_2": 1.0}, weights=trunk_files["vgg"])
        inside, outside = images(1, 32, 0), images(1, 32, 0)
        outside[0, 1, 3, 5] = -1.6  # one pixel past the [-1.5, 1.5] limit
        args = (outside, inside) if side == "pred" else (inside, outside)
        with pytest.raises(
            ValueError,
            match=re.escape(f"`{side}` must hold pixels in [-1, 1] (values outside [-1.5, 1.5] are "
                            "rejected); got values in [-1.6, "),
        ):
            module(*args)
        with pytest.raises(ValueError, match=re.escape(f"`{side}` must hold pixels in [-1, 1]")):
            module(*(a[:, :, None].expand(-1, -1, 2, -1, -1) for a in args))  # as clips
        module.check_range = False
        assert torch.isfinite(module(*args))

    def test_channels_shape_and_options(self, alex):
        gray = torch.zeros(1, 1, 32, 32)
        with pytest.raises(
            ValueError,
            match=re.escape("`pred` must have 3 (RGB) channels in dim 1; got shape (1, 1, 32, 32)"),
        ):
            alex(gray, gray)
        with pytest.raises(
            ValueError,
            match=re.escape(
                "`pred` and `target` must have the same shape; got (1, 3, 32, 32) and (2, 3, 32, 32)"
            ),
        ):
            alex(images(1, 32, 0), images(2, 32, 0))
        with pytest.raises(ValueError, match="`reduction` must be one of"):
            alex(images(1, 32, 0), images(1, 32, 0), reduction="avg")
        with pytest.raises(
            ValueError,
            match=re.escape("`net` must be one of 'alex', 'vgg', 'squeeze'; got 'resnet'"),
        ):
            gl.LPIPS("resnet", weights="random")
        with pytest.raises(
            ValueError, match=re.escape("`frames` must be a positive int or None; got 0")
        ):
            gl.LPIPS("alex", weights="random", frames=0)

    def test_too_small_frames(self, alex):
        # alex's second max-pool needs 3x3 inputs: 31x31 frames are the smallest that work
        assert alex.min_size == 31
        assert torch.isfinite(alex(images(1, 31, 0), images(1, 31, 1)))
        small = torch.zeros(1, 3, 2, 30, 64)
        with pytest.raises(
            FramesTooSmallError,
            match=re.escape(
                "`pred` frames must be at least 31x31 pixels for this LPIPS's network; "
                "got shape (1, 3, 2, 30, 64)"
            ),
        ):
            alex(small, small)
        assert issubclass(FramesTooSmallError, ValueError)


class TestWeights:
    @pytest.fixture
    def offline_hub(self, tmp_path, monkeypatch):
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
        calls = []

        def no_network(url, *args, **kwargs):
            calls.append(url)
            raise OSError("network is unreachable")

        monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
        return tmp_path, calls

    def test_imagenet_missing_names_cache_file_and_workaround(self, offline_hub):
        hub, calls = offline_hub
        expected = hub / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
        with pytest.raises(gl.WeightsNotFoundError) as info:
            gl.LPIPS("alex")
        message = str(info.value)
        assert str(expected) in message and "weights='/path/to/alexnet-owt-7be5be79.pth'" in message
        assert "OSError: network is unreachable" in message and calls == [TRUNKS["alex"].url]
        with pytest.raises(gl.WeightsNotFoundError, match="download=False"):
            gl.LPIPS("alex", download=False)
        assert len(calls) == 1

    def test_imagenet_from_cache(self, offline_hub, trunk_files):
        hub, calls = offline_hub
        cached = hub / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
        cached.parent.mkdir(parents=True)
        cached.write_bytes(trunk_files["squeeze"].read_bytes())
        loss = gl.LPIPS("squeeze")
        assert loss.weights_source == f"imagenet:{cached}" and calls == []
        x, y = images(1, 32, 0), images(1, 32, 1)
        torch.testing.assert_close(
            loss(x, y), gl.LPIPS("squeeze", weights=trunk_files["squeeze"])(x, y)
        )

    def test_path_errors(self, tmp_path, trunk_files):
        missing = tmp_path / "nope.pth"
        with pytest.raises(
            gl.WeightsNotFoundError,
            match=re.escape(f"weights file for net='alex' not found: {missing}"),
        ):
            gl.LPIPS("alex", weights=missing)
        state = torch.load(trunk_files["alex"])
        del state["features.3.weight"]
        state["features.0.bias"] = torch.zeros(5)
        state["head.weight"] = torch.zeros(1)
        bad = tmp_path / "bad.pth"
        torch.save(state, bad)
        with pytest.raises(ValueError) as info:
            gl.LPIPS("alex", weights=bad)
        assert str(info.value) == (
            f"{bad} is not a torchvision alexnet state dict; missing keys: features.3.weight; "
            "unexpected keys: head.weight; wrong shapes: features.0.bias (5,) (expected (64,))"
        )
        # a whole-network checkpoint (classifier keys too) is accepted
        state = torch.load(trunk_files["alex"])
        state["classifier.1.weight"] = torch.zeros(2, 2)
        whole = tmp_path / "whole.pth"
        torch.save(state, whole)
        assert gl.LPIPS("alex", weights=whole).weights_source == f"file:{whole.resolve()}"

    def test_random_warns_and_is_seeded(self):
        with pytest.warns(UserWarning, match="meaningless perceptually"):
            a = gl.LPIPS("squeeze", weights="random")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = gl.LPIPS("squeeze", weights="random")
        assert a.weights_source == "random(seed=0)"
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert pa.equal(pb)


class TestStemGradient:
    @pytest.mark.parametrize(
        "size, kernel, stride, padding",
        [
            (64, 11, 4, 2),
            (37, 11, 4, 2),
            (50, 7, 3, 3),
            (12, 3, 4, 1),
            (33, 3, 2, 0),
            (16, 3, 1, 1),
        ],
    )
    def test_equals_autograd_in_float64(self, size, kernel, stride, padding):
        # sub-pixel form for stride >= 3 (alex), matmul + fold below (squeeze, vgg)
        conv = torch.nn.Conv2d(3, 8, kernel, stride, padding).double()
        x = torch.randn(2, 3, size, size, dtype=torch.float64, requires_grad=True)
        grad = torch.randn_like(conv(x))
        expected = torch.autograd.grad(conv(x), x, grad)[0]
        got = torch.autograd.grad(StemConv.apply(x, conv), x, grad)[0]
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


class TestMinInputSize:
    def test_is_the_smallest_size_torch_accepts(self):
        # min_input_size follows torch's size arithmetic; checked against forward passes. The
        # first stack's ceil-mode pool would start its last window in the padding at 1x1 (torch
        # drops that window), leaving the 2x2 conv a 1x1 input.
        stacks = [
            nn.Sequential(nn.MaxPool2d(2, 2, padding=1, ceil_mode=True), nn.Conv2d(1, 1, 2)),
            nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Conv2d(1, 1, 3)),
            nn.Sequential(nn.Conv2d(1, 1, 5, stride=3, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(1, 1, 3)),
        ]
        for layers in stacks:

            def works(size, layers=layers):
                try:
                    layers(torch.zeros(1, 1, size, size))
                except RuntimeError:
                    return False
                return True

            assert min_input_size(layers) == next(s for s in range(1, 64) if works(s))


class TestStable:
    """``LPIPS(stable=True)``: ``f / sqrt(‖f‖² + 1e-8)``, a normalisation gradient bounded by 1e4."""

    def test_unit_formula_and_gradient(self):
        f = torch.randn(2, 5, 3, 3, dtype=torch.float64, requires_grad=True)
        expected = f / (f.square().sum(dim=1, keepdim=True) + perceptual.STABLE_NORM_EPS).sqrt()
        torch.testing.assert_close(perceptual._unit(f, True), expected, rtol=1e-15, atol=0)
        assert torch.autograd.gradcheck(lambda t: perceptual._unit(t, True), (f,))
        # the written-out gradient against autograd of the formula (finite everywhere: the eps is
        # inside the sqrt), at feature norms from 1e-6 (eps dominates) to 1 and at 0
        scales = torch.tensor([1e-6, 1e-5, 1e-4, 1e-2, 1.0, 0.0], dtype=torch.float64).view(1, 1, 6, 1)
        f = (torch.randn(2, 5, 6, 3, dtype=torch.float64) * scales).requires_grad_(True)
        g = torch.randn(2, 5, 6, 3, dtype=torch.float64)
        (got,) = torch.autograd.grad(perceptual._unit(f, True), f, g)
        expected = f / (f.square().sum(dim=1, keepdim=True) + perceptual.STABLE_NORM_EPS).sqrt()
        (want,) = torch.autograd.grad(expected, f, g)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)

    def test_gradient_at_a_vanishing_feature_vector(self):
        # At the zero vector the Jacobian of f / r is I / r: the package's autograd gives NaN
        # (sqrt'(0) = inf times 0), the default's written-out gradient g / 1e-10, stable g / 1e-4.
        f = torch.randn(1, 4, 2, 2, dtype=torch.float64)
        f[0, :, 1, 0] = 0.0
        f.requires_grad_(True)
        g = torch.randn(1, 4, 2, 2, dtype=torch.float64)
        (package,) = torch.autograd.grad(lpips.normalize_tensor(f), f, g)
        (default,) = torch.autograd.grad(perceptual._unit(f), f, g)
        (stable,) = torch.autograd.grad(perceptual._unit(f, True), f, g)
        assert package[0, :, 1, 0].isnan().all()
        torch.testing.assert_close(default[0, :, 1, 0], g[0, :, 1, 0] / 1e-10)
        torch.testing.assert_close(stable[0, :, 1, 0], g[0, :, 1, 0] / 1e-4)
        # elsewhere they agree to the eps
        torch.testing.assert_close(stable[0, :, 0], default[0, :, 0], rtol=1e-6, atol=0)
        # near zero (norm 1e-7) the default's gradient is ~1/||f|| = 1e7, stable's at most 1e4
        tiny = (torch.randn(1, 4, 1, 1, dtype=torch.float64) * 1e-7 / 2).requires_grad_(True)
        for stable_flag, low, high in ((False, 1e6, 1e8), (True, 0, 1e4)):
            (grad,) = torch.autograd.grad(perceptual._unit(tiny, stable_flag), tiny, torch.ones_like(tiny))
            jacobian_bound = grad.norm() / 2  # ||g|| = 2
            assert low < jacobian_bound <= high

    def test_values_and_gradients_against_autograd(self, trunk_files):
        # the stable module (fused _LayerDistance gradient) against the formula written with
        # autograd on the module's own trunk features, float64
        model = gl.LPIPS("alex", weights=trunk_files["alex"], stable=True).double()
        x = images(2, 48, 20, torch.float64).requires_grad_(True)
        y = images(2, 48, 21, torch.float64)

        def unit(t):
            return t / (t.square().sum(dim=1, keepdim=True) + 1e-8).sqrt()

        expected = sum(
            ((unit(a) - unit(b)).square() * w[:, None, None]).sum(dim=1).mean(dim=(1, 2))
            for a, b, w in zip(model.features(x), model.features(y), model.lins, strict=True)
        )
        got = model(x, y, reduction="none")
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
        (got_grad,) = torch.autograd.grad(got.sum(), x)
        (expected_grad,) = torch.autograd.grad(expected.sum(), x)
        torch.testing.assert_close(got_grad, expected_grad, rtol=1e-9, atol=1e-15)
        default = gl.LPIPS("alex", weights=trunk_files["alex"]).double()(x, y, reduction="none")
        torch.testing.assert_close(got, default, rtol=1e-7, atol=0)  # features here have ||f|| >> 1e-4
        assert "stable=True" in repr(model)

    def test_constant_and_identical_inputs(self, trunk_files):
        model = gl.LPIPS("alex", weights=trunk_files["alex"], stable=True)
        x = torch.full((2, 3, 64, 64), -1.0, requires_grad=True)
        value = model(x, x.detach().clone())
        value.backward()
        assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
        x.grad = None
        model(x, images(2, 64, 7)).backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        with pytest.raises(TypeError, match="`stable` must be a bool; got int"):
            gl.LPIPS("alex", weights=trunk_files["alex"], stable=1)

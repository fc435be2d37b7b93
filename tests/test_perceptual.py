"""LPIPS: equality with the lpips package on shared random trunks, loss behaviour, weights, errors."""

from __future__ import annotations

import re
import warnings

import lpips
import pytest
import torch
import torchvision.models as tvm

import genloss as gl
from genloss._backbones import TRUNKS, StemConv
from genloss.perceptual import AVX512_CHANNELS_LAST_LAYERS, FramesTooSmallError, select_frames

ARCH = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}
SIZE = {"alex": 64, "vgg": 32, "squeeze": 64}


def random_features_state(net: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """A seeded random torchvision state dict holding the ``features.*`` entries of ``net``."""
    with torch.device("meta"):
        model = getattr(tvm, ARCH[net])(weights=None)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("features."):
            fan_in = value[0].numel() if value.ndim > 1 else 1
            state[key] = torch.randn(value.shape, generator=generator) * (2.0 / fan_in) ** 0.5
    return state


@pytest.fixture(scope="module")
def trunk_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trunks")
    files = {}
    for net in ARCH:
        files[net] = folder / f"{net}.pth"
        torch.save(random_features_state(net), files[net])
    return files


def reference(net: str, path, **kwargs) -> lpips.LPIPS:
    """The lpips package with the same trunk: its slices hold torchvision's ``features[i]``."""
    with warnings.catch_warnings():  # the package still passes torchvision's old `pretrained`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False, **kwargs)
    state = torch.load(path)
    mapped = {}
    for name in model.net.state_dict():
        _, index, rest = name.split(".", 2)  # "slice2.3.weight" -> features.3.weight
        mapped[name] = state[f"features.{index}.{rest}"]
    model.net.load_state_dict(mapped)
    return model


def images(b: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def alex(trunk_files):
    return gl.LPIPS("alex", weights=trunk_files["alex"])


class TestEqualsPackage:
    @pytest.mark.parametrize("isa", ["AVX2", "AVX512"])
    @pytest.mark.parametrize("net", list(ARCH))
    def test_values_maps_and_gradients(self, net, isa, trunk_files, monkeypatch):
        # both CPU layouts (all channels_last; NCHW deep layers on AVX-512), whatever this CPU is
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
        ours = gl.LPIPS(net, weights=trunk_files[net])
        expected_nhwc = AVX512_CHANNELS_LAST_LAYERS[net] if isa == "AVX512" else len(ours.trunk)
        assert ours.cpu_channels_last == min(expected_nhwc, len(ours.trunk))
        ref = reference(net, trunk_files[net])
        x, y = images(2, SIZE[net], 0), images(2, SIZE[net], 1)
        x_ref = x.clone().requires_grad_(True)
        expected = ref(x_ref, y).flatten()
        expected.sum().backward()
        x_ours = x.clone().requires_grad_(True)
        got = ours(x_ours, y, reduction="none")
        got.sum().backward()
        assert got.shape == (2,)
        torch.testing.assert_close(got, expected.detach(), atol=1e-4, rtol=0)
        for lin, ref_lin in zip(
            ours.lins, ref.lins, strict=True
        ):  # the package's calibration weights
            assert lin.equal(ref_lin.model[1].weight.flatten())
        torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-6, rtol=1e-3)
        ref.spatial = True  # read by lpips.LPIPS.forward; saves building a second VGG
        maps = ref(x, y)
        torch.testing.assert_close(
            ours(x, y, reduction="none", spatial=True), maps, atol=1e-4, rtol=0
        )
        # no-grad path (pred and target in one trunk pass) gives the same numbers
        with torch.no_grad():
            torch.testing.assert_close(
                ours(x, y, reduction="none"), got.detach(), atol=1e-6, rtol=0
            )


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

    def test_frames_random_while_parent_trains(self, trunk_files):
        loss = gl.LPIPS("alex", weights=trunk_files["alex"], frames=3)
        parent = torch.nn.Sequential(loss)
        t = torch.arange(10.0).view(1, 1, 10, 1, 1).expand(4, 3, 10, 2, 2)
        parent.train()
        torch.manual_seed(0)
        picked = select_frames((t,), 3, random=loss.sampling_training)[0][:, 0, :, 0, 0]
        assert picked.shape == (4, 3)
        assert (picked.diff(dim=1) > 0).all()  # distinct, in time order
        assert len({tuple(row.tolist()) for row in picked}) > 1  # clips draw their own frames
        parent.eval()
        assert loss.sampling_training is False


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

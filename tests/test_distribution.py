"""Tests for the set-level metrics (genloss.metrics.distribution / .extractors).

The distances are checked against independent float64 computations (scipy.linalg.sqrtm, explicit
double sums) and against torchmetrics; the extractor protocol against small TorchScript stand-ins
with the call signatures of StyleGAN-V's I3D and NVlabs' Inception files, which the tests script
and save themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genloss import metrics
from genloss.metrics import FID, FVD, KID, KVD, FeatureExtractor, frechet_distance, kernel_distance
from genloss.metrics.extractors import I3D_URL, INCEPTION_URL, check_pixels, quantize_uint8

# ----------------------------------------------------------------------------------------------
# Stand-ins for the two published TorchScript files, with their forward signatures


class I3DStandIn(nn.Module):
    """``forward(x, rescale, resize, return_features)`` like ``i3d_torchscript.pt``.

    Refuses float input when asked to rescale (the real file's rescale expects [0, 255]), resizes
    to 8x8 instead of 224x224 to stay cheap, and returns 8 features or their softmax.
    """

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(
        self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> Tensor:
        if rescale:
            if x.dtype != torch.uint8:
                raise RuntimeError("stand-in: rescale=True expects uint8 input")
            x = x.float() / 255 * 2 - 1
        if x.dtype != torch.float32:
            raise RuntimeError("stand-in: expects float32 input when not rescaling")
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 8, 8), mode="trilinear", align_corners=False)
        stats = torch.cat(
            [
                x.mean(dim=(2, 3, 4)),
                x.square().mean(dim=(2, 3, 4)),
                (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(1, 2, 3, 4)).unsqueeze(1),
                x[:, :, 0].mean(dim=(1, 2, 3)).unsqueeze(1),
            ],
            dim=1,
        )
        features = self.proj(stats)
        return features if return_features else features.softmax(dim=1)


class InceptionStandIn(nn.Module):
    """``forward(img, return_features, use_fp16, no_output_bias)`` like the Inception file."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 5)

    def forward(
        self,
        img: Tensor,
        return_features: bool = False,
        use_fp16: bool = False,
        no_output_bias: bool = False,
    ) -> Tensor:
        if img.shape[1] != 3:
            raise RuntimeError("stand-in: expects 3 channels")
        x = img.to(torch.float32)
        x = F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)
        x = (x - 128) / 128
        features = self.proj(torch.cat([x.mean(dim=(2, 3)), x.square().mean(dim=(2, 3))], dim=1))
        return features if return_features else features.softmax(dim=1)


def _save_script(module: nn.Module, path: Path) -> Path:
    torch.manual_seed(0)
    module = type(module)()  # seeded weights
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # torch.jit.script is deprecated in torch 2.9+
        torch.jit.script(module.eval()).save(str(path))
    return path


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_script(I3DStandIn(), tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt")


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_script(
        InceptionStandIn(), tmp_path_factory.mktemp("inc") / "inception-2015-12-05.pt"
    )


def _load(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path))


def _levels(shape: tuple[int, ...], seed: int) -> tuple[Tensor, Tensor]:
    """Float pixels in [-1, 1] and the uint8 levels they must quantise to.

    Each pixel is a level ``u`` plus an offset of at most 0.45 level, so the expected level does
    not depend on how a boundary case rounds.
    """
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 256, shape, generator=g)
    offset = (torch.rand(shape, generator=g) - 0.5) * 0.9
    x = ((u.double() + offset) / 127.5 - 1).clamp(-1, 1).float()
    return x, u.to(torch.uint8)


def _frechet_reference(real: np.ndarray, fake: np.ndarray, ddof: int = 0) -> float:
    """The TTUR / StyleGAN formula with scipy.linalg.sqrtm, float64."""
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r = np.cov(real, rowvar=False, ddof=ddof)
    s_f = np.cov(fake, rowvar=False, ddof=ddof)
    root = scipy.linalg.sqrtm(s_r @ s_f).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(s_r + s_f - 2 * root))


def _mmd_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased polynomial-kernel MMD² by explicit sums over pairs, float64."""
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / m**2


def _features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix) * scale + shift


def _pixel_stats(x: Tensor) -> Tensor:
    """A callable extractor: 4 statistics per clip or image of float pixels in [-1, 1]."""
    flat = x.flatten(1)
    return torch.stack(
        [
            flat.mean(1),
            flat.std(1),
            x[:, 0].flatten(1).mean(1),
            (x[..., 1:] - x[..., :-1]).abs().flatten(1).mean(1),
        ],
        dim=1,
    )


# ----------------------------------------------------------------------------------------------
# frechet_distance


class TestFrechetDistance:
    def test_matches_scipy_sqrtm(self) -> None:
        real, fake = _features(60, 6, 0).numpy(), _features(50, 6, 1, 0.3, 1.4).numpy()
        mu_r, mu_f = real.mean(0), fake.mean(0)
        s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
        value = frechet_distance(torch.from_numpy(mu_r), torch.from_numpy(s_r), mu_f, s_f)
        assert isinstance(value, float)
        # Well-conditioned 6x6 problem: both methods are accurate to ~1e-14 relative.
        assert value == pytest.approx(_frechet_reference(real, fake, ddof=1), rel=1e-10)

    def test_matches_torchmetrics(self) -> None:
        from torchmetrics.image.fid import _compute_fid

        mu1, mu2 = _features(1, 5, 2)[0], _features(1, 5, 3)[0]
        s1, s2 = torch.cov(_features(40, 5, 4).T), torch.cov(_features(30, 5, 5, scale=2.0).T)
        expected = float(_compute_fid(mu1, s1, mu2, s2))
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)

    def test_known_answer_diagonal(self) -> None:
        a, b = torch.tensor([1.0, 4.0, 0.0, 2.0]), torch.tensor([9.0, 1.0, 3.0, 2.0])
        mu1, mu2 = torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 0.0, 3.0])
        expected = (mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()  # = 5 + 8
        value = frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b))
        assert value == pytest.approx(float(expected), rel=1e-14)
        assert value == pytest.approx(13.0 + 3.0, rel=1e-14) or value == pytest.approx(
            float(expected)
        )

    def test_identical_gaussians_give_zero(self) -> None:
        mu, sigma = _features(1, 7, 6)[0], torch.cov(_features(30, 7, 7).T)
        assert frechet_distance(mu, sigma, mu.clone(), sigma.clone()) == pytest.approx(
            0.0, abs=1e-12
        )

    def test_singular_covariances(self) -> None:
        # Fewer samples than features: rank-deficient covariances. The distance must stay exact
        # and symmetric; a rank-1 pair has the closed form (√a - √b)² along a shared direction.
        v = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)
        v = v / v.norm()
        s1, s2 = 4.0 * torch.outer(v, v), 0.25 * torch.outer(v, v)
        zero = torch.zeros(4, dtype=torch.float64)
        assert frechet_distance(zero, s1, zero, s2) == pytest.approx((2.0 - 0.5) ** 2, rel=1e-12)
        x, y = _features(5, 9, 8), _features(4, 9, 9, 0.5)
        a = frechet_distance(x.mean(0), torch.cov(x.T), y.mean(0), torch.cov(y.T))
        b = frechet_distance(y.mean(0), torch.cov(y.T), x.mean(0), torch.cov(x.T))
        assert a == pytest.approx(b, rel=1e-10)

    @pytest.mark.parametrize("n", [64, 40])
    def test_near_singular_matches_the_samples_formula(self, n: int) -> None:
        # As many or fewer samples than features (64). From centred samples X, Y the trace term
        # is the sum of the singular values of X Yᵀ / N, no covariance product involved. Square
        # roots of eigenvalues (of Σ₁^½Σ₂Σ₁^½) land 1e-10 to 1e-8 off here.
        x, y = _features(n, 64, 22).numpy(), _features(n, 64, 23, 0.1).numpy()
        xc, yc = x - x.mean(0), y - y.mean(0)
        cross = np.linalg.svd(xc @ yc.T / n, compute_uv=False).sum()
        expected = ((x.mean(0) - y.mean(0)) ** 2).sum() + ((xc**2).sum() + (yc**2).sum()) / n
        expected -= 2 * cross
        s_x, s_y = np.cov(x, rowvar=False, ddof=0), np.cov(y, rowvar=False, ddof=0)
        value = frechet_distance(x.mean(0), s_x, y.mean(0), s_y)
        assert value == pytest.approx(expected, rel=1e-12)

    def test_errors(self) -> None:
        mu, sigma = torch.zeros(3), torch.eye(3)
        with pytest.raises(ValueError, match=r"`mu2` must have shape \(3,\)"):
            frechet_distance(mu, sigma, torch.zeros(4), sigma)
        with pytest.raises(ValueError, match=r"`sigma2` must have shape \(3, 3\)"):
            frechet_distance(mu, sigma, mu, torch.eye(4))
        with pytest.raises(
            ValueError, match="`sigma1` must be a covariance matrix \\(symmetric\\)"
        ):
            frechet_distance(mu, torch.triu(torch.ones(3, 3)), mu, sigma)
        with pytest.raises(ValueError, match="positive semi-definite"):
            frechet_distance(mu, sigma, mu, -sigma)
        with pytest.raises(ValueError, match="finite"):
            frechet_distance(torch.tensor([0.0, float("nan"), 0.0]), sigma, mu, sigma)
        with pytest.raises(TypeError, match="`sigma1` must be a torch.Tensor or numpy array"):
            frechet_distance(mu, [[1.0]], mu, sigma)


# ----------------------------------------------------------------------------------------------
# kernel_distance


class TestKernelDistance:
    def test_full_sets_match_explicit_sums(self) -> None:
        real, fake = _features(12, 5, 10), _features(12, 5, 11, 0.4, 1.2)
        # subset_size = N: every subset is the whole set, so every estimate is the full MMD².
        mean, std = kernel_distance(real, fake, subsets=3, subset_size=12)
        assert mean == pytest.approx(_mmd_reference(real.numpy(), fake.numpy()), rel=1e-12)
        assert std == pytest.approx(0.0, abs=1e-12)

    def test_matches_torchmetrics_poly_mmd(self) -> None:
        from torchmetrics.image.kid import poly_mmd

        real, fake = _features(15, 6, 12), _features(15, 6, 13, 0.2)
        mean, _ = kernel_distance(real, fake, subsets=1, subset_size=15)
        assert mean == pytest.approx(float(poly_mmd(real, fake)), rel=1e-12)

    def test_documented_subset_draws(self) -> None:
        real, fake = _features(11, 3, 14), _features(9, 3, 15, 0.3)
        # Independent re-implementation of the documented sampling: rows sorted as tuples, then
        # randperm(n_real)[:m] and randperm(n_fake)[:m] per subset from Generator(seed).
        x_all = np.array(sorted(map(tuple, real.tolist())))
        y_all = np.array(sorted(map(tuple, fake.tolist())))
        g = torch.Generator().manual_seed(7)
        values = []
        for _ in range(4):
            i, j = (
                torch.randperm(11, generator=g)[:6].numpy(),
                torch.randperm(9, generator=g)[:6].numpy(),
            )
            values.append(_mmd_reference(x_all[i], y_all[j]))
        mean, std = kernel_distance(real, fake, subsets=4, subset_size=6, seed=7)
        assert mean == pytest.approx(np.mean(values), rel=1e-12)
        assert std == pytest.approx(np.std(values), rel=1e-10)

    def test_order_free_seeded_and_global_rng_untouched(self) -> None:
        real, fake = _features(20, 4, 16), _features(18, 4, 17, 0.2)
        state = torch.get_rng_state()
        a = kernel_distance(real, fake, subsets=5, subset_size=8, seed=3)
        assert torch.equal(torch.get_rng_state(), state)
        b = kernel_distance(
            real[torch.randperm(20)], fake.flip(0), subsets=5, subset_size=8, seed=3
        )
        assert a == b
        assert kernel_distance(real, fake, subsets=5, subset_size=8, seed=4) != a

    def test_subset_size_clamped_with_warning(self) -> None:
        real, fake = _features(10, 4, 18), _features(7, 4, 19)
        with pytest.warns(UserWarning, match="using subsets of 7"):
            clamped = kernel_distance(real, fake, subsets=3, subset_size=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert kernel_distance(real, fake, subsets=3, subset_size=7) == clamped

    def test_errors(self) -> None:
        real = _features(5, 4, 20)
        with pytest.raises(ValueError, match="`subset_size` must be an int >= 2"):
            kernel_distance(real, real, subset_size=1)
        with pytest.raises(ValueError, match="`subsets` must be an int >= 1"):
            kernel_distance(real, real, subsets=0)
        with pytest.raises(ValueError, match="same feature dimension"):
            kernel_distance(real, _features(5, 3, 21))
        with pytest.raises(ValueError, match="`features_fake` needs at least 2 samples"):
            kernel_distance(real, real[:1])


# ----------------------------------------------------------------------------------------------
# Pixels and extractors


class TestPixels:
    @pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
    def test_every_level_round_trips(self, dtype: torch.dtype) -> None:
        u = torch.arange(256)
        x = (u.double() / 127.5 - 1).to(dtype)
        assert torch.equal(quantize_uint8(x), u.to(torch.uint8))

    def test_rounds_to_nearest_level_and_clamps(self) -> None:
        x, u = _levels((4000,), seed=0)
        assert torch.equal(quantize_uint8(x), u)
        edges = torch.tensor([-1.0005, 1.0005])
        assert quantize_uint8(edges).tolist() == [0, 255]

    def test_range_checks(self) -> None:
        assert check_pixels("x", torch.full((2,), 1.0005)) is not None
        with pytest.raises(ValueError, match=r"got values in \[0, 1.01\]"):
            check_pixels("x", torch.tensor([0.0, 1.01]))
        with pytest.raises(ValueError, match="look like \\[0, 255\\] pixels"):
            check_pixels("x", torch.tensor([0.0, 200.0]))
        with pytest.raises(ValueError, match="`x` must hold float pixels in \\[-1, 1\\]"):
            check_pixels("x", torch.tensor([0.0, float("nan")]))
        with pytest.raises(TypeError, match="got dtype torch.int32"):
            check_pixels("x", torch.zeros(2, dtype=torch.int32))
        u = torch.full((2,), 255, dtype=torch.uint8)
        assert check_pixels("x", u) is u


class TestExtractors:
    def test_i3d_called_as_stylegan_v_calls_it(self, i3d_file: Path) -> None:
        extractor = FeatureExtractor(i3d_file, video=True)
        assert extractor.kind == "i3d"
        x, u = _levels((3, 3, 5, 6, 6), seed=1)
        expected = _load(i3d_file)(u, rescale=True, resize=True, return_features=True)
        assert torch.equal(extractor(x), expected.double())
        # uint8 input goes through untouched; grey is repeated to RGB
        assert torch.equal(extractor(u), expected.double())
        grey_expected = _load(i3d_file)(
            u[:, :1].repeat(1, 3, 1, 1, 1), rescale=True, resize=True, return_features=True
        )
        assert torch.equal(extractor(x[:, :1]), grey_expected.double())
        protocol = extractor.protocol()
        assert protocol["extractor_sha256"] == hashlib.sha256(i3d_file.read_bytes()).hexdigest()
        assert (
            protocol["extractor_call"]
            == "extractor(x, rescale=True, resize=True, return_features=True)"
        )
        assert protocol["network_input"].startswith("uint8 (B, 3, T, H, W) in [0, 255]")
        assert protocol["extractor_source"] == I3D_URL

    def test_i3d_without_quantisation(self, i3d_file: Path) -> None:
        extractor = FeatureExtractor(i3d_file, video=True, quantize=False)
        x = torch.rand(2, 3, 4, 5, 5) * 2 - 1
        expected = _load(i3d_file)(x, rescale=False, resize=True, return_features=True)
        assert torch.equal(extractor(x), expected.double())
        assert "none" in extractor.protocol()["quantisation"]

    def test_inception_called_as_stylegan2_ada_calls_it(self, inception_file: Path) -> None:
        extractor = FeatureExtractor(inception_file, video=False)
        assert extractor.kind == "inception"
        x, u = _levels((4, 3, 7, 7), seed=2)
        expected = _load(inception_file)(u, return_features=True)
        assert torch.equal(extractor(x), expected.double())
        assert extractor.protocol()["extractor_call"] == "extractor(x, return_features=True)"
        unrounded = FeatureExtractor(inception_file, video=False, quantize=False)
        expected = _load(inception_file)((x + 1) * 127.5, return_features=True)
        assert torch.equal(unrounded(x), expected.double())

    def test_recognised_by_signature_when_given_in_memory(self, i3d_file: Path) -> None:
        extractor = FeatureExtractor(_load(i3d_file), video=True)
        assert extractor.kind == "i3d" and extractor.sha256 is None

    def test_callable_gets_quantised_floats(self) -> None:
        seen = []
        extractor = FeatureExtractor(lambda b: seen.append(b) or b.flatten(1)[:, :3], video=False)
        x, u = _levels((2, 1, 4, 4), seed=3)
        extractor(x)
        assert seen[0].dtype == torch.float32 and seen[0].shape == (2, 1, 4, 4)
        assert torch.equal(seen[0], u.float() / 127.5 - 1)
        FeatureExtractor(lambda b: seen.append(b) or b.flatten(1), video=False, quantize=False)(x)
        assert torch.equal(seen[1], x)

    def test_missing_file_names_file_and_url(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError) as info:
            FVD(tmp_path / "i3d_torchscript.pt")
        assert "i3d_torchscript.pt" in str(info.value) and I3D_URL in str(info.value)
        assert INCEPTION_URL not in str(info.value)
        with pytest.raises(FileNotFoundError) as info:
            FID(tmp_path / "features.pt")
        assert I3D_URL in str(info.value) and INCEPTION_URL in str(info.value)

    def test_wrong_kind_and_bad_files(
        self, i3d_file: Path, inception_file: Path, tmp_path: Path
    ) -> None:
        with pytest.raises(ValueError, match="is the i3d detector .* use FVD/KVD"):
            FID(i3d_file)
        with pytest.raises(ValueError, match="is the inception detector .* use FID/KID"):
            KVD(inception_file)
        junk = tmp_path / "junk.pt"
        junk.write_bytes(b"not torchscript")
        with pytest.raises(ValueError, match="could not be loaded as a TorchScript file"):
            FID(junk)
        with pytest.raises(TypeError, match="`extractor` must be the path"):
            FID(3)

    def test_bad_outputs_and_failures(self) -> None:
        with pytest.raises(ValueError, match=r"must return \(N, D\) features with N = 2"):
            FeatureExtractor(lambda b: b.flatten(), video=False)(torch.zeros(2, 3, 4, 4))

        def broken(b: Tensor) -> Tensor:
            raise RuntimeError("boom")

        with pytest.raises(
            RuntimeError, match=r"failed on a torch.float32 batch of shape \(2, 3, 4, 4\).*boom"
        ):
            FeatureExtractor(broken, video=False)(torch.zeros(2, 3, 4, 4))

    def test_reference_file_is_frozen_and_stays_in_eval(self, i3d_file: Path) -> None:
        metric = FVD(i3d_file, frames=2)
        metric.train()
        network = metric.extractor.network
        assert not network.training
        assert all(not p.requires_grad for p in network.parameters())

    def test_file_saved_in_training_mode_is_loaded_in_eval(self, tmp_path: Path) -> None:
        # a file scripted in training mode: its dropout must be off once loaded (features are then
        # the dequantised pixels, flattened)
        path = tmp_path / "dropout.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
            torch.jit.script(nn.Sequential(nn.Flatten(), nn.Dropout(0.5)).train()).save(str(path))
        extractor = FeatureExtractor(path, video=False)
        assert not extractor.network.training
        x = torch.linspace(-1, 1, 2 * 1 * 4 * 4).view(2, 1, 4, 4)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "training mode" warning either
            got = extractor(x)
        expected = (quantize_uint8(x).float() / 127.5 - 1).double().flatten(1)
        assert torch.equal(got, expected)

    def test_user_module_in_training_mode_warns(self) -> None:
        module = nn.Sequential(nn.Flatten(), nn.Dropout(0.5))
        with pytest.warns(UserWarning, match="training mode"):
            FeatureExtractor(module, video=False)(torch.zeros(2, 1, 2, 2))


# ----------------------------------------------------------------------------------------------
# Streaming metrics


def _fill(
    metric: metrics.FVD, real: Tensor, fake: Tensor, batch: int
) -> metrics.DistributionResult:
    metric.reset()
    for side, data in ((True, real), (False, fake)):
        for i in range(0, len(data), batch):
            metric.update(data[i : i + batch], real=side)
    return metric.compute()


class TestFVD:
    def test_value_and_protocol(self, i3d_file: Path) -> None:
        real, u_real = _levels((9, 3, 6, 5, 5), seed=4)
        fake, u_fake = _levels((7, 3, 6, 5, 5), seed=5)
        fvd = FVD(i3d_file, frames=4, stride=1, context_frames=2, include_context=False)
        fvd.update(real, real=True)
        fvd.update(fake, real=False)
        with pytest.warns(UserWarning, match="singular covariance"):  # 7-9 samples, 8-d features
            result = fvd.compute()
        detector = _load(i3d_file)
        with torch.no_grad():
            feats = [
                detector(u[:, :, 2:6].contiguous(), rescale=True, resize=True, return_features=True)
                .double()
                .numpy()
                for u in (u_real, u_fake)
            ]
        # Covariance over N (StyleGAN-V's ddof 0); singular covariances make scipy's sqrtm the
        # less accurate side here, hence 1e-8.
        assert result.value == pytest.approx(_frechet_reference(*feats, ddof=0), rel=1e-8)
        assert result.std is None
        p = result.protocol
        assert (p["num_real"], p["num_fake"], p["feature_dim"]) == (9, 7, 8)
        assert (p["frames"], p["stride"], p["first_frame"], p["context_frames"]) == (4, 1, 2, 2)
        assert p["extractor_kind"] == "i3d" and p["ddof"] == 0
        assert p["deviations"] == [
            "8-d features (i3d_torchscript.pt gives 400)",
            "9 real samples (fvd2048_16f: 2048)",
            "7 fake samples (fvd2048_16f: 2048)",
            "frames=4 (fvd2048_16f: 16)",
        ]
        json.dumps(result.as_dict())  # everything recorded is plain data

    def test_ddof_1_matches_torchmetrics_fid(self) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        class Stats(nn.Module):
            def forward(self, x: Tensor) -> Tensor:
                # torchmetrics hands over uint8 unchanged; genloss hands u / 127.5 - 1
                x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x
                return _pixel_stats(x)

        _, real = _levels((12, 3, 6, 6), seed=6)
        _, fake = _levels((10, 3, 6, 6), seed=7)
        reference = FrechetInceptionDistance(feature=Stats(), input_img_size=(3, 6, 6))
        reference.update(real, real=True)
        reference.update(fake, real=False)
        fid = FID(Stats(), ddof=1)
        fid.update(real, real=True)
        fid.update(fake, real=False)
        # torchmetrics casts its result to the features' float32
        assert fid.compute().value == pytest.approx(float(reference.compute()), rel=1e-6)

    def test_batch_size_and_order_do_not_matter(self) -> None:
        real, fake = torch.rand(13, 3, 3, 4, 4) * 2 - 1, torch.rand(11, 3, 3, 4, 4) * 1.6 - 0.8
        fvd = FVD(_pixel_stats, frames=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = [_fill(fvd, real, fake, b).value for b in (1, 4, 13)]
            values.append(_fill(fvd, real.flip(0), fake[torch.randperm(11)], 5).value)
        assert values == pytest.approx([values[0]] * 4, rel=1e-12)

    def test_window(self) -> None:
        seen = []
        fvd = FVD(lambda b: seen.append(b) or _pixel_stats(b), frames=3, stride=2, context_frames=1)
        clips = torch.rand(2, 3, 8, 4, 4) * 2 - 1
        fvd.update(clips, real=True)
        torch.testing.assert_close(
            seen[0], (quantize_uint8(clips[:, :, 0:5:2]).float() / 127.5 - 1)
        )
        fvd_after = FVD(
            lambda b: seen.append(b) or _pixel_stats(b),
            frames=3,
            stride=2,
            context_frames=1,
            include_context=False,
        )
        fvd_after.update(clips, real=True)
        assert seen[1].shape[2] == 3
        torch.testing.assert_close(
            seen[1], (quantize_uint8(clips[:, :, 1:6:2]).float() / 127.5 - 1)
        )
        with pytest.raises(ValueError, match="clips need at least 6 frames; `x` has T=5"):
            fvd_after.update(clips[:, :, :5], real=True)
        assert "context frames" in fvd.protocol["deviations"][-1]
        # The context frames are scored (first frame 0) or skipped (first frame 1), and only scoring
        # them is a deviation from fvd2048_16f.
        assert (fvd.protocol["first_frame"], fvd_after.protocol["first_frame"]) == (0, 1)
        assert not any("context" in d for d in fvd_after.protocol["deviations"])

    def test_update_errors(self) -> None:
        fvd = FVD(_pixel_stats, frames=2)
        with pytest.raises(ValueError, match="must hold float pixels in \\[-1, 1\\]"):
            fvd.update(torch.rand(2, 3, 2, 4, 4) * 255, real=True)
        with pytest.raises(TypeError, match="`real` must be a bool"):
            fvd.update(torch.zeros(2, 3, 2, 4, 4), real=1)
        with pytest.raises(ValueError, match=r"`x` must be \(B, C, T, H, W\) clips"):
            fvd.update(torch.zeros(2, 3, 4, 4), real=True)
        with pytest.raises(TypeError, match="no per-batch value"):
            fvd(torch.zeros(2, 3, 2, 4, 4), real=True)
        fvd.update(torch.zeros(3, 3, 2, 4, 4), real=True)
        with pytest.raises(
            ValueError, match="at least 2 real and 2 generated samples; got 3 real and 0"
        ):
            fvd.compute()
        with pytest.raises(ValueError, match="`ddof` must be 0"):
            FVD(_pixel_stats, ddof=2)

    def test_update_features_equals_update_with_one_extractor_pass(self) -> None:
        """FVD and KVD fed one pass of features give what each gets from its own ``update``."""
        calls = []
        extractor = FeatureExtractor(lambda b: calls.append(len(b)) or _pixel_stats(b), video=True)
        real, fake = torch.rand(6, 3, 3, 4, 4) * 2 - 1, torch.rand(5, 3, 3, 4, 4) * 1.6 - 0.8
        def pair():
            return [FVD(extractor, frames=2, context_frames=1),
                    KVD(extractor, frames=2, context_frames=1, subset_size=4, subsets=5)]

        own, fed = pair(), pair()
        for side, clips in ((True, real), (False, fake)):
            for metric in own:
                metric.update(clips, real=side)
        calls.clear()
        for side, clips in ((True, real), (False, fake)):
            features = fed[0].features(clips)
            for metric in fed:
                metric.update_features(features, real=side)
        assert calls == [6, 5]  # one pass per set, for both metrics
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for a, b in zip(own, fed):
                mine, theirs = a.compute(), b.compute()
                assert (mine.value, mine.std, mine.protocol) == (theirs.value, theirs.std, theirs.protocol)
        with pytest.raises(ValueError, match=r"non-empty \(N, D\) floating-point tensor; got shape \(6,\)"):
            fed[0].update_features(torch.zeros(6), real=True)
        with pytest.raises(TypeError, match="`real` must be a bool"):
            fed[0].update_features(torch.zeros(2, 8), real=None)
        with pytest.raises(ValueError, match="returned 3 features per sample; earlier batches"):
            fed[0].update_features(torch.zeros(2, 3), real=True)

    def test_reset_and_shared_extractor(self, i3d_file: Path) -> None:
        shared = FeatureExtractor(i3d_file, video=True)
        fvd, kvd = FVD(shared, frames=2), KVD(shared, frames=2, subset_size=3)
        assert fvd.extractor is kvd.extractor
        with pytest.raises(ValueError, match="needs video=True, quantize=False"):
            FVD(shared, quantize=False)
        real, fake = torch.rand(4, 3, 2, 4, 4) * 2 - 1, torch.rand(4, 3, 2, 4, 4) - 0.5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = _fill(fvd, real, fake, 4).value
            fvd.update(fake, real=True)  # _fill resets before filling again
            assert _fill(fvd, real, fake, 2).value == pytest.approx(first, rel=1e-12)
        assert fvd.protocol["num_real"] == 4


class TestFIDOnClips:
    def test_clips_count_as_frames(self) -> None:
        fid = FID(_pixel_stats, context_frames=2, include_context=False)
        clips = torch.rand(3, 3, 5, 4, 4) * 2 - 1
        fid.update(clips, real=True)
        assert fid.protocol["num_real"] == 9  # 3 clips x 3 frames after the context
        with pytest.raises(ValueError, match="select frames of clips"):
            fid.update(clips[:, :, 0], real=True)
        images = FID(_pixel_stats)
        images.update(clips[:, :, 0], real=True)
        assert images.protocol["num_real"] == 3

    def test_fid50k_full_counts_50000_generated_images(self) -> None:
        # Any number of real images, exactly 50 000 generated ones; a 4-d feature is a deviation
        # of its own, so only the sample counts are looked at.
        fid = FID(_pixel_stats)
        fid.update_features(torch.zeros(3, 4, dtype=torch.float64), real=True)
        fid.update_features(torch.zeros(50000, 4, dtype=torch.float64), real=False)
        assert not any("samples" in d for d in fid.protocol["deviations"])
        fid.update_features(torch.zeros(1, 4, dtype=torch.float64), real=False)
        assert "50001 fake samples (fid50k_full: 50000)" in fid.protocol["deviations"]


class TestKernelMetrics:
    def test_kid_equals_kernel_distance_of_the_features(self, inception_file: Path) -> None:
        real, u_real = _levels((9, 3, 5, 5), seed=8)
        fake, u_fake = _levels((8, 3, 5, 5), seed=9)
        kid = KID(inception_file, subsets=4, subset_size=5, seed=2)
        kid.update(real[:4], real=True)
        kid.update(fake, real=False)
        kid.update(real[4:], real=True)
        result = kid.compute()
        detector = _load(inception_file)
        expected = kernel_distance(
            detector(u_real, return_features=True),
            detector(u_fake, return_features=True),
            subsets=4,
            subset_size=5,
            seed=2,
        )
        assert (result.value, result.std) == expected
        p = result.protocol
        assert (p["num_real"], p["num_fake"], p["subset_size"], p["subsets"]) == (9, 8, 5, 4)
        assert "subset_size=5 (kid50k_full: 1000)" in p["deviations"]

    def test_matches_torchmetrics_kid_on_full_sets(self) -> None:
        from torchmetrics.image.kid import KernelInceptionDistance

        class Stats(nn.Module):
            def forward(self, x: Tensor) -> Tensor:
                x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x
                return _pixel_stats(x).double()

        _, real = _levels((10, 3, 4, 4), seed=10)
        _, fake = _levels((10, 3, 4, 4), seed=11)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features")
            reference = KernelInceptionDistance(feature=Stats(), subsets=2, subset_size=10)
        kid = KID(Stats(), subsets=2, subset_size=10)
        for metric in (reference, kid):
            metric.update(real, real=True)
            metric.update(fake, real=False)
        assert kid.compute().value == pytest.approx(float(reference.compute()[0]), rel=1e-12)

    def test_clamped_subset_size_is_recorded(self) -> None:
        kvd = KVD(_pixel_stats, frames=2, subsets=2)
        kvd.update(torch.rand(5, 3, 2, 4, 4) * 2 - 1, real=True)
        kvd.update(torch.rand(6, 3, 2, 4, 4) * 2 - 1, real=False)
        with pytest.warns(UserWarning, match="subset_size=1000 is more than the 5 real / 6 fake"):
            result = kvd.compute()
        assert result.protocol["subset_size"] == 5
        assert result.protocol["subset_size_requested"] == 1000

    def test_batch_size_and_order_do_not_matter(self) -> None:
        real, fake = torch.rand(12, 3, 4, 4) * 2 - 1, torch.rand(10, 3, 4, 4) - 0.5
        kid = KID(_pixel_stats, subsets=3, subset_size=6)
        values = [_fill(kid, real, fake, b)[:2] for b in (1, 5, 12)]
        values.append(_fill(kid, real[torch.randperm(12)], fake.flip(0), 3)[:2])
        assert values == [values[0]] * 4


# ----------------------------------------------------------------------------------------------
# DDP: two gloo processes, each with its own shard, against one process with everything


def _ddp_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(123)
    clips_real = torch.rand(9, 3, 2, 4, 4, generator=g) * 2 - 1
    clips_fake = torch.rand(7, 3, 2, 4, 4, generator=g) * 1.8 - 0.9
    images_real = torch.rand(11, 3, 4, 4, generator=g) * 2 - 1
    images_fake = torch.rand(8, 3, 4, 4, generator=g) * 1.8 - 0.9
    return clips_real, clips_fake, images_real, images_fake


def _ddp_metrics() -> tuple[FVD, KID]:
    return FVD(_pixel_stats, frames=2, num_features=4), KID(
        _pixel_stats, subsets=3, subset_size=4, seed=1
    )


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        clips_real, clips_fake, images_real, images_fake = _ddp_data()
        fvd, kid = _ddp_metrics()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Interleaved, uneven shards (as a DistributedSampler without padding), two batches each
            for metric, real, fake in (
                (fvd, clips_real, clips_fake),
                (kid, images_real, images_fake),
            ):
                for data, side in ((real, True), (fake, False)):
                    shard = data[rank::world_size]
                    metric.update(shard[:2], real=side)
                    metric.update(shard[2:], real=side)
            fvd_result, kid_result = fvd.compute(), kid.compute()
        torch.save(
            {
                "fvd": fvd_result.as_dict(),
                "kid": kid_result.as_dict(),
                "local_real": fvd.protocol["num_real"],
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_processes_match_one(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    clips_real, clips_fake, images_real, images_fake = _ddp_data()
    fvd, kid = _ddp_metrics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fvd.update(clips_real, real=True)
        fvd.update(clips_fake, real=False)
        kid.update(images_real, real=True)
        kid.update(images_fake, real=False)
        single_fvd, single_kid = fvd.compute(), kid.compute()
    for rank in range(2):
        out = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert out["local_real"] == (5, 4)[rank]  # each process kept only its own shard
        assert (out["fvd"]["protocol"]["num_real"], out["fvd"]["protocol"]["num_fake"]) == (9, 7)
        assert (out["kid"]["protocol"]["num_real"], out["kid"]["protocol"]["num_fake"]) == (11, 8)
        # Sums merged in another order: equal to rounding. The kernel distance sorts its
        # features first, so the merged set gives exactly the one-process subsets.
        assert out["fvd"]["value"] == pytest.approx(single_fvd.value, rel=1e-12)
        assert (out["kid"]["value"], out["kid"]["std"]) == (single_kid.value, single_kid.std)

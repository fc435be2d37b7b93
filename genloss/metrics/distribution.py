"""How far the set of generated samples is from the set of real ones: FVD, KVD, FID and KID.

A feature network (:mod:`genloss.metrics.extractors`) maps every real and every generated sample
to a vector; the metrics compare the two sets of vectors.

* Fréchet distance (FVD for clips, Unterthiner et al. 2018; FID for images, Heusel et al. 2017):
  the 2-Wasserstein distance of the Gaussians with the sets' means and covariances,
  ``‖μ_r − μ_f‖² + tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^½)``.
* Kernel distance (KVD for clips, KID for images, Bińkowski et al. 2018): the unbiased estimate of
  the squared maximum mean discrepancy with the polynomial kernel ``k(x, y) = (x·y / d + 1)³``,
  averaged over random subsets of both sets.

The streaming metrics follow the reference protocols: StyleGAN-V's ``fvd2048_16f`` for FVD, and
StyleGAN2-ADA's ``fid50k_full`` / ``kid50k_full`` for FID and KID; every result carries a
``protocol`` dict that records each choice and lists how the run deviates from its reference
(README.md, "Measuring realism").
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from einops import rearrange
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .._checks import check_rgb_channels
from .extractors import I3D, INCEPTION, FeatureExtractor

__all__ = [
    "FID",
    "FVD",
    "KID",
    "KVD",
    "DistributionResult",
    "frechet_distance",
    "kernel_distance",
]

# A covariance's asymmetry and most negative eigenvalue may reach this fraction of its largest
# entry / eigenvalue (float32 rounding in a user's covariance); more means it is no covariance.
_SYMMETRY_TOLERANCE = 1e-5
_PSD_TOLERANCE = 1e-5


class DistributionResult(NamedTuple):
    """A set-level metric's value with the protocol that produced it.

    Attributes:
        value: the distance (Fréchet distance, or the mean of the kernel distance over subsets).
        std: the kernel distances' standard deviation over subsets (ddof 0); None for Fréchet.
        protocol: every choice behind ``value``: extractor and its SHA-256, sample counts,
            frames, resize, value range and quantisation, feature layer, and ``deviations``, the
            ways this run differs from the reference protocol (empty when it matches).
    """

    value: float
    std: float | None
    protocol: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON-serialisable data."""
        return {"value": self.value, "std": self.std, "protocol": self.protocol}


# ----------------------------------------------------------------------------------------------
# The distances


def _as_float64(name: str, x: object, ndim: int, what: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor or numpy array; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be floating point; got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"`{name}` must be {what}; got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` must hold finite values; it has NaN or inf")
    return x


def _check_covariance(name: str, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``sigma``'s symmetric part and eigendecomposition, after checking that it is a covariance."""
    scale = float(sigma.abs().max())
    asymmetry = float((sigma - sigma.T).abs().max())
    if asymmetry > _SYMMETRY_TOLERANCE * scale:
        raise ValueError(
            f"`{name}` must be a covariance matrix (symmetric); max |{name} - {name}.T| is "
            f"{asymmetry:.3g} against a largest entry of {scale:.3g}"
        )
    sigma = (sigma + sigma.T) / 2
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma)
    top = float(eigenvalues.abs().max())
    if float(eigenvalues[0]) < -_PSD_TOLERANCE * top:
        raise ValueError(
            f"`{name}` must be a covariance matrix (positive semi-definite); its smallest "
            f"eigenvalue is {float(eigenvalues[0]):.3g} against a largest of {top:.3g}"
        )
    return sigma, eigenvalues, eigenvectors


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet distance of two Gaussians, in float64.

    ``d = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)``

    The trace of the matrix square root is the nuclear norm (sum of singular values) of
    ``L₁ᵀL₂``, with ``Σᵢ = LᵢLᵢᵀ`` and ``Lᵢ = Vᵢ diag(√λᵢ)`` from symmetric eigendecompositions:
    ``Σ₁Σ₂ = L₁(L₁ᵀL₂)L₂ᵀ`` has the eigenvalues of ``(L₁ᵀL₂)(L₁ᵀL₂)ᵀ``, the squared singular
    values. An SVD finds small singular values to the accuracy of the largest, where square roots
    of computed eigenvalues (of ``Σ₁Σ₂`` or of ``Σ₁^½Σ₂Σ₁^½``) inflate the rounding of the
    smallest ones; near-singular covariances (as many samples as features) have many of those.
    The method is exact for singular covariances (fewer samples than features) and never gives
    the complex or NaN values that a general square root of the non-symmetric ``Σ₁Σ₂``
    (``scipy.linalg.sqrtm`` in the TTUR and StyleGAN code) can. benchmarks/bench_distribution.py
    compares both with the same quantity computed from the samples themselves. Eigenvalues below 0
    from rounding count as 0, and a result below 0 from rounding (identical inputs) is returned as
    0.

    Args:
        mu1, mu2: ``(D,)`` means (tensors or numpy arrays, any float dtype).
        sigma1, sigma2: ``(D, D)`` covariance matrices: symmetric and positive semi-definite up to
            rounding (relative 1e-5), else ``ValueError``.

    Returns:
        The distance as a Python float.

    Reference: Dowson & Landau, "The Fréchet distance between multivariate normal distributions",
    1982; Heusel et al., "GANs trained by a two time-scale update rule...", NeurIPS 2017.
    """
    mu1 = _as_float64("mu1", mu1, 1, "a (D,) mean vector")
    d = mu1.shape[0]
    mu2 = _as_float64("mu2", mu2, 1, f"a ({d},) mean vector like `mu1`")
    sigma1 = _as_float64("sigma1", sigma1, 2, f"a ({d}, {d}) covariance matrix")
    sigma2 = _as_float64("sigma2", sigma2, 2, f"a ({d}, {d}) covariance matrix")
    for name, x, shape in (
        ("mu2", mu2, (d,)),
        ("sigma1", sigma1, (d, d)),
        ("sigma2", sigma2, (d, d)),
    ):
        if tuple(x.shape) != shape:
            raise ValueError(
                f"`{name}` must have shape {shape} to match `mu1` {(d,)}; got {tuple(x.shape)}"
            )
    devices = {t.device for t in (mu1, mu2, sigma1, sigma2)}
    if len(devices) > 1:
        raise ValueError(
            "`mu1`, `sigma1`, `mu2` and `sigma2` must be on one device; "
            f"got {sorted(map(str, devices))}"
        )

    sigma1, eig1, vec1 = _check_covariance("sigma1", sigma1)
    sigma2, eig2, vec2 = _check_covariance("sigma2", sigma2)
    factor1 = vec1 * eig1.clamp_min(0).sqrt()  # Σ₁ = L₁L₁ᵀ
    factor2 = vec2 * eig2.clamp_min(0).sqrt()
    trace_sqrt = torch.linalg.svdvals(factor1.T @ factor2).sum()  # tr((Σ₁Σ₂)^½)
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


def _canonical_order(features: Tensor) -> Tensor:
    """The rows of ``features`` sorted lexicographically (column 0 first)."""
    keys = features.cpu().numpy()
    order = np.lexsort(keys.T[::-1])  # lexsort's last key is the primary one
    return features[torch.from_numpy(order).to(features.device)]


def _subset_mmds(real: Tensor, fake: Tensor, subsets: int, subset_size: int, seed: int) -> Tensor:
    """Unbiased polynomial-kernel MMD² of ``subsets`` random subsets: ``(subsets,)`` float64."""
    real, fake = _canonical_order(real), _canonical_order(fake)
    d, m = real.shape[1], subset_size
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(len(real), generator=generator)[:m].to(real.device)]
        y = fake[torch.randperm(len(fake), generator=generator)[:m].to(fake.device)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        within = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
        values.append(within / (m * (m - 1)) - 2 * k_xy.sum() / m**2)
    return torch.stack(values)


def _check_kernel_options(subsets: object, subset_size: object, seed: object) -> None:
    if isinstance(subsets, bool) or not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"`subsets` must be an int >= 1; got {subsets!r}")
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(
            "`subset_size` must be an int >= 2 (the unbiased estimate divides by m - 1); "
            f"got {subset_size!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int; got {type(seed).__name__}")


def _clamped_subset_size(subset_size: int, n_real: int, n_fake: int) -> tuple[int, str | None]:
    """StyleGAN2-ADA's ``m = min(n_real, n_fake, max_subset_size)``, and a warning if it bites."""
    m = min(subset_size, n_real, n_fake)
    if m == subset_size:
        return m, None
    return m, (
        f"subset_size={subset_size} is more than the {n_real} real / {n_fake} fake samples; "
        f"using subsets of {m} (as StyleGAN2-ADA's KID does). Kernel distances from subsets of "
        f"different sizes have different variances: compare numbers with equal subset sizes."
    )


def kernel_distance(
    features_real: Tensor,
    features_fake: Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel distance of two feature sets (KID, KVD): unbiased MMD², polynomial kernel, subsets.

    With ``k(x, y) = (x·y / d + 1)³`` and subsets ``X`` (real) and ``Y`` (fake) of ``m`` samples:

    ``MMD² = Σ_{i≠j} [k(xᵢ, xⱼ) + k(yᵢ, yⱼ)] / (m(m − 1)) − 2 Σ_{i,j} k(xᵢ, yⱼ) / m²``

    averaged over ``subsets`` pairs of subsets drawn without replacement, as in Bińkowski et al.'s
    code and StyleGAN2-ADA's KID. Computed in float64.

    Reproducible and order-free: both sets are first put in a canonical order (rows sorted
    lexicographically), then for each subset ``torch.randperm(n_real)[:m]`` and
    ``torch.randperm(n_fake)[:m]`` are drawn, in that order, from a ``torch.Generator`` seeded with
    ``seed``. The result therefore depends only on the two sets and the seed, not on the order
    their rows arrive in (batch size, DDP sharding), and it leaves the global RNG alone.
    torchmetrics' ``KernelInceptionDistance`` draws its subsets with ``torch.randperm`` from the
    global RNG, so its value changes with whatever else consumed random numbers and cannot be
    reproduced across runs without re-seeding the whole program; that is why it is not used here.

    With fewer than ``subset_size`` samples in a set, the subsets have ``m = min(subset_size,
    n_real, n_fake)`` samples (StyleGAN2-ADA does the same silently); a warning says so.

    Args:
        features_real: ``(N_r, D)`` features of real samples (tensor or numpy array).
        features_fake: ``(N_f, D)`` features of generated samples.
        subsets: number of subset pairs (StyleGAN2-ADA: 100).
        subset_size: samples per subset, ``m`` (StyleGAN2-ADA: 1000), at least 2.
        seed: seed of the subset draws.

    Returns:
        ``(mean, std)`` over the subsets as Python floats; ``std`` is the spread of the subset
        estimates (ddof 0, as Bińkowski et al. and torchmetrics report it).

    Reference: Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.
    """
    real = _as_float64("features_real", features_real, 2, "(N_r, D) features")
    fake = _as_float64("features_fake", features_fake, 2, "(N_f, D) features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"`features_real` and `features_fake` must have the same feature dimension; got "
            f"{tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if real.device != fake.device:
        raise ValueError(
            "`features_real` and `features_fake` must be on one device; "
            f"got {real.device} and {fake.device}"
        )
    _check_kernel_options(subsets, subset_size, seed)
    for name, x in (("features_real", real), ("features_fake", fake)):
        if len(x) < 2:
            raise ValueError(
                f"`{name}` needs at least 2 samples for the unbiased estimate; got {len(x)}"
            )
    m, message = _clamped_subset_size(subset_size, len(real), len(fake))
    if message is not None:
        warnings.warn(message, stacklevel=2)
    values = _subset_mmds(real, fake, subsets, m, seed)
    return float(values.mean()), float(values.std(correction=0))


# ----------------------------------------------------------------------------------------------
# Streaming metrics


def _warn_rank_zero(message: str) -> None:
    """Warn once per job: on process 0 only when torch.distributed is running."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
        warnings.warn(message, stacklevel=3)


def _check_int(name: str, value: object, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(f"`{name}` must be an int >= {minimum}{extra}; got {value!r}")


Extractor = str | os.PathLike[str] | Callable[..., Tensor] | FeatureExtractor


class _SetMetric(Metric):
    """Shared by the four metrics: the extractor, the frame window, ``update`` and the protocol.

    Subclasses set ``_name``, ``_video``, ``_reference`` and implement ``_accumulate``,
    ``_counts`` and ``compute``.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    _name: str
    _video: bool
    _reference: dict[str, Any]

    def __init__(
        self,
        extractor: Extractor,
        *,
        frames: int | None,
        stride: int,
        context_frames: int,
        include_context: bool,
        quantize: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_int("frames", frames, 1, allow_none=not self._video)
        _check_int("stride", stride, 1)
        _check_int("context_frames", context_frames, 0)
        if not isinstance(include_context, bool):
            raise TypeError(
                f"`include_context` must be a bool; got {type(include_context).__name__}"
            )
        if isinstance(extractor, FeatureExtractor):
            if extractor.video != self._video or extractor.quantize != quantize:
                raise ValueError(
                    f"`extractor` was built with video={extractor.video}, quantize="
                    f"{extractor.quantize}; {self._name} needs video={self._video}, "
                    f"quantize={quantize}"
                )
        else:
            extractor = FeatureExtractor(extractor, video=self._video, quantize=quantize)
        self.extractor = extractor
        self.frames, self.stride = frames, stride
        self.context_frames, self.include_context = context_frames, include_context

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self._name} is a set-level metric with no per-batch value: call "
            "update(x, real=...) for every batch, then compute()"
        )

    def _window(self, x: Tensor) -> Tensor:
        """The frames of each clip that are scored (videos), or the images as they are."""
        if not isinstance(x, Tensor):
            raise TypeError(f"`x` must be a torch.Tensor; got {type(x).__name__}")
        allowed = (5,) if self._video else (4, 5)
        if x.ndim not in allowed:
            what = (
                "(B, C, T, H, W) clips"
                if self._video
                else "(N, C, H, W) images or (B, C, T, H, W) clips"
            )
            raise ValueError(f"`x` must be {what}; got shape {tuple(x.shape)} ({x.ndim}-D)")
        reference = self.extractor.reference
        if reference is not None:
            # Before the frame window, which would slice a (B, T, C, H, W) clip's channels.
            check_rgb_channels("x", x, allow_grey=True, network=reference.file)
        if x.ndim == 4:
            if self.frames is not None or self.context_frames or self.stride != 1:
                raise ValueError(
                    "`frames`, `stride` and `context_frames` select frames of clips, but `x` holds "
                    f"images of shape {tuple(x.shape)}"
                )
            return x
        first = 0 if self.include_context else self.context_frames
        length = x.shape[2]
        if self.frames is None:
            stop = length
        else:
            stop = first + (self.frames - 1) * self.stride + 1
            if length < stop:
                raise ValueError(
                    f"{self._name} scores {self.frames} frames with stride {self.stride} "
                    f"starting at frame {first}, so clips need at least {stop} frames; `x` has "
                    f"T={length} (shape {tuple(x.shape)}). Pass frames=... to score fewer (the "
                    "number is then not comparable with the reference protocol)."
                )
        if first >= length:
            raise ValueError(f"`x` has T={length} frames, none after the {first} context frames")
        x = x[:, :, first : stop : self.stride]
        return x if self._video else rearrange(x, "b c t h w -> (b t) c h w")

    def features(self, x: Tensor) -> Tensor:
        """``(N, D)`` float64 features of a batch, as :meth:`update` computes them."""
        return self.extractor(self._window(x))

    def update(self, x: Tensor, real: bool) -> None:
        """Add a batch of real or generated samples (float pixels in [-1, 1] or uint8 pixels)."""
        if not isinstance(real, bool):
            raise TypeError(
                f"`real` must be a bool (True for real samples); got {type(real).__name__}"
            )
        features = self.features(x).to(self.device)
        self._accumulate(features, real)

    def update_features(self, features: Tensor, real: bool) -> None:
        """Add ``(N, D)`` features computed by :meth:`features` of a metric with the same
        extractor and frame window.

        FVD and KVD (or FID and KID) of one set can then share a single extractor pass, which is
        what they cost (an I3D forward per clip). The recorded protocol describes *this* metric's
        extractor and window; features from another extractor or window would make it wrong, and
        this method can't tell.

        Args:
            features: ``(N, D)`` floating-point features, e.g. ``fvd.features(clips)``.
            real: True for real samples, False for generated ones.
        """
        if not isinstance(real, bool):
            raise TypeError(
                f"`real` must be a bool (True for real samples); got {type(real).__name__}"
            )
        if not isinstance(features, Tensor):
            raise TypeError(f"`features` must be a torch.Tensor; got {type(features).__name__}")
        if features.ndim != 2 or not features.is_floating_point() or features.shape[0] == 0:
            raise ValueError(
                "`features` must be a non-empty (N, D) floating-point tensor; got shape "
                f"{tuple(features.shape)}, dtype {features.dtype}"
            )
        # Through torchmetrics' update wrapper, the one update() goes through: it counts the
        # update (compute() warns before any) and drops the value compute() cached, so the next
        # compute() includes these features. DDP merging happens in compute() either way.
        self._wrap_update(self._accumulate)(features.to(self.device, torch.float64), real)

    def _accumulate(self, features: Tensor, real: bool) -> None:
        raise NotImplementedError

    def _counts(self) -> tuple[int, int, int | None]:
        """Numbers of real and fake samples and the feature dimension (None before any update)."""
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        """The metric-specific entries of the protocol."""
        raise NotImplementedError

    def _protocol(self, num_real: int, num_fake: int, feature_dim: int | None) -> dict[str, Any]:
        protocol: dict[str, Any] = {"metric": self._name, "reference": self._reference["name"]}
        protocol.update(self.extractor.protocol())
        protocol.update(
            feature_dim=feature_dim,
            num_real=num_real,
            num_fake=num_fake,
            frames=self.frames if self.frames is not None else "all",
            stride=self.stride,
            first_frame=0 if self.include_context else self.context_frames,
            context_frames=self.context_frames,
            include_context=self.include_context,
        )
        protocol.update(self._options())
        protocol["deviations"] = self._deviations(protocol)
        return protocol

    def _deviations(self, p: dict[str, Any]) -> list[str]:
        """How ``p`` differs from the reference protocol, one sentence per difference."""
        ref, out = self._reference, []
        name = ref["name"].split(" ")[0]
        detector = I3D if self._video else INCEPTION
        if p["extractor_kind"] != detector.kind:
            out.append(f"extractor {p['extractor']} is not {detector.file}")
        elif p["feature_dim"] not in (None, detector.feature_dim):
            out.append(
                f"{p['feature_dim']}-d features ({detector.file} gives {detector.feature_dim})"
            )
        for side in ("real", "fake"):
            wanted = ref.get(f"num_{side}")
            if wanted is not None and p[f"num_{side}"] != wanted:
                out.append(f"{p[f'num_{side}']} {side} samples ({name}: {wanted})")
        for key in ("frames", "stride", "subsets", "subset_size", "ddof"):
            if key in ref and p.get(key) != ref[key]:
                out.append(f"{key}={p.get(key)} ({name}: {ref[key]})")
        if not self.extractor.quantize:
            out.append(f"no uint8 quantisation ({name} quantises to uint8)")
        if self.context_frames and self.include_context and self._video:
            out.append(
                f"each clip includes {self.context_frames} context frames, real in both sets "
                f"({name} scores fully generated clips)"
            )
        return out

    @property
    def protocol(self) -> dict[str, Any]:
        """The protocol with this process's sample counts; ``compute().protocol`` has the counts
        merged over all processes."""
        return self._protocol(*self._counts())


def _check_pair_counts(name: str, num_real: int, num_fake: int) -> None:
    if num_real < 2 or num_fake < 2:
        raise ValueError(
            f"{name} needs at least 2 real and 2 generated samples; got {num_real} real and "
            f"{num_fake} generated (call update(x, real=True) and update(x, real=False))"
        )


class _FrechetMetric(_SetMetric):
    """Streams float64 sums of features and of their outer products, merged by summing."""

    def __init__(
        self,
        extractor: Extractor,
        *,
        frames: int | None = None,
        stride: int = 1,
        context_frames: int = 0,
        include_context: bool = True,
        quantize: bool = True,
        ddof: int = 0,
        num_features: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            extractor,
            frames=frames,
            stride=stride,
            context_frames=context_frames,
            include_context=include_context,
            quantize=quantize,
            **kwargs,
        )
        if ddof not in (0, 1) or isinstance(ddof, bool):
            raise ValueError(
                f"`ddof` must be 0 (covariance / N) or 1 (covariance / (N - 1)); got {ddof!r}"
            )
        _check_int("num_features", num_features, 1, allow_none=True)
        self.ddof = ddof
        self.num_features: int | None = None
        for side in ("real", "fake"):
            self.add_state(
                f"{side}_count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum"
            )
        if num_features is not None:
            self._add_sum_states(num_features)

    def _add_sum_states(self, d: int) -> None:
        for side in ("real", "fake"):
            zeros = torch.zeros(d, dtype=torch.float64, device=self.device)
            self.add_state(f"{side}_sum", zeros, dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", zeros.new_zeros(d, d), dist_reduce_fx="sum")
        self.num_features = d

    def _accumulate(self, features: Tensor, real: bool) -> None:
        if self.num_features is None:
            self._add_sum_states(features.shape[1])
        elif features.shape[1] != self.num_features:
            raise ValueError(
                f"the extractor returned {features.shape[1]} features per sample; earlier batches "
                f"(or `num_features`) had {self.num_features}"
            )
        side = "real" if real else "fake"
        getattr(self, f"{side}_sum").add_(features.sum(dim=0))
        getattr(self, f"{side}_outer").addmm_(features.T, features)
        getattr(self, f"{side}_count").add_(features.shape[0])

    def _counts(self) -> tuple[int, int, int | None]:
        return int(self.real_count), int(self.fake_count), self.num_features

    def _options(self) -> dict[str, Any]:
        divisor = "N" if self.ddof == 0 else "(N - 1)"
        return {
            "ddof": self.ddof,
            "covariance": f"sum of outer products of centred features / {divisor}",
        }

    def _moments(self, side: str, n: int) -> tuple[Tensor, Tensor]:
        mean = getattr(self, f"{side}_sum") / n
        outer = getattr(self, f"{side}_outer")
        return mean, (outer - n * torch.outer(mean, mean)) / (n - self.ddof)

    def compute(self) -> DistributionResult:
        """The Fréchet distance of the real and generated features so far, with its protocol."""
        num_real, num_fake, d = self._counts()
        _check_pair_counts(self._name, num_real, num_fake)
        d = int(d or 0)  # set by the first update, which the counts above imply
        for side, n in (("real", num_real), ("fake", num_fake)):
            if n <= d:
                _warn_rank_zero(
                    f"{self._name}: {n} {side} samples of {d}-d features give a singular "
                    f"covariance (rank <= {n - 1}); the Fréchet distance is then strongly biased "
                    "by the sample count and not comparable with numbers from other counts "
                    f"({self._reference['name']})"
                )
        mu_r, sigma_r = self._moments("real", num_real)
        mu_f, sigma_f = self._moments("fake", num_fake)
        value = frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
        return DistributionResult(value, None, self._protocol(num_real, num_fake, d))


class _KernelMetric(_SetMetric):
    """Keeps every feature vector (a kernel distance needs them), merged by concatenation."""

    def __init__(
        self,
        extractor: Extractor,
        *,
        frames: int | None = None,
        stride: int = 1,
        context_frames: int = 0,
        include_context: bool = True,
        quantize: bool = True,
        subsets: int = 100,
        subset_size: int = 1000,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            extractor,
            frames=frames,
            stride=stride,
            context_frames=context_frames,
            include_context=include_context,
            quantize=quantize,
            **kwargs,
        )
        _check_kernel_options(subsets, subset_size, seed)
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def _accumulate(self, features: Tensor, real: bool) -> None:
        d = self._feature_dim()
        if d is not None and features.shape[1] != d:
            raise ValueError(
                f"the extractor returned {features.shape[1]} features per sample; earlier "
                f"batches had {d}"
            )
        (self.real_features if real else self.fake_features).append(features)

    def _feature_dim(self) -> int | None:
        for state in (self.real_features, self.fake_features):
            # A list of (n, D) batches, or one (N, D) tensor once a DDP sync has concatenated it.
            if isinstance(state, Tensor) or state:
                return int(state[0].shape[-1])
        return None

    def _counts(self) -> tuple[int, int, int | None]:
        real, fake = (
            sum(len(t) for t in s) if isinstance(s, list) else len(s)
            for s in (self.real_features, self.fake_features)
        )
        return real, fake, self._feature_dim()

    def _options(self) -> dict[str, Any]:
        num_real, num_fake, _ = self._counts()
        used = min(self.subset_size, num_real, num_fake)
        return {
            "kernel": "(x.y / d + 1)^3, unbiased MMD^2",
            "subsets": self.subsets,
            "subset_size": used if used >= 2 else self.subset_size,
            "subset_size_requested": self.subset_size,
            "seed": self.seed,
            "std": "over subsets, ddof 0",
        }

    def compute(self) -> DistributionResult:
        """The kernel distance (mean and std over subsets) of the features seen so far."""
        num_real, num_fake, d = self._counts()
        _check_pair_counts(self._name, num_real, num_fake)
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        m, message = _clamped_subset_size(self.subset_size, num_real, num_fake)
        if message is not None:
            _warn_rank_zero(f"{self._name}: {message}")
        values = _subset_mmds(real, fake, self.subsets, m, self.seed)
        protocol = self._protocol(num_real, num_fake, d)
        return DistributionResult(float(values.mean()), float(values.std(correction=0)), protocol)


_FVD_REFERENCE = {
    "name": "fvd2048_16f (StyleGAN-V, Skorokhodov et al. 2022)",
    "num_real": 2048,
    "num_fake": 2048,
    "frames": 16,
    "stride": 1,
    "ddof": 0,
}
_KVD_REFERENCE = {
    "name": "kvd2048_16f (fvd2048_16f's clips and I3D features, StyleGAN2-ADA's KID estimator)",
    "num_real": 2048,
    "num_fake": 2048,
    "frames": 16,
    "stride": 1,
    "subsets": 100,
    "subset_size": 1000,
}
# fid50k_full / kid50k_full use the whole real dataset, so only the generated count is fixed.
_FID_REFERENCE = {
    "name": "fid50k_full (StyleGAN2-ADA, Karras et al. 2020)",
    "num_fake": 50000,
    "ddof": 0,
}
_KID_REFERENCE = {
    "name": "kid50k_full (StyleGAN2-ADA, Karras et al. 2020)",
    "num_fake": 50000,
    "subsets": 100,
    "subset_size": 1000,
}


class FVD(_FrechetMetric):
    """Fréchet Video Distance of clip features, streamed.

    ``FVD = ‖μ_r − μ_f‖² + tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^½)`` (:func:`frechet_distance`).

    Follows StyleGAN-V's ``fvd2048_16f``: 16 consecutive frames per clip, the I3D torchscript
    called with uint8 ``(B, 3, 16, H, W)`` and ``rescale=True, resize=True,
    return_features=True``, float64 sums of the 400-d features and their outer products,
    covariance over N (``ddof=0``), 2048 real and 2048 generated clips. ``compute()`` returns a
    :class:`DistributionResult` whose ``protocol`` records all of it and lists the deviations.

    Clips are windowed the same way in both sets: frames ``first, first + stride, ...`` with
    ``first = 0`` (``include_context=True``) or ``context_frames``. Longer clips use their first
    window; shorter ones are an error (StyleGAN-V skips videos shorter than the window).

    Built on torchmetrics' ``Metric`` (state sync under DDP), not on its
    ``FrechetInceptionDistance``: that class truncates ``[0, 1]`` floats to uint8 (``(x *
    255).byte()``, half a level low on average), hands a custom module its input unchanged (no
    way to pass I3D's keyword arguments), probes the module with a dummy image at construction,
    divides the covariance by N − 1 where StyleGAN-V divides by N, and records no protocol.

    Streaming and DDP: ``update`` may be called with any batch size and in any order; the result
    does not depend on either. Under torch.distributed every process updates with its own shard
    and ``compute()`` merges the shards (torchmetrics sync) without dropping or duplicating
    samples; every process must have called ``update`` for both sets first (or, for FVD/FID,
    ``num_features`` must be given).

    Args:
        extractor: path of ``i3d_torchscript.pt`` (or another TorchScript file), a callable mapping
            ``(B, C, T, H, W)`` clips to ``(B, D)`` features, or a :class:`FeatureExtractor`
            (shared between metrics to load a file once).
        frames: frames per scored clip (fvd2048_16f: 16).
        stride: step between scored frames (fvd2048_16f: 1).
        context_frames: leading frames of every clip that were given to the generator.
        include_context: score them too (True) or start each clip after them (False).
        quantize: round pixels to 256 levels as the reference does (True) or not; see
            :class:`FeatureExtractor` for what each extractor receives.
        ddof: covariance divisor ``N − ddof``: 0 as StyleGAN-V, 1 as the TF FVD code (tfgan) and
            torchmetrics; the two differ by a factor ``1 + 1/(N − 1)`` on the trace terms.
        num_features: feature dimension, to allocate the states up front (else the first batch's).
        **kwargs: torchmetrics ``Metric`` options (``process_group``, ``sync_on_compute``, ...).

    Example::

        fvd = FVD("i3d_torchscript.pt").to("cuda")
        for real, fake in loader:  # (B, 3, T, H, W) in [-1, 1]
            fvd.update(real, real=True)
            fvd.update(fake, real=False)
        result = fvd.compute()  # result.value, result.protocol

    Reference: Unterthiner et al., "Towards Accurate Generative Models of Video: A New Metric &
    Challenges", 2018; Skorokhodov et al., "StyleGAN-V", CVPR 2022.
    """

    _name = "FVD"
    _video = True
    _reference = _FVD_REFERENCE

    def __init__(self, extractor: Extractor, *, frames: int = 16, **kwargs: Any) -> None:
        super().__init__(extractor, frames=frames, **kwargs)


class FID(_FrechetMetric):
    """Fréchet Inception Distance of image features, streamed.

    ``FID = ‖μ_r − μ_f‖² + tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^½)`` (:func:`frechet_distance`).

    Follows StyleGAN2-ADA's ``fid50k_full``: the Inception torchscript called with uint8
    ``(N, 3, H, W)`` and ``return_features=True`` (it resizes to 299×299 itself), float64 sums of
    the 2048-d features and their outer products, covariance over N, 50 000 generated images
    against the whole real set. Clips ``(B, C, T, H, W)`` count as ``B·T'`` images, ``T'`` the
    frames in the window (all frames by default, after the context frames with
    ``include_context=False``). ``compute()`` returns a :class:`DistributionResult`.

    Why not torchmetrics' ``FrechetInceptionDistance``: see :class:`FVD`.

    Streaming and DDP as in :class:`FVD`.

    Args:
        extractor: path of ``inception-2015-12-05.pt`` (or another TorchScript file), a callable
            mapping ``(N, C, H, W)`` images to ``(N, D)`` features, or a :class:`FeatureExtractor`.
        frames: frames per clip to score (None: every frame of the window).
        stride: step between scored frames of a clip.
        context_frames, include_context, quantize, ddof, num_features, **kwargs: as in :class:`FVD`.

    Reference: Heusel et al., "GANs trained by a two time-scale update rule converge to a local
    Nash equilibrium", NeurIPS 2017; Karras et al., "Training Generative Adversarial Networks with
    Limited Data", NeurIPS 2020.
    """

    _name = "FID"
    _video = False
    _reference = _FID_REFERENCE


class KVD(_KernelMetric):
    """Kernel Video Distance, streamed: :func:`kernel_distance` of I3D clip features.

    The clips, extractor call and features of :class:`FVD` (``fvd2048_16f``) with StyleGAN2-ADA's
    KID estimator: unbiased MMD² with ``(x·y / d + 1)³`` over 100 subsets of
    ``min(1000, n_real, n_fake)`` samples. Features are kept (torchmetrics "cat" states) and
    concatenated across processes. ``compute()`` returns a :class:`DistributionResult` with
    ``value`` the mean and ``std`` the standard deviation over subsets.

    Built on torchmetrics' ``Metric`` rather than its ``KernelInceptionDistance``, which draws
    subsets from the global RNG (irreproducible; see :func:`kernel_distance`) and shares the input
    handling problems listed in :class:`FVD`.

    Streaming and DDP as in :class:`FVD`.

    Args:
        extractor, frames, stride, context_frames, include_context, quantize: as in :class:`FVD`.
        subsets: number of subset pairs.
        subset_size: samples per subset; clamped with a warning to the smaller set's size.
        seed: seed of the subset draws.
        **kwargs: torchmetrics ``Metric`` options.

    Reference: Unterthiner et al. 2018 (KVD); Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.
    """

    _name = "KVD"
    _video = True
    _reference = _KVD_REFERENCE

    def __init__(self, extractor: Extractor, *, frames: int = 16, **kwargs: Any) -> None:
        super().__init__(extractor, frames=frames, **kwargs)


class KID(_KernelMetric):
    """Kernel Inception Distance, streamed: :func:`kernel_distance` of Inception image features.

    Follows StyleGAN2-ADA's ``kid50k_full``: the extractor call of :class:`FID`, 100 subsets of
    ``min(1000, n_real, n_fake)`` samples. Clips count as images as in :class:`FID`.
    ``compute()`` returns a :class:`DistributionResult` (``value`` mean, ``std`` over subsets).
    Why not torchmetrics' ``KernelInceptionDistance``: see :class:`KVD`.

    Streaming and DDP as in :class:`FVD`.

    Args:
        extractor, frames, stride, context_frames, include_context, quantize: as in :class:`FID`.
        subsets, subset_size, seed, **kwargs: as in :class:`KVD`.

    Reference: Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.
    """

    _name = "KID"
    _video = False
    _reference = _KID_REFERENCE

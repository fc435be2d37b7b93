"""Cost and accuracy of the set-level distances at the reference protocols' sizes.

Features are synthetic (correlated Gaussians), so only timing and numerical agreement mean
anything here, not the values. Reported:

* ``frechet_distance`` against the StyleGAN / TTUR formula (``scipy.linalg.sqrtm`` of
  ``Σ_r Σ_f``, real part) and against the singular values of ``X Yᵀ`` (from the samples, see
  ``_nuclear_formula``) for 2048 samples of I3D-sized (400-d) and Inception-sized (2048-d)
  features, and for 256 samples of 400-d features (singular covariances); wall time of each;
* ``kernel_distance`` with KID's 100 subsets of 1000, 2048 + 2048 samples of 400-d features;
* the FVD difference between the covariance over N (StyleGAN-V) and over N − 1 (TF FVD).

    python benchmarks/bench_distribution.py [--threads 2]
    python benchmarks/bench_distribution.py --device cuda   # genloss's distances on the GPU
    python benchmarks/bench_distribution.py --quick         # 400-d rows only, KID on 10 subsets
    python benchmarks/bench_distribution.py --smoke         # 256 x 16-d: runs end to end in seconds

With ``--device cuda`` the statistics and features given to ``frechet_distance`` and
``kernel_distance`` are float64 tensors on the GPU (its times are wall time after
``torch.cuda.synchronize``); the scipy and singular-value references stay on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from genloss.metrics import frechet_distance, kernel_distance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _device import add_device_argument, clock_for, describe, resolve_device  # noqa: E402


def _features(n: int, d: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return rng.standard_normal((n, d)) @ mix + shift


def _moments(x: np.ndarray, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), np.cov(x, rowvar=False, ddof=ddof)


def _nuclear_formula(x: np.ndarray, y: np.ndarray) -> float:
    """The distance from the samples themselves: with centred ``X``, ``Y`` (N x D),
    ``tr((Σ_x Σ_y)^½)`` is the sum of the singular values of ``X Yᵀ / N`` (no product of
    covariances is ever formed), which makes a third, independent reference."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    cross = np.linalg.svd(xc @ yc.T / len(x), compute_uv=False).sum()
    trace = (xc**2).sum() / len(x) + (yc**2).sum() / len(y)
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + trace - 2 * cross)


def _timed(fn, clock=time.perf_counter):  # noqa: ANN001, ANN202
    start = clock()
    out = fn()
    return out, clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="skip the 2048-d row; KID on 10 subsets")
    parser.add_argument("--smoke", action="store_true", help="256 samples of 16-d features, KID on 2 subsets of "
                        "100: checks that the script runs (the numbers mean nothing)")
    add_device_argument(parser)
    args = parser.parse_args()
    device = resolve_device(parser, args.device)
    torch.set_num_threads(args.threads)
    clock = clock_for(device, time.perf_counter)

    def on_device(*arrays: np.ndarray) -> list[torch.Tensor]:
        return [torch.from_numpy(a).to(device) for a in arrays]

    print(f"frechet_distance vs scipy.linalg.sqrtm (StyleGAN / TTUR formula), float64; "
          f"genloss on {describe(device)}, {args.threads} torch threads")
    rows = ((2048, 400), (256, 400)) if args.quick else ((2048, 400), (2048, 2048), (256, 400))
    n_kid, d_kid, subsets, subset_size = (256, 16, 2, 100) if args.smoke else (2048, 400, 10 if args.quick else 100, 1000)
    for n, d in ((256, 16),) if args.smoke else rows:
        x, y = _features(n, d, 0, 0.0), _features(n, d, 1, 0.1)
        (mu_r, s_r), (mu_f, s_f) = _moments(x), _moments(y)
        stats = on_device(mu_r, s_r, mu_f, s_f)
        ours, t_ours = _timed(lambda: frechet_distance(*stats), clock)  # noqa: B023

        def scipy_formula() -> float:
            root = scipy.linalg.sqrtm(s_r @ s_f).real  # noqa: B023
            return float(((mu_r - mu_f) ** 2).sum() + np.trace(s_r + s_f - 2 * root))  # noqa: B023

        ref, t_ref = _timed(scipy_formula)
        svd = _nuclear_formula(x, y)
        print(
            f"  N={n:5d} D={d:5d}: ours {ours:.12g} ({t_ours:.2f} s), scipy {ref:.12g} "
            f"({t_ref:.2f} s), singular values of X Y^T {svd:.12g}; relative to the last: "
            f"ours {abs(ours - svd) / svd:.1e}, scipy {abs(ref - svd) / svd:.1e}"
        )

    real, fake = _features(n_kid, d_kid, 2, 0.0), _features(n_kid, d_kid, 3, 0.05)
    features = on_device(real, fake)
    (mean, std), t = _timed(lambda: kernel_distance(*features, subsets=subsets, subset_size=subset_size), clock)
    print(f"kernel_distance, {n_kid} + {n_kid} x {d_kid}-d, {subsets} subsets of {subset_size}: {mean:.4g} ± {std:.2g}")
    print(f"  ({t:.2f} s)")

    by_n = frechet_distance(*_moments(real), *_moments(fake))
    by_n1 = frechet_distance(*_moments(real, 1), *_moments(fake, 1))
    print(
        f"covariance / N vs / (N - 1), {n_kid} samples: {by_n:.6g} vs {by_n1:.6g} "
        f"(relative {abs(by_n1 - by_n) / by_n:.1e})"
    )


if __name__ == "__main__":
    main()

"""Metrics for generated video and images.

* :mod:`genloss.metrics.video`: clip-by-clip comparison with a reference (PSNR, SSIM, LPIPS, tLP,
  tOF, warping error), per frame, per clip and over the batch.
* :mod:`genloss.metrics.detect`: ``detectability``, a classifier two-sample test (no weights).

Realism metrics (a classifier two-sample test and the Fréchet/kernel distances of features) are
added next to them; see README.md, "Measuring realism".
"""

from .detect import DetectabilityResult, detectability
from .extractors import FeatureExtractor
from .video import MetricResult, lpips, lpips_and_tlp, psnr, ssim, tlp, tof, warping_error

__all__ = [
    "DetectabilityResult",
    "DistributionResult",
    "FID",
    "FVD",
    "FeatureExtractor",
    "KID",
    "KVD",
    "MetricResult",
    "detectability",
    "frechet_distance",
    "kernel_distance",
    "lpips",
    "lpips_and_tlp",
    "psnr",
    "ssim",
    "tlp",
    "tof",
    "warping_error",
]

# The set-level distances build on torchmetrics, whose import costs seconds; it is deferred until
# one of them is first used (PEP 562), so `import genloss` does not pay for it.
_DISTRIBUTION = (
    "DistributionResult",
    "FID",
    "FVD",
    "KID",
    "KVD",
    "frechet_distance",
    "kernel_distance",
)


def __getattr__(name: str) -> object:
    if name in _DISTRIBUTION:
        from . import distribution

        return getattr(distribution, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

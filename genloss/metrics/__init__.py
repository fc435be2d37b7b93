"""Metrics for generated video and images.

* :mod:`genloss.metrics.video`: clip-by-clip comparison with a reference (PSNR, SSIM, LPIPS, tLP,
  tOF, warping error), per frame, per clip and over the batch.

Realism metrics (a classifier two-sample test and the Fréchet/kernel distances of features) are
added next to them; see README.md, "Measuring realism".
"""

from .video import MetricResult, lpips, psnr, ssim, tlp, tof, warping_error

__all__ = [
    "MetricResult",
    "lpips",
    "psnr",
    "ssim",
    "tlp",
    "tof",
    "warping_error",
]

"""genloss: losses, regularizers and metrics for training image and video GANs.

``import genloss as gl``; the public names are listed in ``__all__`` and documented in README.md.
Images are ``(B, C, H, W)``, videos ``(B, C, T, H, W)``, pixels in [-1, 1].
"""

from . import flow, metrics
from . import augment, diagnostics, recipes
from .adversarial import KINDS, AdversarialLoss, discriminator_loss, generator_loss
from .augment import DiffAugment, diff_augment
from .chunking import WindowConsistencyLoss, overlapping_windows, window_consistency_loss
from .composite import (
    CompositeLoss,
    DiscriminatorGate,
    DriftMonitor,
    DriftWarning,
    NonFiniteLossError,
    Schedule,
)
from .diagnostics import discriminator_stats, gradient_norms
from .feature_matching import feature_matching_loss
from .flow import estimate_flow, video_flow, video_flow_and_mask
from .foundation import FoundationPerceptualLoss
from .frequency import (
    LaplacianPyramidLoss,
    WaveletLoss,
    haar_wavelet_3d,
    laplacian_pyramid,
    laplacian_pyramid_loss,
    wavelet_loss,
)
from .latent import (
    DiagonalGaussianKL,
    LogvarNLLLoss,
    OutlierPenaltyLoss,
    diagonal_gaussian_kl,
    logvar_nll_loss,
    outlier_penalty_loss,
)
from .perceptual import LPIPS, FramesTooSmallError, WeightsNotFoundError
from .reconstruction import (
    CharbonnierLoss,
    GradientDifferenceLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    charbonnier_loss,
    gradient_difference_loss,
    huber_loss,
    l1_loss,
    mse_loss,
)
from .regularizers import (
    LazyRegularizer,
    LeCamEMA,
    adaptive_weight,
    gradient_penalty,
    lecam_penalty,
    r1_penalty,
    r1_penalty_fd,
    r2_penalty,
    r2_penalty_fd,
)
from .quantization import (
    LFQEntropyLoss,
    VectorQuantizationLoss,
    codebook_loss,
    commitment_loss,
    lfq_entropy_loss,
    lfq_entropy_terms,
    vector_quantization_loss,
)
from .recipes import Recipe
from .ssim import MSSSIMLoss, SSIMLoss, ms_ssim_loss, ssim_loss
from .temporal import (
    FlowSmoothnessLoss,
    FlowWarpingLoss,
    PingPongLoss,
    TemporalDifferenceLoss,
    TemporalLPIPSLoss,
    TemporalSmoothnessLoss,
    flow_smoothness_loss,
    flow_warping_loss,
    occlusion_mask,
    ping_pong_loss,
    splat,
    temporal_difference_loss,
    temporal_lpips_loss,
    temporal_smoothness_loss,
    warp,
)
from .style import GramLoss, gram_loss, spatial_gram, temporal_gram
from .vgg import VGGLoss, gram_matrix, vgg_layer_names

__version__ = "0.1.0"

__all__ = [
    "AdversarialLoss",
    "CharbonnierLoss",
    "CompositeLoss",
    "DiagonalGaussianKL",
    "DiffAugment",
    "DiscriminatorGate",
    "DriftMonitor",
    "DriftWarning",
    "FlowSmoothnessLoss",
    "FlowWarpingLoss",
    "FoundationPerceptualLoss",
    "FramesTooSmallError",
    "GradientDifferenceLoss",
    "GramLoss",
    "HuberLoss",
    "KINDS",
    "L1Loss",
    "LFQEntropyLoss",
    "LPIPS",
    "LaplacianPyramidLoss",
    "LazyRegularizer",
    "LeCamEMA",
    "LogvarNLLLoss",
    "MSELoss",
    "MSSSIMLoss",
    "NonFiniteLossError",
    "OutlierPenaltyLoss",
    "PingPongLoss",
    "Recipe",
    "SSIMLoss",
    "Schedule",
    "TemporalDifferenceLoss",
    "TemporalLPIPSLoss",
    "TemporalSmoothnessLoss",
    "VGGLoss",
    "VectorQuantizationLoss",
    "WaveletLoss",
    "WeightsNotFoundError",
    "WindowConsistencyLoss",
    "adaptive_weight",
    "augment",
    "charbonnier_loss",
    "codebook_loss",
    "commitment_loss",
    "diagnostics",
    "diagonal_gaussian_kl",
    "diff_augment",
    "discriminator_loss",
    "discriminator_stats",
    "estimate_flow",
    "feature_matching_loss",
    "flow",
    "flow_smoothness_loss",
    "flow_warping_loss",
    "generator_loss",
    "gradient_difference_loss",
    "gradient_norms",
    "gradient_penalty",
    "gram_loss",
    "gram_matrix",
    "haar_wavelet_3d",
    "huber_loss",
    "l1_loss",
    "laplacian_pyramid",
    "laplacian_pyramid_loss",
    "lecam_penalty",
    "lfq_entropy_loss",
    "lfq_entropy_terms",
    "logvar_nll_loss",
    "metrics",
    "ms_ssim_loss",
    "mse_loss",
    "occlusion_mask",
    "outlier_penalty_loss",
    "overlapping_windows",
    "ping_pong_loss",
    "r1_penalty",
    "r1_penalty_fd",
    "r2_penalty",
    "r2_penalty_fd",
    "recipes",
    "spatial_gram",
    "splat",
    "ssim_loss",
    "temporal_difference_loss",
    "temporal_gram",
    "temporal_lpips_loss",
    "temporal_smoothness_loss",
    "vector_quantization_loss",
    "vgg_layer_names",
    "video_flow",
    "video_flow_and_mask",
    "warp",
    "wavelet_loss",
    "window_consistency_loss",
]

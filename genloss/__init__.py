"""genloss: losses, regularizers and metrics for training image and video GANs.

``import genloss as gl``; the public names are listed in ``__all__`` and documented in README.md.
Images are ``(B, C, H, W)``, videos ``(B, C, T, H, W)``, pixels in [-1, 1].
"""

from . import flow, metrics
from . import augment, diagnostics
from .adversarial import KINDS, AdversarialLoss, discriminator_loss, generator_loss
from .augment import DiffAugment, diff_augment
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
from .ssim import MSSSIMLoss, SSIMLoss, ms_ssim_loss, ssim_loss
from .temporal import (
    FlowWarpingLoss,
    PingPongLoss,
    TemporalDifferenceLoss,
    TemporalLPIPSLoss,
    TemporalSmoothnessLoss,
    flow_warping_loss,
    occlusion_mask,
    ping_pong_loss,
    temporal_difference_loss,
    temporal_lpips_loss,
    temporal_smoothness_loss,
    warp,
)
from .vgg import VGGLoss, gram_matrix, vgg_layer_names

__version__ = "0.1.0"

__all__ = [
    "AdversarialLoss",
    "CharbonnierLoss",
    "CompositeLoss",
    "DiffAugment",
    "DiscriminatorGate",
    "DriftMonitor",
    "DriftWarning",
    "FlowWarpingLoss",
    "FramesTooSmallError",
    "GradientDifferenceLoss",
    "HuberLoss",
    "KINDS",
    "L1Loss",
    "LPIPS",
    "LazyRegularizer",
    "LeCamEMA",
    "MSELoss",
    "MSSSIMLoss",
    "NonFiniteLossError",
    "PingPongLoss",
    "SSIMLoss",
    "Schedule",
    "TemporalDifferenceLoss",
    "TemporalLPIPSLoss",
    "TemporalSmoothnessLoss",
    "VGGLoss",
    "WeightsNotFoundError",
    "adaptive_weight",
    "augment",
    "charbonnier_loss",
    "diagnostics",
    "diff_augment",
    "discriminator_loss",
    "discriminator_stats",
    "estimate_flow",
    "feature_matching_loss",
    "flow",
    "flow_warping_loss",
    "generator_loss",
    "gradient_difference_loss",
    "gradient_norms",
    "gradient_penalty",
    "gram_matrix",
    "huber_loss",
    "l1_loss",
    "lecam_penalty",
    "metrics",
    "ms_ssim_loss",
    "mse_loss",
    "occlusion_mask",
    "ping_pong_loss",
    "r1_penalty",
    "r1_penalty_fd",
    "r2_penalty",
    "r2_penalty_fd",
    "ssim_loss",
    "temporal_difference_loss",
    "temporal_lpips_loss",
    "temporal_smoothness_loss",
    "vgg_layer_names",
    "video_flow",
    "video_flow_and_mask",
    "warp",
]

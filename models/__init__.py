"""The reference video GAN trained by ``train/gan.py``: a generator and two discriminators."""

from .discriminators import (
    DiscriminatorConfig,
    ImageDiscriminator,
    VideoDiscriminator,
    sample_frames,
    with_frame_differences,
)
from .generator import Generator, GeneratorConfig

__all__ = [
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "ImageDiscriminator",
    "VideoDiscriminator",
    "sample_frames",
    "with_frame_differences",
]

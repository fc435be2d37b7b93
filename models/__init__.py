"""The reference video GAN trained by ``train/gan.py``: a generator and two discriminators."""

from .discriminators import DiscriminatorConfig, ImageDiscriminator, VideoDiscriminator, sample_frames
from .generator import Generator, GeneratorConfig

__all__ = [
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "ImageDiscriminator",
    "VideoDiscriminator",
    "sample_frames",
]

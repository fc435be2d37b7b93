"""The shared base of the frozen-network losses (``LPIPS``, ``VGGLoss``): freezing, input checks,
frame selection and folding.

Both compare a prediction with its target through a frozen torchvision trunk, frame by frame:
RGB pixels in [-1, 1], images ``(B, 3, H, W)`` or clips ``(B, 3, T, H, W)``, of which at most
``frames`` frames per clip are evaluated (random ones while a parent trains, evenly spaced ones in
eval), folded into one ``(N, 3, H, W)`` batch for the trunk.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from ._checks import (
    check_choice,
    check_image_or_video,
    check_pixel_range,
    check_reduction,
    check_rgb_channels,
    check_same_shape,
)

__all__ = [
    "FRAME_SAMPLING",
    "FramesTooSmallError",
    "FramewiseLoss",
    "FrozenModule",
    "select_frames",
]

FRAME_SAMPLING = ("auto", "uniform", "random")


class FramesTooSmallError(ValueError):
    """Frames smaller than the network's convolutions and pools accept (see ``LPIPS.min_size``)."""


def _check_rgb(name: str, x: object) -> Tensor:
    """A float RGB image or video; integer tensors get a hint about the expected range."""
    if isinstance(x, Tensor) and not x.is_floating_point():
        raise TypeError(
            f"`{name}` must be a floating-point tensor with pixels in [-1, 1]; got dtype {x.dtype} "
            "(for uint8 images use x.float() / 127.5 - 1)"
        )
    x = check_image_or_video(name, x)
    check_rgb_channels(name, x)
    return x


def select_frames(
    videos: tuple[Tensor, ...], frames: int | None, random: bool
) -> tuple[Tensor, ...]:
    """The same ``frames`` frames of every video in ``videos`` (all ``(B, C, T, H, W)``).

    ``random=False`` takes evenly spaced frames, the centres of ``frames`` equal bins of
    ``[0, T)`` (``frames=1`` is the middle frame); ``random=True`` draws ``frames`` distinct
    frames per clip (from torch's global RNG), kept in time order. ``None`` or ``frames >= T``
    keeps all ``T`` frames.
    """
    b, _, t = videos[0].shape[:3]
    if frames is None or frames >= t:
        return videos
    device = videos[0].device
    if random:
        index = torch.rand(b, t, device=device).argsort(dim=1)[:, :frames].sort(dim=1).values
        rows = torch.arange(b, device=device)[:, None]
        # (B, C, T, H, W) -> (B, k, C, H, W) by gathering per clip, then back.
        return tuple(
            rearrange(rearrange(v, "b c t h w -> b t c h w")[rows, index], "b t c h w -> b c t h w")
            for v in videos
        )
    index = ((torch.arange(frames, device=device) + 0.5) * (t / frames)).long()
    return tuple(v.index_select(2, index) for v in videos)


class FrozenModule(nn.Module):
    """A module that stays in eval mode and never requires gradients.

    ``.train(mode)`` from a parent is recorded in ``sampling_training`` (used to choose random
    vs evenly spaced frames) but never switches the module itself out of eval mode, so no
    dropout or batch-norm statistics come back to life.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sampling_training = False

    def train(self, mode: bool = True) -> FrozenModule:
        self.sampling_training = bool(mode)
        return super().train(False)

    def freeze(self) -> None:
        """Call at the end of ``__init__``: no parameter requires a gradient; eval mode."""
        self.requires_grad_(False)
        super().train(False)


class FramewiseLoss(FrozenModule):
    """Shared input handling of the frozen-network losses: checks, frame selection, folding.

    Subclasses call ``configure`` in ``__init__`` and ``frames_of`` in ``forward``.
    """

    def configure(
        self, frames: int | None, frame_sampling: str, reduction: str, check_range: bool
    ) -> None:
        check_choice("frame_sampling", frame_sampling, FRAME_SAMPLING)
        check_reduction(reduction)
        if frames is not None and (not isinstance(frames, int) or frames < 1):
            raise ValueError(f"`frames` must be a positive int or None; got {frames!r}")
        self.frames, self.frame_sampling = frames, frame_sampling
        self.reduction, self.check_range = reduction, check_range

    def check_frames(self, name: str, x: object) -> Tensor:
        """``x`` as validated float RGB images or videos in range, frames large enough."""
        x = _check_rgb(name, x)
        if min(x.shape[-2:]) < self.min_size:
            raise FramesTooSmallError(
                f"`{name}` frames must be at least {self.min_size}x{self.min_size} pixels for this "
                f"{type(self).__name__}'s network; got shape {tuple(x.shape)}"
            )
        if self.check_range:
            check_pixel_range(name, x)
        return x

    def frames_of(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, int | None]:
        """Validated ``(N, 3, H, W)`` frames of both inputs and the frames per clip (None: images).

        Videos keep ``frames`` of their frames — random ones if ``frame_sampling="random"``, or
        ``"auto"`` while a parent is in training mode; evenly spaced otherwise.
        """
        _check_rgb("pred", pred)
        _check_rgb("target", target)
        check_same_shape("pred", pred, "target", target)
        self.check_frames("pred", pred)
        self.check_frames("target", target)
        if pred.ndim == 4:
            return pred, target, None
        random = self.frame_sampling == "random" or (
            self.frame_sampling == "auto" and self.sampling_training
        )
        pred, target = select_frames((pred, target), self.frames, random)
        fold = "b c t h w -> (b t) c h w"
        return rearrange(pred, fold), rearrange(target, fold), pred.shape[2]

"""The reference GAN's loss terms and their weights, composed from genloss.

Discriminators (image and video): ``--adv-loss`` on real against generated clips, plus lazy R1
(and R2), both seeing their inputs through a :class:`DiscriminatorView` (DiffAugment, frame
differences). They train every step from step 0, also while the generator's adversarial weight is
still warming up, and are left out of a run only when no term of it ever reads them
(:attr:`Losses.discriminators_needed`).
Generator, in the order the total is summed: reconstruction (L1 or Charbonnier), gradient
difference, temporal difference, perceptual (LPIPS, or discriminator feature matching), second-order
temporal smoothness, and the adversarial term, switched on after a warm-up by a ``Schedule``.
Unconditional runs (no context, so no target) weigh the four target-based terms 0, and
``CompositeLoss`` never calls a term whose weight is 0.

The tensors these terms read (the generated clip, the discriminators' outputs) are computed once
per step by ``train_step`` in ``train/gan.py``; this module only says what to compute from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import genloss as gl
from genloss.augment import apply_augment, sample_augment_params
from models import with_frame_differences
from train.config import TrainConfig

__all__ = ["DISCRIMINATORS_OFF", "IMAGE_D_FRAMES", "DiscriminatorView", "Losses", "build_losses", "frame_indices",
           "temporal_difference_from_context"]

IMAGE_D_FRAMES = 2  # generated frames per clip shown to the image discriminator
# Said at start-up and recorded in config.json (run.discriminators) when a run never uses them.
DISCRIMINATORS_OFF = ("off: no term of this run reads them (no adversarial weight before --max-steps, no "
                      "discriminator feature matching), so they are neither run nor updated")


@dataclass(frozen=True)
class DiscriminatorView:
    """What the discriminators are shown of the clips and frames they judge.

    ``--augment``: DiffAugment (Zhao et al. 2020) on real and generated inputs alike, drawn once per
    clip and shared by its frames (time-consistent, as in DIGAN and StyleGAN-V; the image
    discriminator's frames are images, one draw each). ``--video-d-input clip+diff``: the video
    discriminator also gets the frame differences of what it sees (after augmentation, so they are
    the differences of the clip it judges), as C more channels. ``--d-image-input frame+context``:
    the image discriminator sees each frame next to its clip's last context frame (pix2pix's
    conditional discriminator, the condition being the context), both shown the same draw.

    Differentiable throughout, so gradient penalties taken with respect to the un-augmented inputs
    and the generator's gradient both pass through it.
    """

    policy: str = ""  # DiffAugment policy; "" shows the inputs as they are
    frame_differences: bool = False  # the video discriminator's input is (clip, its frame differences)
    frame_context: bool = False  # the image discriminator's input is (frame, its clip's last context frame)

    def draw(self, x: Tensor) -> dict[str, Tensor]:
        """One augmentation draw per sample of ``x``, to show several tensors the same transforms."""
        return sample_augment_params(x, self.policy)

    def video(self, clips: Tensor, draw: dict[str, Tensor] | None = None) -> Tensor:
        """The video discriminator's input: ``(B, C, T, H, W) -> (B, C or 2C, T, H, W)``, augmented
        with ``draw`` (or a fresh draw per clip)."""
        clips = self._augment(clips, draw)
        return with_frame_differences(clips) if self.frame_differences else clips

    def frames(self, frames: Tensor, draw: dict[str, Tensor] | None = None, context: Tensor | None = None) -> Tensor:
        """The image discriminator's input: ``(N, C, H, W)``, augmented with ``draw`` (or a fresh draw
        per frame); with ``frame_context``, ``(N, 2C, H, W)``: each frame then its ``context`` frame
        (``(N, C, H, W)``), both shown the frame's draw."""
        if not self.frame_context:
            return self._augment(frames, draw)
        if context is None or context.shape != frames.shape:
            raise ValueError(f"frame_context: expected a context frame per frame, of shape {tuple(frames.shape)}; "
                             f"got {None if context is None else tuple(context.shape)}")
        draw = self.draw(frames) if draw is None else draw
        return torch.cat([self._augment(frames, draw), self._augment(context, draw)], dim=1)

    def _augment(self, x: Tensor, draw: dict[str, Tensor] | None) -> Tensor:
        draw = self.draw(x) if draw is None else draw
        return apply_augment(x, draw) if draw else x  # the empty policy draws nothing


@dataclass
class Losses:
    """The two composite losses of the GAN and what their terms need."""

    generator: gl.CompositeLoss  # rec, gdl, tdl, perceptual, smooth, flow_tv, adv
    discriminator: gl.CompositeLoss  # adv_video, adv_image (R1 and R2 are added on due steps)
    kind: str  # the adversarial loss kind (genloss.KINDS)
    reconstruction: Callable[[Tensor, Tensor], Tensor]  # l1_loss or charbonnier_loss
    lpips: nn.Module | None  # the perceptual network, or None: feature matching (or no perceptual term)
    view: DiscriminatorView  # what the discriminators see of their inputs
    # Whether any term of the run ever reads the discriminators: the adversarial term (a non-zero
    # weight at some step before --max-steps) or discriminator feature matching. When not, the
    # discriminators' half of the step is skipped entirely (no forwards, no update).
    discriminators_needed: bool = True

    def perceptual(self, generated: Tensor, future: Tensor, features_real: list[Tensor] | None,
                   features_fake: list[Tensor] | None) -> Tensor:
        """LPIPS between generated and true frames, or (without LPIPS) feature matching on the video
        discriminator's features of the real and the generated clip."""
        if self.lpips is not None:
            return self.lpips(generated, future)
        return gl.feature_matching_loss(features_real, features_fake)

    def active(self, step: int) -> set[str]:
        """The generator terms computed at ``step`` (those with a non-zero weight)."""
        return {name for name, factor in self.generator.factors(step).items() if factor != 0}


def build_losses(cfg: TrainConfig, lpips: nn.Module | None, perceptual: str) -> Losses:
    """The losses of a run; ``perceptual`` is the term actually used (see ``build_perceptual``)."""
    conditional = cfg.context_frames > 0
    target_weight = 1.0 if conditional else 0.0  # no context, no target to compare with
    start, ramp = cfg.adversarial_warmup()
    generator = gl.CompositeLoss({
        "rec": target_weight * cfg.rec_weight,
        "gdl": target_weight * cfg.gdl_weight,
        "tdl": target_weight * cfg.tdl_weight,
        "perceptual": target_weight * cfg.perceptual_weight if perceptual != "none" else 0.0,
        "smooth": cfg.smooth_weight,
        "flow_tv": target_weight * cfg.flow_tv_weight,  # no context, no warp, no flow
        "adv": gl.Schedule(cfg.adv_weight, start=start, ramp=ramp),
    })
    discriminator = gl.CompositeLoss({"adv_video": 1.0, "adv_image": 1.0})
    reconstruction = gl.l1_loss if cfg.rec_loss == "l1" else gl.charbonnier_loss
    view = DiscriminatorView(cfg.augment, frame_differences=cfg.video_d_input == "clip+diff",
                             frame_context=cfg.d_image_input == "frame+context")
    adversarial = cfg.adv_weight > 0 and start + (ramp > 0) < cfg.max_steps  # its first non-zero factor
    feature_matching = perceptual == "feature-matching" and target_weight * cfg.perceptual_weight > 0
    return Losses(generator, discriminator, cfg.adv_loss, reconstruction, lpips, view,
                  discriminators_needed=adversarial or feature_matching)


def frame_indices(frames: int, context_frames: int, device: torch.device | str) -> Tensor:
    """``IMAGE_D_FRAMES`` random generated-frame indices into a clip of ``frames`` frames: never a
    context frame (context frames are real, so showing them as "generated" would teach the image
    discriminator nonsense)."""
    generated = frames - context_frames
    count = min(IMAGE_D_FRAMES, generated)
    return context_frames + torch.randperm(generated, device=device)[:count]


def temporal_difference_from_context(context: Tensor, generated: Tensor, future: Tensor) -> Tensor:
    """``temporal_difference_loss`` of the continuation, including the step from the last context
    frame into the first generated one (the jump a copy-last-frame generator would get wrong).

    That step's error is ``|(g_0 - c_last) - (f_0 - c_last)| = |g_0 - f_0|``: the context frame is
    on both sides and cancels, so the seam adds an L1 term on the first generated frame, weighted
    as one step of T - K."""
    last = context[:, :, -1:]
    return gl.temporal_difference_loss(torch.cat([last, generated], 2), torch.cat([last, future], 2))

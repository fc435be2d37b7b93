"""The reference GAN's objectives, composed from genloss.

Discriminators (image and video): ``--adv-loss`` on real vs generated clips, plus lazy R1.
Generator: adversarial (after a warm-up, via ``Schedule``) + reconstruction + gradient
difference + temporal difference + perceptual (LPIPS or discriminator feature matching) +
second-order temporal smoothness. Unconditional runs (no context, so no target) keep only the
adversarial and smoothness terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

import genloss as gl
from models import sample_frames

__all__ = ["Batch", "Objective"]

IMAGE_D_FRAMES = 2  # frames per clip shown to the image discriminator


@dataclass
class Batch:
    """One training step's tensors, all ``(B, C, ·, H, W)``."""

    real: Tensor  # the whole real clip, T frames
    context: Tensor  # its first K frames
    future: Tensor  # its last T - K frames (the generator's target)
    generated: Tensor  # the generator's T - K frames

    @property
    def fake(self) -> Tensor:
        """Context followed by the generated frames: what the video discriminator judges."""
        return torch.cat([self.context, self.generated], dim=2)


class Objective:
    """Builds the two ``CompositeLoss`` objects from the settings and evaluates them."""

    def __init__(self, cfg: dict, perceptual: nn.Module | None) -> None:
        self.cfg = cfg
        self.kind = cfg["adv_loss"]
        self.context_frames = cfg["context_frames"]
        self.perceptual = perceptual
        self.uses_feature_matching = cfg["perceptual"] == "feature-matching"
        self.lazy_r1 = gl.LazyRegularizer(cfg["r1_interval"])
        self.rec = gl.l1_loss if cfg["rec_loss"] == "l1" else gl.charbonnier_loss
        adv = gl.Schedule(cfg["adv_weight"], start=cfg["adv_start"], ramp=cfg["adv_ramp"])
        terms: dict[str, float | gl.Schedule] = {}
        if self.context_frames > 0:
            terms.update(rec=cfg["rec_weight"], gdl=cfg["gdl_weight"], tdl=cfg["tdl_weight"])
            if cfg["perceptual"] != "none":
                terms["perceptual"] = cfg["perceptual_weight"]
        # "adv" last: the adaptive weight needs the reconstruction term computed before it.
        terms.update(smooth=cfg["smooth_weight"], adv=adv)
        self.g_loss = gl.CompositeLoss(terms)
        self.d_loss = gl.CompositeLoss({"adv_video": 1.0, "adv_image": 1.0})

    def frame_indices(self, frames: int, device: torch.device) -> Tensor:
        """Random generated-frame indices (into the whole clip) for the image discriminator."""
        first = self.context_frames
        count = min(IMAGE_D_FRAMES, frames - first)
        return first + torch.randperm(frames - first, device=device)[:count]

    def discriminator(
        self, step: int, batch: Batch, d_image: nn.Module, d_video: nn.Module, grad_scale: float | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Both discriminators' loss on ``batch`` (generated frames detached), with lazy R1."""
        r1_due = self.cfg["r1_gamma"] > 0 and self.lazy_r1.due(step)
        real = batch.real.detach().requires_grad_(r1_due)
        fake = batch.fake.detach()
        n = real.shape[0]
        idx = self.frame_indices(real.shape[2], real.device)
        real_frames = sample_frames(real.detach(), idx).requires_grad_(r1_due)
        # One forward per discriminator on real and fake together (one DDP forward per backward).
        video_logits, _ = d_video(torch.cat([real, fake]))  # (2B, 1, T, h, w)
        image_logits, _ = d_image(torch.cat([real_frames, sample_frames(fake, idx)]))  # (2Bn, 1, h, w)
        v_real, v_fake = video_logits[:n], video_logits[n:]
        i_real, i_fake = image_logits.chunk(2)
        total, logs = self.d_loss(
            step,
            adv_video=lambda: gl.discriminator_loss(v_real, v_fake, kind=self.kind),
            adv_image=lambda: gl.discriminator_loss(i_real, i_fake, kind=self.kind),
        )
        gamma = self.cfg["r1_gamma"]
        r1 = self.lazy_r1(step, lambda: gamma / 2 * (
            gl.r1_penalty(v_real, real, grad_scale=grad_scale)
            + gl.r1_penalty(i_real, real_frames, grad_scale=grad_scale)
        )) if r1_due else None
        if r1 is not None:
            logs["r1"] = r1.detach() / self.lazy_r1.interval  # log the unscaled penalty
            total = total + r1
        return total, logs

    def generator(
        self, step: int, batch: Batch, d_image: nn.Module, d_video: nn.Module, last_layer: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's composite loss. Pass the discriminators unwrapped and frozen."""
        k = self.context_frames
        gen, future = batch.generated, batch.future
        cache: dict[str, object] = {}

        def video_d_fake() -> tuple[Tensor, list[Tensor]]:
            if "fake" not in cache:  # shared by the adversarial and feature-matching terms
                cache["fake"] = d_video(batch.fake)
            return cache["fake"]

        def video_d_real() -> tuple[Tensor, list[Tensor]]:
            if "real" not in cache:
                with torch.no_grad():
                    cache["real"] = d_video(batch.real)
            return cache["real"]

        def adversarial() -> Tensor:
            idx = self.frame_indices(batch.real.shape[2], gen.device)
            v_fake, _ = video_d_fake()
            i_fake, _ = d_image(sample_frames(batch.fake, idx))
            relativistic = self.kind == "relativistic"
            v_real = video_d_real()[0] if relativistic else None
            i_real = None
            if relativistic:
                with torch.no_grad():
                    i_real, _ = d_image(sample_frames(batch.real, idx))
            adv = (gl.generator_loss(v_fake, kind=self.kind, real_logits=v_real)
                   + gl.generator_loss(i_fake, kind=self.kind, real_logits=i_real))
            if self.cfg["adaptive_weight"] and last_layer is not None and "rec" in cache:
                adv = gl.adaptive_weight(cache["rec"], adv, last_layer) * adv
            return adv

        def reconstruction() -> Tensor:
            cache["rec"] = value = self.rec(gen, future)
            return value

        def perceptual() -> Tensor:
            if self.uses_feature_matching:
                return gl.feature_matching_loss(video_d_real()[1], video_d_fake()[1])
            return self.perceptual(gen, future)

        def temporal_difference() -> Tensor:
            # Include the step from the last context frame into the first generated one.
            last = batch.context[:, :, -1:]
            return gl.temporal_difference_loss(torch.cat([last, gen], 2), torch.cat([last, future], 2))

        smooth_input = batch.fake if k > 0 else gen
        thunks = {
            "adv": adversarial,
            "smooth": lambda: gl.temporal_smoothness_loss(smooth_input, order=2),
            "rec": reconstruction,
            "gdl": lambda: gl.gradient_difference_loss(gen, future),
            "tdl": temporal_difference,
            "perceptual": perceptual,
        }
        return self.g_loss(step, **{name: thunks[name] for name in self.g_loss.terms})

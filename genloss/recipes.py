"""Loss recipes of released video (and image) tokenizers as :class:`~genloss.CompositeLoss` presets.

Each factory returns a :class:`Recipe`: a ``CompositeLoss`` over the recipe's generator terms,
with the weights and schedules of the released configuration, plus the discriminator's
``CompositeLoss`` and builders of the thunks from the tensors of one step::

    recipe = gl.recipes.taming_vqgan(perceptual=gl.LPIPS("vgg", reduction="none"), discriminator=D)
    total, logs = recipe(step, **recipe.generator_thunks(
        inputs=x, reconstructions=x_rec, z_e=z_e, z_q=z_q, last_layer=decoder.conv_out.weight))
    d_total, d_logs = recipe.discriminator(step, **recipe.discriminator_thunks(inputs=x, reconstructions=x_rec))

The networks a recipe needs (the discriminator, LPIPS or VGG features) are arguments of the
factory: genloss ships the loss arithmetic, you ship the networks. A term's logged value is its
unweighted value; where the released code multiplies a term by an adaptive weight (VQGAN's
``d_weight``), that weight is part of the term's value and the term is named ``adv`` with
``adv`` = ``d_weight · g_loss``.

Perceptual callables take ``(pred_frames, target_frames)``, both ``(N, 3, H, W)`` in [-1, 1],
and return ``(N,)`` per-frame distances (``gl.LPIPS(..., reduction="none")``). Discriminators
take a batch and return logits ``(B, ...)``.

Schedules beyond :class:`~genloss.Schedule`'s start-and-ramp (Cosmos's piecewise-constant
weights, magvit2-pytorch's gradient penalty every 4 steps, Open-MAGVIT2's decaying codebook
weight) are small ``Schedule`` subclasses defined here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ._checks import check_positive_int, check_video
from .adversarial import discriminator_loss
from .composite import CompositeLoss, Schedule
from .latent import diagonal_gaussian_kl, logvar_nll_loss
from .quantization import codebook_loss, commitment_loss, lfq_entropy_loss
from .regularizers import adaptive_weight, lecam_penalty, r1_penalty, r2_penalty
from .style import gram_loss

__all__ = [
    "COSMOS_LAYER_WEIGHTS",
    "EveryK",
    "LinearDecay",
    "Piecewise",
    "Recipe",
    "ZeroInitEMA",
    "cosmos_continuous",
    "magvit2_pytorch",
    "omnitokenizer",
    "open_magvit2_video",
    "taming_vqgan",
    "vidtok_kl",
    "wf_vae",
]

Thunks = dict[str, Callable[[], Tensor]]
Perceptual = Callable[[Tensor, Tensor], Tensor]
Discriminator = Callable[[Tensor], Tensor]

#: Cosmos's ``PerceptualConfig.layer_weights`` for VGG16 relu1_2 .. relu5_3.
COSMOS_LAYER_WEIGHTS = (1.0 / 2.6, 1.0 / 4.8, 1.0 / 3.7, 1.0 / 5.6, 10.0 / 1.5)


# ----------------------------------------------------------------------------------- schedules


class Piecewise(Schedule):
    """A piecewise-constant weight: ``values[i]`` for the first ``boundaries[i] > step``, else
    ``values[-1]`` (Cosmos's ``WeightScheduler``: ``iteration < boundary``)."""

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]) -> None:
        if len(values) != len(boundaries) + 1 and len(values) != len(boundaries):
            raise ValueError(
                f"`values` must hold len(boundaries) + 1 weights; got {len(boundaries)} boundaries "
                f"and {len(values)} values"
            )
        super().__init__(float(values[-1]))
        self.boundaries, self.values = [int(b) for b in boundaries], [float(v) for v in values]

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step < boundary:
                return value
        return self.values[-1]

    def __repr__(self) -> str:
        return f"Piecewise({self.boundaries}, {self.values})"


class EveryK(Schedule):
    """``weight`` on steps with ``step >= start`` and ``step % k == 0``, else 0 (unscaled lazy
    regularization, as magvit2-pytorch's ``apply_gradient_penalty_every``)."""

    def __init__(self, weight: float, k: int, *, start: int = 0) -> None:
        super().__init__(weight, start=start)
        check_positive_int("k", k)
        self.k = k

    def __call__(self, step: int) -> float:
        return self.weight if step >= self.start and step % self.k == 0 else 0.0

    def __repr__(self) -> str:
        return f"EveryK({self.weight}, {self.k}, start={self.start})"


class LinearDecay(Schedule):
    """``weight · (1 + ratio · max(0, 1 − step / steps))``: starts ``1 + ratio`` times larger and
    decays to ``weight`` (Open-MAGVIT2's ``codebook_enlarge_ratio`` / ``_steps``)."""

    def __init__(self, weight: float, ratio: float, steps: int) -> None:
        super().__init__(weight)
        if not steps > 0:
            raise ValueError(f"`steps` must be positive; got {steps!r}")
        self.ratio, self.steps = float(ratio), steps

    def __call__(self, step: int) -> float:
        return self.weight * (1 + self.ratio * max(0.0, 1 - step / self.steps))

    def __repr__(self) -> str:
        return f"LinearDecay({self.weight}, ratio={self.ratio}, steps={self.steps})"


class ZeroInitEMA:
    """The LeCam EMA of Open-MAGVIT2 and VidTok: starts at 0, ``ema <- decay·ema + (1−decay)·mean``.

    (:class:`genloss.LeCamEMA` instead starts at the first batch's means.)
    """

    def __init__(self, decay: float = 0.999) -> None:
        self.decay, self.real, self.fake = decay, 0.0, 0.0

    def update(self, real_logits: Tensor, fake_logits: Tensor) -> None:
        self.real = self.real * self.decay + real_logits.detach().mean().item() * (1 - self.decay)
        self.fake = self.fake * self.decay + fake_logits.detach().mean().item() * (1 - self.decay)


# ------------------------------------------------------------------------------------- recipe


@dataclass(frozen=True)
class _Parts:
    generator: Callable[..., Thunks]
    discriminator: Callable[..., Thunks] | None


class Recipe(CompositeLoss):
    """A released recipe: the generator-side ``CompositeLoss`` plus its discriminator side.

    Attributes:
        name: the recipe's name.
        sources: ``"owner/repo: path"`` strings of the code and configs it follows.
        discriminator: the discriminator update's ``CompositeLoss``, or None (no GAN).
    """

    def __init__(
        self,
        terms: dict[str, float | Schedule],
        *,
        name: str,
        sources: Sequence[str],
        generator: Callable[..., Thunks],
        discriminator_terms: dict[str, float | Schedule] | None = None,
        discriminator: Callable[..., Thunks] | None = None,
    ) -> None:
        super().__init__(terms)
        self.name, self.sources = name, tuple(sources)
        self.discriminator = None if discriminator_terms is None else CompositeLoss(discriminator_terms)
        self._parts = _Parts(generator, discriminator)

    def generator_thunks(self, **inputs: object) -> Thunks:
        """One thunk per generator term from this step's tensors (see the factory's docstring)."""
        return self._parts.generator(**inputs)

    def discriminator_thunks(self, **inputs: object) -> Thunks:
        """One thunk per discriminator term from this step's tensors."""
        if self._parts.discriminator is None:
            raise ValueError(f"recipe {self.name!r} trains no discriminator")
        return self._parts.discriminator(**inputs)

    def __repr__(self) -> str:
        return f"Recipe({self.name!r}, {super().__repr__()}, discriminator={self.discriminator!r})"


def _once(fn: Callable[[], Tensor]) -> Callable[[], Tensor]:
    """A thunk that computes ``fn()`` on its first call and returns the same tensor after."""
    cache: list[Tensor] = []

    def thunk() -> Tensor:
        if not cache:
            cache.append(fn())
        return cache[0]

    return thunk


def _frames(x: Tensor) -> Tensor:
    """``(B, C, T, H, W) -> (B·T, C, H, W)``; images pass through."""
    return rearrange(x, "b c t h w -> (b t) c h w") if x.ndim == 5 else x


def _per_frame(perceptual: Perceptual, pred: Tensor, target: Tensor) -> Tensor:
    """``(N,)`` perceptual distances of the frames of ``pred`` and ``target``."""
    p, t = _frames(pred), _frames(target)
    out = perceptual(p, t)
    if not isinstance(out, Tensor) or out.numel() != p.shape[0]:
        found = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"`perceptual` must return one value per frame ({p.shape[0]},); got {found}")
    return out.reshape(-1)


def _nonsaturating_mean_logit(logits: Tensor) -> Tensor:
    """``mean_b softplus(−mean(logits_b))``: Open-MAGVIT2's and VidTok's ``non_saturate_gen_loss``
    (the sigmoid cross-entropy of each sample's mean logit against the label 1)."""
    return F.softplus(-logits.flatten(1).mean(dim=1)).mean()


def _sign(z: Tensor) -> Tensor:
    """LFQ's quantizer: ``+1`` where ``z > 0``, else ``−1``."""
    return torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))


def _random_frames(video: Tensor, index: Tensor) -> Tensor:
    """Frame ``index[b]`` of clip b: ``(B, C, T, H, W), (B,) -> (B, C, H, W)``."""
    return video[torch.arange(video.shape[0], device=video.device), :, index]


def _disc_thunk(discriminator: Discriminator, kind: str = "hinge") -> Callable[..., Thunks]:
    """The ``disc`` thunk of a recipe whose discriminator sees the whole inputs."""

    def disc(*, inputs: Tensor, reconstructions: Tensor) -> Thunks:
        return {"disc": lambda: discriminator_loss(discriminator(inputs.detach()),
                                                   discriminator(reconstructions.detach()), kind=kind)}

    return disc


def _hinge_lecam_thunks(ema: ZeroInitEMA, logits: Callable[[], Tensor]) -> Thunks:
    """``disc`` (hinge) and ``lecam`` thunks on one stacked ``(real, fake)`` logit pair; the EMAs
    take this batch's logits before the penalty (Open-MAGVIT2, VidTok)."""

    def lecam() -> Tensor:
        real, fake = logits()
        ema.update(real, fake)
        return lecam_penalty(real, fake, ema.real, ema.fake)

    return {"disc": lambda: discriminator_loss(*logits(), kind="hinge"), "lecam": lecam}


# ------------------------------------------------------------------------------------- taming


def taming_vqgan(
    *,
    perceptual: Perceptual,
    discriminator: Discriminator,
    disc_start: int = 250001,
    disc_weight: float = 0.8,
    codebook_weight: float = 1.0,
    perceptual_weight: float = 1.0,
    disc_factor: float = 1.0,
    disc_loss: str = "hinge",
    beta: float = 0.25,
) -> Recipe:
    """VQGAN (Esser et al. 2021): L1 + LPIPS + adaptive-weight hinge GAN + VQ loss.

    Generator (``VQLPIPSWithDiscriminator``, optimizer_idx 0)::

        nll   = mean|x − x̂| + perceptual_weight · mean LPIPS(x, x̂)
        d_w   = disc_weight · clamp(‖∇_W nll‖ / (‖∇_W g‖ + 1e-4), 0, 1e4)   (detached)
        g     = −mean D(x̂)
        total = nll + [step >= disc_start] · disc_factor · d_w · g + codebook_weight · q_loss
        q_loss = mean (sg[z_q] − z_e)² + β · mean (z_q − sg[z_e])²     (VectorQuantizer2, legacy=True)

    Discriminator: ``[step >= disc_start] · disc_factor · 0.5 · (mean relu(1 − D(x)) + mean
    relu(1 + D(x̂)))`` (``"vanilla"``: softplus instead of the hinges).

    Terms: ``rec``, ``perceptual`` (weight ``perceptual_weight``), ``adv`` (value ``d_w · g``),
    ``codebook`` (value ``q_loss``); discriminator term ``disc``.
    Generator inputs: ``inputs``, ``reconstructions`` ``(B, 3, H, W)``, ``z_e``, ``z_q``
    (the encoder output and its selected codes), ``last_layer`` (the decoder's last weight).
    Discriminator inputs: ``inputs``, ``reconstructions``.

    Defaults: configs/imagenet_vqgan.yaml (disc_start 250001, disc_weight 0.8, codebook_weight
    1.0; faceshq: disc_start 30001; custom: 10000); beta 0.25 from taming/models/vqgan.py.

    Source: CompVis/taming-transformers ``taming/modules/losses/vqperceptual.py``,
    ``taming/modules/vqvae/quantize.py``, ``configs/imagenet_vqgan.yaml``.
    """
    kind = {"hinge": "hinge", "vanilla": "non_saturating"}[disc_loss]

    def generator(*, inputs: Tensor, reconstructions: Tensor, z_e: Tensor, z_q: Tensor,
                  last_layer: Tensor) -> Thunks:
        rec = _once(lambda: (reconstructions - inputs).abs().mean())
        p = _once(lambda: _per_frame(perceptual, reconstructions, inputs).mean())

        def adv() -> Tensor:
            g = -discriminator(reconstructions).mean()
            nll = rec() + perceptual_weight * p()
            return disc_weight * adaptive_weight(nll, g, last_layer) * g

        return {"rec": rec, "perceptual": p, "adv": adv,
                "codebook": lambda: commitment_loss(z_e, z_q) + beta * codebook_loss(z_e, z_q)}

    return Recipe(
        {"rec": 1.0, "perceptual": perceptual_weight, "adv": Schedule(disc_factor, start=disc_start),
         "codebook": codebook_weight},
        name="taming_vqgan",
        sources=("CompVis/taming-transformers: taming/modules/losses/vqperceptual.py",
                 "CompVis/taming-transformers: taming/modules/vqvae/quantize.py",
                 "CompVis/taming-transformers: configs/imagenet_vqgan.yaml"),
        generator=generator,
        discriminator_terms={"disc": Schedule(0.5 * disc_factor, start=disc_start)},
        discriminator=_disc_thunk(discriminator, kind),
    )


# -------------------------------------------------------------------------------- Open-MAGVIT2


def open_magvit2_video(
    *,
    perceptual: Perceptual,
    discriminator: Discriminator,
    disc_start: int = 0,
    gen_loss_weight: float | None = 0.3,
    disc_weight: float = 0.8,
    lecam_loss_weight: float = 0.05,
    codebook_weight: float = 0.1,
    commit_weight: float = 0.25,
    perceptual_weight: float = 1.0,
    disc_factor: float = 1.0,
    codebook_enlarge_ratio: float = 0.0,
    codebook_enlarge_steps: int = 2000,
    temperature: float = 0.01,
    lecam_decay: float = 0.999,
) -> Recipe:
    """Open-MAGVIT2 video tokenizer (UCF-101, 128px): L1 + LPIPS per frame + non-saturating 3-D
    GAN + LFQ entropy and commitment; hinge D with LeCam.

    Generator (``video_vqperceptual.VQLPIPSWithDiscriminator``, optimizer_idx 0), clips folded
    to frames for L1 and LPIPS::

        nll     = mean|x − x̂| + perceptual_weight · mean_frames LPIPS
        g       = mean_b softplus(−mean D(x̂)_b)                       (non_saturate_gen_loss)
        entropy = mean_tokens H(q) − H(mean_tokens q), q = softmax(2 z·c / 0.01)   (LFQ)
        commit  = mean (z − sg[sign z])²
        total   = nll + [step >= disc_start] · disc_factor · gen_loss_weight · g
                  + codebook_weight · entropy + commit_weight · commit

    ``gen_loss_weight=None`` uses VQGAN's adaptive weight times ``disc_weight`` instead
    (``adv`` then holds ``d_w · g``). Discriminator: ``disc_factor · (0.5 · hinge(D(x), D(x̂)) +
    lecam_loss_weight · LeCam)``, the LeCam EMAs (decay 0.999, from 0) updated with this
    batch's logits before the penalty.

    Terms: ``rec``, ``perceptual``, ``adv``, ``entropy``, ``commitment``; discriminator
    ``disc``, ``lecam``. Generator inputs: ``inputs``, ``reconstructions`` ``(B, 3, T, H, W)``,
    ``latents`` (the LFQ input ``(B, 18, t, h, w)``), ``last_layer`` (only with
    ``gen_loss_weight=None``). Discriminator inputs: ``inputs``, ``reconstructions``.

    Defaults: configs/Open-MAGVIT2/gpu/ucf101_lfqfan_128_L.yaml (disc_start 0, gen_loss_weight
    0.3, lecam 0.05, codebook_weight 0.1, commit 0.25, enlarge ratio 0, disc_loss hinge by
    default; LFQ sample/batch weights 1.0, temperature 0.01).

    Source: TencentARC/SEED-Voken (Open-MAGVIT2's home)
    ``src/Open_MAGVIT2/modules/losses/video_vqperceptual.py``,
    ``src/Open_MAGVIT2/modules/vqvae/lookup_free_quantize.py``,
    ``configs/Open-MAGVIT2/gpu/ucf101_lfqfan_128_L.yaml``.
    """
    ema = ZeroInitEMA(lecam_decay)

    def generator(*, inputs: Tensor, reconstructions: Tensor, latents: Tensor,
                  last_layer: Tensor | None = None) -> Thunks:
        check_video("inputs", inputs)
        rec = _once(lambda: (reconstructions - inputs).abs().mean())
        p = _once(lambda: _per_frame(perceptual, reconstructions, inputs).mean())

        def adv() -> Tensor:
            g = _nonsaturating_mean_logit(discriminator(reconstructions))
            if gen_loss_weight is not None:
                return g
            nll = rec() + perceptual_weight * p()
            return disc_weight * adaptive_weight(nll, g, last_layer) * g

        return {
            "rec": rec, "perceptual": p, "adv": adv,
            "entropy": lambda: lfq_entropy_loss(latents, temperature=temperature, log="add"),
            "commitment": lambda: commitment_loss(latents, _sign(latents)),
        }

    def disc(*, inputs: Tensor, reconstructions: Tensor) -> Thunks:
        return _hinge_lecam_thunks(ema, _once(lambda: torch.stack(
            [discriminator(inputs.detach()), discriminator(reconstructions.detach())])))

    adv_weight = disc_factor * (1.0 if gen_loss_weight is None else gen_loss_weight)
    entropy_weight: float | Schedule = (
        LinearDecay(codebook_weight, codebook_enlarge_ratio, codebook_enlarge_steps)
        if codebook_enlarge_ratio > 0 else codebook_weight
    )
    d_terms: dict[str, float | Schedule] = {"disc": Schedule(0.5 * disc_factor, start=disc_start)}
    if lecam_loss_weight:
        d_terms["lecam"] = Schedule(lecam_loss_weight * disc_factor, start=disc_start)

    def disc_selected(**inputs: Tensor) -> Thunks:
        return {k: v for k, v in disc(**inputs).items() if k in d_terms}

    return Recipe(
        {"rec": 1.0, "perceptual": perceptual_weight, "adv": Schedule(adv_weight, start=disc_start),
         "entropy": entropy_weight, "commitment": commit_weight},
        name="open_magvit2_video",
        sources=("TencentARC/SEED-Voken: src/Open_MAGVIT2/modules/losses/video_vqperceptual.py",
                 "TencentARC/SEED-Voken: src/Open_MAGVIT2/modules/vqvae/lookup_free_quantize.py",
                 "TencentARC/SEED-Voken: configs/Open-MAGVIT2/gpu/ucf101_lfqfan_128_L.yaml"),
        generator=generator,
        discriminator_terms=d_terms,
        discriminator=disc_selected,
    )


# ------------------------------------------------------------------------------ magvit2-pytorch


def _magvit2_adaptive(perceptual_loss: Tensor, gen_loss: Tensor, layer: Tensor) -> Tensor:
    """magvit2-pytorch's weight: ``‖∇ perceptual‖ / max(‖∇ gen‖, 1e-3)``, at most 1e3, detached."""
    (grad_p,) = torch.autograd.grad(perceptual_loss, layer, retain_graph=True)
    (grad_g,) = torch.autograd.grad(gen_loss, layer, retain_graph=True)
    return (grad_p.detach().norm() / grad_g.detach().norm().clamp(min=1e-3)).clamp(max=1e3)


def magvit2_pytorch(
    *,
    perceptual_features: Callable[[Tensor], Tensor],
    discriminator: Discriminator,
    discr_start_after_step: int = 0,
    perceptual_loss_weight: float = 0.1,
    adversarial_loss_weight: float = 1.0,
    quantizer_aux_loss_weight: float = 1.0,
    lfq_entropy_loss_weight: float = 0.1,
    lfq_commitment_loss_weight: float = 1.0,
    lfq_diversity_gamma: float = 2.5,
    lfq_soft_clamp_input_value: float | None = 10.0,
    grad_penalty_loss_weight: float = 10.0,
    apply_gradient_penalty_every: int = 4,
) -> Recipe:
    """lucidrains' magvit2-pytorch ``VideoTokenizer``: MSE + LFQ aux + VGG feature MSE on one
    random frame + adaptive hinge GAN on one random frame; hinge D with a gradient penalty.

    Generator (``VideoTokenizer.forward(return_loss=True)``)::

        z'    = tanh(z / 10) · 10                             (LFQ's soft clamp)
        aux   = 0.1 · (mean_tokens H(q) − 2.5 · H(mean q)) + 1.0 · mean (z' − sg[sign z'])²
                q = softmax(2 z'·c / 0.01), log(max(q, 1e-5))   (vector-quantize-pytorch LFQ)
        perc  = mean (φ(x_f) − φ(x̂_f))²,   f: one random frame per clip
        g     = −mean D(x̂_f'),             f': another random frame per clip
        w     = min(‖∇_W perc‖ / max(‖∇_W g‖, 1e-3), 1e3)    (W = conv_out weight)
        total = mean (x − x̂)² + 1.0 · aux + 0.1 · perc + [step >= start] · 1.0 · w · g

    Discriminator (``return_discr_loss=True``) on one random frame per clip ``f''``:
    ``mean(relu(1 + D(x̂)) + relu(1 − D(x))) + 10 · (GP(x) + GP(x̂))`` on every 4th step
    (``GP = mean_b ‖∇_x Σ D(x)‖²``), hinge only otherwise.

    Frames are drawn with ``torch.randint(0, T, (B,), generator=generator)``: the generator's
    perceptual frames, then its GAN frames; the discriminator's frames in its own call.

    Terms: ``rec``, ``quantizer_aux``, ``perceptual``, ``adv`` (value ``w · g``); discriminator
    ``disc``, ``gradient_penalty``. Generator inputs: ``inputs``, ``reconstructions``
    ``(B, C, T, H, W)``, ``latents`` (the LFQ input, ``(B, D, t, h, w)``), ``last_layer``,
    optional ``generator``. Discriminator inputs: the same without ``latents``/``last_layer``.

    Defaults: ``VideoTokenizer.__init__`` and ``VideoTokenizerTrainer.__init__``.

    Source: lucidrains/magvit2-pytorch ``magvit2_pytorch/magvit2_pytorch.py``,
    ``magvit2_pytorch/trainer.py``; lucidrains/vector-quantize-pytorch
    ``vector_quantize_pytorch/lookup_free_quantization.py``.
    """

    def clamp(z: Tensor) -> Tensor:
        if lfq_soft_clamp_input_value is None:
            return z
        return (z / lfq_soft_clamp_input_value).tanh() * lfq_soft_clamp_input_value

    def generator(*, inputs: Tensor, reconstructions: Tensor, latents: Tensor, last_layer: Tensor,
                  generator: torch.Generator | None = None) -> Thunks:
        check_video("inputs", inputs)
        b, t = inputs.shape[0], inputs.shape[2]
        perc_index = torch.randint(0, t, (b,), generator=generator).to(inputs.device)
        gan_index = torch.randint(0, t, (b,), generator=generator).to(inputs.device)

        def perc() -> Tensor:
            return F.mse_loss(perceptual_features(_random_frames(reconstructions, perc_index)),
                              perceptual_features(_random_frames(inputs, perc_index)))

        perc = _once(perc)

        def aux() -> Tensor:
            z = clamp(latents)
            entropy = lfq_entropy_loss(z, codebook_weight=lfq_diversity_gamma, log="clamp")
            return lfq_entropy_loss_weight * entropy + lfq_commitment_loss_weight * commitment_loss(z, _sign(z))

        def adv() -> Tensor:
            g = -discriminator(_random_frames(reconstructions, gan_index)).mean()
            return _magvit2_adaptive(perc(), g, last_layer) * g

        return {"rec": lambda: F.mse_loss(reconstructions, inputs), "quantizer_aux": aux,
                "perceptual": perc, "adv": adv}

    def disc(*, inputs: Tensor, reconstructions: Tensor,
             generator: torch.Generator | None = None) -> Thunks:
        check_video("inputs", inputs)
        index = torch.randint(0, inputs.shape[2], (inputs.shape[0],), generator=generator).to(inputs.device)
        real = _random_frames(inputs, index).detach().requires_grad_()
        fake = _random_frames(reconstructions, index).detach().requires_grad_()
        logits = _once(lambda: torch.stack([discriminator(real), discriminator(fake)]))

        def penalty() -> Tensor:
            real_logits, fake_logits = logits()
            return r1_penalty(real_logits, real) + r2_penalty(fake_logits, fake)

        return {"disc": lambda: discriminator_loss(*logits(), kind="hinge"), "gradient_penalty": penalty}

    return Recipe(
        {"rec": 1.0, "quantizer_aux": quantizer_aux_loss_weight, "perceptual": perceptual_loss_weight,
         "adv": Schedule(adversarial_loss_weight, start=discr_start_after_step)},
        name="magvit2_pytorch",
        sources=("lucidrains/magvit2-pytorch: magvit2_pytorch/magvit2_pytorch.py",
                 "lucidrains/magvit2-pytorch: magvit2_pytorch/trainer.py",
                 "lucidrains/vector-quantize-pytorch: vector_quantize_pytorch/lookup_free_quantization.py"),
        generator=generator,
        discriminator_terms={
            "disc": Schedule(1.0, start=discr_start_after_step),
            "gradient_penalty": EveryK(grad_penalty_loss_weight, apply_gradient_penalty_every,
                                       start=discr_start_after_step),
        },
        discriminator=disc,
    )


# ---------------------------------------------------------------------------------- VidTok


def _nll_per_frame_sum(inputs: Tensor, reconstructions: Tensor, logvar: Tensor | float,
                       p: Tensor, perceptual_weight: float) -> Tensor:
    """``sum(nll) / N`` over the ``N`` frames (LDM's ``torch.sum(nll) / nll.shape[0]`` after the
    clips are folded to frames)."""
    pred, target = _frames(reconstructions), _frames(inputs)
    nll = logvar_nll_loss(pred, target, logvar, perceptual=p, perceptual_weight=perceptual_weight,
                          reduction="sum")
    return nll / pred.shape[0]


def vidtok_kl(
    *,
    perceptual: Perceptual,
    discriminator: Discriminator,
    disc_start: int = 20001,
    disc_weight: float = 0.2,
    kl_weight: float = 1e-6,
    perceptual_weight: float = 1.0,
    lecam_loss_weight: float = 0.005,
    disc_factor: float = 1.0,
    lecam_decay: float = 0.999,
) -> Recipe:
    """VidTok (continuous, KL): learned-variance NLL over frames + KL + adaptive non-saturating
    2-D (per-frame) GAN; hinge D with LeCam.

    Generator (``GeneralLPIPSWithDiscriminator``, dims=3, disc_type 2d), clips folded to N = B·T
    frames::

        nll   = Σ [(|x − x̂| + perceptual_weight · LPIPS_frame) / exp(s) + s] / N   (s: logvar)
        kl    = Σ 0.5 (μ² + σ² − 1 − log σ²) / B            (log σ² clamped to [-30, 20])
        g     = mean_frames softplus(−mean D(x̂_frame))      (gen_loss_cross_entropy)
        d_w   = disc_weight · clamp(‖∇_W nll‖ / (‖∇_W g‖ + 1e-4), 0, 1e4)
        total = nll + [step >= disc_start] · disc_factor · d_w · g + kl_weight · kl

    Discriminator: ``disc_factor · (0.5 · hinge + lecam_loss_weight · LeCam)`` on frames, the
    LeCam EMAs (decay 0.999, from 0) updated before the penalty.

    Terms: ``nll``, ``kl``, ``adv`` (value ``d_w · g``); discriminator ``disc``, ``lecam``.
    Generator inputs: ``inputs``, ``reconstructions`` ``(B, 3, T, H, W)``, ``posterior_mean``,
    ``posterior_logvar``, ``logvar`` (the learned 0-d parameter), ``last_layer``.
    Discriminator inputs: ``inputs``, ``reconstructions``.

    Defaults: configs/vidtok_kl_causal_488_4chn.yaml (perceptual 1.0, disc_start 20001,
    disc_weight 0.2, 2d discriminator, learn_logvar, gen_loss_cross_entropy, lecam 0.005,
    kl_loss 1e-6).

    Source: microsoft/VidTok ``vidtok/modules/losses.py``, ``vidtok/modules/regularizers.py``,
    ``configs/vidtok_kl_causal_488_4chn.yaml``.
    """
    ema = ZeroInitEMA(lecam_decay)

    def generator(*, inputs: Tensor, reconstructions: Tensor, posterior_mean: Tensor,
                  posterior_logvar: Tensor, logvar: Tensor, last_layer: Tensor) -> Thunks:
        check_video("inputs", inputs)
        nll = _once(lambda: _nll_per_frame_sum(
            inputs, reconstructions, logvar, _per_frame(perceptual, reconstructions, inputs),
            perceptual_weight))

        def adv() -> Tensor:
            g = _nonsaturating_mean_logit(discriminator(_frames(reconstructions)))
            return disc_weight * adaptive_weight(nll(), g, last_layer) * g

        return {"nll": nll, "kl": lambda: diagonal_gaussian_kl(posterior_mean, posterior_logvar),
                "adv": adv}

    def disc(*, inputs: Tensor, reconstructions: Tensor) -> Thunks:
        return _hinge_lecam_thunks(ema, _once(lambda: torch.stack(
            [discriminator(_frames(inputs).detach()), discriminator(_frames(reconstructions).detach())])))

    return Recipe(
        {"nll": 1.0, "kl": kl_weight, "adv": Schedule(disc_factor, start=disc_start)},
        name="vidtok_kl",
        sources=("microsoft/VidTok: vidtok/modules/losses.py",
                 "microsoft/VidTok: vidtok/modules/regularizers.py",
                 "microsoft/VidTok: configs/vidtok_kl_causal_488_4chn.yaml"),
        generator=generator,
        discriminator_terms={"disc": Schedule(0.5 * disc_factor, start=disc_start),
                             "lecam": Schedule(lecam_loss_weight * disc_factor, start=disc_start)},
        discriminator=disc,
    )


# ---------------------------------------------------------------------------------- WF-VAE


def wf_vae(
    *,
    perceptual: Perceptual,
    discriminator: Discriminator,
    disc_start: int = 0,
    disc_weight: float = 0.5,
    kl_weight: float = 1e-6,
    perceptual_weight: float = 1.0,
    wavelet_weight: float = 0.1,
    disc_factor: float = 1.0,
) -> Recipe:
    """WF-VAE: learned-variance NLL over frames + KL + wavelet-coefficient L1 + adaptive 3-D GAN.

    Generator (``LPIPSWithDiscriminator3D``, loss_type l1, logvar fixed at 0 unless learned),
    clips folded to N = B·T frames::

        nll   = Σ [(|x − x̂| + perceptual_weight · LPIPS_frame) / exp(s) + s] / N
        kl    = Σ 0.5 (μ² + σ² − 1 − log σ²) / B
        wl    = Σ|c₀ − c₁| / B + Σ|c₂ − c₃| / B      (the model's paired wavelet coefficients)
        g     = −mean D(x̂)                          (3-D discriminator on clips)
        d_w   = disc_weight · clamp(‖∇_W nll‖ / (‖∇_W g‖ + 1e-6), 0, 1e6)
        total = nll + kl_weight · kl + [step >= disc_start] · disc_factor · d_w · g + wavelet_weight · wl

    Discriminator: ``[step >= disc_start] · disc_factor · 0.5 · hinge(D(x), D(x̂))``.

    The wavelet term compares coefficients the WF-VAE model itself emits (``extra_output``:
    its encoder's and decoder's level-2 and level-3 subbands), so it takes them as an input;
    :func:`genloss.wavelet_loss` is the pixel-space counterpart for other models.

    Terms: ``nll``, ``kl``, ``wavelet``, ``adv`` (value ``d_w · g``); discriminator ``disc``.
    Generator inputs: ``inputs``, ``reconstructions`` ``(B, 3, T, H, W)``, ``posterior_mean``,
    ``posterior_logvar``, ``wavelet_coeffs`` (4 tensors, or None: no wavelet term, as the
    reference), ``last_layer``, optional ``logvar`` (default 0). Discriminator inputs:
    ``inputs``, ``reconstructions``.

    Defaults: train_ddp.py's arguments (disc_weight 0.5, kl_weight 1e-6, perceptual 1.0,
    loss_type l1, logvar_init 0, wavelet_weight 0.1) and examples/train_ddp.sh (disc_start 0).

    Source: PKU-YuanGroup/WF-VAE ``causalvideovae/model/losses/perceptual_loss.py``
    (``LPIPSWithDiscriminator3D``), ``train_ddp.py``, ``examples/train_ddp.sh``.
    """

    def generator(*, inputs: Tensor, reconstructions: Tensor, posterior_mean: Tensor,
                  posterior_logvar: Tensor, wavelet_coeffs: Sequence[Tensor] | None,
                  last_layer: Tensor, logvar: Tensor | float = 0.0) -> Thunks:
        check_video("inputs", inputs)
        b = inputs.shape[0]
        nll = _once(lambda: _nll_per_frame_sum(
            inputs, reconstructions, logvar, _per_frame(perceptual, reconstructions, inputs),
            perceptual_weight))

        def wavelet() -> Tensor:
            if not wavelet_coeffs:
                return inputs.new_zeros(())
            if len(wavelet_coeffs) != 4:
                raise ValueError(f"`wavelet_coeffs` must hold 4 tensors; got {len(wavelet_coeffs)}")
            c = wavelet_coeffs
            return (c[0] - c[1]).abs().sum() / b + (c[2] - c[3]).abs().sum() / b

        def adv() -> Tensor:
            g = -discriminator(reconstructions).mean()
            return disc_weight * adaptive_weight(nll(), g, last_layer, eps=1e-6, max_weight=1e6) * g

        return {"nll": nll, "kl": lambda: diagonal_gaussian_kl(posterior_mean, posterior_logvar),
                "wavelet": wavelet, "adv": adv}

    return Recipe(
        {"nll": 1.0, "kl": kl_weight, "wavelet": wavelet_weight,
         "adv": Schedule(disc_factor, start=disc_start)},
        name="wf_vae",
        sources=("PKU-YuanGroup/WF-VAE: causalvideovae/model/losses/perceptual_loss.py",
                 "PKU-YuanGroup/WF-VAE: train_ddp.py",
                 "PKU-YuanGroup/WF-VAE: examples/train_ddp.sh"),
        generator=generator,
        discriminator_terms={"disc": Schedule(0.5 * disc_factor, start=disc_start)},
        discriminator=_disc_thunk(discriminator),
    )


# ---------------------------------------------------------------------------------- Cosmos


def cosmos_continuous(
    *,
    features: Callable[[Tensor], Sequence[Tensor]],
    layer_weights: Sequence[float] = COSMOS_LAYER_WEIGHTS,
    color_weight: float = 1.0,
    kl_weight: float = 1e-6,
    perceptual_boundaries: Sequence[int] = (500000,),
    perceptual_values: Sequence[float] = (0.1, 0.073),
    gram_boundaries: Sequence[int] = (500000,),
    gram_values: Sequence[float] = (0.0, 0.062),
) -> Recipe:
    """NVIDIA Cosmos continuous video tokenizer: L1 + KL + VGG-feature L1 + temporal Gram.

    ``TokenizerLoss`` with ``reduce="MEAN"`` (every term a mean), clips ``(B, 3, T, H, W)``::

        color = mean|x − x̂|
        kl    = mean 0.5 (μ² + σ² − 1 − log σ²)                         (elementwise mean, no clamp)
        lpips = mean_frames Σ_k w_k mean|φ_k(x) − φ_k(x̂)|             (raw VGG16 features, no lin)
        gram  = mean_clips Σ_k w_k mean (G(φ_k(x)) − G(φ_k(x̂)))²,  G = temporal Gram F Fᵀ/(T h w)
        total = 1.0 · color + 1e-6 · kl + λ_lpips(step) · lpips + λ_gram(step) · gram

    with ``λ_lpips = 0.1`` before step 500000 and 0.073 after, ``λ_gram = 0`` before and 0.062
    after (``WeightScheduler``: ``values[i]`` while ``step < boundaries[i]``), ``w`` =
    ``(1/2.6, 1/4.8, 1/3.7, 1/5.6, 10/1.5)``. Images use the per-image Gram ``F Fᵀ/(h w)``.
    Flow and overlapping-window consistency are off in the released default (``enabled=False``);
    the released code has no GAN term.

    Terms: ``color``, ``kl``, ``perceptual``, ``gram``. Generator inputs: ``inputs``,
    ``reconstructions``, ``posterior_mean``, ``posterior_logvar``. ``features`` maps frames
    ``(N, 3, H, W)`` in [-1, 1] to the 5 VGG16 maps (relu1_2 .. relu5_3) after Cosmos's LPIPS
    scaling layer.

    Source: nvidia-cosmos/cosmos-predict1 ``cosmos_predict1/tokenizer/training/losses/continuous.py``,
    ``cosmos_predict1/tokenizer/training/configs/base/loss.py``.
    """
    weights = [float(w) for w in layer_weights]

    def generator(*, inputs: Tensor, reconstructions: Tensor, posterior_mean: Tensor,
                  posterior_logvar: Tensor) -> Thunks:
        def maps() -> tuple[list[Tensor], list[Tensor]]:
            fx, fr = list(features(_frames(inputs))), list(features(_frames(reconstructions)))
            if len(fx) != len(weights) or len(fr) != len(weights):
                raise ValueError(f"`features` must return {len(weights)} maps (one per layer weight); "
                                 f"got {len(fx)} and {len(fr)}")
            return fx, fr

        cached = _once(lambda: maps())  # type: ignore[arg-type, return-value]

        def perceptual() -> Tensor:
            fx, fr = cached()
            return sum(w * (a - b).abs().mean() for w, a, b in zip(weights, fx, fr))

        def gram() -> Tensor:
            fx, fr = cached()
            total = inputs.new_zeros(())
            for w, a, b in zip(weights, fx, fr):
                if inputs.ndim == 5:
                    fold = "(b t) c h w -> b c t h w"
                    a = rearrange(a, fold, b=inputs.shape[0])
                    b = rearrange(b, fold, b=inputs.shape[0])
                total = total + w * gram_loss(a, b, temporal=inputs.ndim == 5)
            return total

        def kl() -> Tensor:
            return diagonal_gaussian_kl(posterior_mean, posterior_logvar, clamp=None,
                                        reduction="sum") / posterior_mean.numel()

        return {"color": lambda: (reconstructions - inputs).abs().mean(), "kl": kl,
                "perceptual": perceptual, "gram": gram}

    return Recipe(
        {"color": color_weight, "kl": kl_weight,
         "perceptual": Piecewise(perceptual_boundaries, perceptual_values),
         "gram": Piecewise(gram_boundaries, gram_values)},
        name="cosmos_continuous",
        sources=("nvidia-cosmos/cosmos-predict1: cosmos_predict1/tokenizer/training/losses/continuous.py",
                 "nvidia-cosmos/cosmos-predict1: cosmos_predict1/tokenizer/training/configs/base/loss.py"),
        generator=generator,
    )


# ----------------------------------------------------------------------------- OmniTokenizer


def omnitokenizer(
    *,
    perceptual: Perceptual,
    image_discriminator: Callable[[Tensor], tuple[Tensor, Sequence[Tensor]]],
    video_discriminator: Callable[[Tensor], tuple[Tensor, Sequence[Tensor]]],
    discriminator_iter_start: int = 0,
    l1_weight: float = 4.0,
    perceptual_weight: float = 4.0,
    image_gan_weight: float = 0.01,
    video_gan_weight: float = 1.0,
    gan_feat_weight: float = 4.0,
    commitment_weight: float = 1.0,
) -> Recipe:
    """OmniTokenizer (stage 1, VQ): 4·L1 + VQ commitment + 4·LPIPS on one random frame + image
    and video hinge GANs with discriminator feature matching.

    Generator (``OmniTokenizer.forward``, optimizer_idx 0; ``f`` one random frame per clip)::

        rec   = 4 · mean|x̂ − x|
        perc  = 4 · mean LPIPS(x_f, x̂_f)
        g     = 0.01 · (−mean D_img(x̂_f)) + 1.0 · (−mean D_vid(x̂))
        fm    = Σ_{i < n−1} mean|D_img,i(x̂_f) − sg D_img,i(x_f)| + Σ_{i < n−1} mean|D_vid,i(x̂) − sg D_vid,i(x)|
        total = rec + commitment · mean(z_e − sg z_q)² + perc + [step >= start] · (g + 4 · fm)

    (``feat_weights = 4 / (3 + 1) = 1``; the image part of ``fm`` only while
    ``image_gan_weight > 0``.) Discriminator:
    ``[step >= start] · (0.01 · 0.5 · hinge_img + 1.0 · 0.5 · hinge_vid)``.
    The codebook itself is EMA-updated by vector-quantize-pytorch: no codebook loss term.

    Stage 2 (joint image/video): ``image_gan_weight=0``, ``video_gan_weight=0.01``.

    Terms: ``rec``, ``commitment``, ``perceptual``, ``adv_image``, ``adv_video``,
    ``feature_matching``; discriminator ``disc_image``, ``disc_video``. Generator inputs:
    ``inputs``, ``reconstructions`` ``(B, 3, T, H, W)``, ``z_e``, ``z_q`` (the vectors the
    quantizer compares: l2-normalised with ``--l2_code``), optional ``generator`` for the frame
    draw ``torch.randint(0, T, (B,))``. Discriminator inputs: ``inputs``, ``reconstructions``,
    optional ``generator``. Each discriminator returns ``(logits, [features...])``.

    Defaults: scripts/recons/train.sh stage 1 (perceptual 4, image_gan 0.01, video_gan 1,
    gan_feat 4, discriminator_iter_start 0, commitment 1.0), ``l1_weight`` 4.0 from
    OmniTokenizer/base.py.

    Source: FoundationVision/OmniTokenizer ``OmniTokenizer/omnitokenizer.py``,
    ``OmniTokenizer/base.py``, ``scripts/recons/train.sh``.
    """
    feat_weight = 4.0 / (3 + 1)

    def frame_index(inputs: Tensor, generator: torch.Generator | None) -> Tensor:
        check_video("inputs", inputs)
        return torch.randint(0, inputs.shape[2], (inputs.shape[0],), generator=generator).to(inputs.device)

    def generator(*, inputs: Tensor, reconstructions: Tensor, z_e: Tensor, z_q: Tensor,
                  generator: torch.Generator | None = None) -> Thunks:
        index = frame_index(inputs, generator)
        frames, frames_rec = _random_frames(inputs, index), _random_frames(reconstructions, index)
        image_fake = _once(lambda: image_discriminator(frames_rec))
        video_fake = _once(lambda: video_discriminator(reconstructions))

        def matching() -> Tensor:
            total = inputs.new_zeros(())
            pairs = [(image_fake()[1], image_discriminator(frames)[1])] if image_gan_weight > 0 else []
            pairs.append((video_fake()[1], video_discriminator(inputs)[1]))
            for fake_feats, real_feats in pairs:
                for fake, real in list(zip(fake_feats, real_feats))[:-1]:
                    total = total + feat_weight * (fake - real.detach()).abs().mean()
            return total

        return {
            "rec": lambda: (reconstructions - inputs).abs().mean(),
            "commitment": lambda: commitment_loss(z_e, z_q),
            "perceptual": lambda: _per_frame(perceptual, frames_rec, frames).mean(),
            "adv_image": lambda: -image_fake()[0].mean(),
            "adv_video": lambda: -video_fake()[0].mean(),
            "feature_matching": matching,
        }

    def disc(*, inputs: Tensor, reconstructions: Tensor,
             generator: torch.Generator | None = None) -> Thunks:
        index = frame_index(inputs, generator)
        frames, frames_rec = _random_frames(inputs, index), _random_frames(reconstructions, index)
        return {
            "disc_image": lambda: discriminator_loss(image_discriminator(frames.detach())[0],
                                                     image_discriminator(frames_rec.detach())[0]),
            "disc_video": lambda: discriminator_loss(video_discriminator(inputs.detach())[0],
                                                     video_discriminator(reconstructions.detach())[0]),
        }

    start = discriminator_iter_start
    return Recipe(
        {"rec": l1_weight, "commitment": commitment_weight, "perceptual": perceptual_weight,
         "adv_image": Schedule(image_gan_weight, start=start),
         "adv_video": Schedule(video_gan_weight, start=start),
         "feature_matching": Schedule(gan_feat_weight, start=start)},
        name="omnitokenizer",
        sources=("FoundationVision/OmniTokenizer: OmniTokenizer/omnitokenizer.py",
                 "FoundationVision/OmniTokenizer: OmniTokenizer/base.py",
                 "FoundationVision/OmniTokenizer: scripts/recons/train.sh"),
        generator=generator,
        discriminator_terms={"disc_image": Schedule(0.5 * image_gan_weight, start=start),
                             "disc_video": Schedule(0.5 * video_gan_weight, start=start)},
        discriminator=disc,
    )


"""Adversarial losses: the discriminator's and the generator's objective for five GAN kinds.

Logits may have any shape ``(B, ...)``: one logit per sample, a PatchGAN map ``(B, 1, h, w)``,
per-frame logits ``(B, T)`` or a video patch map ``(B, 1, t, h, w)``. Each sample's value is the
mean over its logits; ``"mean"`` averages samples, so for equally sized samples it is the mean
over all logits, as in the formulas below (r = real logits, f = fake logits)::

    kind              discriminator                                generator
    hinge             mean(relu(1 - r)) + mean(relu(1 + f))        -mean(f)
    non_saturating    mean(softplus(-r)) + mean(softplus(f))       mean(softplus(-f))
    lsgan             0.5 mean((r - 1)^2) + 0.5 mean(f^2)          0.5 mean((f - 1)^2)
    wgan              mean(f) - mean(r)                            -mean(f)
    relativistic      mean(softplus(f - r))                        mean(softplus(r - f))

``non_saturating`` is binary cross-entropy on logits: ``softplus(-r)`` is
``binary_cross_entropy_with_logits(r, 1)`` and ``softplus(f)`` is ``...(f, 0)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import (
    check_choice,
    check_logits,
    check_reduction,
    check_same_shape,
    per_sample_mean,
    reduce_per_sample,
    reduce_real_fake,
)

__all__ = ["KINDS", "AdversarialLoss", "discriminator_loss", "generator_loss"]

KINDS = ("hinge", "non_saturating", "lsgan", "wgan", "relativistic")


def _check_pair(real_logits: Tensor, fake_logits: Tensor, kind: str) -> None:
    if kind == "relativistic":
        check_same_shape("real_logits", real_logits, "fake_logits", fake_logits)


def discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, *, kind: str = "hinge", reduction: str = "mean"
) -> Tensor:
    """The discriminator's adversarial loss for ``kind`` (table in the module docstring).

    Args:
        real_logits: ``(B, ...)`` discriminator outputs on real samples.
        fake_logits: ``(B', ...)`` outputs on generated samples (pass them detached from the
            generator). ``"relativistic"`` pairs them, so it needs the same shape.
        kind: ``"hinge"`` | ``"non_saturating"`` | ``"lsgan"`` | ``"wgan"`` | ``"relativistic"``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``, needs ``B == B'``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    References: hinge — Lim & Ye 2017, Miyato et al. 2018; non-saturating — Goodfellow et al.
    2014; LSGAN — Mao et al. 2017; WGAN — Arjovsky et al. 2017; relativistic pairing (RpGAN) —
    Jolicoeur-Martineau 2019, Huang et al. 2024 ("The GAN is dead; long live the GAN!").
    """
    check_choice("kind", kind, KINDS)
    check_reduction(reduction)
    r = check_logits("real_logits", real_logits)
    f = check_logits("fake_logits", fake_logits)
    _check_pair(r, f, kind)
    if kind == "relativistic":
        return reduce_per_sample(per_sample_mean(F.softplus(f - r)), reduction)
    if kind == "hinge":
        real_term, fake_term = F.relu(1 - r), F.relu(1 + f)
    elif kind == "non_saturating":
        real_term, fake_term = F.softplus(-r), F.softplus(f)
    elif kind == "lsgan":
        real_term, fake_term = 0.5 * (r - 1).square(), 0.5 * f.square()
    else:  # wgan
        real_term, fake_term = -r, f
    return reduce_real_fake(per_sample_mean(real_term), per_sample_mean(fake_term), reduction)


def generator_loss(
    fake_logits: Tensor,
    *,
    kind: str = "hinge",
    real_logits: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """The generator's adversarial loss for ``kind`` (table in the module docstring).

    Args:
        fake_logits: ``(B, ...)`` discriminator outputs on generated samples.
        kind: ``"hinge"`` | ``"non_saturating"`` | ``"lsgan"`` | ``"wgan"`` | ``"relativistic"``.
        real_logits: ``(B, ...)`` outputs on real samples; required by ``"relativistic"`` (same
            shape as ``fake_logits``), ignored by the other kinds.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.
    """
    check_choice("kind", kind, KINDS)
    check_reduction(reduction)
    f = check_logits("fake_logits", fake_logits)
    if kind == "relativistic":
        if real_logits is None:
            raise ValueError(
                "kind='relativistic' compares each fake with a real sample: pass `real_logits` "
                f"with the same shape as `fake_logits` {tuple(f.shape)}"
            )
        r = check_logits("real_logits", real_logits)
        _check_pair(r, f, kind)
        elementwise = F.softplus(r - f)
    elif kind == "hinge" or kind == "wgan":
        elementwise = -f
    elif kind == "non_saturating":
        elementwise = F.softplus(-f)
    else:  # lsgan
        elementwise = 0.5 * (f - 1).square()
    return reduce_per_sample(per_sample_mean(elementwise), reduction)


class AdversarialLoss(nn.Module):
    """Stores a GAN ``kind`` and ``reduction``; call :meth:`discriminator` or :meth:`generator`.

    ``forward(fake_logits, real_logits=None)`` is the generator loss, so the module drops in
    where a single generator criterion is expected.

    Example:
        >>> adv = AdversarialLoss("hinge")
        >>> d_loss = adv.discriminator(D(real), D(fake.detach()))
        >>> g_loss = adv.generator(D(fake))
    """

    def __init__(self, kind: str = "hinge", reduction: str = "mean") -> None:
        super().__init__()
        check_choice("kind", kind, KINDS)
        check_reduction(reduction)
        self.kind = kind
        self.reduction = reduction

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return discriminator_loss(
            real_logits, fake_logits, kind=self.kind, reduction=self.reduction
        )

    def generator(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return generator_loss(
            fake_logits, kind=self.kind, real_logits=real_logits, reduction=self.reduction
        )

    def forward(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return self.generator(fake_logits, real_logits)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, reduction={self.reduction!r}"

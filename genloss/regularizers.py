"""Discriminator regularizers and the VQGAN adaptive weight.

Gradient penalties differentiate the discriminator's output with respect to its input and keep
the graph (``create_graph=True``), so the penalty itself back-propagates into the discriminator's
weights. The squared norms are computed in float32 with autocast disabled, whatever precision the
discriminator ran in.

Mixed precision with a ``GradScaler`` (float16): the inner ``autograd.grad`` runs the backward
through float16 activations, where small gradients underflow to 0. Pass the scaler's current
scale as ``grad_scale``; the penalty differentiates ``grad_scale * sum(D(x))`` and divides the
gradient by ``grad_scale`` in float32 before squaring (the recipe of PyTorch's AMP notes)::

    scaler = torch.amp.GradScaler("cuda")
    x = real.detach().requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.float16):
        logits = D(x)
    r1 = gl.r1_penalty(logits, x, grad_scale=scaler.get_scale())
    loss = gl.discriminator_loss(logits, D(fake.detach())) + gamma / 2 * r1
    scaler.scale(loss).backward()
    scaler.step(opt_d)
    scaler.update()
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._checks import (
    at_least_float32,
    check_float_tensor,
    check_ndim,
    check_reduction,
    check_same_shape,
    per_sample_mean,
    reduce_per_sample,
    reduce_real_fake,
)

__all__ = [
    "LazyRegularizer",
    "LeCamEMA",
    "adaptive_weight",
    "gradient_penalty",
    "lecam_penalty",
    "r1_penalty",
    "r2_penalty",
]


def _squared_grad_norm(
    logits: Tensor, inputs: Tensor, logits_name: str, inputs_name: str, grad_scale: float | None
) -> Tensor:
    """Per-sample ``||d sum(logits) / d inputs||^2`` in float32, graph kept: ``(B,)``."""
    check_float_tensor(logits_name, logits)
    check_float_tensor(inputs_name, inputs)
    check_ndim(inputs_name, inputs, range(2, 9), "(B, ...) batch")
    if not inputs.requires_grad:
        raise ValueError(
            f"`{inputs_name}` must require grad and be the tensor the discriminator was called "
            f"on: use `x = x.detach().requires_grad_(True)` before computing `{logits_name}`"
        )
    if logits.shape[:1] != inputs.shape[:1]:
        raise ValueError(
            f"`{logits_name}` and `{inputs_name}` must have the same batch size; "
            f"got shapes {tuple(logits.shape)} and {tuple(inputs.shape)}"
        )
    # Summing in float32 keeps an fp16 sum of many patch logits from overflowing.
    total = at_least_float32(logits).sum()
    if grad_scale is not None:
        total = total * grad_scale
    (grad,) = torch.autograd.grad(total, inputs, create_graph=True)
    with torch.autocast(device_type=inputs.device.type, enabled=False):
        grad = at_least_float32(grad)
        if grad_scale is not None:
            grad = grad / grad_scale
        return grad.square().flatten(1).sum(dim=1)


def r1_penalty(
    real_logits: Tensor,
    real_inputs: Tensor,
    *,
    grad_scale: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """R1 gradient penalty on real samples.

    ``R1(x) = ||grad_x sum D(x)||^2`` per sample, the squared entries summed over every non-batch
    dimension. The caller multiplies by ``gamma / 2``.

    Args:
        real_logits: ``(B, ...)`` discriminator outputs, computed from ``real_inputs``.
        real_inputs: ``(B, C, H, W)`` or ``(B, C, T, H, W)`` with ``requires_grad=True``.
        grad_scale: a ``GradScaler``'s current scale under float16 autocast (module docstring).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar (float32 or wider), or ``(B,)`` for ``"none"``; differentiable w.r.t. the discriminator.

    Reference: Mescheder, Geiger, Nowozin, "Which Training Methods for GANs do actually
    Converge?", ICML 2018.
    """
    check_reduction(reduction)
    per_sample = _squared_grad_norm(real_logits, real_inputs, "real_logits", "real_inputs", grad_scale)
    return reduce_per_sample(per_sample, reduction)


def r2_penalty(
    fake_logits: Tensor,
    fake_inputs: Tensor,
    *,
    grad_scale: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """R2 gradient penalty: :func:`r1_penalty` on generated samples.

    ``R2(x~) = ||grad_x~ sum D(x~)||^2`` per sample. Detach the generated samples and set
    ``requires_grad`` on them before calling the discriminator.

    Reference: Mescheder et al. 2018; Huang et al., "The GAN is dead; long live the GAN! A Modern
    Baseline GAN" (R3GAN), NeurIPS 2024.
    """
    check_reduction(reduction)
    per_sample = _squared_grad_norm(fake_logits, fake_inputs, "fake_logits", "fake_inputs", grad_scale)
    return reduce_per_sample(per_sample, reduction)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """WGAN-GP gradient penalty on random interpolates.

    ``x^ = a real + (1 - a) fake`` with ``a ~ U(0, 1)`` per sample, and
    ``GP = mean((||grad_x^ critic(x^)||_2 - 1)^2)``.

    Args:
        critic: the critic; called once on ``x^``.
        real: ``(B, ...)`` real samples.
        fake: generated samples, same shape (detached from the generator here).
        generator: optional ``torch.Generator`` for the interpolation weights.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A float32 scalar, or ``(B,)`` for ``"none"``; the caller scales it (lambda = 10).

    Reference: Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
    """
    check_reduction(reduction)
    check_float_tensor("real", real)
    check_float_tensor("fake", fake)
    check_ndim("real", real, range(2, 9), "(B, ...) batch")
    check_same_shape("real", real, "fake", fake)
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    device = real.device if generator is None else generator.device
    a = torch.rand(shape, generator=generator, device=device).to(real.device, real.dtype)
    interpolates = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    squared = _squared_grad_norm(critic(interpolates), interpolates, "critic(x^)", "x^", None)
    # sqrt has an infinite derivative at 0; a zero gradient norm is (0 - 1)^2 = 1 either way.
    norm = squared.clamp_min(1e-12).sqrt()
    return reduce_per_sample((norm - 1).square(), reduction)


def lecam_penalty(
    real_logits: Tensor,
    fake_logits: Tensor,
    ema_real: Tensor | float,
    ema_fake: Tensor | float,
    *,
    reduction: str = "mean",
) -> Tensor:
    """LeCam regularizer: keep the discriminator's outputs near their moving averages.

    ``R_LC = mean(relu(r - ema_fake)^2) + mean(relu(ema_real - f)^2)``, where ``ema_real`` and
    ``ema_fake`` are exponential moving averages of the mean real and fake logits (see
    :class:`LeCamEMA`). The caller scales it (lambda ~ 0.3 in the paper with hinge loss).

    Args:
        real_logits: ``(B, ...)`` logits on real samples.
        fake_logits: ``(B', ...)`` logits on generated samples.
        ema_real: EMA of the real logits (a float or 0-d tensor, no gradient).
        ema_fake: EMA of the fake logits.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``, needs ``B == B'``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Tseng et al., "Regularizing Generative Adversarial Networks under Limited Data",
    CVPR 2021.
    """
    check_reduction(reduction)
    r = check_float_tensor("real_logits", real_logits)
    f = check_float_tensor("fake_logits", fake_logits)
    for name, ema in (("ema_real", ema_real), ("ema_fake", ema_fake)):
        if isinstance(ema, Tensor) and ema.numel() != 1:
            raise ValueError(f"`{name}` must be a scalar; got shape {tuple(ema.shape)}")
    ema_real = torch.as_tensor(ema_real, dtype=r.dtype, device=r.device).detach().reshape(())
    ema_fake = torch.as_tensor(ema_fake, dtype=f.dtype, device=f.device).detach().reshape(())
    real_term = per_sample_mean(torch.relu(r - ema_fake).square())
    fake_term = per_sample_mean(torch.relu(ema_real - f).square())
    return reduce_real_fake(real_term, fake_term, reduction)


class LeCamEMA(nn.Module):
    """Exponential moving averages of the mean real and fake logits for :func:`lecam_penalty`.

    ``ema <- decay * ema + (1 - decay) * mean(logits)``, updated without a device sync. The first
    update copies the means, so the averages start where the logits are rather than at 0. The
    averages are buffers: they follow ``.to(device)`` and are saved in ``state_dict()``.

    Example:
        >>> ema = LeCamEMA(decay=0.99)
        >>> ema.update(real_logits, fake_logits)
        >>> reg = lecam_penalty(real_logits, fake_logits, ema.ema_real, ema.ema_fake)
    """

    ema_real: Tensor
    ema_fake: Tensor
    initialized: Tensor

    def __init__(self, decay: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`decay` must be in [0, 1); got {decay!r}")
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, real_logits: Tensor, fake_logits: Tensor) -> None:
        """Fold the batch means of ``real_logits`` and ``fake_logits`` into the averages."""
        check_float_tensor("real_logits", real_logits)
        check_float_tensor("fake_logits", fake_logits)
        # decay 0 on the first update, without branching on a device value.
        decay = self.initialized.float() * self.decay
        self.ema_real.lerp_(real_logits.detach().float().mean(), 1 - decay)
        self.ema_fake.lerp_(fake_logits.detach().float().mean(), 1 - decay)
        self.initialized.fill_(True)

    def forward(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The LeCam penalty against the current averages (call :meth:`update` separately)."""
        return lecam_penalty(real_logits, fake_logits, self.ema_real, self.ema_fake)

    def extra_repr(self) -> str:
        return f"decay={self.decay}"


def adaptive_weight(
    reconstruction_loss: Tensor,
    generator_loss: Tensor,
    last_layer_weight: Tensor,
    *,
    eps: float = 1e-4,
    max_weight: float = 1e4,
) -> Tensor:
    """VQGAN's adaptive weight for the adversarial term.

    ``lambda = ||grad_W L_rec|| / (||grad_W L_gen|| + eps)``, clamped to ``[0, max_weight]`` and
    detached, with ``W`` the generator's last layer weight: the adversarial gradient at the output
    is scaled to the size of the reconstruction gradient. Both graphs are kept for the backward.

    Args:
        reconstruction_loss: scalar reconstruction (or perceptual + reconstruction) loss.
        generator_loss: scalar adversarial generator loss.
        last_layer_weight: the weight tensor both losses depend on.
        eps: keeps the ratio finite when the adversarial gradient vanishes.
        max_weight: upper clamp.

    Returns:
        A detached float32 scalar.

    Reference: Esser, Rombach, Ommer, "Taming Transformers for High-Resolution Image Synthesis",
    CVPR 2021, eq. 7.
    """
    for name, loss in (("reconstruction_loss", reconstruction_loss), ("generator_loss", generator_loss)):
        check_float_tensor(name, loss)
        if loss.ndim != 0:
            raise ValueError(f"`{name}` must be a scalar (0-d) loss; got shape {tuple(loss.shape)}")
    check_float_tensor("last_layer_weight", last_layer_weight)
    if not last_layer_weight.requires_grad:
        raise ValueError("`last_layer_weight` must require grad (a parameter both losses depend on)")
    (rec_grad,) = torch.autograd.grad(reconstruction_loss, last_layer_weight, retain_graph=True)
    (gen_grad,) = torch.autograd.grad(generator_loss, last_layer_weight, retain_graph=True)
    weight = at_least_float32(rec_grad).norm() / (at_least_float32(gen_grad).norm() + eps)
    return weight.clamp(0.0, max_weight).detach()


class LazyRegularizer:
    """Apply a regularizer every ``interval`` steps with gain ``interval`` (lazy regularization).

    On due steps ``reg(step, fn)`` returns ``interval * fn()``; on the others it returns ``None``
    and ``fn`` is not called, so the extra backward pass is skipped. On average this matches
    applying ``fn()`` every step, at ``1 / interval`` of the cost.

    Example:
        >>> lazy_r1 = LazyRegularizer(interval=16)
        >>> reg = lazy_r1(step, lambda: gamma / 2 * r1_penalty(D(x), x))
        >>> if reg is not None:
        ...     reg.backward()

    Reference: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020,
    section 3.1.
    """

    def __init__(self, interval: int = 16) -> None:
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise ValueError(f"`interval` must be a positive int; got {interval!r}")
        self.interval = interval

    def due(self, step: int) -> bool:
        """Whether the regularizer runs at ``step`` (every ``interval``-th step, from step 0)."""
        return step % self.interval == 0

    def __call__(self, step: int, penalty: Callable[[], Tensor]) -> Tensor | None:
        if not self.due(step):
            return None
        return penalty() * self.interval

    def __repr__(self) -> str:
        return f"LazyRegularizer(interval={self.interval})"

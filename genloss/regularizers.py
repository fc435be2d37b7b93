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
    check_positive_int,
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
    "r1_penalty_fd",
    "r2_penalty",
    "r2_penalty_fd",
]


def _squared_grad_norm(
    logits: Tensor,
    inputs: Tensor,
    logits_name: str,
    inputs_name: str,
    grad_scale: float | None,
    how: str | None = None,
) -> Tensor:
    """Per-sample ``||d sum(logits) / d inputs||^2`` in float32, graph kept: ``(B,)``.

    ``how``: what to do when ``logits`` do not depend on ``inputs`` (the caller's own words).
    """
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
    # autograd's own errors here ("does not require grad", "not used in the graph") name neither
    # argument; these say which and what to change.
    if how is None:
        how = (
            f"call the discriminator on `{inputs_name}` itself after it requires grad "
            f"(`x = x.detach().requires_grad_(True)`, then `{logits_name} = D(x)`), not on a "
            "detached copy of it or on the tensor from before requires_grad_"
        )
    if not logits.requires_grad:
        raise ValueError(
            f"`{logits_name}` does not require grad, so it cannot depend on `{inputs_name}` "
            f"(computed under torch.no_grad(), or from tensors that do not require grad?): {how}"
        )
    # Summing in float32 keeps an fp16 sum of many patch logits from overflowing.
    total = at_least_float32(logits).sum()
    if grad_scale is not None:
        total = total * grad_scale
    (grad,) = torch.autograd.grad(total, inputs, create_graph=True, allow_unused=True)
    if grad is None:
        raise ValueError(f"`{logits_name}` does not depend on `{inputs_name}`: {how}")
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


def _fd_squared_grad_norm(
    discriminator: Callable[[Tensor], Tensor],
    inputs: Tensor,
    name: str,
    h: float,
    directions: int,
    generator: torch.Generator | None,
) -> Tensor:
    """Per-sample ``mean_k ((D(x + h v_k) - D(x - h v_k)) / 2h)^2``, ``v_k ~ N(0, I)``: ``(B,)``."""
    if not callable(discriminator):
        raise TypeError(f"`discriminator` must be callable; got {type(discriminator).__name__}")
    check_float_tensor(name, inputs)
    check_ndim(name, inputs, range(2, 9), "(B, ...) batch")
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 < h < float("inf"):
        raise ValueError(f"`h` must be a positive finite float; got {h!r}")
    check_positive_int("directions", directions)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None; got {type(generator).__name__}")
    x = inputs.detach()
    batch = x.shape[0]
    device = x.device if generator is None else generator.device
    # Drawn in float32 on the generator's device, as gradient_penalty draws its weights.
    v = torch.randn((directions, *x.shape), generator=generator, device=device).to(x.device, x.dtype)
    steps = torch.cat([x + h * v, x - h * v]).flatten(0, 1)  # (2 K B, ...): one forward pass
    logits = discriminator(steps)
    if not isinstance(logits, Tensor) or logits.ndim < 1 or logits.shape[0] != steps.shape[0]:
        found = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"`discriminator` must map a batch of {steps.shape[0]} inputs to ({steps.shape[0]}, ...) "
            f"logits; got {found}"
        )
    # Summed per input in float32, as r1_penalty sums the logits it differentiates.
    sums = at_least_float32(logits).reshape(steps.shape[0], -1).sum(dim=1).view(2, directions, batch)
    slopes = (sums[0] - sums[1]) / (2 * h)  # (K, B): directional derivatives grad D . v_k
    return slopes.square().mean(dim=0)


def r1_penalty_fd(
    discriminator: Callable[[Tensor], Tensor],
    real_inputs: Tensor,
    *,
    h: float = 1e-3,
    directions: int = 4,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """R1 estimated by finite differences: no double backward through the discriminator.

    With ``g = grad_x sum D(x)`` and ``v ~ N(0, I)`` of ``x``'s shape, ``E[(g . v)^2] = ||g||^2``.
    Each directional derivative is a central difference, so per sample::

        R1_fd(x) = (1/K) sum_k ((S(x + h v_k) - S(x - h v_k)) / (2 h))^2,   S = sum of D's logits

    Differentiating it w.r.t. the discriminator's weights needs only a first-order backward
    through ``2 K`` forward passes (run as one batch of ``2 K B``), so it works where the double
    backward of :func:`r1_penalty` is missing or slow (fused attention kernels, custom ops with a
    ``once_differentiable`` backward, some compiled graphs; pytorch/pytorch#116350).

    Error of the estimate, per sample:

    - variance: ``(g . v)^2 = ||g||^2 chi^2_1``, so the K-direction mean has relative standard
      deviation ``sqrt(2 / K)`` (K = 4: 71%; K = 128: 12.5%). The estimate is unbiased, and the
      noise averages out over training steps as minibatch noise does;
    - bias from ``h``: ``O(h^2)`` (third derivatives of ``D`` along ``v``); 0 for a ``D`` that is
      linear or quadratic in ``x``. A one-sided difference against ``D(x)`` would be ``O(h)``;
    - rounding: about ``eps_D |S| / h`` per slope, with ``eps_D`` the precision of ``D``'s forward.
      Run ``D`` in float32 (not under float16/bfloat16 autocast), or raise ``h``.

    ``v`` perturbs every pixel by ``h v``: ``h = 1e-3`` is about 0.05% of the pixel range [-1, 1].
    The inputs are detached: like R1, the penalty reaches the discriminator only. ``D`` must treat
    the samples of a batch independently (no batch norm or minibatch statistics).

    Args:
        discriminator: ``D``, called once on a ``(2 K B, ...)`` batch.
        real_inputs: ``(B, C, H, W)`` or ``(B, C, T, H, W)`` real samples.
        h: finite-difference step, in pixel units along ``v``.
        directions: ``K``, random directions per sample.
        generator: ``torch.Generator`` for the directions. They are drawn as
            ``torch.randn((K, *real_inputs.shape), generator=generator)`` in float32 on the
            generator's device (the inputs' device without one), then cast to the inputs'.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar (float32 or wider), or ``(B,)`` for ``"none"``; the caller scales by ``gamma / 2``.

    Reference: Mescheder et al., ICML 2018 (R1); the directional-derivative identity is the
    Hutchinson-style estimator ``E[v v^T] = I``.
    """
    check_reduction(reduction)
    per_sample = _fd_squared_grad_norm(discriminator, real_inputs, "real_inputs", h, directions, generator)
    return reduce_per_sample(per_sample, reduction)


def r2_penalty_fd(
    discriminator: Callable[[Tensor], Tensor],
    fake_inputs: Tensor,
    *,
    h: float = 1e-3,
    directions: int = 4,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """R2 estimated by finite differences: :func:`r1_penalty_fd` on generated samples (detached)."""
    check_reduction(reduction)
    per_sample = _fd_squared_grad_norm(discriminator, fake_inputs, "fake_inputs", h, directions, generator)
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
    how = "`critic` must compute its output from the tensor it is called with"
    squared = _squared_grad_norm(critic(interpolates), interpolates, "critic(x^)", "x^", None, how)
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

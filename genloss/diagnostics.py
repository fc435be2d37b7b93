"""Loss diagnostics: how hard each term pushes the output, and how well a discriminator separates.

Both are for logging, on the steps you log: nothing here is needed for training, and neither
function forces a device sync (call ``.item()`` when you write the values).

Example:
    >>> terms = {"rec": 1.0 * rec, "adv": 0.1 * adv}          # weighted, graph attached
    >>> norms = gradient_norms(terms, generated)              # {"rec": tensor(..), "adv": tensor(..)}
    >>> sum(terms.values()).backward()                        # the graph is still there
    >>> stats = discriminator_stats(d_real_logits, d_fake_logits)
    >>> stats["accuracy"]                                     # 0.5: chance; 1.0: D wins outright

:class:`~genloss.composite.CompositeLoss` calls both for you (``gradnorm_wrt=`` and ``d_stats=``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ._checks import (
    at_least_float32,
    check_float_tensor,
    check_grad_tensors,
    check_logits,
)

__all__ = ["discriminator_stats", "gradient_norms"]


def _check_scalar(name: str, value: object) -> Tensor:
    value = check_float_tensor(name, value)
    if value.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar (0-d) loss tensor; got shape {tuple(value.shape)}")
    return value


def _norm(x: Tensor) -> Tensor:
    """L2 norm of all of ``x`` in float32 (float64 stays float64), without overflow of the squares.

    ``sqrt(sum(x^2))`` overflows float32 once an entry passes ~1.8e19 (bfloat16 gradients reach
    3e38), and ``torch.linalg.vector_norm`` does not rescale, so divide by ``max|x|`` first.
    Non-finite entries give a non-finite norm.
    """
    x = at_least_float32(x)
    scale = x.abs().amax()
    return scale * torch.linalg.vector_norm(x / scale.clamp_min(torch.finfo(x.dtype).tiny))


def _gradient_norm(term: Tensor, wrt: list[Tensor], grad_scale: float | None) -> Tensor:
    """``||d term / d wrt||`` over all of ``wrt`` as a detached float32 0-d tensor; graph kept."""
    device = wrt[0].device
    if not term.requires_grad:  # a constant, or computed under no_grad: it pushes nothing
        return torch.zeros((), device=device)
    scaled = term if grad_scale is None else term * grad_scale
    grads = torch.autograd.grad(scaled, wrt, retain_graph=True, allow_unused=True)
    with torch.autocast(device_type=device.type, enabled=False):
        norms = [_norm(g.detach()) for g in grads if g is not None]
        if not norms:  # the term does not depend on `wrt`
            return torch.zeros((), device=device)
        dtype = torch.float64 if all(n.dtype == torch.float64 for n in norms) else torch.float32
        norm = _norm(torch.stack([n.to(device=device, dtype=dtype) for n in norms]))
        if grad_scale is not None:
            norm = norm / grad_scale
        return norm.float()


def gradient_norms(
    terms: Mapping[str, Tensor], wrt: Tensor | Sequence[Tensor], *, grad_scale: float | None = None
) -> dict[str, Tensor]:
    """The L2 norm of each loss term's gradient with respect to ``wrt``.

    ``norms[name] = || d terms[name] / d wrt ||_2``, over every entry of ``wrt`` (of all its
    tensors, for a sequence). Pass the *weighted* terms to see how hard each one pushes
    ``wrt``, e.g. the generated frames: the terms' shares of the generator's gradient are
    ``norms[name] / sum(norms.values())``.

    One ``torch.autograd.grad(term, wrt, retain_graph=True)`` per term: no term is recomputed,
    no ``.grad`` is touched, and the graph stays for the real ``backward()``. That is one extra
    backward pass (from the term down to ``wrt`` only) per term, so call it on the steps you
    log. A term that does not depend on ``wrt`` (or needs no grad at all) gets 0.

    Under autocast the gradients may be float16/bfloat16; the norms are taken in float32 after
    dividing by the largest entry, so the squares cannot overflow. Under float16 with a
    ``GradScaler``, pass ``grad_scale=scaler.get_scale()``: each term is multiplied by it before
    the backward (so small gradients don't underflow in float16) and the norm divided by it.

    Args:
        terms: name -> scalar (0-d) float loss tensor, weighted as it enters the total.
        wrt: a tensor ``(B, ...)`` that the terms were computed from (``requires_grad``, e.g.
            the generator's output), or a sequence of them.
        grad_scale: a loss scale to differentiate with (float16 autocast), or ``None``.

    Returns:
        name -> detached 0-d float32 tensor on ``wrt``'s device, in the order of ``terms``.

    Raises:
        TypeError / ValueError: ``terms`` is not a mapping of names to 0-d float tensors, or
            ``wrt`` is not a (sequence of) float tensor(s) that requires grad.
    """
    if not isinstance(terms, Mapping):
        raise TypeError(f"`terms` must be a mapping of name -> scalar loss tensor; got {type(terms).__name__}")
    wrt_list = check_grad_tensors("wrt", wrt)
    checked = {}
    for name, term in terms.items():
        if not isinstance(name, str):
            raise TypeError(f"`terms` keys must be strings; got {name!r}")
        checked[name] = _check_scalar(f"terms[{name!r}]", term)
    if grad_scale is not None and (isinstance(grad_scale, bool) or not isinstance(grad_scale, (int, float))
                                   or not grad_scale > 0):
        raise ValueError(f"`grad_scale` must be a positive float or None; got {grad_scale!r}")
    return {name: _gradient_norm(term, wrt_list, grad_scale) for name, term in checked.items()}


def discriminator_stats(real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    """A discriminator's mean logits and its accuracy on one batch.

    ``real_mean = mean(r)``, ``fake_mean = mean(f)`` and
    ``accuracy = (#{r > 0} + #{f < 0}) / (numel(r) + numel(f))``: every logit is one vote (a
    patch map casts h·w of them), real and fake counted together, a logit of exactly 0 counted
    wrong. 0.5 is chance; near 1 for long means the discriminator wins outright, and near 0.5
    after the adversarial term starts means it has stopped teaching the generator anything.

    Args:
        real_logits: ``(B, ...)`` discriminator outputs on real samples, any shape.
        fake_logits: ``(B', ...)`` outputs on generated samples; the batch and shape may differ.

    Returns:
        ``{"real_mean", "fake_mean", "accuracy"}``, each a detached 0-d float32 tensor.
    """
    real = check_logits("real_logits", real_logits).detach()
    fake = check_logits("fake_logits", fake_logits).detach()
    with torch.autocast(device_type=real.device.type, enabled=False):
        # Means in float32 at least: a float16 sum over a patch map can overflow.
        real_mean = real.mean(dtype=torch.float64 if real.dtype == torch.float64 else torch.float32)
        fake_mean = fake.mean(dtype=torch.float64 if fake.dtype == torch.float64 else torch.float32)
        correct = (real > 0).sum() + (fake < 0).sum()
        accuracy = correct.float() / (real.numel() + fake.numel())
    return {"real_mean": real_mean.float(), "fake_mean": fake_mean.float(), "accuracy": accuracy}

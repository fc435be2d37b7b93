"""Composition: weighted, scheduled sums of loss terms with per-term logs.

Example:
    >>> loss = CompositeLoss({"l1": 1.0, "lpips": 0.5, "adv": Schedule(0.1, start=2000, ramp=1000)})
    >>> total, logs = loss(step, l1=lambda: gl.l1_loss(pred, target),
    ...                    lpips=lambda: lpips(pred, target),
    ...                    adv=lambda: gl.generator_loss(D(pred)))
    >>> total.backward()
    >>> logger.log({k: v.item() for k, v in logs.items()}, step=step)  # sync only when logging

Each term is a zero-argument callable, so a term whose factor is 0 at this step (the adversarial
term during warm-up, say) is never evaluated: no forward pass, no graph.

Diagnostics on the steps you log (both opt-in keyword arguments; see :class:`CompositeLoss`):
    >>> total, logs = g_loss(step, gradnorm_wrt=fake if log_now else None, l1=..., adv=...)
    >>> logs["gradnorm/adv"]                  # || d (factor * adv) / d fake ||
    >>> total, logs = d_loss(step, d_stats={"video": (real_logits, fake_logits)}, adv=...)
    >>> logs["d_accuracy/video"], logs["d_real/video"], logs["d_fake/video"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ._checks import check_grad_tensors, check_logits
from .diagnostics import discriminator_stats, gradient_norms

__all__ = ["CompositeLoss", "Schedule"]

#: Keyword arguments of ``CompositeLoss.__call__`` besides the thunks: no term may take these names.
RESERVED_ARGUMENTS = ("step", "gradnorm_wrt", "d_stats")
#: Prefixes of the diagnostic log keys: no term name may start with one, so logs never collide.
DIAGNOSTIC_PREFIXES = ("gradnorm/", "d_accuracy/", "d_real/", "d_fake/")


class Schedule:
    """A loss weight that switches on at ``start`` and ramps linearly to ``weight`` over ``ramp`` steps.

    ``factor(step) = 0`` for ``step < start``; ``weight * (step - start) / ramp`` while
    ``start <= step < start + ramp``; ``weight`` once ``step >= start + ramp`` (with ``ramp=0``:
    ``weight`` from ``start`` on).

    Args:
        weight: the final factor.
        start: first step at which the factor may be non-zero; ``>= 0``.
        ramp: length of the linear ramp in steps; ``>= 0``.
    """

    def __init__(self, weight: float, *, start: int = 0, ramp: int = 0) -> None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(f"`weight` must be a float; got {type(weight).__name__}")
        for name, value in (("start", start), ("ramp", ramp)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative int; got {value!r}")
        self.weight = float(weight)
        self.start = start
        self.ramp = ramp

    def __call__(self, step: int) -> float:
        if step < self.start:
            return 0.0
        if step >= self.start + self.ramp:
            return self.weight
        return self.weight * (step - self.start) / self.ramp

    def __repr__(self) -> str:
        return f"Schedule({self.weight}, start={self.start}, ramp={self.ramp})"


class CompositeLoss:
    """A weighted sum of named loss terms, each weight a constant or a :class:`Schedule`.

    ``total, logs = composite(step, **thunks)`` with one zero-argument callable per term name:
    ``total = sum_name factor_name(step) * thunk_name()``. Terms whose factor is 0 at ``step``
    are not called. ``logs`` maps each computed term, and ``"total"``, to its unweighted value as
    a detached 0-d tensor (no device sync; call ``.item()`` when you log).

    Two opt-in keyword arguments add diagnostics (:mod:`genloss.diagnostics`) to ``logs``; pass
    them on the steps you log and ``None`` (the default) otherwise, which costs nothing:

    - ``gradnorm_wrt``: a tensor (or a sequence of tensors) the terms were computed from, such as
      the generator's output. Adds ``logs["gradnorm/<term>"] = ||d (factor * term) / d wrt||``
      for every computed term (the weighted term, so the values compare how hard each one pushes
      the output; 0 for a term that does not depend on ``wrt``). One extra backward from each term
      down to ``wrt``; the graph is kept for your ``total.backward()``.
    - ``d_stats``: name -> ``(real_logits, fake_logits)``, one pair per discriminator. Adds
      ``logs["d_accuracy/<name>"]``, ``logs["d_real/<name>"]`` and ``logs["d_fake/<name>"]``:
      the fraction of real logits > 0 and fake logits < 0, and the mean real and fake logit
      (:func:`~genloss.diagnostics.discriminator_stats`), whatever the terms' factors.

    Example::

        g_loss = CompositeLoss({"l1": 1.0, "adv": Schedule(0.1, start=2000)})
        total, logs = g_loss(step, gradnorm_wrt=fake if step % 100 == 0 else None,
                             l1=lambda: gl.l1_loss(fake, target),
                             adv=lambda: gl.generator_loss(D(fake)))
        total.backward()  # logs: l1, adv, total, gradnorm/l1, gradnorm/adv

        d_loss = CompositeLoss({"adv": 1.0})
        total, logs = d_loss(step, d_stats={"patch": (r, f)},
                             adv=lambda: gl.discriminator_loss(r, f))
        # logs: adv, total, d_accuracy/patch, d_real/patch, d_fake/patch

    Args:
        terms: name -> weight (float) or :class:`Schedule`. Names must be non-empty strings, not
            ``"total"`` nor ``"step"``, ``"gradnorm_wrt"``, ``"d_stats"`` (the call's own
            arguments), and must not start with ``"gradnorm/"``, ``"d_accuracy/"``,
            ``"d_real/"`` or ``"d_fake/"`` (the diagnostics' log keys).

    Raises:
        ValueError: on a thunk for an unknown name, a missing thunk, or a term that returns a
            non-scalar; a bad ``gradnorm_wrt`` or ``d_stats`` raises ``TypeError``/``ValueError``.
    """

    def __init__(self, terms: Mapping[str, float | Schedule]) -> None:
        if not isinstance(terms, Mapping) or not terms:
            raise ValueError(f"`terms` must be a non-empty mapping of name -> weight; got {terms!r}")
        self.terms: dict[str, Schedule] = {}
        for name, weight in terms.items():
            if not isinstance(name, str) or not name or name == "total":
                raise ValueError(f"term names must be non-empty strings other than 'total'; got {name!r}")
            if name in RESERVED_ARGUMENTS or name.startswith(DIAGNOSTIC_PREFIXES):
                raise ValueError(
                    f"term name {name!r} is reserved: names may not be {', '.join(map(repr, RESERVED_ARGUMENTS))} "
                    f"(arguments of the call) or start with {', '.join(map(repr, DIAGNOSTIC_PREFIXES))} "
                    f"(diagnostic log keys)"
                )
            self.terms[name] = weight if isinstance(weight, Schedule) else Schedule(weight)

    def factors(self, step: int) -> dict[str, float]:
        """Each term's factor at ``step``."""
        return {name: schedule(step) for name, schedule in self.terms.items()}

    def __call__(
        self,
        step: int,
        *,
        gradnorm_wrt: Tensor | Sequence[Tensor] | None = None,
        d_stats: Mapping[str, tuple[Tensor, Tensor]] | None = None,
        **thunks: Callable[[], Tensor],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        unknown = sorted(set(thunks) - set(self.terms))
        missing = sorted(set(self.terms) - set(thunks))
        if unknown or missing:
            raise ValueError(
                f"CompositeLoss expects one thunk per term {sorted(self.terms)}; "
                f"unknown: {unknown}, missing: {missing}"
            )
        # Check the diagnostics' inputs before any thunk runs (a thunk may be expensive).
        wrt = None if gradnorm_wrt is None else check_grad_tensors("gradnorm_wrt", gradnorm_wrt)
        d_logs = {} if d_stats is None else _d_stats_logs(d_stats)
        total: Tensor | None = None
        logs: dict[str, Tensor] = {}
        weighted: dict[str, Tensor] = {}
        for name, factor in self.factors(step).items():
            if factor == 0.0:
                continue
            if not callable(thunks[name]):
                raise TypeError(f"the thunk for {name!r} must be callable; got {type(thunks[name]).__name__}")
            value = thunks[name]()
            if not isinstance(value, Tensor) or value.ndim != 0:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"term {name!r} must return a scalar (0-d) tensor; got {shape}")
            logs[name] = value.detach()
            weighted[name] = factor * value
            total = weighted[name] if total is None else total + weighted[name]
        if total is None:
            total = torch.zeros(())
        logs["total"] = total.detach()
        if wrt is not None:
            for name, norm in gradient_norms(weighted, wrt).items():
                logs[f"gradnorm/{name}"] = norm
        logs.update(d_logs)
        return total, logs

    def __repr__(self) -> str:
        inner = ", ".join(f"{name!r}: {schedule!r}" for name, schedule in self.terms.items())
        return f"CompositeLoss({{{inner}}})"


def _d_stats_logs(d_stats: object) -> dict[str, Tensor]:
    """``d_accuracy/<name>``, ``d_real/<name>``, ``d_fake/<name>`` for each pair of ``d_stats``."""
    if not isinstance(d_stats, Mapping):
        raise TypeError(
            f"`d_stats` must be a mapping of discriminator name -> (real_logits, fake_logits); "
            f"got {type(d_stats).__name__}"
        )
    logs: dict[str, Tensor] = {}
    for name, pair in d_stats.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"`d_stats` keys must be non-empty strings; got {name!r}")
        if isinstance(pair, Tensor) or not isinstance(pair, Sequence) or len(pair) != 2:
            found = f"a tensor of shape {tuple(pair.shape)}" if isinstance(pair, Tensor) else repr(pair)[:80]
            raise TypeError(f"`d_stats[{name!r}]` must be a pair (real_logits, fake_logits); got {found}")
        stats = discriminator_stats(check_logits(f"d_stats[{name!r}][0]", pair[0]),
                                    check_logits(f"d_stats[{name!r}][1]", pair[1]))
        logs[f"d_accuracy/{name}"] = stats["accuracy"]
        logs[f"d_real/{name}"] = stats["real_mean"]
        logs[f"d_fake/{name}"] = stats["fake_mean"]
    return logs

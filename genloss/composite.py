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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

__all__ = ["CompositeLoss", "Schedule"]


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

    Args:
        terms: name -> weight (float) or :class:`Schedule`.

    Raises:
        ValueError: on a thunk for an unknown name, a missing thunk, or a term that returns a
            non-scalar.
    """

    def __init__(self, terms: Mapping[str, float | Schedule]) -> None:
        if not isinstance(terms, Mapping) or not terms:
            raise ValueError(f"`terms` must be a non-empty mapping of name -> weight; got {terms!r}")
        self.terms: dict[str, Schedule] = {}
        for name, weight in terms.items():
            if not isinstance(name, str) or not name or name == "total":
                raise ValueError(f"term names must be non-empty strings other than 'total'; got {name!r}")
            self.terms[name] = weight if isinstance(weight, Schedule) else Schedule(weight)

    def factors(self, step: int) -> dict[str, float]:
        """Each term's factor at ``step``."""
        return {name: schedule(step) for name, schedule in self.terms.items()}

    def __call__(
        self, step: int, **thunks: Callable[[], Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        unknown = sorted(set(thunks) - set(self.terms))
        missing = sorted(set(self.terms) - set(thunks))
        if unknown or missing:
            raise ValueError(
                f"CompositeLoss expects one thunk per term {sorted(self.terms)}; "
                f"unknown: {unknown}, missing: {missing}"
            )
        total: Tensor | None = None
        logs: dict[str, Tensor] = {}
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
            total = factor * value if total is None else total + factor * value
        if total is None:
            total = torch.zeros(())
        logs["total"] = total.detach()
        return total, logs

    def __repr__(self) -> str:
        inner = ", ".join(f"{name!r}: {schedule!r}" for name, schedule in self.terms.items())
        return f"CompositeLoss({{{inner}}})"

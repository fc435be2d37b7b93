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

Switching the discriminator on safely (see docs/composition.md):
    >>> adv = Schedule.at_fraction(0.1, 0.2, total_steps=100_000)       # from 20% of the run
    >>> adv = Schedule.on_plateau(0.1, watch="rec", rel_improvement=0.01, window=1000, ramp=2000)
    >>> g_loss = CompositeLoss({"rec": 1.0, "adv": adv}, check_finite=True)  # names a NaN term
    >>> gate = DiscriminatorGate(threshold=0.1)       # skip D steps while its loss is below 0.1
    >>> drift = DriftMonitor(adaptive_weight=(1e-3, 1e3), logits=(-10.0, 10.0))  # warns once
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ._checks import at_least_float32, check_grad_tensors, check_logits
from .diagnostics import discriminator_stats, gradient_norms

__all__ = ["CompositeLoss", "DiscriminatorGate", "DriftMonitor", "DriftWarning", "NonFiniteLossError", "Schedule"]

#: Keyword arguments of ``CompositeLoss.__call__`` besides the thunks: no term may take these names.
RESERVED_ARGUMENTS = ("step", "gradnorm_wrt", "d_stats")
#: Prefixes of the diagnostic log keys: no term name may start with one, so logs never collide.
DIAGNOSTIC_PREFIXES = ("gradnorm/", "d_accuracy/", "d_real/", "d_fake/", "drift/")


class NonFiniteLossError(ValueError):
    """A loss term (or the total) is NaN or infinite; raised by ``CompositeLoss(check_finite=True)``.

    Attributes:
        step: the step passed to the call.
        terms: the names of the non-finite terms (``["total"]`` when every term is finite but the
            weighted sum overflowed).
    """

    def __init__(self, message: str, *, step: int, terms: list[str]) -> None:
        super().__init__(message)
        self.step = step
        self.terms = terms


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "non-negative" if minimum == 0 else "positive"
        raise ValueError(f"`{name}` must be a {kind} int; got {value!r}")
    return value


class Schedule:
    """A loss weight that switches on at ``start`` and ramps linearly to ``weight`` over ``ramp`` steps.

    ``factor(step) = 0`` for ``step < start``; ``weight * (step - start) / ramp`` while
    ``start <= step < start + ramp``; ``weight`` once ``step >= start + ramp`` (with ``ramp=0``:
    ``weight`` from ``start`` on).

    Three ways to set ``start`` (``schedule.trigger`` says which):

    - ``Schedule(weight, start=2000)``: a fixed step (``"step"``);
    - ``Schedule.at_fraction(weight, 0.2, total_steps=N)``: ``round(0.2 * N)`` (``"fraction"``);
    - ``Schedule.on_plateau(weight, watch="rec", ...)``: the step after the watched term stops
      improving (``"plateau"``); :class:`CompositeLoss` feeds it that term's value every step.

    Once started, a schedule stays started. ``state_dict()`` holds what a resumed run must not
    recompute: the start of a ``"fraction"`` schedule (a resume with another ``total_steps``
    keeps it) and a ``"plateau"`` schedule's start and window statistics. A ``"step"`` schedule
    has no state (``{}``): its start is configuration.

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
        self.start: int | None = start  # None: a plateau trigger that has not fired
        self.ramp = ramp
        self.trigger = "step"
        self.watch: str | None = None

    @classmethod
    def at_fraction(cls, weight: float, fraction: float, *, total_steps: int, ramp: int = 0) -> Schedule:
        """Switch on at ``start = round(fraction * total_steps)``, then ramp over ``ramp`` steps.

        Args:
            weight: the final factor.
            fraction: in ``[0, 1]``, the share of the run before the term switches on.
            total_steps: the run's length in steps; ``>= 1``.
            ramp: length of the linear ramp in steps; ``>= 0``.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ValueError(f"`fraction` must be a float in [0, 1]; got {fraction!r}")
        _check_int("total_steps", total_steps, 1)
        schedule = cls(weight, start=round(fraction * total_steps), ramp=ramp)
        schedule.trigger = "fraction"
        return schedule

    @classmethod
    def on_plateau(
        cls,
        weight: float,
        *,
        watch: str,
        rel_improvement: float = 0.01,
        window: int = 1000,
        ramp: int = 0,
    ) -> Schedule:
        """Switch on once the term ``watch`` stops improving, then ramp over ``ramp`` steps.

        The watched values are averaged over windows of ``window`` steps, each window opening at
        the first value fed after the previous one closed. A window closes at the first value fed
        at a step ``>= window_start + window``; with ``m`` its mean and ``best`` the lowest mean
        of the earlier windows (the previous finite one: each improved on it), the schedule starts
        at the next step when::

            best - m <= rel_improvement * |best|

        (the loss improved on its best window by at most that fraction, or got worse). Non-finite
        window means are skipped. Reading a window's mean is one device sync per ``window`` steps.

        Args:
            weight: the final factor.
            watch: the name of the :class:`CompositeLoss` term to watch (the reconstruction loss,
                say); fed through :meth:`observe`.
            rel_improvement: the smallest relative improvement per window that keeps waiting; ``>= 0``.
            window: window length in steps; ``>= 1``.
            ramp: length of the linear ramp in steps; ``>= 0``.
        """
        if not isinstance(watch, str) or not watch:
            raise ValueError(f"`watch` must be the name of a term; got {watch!r}")
        if (isinstance(rel_improvement, bool) or not isinstance(rel_improvement, (int, float))
                or not 0 <= rel_improvement < math.inf):
            raise ValueError(f"`rel_improvement` must be a non-negative float; got {rel_improvement!r}")
        schedule = cls(weight, start=0, ramp=ramp)
        schedule.trigger = "plateau"
        schedule.watch = watch
        schedule.rel_improvement = float(rel_improvement)
        schedule.window = _check_int("window", window, 1)
        schedule.start = None
        schedule._window_start: int | None = None
        schedule._window_sum: Tensor | float = 0.0
        schedule._window_count = 0
        schedule._best: float | None = None
        return schedule

    def __call__(self, step: int) -> float:
        if self.start is None:
            return 0.0
        if step < self.start:
            return 0.0
        if step >= self.start + self.ramp:
            return self.weight
        return self.weight * (step - self.start) / self.ramp

    def observe(self, step: int, value: Tensor | float) -> None:
        """Feed the watched term's value at ``step`` to a ``"plateau"`` schedule (see :meth:`on_plateau`).

        No device sync, except once per window when it closes. Nothing happens once started.
        """
        if self.trigger != "plateau":
            raise ValueError(f"only a Schedule.on_plateau schedule observes values; this one is {self!r}")
        if self.start is not None:
            return
        if self._window_start is None:
            self._window_start = step
        elif step >= self._window_start + self.window:
            mean = float(self._window_sum) / self._window_count  # the one sync per window
            if math.isfinite(mean):
                if self._best is not None and self._best - mean <= self.rel_improvement * abs(self._best):
                    self.start = step + 1  # this step's factors were read before its terms ran
                    return
                self._best = mean  # it improved on the best, so it is the new best
            self._window_start, self._window_sum, self._window_count = step, 0.0, 0
        # Accumulated on the value's device; float32 or wider so a long window does not round away.
        self._window_sum = self._window_sum + (
            at_least_float32(value.detach()) if isinstance(value, Tensor) else float(value)
        )
        self._window_count += 1

    def state_dict(self) -> dict[str, object]:
        """The trigger's state: ``{}`` (``"step"``), ``{"start"}`` (``"fraction"``), or the start
        and window statistics (``"plateau"``; plain Python numbers)."""
        if self.trigger == "step":
            return {}
        if self.trigger == "fraction":
            return {"start": self.start}
        return {
            "start": self.start,
            "window_start": self._window_start,
            "window_sum": float(self._window_sum),
            "window_count": self._window_count,
            "best": self._best,
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict`'s output (of a schedule with the same trigger)."""
        expected = set(self.state_dict())
        if not isinstance(state, Mapping) or set(state) != expected:
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"`state` of a {self.trigger!r} Schedule must have the keys {sorted(expected)}; got {found}"
            )
        if "start" in state:
            self.start = state["start"]
        if self.trigger == "plateau":
            self._window_start = state["window_start"]
            self._window_sum = state["window_sum"]
            self._window_count = state["window_count"]
            self._best = state["best"]

    def __repr__(self) -> str:
        if self.trigger == "plateau":
            return (
                f"Schedule.on_plateau({self.weight}, watch={self.watch!r}, rel_improvement="
                f"{self.rel_improvement}, window={self.window}, ramp={self.ramp}; start={self.start})"
            )
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

    A :meth:`Schedule.on_plateau` term is fed its watched term's logged value after the terms
    run (when that term was computed at this step). :meth:`state_dict` and
    :meth:`load_state_dict` carry the schedules' trigger state across a resume (the object can be
    registered with ``accelerator.register_for_checkpointing``).

    Args:
        terms: name -> weight (float) or :class:`Schedule`. Names must be non-empty strings, not
            ``"total"`` nor ``"step"``, ``"gradnorm_wrt"``, ``"d_stats"`` (the call's own
            arguments), and must not start with ``"gradnorm/"``, ``"d_accuracy/"``,
            ``"d_real/"``, ``"d_fake/"`` or ``"drift/"`` (the diagnostics' log keys).
        check_finite: after the terms run, raise :class:`NonFiniteLossError` naming every NaN or
            infinite term (or the total) and the step. Off by default because it reads the
            values on the host: one device sync per call.
        drift: a :class:`DriftMonitor` run on ``d_stats`` whenever they are passed (its
            ``drift/...`` flags join the logs; it warns once per cause).

    Raises:
        ValueError: on a thunk for an unknown name, a missing thunk, or a term that returns a
            non-scalar; a bad ``gradnorm_wrt`` or ``d_stats`` raises ``TypeError``/``ValueError``;
            :class:`NonFiniteLossError` (a ``ValueError``) with ``check_finite=True``.
    """

    def __init__(
        self,
        terms: Mapping[str, float | Schedule],
        *,
        check_finite: bool = False,
        drift: DriftMonitor | None = None,
    ) -> None:
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
        for name, schedule in self.terms.items():
            if schedule.watch is not None and (schedule.watch not in self.terms or schedule.watch == name):
                raise ValueError(
                    f"term {name!r} watches {schedule.watch!r}, which must be another term of "
                    f"{sorted(self.terms)}"
                )
        if not isinstance(check_finite, bool):
            raise TypeError(f"`check_finite` must be a bool; got {type(check_finite).__name__}")
        if drift is not None and not isinstance(drift, DriftMonitor):
            raise TypeError(f"`drift` must be a DriftMonitor or None; got {type(drift).__name__}")
        self.check_finite = check_finite
        self.drift = drift

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
        if self.check_finite:
            _raise_if_not_finite(step, logs)
        for schedule in self.terms.values():
            if schedule.watch is not None and schedule.watch in logs:
                schedule.observe(step, logs[schedule.watch])
        if wrt is not None:
            for name, norm in gradient_norms(weighted, wrt).items():
                logs[f"gradnorm/{name}"] = norm
        logs.update(d_logs)
        if self.drift is not None and d_stats is not None:
            logs.update(self.drift.check(step, d_stats=d_stats))
        return total, logs

    def state_dict(self) -> dict[str, dict[str, object]]:
        """``{"schedules": {name: Schedule.state_dict()}}`` for the schedules that have state."""
        schedules = {name: s.state_dict() for name, s in self.terms.items() if s.trigger != "step"}
        return {"schedules": schedules}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict`'s output into a CompositeLoss built with the same schedules."""
        expected = sorted(self.state_dict()["schedules"])
        schedules = state.get("schedules") if isinstance(state, Mapping) else None
        if not isinstance(schedules, Mapping) or sorted(schedules) != expected:
            found = sorted(schedules) if isinstance(schedules, Mapping) else repr(state)[:80]
            raise ValueError(
                f"`state` must be {{'schedules': {{name: state}}}} for the stateful schedules {expected}; "
                f"got {found}"
            )
        for name, schedule_state in schedules.items():
            self.terms[name].load_state_dict(schedule_state)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name!r}: {schedule!r}" for name, schedule in self.terms.items())
        extra = ", check_finite=True" if self.check_finite else ""
        return f"CompositeLoss({{{inner}}}{extra})"


def _raise_if_not_finite(step: int, logs: Mapping[str, Tensor]) -> None:
    """:class:`NonFiniteLossError` naming the non-finite terms (or ``"total"``) of ``logs``."""
    # One sync for the common, finite case: every flag gathered on the device first.
    if bool(torch.stack([torch.isfinite(v) for v in logs.values()]).all()):
        return
    bad = [name for name, v in logs.items() if name != "total" and not torch.isfinite(v)] or ["total"]
    values = ", ".join(f"{name!r} = {logs[name].item()}" for name in bad)
    raise NonFiniteLossError(
        f"non-finite loss at step {step}: {values} (unweighted values; the total is "
        f"{logs['total'].item()})",
        step=step,
        terms=bad,
    )


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


class DiscriminatorGate:
    """Skip discriminator updates while the discriminator's loss is below ``threshold``.

    Rule: at each discriminator step, ``gate(d_loss)`` returns ``False`` (skip the backward and
    the optimiser step) when ``d_loss < threshold``, else ``True``. A NaN loss is not below any
    threshold, so the gate never hides a non-finite loss (``CompositeLoss(check_finite=True)``
    names it). Reading the loss is one device sync per call.

    Pass the discriminator's adversarial loss (``logs["adv"]``, not the regularised total, whose
    R1/LeCam terms shift it). With hinge loss ``d_loss`` is 2 when the discriminator cannot tell
    real from fake and 0 when it separates them with margin 1; a threshold near 0.1-0.3 stops
    a winning discriminator from pulling further ahead (the generator catches up, the loss rises,
    updates resume).

    Example::

        gate = DiscriminatorGate(threshold=0.2)
        d_total, d_logs = d_loss(step, adv=lambda: gl.discriminator_loss(r, f))
        if gate(d_logs["adv"]):
            d_total.backward()
            opt_d.step()
        logs.update(gate.logs())  # d_gate/skipped, d_gate/steps, d_gate/skip_rate

    Args:
        threshold: skip while the loss is strictly below this.
    """

    def __init__(self, threshold: float) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
            raise ValueError(f"`threshold` must be a float; got {threshold!r}")
        self.threshold = float(threshold)
        self.steps = 0
        self.skipped = 0

    def __call__(self, d_loss: Tensor | float) -> bool:
        """Whether to update the discriminator at this step (counted in :meth:`logs`)."""
        if isinstance(d_loss, Tensor):
            if d_loss.numel() != 1:
                raise ValueError(f"`d_loss` must be a scalar; got shape {tuple(d_loss.shape)}")
            value = float(d_loss.detach())
        elif isinstance(d_loss, (int, float)) and not isinstance(d_loss, bool):
            value = float(d_loss)
        else:
            raise TypeError(f"`d_loss` must be a scalar tensor or a float; got {type(d_loss).__name__}")
        self.steps += 1
        if value < self.threshold:
            self.skipped += 1
            return False
        return True

    def logs(self) -> dict[str, Tensor]:
        """``d_gate/skipped`` and ``d_gate/steps`` (counts so far) and ``d_gate/skip_rate``."""
        rate = self.skipped / self.steps if self.steps else 0.0
        return {
            "d_gate/skipped": torch.tensor(self.skipped),
            "d_gate/steps": torch.tensor(self.steps),
            "d_gate/skip_rate": torch.tensor(rate),
        }

    def state_dict(self) -> dict[str, int]:
        return {"steps": self.steps, "skipped": self.skipped}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        _check_state_keys(state, ("skipped", "steps"), "DiscriminatorGate")
        self.steps, self.skipped = int(state["steps"]), int(state["skipped"])

    def __repr__(self) -> str:
        return f"DiscriminatorGate(threshold={self.threshold})"


class DriftWarning(UserWarning):
    """The adaptive weight or the discriminator's logits left a :class:`DriftMonitor`'s bounds."""


_DRIFT_HINTS = {
    ("adaptive_weight", "above"): "the adversarial gradient at the generator's last layer vanishes next "
    "to the reconstruction gradient (a discriminator that has won, or saturated logits)",
    ("adaptive_weight", "below"): "the adversarial gradient dominates the reconstruction gradient",
    ("logits", "above"): "the discriminator's logits are drifting up (LeCam, R1 or a lower "
    "discriminator learning rate hold them)",
    ("logits", "below"): "the discriminator's logits are drifting down (LeCam, R1 or a lower "
    "discriminator learning rate hold them)",
    ("adaptive_weight", "not finite"): "a NaN or infinite gradient reached the last layer",
    ("logits", "not finite"): "the discriminator produced NaN or infinite logits",
}


def _check_bounds(name: str, bounds: object) -> tuple[float, float] | None:
    if bounds is None:
        return None
    if (not isinstance(bounds, Sequence) or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
            or not bounds[0] < bounds[1]):
        raise ValueError(f"`{name}` must be None or (low, high) floats with low < high; got {bounds!r}")
    return float(bounds[0]), float(bounds[1])


class DriftMonitor:
    """Flag, log and warn (once per cause) when the adaptive weight or the logits leave bounds.

    ``logs = monitor.check(step, adaptive_weight=w, d_stats={"video": (r, f)})`` compares the
    adaptive weight (:func:`~genloss.adaptive_weight`'s value) and, for each discriminator, the
    mean real and mean fake logit with their bounds ``(low, high)``. Each quantity gets a log
    entry, ``1.0`` when it is outside ``[low, high]`` (or not finite) and ``0.0`` otherwise:
    ``drift/adaptive_weight``, ``drift/d_real/<name>``, ``drift/d_fake/<name>``. The first time
    each cause (a quantity above, below, or not finite) occurs, a :class:`DriftWarning` names the
    quantity, its value, the bound and the step; ``counts`` keeps how often each cause occurred
    (saved by :meth:`state_dict`, so a resumed run does not warn again for the same cause).

    Reading the values is one device sync per call: check on the steps you log.
    :class:`CompositeLoss` (``drift=``) runs the logit check whenever it gets ``d_stats``.

    Args:
        adaptive_weight: bounds of the adaptive weight, or ``None`` for no check. The default
            ``(1e-3, 1e3)`` brackets VQGAN's usual 0.01-100 and flags the clamp at 1e4.
        logits: bounds of each mean real and mean fake logit, or ``None``. The default
            ``(-10, 10)``: hinge and non-saturating logits much beyond that mean a saturated
            discriminator.
    """

    def __init__(
        self,
        *,
        adaptive_weight: tuple[float, float] | None = (1e-3, 1e3),
        logits: tuple[float, float] | None = (-10.0, 10.0),
    ) -> None:
        self.adaptive_weight = _check_bounds("adaptive_weight", adaptive_weight)
        self.logits = _check_bounds("logits", logits)
        self.counts: dict[str, int] = {}

    def check(
        self,
        step: int,
        *,
        adaptive_weight: Tensor | float | None = None,
        d_stats: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    ) -> dict[str, Tensor]:
        """``drift/<quantity>`` flags for the given values (and a warning per new cause)."""
        checks: list[tuple[str, str, Tensor | float, tuple[float, float]]] = []
        if adaptive_weight is not None and self.adaptive_weight is not None:
            if isinstance(adaptive_weight, Tensor) and adaptive_weight.numel() != 1:
                raise ValueError(f"`adaptive_weight` must be a scalar; got shape {tuple(adaptive_weight.shape)}")
            checks.append(("adaptive_weight", "adaptive_weight", adaptive_weight, self.adaptive_weight))
        if d_stats is not None and self.logits is not None:
            stats = _d_stats_logs(d_stats)
            for key in stats:
                if key.startswith(("d_real/", "d_fake/")):
                    checks.append((key, "logits", stats[key], self.logits))
        values = [float(v) for _, _, v, _ in checks]
        logs: dict[str, Tensor] = {}
        for (key, kind, _, (low, high)), value in zip(checks, values):
            where = "not finite" if not math.isfinite(value) else "above" if value > high else (
                "below" if value < low else None)
            logs[f"drift/{key}"] = torch.tensor(0.0 if where is None else 1.0)
            if where is None:
                continue
            cause = f"{key} {where}"
            self.counts[cause] = self.counts.get(cause, 0) + 1
            if self.counts[cause] == 1:
                bound = {"above": f" its bound {high:g}", "below": f" its bound {low:g}"}.get(where, "")
                warnings.warn(
                    f"{key} = {value:.4g} at step {step} is {where}{bound}: {_DRIFT_HINTS[kind, where]} "
                    f"(warned once per cause; logged as drift/{key})",
                    DriftWarning,
                    stacklevel=2,
                )
        return logs

    def state_dict(self) -> dict[str, dict[str, int]]:
        return {"counts": dict(self.counts)}

    def load_state_dict(self, state: Mapping[str, dict[str, int]]) -> None:
        _check_state_keys(state, ("counts",), "DriftMonitor")
        self.counts = dict(state["counts"])

    def __repr__(self) -> str:
        return f"DriftMonitor(adaptive_weight={self.adaptive_weight}, logits={self.logits})"


def _check_state_keys(state: object, keys: tuple[str, ...], owner: str) -> None:
    if not isinstance(state, Mapping) or sorted(state) != sorted(keys):
        found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"`state` of a {owner} must have the keys {sorted(keys)}; got {found}")

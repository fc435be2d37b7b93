"""Training state that outlives a process: EMA weights, the step counter, checkpoints on disk.

Checkpoints are folders ``<run>/checkpoints/checkpoint-<step>/`` written by
``Accelerator.save_state`` into a hidden temporary folder and then renamed into place, so a
process killed at any moment leaves either a complete checkpoint or none: ``latest_checkpoint``
only considers folders whose name is exactly ``checkpoint-<digits>``. The step number is parsed
from folder names in this module only.

A save that fails on any process (a full disk, a read-only folder) fails on all of them, leaves
no partial folder, and can be retried elsewhere: :func:`save_checkpoint_somewhere` tries the
run's ``checkpoints/``, then its ``rescue/`` folder, then the system's temporary folder
(:func:`checkpoint_places`), so the steps trained are kept if any of them can be written.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from train.safety import first_error

__all__ = [
    "EMA",
    "CheckpointError",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "OptimizerSnapshot",
    "TrainState",
    "checkpoint_places",
    "checkpoint_step",
    "latest_checkpoint",
    "latest_in_run",
    "prune_checkpoints",
    "publish_checkpoint",
    "run_dir_of_checkpoint",
    "save_checkpoint",
    "save_checkpoint_somewhere",
    "staging_dir",
]

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
EMA_FILE = "ema_generator.pt"  # the EMA generator's state dict, also readable without Accelerate


class EMA:
    """Exponential moving average of a model's parameters (buffers are copied).

    ``ema <- d * ema + (1 - d) * param`` with ``d = min(decay, (1 + n) / (10 + n))`` after ``n``
    updates, so early averages are not dominated by the random initialisation. Registered with
    ``accelerator.register_for_checkpointing`` through ``state_dict``/``load_state_dict``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`decay` must be in [0, 1); got {decay!r}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


class TrainState:
    """The optimisation step and the count of skipped (non-finite) steps, checkpointed."""

    def __init__(self) -> None:
        self.step = 0
        self.skipped = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.skipped = int(state["step"]), int(state["skipped"])


class OptimizerSnapshot:
    """A copy of an optimiser's parameters and per-parameter state, to take back one step.

    The trainer updates the discriminators before the generator's half of a step (which is judged
    by the updated discriminators); when that half turns out non-finite, the whole step is
    skipped, so the discriminators' update is undone with this. Costs one copy of the
    discriminators' weights and Adam moments per step (under 1 ms for the default ones on CPU,
    against 130 ms or more for the step).
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.values = [p.detach().clone() for p in self.params]
        self.state = {p: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in optimizer.state[p].items()}
                      for p in self.params if p in optimizer.state}

    @torch.no_grad()
    def restore(self) -> None:
        for param, value in zip(self.params, self.values, strict=True):
            param.copy_(value)
        self.optimizer.state.clear()  # parameters without state (before their first step) get none again
        self.optimizer.state.update(self.state)


class NonFiniteLossError(RuntimeError):
    """Raised after too many consecutive steps with a non-finite loss or gradient."""


class NonFiniteGuard:
    """Count consecutive non-finite steps; ``update(finite)`` returns whether to skip the step.

    A non-finite step is never applied to the weights; after ``patience`` of them in a row,
    :meth:`check` raises :class:`NonFiniteLossError` (save a checkpoint before calling it).
    """

    def __init__(self, patience: int = 5) -> None:
        if patience < 1:
            raise ValueError(f"`patience` must be >= 1; got {patience}")
        self.patience = patience
        self.in_a_row = 0

    def update(self, finite: bool) -> bool:
        self.in_a_row = 0 if finite else self.in_a_row + 1
        return not finite

    @property
    def exhausted(self) -> bool:
        return self.in_a_row >= self.patience

    def message(self, step: int) -> str:
        """Why the run stops, once :attr:`exhausted`."""
        return (f"{self.in_a_row} steps in a row up to step {step} had a non-finite loss or gradient "
                "(their updates were skipped). Lower the learning rate or the loss weights, try "
                "--mixed-precision no, or resume from an earlier checkpoint")

    def check(self, step: int) -> None:
        if self.exhausted:
            raise NonFiniteLossError(self.message(step) + ".")


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder, or ``None`` for any other name."""
    match = _CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def _complete_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete checkpoint with the highest step under ``root``, or ``None``."""
    found = _complete_checkpoints(Path(root))
    return found[-1] if found else None


def staging_dir(root: str | Path, step: int) -> Path:
    """A fresh hidden folder to write checkpoint ``step`` into before :func:`publish_checkpoint`."""
    path = Path(root) / f".tmp-checkpoint-{step}"
    return path


def publish_checkpoint(staging: Path, step: int) -> Path:
    """Rename a fully written staging folder to ``checkpoint-<step>`` (atomic on one filesystem)."""
    final = staging.parent / f"checkpoint-{step}"
    if final.exists():  # re-saving a step (e.g. the final save right after a periodic one)
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def run_dir_of_checkpoint(checkpoint: str | Path) -> Path:
    """``<output-dir>/<run-name>/checkpoints/checkpoint-<step>`` -> ``<output-dir>/<run-name>``."""
    return Path(checkpoint).resolve().parent.parent


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved on some process; raised on every process."""


def _on_every_process(accelerator, action) -> None:
    """Run ``action`` on this process, then raise :class:`CheckpointError` on every process if it
    failed on any (one collective, which also serves as the barrier between the phases of a save).
    Any exception counts: torch and safetensors report a full disk as ``RuntimeError`` or their own
    error types, not ``OSError``."""
    try:
        action()
        error = None
    except Exception as exc:  # noqa: BLE001 (see above)
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    error = first_error(accelerator, error)
    if error is not None:
        raise CheckpointError(error)


def save_checkpoint(accelerator, ckpt_root: Path, step: int, ema: EMA, keep: int,
                    files: dict[str, str] | None = None) -> Path:
    """``save_state`` into a hidden folder, then rename it: never a half-written checkpoint.

    ``files`` (name -> text, e.g. the run's ``config.json``) are written into the checkpoint too.
    Raises :class:`CheckpointError` on every process if any process failed; the hidden folder is
    then deleted (freeing what it took on a full disk).
    """
    ckpt_root = Path(ckpt_root)
    staging = staging_dir(ckpt_root, step)
    main = accelerator.is_main_process

    def prepare() -> None:
        if main:
            if staging.exists():
                shutil.rmtree(staging)  # left by a process killed mid-save
            staging.mkdir(parents=True)

    def write() -> None:
        accelerator.save_state(str(staging))  # every rank writes its RNG state here
        if main:
            torch.save(ema.model.state_dict(), staging / EMA_FILE)
            for name, text in (files or {}).items():
                (staging / name).write_text(text)

    def publish() -> None:
        if main:
            publish_checkpoint(staging, step)
            prune_checkpoints(ckpt_root, keep)

    try:
        _on_every_process(accelerator, prepare)
        _on_every_process(accelerator, write)
        _on_every_process(accelerator, publish)
    except CheckpointError:
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return ckpt_root / f"checkpoint-{step}"


def checkpoint_places(run_dir: Path, run_name: str) -> list[Path]:
    """Where a checkpoint goes, in order of preference: the run's ``checkpoints/``; its
    ``rescue/`` (when only ``checkpoints/`` is broken); the system's temporary folder (``$TMPDIR``,
    often another disk, when the run's disk is full or read-only)."""
    return [Path(run_dir) / "checkpoints", Path(run_dir) / "rescue",
            Path(tempfile.gettempdir()) / "genloss-rescue" / run_name]


def save_checkpoint_somewhere(accelerator, places: list[Path], step: int, ema: EMA, keep: int,
                              files: dict[str, str] | None = None) -> tuple[Path | None, list[str]]:
    """:func:`save_checkpoint` into the first of ``places`` that works (only the first is pruned to
    ``keep``). Returns the checkpoint (``None`` if every place failed) and one line per failure."""
    failures = []
    for i, root in enumerate(places):
        try:
            return save_checkpoint(accelerator, root, step, ema, keep if i == 0 else 0, files), failures
        except CheckpointError as error:
            failures.append(f"{root}: {error}")
    return None, failures


def latest_in_run(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run: in ``checkpoints/`` or, after a failed save,
    ``rescue/`` (the higher step wins; ``checkpoints/`` on a tie)."""
    found = [c for c in (latest_checkpoint(Path(run_dir) / sub) for sub in ("checkpoints", "rescue")) if c]
    return max(found, key=checkpoint_step) if found else None


def prune_checkpoints(root: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints; returns the deleted folders."""
    found = _complete_checkpoints(Path(root))
    doomed = found[:-keep] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed

"""Training state that outlives a process: EMA weights, the step counter, checkpoints on disk.

Checkpoints are folders ``<run>/checkpoints/checkpoint-<step>/`` written by
``Accelerator.save_state`` into a hidden temporary folder and then renamed into place, so a
process killed at any moment leaves either a complete checkpoint or none: ``latest_checkpoint``
only considers folders whose name is exactly ``checkpoint-<digits>``. The step number is parsed
from folder names in this module only.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "EMA",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "OptimizerSnapshot",
    "TrainState",
    "checkpoint_step",
    "latest_checkpoint",
    "prune_checkpoints",
    "publish_checkpoint",
    "run_dir_of_checkpoint",
    "save_checkpoint",
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

    def check(self, step: int) -> None:
        if self.exhausted:
            raise NonFiniteLossError(
                f"{self.in_a_row} steps in a row up to step {step} had a non-finite loss or gradient "
                "(their updates were skipped). Lower the learning rate or the loss weights, try "
                "--mixed-precision no, or resume from an earlier checkpoint."
            )


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


def save_checkpoint(accelerator, ckpt_root: Path, step: int, ema: EMA, keep: int) -> Path:
    """``save_state`` into a hidden folder, then rename it: never a half-written checkpoint."""
    staging = staging_dir(ckpt_root, step)
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)  # left by a process killed mid-save
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))  # every rank writes its RNG state here
    if accelerator.is_main_process:
        torch.save(ema.model.state_dict(), staging / EMA_FILE)
    accelerator.wait_for_everyone()
    final = ckpt_root / f"checkpoint-{step}"
    if accelerator.is_main_process:
        final = publish_checkpoint(staging, step)
        prune_checkpoints(ckpt_root, keep)
    accelerator.wait_for_everyone()
    return final


def prune_checkpoints(root: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints; returns the deleted folders."""
    found = _complete_checkpoints(Path(root))
    doomed = found[:-keep] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed

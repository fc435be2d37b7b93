"""A run's processes and folder: the Accelerator, the run's name, its provenance, metrics.jsonl and
the trackers fed with the same values.

Provenance recorded in ``config.json`` (:class:`train.config.RunRecord`): the exact command line,
the git commit of the code and whether tracked files differed from it, the versions of python,
torch, torchvision, accelerate and genloss, the device and the start time.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, broadcast_object_list

from train import state as st
from train.config import RunRecord, TrainConfig

__all__ = [
    "LogWindow",
    "MetricsLog",
    "check_one_job",
    "check_ranks_in_sync",
    "command_line",
    "device_name",
    "git_state",
    "make_accelerator",
    "new_record",
    "resolve_run",
    "start_trackers",
    "versions",
]

REPO = Path(__file__).resolve().parents[1]
TRACKER_PROJECT = "genloss"  # the W&B project; TensorBoard writes to <run>/tensorboard/genloss/


def has_accelerator_device() -> bool:
    """Whether a GPU-like device exists (torch.accelerator on recent torch, else CUDA)."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def check_one_job(num_processes: int, env=os.environ) -> None:
    """Refuse to train when the launcher started more processes than the job the Accelerator joined."""
    world = int(env.get("WORLD_SIZE", "1"))
    if num_processes != world:
        raise SystemExit(
            f"error: launched as {world} processes (WORLD_SIZE) but this process sees a job of "
            f"{num_processes}: the processes would train separately. Launch with "
            "`accelerate launch --multi_gpu --num_processes N train/gan.py`."
        )


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    """One Accelerator for the whole job; on a machine without GPUs, a multi-process launch is
    made one CPU DDP job over gloo (Accelerate would otherwise start independent processes)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = world > 1 and not has_accelerator_device()
    kwargs = [InitProcessGroupKwargs(backend="gloo")] if cpu else []
    accelerator = Accelerator(
        cpu=cpu, mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
        kwargs_handlers=kwargs, log_with=cfg.trackers() or None, project_dir=cfg.output_dir,
    )
    check_one_job(accelerator.num_processes)
    if accelerator.device.type == "cpu":
        # Never more threads than this process's share of the cores: oversubscribed OpenMP threads
        # spin-wait on each other (measured 8x slower per step on 2 shared cores).
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        share = max(1, (os.cpu_count() or 1) // local)
        torch.set_num_threads(share if cfg.cpu_threads == 0 else min(cfg.cpu_threads, share))
    return accelerator


def resolve_run(cfg: TrainConfig, run_name: str | None, resume: str | None) -> tuple[str, Path | None]:
    """The run name and the checkpoint to resume from (``None`` for a fresh start), the same on
    every process."""
    checkpoint = None
    if resume == "latest":
        roots = [Path(cfg.output_dir) / run_name / "checkpoints"] if run_name else \
            list(Path(cfg.output_dir).glob("*/checkpoints"))
        found = [c for c in (st.latest_checkpoint(r) for r in roots) if c is not None]
        checkpoint = max(found, key=lambda c: c.stat().st_mtime) if found else None
    elif resume is not None:
        checkpoint = Path(resume)
    if checkpoint is not None and run_name is None:
        run_name = st.run_dir_of_checkpoint(checkpoint).name
    if run_name is None:
        task = f"continue{cfg.context_frames}" if cfg.context_frames else "uncond"
        run_name = f"{datetime.now():%Y%m%d-%H%M%S}-{task}-{cfg.frames}x{cfg.size}"
    # Every process must agree on the name (clocks may tick between processes).
    run_name = broadcast_object_list([run_name])[0]
    return run_name, checkpoint


def command_line() -> dict:
    """The exact command that started this run, ``{"line", "argv", "cwd"}``.

    ``line`` is the ``accelerate launch ...`` command when the script runs under Accelerate's
    launcher (its command line, read from ``/proc`` on Linux), and this interpreter's own command
    line otherwise; ``argv`` is the script's ``sys.argv``.
    """
    line = sys.orig_argv
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
        parent = [part.decode() for part in parent if part]
        if any("accelerate" in part for part in parent[:3]):
            line = parent
    except (OSError, UnicodeDecodeError):
        pass  # not Linux, or no access: the interpreter's command line is the best we know
    return {"line": shlex.join(line), "argv": list(sys.argv), "cwd": os.getcwd()}


def git_state(root: Path = REPO) -> dict | None:
    """``{"commit", "dirty"}`` of the git checkout at ``root``, or ``None`` when ``root`` is not the
    top of one (or git is missing). ``dirty``: tracked files differ from the commit (untracked
    files, such as run outputs, don't count)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != Path(root).resolve():
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status)}


def versions() -> dict[str, str]:
    import accelerate
    import torchvision

    import genloss

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "accelerate": accelerate.__version__,
            "genloss": genloss.__version__}


def device_name(device: torch.device) -> str:
    """``"cpu"``, or e.g. ``"cuda:0 (NVIDIA H200)"``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def new_record(cfg: TrainConfig, accelerator: Accelerator, run_name: str, resumed_from: Path | None,
               perceptual: str, perceptual_note: str) -> RunRecord:
    """What this run records about itself in ``config.json``, provenance included."""
    adv_start, adv_ramp = cfg.adversarial_warmup()
    return RunRecord(
        run_name=run_name, resumed_from=str(resumed_from) if resumed_from else None,
        perceptual=perceptual, perceptual_note=perceptual_note, adv_start=adv_start, adv_ramp=adv_ramp,
        world_size=accelerator.num_processes, global_batch_size=cfg.global_batch_size(accelerator.num_processes),
        device=device_name(accelerator.device), started=datetime.now().astimezone().isoformat(timespec="seconds"),
        command=command_line(), git=git_state(), versions=versions(), trackers=cfg.trackers(),
    )


def start_trackers(accelerator: Accelerator, run_dir: Path, run_name: str, settings: dict) -> None:
    """Start the ``--report-to`` trackers of ``accelerator``: TensorBoard writes to
    ``<run_dir>/tensorboard/``, W&B to project ``genloss`` as run ``run_name``."""
    if not accelerator.log_with:
        return
    accelerator.project_configuration.logging_dir = str(run_dir / "tensorboard")
    # TensorBoard's hparams take only numbers, strings and bools.
    hparams = {k: ("" if v is None else v) for k, v in settings.items()}
    accelerator.init_trackers(TRACKER_PROJECT, config=hparams,
                              init_kwargs={"wandb": {"name": run_name, "dir": str(run_dir)}})


class MetricsLog:
    """``metrics.jsonl`` (one JSON record per line, ``{"step", <name>: value, ...}``) and the
    trackers, fed the same numbers. Writes on the main process only."""

    def __init__(self, path: Path, accelerator: Accelerator) -> None:
        self.path = path
        self.accelerator = accelerator

    def trim(self, step: int) -> None:
        """Drop the records an interrupted run logged after the checkpoint it resumes from."""
        if self.accelerator.is_main_process and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write_losses(self, step: int, logs: dict[str, torch.Tensor], **values: float) -> None:
        """One step's loss logs (0-d tensors), averaged over processes (call on every process),
        and ``values``."""
        names = sorted(logs)
        means = self.accelerator.reduce(torch.stack([logs[n].float() for n in names]), reduction="mean")
        self.write(step, {**dict(zip(names, means.tolist())), **values})

    def write(self, step: int, values: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        # Non-finite values become null: NaN is not JSON, and browsers reject it.
        finite = {n: v if not isinstance(v, float) or math.isfinite(v) else None for n, v in values.items()}
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **finite}) + "\n")
        numbers = {n: v for n, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.accelerator.log_with and numbers:
            self.accelerator.log(numbers, step=step)


class LogWindow:
    """The progress bar's numbers: ``g/total`` and ``d/total`` averaged over the steps since the bar
    was last updated. Summed on the device, so nothing syncs until the bar shows them."""

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None
        self.steps = 0

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        totals = torch.stack([logs["g/total"], logs["d/total"]]).float()
        self.sums = totals if self.sums is None else self.sums + totals
        self.steps += 1

    def means(self) -> dict[str, str]:
        """``{"g": ..., "d": ...}`` formatted for ``tqdm.set_postfix``; starts a new window."""
        g, d = (self.sums / self.steps).tolist()
        self.sums, self.steps = None, 0
        return {"g": f"{g:.3f}", "d": f"{d:.3f}"}


def check_ranks_in_sync(accelerator: Accelerator, model: torch.nn.Module, log: MetricsLog, step: int) -> None:
    """Fail loudly if the processes' weights differ (they would if DDP did not sync)."""
    if accelerator.num_processes == 1:
        return
    with torch.no_grad():
        checksum = torch.stack([p.double().sum() for p in model.parameters()]).sum().reshape(1)
    sums = accelerator.gather(checksum.to(accelerator.device))
    spread = (sums.max() - sums.min()).item()
    log.write(step, {"ranks_in_sync": spread == 0.0, "rank_weight_checksums": sums.tolist()})
    if spread != 0.0:
        raise SystemExit(f"error: the {accelerator.num_processes} processes ended with different weights "
                         f"(checksums {sums.tolist()}): gradients were not synchronised")

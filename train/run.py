"""A run's processes and folder: the Accelerator, which run folder a command writes (and with which
settings when it resumes one), its provenance, metrics.jsonl and the trackers fed with the same values.

A run folder holds one run. A new run is refused a folder that holds an earlier run's checkpoints
or metrics (``--overwrite`` replaces them), a running trainer keeps its folder locked
(:class:`train.safety.RunLock`), and a resumed run keeps its saved settings
(:func:`train.config.settings_for_resume`).

Provenance recorded in ``config.json`` (:class:`train.config.RunRecord`): the exact command line,
the git commit of the code and whether tracked files differed from it, the versions of python,
torch, torchvision, accelerate and genloss, the device and the start time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shlex
import shutil
import signal
import typing
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, broadcast_object_list

from train import state as st
from train.config import ConfigError, RunRecord, TrainConfig, load_config, r1_on_summed_logits, settings_for_resume
from train.launcher import AFTER_LAUNCHER_LOG
from train.safety import (
    RunError,
    RunLock,
    SettingsError,
    Stopped,
    StopSignals,
    check_writable,
    exit_code_of_signal,
    first_error,
)

__all__ = [
    "Checkpoints",
    "LogWindow",
    "MetricsLog",
    "RunPlan",
    "check_one_job",
    "check_ranks_in_sync",
    "claim_run",
    "command_line",
    "device_name",
    "earlier_run",
    "git_state",
    "make_accelerator",
    "name_run",
    "new_record",
    "plan_run",
    "resume_command",
    "start_trackers",
    "stop_requested",
    "tracked_files",
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


@dataclass
class RunPlan:
    """Which run folder a command writes, from which checkpoint, with which settings."""

    config: TrainConfig  # the settings to train with (with --resume: the saved ones, changed as allowed)
    run_name: str | None  # None until name_run() names a new run
    checkpoint: Path | None = None  # the checkpoint to resume from
    resuming: bool = False  # --resume was given (even if no checkpoint was found)
    saved: dict = field(default_factory=dict)  # the resumed run's recorded "run" section
    changes: list = field(default_factory=list)  # [(setting, saved, given)] changed on this resume
    notes: list = field(default_factory=list)  # lines to print once at start-up


def plan_run(options) -> RunPlan:
    """The run folder and settings of a command (``train.options.Options``), from the files alone:
    every process computes the same plan, before any process group exists (the Accelerator is
    built from its settings).

    ``--resume latest`` takes the newest checkpoint of ``--run-name`` (its ``checkpoints/`` or
    ``rescue/``), or without ``--run-name`` the newest of all runs in ``--output-dir``, saying which
    and why. ``--resume PATH`` takes a checkpoint folder (or a run folder's newest). The settings
    are then the checkpoint's own ``config.json`` (else its run's) with the typed flags applied as
    :func:`~train.config.settings_for_resume` allows. Raises :class:`SettingsError` /
    :class:`~train.config.ConfigError` (exit 2) for a checkpoint that isn't one or a forbidden change.
    """
    cfg, name = options.config, options.run_name
    if options.resume is None:
        notes = []
        if options.config_file is not None and r1_on_summed_logits(cfg, load_config(options.config_file)[1]):
            notes.append(f"--config {options.config_file}: written by a trainer that applied R1 to the summed patch "
                         f"logits; its --r1-gamma {cfg.r1_gamma} is applied per sample here, a penalty about P^2 (~1000 on "
                         "the video discriminator) times weaker than in that run (README, 'R1 units')")
        return RunPlan(cfg, name, notes=notes)
    output_dir = Path(cfg.output_dir)
    notes = []
    if options.resume == "latest":
        if name is not None:
            checkpoint = st.latest_in_run(output_dir / name)
            if checkpoint is None:
                notes.append(f"--resume latest: run {name} has no checkpoint in {output_dir / name}; starting it")
        else:
            found = [c for c in (st.latest_in_run(d) for d in sorted(output_dir.glob("*/"))) if c is not None]
            checkpoint = max(found, key=lambda c: c.stat().st_mtime) if found else None
            if checkpoint is None:
                notes.append(f"--resume latest: no run in {output_dir} has a checkpoint; starting a new run")
            else:
                name = st.run_dir_of_checkpoint(checkpoint).name
                saved_at = datetime.fromtimestamp(checkpoint.stat().st_mtime).isoformat(sep=" ", timespec="seconds")
                notes.append(f"--resume latest: picked run {name}, whose {checkpoint.name} (saved {saved_at}) is the "
                             f"newest checkpoint of the {len(found)} run(s) in {output_dir} that have one; "
                             "pass --run-name to choose")
    else:
        checkpoint = Path(options.resume)
        if st.checkpoint_step(checkpoint) is None:
            checkpoint = st.latest_in_run(checkpoint)
            if checkpoint is None:
                raise SettingsError(f"--resume {options.resume}: neither a checkpoint-<step> folder nor a run folder "
                                    "with checkpoints")
    if checkpoint is None:
        return RunPlan(cfg.validate(), name, resuming=True, notes=notes)
    saved, record, saved_file = _saved_settings(checkpoint, None if name is None else output_dir / name)
    name = name or record.get("run_name") or st.run_dir_of_checkpoint(checkpoint).name
    if r1_on_summed_logits(saved, record):
        # Continuing would change the run's R1 about a thousandfold in the middle of training.
        raise SettingsError(
            f"resuming run {name}: it was trained by a trainer that applied R1 to the summed patch logits "
            f"(--r1-gamma {saved.r1_gamma}); this one applies it per sample, a penalty about P^2 (~1000 on the "
            "video discriminator) times weaker, so it can't continue the run as it was trained. Start a new run "
            f"from its settings with --config {saved_file} (README, 'R1 units')")
    try:
        config, changes, more = settings_for_resume(saved, options.given)
        config.validate()
        if "heldout_fraction" in options.given and config.dataset is None:
            raise ConfigError("--heldout-fraction applies to --dataset folders, and this run trains on moving shapes")
    except ConfigError as error:
        picked = f" ({notes[-1]})" if notes else ""
        raise ConfigError(f"resuming run {name}{picked}: {error}") from None
    notes += [f"--resume: {_flag(n)} {old!r} -> {new!r} (the run's saved value -> given; recorded in config.json)"
              for n, old, new in changes] + more
    return RunPlan(config, name, checkpoint, True, record, changes, notes)


def _saved_settings(checkpoint: Path, run_dir: Path | None) -> tuple[TrainConfig, dict, Path]:
    """The settings a checkpoint was trained with, its run's record and the file they came from: its
    own ``config.json`` (checkpoints carry one), else that of the run folder written to, else of the
    folder it sits in."""
    folders = [f for f in (checkpoint, run_dir, st.run_dir_of_checkpoint(checkpoint)) if f is not None]
    for folder in folders:
        if (folder / "config.json").is_file():
            return *load_config(folder / "config.json"), folder / "config.json"
    raise RunError(f"--resume {checkpoint}: can't find the settings it was trained with (no config.json in "
                   f"{', '.join(map(str, folders))})")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def name_run(accelerator: Accelerator, plan: RunPlan) -> RunPlan:
    """The plan every process follows: the main process's, with a new run named
    ``<date>-<time>-<task>`` (clocks may tick between processes, so one process names it)."""
    if plan.run_name is None:
        cfg = plan.config
        task = f"continue{cfg.context_frames}" if cfg.context_frames else "uncond"
        plan = dataclasses.replace(plan, run_name=f"{datetime.now():%Y%m%d-%H%M%S}-{task}-{cfg.frames}x{cfg.size}")
    if accelerator.num_processes > 1:
        name, checkpoint = broadcast_object_list([plan.run_name, plan.checkpoint])
        plan = dataclasses.replace(plan, run_name=name, checkpoint=checkpoint)
    return plan


def earlier_run(run_dir: Path) -> str | None:
    """What an earlier run left in ``run_dir`` (checkpoints, metrics), or ``None``."""
    held = []
    checkpoints = [p for sub in ("checkpoints", "rescue") if (run_dir / sub).is_dir() for p in (run_dir / sub).iterdir()
                   if p.is_dir() and (st.checkpoint_step(p) is not None or p.name.startswith(".tmp-checkpoint-"))]
    if checkpoints:
        newest = st.latest_in_run(run_dir)
        held.append(f"{len(checkpoints)} checkpoint folder(s)" + (f", the newest {newest.name}" if newest else ""))
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        held.append("metrics.jsonl")
    return " and ".join(held) or None


def claim_run(accelerator: Accelerator, plan: RunPlan, overwrite: bool, say) -> RunLock | None:
    """Make the run folder this command's, before any scan or model build; returns the lock (held by
    the main process, ``None`` elsewhere), which the caller releases on every exit path.

    In order: the samples folder must be neither the run folder nor hold files tracked by git (a
    run never rewrites the repository's committed gallery); every output folder must be writable
    (:func:`train.safety.check_writable`), an existing ``checkpoints/`` included; the main process
    locks the run folder (a second trainer on the same run stops here); a new run
    is refused a folder holding an earlier run, unless ``overwrite`` deletes that run's
    checkpoints, metrics, config, tracker logs and samples. Errors are agreed on by every process.
    """
    cfg = plan.config
    run_dir = Path(cfg.output_dir) / plan.run_name
    samples = Path(cfg.samples_dir)
    main = accelerator.is_main_process
    # checkpoints/ is checked only when it exists: creating it here would leave an empty one
    # behind a start that fails later (a writable run folder can hold it).
    checkpoints = run_dir / "checkpoints" if (run_dir / "checkpoints").exists() else run_dir
    folders = {"--output-dir": run_dir, "--output-dir (checkpoints)": checkpoints}
    if main:
        folders["--samples-dir"] = samples
        if (samples / plan.run_name).is_dir():
            folders["--samples-dir"] = samples / plan.run_name
    elif accelerator.num_processes > 1:
        folders = {"--output-dir (checkpoints)": checkpoints}  # every rank writes its RNG state there
    lock, error = None, None
    try:
        if main:
            _check_samples_dir(samples, run_dir)
        check_writable(folders)
        if main:
            lock = RunLock(run_dir)
            if (warning := lock.acquire(command_line()["line"])) is not None:
                say(warning)
            held = earlier_run(run_dir)
            # A checkpoint of this run (in its folder, or a rescue elsewhere that names it) continues it.
            new_here = plan.checkpoint is None or (plan.saved.get("run_name") != plan.run_name
                                                   and st.run_dir_of_checkpoint(plan.checkpoint) != run_dir.resolve())
            if held and new_here and not plan.resuming and not overwrite:
                raise SettingsError(
                    f"run folder {run_dir} already holds an earlier run ({held}). Continue it with "
                    f"--run-name {plan.run_name} --resume latest, start a new run under another --run-name, "
                    "or replace it with --overwrite")
            if held and new_here and plan.checkpoint is not None:
                raise SettingsError(f"run folder {run_dir} already holds a run ({held}): resume "
                                    f"{plan.checkpoint} into a new --run-name")
            if overwrite:
                for line in _clear_run(run_dir, samples / plan.run_name):
                    say(line)
    except RunError as exc:
        error = exc
    message = first_error(accelerator, None if error is None else f"{type(error).__name__}\0{error}")
    if message is not None:
        if lock is not None:
            lock.release()
        kind, _, text = message.partition("\0")
        if error is not None:
            raise error
        raise (SettingsError if kind.endswith("SettingsError") else RunError)(text)
    return lock


def _clear_run(run_dir: Path, samples: Path) -> list[str]:
    """``--overwrite``: delete what an earlier run wrote (its lock is ours by now)."""
    removed = []
    for path in (run_dir / "checkpoints", run_dir / "rescue", run_dir / "tensorboard", run_dir / "wandb",
                 run_dir / "metrics.jsonl", run_dir / "config.json", run_dir / AFTER_LAUNCHER_LOG, samples):
        if path.is_dir():
            held = any(path.iterdir())  # an empty folder is no earlier run's output: not reported
            shutil.rmtree(path)
            if not held:
                continue
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(str(path))
    return [f"--overwrite: deleted the earlier run's {', '.join(removed)}"] if removed else []


def _check_samples_dir(samples: Path, run_dir: Path) -> None:
    """Refuse a ``--samples-dir`` that is the run folder, or that holds files tracked by git: a run
    rewrites the gallery page and its run's card, and the repository's committed gallery changes
    only when it is published (``python train/gallery.py --publish``)."""
    if samples.resolve() == run_dir.resolve():
        raise SettingsError(f"--samples-dir {str(samples)!r} is the run folder of --run-name {run_dir.name}: "
                            "choose another --run-name or --samples-dir")
    tracked = tracked_files(samples)
    if tracked:
        raise SettingsError(
            f"--samples-dir {str(samples)!r} holds {len(tracked)} file(s) tracked by git (e.g. "
            f"{samples / tracked[0]}): a run would rewrite them. Pass a --samples-dir outside the tracked files "
            "(the default, runs/samples, is git-ignored); publish a finished run's samples with: python "
            "train/gallery.py --publish <samples-dir>/<run-name> --out <gallery>")


# Flags of one invocation, and how many values each takes: not repeated in a resume command.
_PER_INVOCATION = {"--resume": 1, "--run-name": 1, "--config": 1, "--overwrite": 0}


def resume_command(command: dict, run_name: str, checkpoint: Path | None = None) -> str:
    """The command that continues a run: the command line that started this process (``command``,
    as :func:`command_line` records it) without ``--resume``, ``--run-name``, ``--config`` and
    ``--overwrite``, plus ``--run-name <run> --resume latest``, or the checkpoint's path when it
    lies outside the run folder (a rescue in the temporary folder)."""
    line, argv = shlex.split(command["line"]), list(command["argv"])
    tail = len(argv)
    prefix = line[:-tail] if 0 < tail <= len(line) and line[-tail:] == argv else [sys.executable]
    kept, skip = [], 0
    for arg in argv[1:]:
        if skip:
            skip -= 1
            continue
        flag, has_value, _ = arg.partition("=")
        if flag in _PER_INVOCATION:
            skip = 0 if has_value else _PER_INVOCATION[flag]
            continue
        kept.append(arg)
    where = "latest" if checkpoint is None else str(checkpoint)
    return shlex.join([*prefix, argv[0], *kept, "--run-name", run_name, "--resume", where])


class Checkpoints:
    """Where a run's checkpoints go, and how it stops: every stop first saves the steps trained so
    far, wherever that works (:func:`train.state.checkpoint_places`), and says where and how to
    resume. Call its methods on every process (saves are collective).

    Args:
        files: name -> text written into every checkpoint (the run's ``config.json``).
        command: the run's recorded command line (``RunRecord.command``), for the resume command.
    """

    def __init__(self, accelerator: Accelerator, run_dir: Path, run_name: str, keep: int, files: dict[str, str],
                 command: dict, say) -> None:
        self.accelerator, self.run_dir, self.run_name, self.keep = accelerator, Path(run_dir), run_name, keep
        self.files, self.command, self.say = files, command, say
        self.places = st.checkpoint_places(run_dir, run_name)
        self.last: tuple[int, Path] | None = None  # (step, folder) of the newest checkpoint saved here

    def save(self, step: int, ema: st.EMA) -> Path:
        """A scheduled checkpoint into the run's ``checkpoints/``. When that fails it goes to the next
        place that works and the run stops (:class:`RunError` saying where): the disk needs attention."""
        path, failures = self._save(step, ema)
        if path is None or failures:
            raise RunError(self._report(step, f"saving checkpoint-{step} failed ({failures[0]})", path, failures))
        return path

    def stop(self, step: int, ema: st.EMA, *, signum: int = 0, why: str | None = None) -> typing.NoReturn:
        """Save step ``step`` (unless saved already), then raise :class:`Stopped` for a stop signal
        (exit code ``128 + signum``) or :class:`RunError` with ``why``."""
        path, failures = (self.last[1], []) if self.last and self.last[0] == step else self._save(step, ema)
        for failure in failures:
            self.say(f"warning: couldn't save checkpoint-{step} in {failure}")
        if path is not None:
            self.say(f"step {step}: saved {path}")
        if signum and why:
            self.say(f"warning: {why}")
        if signum:
            if path is None:
                raise Stopped(self._report(step, f"interrupted by {signal.Signals(signum).name}", None, failures),
                              exit_code_of_signal(signum))
            raise Stopped(f"interrupted at step {step}; resume with: {self.resume_command(path)}",
                          exit_code_of_signal(signum))
        raise RunError(self._report(step, why, path, failures))

    def resume_command(self, checkpoint: Path | None) -> str:
        """The command that continues the run from ``checkpoint`` (``--resume latest`` finds it
        when it lies in the run folder)."""
        inside = checkpoint is None or self.run_dir.resolve() in Path(checkpoint).resolve().parents
        return resume_command(self.command, self.run_name, None if inside else checkpoint)

    def _save(self, step: int, ema: st.EMA) -> tuple[Path | None, list[str]]:
        path, failures = st.save_checkpoint_somewhere(self.accelerator, self.places, step, ema, self.keep, self.files)
        if path is not None:
            self.last = (step, path)
        return path, failures

    def _report(self, step: int, why: str, path: Path | None, failures: list[str]) -> str:
        if path is None:
            newest = st.latest_in_run(self.run_dir)
            return (f"{why} at step {step}, and no checkpoint could be saved anywhere ({'; '.join(failures)}); "
                    f"the newest checkpoint is {newest or 'none'}")
        return (f"{why} at step {step}. The {step} steps trained so far are saved in {path}; once that is fixed, "
                f"resume with: {self.resume_command(path)}")


def stop_requested(accelerator: Accelerator, signals: StopSignals | None, failed: bool) -> tuple[int, bool]:
    """``(signal, failed)`` as every process agrees: the stop signal a process received (0 for none;
    the highest number if several did) and whether a process failed to write an output. One
    all-gather of two integers per step in a multi-process job, so that every rank stops at the
    same step even when only one of them got the signal."""
    signum = (signals.received or 0) if signals is not None else 0
    if accelerator.num_processes == 1:
        return signum, failed
    flags = torch.tensor([[signum, int(failed)]], device=accelerator.device)
    signum, failed = accelerator.gather(flags).amax(dim=0).tolist()
    return int(signum), bool(failed)


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


def tracked_files(folder: Path) -> list[str]:
    """The files under ``folder`` that git tracks (paths relative to ``folder``), in whatever
    repository holds it; ``[]`` when it doesn't exist, is in no repository or git is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    try:
        out = subprocess.run(["git", "-C", str(folder), "ls-files", "-z", "--", "."], capture_output=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [name for name in out.stdout.decode(errors="replace").split("\0") if name]


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


def new_record(accelerator: Accelerator, plan: RunPlan, perceptual: str, perceptual_note: str) -> RunRecord:
    """What this run records about itself in ``config.json``, provenance included; on a resume, the
    settings changed then and on earlier resumes (``changes``)."""
    cfg, resumed_from = plan.config, plan.checkpoint
    adv_start, adv_ramp = cfg.adversarial_warmup()
    step = st.checkpoint_step(resumed_from) if resumed_from else None
    changes = list(plan.saved.get("changes", [])) + [{"step": step, "setting": name, "saved": old, "given": new}
                                                     for name, old, new in plan.changes]
    return RunRecord(
        run_name=plan.run_name, resumed_from=str(resumed_from) if resumed_from else None, changes=changes,
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
    trackers, fed the same numbers. Writes on the main process only.

    A write that fails (a full disk) does not raise: it is kept in :attr:`failure` for the training
    loop, which then saves a checkpoint and stops, and later records are not attempted.
    """

    def __init__(self, path: Path, accelerator: Accelerator) -> None:
        self.path = path
        self.accelerator = accelerator
        self.failure: str | None = None

    def trim(self, step: int) -> None:
        """Drop the records an interrupted run logged after the checkpoint it resumes from."""
        if self.accelerator.is_main_process and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write_losses(self, step: int, logs: dict[str, torch.Tensor], **values: float) -> dict:
        """One step's loss logs (0-d tensors), averaged over processes (call on every process),
        and ``values``. Returns the record (on every process)."""
        names = sorted(logs)
        means = self.accelerator.reduce(torch.stack([logs[n].float() for n in names]), reduction="mean")
        record = {**dict(zip(names, means.tolist())), **values}
        self.write(step, record)
        return {"step": step, **record}

    def write(self, step: int, values: dict) -> None:
        if not self.accelerator.is_main_process or self.failure is not None:
            return
        # Non-finite values become null: NaN is not JSON, and browsers reject it.
        finite = {n: v if not isinstance(v, float) or math.isfinite(v) else None for n, v in values.items()}
        numbers = {n: v for n, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        try:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, **finite}) + "\n")
            if self.accelerator.log_with and numbers:
                self.accelerator.log(numbers, step=step)
        except OSError as error:
            self.failure = f"writing {self.path} failed ({error.strerror or error})"


class LogWindow:
    """The progress bar's numbers: ``g/total`` and ``d/total`` averaged over the steps since the bar
    was last updated. Summed on the device, so nothing syncs until the bar shows them.

    It also keeps the newest lazy penalties (``d/r1``, ``d/r2``): they are computed every
    ``--r1-interval`` steps only, which a ``--log-every`` grid may never meet (16 and 25 first meet
    at step 400), so :meth:`with_penalties` carries the newest into each logged record."""

    PENALTIES = ("d/r1", "d/r2")

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None
        self.steps = 0
        self.names: list[str] = []
        self.penalties: dict[str, torch.Tensor] = {}

    def with_penalties(self, logs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``logs`` and the newest value of each lazy penalty it lacks."""
        return {**self.penalties, **logs}

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        self.penalties.update({name: logs[name] for name in self.PENALTIES if name in logs})
        # No "d/total" in a run whose discriminators are off (train.losses.DISCRIMINATORS_OFF).
        self.names = [name for name in ("g/total", "d/total") if name in logs]
        totals = torch.stack([logs[name] for name in self.names]).float()
        self.sums = totals if self.sums is None else self.sums + totals
        self.steps += 1

    def means(self) -> dict[str, str]:
        """``{"g": ..., "d": ...}`` formatted for ``tqdm.set_postfix``; starts a new window."""
        means = (self.sums / self.steps).tolist()
        self.sums, self.steps = None, 0
        return {name.removesuffix("/total"): f"{value:.3f}" for name, value in zip(self.names, means, strict=True)}


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

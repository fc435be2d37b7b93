"""The trainer and its launcher: the tie that stops the trainer when ``accelerate launch`` (or
torchrun) dies, and output streams that survive the launcher's end.

Torch-free on purpose: ``train/gan.py`` calls :func:`guard_streams` and :func:`tie_to_launcher`
before its heavy imports, so a launcher killed meanwhile takes the trainer along and a broken pipe
never kills it mid-step. What a stop then does (finish the step, save, exit ``128 + signal``) is
:class:`train.safety.StopSignals`.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

__all__ = [
    "AFTER_LAUNCHER_LOG",
    "divert",
    "divert_if_launcher_gone",
    "guard_streams",
    "is_launcher",
    "set_fallback",
    "tie_to_launcher",
    "write_notice",
]


# ----------------------------------------------------------------------------------------------
# The tie to the launcher


_LAUNCHERS = ("accelerate", "torchrun", "torch.distributed.run")
_PR_SET_PDEATHSIG = 1


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_launcher(argv: list[str]) -> bool:
    """Whether a command line is ``accelerate launch`` or ``torchrun`` (any of its spellings)."""
    return any(name in Path(part).name or part == name for part in argv[:3] for name in _LAUNCHERS)


def tie_to_launcher() -> bool:
    """When started by ``accelerate launch`` (or torchrun), ask Linux to send this process SIGTERM
    when the launcher dies, so that a killed launcher never leaves a trainer running on its own;
    the trainer then stops as for any SIGTERM (saves a checkpoint, exits 143). Returns whether the
    tie was made.

    Accelerate's single-process launcher forwarded no signal to its child before 1.16 (SIGTERM
    killed the launcher alone); from 1.16 on it sends its child SIGTERM on SIGTERM or SIGINT and
    SIGKILL 5 s later, and pipes the child's stderr through itself (:func:`guard_streams` covers a
    launcher that dies with the pipe's reader). ``--multi_gpu`` runs torchrun's agent in the
    launcher, which forwards SIGINT and SIGTERM to its workers (then SIGKILL after
    ``TORCH_ELASTIC_SHUTDOWN_TIMEOUT``, 30 s) but leaves them running when it is itself killed
    with SIGKILL; the tie covers that too.
    ``PR_SET_PDEATHSIG`` is Linux-only; elsewhere nothing is done. Started from a shell, a
    ``nohup`` or a job script the trainer is not tied: it must survive its parent there.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    if not is_launcher(_cmdline(parent)):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return False
    global _launcher
    _launcher = parent
    if os.getppid() != parent:  # the launcher died before the tie was made: nothing will signal us
        os.kill(os.getpid(), signal.SIGTERM)
    return True


# ----------------------------------------------------------------------------------------------
# Output streams that may close under us


# EPIPE: the pipe's reader is gone (``accelerate launch`` >= 1.13 pipes its child's stderr through
# itself, so a killed launcher closes it); EIO: the terminal went away (a closed ssh session).
_LOST = (errno.EPIPE, errno.EIO)
_guards: dict[int, _GuardedStream] = {}  # fd -> its guard


class _GuardedStream:
    """A text stream whose writes survive the loss of what it writes to: on the first write that
    fails because the reader is gone, its file descriptor is pointed at the fallback file (or
    ``/dev/null``) with ``dup2``, and the write is retried there. Everything else is the stream's."""

    def __init__(self, stream, name: str) -> None:
        self._stream, self._name = stream, name
        self.lost = False

    def write(self, text: str) -> int:
        return self._retry(lambda: self._stream.write(text))

    def writelines(self, lines) -> None:
        self._retry(lambda: self._stream.writelines(lines))

    def flush(self) -> None:
        self._retry(self._stream.flush)

    def _retry(self, call):
        try:
            return call()
        except OSError as error:
            if error.errno not in _LOST or self.lost:
                raise
            divert(self._stream.fileno())
            return call()  # what failed is still in the buffer: it lands in the fallback

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


_fallback: Path | None = None
_launcher: int | None = None  # the launcher's pid once tie_to_launcher made the tie
AFTER_LAUNCHER_LOG = "after-launcher.log"  # in the run folder: what the trainer printed once its reader was gone


def divert(fd: int) -> None:
    """Point ``fd`` at the fallback file (``/dev/null`` before one is set) and note it there."""
    guard = _guards.get(fd)
    if guard is not None:
        guard.lost = True
    target = os.open(_fallback or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(target, fd)
    finally:
        os.close(target)
    if _fallback is not None:
        name = guard._name if guard is not None else f"fd {fd}"
        os.write(fd, f"[{datetime.now().astimezone().isoformat(timespec='seconds')}] {name} lost its reader "
                     "(the launcher or the terminal is gone); what followed is below\n".encode())


def guard_streams(fallback: Path | None = None) -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` survive a reader that goes away.

    Without it, the first print after a killed launcher (or a closed terminal) raises
    ``BrokenPipeError`` wherever it happens (a progress-bar refresh mid-step), and the trainer dies
    without saving: the tie to the launcher then signals a process that can no longer stop cleanly.
    With it, such a write goes to ``fallback`` instead (from then on, for that stream), so the stop
    that follows still saves its step and its message (``interrupted at step N; resume with: ...``)
    is kept in the run folder. Call it once at start-up, before anything holds a reference to the
    streams (tqdm, logging handlers); call :func:`set_fallback` once the run folder is known.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, _GuardedStream) or stream is None:
            continue
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue  # not a file (pytest's capture, a StringIO): nothing can close under it
        guarded = _GuardedStream(stream, name)
        _guards[fd] = guarded
        setattr(sys, name, guarded)
    if fallback is not None:
        set_fallback(fallback)


def set_fallback(path: Path) -> None:
    """Where output goes once its reader is gone; a stream already lost is moved there too."""
    global _fallback
    _fallback = Path(path)
    for fd, guard in _guards.items():
        if guard.lost:
            guard.flush()
            divert(fd)


def divert_if_launcher_gone() -> bool:
    """Before last words: if the launcher this trainer is tied to is dying or gone, send stderr to
    the fallback now. Returns whether it did.

    A broken pipe is not enough to tell: the kernel sends the tie's SIGTERM when the launcher's
    main thread exits, while its other threads may still hold the pipe open for a moment, so a
    write then succeeds into a buffer nobody will read (4 of 10 messages were lost that way)."""
    guard = _guards.get(2)
    if _launcher is None or guard is None or guard.lost or not _launcher_dying(_launcher):
        return False
    try:
        guard.flush()
    except OSError:
        pass
    divert(2)
    return True


def _launcher_dying(pid: int) -> bool:
    if os.getppid() != pid:
        return True  # already gone: we were re-parented
    try:  # the thread that started us; its exit is what fires PR_SET_PDEATHSIG
        state = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X", "x")


def write_notice(text: str) -> None:
    """Write ``text`` and a newline to stderr's file descriptor, unbuffered: safe from a signal
    handler, which Python may run inside a ``print`` to the same stream (a buffered write would be
    refused as re-entrant). A stderr whose reader is gone is diverted as by :func:`guard_streams`."""
    data = (text + "\n").encode()
    try:
        fd = sys.__stderr__.fileno()
    except (OSError, ValueError, AttributeError):
        return
    for _ in range(2):
        try:
            os.write(fd, data)
            return
        except OSError as error:
            if error.errno not in _LOST:
                return  # no usable stderr: what the notice says is also in the run's exit message
            divert(fd)



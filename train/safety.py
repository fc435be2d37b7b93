"""What keeps a run from being lost or mixed up: user-facing errors, the run folder's lock, stop
signals, and the start-up check that every output folder is writable. The tie to the launcher and
the output streams that survive it are in ``train/launcher.py``.

Exit codes of ``train/gan.py`` (the launcher ``accelerate launch`` itself exits 1 after any
failure of its child):

====  ==========================================================================================
0     trained to ``--max-steps``
1     a run-time failure (data, a file that can't be written, a run held by another trainer, ...)
2     bad settings: a bad flag or value, a run name already taken, a resume that changes the run
130   SIGINT (Ctrl-C): the step finished, a checkpoint saved (a second Ctrl-C: exit at once)
143   SIGTERM: the same
138   SIGUSR1 (what SLURM's ``--signal=USR1@<seconds>`` sends before pre-empting a job): the same
====  ==========================================================================================

128 + the signal's number, as a shell reports a process killed by that signal, so job scripts
that test for it keep working.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from train.launcher import write_notice

__all__ = [
    "EXIT_FAILURE",
    "EXIT_SETTINGS",
    "STOP_SIGNALS",
    "Interrupted",
    "RunError",
    "RunLock",
    "SettingsError",
    "StopSignals",
    "Stopped",
    "check_writable",
    "exit_code_of_signal",
    "first_error",
]

EXIT_FAILURE = 1
EXIT_SETTINGS = 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class RunError(Exception):
    """A problem the user can fix, reported as one ``error: ...`` line without a traceback."""

    exit_code = EXIT_FAILURE


class SettingsError(RunError):
    """The command line can't work as typed (exit code 2, as argparse's errors)."""

    exit_code = EXIT_SETTINGS


def exit_code_of_signal(signum: int) -> int:
    return 128 + int(signum)


class Stopped(Exception):
    """The run stopped on a stop signal, after saving what it could: the message (``interrupted at
    step N; resume with: ...``) is printed as it is, and the process exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(BaseException):
    """A stop signal that ends the process now. A ``BaseException``, as ``KeyboardInterrupt``, so
    that ``except Exception`` in a save or a library call does not swallow it."""

    def __init__(self, signum: int, why: str) -> None:
        super().__init__(why)
        self.signum = signum
        self.exit_code = exit_code_of_signal(signum)


def first_error(accelerator, error: str | None) -> str | None:
    """The first process's error message, on every process (``None`` when all succeeded). Call it
    on every process: in a multi-process job it is one collective, so a failure on one process
    stops all of them at the same point instead of leaving the others waiting in the next one."""
    if accelerator.num_processes == 1:
        return error
    from accelerate.utils import gather_object

    errors = gather_object([error])
    return next((f"process {rank}: {e}" for rank, e in enumerate(errors) if e is not None), None)


# ----------------------------------------------------------------------------------------------
# Stop signals


class StopSignals:
    """SIGINT, SIGTERM and SIGUSR1 as requests to stop cleanly (a context manager that installs the
    handlers and puts the previous ones back).

    Before :meth:`arm` (start-up: nothing trained, nothing to save) and after :meth:`finish` (the
    final checkpoint is saved) a signal raises :class:`Interrupted` at once. While armed, the first
    signal only sets :attr:`received`: the loop finishes its step, saves a checkpoint and exits with
    ``128 + signal``. After that (or once the loop is :meth:`stopping` for another reason), a
    second SIGINT (Ctrl-C again) raises :class:`Interrupted` at once, and a SIGTERM or SIGUSR1 is
    ignored: it is what a launcher sends its child after the user's Ctrl-C reached both, or
    torchrun sends the ranks still saving when another rank has exited.

    The handler writes its notice with ``os.write``: Python runs handlers between bytecodes, possibly
    inside a ``print`` to the same stream, which a buffered write would refuse as re-entrant.
    """

    def __init__(self, notice: bool = True) -> None:
        self.received: int | None = None  # the first stop signal while armed (0: stopping anyway)
        self.armed = False
        self.notice = notice
        self._unarmed = "during start-up: nothing trained yet, nothing saved"
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def arm(self) -> None:
        self.armed = True

    def stopping(self) -> None:
        """The loop is stopping for another reason (a failed write): a signal no longer asks for it."""
        if self.received is None:
            self.received = 0

    def finish(self) -> None:
        """The final checkpoint is saved: a signal now ends the process at once."""
        self.armed, self._unarmed = False, "after the final checkpoint: exiting"

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if not self.armed:
            raise Interrupted(signum, f"{name} {self._unarmed}")
        if self.received is None:
            self.received = signum
            self._say(f"\n{name} received: finishing this step, then saving a checkpoint"
                      + (" (Ctrl-C again to exit at once, without saving)" if signum == signal.SIGINT else ""))
        elif signum == signal.SIGINT:
            raise Interrupted(signum, "Ctrl-C again: exiting without saving")

    def _say(self, text: str) -> None:
        if self.notice:
            write_notice(text)  # unbuffered, and diverted where stderr's reader is gone


# ----------------------------------------------------------------------------------------------
# The run folder's lock


LOCK_FILE = "trainer.lock"
HEARTBEAT_S = 60  # how often the owner refreshes the lock file's modification time
FOREIGN_STALE_S = 600  # a lock from another host is stale after this long without a heartbeat


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name in (...) may hold spaces


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class RunLock:
    """An exclusive lock on a run folder, held by the process that writes it.

    ``<run>/trainer.lock`` holds the owner's pid, host, start time and command; the owner holds an
    ``flock`` on it for its whole life (so two trainers on one host can never both get it, even when
    they start together) and refreshes its modification time every minute from a thread. A lock
    file left behind (the owner was killed with SIGKILL or lost its machine) is taken over with a
    warning when its owner is known to be gone: same host and that pid is not running (or is
    another process now: its start time differs), or another host and no heartbeat for 10 minutes.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, command: str = "") -> str | None:
        """Take the lock or raise :class:`RunError` naming its owner. Returns a warning when a lock
        left by a dead trainer was taken over, else ``None``."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": _boot_id(),
              "process_start": _process_start(os.getpid()),
              "started": datetime.now().astimezone().isoformat(timespec="seconds"), "command": command}
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                flocked = self._flock(fd)
                if flocked and not self._same_file(fd):
                    os.close(fd)  # released and deleted between our open and flock: open the new one
                    continue
                previous = self._read(fd)
                # Without flock (a filesystem without locks) or with it, an owner that is still
                # alive, or may be, keeps the run.
                if previous is not None and self._owner_alive(previous, os.fstat(fd).st_mtime):
                    raise RunError(self._held_message(previous))
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(me, indent=2) + "\n").encode(), 0)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            self._thread = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
            self._thread.start()
            if previous is None:
                return None
            return (f"warning: took over {self.path}, left by a trainer that is no longer running "
                    f"({self._owner_text(previous)})")
        raise RunError(f"could not lock {self.path}: it kept changing under us")

    def release(self) -> None:
        """Delete the lock file (if it is still ours) and drop the lock. Safe to call twice."""
        if self._fd is None:
            return
        self._stop.set()
        try:
            if self._same_file(self._fd):
                self.path.unlink()
        except OSError:
            pass  # an unwritable folder: the next trainer sees a dead owner and takes over
        finally:
            os.close(self._fd)
            self._fd = None

    def _flock(self, fd: int) -> bool:
        """``flock`` the file; ``False`` where the filesystem (or the OS) has no locks: content checks only."""
        try:
            import fcntl
        except ImportError:  # not POSIX
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(self._held_message(self._read(fd))) from None
        except OSError as error:
            if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return False
            raise
        return True

    def _same_file(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except OSError:
            return False

    @staticmethod
    def _read(fd: int) -> dict | None:
        """The owner recorded in the file, ``None`` when empty; ``{}`` when unreadable."""
        data = os.pread(fd, 1 << 16, 0)
        if not data.strip():
            return None
        try:
            owner = json.loads(data)
        except json.JSONDecodeError:
            return {}
        return owner if isinstance(owner, dict) else {}

    @staticmethod
    def _owner_alive(owner: dict, mtime: float) -> bool:
        pid = owner.get("pid")
        if owner.get("host") != socket.gethostname() or not isinstance(pid, int):
            return time.time() - mtime < FOREIGN_STALE_S  # can't look at another machine's processes
        if owner.get("boot_id") not in (None, _boot_id()) or pid == os.getpid():
            return False  # the machine rebooted, or the pid is ours now: not that trainer
        if not _pid_alive(pid):
            return False
        start = owner.get("process_start")
        return start is None or start == _process_start(pid)  # a reused pid starts at another time

    @staticmethod
    def _owner_text(owner: dict | None) -> str:
        if not owner:
            return "owner unknown"
        return f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"

    def _held_message(self, owner: dict | None) -> str:
        text = (f"run folder {self.path.parent} is in use by another trainer ({self._owner_text(owner)}); "
                "wait for it to finish or stop it, or use another --run-name")
        if owner and owner.get("host") != socket.gethostname():
            text += (f". If no trainer runs on {owner.get('host')} any more, delete {self.path} "
                     f"(it is taken over by itself after {FOREIGN_STALE_S // 60} minutes without a heartbeat)")
        return text

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass  # a full or read-only disk: the trainer reports its own write failures


# ----------------------------------------------------------------------------------------------
# Writable output folders


def check_writable(folders: dict[str, Path], create: Callable[[Path], None] | None = None) -> None:
    """Raise :class:`RunError` naming the first folder that can't be written.

    ``folders`` maps a label for the message (``"--samples-dir"``) to a folder. Each is created
    if missing and a small file is written into it and deleted: that fails on a read-only mount, a
    full disk, a missing permission or a file in the folder's place, as root too (where the
    permission bits alone prove nothing).
    """
    for label, folder in folders.items():
        folder = Path(folder)
        try:
            (create or (lambda p: p.mkdir(parents=True, exist_ok=True)))(folder)
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
            try:
                os.write(fd, b"genloss")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except FileExistsError as error:
            raise RunError(f"{label} {str(folder)!r} can't be created: {_file_in_the_way(folder) or error}") from None
        except NotADirectoryError:
            raise RunError(f"{label} {str(folder)!r} can't be created: "
                           f"{_file_in_the_way(folder) or 'a file is in the way'}") from None
        except OSError as error:
            where = Path(os.fsdecode(error.filename)) if error.filename else folder
            outside = where != folder and folder not in where.parents  # e.g. a parent it had to create
            raise RunError(f"{label} {str(folder)!r} is not writable: {error.strerror or error}"
                           + (f" ({where})" if outside else "")) from None


def _file_in_the_way(folder: Path) -> str | None:
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
    return None

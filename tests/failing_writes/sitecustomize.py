"""Make writes under one folder fail, in a process started with this folder on ``PYTHONPATH``.

    GENLOSS_FAIL_WRITES=<errno name>:<folder>[:<trigger file>]
    e.g. GENLOSS_FAIL_WRITES=EROFS:/tmp/x/samples          (a read-only mount)
         GENLOSS_FAIL_WRITES=ENOSPC:/tmp/x/runs:/tmp/x/full (the disk fills up once /tmp/x/full exists)

Why a Python audit hook (``sys.addaudithook``) and not a real read-only or full filesystem: the
tests run as root in CI, where permission bits stop nothing, and mounting (a read-only bind
mount or a small tmpfs inside ``unshare --user --mount``) is refused by the default seccomp
profile of a Docker container. The hook sees every ``open`` (``open()``, ``io.open``,
``os.open``) that may write, every ``os.mkdir`` and ``os.rename``/``os.replace``, and for
EROFS also deletions and metadata changes, and raises the ``OSError`` the kernel would. It does
not see writes made in C by torch or safetensors to files they open themselves; those go into
folders the trainer creates first (a checkpoint's staging folder), and that ``os.mkdir`` fails.
"""

import errno
import os
import sys

_SPEC = os.environ.get("GENLOSS_FAIL_WRITES")

if _SPEC:
    _NAME, _FOLDER, *_TRIGGER = _SPEC.split(":")
    _ERRNO = getattr(errno, _NAME)
    _FOLDER = os.path.abspath(_FOLDER)
    _TRIGGER = _TRIGGER[0] if _TRIGGER else None
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _READ_ONLY_EVENTS = {"os.remove", "os.rmdir", "os.chmod", "os.utime", "os.truncate", "os.link", "os.symlink"}

    def _under(path) -> bool:
        if isinstance(path, int) or path is None:
            return False
        path = os.path.abspath(os.fsdecode(path))
        return path == _FOLDER or path.startswith(_FOLDER + os.sep)

    def _writes(event: str, args: tuple) -> object:
        """The path an audited event would write to, or None."""
        if event == "open":
            path, mode, flags = args
            if (mode and any(c in mode for c in "wax+")) or (not mode and flags & _WRITE_FLAGS):
                return path
        elif event in ("os.mkdir", "os.rename"):
            return args[1] if event == "os.rename" and _under(args[1]) else args[0]
        elif event in _READ_ONLY_EVENTS and _ERRNO == errno.EROFS:
            return args[0]
        return None

    def _hook(event: str, args: tuple) -> None:
        if event not in ("open", "os.mkdir", "os.rename") and event not in _READ_ONLY_EVENTS:
            return
        path = _writes(event, args)
        if path is None or not _under(path):
            return
        if _TRIGGER is not None and not os.path.exists(_TRIGGER):
            return
        raise OSError(_ERRNO, os.strerror(_ERRNO), os.fsdecode(path))

    sys.addaudithook(_hook)

"""Running the repository's scripts inside the test process: as ``python SCRIPT ARGS`` would (the
script's folder first on ``sys.path``, ``__name__ == "__main__"``), in a working directory of the
test's, with the process state the scripts change (``sys.path``, torch's thread count, warning
filters, the temporary folder) put back afterwards; and two watches on the repository's files.

The watches: :func:`repository_writes` records every file this process opens for writing, creates,
renames or removes inside the repository (Python's audit events: exact, whoever else edits the
working tree meanwhile); what the scripts' own subprocesses write is seen by comparing snapshots of
the tree (:func:`new_files`), which counts new files only and not ``.py`` sources, since other
people's editors change and add sources in a shared working tree while a test runs.

In-process saves each run the 3-5 s of importing torch that a subprocess pays again. Two scripts
are only ever started as subprocesses: ``train/gan.py`` (its ``__main__`` ties the process to its
launcher and guards its streams) and ``benchmarks/gpu.sh``.
"""

from __future__ import annotations

import argparse
import os
import re
import runpy
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_ONLY = ("train/gan.py",)
# Not the repository's own files: caches and environments that imports and tools write.
_NOT_WATCHED = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


def scripts() -> list[str]:
    """Every runnable script of ``benchmarks/`` and ``train/``: a ``.py`` file with a ``__main__``
    block, or a shell script; paths relative to the repository root."""
    found = []
    for folder in ("benchmarks", "train"):
        for path in sorted((ROOT / folder).iterdir()):
            if path.suffix == ".sh" or (path.suffix == ".py" and 'if __name__ == "__main__"' in path.read_text()):
                found.append(f"{folder}/{path.name}")
    return found


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# audit event -> positions of the paths it writes
_WRITING_EVENTS = {"os.mkdir": (0,), "os.rename": (0, 1), "os.replace": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
                   "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.move": (0, 1), "os.symlink": (1,),
                   "os.link": (1,), "os.truncate": (0,), "os.utime": (0,)}
_recorders: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if not _recorders:
        return
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and re.search("[wax+]", mode)) or (flags or 0) & _WRITE_FLAGS
        paths = [path] if writes else []
    elif event in _WRITING_EVENTS:
        paths = [args[i] for i in _WRITING_EVENTS[event] if i < len(args)]
    else:
        return
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
            full = os.path.abspath(os.fsdecode(path))
            inside = full == str(ROOT) or full.startswith(str(ROOT) + os.sep)
            if inside and "__pycache__" not in full.split(os.sep):  # bytecode caches are the interpreter's
                for recorder in _recorders:
                    recorder.append(f"{event} {full}")


sys.addaudithook(_audit)


@contextmanager
def repository_writes():
    """Yields a list that collects ``"<event> <path>"`` for every write of this process inside the
    repository while the block runs."""
    recorded: list[str] = []
    _recorders.append(recorded)
    try:
        yield recorded
    finally:
        _recorders.remove(recorded)


def repository_files() -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of every file in the repository's working tree (tracked,
    untracked and ignored alike), without git's, the environment's and the caches' folders."""
    files = {}
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _NOT_WATCHED and not d.endswith(".egg-info")]
        for name in names:
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # removed while walking
                continue
            files[os.path.relpath(path, ROOT)] = (stat.st_mtime_ns, stat.st_size)
    return files


def new_files(before: dict[str, tuple[int, int]]) -> list[str]:
    """Files in the repository that the ``before`` snapshot did not have, ``.py`` sources aside."""
    return sorted(p for p in repository_files().keys() - before.keys() if not p.endswith(".py"))


@contextmanager
def isolated(workdir: Path, argv: list[str], script: str):
    """``sys.argv``, the working directory and the temporary folder set for ``script``; on the way
    out the process state the script may change is restored."""
    saved = (list(sys.argv), list(sys.path), os.getcwd(), tempfile.tempdir, os.environ.get("TMPDIR"),
             torch.get_num_threads())
    temp = workdir / "tmp"
    temp.mkdir(exist_ok=True)
    sys.argv = [str(ROOT / script), *argv]
    sys.path.insert(0, str((ROOT / script).parent))  # as `python SCRIPT` puts the script's folder first
    os.chdir(workdir)
    tempfile.tempdir, os.environ["TMPDIR"] = str(temp), str(temp)  # subprocesses' temporary files too
    try:
        with warnings.catch_warnings():
            yield
    finally:
        sys.argv, sys.path[:], tempfile.tempdir = saved[0], saved[1], saved[3]
        os.chdir(saved[2])
        if saved[4] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[4]
        torch.set_num_threads(saved[5])


def run_script(script: str, argv: list[str], workdir: Path) -> int:
    """Run ``python script *argv`` in this process, in ``workdir``; its exit status."""
    if script in SUBPROCESS_ONLY:
        raise ValueError(f"{script} runs as a subprocess only")
    with isolated(workdir, argv, script):
        try:
            runpy.run_path(str(ROOT / script), run_name="__main__")
        except SystemExit as stop:
            return 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    return 0


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__("parsed")
        self.namespace = namespace


def parse_only(script: str, argv: list[str], workdir: Path) -> argparse.Namespace:
    """``argv`` parsed by ``script``'s own argparse parser, and nothing run: the script runs as
    ``__main__`` up to its first ``parse_args`` call, which stops it with the result. Bad flags
    exit through ``argparse`` (``SystemExit(2)`` with its message on stderr). Checks that the
    flags exist and their values parse (types, choices), not what the script checks later."""
    if script == "train/gan.py":  # its __main__ block ties the process to a launcher: its parser only
        from train.options import build_parser

        return build_parser().parse_args(argv)
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse_args
    try:
        with isolated(workdir, argv, script):
            runpy.run_path(str(ROOT / script), run_name="__main__")
    except _Parsed as parsed:
        return parsed.namespace
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError(f"{script} finished without parsing its arguments")

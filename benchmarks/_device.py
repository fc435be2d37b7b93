"""``--device`` for the benchmarks: checked parsing and clocks that wait for the GPU.

CUDA kernels run asynchronously, so a clock read right after a call measures the launch, not the
work: on CUDA every clock here calls ``torch.cuda.synchronize`` first and reads wall time (the
host's CPU time says nothing about the GPU's). On the CPU each benchmark keeps its own clock.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch


def add_device_argument(parser: argparse.ArgumentParser, default: str = "cpu") -> None:
    parser.add_argument(
        "--device", default=default, help=f"torch device to run on: cpu, cuda, cuda:N (default: {default})"
    )


def resolve_device(parser: argparse.ArgumentParser, name: str) -> torch.device:
    """``name`` as a usable ``torch.device``, or a ``parser.error`` naming ``--device``."""
    try:
        device = torch.device(name)
    except RuntimeError:
        parser.error(f"--device {name}: not a torch device name; use cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"--device {name}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            parser.error(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif device.type != "cpu":
        parser.error(f"--device {name}: the benchmarks run on cpu or cuda only")
    return device


def describe(device: torch.device) -> str:
    """``cpu`` or e.g. ``cuda:0 (NVIDIA H200, CUDA 12.8)``, for a benchmark's header line."""
    if device.type != "cuda":
        return str(device)
    index = torch.cuda.current_device() if device.index is None else device.index
    return f"cuda:{index} ({torch.cuda.get_device_name(index)}, CUDA {torch.version.cuda})"


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock_for(device: torch.device, cpu_clock: Callable[[], float]) -> Callable[[], float]:
    """``cpu_clock`` on the CPU; on CUDA wall time read after the queued kernels have finished."""
    if device.type != "cuda":
        return cpu_clock

    def clock() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()

    return clock

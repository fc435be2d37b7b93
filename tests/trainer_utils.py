"""Helpers for the trainer's tests: launching the real script, and a stand-in Accelerator.

Tiny settings (16x16, 4 frames, batch 2, a few steps) keep each launch to seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
# The end-of-run detector's default protocol: the strong one trains two judges for 1200 steps each
# (about 3 CPU minutes); test_trainer_units runs it in-process with 40 steps.
TINY = ["--size", "16", "--frames", "4", "--batch-size", "2", "--eval-clips", "4", "--sample-clips", "2",
        "--g-channels", "8", "--d-channels", "8", "--log-every", "1", "--eval-every", "2",
        "--detect-clips", "4", "--detect-protocol", "default"]
# The tiny run's settings as TrainConfig fields, for in-process tests.
TINY_SETTINGS = dict(size=16, frames=4, batch_size=2, eval_clips=4, sample_clips=2, g_channels=8, d_channels=8,
                     detect_clips=4, detect_protocol="default")


def launch_command(tmp: Path, *flags: str, processes: int = 1) -> list[str]:
    """``accelerate launch [--multi_gpu --num_processes N] train/gan.py`` with the tiny settings."""
    launcher = ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no"]
    if processes > 1:
        launcher = ["--multi_gpu", *launcher]
    return [*ACCELERATE, *launcher, "train/gan.py", *TINY, "--output-dir", str(tmp / "runs"),
            "--samples-dir", str(tmp / "samples"), *flags]


def launch(tmp: Path, *flags: str, processes: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    """Run :func:`launch_command` from the repository root on the CPU."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    cmd = launch_command(tmp, *flags, processes=processes)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}\nexit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def read_config(run_dir: Path) -> tuple[dict, dict]:
    """``(settings, run)`` sections of a run's config.json."""
    data = json.loads((run_dir / "config.json").read_text())
    return data["settings"], data["run"]


class StubAccelerator:
    """What ``train_step`` and ``evaluate`` use of an ``Accelerator``, for one CPU process.

    ``sync_gradients`` can be set to False to play a micro-batch inside a ``--grad-accum`` window;
    ``world`` and ``rank`` play one process of several in ``evaluate``'s split of the clips.
    """

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.sync_gradients = True
        self.scaler = None
        self.process_index = rank
        self.num_processes = world
        self.is_main_process = rank == 0
        self.device = torch.device("cpu")

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, params, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(list(params), max_norm)

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def reduce(self, tensor: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return tensor

"""Cost and sanity anchors of ``genloss.metrics.detectability`` at its default protocol.

Held-out moving-shapes clips (``train.data.MovingShapes``, seed 0) against five sets, each scored
with one call of the default protocol (what ``train/eval.py`` and the trainer use):

* other real clips of the same distribution (seed 1): should read 0.5, its interval around 0.5;
* copy-last-frame continuations: the first K=2 frames, then frame K-1 repeated: >= 0.95;
* frozen clips (every frame is frame 0), blurred clips (Gaussian, sigma 1 px, every frame) and
  time-shuffled clips (each clip's frames in a random non-identity order): clearly above 0.5.

Prints each row's accuracy, 95% interval, AUC and wall time, and the total. The machine's load
average is printed too: on a shared CPU the wall time says as much about the neighbours as about
the detector, so the process CPU time is given next to it.

    python benchmarks/bench_detect.py                     # 512 + 512 clips of 6x32x32 on the CPU
    python benchmarks/bench_detect.py --device cuda
    python benchmarks/bench_detect.py --num 256 --only real,copy-last-frame
    python benchmarks/bench_detect.py --clips clips.pt    # adds real vs generated from a saved file

``--calibrate`` runs the protocol calibration instead (docs/detector.md): clips drawn by
``benchmarks/detect_fakes.py`` (the moving shapes with supersampled masks), real against other
real clips and against five subtle fakes whose last T-2 frames are modified (blur sigma 0.5 px,
rounded corners, shapes 1 px smaller, colours 10% darker, one generated frame repeated), each
scored by the protocols "default", "frames" and "clips" (``context_frames=2``); "strong" is
"frames" and "clips" with the same seed, so its row is derived from theirs (its time is the sum):

    python benchmarks/bench_detect.py --calibrate --num 2048 --threads 2

``--clips`` takes the ``{"real": (N, C, T, H, W), "generated": (N, C, T, H, W)}`` file that
``train/eval.py --save-clips`` writes (paired: generated clip i continues real clip i).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _device import resolve_device  # noqa: E402
from detect_fakes import FAKES, gaussian_blur, make_fake, render  # noqa: E402

from genloss.metrics import detectability  # noqa: E402
from train.data import MovingShapes  # noqa: E402

CONTEXT = 2  # K, the context frames a continuation keeps


def shapes(num: int, frames: int, size: int, seed: int) -> torch.Tensor:
    """``num`` held-out moving-shapes clips ``(N, 3, T, H, W)`` in [-1, 1]."""
    data = MovingShapes(num, frames=frames, size=size, split="heldout", seed=seed)
    return torch.stack([data[i] for i in range(num)])


def copy_last_frame(clips: torch.Tensor, context: int = CONTEXT) -> torch.Tensor:
    """The first ``context`` frames, then the last of them repeated to the clip's length."""
    rest = clips[:, :, context - 1 : context].expand(-1, -1, clips.shape[2] - context, -1, -1)
    return torch.cat([clips[:, :, :context], rest], dim=2)


def frozen(clips: torch.Tensor) -> torch.Tensor:
    """Every frame is the clip's first."""
    return clips[:, :, :1].expand_as(clips).contiguous()


def blurred(clips: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Every frame through a separable Gaussian (radius ceil(3 sigma), replicate padding)."""
    return gaussian_blur(clips, sigma)


def time_shuffled(clips: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Each clip's frames in a random order other than the original one."""
    generator = torch.Generator().manual_seed(seed)
    identity = torch.arange(clips.shape[2])
    out = []
    for clip in clips:
        order = torch.randperm(clips.shape[2], generator=generator)
        while torch.equal(order, identity):
            order = torch.randperm(clips.shape[2], generator=generator)
        out.append(clip[:, order.to(clip.device)])
    return torch.stack(out)


def anchors(num: int, frames: int, size: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Row name -> the fake set made from the real clips."""
    return {
        "real": lambda real: shapes(num, frames, size, seed=1).to(real.device),
        "copy-last-frame": copy_last_frame,
        "frozen": frozen,
        "blurred": blurred,
        "time-shuffled": time_shuffled,
    }


def calibrate(num: int, frames: int, size: int, seed: int, steps: int | None, device: torch.device,
              rows: list[str] | None) -> None:
    """The calibration table: each anchor under each protocol, with 95% intervals and times."""
    print(f"detector calibration: {num} + {num} clips of {frames}x{size}x{size} (benchmarks/detect_fakes.py), "
          f"context_frames={CONTEXT}, seed {seed}, {'protocol steps' if steps is None else f'steps={steps}'}, on {device}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'fake set':<10} {'protocol':<13} {'accuracy':>8}  {'95% interval':<15} {'AUC':>6} {'n_test':>6}  "
          f"{'wall s':>7} {'cpu s':>7}", flush=True)
    start = time.perf_counter()
    real = render(num, frames, size, seed=0)
    print(f"(rendering the real set: {time.perf_counter() - start:.1f} s)", flush=True)
    for name in rows or ["real", *FAKES]:
        fake = render(num, frames, size, seed=1) if name == "real" else make_fake(
            name, num, frames, size, seed=0, context=CONTEXT, real=real)
        real_d, fake_d = real.to(device), fake.to(device)
        results, times = {}, {}
        for protocol in ("default", "frames", "clips"):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall, cpu = time.perf_counter(), time.process_time()
            results[protocol] = detectability(real_d, fake_d, seed=seed, steps=steps, protocol=protocol,
                                              context_frames=CONTEXT if protocol == "frames" else 0)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[protocol] = (time.perf_counter() - wall, time.process_time() - cpu)
        frame, clip = results["frames"], results["clips"]
        results["strong"] = frame if frame.accuracy > clip.accuracy else clip  # as detectability(protocol="strong")
        times["strong"] = tuple(a + b for a, b in zip(times["frames"], times["clips"]))
        for protocol, result in results.items():
            low, high = result.interval
            label = f"strong={result.protocol}" if protocol == "strong" else protocol
            print(f"{name:<10} {label:<13} {result.accuracy:>8.3f}  [{low:.3f}, {high:.3f}] {result.auc:>6.3f} "
                  f"{result.n_test:>6}  {times[protocol][0]:>7.1f} {times[protocol][1]:>7.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--num", type=int, default=512, help="clips in each set")
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the default protocol)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help="comma-separated rows (real, copy-last-frame, frozen, blurred, time-shuffled)")
    p.add_argument("--clips", default=None, help="a {'real', 'generated'} .pt file (train/eval.py --save-clips)")
    p.add_argument("--calibrate", action="store_true", help="the protocol calibration table (see above)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args()
    device = resolve_device(p, args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.calibrate:
        calibrate(args.num, args.frames, args.size, args.seed, args.steps, device, args.only.split(",") if args.only else None)
        return

    rows = anchors(args.num, args.frames, args.size)
    if args.only:
        unknown = set(args.only.split(",")) - set(rows)
        if unknown:
            p.error(f"--only: unknown rows {sorted(unknown)}; choose from {list(rows)}")
        rows = {name: make for name, make in rows.items() if name in args.only.split(",")}
    real = shapes(args.num, args.frames, args.size, seed=0).to(device)
    print(f"detectability, default protocol{'' if args.steps is None else f' but steps={args.steps}'}: "
          f"{args.num} + {args.num} clips of {args.frames}x{args.size}x{args.size} on {device}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'fake set':<26} {'accuracy':>8}  {'95% interval':<15} {'AUC':>6}  {'wall s':>7} {'cpu s':>7}")

    def row(name: str, real_set: torch.Tensor, fake_set: torch.Tensor) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, cpu = time.perf_counter(), time.process_time()
        result = detectability(real_set, fake_set, steps=args.steps, seed=args.seed)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
        low, high = result.interval
        print(f"{name:<26} {result.accuracy:>8.3f}  [{low:.3f}, {high:.3f}] {result.auc:>6.3f}  "
              f"{wall:>7.1f} {time.process_time() - cpu:>7.1f}", flush=True)
        return wall

    total = sum(row(name, real, make(real)) for name, make in rows.items())
    if args.clips:
        saved = torch.load(args.clips, map_location=device)
        total += row(f"generated ({Path(args.clips).name})", saved["real"], saved["generated"])
    print(f"total wall time {total:.1f} s for {len(rows) + bool(args.clips)} calls "
          f"({total / (len(rows) + bool(args.clips)):.1f} s per call)")


if __name__ == "__main__":
    main()

"""genloss.LPIPS against the lpips package on the same weights: time, memory, values, roofline.

    .venv/bin/python benchmarks/bench_lpips.py            # about 3-4 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_lpips.py --quick    # about a minute
    .venv/bin/python benchmarks/bench_lpips.py --threads 1 --nets alex
    .venv/bin/python benchmarks/bench_lpips.py --device cuda
    .venv/bin/python benchmarks/bench_lpips.py --smoke --nets alex   # tiny inputs, one call: runs end to end

Both sides get the same seeded random trunk (a torchvision ``features`` state dict written to a
temp dir: no download) and the package's own v0.1 calibration weights, and every row first
checks that the two give the same values. The package is called the way a training loop would
call it on video: on the ``(B*T, C, H, W)`` frames, then averaged per clip.

Timing: the two implementations run alternately inside one loop (interleaved, the order
swapped every repeat), each sample is one call (forward, or forward + backward into ``pred``).
The table shows the medians in ms and, as the speed-up, the median of the per-pair ratios: each
pair ran back to back, so a change in machine load hits both of its calls alike. With
``--threads 1`` the clock is the process's CPU time, which other jobs inflate least (with
several threads, wall time: OpenMP threads of a busy machine wait at barriers, which makes
multi-threaded numbers on a shared machine noisy). Even so, on a shared VM one row's ratio can
move by about 0.1 from run to run. Peak memory is the largest running total of the bytes the
profiler sees allocated and freed during one call. GFLOP/s counts the trunk convolutions
(``torch.utils.flop_counter``; alex forward at 64x64: 0.079 GFLOP per frame) and is set against
this machine's measured float32 matrix-multiply rate.

On ``--device cuda`` the clock is wall time read after ``torch.cuda.synchronize``, peak memory is
``torch.cuda.max_memory_allocated`` during one call above what was allocated before it, and the
matmul rate is measured at 4096^3 on the GPU (float32; TF32 as torch's settings leave it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lpips
import torch
from einops import rearrange
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

import genloss as gl

# The lpips package on genloss's seeded random trunk, shared with the equality tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _device import (  # noqa: E402
    add_device_argument,
    clock_for,
    describe,
    resolve_device,
    synchronize,
)
from lpips_reference import ARCH, reference, write_trunk  # noqa: E402


@dataclass
class Case:
    label: str
    shape: tuple[int, ...]  # image (B, C, H, W) or clip (B, C, T, H, W)
    backward: bool
    frames: int | None = None  # genloss evaluates this many frames per clip; the package all


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller VGG inputs")
    parser.add_argument("--smoke", action="store_true", help="2 images and one 4-frame clip of 64x64, one timed "
                        "call: checks that the script runs (the timings mean nothing)")
    parser.add_argument(
        "--nets", default="alex,squeeze,vgg", help="comma-separated subset of alex,squeeze,vgg"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed calls per implementation and row"
    )
    add_device_argument(parser)
    args = parser.parse_args()
    args.device = resolve_device(parser, args.device)
    args.nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = [n for n in args.nets if n not in ARCH]
    if unknown:
        parser.error(f"--nets: unknown {unknown}; choose from {list(ARCH)}")
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 5 if args.quick else 15
    return args


def cases(net: str, quick: bool, smoke: bool = False) -> list[Case]:
    if smoke:
        return [Case("images 2x64x64", (2, 3, 64, 64), True),
                Case("clips (1, 3, 4, 64, 64) frames=2", (1, 3, 4, 64, 64), True, frames=2)]
    if net == "vgg":  # ~1.3 GFLOP per 64x64 frame: keep the batch small
        clip = (1, 3, 4, 64, 64) if quick else (2, 3, 4, 64, 64)
        return [
            Case("images 8x64x64", (8, 3, 64, 64), True),
            Case(f"clips {clip}", clip, True),
            Case(f"clips {clip}", clip, False),
        ]
    clip = (4, 3, 8, 64, 64)
    return [
        Case("images 32x64x64", (32, 3, 64, 64), False),
        Case("images 32x64x64", (32, 3, 64, 64), True),
        Case(f"clips {clip}", clip, False),
        Case(f"clips {clip}", clip, True),
        Case(f"clips {clip} frames=2", clip, True, frames=2),
    ]


def package_loss(model: lpips.LPIPS, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample LPIPS from the package: on frames, averaged per clip for videos."""
    if pred.ndim == 4:
        return model(pred, target).flatten()
    b = pred.shape[0]
    frames = model(
        rearrange(pred, "b c t h w -> (b t) c h w"), rearrange(target, "b c t h w -> (b t) c h w")
    )
    return rearrange(frames.flatten(), "(b t) -> b t", b=b).mean(dim=1)


def call(fn, pred: torch.Tensor, target: torch.Tensor, backward: bool) -> None:
    if backward:
        pred = pred.detach().requires_grad_(True)
        fn(pred, target).mean().backward()
    else:
        with torch.no_grad():
            fn(pred, target)


def peak_mib(fn, pred, target, backward: bool) -> float:
    """Largest running total of bytes allocated minus freed during one call (profiler events;
    on CUDA the caching allocator's peak above what was allocated before the call)."""
    if pred.device.type == "cuda":
        synchronize(pred.device)
        torch.cuda.reset_peak_memory_stats(pred.device)
        before = torch.cuda.memory_allocated(pred.device)
        call(fn, pred, target, backward)
        synchronize(pred.device)
        return (torch.cuda.max_memory_allocated(pred.device) - before) / 2**20
    with profile(profile_memory=True) as prof:
        call(fn, pred, target, backward)
    total = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        total += event.self_cpu_memory_usage
        peak = max(peak, total)
    return peak / 2**20


def trunk_gflop(fn, pred, target, backward: bool) -> float:
    with FlopCounterMode(display=False) as counter:
        call(fn, pred, target, backward)
    return counter.get_total_flops() / 1e9


def matmul_gflops(n: int = 1024, repeats: int = 40, device: torch.device | None = None) -> float:
    """Best float32 GEMM rate of ``repeats`` tries: the best, so that other jobs hide less of it."""
    device = device or torch.device("cpu")
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    clock = clock_for(device, time.perf_counter)
    times = []
    for _ in range(repeats):
        start = clock()
        a @ b
        times.append(clock() - start)
    return 2 * n**3 / min(times) / 1e9


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    # One thread: this process's CPU time, which other jobs on the machine do not inflate.
    # More threads: wall time (CPU time would count OpenMP threads spinning at barriers).
    cpu_clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    device = args.device
    clock = clock_for(device, cpu_clock)
    warnings.simplefilter("ignore", UserWarning)  # the package's torchvision `pretrained` warnings
    n = 128 if args.smoke else 4096 if device.type == "cuda" else 1024  # 1024^3 is too small to keep a GPU busy
    peak = matmul_gflops(n, repeats=2 if args.smoke else 40, device=device)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads ({'CPU' if clock is time.process_time else 'wall'} "
        f"time), device {describe(device)}, load average at start {os.getloadavg()[0]:.1f}"
    )
    print(
        f"# float32 matmul peak (best of 40, {n}^3): {peak:.0f} GFLOP/s; medians of {args.repeats} interleaved calls\n"
    )
    header = (
        "| net | input | pass | lpips pkg ms | genloss ms | speed-up | max abs diff | "
        "peak MiB pkg / genloss | genloss GFLOP/s (% of matmul) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        for net in args.nets:
            path = write_trunk(net, Path(folder), seed=0)
            package = reference(net, path).to(device)
            for case in cases(net, args.quick, args.smoke):
                ours_module = gl.LPIPS(
                    net, weights=path, frames=case.frames, frame_sampling="uniform"
                ).to(device)
                pred = torch.rand(case.shape, device=device) * 2 - 1
                target = torch.rand(case.shape, device=device) * 2 - 1

                def ours(p, t, m=ours_module):
                    return m(p, t, reduction="none")

                def pkg(p, t, m=package):
                    return package_loss(m, p, t)

                if case.frames is None:
                    with torch.no_grad():
                        diff = (ours(pred, target) - pkg(pred, target)).abs().max().item()
                    diff_text = f"{diff:.1e}"
                else:  # the package on all T frames: the cost frames=k avoids, not the same value
                    diff_text = f"n/a ({case.frames} of {case.shape[2]} frames)"
                for fn in (ours, pkg):  # warm-up: oneDNN primitive creation, allocator
                    call(fn, pred, target, case.backward)
                times = {ours: [], pkg: []}
                for i in range(args.repeats):
                    for fn in (pkg, ours) if i % 2 == 0 else (ours, pkg):
                        start = clock()
                        call(fn, pred, target, case.backward)
                        times[fn].append(clock() - start)
                t_pkg, t_ours = (statistics.median(times[f]) * 1e3 for f in (pkg, ours))
                # each pair ran back to back, so its ratio is the load-proof one
                speedup = statistics.median(a / b for a, b in zip(times[pkg], times[ours], strict=True))
                mem = f"{peak_mib(pkg, pred, target, case.backward):.1f} / {peak_mib(ours, pred, target, case.backward):.1f}"
                gflops = trunk_gflop(ours, pred, target, case.backward) / (t_ours / 1e3)
                print(
                    f"| {net} | {case.label} | {'fwd+bwd' if case.backward else 'fwd'} | {t_pkg:.1f} | "
                    f"{t_ours:.1f} | {speedup:.2f}x | {diff_text} | {mem} | "
                    f"{gflops:.0f} ({100 * gflops / peak:.0f}%) |",
                    flush=True,
                )
    print(f"\n# load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(parse_args())

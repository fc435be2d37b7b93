"""LPIPS + tLP for evaluation: genloss's feature path against the lpips package pair by pair.

    .venv/bin/python benchmarks/bench_lpips_tlp.py --threads 1      # about 4 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_lpips_tlp.py --clips 8 --repeats 3   # a quick look
    .venv/bin/python benchmarks/bench_lpips_tlp.py --device cuda

The quantities of a video evaluation (issue #10, section 5), forward only, on ``--clips`` clips of
``--frames`` frames: LPIPS for every frame pair ``(p_t, r_t)`` and tLP per step,
``|LPIPS(p_t, p_{t-1}) - LPIPS(r_t, r_{t-1})|``. Three implementations, interleaved:

* ``lpips pkg``: the package scores the three sets of pairs (``B T`` + ``2 B (T - 1)`` of them, one
  batched call per set), so every frame goes through its trunk about three times;
* ``genloss pairs``: ``genloss.metrics.lpips`` and ``tlp`` through the generic pair contract (a plain
  callable wrapping ``genloss.LPIPS``): genloss's trunk, the package's number of trunk passes;
* ``genloss``: ``genloss.metrics.lpips_and_tlp(pred, target, model=genloss.LPIPS(...))``: each frame
  through the trunk once, all distances from its unit features.

All three get the same seeded random trunk (``tests/lpips_reference.write_trunk``: no download) and
the package's v0.1 calibration weights; the max abs difference to the package covers both outputs.
Timing as in ``bench_lpips.py``: the implementations run alternately inside one loop, their order
rotating every repeat; ``ratio`` is the median of the per-repeat ratios to the package's time
(calls of one repeat ran back to back, so machine load hits them alike). With ``--threads 1`` the
clock is this process's CPU time, otherwise wall time; on ``--device cuda`` wall time read after
``torch.cuda.synchronize``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from _device import add_device_argument, clock_for, describe, resolve_device
from bench_lpips import ARCH, reference, write_trunk
from einops import rearrange

import genloss as gl
from genloss import metrics


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--net", default="alex", choices=list(ARCH))
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="frame height and width")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per implementation")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    add_device_argument(parser)
    args = parser.parse_args()
    args.device = resolve_device(parser, args.device)
    return args


def package_lpips_and_tlp(model, pred: torch.Tensor, target: torch.Tensor):
    """Per-frame LPIPS ``(B, T)`` and per-step tLP ``(B, T - 1)`` from the package, pair by pair."""
    b = pred.shape[0]
    fold = "b c t h w -> (b t) c h w"

    def pairs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        values = model(rearrange(x, fold), rearrange(y, fold)).flatten()
        return rearrange(values, "(b t) -> b t", b=b)

    per_frame = pairs(pred, target)
    per_step = (
        pairs(pred[:, :, 1:], pred[:, :, :-1]) - pairs(target[:, :, 1:], target[:, :, :-1])
    ).abs()
    return per_frame, per_step


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    clock = clock_for(device, time.process_time if torch.get_num_threads() == 1 else time.perf_counter)
    warnings.simplefilter("ignore", UserWarning)  # the package's torchvision `pretrained` warnings
    shape = (args.clips, 3, args.frames, args.size, args.size)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads "
        f"({'CPU' if clock is time.process_time else 'wall'} time), device {describe(device)}, "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    b, t = args.clips, args.frames
    print(
        f"# {args.net}, clips {shape}: trunk passes per evaluation, package and genloss pairs "
        f"{2 * b * t + 4 * b * (t - 1)}, genloss {2 * b * t}; medians of {args.repeats} "
        "interleaved calls\n"
    )
    generator = torch.Generator().manual_seed(0)
    # drawn on the CPU so that every device scores the same clips
    pred = (torch.rand(shape, generator=generator) * 2 - 1).to(device)
    target = (torch.rand(shape, generator=generator) * 2 - 1).to(device)
    with tempfile.TemporaryDirectory() as folder:
        path = write_trunk(args.net, Path(folder), seed=0)
        package = reference(args.net, path).to(device)
        ours = gl.LPIPS(args.net, weights=path).to(device)

    def pair_callable(x, y, reduction="mean"):  # not a genloss.LPIPS: the generic pair contract
        return ours(x, y, reduction=reduction)

    def run_package():
        return package_lpips_and_tlp(package, pred, target)

    def run_pairs():
        return (
            metrics.lpips(pred, target, model=pair_callable).per_frame,
            metrics.tlp(pred, target, model=pair_callable).per_frame,
        )

    def run_genloss():
        lpips_result, tlp_result = metrics.lpips_and_tlp(pred, target, model=ours)
        return lpips_result.per_frame, tlp_result.per_frame

    runs = {"lpips pkg": run_package, "genloss pairs": run_pairs, "genloss": run_genloss}
    with torch.no_grad():
        outputs = {name: fn() for name, fn in runs.items()}  # also the warm-up
        times: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        wall = clock_for(device, time.perf_counter)
        start_all = wall()
        for i in range(args.repeats):
            for name in names[i % 3 :] + names[: i % 3]:
                start = clock()
                runs[name]()
                times[name].append(clock() - start)
        elapsed = wall() - start_all
    print("| implementation | LPIPS + tLP s | ratio (pkg / this) | max abs diff to pkg (LPIPS, tLP) |")
    print("|---|---|---|---|")
    for name in runs:
        ratio = statistics.median(
            p / s for p, s in zip(times["lpips pkg"], times[name], strict=True)
        )
        diff = ", ".join(
            f"{(got - want).abs().max().item():.1e}"
            for got, want in zip(outputs[name], outputs["lpips pkg"], strict=True)
        )
        print(f"| {name} | {statistics.median(times[name]):.2f} | {ratio:.2f}x | {diff} |")
    print(f"\n# timed loop {elapsed:.0f} s wall; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(parse_args())

"""Cost of the temporal losses and the weight-free flow estimator as T and H x W grow.

Two sweeps on clips (B, 3, T, H, W): T at a fixed size, then H = W at a fixed T. Each cell is the
median wall time of repeated calls after a warm-up, the repeats interleaved over the sweep's
points (so a change in machine load hits a whole row alike): losses forward + backward (gradient
into the clip), flow and metrics forward only (they run without gradients). The last column is
the time growth from the first to the last point of the sweep next to the input growth, so linear
scaling reads as equal numbers. On a shared CPU, `--threads 1` gives the steadiest numbers.

    python benchmarks/bench_temporal.py            # B=4; T in 4..32 at 64x64; H=W in 32..256 at T=8
    python benchmarks/bench_temporal.py --quick    # B=2, T up to 16, H=W up to 128, 3 repeats
    python benchmarks/bench_temporal.py --quick --threads 1
    python benchmarks/bench_temporal.py --device cuda
    python benchmarks/bench_temporal.py --smoke    # B=1, T 3 and 4 at 32x32, H=W 32 and 40 at T=4: runs end to end
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _device import resolve_device  # noqa: E402

import genloss as gl  # noqa: E402
from genloss import metrics  # noqa: E402


def mean_abs_lpips(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cheap stand-in with LPIPS's calling convention (isolates tLP's own overhead)."""
    values = (x - y).abs().flatten(1).mean(dim=1)
    return values if reduction == "none" else values.mean()


def lpips_model(device: torch.device) -> Callable[..., torch.Tensor] | None:
    """genloss.LPIPS("alex") with a random backbone when the package has it (cost is the same)."""
    if not hasattr(gl, "LPIPS"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gl.LPIPS("alex", weights="random").to(device)


Case = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]  # fn(pred, target, flow)


def cases(device: torch.device) -> dict[str, tuple[str, Case]]:
    """name -> (mode, fn); mode "fb" times forward + backward, "f" forward only."""
    out: dict[str, tuple[str, Case]] = {
        "temporal_difference": ("fb", lambda p, t, f: gl.temporal_difference_loss(p, t)),
        "smoothness order 2": ("fb", lambda p, t, f: gl.temporal_smoothness_loss(p, order=2)),
        "ping_pong": ("fb", lambda p, t, f: gl.ping_pong_loss(p, t)),
        "flow_warping (given flow)": ("fb", lambda p, t, f: gl.flow_warping_loss(p, f)),
        "tLP, stand-in distance": ("fb", lambda p, t, f: gl.temporal_lpips_loss(p, t, model=mean_abs_lpips)),
    }
    model = lpips_model(device)
    if model is not None:
        out["tLP, LPIPS alex"] = ("fb", lambda p, t, f: gl.temporal_lpips_loss(p, t, model=model))
    out["video_flow (LK)"] = ("f", lambda p, t, f: gl.video_flow(t))
    # tOF costs the same as warping_error: both estimate flow for twice the pairs.
    out["warping_error (2x flow)"] = ("f", lambda p, t, f: metrics.warping_error(t))
    return out


def timer(mode: str, fn: Case, pred: torch.Tensor, target: torch.Tensor, flow: torch.Tensor) -> Callable[[], float]:
    """A warmed-up callable that returns the seconds of one call (mean over a calibrated batch)."""
    sync = torch.cuda.synchronize if pred.device.type == "cuda" else (lambda: None)

    def once() -> None:
        if mode == "fb":
            p = pred.detach().requires_grad_(True)
            fn(p, target, flow).backward()
        else:
            fn(pred, target, flow)

    sync()
    start = time.perf_counter()
    once()  # warm-up (allocations, lazy init); also sizes the inner loop
    sync()
    # Cheap calls are timed in batches of `inner` so each sample lasts >= ~20 ms (timer and
    # scheduler noise would otherwise dominate).
    inner = max(1, min(100, round(0.02 / max(time.perf_counter() - start, 1e-6))))

    def measure() -> float:
        sync()
        start = time.perf_counter()
        for _ in range(inner):
            once()
        sync()
        return (time.perf_counter() - start) / inner

    return measure


def sweep(title: str, shapes: list[tuple[int, ...]], labels: list[str], growth: float, args, device, all_cases) -> None:
    """Time every case at every shape; repeats are interleaved over the shapes, so a change in
    machine load hits all points of a row alike."""
    clips = []
    for shape in shapes:
        g = torch.Generator().manual_seed(0)
        target = (torch.rand(shape, generator=g) * 2 - 1).to(device)
        pred = (target + 0.1 * torch.randn(shape, generator=g).to(device)).clamp(-1, 1)
        b, _, t, h, w = shape
        clips.append((pred, target, (torch.randn(b, 2, t - 1, h, w, generator=g) * 2).to(device)))
    width = 28
    print(f"\n{title}  (ms per call, median of {args.repeats})")
    print(f"{'':<{width}}" + "".join(f"{label:>10}" for label in labels) + f"{'time growth':>14}")
    for name, (mode, fn) in all_cases.items():
        timers = [timer(mode, fn, *clip) for clip in clips]
        samples = [[measure() for measure in timers] for _ in range(args.repeats)]
        values = [statistics.median(column) for column in zip(*samples)]
        cells = "".join(f"{v * 1e3:>10.2f}" for v in values)
        print(f"{name:<{width}}{cells}{values[-1] / values[0]:>13.1f}x", flush=True)
    print(f"{'input growth':<{width}}" + " " * (10 * len(labels)) + f"{growth:>13.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="B=2, smaller sweeps, 3 repeats")
    parser.add_argument("--smoke", action="store_true", help="B=1, two tiny sizes per sweep, 1 repeat: checks that "
                        "the script runs (the timings mean nothing)")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads (0: torch's default); 1 is steadier on a shared machine"
    )
    args = parser.parse_args()
    if args.repeats < 1 or args.batch < 1:
        parser.error("--repeats and --batch must be positive")
    device = resolve_device(parser, args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    frames, sizes = ([4, 8, 16], [32, 64, 128]) if args.quick else ([4, 8, 16, 32], [32, 64, 128, 256])
    size_of_t, t_of_size = 64, 8  # the T sweep's H=W, the H=W sweep's T
    if args.quick:
        args.repeats, args.batch = min(args.repeats, 3), min(args.batch, 2)
    if args.smoke:
        frames, sizes, size_of_t, t_of_size = [3, 4], [32, 40], 32, 4
        args.repeats, args.batch = 1, 1
    torch.manual_seed(0)
    all_cases = cases(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {name}, B={args.batch}, C=3, float32")
    sweep(
        f"T sweep at {size_of_t}x{size_of_t}",
        [(args.batch, 3, t, size_of_t, size_of_t) for t in frames],
        [f"T={t}" for t in frames],
        (frames[-1] - 1) / (frames[0] - 1),
        args,
        device,
        all_cases,
    )
    sweep(
        f"H=W sweep at T={t_of_size}",
        [(args.batch, 3, t_of_size, s, s) for s in sizes],
        [f"{s}px" for s in sizes],
        (sizes[-1] / sizes[0]) ** 2,
        args,
        device,
        all_cases,
    )
    print("\ninput growth: frame pairs (T - 1) for the T sweep, pixels for the size sweep")


if __name__ == "__main__":
    main()

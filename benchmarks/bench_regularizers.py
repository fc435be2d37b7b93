"""Discriminator-step cost: R1 every step against lazy R1 (every 16 steps, gain 16).

Both variants apply the same effective R1 strength on average; the lazy one pays for the double
backward once per interval. A third variant without R1 gives the floor: at interval k lazy R1 can
cut at most ``(1 - 1/k) * (every - none) / every`` (the "ceiling" column), so the cut says how
much R1 costs next to the plain step as much as how good the helper is. Each trial times one
whole interval (16 discriminator steps) of each variant back to back, rotating which goes first,
and the table reports medians per step. With ``--threads 1`` the clock is CPU time; on
``--device cuda`` it is wall time read after ``torch.cuda.synchronize``.

    python benchmarks/bench_regularizers.py            # the reference video discriminator, 32x32 clips
    python benchmarks/bench_regularizers.py --quick
    python benchmarks/bench_regularizers.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's `models`

from _device import add_device_argument, clock_for, describe, resolve_device  # noqa: E402

import genloss as gl  # noqa: E402
from models.discriminators import (  # noqa: E402
    DiscriminatorConfig,
    ImageDiscriminator,
    VideoDiscriminator,
)


def make_step(d: torch.nn.Module, opt: torch.optim.Optimizer, lazy: gl.LazyRegularizer | None, gamma: float):
    def step(i: int, real: torch.Tensor, fake: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        x = real.detach().requires_grad_(lazy is not None and lazy.due(i))
        real_logits = d(x)[0]
        loss = gl.discriminator_loss(real_logits, d(fake)[0])
        reg = None if lazy is None else lazy(i, lambda: gamma / 2 * gl.r1_penalty(real_logits, x))
        if reg is not None:
            loss = loss + reg
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=9, help="intervals timed per variant")
    parser.add_argument("--interval", type=int, default=16, help="lazy R1 interval")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="3 trials")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add_device_argument(parser)
    args = parser.parse_args()
    device = resolve_device(parser, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    trials = 3 if args.quick else args.trials
    torch.manual_seed(0)
    clock = clock_for(device, time.process_time if torch.get_num_threads() == 1 else time.perf_counter)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"({'CPU' if clock is time.process_time else 'wall'} time), device {describe(device)}, "
          f"interval {args.interval}")
    print(f"{'discriminator':<20}{'R1 every step':>15}{'lazy R1':>11}{'no R1':>11}{'ratio':>8}{'cost cut':>10}{'ceiling':>9}")
    cases = {
        "video (3-D convs)": (VideoDiscriminator, (args.batch, 3, args.frames, args.size, args.size)),
        "image (per frame)": (ImageDiscriminator, (args.batch * 4, 3, args.size, args.size)),
    }
    for name, (cls, shape) in cases.items():
        d = cls(DiscriminatorConfig(size=args.size)).to(device)
        opt = torch.optim.Adam(d.parameters(), lr=1e-4)
        real, fake = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1
        variants = {
            "every": make_step(d, opt, gl.LazyRegularizer(1), gamma=1.0),
            "lazy": make_step(d, opt, gl.LazyRegularizer(args.interval), gamma=1.0),
            "none": make_step(d, opt, None, gamma=1.0),
        }
        for step in variants.values():  # warm-up
            for i in range(2):
                step(i, real, fake)
        keys = list(variants)
        times: dict[str, list[float]] = {key: [] for key in keys}
        for trial in range(trials):
            first = trial % len(keys)
            for key in keys[first:] + keys[:first]:
                start = clock()
                for i in range(args.interval):
                    variants[key](i, real, fake)
                times[key].append((clock() - start) / args.interval)
        every, lazy, none = (statistics.median(times[key]) for key in variants)
        ceiling = (1 - 1 / args.interval) * (every - none) / every
        print(f"{name:<20}{every * 1e3:>12.1f} ms{lazy * 1e3:>8.1f} ms{none * 1e3:>8.1f} ms"
              f"{every / lazy:>7.2f}x{1 - lazy / every:>9.0%}{ceiling:>9.0%}")


if __name__ == "__main__":
    main()

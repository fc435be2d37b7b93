"""Accuracy envelope of the weight-free flow estimator on translated smooth random textures.

For each bound s, 16 translations on the border of the square |dx|, |dy| <= s (axes, diagonals
and in between) are applied to smooth random RGB textures (coarse Gaussian noise upsampled
bicubically, cells of 4 and 8 px, several seeds): frame a is a 64x64 crop of a larger texture,
frame b the crop shifted by (dx, dy), so the flow from a to b is (dx, dy) everywhere. The error
is the end-point error in the interior (a 12-px margin, where the match stays inside the frame
up to 12 px). Each row gives, over all cases, the largest interior error, the worst case's mean
error, and how many cases miss by more than 0.3 px and by more than 1 px anywhere in the
interior. This is where `estimate_flow`'s docstring claim comes from; tests/test_flow.py checks
the claimed bound on a few seeds.

    python benchmarks/bench_flow_accuracy.py --threads 1   # 24 seeds: 768 cases per bound, ~70 s
    python benchmarks/bench_flow_accuracy.py --levels 3    # a pyramid one level shallower
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genloss.flow import estimate_flow  # noqa: E402

SIZE, MARGIN, PAD = 64, 12, 16


def texture(n: int, size: int, cell: int, seed: int) -> torch.Tensor:
    """Smooth random RGB texture in [-1, 1]: bicubic upsampling of coarse Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, size // cell, size // cell, generator=g)
    x = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (x / x.abs().amax()).clamp(-1, 1)


def shifts_on_square(s: int) -> list[tuple[int, int]]:
    half = max(1, s // 2)
    edge = [(s, 0), (s, half), (s, s), (half, s), (0, s), (-half, s), (-s, s), (-s, half)]
    return edge + [(-dx, -dy) for dx, dy in edge]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=24, help="textures per cell size and shift")
    parser.add_argument("--bounds", default="3,6,8,9,10,11,12", help="comma-separated bounds s")
    parser.add_argument("--levels", type=int, default=None, help="pyramid levels (default: estimate_flow's)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    textures = {cell: texture(args.seeds, SIZE + 2 * PAD, cell, seed=cell) for cell in (4, 8)}
    print(f"| max(\\|dx\\|, \\|dy\\|) | texture cell | cases | max error px | worst mean px | > 0.3 px | > 1 px |")
    print("|---|---|---|---|---|---|---|")
    pairs, start = 0, time.process_time()
    for s in (int(v) for v in args.bounds.split(",")):
        for cell, big in textures.items():
            worst, worst_mean, over_03, over_1, cases = 0.0, 0.0, 0, 0, 0
            for dx, dy in shifts_on_square(s):
                a = big[:, :, PAD : PAD + SIZE, PAD : PAD + SIZE]
                b = big[:, :, PAD - dy : PAD - dy + SIZE, PAD - dx : PAD - dx + SIZE]
                flow = estimate_flow(a, b, levels=args.levels)
                pairs += len(a)
                truth = torch.tensor([dx, dy], dtype=flow.dtype).view(1, 2, 1, 1)
                error = (flow - truth)[..., MARGIN:-MARGIN, MARGIN:-MARGIN].norm(dim=1).flatten(1)
                worst = max(worst, error.max().item())
                worst_mean = max(worst_mean, error.mean(dim=1).max().item())
                over_03 += int((error.amax(dim=1) > 0.3).sum())
                over_1 += int((error.amax(dim=1) > 1.0).sum())
                cases += len(a)
            print(f"| {s} | {cell} | {cases} | {worst:.2f} | {worst_mean:.3f} | {over_03} | {over_1} |")
    ms = 1000 * (time.process_time() - start) / pairs
    print(f"\n{pairs} frame pairs at {SIZE}x{SIZE}, {ms:.1f} ms CPU time per pair "
          f"({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()

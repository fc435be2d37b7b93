"""What the diagnostics and DiffAugment cost on the reference model.

A generator step of the reference configuration (8 clips of 6x32x32, 2 context frames; the six
generator terms, discriminator feature matching as the perceptual term) with and without
``CompositeLoss(..., gradnorm_wrt=generated)``, alternating, medians of CPU time with 1 thread;
and ``diff_augment`` forward+backward on the same clips. The diagnostics run only on the steps
you log, so their share of a run is ``extra / (step * log_interval)``.

    python benchmarks/bench_diagnostics.py
    python benchmarks/bench_diagnostics.py --device cuda   # wall time after torch.cuda.synchronize
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
    sample_frames,
)
from models.generator import Generator, GeneratorConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per variant")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--log-interval", type=int, default=100, help="steps between logged steps")
    add_device_argument(parser)
    args = parser.parse_args()
    device = resolve_device(parser, args.device)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    clock = clock_for(device, time.process_time)
    print(f"device {describe(device)}, {'CPU time, 1 thread' if clock is time.process_time else 'wall time'}")

    g_cfg = GeneratorConfig()
    gen_model = Generator(g_cfg).to(device)
    d_video = VideoDiscriminator(DiscriminatorConfig()).to(device)
    d_image = ImageDiscriminator(DiscriminatorConfig()).to(device)
    for d in (d_video, d_image):
        d.requires_grad_(False)
    b, k = args.batch_size, g_cfg.context_frames
    clip = torch.rand(b, 3, g_cfg.frames, g_cfg.size, g_cfg.size, device=device) * 2 - 1
    context, future = clip[:, :, :k], clip[:, :, k:]
    frames = torch.arange(k, g_cfg.frames, device=device)[:2]
    loss = gl.CompositeLoss({"rec": 1.0, "gdl": 1.0, "tdl": 1.0, "perceptual": 1.0, "smooth": 0.1, "adv": 0.1})

    def step(diagnose: bool) -> dict[str, torch.Tensor]:
        generated = gen_model(context, torch.randn(b, g_cfg.z_dim, device=device))
        fake = torch.cat([context, generated], dim=2)
        fake_logits, fake_features = d_video(fake)
        with torch.no_grad():
            _, real_features = d_video(clip)
        total, logs = loss(
            0,
            gradnorm_wrt=generated if diagnose else None,
            rec=lambda: gl.l1_loss(generated, future),
            gdl=lambda: gl.gradient_difference_loss(generated, future),
            tdl=lambda: gl.temporal_difference_loss(generated, future),
            perceptual=lambda: gl.feature_matching_loss(real_features, fake_features),
            smooth=lambda: gl.temporal_smoothness_loss(fake, order=2),
            adv=lambda: gl.generator_loss(fake_logits) + gl.generator_loss(d_image(sample_frames(fake, frames))[0]),
        )
        total.backward()
        gen_model.zero_grad(set_to_none=True)
        return logs

    for _ in range(3):  # warm-up
        step(False), step(True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.repeats):
        for diagnose in ((False, True) if i % 2 else (True, False)):
            start = clock()
            step(diagnose)
            times[diagnose].append(clock() - start)
    plain, with_diag = statistics.median(times[False]), statistics.median(times[True])
    extra = with_diag - plain
    print(f"generator step {1e3 * plain:.1f} ms, with gradnorm_wrt {1e3 * with_diag:.1f} ms "
          f"(+{100 * extra / plain:.0f}% on a logged step, +{100 * extra / (plain * args.log_interval):.2f}% "
          f"of a run logging every {args.log_interval} steps)")
    norms = {name: f"{v.item():.2e}" for name, v in step(True).items() if name.startswith("gradnorm/")}
    print("weighted gradient norms at initialisation:", norms)

    x = clip.clone().requires_grad_(True)
    augment_times = []
    for _ in range(args.repeats):
        start = clock()
        gl.diff_augment(x).sum().backward()
        augment_times.append(clock() - start)
    print(f"diff_augment forward+backward on {tuple(clip.shape)}: {1e3 * statistics.median(augment_times):.2f} ms")


if __name__ == "__main__":
    main()

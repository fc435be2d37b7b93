"""The reference trainer's throughput and what the loss suite costs inside a generator step.

Two measurements:

1. **Loss-suite share** (in this process): a whole generator step of the default run after the
   adversarial warm-up (generator forward, every loss term, the discriminators' forward passes
   for the adversarial and feature-matching terms, backward, Adam step) against the genloss calls
   alone — the same terms, forward and backward, on the step's tensors (the discriminators'
   outputs taken as given leaves, since those passes are model cost). Interleaved, medians.
2. **Throughput** (subprocesses): short runs of ``accelerate launch train/gan.py`` with the
   default settings, reading ``steps_per_s`` from ``metrics.jsonl``: 1 process x 1 thread (the
   default), 1 process x 2 threads, and one 2-process CPU DDP job (1 thread each).

    python benchmarks/bench_trainer.py            # both (about 4 minutes on 2 cores)
    python benchmarks/bench_trainer.py --quick    # fewer trials and steps
    python benchmarks/bench_trainer.py --trials 1 --steps 2 --settings 1x1   # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's `models` and `train`

import genloss as gl  # noqa: E402
from models import sample_frames  # noqa: E402
from train.build import build_datasets, build_models, build_perceptual  # noqa: E402
from train.gan import GAN, judge_for_generator  # noqa: E402
from train.in_training_eval import stack_clips  # noqa: E402
from train.losses import build_losses, frame_indices, temporal_difference_from_context  # noqa: E402
from train.options import parse_args as trainer_args  # noqa: E402


def loss_share(trials: int) -> None:
    args = trainer_args([]).config
    torch.set_num_threads(args.cpu_threads or os.cpu_count())
    perceptual, used, _ = build_perceptual(args.perceptual, args.perceptual_weights, args.size)
    train_set, _ = build_datasets(args, 64, log=lambda *a: None)
    generator, d_image, d_video = build_models(args)
    d_image.requires_grad_(False)
    d_video.requires_grad_(False)
    losses = build_losses(args, perceptual, used)
    gan = GAN(generator, d_image, d_video, None, None, d_image, d_video, generator.last_layer)
    opt = torch.optim.Adam(generator.parameters(), lr=args.lr_g)
    real = stack_clips(train_set, range(args.batch_size))
    k, step = args.context_frames, args.max_steps  # after the warm-up: every term is on
    factors = losses.generator.factors(step)

    def full_step() -> None:
        # The generator's half of train_step (step 4 and its backward), with every term on.
        opt.zero_grad(set_to_none=True)
        z = torch.randn(real.shape[0], args.z_dim)
        context, future = real[:, :, :k], real[:, :, k:]
        generated, flow = generator(context, z, return_flow=True)
        fake = torch.cat([context, generated], dim=2)
        d = judge_for_generator(gan, losses.view, real, fake, k, adversarial=True, relativistic=False,
                                feature_matching=losses.lpips is None)
        adv = gl.generator_loss(d.video_fake, kind=losses.kind) + gl.generator_loss(d.image_fake, kind=losses.kind)
        total, _ = losses.generator(
            step, rec=lambda: losses.reconstruction(generated, future),
            gdl=lambda: gl.gradient_difference_loss(generated, future),
            tdl=lambda: temporal_difference_from_context(context, generated, future),
            perceptual=lambda: losses.perceptual(generated, future, d.features_real, d.features_fake),
            smooth=lambda: gl.temporal_smoothness_loss(fake, order=2), flow_tv=lambda: gl.flow_smoothness_loss(flow),
            adv=lambda: adv)
        total.backward()
        opt.step()

    # The loss terms' inputs, as leaves: the generated frames and the discriminators' outputs.
    with torch.no_grad():
        generated, flow = generator(real[:, :, :k], torch.randn(real.shape[0], args.z_dim), return_flow=True)
        fake = torch.cat([real[:, :, :k], generated], dim=2)
        idx = frame_indices(real.shape[2], k, real.device)
        v_logits, v_features = d_video(fake)
        i_logits, _ = d_image(sample_frames(fake, idx))
        _, real_features = d_video(real)

    def losses_only() -> None:
        gen, flow_leaf = generated.clone().requires_grad_(True), flow.clone().requires_grad_(True)
        leaves = [t.clone().requires_grad_(True) for t in (v_logits, i_logits, *v_features)]
        v, i, feats = leaves[0], leaves[1], leaves[2:]
        future, last = real[:, :, k:], real[:, :, k - 1 : k]
        terms = {
            "rec": lambda: gl.l1_loss(gen, future),
            "gdl": lambda: gl.gradient_difference_loss(gen, future),
            "tdl": lambda: gl.temporal_difference_loss(torch.cat([last, gen], 2), torch.cat([last, future], 2)),
            "smooth": lambda: gl.temporal_smoothness_loss(torch.cat([real[:, :, :k], gen], 2), order=2),
            "flow_tv": lambda: gl.flow_smoothness_loss(flow_leaf),
            "adv": lambda: gl.generator_loss(v, kind=args.adv_loss) + gl.generator_loss(i, kind=args.adv_loss),
            "perceptual": (lambda: perceptual(gen, future)) if perceptual is not None
            else (lambda: gl.feature_matching_loss(real_features, feats)),
        }
        total = sum(factors[name] * terms[name]() for name in losses.generator.terms)
        total.backward()

    for fn in (full_step, losses_only):  # warm-up
        fn()
    times: dict[str, list[float]] = {"full": [], "losses": []}
    for trial in range(trials):
        order = [("full", full_step), ("losses", losses_only)]
        for name, fn in order if trial % 2 == 0 else reversed(order):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    full, losses = statistics.median(times["full"]), statistics.median(times["losses"])
    print(f"generator step, default run after warm-up ({torch.get_num_threads()} thread(s), "
          f"batch {args.batch_size}, {args.frames}x{args.size}x{args.size}, perceptual={used}):")
    print(f"  whole step {full * 1e3:7.1f} ms   loss suite {losses * 1e3:6.1f} ms   share {losses / full:5.1%}")


# --settings key -> (row label, launcher flags, trainer flags)
SETTINGS = {
    "1x1": ("1 process x 1 thread (default)", [], ["--cpu-threads", "1"]),
    "1x2": ("1 process x 2 threads", [], ["--cpu-threads", "2"]),
    "2x1": ("2 processes x 1 thread (CPU DDP)", ["--multi_gpu", "--num_processes", "2"], ["--cpu-threads", "1"]),
}


def throughput(steps: int, settings: list[str]) -> None:
    print(f"\nthroughput of `accelerate launch train/gan.py` (defaults, {steps} steps, no eval/samples in between):")
    print(f"  {'setting':<34}{'steps/s':>9}{'clips/s':>9}")
    for name, launch, flags in (SETTINGS[key] for key in settings):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   *(launch or ["--num_processes", "1"]), str(ROOT / "train" / "gan.py"),
                   "--max-steps", str(steps), "--eval-every", str(10 * steps), "--sample-every", str(10 * steps),
                   "--checkpoint-every", str(10 * steps), "--log-every", str(steps // 2), "--eval-clips", "8",
                   "--detect-clips", "0",  # the end-of-run detector is no part of the step rate
                   "--output-dir", f"{tmp}/runs", "--samples-dir", f"{tmp}/samples", "--run-name", "bench", *flags]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            records = [json.loads(line) for line in open(f"{tmp}/runs/bench/metrics.jsonl")]
            record = json.loads(open(f"{tmp}/runs/bench/config.json").read())["run"]
        rate = [r["steps_per_s"] for r in records if "steps_per_s" in r][-1]
        print(f"  {name:<34}{rate:>9.2f}{rate * record['global_batch_size']:>9.1f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=15, help="interleaved generator steps per variant")
    parser.add_argument("--steps", type=int, default=200, help="training steps per throughput run (at least 2)")
    parser.add_argument("--quick", action="store_true", help="5 trials, 60 steps")
    parser.add_argument("--skip-throughput", action="store_true", help="measure the loss-suite share only")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        help="throughput runs: processes x threads (default: all)")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.steps < 2:
        parser.error("--trials must be >= 1 and --steps >= 2 (metrics are logged every steps // 2)")
    return args


def main(args: argparse.Namespace) -> None:
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores")
    loss_share(5 if args.quick else args.trials)
    if not args.skip_throughput:
        throughput(60 if args.quick else args.steps, args.settings)


if __name__ == "__main__":
    main(parse_args())

"""Command-line flags of ``train/gan.py`` and their validation (all before any work is done)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from genloss import KINDS

__all__ = ["PERCEPTUAL_CHOICES", "build_parser", "parse_args", "validate"]

PERCEPTUAL_CHOICES = ("auto", "lpips-alex", "lpips-vgg", "lpips-squeeze", "none")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the reference video GAN (video continuation by default) with genloss "
        "and Accelerate. With no flags: the CPU reference run on procedural moving shapes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("run")
    g.add_argument("--max-steps", type=int, default=3000, help="optimisation steps to train for (in total, across resumes)")
    g.add_argument("--batch-size", type=int, default=8, help="clips per process per micro-batch")
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches accumulated per optimisation step")
    g.add_argument("--frames", type=int, default=6, help="clip length T (context + generated frames)")
    g.add_argument("--context-frames", type=int, default=2, help="K context frames given to the generator; 0 = unconditional generation")
    g.add_argument("--size", type=int, default=32, help="frame height and width in pixels (a multiple of 8, at least 16)")
    g.add_argument("--dataset", type=str, default=None, help="folder of videos (.mp4 .webm .avi .gif) or of frame folders (.png/.jpg); default: procedural moving shapes")
    g.add_argument("--num-shapes", type=int, default=2, help="shapes per clip in the procedural moving-shapes dataset")
    g.add_argument("--output-dir", type=str, default="runs", help="where run folders (config, metrics, checkpoints) go")
    g.add_argument("--run-name", type=str, default=None, help="run folder name; default: <date>-<time>-<task>")
    g.add_argument("--samples-dir", type=str, default="samples", help="where sample clips and the gallery index.html go")
    g.add_argument("--sample-every", type=int, default=500, help="write sample clips every N steps (and at the end)")
    g.add_argument("--eval-every", type=int, default=250, help="evaluate on the held-out clips every N steps (and at the end)")
    g.add_argument("--checkpoint-every", type=int, default=500, help="save a checkpoint every N steps (and at the end)")
    g.add_argument("--keep-checkpoints", type=int, default=3, help="keep only the newest N checkpoints")
    g.add_argument("--log-every", type=int, default=25, help="append training losses to metrics.jsonl every N steps")
    g.add_argument("--eval-clips", type=int, default=64, help="held-out clips per evaluation (split across processes)")
    g.add_argument("--sample-clips", type=int, default=8, help="held-out clips shown in each sample grid")
    g.add_argument("--resume", type=str, default=None, help="'latest' (newest checkpoint of --run-name, or of any run in --output-dir) or a checkpoint folder")
    g.add_argument("--seed", type=int, default=0, help="seed for data, initialisation, noise and the held-out split")
    g.add_argument("--cpu-threads", type=int, default=1, help="torch threads per process when training on CPU; 0 = the machine's cores divided among its processes (1 is the safe choice for this small model on 2 cores: 2 threads are ~25%% faster on an idle machine but OpenMP threads stall whenever another process competes for a core)")
    g.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no", help="autocast precision (fp16 needs a CUDA GPU)")

    m = p.add_argument_group("model and optimiser")
    m.add_argument("--g-channels", type=int, default=16, help="generator width at full resolution (a multiple of 8)")
    m.add_argument("--g-output-scale", type=int, choices=(1, 2), default=2, help="generator heads (flow, mask, colour) at size / this, bilinearly upsampled; 1 = full resolution (sharper, ~40%% slower)")
    m.add_argument("--d-channels", type=int, default=16, help="discriminators' first-layer width (a multiple of 8)")
    m.add_argument("--z-dim", type=int, default=32, help="noise vector size")
    m.add_argument("--spectral-norm", action="store_true", help="spectral normalisation in both discriminators")
    m.add_argument("--lr-g", type=float, default=1e-3, help="generator Adam learning rate")
    m.add_argument("--lr-d", type=float, default=4e-4, help="discriminators' Adam learning rate")
    m.add_argument("--ema-decay", type=float, default=0.995, help="decay of the generator's EMA used for samples and eval")
    m.add_argument("--max-grad-norm", type=float, default=0.0, help="clip gradient norms to this value (0 = no clipping; non-finite norms are always skipped)")
    m.add_argument("--nonfinite-patience", type=int, default=5, help="stop after this many consecutive non-finite steps")

    l = p.add_argument_group("losses")
    l.add_argument("--adv-loss", choices=KINDS, default="hinge", help="adversarial loss kind for both discriminators")
    l.add_argument("--adv-weight", type=float, default=0.05, help="weight of the generator's adversarial term")
    l.add_argument("--adv-start", type=int, default=None, help="warm-up: steps before the adversarial term starts (default: max-steps/3 with context, 0 without)")
    l.add_argument("--adv-ramp", type=int, default=None, help="steps over which the adversarial weight ramps up (default: max-steps/6 with context, 0 without)")
    l.add_argument("--adaptive-weight", action="store_true", help="scale the adversarial term by VQGAN's adaptive weight")
    l.add_argument("--r1-gamma", type=float, default=1.0, help="R1 penalty strength gamma (0 = off)")
    l.add_argument("--r1-interval", type=int, default=16, help="apply R1 lazily every N steps")
    l.add_argument("--rec-loss", choices=("l1", "charbonnier"), default="l1", help="reconstruction loss on the generated frames")
    l.add_argument("--rec-weight", type=float, default=1.0, help="weight of the reconstruction term")
    l.add_argument("--gdl-weight", type=float, default=1.0, help="weight of the gradient-difference term")
    l.add_argument("--tdl-weight", type=float, default=1.0, help="weight of the temporal-difference term")
    l.add_argument("--smooth-weight", type=float, default=0.02, help="weight of the second-order temporal-smoothness term")
    l.add_argument("--perceptual", choices=PERCEPTUAL_CHOICES, default="auto", help="perceptual term: LPIPS net, or auto (LPIPS alex if ImageNet weights load, else discriminator feature matching)")
    l.add_argument("--perceptual-weights", type=str, default=None, help="torchvision state dict file of the LPIPS backbone (instead of the hub cache)")
    l.add_argument("--perceptual-weight", type=float, default=0.1, help="weight of the perceptual (or feature-matching) term")
    return p


def validate(args: argparse.Namespace) -> argparse.Namespace:
    """Raise ``SystemExit`` via ``argparse`` errors for any bad value or combination."""

    def fail(message: str) -> None:
        build_parser().error(message)

    positive = ("max_steps", "batch_size", "grad_accum", "frames", "size", "num_shapes", "sample_every",
                "eval_every", "checkpoint_every", "keep_checkpoints", "log_every", "eval_clips",
                "sample_clips", "g_channels", "d_channels", "z_dim", "r1_interval", "nonfinite_patience")
    for name in positive:
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    non_negative = ("adv_weight", "r1_gamma", "rec_weight", "gdl_weight", "tdl_weight", "smooth_weight",
                    "perceptual_weight", "max_grad_norm")
    for name in non_negative:
        if not getattr(args, name) >= 0:  # also rejects NaN
            fail(f"--{name.replace('_', '-')} must be >= 0; got {getattr(args, name)}")
    for name in ("lr_g", "lr_d"):
        if not getattr(args, name) > 0:
            fail(f"--{name.replace('_', '-')} must be > 0; got {getattr(args, name)}")
    if not 0 <= args.ema_decay < 1:
        fail(f"--ema-decay must be in [0, 1); got {args.ema_decay}")
    if args.frames < 3:
        fail(f"--frames must be >= 3 (the temporal terms compare consecutive frame pairs); got {args.frames}")
    if not 0 <= args.context_frames < args.frames:
        fail(f"--context-frames must be in [0, --frames); got {args.context_frames} with --frames {args.frames}")
    if args.size < 16 or args.size % 8:
        fail(f"--size must be a multiple of 8 and at least 16 (the models halve it 3 times); got {args.size}")
    for name in ("g_channels", "d_channels"):
        if getattr(args, name) % 8:
            fail(f"--{name.replace('_', '-')} must be a multiple of 8 (group norm); got {getattr(args, name)}")
    if args.cpu_threads < 0:
        fail(f"--cpu-threads must be >= 0; got {args.cpu_threads}")
    for name in ("adv_start", "adv_ramp"):
        value = getattr(args, name)
        if value is not None and value < 0:
            fail(f"--{name.replace('_', '-')} must be >= 0; got {value}")
    if args.dataset is not None and not Path(args.dataset).is_dir():
        fail(f"--dataset {args.dataset!r} is not an existing folder")
    if args.perceptual_weights is not None:
        if args.perceptual == "none":
            fail("--perceptual-weights was given but --perceptual is 'none'")
        if not Path(args.perceptual_weights).is_file():
            fail(f"--perceptual-weights {args.perceptual_weights!r} is not an existing file")
    if args.run_name is not None and not _RUN_NAME.match(args.run_name):
        fail(f"--run-name must be letters, digits, '.', '_' or '-' (a folder name); got {args.run_name!r}")
    if args.resume not in (None, "latest"):
        path = Path(args.resume)
        if not path.is_dir():
            fail(f"--resume {args.resume!r} is neither 'latest' nor an existing checkpoint folder")
    if args.mixed_precision == "fp16":
        import torch

        if not torch.cuda.is_available():
            fail("--mixed-precision fp16 needs a CUDA GPU; use bf16 on CPU")
    # Resolved defaults, recorded in config.json.
    conditional = args.context_frames > 0
    if args.adv_start is None:
        args.adv_start = args.max_steps // 3 if conditional else 0
    if args.adv_ramp is None:
        args.adv_ramp = args.max_steps // 6 if conditional else 0
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return validate(build_parser().parse_args(argv))

"""A worked example: train a tiny KL video autoencoder with a loss preset from ``genloss.recipes``.

The preset is VidTok's (``gl.recipes.vidtok_kl``): a learned-variance L1 (+ LPIPS) NLL over
frames, a KL on the latent, and an adaptive-weight non-saturating GAN on frames whose
discriminator side is a hinge loss with LeCam. This script shows the whole loop around it:

1. build the networks (autoencoder, a 2-D patch discriminator, optionally LPIPS) and hand the
   discriminator and LPIPS to the preset: genloss ships the loss arithmetic, you ship the networks;
2. each step, feed the preset the tensors its terms need (``recipe.generator_thunks(...)``), sum
   with ``recipe(step, ...)`` and step the autoencoder;
3. then the discriminator step with the preset's discriminator side (``recipe.discriminator``),
   skipped while its weights are 0 (before ``--disc-start``, or always with ``--adv-weight 0``);
4. at the end, PSNR on held-out clips (a split of the moving-shapes data the model never saw) and
   how well a fresh classifier tells the reconstructions from the real clips
   (``gl.metrics.detectability``).

Run it twice, with the preset's GAN and without, and compare::

    python examples/tokenizer.py --out runs/tokenizer-example/gan
    python examples/tokenizer.py --adv-weight 0 --out runs/tokenizer-example/no-gan

(``--perceptual lpips --size 32`` adds the preset's LPIPS term; it needs AlexNet's ImageNet weights.)

The data is ``train/data.py``'s ``MovingShapes``: coloured discs and squares bouncing around,
deterministic from (seed, split, index). See examples/README.md for measured numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's `train` package

import genloss as gl  # noqa: E402
from train.data import MovingShapes  # noqa: E402

# -------------------------------------------------------------------------------------- data


def datasets(args: argparse.Namespace) -> tuple[MovingShapes, MovingShapes]:
    """The training clips and the held-out clips.

    Clip i of a split is a pure function of (seed, split, i). Training reads "train" clips
    0, 1, 2, ... (each seen once); evaluation reads the "heldout" split, a disjoint random stream,
    so no held-out clip was ever trained on.
    """
    train = MovingShapes(args.steps * args.batch_size, args.frames, args.size, seed=args.seed, split="train")
    heldout = MovingShapes(args.eval_clips, args.frames, args.size, seed=args.seed, split="heldout")
    return train, heldout


# ------------------------------------------------------------------------------------ models


class Encoder(nn.Module):
    """Clips ``(B, 3, T, H, W)`` -> posterior mean and log-variance ``(B, z, T/2, H/4, W/4)``."""

    def __init__(self, width: int, latent: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(3, width, 3, padding=1), nn.SiLU(),
            nn.Conv3d(width, 2 * width, (3, 4, 4), stride=(1, 2, 2), padding=1), nn.SiLU(),  # H/2, W/2
            nn.Conv3d(2 * width, 2 * width, 4, stride=2, padding=1), nn.SiLU(),  # T/2, H/4, W/4
            nn.Conv3d(2 * width, 2 * width, 3, padding=1), nn.SiLU(),
            nn.Conv3d(2 * width, 2 * latent, 3, padding=1),  # mean and log-variance stacked on channels
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=1)
        return mean, logvar


class Decoder(nn.Module):
    """Latents ``(B, z, t, h, w)`` -> clips ``(B, 3, 2t, 4h, 4w)``; nearest upsampling then a conv
    (as LDM's decoders: transposed convolutions leave checkerboards)."""

    def __init__(self, width: int, latent: int) -> None:
        super().__init__()
        self.conv_in = nn.Sequential(
            nn.Conv3d(latent, 2 * width, 3, padding=1), nn.SiLU(),
            nn.Conv3d(2 * width, 2 * width, 3, padding=1), nn.SiLU(),
        )
        self.up_thw = nn.Conv3d(2 * width, 2 * width, 3, padding=1)
        self.up_hw = nn.Conv3d(2 * width, width, 3, padding=1)
        self.conv_out = nn.Conv3d(width, 3, 3, padding=1)  # the "last layer" of the adaptive GAN weight

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        h = F.silu(self.up_thw(F.interpolate(h, scale_factor=(2, 2, 2), mode="nearest")))
        h = F.silu(self.up_hw(F.interpolate(h, scale_factor=(1, 2, 2), mode="nearest")))
        return self.conv_out(h)


class VAE(nn.Module):
    """A tiny KL autoencoder: 4x spatial and 2x temporal downsampling to ``latent`` channels."""

    def __init__(self, width: int = 16, latent: int = 4) -> None:
        super().__init__()
        self.encoder, self.decoder = Encoder(width, latent), Decoder(width, latent)

    def forward(self, x: Tensor, sample: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``(reconstruction, posterior mean, posterior log-variance)``; the decoder sees a
        reparameterised sample while training (``sample``), the mean otherwise."""
        mean, logvar = self.encoder(x)
        # The same clamp the KL term applies (ldm), so exp() never overflows.
        z = mean + torch.randn_like(mean) * (0.5 * logvar.clamp(-30.0, 20.0)).exp() if sample else mean
        return self.decoder(z), mean, logvar


class FrameDiscriminator(nn.Module):
    """A small 2-D PatchGAN on frames (VidTok's ``disc_type 2d``): ``(N, 3, H, W)`` -> ``(N, 1, H/4, W/4)``
    logits. No normalisation layers: batch statistics would mix real and fake frames."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, padding=1),
        )

    def forward(self, frames: Tensor) -> Tensor:
        return self.net(frames)


def no_perceptual(pred_frames: Tensor, target_frames: Tensor) -> Tensor:
    """A perceptual distance of 0 per frame, for ``--perceptual none`` (the preset is then built
    with ``perceptual_weight=0``, so this value never reaches the loss)."""
    return pred_frames.new_zeros(pred_frames.shape[0])


# ------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def reconstruct(vae: VAE, clips: Tensor, device: torch.device, batch: int = 64) -> Tensor:
    """Posterior-mean reconstructions of ``clips`` ``(N, 3, T, H, W)``, clamped to [-1, 1], on the CPU."""
    vae.eval()
    out = [vae(clips[i:i + batch].to(device), sample=False)[0].clamp(-1, 1).cpu()
           for i in range(0, len(clips), batch)]
    vae.train()
    return torch.cat(out)


def fmt(logs: dict[str, Tensor]) -> str:
    """``name value`` pairs of a CompositeLoss's logs (one host sync per value: only when printing)."""
    return "  ".join(f"{name} {value.item():.4g}" for name, value in logs.items())


# --------------------------------------------------------------------------------- training


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train a tiny KL video autoencoder on moving shapes with genloss's VidTok preset "
                    "(gl.recipes.vidtok_kl); print held-out PSNR and detector scores, write results.json.")
    p.add_argument("--steps", type=int, default=800, help="training steps (default 800)")
    p.add_argument("--size", type=int, default=16, help="frame height and width, a multiple of 4 (default 16)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip, even (default 8)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per step (default 8)")
    p.add_argument("--width", type=int, default=16, help="channels of the autoencoder's first layer (default 16)")
    p.add_argument("--latent", type=int, default=4, help="latent channels (default 4, as VidTok's 4chn)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of both networks (default 1e-3)")
    p.add_argument("--adv-weight", type=float, default=1.0,
                   help="the preset's disc_factor: weight of the generator's adv term and of the "
                        "discriminator's terms; 0 trains without the GAN (default 1.0, the preset's)")
    p.add_argument("--disc-start", type=int, default=None,
                   help="step at which the GAN switches on (default: half of --steps; the preset's "
                        "20001 is for runs of 100k+ steps)")
    p.add_argument("--perceptual", choices=("lpips", "none"), default="none",
                   help="lpips: LPIPS-alex with ImageNet weights in the NLL, as the preset (needs --size "
                        ">= 31 and the weights: --lpips-weights, or the torch hub cache, downloaded once); "
                        "none (default): no perceptual term (perceptual_weight 0), so the example runs offline")
    p.add_argument("--lpips-weights", type=Path, default=None,
                   help="torchvision alexnet state dict for --perceptual lpips (default: the torch hub cache)")
    p.add_argument("--eval-clips", type=int, default=256,
                   help="held-out clips for PSNR and the detector (default 256)")
    p.add_argument("--detector", choices=gl.metrics.detect.PROTOCOLS, default="strong",
                   help="detectability protocol (default strong: a per-frame and a per-clip judge)")
    p.add_argument("--detector-steps", type=int, default=None,
                   help="detector training steps (default: the protocol's, 1200 for strong)")
    p.add_argument("--log-every", type=int, default=50, help="print the loss terms every N steps (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the initialisation and the detector")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's own); on a busy machine 1 is often fastest, as "
                        "threads that wait for a core spin")
    p.add_argument("--out", type=Path, default=Path("runs/tokenizer-example"),
                   help="folder for results.json (default runs/tokenizer-example, git-ignored)")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "width", "latent", "eval_clips", "log_every", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:  # --threads may be None (torch's own)
            p.error(f"--{name.replace('_', '-')} must be at least 1; got {value}")
    if args.size < 4 or args.size % 4:
        p.error(f"--size must be a positive multiple of 4 (the autoencoder downsamples 4x); got {args.size}")
    if args.frames < 2 or args.frames % 2:
        p.error(f"--frames must be even and at least 2 (the autoencoder downsamples time 2x); got {args.frames}")
    if args.eval_clips < 4:
        p.error(f"--eval-clips must be at least 4 (the detector trains on half, scores the other); got {args.eval_clips}")
    if not (args.adv_weight >= 0 and math.isfinite(args.adv_weight)):
        p.error(f"--adv-weight must be a finite number >= 0; got {args.adv_weight}")
    if args.disc_start is not None and args.disc_start < 0:
        p.error(f"--disc-start must be >= 0; got {args.disc_start}")
    if args.detector_steps is not None and args.detector_steps < 1:
        p.error(f"--detector-steps must be at least 1; got {args.detector_steps}")
    if args.perceptual == "lpips" and args.size < 31:
        p.error(f"--perceptual lpips needs --size >= 31 (AlexNet pools smaller frames away); got {args.size}; "
                "use --perceptual none")
    if args.lpips_weights is not None and args.perceptual != "lpips":
        p.error("--lpips-weights goes with --perceptual lpips")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device")
    return args


def main(args: argparse.Namespace) -> dict[str, object]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    disc_start = args.steps // 2 if args.disc_start is None else args.disc_start

    train_set, heldout = datasets(args)
    loader = DataLoader(train_set, batch_size=args.batch_size)  # in index order: no shuffling needed

    # Networks. The preset takes the discriminator and the perceptual network as arguments.
    vae = VAE(args.width, args.latent).to(device)
    discriminator = FrameDiscriminator().to(device)
    nll_logvar = nn.Parameter(torch.zeros((), device=device))  # VidTok's learned output log-variance s
    if args.perceptual == "lpips":
        weights = "imagenet" if args.lpips_weights is None else args.lpips_weights
        perceptual, perceptual_weight = gl.LPIPS("alex", weights=weights, reduction="none").to(device), 1.0
    else:
        perceptual, perceptual_weight = no_perceptual, 0.0

    # The preset: every weight, schedule and formula as VidTok's config, except where the GAN
    # starts (its 20001 steps would never come in a few minutes) and its strength (--adv-weight).
    recipe = gl.recipes.vidtok_kl(perceptual=perceptual, discriminator=discriminator, disc_start=disc_start,
                                  disc_factor=args.adv_weight, perceptual_weight=perceptual_weight)
    print(f"recipe {recipe.name}: generator {dict(recipe.terms)}")
    print(f"  discriminator {dict(recipe.discriminator.terms)}")
    print(f"  from {', '.join(recipe.sources)}")
    gan = args.adv_weight > 0 and disc_start < args.steps
    print(f"GAN {'on from step ' + str(disc_start) if gan else 'off'}; perceptual {args.perceptual}; "
          f"{sum(p.numel() for p in vae.parameters())} autoencoder parameters; "
          f"clips {args.batch_size}x3x{args.frames}x{args.size}x{args.size} -> latents "
          f"{args.latent}x{args.frames // 2}x{args.size // 4}x{args.size // 4}")

    opt_g = torch.optim.Adam([*vae.parameters(), nll_logvar], lr=args.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr, betas=(0.5, 0.9))

    logs: dict[str, Tensor] = {}
    d_logs: dict[str, Tensor] = {}
    tick, last_logged = time.perf_counter(), -1
    for step, x in enumerate(loader):
        x = x.to(device)  # (B, 3, T, H, W) in [-1, 1]

        # Generator (autoencoder) step. The discriminator is frozen here: the adv term needs
        # gradients through it to the reconstruction, not into its weights.
        discriminator.requires_grad_(False)
        x_rec, mean, logvar = vae(x)
        total, logs = recipe(step, **recipe.generator_thunks(
            inputs=x, reconstructions=x_rec, posterior_mean=mean, posterior_logvar=logvar,
            logvar=nll_logvar, last_layer=vae.decoder.conv_out.weight))  # the adaptive weight's layer
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()

        # Discriminator step, on the same clips and the (detached) reconstructions. The preset's
        # discriminator side is a CompositeLoss too: hinge + LeCam, both 0 before disc_start, so the
        # step is skipped then (nothing would be computed: a term whose factor is 0 never runs).
        if any(recipe.discriminator.factors(step).values()):
            discriminator.requires_grad_(True)
            d_total, d_logs = recipe.discriminator(
                step, **recipe.discriminator_thunks(inputs=x, reconstructions=x_rec))
            opt_d.zero_grad(set_to_none=True)
            d_total.backward()
            opt_d.step()

        if step % args.log_every == 0 or step == args.steps - 1:
            seconds = (time.perf_counter() - tick) / (step - last_logged)
            d_part = f"  | D: {fmt(d_logs)}" if d_logs else ""
            print(f"step {step:5d}  {fmt(logs)}{d_part}  s {nll_logvar.item():.3f}  {seconds:.2f} s/step",
                  flush=True)
            tick, last_logged = time.perf_counter(), step
    train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    # Evaluation on the held-out clips: PSNR of the posterior-mean reconstructions, then the
    # two-sample test: can a classifier trained on half of (real, reconstruction) pairs tell the
    # other half apart? 0.5 = no, 1.0 = always.
    real = torch.stack([heldout[i] for i in range(len(heldout))])
    fake = reconstruct(vae, real, device)
    psnr = gl.metrics.psnr(fake, real)
    detect = gl.metrics.detectability(real, fake, protocol=args.detector, steps=args.detector_steps,
                                      seed=args.seed)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    print(f"held-out PSNR {psnr.mean.item():.2f} dB (std over clips {psnr.per_clip.std().item():.2f}) "
          f"on {len(real)} clips the model never trained on")
    judges = [("", detect)] if detect.frame is None else [("frames ", detect.frame), ("clips  ", detect.clip)]
    for label, result in judges:
        low, high = result.interval
        print(f"detectability {label}({result.protocol}, {result.steps} steps): accuracy {result.accuracy:.3f} "
              f"[{low:.3f}, {high:.3f}], AUC {result.auc:.3f}, p {result.p_value:.2g}  (0.5 = indistinguishable)")
    print(f"time: training {train_wall:.0f} s wall / {train_cpu:.0f} s CPU; total {wall:.0f} s wall / {cpu:.0f} s CPU "
          f"(torch threads: {torch.get_num_threads()})")

    results = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "recipe": recipe.name,
        "sources": list(recipe.sources),
        "disc_start": disc_start,
        "final_logs": {k: v.item() for k, v in {**logs, **{f"d/{k}": v for k, v in d_logs.items()}}.items()},
        "nll_logvar": nll_logvar.item(),
        "psnr": {"mean": psnr.mean.item(), "std": psnr.per_clip.std().item(), "clips": len(real)},
        "detectability": detect.as_dict(),
        "time": {"train_wall_s": train_wall, "train_cpu_s": train_cpu, "total_wall_s": wall, "total_cpu_s": cpu,
                 "threads": torch.get_num_threads(), "device": str(device)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main(parse_args())

"""Held-out evaluation and sample clips, from the EMA generator on fixed clips and fixed noise.

Metrics (``eval/*`` keys of ``metrics.jsonl``):

* ``eval/psnr``: PSNR of the generated continuation against the true one (dB, mean over clips of
  each clip's mean over frames, ``genloss.metrics.psnr``);
* ``eval/psnr_baseline``: the same for the copy-last-context-frame predictor on the same clips;
* ``eval/motion``: mean ``|frame[t+1] - frame[t]|`` of the generated continuation (starting at
  the last context frame) over that of the true continuation. 1.0 is right; a frozen or blank
  prediction scores near 0, which matters because on a dark background a blank prediction
  already beats copy-last-frame in PSNR;
* ``eval/lpips`` and ``eval/tlp`` when an LPIPS model is in use.

Unconditional runs (K = 0) report only ``eval/motion`` (against the held-out clips' motion):
their samples have no true continuation to compare with.

Each process evaluates its share of the clips; sums are reduced across processes, so the numbers
do not depend on the number of processes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

import genloss as gl
import genloss.metrics as gm

__all__ = ["evaluate", "fixed_noise", "generate", "stack_clips"]


def stack_clips(dataset, indices) -> Tensor:
    """``(N, C, T, H, W)`` from dataset items ``indices``."""
    return torch.stack([dataset[i] for i in indices])


def fixed_noise(count: int, z_dim: int, seed: int) -> Tensor:
    """The same ``(count, z_dim)`` noise on every process and every evaluation."""
    return torch.randn(count, z_dim, generator=torch.Generator().manual_seed(seed + 12345))


@torch.no_grad()
def generate(generator: nn.Module, clips: Tensor, noise: Tensor, context_frames: int, batch: int = 64) -> Tensor:
    """The generated continuation ``(N, C, T - K, H, W)`` of ``clips`` given their first K frames."""
    out = []
    for start in range(0, len(clips), batch):
        context = clips[start : start + batch, :, :context_frames]
        out.append(generator(context, noise[start : start + batch]).float())
    return torch.cat(out)


def _with_last_context(context: Tensor, video: Tensor) -> Tensor:
    return torch.cat([context[:, :, -1:], video], dim=2) if context.shape[2] else video


@torch.no_grad()
def evaluate(accelerator, generator: nn.Module, clips: Tensor, noise: Tensor, context_frames: int,
             lpips: nn.Module | None = None) -> dict[str, float]:
    """The ``eval/*`` metrics over all processes' clips (see the module docstring)."""
    rank, world = accelerator.process_index, accelerator.num_processes
    mine = slice(rank, None, world)
    clips, noise = clips[mine].to(accelerator.device), noise[mine].to(accelerator.device)
    generated = generate(generator, clips, noise, context_frames)
    context, truth = clips[:, :, :context_frames], clips[:, :, context_frames:]
    sums = {"count": torch.tensor(float(len(clips)), device=accelerator.device)}
    moving_gen = _with_last_context(context, generated)
    moving_true = _with_last_context(context, truth)
    sums["motion_gen"] = gl.temporal_smoothness_loss(moving_gen, reduction="sum")
    sums["motion_true"] = gl.temporal_smoothness_loss(moving_true, reduction="sum")
    if context_frames > 0:  # unconditional samples have no true continuation to compare with
        sums["psnr"] = gm.psnr(generated, truth).per_clip.sum()
        baseline = context[:, :, -1:].expand_as(truth)
        sums["psnr_baseline"] = gm.psnr(baseline, truth).per_clip.sum()
    if lpips is not None and context_frames > 0:
        sums["lpips"] = gm.lpips(generated, truth, model=lpips).per_clip.sum()
        if truth.shape[2] >= 2:
            sums["tlp"] = gm.tlp(generated, truth, model=lpips).per_clip.sum()
    names = sorted(sums)
    total = accelerator.reduce(torch.stack([sums[n].float() for n in names]), reduction="sum")
    total = dict(zip(names, total.tolist()))
    count = total.pop("count")
    out = {f"eval/{name}": total[name] / count for name in ("psnr", "psnr_baseline", "lpips", "tlp") if name in total}
    out["eval/motion"] = total["motion_gen"] / max(total["motion_true"], 1e-12)
    return out


def write_samples(samples_dir: Path, run_name: str, step: int, generator: nn.Module, clips: Tensor,
                  noise: Tensor, context_frames: int, config: dict, metrics_path: Path) -> dict[str, Path]:
    """Clip grids for ``step`` and the refreshed gallery page (call on the main process only)."""
    from train import gallery

    generated = generate(generator, clips.to(noise.device), noise, context_frames).cpu()
    paths = gallery.write_clips(
        samples_dir / run_name, step, clips[:, :, :context_frames].cpu(), generated.clamp(-1, 1), clips.cpu()
    )
    paths["index"] = gallery.update_gallery(samples_dir, run_name, config, metrics_path)
    return paths

"""Held-out evaluation and sample clips, from the EMA generator on fixed clips and fixed noise.

Metrics (``eval/*`` keys of ``metrics.jsonl``):

* ``eval/psnr``: PSNR of the generated continuation against the true one (dB, mean over clips of
  each clip's mean over frames, ``genloss.metrics.psnr``);
* ``eval/psnr_baseline``: the same for the copy-last-context-frame predictor on the same clips;
* ``eval/motion``: mean ``|frame[t+1] - frame[t]|`` of the generated continuation (starting at
  the last context frame) over that of the true continuation. 1.0 is right; a frozen or blank
  prediction scores near 0, which matters because on a dark background a blank prediction
  already beats copy-last-frame in PSNR;
* ``eval/lpips`` and ``eval/tlp`` when an LPIPS model is in use: LPIPS over the generated frames,
  tLP over the steps from the last context frame on (so the jump into the continuation counts, as
  in ``eval/motion``), both from one pass of each frame through the LPIPS trunk
  (``genloss.metrics.lpips_and_tlp``).

At the end of a run the trainer also records the detector score of the final EMA generator
(:func:`end_of_run_detector`, ``--detect-clips`` clips): ``eval/detect_acc``, ``eval/detect_auc``,
the accuracy's 95% interval ``eval/detect_acc_low`` / ``eval/detect_acc_high`` and the clip counts
``eval/detect_n_train`` / ``eval/detect_n_test``. Protocol: the first N held-out clips against the
same clips with the EMA generator's continuation after their context frames (fixed noise,
:func:`fixed_noise`), scored by ``genloss.metrics.detectability`` with its default protocol
(paired halves, 150 steps, seed 0). ``train/eval.py`` computes the same number from a checkpoint.

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

__all__ = [
    "DETECTOR_SEED",
    "detector_logs",
    "detector_score",
    "end_of_run_detector",
    "evaluate",
    "fixed_noise",
    "format_detector",
    "generate",
    "generated_clips",
    "lpips_tlp",
    "stack_clips",
]

DETECTOR_SEED = 0  # genloss.metrics.detectability's seed: the split, batch order and classifier init


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


def generated_clips(generator: nn.Module, clips: Tensor, noise: Tensor, context_frames: int,
                    batch: int = 64) -> Tensor:
    """``(N, C, T, H, W)``: each clip's K context frames followed by its generated continuation.

    The continuation is clamped to [-1, 1], as it is when saved or shown: the generator blends the
    warped last frame and a tanh colour with a sigmoid mask, which float rounding can push a hair
    past 1, and the realism metrics refuse values outside [-1, 1].
    """
    generated = generate(generator, clips, noise, context_frames, batch).clamp(-1, 1)
    return torch.cat([clips[:, :, :context_frames].to(generated), generated], dim=2)


def _with_last_context(context: Tensor, video: Tensor) -> Tensor:
    """``video`` preceded by the last context frame (``video`` itself when there is no context):
    the frames whose steps the temporal metrics score, the jump into the continuation included."""
    return torch.cat([context[:, :, -1:], video], dim=2) if context.shape[2] else video


def lpips_tlp(lpips: nn.Module, pred: Tensor, target: Tensor, context_frames: int) -> tuple[Tensor, Tensor | None]:
    """Per-clip LPIPS over the frames after the context and tLP over the steps from the last
    context frame on, from one trunk pass per frame (``genloss.metrics.lpips_and_tlp``).

    Args:
        lpips: a ``genloss.LPIPS`` (or an LPIPS-like callable, see ``genloss.metrics.lpips``).
        pred: ``(B, C, T, H, W)`` clips: K context frames, then the generated continuation.
        target: the true clips, same shape.
        context_frames: K; 0 scores every frame and every step.

    Returns:
        ``(lpips, tlp)``, each ``(B,)``; ``tlp`` is ``None`` when only one frame is scored.
    """
    first = max(context_frames - 1, 0)
    moving_pred, moving_target = pred[:, :, first:], target[:, :, first:]
    if moving_pred.shape[2] < 2:
        return gm.lpips(moving_pred, moving_target, model=lpips).per_clip, None
    distances, temporal = gm.lpips_and_tlp(moving_pred, moving_target, model=lpips)
    # With context, frame 0 is the last context frame: scored for tLP's first step only.
    per_frame = distances.per_frame[:, 1:] if context_frames else distances.per_frame
    return per_frame.mean(dim=1), temporal.per_clip


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
        per_clip_lpips, per_clip_tlp = lpips_tlp(lpips, torch.cat([context, generated], dim=2), clips,
                                                 context_frames)
        sums["lpips"], sums["tlp"] = per_clip_lpips.sum(), per_clip_tlp.sum()
    names = sorted(sums)
    total = accelerator.reduce(torch.stack([sums[n].float() for n in names]), reduction="sum")
    total = dict(zip(names, total.tolist()))
    count = total.pop("count")
    out = {f"eval/{name}": total[name] / count for name in ("psnr", "psnr_baseline", "lpips", "tlp") if name in total}
    out["eval/motion"] = total["motion_gen"] / max(total["motion_true"], 1e-12)
    return out


def detector_score(generator: nn.Module, clips: Tensor, noise: Tensor, context_frames: int) -> gm.DetectabilityResult:
    """The detector score of a generator: ``genloss.metrics.detectability`` (default protocol, seed
    :data:`DETECTOR_SEED`) of the real ``clips`` against :func:`generated_clips` of the same clips.

    The two sets are paired (clip i and its own continuation), so the detector's split keeps each
    pair in one half: it can't recognise a test clip by context frames it saw in training.

    Args:
        generator: the (EMA) generator, in eval mode.
        clips: ``(N, C, T, H, W)`` real clips in [-1, 1], ``N >= 2``, on the generator's device.
        noise: ``(N, z_dim)`` noise, one row per clip (:func:`fixed_noise`).
        context_frames: K, the frames given to the generator.
    """
    fake = generated_clips(generator, clips, noise, context_frames)
    return gm.detectability(clips.to(fake), fake, seed=DETECTOR_SEED)


def detector_logs(result: gm.DetectabilityResult) -> dict[str, float | int]:
    """The ``eval/detect_*`` values of a detector result, for ``metrics.jsonl``."""
    low, high = result.interval
    return {"eval/detect_acc": result.accuracy, "eval/detect_auc": result.auc, "eval/detect_acc_low": low,
            "eval/detect_acc_high": high, "eval/detect_n_train": result.n_train, "eval/detect_n_test": result.n_test}


def format_detector(values: dict[str, float | int]) -> str:
    """One log line for :func:`detector_logs` values."""
    return (f"detector accuracy {values['eval/detect_acc']:.3f} (95% {values['eval/detect_acc_low']:.3f}-"
            f"{values['eval/detect_acc_high']:.3f}), AUC {values['eval/detect_auc']:.3f}, "
            f"{values['eval/detect_n_test']} test clips; 0.5 = can't tell generated from real")


@torch.no_grad()
def end_of_run_detector(generator: nn.Module, heldout, cfg, device: torch.device) -> dict[str, float | int]:
    """The end-of-run detector values (:func:`detector_logs`) of ``generator`` on the first
    ``cfg.detect_clips`` held-out clips with the run's fixed noise.

    Every process computes the same numbers (same clips, noise and seed): that costs no wall time
    over computing them on one process while the others wait, and needs no collective.
    """
    clips = stack_clips(heldout, range(cfg.detect_clips)).to(device)
    noise = fixed_noise(cfg.detect_clips, cfg.z_dim, cfg.seed).to(device)
    return detector_logs(detector_score(generator.to(device).eval(), clips, noise, cfg.context_frames))


def write_samples(samples_dir: Path, run_name: str, step: int, generator: nn.Module, clips: Tensor,
                  noise: Tensor, context_frames: int) -> dict[str, Path]:
    """Clip grids for ``step`` (call on the main process only). The gallery page is refreshed
    separately (``train.gallery.update_gallery``): the trainer stops when clips can't be written
    but only warns when the page can't."""
    from train import gallery

    generated = generate(generator, clips.to(noise.device), noise, context_frames).cpu()
    return gallery.write_clips(
        samples_dir / run_name, step, clips[:, :, :context_frames].cpu(), generated.clamp(-1, 1), clips.cpu()
    )

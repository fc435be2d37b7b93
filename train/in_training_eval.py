"""The trainer's own evaluation: held-out metrics during training, the end-of-run detector, and the
sample clips, from the EMA generator on fixed clips and fixed noise. (``train/eval.py`` evaluates a
checkpoint afterwards, with more metrics, from these same functions.)

Metrics (``eval/*`` keys of ``metrics.jsonl``; labels, directions and units in
:mod:`train.metric_registry`):

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
(:func:`end_of_run_detector`, ``--detect-clips`` clips). Protocol: the first N held-out clips
against the same clips with the EMA generator's continuation after their context frames (fixed
noise, :func:`fixed_noise`), scored by ``genloss.metrics.detectability`` (seed 0) with the
protocol asked for (docs/detector.md):

* ``"default"`` (paired halves, 150 steps, whole clips): ``eval/detect_acc``, ``eval/detect_auc``,
  the accuracy's 95% interval ``eval/detect_acc_low`` / ``eval/detect_acc_high`` and the clip
  counts ``eval/detect_n_train`` / ``eval/detect_n_test``;
* ``"strong"`` (a frame judge on the generated frames and a clip judge on whole clips, 1200 steps
  each): the same values of each judge side by side, ``detect/frame_*`` (its counts are frames,
  ``detect/frame_n_test_clips`` the held-out clips its interval counts) and ``detect/clip_*``, and
  ``detect/p_value`` (either judge better than chance, Bonferroni-corrected).

``train/eval.py`` computes the same numbers from a checkpoint.

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
from train import metric_registry as registry
from train.clips import write_clips

__all__ = [
    "DETECTOR_PROTOCOLS",
    "DETECTOR_SEED",
    "detector_logs",
    "detector_score",
    "end_of_run_detector",
    "evaluate",
    "fixed_noise",
    "format_detector",
    "format_eval",
    "generate",
    "generated_clips",
    "generated_parts",
    "lpips_tlp",
    "stack_clips",
    "with_context",
    "write_samples",
]

DETECTOR_SEED = 0  # genloss.metrics.detectability's seed: the split, batch order and classifier init
DETECTOR_PROTOCOLS = ("default", "strong")  # "default": comparable with earlier numbers; "strong": docs/detector.md


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


@torch.no_grad()
def generated_parts(generator: nn.Module, clips: Tensor, noise: Tensor, context_frames: int,
                    batch: int = 64) -> dict[str, Tensor]:
    """``models.generator.Generator.parts`` over ``clips`` in batches (needs K > 0), its frames
    without the flow, each ``(N, C, T - K, H, W)``: ``frames``, the continuation :func:`generate`
    gives; ``warp_only``, the same with the generator's painted part left out; ``no_flow``, with
    its flow set to zero."""
    out: dict[str, list[Tensor]] = {}
    for start in range(0, len(clips), batch):
        parts = generator.parts(clips[start : start + batch, :, :context_frames], noise[start : start + batch])
        for name, video in parts.items():
            if name != "flow":
                out.setdefault(name, []).append(video.float())
    return {name: torch.cat(chunks) for name, chunks in out.items()}


def with_context(clips: Tensor, continuation: Tensor, context_frames: int) -> Tensor:
    """``(N, C, T, H, W)``: each clip's K context frames followed by ``continuation``, clamped.

    The continuation is clamped to [-1, 1], as it is when saved or shown: the generator blends the
    warped last frame and a tanh colour with a sigmoid mask, which float rounding can push a hair
    past 1, and the realism metrics refuse values outside [-1, 1].
    """
    generated = continuation.clamp(-1, 1)
    return torch.cat([clips[:, :, :context_frames].to(generated), generated], dim=2)


def generated_clips(generator: nn.Module, clips: Tensor, noise: Tensor, context_frames: int,
                    batch: int = 64) -> Tensor:
    """``(N, C, T, H, W)``: each clip's K context frames followed by its generated continuation
    (:func:`with_context` of :func:`generate`)."""
    return with_context(clips, generate(generator, clips, noise, context_frames, batch), context_frames)


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


def format_eval(values: dict[str, float]) -> str:
    """One log line for :func:`evaluate`'s values, with the registry's labels and units
    (``PSNR 22.14 dB (copy-last-frame 13.84, +8.29 dB), motion 0.9581 (1.0 is right)``); a key
    the registry lacks is printed as ``key=value``."""
    parts = []
    for name, value in values.items():
        metric = registry.get(name)
        if metric is None:
            parts.append(f"{name}={value:.4g}")
            continue
        if any(m.versus == name and m.name in values for m in registry.METRICS):
            continue  # shown beside the metric it is the reference of
        text = f"{metric.label} {metric.text(value)}"
        if metric.versus in values:
            other = registry.get(metric.versus)
            text += f" ({other.label} {other.number(values[metric.versus])}, {metric.delta(value, values[metric.versus])})"
        elif metric.better == "one":
            text += f" ({metric.reading})"
        parts.append(text)
    return ", ".join(parts)


def detector_score(generator: nn.Module, clips: Tensor, noise: Tensor, context_frames: int,
                   protocol: str = "default") -> gm.DetectabilityResult:
    """The detector score of a generator: ``genloss.metrics.detectability`` (seed
    :data:`DETECTOR_SEED`, ``protocol``) of the real ``clips`` against :func:`generated_clips` of
    the same clips.

    The two sets are paired (clip i and its own continuation), so the detector's split keeps each
    pair in one half: it can't recognise a test clip by context frames it saw in training. The
    strong protocol's frame judge scores the generated frames only (the K context frames are
    given, not generated).

    Args:
        generator: the (EMA) generator, in eval mode.
        clips: ``(N, C, T, H, W)`` real clips in [-1, 1], ``N >= 2``, on the generator's device.
        noise: ``(N, z_dim)`` noise, one row per clip (:func:`fixed_noise`).
        context_frames: K, the frames given to the generator.
        protocol: ``"default"`` or ``"strong"`` (:data:`DETECTOR_PROTOCOLS`).
    """
    if protocol not in DETECTOR_PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {DETECTOR_PROTOCOLS}; got {protocol!r}")
    fake = generated_clips(generator, clips, noise, context_frames)
    frames_skipped = context_frames if protocol == "strong" else 0
    return gm.detectability(clips.to(fake), fake, seed=DETECTOR_SEED, protocol=protocol,
                            context_frames=frames_skipped)


def detector_logs(result: gm.DetectabilityResult) -> dict[str, float | int]:
    """The ``metrics.jsonl`` values of a detector result: ``eval/detect_*`` for the default
    protocol, ``detect/frame_*``, ``detect/clip_*`` and ``detect/p_value`` for the strong one
    (the keys: :class:`train.metric_registry.DetectorKeys`)."""
    out: dict[str, float | int] = {}
    for keys, judge in registry.detector_judges(result.as_dict()):
        low, high = judge["interval"]
        out.update({keys.accuracy: judge["accuracy"], keys.auc: judge["auc"], keys.low: low, keys.high: high,
                    keys.n_train: judge["n_train"], keys.n_test: judge["n_test"]})
        if keys.n_test_clips:
            out[keys.n_test_clips] = judge["n_test_clips"]
    if result.frame is not None:
        out[registry.DETECT_P_VALUE.name] = result.p_value
    return out


def format_detector(values: dict[str, float | int]) -> str:
    """One log line for :func:`detector_logs` values, the strong protocol's two judges side by side."""
    parts = []
    for keys in registry.DETECTORS:
        if keys.accuracy not in values:
            continue
        accuracy = registry.get(keys.accuracy)
        count = f"{values[keys.n_test]} test {keys.sample}s"
        if keys.n_test_clips in values:
            count += f" of {values[keys.n_test_clips]} clips"
        parts.append(f"{accuracy.label} {accuracy.text(values[keys.accuracy])} (95% "
                     f"{accuracy.number(values[keys.low])}-{accuracy.number(values[keys.high])}), "
                     f"AUC {accuracy.number(values[keys.auc])}, {count}")
    p_value = registry.DETECT_P_VALUE
    if p_value.name in values:
        parts.append(f"p {p_value.text(values[p_value.name])}")
    return "; ".join(parts) + f"; {registry.get(registry.DEFAULT_DETECTOR.accuracy).reading}"


@torch.no_grad()
def end_of_run_detector(generator: nn.Module, heldout, cfg, device: torch.device,
                        protocol: str = "default") -> dict[str, float | int]:
    """The end-of-run detector values (:func:`detector_logs`) of ``generator`` on the first
    ``cfg.detect_clips`` held-out clips with the run's fixed noise, by ``protocol``
    (:data:`DETECTOR_PROTOCOLS`).

    Every process computes the same numbers (same clips, noise and seed): that costs no wall time
    over computing them on one process while the others wait, and needs no collective.
    """
    clips = stack_clips(heldout, range(cfg.detect_clips)).to(device)
    noise = fixed_noise(cfg.detect_clips, cfg.z_dim, cfg.seed).to(device)
    return detector_logs(detector_score(generator.to(device).eval(), clips, noise, cfg.context_frames, protocol))


def write_samples(samples_dir: Path, run_name: str, step: int, generator: nn.Module, clips: Tensor,
                  noise: Tensor, context_frames: int) -> dict[str, Path]:
    """Clip grids for ``step`` (call on the main process only). The gallery page is refreshed
    separately (``train.gallery.refresh_gallery``): the trainer stops when clips can't be written
    but only warns when the page can't."""
    generated = generate(generator, clips.to(noise.device), noise, context_frames).cpu()
    return write_clips(
        samples_dir / run_name, step, clips[:, :, :context_frames].cpu(), generated.clamp(-1, 1), clips.cpu()
    )

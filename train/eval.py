"""Evaluate a trained generator, or two folders of clips, with every metric in one command.

    python train/eval.py --checkpoint runs/<run>                          # newest checkpoint, 512 held-out clips
    python train/eval.py --checkpoint runs/<run>/checkpoints/checkpoint-3000 --num 256 --dataset videos/
    python train/eval.py --checkpoint runs/<run> --fvd-extractor i3d_torchscript.pt \\
        --fid-extractor inception-2015-12-05.pt --save-clips clips.pt
    python train/eval.py --real clips/real --fake clips/generated --size 64 --context-frames 2 --out eval.json

``--checkpoint`` rebuilds the run's EMA generator from its ``config.json`` (a ``TrainConfig``) and
the checkpoint's EMA weights, continues the first ``--num`` held-out clips from their context
frames with the trainer's fixed noise, scores the result and writes ``eval-<step>.json`` (values and
protocol) into the run folder; the run's gallery card then shows it. ``--dataset`` takes the
held-out end of each video of another folder (or of the one trained on) instead;
``--dataset DIR --whole-videos`` takes clips from anywhere in each of its videos, for videos the
run never trained on (a whole-video hold-out; a video file the run's own folder also holds is an
error).

``--real DIR --fake DIR`` scores two folders of clips from any generator, read like a ``--dataset``
folder (train/data.py's reader: video files or frame folders, each one clip, resized and centre
cropped to ``--size``). Clips whose file names match (extensions aside) are paired: the reference
metrics need that, the set-level ones (detector, FVD...) don't.

Metrics (the ``metrics`` of the JSON), K = context frames:

* ``psnr``, ``ssim``, ``lpips`` (paired clips): the frames after the context against the true ones;
  ``psnr_baseline``: the same for copying the last context frame;
* ``psnr_warp_only`` and ``psnr_no_flow`` (``--checkpoint`` with context): the PSNR of the same
  generator's output taken apart, the warped last frame with nothing painted, and the output with
  its flow set to zero. Against ``psnr_baseline`` they say which half gains and which one costs: a
  run whose ``psnr_no_flow`` is near copy-last and whose ``psnr_warp_only`` is below it loses its
  decibels to motion it predicts wrongly, not to what it paints;
* ``tlp``, ``tof`` (paired clips): the steps from the last context frame on, so the jump into the
  continuation counts; ``tof`` in pixels with genloss's flow estimator;
* ``warping_error`` and ``warping_error_real``: Lai et al.'s warping error of the generated and of
  the real clips over the same steps, with estimated flow and occlusion mask;
* ``motion``: mean ``|frame[t+1] - frame[t]|`` of the generated clips over that of the real ones,
  same steps (1.0 is right);
* ``detector``: ``genloss.metrics.detectability`` of real against generated clips, seed 0, by
  ``--protocol`` (docs/detector.md): ``strong`` (the default) trains a frame judge on the frames
  after the context and a clip judge on whole clips and reports both side by side (``frame`` and
  ``clip`` in the JSON, the headline being the higher, its p-value Bonferroni-corrected);
  ``default`` is the single whole-clip classifier of earlier numbers (the trainer's end-of-run
  record before the strong protocol). Each judge: accuracy (0.5 = indistinguishable), AUC, 95%
  interval, counts;
* ``fvd`` and ``kvd`` (``--fvd-extractor``), ``fid`` and ``kid`` (``--fid-extractor``), each with
  its protocol dict: FVD/KVD over the first min(16, T) frames of whole clips (context included, a
  recorded deviation), FID/KID over the frames after the context.

LPIPS and tLP need LPIPS weights: ``--lpips-weights FILE`` (an error if it can't be used), else
the torch hub cache; without them both are skipped and ``skipped`` in the JSON says why.

The report's labels, units and reading hints are :mod:`train.metric_registry`'s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Repository code (models/, train/) is not pip-installed: see train/gan.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import datetime  # noqa: E402

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

import genloss as gl  # noqa: E402
import genloss.metrics as gm  # noqa: E402
from train import metric_registry as registry  # noqa: E402
from train import state as st  # noqa: E402
from train.build import build_datasets, build_generator  # noqa: E402
from train.config import ConfigError, load_config  # noqa: E402
from train.data import VideoFolder, scan_folder, shared_videos, temporal_split  # noqa: E402
from train.gallery import refresh_gallery  # noqa: E402
from train.in_training_eval import (  # noqa: E402
    DETECTOR_PROTOCOLS,
    DETECTOR_SEED,
    fixed_noise,
    generated_clips,
    generated_parts,
    lpips_tlp,
    stack_clips,
    with_context,
)
from train.run import command_line, git_state, versions  # noqa: E402
from train.safety import RunError, SettingsError  # noqa: E402

__all__ = ["clip_metrics", "main", "parse_args", "read_clip_folder", "summary_lines"]

DEFAULT_CLIPS = 512  # the detector protocol's clip count (issue 13), when the run has no detect_clips
BATCH = 64  # clips per forward pass and per metric call (memory, not results: every metric is per clip)
FVD_FRAMES = 16  # fvd2048_16f's window; shorter clips use all their frames (a recorded deviation)
NOISE_RULE = "torch.randn(N, z_dim, generator=torch.Generator().manual_seed(seed + 12345)) (train.in_training_eval.fixed_noise)"


# A request that can't be met is printed as one ``error: ...`` line, without a traceback, as
# train/gan.py does: SettingsError (exit status 2) for what was typed (a path that isn't there, flags
# that don't fit the clips), RunError (1) for what fails while it runs (unreadable or unusable data).


# --------------------------------------------------------------------------------------------
# inputs


def resolve_checkpoint(path: Path) -> Path:
    """A ``checkpoint-<step>`` folder, or a run folder's newest checkpoint, with the EMA weights."""
    if not path.exists():
        raise SettingsError(f"--checkpoint {str(path)!r} does not exist")
    if st.checkpoint_step(path) is None:
        latest = st.latest_checkpoint(path / "checkpoints")
        if latest is None:
            raise SettingsError(f"--checkpoint {str(path)!r} is neither a checkpoint-<step> folder nor a run folder "
                            "with checkpoints")
        path = latest
    if not (path / st.EMA_FILE).is_file():
        raise SettingsError(f"--checkpoint {str(path)!r} has no {st.EMA_FILE}: not a complete checkpoint of "
                            "train/gan.py")
    return path


def read_clip_folder(flag: str, root: Path, size: int, frames: int | None) -> tuple[list[str], Tensor, str]:
    """Every clip of a folder: ``(names, clips (N, 3, T, size, size) in [-1, 1], scan summary)``.

    Each video file or frame folder is one clip (:func:`train.data.scan_folder`). With ``frames``
    every clip is cut to its first ``frames`` frames (shorter ones are an error); without, all
    clips must have the same length. Unreadable files are an error: a folder of clips with a
    broken one is not the set the user meant to score.
    """
    if not root.is_dir():
        raise SettingsError(f"{flag} {str(root)!r} is not a folder")
    scan = scan_folder(root, frames or 1, size)
    if scan.corrupt:
        raise RunError(f"{flag} {root}: unreadable clip(s): {'; '.join(scan.corrupt[:5])}")
    if scan.too_short:
        raise SettingsError(f"{flag} {root}: clip(s) shorter than --frames {frames}: {', '.join(scan.too_short[:5])}")
    if not scan.videos:
        raise RunError(f"{flag} {root} holds no clips ({scan.summary()})")
    lengths = sorted({video.shape[1] for video in scan.videos})
    if frames is None and len(lengths) > 1:
        raise SettingsError(f"{flag} {root}: clips have {lengths[0]} to {lengths[-1]} frames; pass --frames T to "
                        "score the first T of each")
    length = frames or lengths[0]
    clips = torch.stack([video[:, :length] for video in scan.videos]).float() / 127.5 - 1
    return scan.names, clips, scan.summary().split(";")[0]


def heldout_split(config, count: int, *, whole_videos: bool = False):
    """The run's held-out split with ``count`` clips, as the trainer draws it
    (:func:`train.build.build_datasets`): clip ``i`` is the trainer's held-out clip ``i``. A
    ``--dataset`` folder that can't give them is a :class:`RunError` naming what eval.py can change.
    ``whole_videos`` draws them from every frame of each video instead (``VideoFolder``'s
    ``"whole"`` split), for a folder the run never trained on."""
    if whole_videos:
        scan = scan_folder(config.dataset, config.frames, config.size, frame_stride=config.frame_stride,
                           shot_cut=config.shot_cut)
        print(f"--dataset {config.dataset} --whole-videos: {scan.summary().split(';')[0]}; clips from anywhere "
              "in each video")
        if not scan.videos:
            raise RunError(f"--dataset {config.dataset} has no usable video of at least {config.frames} frames "
                           f"({scan.summary()})")
        folder = VideoFolder(scan, count, config.frames, seed=config.seed, split="whole")
        if count > len(folder.windows):
            print(f"note: --num {count} is more than the {len(folder.windows)} distinct clips these videos hold: "
                  "clips repeat, and repeats can fall on both sides of the detector's split")
        return folder
    if config.dataset is None:  # moving shapes; the split has max(eval_clips, detect_clips) clips
        return build_datasets(dataclasses.replace(config, eval_clips=count, detect_clips=0), 1, log=print)[1]
    frames, fraction = config.frames, config.heldout_fraction
    scan = scan_folder(config.dataset, frames, config.size, heldout_fraction=fraction,
                       frame_stride=config.frame_stride, shot_cut=config.shot_cut)
    print(f"--dataset {config.dataset}: {scan.summary()}")
    as_trained = f"the run's --frames {frames}" + (
        f" and --frame-stride {config.frame_stride}" if config.frame_stride > 1 else "")
    if not scan.videos:
        raise RunError(f"--dataset {config.dataset} has no usable video of at least {frames} frames ({as_trained}) "
                       f"to evaluate on ({scan.summary()})")
    try:
        return VideoFolder(scan, count, frames, seed=config.seed, split="heldout")
    except ValueError:  # no video long enough to hold out its end
        longest = max(video.shape[1] for video in scan.videos)
        need = next(n for n in itertools.count(frames) if temporal_split(n, frames, fraction)[1])
        raise RunError(
            f"--dataset {config.dataset}: no video is long enough to hold out a {frames}-frame clip at its end "
            f"and keep one before it, as the run was trained ({as_trained}, the last {100 * fraction:g}% of each "
            f"video held out); the longest has {longest} frames. Pass a --dataset folder with videos of at least "
            f"{need} frames, or score clips of any length with --real/--fake") from None


def _refuse_trained_videos(folder: str, trained_on: str | None) -> None:
    """A :class:`RunError` when ``--whole-videos`` would score a video the run trained on: one of
    ``folder``'s files is also in the run's ``--dataset`` (the same file, or the same bytes)."""
    if trained_on is None:
        return  # the moving shapes: no video of any folder was trained on
    if not Path(trained_on).is_dir():
        print(f"note: --whole-videos could not check {folder} against the run's --dataset {trained_on!r}, which is "
              "not a folder any more; make sure the run never trained on these videos")
        return
    shared = shared_videos(folder, trained_on)
    if shared:
        raise RunError(f"--whole-videos scores every frame of {folder}, but the run trained on {', '.join(shared)} "
                       f"(also in its --dataset {trained_on}); without --whole-videos eval.py scores the held-out "
                       "end of each video, which the run never trained on")


def _pair_by_name(real_names: list[str], real: Tensor, fake_names: list[str], fake: Tensor):
    """``(real, fake, paired)``: reordered so that clip i of both has the same name (extension
    aside) when the names match one to one; as they are otherwise."""
    def key(name: str) -> str:
        return str(Path(name).with_suffix(""))

    real_keys, fake_keys = [key(n) for n in real_names], [key(n) for n in fake_names]
    if sorted(real_keys) != sorted(fake_keys) or len(set(real_keys)) != len(real_keys):
        return real, fake, False
    position = {k: i for i, k in enumerate(fake_keys)}
    return real, fake[torch.tensor([position[k] for k in real_keys])], True


def build_lpips(net: str, weights: str | None, size: int) -> tuple[nn.Module | None, str | None]:
    """``(LPIPS module, None)``, or ``(None, why it is skipped)``. An explicit ``--lpips-weights``
    that can't be used is an error; the default (the torch hub cache) may be missing."""
    if net == "none":
        return None, "--lpips none"
    try:
        module = gl.LPIPS(net, weights=weights or "imagenet", download=False)
    except (gl.WeightsNotFoundError, OSError, RuntimeError, ValueError) as error:
        if weights is not None:
            raise RunError(f"--lpips-weights {weights!r} can't be used for LPIPS-{net}: {error}") from None
        return None, (f"no ImageNet weights for LPIPS-{net} in the torch hub cache; pass --lpips-weights FILE "
                      "(a torchvision state dict) to score LPIPS and tLP")
    if size < module.min_size:
        why = f"LPIPS-{net} needs frames of at least {module.min_size}x{module.min_size}; the clips are {size}x{size}"
        if weights is not None:
            raise SettingsError(f"--lpips-weights given, but {why}")
        return None, why
    return module.eval(), None


def build_extractors(fvd: str | None, fid: str | None) -> dict[str, gm.FeatureExtractor]:
    """The feature extractors asked for, loaded before any clip is generated (a missing file is
    an error that names where it is published)."""
    out = {}
    try:
        if fvd is not None:
            out["fvd"] = gm.FeatureExtractor(fvd, video=True)
        if fid is not None:
            out["fid"] = gm.FeatureExtractor(fid, video=False)
    except FileNotFoundError as error:
        raise SettingsError(str(error)) from None
    except ValueError as error:  # a file that isn't a usable extractor
        raise RunError(str(error)) from None
    return out


# --------------------------------------------------------------------------------------------
# metrics


def _per_clip(fn: Callable[..., Tensor], *clips: Tensor) -> Tensor:
    """``fn``'s ``(b,)`` per-clip values over all clips, ``BATCH`` clips per call."""
    return torch.cat([fn(*(c[i : i + BATCH] for c in clips)) for i in range(0, len(clips[0]), BATCH)])


def _mean(values: Tensor) -> float:
    return float(values.double().mean())


def _mean_psnr(pred: Tensor, truth: Tensor) -> float:
    """The mean over clips of each clip's PSNR, ``BATCH`` clips per call."""
    return _mean(_per_clip(lambda p, t: gm.psnr(p, t).per_clip, pred, truth))


# The reference metrics: they need each generated clip paired with its true continuation (the
# copy-last-frame baseline is reported beside PSNR).
# The generator's output taken apart (--checkpoint with context only, not a clip_metrics metric).
_ABLATIONS = ("psnr_warp_only", "psnr_no_flow")
_PAIRED = [m.key for m in registry.METRICS
           if m.paired and m.name != registry.get("eval/psnr").versus and m.key not in _ABLATIONS]


def _set_metrics(real: Tensor, fake: Tensor, context_frames: int, extractors: dict) -> dict[str, dict]:
    """FVD and KVD of whole clips, FID and KID of the frames after the context (see the module docstring)."""
    out = {}
    classes = {"fvd": (gm.FVD, gm.KVD), "fid": (gm.FID, gm.KID)}
    for kind, extractor in extractors.items():
        if kind == "fvd":
            options = dict(frames=min(FVD_FRAMES, real.shape[2]), context_frames=context_frames)
        else:
            options = dict(context_frames=context_frames, include_context=False)
        # The Fréchet and the kernel metric share one window, so one extractor pass feeds both.
        metrics = [metric_class(extractor, **options).to(real.device) for metric_class in classes[kind]]
        for start in range(0, max(len(real), len(fake)), BATCH):
            for clips, is_real in ((real, True), (fake, False)):
                if start < len(clips):
                    features = metrics[0].features(clips[start : start + BATCH])
                    for metric in metrics:
                        metric.update_features(features, real=is_real)
        for metric in metrics:
            out[type(metric).__name__.lower()] = metric.compute().as_dict()
    return out


@torch.no_grad()
def clip_metrics(real: Tensor, fake: Tensor, context_frames: int, *, paired: bool, lpips: nn.Module | None = None,
                 lpips_skipped: str | None = None, extractors: dict | None = None,
                 protocol: str = "strong") -> tuple[dict, dict]:
    """Every metric of real clips against generated ones (see the module docstring).

    Args:
        real: ``(N_r, C, T, H, W)`` real clips in [-1, 1].
        fake: ``(N_f, C, T, H, W)`` generated clips: the K context frames, then the continuation.
        context_frames: K.
        paired: clip i of ``fake`` continues clip i of ``real`` (enables the reference metrics).
        lpips: an LPIPS model, or ``None`` (``lpips_skipped`` says why).
        extractors: ``{"fvd": FeatureExtractor, "fid": FeatureExtractor}``, either optional.
        protocol: the detector's, ``"strong"`` or ``"default"``.

    Returns:
        ``(metrics, skipped)``: the values, and ``{metric: why it was not computed}``.
    """
    k, frames = context_frames, real.shape[2]
    metrics: dict[str, object] = {}
    skipped: dict[str, str] = {}
    first = max(k - 1, 0)  # temporal metrics: the steps from the last context frame on
    if paired:
        truth, pred = real[:, :, k:], fake[:, :, k:]
        metrics["psnr"] = _mean_psnr(pred, truth)
        if k:
            metrics["psnr_baseline"] = _mean_psnr(real[:, :, k - 1 : k].expand_as(truth), truth)
        if min(real.shape[-2:]) >= 11:
            metrics["ssim"] = _mean(_per_clip(lambda p, t: gm.ssim(p, t).per_clip, pred, truth))
        else:
            skipped["ssim"] = f"SSIM's 11-px window needs frames of at least 11x11; the clips are {real.shape[-1]}px"
        if lpips is not None:
            values = [lpips_tlp(lpips, fake[i : i + BATCH], real[i : i + BATCH], k) for i in range(0, len(real), BATCH)]
            metrics["lpips"] = _mean(torch.cat([v[0] for v in values]))
            if values[0][1] is not None:
                metrics["tlp"] = _mean(torch.cat([v[1] for v in values]))
        else:
            skipped["lpips"] = skipped["tlp"] = lpips_skipped or "no LPIPS model"
        if frames - first >= 2:
            metrics["tof"] = _mean(_per_clip(lambda p, t: gm.tof(p, t).per_clip, fake[:, :, first:], real[:, :, first:]))
    else:
        why = "needs clips paired with their real counterparts (file names that match)"
        skipped.update({name: why for name in _PAIRED})
    if frames - first >= 2:
        for name, clips in (("warping_error", fake), ("warping_error_real", real)):
            metrics[name] = _mean(_per_clip(lambda v: gm.warping_error(v).per_clip, clips[:, :, first:]))
        motion_fake = gl.temporal_smoothness_loss(fake[:, :, first:], reduction="sum").item() / len(fake)
        motion_real = gl.temporal_smoothness_loss(real[:, :, first:], reduction="sum").item() / len(real)
        metrics["motion"] = motion_fake / max(motion_real, 1e-12)
    else:
        skipped["warping_error"] = skipped["motion"] = "needs at least 2 frames from the last context frame on"
    # The frame judge of "strong" scores the generated frames: the K context frames are the real ones.
    metrics["detector"] = gm.detectability(real, fake.to(real), seed=DETECTOR_SEED, protocol=protocol,
                                           context_frames=k if protocol == "strong" else 0).as_dict()
    metrics.update(_set_metrics(real, fake, k, extractors or {}))
    return metrics, skipped


# --------------------------------------------------------------------------------------------
# the two modes


def _provenance(started: float) -> dict:
    return {"created": datetime.now().astimezone().isoformat(timespec="seconds"), "command": command_line(),
            "git": git_state(), "versions": versions(), "seconds": round(time.time() - started, 1)}


def _protocol(k: int, lpips: nn.Module | None, extractors: dict, generated: str, detector: str) -> dict:
    return {
        "generated": generated,
        "frames": {"psnr, ssim, lpips": f"the frames after the {k} context frames",
                   "tlp, tof, warping_error, motion": "the steps from the last context frame on" if k
                   else "every step",
                   "detector": f"the frames after the {k} context frames (frame judge) and whole clips (clip judge)"
                   if detector == "strong" else "whole clips",
                   "fvd, kvd": f"the first min({FVD_FRAMES}, T) frames of whole clips",
                   "fid, kid": "the frames after the context"},
        "lpips": {"net": lpips.net, "weights": lpips.weights_source} if lpips is not None else None,
        "flow": "genloss.flow.estimate_flow (defaults); warping error masks occlusions and motion boundaries",
        "detector": f"genloss.metrics.detectability, protocol {detector!r}, seed {DETECTOR_SEED}; the sets are split "
                    "with one permutation when they have the same size (paired clips stay in one half)",
        "extractors": {kind: {"file": e.path, "sha256": e.sha256, "kind": e.kind} for kind, e in extractors.items()},
    }


def evaluate_checkpoint(args: argparse.Namespace, started: float) -> tuple[dict, Tensor, Tensor, Path, Path]:
    """``(result, real, generated, json path, run folder)`` of ``--checkpoint``."""
    checkpoint = resolve_checkpoint(Path(args.checkpoint))
    run_dir = st.run_dir_of_checkpoint(checkpoint)
    step = st.checkpoint_step(checkpoint)
    try:
        config, run = load_config(run_dir / "config.json")
        config.validate(environment=False)
    except ConfigError as error:
        raise RunError(str(error)) from None
    count = args.num or config.detect_clips or DEFAULT_CLIPS
    if args.whole_videos:
        _refuse_trained_videos(args.dataset, config.dataset)
    if args.dataset is not None:
        config = dataclasses.replace(config, dataset=args.dataset)
    elif config.dataset is not None and not Path(config.dataset).is_dir():
        raise SettingsError(f"the run's --dataset {config.dataset!r} is not a folder any more; pass --dataset with "
                            "its new place")
    lpips, lpips_skipped = build_lpips(args.lpips, args.lpips_weights, config.size)
    extractors = build_extractors(args.fvd_extractor, args.fid_extractor)
    heldout = heldout_split(config, count, whole_videos=args.whole_videos)
    device = torch.device(args.device)
    generator = build_generator(config)
    generator.load_state_dict(torch.load(checkpoint / st.EMA_FILE, map_location="cpu", weights_only=True))
    generator.to(device).eval()
    seed = config.seed if args.seed is None else args.seed
    real = stack_clips(heldout, range(count)).to(device)
    noise = fixed_noise(count, config.z_dim, seed).to(device)
    k = config.context_frames
    parts: dict[str, Tensor] = {}  # with context: the continuation and its ablations, from one pass
    if k:
        parts = generated_parts(generator, real, noise, k, BATCH)
        fake = with_context(real, parts.pop("frames"), k)
    else:
        fake = generated_clips(generator, real, noise, k, BATCH)
    if lpips is not None:
        lpips = lpips.to(device)
    for extractor in extractors.values():
        extractor.to(device)
    metrics, skipped = clip_metrics(real, fake, k, paired=k > 0, lpips=lpips, lpips_skipped=lpips_skipped,
                                    extractors=extractors, protocol=args.protocol)
    for name, video in parts.items():  # the generator taken apart: psnr_warp_only, psnr_no_flow
        metrics[f"psnr_{name}"] = _mean_psnr(video, real[:, :, k:])
    if k == 0:
        skipped.update({name: "an unconditional run: no true continuation to compare with" for name in _PAIRED})
        skipped.update(dict.fromkeys(_ABLATIONS, "an unconditional run: no flow to take apart"))
    source = (f"every frame of each video of {config.dataset}, none trained on" if args.whole_videos
              else f"held-out end of each video of {config.dataset}" if config.dataset
              else f"held-out split of the moving-shapes dataset (seed {config.seed})")
    result = {
        "kind": "checkpoint",
        "run_name": run.get("run_name", run_dir.name),
        "step": step,
        "checkpoint": str(checkpoint),
        "clips": {"source": source, "dataset": config.dataset,
                  "split": "whole" if args.whole_videos else "heldout",
                  **({"distinct": len(heldout.windows)} if args.whole_videos else {}), "indices": f"0..{count - 1}",
                  "count": count, "frames": config.frames, "context_frames": k, "size": config.size,
                  "frame_stride": config.frame_stride, "shot_cut": config.shot_cut},
        "noise": {"seed": seed, "z_dim": config.z_dim, "rule": NOISE_RULE},
        "metrics": metrics,
        "skipped": skipped,
        "protocol": _protocol(k, lpips, extractors, f"the EMA generator of checkpoint-{step}, outputs clamped to "
                              "[-1, 1] (train.in_training_eval.generated_clips)", args.protocol),
        **_provenance(started),
    }
    out = Path(args.out) if args.out else run_dir / f"eval-{step}.json"
    return result, real, fake, out, run_dir


def evaluate_folders(args: argparse.Namespace, started: float) -> tuple[dict, Tensor, Tensor, Path | None]:
    """``(result, real, fake, json path or None)`` of ``--real`` / ``--fake``."""
    lpips, lpips_skipped = build_lpips(args.lpips, args.lpips_weights, args.size)
    extractors = build_extractors(args.fvd_extractor, args.fid_extractor)
    real_names, real, real_summary = read_clip_folder("--real", Path(args.real), args.size, args.frames)
    fake_names, fake, fake_summary = read_clip_folder("--fake", Path(args.fake), args.size, args.frames)
    print(f"--real {args.real}: {real_summary}\n--fake {args.fake}: {fake_summary}")
    if real.shape[2] != fake.shape[2]:
        raise SettingsError(f"--real clips have {real.shape[2]} frames and --fake clips {fake.shape[2]}; pass "
                        "--frames T to score the first T of each")
    k = args.context_frames
    if k >= real.shape[2]:
        raise SettingsError(f"--context-frames {k} leaves no frame to score in clips of {real.shape[2]} frames")
    real, fake, paired = _pair_by_name(real_names, real, fake_names, fake)
    if not paired:
        print("note: the folders' file names differ, so the clips are scored as two unpaired sets: detector, "
              "warping error, motion and FVD/FID/KVD/KID only (PSNR, SSIM, LPIPS, tLP and tOF need clips paired by "
              "name)")
    device = torch.device(args.device)
    real, fake = real.to(device), fake.to(device)
    if lpips is not None:
        lpips = lpips.to(device)
    for extractor in extractors.values():
        extractor.to(device)
    metrics, skipped = clip_metrics(real, fake, k, paired=paired, lpips=lpips, lpips_skipped=lpips_skipped,
                                    extractors=extractors, protocol=args.protocol)
    result = {
        "kind": "folders",
        "real": str(args.real),
        "fake": str(args.fake),
        "paired": paired,
        "clips": {"source": f"{args.real} vs {args.fake}", "count": len(real), "count_fake": len(fake),
                  "frames": real.shape[2], "context_frames": k, "size": args.size},
        "metrics": metrics,
        "skipped": skipped,
        "protocol": _protocol(k, lpips, extractors, f"the clips of {args.fake} as decoded (uint8 levels)",
                              args.protocol),
        **_provenance(started),
    }
    return result, real, fake, Path(args.out) if args.out else None


# --------------------------------------------------------------------------------------------
# report


def _detector_rows(detector: dict) -> list[tuple[str, str]]:
    """``(label, text)`` per detector judge: the strong protocol's frame and clip judges side by side."""
    rows = []
    for keys, judge in registry.detector_judges(detector):
        accuracy = registry.get(keys.accuracy)
        low, high = judge["interval"]
        counts = f"{judge['n_train']} train / {judge['n_test']} test {keys.sample}s"
        if "n_test_clips" in judge:
            counts += f" ({judge['n_test_clips']} test clips)"
        text = (f"{accuracy.number(judge['accuracy'])}   95% {accuracy.number(low)}-{accuracy.number(high)}, "
                f"AUC {accuracy.number(judge['auc'])}, {counts} ({accuracy.reading})")
        rows.append((keys.label, text))
    if "frame" in detector and "p_value" in detector:
        p_value = registry.DETECT_P_VALUE
        text = f"{p_value.number(detector['p_value'])}   either judge better than chance (Bonferroni)"
        rows.append((p_value.label, text))
    return rows


def summary_lines(result: dict) -> list[str]:
    """The compact, readable report printed at the end: one line per metric (per detector judge),
    labelled as :mod:`train.metric_registry` says, in its order."""
    m, clips = result["metrics"], result["clips"]
    if result["kind"] == "checkpoint":
        head = (f"{result['run_name']} checkpoint-{result['step']} (EMA), {clips['count']} clips: {clips['source']}; "
                f"{clips['frames']}x{clips['size']}x{clips['size']}, K={clips['context_frames']}, "
                f"noise seed {result['noise']['seed']}")
    else:
        head = (f"{result['real']} vs {result['fake']}: {clips['count']} vs {clips['count_fake']} clips "
                f"({'paired' if result['paired'] else 'unpaired'}), {clips['frames']}x{clips['size']}x{clips['size']}, "
                f"K={clips['context_frames']}")
    rows: list[tuple[str, str]] = []
    references = {metric.versus for metric in registry.METRICS if metric.versus and metric.key in m}
    for metric in registry.METRICS:
        if metric.key not in m or metric.name in references:
            continue
        value = m[metric.key]
        if metric.kind == "detector":
            rows += _detector_rows(value)
        elif metric.kind == "set":
            spread = f" ± {metric.number(value['std'])}" if value["std"] is not None else ""
            p = value["protocol"]
            text = (f"{metric.number(value['value'])}{spread}   {p['num_real']} real / {p['num_fake']} generated, "
                    f"{len(p['deviations'])} deviation(s) from {p['reference'].split(' ')[0]}")
            rows.append((metric.label, text))
        else:
            text = metric.text(value)
            other = registry.get(metric.versus) if metric.versus else None
            if other is not None and other.key in m:
                reference = m[other.key]
                text += f"   {other.label} {other.number(reference)}"
                if other.better:
                    text += f" ({metric.delta(value, reference)})"
            elif metric.better in ("one", "half"):
                text += f"   ({metric.reading})"
            rows.append((metric.label, text))
    width = max(14, *(len(label) + 2 for label, _ in rows)) if rows else 14
    lines = [head] + [f"  {label:<{width}}{text}" for label, text in rows]
    reasons: dict[str, list[str]] = {}
    for name, why in result["skipped"].items():
        reasons.setdefault(why, []).append(name)
    for why, names in reasons.items():
        lines.append(f"  skipped {', '.join(names)}: {why}")
    return lines


# --------------------------------------------------------------------------------------------
# command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # Every help text that has a default says it: argparse's ArgumentDefaultsHelpFormatter would add
    # a second "(default: None)" to those whose default the run decides.
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = p.add_argument_group("what to evaluate (--checkpoint, or --real and --fake)")
    what.add_argument("--checkpoint", help="a checkpoint-<step> folder, or a run folder (its newest checkpoint)")
    what.add_argument("--real", help="a folder of real clips (video files or frame folders)")
    what.add_argument("--fake", help="a folder of generated clips; names matching --real's pair the clips")
    ckpt = p.add_argument_group("--checkpoint options")
    ckpt.add_argument("--num", type=int, default=None,
                      help=f"held-out clips to evaluate (default: the run's --detect-clips, else {DEFAULT_CLIPS})")
    ckpt.add_argument("--dataset", default=None, help="evaluate on the held-out end of each video of this folder "
                      "(default: the run's own data)")
    ckpt.add_argument("--whole-videos", action="store_true", help="with --dataset: clips from anywhere in each "
                      "video, for a folder of videos the run never trained on (a whole-video hold-out)")
    ckpt.add_argument("--seed", type=int, default=None, help="noise seed (default: the run's seed, the trainer's noise)")
    ckpt.add_argument("--samples-dir", default=None, help="the gallery to refresh (default: the run's samples_dir)")
    folders = p.add_argument_group("--real/--fake options")
    folders.add_argument("--size", type=int, default=None, help="frame size the clips are resized and cropped to "
                         "(required)")
    folders.add_argument("--frames", type=int, default=None, help="score the first T frames of each clip "
                         "(default: all; every clip must then have the same length)")
    folders.add_argument("--context-frames", type=int, default=0, help="leading frames of each clip that were "
                         "given to the generator (default: 0)")
    metrics = p.add_argument_group("metrics and outputs")
    metrics.add_argument("--protocol", default="strong", choices=DETECTOR_PROTOCOLS,
                         help="the detector's protocol (docs/detector.md): strong, a frame judge and a clip judge "
                         "side by side; default, the single whole-clip classifier of earlier numbers (default: strong)")
    metrics.add_argument("--lpips", default="alex", choices=("alex", "vgg", "squeeze", "none"),
                         help="LPIPS net (default: alex)")
    metrics.add_argument("--lpips-weights", default=None, help="torchvision state dict of the LPIPS backbone "
                         "(default: the torch hub cache; LPIPS is skipped when it has none)")
    metrics.add_argument("--fvd-extractor", default=None, help="i3d_torchscript.pt (StyleGAN-V) or another "
                         "TorchScript clip feature extractor: adds FVD and KVD")
    metrics.add_argument("--fid-extractor", default=None, help="inception-2015-12-05.pt (StyleGAN2-ADA) or another "
                         "TorchScript image feature extractor: adds FID and KID")
    metrics.add_argument("--save-clips", default=None, metavar="FILE.pt", help="also save the clips evaluated: "
                         "{'real': (N, C, T, H, W), 'generated': the same with the continuation} in [-1, 1]")
    metrics.add_argument("--out", default=None, help="the JSON file (default: <run>/eval-<step>.json; with "
                         "--real/--fake none unless given)")
    metrics.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                         help="torch device (default: cuda if there is a GPU, else cpu)")
    metrics.add_argument("--cpu-threads", type=int, default=1, help="torch threads on CPU; 0 = all cores (default: "
                         "1, as the trainer's: OpenMP threads spin-wait on a machine whose cores are busy)")
    args = p.parse_args(argv)
    if (args.checkpoint is None) == (args.real is None and args.fake is None):
        p.error("give either --checkpoint, or --real and --fake")
    if args.checkpoint is None:
        if args.real is None or args.fake is None:
            p.error("--real and --fake go together")
        given = [f for f, v in (("--num", args.num), ("--dataset", args.dataset), ("--seed", args.seed),
                                ("--samples-dir", args.samples_dir), ("--whole-videos", args.whole_videos or None))
                 if v is not None]
        if given:
            p.error(f"{', '.join(given)} only apply to --checkpoint")
        if args.size is None or args.size < 1:
            p.error("--real/--fake need --size (the frame size to read the clips at)")
        if args.frames is not None and args.frames < 2:
            p.error("--frames must be >= 2")
        if args.context_frames < 0:
            p.error("--context-frames must be >= 0")
    else:
        given = [f for f, v in (("--size", args.size), ("--frames", args.frames)) if v is not None]
        if given or args.context_frames:
            p.error(f"{', '.join(given or ['--context-frames'])} only apply to --real/--fake (a run's clips are "
                    "read as it was trained)")
        if args.num is not None and args.num < 2:
            p.error("--num must be >= 2 (half of the clips train the detector, half are scored)")
        if args.whole_videos and args.dataset is None:
            p.error("--whole-videos needs --dataset: a folder of videos the run never trained on")
        if args.dataset is not None and not Path(args.dataset).is_dir():
            p.error(f"--dataset {args.dataset!r} is not an existing folder")
    if args.lpips_weights is not None and args.lpips == "none":
        p.error("--lpips-weights was given but --lpips is 'none'")
    if args.cpu_threads < 0:
        p.error("--cpu-threads must be >= 0")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        p.error(f"--device {args.device!r} is not a torch device (cpu, cuda, cuda:1...)")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: this machine has no CUDA GPU; pass --device cpu")
    return args


def main(args: argparse.Namespace) -> dict:
    """Evaluate, print the summary, write the JSON (and ``--save-clips``); returns the JSON's content."""
    try:
        return _evaluate(args)
    except RunError as error:  # SettingsError too: one line, exit status 2 (settings) or 1
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None


def _evaluate(args: argparse.Namespace) -> dict:
    started = time.time()
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    if args.checkpoint is not None:
        result, real, fake, out, run_dir = evaluate_checkpoint(args, started)
    else:
        (result, real, fake, out), run_dir = evaluate_folders(args, started), None
    print("\n".join(summary_lines(result)))
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")
        except OSError as error:
            raise RunError(f"can't write the result to {out}: {error.strerror or error}") from None
        print(f"wrote {out}")
    if args.save_clips:
        try:
            torch.save({"real": real.cpu(), "generated": fake.cpu(), "context_frames": torch.tensor(
                result["clips"]["context_frames"])}, args.save_clips)
        except OSError as error:
            raise RunError(f"--save-clips {args.save_clips!r} can't be written: {error.strerror or error}") from None
        print(f"wrote {args.save_clips}")
    if run_dir is not None and out == run_dir / f"eval-{result['step']}.json":  # the run's card shows it
        config, _ = load_config(run_dir / "config.json")
        samples_dir = Path(args.samples_dir or config.samples_dir)
        problem = refresh_gallery(samples_dir, result["run_name"], run_dir / "metrics.jsonl")
        print(f"gallery: {problem or samples_dir / 'index.html'}")
    return result


if __name__ == "__main__":
    main(parse_args())

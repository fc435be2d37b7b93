"""Train the reference video GAN with genloss and Accelerate.

    accelerate launch train/gan.py                      # the CPU reference run (10-15 min on 2 cores)
    accelerate launch --multi_gpu --num_processes 2 train/gan.py   # one 2-rank DDP job (GPUs or CPU)
    accelerate launch train/gan.py --config runs/<run>/config.json --max-steps 6000   # a run's settings again
    python train/gan.py --help

Writes ``<output-dir>/<run-name>/{config.json, metrics.jsonl, checkpoints/checkpoint-<step>/}``
and sample clips under ``<samples-dir>/<run-name>/`` with the gallery ``<samples-dir>/index.html``.

Read it top to bottom: ``train_step`` is one optimisation step (generator forward, discriminator
update with lazy R1, generator update, the non-finite skip); ``main`` decides which run folder the
command writes and makes it its own; ``train`` sets the run up and loops, evaluating, sampling
and checkpointing on schedule. A stop signal, a write that fails or too many non-finite steps end
the loop after a step, with a checkpoint of it (``train.run.Checkpoints``). Exit codes and what
each failure prints: ``train/safety.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Only the `genloss` library is pip-installed; `models/` and `train/` are repository code. Put the
# repository root on the path so `accelerate launch train/gan.py` finds them from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if __name__ == "__main__":  # before the heavy imports: a launcher killed meanwhile takes us along
    from train.launcher import guard_streams, tie_to_launcher

    guard_streams()  # before tqdm or logging hold the streams: a killed launcher closes our stderr
    tie_to_launcher()

import math  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import torch  # noqa: E402
from accelerate.utils import set_seed  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import genloss as gl  # noqa: E402
from genloss.composite import DIAGNOSTIC_PREFIXES  # noqa: E402
from models import sample_frames  # noqa: E402
from train import state as st  # noqa: E402
from train.build import build_datasets, build_models, build_perceptual  # noqa: E402
from train.config import ConfigError, TrainConfig, config_text, flat_config, write_config  # noqa: E402
from train.diagnose import Monitor  # noqa: E402
from train.gallery import refresh_gallery  # noqa: E402
from train.in_training_eval import (  # noqa: E402
    end_of_run_detector,
    evaluate,
    fixed_noise,
    format_detector,
    format_eval,
    stack_clips,
    write_samples,
)
from train.losses import (  # noqa: E402
    DISCRIMINATORS_OFF,
    DiscriminatorView,
    Losses,
    build_losses,
    frame_indices,
    temporal_difference_from_context,
)
from train.options import Options, parse_args  # noqa: E402
from train.run import (  # noqa: E402
    Checkpoints,
    LogWindow,
    MetricsLog,
    RunPlan,
    check_ranks_in_sync,
    claim_run,
    make_accelerator,
    name_run,
    new_record,
    plan_run,
    start_trackers,
    stop_requested,
)
from train.launcher import AFTER_LAUNCHER_LOG, divert_if_launcher_gone, set_fallback  # noqa: E402
from train.safety import Interrupted, RunError, SettingsError, Stopped, StopSignals  # noqa: E402


@dataclass
class GAN:
    """The models and optimisers one step trains.

    ``generator``, ``d_image`` and ``d_video`` are as ``accelerator.prepare`` returned them (DDP-wrapped
    in a multi-process job); the ``*_raw`` discriminators are the same modules unwrapped, which
    the generator's half calls frozen and outside DDP (no hooks, no gradient sync for them).
    """

    generator: nn.Module
    d_image: nn.Module
    d_video: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    d_image_raw: nn.Module
    d_video_raw: nn.Module
    last_layer: Tensor  # the generator's output weight, for the adaptive weight

    def d_parameters(self) -> list[nn.Parameter]:
        return [*self.d_image.parameters(), *self.d_video.parameters()]


@dataclass
class Verdicts:
    """The discriminators' outputs in one half of a step; a field is ``None`` when nothing reads it."""

    video_real: Tensor | None = None  # (B, 1, T', h, w) logits on the real clips
    video_fake: Tensor | None = None  # the same on the generated clips (context + generated frames)
    image_real: Tensor | None = None  # (B * n, 1, h, w) logits on n frames per clip, generated positions only
    image_fake: Tensor | None = None
    features_real: list[Tensor] | None = None  # the video discriminator's features, for feature matching
    features_fake: list[Tensor] | None = None
    real_clips: Tensor | None = None  # the un-augmented real inputs the logits are differentiable in (R1 steps)
    real_frames: Tensor | None = None
    fake_clips: Tensor | None = None  # the same for the generated inputs (R2 steps)
    fake_frames: Tensor | None = None

    def stats(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``CompositeLoss``'s ``d_stats``: each discriminator's (real, fake) logits."""
        return {"video": (self.video_real, self.video_fake), "image": (self.image_real, self.image_fake)}


def last_context_frames(clips: Tensor, idx: Tensor, context_frames: int) -> Tensor:
    """The last context frame of each clip, once per frame ``sample_frames(clips, idx)`` picks:
    ``(B, C, T, H, W) -> (B * n, C, H, W)``, aligned with those frames."""
    return sample_frames(clips, torch.full_like(idx, context_frames - 1))


def judge_for_discriminators(gan: GAN, view: DiscriminatorView, real: Tensor, fake: Tensor, context_frames: int, *,
                             r1: bool, r2: bool) -> Verdicts:
    """Both discriminators on real and generated clips, batched: one forward each (DDP allows one
    forward per backward), every clip and frame with its own augmentation draw. ``fake`` comes
    detached; with ``r1`` (``r2``) the real (generated) inputs require gradients, before the view."""
    idx = frame_indices(real.shape[2], context_frames, real.device)
    real_clips, fake_clips = real.detach().requires_grad_(r1), fake.detach().requires_grad_(r2)
    real_frames = sample_frames(real.detach(), idx).requires_grad_(r1)  # (B * n, C, H, W)
    fake_frames = sample_frames(fake.detach(), idx).requires_grad_(r2)
    context = last_context_frames(real.detach(), idx, context_frames) if view.frame_context else None
    video_logits, _ = gan.d_video(view.video(torch.cat([real_clips, fake_clips])))  # (2B, 1, T', h, w)
    image_logits, _ = gan.d_image(view.frames(torch.cat([real_frames, fake_frames]),
                                              context=None if context is None else torch.cat([context, context])))
    (video_real, video_fake), (image_real, image_fake) = video_logits.chunk(2), image_logits.chunk(2)
    return Verdicts(video_real=video_real, video_fake=video_fake, image_real=image_real, image_fake=image_fake,
                    real_clips=real_clips if r1 else None, real_frames=real_frames if r1 else None,
                    fake_clips=fake_clips if r2 else None, fake_frames=fake_frames if r2 else None)


def judge_for_generator(gan: GAN, view: DiscriminatorView, real: Tensor, fake: Tensor, context_frames: int, *,
                        adversarial: bool, feature_matching: bool, relativistic: bool) -> Verdicts:
    """The discriminators on the generated clip ``fake`` (and, without graph, on ``real``) for the
    generator's terms: each output computed once, and only those the terms asked for read. A real
    clip and its generated continuation get the same augmentation draw (so do their frames):
    feature matching compares their features, the relativistic loss their logits. Call it with
    the discriminators ``frozen``."""
    out = Verdicts()
    if adversarial or feature_matching:
        draw = view.draw(fake)
        out.video_fake, out.features_fake = gan.d_video_raw(view.video(fake, draw))
        if feature_matching or relativistic:
            with torch.no_grad():
                video_real, out.features_real = gan.d_video_raw(view.video(real, draw))
            out.video_real = video_real if adversarial and relativistic else None
    if adversarial:
        idx = frame_indices(real.shape[2], context_frames, fake.device)
        frames = sample_frames(fake, idx)
        draw = view.draw(frames)
        context = last_context_frames(real, idx, context_frames) if view.frame_context else None
        out.image_fake, _ = gan.d_image_raw(view.frames(frames, draw, context))
        if relativistic:
            with torch.no_grad():
                out.image_real, _ = gan.d_image_raw(view.frames(sample_frames(real, idx), draw, context))
    return out


def gradient_penalties(d: Verdicts, cfg: TrainConfig, scaler, *, r1: bool, r2: bool) -> dict[str, Tensor]:
    """``{"r1": γ₁/2·(R1_video + R1_image), "r2": γ₂/2·(R2_video + R2_image)}``, those asked for.

    Per-sample units, as in Mescheder et al. 2018 and R3GAN (Huang et al. 2024): each penalty is
    ``‖∇ₓ mean_p D(x)_p‖²``, the gradient of a clip's (frame's) *mean* logit with respect to the
    un-augmented input, so γ means the same whatever the number P of patch logits per sample (32
    per clip and 64 per frame in the reference run). The sum of the logits has P times that
    gradient: ``γ_sum = γ / P²`` gives the same penalty with ``genloss.r1_penalty`` on the sum.
    """
    scale = scaler.get_scale() if scaler else None

    def per_sample(logits: Tensor) -> Tensor:  # (B, 1, ...) -> (B,), in float32 at least
        return logits.flatten(1).mean(1, dtype=torch.promote_types(logits.dtype, torch.float32))

    out = {}
    if r1:
        out["r1"] = cfg.r1_gamma / 2 * (gl.r1_penalty(per_sample(d.video_real), d.real_clips, grad_scale=scale)
                                        + gl.r1_penalty(per_sample(d.image_real), d.real_frames, grad_scale=scale))
    if r2:
        out["r2"] = cfg.r2_gamma / 2 * (gl.r2_penalty(per_sample(d.video_fake), d.fake_clips, grad_scale=scale)
                                        + gl.r2_penalty(per_sample(d.image_fake), d.fake_frames, grad_scale=scale))
    return out


@contextmanager
def frozen(*modules: nn.Module):
    """No parameter gradients for ``modules`` inside the block: the graph built there reaches
    their inputs, not their weights."""
    for module in modules:
        module.requires_grad_(False)
    try:
        yield
    finally:
        for module in modules:
            module.requires_grad_(True)


def all_finite(accelerator, *tensors: Tensor) -> bool:
    """True on every rank iff every value is finite on every rank (ranks must agree to skip)."""
    flags = torch.stack([torch.isfinite(t).all() for t in tensors]).float().min().reshape(1)
    return bool(accelerator.gather(flags).min().item() > 0)


def backward_checked(accelerator, loss: Tensor, params, max_norm: float, ok: bool) -> bool:
    """Backpropagate ``loss`` unless it is non-finite on some rank; at the end of the accumulation
    window, clip the gradients of ``params``. Returns whether the step is still finite: ``ok``, the
    loss, and (at the window's end) the gradient norm."""
    finite = all_finite(accelerator, loss)
    if finite:
        accelerator.backward(loss)
    ok = ok and finite
    if accelerator.sync_gradients:
        norm = accelerator.clip_grad_norm_(params, max_norm)
        ok = ok and all_finite(accelerator, norm)
    return ok


def adversarial_term(d: Verdicts, kind: str, rec: Tensor | None, last_layer: Tensor | None) -> Tensor:
    """The generator's adversarial term, both discriminators' verdicts summed; with ``last_layer``
    (``--adaptive-weight``) scaled explicitly by VQGAN's adaptive weight, which matches its gradient
    at the generator's output layer to the reconstruction term's (Esser et al. 2021)."""
    adv = (gl.generator_loss(d.video_fake, kind=kind, real_logits=d.video_real)
           + gl.generator_loss(d.image_fake, kind=kind, real_logits=d.image_real))
    return adv if last_layer is None else gl.adaptive_weight(rec, adv, last_layer) * adv


def step_logs(g_logs: dict[str, Tensor], d_logs: dict[str, Tensor]) -> dict[str, Tensor]:
    """The step's logs: ``g/<term>`` and ``d/<term>`` (``d/r1``, ``d/r2`` included), and the
    diagnostics as ``diag/gradnorm/<term>``, ``diag/d_accuracy/<disc>``, ``diag/d_real/<disc>``,
    ``diag/d_fake/<disc>``."""
    return {(f"diag/{name}" if name.startswith(DIAGNOSTIC_PREFIXES) else f"{half}/{name}"): value
            for half, logs in (("g", g_logs), ("d", d_logs)) for name, value in logs.items()}


def train_step(step: int, real: Tensor, gan: GAN, losses: Losses, cfg: TrainConfig, accelerator,
               window_ok: bool = True, *, log: bool = False) -> tuple[bool, dict[str, Tensor]]:
    """One optimisation step on real clips ``(B, C, T, H, W)`` (with ``--grad-accum N``, one of N
    micro-batches; ``window_ok``: the earlier ones were finite). Returns whether the step was applied
    and its logs (:func:`step_logs`), with the diagnostics when ``log`` (on the window's last
    micro-batch). A non-finite loss or gradient in either half skips the whole step: neither
    optimiser steps, and the caller leaves the EMA alone."""
    k, kind, max_norm = cfg.context_frames, losses.kind, cfg.max_grad_norm or math.inf
    log = log and accelerator.sync_gradients
    # 1. Generator forward.
    z = torch.randn(real.shape[0], cfg.z_dim, device=real.device)
    context, future = real[:, :, :k], real[:, :, k:]
    active = losses.active(step)  # the generator terms with a non-zero weight at this step
    if "flow_tv" in active:
        generated, flow = gan.generator(context, z, return_flow=True)  # and (B, 2, T-K, H, W) in pixels
    else:
        generated, flow = gan.generator(context, z), None  # (B, C, T-K, H, W)
    fake = torch.cat([context, generated], dim=2)  # what the video discriminator judges

    # 2. Discriminator forwards on real and generated (detached) clips. The discriminators train
    #    every step from step 0, while the adversarial weight still warms up too; only a run where
    #    no term ever reads them skips this half. On R1 (R2) steps the real (generated) inputs need gradients.
    d_ok, d_before, d_logs = window_ok, None, {}
    if losses.discriminators_needed:
        due = step % cfg.r1_interval == 0
        do_r1, do_r2 = due and cfg.r1_gamma > 0, due and cfg.r2_gamma > 0
        d = judge_for_discriminators(gan, losses.view, real, fake.detach(), k, r1=do_r1, r2=do_r2)

        # 3. Discriminator loss, plus the lazy penalties on due steps: gamma/2 (R1_video + R1_image),
        #    R2 likewise, times the interval (Karras et al. 2020). Backward, and the update (undone in 5 if need be).
        d_total, d_logs = losses.discriminator(
            step, d_stats=d.stats() if log else None,
            adv_video=lambda: gl.discriminator_loss(d.video_real, d.video_fake, kind=kind),
            adv_image=lambda: gl.discriminator_loss(d.image_real, d.image_fake, kind=kind))
        for name, penalty in gradient_penalties(d, cfg, accelerator.scaler, r1=do_r1, r2=do_r2).items():
            d_total = d_total + penalty * cfg.r1_interval
            d_logs[name] = penalty.detach()
        d_ok = backward_checked(accelerator, d_total, gan.d_parameters(), max_norm, window_ok)
        d_before = st.OptimizerSnapshot(gan.opt_d) if accelerator.sync_gradients and d_ok else None
        if d_before is not None:
            gan.opt_d.step()
        gan.opt_d.zero_grad(set_to_none=True)

    # 4. Generator terms, over the generated clip and the updated discriminators' verdicts on it.
    with frozen(gan.d_image_raw, gan.d_video_raw):
        d = judge_for_generator(gan, losses.view, real, fake, k, adversarial="adv" in active,
                                feature_matching="perceptual" in active and losses.lpips is None,
                                relativistic=kind == "relativistic")
    rec = losses.reconstruction(generated, future) if "rec" in active else None
    adv = adversarial_term(d, kind, rec, gan.last_layer if cfg.adaptive_weight else None) if "adv" in active else None
    g_total, g_logs = losses.generator(
        step, gradnorm_wrt=generated if log else None,  # each weighted term's push on the generated frames
        rec=lambda: rec,
        gdl=lambda: gl.gradient_difference_loss(generated, future),
        tdl=lambda: temporal_difference_from_context(context, generated, future),
        perceptual=lambda: losses.perceptual(generated, future, d.features_real, d.features_fake),
        smooth=lambda: gl.temporal_smoothness_loss(fake, order=2),
        flow_tv=lambda: gl.flow_smoothness_loss(flow),
        adv=lambda: adv,
    )
    # The flow term acts on the flow, upstream of the frames: its gradient with respect to them is 0
    # by construction, which the diagnostics would read as a silent term.
    g_logs.pop("gradnorm/flow_tv", None)

    # 5. Generator backward, and the non-finite skip of the whole step.
    ok = backward_checked(accelerator, g_total, gan.generator.parameters(), max_norm, d_ok)
    if accelerator.sync_gradients and ok:
        gan.opt_g.step()
    elif d_before is not None:
        d_before.restore()
    gan.opt_g.zero_grad(set_to_none=True)
    return ok, step_logs(g_logs, d_logs)


def main(options: Options, signals: StopSignals | None = None) -> None:
    """Train as ``options`` asks: decide the run folder and its settings (:func:`~train.run.plan_run`),
    make the folder this process's (writable outputs, the lock, no earlier run mixed in:
    :func:`~train.run.claim_run`), then :func:`train`. The lock is released on every way out."""
    plan = plan_run(options)
    accelerator = make_accelerator(plan.config)
    say = tqdm.write if accelerator.is_main_process else (lambda *_: None)  # above the progress bar
    plan = name_run(accelerator, plan)
    for note in plan.notes:
        say(note)
    saved_world = plan.saved.get("world_size") if plan.checkpoint else None
    if saved_world not in (None, accelerator.num_processes):
        raise SettingsError(f"run {plan.run_name} trained on {saved_world} processes and this job has "
                            f"{accelerator.num_processes}: the global batch and the data order would change. "
                            f"Resume it with --num_processes {saved_world}")
    lock = claim_run(accelerator, plan, options.overwrite, say)
    if accelerator.is_main_process:  # the others print nothing worth keeping
        set_fallback(Path(plan.config.output_dir) / plan.run_name / AFTER_LAUNCHER_LOG)
    try:
        train(accelerator, plan, signals, say)
    finally:
        for tracker in accelerator.trackers:  # flush TensorBoard's events on every way out
            tracker.finish()
        if lock is not None:
            lock.release()
        # Last on every way out, as end_training does for a finished run: a process group left to
        # the interpreter's exit can tear its C++ threads down unjoined, and the rank then dies of
        # SIGABRT ("terminate called without an active exception") instead of exiting 143 (seen on
        # the rank a SIGTERM stopped, about once in 50 two-rank stops).
        accelerator.state.destroy_process_group()


@dataclass
class Run:
    """Everything the loop reads and writes, as :func:`set_up` leaves it."""

    accelerator: object
    cfg: TrainConfig
    run_name: str
    record: object  # train.config's RunRecord: config.json's "run" section
    gan: GAN
    losses: Losses
    perceptual: nn.Module | None
    g_raw: nn.Module  # the generator, unwrapped
    ema: st.EMA
    progress: st.TrainState
    batches: object  # the loader, past the batches an earlier run used
    heldout: object
    eval_clips: Tensor  # (N, C, T, H, W) held-out clips, and their fixed noise
    eval_noise: Tensor
    log: MetricsLog
    checkpoints: Checkpoints
    say: object

    @property
    def done(self) -> bool:
        return self.progress.step >= self.cfg.max_steps


def train(accelerator, plan: RunPlan, signals: StopSignals | None, say) -> None:
    """Set the run up (:func:`set_up`), then one :func:`train_step` per batch and what falls due
    after it (:func:`after_step`: logs, a stop, evaluation, samples, checkpoints), then the
    end-of-run detector (:func:`finish`).

    With ``--grad-accum k`` a step is k micro-batches: ``train_step`` runs on each, and only the
    last one (``sync_gradients``) steps the optimisers; a non-finite micro-batch skips its whole
    window. From :meth:`StopSignals.arm` on, a stop signal ends the loop after a step, with a
    checkpoint of it."""
    run = set_up(accelerator, plan, say)
    cfg, progress = run.cfg, run.progress
    bar = tqdm(total=cfg.max_steps, initial=progress.step, disable=not accelerator.is_main_process,
               desc="train", dynamic_ncols=True)
    loop = LoopState(start_time=time.time(), start_step=progress.step, guard=st.NonFiniteGuard(cfg.nonfinite_patience),
                     monitor=Monitor(cfg.to_dict()))  # Monitor: warnings on the loss balance (train/diagnose.py)
    if signals is not None:
        signals.arm()
    window_ok = True
    for real in run.batches:
        if run.done:
            break
        log_step = (progress.step + 1) % cfg.log_every == 0 or progress.step + 1 >= cfg.max_steps  # with diagnostics
        with accelerator.accumulate(run.gan.generator, run.gan.d_image, run.gan.d_video):
            ok, logs = train_step(progress.step, real, run.gan, run.losses, cfg, accelerator, window_ok, log=log_step)
        if not accelerator.sync_gradients:
            window_ok = ok
            continue
        window_ok = True
        after_step(run, loop, bar, signals, ok, logs, log_step)
    bar.close()
    if signals is not None:
        signals.finish()
    finish(run, loop)


@dataclass
class LoopState:
    """What the loop carries from step to step besides the TrainState that checkpoints save."""

    start_time: float
    start_step: int
    guard: st.NonFiniteGuard
    monitor: Monitor
    window: LogWindow = field(default_factory=LogWindow)
    samples_failure: str | None = None


def set_up(accelerator, plan: RunPlan, say) -> Run:
    """The run's models, optimisers, data, logs and checkpoints, resumed from ``plan.checkpoint``
    when there is one; writes config.json and starts the trackers."""
    cfg, run_name, resume_from = plan.config, plan.run_name, plan.checkpoint
    run_dir = Path(cfg.output_dir) / run_name
    set_seed(cfg.seed, device_specific=True)  # different noise per rank; DDP syncs the weights

    perceptual, perceptual_used, notice = build_perceptual(
        cfg.perceptual, cfg.perceptual_weights, cfg.size, resumed=plan.saved.get("perceptual") if resume_from else None)
    say(notice)
    record = new_record(accelerator, plan, perceptual_used, notice)
    train_set, heldout = build_datasets(cfg, cfg.max_steps * record.global_batch_size, log=say,
                                        progress=accelerator.is_main_process)
    generator, d_image, d_video = build_models(cfg)
    if perceptual is not None:
        perceptual = perceptual.to(accelerator.device)
    losses = build_losses(cfg, perceptual, perceptual_used)
    if not losses.discriminators_needed:  # e.g. no adversarial term and LPIPS (or no) perceptual term
        record.discriminators = DISCRIMINATORS_OFF
        say(f"discriminators: {DISCRIMINATORS_OFF}")
    betas = (0.5, 0.99)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=betas)
    opt_d = torch.optim.Adam([*d_image.parameters(), *d_video.parameters()], lr=cfg.lr_d, betas=betas)
    # Clips are a function of their index, so no shuffling. The loader's own generator keeps the
    # iterator's seed draw off the global RNG: a resumed run then draws the same noise as an
    # uninterrupted one.
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=False, drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    generator, d_image, d_video, opt_g, opt_d, loader = accelerator.prepare(
        generator, d_image, d_video, opt_g, opt_d, loader)
    g_raw = accelerator.unwrap_model(generator)
    gan = GAN(generator, d_image, d_video, opt_g, opt_d, accelerator.unwrap_model(d_image),
              accelerator.unwrap_model(d_video), g_raw.last_layer)
    ema = st.EMA(g_raw, decay=cfg.ema_decay)  # after prepare: DDP has synced the weights
    progress = st.TrainState()
    accelerator.register_for_checkpointing(ema, progress)

    if resume_from is not None:
        try:
            accelerator.load_state(str(resume_from))
        except (RuntimeError, ValueError, KeyError, OSError) as error:  # mismatched or unreadable tensors
            raise RunError(f"{resume_from} can't be loaded into the models its saved settings build: "
                           f"{load_error_summary(error)}") from None
        say(f"resumed from {resume_from} at step {progress.step}")
    log = MetricsLog(run_dir / "metrics.jsonl", accelerator)
    if accelerator.is_main_process:
        try:
            write_config(run_dir / "config.json", cfg, record)
            log.trim(progress.step)
        except OSError as error:
            raise RunError(f"can't write {run_dir}: {error}") from None
    start_trackers(accelerator, run_dir, run_name, cfg.to_dict())
    checkpoints = Checkpoints(accelerator, run_dir, run_name, cfg.keep_checkpoints,
                              {"config.json": config_text(cfg, record)}, record.command, say)
    say(f"run {run_name}: {accelerator.num_processes} process(es) on {accelerator.device}, "
        f"global batch {record.global_batch_size}, steps {progress.step} -> {cfg.max_steps}")
    batches = accelerator.skip_first_batches(loader, progress.step * cfg.grad_accum) if progress.step else loader
    return Run(accelerator, cfg, run_name, record, gan, losses, perceptual, g_raw, ema, progress, batches, heldout,
               stack_clips(heldout, range(cfg.eval_clips)), fixed_noise(cfg.eval_clips, cfg.z_dim, cfg.seed),
               log, checkpoints, say)


def after_step(run: Run, loop: LoopState, bar, signals: StopSignals | None, ok: bool, logs: dict[str, Tensor],
               log_step: bool) -> None:
    """What follows an optimisation step: count it (or its skip), log it, stop after it when asked
    (with a checkpoint), then evaluate, sample and checkpoint on schedule."""
    accelerator, cfg, progress, log = run.accelerator, run.cfg, run.progress, run.log
    skipped = loop.guard.update(ok)
    progress.skipped += int(skipped)
    if not skipped:
        run.ema.update(run.g_raw)
    progress.step += 1
    bar.update(1)
    loop.window.add(logs)
    if log_step or skipped:
        written = log.write_losses(progress.step, loop.window.with_penalties(logs), skipped_steps=progress.skipped,
                                   steps_per_s=(progress.step - loop.start_step) / (time.time() - loop.start_time))
        bar.set_postfix(loop.window.means())
        for finding in loop.monitor.add(written):  # each once, when its stretch first gets long enough
            run.say(f"warning: {finding.message}")
    # Stop after this step, with a checkpoint of it: a stop signal (on any process), an output
    # that could not be written, or too many non-finite steps in a row.
    signum, failed = stop_requested(accelerator, signals, bool(log.failure or loop.samples_failure))
    if signum or failed or loop.guard.exhausted:
        bar.close()
        if signals is not None:
            signals.stopping()
        why = (log.failure or loop.samples_failure or ("another process failed to write" if failed else None)
               or (loop.guard.message(progress.step) if loop.guard.exhausted else None))
        run.checkpoints.stop(progress.step, run.ema, signum=signum, why=why)
    if progress.step % cfg.eval_every == 0 or run.done:
        values = evaluate(accelerator, run.ema.model.to(accelerator.device), run.eval_clips, run.eval_noise,
                          cfg.context_frames, run.perceptual)
        log.write(progress.step, values)
        run.say(f"step {progress.step}: eval {format_eval(values)}")
    if progress.step % cfg.sample_every == 0 or run.done:
        if accelerator.is_main_process:
            n = min(cfg.sample_clips, cfg.eval_clips)
            loop.samples_failure = publish_samples(cfg, run.run_name, progress.step, run.ema.model, run.eval_clips[:n],
                                                   run.eval_noise[:n].to(accelerator.device),
                                                   flat_config(cfg, run.record), log.path, run.say)
        accelerator.wait_for_everyone()
    if progress.step % cfg.checkpoint_every == 0 or run.done:
        path = run.checkpoints.save(progress.step, run.ema)
        run.say(f"step {progress.step}: saved {path.name}")


def finish(run: Run, loop: LoopState) -> None:
    """After the loop: a write that failed at the last step stops here (its checkpoint is saved),
    the ranks' weights are checked equal, then the final EMA generator's detector score."""
    accelerator, cfg, progress, log = run.accelerator, run.cfg, run.progress, run.log
    if log.failure or loop.samples_failure:
        run.checkpoints.stop(progress.step, run.ema, why=log.failure or loop.samples_failure)
    check_ranks_in_sync(accelerator, run.g_raw, log, progress.step)
    if progress.step < cfg.max_steps:
        raise RunError(f"the data ran out at step {progress.step} < --max-steps {cfg.max_steps}")
    if loop.start_step >= cfg.max_steps:
        run.say(f"already at step {progress.step} >= --max-steps {cfg.max_steps}; nothing to train")
    elif cfg.detect_clips:  # the final EMA generator's detector score (train/in_training_eval.py has the protocol)
        values = end_of_run_detector(run.ema.model, run.heldout, cfg, accelerator.device, protocol=cfg.detect_protocol)
        log.write(progress.step, values)
        run.say(f"step {progress.step}: {format_detector(values)}")
        if accelerator.is_main_process and (problem := refresh_gallery(  # the run's card shows it
                Path(cfg.samples_dir), run.run_name, log.path, flat_config(cfg, run.record))):
            run.say(f"warning: {problem}")
    run.say(f"done: {progress.step} steps in {time.time() - loop.start_time:.0f} s; "
            f"metrics {log.path}, gallery {Path(cfg.samples_dir) / 'index.html'}")
    accelerator.end_training()


def load_error_summary(error: BaseException) -> str:
    """One line for torch's ``load_state_dict`` error, which lists every mismatched tensor on a line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    mismatched = [line for line in lines if line.startswith(("size mismatch", "Missing key", "Unexpected key"))]
    if not mismatched:
        return f"{type(error).__name__}: {lines[0] if lines else ''}"
    return f"{lines[0]} {len(mismatched)} problem(s), the first: {mismatched[0]}"


def publish_samples(cfg: TrainConfig, run_name: str, step: int, generator: nn.Module, clips: Tensor, noise: Tensor,
                    config: dict, metrics: Path, say) -> str | None:
    """Sample clips for ``step`` and the gallery page (main process). Returns why the clips could
    not be written (the loop then stops with a checkpoint), or ``None``. A gallery page that can't
    be written is only a warning: the clips are the record, the page an index of them."""
    try:
        paths = write_samples(Path(cfg.samples_dir), run_name, step, generator, clips, noise, cfg.context_frames)
    except OSError as error:
        return f"writing sample clips to {Path(cfg.samples_dir) / run_name} failed ({error.strerror or error})"
    say(f"step {step}: wrote {paths['gif']}")
    if problem := refresh_gallery(Path(cfg.samples_dir), run_name, metrics, config):
        say(f"warning: {problem}; training continues")
    return None


def cli(argv: list[str] | None = None) -> int:
    """``python train/gan.py ...``: parse the flags, train, and turn the errors a user can fix into
    one message on stderr and an exit code (``train/safety.py`` lists them), without a traceback."""
    options = parse_args(argv)  # bad flags: argparse's message, exit 2
    main_process = os.environ.get("RANK", "0") == "0"  # the others stay quiet: one message per job
    # The handlers stay until the message is out: torchrun sends SIGTERM to the ranks still running
    # as soon as one exits non-zero, and the default action would kill this one mid-sentence.
    with StopSignals() as signals:
        try:
            main(options, signals)
            return 0
        except (RunError, ConfigError) as error:
            message, code = f"error: {error}", getattr(error, "exit_code", SettingsError.exit_code)
        except Stopped as stop:
            message, code = str(stop), stop.exit_code
        except Interrupted as interrupted:
            message, code = f"interrupted: {interrupted}", interrupted.exit_code
        if main_process:
            sys.stdout.flush()
            divert_if_launcher_gone()  # else a dying launcher may take the message with it
            print(message, file=sys.stderr, flush=True)
    # Exiting anyway: a SIGTERM from torchrun (another rank exited first) must not turn this exit
    # code into a death by signal.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(cli())

"""Train the reference video GAN with genloss and Accelerate.

    accelerate launch train/gan.py                      # the CPU reference run (10-15 min on 2 cores)
    accelerate launch --multi_gpu --num_processes 2 train/gan.py   # one 2-rank DDP job (GPUs or CPU)
    python train/gan.py --help

Writes ``<output-dir>/<run-name>/{config.json, metrics.jsonl, checkpoints/checkpoint-<step>/}``
and sample clips under ``<samples-dir>/<run-name>/`` with the gallery ``<samples-dir>/index.html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Only the `genloss` library is pip-installed; `models/` and `train/` are repository code. Put the
# repository root on the path so `accelerate launch train/gan.py` finds them from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402

import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import InitProcessGroupKwargs, broadcast_object_list, set_seed  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from train import state as st  # noqa: E402
from train.evaluate import evaluate, fixed_noise, stack_clips, write_samples  # noqa: E402
from train.objective import Batch, Objective  # noqa: E402
from train.options import parse_args  # noqa: E402
from train.setup import build_datasets, build_models, build_perceptual, run_dir_of_checkpoint  # noqa: E402


def has_accelerator_device() -> bool:
    """Whether a GPU-like device exists (torch.accelerator on recent torch, else CUDA)."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def check_one_job(num_processes: int, env=os.environ) -> None:
    """Refuse to train when the launcher started more processes than the job the Accelerator joined."""
    world = int(env.get("WORLD_SIZE", "1"))
    if num_processes != world:
        raise SystemExit(
            f"error: launched as {world} processes (WORLD_SIZE) but this process sees a job of "
            f"{num_processes}: the processes would train separately. Launch with "
            "`accelerate launch --multi_gpu --num_processes N train/gan.py`."
        )


def make_accelerator(args) -> Accelerator:
    """One Accelerator for the whole job; on a machine without GPUs, a multi-process launch is
    made one CPU DDP job over gloo (Accelerate would otherwise start independent processes)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = world > 1 and not has_accelerator_device()
    kwargs = [InitProcessGroupKwargs(backend="gloo")] if cpu else []
    accelerator = Accelerator(
        cpu=cpu, mixed_precision=args.mixed_precision, gradient_accumulation_steps=args.grad_accum,
        kwargs_handlers=kwargs,
    )
    check_one_job(accelerator.num_processes)
    if accelerator.device.type == "cpu":
        # Never more threads than this process's share of the cores: oversubscribed OpenMP threads
        # spin-wait on each other (measured 8x slower per step on 2 shared cores).
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        share = max(1, (os.cpu_count() or 1) // local)
        torch.set_num_threads(share if args.cpu_threads == 0 else min(args.cpu_threads, share))
    return accelerator


def resolve_run(args, accelerator) -> tuple[str, Path | None]:
    """The run name and the checkpoint to resume from (``None`` for a fresh start)."""
    checkpoint = None
    run_name = args.run_name
    if args.resume == "latest":
        roots = [Path(args.output_dir) / run_name / "checkpoints"] if run_name else \
            list(Path(args.output_dir).glob("*/checkpoints"))
        found = [c for c in (st.latest_checkpoint(r) for r in roots) if c is not None]
        checkpoint = max(found, key=lambda c: c.stat().st_mtime) if found else None
    elif args.resume is not None:
        checkpoint = Path(args.resume)
    if checkpoint is not None and run_name is None:
        run_name = run_dir_of_checkpoint(checkpoint).name
    if run_name is None:
        task = f"continue{args.context_frames}" if args.context_frames else "uncond"
        run_name = f"{datetime.now():%Y%m%d-%H%M%S}-{task}-{args.frames}x{args.size}"
    # Every process must agree on the name (clocks may tick between processes).
    run_name = broadcast_object_list([run_name])[0]
    return run_name, checkpoint


def save_checkpoint(accelerator, ckpt_root: Path, step: int, ema: st.EMA, keep: int) -> Path:
    """``save_state`` into a hidden folder, then rename it: never a half-written checkpoint."""
    staging = st.staging_dir(ckpt_root, step)
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)  # left by a process killed mid-save
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))  # every rank writes its RNG state here
    if accelerator.is_main_process:
        torch.save(ema.model.state_dict(), staging / st.EMA_FILE)
    accelerator.wait_for_everyone()
    final = ckpt_root / f"checkpoint-{step}"
    if accelerator.is_main_process:
        final = st.publish_checkpoint(staging, step)
        st.prune_checkpoints(ckpt_root, keep)
    accelerator.wait_for_everyone()
    return final


def check_ranks_in_sync(accelerator, model: torch.nn.Module, record) -> None:
    """Fail loudly if the processes' generator weights differ (they would if DDP did not sync)."""
    if accelerator.num_processes == 1:
        return
    with torch.no_grad():
        checksum = torch.stack([p.double().sum() for p in model.parameters()]).sum().reshape(1)
    sums = accelerator.gather(checksum.to(accelerator.device))
    spread = (sums.max() - sums.min()).item()
    record({"ranks_in_sync": spread == 0.0, "rank_weight_checksums": sums.tolist()})
    if spread != 0.0:
        raise SystemExit(f"error: the {accelerator.num_processes} processes ended with different weights "
                         f"(checksums {sums.tolist()}): gradients were not synchronised")


def main(args) -> None:
    accelerator = make_accelerator(args)
    log = accelerator.print  # main process only
    run_name, resume_from = resolve_run(args, accelerator)
    run_dir = Path(args.output_dir) / run_name
    ckpt_root = run_dir / "checkpoints"
    samples_dir = Path(args.samples_dir)
    metrics_path = run_dir / "metrics.jsonl"
    set_seed(args.seed, device_specific=True)  # different noise per rank; DDP syncs the weights

    perceptual, used, message = build_perceptual(args.perceptual, args.perceptual_weights, args.size)
    log(message)
    config = {**vars(args), "run_name": run_name, "perceptual": used, "perceptual_requested": args.perceptual,
              "world_size": accelerator.num_processes, "device": str(accelerator.device),
              "global_batch_size": args.batch_size * args.grad_accum * accelerator.num_processes}
    config["resume"] = str(resume_from) if resume_from else args.resume
    steps_total = args.max_steps * args.grad_accum * accelerator.num_processes * args.batch_size
    train_set, heldout = build_datasets(config, steps_total, log=log)

    generator, d_image, d_video = build_models(config)
    if perceptual is not None:
        perceptual = perceptual.to(accelerator.device)
    objective = Objective(config, perceptual)
    betas = (0.5, 0.99)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr_g, betas=betas)
    opt_d = torch.optim.Adam([*d_image.parameters(), *d_video.parameters()], lr=args.lr_d, betas=betas)
    # Clips are a function of their index, so no shuffling. The loader's own generator keeps the
    # iterator's seed draw off the global RNG: a resumed run then draws the same noise as an
    # uninterrupted one.
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=False, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))
    generator, d_image, d_video, opt_g, opt_d, loader = accelerator.prepare(
        generator, d_image, d_video, opt_g, opt_d, loader
    )
    g_raw, di_raw, dv_raw = (accelerator.unwrap_model(m) for m in (generator, d_image, d_video))
    ema = st.EMA(g_raw, decay=args.ema_decay)  # after prepare: DDP has synced the weights
    progress = st.TrainState()
    accelerator.register_for_checkpointing(ema, progress)

    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        log(f"resumed from {resume_from} at step {progress.step}")
    elif args.resume == "latest":
        log("--resume latest: no checkpoint found, starting a new run")
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if metrics_path.exists():  # drop records an interrupted run logged after its checkpoint
            kept = [line for line in metrics_path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= progress.step]
            metrics_path.write_text("".join(line + "\n" for line in kept))
    log(f"run {run_name}: {accelerator.num_processes} process(es) on {accelerator.device}, "
        f"global batch {config['global_batch_size']}, steps {progress.step} -> {args.max_steps}")

    eval_clips = stack_clips(heldout, range(args.eval_clips))
    eval_noise = fixed_noise(args.eval_clips, args.z_dim, args.seed)
    sample_count = min(args.sample_clips, args.eval_clips)
    k = args.context_frames
    guard = st.NonFiniteGuard(args.nonfinite_patience)
    max_norm = args.max_grad_norm if args.max_grad_norm > 0 else float("inf")

    def record(values: dict) -> None:
        if accelerator.is_main_process:
            # Non-finite values become null: NaN is not JSON, and browsers reject it.
            values = {n: v if not isinstance(v, float) or math.isfinite(v) else None for n, v in values.items()}
            with metrics_path.open("a") as f:
                f.write(json.dumps({"step": progress.step, **values}) + "\n")

    def eval_and_samples(do_eval: bool, do_samples: bool) -> None:
        ema.model.to(accelerator.device)
        if do_eval:
            values = evaluate(accelerator, ema.model, eval_clips, eval_noise, k, perceptual)
            record(values)
            log(f"step {progress.step}: " + "  ".join(f"{n}={v:.4g}" for n, v in values.items()))
        if do_samples and accelerator.is_main_process:
            write_samples(samples_dir, run_name, progress.step, ema.model, eval_clips[:sample_count],
                          eval_noise[:sample_count].to(accelerator.device), k, config, metrics_path)
        accelerator.wait_for_everyone()

    def all_finite(*tensors: torch.Tensor) -> bool:
        """True on every rank iff every value is finite on every rank (ranks must agree to skip)."""
        flags = torch.stack([torch.isfinite(t).all() for t in tensors]).float().min().reshape(1)
        return bool(accelerator.gather(flags).min().item() > 0)

    skipped_in_window = False
    batches = accelerator.skip_first_batches(loader, progress.step * args.grad_accum) if progress.step else loader
    bar = tqdm(total=args.max_steps, initial=progress.step, disable=not accelerator.is_main_process,
               desc="train", dynamic_ncols=True)
    start_time, start_step = time.time(), progress.step
    logs: dict[str, torch.Tensor] = {}
    for real in batches:
        if progress.step >= args.max_steps:
            break
        step = progress.step
        with accelerator.accumulate(generator, d_image, d_video):
            z = torch.randn(real.shape[0], args.z_dim, device=real.device)
            context = real[:, :, :k]
            batch = Batch(real=real, context=context, future=real[:, :, k:], generated=generator(context, z))

            # Discriminators (generated frames detached).
            d_total, d_logs = objective.discriminator(
                step, batch, d_image, d_video, accelerator.scaler.get_scale() if accelerator.scaler else None)
            if all_finite(d_total):
                accelerator.backward(d_total)
            else:
                skipped_in_window = True
            if accelerator.sync_gradients:
                norm = accelerator.clip_grad_norm_([*d_image.parameters(), *d_video.parameters()], max_norm)
                if not skipped_in_window and all_finite(norm):
                    opt_d.step()
                else:
                    skipped_in_window = True
            opt_d.zero_grad(set_to_none=True)

            # Generator, against the unwrapped frozen discriminators (no DDP hooks on them).
            di_raw.requires_grad_(False)
            dv_raw.requires_grad_(False)
            g_total, g_logs = objective.generator(step, batch, di_raw, dv_raw, g_raw.last_layer)
            di_raw.requires_grad_(True)
            dv_raw.requires_grad_(True)
            if all_finite(g_total):
                accelerator.backward(g_total)
            else:
                skipped_in_window = True
            if accelerator.sync_gradients:
                norm = accelerator.clip_grad_norm_(generator.parameters(), max_norm)
                g_ok = all_finite(norm) and not skipped_in_window
                if g_ok:
                    opt_g.step()
            opt_g.zero_grad(set_to_none=True)

        if not accelerator.sync_gradients:
            continue
        skipped = guard.update(not skipped_in_window)
        skipped_in_window = False
        progress.skipped += int(skipped)
        if not skipped:
            ema.update(g_raw)
        progress.step += 1
        bar.update(1)
        logs = {**{f"g/{n}": v for n, v in g_logs.items()}, **{f"d/{n}": v for n, v in d_logs.items()}}
        done = progress.step >= args.max_steps
        if progress.step % args.log_every == 0 or done or skipped:
            names = sorted(logs)
            values = accelerator.reduce(torch.stack([logs[n].float() for n in names]), reduction="mean")
            row = dict(zip(names, values.tolist()))
            row["skipped_steps"] = progress.skipped
            row["steps_per_s"] = (progress.step - start_step) / (time.time() - start_time)
            record(row)
            bar.set_postfix(g=f"{row['g/total']:.3f}", d=f"{row['d/total']:.3f}")
        if guard.exhausted:
            path = save_checkpoint(accelerator, ckpt_root, progress.step, ema, args.keep_checkpoints)
            try:
                guard.check(progress.step)
            except st.NonFiniteLossError as error:
                raise SystemExit(f"error: {error} Saved {path}.") from error
        do_eval = progress.step % args.eval_every == 0 or done
        do_samples = progress.step % args.sample_every == 0 or done
        if do_eval or do_samples:
            eval_and_samples(do_eval, do_samples)
        if progress.step % args.checkpoint_every == 0 or done:
            save_checkpoint(accelerator, ckpt_root, progress.step, ema, args.keep_checkpoints)
    bar.close()
    check_ranks_in_sync(accelerator, g_raw, record)
    if progress.step < args.max_steps:
        raise SystemExit(f"error: the data ran out at step {progress.step} < --max-steps {args.max_steps}")
    if start_step >= args.max_steps:
        log(f"already at step {progress.step} >= --max-steps {args.max_steps}; nothing to train")
    log(f"done: {progress.step} steps in {time.time() - start_time:.0f} s; "
        f"metrics {metrics_path}, gallery {samples_dir / 'index.html'}")
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())

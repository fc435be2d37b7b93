"""Write sample clips from a saved checkpoint without training.

    python train/sample.py --checkpoint runs/<run>/checkpoints/checkpoint-3000 --num 16
    python train/sample.py --checkpoint runs/<run> --num 16          # the run's newest checkpoint
    python train/sample.py --checkpoint runs/<run> --dataset /new/place/of/clips   # the data moved

Rebuilds the EMA generator from the checkpoint's ``config.json`` (or, for checkpoints saved
before they carried one, its run's), read as a ``TrainConfig``, and the checkpoint's EMA weights,
and writes a GIF/MP4 grid and a strip (context + generated | ground truth) of ``--num`` held-out
clips under ``<out>/`` (default: ``<samples-dir of the run>/<run-name>/from-checkpoint-<step>/``).
The held-out clips are the run's: same data, seed and ``--heldout-fraction``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Repository code (models/, train/) is not pip-installed: see train/gan.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import dataclasses  # noqa: E402

import torch  # noqa: E402

from train import state as st  # noqa: E402
from train.build import build_datasets, build_generator  # noqa: E402
from train.config import ConfigError, load_config  # noqa: E402
from train.in_training_eval import fixed_noise, generate, stack_clips  # noqa: E402
from train.safety import RunError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # Defaults are written into the help texts: argparse's ArgumentDefaultsHelpFormatter would add a
    # second "(default: None)" to those whose default the run decides.
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint-<step> folder, or a run folder (its newest checkpoint)")
    p.add_argument("--num", type=int, default=16, help="number of clips to write (default: 16)")
    p.add_argument("--out", default=None, help="output folder (default: <samples-dir>/<run-name>/from-checkpoint-<step>)")
    p.add_argument("--seed", type=int, default=None, help="noise seed (default: the run's seed, i.e. the training samples' noise)")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the GIF and MP4 (default: 8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: cuda if there is a GPU, else cpu)")
    p.add_argument("--dataset", default=None, help="the run's --dataset folder, when it has moved since (default: "
                   "the path the run recorded)")
    args = p.parse_args(argv)
    path = Path(args.checkpoint)
    if not path.exists():
        p.error(f"--checkpoint {str(path)!r} does not exist")
    if st.checkpoint_step(path) is None:
        latest = st.latest_in_run(path)
        if latest is None:
            p.error(f"--checkpoint {str(path)!r} is neither a checkpoint-<step> folder nor a run folder with checkpoints")
        path = latest
    if not (path / st.EMA_FILE).is_file():
        p.error(f"--checkpoint {str(path)!r} has no {st.EMA_FILE}: not a complete checkpoint of train/gan.py")
    if args.dataset is not None and not Path(args.dataset).is_dir():
        p.error(f"--dataset {args.dataset!r} is not an existing folder")
    if args.num < 1 or args.fps < 1:
        p.error("--num and --fps must be >= 1")
    args.checkpoint = path
    return args


def main(args: argparse.Namespace) -> dict[str, Path]:
    from train.clips import write_clips

    run_dir = st.run_dir_of_checkpoint(args.checkpoint)
    own = args.checkpoint / "config.json"
    try:
        config, run = load_config(own if own.is_file() else run_dir / "config.json")
        config.validate(environment=False)
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from error
    if args.dataset is not None:
        config = dataclasses.replace(config, dataset=args.dataset)
    elif config.dataset is not None and not Path(config.dataset).is_dir():
        raise SystemExit(f"error: the run's --dataset {config.dataset!r} is not a folder any more; "
                         "pass --dataset with its new place")
    step = st.checkpoint_step(args.checkpoint)
    generator = build_generator(config)
    generator.load_state_dict(torch.load(args.checkpoint / st.EMA_FILE, map_location="cpu", weights_only=True))
    generator.to(args.device).eval()
    try:
        _, heldout = build_datasets(dataclasses.replace(config, eval_clips=max(args.num, config.eval_clips)), 1)
    except RunError as error:
        raise SystemExit(f"error: {error}") from None
    clips = stack_clips(heldout, range(args.num))
    seed = config.seed if args.seed is None else args.seed
    noise = fixed_noise(args.num, config.z_dim, seed).to(args.device)
    k = config.context_frames
    generated = generate(generator, clips.to(args.device), noise, k).cpu().clamp(-1, 1)
    run_name = run.get("run_name", run_dir.name)
    out = Path(args.out) if args.out else Path(config.samples_dir) / run_name / f"from-checkpoint-{step}"
    paths = write_clips(out, step, clips[:, :, :k], generated, clips)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return paths


if __name__ == "__main__":
    main(parse_args())

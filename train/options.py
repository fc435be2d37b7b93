"""Command-line flags of ``train/gan.py``: they build a :class:`TrainConfig` and name the run.

Merge rule: the settings start from :class:`TrainConfig`'s defaults, or from ``--config FILE``
(a run's ``config.json`` or a hand-written JSON file) when it is given; every flag typed on the
command line then overrides its setting. The parser has no defaults of its own
(``argparse.SUPPRESS``), so a parse returns exactly the flags that were typed: a flag given with
its default value still overrides the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from dataclasses import dataclass
from pathlib import Path

from genloss import KINDS
from train.config import (
    PERCEPTUAL_CHOICES,
    PRECISIONS,
    REC_LOSSES,
    REPORT_TO_CHOICES,
    VIDEO_D_INPUTS,
    ConfigError,
    TrainConfig,
    load_config,
)
from train.data import (  # what the reader takes, named in --help
    FRAME_SUFFIXES,
    VIDEO_SUFFIXES,
)

__all__ = ["Options", "build_parser", "parse_args"]

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SETTINGS = {f.name for f in dataclasses.fields(TrainConfig)}
MERGE_RULE = (
    "Settings start from the defaults shown, or from --config FILE when given; every flag typed on the "
    "command line overrides its setting. Example: --config runs/<run>/config.json --max-steps 6000 "
    "repeats that run's settings with 6000 steps."
)


@dataclass
class Options:
    """What one command asks for: the settings, and which run folder to write."""

    config: TrainConfig  # with --resume: not yet merged with the run's saved settings, nor validated
    run_name: str | None = None  # the run folder's name; None = <date>-<time>-<task>
    resume: str | None = None  # "latest", a checkpoint folder, or None for a fresh run
    config_file: str | None = None  # the --config file the settings started from
    given: dict = dataclasses.field(default_factory=dict)  # the settings typed on the command line
    overwrite: bool = False  # replace what a run folder of the same name holds


class _Parser(argparse.ArgumentParser):
    """argparse, with a one-line usage above an error: the full usage of ~50 flags would bury it."""

    def error(self, message: str):
        self.exit(2, f"usage: {self.prog} [flags]  (--help lists them)\n{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        allow_abbrev=False,  # a flag is spelled out: --run or --res must not silently mean --run-name, --resume
        description="Train the reference video GAN (video continuation by default) with genloss "
        "and Accelerate. With no flags: the CPU reference run on procedural moving shapes.",
        epilog=MERGE_RULE,
        argument_default=argparse.SUPPRESS,
    )
    defaults, hints = TrainConfig(), typing.get_type_hints(TrainConfig)

    def add(group, flag: str, help: str, default_text: str | None = None, **kwargs) -> None:
        """A flag for the setting of the same name, typed and documented from TrainConfig."""
        name = flag[2:].replace("-", "_")
        kind = next(t for t in typing.get_args(hints[name]) or (hints[name],) if t is not type(None))
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction  # --x / --no-x, to override a --config file
        elif kind is not str:
            kwargs["type"] = kind
        shown = default_text if default_text is not None else getattr(defaults, name)
        group.add_argument(flag, help=f"{help} (default: {shown})".replace("%", "%%"), **kwargs)

    r = p.add_argument_group("run")
    r.add_argument("--config", metavar="FILE", help="start from this JSON file's settings (a run's config.json "
                   "or a hand-written {\"setting\": value} file); flags given on the command line override it")
    r.add_argument("--run-name", help="run folder name (default: <date>-<time>-<task>)")
    r.add_argument("--resume", help="'latest' (newest checkpoint of --run-name, or of any run in --output-dir) "
                   "or a checkpoint folder. The run's saved settings are kept: flags that would change its models, "
                   "data or training are an error, others (--max-steps, the every-N intervals, where outputs go, "
                   "trackers) are recorded as changes")
    r.add_argument("--overwrite", action="store_true", help="start a new run in --run-name's folder even if it holds "
                   "an earlier run's checkpoints or metrics, deleting them and its samples (refused otherwise)")
    add(r, "--max-steps", "optimisation steps to train for (in total, across resumes)")
    add(r, "--batch-size", "clips per process per micro-batch")
    add(r, "--grad-accum", "micro-batches accumulated per optimisation step")
    add(r, "--frames", "clip length T (context + generated frames)")
    add(r, "--context-frames", "K context frames given to the generator; 0 = unconditional generation")
    add(r, "--size", "frame height and width in pixels (a multiple of 8, at least 16)")
    add(r, "--dataset", f"folder of videos ({' '.join(VIDEO_SUFFIXES)}) or of frame folders "
        f"({'/'.join(FRAME_SUFFIXES)})",
        "procedural moving shapes")
    add(r, "--num-shapes", "shapes per clip in the procedural moving-shapes dataset")
    add(r, "--heldout-fraction", "share of each --dataset video, at its end, held out for evaluation (training "
        "clips come from the frames before it)")
    add(r, "--frame-stride", "keep every k-th frame of each --dataset video, before the split: k times the motion "
        "between consecutive frames (1 = every frame)")
    add(r, "--shot-cut", "split each --dataset video into shots where the mean absolute change between two frames "
        "exceeds this share of the pixel range (e.g. 0.15), so that no clip spans an edited cut; each shot gets its "
        "own held-out end (0 = off)")
    add(r, "--output-dir", "where run folders (config, metrics, checkpoints) go")
    add(r, "--samples-dir", "where sample clips and the gallery index.html go")
    add(r, "--sample-every", "write sample clips every N steps (and at the end)")
    add(r, "--eval-every", "evaluate on the held-out clips every N steps (and at the end)")
    add(r, "--checkpoint-every", "save a checkpoint every N steps (and at the end)")
    add(r, "--keep-checkpoints", "keep only the newest N checkpoints")
    add(r, "--log-every", "append training losses to metrics.jsonl every N steps")
    add(r, "--eval-clips", "held-out clips per evaluation (split across processes)")
    add(r, "--sample-clips", "held-out clips shown in each sample grid")
    add(r, "--detect-clips", "held-out clips scored against their generated continuations by the end-of-run "
        "detector (genloss.metrics.detectability, logged as eval/detect_*); 0 = off")
    add(r, "--report-to", "also send metrics.jsonl's values to TensorBoard (<run>/tensorboard), Weights & "
        "Biases, or all of those installed", choices=REPORT_TO_CHOICES)
    add(r, "--seed", "seed for data, initialisation, noise and the held-out split")
    add(r, "--cpu-threads", "torch threads per process when training on CPU; 0 = the machine's cores divided "
        "among its processes (1 is the safe choice for this small model on 2 cores: 2 threads are ~25% faster "
        "on an idle machine but OpenMP threads stall whenever another process competes for a core)")
    add(r, "--mixed-precision", "autocast precision (fp16 needs a CUDA GPU)", choices=PRECISIONS)

    m = p.add_argument_group("model and optimiser")
    add(m, "--g-channels", "generator width at full resolution (a multiple of 8)")
    add(m, "--g-output-scale", "generator heads (flow, mask, colour) at size / this, bilinearly upsampled; "
        "1 = full resolution (sharper, ~40% slower)", choices=(1, 2))
    add(m, "--d-channels", "discriminators' first-layer width (a multiple of 8)")
    add(m, "--z-dim", "noise vector size")
    add(m, "--spectral-norm", "spectral normalisation in both discriminators")
    add(m, "--video-d-input", "what the video discriminator sees: the clip, or clip+diff (the clip and its frame "
        "differences, zero for the first frame, as 2C channels)", choices=VIDEO_D_INPUTS)
    add(m, "--lr-g", "generator Adam learning rate")
    add(m, "--lr-d", "discriminators' Adam learning rate")
    add(m, "--ema-decay", "decay of the generator's EMA used for samples and eval")
    add(m, "--max-grad-norm", "clip gradient norms to this value (0 = no clipping; non-finite norms are always "
        "skipped)")
    add(m, "--nonfinite-patience", "stop after this many consecutive non-finite steps")

    l = p.add_argument_group("losses")
    add(l, "--adv-loss", "adversarial loss kind for both discriminators", choices=KINDS)
    add(l, "--adv-weight", "weight of the generator's adversarial term")
    add(l, "--adv-start", "warm-up: steps before the adversarial term starts", "max-steps/3 with context, 0 without")
    add(l, "--adv-ramp", "steps over which the adversarial weight ramps up", "max-steps/6 with context, 0 without")
    add(l, "--adaptive-weight", "scale the adversarial term by VQGAN's adaptive weight (needs the reconstruction "
        "and adversarial terms)")
    add(l, "--r1-gamma", "R1 penalty strength gamma on real samples, per sample as in the R1/R3GAN papers: the "
        "penalty differentiates each clip's (frame's) mean logit, whatever the logit map's size; gamma_sum = "
        "gamma / P^2 for P logits per sample (0 = off)")
    add(l, "--r1-interval", "apply R1 (and R2) lazily every N steps, scaled by N")
    add(l, "--r2-gamma", "R2 penalty strength gamma on generated samples, same units and steps as R1 (R3GAN pairs "
        "R1 + R2 with --adv-loss relativistic; 0 = off)")
    add(l, "--augment", "DiffAugment policy applied to real and generated inputs of both discriminators, one draw "
        "per clip shared by its frames (genloss.augment), e.g. color,translation,cutout; '' = off", "''")
    add(l, "--rec-loss", "reconstruction loss on the generated frames", choices=REC_LOSSES)
    add(l, "--rec-weight", "weight of the reconstruction term")
    add(l, "--gdl-weight", "weight of the gradient-difference term")
    add(l, "--tdl-weight", "weight of the temporal-difference term")
    add(l, "--smooth-weight", "weight of the second-order temporal-smoothness term")
    add(l, "--perceptual", "perceptual term: LPIPS net, or auto (LPIPS alex if ImageNet weights load, else "
        "discriminator feature matching)", choices=PERCEPTUAL_CHOICES)
    add(l, "--perceptual-weights", "torchvision state dict file of the LPIPS backbone", "the torch hub cache")
    add(l, "--perceptual-weight", "weight of the perceptual (or feature-matching) term")
    return p


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse and validate; any bad value or combination exits through ``argparse`` with a message."""
    parser = build_parser()
    given = vars(parser.parse_args(argv))  # only the flags typed (SUPPRESS defaults)
    config_file = given.pop("config", None)
    run_name, resume, overwrite = given.get("run_name"), given.get("resume"), given.get("overwrite", False)
    settings = {k: v for k, v in given.items() if k in _SETTINGS}
    if resume is not None and config_file is not None:
        parser.error("--config can't be combined with --resume: a resumed run keeps its own saved settings "
                     "(type only the flags to change)")
    if resume is not None and overwrite:
        parser.error("--overwrite starts a run afresh and --resume continues one: give one of them")
    try:
        base = TrainConfig() if config_file is None else load_config(config_file)[0]
        config = dataclasses.replace(base, **settings)
        if resume is None:  # a resumed run's settings are validated once merged with its saved ones
            config.validate()
            if "heldout_fraction" in settings and config.dataset is None:
                raise ConfigError("--heldout-fraction applies to --dataset folders; the moving-shapes data "
                                  "draws its held-out clips from a separate random stream")
    except ConfigError as error:
        parser.error(str(error))
    if run_name is not None and not _RUN_NAME.match(run_name):
        parser.error(f"--run-name must be letters, digits, '.', '_' or '-' (a folder name); got {run_name!r}")
    if resume not in (None, "latest") and not Path(resume).is_dir():
        parser.error(f"--resume {resume!r} is neither 'latest' nor an existing checkpoint folder")
    return Options(config=config, run_name=run_name, resume=resume, config_file=config_file, given=settings,
                   overwrite=overwrite)

"""The trainer's settings as one typed object, and the ``config.json`` every run writes.

``TrainConfig`` holds what the user chose: one field per ``train/gan.py`` flag, except the
per-invocation ``--run-name``, ``--resume``, ``--overwrite`` and ``--config``. Each field is
declared with :func:`setting`, which gives it everything else that is said about it: its
``--help`` text, what a resumed run may do with it (:data:`RESUME_RULES`), and its range or
choices. ``train/options.py`` builds the flags from these, :meth:`TrainConfig.validate` checks the
ranges and choices, and :func:`settings_for_resume` reads the rules: a new setting is one field here
(plus the code that uses it). ``RunRecord`` holds what a run recorded about itself: its name, what
it resolved or actually used, and its provenance. They are kept apart so that two runs' settings can
be compared key by key. ``config.json`` is::

    {"settings": {<TrainConfig fields>}, "run": {<RunRecord fields>}}

:func:`load_config` reads it back, and also reads a hand-written file (the same layout, or a flat
``{"size": 64, ...}`` dict of settings). A key it does not know is an error; a setting the file
lacks keeps its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from genloss import KINDS, DiffAugment
from genloss.temporal import WARP_MODES
from models.discriminators import TRUNKS
from models.generator import OUTPUTS as G_OUTPUTS
from train.in_training_eval import DETECTOR_PROTOCOLS
from train.data import CLIP_AUGMENTS, CLIP_DRAWS, FRAME_SUFFIXES, HELDOUT_FRACTION, VIDEO_SUFFIXES

__all__ = [
    "PERCEPTUAL_CHOICES",
    "REPORT_TO_CHOICES",
    "RESUME_KINDS",
    "RESUME_RULES",
    "IMAGE_D_INPUTS",
    "VIDEO_D_INPUTS",
    "ConfigError",
    "RunRecord",
    "TrainConfig",
    "check_settings",
    "config_text",
    "flag",
    "flat_config",
    "load_config",
    "r1_on_summed_logits",
    "setting",
    "settings_for_resume",
    "write_config",
]

PERCEPTUAL_CHOICES = ("auto", "lpips-alex", "lpips-vgg", "lpips-squeeze", "none")
REPORT_TO_CHOICES = ("none", "tensorboard", "wandb", "all")
PRECISIONS = ("no", "fp16", "bf16")
REC_LOSSES = ("l1", "charbonnier")
VIDEO_D_INPUTS = ("clip", "clip+diff")
IMAGE_D_INPUTS = ("frame", "frame+context")
# What a resumed run may change (:func:`settings_for_resume`). "model", "data" and "training": the
# run's models, the clips it sees (and in which order) or its optimisation recipe; changing one
# would make a different run under the same name, and the optimisers' saved state (learning rates
# included) would silently win anyway. "free": how long it trains and what it writes where.
RESUME_KINDS = ("model", "data", "training", "free")


class ConfigError(ValueError):
    """A setting with a bad value, a bad combination of settings, or a config file that can't be read."""


def setting(default: object, *, resume: str, help: str, minimum: int | None = None,
            choices: tuple | None = None, default_text: str | None = None) -> typing.Any:
    """A :class:`TrainConfig` field and all that is said about it, kept in its ``metadata``.

    Args:
        default: the value without a flag or a ``--config`` file (immutable: a number, str or None).
        resume: whether a resumed run may change it, one of :data:`RESUME_KINDS`.
        help: its ``--help`` text; the parser appends ``(default: ...)``.
        minimum: :meth:`TrainConfig.validate` requires ``value >= minimum`` (None is allowed where
            the type allows it).
        choices: the values allowed, for the parser and :meth:`TrainConfig.validate`.
        default_text: what ``--help`` shows as the default where the value alone would not say
            it (e.g. None meaning "derived from --max-steps").
    """
    if resume not in RESUME_KINDS:
        raise ValueError(f"`resume` must be one of {', '.join(RESUME_KINDS)}; got {resume!r}")
    if not isinstance(help, str) or not help.strip():
        raise ValueError(f"`help` must be a non-empty str; got {help!r}")
    return field(default=default, metadata={"resume": resume, "help": help, "minimum": minimum, "choices": choices,
                                            "default_text": default_text})


@dataclass
class TrainConfig:
    """Every setting of a training run, in ``--help`` order. The defaults are the CPU reference run."""

    # Run length and data.
    max_steps: int = setting(3000, minimum=1, resume="free",
                             help="optimisation steps to train for (in total, across resumes)")
    batch_size: int = setting(8, minimum=1, resume="data", help="clips per process per micro-batch")
    grad_accum: int = setting(1, minimum=1, resume="data", help="micro-batches accumulated per optimisation step")
    frames: int = setting(6, minimum=1, resume="model", help="clip length T (context + generated frames)")
    context_frames: int = setting(2, resume="model",
                                  help="K context frames given to the generator; 0 = unconditional generation")
    size: int = setting(32, minimum=1, resume="model",
                        help="frame height and width in pixels (a multiple of 8, at least 16)")
    dataset: str | None = setting(None, resume="data", default_text="procedural moving shapes",
                                  help=f"folder of videos ({' '.join(VIDEO_SUFFIXES)}) or of frame folders "
                                  f"({'/'.join(FRAME_SUFFIXES)})")
    num_shapes: int = setting(2, minimum=1, resume="data",
                              help="shapes per clip in the procedural moving-shapes dataset")
    heldout_fraction: float = setting(HELDOUT_FRACTION, resume="data",
                                      help="share of each --dataset video, at its end, held out for evaluation "
                                      "(training clips come from the frames before it)")
    frame_stride: int = setting(1, minimum=1, resume="data",
                                help="keep every k-th frame of each --dataset video, before the split: k times the "
                                "motion between consecutive frames (1 = every frame)")
    shot_cut: float = setting(0.0, resume="data",
                              help="split each --dataset video into shots where the mean absolute change between two "
                              "frames exceeds this share of the pixel range (e.g. 0.15), so that no clip spans an "
                              "edited cut; each shot gets its own held-out end (0 = off)")
    clip_draw: str = setting("video", choices=CLIP_DRAWS, resume="data",
                             help="how a --dataset training clip's video is drawn: video (each video, or shot with "
                             "--shot-cut, as often as any other) or window (every training window equally often: a "
                             "video's share of the clips is its share of the frames)")
    # Outputs and their schedule.
    output_dir: str = setting("runs", resume="free", help="where run folders (config, metrics, checkpoints) go")
    # runs/samples is git-ignored, as runs/ is; the committed gallery is rebuilt by train/gallery.py.
    samples_dir: str = setting("runs/samples", resume="free", help="where sample clips and the gallery index.html go")
    sample_every: int = setting(500, minimum=1, resume="free",
                                help="write sample clips every N steps (and at the end)")
    eval_every: int = setting(250, minimum=1, resume="free",
                              help="evaluate on the held-out clips every N steps (and at the end)")
    checkpoint_every: int = setting(500, minimum=1, resume="free",
                                    help="save a checkpoint every N steps (and at the end)")
    keep_checkpoints: int = setting(3, minimum=1, resume="free", help="keep only the newest N checkpoints")
    log_every: int = setting(25, minimum=1, resume="free",
                             help="append training losses to metrics.jsonl every N steps")
    eval_clips: int = setting(64, minimum=1, resume="data",
                              help="held-out clips per evaluation (split across processes)")
    sample_clips: int = setting(8, minimum=1, resume="free", help="held-out clips shown in each sample grid")
    detect_clips: int = setting(512, minimum=0, resume="free",
                                help="held-out clips scored against their generated continuations by the end-of-run "
                                "detector (genloss.metrics.detectability); 0 = off")
    detect_protocol: str = setting("strong", choices=DETECTOR_PROTOCOLS, resume="free",
                                   help="the end-of-run detector's protocol: strong (a frame judge and a clip judge "
                                   "that keep local detail, logged as detect/frame_* and detect/clip_*; about 3 CPU "
                                   "minutes) or default (the quick global-average judge of earlier runs, logged as "
                                   "eval/detect_*; docs/detector.md)")
    report_to: str = setting("none", choices=REPORT_TO_CHOICES, resume="free",
                             help="also send metrics.jsonl's values to TensorBoard (<run>/tensorboard), Weights & "
                             "Biases, or all of those installed")
    seed: int = setting(0, resume="data", help="seed for data, initialisation, noise and the held-out split")
    cpu_threads: int = setting(1, minimum=0, resume="free",
                               help="torch threads per process when training on CPU; 0 = the machine's cores divided "
                               "among its processes (1 is the safe choice for this small model on 2 cores: 2 threads "
                               "are ~25% faster on an idle machine but OpenMP threads stall whenever another process "
                               "competes for a core)")
    mixed_precision: str = setting("no", choices=PRECISIONS, resume="training",
                                   help="autocast precision (fp16 needs a CUDA GPU)")
    # Models and optimisers.
    g_channels: int = setting(16, minimum=1, resume="model",
                              help="generator width at full resolution (a multiple of 8)")
    g_output: str = setting("residual", choices=G_OUTPUTS, resume="model",
                            help="how the generator makes a continuation frame from the warped last context frame: "
                            "residual (the warp plus a painted correction: the last frame's texture carried by "
                            "construction, and no half-resolution mask to round a warped shape's corners) or blend "
                            "(a mask between the warp and a painted colour image, the default before 2026-12-06)")
    g_flow_prior: bool = setting(False, resume="model",
                                 help="measure the context's motion without weights (genloss.estimate_flow between "
                                 "the last two context frames), feed it to the generator and extrapolate it at constant "
                                 "velocity under the flow head's correction (needs --context-frames 2 or more)")
    g_warp: str = setting("bicubic", choices=WARP_MODES, resume="model",
                          help="how the generator's warp samples the last context frame at sub-pixel positions: "
                          "bicubic (Keys' 4x4 kernel: keeps edges and texture) or bilinear (averages 2x2 pixels: "
                          "every warped frame comes out softer; the default before 2026-12-06's second change)")
    g_output_scale: int = setting(2, choices=(1, 2), resume="model",
                                  help="generator heads (flow, mask, colour) at size / this, bilinearly upsampled; "
                                  "1 = full resolution (sharper, ~40% slower)")
    d_channels: int = setting(16, minimum=1, resume="model",
                              help="discriminators' first-layer width (a multiple of 8)")
    d_image_levels: int = setting(2, choices=(2, 3), resume="model",
                                  help="downsampling levels of the image discriminator: 2 gives a logit per 4x4 "
                                  "patch (each seeing 28 px with the local trunk, 18 px with the strided one), 3 a "
                                  "logit per 8x8 patch (the whole 32x32 frame; 31 px)")
    d_image_trunk: str = setting("local", choices=TRUNKS, resume="model",
                                 help="the image discriminator's layers: local (two 3x3 convs at full resolution, "
                                 "then max pooling per level: compares neighbouring pixels, so it sees pixel-wide "
                                 "artefacts such as rounded corners) or strided (stride-2 4x4 convs, the default "
                                 "before 2026-12-06: it sat near chance and left the frames detectable)")
    z_dim: int = setting(32, minimum=1, resume="model", help="noise vector size")
    spectral_norm: bool = setting(False, resume="model", help="spectral normalisation in both discriminators")
    d_image_input: str = setting("frame", choices=IMAGE_D_INPUTS, resume="model",
                                 help="what the image discriminator sees: the frame, or frame+context (the frame "
                                 "and its clip's last context frame, as 2C channels: a shape that shrank or changed "
                                 "colour since the context shows at full resolution; needs --context-frames 1+)")
    video_d_input: str = setting("clip", choices=VIDEO_D_INPUTS, resume="model",
                                 help="what the video discriminator sees: the clip, or clip+diff (the clip and its "
                                 "frame differences, zero for the first frame, as 2C channels)")
    lr_g: float = setting(1e-3, resume="training", help="generator Adam learning rate")
    lr_d: float = setting(4e-4, resume="training", help="discriminators' Adam learning rate")
    ema_decay: float = setting(0.995, resume="training",
                               help="decay of the generator's EMA used for samples and eval")
    max_grad_norm: float = setting(0.0, minimum=0, resume="training",
                                   help="clip gradient norms to this value (0 = no clipping; non-finite norms are "
                                   "always skipped)")
    nonfinite_patience: int = setting(5, minimum=1, resume="free",
                                      help="stop after this many consecutive non-finite steps")
    # Losses.
    adv_loss: str = setting("hinge", choices=KINDS, resume="training",
                            help="adversarial loss kind for both discriminators")
    adv_weight: float = setting(0.05, minimum=0, resume="training", help="weight of the generator's adversarial term")
    # None: derived from --max-steps and --context-frames (adversarial_warmup).
    adv_start: int | None = setting(None, minimum=0, resume="training",
                                    default_text="max-steps/3 with context, 0 without",
                                    help="warm-up: steps before the adversarial term starts")
    adv_ramp: int | None = setting(None, minimum=0, resume="training",
                                   default_text="max-steps/6 with context, 0 without",
                                   help="steps over which the adversarial weight ramps up")
    adaptive_weight: bool = setting(False, resume="training",
                                    help="scale the adversarial term by VQGAN's adaptive weight (needs the "
                                    "reconstruction and adversarial terms)")
    # 0.1 measured best of the values tried in 3000-step runs at 32x32 (README, "The discriminators' settings").
    r1_gamma: float = setting(0.1, minimum=0, resume="training",
                              help="R1 penalty strength gamma on real samples, per sample as in the R1/R3GAN papers: "
                              "the penalty differentiates each clip's (frame's) mean logit, whatever the logit map's "
                              "size; gamma_sum = gamma / P^2 for P logits per sample (0 = off)")
    r1_interval: int = setting(16, minimum=1, resume="training",
                               help="apply R1 (and R2) lazily every N steps, scaled by N")
    r2_gamma: float = setting(0.0, minimum=0, resume="training",
                              help="R2 penalty strength gamma on generated samples, same units and steps as R1 (R3GAN "
                              "pairs R1 + R2 with --adv-loss relativistic; 0 = off)")
    clip_augment: str = setting("", resume="training", default_text="''",
                                help="augment --dataset training clips (never the held-out ones), comma-separated: "
                                "flip (mirror left-right), reverse (play backwards), speed (every 2nd frame), zoom "
                                "(a random square crop, 1x to 2x magnified, of a copy of the footage decoded at twice "
                                "--size: 4x its memory again), each with probability 1/2 per clip; '' = off")
    augment: str = setting("", resume="training", default_text="''",
                           help="DiffAugment policy applied to real and generated inputs of both discriminators, one "
                           "draw per clip shared by its frames (genloss.augment), e.g. color,translation,cutout; "
                           "'' = off")
    rec_loss: str = setting("l1", choices=REC_LOSSES, resume="training",
                            help="reconstruction loss on the generated frames")
    rec_weight: float = setting(1.0, minimum=0, resume="training", help="weight of the reconstruction term")
    gdl_weight: float = setting(1.0, minimum=0, resume="training", help="weight of the gradient-difference term")
    tdl_weight: float = setting(1.0, minimum=0, resume="training", help="weight of the temporal-difference term")
    smooth_weight: float = setting(0.02, minimum=0, resume="training",
                                   help="weight of the second-order temporal-smoothness term")
    flow_tv_weight: float = setting(0.05, minimum=0, resume="training",
                                    help="weight of the total variation of the generator's flow "
                                    "(genloss.flow_smoothness_loss): a flatter flow moves a warped shape whole, so a "
                                    "square keeps its corners; 0 without context frames (no flow)")
    perceptual: str = setting("auto", choices=PERCEPTUAL_CHOICES, resume="training",
                              help="perceptual term: LPIPS net, or auto (LPIPS alex if ImageNet weights load, else "
                              "discriminator feature matching)")
    perceptual_weights: str | None = setting(None, resume="training", default_text="the torch hub cache",
                                             help="torchvision state dict file of the LPIPS backbone")
    perceptual_weight: float = setting(0.1, minimum=0, resume="training",
                                       help="weight of the perceptual (or feature-matching) term")

    # Derived values: computed here and nowhere else.
    def adversarial_warmup(self) -> tuple[int, int]:
        """``(start, ramp)`` of the adversarial weight: the settings, or by default max-steps/3 and
        max-steps/6 with context frames (the generator first learns to continue the clip) and
        ``(0, 0)`` without (the adversarial term is then the only one that teaches anything)."""
        conditional = self.context_frames > 0
        start = self.adv_start if self.adv_start is not None else (self.max_steps // 3 if conditional else 0)
        ramp = self.adv_ramp if self.adv_ramp is not None else (self.max_steps // 6 if conditional else 0)
        return start, ramp

    def clip_augments(self) -> tuple[str, ...]:
        """``--clip-augment`` as names: ``"flip,reverse"`` -> ``("flip", "reverse")``."""
        return tuple(a.strip() for a in self.clip_augment.split(",") if a.strip())

    def global_batch_size(self, world_size: int) -> int:
        """Clips per optimisation step over all processes."""
        return self.batch_size * self.grad_accum * world_size

    def validate(self, *, environment: bool = True) -> TrainConfig:
        """Raise :class:`ConfigError` for any bad value or combination; return ``self``.

        With ``environment=True`` also check what this machine must provide to train: the dataset
        folder, the perceptual weights file, a CUDA GPU for fp16 and the tracker packages.
        Messages name the command-line flag (``size`` is ``--size``).
        """
        _check_types(self)
        for item in dataclasses.fields(self):  # the range and choices each setting declares
            value, minimum, choices = getattr(self, item.name), item.metadata["minimum"], item.metadata["choices"]
            if minimum is not None:  # `>=` also rejects NaN
                _require(value is None or value >= minimum, item.name, f"must be >= {minimum}", value)
            if choices is not None:
                _require(value in choices, item.name, f"must be one of {', '.join(map(str, choices))}", value)
        _require(self.detect_clips != 1, "detect_clips", "must be 0 (off) or >= 2 (half of the clips train "
                 "the detector, the other half is scored)", self.detect_clips)
        for name in ("lr_g", "lr_d"):
            _require(getattr(self, name) > 0, name, "must be > 0", getattr(self, name))
        _require(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1)", self.ema_decay)
        _require(0 < self.heldout_fraction < 1, "heldout_fraction", "must be in (0, 1)", self.heldout_fraction)
        _require(0 <= self.shot_cut < 1, "shot_cut", "must be in [0, 1) (a share of the pixel range; 0 = off)",
                 self.shot_cut)
        _require(self.shot_cut == 0 or self.dataset is not None, "shot_cut",
                 "applies to --dataset folders (the moving shapes have no cuts)", self.shot_cut)
        _require(self.clip_draw == "video" or self.dataset is not None, "clip_draw",
                 "applies to --dataset folders (the moving shapes have no videos to weigh)", self.clip_draw)
        _require(self.frame_stride == 1 or self.dataset is not None, "frame_stride",
                 "applies to --dataset folders (the moving shapes have no frame rate to subsample)", self.frame_stride)
        _require(not self.clip_augment or self.dataset is not None, "clip_augment",
                 "applies to --dataset folders (the moving shapes draw every motion already)", self.clip_augment)
        unknown = [a for a in self.clip_augments() if a not in CLIP_AUGMENTS]
        _require(not unknown and len(set(self.clip_augments())) == len(self.clip_augments()), "clip_augment",
                 f"must be a comma-separated subset of {', '.join(CLIP_AUGMENTS)} without repeats",
                 self.clip_augment)
        try:
            DiffAugment(self.augment)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"--augment {self.augment!r}: {error}") from None
        _require(self.frames >= 3, "frames", "must be >= 3 (the temporal terms compare consecutive frame pairs)",
                 self.frames)
        if not 0 <= self.context_frames < self.frames:
            raise ConfigError(f"--context-frames must be in [0, --frames); got {self.context_frames} "
                              f"with --frames {self.frames}")
        if self.g_flow_prior and self.context_frames < 2:
            raise ConfigError(f"--g-flow-prior measures the motion between the last two context frames: it needs "
                              f"--context-frames 2 or more; got {self.context_frames}")
        if self.d_image_input == "frame+context" and self.context_frames < 1:
            raise ConfigError("--d-image-input frame+context shows each frame next to its clip's last context "
                              "frame: it needs --context-frames 1 or more; got 0")
        _require(self.size >= 16 and self.size % 8 == 0, "size",
                 "must be a multiple of 8 and at least 16 (the models halve it 3 times)", self.size)
        for name in ("g_channels", "d_channels"):
            _require(getattr(self, name) % 8 == 0, name, "must be a multiple of 8 (group norm)", getattr(self, name))
        if self.perceptual_weights is not None and self.perceptual == "none":
            raise ConfigError("--perceptual-weights was given but --perceptual is 'none'")
        self._check_adaptive_weight()
        if environment:
            self._check_environment()
        return self

    def _check_adaptive_weight(self) -> None:
        """The adaptive weight is ``|grad rec| / |grad adv|`` at the generator's last layer: it needs
        both terms in the loss. Asking for it where it can't apply is an error, not a no-op."""
        if not self.adaptive_weight:
            return
        why = None
        if self.context_frames == 0:
            why = "an unconditional run (--context-frames 0) has no reconstruction term"
        elif self.rec_weight == 0:
            why = "--rec-weight is 0, so there is no reconstruction term"
        elif self.adv_weight == 0:
            why = "--adv-weight is 0, so there is no adversarial term to scale"
        if why is not None:
            raise ConfigError(f"--adaptive-weight can't apply: it balances the adversarial term against the "
                              f"reconstruction term, but {why}. Drop --adaptive-weight or enable both terms.")

    def _check_environment(self) -> None:
        if self.dataset is not None and not Path(self.dataset).is_dir():
            raise ConfigError(f"--dataset {self.dataset!r} is not an existing folder")
        if self.perceptual_weights is not None and not Path(self.perceptual_weights).is_file():
            raise ConfigError(f"--perceptual-weights {self.perceptual_weights!r} is not an existing file")
        if self.mixed_precision == "fp16":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("--mixed-precision fp16 needs a CUDA GPU; use bf16 on CPU")
        for tracker in self.trackers():
            if tracker == "tensorboard" and not (_installed("tensorboard") or _installed("tensorboardX")):
                raise ConfigError("--report-to tensorboard needs the tensorboard package: pip install tensorboard")
            if tracker == "wandb" and not _installed("wandb"):
                raise ConfigError("--report-to wandb needs the wandb package: pip install wandb")

    def trackers(self) -> list[str]:
        """The trackers ``report_to`` asks for; ``all`` is those of tensorboard and wandb installed."""
        if self.report_to == "none":
            return []
        if self.report_to != "all":
            return [self.report_to]
        found = [name for name, module in (("tensorboard", "tensorboard"), ("wandb", "wandb")) if _installed(module)]
        if not found:
            raise ConfigError("--report-to all: neither tensorboard nor wandb is installed")
        return found

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, *, source: str = "config") -> TrainConfig:
        """Settings from a dict; unknown keys are a :class:`ConfigError`, missing ones keep their default."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in values if key not in names]
        if unknown:
            hints = [f"{key!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(key, names, 1))
                     else repr(key) for key in unknown]
            raise ConfigError(f"{source}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(hints)}. "
                              f"Known settings are the train/gan.py flags with '_' for '-': {', '.join(names)}")
        config = cls(**{key: _coerce(cls, key, value) for key, value in values.items()})
        _check_types(config, source)
        return config


def check_settings(cls: type) -> None:
    """Raise :class:`TypeError` naming each field of the settings dataclass ``cls`` that was not
    declared with :func:`setting`: without its help text and resume rule it would have no flag and
    no answer to "may a resume change it?". Run on :class:`TrainConfig` at import."""
    bare = [item.name for item in dataclasses.fields(cls) if "resume" not in item.metadata]
    if bare:
        raise TypeError(f"{cls.__name__}: declare {', '.join(bare)} with setting(default, resume=..., help=...) "
                        "(a flag, a help text and a resume rule)")


check_settings(TrainConfig)


@dataclass
class RunRecord:
    """What a run recorded about itself, next to its settings: read by people, never used as input."""

    run_name: str
    resumed_from: str | None  # the checkpoint this invocation resumed from
    perceptual: str  # the perceptual term actually used: lpips-<net>, feature-matching or none
    perceptual_note: str  # why, as printed at start-up
    adv_start: int  # the adversarial warm-up, resolved (TrainConfig.adversarial_warmup)
    adv_ramp: int
    world_size: int  # processes in the job
    global_batch_size: int  # clips per optimisation step over all processes
    device: str  # e.g. "cpu" or "cuda:0 (NVIDIA H200)"
    started: str  # ISO 8601 local time with its UTC offset
    command: dict = field(default_factory=dict)  # {"line": the exact command, "argv": the script's argv, "cwd"}
    git: dict | None = None  # {"commit", "dirty"}; None outside a git checkout
    versions: dict = field(default_factory=dict)  # python, torch, torchvision, accelerate, genloss
    trackers: list = field(default_factory=list)  # the trackers fed, e.g. ["tensorboard"]
    # Settings changed on a resume (only those RESUME_RULES allows), oldest first:
    # [{"step", "setting", "saved", "given"}], carried over from resume to resume.
    changes: list = field(default_factory=list)
    # "trained every step from step 0", or why they are not (no term of the run reads them)
    discriminators: str = "trained every step from step 0"


def config_text(config: TrainConfig, record: RunRecord) -> str:
    """The text of ``config.json``: also saved inside each checkpoint, which then names its settings."""
    return json.dumps({"settings": config.to_dict(), "run": dataclasses.asdict(record)}, indent=2) + "\n"


def write_config(path: str | Path, config: TrainConfig, record: RunRecord) -> None:
    Path(path).write_text(config_text(config, record))


def _resume_rules(cls: type) -> dict[str, str]:
    """``{setting: rule}`` of a settings dataclass, from each field's ``resume`` (:data:`RESUME_KINDS`)."""
    return {item.name: item.metadata["resume"] for item in dataclasses.fields(cls)}


# Every setting's rule, for readers: derived from the fields (setting(resume=...)), never edited here.
RESUME_RULES: dict[str, str] = _resume_rules(TrainConfig)


def settings_for_resume(saved: TrainConfig, given: dict) -> tuple[TrainConfig, list[tuple[str, object, object]], list[str]]:
    """The settings of a resumed run: the run's saved ones, with the ``given`` settings (those typed
    on the command line) applied where their ``resume`` rule (:data:`RESUME_KINDS`) allows.

    Returns ``(config, changes, notes)``: ``changes`` lists ``(setting, saved, given)`` for each
    allowed change, ``notes`` what else was decided. Raises :class:`ConfigError` listing every
    given setting that differs from the saved one and may not change (saved -> given).

    With a new ``--max-steps``, a warm-up left to its default (derived from ``--max-steps``) keeps
    the values the run started with, so the adversarial term does not switch off or jump mid-run.
    """
    rules = _resume_rules(type(saved))
    differs = {name: (getattr(saved, name), value) for name, value in given.items() if getattr(saved, name) != value}
    fixed = {name: pair for name, pair in differs.items() if rules[name] != "free"}
    if fixed:
        lines = "\n".join(f"  {flag(name)}: {old!r} -> {new!r}  ({rules[name]})"
                          for name, (old, new) in fixed.items())
        hint = ""
        if "dataset" in fixed or "perceptual_weights" in fixed:
            hint = " If the files only moved, put a link to them at the old path."
        raise ConfigError(
            f"{len(fixed)} setting{'s' if len(fixed) > 1 else ''} differ{'' if len(fixed) > 1 else 's'} "
            f"from the run's (saved -> given) and would change its models, data or training:\n{lines}\n"
            f"Drop {'them' if len(fixed) > 1 else 'it'} to resume with the run's settings, or train them as a new "
            f"run under another --run-name.{hint}")
    config, notes = dataclasses.replace(saved, **given), []
    if "max_steps" in differs:
        start, ramp = saved.adversarial_warmup()
        if (saved.adv_start, saved.adv_ramp) != (start, ramp):
            config = dataclasses.replace(config, adv_start=start, adv_ramp=ramp)
            notes.append(f"--max-steps {saved.max_steps} -> {config.max_steps}: the adversarial warm-up keeps the "
                         f"run's start {start} and ramp {ramp} (its defaults were derived from --max-steps)")
    return config, [(name, old, new) for name, (old, new) in differs.items()], notes


def flag(name: str) -> str:
    """The command-line flag of a setting: ``--max-steps`` for ``max_steps``."""
    return "--" + name.replace("_", "-")


def flat_config(config: TrainConfig, record: RunRecord) -> dict:
    """The settings and the run's main recorded values in one flat dict: what the gallery page
    shows and its ``run.json`` keeps (``perceptual`` is the term used, ``perceptual_requested`` the
    ``--perceptual`` choice)."""
    return {**config.to_dict(), "adv_start": record.adv_start, "adv_ramp": record.adv_ramp,
            "run_name": record.run_name, "perceptual": record.perceptual, "perceptual_requested": config.perceptual,
            "world_size": record.world_size, "global_batch_size": record.global_batch_size, "device": record.device,
            "resume": record.resumed_from, "created": record.started}


# Model settings whose default changed after runs were saved without them: such a run trained with
# the value here, so its config.json lacking the key means this value, not today's default (which
# would rebuild another architecture than its checkpoints hold). Hand-written files get today's.
BEFORE_THE_SETTING = {"d_image_levels": 3, "d_image_trunk": "strided", "g_output": "blend", "flow_tv_weight": 0.0,
                      "g_warp": "bilinear"}


def load_config(path: str | Path) -> tuple[TrainConfig, dict]:
    """The settings of a ``config.json`` (or hand-written JSON file) and what its run recorded.

    Returns ``(config, run)``: ``run`` is the file's ``"run"`` section as a dict (empty for a
    hand-written file). The config is not validated: call ``config.validate()``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"can't read the config file {str(path)!r}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of settings; got {type(data).__name__}")
    if "settings" in data:
        extra = sorted(set(data) - {"settings", "run"})
        if extra:
            raise ConfigError(f"{path}: unknown top-level key(s) {extra}; expected 'settings' and 'run'")
        settings, run = {**BEFORE_THE_SETTING, **dict(data["settings"])}, dict(data.get("run") or {})
    else:  # hand-written: settings only
        settings, run = dict(data), {}
    return TrainConfig.from_dict(settings, source=str(path)), run


def r1_on_summed_logits(config: TrainConfig, run: dict) -> bool:
    """Whether a ``config.json`` comes from a trainer that applied R1 to the *summed* patch logits,
    with ``config.r1_gamma`` > 0: its γ then weighed a penalty about P² times stronger than the
    same γ does today (see the README, "R1 units"). Such files have a ``run`` section without
    ``discriminators``, which was added in the same change as per-sample R1; hand-written files
    (no ``run``) are read in today's units."""
    return bool(run) and "discriminators" not in run and config.r1_gamma > 0


def _require(ok: bool, name: str, what: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"{flag(name)} {what}; got {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _coerce(cls: type, name: str, value: object) -> object:
    """JSON has one number type: accept an integral value for a float setting, e.g. ``"adv_weight": 1``."""
    if _hints(cls)[name] is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_types(config: TrainConfig, source: str = "settings") -> None:
    for name, hint in _hints(type(config)).items():
        value = getattr(config, name)
        allowed = typing.get_args(hint) or (hint,)  # `int | None` -> (int, NoneType)
        ok = any(isinstance(value, t) for t in allowed)
        if isinstance(value, bool) and bool not in allowed:
            ok = False  # True is an int to Python, not to a config file
        if not ok:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise ConfigError(f"{source}: {name!r} must be {names}; got {value!r} ({type(value).__name__})")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None

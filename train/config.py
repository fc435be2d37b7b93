"""The trainer's settings as one typed object, and the ``config.json`` every run writes.

``TrainConfig`` holds what the user chose: one field per ``train/gan.py`` flag, except the
per-invocation ``--run-name``, ``--resume`` and ``--config``. ``RunRecord`` holds what a run
recorded about itself: its name, what it resolved or actually used, and its provenance. They are
kept apart so that two runs' settings can be compared key by key. ``config.json`` is::

    {"settings": {<TrainConfig fields>}, "run": {<RunRecord fields>}}

:func:`load_config` reads it back, and also reads a hand-written file (the same layout, or a flat
``{"size": 64, ...}`` dict of settings) and the flat files of older versions (see
``LEGACY_KEYS``). A key it does not know is an error; a setting the file lacks keeps its default.
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
from train.data import HELDOUT_FRACTION

__all__ = [
    "LEGACY_KEYS",
    "PERCEPTUAL_CHOICES",
    "REPORT_TO_CHOICES",
    "RESUME_RULES",
    "VIDEO_D_INPUTS",
    "ConfigError",
    "RunRecord",
    "TrainConfig",
    "config_text",
    "flat_config",
    "load_config",
    "r1_on_summed_logits",
    "settings_for_resume",
    "write_config",
]

PERCEPTUAL_CHOICES = ("auto", "lpips-alex", "lpips-vgg", "lpips-squeeze", "none")
REPORT_TO_CHOICES = ("none", "tensorboard", "wandb", "all")
PRECISIONS = ("no", "fp16", "bf16")
REC_LOSSES = ("l1", "charbonnier")
VIDEO_D_INPUTS = ("clip", "clip+diff")


class ConfigError(ValueError):
    """A setting with a bad value, a bad combination of settings, or a config file that can't be read."""


@dataclass
class TrainConfig:
    """Every setting of a training run. The defaults are the CPU reference run."""

    # Run length and data.
    max_steps: int = 3000  # optimisation steps in total, across resumes
    batch_size: int = 8  # clips per process per micro-batch
    grad_accum: int = 1  # micro-batches accumulated per optimisation step
    frames: int = 6  # clip length T (context + generated frames)
    context_frames: int = 2  # K context frames given to the generator; 0 = unconditional
    size: int = 32  # frame height = width in pixels; a multiple of 8, at least 16
    dataset: str | None = None  # folder of videos or frame folders; None = procedural moving shapes
    heldout_fraction: float = HELDOUT_FRACTION  # share of each --dataset video, at its end, held out for eval
    frame_stride: int = 1  # keep every k-th frame of --dataset videos (k times the motion per frame); 1 = all
    shot_cut: float = 0.0  # split --dataset videos into shots where a frame changes by more than this share of the pixel range; 0 = off
    num_shapes: int = 2  # shapes per clip in the moving-shapes dataset
    # Outputs and their schedule.
    output_dir: str = "runs"  # where run folders (config, metrics, checkpoints) go
    samples_dir: str = "runs/samples"  # sample clips and the gallery page (git-ignored, as runs/; see train/gallery.py)
    sample_every: int = 500  # sample clips every N steps (and at the end)
    eval_every: int = 250  # held-out evaluation every N steps (and at the end)
    checkpoint_every: int = 500  # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept
    log_every: int = 25  # training losses to metrics.jsonl every N steps
    eval_clips: int = 64  # held-out clips per evaluation, split across processes
    sample_clips: int = 8  # held-out clips in each sample grid
    detect_clips: int = 512  # held-out clips (and as many generated) for the end-of-run detector score; 0 = off
    seed: int = 0  # data, initialisation, noise and the held-out split
    cpu_threads: int = 1  # torch threads per process on CPU; 0 = the cores divided among processes
    mixed_precision: str = "no"  # autocast precision: no, fp16 (CUDA only) or bf16
    # Models and optimisers.
    g_channels: int = 16  # generator width at full resolution (a multiple of 8)
    g_output_scale: int = 2  # generator heads at size / this (1 or 2), upsampled bilinearly
    d_channels: int = 16  # discriminators' first-layer width (a multiple of 8)
    z_dim: int = 32  # noise vector size
    spectral_norm: bool = False  # spectral normalisation in both discriminators
    lr_g: float = 1e-3  # generator Adam learning rate
    lr_d: float = 4e-4  # discriminators' Adam learning rate
    ema_decay: float = 0.995  # decay of the generator EMA used for samples and eval
    max_grad_norm: float = 0.0  # gradient-norm clipping; 0 = none
    nonfinite_patience: int = 5  # stop after this many non-finite steps in a row
    # Losses.
    adv_loss: str = "hinge"  # adversarial loss kind for both discriminators (genloss.KINDS)
    adv_weight: float = 0.05  # weight of the generator's adversarial term
    adv_start: int | None = None  # steps before the adversarial term starts; None = see adversarial_warmup()
    adv_ramp: int | None = None  # steps over which its weight ramps up; None = see adversarial_warmup()
    adaptive_weight: bool = False  # scale the adversarial term by VQGAN's adaptive weight
    # R1 strength gamma, per sample (on each clip's/frame's mean logit); 0 = off. 0.1 measured best
    # of the values tried in 3000-step runs at 32x32 (README, "The discriminators' settings").
    r1_gamma: float = 0.1
    r1_interval: int = 16  # R1 (and R2) every N steps, scaled by N (lazy regularisation)
    r2_gamma: float = 0.0  # R2 strength on generated samples, same units and steps as R1; 0 = off
    augment: str = ""  # DiffAugment policy before both discriminators, e.g. "color,translation,cutout"; "" = off
    video_d_input: str = "clip"  # what the video discriminator sees: clip, or clip+diff (its frame differences too)
    rec_loss: str = "l1"  # reconstruction loss: l1 or charbonnier
    rec_weight: float = 1.0  # weight of the reconstruction term
    gdl_weight: float = 1.0  # weight of the gradient-difference term
    tdl_weight: float = 1.0  # weight of the temporal-difference term
    smooth_weight: float = 0.02  # weight of the second-order temporal-smoothness term
    perceptual: str = "auto"  # LPIPS net, none, or auto (LPIPS-alex if weights load, else feature matching)
    perceptual_weights: str | None = None  # torchvision state dict of the LPIPS backbone; None = hub cache
    perceptual_weight: float = 0.1  # weight of the perceptual (or feature-matching) term
    report_to: str = "none"  # trackers fed with metrics.jsonl's values: none, tensorboard, wandb or all

    # Derived values: computed here and nowhere else.
    def adversarial_warmup(self) -> tuple[int, int]:
        """``(start, ramp)`` of the adversarial weight: the settings, or by default max-steps/3 and
        max-steps/6 with context frames (the generator first learns to continue the clip) and
        ``(0, 0)`` without (the adversarial term is then the only one that teaches anything)."""
        conditional = self.context_frames > 0
        start = self.adv_start if self.adv_start is not None else (self.max_steps // 3 if conditional else 0)
        ramp = self.adv_ramp if self.adv_ramp is not None else (self.max_steps // 6 if conditional else 0)
        return start, ramp

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
        positive = ("max_steps", "batch_size", "grad_accum", "frames", "size", "num_shapes", "sample_every",
                    "eval_every", "checkpoint_every", "keep_checkpoints", "log_every", "eval_clips",
                    "sample_clips", "g_channels", "d_channels", "z_dim", "r1_interval", "nonfinite_patience",
                    "frame_stride")
        for name in positive:
            _require(getattr(self, name) >= 1, name, "must be >= 1", getattr(self, name))
        non_negative = ("adv_weight", "r1_gamma", "r2_gamma", "rec_weight", "gdl_weight", "tdl_weight", "smooth_weight",
                        "perceptual_weight", "max_grad_norm", "cpu_threads", "adv_start", "adv_ramp", "detect_clips")
        for name in non_negative:
            value = getattr(self, name)
            _require(value is None or value >= 0, name, "must be >= 0", value)  # `>=` also rejects NaN
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
        _require(self.frame_stride == 1 or self.dataset is not None, "frame_stride",
                 "applies to --dataset folders (the moving shapes have no frame rate to subsample)", self.frame_stride)
        for name, choices in (("adv_loss", KINDS), ("rec_loss", REC_LOSSES), ("perceptual", PERCEPTUAL_CHOICES),
                              ("mixed_precision", PRECISIONS), ("report_to", REPORT_TO_CHOICES),
                              ("video_d_input", VIDEO_D_INPUTS)):
            _require(getattr(self, name) in choices, name, f"must be one of {', '.join(choices)}", getattr(self, name))
        _require(self.g_output_scale in (1, 2), "g_output_scale", "must be 1 or 2", self.g_output_scale)
        try:
            DiffAugment(self.augment)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"--augment {self.augment!r}: {error}") from None
        _require(self.frames >= 3, "frames", "must be >= 3 (the temporal terms compare consecutive frame pairs)",
                 self.frames)
        if not 0 <= self.context_frames < self.frames:
            raise ConfigError(f"--context-frames must be in [0, --frames); got {self.context_frames} "
                              f"with --frames {self.frames}")
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
        config = cls(**{key: _coerce(key, value) for key, value in values.items()})
        _check_types(config, source)
        return config


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


# How the flat config.json files written before the "settings"/"run" split load. Every other key
# of those files is a setting under its own name.
LEGACY_KEYS = {
    "perceptual_requested": "settings.perceptual (the --perceptual choice)",
    "perceptual": "run.perceptual (the term actually used)",
    "run_name": "run.run_name",
    "resume": "run.resumed_from",
    "world_size": "run.world_size",
    "device": "run.device",
    "global_batch_size": "run.global_batch_size",
}
# Settings renamed since then (old key -> new key), and retired ones (ignored on load). None yet.
RENAMED_SETTINGS: dict[str, str] = {}
RETIRED_SETTINGS: frozenset[str] = frozenset()


def config_text(config: TrainConfig, record: RunRecord) -> str:
    """The text of ``config.json``: also saved inside each checkpoint, which then names its settings."""
    return json.dumps({"settings": config.to_dict(), "run": dataclasses.asdict(record)}, indent=2) + "\n"


def write_config(path: str | Path, config: TrainConfig, record: RunRecord) -> None:
    Path(path).write_text(config_text(config, record))


# What a resumed run may change (``settings_for_resume``). Every setting is listed, so adding one
# means deciding (tests/test_run_safety.py fails otherwise). "model", "data" and "training": the
# run's models, the clips it sees (and in which order) or its optimisation recipe; changing one
# would make a different run under the same name, and the optimisers' saved state (learning rates
# included) would silently win anyway. "free": how long it trains and what it writes where.
RESUME_RULES: dict[str, str] = {
    **dict.fromkeys(("frames", "context_frames", "size", "g_channels", "g_output_scale", "d_channels", "z_dim",
                     "spectral_norm", "video_d_input"), "model"),
    **dict.fromkeys(("batch_size", "grad_accum", "dataset", "heldout_fraction", "frame_stride", "shot_cut", "num_shapes", "seed",
                     "eval_clips"), "data"),
    **dict.fromkeys(("mixed_precision", "lr_g", "lr_d", "ema_decay", "max_grad_norm", "adv_loss", "adv_weight",
                     "adv_start", "adv_ramp", "adaptive_weight", "r1_gamma", "r1_interval", "r2_gamma", "augment", "rec_loss", "rec_weight",
                     "gdl_weight", "tdl_weight", "smooth_weight", "perceptual", "perceptual_weights",
                     "perceptual_weight"), "training"),
    **dict.fromkeys(("max_steps", "output_dir", "samples_dir", "sample_every", "eval_every", "checkpoint_every",
                     "keep_checkpoints", "log_every", "sample_clips", "detect_clips", "cpu_threads",
                     "nonfinite_patience", "report_to"), "free"),
}


def settings_for_resume(saved: TrainConfig, given: dict) -> tuple[TrainConfig, list[tuple[str, object, object]], list[str]]:
    """The settings of a resumed run: the run's saved ones, with the ``given`` settings (those typed
    on the command line) applied where :data:`RESUME_RULES` allows.

    Returns ``(config, changes, notes)``: ``changes`` lists ``(setting, saved, given)`` for each
    allowed change, ``notes`` what else was decided. Raises :class:`ConfigError` listing every
    given setting that differs from the saved one and may not change (saved -> given).

    With a new ``--max-steps``, a warm-up left to its default (derived from ``--max-steps``) keeps
    the values the run started with, so the adversarial term does not switch off or jump mid-run.
    """
    differs = {name: (getattr(saved, name), value) for name, value in given.items() if getattr(saved, name) != value}
    fixed = {name: pair for name, pair in differs.items() if RESUME_RULES[name] != "free"}
    if fixed:
        lines = "\n".join(f"  {_flag(name)}: {old!r} -> {new!r}  ({RESUME_RULES[name]})"
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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def flat_config(config: TrainConfig, record: RunRecord) -> dict:
    """The settings and the run's main recorded values in one flat dict, keyed as ``config.json``
    was before the split: what the gallery page shows."""
    return {**config.to_dict(), "adv_start": record.adv_start, "adv_ramp": record.adv_ramp,
            "run_name": record.run_name, "perceptual": record.perceptual, "perceptual_requested": config.perceptual,
            "world_size": record.world_size, "global_batch_size": record.global_batch_size, "device": record.device,
            "resume": record.resumed_from, "created": record.started}


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
        settings, run = dict(data["settings"]), dict(data.get("run") or {})
    elif "perceptual_requested" in data:  # a flat file from before the split: see LEGACY_KEYS
        settings, run = dict(data), {}
        settings["perceptual"] = settings.pop("perceptual_requested")
        run["perceptual"] = data["perceptual"]
        for old in ("run_name", "resume", "world_size", "device", "global_batch_size"):
            if old in settings:
                run["resumed_from" if old == "resume" else old] = settings.pop(old)
    else:  # hand-written: settings only
        settings, run = dict(data), {}
    for old, new in RENAMED_SETTINGS.items():
        if old in settings:
            settings.setdefault(new, settings.pop(old))
    for old in RETIRED_SETTINGS:
        settings.pop(old, None)
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
        raise ConfigError(f"{_flag(name)} {what}; got {value!r}")


@functools.cache
def _hints() -> dict[str, object]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: object) -> object:
    """JSON has one number type: accept an integral value for a float setting, e.g. ``"adv_weight": 1``."""
    if _hints()[name] is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_types(config: TrainConfig, source: str = "settings") -> None:
    for name, hint in _hints().items():
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

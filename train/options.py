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

from train.config import ConfigError, TrainConfig, flag, load_config

__all__ = ["Options", "build_parser", "parse_args"]

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# The flags' groups in --help, in TrainConfig's field order: a group starts at the setting named
# here and runs to the next one's start; the settings before the first are in the "run" group.
_GROUP_STARTS = {"g_channels": "model and optimiser", "adv_loss": "losses"}
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
    group, hints = r, typing.get_type_hints(TrainConfig)
    for item in dataclasses.fields(TrainConfig):  # one flag per setting, all it says from its setting(...)
        if item.name in _GROUP_STARTS:
            group = p.add_argument_group(_GROUP_STARTS[item.name])
        group.add_argument(flag(item.name), help=setting_help(item).replace("%", "%%"),
                           **_typed(hints[item.name], item.metadata["choices"]))
    return p


def setting_help(item: dataclasses.Field) -> str:
    """The ``--help`` text of a :class:`TrainConfig` field: its ``help``, then its default."""
    shown = item.metadata["default_text"] if item.metadata["default_text"] is not None else item.default
    return f"{item.metadata['help']} (default: {shown})"


def _typed(hint: object, choices: tuple | None) -> dict:
    """``add_argument``'s type, action and choices for a setting of type ``hint`` (``int | None`` is an int)."""
    kind = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
    kwargs = {} if choices is None else {"choices": choices}
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction  # --x / --no-x, to override a --config file
    elif kind is not str:
        kwargs["type"] = kind
    return kwargs


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse and validate; any bad value or combination exits through ``argparse`` with a message."""
    parser = build_parser()
    given = vars(parser.parse_args(argv))  # only the flags typed (SUPPRESS defaults)
    config_file = given.pop("config", None)
    run_name, resume, overwrite = given.get("run_name"), given.get("resume"), given.get("overwrite", False)
    names = {item.name for item in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in given.items() if k in names}
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

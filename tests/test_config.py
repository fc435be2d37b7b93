"""The trainer's run config: ``TrainConfig``, ``config.json``, ``--config`` merging, provenance and
trackers. The launched-run tests read the session's shared tiny run (``conftest.tiny_run``)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from train.config import (
    LEGACY_KEYS,
    ConfigError,
    RunRecord,
    TrainConfig,
    flat_config,
    load_config,
    r1_on_summed_logits,
    write_config,
)
from train.options import build_parser, parse_args
from train.run import SettingsError, plan_run
from trainer_utils import ROOT, launch_command, read_config, read_metrics

# config.json as every version before the "settings"/"run" split wrote it: the committed
# reference run's (samples/20261129-011407-continue2-6x32/run.json).
OLD_FLAT_CONFIG = {
    "max_steps": 3000, "batch_size": 8, "grad_accum": 1, "frames": 6, "context_frames": 2, "size": 32,
    "dataset": None, "num_shapes": 2, "output_dir": "runs", "run_name": "20261129-011407-continue2-6x32",
    "samples_dir": "samples", "sample_every": 500, "eval_every": 250, "checkpoint_every": 500,
    "keep_checkpoints": 3, "log_every": 25, "eval_clips": 64, "sample_clips": 8, "resume": None, "seed": 0,
    "cpu_threads": 1, "mixed_precision": "no", "g_channels": 16, "g_output_scale": 2, "d_channels": 16,
    "z_dim": 32, "spectral_norm": False, "lr_g": 0.001, "lr_d": 0.0004, "ema_decay": 0.995,
    "max_grad_norm": 0.0, "nonfinite_patience": 5, "adv_loss": "hinge", "adv_weight": 0.05, "adv_start": 1000,
    "adv_ramp": 500, "adaptive_weight": False, "r1_gamma": 1.0, "r1_interval": 16, "rec_loss": "l1",
    "rec_weight": 1.0, "gdl_weight": 1.0, "tdl_weight": 1.0, "smooth_weight": 0.02,
    "perceptual": "feature-matching", "perceptual_weights": None, "perceptual_weight": 0.1,
    "perceptual_requested": "auto", "world_size": 1, "device": "cpu", "global_batch_size": 8,
}


def _record(**changes) -> RunRecord:
    values = dict(run_name="r", resumed_from=None, perceptual="feature-matching", perceptual_note="note",
                  adv_start=1, adv_ramp=2, world_size=1, global_batch_size=8, device="cpu",
                  started="2026-11-29T08:00:00+00:00", command={"line": "x", "argv": ["x"], "cwd": "/"},
                  git=None, versions={"torch": "2"}, trackers=[])
    return RunRecord(**{**values, **changes})


class TestTrainConfig:
    def test_json_round_trip(self, tmp_path):
        config = TrainConfig(size=64, dataset="clips", adv_start=5, spectral_norm=True, lr_g=2e-4,
                             report_to="tensorboard", perceptual="none")
        record = _record(git={"commit": "abc", "dirty": True})
        write_config(tmp_path / "config.json", config, record)
        data = json.loads((tmp_path / "config.json").read_text())
        assert set(data) == {"settings", "run"}
        loaded, run = load_config(tmp_path / "config.json")
        assert loaded == config
        assert run == dataclasses.asdict(record)
        assert TrainConfig.from_dict(config.to_dict()) == config

    def test_every_setting_is_a_flag_with_the_same_default(self):
        flags = {a.dest for a in build_parser()._actions if a.option_strings and a.dest != "help"}
        settings = {f.name for f in dataclasses.fields(TrainConfig)}
        assert flags - settings == {"config", "run_name", "resume", "overwrite"}  # per invocation, not settings
        assert settings <= flags
        assert parse_args([]).config == TrainConfig()

    def test_unknown_key_is_a_clear_error(self, tmp_path):
        with pytest.raises(ConfigError, match=r"unknown setting 'sise' \(did you mean 'size'\?\)"):
            TrainConfig.from_dict({"sise": 32})
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"settings": {"size": 16, "learning_rate": 1.0}}))
        with pytest.raises(ConfigError, match=f"{path}: unknown setting 'learning_rate'"):
            load_config(path)
        path.write_text(json.dumps({"settings": {}, "extra": 1}))
        with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) \['extra'\]"):
            load_config(path)

    def test_wrong_type_is_a_clear_error(self):
        with pytest.raises(ConfigError, match=r"'size' must be int; got '32' \(str\)"):
            TrainConfig.from_dict({"size": "32"})
        with pytest.raises(ConfigError, match=r"'spectral_norm' must be bool; got 1 \(int\)"):
            TrainConfig.from_dict({"spectral_norm": 1})
        with pytest.raises(ConfigError, match=r"'max_steps' must be int; got True \(bool\)"):
            TrainConfig.from_dict({"max_steps": True})
        assert TrainConfig.from_dict({"adv_weight": 1}).adv_weight == 1.0  # JSON's integral float
        assert isinstance(TrainConfig.from_dict({"adv_weight": 1}).adv_weight, float)

    def test_old_flat_config_loads(self, tmp_path):
        path = tmp_path / "config.json"
        path.write_text(json.dumps(OLD_FLAT_CONFIG))
        config, run = load_config(path)
        settings = {k: v for k, v in OLD_FLAT_CONFIG.items() if k not in LEGACY_KEYS}
        assert config == TrainConfig(**settings, perceptual="auto")  # report_to, new since: its default
        assert config.report_to == "none"
        assert run == {"perceptual": "feature-matching", "run_name": "20261129-011407-continue2-6x32",
                       "resumed_from": None, "world_size": 1, "device": "cpu", "global_batch_size": 8}
        # The table documents every key that is not a setting.
        assert set(OLD_FLAT_CONFIG) - {f.name for f in dataclasses.fields(TrainConfig)} <= set(LEGACY_KEYS)
        # The gallery's flat view of a new run is the old layout again.
        record = _record(run_name=run["run_name"], perceptual="feature-matching", adv_start=1000, adv_ramp=500,
                         started="t")
        flat = flat_config(dataclasses.replace(config, adv_start=None, adv_ramp=None), record)
        assert {k: flat[k] for k in OLD_FLAT_CONFIG} == OLD_FLAT_CONFIG

    def test_derived_values(self):
        assert TrainConfig(max_steps=3000).adversarial_warmup() == (1000, 500)
        assert TrainConfig(max_steps=3000, context_frames=0).adversarial_warmup() == (0, 0)
        assert TrainConfig(max_steps=3000, adv_start=7).adversarial_warmup() == (7, 500)
        assert TrainConfig(batch_size=8, grad_accum=2).global_batch_size(world_size=4) == 64


class TestConfigFlag:
    def test_file_then_flags_typed_on_the_command_line(self, tmp_path):
        path = tmp_path / "mine.json"  # hand-written: a flat dict of settings
        path.write_text(json.dumps({"size": 16, "max_steps": 7, "spectral_norm": True, "adv_weight": 0.5}))
        options = parse_args(["--config", str(path), "--max-steps", "3000", "--no-spectral-norm", "--seed", "3",
                              "--run-name", "x"])
        # A flag equal to its default still overrides the file: it was typed.
        assert options.config == TrainConfig(size=16, max_steps=3000, spectral_norm=False, adv_weight=0.5, seed=3)
        assert options.config_file == str(path) and options.run_name == "x"

    def test_a_runs_config_json_with_new_max_steps_repeats_its_settings(self, tiny_run):
        tmp, _, _ = tiny_run
        path = tmp / "runs" / "tiny" / "config.json"
        saved, _ = load_config(path)
        options = parse_args(["--config", str(path), "--max-steps", "5"])
        assert options.config == dataclasses.replace(saved, max_steps=5)
        assert options.config.size == 16 and options.config.report_to == "tensorboard"

    @pytest.mark.parametrize("content,message", [
        (None, "can't read the config file"),
        ('{"size": 20}', "--size must be a multiple of 8"),
        ('{"adv_loss": "vanilla"}', "--adv-loss must be one of hinge, non_saturating"),
        ("[1, 2]", "expected a JSON object of settings"),
    ])
    def test_bad_file_is_an_argparse_error(self, tmp_path, capsys, content, message):
        path = tmp_path / "c.json"
        if content is not None:
            path.write_text(content)
        with pytest.raises(SystemExit) as exit_info:
            parse_args(["--config", str(path)])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("flags,why", [
    (["--rec-weight", "0"], "--rec-weight is 0, so there is no reconstruction term"),
    (["--context-frames", "0"], "an unconditional run (--context-frames 0) has no reconstruction term"),
    (["--adv-weight", "0"], "--adv-weight is 0, so there is no adversarial term to scale"),
])
def test_adaptive_weight_that_cannot_apply_is_a_startup_error(flags, why, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--adaptive-weight", *flags])
    assert f"--adaptive-weight can't apply: it balances the adversarial term against the reconstruction " \
           f"term, but {why}." in capsys.readouterr().err
    assert parse_args(["--adaptive-weight"]).config.adaptive_weight  # where it applies, it is accepted


def test_adaptive_weight_error_from_the_real_script(tmp_path):
    result = subprocess.run([sys.executable, "train/gan.py", "--adaptive-weight", "--rec-weight", "0",
                             "--output-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("gan.py: error: --adaptive-weight can't apply")
    assert not any(tmp_path.iterdir())  # refused before any work


def test_trackers_are_checked_at_startup(capsys, monkeypatch):
    import train.config

    installed = {"tensorboard": True, "wandb": False}
    monkeypatch.setattr(train.config, "_installed", lambda module: installed.get(module, False))
    with pytest.raises(SystemExit):
        parse_args(["--report-to", "wandb"])
    assert "--report-to wandb needs the wandb package: pip install wandb" in capsys.readouterr().err
    assert TrainConfig(report_to="all").trackers() == ["tensorboard"]  # all = those installed
    assert TrainConfig().trackers() == []
    installed["tensorboard"] = False
    with pytest.raises(ConfigError, match="neither tensorboard nor wandb is installed"):
        TrainConfig(report_to="all").trackers()


class TestProvenance:
    def test_recorded_in_config_json(self, tiny_run):
        import accelerate
        import torch
        import torchvision

        import genloss

        tmp, _, flags = tiny_run
        _, run = read_config(tmp / "runs" / "tiny")
        assert set(run) >= {"command", "git", "versions", "device", "started"}
        command = launch_command(tmp, *flags)
        assert shlex.split(run["command"]["line"]) == command  # the accelerate launch line itself
        assert run["command"]["argv"] == command[command.index("train/gan.py"):]
        assert run["command"]["cwd"] == str(ROOT)
        assert run["versions"] == {"python": platform.python_version(), "torch": torch.__version__,
                                   "torchvision": torchvision.__version__, "accelerate": accelerate.__version__,
                                   "genloss": genloss.__version__}
        assert run["versions"]["genloss"] == importlib.metadata.version("genloss")
        assert run["device"] == "cpu" and run["trackers"] == ["tensorboard"]
        started = datetime.fromisoformat(run["started"])
        assert started.tzinfo is not None and timedelta(0) <= datetime.now().astimezone() - started < timedelta(hours=1)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        if head.returncode != 0:
            assert run["git"] is None
        else:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True).stdout
            assert run["git"] == {"commit": head.stdout.strip(), "dirty": bool(status.strip())}

    def test_git_is_null_outside_a_checkout(self, tmp_path):
        from train.run import git_state

        assert git_state(tmp_path) is None


def test_tensorboard_scalars_equal_metrics_jsonl(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tmp, _, _ = tiny_run
    run_dir = tmp / "runs" / "tiny"
    events = EventAccumulator(str(run_dir / "tensorboard" / "genloss"), size_guidance={"scalars": 0}).Reload()
    logged = {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}
    expected = {(name, r["step"]): np.float32(value) for r in read_metrics(run_dir)
                for name, value in r.items() if name != "step" and isinstance(value, (int, float))
                and not isinstance(value, bool)}
    assert {key for key in expected if key[0].startswith("eval/")} and {("g/total", 3), ("d/r1", 1)} <= set(expected)
    assert logged == expected  # same tags, steps and values (float32, TensorBoard's precision)


def test_sample_script_reads_an_old_config(tiny_run, tmp_path, monkeypatch):
    # A run folder whose config.json predates the settings/run split still samples, and the
    # clips it writes are those of the same run with a new config.json.
    import torch

    import train.clips
    from train import sample

    written, write_clips = [], train.clips.write_clips
    monkeypatch.setattr(train.clips, "write_clips", lambda *a, **k: written.append(a[1:]) or write_clips(*a, **k))
    tmp, _, _ = tiny_run
    run_dir = tmp_path / "old-run"
    shutil.copytree(tmp / "runs" / "tiny", run_dir)
    config, run = load_config(run_dir / "config.json")
    flat = flat_config(config, RunRecord(**run))
    del flat["created"], flat["report_to"]  # keys the old files did not have
    (run_dir / "config.json").write_text(json.dumps(flat))
    paths = sample.main(sample.parse_args(["--checkpoint", str(run_dir), "--num", "2", "--out", str(tmp_path / "o")]))
    assert paths["gif"].is_file()
    sample.main(sample.parse_args(["--checkpoint", str(tmp / "runs" / "tiny"), "--num", "2",
                                   "--out", str(tmp_path / "new")]))
    old, new = written
    assert old[0] == new[0] == 3  # the newest checkpoint of the run folder
    for a, b in zip(old[1:], new[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_real_video_config_loads_and_validates():
    """train/configs/real-video.json, as the README runs it: known keys only, valid values.

    The footage itself (``data/real``) is fetched by hand and not in a clean clone, so the folder
    check is left out here; that check has its own test."""
    config, run = load_config(Path(__file__).resolve().parents[1] / "train" / "configs" / "real-video.json")
    config.validate(environment=False)
    assert run == {}
    assert (config.dataset, config.size, config.shot_cut, config.max_steps) == ("data/real", 64, 0.15, 3000)


def _run_folder_from_before_per_sample_r1(root: Path, r1_gamma: float) -> Path:
    """A run folder as the trainer wrote it before R1 moved to per-sample logits: its record has no
    ``discriminators`` entry (added in that change) and it holds one checkpoint."""
    record = dataclasses.asdict(RunRecord(run_name="old", resumed_from=None, perceptual="none", perceptual_note="",
                                          adv_start=0, adv_ramp=1, world_size=1, global_batch_size=8, device="cpu",
                                          started="2026-11-28T10:00:00+00:00"))
    del record["discriminators"]
    settings = dataclasses.replace(TrainConfig(), r1_gamma=r1_gamma, output_dir=str(root)).to_dict()
    (root / "old" / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (root / "old" / "config.json").write_text(json.dumps({"settings": settings, "run": record}))
    return root / "old" / "config.json"


def test_config_from_before_per_sample_r1_is_not_resumed_in_other_units(tmp_path):
    """Its γ weighed the summed patch logits, ~P² times less than γ per sample: resuming it would
    change R1 a thousandfold mid-run, so it is refused; a new run from it says what changed."""
    old = _run_folder_from_before_per_sample_r1(tmp_path, 1.0)
    config, run = load_config(old)
    assert r1_on_summed_logits(config, run)
    assert not r1_on_summed_logits(config, {**run, "discriminators": "trained every step from step 0"})
    assert not r1_on_summed_logits(config, {})  # hand-written: today's units
    assert not r1_on_summed_logits(dataclasses.replace(config, r1_gamma=0.0), run)  # no R1, nothing changes
    with pytest.raises(SettingsError, match=r"summed patch logits \(--r1-gamma 1.0\).*--config .*old/config.json"):
        plan_run(parse_args(["--output-dir", str(tmp_path), "--run-name", "old", "--resume", "latest"]))
    plan = plan_run(parse_args(["--config", str(old), "--output-dir", str(tmp_path / "new")]))
    assert plan.config.r1_gamma == 1.0 and plan.checkpoint is None
    assert len(plan.notes) == 1 and "applied per sample here" in plan.notes[0]
    fresh = plan_run(parse_args(["--output-dir", str(tmp_path / "new")]))
    assert fresh.notes == []


def test_config_from_before_per_sample_r1_without_r1_resumes(tmp_path):
    _run_folder_from_before_per_sample_r1(tmp_path, 0.0)
    plan = plan_run(parse_args(["--output-dir", str(tmp_path), "--run-name", "old", "--resume", "latest"]))
    assert plan.checkpoint == tmp_path / "old" / "checkpoints" / "checkpoint-10" and plan.config.r1_gamma == 0.0

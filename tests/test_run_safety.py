"""Runs that can't be lost or mixed up: run identity, resume checks, stop signals, write failures.

End to end, the real ``train/gan.py`` is launched (directly, or under ``accelerate launch`` where
the launcher matters) with the tiny settings; the unit tests at the end check the pieces
in-process. Interrupted runs are resumed with the exact command they print and must end with
bit-for-bit the weights of an uninterrupted run (``reference``, the same 12 steps in one go).

Timing: an interrupting test waits for the step-1 record in ``metrics.jsonl`` and then stops the
trainer (SIGSTOP) before doing anything else, so the run can't finish in the meantime however
loaded the machine is; the signal it then sends is handled when the trainer continues.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import accelerate.commands.launch as accelerate_launch
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from trainer_utils import ACCELERATE, ROOT, TINY, StubAccelerator, read_config, read_metrics

from train.config import RESUME_RULES, ConfigError, TrainConfig, settings_for_resume
from train.safety import Interrupted, RunError, RunLock, Stopped, StopSignals, check_writable

# 12 steps, no eval, samples or checkpoints before the last step: a checkpoint at any other step
# can only come from a stop.
STEPS = 12
FLAGS = [*TINY, "--max-steps", str(STEPS), "--eval-every", "100", "--sample-every", "100",
         "--checkpoint-every", "100", "--detect-clips", "0", "--adv-start", "0", "--r1-interval", "2"]
LAUNCHER = [*ACCELERATE, "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no"]
FAIL_WRITES = Path(__file__).parent / "failing_writes"  # its sitecustomize.py injects write failures
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def command(tmp: Path, run_name: str, *flags: str, launcher: list[str] | None = None) -> list[str]:
    """``train/gan.py`` with :data:`FLAGS`, writing under ``tmp`` (directly, or after ``launcher``)."""
    return [*(launcher or [sys.executable]), "train/gan.py", *FLAGS, "--output-dir", str(tmp / "runs"),
            "--samples-dir", str(tmp / "samples"), "--run-name", run_name, *flags]


def run(cmd: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env or ENV, capture_output=True, text=True, timeout=timeout)


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C's signals back to their defaults. A job started in the
    background by a non-interactive shell (``bash script &``, as a CI script may start pytest)
    inherits SIGINT and SIGQUIT ignored, and Python then leaves SIGINT ignored instead of raising
    KeyboardInterrupt: the launcher would never see the SIGINT these tests send it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class Started:
    """A trainer started in its own session, its output going to files (no pipe to fill up), with
    the default handling of SIGINT whatever this process inherited (:func:`_default_sigint`)."""

    def __init__(self, cmd: list[str], tmp: Path, env: dict | None = None) -> None:
        self.out, self.err = tmp / f"out-{time.monotonic_ns()}.txt", tmp / f"err-{time.monotonic_ns()}.txt"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env or ENV, stdout=out, stderr=err,
                                         start_new_session=True, preexec_fn=_default_sigint)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout)

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    @property
    def stdout(self) -> str:
        return self.out.read_text()

    def wait_for_step(self, run_dir: Path, step: int = 1, timeout: float = 180) -> None:
        """Until ``metrics.jsonl`` holds a record of ``step`` or later (the loop is running)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if any(json.loads(line)["step"] >= step for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                       if line.endswith("}")):
                    return
            except FileNotFoundError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"trainer exited {self.proc.returncode} early:\n{self.stderr[-3000:]}")
            time.sleep(0.01)
        raise AssertionError(f"no step {step} within {timeout} s:\n{self.stderr[-3000:]}")


def trainer_pid(run_dir: Path) -> int:
    return json.loads((run_dir / "trainer.lock").read_text())["pid"]


def in_session(sid: int) -> list[int]:
    """The processes of session ``sid`` still running (zombies are gone already for this purpose)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields[0] is the state, [3] the session
            pids.append(int(stat.parent.name))
    return pids


def interrupted_at(stderr: str) -> tuple[int, list[str]]:
    """The step and the resume command of the trainer's line ``interrupted at step N; resume with: ...``
    (its last line, but for a launcher's report after it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted at step ")]
    assert len(lines) == 1, stderr[-3000:]
    head, _, cmd = lines[0].partition("; resume with: ")
    return int(head.removeprefix("interrupted at step ")), shlex.split(cmd)


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Every model's weights and the EMA generator's in a checkpoint folder."""
    out = {f"ema.{k}": v for k, v in torch.load(checkpoint / "ema_generator.pt").items()}
    for path in sorted(checkpoint.glob("model*.safetensors")):
        out.update({f"{path.stem}.{k}": v for k, v in load_file(path).items()})
    return out


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 30
    for name, value in wa.items():
        assert torch.equal(wb[name], value), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The 12 steps in one go: its final checkpoint."""
    tmp = tmp_path_factory.mktemp("reference")
    result = run(command(tmp, "ref"))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "runs" / "ref" / "checkpoints" / f"checkpoint-{STEPS}"


# ----------------------------------------------------------------------------------------------
# Run identity


def test_a_used_run_name_is_refused_and_overwrite_replaces_the_run(tiny_run, tmp_path):
    tiny, _, _ = tiny_run
    for folder in ("runs", "samples"):
        shutil.copytree(tiny / folder / "tiny", tmp_path / folder / "tiny")
    run_dir = tmp_path / "runs" / "tiny"
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    refused = run(command(tmp_path, "tiny", "--max-steps", "1"))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: run folder {run_dir} already holds an earlier run (2 checkpoint folder(s), the newest "
        "checkpoint-3 and metrics.jsonl). Continue it with --run-name tiny --resume latest, start a new run "
        "under another --run-name, or replace it with --overwrite")
    assert "Traceback" not in refused.stderr
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing touched, no lock left behind

    replaced = run(command(tmp_path, "tiny", "--max-steps", "1", "--sample-every", "1", "--overwrite"))
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert "--overwrite: deleted the earlier run's" in replaced.stdout
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-1"]
    assert [r["step"] for r in read_metrics(run_dir) if "g/total" in r] == [1]
    assert sorted(p.name for p in (tmp_path / "samples" / "tiny").glob("step-*")) == [
        "step-000001.gif", "step-000001.mp4"]
    assert not (run_dir / "tensorboard").exists()  # the earlier run's tracker logs went too
    assert not (run_dir / "trainer.lock").exists()


def test_a_resume_that_changes_the_models_lists_each_difference(tiny_run, tmp_path):
    tiny, _, _ = tiny_run
    shutil.copytree(tiny / "runs" / "tiny", tmp_path / "runs" / "tiny")
    run_dir = tmp_path / "runs" / "tiny"
    config = (run_dir / "config.json").read_text()
    # Without --run-name: --resume latest says which run it picked and why, then refuses it.
    result = run([sys.executable, "train/gan.py", "--output-dir", str(tmp_path / "runs"), "--resume", "latest",
                  "--size", "32", "--g-channels", "16", "--max-steps", "5"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-4].startswith("error: resuming run tiny (--resume latest: picked run tiny, whose checkpoint-3 "
                                "(saved ") and "is the newest checkpoint of the 1 run(s) in" in lines[-4]
    assert lines[-4].endswith("2 settings differ from the run's (saved -> given) and would change its models, "
                              "data or training:")
    assert lines[-3:-1] == ["  --size: 16 -> 32  (model)", "  --g-channels: 8 -> 16  (model)"]
    assert lines[-1].startswith("Drop them to resume with the run's settings")
    assert "size mismatch" not in result.stderr and "Traceback" not in result.stderr
    assert (run_dir / "config.json").read_text() == config
    assert not (run_dir / "trainer.lock").exists()


# ----------------------------------------------------------------------------------------------
# Signals


# What the installed `accelerate launch` does with its single-process child (checked, not assumed):
# from accelerate 1.16 on it pipes the child's stderr through itself and, on SIGTERM or SIGINT,
# sends the child SIGTERM and SIGKILLs it 5 s later; before, it forwarded nothing and left stderr
# alone. Either way the trainer's tie (PR_SET_PDEATHSIG) covers a launcher killed outright.
_LAUNCH_SOURCE = inspect.getsource(accelerate_launch)
LAUNCHER_FORWARDS = "_terminate_process_tree" in _LAUNCH_SOURCE
LAUNCHER_PIPES_STDERR = "stderr=subprocess.PIPE" in _LAUNCH_SOURCE


def launcher_exit(signum: int) -> int:
    """The launcher's return code after ``signum``, as the installed accelerate handles it."""
    if signum == signal.SIGKILL or not LAUNCHER_FORWARDS:
        return -signum  # killed by it
    return 128 + signum


def wait_for_no_process(session: int, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while in_session(session) and time.monotonic() < end:
        time.sleep(0.05)
    assert in_session(session) == []  # the trainer followed its launcher (and left no child)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signalled_launcher_leaves_the_step_saved_a_message_and_no_process(signum, reference, tmp_path):
    """Whatever the launcher gets, the trainer saves the step it is on and says where. Under
    SIGKILL (nothing forwarded, stderr's pipe closed) the message is in the run folder's
    ``after-launcher.log``. SIGTERM also checks that a second trainer on the running run is
    refused, and that the printed resume command gives the uninterrupted run's weights."""
    name = signum.name.lower()
    run_dir = tmp_path / "runs" / name
    first = Started(command(tmp_path, name, launcher=LAUNCHER), tmp_path)
    first.wait_for_step(run_dir)
    pid = trainer_pid(run_dir)
    os.kill(pid, signal.SIGSTOP)  # hold it mid-run: it can't finish meanwhile, however slow the rest is
    try:
        if signum == signal.SIGTERM:
            second = run(command(tmp_path, name))
            assert second.returncode == 1
            assert second.stderr.strip().splitlines()[-1].startswith(
                f"error: run folder {run_dir} is in use by another trainer (pid {pid} on {os.uname().nodename}, "
                "started ")
    finally:
        os.kill(pid, signal.SIGCONT)
    os.kill(first.proc.pid, signum)  # the launcher only
    assert first.wait(120) == launcher_exit(signum)
    wait_for_no_process(first.proc.pid)

    log = run_dir / "after-launcher.log"
    lost_pipe = signum == signal.SIGKILL and LAUNCHER_PIPES_STDERR
    if lost_pipe:
        assert "stderr lost its reader" in log.read_text()
        step, resume = interrupted_at(log.read_text())
        assert "interrupted at step" not in first.stderr
    else:
        step, resume = interrupted_at(first.stderr)
        assert not log.exists()
    assert "Traceback" not in first.stderr + (log.read_text() if log.exists() else "")
    assert "BrokenPipeError" not in first.stderr + (log.read_text() if log.exists() else "")
    assert 1 <= step < STEPS
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [f"checkpoint-{step}"]
    assert not (run_dir / "trainer.lock").exists()
    assert resume == [*LAUNCHER, *command(tmp_path, name)[1:-2], "--run-name", name, "--resume", "latest"]
    if signum == signal.SIGTERM:
        result = run(resume)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"resumed from {run_dir / 'checkpoints' / f'checkpoint-{step}'} at step {step}" in result.stdout
        assert_same_weights(reference, run_dir / "checkpoints" / f"checkpoint-{STEPS}")


def test_ctrl_c_saves_the_step_exits_130_and_resumes_exactly(reference, tmp_path):
    run_dir = tmp_path / "runs" / "b"
    trainer = Started(command(tmp_path, "b"), tmp_path)
    trainer.wait_for_step(run_dir)
    os.killpg(trainer.proc.pid, signal.SIGSTOP)
    os.killpg(trainer.proc.pid, signal.SIGINT)  # what a terminal sends its foreground process group
    os.killpg(trainer.proc.pid, signal.SIGCONT)
    assert trainer.wait() == 130
    assert trainer.stderr.strip().splitlines()[-1].startswith("interrupted at step ")
    assert "SIGINT received: finishing this step, then saving a checkpoint (Ctrl-C again to exit at once" \
        in trainer.stderr
    step, resume = interrupted_at(trainer.stderr)
    assert f"step {step}: saved {run_dir / 'checkpoints' / f'checkpoint-{step}'}" in trainer.stdout
    assert 1 <= step < STEPS and (run_dir / "checkpoints" / f"checkpoint-{step}").is_dir()
    result = run(resume)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(reference, run_dir / "checkpoints" / f"checkpoint-{STEPS}")
    assert [r["step"] for r in read_metrics(run_dir) if "g/total" in r] == list(range(1, STEPS + 1))


def test_ddp_ranks_stop_at_the_same_step_when_one_is_signalled(tmp_path):
    run_dir = tmp_path / "runs" / "ddp"
    launcher = [*ACCELERATE, "--multi_gpu", *LAUNCHER[len(ACCELERATE):]]
    launcher[launcher.index("--num_processes") + 1] = "2"
    job = Started(command(tmp_path, "ddp", launcher=launcher), tmp_path)
    job.wait_for_step(run_dir)
    workers = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == job.proc.pid:  # children of the launcher
                env = (stat.parent / "environ").read_bytes().split(b"\0")
                workers[int(next(e for e in env if e.startswith(b"RANK=")).split(b"=")[1])] = int(stat.parent.name)
        except (OSError, StopIteration, IndexError):
            continue
    assert sorted(workers) == [0, 1]
    os.kill(workers[1], signal.SIGTERM)  # one rank only: the other learns it through the collective
    job.wait(120)
    for pid in workers.values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    step, _ = interrupted_at(job.stderr)  # from rank 0 only
    # Both ranks exited as asked, none was killed or aborted (before train/gan.py destroyed the
    # process group on every way out, the signalled rank died of SIGABRT about once in 50 runs):
    # on failure, show what the ranks printed last.
    printed = [line for line in job.stderr.splitlines() if not line.startswith("train:") and line.strip()]
    assert job.stderr.count("exitcode  : 143") == 2, "\n".join(printed[-80:])
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{step}"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [checkpoint.name]
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    assert torch.load(checkpoint / "custom_checkpoint_1.pkl", weights_only=False)["step"] == step


# ----------------------------------------------------------------------------------------------
# Write failures


def test_a_read_only_samples_folder_is_an_error_at_start_up(tmp_path):
    """Under ``accelerate launch -q``: the message is the last line, with no traceback."""
    data = tmp_path / "data"
    data.mkdir()
    iio.imwrite(data / "clip.gif", np.zeros((8, 16, 16, 3), np.uint8), duration=100)
    env = {**ENV, "PYTHONPATH": str(FAIL_WRITES), "GENLOSS_FAIL_WRITES": f"EROFS:{tmp_path / 'samples'}"}
    result = run(command(tmp_path, "ro", "--dataset", str(data), launcher=[*LAUNCHER, "-q"]), env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --samples-dir {str(tmp_path / 'samples')!r} is not writable: Read-only file system")
    assert "Traceback" not in result.stderr
    assert "dataset" not in result.stdout + result.stderr.replace(str(data), "")  # no scan
    assert not (tmp_path / "runs" / "ro" / "config.json").exists()


def test_a_full_disk_loses_no_step(reference, tmp_path):
    """The run's disk fills up mid-run: the metrics write fails, and so would the run's checkpoint
    folders; the checkpoint goes to $TMPDIR and the printed command resumes from it."""
    run_dir, spare, full = tmp_path / "runs" / "full", tmp_path / "spare", tmp_path / "disk-is-full"
    spare.mkdir()
    env = {**ENV, "PYTHONPATH": str(FAIL_WRITES), "GENLOSS_FAIL_WRITES": f"ENOSPC:{tmp_path / 'runs'}:{full}",
           "TMPDIR": str(spare)}
    trainer = Started(command(tmp_path, "full"), tmp_path, env=env)
    trainer.wait_for_step(run_dir)
    os.killpg(trainer.proc.pid, signal.SIGSTOP)
    full.touch()
    os.killpg(trainer.proc.pid, signal.SIGCONT)
    assert trainer.wait() == 1
    last = trainer.stderr.strip().splitlines()[-1]
    head, _, resume = last.partition("; once that is fixed, resume with: ")
    assert head.startswith(f"error: writing {run_dir / 'metrics.jsonl'} failed (No space left on device) at step ")
    step = int(head.split(" at step ")[1].split(".")[0])
    rescue = spare / "genloss-rescue" / "full" / f"checkpoint-{step}"
    assert head.endswith(f"The {step} steps trained so far are saved in {rescue}")
    assert "warning: couldn't save checkpoint-" in trainer.stdout  # the run's own folders were tried first
    assert not list(run_dir.glob("*/.tmp-checkpoint-*")) and not (run_dir / "trainer.lock").exists()
    full.unlink()  # space freed
    result = run(shlex.split(resume))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(reference, run_dir / "checkpoints" / f"checkpoint-{STEPS}")
    logged = [r["step"] for r in read_metrics(run_dir) if "g/total" in r]
    assert logged == [s for s in range(1, STEPS + 1) if s != step]  # the record whose write failed


def test_a_gallery_page_that_cant_be_written_is_a_warning(tmp_path):
    env = {**ENV, "PYTHONPATH": str(FAIL_WRITES),
           "GENLOSS_FAIL_WRITES": f"ENOSPC:{tmp_path / 'samples' / 'index.html'}"}
    result = run(command(tmp_path, "g", "--max-steps", "2", "--sample-every", "1"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stdout.splitlines() if "couldn't update the gallery page" in line]
    assert len(warnings) == 2 and warnings[0].endswith("No space left on device: "
                                                       f"'{tmp_path / 'samples' / 'index.html'}'); training continues")
    assert (tmp_path / "samples" / "g" / "step-000002.gif").is_file()
    assert (tmp_path / "runs" / "g" / "checkpoints" / "checkpoint-2").is_dir()


# ----------------------------------------------------------------------------------------------
# The pieces


def test_every_setting_has_a_resume_rule():
    assert set(RESUME_RULES) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(RESUME_RULES.values()) == {"model", "data", "training", "free"}
    assert RESUME_RULES["heldout_fraction"] == "data" and RESUME_RULES["max_steps"] == "free"


def test_settings_for_resume():
    saved = TrainConfig(max_steps=300, size=32)
    config, changes, notes = settings_for_resume(saved, {"max_steps": 600, "eval_every": 50, "size": 32})
    assert config == dataclasses.replace(saved, max_steps=600, eval_every=50, adv_start=100, adv_ramp=50)
    assert changes == [("max_steps", 300, 600), ("eval_every", 250, 50)]
    assert notes == ["--max-steps 300 -> 600: the adversarial warm-up keeps the run's start 100 and ramp 50 "
                     "(its defaults were derived from --max-steps)"]
    with pytest.raises(ConfigError, match=r"1 setting differs .*\n  --lr-g: 0\.001 -> 0\.002  \(training\)\n"):
        settings_for_resume(saved, {"lr_g": 2e-3, "max_steps": 600})
    with pytest.raises(ConfigError, match="put a link to them at the old path"):
        settings_for_resume(saved, {"dataset": "elsewhere"})


def test_the_record_of_a_resume_keeps_the_changes_of_earlier_resumes(tmp_path):
    from train.run import RunPlan, new_record

    earlier = [{"step": 4, "setting": "max_steps", "saved": 4, "given": 8}]
    plan = RunPlan(TrainConfig(max_steps=12), "r", tmp_path / "checkpoint-8", True, {"changes": earlier},
                   [("max_steps", 8, 12)])
    record = new_record(StubAccelerator(), plan, "none", "off")
    assert record.changes == [*earlier, {"step": 8, "setting": "max_steps", "saved": 8, "given": 12}]
    assert record.resumed_from == str(tmp_path / "checkpoint-8")


def test_parse_args_rules():
    from train.options import parse_args

    options = parse_args(["--resume", "latest", "--max-steps", "9", "--size", "64"])
    assert options.given == {"max_steps": 9, "size": 64} and options.resume == "latest"
    for argv in (["--resume", "latest", "--overwrite"], ["--resume", "latest", "--config", "x.json"],
                 ["--heldout-fraction", "0.3"], ["--run", "x"],
                 # a run name is one folder inside --output-dir: not "..", not hidden, no "/"
                 ["--run-name", ".."], ["--run-name", ".x"], ["--run-name", "a/b"], ["--run-name", "-x"]):
        with pytest.raises(SystemExit) as info:
            parse_args(argv)
        assert info.value.code == 2
    assert parse_args(["--run-name", "a1.b_c-2"]).run_name == "a1.b_c-2"


class TestRunLock:
    def test_one_owner_and_release(self, tmp_path):
        first, second = RunLock(tmp_path), RunLock(tmp_path)
        assert first.acquire("cmd") is None
        owner = json.loads((tmp_path / "trainer.lock").read_text())
        assert owner["pid"] == os.getpid() and owner["command"] == "cmd"
        with pytest.raises(RunError, match=f"is in use by another trainer \\(pid {os.getpid()} on "):
            second.acquire()  # flock: held, even by another handle in the same process
        first.release()
        first.release()
        assert not (tmp_path / "trainer.lock").exists()
        assert second.acquire() is None
        second.release()

    def test_release_leaves_a_lock_file_that_is_no_longer_its_own(self, tmp_path):
        first, second = RunLock(tmp_path), RunLock(tmp_path)
        first.acquire()
        (tmp_path / "trainer.lock").unlink()  # deleted by hand (the hint of a foreign lock), then re-taken
        assert second.acquire() is None
        first.release()
        assert json.loads((tmp_path / "trainer.lock").read_text())["pid"] == os.getpid()  # second's, untouched
        second.release()
        assert not (tmp_path / "trainer.lock").exists()

    def test_a_dead_owners_lock_is_taken_over(self, tmp_path):
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (tmp_path / "trainer.lock").write_text(json.dumps(
            {"pid": dead.pid, "host": os.uname().nodename, "started": "then"}))
        lock = RunLock(tmp_path)
        warning = lock.acquire()
        assert warning == (f"warning: took over {tmp_path / 'trainer.lock'}, left by a trainer that is no longer "
                           f"running (pid {dead.pid} on {os.uname().nodename}, started then)")
        lock.release()

    def test_a_live_owner_without_flock_or_elsewhere_keeps_it(self, tmp_path):
        import train.safety as safety

        path = tmp_path / "trainer.lock"
        # This process's parent is alive (a pid reused by another process would start at another time).
        parent = {"pid": os.getppid(), "host": os.uname().nodename, "process_start": safety._process_start(os.getppid())}
        path.write_text(json.dumps(parent))
        with pytest.raises(RunError, match="in use by another trainer"):
            RunLock(tmp_path).acquire()
        path.write_text(json.dumps({**parent, "process_start": parent["process_start"] + 1}))  # reused pid
        lock = RunLock(tmp_path)
        assert lock.acquire().startswith("warning: took over")
        lock.release()
        path.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))  # another machine, recent heartbeat
        with pytest.raises(RunError, match="If no trainer runs on elsewhere any more, delete"):
            RunLock(tmp_path).acquire()
        old = time.time() - safety.FOREIGN_STALE_S - 1
        os.utime(path, (old, old))
        lock = RunLock(tmp_path)
        assert lock.acquire().startswith("warning: took over")
        lock.release()

    def test_a_lock_naming_this_very_process_is_taken_over(self, tmp_path):
        # Left unreleased (no flock held) by a trainer whose pid this process now has, e.g. in a
        # restarted container: alive and started when we did, but it is not another trainer.
        from train import safety

        me = {"pid": os.getpid(), "host": os.uname().nodename, "boot_id": safety._boot_id(),
              "process_start": safety._process_start(os.getpid())}
        (tmp_path / "trainer.lock").write_text(json.dumps(me))
        lock = RunLock(tmp_path)
        assert lock.acquire().startswith("warning: took over")
        lock.release()


class TestStopSignals:
    def test_start_up_signal_stops_at_once(self):
        with StopSignals(notice=False), pytest.raises(Interrupted) as info:
            os.kill(os.getpid(), signal.SIGTERM)
        assert info.value.exit_code == 143 and "during start-up" in str(info.value)

    def test_first_signal_asks_then_ctrl_c_again_exits(self):
        # Python's default handler, or SIG_IGN where the suite was started in the background
        before = signal.getsignal(signal.SIGINT)
        with StopSignals(notice=False) as signals:
            signals.arm()
            os.kill(os.getpid(), signal.SIGINT)
            assert signals.received == signal.SIGINT
            os.kill(os.getpid(), signal.SIGTERM)  # the launcher's death signal after a Ctrl-C: ignored
            assert signals.received == signal.SIGINT
            with pytest.raises(Interrupted) as info:
                os.kill(os.getpid(), signal.SIGINT)
        assert info.value.exit_code == 130
        assert signal.getsignal(signal.SIGINT) is before  # handlers put back

    def test_sigusr1_and_after_the_final_checkpoint(self):
        with StopSignals(notice=False) as signals:
            signals.arm()
            os.kill(os.getpid(), signal.SIGUSR1)
            assert signals.received == signal.SIGUSR1
            signals.finish()
            with pytest.raises(Interrupted) as info:
                os.kill(os.getpid(), signal.SIGUSR1)
        assert info.value.exit_code == 138 and "after the final checkpoint" in str(info.value)


def test_resume_command():
    from train.run import resume_command

    # Per-invocation flags with a separate value, with `=` and without one, each followed by a flag that stays.
    argv = ["train/gan.py", "--run-name", "old", "--size", "32", "--resume=x", "--max-steps", "9", "--overwrite",
            "--config", "c.json", "--seed", "3"]
    launch = ["python", "-m", "accelerate.commands.launch", "--num_processes", "1"]
    cmd = resume_command({"line": shlex.join([*launch, *argv]), "argv": argv}, "old")
    assert shlex.split(cmd) == [*launch, "train/gan.py", "--size", "32", "--max-steps", "9", "--seed", "3",
                                "--run-name", "old", "--resume", "latest"]
    cmd = resume_command({"line": shlex.join(["py", *argv]), "argv": argv}, "r", Path("/tmp/a b/checkpoint-3"))
    assert shlex.split(cmd)[-4:] == ["--run-name", "r", "--resume", "/tmp/a b/checkpoint-3"]


def test_check_writable(tmp_path):
    check_writable({"--output-dir": tmp_path / "new" / "run"})
    assert (tmp_path / "new" / "run").is_dir() and not any((tmp_path / "new" / "run").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match=f"--output-dir '{tmp_path}/file/run' can't be created: {tmp_path}/file is a "
                                       "file, not a folder"):
        check_writable({"--output-dir": tmp_path / "file" / "run"})


class _Saving:
    """What ``save_checkpoint`` uses of an Accelerator; ``save_state`` fails under ``broken``."""

    is_main_process, num_processes = True, 1

    def __init__(self, broken: Path) -> None:
        self.broken = broken

    def save_state(self, folder: str) -> None:
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        if Path(folder).parent == self.broken:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")


def test_a_failed_save_leaves_nothing_and_the_next_place_is_used(tmp_path):
    from train.state import EMA, save_checkpoint_somewhere

    places = [tmp_path / "checkpoints", tmp_path / "rescue"]
    ema = EMA(torch.nn.Linear(2, 2))
    path, failures = save_checkpoint_somewhere(_Saving(places[0]), places, 7, ema, 3, {"config.json": "{}"})
    assert path == places[1] / "checkpoint-7" and (path / "ema_generator.pt").is_file()
    assert (path / "config.json").read_text() == "{}"
    assert failures == [f"{places[0]}: RuntimeError: PytorchStreamWriter failed writing file data/0: file write failed"]
    assert list(places[0].iterdir()) == []  # the half-written staging folder is gone


def test_a_stop_after_an_earlier_checkpoint_saves_its_own_step(tmp_path):
    from train.run import Checkpoints
    from train.state import EMA

    said = []
    checkpoints = Checkpoints(_Saving(tmp_path / "nowhere"), tmp_path / "runs" / "r", "r", 3, {"config.json": "{}"},
                              {"line": "python train/gan.py", "argv": ["train/gan.py"]}, said.append)
    ema = EMA(torch.nn.Linear(2, 2))
    checkpoints.save(4, ema)
    with pytest.raises(Stopped) as info:
        checkpoints.stop(6, ema, signum=signal.SIGTERM)  # steps 5 and 6 exist nowhere else
    folder = tmp_path / "runs" / "r" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    assert info.value.exit_code == 143
    assert str(info.value) == "interrupted at step 6; resume with: python train/gan.py --run-name r --resume latest"
    assert said == [f"step 6: saved {folder / 'checkpoint-6'}"]
    said.clear()
    with pytest.raises(RunError, match=r"^disk at step 6\. The 6 steps trained so far are saved in "):
        checkpoints.stop(6, ema, why="disk")  # the same step again: nothing saved twice
    assert said == [f"step 6: saved {folder / 'checkpoint-6'}"]


class _TwoRanks:
    """Rank 0 of two for ``stop_requested``: ``gather`` adds the other rank's ``[signal, failed]``."""

    num_processes, device = 2, torch.device("cpu")

    def __init__(self, other: list[int]) -> None:
        self.other = other

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat([tensor, torch.tensor([self.other])])


def test_every_rank_stops_when_any_one_is_signalled_or_failed():
    from train.run import stop_requested

    mine = StopSignals(notice=False)
    assert stop_requested(_TwoRanks([int(signal.SIGTERM), 0]), mine, False) == (signal.SIGTERM, False)
    assert stop_requested(_TwoRanks([0, 0]), mine, True) == (0, True)
    mine.received = signal.SIGINT
    assert stop_requested(_TwoRanks([0, 1]), mine, False) == (signal.SIGINT, True)
    assert stop_requested(_TwoRanks([0, 0]), None, False) == (0, False)


def test_resume_latest_without_a_run_name_takes_the_newest_checkpoint(tmp_path):
    from train.options import Options
    from train.run import plan_run

    runs = tmp_path / "runs"
    for name, step, when in (("a", 3, 2_000_000_000), ("b", 8, 1_000_000_000)):  # a saved last, b more steps
        checkpoint = runs / name / "checkpoints" / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        settings = TrainConfig(output_dir=str(runs), max_steps=10 + step).to_dict()
        (runs / name / "config.json").write_text(json.dumps(
            {"settings": settings, "run": {"run_name": name, "discriminators": "trained every step from step 0"}}))
        os.utime(checkpoint, (when, when))
    plan = plan_run(Options(config=TrainConfig(output_dir=str(runs)), resume="latest"))
    assert plan.run_name == "a" and plan.checkpoint == runs / "a" / "checkpoints" / "checkpoint-3"
    assert plan.config.max_steps == 13  # a's own settings
    assert "picked run a, whose checkpoint-3" in plan.notes[0] and "of the 2 run(s)" in plan.notes[0]


def test_unreadable_perceptual_weights_are_an_error(tmp_path):
    from train.build import build_perceptual

    broken = tmp_path / "alexnet.pth"
    broken.write_bytes(b"not a state dict")
    with pytest.raises(RunError, match=f"--perceptual-weights '{broken}' can't be loaded for LPIPS-alex "
                                       r"\(--perceptual auto\): ValueError: weights file"):
        build_perceptual("auto", str(broken), 32)
    module, used, notice = build_perceptual("auto", str(broken), 32, resumed="feature-matching")
    assert module is None and used == "feature-matching" and "as this run started" in notice


def _frame_folder(path: Path, frames: int) -> None:
    path.mkdir(parents=True)
    for t in range(frames):
        iio.imwrite(path / f"{t}.png", np.full((8, 8, 3), 10 * t, np.uint8))


def test_dataset_held_out_fraction_logs_and_errors(tmp_path):
    from train.build import build_datasets

    _frame_folder(tmp_path / "long", 20)
    _frame_folder(tmp_path / "short", 6)
    (tmp_path / "notes.txt").write_text("x")
    lines = []
    config = TrainConfig(dataset=str(tmp_path), frames=4, size=16, eval_clips=2, detect_clips=0,
                         heldout_fraction=0.5)
    train_set, heldout = build_datasets(config, 3, log=lines.append)
    assert "dataset: ignored notes.txt, neither a video nor a frame of a frame folder" in lines
    assert "dataset: short (6 frames) is too short to hold out its last 50%: training only" in lines
    assert heldout.parts == [(0, 10, 20)]  # the long video's second half, as --heldout-fraction 0.5 says
    shutil.rmtree(tmp_path / "long")
    with pytest.raises(RunError, match=r"no video is long enough to hold out its last 50% .*\(--heldout-fraction\)"):
        build_datasets(config, 3, log=lines.append)


def test_sample_script_with_a_moved_dataset(tiny_run, tmp_path):
    from train import sample

    tiny, _, _ = tiny_run
    run_dir = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny / "runs" / "tiny", run_dir)
    checkpoint = run_dir / "checkpoints" / "checkpoint-3"
    settings, record = read_config(run_dir)
    (checkpoint / "config.json").write_text(json.dumps(
        {"settings": {**settings, "dataset": str(tmp_path / "gone")}, "run": record}))
    with pytest.raises(SystemExit, match="is not a folder any more; pass --dataset with its new place"):
        sample.main(sample.parse_args(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]))
    _frame_folder(tmp_path / "moved" / "clip", 12)
    paths = sample.main(sample.parse_args(["--checkpoint", str(run_dir), "--num", "2", "--out", str(tmp_path / "o"),
                                           "--dataset", str(tmp_path / "moved")]))
    assert paths["gif"].is_file()
    with pytest.raises(SystemExit):
        sample.parse_args(["--checkpoint", str(tmp_path / "missing")])


def test_a_checkpoint_that_does_not_fit_is_one_line():
    from train.gan import load_error_summary

    try:
        torch.nn.Conv2d(3, 8, 3).load_state_dict(torch.nn.Conv2d(3, 16, 3).state_dict())
    except RuntimeError as error:
        summary = load_error_summary(error)
    assert summary == ("Error(s) in loading state_dict for Conv2d: 2 problem(s), the first: size mismatch for weight: "
                       "copying a param with shape torch.Size([16, 3, 3, 3]) from checkpoint, the shape in current "
                       "model is torch.Size([8, 3, 3, 3]).")
    assert load_error_summary(OSError("disk gone")) == "OSError: disk gone"


def test_earlier_run_names_what_a_run_left_and_an_empty_metrics_file_is_nothing(tmp_path):
    # An empty metrics.jsonl (a start that died before its first record) must not block the name.
    from train.run import earlier_run

    (tmp_path / "metrics.jsonl").write_text("")
    assert earlier_run(tmp_path) is None
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    assert earlier_run(tmp_path) == "metrics.jsonl"
    for name in ("checkpoints/checkpoint-3", "checkpoints/.tmp-checkpoint-5", "rescue/checkpoint-4"):
        (tmp_path / name).mkdir(parents=True)
    assert earlier_run(tmp_path) == "3 checkpoint folder(s), the newest checkpoint-4 and metrics.jsonl"


def test_overwrite_deletes_everything_an_earlier_run_wrote(tmp_path):
    # rescue/ too: a rescue checkpoint left there would be resumed by a later --resume latest.
    from train.run import _clear_run

    run_dir, samples = tmp_path / "runs" / "r", tmp_path / "samples" / "r"
    wrote = ["checkpoints/checkpoint-3/model.safetensors", "rescue/checkpoint-4/model.safetensors",
             "tensorboard/genloss/events", "wandb/run/files", "metrics.jsonl", "config.json"]
    for name in wrote:
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text("x")
    (run_dir / "trainer.lock").write_text("{}")  # ours by now: kept
    samples.mkdir(parents=True)
    (samples / "step-000003.gif").write_text("x")
    said = _clear_run(run_dir, samples)
    assert [p.name for p in run_dir.iterdir()] == ["trainer.lock"] and not samples.exists()
    deleted = [str(run_dir / n) for n in ("checkpoints", "rescue", "tensorboard", "wandb", "metrics.jsonl",
                                          "config.json")] + [str(samples)]
    assert said == [f"--overwrite: deleted the earlier run's {', '.join(deleted)}"]
    assert _clear_run(run_dir, samples) == []


def test_a_new_run_is_named_date_time_task_frames_x_size():
    from train.run import RunPlan, name_run

    for context, task in ((2, "continue2"), (0, "uncond")):
        plan = name_run(StubAccelerator(), RunPlan(TrainConfig(frames=5, context_frames=context, size=24), None))
        date, clock, named, shape = plan.run_name.split("-")
        assert (len(date), len(clock), named, shape) == (8, 6, task, "5x24") and (date + clock).isdigit()
    assert name_run(StubAccelerator(), RunPlan(TrainConfig(), "mine")).run_name == "mine"


def test_cpu_threads_never_exceed_the_process_share_of_the_cores(monkeypatch):
    from types import SimpleNamespace

    from train import run as run_module

    built = {}

    def accelerator(**kwargs):
        built.update(kwargs)
        return SimpleNamespace(num_processes=1, device=torch.device("cpu"))

    monkeypatch.setattr(run_module, "Accelerator", accelerator)
    monkeypatch.setattr(run_module.os, "cpu_count", lambda: 8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # 4 cores per process
    monkeypatch.setenv("WORLD_SIZE", "1")
    before = torch.get_num_threads()
    try:
        for asked, used in ((0, 4), (1, 1), (3, 3), (16, 4)):
            run_module.make_accelerator(TrainConfig(cpu_threads=asked, grad_accum=3))
            assert torch.get_num_threads() == used, asked
    finally:
        torch.set_num_threads(before)
    assert built["gradient_accumulation_steps"] == 3 and built["cpu"] is False


def test_launchers_are_recognised_however_spelled():
    from train.launcher import is_launcher

    for argv in (["/venv/bin/accelerate", "launch", "train/gan.py"], ["torchrun", "--nproc-per-node", "2"],
                 ["/usr/bin/python3", "/venv/bin/accelerate", "launch"],
                 ["python", "-m", "accelerate.commands.launch", "train/gan.py"],
                 ["python3", "-m", "torch.distributed.run", "train/gan.py"]):
        assert is_launcher(argv), argv
    for argv in (["bash"], ["python", "train/gan.py", "--run-name", "accelerate"], ["nohup", "python", "x.py"], []):
        assert not is_launcher(argv), argv


_PRINTER = """
import sys, time
sys.path.insert(0, {root!r})
from train.launcher import guard_streams
if {guard}:
    guard_streams({fallback!r})
sys.stdin.readline()  # the test closes the pipe's reader, then lets us go on
for i in range(3):
    print("line", i, flush=True)
    print("err", i, file=sys.stderr, flush=True)
print("done", file=sys.stderr, flush=True)
"""


@pytest.mark.parametrize("guard", [True, False])
def test_guarded_streams_survive_a_reader_that_goes_away(guard, tmp_path):
    """Writes after the reader of stdout and stderr is gone land in the fallback file, in order,
    and the process goes on; unguarded, the first print raises BrokenPipeError."""
    fallback = tmp_path / "after.log"
    code = _PRINTER.format(root=str(ROOT), guard=guard, fallback=str(fallback))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    proc.stderr.close()  # both readers gone
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    returncode = proc.wait(60)
    if not guard:
        assert returncode == 1  # the first print's BrokenPipeError, uncaught
        assert not fallback.exists()
        return
    assert returncode == 0
    lines = fallback.read_text().splitlines()
    assert [line.split("] ", 1)[1] for line in lines if line.startswith("[")] == [
        "stdout lost its reader (the launcher or the terminal is gone); what followed is below",
        "stderr lost its reader (the launcher or the terminal is gone); what followed is below"]
    assert [line for line in lines if not line.startswith("[")] == [
        "line 0", "err 0", "line 1", "err 1", "line 2", "err 2", "done"]

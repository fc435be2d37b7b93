"""The docs' code runs and their commands exist: README.md and the guides it links (:data:`DOCS`).

* Every ```python block runs, in a temporary working directory, on the names it leaves undefined
  (``generator``, ``D``, ``clip``, ``step``, ...), which :func:`prelude` defines as tiny stand-ins:
  a 1-layer generator and discriminator on 2 clips of 4x32x32, a stand-in ImageNet checkpoint in a
  temporary torch hub cache for ``LPIPS("alex")``, a stand-in TorchScript file for
  ``i3d_torchscript.pt``. A block that can't run everywhere says why in a first-line marker,
  ``# needs CUDA`` (run where CUDA is, skipped elsewhere); any other ``# needs ...`` fails until
  :data:`NEEDS` knows it, so a new block either runs here or carries its reason.
* Every command in a ```bash block, and every inline `python train/...`, `python benchmarks/...`,
  `bash benchmarks/...` and `accelerate launch ...`, names an existing script, and its flags parse
  with that script's own parser (``tests/script_utils.py``: nothing is run; `accelerate launch`'s
  own flags with Accelerate's parser). Commands of other programs (pip, pytest, a browser) are
  listed in :data:`OTHER_PROGRAMS`; an unknown one fails.
* Claims checked against the code: the shot-cut log line, the video extensions, the ``my.json``
  example, and the failed-start output of the installed Accelerate.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from script_utils import ROOT, parse_only

# The README and the guides beside it; a new markdown file in docs/ is read without a change here.
DOCS = {path.relative_to(ROOT).as_posix(): path.read_text() for path in [
    ROOT / "README.md", ROOT / "train" / "README.md", ROOT / "benchmarks" / "README.md",
    ROOT / "examples" / "README.md", ROOT / "tests" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    if path.is_file()}
README = "\n".join(DOCS.values())  # the claims below are checked wherever they are written
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
# marker -> (is it met here, why not)
NEEDS = {"CUDA": (torch.cuda.is_available, "no CUDA device here")}
# first words of shell commands that are not the project's scripts
OTHER_PROGRAMS = ("python3 -m venv", "pip install", ". .venv/bin/activate", "pytest", "xdg-open", "open ",
                  "python -m http.server", "tensorboard")
# the project's commands: a script, run by python, bash or the launcher
PROJECT = re.compile(r"^(?:python|bash|accelerate launch)\b")


class Line(str):
    """``doc:line`` of a place in :data:`DOCS`, with ``+`` to move down the same file."""

    def __new__(cls, doc: str, number: int):
        self = super().__new__(cls, f"{doc}:{number}")
        self.doc, self.number = doc, number
        return self

    def __add__(self, lines: int) -> "Line":
        return Line(self.doc, self.number + lines)


def blocks(language: str) -> list[tuple[Line, str]]:
    """``(doc:line, text)`` of every fenced block of ``language`` in the docs."""
    return [(Line(doc, text[: m.start()].count("\n") + 1), m.group(2))
            for doc, text in DOCS.items() for m in FENCE.finditer(text) if m.group(1) == language]


# ---------------------------------------------------------------------------------------------- python


def _stand_in_checkpoint(hub: Path) -> None:
    """A random AlexNet trunk where torch looks for the ImageNet one (``$TORCH_HOME/hub/checkpoints``)."""
    import torchvision

    from genloss._backbones import TRUNKS, _cache_file

    path = _cache_file(TRUNKS["alex"])
    assert path.is_relative_to(hub), path
    path.parent.mkdir(parents=True, exist_ok=True)
    state = torchvision.models.alexnet().state_dict()
    torch.save({k: v for k, v in state.items() if k.startswith("features.")}, path)


class _StandInI3D(torch.nn.Module):
    """Per-clip mean colour and its temporal spread: (B, 3, T, H, W) -> (B, 6) features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return torch.cat([x.mean(dim=(2, 3, 4)), x.mean(dim=(3, 4)).std(dim=2)], dim=1)


def prelude(device: str, workdir: Path) -> dict:
    """The names the README's snippets use without defining them, as tiny stand-ins on ``device``."""
    import dataclasses

    from torch import nn

    import genloss as gl
    from train.config import TrainConfig

    torch.manual_seed(0)
    clip = torch.rand(2, 3, 4, 32, 32, device=device) * 2 - 1  # (B, C, T, H, W)
    context = clip[:, :, :2]

    class Generator(nn.Module):  # 2 context frames -> 2 generated ones
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv3d(3, 3, (1, 3, 3), padding=(0, 1, 1))

        def forward(self, context: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
            return torch.tanh(self.conv(context))

    generator = Generator().to(device)
    D = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv3d(4, 1, 3, padding=1),
                      nn.AdaptiveAvgPool3d(1), nn.Flatten()).to(device)  # one logit per clip
    generated = generator(context)
    fake = torch.cat([context, generated], dim=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; FeatureExtractor reads it
        torch.jit.script(_StandInI3D()).save(str(workdir / "i3d_torchscript.pt"))
    # docs/recipes.md: a tiny VAE step's tensors: input clips, a decoder, a posterior, a 2-D discriminator
    decoder = nn.Module()
    decoder.conv_out = nn.Conv3d(4, 3, 3, padding=1).to(device)
    latent = torch.randn(2, 4, 4, 8, 8, device=device, requires_grad=True)
    x_rec = torch.tanh(decoder.conv_out(torch.nn.functional.interpolate(latent, size=(4, 32, 32))))
    d2d = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, 1, 1)).to(device)
    (workdir / "runs/my-run").mkdir(parents=True)
    (workdir / "runs/my-run/metrics.jsonl").write_text('{"step": 1, "g/rec": 0.5}\n')
    return {
        "torch": torch, "gl": gl, "device": device, "clip": clip, "context": context, "generator": generator,
        "D": D, "real": clip, "generated": generated, "pred": generated, "target": clip[:, :, 2:], "fake": fake,
        "truth": clip, "fake_video": fake.detach(), "real_video": clip, "step": 2400, "gamma": 10.0,
        "opt_d": torch.optim.Adam(D.parameters()), "g_loss": gl.CompositeLoss({"rec": 1.0, "adv": 0.1}),
        "d_loss": gl.CompositeLoss({"adv": 1.0}), "real_logits": D(clip), "fake_logits": D(fake.detach()),
        "run_config": {}, "real_clips": torch.rand(16, 3, 2, 8, 8) * 2 - 1,
        "generated_clips": torch.rand(16, 3, 2, 8, 8) * 2 - 1,
        "loader": [(torch.rand(8, 3, 16, 8, 8, device=device) * 2 - 1,  # FVD's protocol: 16 frames
                    torch.rand(8, 3, 16, 8, 8, device=device) * 2 - 1) for _ in range(2)],
        "config": dataclasses.asdict(TrainConfig()),
        "lpips": None,  # set below for the snippet that uses an LPIPS model it does not build
        "x": clip, "x_rec": x_rec, "mu": latent, "lv": torch.zeros_like(latent), "decoder": decoder,
        "logvar_param": nn.Parameter(torch.zeros((), device=device)), "D2d": d2d,
    }


def _needs(code: str) -> list[str]:
    return [line.split("# needs", 1)[1].strip() for line in code.splitlines() if line.startswith("# needs")]


PYTHON = blocks("python")


def test_the_readme_has_python_snippets():
    assert len(PYTHON) >= 8


@pytest.mark.parametrize("line, code", PYTHON, ids=[str(line) for line, _ in PYTHON])
def test_python_snippet_runs(line, code, tmp_path, monkeypatch, capsys):
    for need in _needs(code):
        assert need in NEEDS, f"{line}: unknown marker '# needs {need}'; add it to NEEDS with its check"
        met, why = NEEDS[need]
        if not met():
            pytest.skip(f"{line} needs {need}: {why}")
    device = "cuda" if "CUDA" in _needs(code) else "cpu"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the gallery snippet inserts a placeholder path
    _stand_in_checkpoint(tmp_path / "torch")
    namespace = prelude(device, tmp_path)
    if re.search(r"\blpips\b", code) and "lpips =" not in code:
        import genloss as gl

        namespace["lpips"] = gl.LPIPS("alex")  # the stand-in checkpoint above
    exec(compile(code, str(line), "exec"), namespace)  # noqa: S102 - the README's own code


# ---------------------------------------------------------------------------------------------- commands


def _commands_in_bash_blocks() -> list[tuple[int, str]]:
    commands = []
    for line, text in blocks("bash"):
        text = text.replace("\\\n", " ")  # continuation lines
        for offset, command in enumerate(text.splitlines()):
            command = command.split(" #")[0].strip() if not command.startswith("#") else ""
            for part in command.split("&&"):
                if part.strip():
                    commands.append((line + 1 + offset, part.strip()))
    return commands


def _inline_commands() -> list[tuple[int, str]]:
    found = []
    for doc, text in DOCS.items():
        for m in re.finditer(r"`((?:python|bash) (?:train|benchmarks|examples)/[^`]+|accelerate launch [^`]+)`", text):
            found.append((Line(doc, text[: m.start()].count("\n") + 1), m.group(1)))
    return found


COMMANDS = _commands_in_bash_blocks() + _inline_commands()


def _launched_script(words: list[str]) -> tuple[str | None, list[str]]:
    """``accelerate launch [its flags] SCRIPT ARGS`` -> (SCRIPT, ARGS), its flags parsed by Accelerate;
    ``(None, [])`` for the launcher's flags alone (prose such as `accelerate launch --num_processes 2`)."""
    from accelerate.commands.launch import launch_command_parser

    if not any(w.endswith((".py", ".sh")) for w in words):
        launch_command_parser().parse_args([*words[2:], "train/gan.py"])
        return None, []
    parsed = launch_command_parser().parse_args(words[2:])
    return parsed.training_script, parsed.training_script_args


def test_readme_commands_are_found():
    scripts = {c.split()[1] for _, c in COMMANDS if c.startswith(("python train", "python bench", "bash bench"))}
    assert {"train/gan.py", "train/eval.py", "train/sample.py", "train/ablate.py", "train/fetch_real_videos.py",
            "benchmarks/gpu.sh", "benchmarks/bench_trainer.py"} <= scripts | {"train/gan.py"}
    assert sum(c.startswith("accelerate launch") for _, c in COMMANDS) >= 8


@pytest.mark.parametrize("line, command", COMMANDS, ids=[str(line) for line, _ in COMMANDS])
def test_command_names_a_script_and_flags_it_takes(line, command, tmp_path):
    if not PROJECT.match(command) or command.startswith(("python -m http.server", "python3 -m venv")):
        assert command.startswith(OTHER_PROGRAMS), f"{line}: unknown command {command!r}"
        return
    words = [w for w in shlex.split(command) if w != "..."]  # "..." stands for the reader's other flags
    if words[0] == "accelerate":
        script, argv = _launched_script(words)
        if script is None:
            return
    else:
        script, argv = words[1], words[2:]
    assert (ROOT / script).is_file(), f"{line}: {script} does not exist"
    if script == "benchmarks/gpu.sh":
        assert argv in ([], ["--help"]) or (len(argv) == 1 and not argv[0].startswith("-")), argv
        return
    try:
        parse_only(script, argv, tmp_path)
        if script == "train/ablate.py" and "--" in argv:  # the trainer flags every run gets
            parse_only("train/gan.py", argv[argv.index("--") + 1:], tmp_path)
    except SystemExit as stop:
        pytest.fail(f"{line}: {script} refuses {shlex.join(argv)} (exit {stop.code})")


# ---------------------------------------------------------------------------------------------- claims


def test_shot_cut_log_line_is_the_one_the_readme_quotes(tmp_path):
    import numpy as np
    from PIL import Image

    from train.data import scan_folder

    quoted = re.search(r"`<n> (shot cuts split the videos into shots, each used as a\s+video)`", README)
    assert quoted, "the README's --shot-cut paragraph no longer quotes the log line"
    frames = [np.full((16, 16, 3), 0 if i < 8 else 255, dtype=np.uint8) for i in range(16)]  # one cut at frame 8
    Image.fromarray(frames[0]).save(tmp_path / "cut.gif", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]], duration=40, loop=0)
    summary = scan_folder(tmp_path, frames=4, size=16, shot_cut=0.15).summary()
    assert f"; 1 {' '.join(quoted.group(1).split())}" in summary


def test_video_extensions_in_the_readme_are_the_readers():
    from train.data import VIDEO_SUFFIXES

    listed = re.search(r"takes a folder of videos \(`([^`]+)`", README).group(1).split()
    assert sorted(listed) == sorted(VIDEO_SUFFIXES)


def test_my_json_example_is_valid_settings_on_a_folder_the_readme_makes():
    import dataclasses

    from train.config import TrainConfig

    settings = json.loads(re.search(r"# my\.json: (\{[^}]*\})", README).group(1))
    dataclasses.replace(TrainConfig(), **settings).validate(environment=False)
    fetched = re.search(r"python train/fetch_real_videos.py\s+# [^\n]* into (\S+)", README).group(1)
    assert settings["dataset"] == fetched == "data/real"


def _failed_start_block() -> str:
    start = README.index("**What a failed start looks like.**")
    return re.search(r"```\n(.*?)```", README[start:], re.DOTALL).group(1)


@pytest.mark.parametrize("quiet", [False, True])
def test_failed_start_prints_what_the_readme_shows(quiet, tmp_path):
    shown = _failed_start_block()
    command = re.search(r"`(accelerate launch train/gan\.py --samples-dir\s+\S+)`", README).group(1).split()
    # The script by its path from a temporary folder, with the run folder there too; the lines are
    # compared with the path as the README's command typed it.
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", *(["-q"] if quiet else []),
                           str(ROOT / command[2]), *command[3:], "--output-dir", str(tmp_path / "runs")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    err = done.stderr[done.stderr.index("error: "):]
    if quiet:  # `accelerate launch -q` leaves the traceback out: only the message
        assert err == shown.splitlines()[0] + "\n"
        return
    # The lines that are not source lines of the traceback (those depend on the Python and
    # Accelerate versions) are the README's, with the command as this test ran it.
    def plain(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith(" ")]

    ours = [line.replace(f"'{ROOT / command[2]}'", f"'{command[2]}'").replace(f", '--output-dir', '{tmp_path / 'runs'}'", "")
            .replace(f"'{sys.executable}'", "'.venv/bin/python3'") for line in plain(err)]
    assert ours == plain(shown)


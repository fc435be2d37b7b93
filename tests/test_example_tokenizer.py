"""examples/tokenizer.py: a 3-step run at the tiniest size in a temporary folder, what it prints
and writes, that it writes nothing into the repository, and its flag checks."""

from __future__ import annotations

import json
import math
import runpy

import pytest
import torch
from script_utils import ROOT, new_files, repository_files, repository_writes, run_script

SCRIPT = "examples/tokenizer.py"
TINY = ["--steps", "3", "--size", "8", "--frames", "2", "--batch-size", "2", "--width", "4", "--eval-clips", "4",
        "--detector-steps", "2", "--perceptual", "none", "--log-every", "1", "--threads", "1", "--out", "out"]


def run(tmp_path, capfd, argv):
    before = repository_files()
    with repository_writes() as writes:
        code = run_script(SCRIPT, argv, tmp_path)
    out, err = capfd.readouterr()
    assert writes == [] and new_files(before) == [], "the example wrote into the repository"
    return code, out, err


@pytest.mark.parametrize("adv_weight", ["1.0", "0"])
def test_tiny_run(tmp_path, capfd, adv_weight):
    code, out, err = run(tmp_path, capfd, [*TINY, "--adv-weight", adv_weight])
    assert code == 0, f"{out[-2000:]}\n{err[-2000:]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tmp"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())

    assert results["recipe"] == "vidtok_kl" and results["disc_start"] == 1  # half of --steps
    assert results["config"]["adv_weight"] == float(adv_weight)
    gan = adv_weight != "0"
    # The generator's adv term and the discriminator's terms ran from step 1 with the GAN, never without.
    assert ("adv" in results["final_logs"]) == gan
    assert ("d/disc" in results["final_logs"] and "d/lecam" in results["final_logs"]) == gan
    assert ("| D: disc" in out) == gan
    assert ("GAN on from step 1;" if gan else "GAN off;") in out
    assert out.count("\nstep ") == 3  # --log-every 1: steps 0, 1, 2

    psnr = results["psnr"]
    assert psnr["clips"] == 4 and math.isfinite(psnr["mean"]) and 0 < psnr["mean"] < 60
    assert f"held-out PSNR {psnr['mean']:.2f} dB" in out
    detect = results["detectability"]
    assert detect["protocol"] == "strong" and detect["steps"] == 2
    assert {detect["frame"]["protocol"], detect["clip"]["protocol"]} == {"frames", "clips"}
    assert detect["clip"]["n_test"] == 4  # 2 held-out clips of 4, real and reconstructed
    assert f"accuracy {detect['frame']['accuracy']:.3f}" in out
    assert set(results["time"]) >= {"train_wall_s", "train_cpu_s", "total_wall_s", "total_cpu_s"}
    assert "wrote out/results.json" in out


def test_lpips_term(tmp_path, capfd):
    # --perceptual lpips puts LPIPS in the preset's NLL (weight 1): the logged nll is larger than
    # the same run's without it (same seed, same clips, same initialisation: LPIPS >= 0 adds to
    # |x - x_rec| at step 0, before any update).
    import torchvision

    weights = tmp_path / "alexnet.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), weights)  # stand-in for the ImageNet weights
    tiny = [a for a in TINY if a not in ("--perceptual", "none")]
    tiny[tiny.index("--size") + 1] = "32"
    nll = {}
    for perceptual in (["--perceptual", "lpips", "--lpips-weights", str(weights)], ["--perceptual", "none"]):
        code, out, err = run(tmp_path, capfd, [*tiny, *perceptual, "--steps", "1", "--adv-weight", "0"])
        assert code == 0, f"{out[-2000:]}\n{err[-2000:]}"
        nll[perceptual[1]] = float(out.split("\nstep     0  nll ")[1].split()[0])
    assert nll["lpips"] > nll["none"] * 1.01


def test_help_writes_nothing(tmp_path, capfd):
    code, out, _ = run(tmp_path, capfd, ["--help"])
    assert code == 0 and out.startswith("usage: ")
    for flag in ("--steps", "--size", "--frames", "--batch-size", "--adv-weight", "--seed", "--out", "--device"):
        assert flag in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


@pytest.mark.parametrize("argv, message", [
    (["--size", "30"], "--size must be a positive multiple of 4"),
    (["--frames", "3"], "--frames must be even"),
    (["--adv-weight", "-1"], "--adv-weight must be a finite number >= 0"),
    (["--perceptual", "lpips", "--size", "16"], "--perceptual lpips needs --size >= 31"),
    (["--eval-clips", "2", "--perceptual", "none"], "--eval-clips must be at least 4"),
    (["--threads", "0"], "--threads must be at least 1"),
])
def test_bad_flags(tmp_path, capfd, argv, message):
    code, _, err = run(tmp_path, capfd, argv)
    assert code == 2 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


def test_heldout_clips_are_not_training_clips(tmp_path, capfd):
    # The PSNR and detector scores are on clips the model never trained on: no held-out clip
    # equals (or nearly equals) a training clip.
    module = runpy.run_path(str(ROOT / SCRIPT), run_name="example")
    args = module["parse_args"](["--steps", "20", "--batch-size", "4", "--size", "8", "--frames", "2",
                                 "--eval-clips", "16", "--perceptual", "none"])
    train, heldout = module["datasets"](args)
    assert (len(train), len(heldout)) == (80, 16)
    train_clips = torch.stack([train[i] for i in range(len(train))]).flatten(1)
    heldout_clips = torch.stack([heldout[i] for i in range(len(heldout))]).flatten(1)
    distances = torch.cdist(heldout_clips, train_clips)  # (16, 80)
    assert distances.min() > 1.0

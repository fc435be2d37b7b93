"""The trainer's ``eval/*`` numbers recomputed from their definitions (train/in_training_eval.py's docstring),
for tests that check what a run logged against what its checkpoint and held-out clips give.

Written with plain torch in float64, apart from LPIPS itself (``genloss.metrics``, which
tests/test_metrics.py checks against the ``lpips`` package). Not a test module.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from train.build import build_generator
from train.config import TrainConfig
from train.data import MovingShapes
from train.in_training_eval import fixed_noise

# The trainer computes in float32 and sums over clips in float32: 1e-5 relative.
RELATIVE = 1e-5


def psnr_per_clip(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)``: each frame's ``10 log10(4 / MSE)`` ([-1, 1] pixels), averaged over the clip's frames."""
    mse = (pred.double() - target.double()).square().mean(dim=(1, 3, 4))  # (B, T)
    return (10 * torch.log10(4 / mse)).mean(dim=1)


def mean_motion(video: torch.Tensor) -> torch.Tensor:
    """Mean ``|frame[t+1] - frame[t]|`` over every clip, channel and pixel."""
    return (video[:, :, 1:].double() - video[:, :, :-1].double()).abs().mean()


def heldout_clips(cfg: TrainConfig) -> torch.Tensor:
    """The first ``eval_clips`` held-out clips of a moving-shapes run, from the dataset class itself."""
    held = MovingShapes(cfg.eval_clips, frames=cfg.frames, size=cfg.size, seed=cfg.seed, split="heldout",
                        num_shapes=cfg.num_shapes)
    return torch.stack([held[i] for i in range(cfg.eval_clips)])


def ema_generator(run_dir: Path, step: int, cfg: TrainConfig) -> nn.Module:
    """The EMA generator saved in ``run_dir``'s ``checkpoint-<step>``, in eval mode."""
    generator = build_generator(cfg)
    path = Path(run_dir) / "checkpoints" / f"checkpoint-{step}" / "ema_generator.pt"
    generator.load_state_dict(torch.load(path, weights_only=True))
    return generator.eval()


@torch.no_grad()
def check_eval_record(record: dict, clips: torch.Tensor, generator: nn.Module, cfg: TrainConfig,
                      lpips: nn.Module | None = None) -> None:
    """Assert a ``metrics.jsonl`` eval record equals the values recomputed from the held-out
    ``clips`` and ``generator`` (the EMA generator of that step) with the run's fixed noise."""
    import genloss.metrics as gm

    k = cfg.context_frames
    generated = generator(clips[:, :, :k], fixed_noise(len(clips), cfg.z_dim, cfg.seed)).float()
    truth = clips[:, :, k:]
    if k > 0:
        last = clips[:, :, k - 1 : k]
        assert record["eval/psnr"] == pytest.approx(psnr_per_clip(generated, truth).mean().item(), rel=RELATIVE)
        baseline = psnr_per_clip(last.expand_as(truth), truth).mean().item()
        assert record["eval/psnr_baseline"] == pytest.approx(baseline, rel=RELATIVE)
        motion = mean_motion(torch.cat([last, generated], 2)) / mean_motion(torch.cat([last, truth], 2))
        # A continuation that is not the last context frame repeated.
        assert record["eval/psnr"] != pytest.approx(baseline, abs=1e-3)
    else:
        assert "eval/psnr" not in record and "eval/psnr_baseline" not in record
        motion = mean_motion(generated) / mean_motion(clips)
    assert record["eval/motion"] == pytest.approx(motion.item(), rel=RELATIVE)
    assert record["eval/motion"] > 1e-3  # the continuation moves
    if lpips is not None:
        assert record["eval/lpips"] == pytest.approx(gm.lpips(generated, truth, model=lpips).mean.item(), rel=RELATIVE)
        moving = [torch.cat([clips[:, :, k - 1 : k], v], 2) if k else v for v in (generated, truth)]
        # tLP is a difference of two distances: float32 rounding is absolute there, not relative.
        assert record["eval/tlp"] == pytest.approx(gm.tlp(*moving, model=lpips).mean.item(), rel=RELATIVE, abs=1e-6)

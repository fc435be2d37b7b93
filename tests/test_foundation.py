"""FoundationPerceptualLoss on a small randomly initialised ViT built here and saved in tmp_path
(state dict and TorchScript; nothing is downloaded): the distance against the features computed
by hand, the random shift against an explicit crop at the generator's offset, freezing and eval
mode, video folding, and the loading errors.
"""

from __future__ import annotations

import pytest
import torch

from torch import nn

import genloss as gl

PATCH = 4
MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)


class TinyViT(nn.Module):
    """Patch embedding + one pre-norm transformer block (with dropout, to see eval mode);
    returns the patch tokens of both stages (N, L, D)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, PATCH, stride=PATCH)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Dropout(0.5), nn.Linear(16, dim))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (N, L, D)
        h = self.norm(tokens)
        h = tokens + self.attn(h, h, h, need_weights=False)[0]
        return [tokens, h + self.mlp(self.norm(h))]


def make_vit(seed: int = 0) -> TinyViT:
    torch.manual_seed(seed)
    return TinyViT().double()


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * 0.9


def by_hand(vit, pred, target, offset=None, distance="cosine"):
    if offset is not None:
        dy, dx = offset
        h, w = pred.shape[-2:]
        sh, sw = (h - PATCH + 1) // PATCH * PATCH, (w - PATCH + 1) // PATCH * PATCH
        pred, target = pred[..., dy:dy + sh, dx:dx + sw], target[..., dy:dy + sh, dx:dx + sw]
    fp = vit(((pred + 1) / 2 - MEAN) / STD)
    ft = vit(((target + 1) / 2 - MEAN) / STD)
    values = []
    for a, b in zip(fp, ft):
        if distance == "cosine":
            values.append((1 - (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))).mean(1))
        else:
            values.append((a - b).square().flatten(1).mean(1))
    return sum(values) / len(values)


@pytest.fixture
def saved(tmp_path):
    vit = make_vit().eval()
    state = tmp_path / "vit.pt"
    torch.save(vit.state_dict(), state)
    scripted = tmp_path / "vit_script.pt"
    torch.jit.script(vit).save(str(scripted))
    return vit, state, scripted


def to_double(loss):
    return loss.double()


@pytest.mark.parametrize("distance", ["cosine", "mse"])
def test_state_dict_matches_features_by_hand(saved, distance):
    vit, state, _ = saved
    loss = to_double(gl.FoundationPerceptualLoss(make_vit(seed=1), weights=state, patch_size=PATCH,
                                                 random_shift=False, distance=distance))
    pred, target = rand(2, 3, 12, 8, seed=1), rand(2, 3, 12, 8, seed=2)
    expected = by_hand(vit, pred, target, distance=distance)
    torch.testing.assert_close(loss(pred, target, reduction="none"), expected, rtol=1e-10, atol=1e-12)
    assert loss(pred, pred).item() == pytest.approx(0.0, abs=1e-12)


def test_torchscript_and_random_shift(saved):
    vit, _, scripted = saved
    loss = to_double(gl.FoundationPerceptualLoss(scripted, patch_size=PATCH))
    pred, target = rand(2, 3, 13, 11, seed=3), rand(2, 3, 13, 11, seed=4)
    offset = torch.randint(0, PATCH, (2,), generator=torch.Generator().manual_seed(5)).tolist()
    got = loss(pred, target, generator=torch.Generator().manual_seed(5), reduction="none")
    torch.testing.assert_close(got, by_hand(vit, pred, target, offset=offset), rtol=1e-10, atol=1e-12)
    # another offset gives another value: the crop really moves
    values = {round(loss(pred, target, generator=torch.Generator().manual_seed(s)).item(), 12) for s in range(6)}
    assert len(values) > 1


def test_frozen_eval_and_gradients_into_pred_only(saved):
    _, state, _ = saved
    loss = to_double(gl.FoundationPerceptualLoss(make_vit(seed=2), weights=state, patch_size=PATCH))
    loss.train()
    assert not loss.backbone.training and all(not m.training for m in loss.modules())
    assert not any(p.requires_grad for p in loss.parameters())
    pred = rand(1, 3, 8, 8, seed=6).requires_grad_()
    target = rand(1, 3, 8, 8, seed=7).requires_grad_()
    g = torch.Generator().manual_seed(0)
    first = loss(pred, target, generator=g)
    second = loss(pred, target, generator=torch.Generator().manual_seed(0))
    assert first.item() == second.item()  # dropout off: deterministic
    first.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0 and target.grad is None


def test_videos_average_their_frames(saved):
    vit, state, _ = saved
    loss = to_double(gl.FoundationPerceptualLoss(make_vit(), weights=state, patch_size=PATCH,
                                                 random_shift=False))
    pred, target = rand(2, 3, 3, 8, 8, seed=8), rand(2, 3, 3, 8, 8, seed=9)
    frames = torch.stack([by_hand(vit, pred[:, :, t], target[:, :, t]) for t in range(3)], 1)
    torch.testing.assert_close(loss(pred, target, reduction="none"), frames.mean(1), rtol=1e-10, atol=1e-12)


def test_loading_errors(saved, tmp_path):
    _, state, scripted = saved
    with pytest.raises(FileNotFoundError, match="not found"):
        gl.FoundationPerceptualLoss(tmp_path / "missing.pt", patch_size=PATCH)
    with pytest.raises(ValueError, match="TorchScript"):
        gl.FoundationPerceptualLoss(state, patch_size=PATCH)  # a state dict without its module
    with pytest.raises(ValueError, match="carries its own weights"):
        gl.FoundationPerceptualLoss(scripted, weights=state, patch_size=PATCH)
    other = nn.Sequential(nn.Conv2d(3, 8, PATCH, stride=PATCH)).double()
    with pytest.raises(ValueError, match="missing keys"):
        gl.FoundationPerceptualLoss(other, weights=state, patch_size=PATCH)
    with pytest.raises(gl.FramesTooSmallError):
        gl.FoundationPerceptualLoss(scripted, patch_size=PATCH)(rand(1, 3, 6, 6), rand(1, 3, 6, 6))
    bad = torch.ones(1, 3, 8, 8, dtype=torch.float64) * 200
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        gl.FoundationPerceptualLoss(scripted, patch_size=PATCH)(bad, bad)


def test_default_reduction_is_mean(saved):
    vit, state, _ = saved
    loss = to_double(gl.FoundationPerceptualLoss(make_vit(), weights=state, patch_size=PATCH, random_shift=False))
    pred, target = rand(3, 3, 8, 8, seed=10), rand(3, 3, 8, 8, seed=11)
    torch.testing.assert_close(loss(pred, target), by_hand(vit, pred, target).mean(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss(pred, target, reduction="sum"), by_hand(vit, pred, target).sum(),
                               rtol=1e-10, atol=1e-12)



def test_load_backbone_freezes_a_module_it_is_given(saved):
    _, state, scripted = saved
    for backbone, weights in ((make_vit(seed=3).train(), state), (scripted, None)):
        module, source = gl.foundation.load_backbone(backbone, weights)
        assert not module.training and not any(p.requires_grad for p in module.parameters())
        assert source.startswith(("file:", "torchscript:"))

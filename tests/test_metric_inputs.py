"""What a new user gets wrong with the metrics and the penalties, and the error each must raise.

* Pixels: every clip metric refuses [0, 255] floats (naming the argument and how to rescale),
  NaN and inf, as the losses do; ``check_range=False`` turns the scan off. PSNR's limits follow
  its ``data_range``.
* Layout: RGB inputs given as ``(B, T, C, H, W)`` (or channels-last images) are named as such,
  with the permutation that fixes them.
* Gradient penalties on logits that do not depend on the inputs raise ``ValueError`` naming both,
  not autograd's ``RuntimeError``.
* FVD/KVD/FID/KID fed by ``update_features`` count as updated: no torchmetrics warning at
  ``compute()``, and no stale cached value after more features arrive.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import pytest
import torch
from lpips_reference import write_trunk
from torch import Tensor, nn

import genloss as gl
import genloss.metrics as gm


def _clip(*shape: int, seed: int = 0) -> Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _with_value(x: Tensor, value: float) -> Tensor:
    """``x`` with one pixel (last frame, away from the corner) set to ``value``."""
    x = x.clone()
    x[0, 1, -1, 3, 5] = value
    return x


def _frame_mse(x: Tensor, y: Tensor, reduction: str = "none") -> Tensor:
    """An LPIPS-like callable (the pair contract): per-pair mean squared difference, ``(N,)``."""
    return (x - y).square().flatten(1).mean(dim=1)


@pytest.fixture(scope="module")
def lpips_alex(tmp_path_factory: pytest.TempPathFactory) -> gl.LPIPS:
    return gl.LPIPS("alex", weights=write_trunk("alex", tmp_path_factory.mktemp("alex")))


# ----------------------------------------------------------------------------------------------
# Pixel range: every clip metric, every clip argument

CLIPS = _clip(1, 3, 3, 16, 16)
METRICS = {
    "psnr": (lambda p, t, **k: gm.psnr(p, t, **k), ("pred", "target")),
    "ssim": (lambda p, t, **k: gm.ssim(p, t, **k), ("pred", "target")),
    "tof": (lambda p, t, **k: gm.tof(p, t, **k), ("pred", "target")),
    "warping_error": (lambda v, **k: gm.warping_error(v, **k), ("video",)),
    # A generic LPIPS-like callable: the metric is the only place its inputs are checked.
    "lpips": (lambda p, t, **k: gm.lpips(p, t, model=_frame_mse, **k), ("pred", "target")),
    "tlp": (lambda p, t, **k: gm.tlp(p, t, model=_frame_mse, **k), ("pred", "target")),
    "lpips_and_tlp": (
        lambda p, t, **k: gm.lpips_and_tlp(p, t, model=_frame_mse, **k), ("pred", "target")
    ),
}


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_metric_refuses_0_255_pixels_naming_the_argument(metric: str) -> None:
    fn, names = METRICS[metric]
    for i, name in enumerate(names):
        args = [CLIPS] * len(names)
        args[i] = (CLIPS + 1) * 127.5  # the same clip in [0, 255]
        expected = (
            f"`{name}` must hold pixels in [-1, 1] (values outside [-1.5, 1.5] are rejected); "
            "got values in ["
        )
        with pytest.raises(ValueError, match=re.escape(expected)) as info:
            fn(*args)
        assert "(looks like [0, 255] pixels: use x / 127.5 - 1" in str(info.value)
        assert str(info.value).endswith("Pass check_range=False to skip this check.")


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_metric_refuses_nan_and_inf(metric: str) -> None:
    fn, names = METRICS[metric]
    for i, name in enumerate(names):
        for bad, found in ((math.nan, "it has NaN values"), (math.inf, "got values in [")):
            args = [CLIPS] * len(names)
            args[i] = _with_value(CLIPS, bad)
            with pytest.raises(ValueError, match=re.escape(f"`{name}` must hold finite pixels in [-1, 1]; {found}")):
                fn(*args)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_metric_accepts_the_limit_and_check_range_false_skips(metric: str) -> None:
    fn, names = METRICS[metric]
    for i in range(len(names)):
        for edge in (1.5, -1.5):  # the limits themselves are accepted
            args = [CLIPS] * len(names)
            args[i] = _with_value(CLIPS, edge)
            fn(*args)
        for outside in (1.5 + 1e-3, -1.5 - 1e-3):
            args = [CLIPS] * len(names)
            args[i] = _with_value(CLIPS, outside)
            with pytest.raises(ValueError):
                fn(*args)
            fn(*args, check_range=False)


class TestPSNRRangeFollowsDataRange:
    def test_0_255_with_default_range_hints_at_data_range(self) -> None:
        x = (CLIPS + 1) * 127.5
        with pytest.raises(ValueError, match=re.escape("`target` must hold pixels in [-1, 1]")) as info:
            gm.psnr(CLIPS, x)
        assert "use x / 127.5 - 1, or pass data_range=255 for [0, 255] pixels" in str(info.value)

    def test_0_255_with_data_range_255_is_the_known_value(self) -> None:
        pred = torch.full((1, 3, 2, 4, 4), 100.0, dtype=torch.float64)
        target = pred + 5.0  # MSE 25 on [0, 255]: 10 log10(255^2 / 25)
        result = gm.psnr(pred, target, data_range=255)
        assert result.mean.item() == pytest.approx(10 * math.log10(255**2 / 25), rel=1e-12)
        # The same clips rescaled to [-1, 1] score the same with the default range.
        rescaled = gm.psnr(pred / 127.5 - 1, target / 127.5 - 1)
        assert rescaled.mean.item() == pytest.approx(result.mean.item(), rel=1e-12)

    def test_other_data_range_limits(self) -> None:
        unit = (CLIPS + 1) / 2  # [0, 1]
        gm.psnr(unit, unit.flip(-1), data_range=1.0)  # [0, 1] with data_range=1
        gm.psnr(unit - 0.5, unit.flip(-1) - 0.5, data_range=1.0)  # [-0.5, 0.5]
        gm.psnr(_with_value(unit, -1.0), unit, data_range=1.0)  # -data_range itself
        expected = (
            "`pred` must hold pixels in [0, 1] or [-0.5, 0.5] (data_range=1) (values outside "
            "[-1, 1] are rejected); got values in ["
        )
        with pytest.raises(ValueError, match=re.escape(expected)) as info:
            gm.psnr(_with_value(unit, 254.9), unit, data_range=1.0)
        assert ", 254.9]. Pass check_range=False" in str(info.value)
        assert "looks like" not in str(info.value)  # no [-1, 1] rescaling hint off that scale
        with pytest.raises(ValueError, match=re.escape("`target` must hold finite pixels")):
            gm.psnr(unit, _with_value(unit, math.nan), data_range=1.0)
        with pytest.raises(ValueError, match=re.escape("values outside [-1, 1] are rejected")):
            gm.psnr(_with_value(unit, -1.001), unit, data_range=1.0)


# ----------------------------------------------------------------------------------------------
# LPIPS: non-finite pixels, and the layout hint


def test_lpips_refuses_nan_and_inf(lpips_alex: gl.LPIPS) -> None:
    x = _clip(1, 3, 2, 32, 32)
    for name in ("pred", "target"):
        for bad, found in ((math.nan, "it has NaN values."), (math.inf, "got values in [")):
            args = {"pred": x, "target": x, name: _with_value(x, bad)}
            with pytest.raises(ValueError, match=re.escape(f"`{name}` must hold finite pixels in [-1, 1]; {found}")):
                lpips_alex(args["pred"], args["target"])
            with pytest.raises(ValueError, match=re.escape(f"`{name}` must hold finite pixels")):
                gm.lpips(args["pred"], args["target"], model=lpips_alex)
    with pytest.raises(ValueError, match=re.escape("`x` must hold finite pixels in [-1, 1]; it has NaN")):
        lpips_alex.unit_features(_with_value(x, math.nan), name="x")


BTCHW = (
    "; it looks like (B, T, C, H, W): permute it to (B, C, T, H, W) with x.permute(0, 2, 1, 3, 4) "
    "(einops: rearrange(x, 'b t c h w -> b c t h w'))"
)


def test_lpips_names_a_b_t_c_h_w_clip(lpips_alex: gl.LPIPS) -> None:
    clips = _clip(2, 3, 4, 32, 32)  # (B, C, T, H, W)
    wrong = clips.permute(0, 2, 1, 3, 4)  # (B, T, C, H, W): T=4 in dim 1
    expected = f"`pred` must have 3 (RGB) channels in dim 1; got shape (2, 4, 3, 32, 32) with 4 channels{BTCHW}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        lpips_alex(wrong, clips.permute(0, 2, 1, 3, 4))
    with pytest.raises(ValueError, match=re.escape(expected)):
        gm.lpips(wrong, wrong, model=lpips_alex)
    # The suggested permutation gives back the right layout: LPIPS of a clip with itself is 0.
    fixed = wrong.permute(0, 2, 1, 3, 4)
    assert lpips_alex(fixed, clips).item() == 0.0


def test_lpips_names_a_channels_last_image(lpips_alex: gl.LPIPS) -> None:
    images = _clip(2, 3, 32, 32)
    wrong = images.permute(0, 2, 3, 1)  # (B, H, W, C)
    with pytest.raises(ValueError, match=re.escape(
        "`target` must have 3 (RGB) channels in dim 1; got shape (2, 32, 32, 3) with 32 channels; it "
        "looks like channels-last (B, H, W, C): permute it to (B, C, H, W) with x.permute(0, 3, 1, 2)"
    )):
        lpips_alex(images, wrong)
    # No layout to tell: a grey clip gets no hint.
    with pytest.raises(ValueError, match=r"with 1 channels$"):
        lpips_alex(images[:, :1], images[:, :1])


# ----------------------------------------------------------------------------------------------
# FVD / FID with the published detectors: the layout hint before the frame window


class _I3DSignature(nn.Module):
    """``forward(x, rescale, resize, return_features)``: recognised as the I3D file."""

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> Tensor:
        return x.float().mean(dim=(2, 3, 4))


class _InceptionSignature(nn.Module):
    """``forward(img, return_features, use_fp16, no_output_bias)``: recognised as Inception."""

    def forward(self, img: Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> Tensor:
        return img.float().mean(dim=(2, 3))


def _script(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in 2.9+
        torch.jit.script(module).save(str(path))
    return path


def test_fvd_names_a_b_t_c_h_w_clip(tmp_path: Path) -> None:
    fvd = gm.FVD(_script(_I3DSignature(), tmp_path / "i3d_torchscript.pt"), frames=4)
    clips = _clip(2, 3, 6, 8, 8)
    wrong = clips.permute(0, 2, 1, 3, 4)  # (2, 6, 3, 8, 8): without the check, "T=3 < 4 frames"
    expected = (
        "`x` must have 1 (grey) or 3 (RGB) channels in dim 1 for i3d_torchscript.pt; got shape "
        f"(2, 6, 3, 8, 8) with 6 channels{BTCHW}"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        fvd.update(wrong, real=True)
    with pytest.raises(ValueError, match=re.escape(expected)):
        fvd.features(wrong)
    fvd.update(wrong.permute(0, 2, 1, 3, 4), real=True)  # the suggested permutation is accepted
    fvd.update(clips[:, :1], real=True)  # grey clips too


def test_fid_names_channels_last_images(tmp_path: Path) -> None:
    fid = gm.FID(_script(_InceptionSignature(), tmp_path / "inception-2015-12-05.pt"))
    images = _clip(2, 3, 1, 8, 8)[:, :, 0]
    with pytest.raises(ValueError, match=re.escape(
        "`x` must have 1 (grey) or 3 (RGB) channels in dim 1 for inception-2015-12-05.pt; got shape "
        "(2, 8, 8, 3) with 8 channels; it looks like channels-last (B, H, W, C)"
    )):
        fid.update(images.permute(0, 2, 3, 1), real=False)
    fid.update(images, real=False)


def test_a_users_extractor_takes_any_channels() -> None:
    """The layout can't be told for an extractor of unknown input: (B, 1, 3, H, W) is a grey clip."""
    fvd = gm.FVD(lambda x: x.flatten(1).double()[:, :4], frames=3)
    fvd.update(_clip(2, 1, 3, 4, 4), real=True)
    assert fvd.protocol["num_real"] == 2


# ----------------------------------------------------------------------------------------------
# Gradient penalties: logits that do not depend on the inputs


class TestPenaltyInputs:
    D = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 1))

    def _x(self) -> Tensor:
        return _clip(2, 3, 1, 4, 4)[:, :, 0]

    @pytest.mark.parametrize("penalty,side", [(gl.r1_penalty, "real"), (gl.r2_penalty, "fake")])
    def test_logits_from_the_tensor_before_requires_grad(self, penalty, side) -> None:
        x = self._x()
        logits = self.D(x)  # D called first ...
        x.requires_grad_(True)  # ... then the inputs made to require grad
        expected = (
            f"`{side}_logits` does not depend on `{side}_inputs`: call the discriminator on "
            f"`{side}_inputs` itself after it requires grad (`x = x.detach().requires_grad_(True)`, "
            f"then `{side}_logits = D(x)`), not on a detached copy of it or on the tensor from "
            "before requires_grad_"
        )
        with pytest.raises(ValueError, match=re.escape(expected)):
            penalty(logits, x)
        x2 = self._x().requires_grad_(True)
        with pytest.raises(ValueError, match=re.escape(f"`{side}_logits` does not depend on `{side}_inputs`")):
            penalty(self.D(x2.detach()), x2)  # a detached copy

    @pytest.mark.parametrize("penalty,side", [(gl.r1_penalty, "real"), (gl.r2_penalty, "fake")])
    def test_logits_without_grad(self, penalty, side) -> None:
        x = self._x().requires_grad_(True)
        with torch.no_grad():
            logits = self.D(x)
        with pytest.raises(ValueError, match=re.escape(
            f"`{side}_logits` does not require grad, so it cannot depend on `{side}_inputs` "
            "(computed under torch.no_grad(), or from tensors that do not require grad?): call the "
            f"discriminator on `{side}_inputs` itself after it requires grad"
        )):
            penalty(logits, x)

    @pytest.mark.parametrize("penalty,side", [(gl.r1_penalty, "real"), (gl.r2_penalty, "fake")])
    def test_inputs_without_grad(self, penalty, side) -> None:
        x = self._x()
        with pytest.raises(ValueError, match=re.escape(
            f"`{side}_inputs` must require grad and be the tensor the discriminator was called on: "
            f"use `x = x.detach().requires_grad_(True)` before computing `{side}_logits`"
        )):
            penalty(self.D(x), x)

    def test_the_right_call_still_works(self) -> None:
        """Known answer: a linear D's R1 is ``||w||^2`` per sample."""
        x = self._x().requires_grad_(True)
        r1 = gl.r1_penalty(self.D(x), x, reduction="none")
        torch.testing.assert_close(r1, self.D[1].weight.detach().square().sum().expand(2))

    def test_gradient_penalty_critic_ignoring_its_input(self) -> None:
        x = self._x()
        with pytest.raises(ValueError, match=re.escape(
            "`critic(x^)` does not depend on `x^`: `critic` must compute its output from the tensor "
            "it is called with"
        )):
            gl.gradient_penalty(lambda z: self.D(torch.ones_like(z)), x, x.flip(0))
        with torch.no_grad(), pytest.raises(ValueError, match=re.escape("`critic(x^)` does not require grad")):
            gl.gradient_penalty(self.D, x, x.flip(0))


# ----------------------------------------------------------------------------------------------
# update_features goes through torchmetrics' update bookkeeping


def _pixel_stats(x: Tensor) -> Tensor:
    flat = x.flatten(1).double()
    return torch.stack([flat.mean(1), flat.std(1), flat.abs().max(1).values], 1)


def _pair(video: bool) -> list:
    if video:
        return [gm.FVD(_pixel_stats, frames=2), gm.KVD(_pixel_stats, frames=2, subsets=4, subset_size=4)]
    return [gm.FID(_pixel_stats), gm.KID(_pixel_stats, subsets=4, subset_size=4)]


@pytest.mark.parametrize("video", [True, False], ids=["FVD-KVD", "FID-KID"])
def test_update_features_counts_as_update(video: bool) -> None:
    shape = (6, 3, 2, 4, 4) if video else (6, 3, 4, 4)
    batches = [(True, _clip(*shape, seed=1)), (False, _clip(*shape, seed=2) * 0.7),
               (False, _clip(*shape, seed=3) * 0.5)]
    own, fed = _pair(video), _pair(video)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchmetrics' "compute was called before update" included
        for real, x in batches[:2]:
            for metric in own:
                metric.update(x, real=real)
            features = fed[0].features(x)
            for metric in fed:
                metric.update_features(features, real=real)
        for a, b in zip(own, fed):
            assert b.update_count == a.update_count == 2
            first_a, first_b = a.compute(), b.compute()
            assert (first_b.value, first_b.std, first_b.protocol) == (first_a.value, first_a.std, first_a.protocol)

        # More features after a compute(): the next compute() includes them (no cached value).
        real, x = batches[2]
        for a, b in zip(own, fed):
            a.update(x, real=real)
            b.update_features(b.features(x), real=real)
            second_a, second_b = a.compute(), b.compute()
            assert second_b.protocol["num_fake"] == 12
            assert second_b.value != first_b.value
            assert (second_b.value, second_b.std) == (second_a.value, second_a.std)


def test_update_features_then_reset() -> None:
    fvd = gm.FVD(_pixel_stats, frames=2)
    fvd.update_features(torch.ones(3, 3, dtype=torch.float64), real=True)
    assert fvd.update_count == 1
    fvd.reset()
    assert fvd.update_count == 0
    with pytest.warns(UserWarning, match="was called before the ``update`` method"), \
            pytest.raises(ValueError, match="at least 2 real and 2 generated"):
        fvd.compute()

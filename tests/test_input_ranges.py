"""Every input with a range check, one by one: each argument of each function is given a value
just outside its documented limit (the others in range) and must be refused naming that argument;
a value exactly at the limit must be accepted. A check skipped for one argument (the target, the
fake set) or a limit moved fails here.

Limits: the frozen-network losses and the clip metrics accept [-1.5, 1.5]
(``_checks.PIXEL_RANGE_LIMIT``; the clip metrics one by one in test_metric_inputs.py);
``detectability`` accepts exactly [-1, 1]; the realism metrics' extractors accept 1e-3 of slack
(``extractors.RANGE_SLACK``) and refuse NaN.
"""

from __future__ import annotations

import re

import pytest
import torch

import genloss as gl
import genloss.metrics as gm
from lpips_reference import random_features_state, write_trunk


@pytest.fixture(scope="module")
def lpips_alex(tmp_path_factory):
    return gl.LPIPS("alex", weights=write_trunk("alex", tmp_path_factory.mktemp("alex")))


@pytest.fixture(scope="module")
def vgg_loss(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(random_features_state("vgg", seed=3), path)
    return gl.VGGLoss("vgg16", layers={"relu1_2": 1.0}, weights=path)


def _clip(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _with_value(x: torch.Tensor, value: float) -> torch.Tensor:
    """``x`` with one pixel (in the last frame, away from the corner) set to ``value``."""
    x = x.clone()
    x[(0, 1) + (-1,) * (x.ndim - 4) + (3, 5)] = value
    return x


FROZEN_LIMIT = 1.5
FROZEN_MESSAGE = "`{}` must hold pixels in [-1, 1]"


def _frozen_cases(lpips_alex, vgg_loss):
    """(id, function of the arguments, argument names, a valid input per argument)."""
    images, clips = _clip(2, 3, 32, 32), _clip(1, 3, 3, 32, 32)
    return [
        ("LPIPS", lambda p, t: lpips_alex(p, t), ("pred", "target"), images),
        ("LPIPS-video", lambda p, t: lpips_alex(p, t), ("pred", "target"), clips),
        ("LPIPS.unit_features", lambda x: lpips_alex.unit_features(x, name="x"), ("x",), clips),
        ("VGGLoss", lambda p, t: vgg_loss(p, t), ("pred", "target"), images),
        ("temporal_lpips_loss", lambda p, t: gl.temporal_lpips_loss(p, t, model=lpips_alex), ("pred", "target"),
         clips),
        ("metrics.lpips", lambda p, t: gm.lpips(p, t, model=lpips_alex), ("pred", "target"), clips),
        ("metrics.tlp", lambda p, t: gm.tlp(p, t, model=lpips_alex), ("pred", "target"), clips),
        ("metrics.lpips_and_tlp", lambda p, t: gm.lpips_and_tlp(p, t, model=lpips_alex), ("pred", "target"), clips),
    ]


@pytest.mark.parametrize("case", range(8), ids=["LPIPS", "LPIPS-video", "LPIPS.unit_features", "VGGLoss",
                                                 "temporal_lpips_loss", "metrics.lpips", "metrics.tlp",
                                                 "metrics.lpips_and_tlp"])
def test_frozen_network_inputs(lpips_alex, vgg_loss, case):
    _, fn, names, valid = _frozen_cases(lpips_alex, vgg_loss)[case]
    for i, name in enumerate(names):
        for bad in (FROZEN_LIMIT + 1e-3, -FROZEN_LIMIT - 1e-3, 255.0):
            args = [valid] * len(names)
            args[i] = _with_value(valid, bad)
            with pytest.raises(ValueError, match=re.escape(FROZEN_MESSAGE.format(name))):
                fn(*args)
        for edge in (FROZEN_LIMIT, -FROZEN_LIMIT):  # the limit itself is accepted
            args = [valid] * len(names)
            args[i] = _with_value(valid, edge)
            fn(*args)


def test_frozen_network_range_check_can_be_turned_off(tmp_path):
    lpips = gl.LPIPS("alex", weights=write_trunk("alex", tmp_path), check_range=False)
    x = _clip(1, 3, 32, 32)
    assert torch.isfinite(lpips(_with_value(x, 3.0), _with_value(x, -3.0)))


def _four(seed: int) -> torch.Tensor:
    return _clip(4, 3, 2, 8, 8, seed=seed)


@pytest.mark.parametrize("side", ["real", "fake"])
def test_detectability_inputs(side):
    valid = {"real": _four(0), "fake": _four(1)}
    for bad in (1 + 1e-6, -1 - 1e-6, float("nan"), 255.0):
        args = dict(valid, **{side: _with_value(valid[side], bad)})
        with pytest.raises(ValueError, match=re.escape(f"`{side}` must hold finite values in [-1, 1]")):
            gm.detectability(args["real"], args["fake"], steps=1)
    for edge in (1.0, -1.0):
        args = dict(valid, **{side: _with_value(valid[side], edge)})
        gm.detectability(args["real"], args["fake"], steps=1)


def _pixel_stats(x: torch.Tensor) -> torch.Tensor:
    """A callable extractor: per-sample mean and std of the pixels, (N, 2)."""
    flat = x.flatten(1).double()
    return torch.stack([flat.mean(1), flat.std(1)], 1)


@pytest.mark.parametrize("metric", ["FVD", "KVD", "FID", "KID"])
@pytest.mark.parametrize("real", [True, False], ids=["real", "generated"])
def test_realism_metric_inputs(metric, real):
    from genloss.metrics.extractors import RANGE_SLACK

    video = metric in ("FVD", "KVD")
    kwargs = {"frames": 2} if video else {}
    if metric in ("KVD", "KID"):
        kwargs["subset_size"] = 2
    valid = _four(2) if video else _four(2)[:, :, 0]
    for bad in (1 + 2 * RANGE_SLACK, -1 - 2 * RANGE_SLACK, float("nan"), 255.0):
        m = getattr(gm, metric)(_pixel_stats, **kwargs)
        with pytest.raises(ValueError, match=re.escape("`x` must hold float pixels in [-1, 1]")):
            m.update(_with_value(valid, bad), real=real)
    m = getattr(gm, metric)(_pixel_stats, **kwargs)
    inside = 0.99 * RANGE_SLACK  # 1 + RANGE_SLACK itself rounds to just above it in float32
    for edge in (1 + inside, -1 - inside):  # within the slack the quantiser clamps
        m.update(_with_value(valid, edge), real=real)

"""The `lpips` package with the same seeded random trunk as a genloss.LPIPS, for equality tests.

Imported by test_perceptual.py, test_temporal.py, test_metrics.py and test_vgg.py, and by
benchmarks/bench_lpips.py and bench_lpips_tlp.py (not a test module itself).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lpips
import torch
import torchvision.models as tvm

ARCH = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def random_features_state(net: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """A seeded random torchvision state dict holding the ``features.*`` entries of ``net``.

    ``N(0, 2 / fan_in)`` for every weight and bias (biases count a fan-in of 1), drawn in
    state-dict order from a generator seeded with ``seed``.
    """
    with torch.device("meta"):
        model = getattr(tvm, ARCH[net])(weights=None)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("features."):
            fan_in = value[0].numel() if value.ndim > 1 else 1
            state[key] = torch.randn(value.shape, generator=generator) * (2.0 / fan_in) ** 0.5
    return state


def write_trunk(net: str, folder: Path, seed: int = 1) -> Path:
    """``random_features_state(net, seed)`` saved as ``folder/<net>.pth``."""
    path = folder / f"{net}.pth"
    torch.save(random_features_state(net, seed), path)
    return path


def reference(net: str, path: Path, **kwargs) -> lpips.LPIPS:
    """The lpips package with the trunk in ``path``: its slices hold torchvision's ``features[i]``."""
    with warnings.catch_warnings():  # the package still passes torchvision's old `pretrained`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False, **kwargs)
    state = torch.load(path)
    mapped = {}
    for name in model.net.state_dict():
        _, index, rest = name.split(".", 2)  # "slice2.3.weight" -> features.3.weight
        mapped[name] = state[f"features.{index}.{rest}"]
    model.net.load_state_dict(mapped)
    return model


def pairwise(model: lpips.LPIPS):
    """The package as the generic LPIPS-like callable ``f(x, y, reduction="none") -> (N,)``."""

    def distance(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        values = model(x, y).flatten()
        return values if reduction == "none" else values.mean()

    return distance

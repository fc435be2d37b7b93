"""Feature extractors for the set-level metrics (FVD, KVD, FID, KID), and how each is called.

The metrics compare *sets* of features, so a number is only meaningful together with the network
that produced the features and the way pixels were handed to it. :class:`FeatureExtractor` wraps
one of three kinds of extractor and records all of it in :meth:`FeatureExtractor.protocol`:

* **StyleGAN-V's I3D** (``i3d_torchscript.pt``, Kinetics-400, the TF-Hub ``i3d-kinetics-400/1``
  network of the original FVD ported to TorchScript). Called as StyleGAN-V's ``fvd2048_16f``
  calls it: ``detector(x, rescale=True, resize=True, return_features=True)`` on a contiguous uint8
  ``(B, 3, T, H, W)`` tensor in [0, 255]. With ``rescale=True`` the file maps pixels to
  ``x / 255 · 2 − 1`` and with ``resize=True`` it resizes every frame to 224×224 itself;
  ``return_features=True`` returns the 400 logits averaged over time, before the softmax (the
  tensor ``RGB/inception_i3d/Mean`` the TF reference takes).
* **NVlabs' Inception** (``inception-2015-12-05.pt``, StyleGAN2-ADA's FID/KID detector, a direct
  TorchScript port of the TF Inception of Heusel et al.'s FID). Called as StyleGAN2-ADA calls it:
  ``detector(x, return_features=True)`` on uint8 ``(N, 3, H, W)`` in [0, 255]; the file resizes to
  299×299 itself (bilinear ``grid_sample``, border padding, no antialiasing) and returns the
  2048-d pool_3 features.
* **Anything else**: a TorchScript file or a callable mapping a batch to ``(N, D)`` features,
  called with the batch as its only argument.

The two reference files are recognised by the argument names of their ``forward`` (not by file
name), so a renamed copy, or one already loaded with ``torch.jit.load``, is called the same way.

Pixels: float inputs are in [-1, 1] (the library's convention) and are quantised to uint8 exactly
as StyleGAN2-ADA and StyleGAN-V quantise generator output, ``floor(clamp(127.5·x + 128, 0, 255))``;
uint8 inputs (decoded video frames) are used as they are. For ``x = u / 127.5 − 1`` this gives back
``u`` exactly, so real frames that went through [-1, 1] reach the detector bit-identical to the
frames on disk. ``quantize=False`` skips the rounding (see :class:`FeatureExtractor`).

Nothing here downloads: a missing file is an error naming where the file is published.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "I3D_URL",
    "INCEPTION_URL",
    "FeatureExtractor",
    "check_pixels",
    "quantize_uint8",
]

I3D_FILE = "i3d_torchscript.pt"
# The URL StyleGAN-V's src/metrics/frechet_video_distance.py loads (universome/stylegan-v).
I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
INCEPTION_FILE = "inception-2015-12-05.pt"
# The URL StyleGAN2-ADA's metrics/frechet_inception_distance.py loads (NVlabs/stylegan2-ada-pytorch)
INCEPTION_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
    "inception-2015-12-05.pt"
)

# Float pixels may exceed [-1, 1] by this much (rounding in a generator's last layer) and are
# clamped by the quantiser; anything further out is a range bug. The TF FVD reference asserts the
# same bound (|x| <= 1.001).
RANGE_SLACK = 1e-3


@dataclass(frozen=True)
class _Reference:
    """How one published detector file is recognised and called, and what it computes."""

    kind: str
    file: str
    url: str
    project: str
    arguments: tuple[str, ...]  # forward's argument names after `self`
    video: bool
    feature_dim: int
    kwargs_uint8: dict[str, bool]
    kwargs_float: dict[str, bool]
    feature_layer: str
    resize: str
    antialias: str


I3D = _Reference(
    kind="i3d",
    file=I3D_FILE,
    url=I3D_URL,
    project="StyleGAN-V (github.com/universome/stylegan-v, src/metrics/frechet_video_distance.py)",
    arguments=("x", "rescale", "resize", "return_features"),
    video=True,
    feature_dim=400,
    # uint8 [0, 255] with the file's own rescale (StyleGAN-V); float [-1, 1] without it, the way
    # universome/fvd-comparison checks the port against TF.
    kwargs_uint8={"rescale": True, "resize": True, "return_features": True},
    kwargs_float={"rescale": False, "resize": True, "return_features": True},
    feature_layer=(
        "return_features=True: the 400 Kinetics-400 logits averaged over time, before the softmax "
        "(TF-Hub i3d-kinetics-400/1 'RGB/inception_i3d/Mean', the original FVD's embedding)"
    ),
    resize=(
        "inside the torchscript (resize=True): every frame to 224x224 by the file's own "
        "interpolation; print(torch.jit.load(path).code) shows it. StyleGAN-V notes that this is "
        "the one step where it differs from the TF reference (tf.image.resize_bilinear)"
    ),
    antialias="none added by genloss; the file's resize is used as it is",
)

INCEPTION = _Reference(
    kind="inception",
    file=INCEPTION_FILE,
    url=INCEPTION_URL,
    project=(
        "StyleGAN2-ADA (github.com/NVlabs/stylegan2-ada-pytorch, "
        "metrics/frechet_inception_distance.py)"
    ),
    arguments=("img", "return_features", "use_fp16", "no_output_bias"),
    video=False,
    feature_dim=2048,
    kwargs_uint8={"return_features": True},
    kwargs_float={"return_features": True},
    feature_layer="return_features=True: the 2048-d pool_3 features, before the logits",
    resize=(
        "inside the torchscript: every image to 299x299 by bilinear grid_sample (border padding, "
        "align_corners=False), as the TF Inception graph of Heusel et al.'s FID"
    ),
    antialias="none (bilinear grid_sample samples 4 pixels per output pixel)",
)

_REFERENCES = (I3D, INCEPTION)


def quantize_uint8(x: Tensor) -> Tensor:
    """Quantise ``[-1, 1]`` pixels to uint8 as StyleGAN2-ADA and StyleGAN-V do.

    ``u = floor(clamp(127.5·x + 128, 0, 255))``, i.e. ``round(127.5·(x + 1))`` with halves rounded
    up. Half-precision inputs are upcast to float32 first. The inverse ``x = u / 127.5 − 1`` of
    every uint8 value ``u`` comes back as ``u`` (float32, float16 and bfloat16).

    Truncating ``127.5·(x + 1)`` instead (``(x + 1) * 127.5`` then ``.to(torch.uint8)``) shifts
    every pixel down by half a level on average and turns many ``u`` into ``u − 1``: a bias the
    fake set gets and the real set (decoded straight to uint8) does not.

    Args:
        x: float tensor of any shape, values in [-1, 1].

    Returns:
        uint8 tensor of the same shape.
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    # After the clamp every value is >= 0, so the truncating cast is a floor.
    return (x * 127.5 + 128).clamp_(0, 255).to(torch.uint8)


def check_pixels(name: str, x: object) -> Tensor:
    """A uint8 tensor (pixels in [0, 255]) or a float tensor with finite values in [-1, 1].

    Float values up to ``RANGE_SLACK`` (1e-3) outside [-1, 1] are accepted (the quantiser clamps
    them); anything further out, or NaN, raises ``ValueError`` with the range found. Reads the
    values (one device synchronisation).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise TypeError(
            f"`{name}` must be a float tensor with pixels in [-1, 1] or a uint8 tensor with pixels "
            f"in [0, 255]; got dtype {x.dtype}"
        )
    if x.numel() == 0:
        raise ValueError(f"`{name}` must not be empty; got shape {tuple(x.shape)}")
    low, high = torch.stack(torch.aminmax(x.detach())).float().tolist()
    limit = 1 + RANGE_SLACK
    if not (low >= -limit and high <= limit):  # also catches NaN
        if high > 2:
            hint = " They look like [0, 255] pixels: pass uint8, or map them with x / 127.5 - 1."
        else:
            hint = ""
        raise ValueError(
            f"`{name}` must hold float pixels in [-1, 1] (the protocol quantises 127.5·x + 128 to "
            f"uint8; at most {RANGE_SLACK:g} of slack is clamped); got values in "
            f"[{low:.4g}, {high:.4g}].{hint}"
        )
    return x


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_file_message(path: Path) -> str:
    known = [ref for ref in _REFERENCES if ref.file == path.name] or list(_REFERENCES)
    where = "; ".join(f"{ref.file} is published by {ref.project} at {ref.url}" for ref in known)
    return (
        f"extractor file {str(path)!r} does not exist. {where}. genloss never downloads: fetch the "
        "file yourself and pass its path."
    )


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise FileNotFoundError(_missing_file_message(path))
    with warnings.catch_warnings():
        # torch >= 2.9 deprecates torch.jit.load; the reference detectors exist only as TorchScript.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as e:
            raise ValueError(
                f"`extractor` {str(path)!r} could not be loaded as a TorchScript file "
                f"(torch.jit.load said: {e})"
            ) from e


def _forward_arguments(fn: object) -> tuple[str, ...] | None:
    """The argument names of a TorchScript module's ``forward`` after ``self``; None otherwise."""
    forward = getattr(fn, "forward", None)
    schema = getattr(forward, "schema", None)
    if schema is None:
        return None
    return tuple(a.name for a in schema.arguments[1:])


def _describe_callable(fn: Callable[..., Tensor]) -> str:
    if isinstance(fn, torch.jit.ScriptModule):
        return f"TorchScript module {fn.original_name} (given in memory)"
    if isinstance(fn, nn.Module):
        count = sum(p.numel() for p in fn.parameters())
        cls = type(fn)
        return f"{cls.__module__}.{cls.__qualname__} ({count} parameters)"
    name = getattr(fn, "__qualname__", type(fn).__qualname__)
    return f"{getattr(fn, '__module__', type(fn).__module__)}.{name}"


def _batch_dependent(fn: object) -> bool:
    """Whether ``fn`` is a module with dropout or batch-norm layers in training mode."""
    if not isinstance(fn, nn.Module) or isinstance(fn, torch.jit.ScriptModule):
        return False
    layers = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
    return any(isinstance(m, layers) and m.training for m in fn.modules())


class FeatureExtractor(nn.Module):
    """A feature network for FVD/KVD (clips) or FID/KID (images), called as its reference calls it.

    Calling the extractor on a batch validates the pixels, quantises them (float [-1, 1] to uint8,
    see :func:`quantize_uint8`), repeats a single channel to RGB for the two reference files (as
    StyleGAN-V and StyleGAN2-ADA do), calls the network without gradients and returns its
    ``(N, D)`` features in float64.

    What the network receives:

    ============== ================================================ =============================
    extractor      ``quantize=True`` (default, as the references)   ``quantize=False``
    ============== ================================================ =============================
    I3D            uint8 [0, 255], ``rescale=True, resize=True,``   float32 [-1, 1],
                   ``return_features=True`` (StyleGAN-V)            ``rescale=False, resize=True``
    Inception      uint8 [0, 255], ``return_features=True``         float32 ``127.5·(x + 1)``
    other          float32 ``u / 127.5 − 1`` in [-1, 1]             float32 [-1, 1]
    ============== ================================================ =============================

    ``quantize=True`` rounds every pixel to one of 256 levels, as the references do: real data were
    uint8 on disk, and unrounded generated pixels would be a difference between the sets that the
    features may pick up. ``quantize=False`` skips the rounding (recorded in the protocol).

    A file given by its path is loaded on the CPU, put in eval mode and frozen; ``.to(device)``
    (or moving the metric that holds this extractor) moves them, and ``.train()`` leaves them in
    eval mode. A user callable is used as it is: it is not frozen or switched to eval mode (a
    module with dropout or batch-norm layers in training mode gets a warning, since they make its
    features depend on the batch).

    Args:
        extractor: path (``str`` or ``os.PathLike``) of a TorchScript file, or a callable mapping a
            batch to ``(N, D)`` features.
        video: True for clip extractors ``(B, C, T, H, W)`` (FVD, KVD), False for image extractors
            ``(N, C, H, W)`` (FID, KID).
        quantize: round pixels to 256 levels as the references do (True) or not.

    Raises:
        FileNotFoundError: the file does not exist; the message says where it is published.
        ValueError: the file is not TorchScript, or is the reference detector of the other kind
            (Inception for clips, I3D for images).
    """

    def __init__(
        self,
        extractor: str | os.PathLike[str] | Callable[..., Tensor],
        *,
        video: bool,
        quantize: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(video, bool):
            raise TypeError(f"`video` must be a bool; got {type(video).__name__}")
        if not isinstance(quantize, bool):
            raise TypeError(f"`quantize` must be a bool; got {type(quantize).__name__}")
        self.video = video
        self.quantize = quantize
        self.path: str | None = None
        self.sha256: str | None = None
        owned = False
        if isinstance(extractor, (str, os.PathLike)):
            path = Path(extractor)
            fn: Callable[..., Tensor] = _load_torchscript(path)
            self.path, self.sha256, owned = str(path), _sha256(path), True
            self.description = path.name
        elif callable(extractor):
            fn = extractor
            self.description = _describe_callable(fn)
        else:
            raise TypeError(
                "`extractor` must be the path of a TorchScript file or a callable mapping a batch "
                f"to (N, D) features; got {type(extractor).__name__}"
            )
        self.reference = self._recognise(fn)
        if self.reference is not None and self.reference.video != video:
            wanted = "clip (B, C, T, H, W)" if video else "image (N, C, H, W)"
            use = "FID/KID" if self.reference.video is False else "FVD/KVD"
            raise ValueError(
                f"`extractor` {self.description} is the {self.reference.kind} detector "
                f"({self.reference.file}), but this metric needs a {wanted} extractor; use {use} "
                "for its features"
            )
        if owned and isinstance(fn, nn.Module):
            fn.eval()
            for parameter in fn.parameters():  # ScriptModules have no requires_grad_()
                parameter.requires_grad_(False)
        self.owned = owned
        if isinstance(fn, nn.Module):
            self.network = fn  # registered, so .to(device) moves it
        else:
            self._fn = fn
        self._warned_training = False

    @staticmethod
    def _recognise(fn: object) -> _Reference | None:
        arguments = _forward_arguments(fn)
        for ref in _REFERENCES:
            if arguments == ref.arguments:
                return ref
        return None

    @property
    def fn(self) -> Callable[..., Tensor]:
        return self.network if "network" in self._modules else self._fn

    @property
    def kind(self) -> str:
        """``"i3d"``, ``"inception"``, ``"torchscript"`` (another file) or ``"callable"``."""
        if self.reference is not None:
            return self.reference.kind
        return "torchscript" if self.path is not None else "callable"

    def train(self, mode: bool = True) -> FeatureExtractor:
        # The files loaded here stay frozen in eval mode; a user's module keeps the mode it has.
        self.training = False
        return self

    def _device(self) -> torch.device | None:
        if isinstance(self.fn, nn.Module):
            for t in (*self.fn.parameters(), *self.fn.buffers()):
                return t.device
        return None

    def prepare(self, x: Tensor) -> Tensor:
        """The tensor the network receives for pixels ``x`` (checked with :func:`check_pixels`)."""
        ndim, what = (5, "(B, C, T, H, W) clips") if self.video else (4, "(N, C, H, W) images")
        if x.ndim != ndim:
            raise ValueError(f"`x` must be {what}; got shape {tuple(x.shape)} ({x.ndim}-D)")
        if x.shape[0] == 0:
            raise ValueError(f"`x` must hold at least one sample; got shape {tuple(x.shape)}")
        if self.reference is not None:
            if x.shape[1] not in (1, 3):
                raise ValueError(
                    "`x` must have 1 (grey) or 3 (RGB) channels in dim 1 for "
                    f"{self.reference.file}; "
                    f"got shape {tuple(x.shape)}"
                )
            if x.shape[1] == 1:
                x = x.expand(-1, 3, *x.shape[2:])
        # Rounding to 256 levels (quantize) and the dtype handed over are separate choices: the
        # reference files take uint8, everything else takes float32 in [-1, 1].
        if self.quantize and x.dtype != torch.uint8:
            x = quantize_uint8(x)
        if self.reference is not None and self.quantize:
            return x.contiguous()
        x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
        if self.kind == "inception":  # quantize=False: the file's own [0, 255] scale, unrounded
            x = (x + 1) * 127.5
        return x.contiguous()

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """``(N, D)`` float64 features of a batch of pixels (float [-1, 1] or uint8 [0, 255])."""
        x = check_pixels("x", x)
        batch = self.prepare(x)
        device = self._device()
        if device is not None:
            batch = batch.to(device)
        if not self._warned_training and _batch_dependent(self.fn):
            self._warned_training = True
            warnings.warn(
                f"`extractor` {self.description} has dropout or batch-norm layers in training "
                "mode, so its features depend on the batch; call .eval() on it",
                stacklevel=2,
            )
        kwargs = self.call_kwargs()
        try:
            out = self.fn(batch, **kwargs)
        except RuntimeError as e:
            hint = ""
            if self.kind == "i3d":
                hint = " (the I3D's temporal pooling needs enough frames; fvd2048_16f uses 16)"
            raise RuntimeError(
                f"`extractor` {self.description} failed on a {batch.dtype} batch of shape "
                f"{tuple(batch.shape)} called with {kwargs}{hint}: {e}"
            ) from e
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != batch.shape[0]:
            found = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"`extractor` {self.description} must return (N, D) features with N = "
                f"{batch.shape[0]} for this batch; got {found}"
            )
        if not out.is_floating_point():
            raise TypeError(
                f"`extractor` {self.description} returned dtype {out.dtype}; expected float"
            )
        return out.double()

    def call_kwargs(self) -> dict[str, bool]:
        """The keyword arguments the network is called with."""
        if self.reference is None:
            return {}
        return dict(self.reference.kwargs_uint8 if self.quantize else self.reference.kwargs_float)

    def protocol(self) -> dict[str, object]:
        """How features are computed: which network, its SHA-256, its input, resize and layer."""
        ref = self.reference
        layout = "(B, 3, T, H, W)" if self.video else "(N, 3, H, W)"
        if ref is None:
            layout = layout.replace("3", "C")
        if self.kind == "inception" and not self.quantize:
            network_input = f"float32 {layout}, 127.5*(x + 1) in [0, 255]"
        elif ref is not None and self.quantize:
            network_input = f"uint8 {layout} in [0, 255]"
        else:
            network_input = f"float32 {layout} in [-1, 1]"
        if self.quantize:
            quantisation = (
                "float pixels x in [-1, 1] rounded to uint8 floor(clamp(127.5*x + 128, 0, 255)) "
                "(StyleGAN2-ADA / StyleGAN-V); uint8 input used as is"
            )
            if ref is None:
                quantisation += "; handed over as u / 127.5 - 1"
        else:
            quantisation = "none (float pixels unrounded; uint8 input mapped to u / 127.5 - 1)"
        call = ", ".join(["x", *(f"{k}={v}" for k, v in self.call_kwargs().items())])
        return {
            "extractor": self.description,
            "extractor_kind": self.kind,
            "extractor_sha256": self.sha256,
            "extractor_source": ref.url if ref is not None else None,
            "extractor_call": f"extractor({call})",
            "input_value_range": "float pixels in [-1, 1] or uint8 pixels in [0, 255]",
            "quantisation": quantisation,
            "network_input": network_input
            + ("; 1-channel input repeated to 3" if ref is not None else ""),
            "resize": ref.resize if ref is not None else "none by genloss (the extractor's own)",
            "antialias": ref.antialias
            if ref is not None
            else "none by genloss (the extractor's own)",
            "feature_layer": ref.feature_layer if ref is not None else "the extractor's output",
        }

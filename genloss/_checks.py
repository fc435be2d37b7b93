"""Shared input validation, reductions and the half-precision upcast.

Every check raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong shape, value or
option) with a message that names the argument, what was expected and what was found. None of
them reads tensor values, so none forces a device synchronisation, except
:func:`check_pixel_range`, which scans the pixels once (one synchronisation); every caller of it
takes ``check_range=False`` to skip it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "REDUCTIONS",
    "ReductionModule",
    "at_least_float32",
    "check_broadcastable",
    "check_choice",
    "check_float_tensor",
    "check_flow",
    "check_grad_tensors",
    "check_image_or_video",
    "check_logits",
    "check_mask",
    "check_ndim",
    "check_pixel_range",
    "check_reduction",
    "check_returned_shape",
    "check_rgb_channels",
    "check_same_shape",
    "check_video",
    "masked_mean",
    "per_sample_mean",
    "reduce_masked",
    "reduce_per_sample",
    "reduce_real_fake",
]

REDUCTIONS = ("mean", "sum", "none")
# Pixels are documented in [-1, 1]; only values clearly outside (e.g. [0, 255] images) are errors,
# so a generator's last layer may overshoot a little.
PIXEL_RANGE_LIMIT = 1.5


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``."""
    check_choice("reduction", reduction, REDUCTIONS)


def check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices`` (the message lists them)."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {listed}; got {value!r}")


def check_positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (``True`` is not one), else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}")
    return value


def check_float_tensor(name: str, x: object) -> Tensor:
    """Raise ``TypeError`` unless ``x`` is a floating-point tensor; return it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"`{name}` must be a floating-point tensor (float16, bfloat16, float32 or float64); "
            f"got dtype {x.dtype}"
        )
    return x


def check_ndim(name: str, x: Tensor, ndims: int | Sequence[int], what: str = "") -> None:
    """Raise ``ValueError`` unless ``x.ndim`` is (one of) ``ndims``."""
    allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if x.ndim not in allowed:
        expected = " or ".join(f"{n}-D" for n in allowed)
        suffix = f" {what}" if what else ""
        raise ValueError(
            f"`{name}` must be a {expected} tensor{suffix}; got shape {tuple(x.shape)} ({x.ndim}-D)"
        )


def check_logits(name: str, x: object) -> Tensor:
    """Float discriminator outputs ``(B, ...)`` holding at least one logit."""
    x = check_float_tensor(name, x)
    check_ndim(name, x, range(1, 9), "(B, ...) of logits")
    if x.numel() == 0:
        raise ValueError(f"`{name}` must hold at least one logit; got shape {tuple(x.shape)}")
    return x


def check_grad_tensors(name: str, x: object) -> list[Tensor]:
    """A float tensor, or a non-empty sequence of them, that requires grad; returned as a list."""
    if isinstance(x, Tensor):
        labelled = [(name, x)]
    elif isinstance(x, Sequence) and not isinstance(x, (str, bytes)) and len(x) > 0:
        labelled = [(f"{name}[{i}]", t) for i, t in enumerate(x)]
    else:
        found = "an empty sequence" if isinstance(x, Sequence) else type(x).__name__
        raise TypeError(f"`{name}` must be a tensor or a non-empty sequence of tensors; got {found}")
    for label, t in labelled:
        check_float_tensor(label, t)
        if not t.requires_grad:
            raise ValueError(
                f"`{label}` must be part of the autograd graph (requires_grad=True), such as the "
                f"generator's output before any .detach(); got a tensor with requires_grad=False"
            )
    return [t for _, t in labelled]


def check_image_or_video(name: str, x: object) -> Tensor:
    """A float image ``(B, C, H, W)`` or video ``(B, C, T, H, W)``."""
    x = check_float_tensor(name, x)
    check_ndim(name, x, (4, 5), "(B, C, H, W) image or (B, C, T, H, W) video")
    return x


def check_video(name: str, x: object, *, min_frames: int = 1) -> Tensor:
    """A float video ``(B, C, T, H, W)`` with at least ``min_frames`` frames."""
    x = check_float_tensor(name, x)
    check_ndim(name, x, 5, "(B, C, T, H, W) video")
    if x.shape[2] < min_frames:
        raise ValueError(
            f"`{name}` must have at least {min_frames} frames (dim 2 of (B, C, T, H, W)); "
            f"got shape {tuple(x.shape)} with T={x.shape[2]}"
        )
    return x


def check_rgb_channels(
    name: str, x: Tensor, *, allow_grey: bool = False, network: str = ""
) -> None:
    """Raise ``ValueError`` unless images or clips ``x`` have 3 (or, ``allow_grey``, 1) channels
    in dim 1.

    Where the layout can be told apart, the message says what ``x`` looks like and how to permute
    it: a clip ``(B, T, C, H, W)`` (the channels in dim 2) or a channels-last image
    ``(B, H, W, C)``. ``network``, if given, names what needs the channels.
    """
    allowed = (1, 3) if allow_grey else (3,)
    if x.shape[1] in allowed:
        return
    hint = ""
    if x.ndim == 5 and x.shape[2] in allowed:
        hint = (
            "; it looks like (B, T, C, H, W): permute it to (B, C, T, H, W) with "
            "x.permute(0, 2, 1, 3, 4) (einops: rearrange(x, 'b t c h w -> b c t h w'))"
        )
    elif x.ndim == 4 and x.shape[3] in allowed:
        hint = (
            "; it looks like channels-last (B, H, W, C): permute it to (B, C, H, W) with "
            "x.permute(0, 3, 1, 2) (einops: rearrange(x, 'b h w c -> b c h w'))"
        )
    channels = "1 (grey) or 3 (RGB)" if allow_grey else "3 (RGB)"
    user = f" for {network}" if network else ""
    raise ValueError(
        f"`{name}` must have {channels} channels in dim 1{user}; got shape {tuple(x.shape)} "
        f"with {x.shape[1]} channels{hint}"
    )


def check_pixel_range(
    name: str,
    x: Tensor,
    low: float = -PIXEL_RANGE_LIMIT,
    high: float = PIXEL_RANGE_LIMIT,
    *,
    expected: str = "[-1, 1]",
    hint: str | None = "use x / 127.5 - 1",
) -> None:
    """Raise ``ValueError`` if ``x`` has NaN, inf or values outside ``[low, high]``.

    The one check here that reads values: one device synchronisation (``aminmax``, into which
    NaN propagates). ``expected`` is the documented range the message names; ``hint``, how to
    rescale, is added when the values look like [0, 255] pixels (above 2; ``None``: never). The
    message ends with the ``check_range=False`` option that every caller offers.
    """
    if x.numel() == 0:
        return
    lo, hi = torch.stack(torch.aminmax(x.detach())).float().tolist()
    skip = "Pass check_range=False to skip this check."
    if not (math.isfinite(lo) and math.isfinite(hi)):
        if math.isnan(lo) or math.isnan(hi):
            found = "it has NaN values"
        else:
            found = f"got values in [{lo:.4g}, {hi:.4g}]"
        raise ValueError(f"`{name}` must hold finite pixels in {expected}; {found}. {skip}")
    if lo < low or hi > high:
        looks = f" (looks like [0, 255] pixels: {hint})" if hint and hi > 2 else ""
        raise ValueError(
            f"`{name}` must hold pixels in {expected} (values outside [{low:g}, {high:g}] are "
            f"rejected); got values in [{lo:.4g}, {hi:.4g}]{looks}. {skip}"
        )


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have exactly the same shape (no broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape; "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_broadcastable(name: str, x: Tensor, to_name: str, shape: torch.Size) -> None:
    """Raise ``ValueError`` unless ``x`` broadcasts to ``shape`` without growing it."""
    try:
        out = torch.broadcast_shapes(x.shape, shape)
    except RuntimeError:
        out = None
    if out != shape or x.ndim > len(shape):
        raise ValueError(
            f"`{name}` must broadcast to the shape of `{to_name}` {tuple(shape)}; "
            f"got shape {tuple(x.shape)}"
        )


def check_flow(flow: object, frames: Tensor, frames_name: str, flow_name: str = "flow") -> Tensor:
    """A float flow ``(B, 2, *frames.shape[2:])``: 2 channels (x, y), same steps and size."""
    flow = check_float_tensor(flow_name, flow)
    expected = (frames.shape[0], 2, *frames.shape[2:])
    if tuple(flow.shape) != expected:
        layout = "(B, 2, T, H, W)" if frames.ndim == 5 else "(B, 2, H, W)"
        raise ValueError(
            f"`{flow_name}` must have shape {layout} = {expected} to match `{frames_name}` of "
            f"shape {tuple(frames.shape)} (2 channels: x then y displacement in pixels); "
            f"got {tuple(flow.shape)}"
        )
    return flow


def check_returned_shape(call: str, out: object, expected: tuple[int, ...], what: str) -> None:
    """Raise ``ValueError`` unless a user callable's result ``out`` is a tensor of ``expected``."""
    if not isinstance(out, Tensor) or tuple(out.shape) != expected:
        found = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"`{call}` must return {what} {expected}; got {found}")


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 if it is float16 or bfloat16; float32 and float64 are returned as they are.

    For the sums, squares, logs and coordinates whose range or precision half precision lacks.
    """
    return x.to(torch.promote_types(x.dtype, torch.float32))


def per_sample_mean(values: Tensor) -> Tensor:
    """Mean over every non-batch dimension: ``(B, ...) -> (B,)``."""
    if values.ndim == 1:
        return values
    return values.flatten(1).mean(dim=1)


def reduce_per_sample(per_sample: Tensor, reduction: str) -> Tensor:
    """Reduce a ``(B,)`` tensor of per-sample values as ``reduction`` says."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def reduce_real_fake(real_term: Tensor, fake_term: Tensor, reduction: str) -> Tensor:
    """Add a real and a fake per-sample term, ``(B_r,)`` and ``(B_f,)``, under ``reduction``.

    ``"mean"``/``"sum"`` reduce each side on its own, so the batches may differ in size;
    ``"none"`` pairs the samples and needs ``B_r == B_f``.
    """
    if reduction == "none":
        if real_term.shape != fake_term.shape:
            raise ValueError(
                "reduction='none' pairs real and fake samples, so `real_logits` and `fake_logits` "
                f"need the same batch size; got {real_term.shape[0]} and {fake_term.shape[0]}"
            )
        return real_term + fake_term
    return reduce_per_sample(real_term, reduction) + reduce_per_sample(fake_term, reduction)


def masked_mean(
    values: Tensor, mask: Tensor | None, dim: int | tuple[int, ...] | None = None
) -> Tensor:
    """``sum(mask * values) / sum(mask)`` over ``dim`` (every dim if ``None``).

    The mask is counted at ``values``' shape (broadcast first), in ``mask * values``' dtype, and
    the count is clamped to the dtype's smallest normal number, so where the mask is all zero the
    mean is 0, not NaN. ``mask=None`` is the plain mean.
    """
    if mask is None:
        return values.mean() if dim is None else values.mean(dim=dim)
    weighted = values * mask
    weights = mask.expand_as(values)
    if dim is None:
        total, count = weighted.sum(), weights.sum(dtype=weighted.dtype)
    else:
        total, count = weighted.sum(dim=dim), weights.sum(dim=dim, dtype=weighted.dtype)
    return total / count.clamp_min(torch.finfo(weighted.dtype).tiny)


def reduce_masked(elementwise: Tensor, reduction: str, mask: Tensor | None = None) -> Tensor:
    """Reduce an elementwise loss, optionally weighted by ``mask``.

    ``"mean"`` is :func:`masked_mean` over everything; ``"sum"`` and ``"none"`` weight each
    element by the mask first.
    """
    if reduction == "mean":
        return masked_mean(elementwise, mask)
    if mask is not None:
        elementwise = elementwise * mask
    return elementwise.sum() if reduction == "sum" else elementwise


def check_mask(mask: object, like: Tensor, like_name: str = "pred") -> Tensor:
    """A bool or float ``mask`` that broadcasts to ``like``; returned in ``like``'s dtype.

    Values are documented to lie in [0, 1] but are not scanned (that would sync the device).
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"`mask` must be a torch.Tensor or None; got {type(mask).__name__}")
    if not (mask.is_floating_point() or mask.dtype == torch.bool):
        raise TypeError(f"`mask` must be a bool or floating-point tensor; got dtype {mask.dtype}")
    check_broadcastable("mask", mask, like_name, like.shape)
    return mask.to(like.dtype)


class ReductionModule(nn.Module):
    """Base of the loss modules: validates and stores ``reduction``; subclasses add their options
    and a one-line ``forward`` that calls the pure function."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

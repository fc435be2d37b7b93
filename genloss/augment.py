"""Differentiable augmentation (DiffAugment) for images and videos, time-consistent for videos.

Augment *both* the real and the generated samples, every time the discriminator sees them (its
own step and the generator's), so the discriminator cannot memorise a small training set and
the generator still gets gradients through the augmentation::

    d_loss = gl.discriminator_loss(D(diff_augment(real)), D(diff_augment(fake.detach())))
    g_loss = gl.generator_loss(D(diff_augment(fake)))

Ops (``policy`` is a comma-separated list, applied in its order; ``"color"`` is the three
colour ops, in this order). Per clip (or image) ``u ~ U[0, 1)``; means are over the named axes
of one frame:

    brightness    x + (u - 0.5)
    saturation    (x - mean_C(x)) * 2u + mean_C(x)
    contrast      (x - mean_CHW(x)) * (u + 0.5) + mean_CHW(x)
    translation   shift by (dy, dx), integers uniform in [-s_H, s_H] x [-s_W, s_W] with
                  s_H = int(H * translation_ratio + 0.5) (ratio 1/8); zeros shift in
    cutout        zero a box of int(H * cutout_ratio + 0.5) x int(W * cutout_ratio + 0.5)
                  pixels (ratio 1/2), centre uniform over the frame, clipped at its edges

These are the ops and ranges of Zhao et al.'s reference implementation, which also works on
[-1, 1] pixels: "zero" is mid-grey, and nothing is clamped back into [-1, 1] (that would cut
the gradient). For videos ``(B, C, T, H, W)`` the parameters are drawn once per clip and every
frame gets the same transform, as in DIGAN (Yu et al. 2022) and StyleGAN-V (Skorokhodov et al.
2022): per-frame draws would make real clips jitter as much as fake ones and hide the temporal
coherence the video discriminator is there to judge (StyleGAN-V reports that quality "dropped a
lot" without consistent augmentation). Clips get independent parameters.

Written here rather than taken from a library: kornia's ``VideoSequential(same_on_frame=True)``
shares one draw across frames, but its colour ops expect [0, 1] images and its translation
resamples bilinearly, so it would not be the DiffAugment the papers measured, and it would be a
new dependency for about a hundred lines. The reference code is images-only.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ._checks import check_image_or_video

__all__ = ["OPS", "POLICIES", "DiffAugment", "apply_augment", "diff_augment", "sample_augment_params"]

#: The primitive ops, in the order ``"color"`` applies its three.
OPS = ("brightness", "saturation", "contrast", "translation", "cutout")
#: Names accepted in a policy string, and the ops each stands for.
POLICIES = {"color": OPS[:3], **{op: (op,) for op in OPS}}

DEFAULT_POLICY = "color,translation,cutout"


def _parse_policy(policy: object) -> tuple[str, ...]:
    """The primitive ops of ``policy``, in order; ``""`` means none."""
    if not isinstance(policy, str):
        raise TypeError(f"`policy` must be a comma-separated string; got {type(policy).__name__}")
    if not policy.strip():
        return ()
    ops: list[str] = []
    for name in (part.strip() for part in policy.split(",")):
        if name not in POLICIES:
            listed = ", ".join(repr(p) for p in POLICIES)
            raise ValueError(f"`policy` must be a comma-separated list of {listed}; got {name!r} in {policy!r}")
        for op in POLICIES[name]:
            if op in ops:
                raise ValueError(f"`policy` names {op!r} twice (\"color\" includes brightness, "
                                 f"saturation and contrast); got {policy!r}")
            ops.append(op)
    return tuple(ops)


def _check_ratio(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"`{name}` must be a number in [0, 1]; got {value!r}")
    return float(value)


def _half_up(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def sample_augment_params(
    x: Tensor,
    policy: str = DEFAULT_POLICY,
    *,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Draw one set of augmentation parameters per sample of ``x`` (per clip for videos).

    The draw depends only on ``B``, ``H``, ``W``, the policy, the ratios and the generator's
    state (not on ``T``, ``C`` or the dtype), in the policy's order, one tensor per op.

    Args:
        x: ``(B, C, H, W)`` or ``(B, C, T, H, W)``; only its shape and device are used.
        policy: comma-separated ops (module docstring); ``""`` draws nothing.
        translation_ratio: the largest shift as a fraction of the side, rounded half up.
        cutout_ratio: the cut-out box side as a fraction of the frame side, rounded half up.
        generator: draws from it (on its device) when given, else from the global RNG on
            ``x``'s device.

    Returns:
        op -> parameters on ``x``'s device, in application order: ``"brightness"``,
        ``"saturation"``, ``"contrast"``: ``(B,)`` float32 (the offset ``u - 0.5``, the factors
        ``2u`` and ``u + 0.5``); ``"translation"``: ``(B, 2)`` int64 ``(dy, dx)``;
        ``"cutout"``: ``(B, 4)`` int64 box ``(top, left, bottom, right)``, half-open, clipped.
    """
    x = check_image_or_video("x", x)
    ops = _parse_policy(policy)
    translation_ratio = _check_ratio("translation_ratio", translation_ratio)
    cutout_ratio = _check_ratio("cutout_ratio", cutout_ratio)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None; got {type(generator).__name__}")
    b, (h, w) = x.shape[0], x.shape[-2:]
    device = generator.device if generator is not None else x.device

    def uniform() -> Tensor:
        return torch.rand(b, generator=generator, device=device)

    def integers(low: Tensor | int, high: int) -> Tensor:  # uniform in [low, high)
        return torch.randint(low, high, (b,), generator=generator, device=device)

    params: dict[str, Tensor] = {}
    for op in ops:
        if op == "brightness":
            params[op] = uniform() - 0.5
        elif op == "saturation":
            params[op] = uniform() * 2
        elif op == "contrast":
            params[op] = uniform() + 0.5
        elif op == "translation":
            sh, sw = _half_up(h, translation_ratio), _half_up(w, translation_ratio)
            params[op] = torch.stack([integers(-sh, sh + 1), integers(-sw, sw + 1)], dim=1)
        else:  # cutout
            ch, cw = _half_up(h, cutout_ratio), _half_up(w, cutout_ratio)
            # Centres range over [0, H] for an even side and [0, H - 1] for an odd one, so the
            # box sticks out of either edge equally often (as in the reference implementation).
            top = integers(0, h + 1 - ch % 2) - ch // 2
            left = integers(0, w + 1 - cw % 2) - cw // 2
            params[op] = torch.stack([top.clamp(0, h), left.clamp(0, w),
                                      (top + ch).clamp(0, h), (left + cw).clamp(0, w)], dim=1)
    return {op: p.to(x.device) for op, p in params.items()}


def _check_params(params: object, b: int) -> None:
    if not isinstance(params, Mapping):
        raise TypeError(f"`params` must be a mapping of op -> tensor; got {type(params).__name__}")
    widths = {"translation": 2, "cutout": 4}
    for op, p in params.items():
        if op not in OPS:
            raise ValueError(f"`params` keys must be among {', '.join(map(repr, OPS))}; got {op!r}")
        if not isinstance(p, Tensor):
            raise TypeError(f"`params[{op!r}]` must be a tensor; got {type(p).__name__}")
        expected = (b, widths[op]) if op in widths else (b,)
        if tuple(p.shape) != expected:
            raise ValueError(f"`params[{op!r}]` must have shape {expected} for a batch of {b}; "
                             f"got {tuple(p.shape)}")
        if op in widths and p.is_floating_point():
            raise TypeError(f"`params[{op!r}]` must be an integer tensor; got dtype {p.dtype}")


def apply_augment(x: Tensor, params: Mapping[str, Tensor]) -> Tensor:
    """Apply drawn parameters (:func:`sample_augment_params`) to ``x``, in the mapping's order.

    ``translation`` ``(dy, dx)``: ``out[..., i, j] = x[..., i - dy, j - dx]``, 0 outside the
    frame. ``cutout`` box ``(top, left, bottom, right)``: ``out[..., top:bottom, left:right] = 0``.
    The colour ops as in the module docstring. A video's frames all get their clip's parameters,
    so ``apply_augment(video, p)[:, :, t]`` equals ``apply_augment(video[:, :, t], p)``.

    Args:
        x: ``(B, C, H, W)`` or ``(B, C, T, H, W)``, any float dtype.
        params: op -> parameters for a batch of ``B``.

    Returns:
        The augmented tensor, ``x``'s shape and dtype; differentiable w.r.t. ``x``.
    """
    x = check_image_or_video("x", x)
    _check_params(params, x.shape[0])
    is_image = x.ndim == 4
    y = x.unsqueeze(2) if is_image else x  # (B, C, T, H, W)
    b, c, t, h, w = y.shape

    def per_clip(p: Tensor) -> Tensor:
        return p.to(device=y.device, dtype=y.dtype).view(b, 1, 1, 1, 1)

    for op, p in params.items():
        if op == "brightness":
            y = y + per_clip(p)
        elif op == "saturation":
            mean = y.mean(dim=1, keepdim=True)
            y = (y - mean) * per_clip(p) + mean
        elif op == "contrast":
            mean = y.mean(dim=(1, 3, 4), keepdim=True)  # each frame's own mean, as for an image
            y = (y - mean) * per_clip(p) + mean
        elif op == "translation":
            p = p.to(y.device)
            rows = torch.arange(h, device=y.device) - p[:, :1]  # (B, H) source row of each output row
            cols = torch.arange(w, device=y.device) - p[:, 1:]  # (B, W)
            inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
            rows = rows.clamp(0, h - 1)[:, None, None, :, None].expand(b, c, t, h, w)
            cols = cols.clamp(0, w - 1)[:, None, None, None, :].expand(b, c, t, h, w)
            y = y.gather(3, rows).gather(4, cols)
            y = torch.where(inside[:, None, None], y, torch.zeros((), dtype=y.dtype, device=y.device))
        else:  # cutout
            p = p.to(y.device)
            ii = torch.arange(h, device=y.device)
            jj = torch.arange(w, device=y.device)
            in_rows = (ii >= p[:, 0:1]) & (ii < p[:, 2:3])  # (B, H)
            in_cols = (jj >= p[:, 1:2]) & (jj < p[:, 3:4])  # (B, W)
            box = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
            y = torch.where(box[:, None, None], torch.zeros((), dtype=y.dtype, device=y.device), y)
    return y.squeeze(2) if is_image else y


def diff_augment(
    x: Tensor,
    policy: str = DEFAULT_POLICY,
    *,
    generator: torch.Generator | None = None,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> Tensor:
    """Differentiable augmentation of images or videos; one transform per clip, shared by its frames.

    ``diff_augment(x) = apply_augment(x, sample_augment_params(x, policy, ...))``: the ops and
    their ranges are in the module docstring (brightness ±0.5, saturation ×[0, 2), contrast
    ×[0.5, 1.5), translation up to 1/8 of the side with zero fill, cutout of a half-side box).

    Args:
        x: ``(B, C, H, W)`` images or ``(B, C, T, H, W)`` videos in [-1, 1], any float dtype.
        policy: comma-separated ops among ``"color"``, ``"translation"``, ``"cutout"`` (and
            ``"brightness"``, ``"saturation"``, ``"contrast"`` on their own); ``""`` is the identity.
        generator: makes the draw reproducible (same state, same ``B, H, W``: same transforms).
        translation_ratio: the largest shift as a fraction of the side (rounded half up).
        cutout_ratio: the cut-out box side as a fraction of the frame side (rounded half up).

    Returns:
        ``x``'s shape and dtype; differentiable w.r.t. ``x``. Values may leave [-1, 1].

    Reference: Zhao, Liu, Lin, Zhu, Han, "Differentiable Augmentation for Data-Efficient GAN
    Training", NeurIPS 2020; for videos, Yu et al., "Generating Videos with Dynamics-aware
    Implicit Generative Adversarial Networks" (DIGAN), ICLR 2022.
    """
    params = sample_augment_params(x, policy, translation_ratio=translation_ratio,
                                   cutout_ratio=cutout_ratio, generator=generator)
    return apply_augment(x, params) if params else x


class DiffAugment(nn.Module):
    """:func:`diff_augment` as a module: stores the policy and ratios; ``forward(x, generator=None)``."""

    def __init__(
        self, policy: str = DEFAULT_POLICY, *, translation_ratio: float = 0.125, cutout_ratio: float = 0.5
    ) -> None:
        super().__init__()
        _parse_policy(policy)
        self.policy = policy
        self.translation_ratio = _check_ratio("translation_ratio", translation_ratio)
        self.cutout_ratio = _check_ratio("cutout_ratio", cutout_ratio)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return diff_augment(x, self.policy, generator=generator, translation_ratio=self.translation_ratio,
                            cutout_ratio=self.cutout_ratio)

    def extra_repr(self) -> str:
        return (f"policy={self.policy!r}, translation_ratio={self.translation_ratio}, "
                f"cutout_ratio={self.cutout_ratio}")

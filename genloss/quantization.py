"""Losses of discrete video tokenizers: VQ codebook and commitment terms, and the LFQ entropy
penalty.

Latents are channels first, ``(B, D, ...)``: ``(B, D, h, w)`` for images, ``(B, D, t, h, w)``
for videos, where ``D`` is the code dimension.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from ._checks import (
    ReductionModule,
    at_least_float32,
    check_choice,
    check_float_tensor,
    check_ndim,
    check_positive_int,
    check_reduction,
    check_same_shape,
    per_sample_mean,
    reduce_per_sample,
)

__all__ = [
    "LFQEntropyLoss",
    "VectorQuantizationLoss",
    "codebook_loss",
    "commitment_loss",
    "lfq_entropy_loss",
    "lfq_entropy_terms",
    "vector_quantization_loss",
]

#: The largest code dimension per codebook for which the 2^d codes are enumerated.
MAX_LFQ_BITS = 20


def _check_pair(z_e: object, z_q: object) -> tuple[Tensor, Tensor]:
    z_e = check_float_tensor("z_e", z_e)
    z_q = check_float_tensor("z_q", z_q)
    check_ndim("z_e", z_e, range(2, 9), "(B, D, ...) of encoder outputs")
    check_same_shape("z_e", z_e, "z_q", z_q)
    return z_e, z_q


def codebook_loss(z_e: Tensor, z_q: Tensor, *, reduction: str = "mean") -> Tensor:
    """VQ-VAE codebook loss ``‖sg[z_e] − e‖²``: moves the chosen codes toward the encoder outputs.

    Elementwise ``(z_q − sg[z_e])²``, gradients into ``z_q`` (the codebook entries) only.

    Args:
        z_e: ``(B, D, ...)`` encoder outputs.
        z_q: same shape: the selected codebook vectors (before any straight-through trick).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``, each sample's mean).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: van den Oord et al., "Neural Discrete Representation Learning", NeurIPS 2017, eq. 3.
    """
    z_e, z_q = _check_pair(z_e, z_q)
    check_reduction(reduction)
    return reduce_per_sample(per_sample_mean((z_q - z_e.detach()).square()), reduction)


def commitment_loss(z_e: Tensor, z_q: Tensor, *, reduction: str = "mean") -> Tensor:
    """VQ-VAE commitment loss ``‖z_e − sg[e]‖²``: keeps the encoder close to its codes.

    Elementwise ``(z_e − sg[z_q])²``, gradients into ``z_e`` only. For LFQ, ``z_q = sign(z_e)``
    (Open-MAGVIT2's and vector-quantize-pytorch's ``commit_loss``).

    Args:
        z_e: ``(B, D, ...)`` encoder outputs.
        z_q: same shape: the selected codes.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``, each sample's mean).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: van den Oord et al., NeurIPS 2017, eq. 3 (the β term).
    """
    z_e, z_q = _check_pair(z_e, z_q)
    check_reduction(reduction)
    return reduce_per_sample(per_sample_mean((z_e - z_q.detach()).square()), reduction)


def vector_quantization_loss(
    z_e: Tensor, z_q: Tensor, *, beta: float = 0.25, reduction: str = "mean"
) -> Tensor:
    """The VQ-VAE quantizer loss: ``‖sg[z_e] − e‖² + β‖z_e − sg[e]‖²``.

    As taming-transformers' ``VectorQuantizer2`` with ``legacy=False``. Its default
    ``legacy=True``, which the released VQGAN models use, puts β on the codebook term instead:
    ``commitment_loss + β · codebook_loss`` (see :func:`genloss.recipes.taming_vqgan`).

    Args:
        z_e: ``(B, D, ...)`` encoder outputs.
        z_q: same shape: the selected codebook vectors.
        beta: commitment factor β.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: van den Oord et al., NeurIPS 2017, eq. 3; CompVis/taming-transformers
    ``taming/modules/vqvae/quantize.py``.
    """
    return codebook_loss(z_e, z_q, reduction=reduction) + beta * commitment_loss(
        z_e, z_q, reduction=reduction
    )


def _lfq_codebook(bits: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """All ``2^bits`` codes in ``{-1, 1}^bits``: ``(2^bits, bits)``."""
    index = torch.arange(2**bits, device=device)
    mask = 2 ** torch.arange(bits, device=device)
    return ((index[:, None] & mask) != 0).to(dtype) * 2 - 1


def lfq_entropy_terms(
    z: Tensor,
    *,
    num_codebooks: int = 1,
    temperature: float = 0.01,
    eps: float = 1e-5,
    log: str = "clamp",
) -> tuple[Tensor, Tensor]:
    """The two entropies of the LFQ penalty: ``(per_sample_entropy, codebook_entropy)``.

    For each latent vector (token) split into ``num_codebooks`` chunks of ``d`` bits, the soft
    assignment to the ``2^d`` codes ``c ∈ {-1, 1}^d`` is ``q = softmax(2 z·c / temperature)``
    (``2 z·c`` is the negative squared distance up to a constant). Then

    - ``per_sample_entropy`` ``(B,)``: each sample's mean over its tokens and codebooks of
      ``H(q) = −Σ_c q_c log q_c``;
    - ``codebook_entropy`` (0-d): ``H(q̄)`` of the assignment averaged over every token of the
      batch, averaged over the codebooks.

    ``log="clamp"`` uses ``log(max(q, eps))`` in both (vector-quantize-pytorch);
    ``log="add"`` uses the exact ``log_softmax`` for the per-token entropy and ``log(q̄ + eps)``
    for the batch one (Open-MAGVIT2's ``entropy_loss``).

    Args:
        z: ``(B, D, ...)`` pre-quantization latents, ``D = num_codebooks · d``, ``d <= 20``.
        num_codebooks: how many independent codebooks the D channels are split into.
        temperature: softmax temperature (both references: 0.01, i.e. ``inv_temperature=100``).
        eps: the log's floor or offset.
        log: ``"clamp"`` or ``"add"`` (see above).

    Returns:
        ``(per_sample_entropy (B,), codebook_entropy ())``, float32 or float64.
    """
    check_float_tensor("z", z)
    check_ndim("z", z, range(2, 9), "(B, D, ...) of latents")
    check_choice("log", log, ("clamp", "add"))
    check_positive_int("num_codebooks", num_codebooks)
    if z.shape[1] % num_codebooks:
        raise ValueError(
            f"`z` has D={z.shape[1]} channels, not a multiple of num_codebooks={num_codebooks}"
        )
    bits = z.shape[1] // num_codebooks
    if bits > MAX_LFQ_BITS:
        raise ValueError(f"LFQ enumerates 2^d codes per codebook; d={bits} > {MAX_LFQ_BITS} is too large")
    if not temperature > 0:
        raise ValueError(f"`temperature` must be positive; got {temperature!r}")
    z = at_least_float32(z)
    # (B, D, ...) -> (B, N tokens, codebooks, bits)
    tokens = rearrange(z.flatten(2), "b (k d) n -> b n k d", k=num_codebooks)
    codes = _lfq_codebook(bits, z.device, z.dtype)  # (2^d, d)
    logits = 2 * torch.einsum("bnkd,cd->bnkc", tokens, codes) / temperature
    probs = logits.softmax(dim=-1)
    if log == "clamp":
        log_probs = probs.clamp_min(eps).log()
    else:
        log_probs = logits.log_softmax(dim=-1)
    per_sample = -(probs * log_probs).sum(dim=-1).flatten(1).mean(dim=1)  # (B,)
    average = probs.mean(dim=(0, 1))  # (codebooks, 2^d)
    log_average = average.clamp_min(eps).log() if log == "clamp" else (average + eps).log()
    codebook = -(average * log_average).sum(dim=-1).mean()
    return per_sample, codebook


def lfq_entropy_loss(
    z: Tensor,
    *,
    num_codebooks: int = 1,
    temperature: float = 0.01,
    sample_weight: float = 1.0,
    codebook_weight: float = 1.0,
    eps: float = 1e-5,
    log: str = "clamp",
    reduction: str = "mean",
) -> Tensor:
    """LFQ entropy penalty: confident per-token assignments, uniform use of the codebook.

    ``L = sample_weight · mean_tokens H(q) − codebook_weight · H(mean_tokens q)`` with the soft
    code assignments ``q`` of :func:`lfq_entropy_terms`. ``codebook_weight`` is
    vector-quantize-pytorch's ``diversity_gamma`` (magvit2-pytorch: 2.5) and Open-MAGVIT2's
    ``batch_maximization_weight``. The codebook entropy is a statistic of the whole batch:
    ``"none"`` gives each sample its own per-token entropy minus that shared term, so the mean of
    the ``(B,)`` values is the ``"mean"`` result.

    Args:
        z: ``(B, D, ...)`` pre-quantization latents (channels first).
        num_codebooks, temperature, eps, log: as for :func:`lfq_entropy_terms`.
        sample_weight: factor of the per-token entropy (Open-MAGVIT2's
            ``sample_minimization_weight``).
        codebook_weight: factor of the batch (codebook) entropy.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``"none"``.

    Reference: Yu et al., "Language Model Beats Diffusion — Tokenizer is Key to Visual
    Generation" (MAGVIT-v2), ICLR 2024, eq. 5; lucidrains/vector-quantize-pytorch
    ``vector_quantize_pytorch/lookup_free_quantization.py``; TencentARC/Open-MAGVIT2
    ``src/Open_MAGVIT2/modules/vqvae/lookup_free_quantize.py`` (``entropy_loss``).
    """
    check_reduction(reduction)
    per_sample, codebook = lfq_entropy_terms(
        z, num_codebooks=num_codebooks, temperature=temperature, eps=eps, log=log
    )
    return reduce_per_sample(sample_weight * per_sample - codebook_weight * codebook, reduction)


class VectorQuantizationLoss(ReductionModule):
    """Module form of :func:`vector_quantization_loss`."""

    def __init__(self, beta: float = 0.25, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, z_e: Tensor, z_q: Tensor) -> Tensor:
        return vector_quantization_loss(z_e, z_q, beta=self.beta, reduction=self.reduction)


class LFQEntropyLoss(ReductionModule):
    """Module form of :func:`lfq_entropy_loss`."""

    def __init__(
        self,
        *,
        num_codebooks: int = 1,
        temperature: float = 0.01,
        sample_weight: float = 1.0,
        codebook_weight: float = 1.0,
        eps: float = 1e-5,
        log: str = "clamp",
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        check_choice("log", log, ("clamp", "add"))
        self.num_codebooks, self.temperature, self.eps, self.log = num_codebooks, temperature, eps, log
        self.sample_weight, self.codebook_weight = sample_weight, codebook_weight

    def forward(self, z: Tensor) -> Tensor:
        return lfq_entropy_loss(
            z, num_codebooks=self.num_codebooks, temperature=self.temperature,
            sample_weight=self.sample_weight, codebook_weight=self.codebook_weight,
            eps=self.eps, log=self.log, reduction=self.reduction,
        )

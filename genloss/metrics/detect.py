"""How detectable generated samples are: a classifier two-sample test.

A small classifier learns to tell ``real`` from ``fake`` on one half of each set, and its accuracy
on the other halves is the score: 0.5 when the sets cannot be told apart, 1.0 when every held-out
sample is classified correctly. The score needs no pretrained weights, so it works offline and on
any data, including data no published feature extractor was trained on (Lopez-Paz & Oquab,
"Revisiting Classifier Two-Sample Tests", ICLR 2017).

Protocols (``detectability(..., protocol=...)``, docs/detector.md):

* ``"default"``: whole samples through :class:`Detector` (strided convolutions, global average
  pooling), 150 steps: cheap, and the number earlier results were computed with.
* ``"frames"``: every generated frame is one sample, judged by :class:`LocalDetector` (max
  pooling down to about 8x8, global max) for 1200 steps: sees local per-frame artefacts
  (blur, shape, colour) that averaging over a whole clip washes out.
* ``"clips"``: whole clips, frames stacked as channels, through :class:`LocalDetector`, 1200
  steps: sees the same local detail plus how neighbouring frames relate (a repeated frame).
* ``"strong"``: both of the last two, reported side by side (``result.frame``, ``result.clip``).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from statistics import NormalDist

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_image_or_video

__all__ = [
    "PROTOCOLS",
    "DetectabilityResult",
    "Detector",
    "LocalDetector",
    "auc_mann_whitney",
    "detectability",
    "wilson_interval",
]

# The default protocol: 150 Adam steps on 32 + 32 samples, the learning rate decayed from 1e-3 to 0
# on a cosine (the last iterate of a constant rate is noisy: on subtly blurred clips the held-out
# accuracy swung by 0.15 between neighbouring checkpoints). It reaches the sanity anchors with
# margin in about 15 s of CPU time on 512 + 512 clips of 6x32x32 (README, "Detector score"); the
# cost is linear in `steps`.
DEFAULT_STEPS = 150
BATCH_PER_SET = 32
LEARNING_RATE = 1e-3
EVAL_BATCH = 256
# One clip of each set trains the classifier and one is scored: the least that defines the test.
MIN_SAMPLES = 2

PROTOCOLS = ("default", "frames", "clips", "strong")
# The local protocols ("frames", "clips", "strong"): trained to convergence, as the independent
# judge that saw what "default" missed on the reference run (frames 0.823 where "default" read
# 0.52): 1200 Adam steps on 32 + 32 samples, 1e-3 decayed to 0 on a cosine. At 6x32x32 that is
# about 9 epochs of 2048 + 2048 clips' generated frames. Cost: docs/detector.md.
LOCAL_STEPS = 1200
LOCAL_BATCH_PER_SET = 32
LOCAL_LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class DetectabilityResult:
    """The outcome of :func:`detectability`, with what is needed to reproduce and record it.

    Attributes:
        accuracy: fraction of held-out samples classified correctly (logit > 0 means real);
            0.5 = indistinguishable, 1.0 = trivially detected.
        auc: ROC AUC of the held-out logits (real as the positive class), ties counted 1/2.
        interval: 95% Wilson score interval of ``accuracy``, ``(low, high)``.
        p_value: one-sided exact binomial p-value of ``correct`` out of ``n_test`` against
            chance (``P(K >= correct)``, ``K ~ Binomial(n_test, 1/2)``), the test's answer to
            "are the two sets different?".
        correct: number of correctly classified held-out samples.
        n_train: samples the classifier was trained on (real + fake, equal numbers).
        n_test: held-out samples scored (real + fake, equal numbers).
        steps: optimiser steps.
        batch_size: samples per step (half real, half fake).
        seed: the seed of the split, the batch order and the classifier's initialisation.
        model: ``"default"``, ``"LocalDetector"``, or the class name of the caller's classifier.
        protocol: the protocol's name (:data:`PROTOCOLS`).
        learning_rate: Adam's initial learning rate (decayed to 0 on a cosine).
        sample: what one sample is: ``"clip"``, ``"image"`` or ``"frame"`` (then ``n_train``,
            ``n_test`` and ``correct`` count frames).
        context_frames: leading frames of each clip that are not scored as frames (given, not
            generated); 0 when whole clips or images are the samples.
        n_test_clips: with frame samples, the held-out clips they come from: ``interval`` and
            ``p_value`` count these, not the frames (a clip's frames are not independent
            samples), so both are conservative. ``None`` otherwise.
        frame: for ``"strong"``, the frame judge's own result (protocol ``"frames"``).
        clip: for ``"strong"``, the clip judge's own result (protocol ``"clips"``). The strong
            result's headline (``accuracy``, ``auc``, ``interval``, ``correct``, counts,
            ``sample``) is the judge with the higher accuracy (the clip judge on a tie), and
            its ``p_value`` is Bonferroni-corrected for picking one of two: ``min(1, 2 min(p))``.
    """

    accuracy: float
    auc: float
    interval: tuple[float, float]
    p_value: float
    correct: int
    n_train: int
    n_test: int
    steps: int
    batch_size: int
    seed: int
    model: str
    protocol: str = "default"
    learning_rate: float = LEARNING_RATE
    sample: str = "clip"
    context_frames: int = 0
    n_test_clips: int | None = None
    frame: DetectabilityResult | None = None
    clip: DetectabilityResult | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain Python values, ready for ``json.dumps``: the interval as a list, the strong
        protocol's ``frame`` and ``clip`` results as nested dicts; fields that are ``None``
        (``n_test_clips``, ``frame``, ``clip`` where they do not apply) are left out."""
        out: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, DetectabilityResult):
                value = value.as_dict()
            elif field.name == "interval":
                value = list(value)
            out[field.name] = value
        return out


class Detector(nn.Module):
    """The default classifier: strided convolutions, global average pooling, one logit.

    Each stage is a 3x3(x3) convolution with stride 2 in space followed by LeakyReLU(0.2);
    stages are added until the feature map is at most 4x4 (3 stages at 32x32, 4 at 64x64), with
    32, 64, 128, 256, 256, ... channels. For videos the first stage keeps the time resolution, so
    the first layer sees consecutive frames (motion); later stages halve time while it exceeds
    2 frames. No normalisation layers: the statistics of a batch would leak between samples.

    Args:
        channels: input channels ``C``.
        size: ``(H, W)`` of the input, or ``(T, H, W)`` for videos (3-D convolutions).
    """

    def __init__(self, channels: int, size: tuple[int, ...]) -> None:
        super().__init__()
        video = len(size) == 3
        conv = nn.Conv3d if video else nn.Conv2d
        frames, height, width = size if video else (1, *size)
        stages = max(1, math.ceil(math.log2(max(height, width) / 4)))
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(stages):
            c_out = min(32 * 2**i, 256)
            if video:
                time_stride = 2 if i > 0 and frames > 2 else 1
                frames = (frames - 1) // time_stride + 1
                stride: int | tuple[int, ...] = (time_stride, 2, 2)
            else:
                stride = 2
            layers += [conv(c_in, c_out, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, [T,] H, W)`` -> ``(N,)`` logits."""
        features = self.features(x)
        return self.head(features.flatten(2).mean(dim=2)).squeeze(1)  # global average pool


class LocalDetector(nn.Module):
    """The local protocols' classifier: convolutions and max pooling down to about 8x8, then a
    global max, so a small artefact anywhere in the frame decides the logit.

    ``conv3x3(C_in -> 32) · LeakyReLU(0.2)``, then per halving ``MaxPool2d(2) · conv3x3 ·
    LeakyReLU(0.2)`` with 64, 128, 256, ... channels (at most 256) until the shorter side is
    about 8 (``round(log2(min(H, W) / 8))`` halvings: 2 at 32x32, 1 at 16x16, 3 at 64x64), then
    the maximum of each channel over the map and a linear layer to one logit. Max pooling (not strided convolutions and a global
    *average*, as :class:`Detector`) keeps the strongest local response at each stage: an edge a
    pixel too soft or a corner a pixel too round is a small share of a frame's area and averages
    away. The receptive field at the head (18 px at 32x32) spans a whole shape of the moving
    shapes data. No normalisation layers (batch statistics would leak between samples).

    Args:
        channels: input channels ``C``.
        size: ``(H, W)`` of a frame.
        frames: ``None`` for images/frames ``(N, C, H, W)``; ``T`` for clips ``(N, C, T, H, W)``,
            whose frames are stacked as ``C·T`` channels (``b c t h w -> b (c t) h w``), so the
            first layer compares neighbouring frames at each pixel (motion, repeats).
    """

    def __init__(self, channels: int, size: tuple[int, int], frames: int | None = None) -> None:
        super().__init__()
        self.frames = frames
        height, width = size
        halvings = max(0, round(math.log2(min(height, width) / 8)))
        c_in = channels * (frames or 1)
        layers: list[nn.Module] = [nn.Conv2d(c_in, 32, 3, padding=1), nn.LeakyReLU(0.2)]
        c_in = 32
        for i in range(halvings):
            c_out = min(64 * 2**i, 256)
            layers += [nn.MaxPool2d(2), nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)``, or ``(N, C, T, H, W)`` when built with ``frames``, -> ``(N,)`` logits."""
        if self.frames is not None:
            x = x.flatten(1, 2)  # (N, C, T, H, W) -> (N, C·T, H, W), channel-major as "b (c t) h w"
        features = self.features(x)
        return self.head(features.flatten(2).amax(dim=2)).squeeze(1)  # global max over the map


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``correct / total``.

    With ``p = k / n`` and ``z`` the two-sided normal quantile of ``confidence``:
    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``. Unlike the normal approximation it
    stays inside [0, 1] and keeps its coverage near 0 and 1 (Wilson 1927); it is
    ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``, written out so the library
    needs no scipy.
    """
    if total <= 0:
        raise ValueError(f"`total` must be positive; got {total}")
    return _wilson(correct / total, total, confidence)


def _wilson(p: float, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """:func:`wilson_interval` of a proportion ``p`` (not necessarily ``k / total``) over ``total`` trials."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    z2n = z * z / total
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / total + z2n / (4 * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_tail(correct: int, total: int) -> float:
    """``P(K >= correct)`` for ``K ~ Binomial(total, 1/2)``, summed in log space (any ``total``)."""
    if correct <= 0:
        return 1.0
    log_half_n = total * math.log(0.5)
    logs = [
        math.lgamma(total + 1) - math.lgamma(j + 1) - math.lgamma(total - j + 1) + log_half_n
        for j in range(correct, total + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def auc_mann_whitney(positive: Tensor, negative: Tensor) -> float:
    """ROC AUC from scores: ``P(s_pos > s_neg) + P(s_pos = s_neg) / 2``, by ranks.

    ``AUC = (R_pos - n_pos(n_pos + 1)/2) / (n_pos·n_neg)`` with ``R_pos`` the sum of the positive
    scores' ranks in the pooled sample, tied scores sharing their mean rank: the Mann-Whitney U
    statistic over ``n_pos·n_neg``, which is the area under the ROC curve with ties counted 1/2.
    O(n log n); computed in float64. (Written out: the formula is four lines and torchmetrics
    or scikit-learn would be a dependency for it.)

    Args:
        positive: ``(n_pos,)`` scores of the positive class.
        negative: ``(n_neg,)`` scores of the negative class.
    """
    scores = torch.cat([positive.flatten(), negative.flatten()]).double().cpu()
    values, inverse, counts = torch.unique(scores, sorted=True, return_inverse=True, return_counts=True)
    del values
    ends = counts.cumsum(0).double()  # the last 1-based rank of each distinct value
    mean_rank = ends - (counts.double() - 1) / 2
    n_pos, n_neg = positive.numel(), negative.numel()
    rank_sum = mean_rank[inverse[:n_pos]].sum().item()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def detectability(
    real: Tensor,
    fake: Tensor,
    *,
    steps: int | None = None,
    seed: int = 0,
    model: Callable[[], nn.Module] | nn.Module | None = None,
    protocol: str = "default",
    context_frames: int = 0,
) -> DetectabilityResult:
    """Classifier two-sample test: how well a small classifier tells ``fake`` from ``real``.

    Protocol ``"default"``:

    1. Each set is split in half by a seeded permutation. When the sets have the same size the
       *same* permutation splits both, so sample ``i`` of ``real`` and sample ``i`` of ``fake``
       land in the same half: paired sets (a real clip and the generated continuation of its
       context frames) then never have one member in training and the other in the test half,
       where the classifier could match the test clip's shared context frames against what it
       memorised rather than judge realism. Sets of different sizes are cut to the smaller size
       (with a warning), so that chance stays at 0.5.
    2. A fresh classifier (:class:`Detector` unless ``model`` is given: 3-D convolutions for
       videos, 2-D for images) is trained on the first halves for ``steps`` Adam steps, the
       learning rate decayed from 1e-3 to 0 on a cosine, on batches of 32 real + 32 fake samples
       (fewer when a half is smaller) drawn epoch by epoch in seeded order, with binary
       cross-entropy on the logits, real = 1 (``F.binary_cross_entropy_with_logits``; on these
       balanced batches it is half of genloss's
       ``discriminator_loss(real_logits, fake_logits, kind="non_saturating")``).
    3. The second halves are scored: ``accuracy`` at logit threshold 0 (logit > 0 means real),
       the ROC ``auc`` of the logits, the 95% Wilson ``interval`` of the accuracy and the exact
       binomial ``p_value`` against chance.

    The local protocols keep steps 1 and 3 (the split is by whole clip, so a clip's frames are
    never on both sides) and change the judge: :class:`LocalDetector` (max pooling, global max),
    1200 steps (:data:`LOCAL_STEPS`) on 32 + 32 samples, 1e-3 on a cosine.

    * ``"frames"``: each of the frames ``context_frames .. T-1`` of every clip is one sample
      (for images, each image): the frames' content alone, as a per-frame realism test.
      ``n_train``, ``n_test`` and ``correct`` count frames; the ``interval`` and ``p_value``
      count held-out clips (``n_test_clips``), since one clip's frames are not independent.
    * ``"clips"``: each whole clip is one sample, its frames stacked as channels.
    * ``"strong"``: ``"frames"`` and ``"clips"`` with the same seed (so the same clip split),
      reported in ``result.frame`` and ``result.clip``; the headline fields are the judge with
      the higher accuracy, its p-value corrected for the choice (Bonferroni, ``2 min(p)``).

    Reading it: 0.5 (the interval containing 0.5) means this classifier, with this much data,
    cannot tell the sets apart; 1.0 means it always can. The test is only as strong as the
    classifier and the number of samples: the interval's half-width is about ``1/sqrt(n_test)``.
    Compare numbers computed with the same protocol (``protocol``, ``steps``, sample counts,
    clip size): ``as_dict()`` records them. "default" misses local per-frame artefacts that
    "frames" sees (docs/detector.md); use "strong" to judge a generator, "default" to compare
    with earlier numbers.

    The run is deterministic for a given ``seed`` on a given device: a :class:`torch.Generator`
    draws the split and the batch order, the classifier is initialised under a forked,
    seeded global RNG (the caller's RNG state is left as it was), and cuDNN is asked for
    deterministic algorithms while it trains. It runs on the inputs' device, in float32, with
    gradients enabled and autocast off whatever the caller's context; the thread count is not
    touched.

    Args:
        real: ``(N_r, C, T, H, W)`` clips or ``(N_r, C, H, W)`` images in [-1, 1].
        fake: ``(N_f, ...)``, the same shape as ``real`` but for the batch dimension, same dtype
            and device. Each set needs at least 2 samples.
        steps: optimiser steps; ``None`` is the protocol's (150 for "default", 1200 for the
            local protocols).
        seed: seed of the split, the batch order and the classifier's initialisation.
        model: the classifier, instead of the protocol's (not with "strong", which trains two):
            a zero-argument callable returning a fresh ``nn.Module`` (called under the seeded
            RNG, so its initialisation is reproducible), or an ``nn.Module``, which is
            deep-copied and trained from its current weights (the caller's module is never
            trained in place). It maps a float32 batch of samples (``(n, C, H, W)`` frames for
            "frames", else ``(n, C, [T,] H, W)``) to ``(n,)`` or ``(n, 1)`` logits, real =
            positive; it is moved to the inputs' device and to float32, put in train mode to
            train and in eval mode to score.
        protocol: ``"default"``, ``"frames"``, ``"clips"`` or ``"strong"`` (see above); "clips"
            and "strong" need clips.
        context_frames: for "frames" and "strong" on clips, the leading frames given to the
            generator (identical in paired sets): they are not scored as frames. Must be 0
            otherwise, and less than ``T``.

    Returns:
        :class:`DetectabilityResult` (``as_dict()`` gives a JSON-ready dict).

    Example:
        >>> real = torch.rand(64, 3, 6, 16, 16) * 2 - 1
        >>> frozen = real[:, :, :1].expand_as(real)        # every frame is the first one
        >>> detectability(real, frozen, steps=50).accuracy  # doctest: +SKIP
        1.0
        >>> result = detectability(real, generated, protocol="strong", context_frames=2)  # doctest: +SKIP
        >>> result.frame.accuracy, result.clip.accuracy  # doctest: +SKIP
    """
    real, fake = _check_sets(real, fake)
    check_choice("protocol", protocol, PROTOCOLS)
    if steps is None:
        steps = DEFAULT_STEPS if protocol == "default" else LOCAL_STEPS
    elif isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int or None; got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int; got {type(seed).__name__}")
    if model is not None and not (isinstance(model, nn.Module) or callable(model)):
        raise TypeError(
            "`model` must be None, an nn.Module or a zero-argument callable returning one; "
            f"got {type(model).__name__}"
        )
    if model is not None and protocol == "strong":
        raise ValueError("`model` replaces one classifier and protocol 'strong' trains two; "
                         "use protocol 'frames' or 'clips' with a `model`")
    video = real.dim() == 5
    if protocol in ("clips", "strong") and not video:
        raise ValueError(f"protocol {protocol!r} needs clips (N, C, T, H, W); got shape {tuple(real.shape)}")
    _check_context_frames(context_frames, protocol, real.shape[2] if video else None)
    if len(real) != len(fake):
        n = min(len(real), len(fake))
        warnings.warn(
            f"detectability: `real` has {len(real)} samples and `fake` {len(fake)}; using {n} random "
            f"samples of `{'real' if len(real) > n else 'fake'}` so that both classes are equally "
            "represented (chance = 0.5)",
            stacklevel=2,
        )

    if protocol != "strong":
        return _run(real, fake, protocol, steps, seed, model, context_frames)
    frame = _run(real, fake, "frames", steps, seed, None, context_frames)
    clip = _run(real, fake, "clips", steps, seed, None, 0)
    best = frame if frame.accuracy > clip.accuracy else clip
    return replace(best, p_value=min(1.0, 2 * min(frame.p_value, clip.p_value)), protocol="strong",
                   context_frames=context_frames, frame=frame, clip=clip)


def _run(
    real: Tensor,
    fake: Tensor,
    protocol: str,
    steps: int,
    seed: int,
    model: Callable[[], nn.Module] | nn.Module | None,
    context_frames: int,
) -> DetectabilityResult:
    """One classifier trained and scored (protocol "default", "frames" or "clips")."""
    device = real.device
    local = protocol != "default"
    per_set = LOCAL_BATCH_PER_SET if local else BATCH_PER_SET
    learning_rate = LOCAL_LEARNING_RATE if local else LEARNING_RATE
    generator = torch.Generator().manual_seed(seed)
    train_real, test_real, train_fake, test_fake = _split(len(real), len(fake), generator)
    n_test_clips = len(test_real) + len(test_fake)
    # Frame samples: sample id j of a set is frame context + j % g of clip j // g (g frames a
    # clip), so a half of clips is expanded to the ids of its frames and the split stays by clip.
    per_clip = real.shape[2] - context_frames if protocol == "frames" and real.dim() == 5 else 0
    if per_clip:
        train_real, test_real, train_fake, test_fake = (
            (ids[:, None] * per_clip + torch.arange(per_clip)).flatten()
            for ids in (train_real, test_real, train_fake, test_fake)
        )

    def fetch(data: Tensor, ids: Tensor) -> Tensor:
        ids = ids.to(data.device)
        if per_clip:
            return data[ids // per_clip, :, context_frames + ids % per_clip]  # (n, C, H, W)
        return data[ids]

    with _seeded_rng(device, seed), _deterministic_cudnn(), torch.inference_mode(False), \
            torch.enable_grad(), torch.autocast(device.type, enabled=False):
        classifier, name = _build_classifier(model, protocol, real.shape[1:])
        classifier = classifier.to(device=device, dtype=torch.float32)
        parameters = [p for p in classifier.parameters() if p.requires_grad]
        if not parameters:
            raise ValueError(f"`model` has no trainable parameters ({name}); the test trains it")
        half_batch = min(per_set, len(train_real))
        order_real = _epoch_order(train_real, steps, half_batch, generator)
        order_fake = _epoch_order(train_fake, steps, half_batch, generator)
        labels = torch.cat([torch.ones(half_batch), torch.zeros(half_batch)]).to(device)
        optimiser = torch.optim.Adam(parameters, lr=learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
        classifier.train()
        for step in range(steps):
            batch = torch.cat([fetch(real, order_real[step]), fetch(fake, order_fake[step])]).float()
            loss = F.binary_cross_entropy_with_logits(_logits(classifier, batch), labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()

        classifier.eval()
        with torch.no_grad():
            logits_real = _score(classifier, real, test_real, fetch)
            logits_fake = _score(classifier, fake, test_fake, fetch)

    n_test = len(test_real) + len(test_fake)
    correct = int((logits_real > 0).sum().item() + (logits_fake <= 0).sum().item())
    if per_clip:  # interval and p-value over clips: as if each clip's frames were all alike
        interval = _wilson(correct / n_test, n_test_clips)
        p_value = binomial_tail(correct // per_clip, n_test_clips)
    else:
        interval, p_value = wilson_interval(correct, n_test), binomial_tail(correct, n_test)
    return DetectabilityResult(
        accuracy=correct / n_test,
        auc=auc_mann_whitney(logits_real, logits_fake),
        interval=interval,
        p_value=p_value,
        correct=correct,
        n_train=len(train_real) + len(train_fake),
        n_test=n_test,
        steps=steps,
        batch_size=2 * half_batch,
        seed=seed,
        model=name,
        protocol=protocol,
        learning_rate=learning_rate,
        sample="frame" if per_clip else "clip" if real.dim() == 5 else "image",
        context_frames=context_frames,
        n_test_clips=n_test_clips if per_clip else None,
    )


# ----------------------------------------------------------------------------------------------
# Helpers


def _check_sets(real: object, fake: object) -> tuple[Tensor, Tensor]:
    real = check_image_or_video("real", real)
    fake = check_image_or_video("fake", fake)
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            "`real` and `fake` must have the same shape except for the batch dimension; "
            f"got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if real.dtype != fake.dtype:
        raise TypeError(f"`real` and `fake` must have the same dtype; got {real.dtype} and {fake.dtype}")
    if real.device != fake.device:
        raise ValueError(f"`real` and `fake` must be on the same device; got {real.device} and {fake.device}")
    for name, x in (("real", real), ("fake", fake)):
        if len(x) < MIN_SAMPLES:
            raise ValueError(
                f"`{name}` needs at least {MIN_SAMPLES} samples: half of each set trains the "
                f"classifier and the other half is scored; got {len(x)}"
            )
    # One device synchronisation for both range checks.
    low_r, high_r, low_f, high_f = torch.stack([*torch.aminmax(real), *torch.aminmax(fake)]).tolist()
    for name, low, high in (("real", low_r, high_r), ("fake", low_f, high_f)):
        if not (low >= -1 and high <= 1):  # also catches NaN
            raise ValueError(
                f"`{name}` must hold finite values in [-1, 1]; found min {low:.4g}, max {high:.4g}"
            )
    return real, fake


def _check_context_frames(context_frames: object, protocol: str, frames: int | None) -> None:
    """``context_frames``: an int in ``[0, T)`` for frame samples of clips, else 0."""
    if isinstance(context_frames, bool) or not isinstance(context_frames, int):
        raise TypeError(f"`context_frames` must be an int; got {type(context_frames).__name__}")
    if context_frames == 0:
        return
    if protocol not in ("frames", "strong") or frames is None:
        raise ValueError(
            "`context_frames` applies to frame samples of clips (protocol 'frames' or 'strong' "
            f"on (N, C, T, H, W)); got {context_frames} with protocol {protocol!r} on "
            f"{'clips' if frames is not None else 'images'}"
        )
    if not 0 <= context_frames < frames:
        raise ValueError(f"`context_frames` must be in [0, T) = [0, {frames}); got {context_frames}")


def _split(n_real: int, n_fake: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train and test indices ``(train_real, test_real, train_fake, test_fake)``.

    Equal sizes share one permutation (paired samples stay in the same half). Otherwise each set
    gets its own and the larger is cut to the smaller's size (:func:`detectability` warns).
    """
    n = min(n_real, n_fake)
    if n_real == n_fake:
        perm_real = perm_fake = torch.randperm(n, generator=generator)
    else:
        perm_real = torch.randperm(n_real, generator=generator)[:n]
        perm_fake = torch.randperm(n_fake, generator=generator)[:n]
    n_train = n // 2
    return perm_real[:n_train], perm_real[n_train:], perm_fake[:n_train], perm_fake[n_train:]


def _epoch_order(indices: Tensor, steps: int, per_step: int, generator: torch.Generator) -> Tensor:
    """``(steps, per_step)`` training indices: the training half reshuffled every epoch."""
    epochs = math.ceil(steps * per_step / len(indices))
    order = torch.cat([indices[torch.randperm(len(indices), generator=generator)] for _ in range(epochs)])
    return order[: steps * per_step].view(steps, per_step)


def _build_classifier(
    model: Callable[[], nn.Module] | nn.Module | None, protocol: str, sample_shape: torch.Size
) -> tuple[nn.Module, str]:
    """The protocol's classifier (or the caller's) for samples of ``sample_shape`` = ``(C, [T,] H, W)``."""
    if model is None:
        if protocol == "default":
            return Detector(sample_shape[0], tuple(sample_shape[1:])), "default"
        frames = sample_shape[1] if protocol == "clips" else None
        return LocalDetector(sample_shape[0], tuple(sample_shape[-2:]), frames), "LocalDetector"
    if isinstance(model, nn.Module):
        built = copy.deepcopy(model)
    else:
        built = model()
        if not isinstance(built, nn.Module):
            raise TypeError(f"`model()` must return an nn.Module; got {type(built).__name__}")
    return built, type(built).__name__


def _logits(classifier: nn.Module, batch: Tensor) -> Tensor:
    out = classifier(batch)
    if not isinstance(out, Tensor) or out.shape not in ((len(batch),), (len(batch), 1)):
        found = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"`model` must map a batch of {len(batch)} samples to ({len(batch)},) or "
            f"({len(batch)}, 1) logits; got {found}"
        )
    return out.reshape(len(batch))


def _score(classifier: nn.Module, data: Tensor, indices: Tensor, fetch: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Logits of the samples ``fetch(data, indices)`` in chunks, as a float64 CPU tensor."""
    chunks = [
        _logits(classifier, fetch(data, chunk).float()).double().cpu()
        for chunk in indices.split(EVAL_BATCH)
    ]
    return torch.cat(chunks)


@contextmanager
def _seeded_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Fork the global RNG (CPU, and the inputs' accelerator) and seed it; restored on exit."""
    accelerator = device.type if device.type != "cpu" else None
    devices = [device] if accelerator else []
    with torch.random.fork_rng(devices=devices, device_type=accelerator or "cuda"):
        torch.random.default_generator.manual_seed(seed)
        if accelerator:
            module = torch.get_device_module(accelerator)
            with module.device(device):
                module.manual_seed(seed)
        yield


@contextmanager
def _deterministic_cudnn() -> Iterator[None]:
    """cuDNN convolutions without run-to-run variation (a no-op on CPU); restored on exit."""
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved

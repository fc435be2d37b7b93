"""genloss.metrics.detectability: the classifier two-sample test.

The anchors run the real classifier, with the default protocol (150 steps), on the project's
moving shapes: 6 frames of 16x16, 256 + 256 clips, and for copy-last-frame, whose frozen frames
are a small part of a 16x16 clip, 128 + 128 clips of 32x32 (the size the benchmark uses; at 16x16
it scores 0.96, close to the 0.95 bound). The benchmark prints them on 512 + 512 clips of 32x32.
The protocol itself (split, pairing, scoring) is checked with a spy classifier that reads each
sample's id from its pixels; the tests that need no trained classifier use few steps.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from genloss import metrics
from genloss.metrics.detect import (
    Detector,
    DetectabilityResult,
    auc_mann_whitney,
    binomial_tail,
    detectability,
    wilson_interval,
)
from train.data import MovingShapes

N, FRAMES, SIZE, STEPS = 256, 6, 16, None


def shapes(n, seed, size=SIZE):
    data = MovingShapes(n, frames=FRAMES, size=size, split="heldout", seed=seed)
    return torch.stack([data[i] for i in range(n)])


def test_detector_layers():
    # 8 frames of 32x32: 3 stages (to 4x4); the first keeps time, so its 3x3x3 kernels see
    # consecutive frames, and later ones halve it while it exceeds 2 frames
    detector = Detector(3, (8, 32, 32))
    convs = [m for m in detector.modules() if isinstance(m, nn.Conv3d)]
    assert [c.stride for c in convs] == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert detector.features(torch.zeros(1, 3, 8, 32, 32)).shape == (1, 128, 2, 4, 4)
    assert detector(torch.zeros(2, 3, 8, 32, 32)).shape == (2,)


@pytest.fixture(scope="module")
def real():
    return shapes(N, seed=0)


def copy_last_frame(clips, context=2):
    """The first `context` frames, then the last context frame repeated."""
    rest = clips[:, :, context - 1 : context].expand(-1, -1, clips.shape[2] - context, -1, -1)
    return torch.cat([clips[:, :, :context], rest], dim=2)


def blurred(clips, sigma=1.0):
    """Every frame through a separable Gaussian (radius 3 sigma, replicate padding)."""
    radius = math.ceil(3 * sigma)
    taps = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * sigma**2))
    taps = taps / taps.sum()
    b, c, t, h, w = clips.shape
    x = F.pad(clips.permute(0, 2, 1, 3, 4).reshape(-1, 1, h, w), (radius,) * 4, mode="replicate")
    x = F.conv2d(F.conv2d(x, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))
    return x.view(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def frozen(clips):
    return clips[:, :, :1].expand_as(clips)


def time_shuffled(clips, seed=0):
    """Each clip's frames in a random order other than the original one."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for clip in clips:
        order = torch.randperm(clip.shape[1], generator=generator)
        while torch.equal(order, torch.arange(clip.shape[1])):
            order = torch.randperm(clip.shape[1], generator=generator)
        out.append(clip[:, order])
    return torch.stack(out)


# ----------------------------------------------------------------------------------------------
# Sanity anchors (the real classifier)


def test_real_against_other_real_clips_is_at_chance(real):
    result = detectability(real, shapes(N, seed=1), steps=STEPS)
    low, high = result.interval
    assert low <= 0.5 <= high, result
    assert low <= result.accuracy <= high
    assert (result.n_train, result.n_test) == (N, N)


def test_copy_last_frame_continuations_are_detected():
    real = shapes(128, seed=0, size=32)
    result = detectability(real, copy_last_frame(real), steps=STEPS)
    assert result.accuracy >= 0.95, result
    assert result.auc >= 0.95, result


@pytest.mark.parametrize("corrupt", [blurred, frozen, time_shuffled], ids=lambda f: f.__name__)
def test_corrupted_clips_are_detected(real, corrupt):
    result = detectability(real, corrupt(real), steps=STEPS)
    assert result.interval[0] > 0.5, result
    assert result.p_value < 1e-3, result


def test_images_use_2d_convolutions(real):
    images = real[:, :, 0]  # (N, C, H, W)
    assert all(not isinstance(m, nn.Conv3d) for m in Detector(3, (SIZE, SIZE)).modules())
    result = detectability(images, blurred(real)[:, :, 0], steps=STEPS)
    assert result.interval[0] > 0.5, result


def test_deterministic_and_leaves_global_state_alone(real):
    fake = copy_last_frame(real)[:16]
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    first = detectability(real[:16], fake, steps=3, seed=7)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads
    assert detectability(real[:16], fake, steps=3, seed=7) == first
    # Under no_grad / inference_mode (as in an eval loop) the classifier still trains.
    with torch.no_grad():
        assert detectability(real[:16], fake, steps=3, seed=7) == first
    with torch.inference_mode():
        assert detectability(real[:16], fake, steps=3, seed=7) == first


def test_result_records_the_protocol(real):
    result = detectability(real[:6], real[6:12], steps=2, seed=3)
    assert isinstance(result, DetectabilityResult)
    assert (result.steps, result.seed, result.batch_size, result.model) == (2, 3, 6, "default")
    record = result.as_dict()
    assert record["interval"] == list(result.interval) and record["accuracy"] == result.accuracy
    with pytest.raises(AttributeError):
        result.accuracy = 0.5  # frozen
    assert metrics.detectability is detectability and "detectability" in metrics.__all__


# ----------------------------------------------------------------------------------------------
# The protocol, seen by a spy classifier


def with_ids(n, sign):
    """`n` tiny clips, clip i filled with sign * (i + 1) / 1000 so a model can read its id."""
    ids = sign * (torch.arange(n) + 1.0) / 1000
    return ids.view(n, 1, 1, 1, 1).expand(n, 1, 2, 4, 4).contiguous()


class Spy(nn.Module):
    """Logs the ids it is shown (train or eval) and returns `score(id)` as the logit."""

    def __init__(self, log, score, shape=None):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(()))  # something for Adam to train
        self.log, self.score, self.shape = log, score, shape

    def forward(self, x):
        ids = torch.round(x.flatten(1)[:, 0] * 1000).long()  # real: 1..n, fake: -1..-n
        self.log.append(("train" if self.training else "eval", ids.tolist()))
        out = self.score(ids).float() + 1e-6 * self.offset  # the offset moves no logit's sign
        return out.view(self.shape or out.shape)


def test_held_out_halves_are_disjoint_paired_and_scored():
    n = 11
    log = []
    scores = torch.randn(2 * n + 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = lambda ids: scores[ids + n]  # noqa: E731  (ids -n..n index the table)
    result = detectability(with_ids(n, 1), with_ids(n, -1), steps=4, model=lambda: Spy(log, score))

    trained = {i for mode, ids in log if mode == "train" for i in ids}
    scored = [i for mode, ids in log if mode == "eval" for i in ids]
    assert len(scored) == len(set(scored)) == result.n_test == 2 * (n - n // 2)
    assert len(trained) == result.n_train == 2 * (n // 2)
    assert trained.isdisjoint(scored) and trained | set(scored) == set(range(-n, n + 1)) - {0}
    # Equal sizes share the permutation: clip i and its paired fake -i are in the same half.
    assert trained == {-i for i in trained}
    # Every training batch is half real, half fake.
    for mode, ids in log:
        if mode == "train":
            assert sum(i > 0 for i in ids) == sum(i < 0 for i in ids) == len(ids) // 2

    # Accuracy, AUC and interval from the held-out logits, computed independently.
    pos = [scores[i + n].item() for i in scored if i > 0]
    neg = [scores[i + n].item() for i in scored if i < 0]
    correct = sum(s > 0 for s in pos) + sum(s <= 0 for s in neg)
    assert result.correct == correct and result.accuracy == correct / result.n_test
    pairs = [(p > q) + 0.5 * (p == q) for p in pos for q in neg]
    assert result.auc == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
    assert result.interval == wilson_interval(correct, result.n_test)
    assert result.model == "Spy"


def test_unequal_sets_are_cut_to_the_smaller_one_with_a_warning():
    log = []
    with pytest.warns(UserWarning, match="using 5 random samples of `real`"):
        result = detectability(
            with_ids(9, 1), with_ids(5, -1), steps=2, model=lambda: Spy(log, lambda i: i.double())
        )
    assert (result.n_train, result.n_test) == (4, 6)
    seen = {i for _, ids in log for i in ids}
    assert len({i for i in seen if i > 0}) == 5 and {i for i in seen if i < 0} == set(range(-5, 0))
    assert result.accuracy == 1.0  # logit = id: positive for real, negative for fake


def test_module_is_copied_not_trained_in_place(real):
    module = Detector(3, (FRAMES, SIZE, SIZE))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    result = detectability(real[:8], frozen(real[:8]), steps=2, model=module)
    assert result.model == "Detector"
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_column_logits_are_accepted():
    log = []
    result = detectability(
        with_ids(4, 1), with_ids(4, -1), steps=1, model=lambda: Spy(log, lambda i: i.double(), (-1, 1))
    )
    assert result.accuracy == 1.0 and result.auc == 1.0


# ----------------------------------------------------------------------------------------------
# Statistics against scipy


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (37, 64), (256, 512), (400, 512), (999, 1000)])
def test_wilson_interval_matches_scipy(k, n):
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


@pytest.mark.parametrize("k, n", [(0, 10), (5, 10), (9, 10), (37, 64), (300, 512), (512, 512), (5100, 10000)])
def test_binomial_p_value_matches_scipy(k, n):
    expected = stats.binomtest(k, n, p=0.5, alternative="greater").pvalue
    assert binomial_tail(k, n) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_auc_matches_mann_whitney_u_with_ties():
    generator = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 6, (40,), generator=generator).double()  # many ties
    neg = torch.randint(0, 5, (31,), generator=generator).double()
    u = stats.mannwhitneyu(pos.numpy(), neg.numpy()).statistic  # U of the first sample
    assert auc_mann_whitney(pos, neg) == pytest.approx(u / (40 * 31), abs=1e-12)
    assert auc_mann_whitney(torch.ones(3), torch.ones(5)) == 0.5
    assert auc_mann_whitney(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0


# ----------------------------------------------------------------------------------------------
# Errors


FOUR = shapes(4, seed=2)  # (4, 3, 6, 16, 16)
ERRORS = [
    ((FOUR.numpy(), FOUR), {}, TypeError, "`real` must be a torch.Tensor; got ndarray"),
    ((FOUR, FOUR.long()), {}, TypeError, "`fake` must be a floating-point tensor"),
    ((FOUR[0, 0], FOUR[0, 0]), {}, ValueError, r"`real` must be a 4-D or 5-D tensor .* got shape \(6, 16, 16\) \(3-D\)"),
    ((FOUR, FOUR[:, :, :5]), {}, ValueError, r"same shape except for the batch dimension; got \(4, 3, 6, 16, 16\) and \(4, 3, 5, 16, 16\)"),
    ((FOUR, FOUR[:, :, 0]), {}, ValueError, "same shape except for the batch dimension"),
    ((FOUR, FOUR.double()), {}, TypeError, "same dtype; got torch.float32 and torch.float64"),
    ((FOUR[:1], FOUR), {}, ValueError, "`real` needs at least 2 samples: half of each set trains .* got 1"),
    ((FOUR, FOUR[:1]), {}, ValueError, "`fake` needs at least 2 samples"),
    ((FOUR, FOUR * 1.5), {}, ValueError, r"`fake` must hold finite values in \[-1, 1\]; found min -1.5, max 1.5"),
    ((FOUR * 0 + 2, FOUR), {}, ValueError, r"`real` must hold finite values in \[-1, 1\]; found min 2, max 2"),
    ((FOUR, torch.full_like(FOUR, float("nan"))), {}, ValueError, r"`fake` must hold finite values .* nan"),
    ((FOUR, FOUR), {"steps": 0}, ValueError, "`steps` must be a positive int or None; got 0"),
    ((FOUR, FOUR), {"steps": 2.5}, ValueError, "`steps` must be a positive int or None; got 2.5"),
    ((FOUR, FOUR), {"seed": "0"}, TypeError, "`seed` must be an int; got str"),
    ((FOUR, FOUR), {"model": 3}, TypeError, "`model` must be None, an nn.Module or a zero-argument callable"),
    ((FOUR, FOUR), {"model": lambda: 3}, TypeError, r"`model\(\)` must return an nn.Module; got int"),
    ((FOUR, FOUR), {"model": lambda: nn.Conv3d(3, 1, 1)}, ValueError, r"`model` must map a batch of 4 samples to \(4,\) or \(4, 1\) logits; got \(4, 1, 6, 16, 16\)"),
    ((FOUR, FOUR), {"model": nn.Flatten()}, ValueError, r"`model` has no trainable parameters \(Flatten\)"),
]


@pytest.mark.parametrize("args, kwargs, error, message", ERRORS, ids=[m[:40] for *_, m in ERRORS])
def test_errors_name_the_argument(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        detectability(*args, **kwargs)


def test_warning_free_on_equal_sets(real):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detectability(real[:4], real[4:8], steps=1)

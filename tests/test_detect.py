"""genloss.metrics.detectability: the classifier two-sample test.

The anchors run the real classifier, with the default protocol (150 steps), on the project's
moving shapes: 6 frames of 16x16, 256 + 256 clips, and for copy-last-frame, whose frozen frames
are a small part of a 16x16 clip, 128 + 128 clips of 32x32 (the size the benchmark uses; at 16x16
it scores 0.96, close to the 0.95 bound). The benchmark prints them on 512 + 512 clips of 32x32.
The protocol itself (split, pairing, scoring) is checked with a spy classifier that reads each
sample's id from its pixels; the tests that need no trained classifier use few steps.
"""

import math
import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from genloss import metrics
from benchmarks.detect_fakes import FAKES, _coverage, make_fake, render
from genloss.metrics.detect import (
    Detector,
    DetectabilityResult,
    LocalDetector,
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


# ----------------------------------------------------------------------------------------------
# Protocols "frames", "clips" and "strong"


def test_default_protocol_is_unchanged():
    # Numbers of the default protocol recorded before the local protocols were added (same
    # machine type, CPU): adding them must not move a single bit of what "default" returns.
    real, fake = shapes(64, seed=0), shapes(64, seed=1)
    result = detectability(real, fake, steps=30, seed=0)
    assert (result.accuracy, result.auc, result.correct) == (0.46875, 0.4619140625, 30)
    assert result.interval == (0.35175987425176036, 0.5892791294852898)
    assert result == detectability(real, fake, steps=30, seed=0, protocol="default")
    record = result.as_dict()
    assert (record["protocol"], record["sample"], record["learning_rate"], record["context_frames"]) == \
        ("default", "clip", 1e-3, 0)
    assert "frame" not in record and "clip" not in record and "n_test_clips" not in record


@pytest.mark.parametrize("size, halvings", [(16, 1), (32, 2), (64, 3)])
def test_local_detector_layers(size, halvings):
    # Max pooling down to ~8x8, then a global max: no strided convolution, no average.
    detector = LocalDetector(3, (size, size))
    assert sum(isinstance(m, nn.MaxPool2d) for m in detector.modules()) == halvings
    assert all(c.stride == (1, 1) for c in detector.modules() if isinstance(c, nn.Conv2d))
    x = torch.randn(2, 3, size, size)
    features = detector.features(x)
    assert features.shape[-2:] == (8, 8)
    assert torch.allclose(detector(x), detector.head(features.amax(dim=(2, 3))).squeeze(1))
    # The clip form stacks the frames as channels, channel-major ("b (c t) h w").
    clips = LocalDetector(3, (size, size), frames=4)
    assert clips.features[0].in_channels == 12
    video = torch.randn(2, 3, 4, size, size)
    stacked = torch.cat([video[:, c] for c in range(3)], dim=1)
    assert torch.equal(clips(video), clips.head(clips.features(stacked).amax(dim=(2, 3))).squeeze(1))


def with_frame_ids(n, frames, sign):
    """`n` clips of `frames` frames, frame t of clip i filled with sign * (10 i + t + 1) / 1000."""
    ids = sign * (10 * torch.arange(n).view(n, 1) + torch.arange(frames) + 1.0) / 1000
    return ids.view(n, 1, frames, 1, 1).expand(n, 1, frames, 4, 4).contiguous()


def test_frames_split_by_whole_clip_and_score_each_generated_frame():
    n, frames, context = 9, 5, 2
    log = []
    scores = torch.randn(2 * 10 * n + 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    score = lambda ids: scores[ids + 10 * n + 10]  # noqa: E731  (ids -(10n+5)..10n+5 index the table)
    result = detectability(with_frame_ids(n, frames, 1), with_frame_ids(n, frames, -1), steps=5,
                           protocol="frames", context_frames=context, model=lambda: Spy(log, score))
    trained = [i for mode, ids in log if mode == "train" for i in ids]
    scored = [i for mode, ids in log if mode == "eval" for i in ids]
    clip, frame = (lambda i: abs(i) // 10 * (1 if i > 0 else -1)), (lambda i: (abs(i) - 1) % 10)
    # Only generated frames are samples; a clip's frames (and its pair's) are all on one side.
    assert {frame(i) for i in trained + scored} == set(range(context, frames))
    assert {clip(i) for i in trained}.isdisjoint({clip(i) for i in scored})
    assert {abs(clip(i)) for i in trained} == {abs(clip(i)) for i in trained if i > 0}
    n_test_clips = 2 * (n - n // 2)
    assert len(scored) == len(set(scored)) == result.n_test == n_test_clips * (frames - context)
    assert result.n_train == 2 * (n // 2) * (frames - context) and result.n_test_clips == n_test_clips
    pos = [score(torch.tensor(i)).item() for i in scored if i > 0]
    neg = [score(torch.tensor(i)).item() for i in scored if i < 0]
    correct = sum(s > 0 for s in pos) + sum(s <= 0 for s in neg)
    assert result.correct == correct and result.accuracy == correct / result.n_test
    # Interval and p-value count clips (a clip's frames are not independent samples).
    p, z = correct / result.n_test, stats.norm.ppf(0.975)
    centre = (p + z * z / (2 * n_test_clips)) / (1 + z * z / n_test_clips)
    half = z / (1 + z * z / n_test_clips) * math.sqrt(p * (1 - p) / n_test_clips + z * z / (4 * n_test_clips**2))
    assert result.interval == pytest.approx((centre - half, centre + half), abs=1e-12)
    expected_p = stats.binomtest(correct // (frames - context), n_test_clips, alternative="greater").pvalue
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)
    assert (result.protocol, result.sample, result.context_frames, result.steps) == ("frames", "frame", 2, 5)


def test_images_under_frames_are_single_samples():
    log = []
    images = with_ids(6, 1)[:, :, 0]
    result = detectability(images, -images, steps=2, protocol="frames", model=lambda: Spy(log, lambda i: i.double()))
    assert (result.sample, result.n_test, result.n_test_clips, result.accuracy) == ("image", 6, None, 1.0)


def test_strong_reports_both_judges_with_the_frames_and_clips_protocols(real):
    real8, fake8 = real[:8], blurred(real[:8])
    strong = detectability(real8, fake8, steps=3, seed=5, protocol="strong", context_frames=2)
    frame = detectability(real8, fake8, steps=3, seed=5, protocol="frames", context_frames=2)
    clip = detectability(real8, fake8, steps=3, seed=5, protocol="clips")
    assert (strong.frame, strong.clip) == (frame, clip)
    # 4 training clips a set: 4 x 4 generated frames, so 16 + 16 frames a batch, 4 + 4 clips.
    assert (frame.model, clip.model, frame.steps, frame.batch_size, clip.batch_size, frame.learning_rate) == \
        ("LocalDetector", "LocalDetector", 3, 32, 8, 1e-3)
    best = frame if frame.accuracy > clip.accuracy else clip
    assert (strong.accuracy, strong.interval, strong.sample) == (best.accuracy, best.interval, best.sample)
    assert strong.p_value == min(1.0, 2 * min(frame.p_value, clip.p_value))
    assert (strong.protocol, strong.context_frames) == ("strong", 2)
    record = strong.as_dict()
    assert record["frame"] == frame.as_dict() and record["clip"] == clip.as_dict()
    assert record["frame"]["interval"] == list(frame.interval) and record["protocol"] == "strong"
    # Deterministic per seed, and a different seed is a different run.
    assert detectability(real8, fake8, steps=3, seed=5, protocol="strong", context_frames=2) == strong
    assert detectability(real8, fake8, steps=3, seed=6, protocol="frames", context_frames=2) != frame


def test_local_protocols_default_to_1200_steps_of_32_plus_32():
    log = []
    result = detectability(with_ids(70, 1), with_ids(70, -1), protocol="clips",
                           model=lambda: Spy(log, lambda i: i.double()))
    assert (result.steps, result.batch_size) == (1200, 64)
    assert sum(mode == "train" for mode, _ in log) == 1200


PROTOCOL_ERRORS = [
    ({"protocol": "local"}, ValueError, "`protocol` must be one of 'default', 'frames', 'clips', 'strong'; got 'local'"),
    ({"protocol": "strong", "model": lambda: Detector(3, (6, 16, 16))}, ValueError, "protocol 'strong' trains two"),
    ({"context_frames": 2}, ValueError, "`context_frames` applies to frame samples .* got 2 with protocol 'default'"),
    ({"protocol": "clips", "context_frames": 1}, ValueError, "with protocol 'clips'"),
    ({"protocol": "frames", "context_frames": 6}, ValueError, r"`context_frames` must be in \[0, T\) = \[0, 6\); got 6"),
    ({"protocol": "frames", "context_frames": True}, TypeError, "`context_frames` must be an int; got bool"),
]


@pytest.mark.parametrize("kwargs, error, message", PROTOCOL_ERRORS, ids=[m[:40] for *_, m in PROTOCOL_ERRORS])
def test_protocol_errors_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        detectability(FOUR, FOUR, steps=1, **kwargs)


def test_clip_protocols_need_clips():
    with pytest.raises(ValueError, match=r"protocol 'strong' needs clips \(N, C, T, H, W\); got shape \(4, 3, 16, 16\)"):
        detectability(FOUR[:, :, 0], FOUR[:, :, 0], protocol="strong")
    with pytest.raises(ValueError, match="`context_frames` applies .* on images"):
        detectability(FOUR[:, :, 0], FOUR[:, :, 0], protocol="frames", context_frames=1)


# ----------------------------------------------------------------------------------------------
# The calibration fakes (benchmarks/detect_fakes.py)


def test_calibration_renderer_draws_the_moving_shapes():
    drawn = render(16, 6, 32, seed=0)
    reference = shapes(16, seed=0, size=32)
    # The same shapes; only the anti-aliasing differs (area coverage vs a one-pixel ramp).
    assert (drawn - reference).abs().mean() < 0.01
    assert ((drawn - reference).abs() > 0.5).float().mean() < 0.002


def test_calibration_fakes_keep_the_context_and_change_only_what_they_name():
    real = render(8, 6, 32, seed=0)
    for name in FAKES:
        fake = make_fake(name, 8, 6, 32, seed=0, real=real)
        assert torch.equal(fake[:, :, :2], real[:, :, :2]), name
        assert not torch.equal(fake[:, :, 2:], real[:, :, 2:]), name
        assert fake.min() >= -1 and fake.max() <= 1
    darker = make_fake("darker", 8, real=real)
    assert torch.allclose((darker[:, :, 2:] + 1) / 2, 0.9 * (real[:, :, 2:] + 1) / 2)
    repeated = make_fake("repeated", 8, real=real)
    assert torch.equal(repeated[:, :, 3], real[:, :, 2]) and torch.equal(repeated[:, :, 4:], real[:, :, 4:])


def test_rounded_corners_and_shrunk_shapes():
    # One square of half-side 5 at (16, 16): its coverage is 1 on [11, 21) in both axes.
    square = torch.tensor([[16.0, 16.0]]).expand(1, 1, 2).contiguous()
    args = (torch.tensor([5.0]), torch.tensor([True]), square, 32)
    plain, rounded = _coverage(*args, rounded=False)[0, 0], _coverage(*args, rounded=True)[0, 0]
    assert plain.sum() == 100 and plain[11:21, 11:21].min() == 1
    # 3x3 box + threshold 0.5 keeps straight edges and cuts the corners (a sample's box holds
    # >= half its area inside iff, near a corner, (1.5 + u)(1.5 + v) >= 4.5 for its offsets).
    assert torch.equal(rounded[:, 16], plain[:, 16]) and torch.equal(rounded[16], plain[16])
    assert rounded[11, 11] < 0.9 and rounded[11, 11] > 0.1 and rounded[10, 10] == 0
    # Area cut per corner: the integral over u in [0, 1.5] of 4.5 / (1.5 + u) - 1.5, that is
    # 4.5 ln 2 - 2.25 = 0.869 px (5x5 samples a pixel resolve it to within about 0.1 px).
    assert plain.sum() - rounded.sum() == pytest.approx(4 * (4.5 * math.log(2) - 2.25), abs=0.4)
    shrunk = _coverage(torch.tensor([4.0]), *args[1:], rounded=False)[0, 0]
    assert shrunk.sum() == 64


# ----------------------------------------------------------------------------------------------
# Calibration anchors of the strong protocol (opt-in: GENLOSS_DETECTOR_ANCHORS=1)
#
# The real protocol (1200 steps of 32 + 32 for each judge) on fewer clips than the benchmark
# (256 + 256 instead of 2048 + 2048). Its cost is the training, which does not shrink with the
# clip count: about 1.5-2 min of CPU a judge on 2 cores, 12 judges in all, so these run only when
# asked for (``GENLOSS_DETECTOR_ANCHORS=1 pytest tests/test_detect.py -k anchor``). The full-size
# numbers are in docs/detector.md (benchmarks/bench_detect.py --calibrate).

anchors = pytest.mark.skipif(os.environ.get("GENLOSS_DETECTOR_ANCHORS") != "1",
                             reason="minutes of CPU: set GENLOSS_DETECTOR_ANCHORS=1")
ANCHOR_CLIPS = 256


@pytest.fixture(scope="module")
def calibration_real():
    return render(ANCHOR_CLIPS, 6, 32, seed=0)


@anchors
@pytest.mark.parametrize("name", ["real", *FAKES])
def test_strong_protocol_anchor(calibration_real, name):
    if name == "real":
        fake = render(ANCHOR_CLIPS, 6, 32, seed=1)
    else:
        fake = make_fake(name, ANCHOR_CLIPS, 6, 32, seed=0, real=calibration_real)
    result = detectability(calibration_real, fake, protocol="strong", context_frames=2)
    if name == "real":  # other real clips: both judges at chance
        assert 0.45 <= result.frame.accuracy <= 0.55, result
        assert 0.45 <= result.clip.accuracy <= 0.55, result
    elif name == "repeated":  # every frame is real: the clip judge must see the repeat
        assert result.clip.accuracy >= 0.75, result
    else:
        assert result.accuracy >= 0.75, result

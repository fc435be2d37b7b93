"""Unit tests of the trainer's pieces: ``evaluate``, ``frame_indices``, one ``train_step`` (what each
discriminator is shown, R1, where the generator's gradient comes from) and the EMA in ``main``'s loop.

Everything runs in-process on tiny models with ``trainer_utils.StubAccelerator`` (the loop test runs
the real ``main`` with a real Accelerator). The step tests run in float64, so that gradients
recomputed here from the formulas, with plain torch, agree with the trainer's to rounding (1e-10
relative): a wrong weight, sign, factor of 2 or input fails by orders of magnitude more.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eval_reference import check_eval_record, ema_generator, heldout_clips, mean_motion, psnr_per_clip
from train.build import build_models
from train.config import TrainConfig
from train.data import MovingShapes
from train.gan import GAN, train_step
from train.in_training_eval import evaluate
from train.losses import build_losses, frame_indices, temporal_difference_from_context
from trainer_utils import TINY, TINY_SETTINGS, StubAccelerator, read_metrics

# float64 gradients from two summation orders agree to ~1e-15 relative; 1e-10 leaves room for
# the sums over a few thousand parameters and still fails any real bug by many orders.
RTOL, ATOL = 1e-10, 1e-13


# ----------------------------------------------------------------------------------------------
# evaluate()


class _Lookup(nn.Module):
    """A generator that returns ``make(clip)`` for the clip whose first K frames it is given."""

    def __init__(self, clips: torch.Tensor, context_frames: int, make) -> None:
        super().__init__()
        self.clips, self.k, self.make = clips, context_frames, make
        self.calls = 0

    def forward(self, context: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        rows = []
        for c in context:
            (match,) = [i for i in range(len(self.clips)) if torch.equal(self.clips[i, :, : self.k], c)]
            rows.append(self.make(self.clips[match]))
        return torch.stack(rows)


def _eval_clips(n: int = 5, frames: int = 6, seed: int = 0) -> torch.Tensor:
    """Random clips whose frames all differ (so the first and the last context frame do too)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, frames, 8, 8, generator=g) * 2 - 1


class _ShardedAccelerator(StubAccelerator):
    """One rank of ``world`` whose ``reduce`` returns the sum (or mean) of every rank's tensor,
    those of the other ranks recorded beforehand by :func:`_evaluate_on_ranks`."""

    def __init__(self, rank: int, world: int, others: list[torch.Tensor]) -> None:
        super().__init__(rank, world)
        self.others = others
        self.seen: torch.Tensor | None = None

    def reduce(self, tensor: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        self.seen = tensor
        total = tensor + sum(self.others) if self.others else tensor
        return total if reduction == "sum" else total / self.num_processes


def _evaluate_on_ranks(world: int, *args, **kwargs) -> list[dict]:
    """``evaluate`` as each of ``world`` processes sees it, the reduce summing across them."""
    shares = []
    for rank in range(world):
        stub = _ShardedAccelerator(rank, world, [])
        evaluate(stub, *args, **kwargs)
        shares.append(stub.seen)
    return [evaluate(_ShardedAccelerator(r, world, [s for i, s in enumerate(shares) if i != r]), *args, **kwargs)
            for r in range(world)]


class TestEvaluate:
    K = 3

    def test_baseline_is_the_last_context_frame_repeated(self):
        import genloss.metrics as gm

        clips = _eval_clips()
        k = self.K
        frozen = _Lookup(clips, k, lambda clip: clip[:, k - 1 : k].expand(-1, clips.shape[2] - k, -1, -1))
        out = evaluate(StubAccelerator(), frozen, clips, torch.zeros(len(clips), 4), k)
        truth = clips[:, :, k:].double()
        last = clips[:, :, k - 1 : k].double().expand_as(truth)
        expected = gm.psnr(last, truth).mean.item()
        assert expected == pytest.approx(psnr_per_clip(last, truth).mean().item(), rel=1e-12)
        # evaluate sums in float32 over the clips: 1e-6 relative.
        assert out["eval/psnr_baseline"] == pytest.approx(expected, rel=1e-6)
        # The frozen generator *is* the baseline, and has no motion at all.
        assert out["eval/psnr"] == pytest.approx(expected, rel=1e-6)
        assert out["eval/motion"] == 0.0
        first = clips[:, :, :1].double().expand_as(truth)
        assert abs(psnr_per_clip(first, truth).mean().item() - expected) > 0.1  # the test can tell them apart

    def test_the_truth_scores_100_db_and_motion_1(self):
        clips, k = _eval_clips(), self.K
        perfect = _Lookup(clips, k, lambda clip: clip[:, k:])
        out = evaluate(StubAccelerator(), perfect, clips, torch.zeros(len(clips), 4), k)
        assert out["eval/psnr"] == pytest.approx(100.0, abs=1e-4)
        assert out["eval/motion"] == pytest.approx(1.0, rel=1e-6)
        assert set(out) == {"eval/psnr", "eval/psnr_baseline", "eval/motion"}

    def test_values_of_an_imperfect_generator(self):
        # Doubles every change after the last context frame: motion exactly 2 (each continuation
        # step included, the jump from the last context frame too); PSNR by the formula. Clips at
        # half contrast, so the doubled changes stay within the metrics' pixel range (|x| <= 1.5).
        clips, k = _eval_clips() * 0.5, self.K
        double_motion = _Lookup(clips, k, lambda clip: clip[:, k - 1 : k] + 2 * (clip[:, k:] - clip[:, k - 1 : k]))
        out = evaluate(StubAccelerator(), double_motion, clips, torch.zeros(len(clips), 4), k)
        generated = torch.stack([double_motion.make(c) for c in clips])
        assert out["eval/psnr"] == pytest.approx(psnr_per_clip(generated, clips[:, :, k:]).mean().item(), rel=1e-6)
        assert out["eval/motion"] == pytest.approx(2.0, rel=1e-6)

    def test_lpips_and_tlp_of_the_generated_continuation(self):
        import genloss.metrics as gm

        def mean_abs(x, y, reduction="mean"):  # an LPIPS-like callable: (N,) distances
            values = (x - y).abs().flatten(1).mean(dim=1)
            return values if reduction == "none" else values.mean()

        clips, k = _eval_clips(), self.K
        noisy = _Lookup(clips, k, lambda clip: (clip[:, k:] + 0.1 * clip[:, :1]).clamp(-1, 1))
        out = evaluate(StubAccelerator(), noisy, clips, torch.zeros(len(clips), 4), k, lpips=mean_abs)
        generated = torch.stack([noisy.make(c) for c in clips])
        truth, last = clips[:, :, k:], clips[:, :, k - 1 : k]
        per_frame = (generated - truth).abs().mean(dim=(1, 3, 4))
        assert out["eval/lpips"] == pytest.approx(per_frame.mean().item(), rel=1e-6)
        # tLP over the steps from the last context frame on (the jump into the continuation counts).
        step = lambda v: (v[:, :, 1:] - v[:, :, :-1]).abs().mean(dim=(1, 3, 4))
        moving_gen, moving_true = torch.cat([last, generated], 2), torch.cat([last, truth], 2)
        expected = (step(moving_gen.double()) - step(moving_true.double())).abs().mean().item()
        # A difference of two ~0.3 distances computed in float32: ~1e-7 absolute.
        assert out["eval/tlp"] == pytest.approx(expected, rel=0, abs=1e-7)
        assert expected == pytest.approx(gm.tlp(moving_gen.double(), moving_true.double(), model=mean_abs).mean.item(),
                                         rel=1e-12)

    def test_unconditional_motion_is_against_the_heldout_clips(self):
        clips = _eval_clips(frames=4)
        g = torch.Generator().manual_seed(1)
        samples = torch.rand(len(clips), 3, 4, 8, 8, generator=g) * 0.5

        class Unconditional(nn.Module):
            def forward(self, context, z):
                assert context.shape[2] == 0
                return samples[z[:, 0].long()]  # the noise says which sample

        noise = torch.arange(len(clips), dtype=torch.float32)[:, None].repeat(1, 4)
        out = evaluate(StubAccelerator(), Unconditional(), clips, noise, 0)
        assert set(out) == {"eval/motion"}
        assert out["eval/motion"] == pytest.approx((mean_motion(samples) / mean_motion(clips)).item(), rel=1e-6)

    def test_processes_split_the_clips_and_sum(self):
        # 5 clips over 2 processes (3 + 2): every rank reports the single-process numbers.
        clips, k = _eval_clips(), self.K
        noisy = _Lookup(clips, k, lambda clip: (clip[:, k:] * 0.8 + 0.1 * clip[:, :1]))
        alone = evaluate(StubAccelerator(), noisy, clips, torch.zeros(len(clips), 4), k)
        noisy.calls = 0
        for out in _evaluate_on_ranks(2, noisy, clips, torch.zeros(len(clips), 4), k):
            assert out.keys() == alone.keys()
            for name in alone:
                assert out[name] == pytest.approx(alone[name], rel=1e-6), name


# ----------------------------------------------------------------------------------------------
# What the image discriminator is shown


class TestFrameIndices:
    def test_generated_positions_only_all_reachable(self):
        torch.manual_seed(0)
        draws = [frame_indices(8, 3, "cpu").tolist() for _ in range(200)]
        for draw in draws:
            assert len(draw) == len(set(draw)) == 2 and all(3 <= i < 8 for i in draw), draw
        assert set().union(*draws) == set(range(3, 8))

    def test_one_generated_frame(self):
        assert frame_indices(4, 3, "cpu").tolist() == [3]


class _Spy(nn.Module):
    """Wraps a model and records every input batch (and, for the generator, every output)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.inputs: list[tuple[torch.Tensor, ...]] = []
        self.outputs: list = []

    def forward(self, *args, **kwargs):
        self.inputs.append(tuple(a.detach().clone() for a in args))
        out = self.module(*args, **kwargs)
        frames = out[0] if kwargs.get("return_flow") else out  # the generator's (frames, flow)
        self.outputs.append(frames.detach().clone() if isinstance(frames, torch.Tensor) else None)
        return out

    def clear(self) -> None:
        self.inputs.clear()
        self.outputs.clear()


def _parts(**settings):
    """A tiny GAN with spies on its three models, its losses and one batch of real clips.

    The generator's output layer starts at zero ("copy the last frame"), which leaves most of the
    network without a gradient; it is randomised so that every layer gets one.
    """
    cfg = TrainConfig(**{**TINY_SETTINGS, "frames": 5, "context_frames": 2, "adv_start": 0, "adv_ramp": 0,
                         "r1_interval": 1, **settings}).validate(environment=False)
    torch.manual_seed(0)
    generator, d_image, d_video = build_models(cfg)
    with torch.no_grad():
        for p in generator.head.parameters():
            p.normal_(0, 0.05)
    spies = _Spy(generator), _Spy(d_image), _Spy(d_video)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam([*d_image.parameters(), *d_video.parameters()], lr=cfg.lr_d, betas=(0.5, 0.99))
    gan = GAN(spies[0], spies[1], spies[2], opt_g, opt_d, spies[1], spies[2], generator.last_layer)
    shapes = MovingShapes(cfg.batch_size, frames=cfg.frames, size=cfg.size, seed=cfg.seed)
    real = torch.stack([shapes[i] for i in range(cfg.batch_size)]).to(torch.get_default_dtype())
    return cfg, gan, build_losses(cfg, None, "feature-matching"), real


def _which_frame(frame: torch.Tensor, real: torch.Tensor, generated: torch.Tensor, k: int) -> tuple[str, int, int]:
    """``("context" | "real" | "generated", clip, t)`` for a frame the image discriminator got."""
    for b in range(real.shape[0]):
        for t in range(real.shape[2]):
            if torch.equal(frame, real[b, :, t]):
                return ("context" if t < k else "real"), b, t
        for j in range(generated.shape[2]):
            if torch.equal(frame, generated[b, :, j]):
                return "generated", b, k + j
    raise AssertionError("the image discriminator got a frame that is neither real nor generated")


class TestImageDiscriminatorInput:
    @pytest.mark.parametrize("kind", ["hinge", "relativistic"])
    def test_never_a_context_frame_and_the_same_positions_for_real_and_generated(self, kind):
        cfg, gan, losses, real = _parts(frames=6, context_frames=3, adv_loss=kind)
        k, positions = 3, set()
        d_step = gan.opt_d.step

        def mark_d_half(*args, **kwargs):
            gan.d_half_calls = len(gan.d_image.inputs)
            return d_step(*args, **kwargs)

        gan.opt_d.step = mark_d_half
        for step in range(6):
            gan.generator.clear()
            gan.d_image.clear()
            ok, _ = train_step(step, real, gan, losses, cfg, StubAccelerator())
            assert ok
            (generated,) = gan.generator.outputs  # one generator forward per step
            frames = [f for (batch,) in gan.d_image.inputs for f in batch]
            kinds = [_which_frame(f, real, generated, k) for f in frames]
            assert not [x for x in kinds if x[0] == "context"], kinds
            d_half = kinds[: sum(len(b) for (b,) in gan.d_image.inputs[: gan.d_half_calls])]
            g_half = kinds[len(d_half):]
            real_seen = [(b, t) for what, b, t in d_half if what == "real"]
            fake_seen = [(b, t) for what, b, t in d_half if what == "generated"]
            # Two generated positions per clip, and real frames at the same positions, in the same order.
            assert len(fake_seen) == 2 * cfg.batch_size and real_seen == fake_seen
            assert sorted({b for b, _ in fake_seen}) == list(range(cfg.batch_size))
            # The generator's half: two generated frames per clip (and, for the relativistic
            # loss, the real frames at the same positions, in the same order).
            g_fake = [(b, t) for what, b, t in g_half if what == "generated"]
            assert len(g_fake) == len(set(g_fake)) == 2 * cfg.batch_size
            assert sorted({b for b, _ in g_fake}) == list(range(cfg.batch_size))
            assert [(b, t) for what, b, t in g_half if what == "real"] == (g_fake if kind == "relativistic" else [])
            positions |= {t for _, t in g_fake}
            positions |= {t for _, t in fake_seen}
        assert positions == {3, 4, 5}  # random positions, every generated one reachable


# ----------------------------------------------------------------------------------------------
# The discriminators' half: adversarial loss plus lazy R1


def _hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def _r1(d: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean over samples of ||d mean_p D(x)_p / dx||^2 (each sample's mean patch logit: R1 in
    per-sample units), differentiable in D's weights."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x)[0].flatten(1).mean(1).sum(), x, create_graph=True)
    return grad.square().flatten(1).sum(dim=1).mean()


def _split_seen(inputs: list, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The real and the generated inputs among the batches a discriminator was called on."""
    items = [x for (batch,) in inputs for x in batch]
    candidates = list(real) if real.ndim == 5 else []
    is_real = [any(torch.equal(x, r) for r in candidates) for x in items]
    return (torch.stack([x for x, r in zip(items, is_real, strict=True) if r]),
            torch.stack([x for x, r in zip(items, is_real, strict=True) if not r]))


class TestDiscriminatorHalf:
    def test_gradient_is_hinge_plus_half_gamma_r1_times_interval_on_due_steps(self, float64):
        gamma, interval = 0.6, 4
        cfg, gan, losses, real = _parts(r1_gamma=gamma, r1_interval=interval)
        d_image, d_video = gan.d_image.module, gan.d_video.module
        params = [*d_image.parameters(), *d_video.parameters()]
        d_step, checked = gan.opt_d.step, []

        def check_gradient(*args, **kwargs):
            # Before the update: the weights the gradient was taken at. Inputs as the discriminators got them.
            clips_real, clips_fake = _split_seen(gan.d_video.inputs, real)
            frames = [f for (batch,) in gan.d_image.inputs for f in batch]
            k = cfg.context_frames
            is_real = [any(torch.equal(f, real[b, :, t]) for b in range(len(real)) for t in range(k, cfg.frames))
                       for f in frames]
            frames_real = torch.stack([f for f, r in zip(frames, is_real, strict=True) if r])
            frames_fake = torch.stack([f for f, r in zip(frames, is_real, strict=True) if not r])
            assert torch.equal(clips_real, real) and len(clips_fake) == len(real)
            adversarial = (_hinge_d(d_video(clips_real)[0], d_video(clips_fake)[0])
                           + _hinge_d(d_image(frames_real)[0], d_image(frames_fake)[0]))
            r1 = gamma / 2 * (_r1(d_video, clips_real) + _r1(d_image, frames_real))
            due = current["step"] % interval == 0
            # (The discriminators' last biases don't enter R1: it differentiates them away.)
            r1_part = [torch.zeros_like(p) if g is None else g
                       for p, g in zip(params, torch.autograd.grad(r1 * interval, params, retain_graph=True,
                                                                   allow_unused=True), strict=True)]
            expected = torch.autograd.grad(adversarial + (r1 * interval if due else 0), params)
            for p, e in zip(params, expected, strict=True):
                torch.testing.assert_close(p.grad, e, rtol=RTOL, atol=ATOL)
            share = torch.cat([g.flatten() for g in r1_part]).norm() / torch.cat([e.flatten() for e in expected]).norm()
            assert share > 1e-3  # R1 moves the gradient well beyond the tolerance
            checked.append((current["step"], r1.item()))
            return d_step(*args, **kwargs)

        gan.opt_d.step = check_gradient
        current = {}
        for step in range(6):
            current["step"] = step
            for spy in (gan.generator, gan.d_image, gan.d_video):
                spy.clear()
            ok, logs = train_step(step, real, gan, losses, cfg, StubAccelerator())
            assert ok
            assert checked[-1][0] == step
            if step % interval == 0:  # logged: gamma/2 (R1_video + R1_image), before the interval gain
                assert logs["d/r1"].item() == pytest.approx(checked[-1][1], rel=1e-12)
            else:
                assert "d/r1" not in logs
        assert [s for s, _ in checked] == list(range(6))

    def test_no_r1_with_gamma_0(self, float64):
        cfg, gan, losses, real = _parts(r1_gamma=0.0, r1_interval=1)
        _, logs = train_step(0, real, gan, losses, cfg, StubAccelerator())
        assert "d/r1" not in logs


# ----------------------------------------------------------------------------------------------
# The generator's half: each term's gradient, and nothing else


WEIGHTS = {"rec": "rec_weight", "gdl": "gdl_weight", "tdl": "tdl_weight", "perceptual": "perceptual_weight",
           "smooth": "smooth_weight", "flow_tv": "flow_tv_weight", "adv": "adv_weight"}


def _expected_generator_loss(term: str, weight: float, gan: GAN, real: torch.Tensor, z: torch.Tensor,
                             cfg: TrainConfig, image_positions: list[int]) -> torch.Tensor:
    """The term's weighted value, from the formulas, differentiable in the generator's weights."""
    k = cfg.context_frames
    context, future = real[:, :, :k], real[:, :, k:]
    generated = gan.generator.module(context, z)
    fake = torch.cat([context, generated], dim=2)
    d_video, d_image = gan.d_video.module, gan.d_image.module
    if term == "rec":
        if cfg.rec_loss == "charbonnier":
            value = ((generated - future).square() + 1e-3**2).sqrt().mean()
        else:
            value = (generated - future).abs().mean()
    elif term == "gdl":
        def grad_gap(dim):
            return (generated.diff(dim=dim).abs() - future.diff(dim=dim).abs()).abs().mean()
        value = (grad_gap(-1) + grad_gap(-2)) / 2
    elif term == "tdl":
        last = context[:, :, -1:]
        value = (torch.cat([last, generated], 2).diff(dim=2) - torch.cat([last, future], 2).diff(dim=2)).abs().mean()
    elif term == "smooth":
        value = fake.diff(dim=2).diff(dim=2).abs().mean()
    elif term == "flow_tv":  # the flow the generator warped with, (B, 2, T-K, H, W)
        flow = gan.generator.module(context, z, return_flow=True)[1]
        value = flow.diff(dim=-1).abs().mean() + flow.diff(dim=-2).abs().mean()
    elif term == "perceptual":  # discriminator feature matching on the video discriminator
        with torch.no_grad():
            _, features_real = d_video(real)
        _, features_fake = d_video(fake)
        value = torch.stack([(r - f).abs().mean() for r, f in zip(features_real, features_fake, strict=True)]).mean()
    elif term == "adv":
        frames_fake = fake[:, :, image_positions].transpose(1, 2).flatten(0, 1)  # (B n, C, H, W)
        video_fake, image_fake = d_video(fake)[0], d_image(frames_fake)[0]
        if cfg.adv_loss == "relativistic":
            frames_real = real[:, :, image_positions].transpose(1, 2).flatten(0, 1)
            with torch.no_grad():
                video_real, image_real = d_video(real)[0], d_image(frames_real)[0]
            value = F.softplus(video_real - video_fake).mean() + F.softplus(image_real - image_fake).mean()
        else:
            value = -video_fake.mean() - image_fake.mean()
    else:
        raise ValueError(term)
    return weight * value


@pytest.mark.parametrize("term,settings,step,factor", [
    ("rec", {}, 0, 1.0),
    ("rec", {"rec_loss": "charbonnier"}, 0, 1.0),
    ("gdl", {}, 0, 1.0),
    ("tdl", {}, 0, 1.0),
    ("perceptual", {}, 0, 1.0),
    ("smooth", {}, 0, 1.0),
    ("flow_tv", {}, 0, 1.0),
    ("flow_tv", {"g_output": "residual", "g_flow_prior": True}, 0, 1.0),  # the flow with the prior added
    ("adv", {}, 0, 1.0),
    ("adv", {"adv_loss": "relativistic"}, 0, 1.0),
    ("adv", {"adv_start": 2, "adv_ramp": 4}, 3, 0.25),  # a quarter into the ramp
    ("smooth", {"context_frames": 0}, 0, 1.0),
    ("adv", {"context_frames": 0}, 0, 1.0),
], ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(f"{k}={x}" for k, x in v.items()) or "default")
def test_generator_gradient_is_the_one_weighted_terms_gradient(float64, term, settings, step, factor):
    # Only `term` weighted (0.7): the generator's gradient equals that term's, recomputed here;
    # the discriminators get no gradient from this half and keep their requires_grad.
    weights = {name: 0.0 for name in WEIGHTS.values()}
    weights[WEIGHTS[term]] = 0.7
    cfg, gan, losses, real = _parts(**{**weights, **settings})
    g_params = list(gan.generator.module.parameters())
    d_params = gan.d_parameters()
    g_step, checked = gan.opt_g.step, []

    def check_gradient(*args, **kwargs):
        assert all(p.grad is None or not p.grad.any() for p in d_params)
        (generated,) = gan.generator.outputs
        k = cfg.context_frames
        after_d = len(gan.d_image.inputs) - (2 if cfg.adv_loss == "relativistic" else 1)
        positions = []
        if term == "adv":  # the generated positions the image discriminator was shown in this half
            frames = gan.d_image.inputs[after_d][0]
            positions = [_which_frame(f, real, generated, k)[2] for f in frames[: len(frames) // len(real)]]
        z = gan.generator.inputs[0][1]
        expected_loss = _expected_generator_loss(term, 0.7 * factor, gan, real, z, cfg, positions)
        expected = torch.autograd.grad(expected_loss, g_params, allow_unused=True)
        for p, e in zip(g_params, expected, strict=True):
            torch.testing.assert_close(p.grad, torch.zeros_like(p) if e is None else e, rtol=RTOL, atol=ATOL)
        assert any(e is not None and e.abs().max() > 1e-6 for e in expected)
        checked.append(expected_loss.item())
        return g_step(*args, **kwargs)

    gan.opt_g.step = check_gradient
    ok, logs = train_step(step, real, gan, losses, cfg, StubAccelerator())
    assert ok and len(checked) == 1
    assert logs["g/total"].item() == pytest.approx(checked[0], rel=1e-12)
    assert all(p.requires_grad for p in d_params)


def test_a_step_leaves_no_gradient_behind():
    # Both halves clear their gradients once stepped: otherwise the next step's update is taken
    # on the sum of its gradient and every earlier one (the equality tests above see one step).
    cfg, gan, losses, real = _parts(r1_gamma=0.5)
    for step in range(2):
        ok, _ = train_step(step, real, gan, losses, cfg, StubAccelerator())
        assert ok
        left = [n for m in (gan.generator, gan.d_image, gan.d_video) for n, p in m.named_parameters()
                if p.grad is not None]
        assert left == []


@pytest.mark.parametrize("loss", ["discriminator_loss", "generator_loss"])
def test_a_finite_loss_with_a_non_finite_gradient_skips_the_whole_step(loss, monkeypatch):
    # sqrt(0 * x) is 0 in value and NaN in gradient (inf * 0): the loss passes the finiteness
    # check, so only the check of the gradient norm can catch it.
    import genloss as gl

    cfg, gan, losses, real = _parts()
    original = getattr(gl, loss)
    monkeypatch.setattr(gl, loss, lambda logits, *a, **k: original(logits, *a, **k) + torch.sqrt(logits.sum() * 0))
    models = (gan.generator, gan.d_image, gan.d_video)
    before = [{n: p.detach().clone() for n, p in m.named_parameters()} for m in models]
    ok, logs = train_step(0, real, gan, losses, cfg, StubAccelerator())
    assert not ok and torch.isfinite(logs["d/total"]) and torch.isfinite(logs["g/total"])
    for model, weights in zip(models, before, strict=True):
        for name, value in model.named_parameters():
            assert torch.equal(value, weights[name]), name


def test_unconditional_generator_gets_only_the_target_free_terms(float64):
    # With no context there is no target and no flow: the weights reduce to smoothness + adversarial.
    cfg, gan, losses, real = _parts(context_frames=0, flow_tv_weight=0.5)
    g_params = list(gan.generator.module.parameters())
    g_step, checked = gan.opt_g.step, []

    def check_gradient(*args, **kwargs):
        (generated,) = gan.generator.outputs
        frames = gan.d_image.inputs[-1][0]
        positions = [_which_frame(f, real, generated, 0)[2] for f in frames[: len(frames) // len(real)]]
        z = gan.generator.inputs[0][1]
        loss = sum(_expected_generator_loss(t, getattr(cfg, WEIGHTS[t]), gan, real, z, cfg, positions)
                   for t in ("smooth", "adv"))
        for p, e in zip(g_params, torch.autograd.grad(loss, g_params, allow_unused=True), strict=True):
            torch.testing.assert_close(p.grad, torch.zeros_like(p) if e is None else e, rtol=RTOL, atol=ATOL)
        checked.append(True)
        return g_step(*args, **kwargs)

    gan.opt_g.step = check_gradient
    ok, logs = train_step(0, real, gan, losses, cfg, StubAccelerator())
    assert ok and checked
    assert {name for name in logs if name.startswith("g/")} == {"g/smooth", "g/adv", "g/total"}


# ----------------------------------------------------------------------------------------------
# main's loop: skipped steps leave the EMA alone


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory):
    """The real ``main`` for 4 steps; step 1's discriminator half and step 2's generator half are
    made non-finite. Records the generator's weights before the run and after every step."""
    from accelerate.state import AcceleratorState

    import genloss as gl
    import train.gan as gan_module
    from train.options import parse_args

    tmp = tmp_path_factory.mktemp("loop")
    nan_d, nan_g, state = {1}, {2}, {"step": None}
    steps: list[tuple[int, bool, dict, dict]] = []
    real_step = gan_module.train_step
    d_loss, g_loss = gl.discriminator_loss, gl.generator_loss

    def weights(module):
        module = getattr(module, "module", module)
        return {n: p.detach().clone() for n, p in module.state_dict().items()}

    def recording_step(step, real, gan, *args, **kwargs):
        if not steps:
            d = {**weights(gan.d_image), **{"v." + n: v for n, v in weights(gan.d_video).items()}}
            steps.append((-1, True, weights(gan.generator), d))
        state["step"] = step
        ok, logs = real_step(step, real, gan, *args, **kwargs)
        d = {**weights(gan.d_image), **{"v." + n: v for n, v in weights(gan.d_video).items()}}
        steps.append((step, ok, weights(gan.generator), d))
        return ok, logs

    def nan_if(when, fn):
        return lambda *a, **k: fn(*a, **k) * (math.nan if state["step"] in when else 1.0)

    real_detector = gan_module.end_of_run_detector

    def recording_detector(*args, protocol="default", **kwargs):  # records what the run asked for
        state["detector_protocol"] = protocol
        return real_detector(*args, protocol="default", **kwargs)  # and runs the quick one

    # --ema-decay 0.05: below the warm-up's (1 + n) / (10 + n), so the setting itself decides the average.
    flags = [*TINY, "--max-steps", "4", "--adv-start", "0", "--ema-decay", "0.05",
             "--nonfinite-patience", "3", "--log-every", "3", "--eval-every", "4", "--sample-every", "4",
             "--checkpoint-every", "4", "--run-name", "loop", "--output-dir", str(tmp / "runs"),
             "--samples-dir", str(tmp / "samples"), "--detect-protocol", "strong"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gan_module, "train_step", recording_step)
        mp.setattr(gan_module, "end_of_run_detector", recording_detector)
        mp.setattr(gl, "discriminator_loss", nan_if(nan_d, d_loss))
        mp.setattr(gl, "generator_loss", nan_if(nan_g, g_loss))
        try:
            gan_module.main(parse_args(flags))
        finally:
            AcceleratorState._reset_state(reset_partial_state=True)
            torch.set_num_threads(1)
    assert state["detector_protocol"] == "strong"  # --detect-protocol reaches the end-of-run detector
    return tmp / "runs" / "loop", steps, parse_args(flags).config


class TestLoop:
    def test_skipped_steps_change_no_weight(self, loop_run):
        run_dir, steps, _ = loop_run
        assert [(s, ok) for s, ok, _, _ in steps] == [(-1, True), (0, True), (1, False), (2, False), (3, True)]
        for before, after in ((1, 2), (1, 3)):  # after step 0 == after the skipped steps 1 and 2
            for i in (2, 3):
                for name, value in steps[before][i].items():
                    assert torch.equal(steps[after][i][name], value), (after, name)
        # --log-every 3 logs steps 3 and 4 (the last); a skipped step is logged whenever it happens.
        records = [r for r in read_metrics(run_dir) if "skipped_steps" in r]
        assert [(r["step"], r["skipped_steps"]) for r in records] == [(2, 1), (3, 2), (4, 2)]

    def test_first_step_moves_each_model_by_its_learning_rate(self, loop_run):
        # Adam's first update is lr * g / (|g| + eps): every weight with a gradient well above eps
        # moves by lr, so the largest move of each model is its --lr-g / --lr-d.
        # Each discriminator on its own ("v." marks the video one's weights): both are optimised.
        _, steps, cfg = loop_run
        for i, lr, video in ((2, cfg.lr_g, None), (3, cfg.lr_d, False), (3, cfg.lr_d, True)):
            moved = max((steps[1][i][n].double() - v.double()).abs().max().item() for n, v in steps[0][i].items()
                        if video is None or n.startswith("v.") == video)
            assert moved == pytest.approx(lr, rel=1e-3)  # float32 weights of order 0.1: 1e-5 relative

    def test_ema_averages_the_applied_steps_only(self, loop_run):
        run_dir, steps, cfg = loop_run
        ckpt = run_dir / "checkpoints" / "checkpoint-4"
        ema = torch.load(ckpt / "ema_generator.pt", weights_only=True)
        expected = {n: v.double() for n, v in steps[0][2].items()}  # the EMA starts as the initial weights
        updates = 0
        for _, ok, weights, _ in steps[1:]:
            if ok:
                d = min(cfg.ema_decay, (1 + updates) / (10 + updates))
                expected = {n: d * expected[n] + (1 - d) * weights[n].double() for n in expected}
                updates += 1
        assert updates == 2
        for name, value in expected.items():
            # The EMA is kept in float32 (lerp_): 1e-6 relative to weights of order 1.
            torch.testing.assert_close(ema[name].double(), value, rtol=1e-6, atol=1e-7, msg=name)
        # Had skipped steps counted, the EMA would sit measurably closer to the last weights.
        custom = [torch.load(p, weights_only=False) for p in sorted(ckpt.glob("custom_checkpoint_*.pkl"))]
        assert [c["updates"] for c in custom if isinstance(c, dict) and "updates" in c] == [2]

    def test_eval_uses_the_ema_weights(self, loop_run):
        run_dir, _, cfg = loop_run
        record = [r for r in read_metrics(run_dir) if "eval/psnr" in r][-1]
        assert record["step"] == 4
        check_eval_record(record, heldout_clips(cfg), ema_generator(run_dir, 4, cfg), cfg)


def test_a_resumed_grad_accum_run_continues_with_the_next_micro_batches(tmp_path):
    """--grad-accum 2, batch 2: steps 0 and 1 train on micro-batches 0-3 (clips 0-7). Resumed from
    step 2's checkpoint, step 2 goes on with micro-batches 4 and 5 (clips 8-11), as an uninterrupted
    run would: the loader skips steps x micro-batches, not steps. Step 0's first micro-batch is
    reported non-finite: its window is skipped, and the next window starts finite again."""
    from accelerate.state import AcceleratorState

    import train.gan as gan_module
    from train.options import parse_args

    seen, real_step = [], gan_module.train_step

    def recording_step(step, real, gan, losses, cfg, accelerator, window_ok=True, **kwargs):
        seen.append((step, real.clone(), window_ok))
        ok, logs = real_step(step, real, gan, losses, cfg, accelerator, window_ok, **kwargs)
        return ok and len(seen) > 1, logs

    flags = [*TINY, "--grad-accum", "2", "--eval-every", "100", "--sample-every", "100", "--checkpoint-every", "1",
             "--detect-clips", "0", "--run-name", "accum", "--output-dir", str(tmp_path / "runs"),
             "--samples-dir", str(tmp_path / "samples")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gan_module, "train_step", recording_step)
        try:
            for argv in (["--max-steps", "2"], ["--max-steps", "3", "--resume", "latest"]):
                gan_module.main(parse_args([*flags, *argv]))
                AcceleratorState._reset_state(reset_partial_state=True)
        finally:
            AcceleratorState._reset_state(reset_partial_state=True)
            torch.set_num_threads(1)
    clips = MovingShapes(12, frames=4, size=16, split="train")
    assert [(s, ok) for s, _, ok in seen] == [(0, True), (0, False), (1, True), (1, True), (2, True), (2, True)]
    for i, (_, real, _) in enumerate(seen):
        torch.testing.assert_close(real, torch.stack([clips[2 * i], clips[2 * i + 1]]), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# Settings' ranges and the progress bar's window


POSITIVE = ("max_steps", "batch_size", "grad_accum", "sample_every", "eval_every", "checkpoint_every",
            "keep_checkpoints", "log_every", "eval_clips", "sample_clips", "z_dim", "r1_interval", "nonfinite_patience")
NON_NEGATIVE = ("adv_weight", "r1_gamma", "rec_weight", "gdl_weight", "tdl_weight", "smooth_weight",
                "perceptual_weight", "max_grad_norm")


@pytest.mark.parametrize("name,bad,edge", [
    *((name, 0, 1) for name in POSITIVE),
    *((name, bad, 0.0) for name in NON_NEGATIVE for bad in (-1e-9, math.nan)),
    ("ema_decay", 1.0, 0.0), ("ema_decay", -1e-9, 0.999), ("lr_g", 0.0, 1e-9), ("lr_d", -1.0, 1e-9),
])
def test_settings_out_of_range_are_refused_naming_the_flag(name, bad, edge):
    import dataclasses

    from train.config import ConfigError

    flag = "--" + name.replace("_", "-")
    with pytest.raises(ConfigError, match=rf"^{flag} must be"):
        dataclasses.replace(TrainConfig(), **{name: bad}).validate(environment=False)
    dataclasses.replace(TrainConfig(), **{name: edge}).validate(environment=False)


@pytest.mark.parametrize("bad,edge,message", [
    ({"frames": 6, "context_frames": 6}, {"frames": 6, "context_frames": 5},
     r"^--context-frames must be in \[0, --frames\)"),
    ({"context_frames": -1}, {"context_frames": 0}, r"^--context-frames must be in"),
    ({"frames": 2, "context_frames": 1}, {"frames": 3, "context_frames": 2}, r"^--frames must be >= 3"),
    ({"size": 20}, {"size": 16}, r"^--size must be a multiple of 8 and at least 16"),
    ({"size": 8}, {"size": 24}, r"^--size must be"),
    ({"g_channels": 12}, {"g_channels": 8}, r"^--g-channels must be a multiple of 8"),
    ({"detect_clips": 1}, {"detect_clips": 2}, r"^--detect-clips must be 0 \(off\) or >= 2"),
    ({"g_flow_prior": True, "context_frames": 1}, {"g_flow_prior": True, "context_frames": 2},
     r"^--g-flow-prior measures the motion between the last two context frames: it needs --context-frames 2"),
])
def test_settings_that_dont_fit_together_are_refused_at_the_edge(bad, edge, message):
    from train.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        TrainConfig(**bad).validate(environment=False)
    TrainConfig(**edge).validate(environment=False)


def test_models_are_built_from_every_model_setting():
    from train.build import build_models

    cfg = TrainConfig(frames=5, context_frames=1, size=16, z_dim=4, g_channels=8, g_output_scale=1, d_channels=8,
                      spectral_norm=True, video_d_input="clip+diff", g_output="blend", g_warp="bicubic",
                      d_image_levels=3, d_image_trunk="strided", d_image_input="frame+context")  # none at its default
    generator, d_image, d_video = build_models(cfg)
    g = generator.config
    assert (g.frames, g.context_frames, g.size, g.z_dim, g.base_channels, g.output_scale, g.output, g.warp_mode) == (
        5, 1, 16, 4, 8, 1, "blend", "bicubic")
    assert (d_image.config.levels, d_video.config.levels) == (3, 3)
    assert (d_image.config.trunk, d_video.config.trunk) == ("strided", "strided")
    assert not any(isinstance(m, nn.MaxPool2d) for m in d_image.modules())
    assert d_image(torch.zeros(1, 6, 16, 16))[0].shape == (1, 1, 2, 2)  # a logit per 8x8 patch
    # The defaults differ from DiscriminatorConfig's (strided, 3): built from them, not from its defaults.
    d_local = build_models(dataclasses.replace(cfg, d_image_levels=2, d_image_trunk="local", d_image_input="frame"))[1]
    assert (d_local.config.levels, d_local.config.trunk, d_local.config.channels) == (2, "local", 3)
    assert sum(isinstance(m, nn.MaxPool2d) for m in d_local.modules()) == 2  # the local trunk pools per level
    assert d_local(torch.zeros(1, 3, 16, 16))[0].shape == (1, 1, 4, 4)  # a logit per 4x4 patch
    for d, channels in ((d_image, 6), (d_video, 6)):  # frame+context, clip+diff: 2C channels each
        assert (d.config.size, d.config.base_channels, d.config.spectral_norm, d.config.channels) == (16, 8, True,
                                                                                                      channels)
        assert any("orig" in name for name, _ in d.named_parameters())  # the spectral-norm wrapper is there


def test_progress_bar_numbers_are_window_means():
    from train.run import LogWindow

    window = LogWindow()
    for g, d in ((1.0, 4.0), (2.0, 5.0), (6.0, 0.0)):
        window.add({"g/total": torch.tensor(g), "d/total": torch.tensor(d), "g/rec": torch.tensor(9.0)})
    assert window.means() == {"g": "3.000", "d": "3.000"}
    window.add({"g/total": torch.tensor(0.5), "d/total": torch.tensor(-1.0)})
    assert window.means() == {"g": "0.500", "d": "-1.000"}  # a new window


def test_logged_records_carry_the_newest_lazy_penalty():
    """R1 is due every --r1-interval steps and records are written every --log-every: the record
    holds the newest R1 (and R2), not nothing when the two grids don't meet."""
    from train.run import LogWindow

    window = LogWindow()
    step = {"g/total": torch.tensor(1.0), "d/total": torch.tensor(2.0)}
    assert window.with_penalties(step) == step  # none computed yet: none invented
    window.add({**step, "d/r1": torch.tensor(0.25)})  # a due step
    window.add(step)
    assert window.with_penalties(step) == {**step, "d/r1": torch.tensor(0.25)}
    window.means()  # the bar's window restarts; the penalty stays the newest known
    window.add({**step, "d/r1": torch.tensor(0.5), "d/r2": torch.tensor(0.125)})
    assert window.with_penalties(step) == {**step, "d/r1": torch.tensor(0.5), "d/r2": torch.tensor(0.125)}
    assert window.with_penalties({**step, "d/r1": torch.tensor(3.0)})["d/r1"] == 3.0  # this step's own wins


def test_ema_copies_buffers_and_averages_parameters():
    from train.state import EMA

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(8, 2))  # moves the batch-norm running statistics
    ema.update(model)
    d = min(0.5, 1 / 10)
    for name, p in ema.model.named_parameters():
        torch.testing.assert_close(p, d * before[name] + (1 - d) * (before[name] + 1), rtol=1e-6, atol=1e-7)
    for name, b in ema.model.named_buffers():
        assert torch.equal(b, dict(model.named_buffers())[name]), name
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())


def test_end_of_run_detector_scores_the_first_detect_clips_heldout_clips(monkeypatch):
    # --detect-clips 5 with --eval-clips 3 (the tiny runs use 4 for both, where a mix-up can't
    # show), and an odd count, so the training and test halves differ in size (2 and 3 pairs: 4
    # and 6 clips). --seed 3 and a randomised output layer (at init it ignores the noise): the
    # continuation depends on the run's fixed noise, which must follow --seed.
    import genloss.metrics as gm
    from train.build import build_generator
    from train.in_training_eval import end_of_run_detector, fixed_noise, generated_clips

    cfg = TrainConfig(**{**TINY_SETTINGS, "eval_clips": 3, "detect_clips": 5, "seed": 3})
    torch.manual_seed(0)
    generator = build_generator(cfg).eval()
    with torch.no_grad():
        for p in generator.head.parameters():
            p.normal_(0, 0.05)
    heldout = MovingShapes(7, frames=cfg.frames, size=cfg.size, seed=cfg.seed, split="heldout")
    scored, detectability = [], gm.detectability
    monkeypatch.setattr(gm, "detectability", lambda real, fake, **kw: scored.append((real, fake)) or
                        detectability(real, fake, **kw))
    values = end_of_run_detector(generator, heldout, cfg, torch.device("cpu"))
    monkeypatch.undo()
    clips = torch.stack([heldout[i] for i in range(5)])
    fake = generated_clips(generator, clips, fixed_noise(5, cfg.z_dim, cfg.seed), cfg.context_frames)
    (seen_real, seen_fake), = scored  # the same computation on both sides: bit equality
    assert torch.equal(seen_real, clips) and torch.equal(seen_fake, fake)
    assert not torch.equal(fake, generated_clips(generator, clips, fixed_noise(5, cfg.z_dim, 0), cfg.context_frames))
    result = gm.detectability(clips, fake, seed=0)
    assert (result.n_train, result.n_test) == (4, 6)
    assert values == {"eval/detect_acc": result.accuracy, "eval/detect_auc": result.auc,
                      "eval/detect_acc_low": result.interval[0], "eval/detect_acc_high": result.interval[1],
                      "eval/detect_n_train": 4, "eval/detect_n_test": 6}


def test_end_of_run_detector_strong_protocol_records_both_judges(monkeypatch):
    # protocol="strong": the frame judge on the generated frames (K=2 context frames skipped) and
    # the clip judge on whole clips, each judge's numbers under its own keys, side by side. The
    # judges train 40 steps here instead of 1200 (the same steps on both sides of the comparison).
    import genloss.metrics as gm
    from train.build import build_generator
    from train.in_training_eval import end_of_run_detector, fixed_noise, format_detector, generated_clips

    cfg = TrainConfig(**{**TINY_SETTINGS, "detect_clips": 6})
    torch.manual_seed(0)
    generator = build_generator(cfg).eval()
    heldout = MovingShapes(6, frames=cfg.frames, size=cfg.size, seed=cfg.seed, split="heldout")
    calls, detectability = [], gm.detectability
    monkeypatch.setattr(gm, "detectability", lambda real, fake, **kw: calls.append(kw) or
                        detectability(real, fake, steps=40, **kw))
    values = end_of_run_detector(generator, heldout, cfg, torch.device("cpu"), protocol="strong")
    monkeypatch.undo()
    assert calls == [{"seed": 0, "protocol": "strong", "context_frames": 2}]
    clips = torch.stack([heldout[i] for i in range(6)])
    fake = generated_clips(generator, clips, fixed_noise(6, cfg.z_dim, cfg.seed), cfg.context_frames)
    r = gm.detectability(clips, fake, seed=0, protocol="strong", context_frames=2, steps=40)
    # 3 real + 3 generated clips in each half; the frame judge's samples are the 2 generated frames
    # (4 frames, K=2) of each, its interval counts the clips.
    assert values == {
        "detect/frame_accuracy": r.frame.accuracy, "detect/frame_auc": r.frame.auc,
        "detect/frame_accuracy_low": r.frame.interval[0], "detect/frame_accuracy_high": r.frame.interval[1],
        "detect/frame_n_train": 6 * 2, "detect/frame_n_test": 6 * 2, "detect/frame_n_test_clips": 6,
        "detect/clip_accuracy": r.clip.accuracy, "detect/clip_auc": r.clip.auc,
        "detect/clip_accuracy_low": r.clip.interval[0], "detect/clip_accuracy_high": r.clip.interval[1],
        "detect/clip_n_train": 6, "detect/clip_n_test": 6, "detect/p_value": r.p_value}
    line = format_detector(values)
    assert line == (f"frame detector accuracy {r.frame.accuracy:.3f} (95% {r.frame.interval[0]:.3f}-"
                    f"{r.frame.interval[1]:.3f}), AUC {r.frame.auc:.3f}, 12 test frames of 6 clips; "
                    f"clip detector accuracy {r.clip.accuracy:.3f} (95% {r.clip.interval[0]:.3f}-"
                    f"{r.clip.interval[1]:.3f}), AUC {r.clip.auc:.3f}, 6 test clips; p {r.p_value:.3g}; "
                    "0.5 = can't tell from real")
    with pytest.raises(ValueError, match=r"`protocol` must be one of \('default', 'strong'\); got 'frames'"):
        end_of_run_detector(generator, heldout, cfg, torch.device("cpu"), protocol="frames")


def test_format_detector_default_protocol():
    from train.in_training_eval import format_detector

    values = {"eval/detect_acc": 0.49609375, "eval/detect_auc": 0.5078, "eval/detect_acc_low": 0.45297,
              "eval/detect_acc_high": 0.53927, "eval/detect_n_train": 512, "eval/detect_n_test": 512}
    assert format_detector(values) == ("detector accuracy 0.496 (95% 0.453-0.539), AUC 0.508, 512 test clips; "
                                       "0.5 = can't tell from real")


def test_eval_log_line_reads_the_registry():
    """The in-training evaluation's log line: the registry's labels and units, the copy-last-frame
    PSNR beside the model's with the difference, and a key the registry lacks as ``key=value``."""
    from train.in_training_eval import format_eval

    values = {"eval/psnr": 22.1367, "eval/psnr_baseline": 13.8438, "eval/lpips": 0.12345, "eval/tlp": 0.05,
              "eval/motion": 0.95812, "eval/unregistered": 2.0}
    assert format_eval(values) == ("PSNR 22.14 dB (copy-last-frame 13.84, +8.29 dB), LPIPS 0.1235, tLP 0.05, "
                                   "motion 0.9581 (1.0 is right), eval/unregistered=2")
    assert format_eval({"eval/motion": 1.0}) == "motion 1.0 (1.0 is right)"  # unconditional runs


def test_metrics_log_averages_the_losses_over_processes(tmp_path):
    import json

    from train.run import MetricsLog

    logs = [{"g/total": torch.tensor(1.0), "d/r1": torch.tensor(4.0)},
            {"g/total": torch.tensor(3.0), "d/r1": torch.tensor(0.0)}]
    names = sorted(logs[0])
    shares = [torch.stack([log[n] for n in names]) for log in logs]
    main = _ShardedAccelerator(0, 2, [shares[1]])
    main.log_with = []
    MetricsLog(tmp_path / "metrics.jsonl", main).write_losses(7, logs[0], skipped_steps=1)
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record == {"step": 7, "d/r1": 2.0, "g/total": 2.0, "skipped_steps": 1}


def test_moving_shapes_stay_in_the_frame():
    # One shape over 48 frames at up to 2 px per frame in a 16 px frame bounces many times: its
    # anti-aliased area is the same in every frame (it never leaves, nor sticks to, a border).
    clip = MovingShapes(3, frames=48, size=16, num_shapes=1, seed=2)
    for i in range(3):
        area = ((clip[i] + 1) / 2).amax(dim=0).sum(dim=(1, 2))  # (T,) coverage of the brightest channel
        assert (area.max() - area.min()) / area.mean() < 0.15, area
        positions = ((clip[i] + 1) / 2).amax(dim=0).flatten(1).argmax(dim=1)
        assert len(set(positions.tolist())) > 10  # it moves


def test_temporal_difference_includes_the_step_out_of_the_context():
    """The trainer's temporal-difference term compares every step of the continuation with the
    truth's, the first one (last context frame -> first generated frame) included: a model that
    jumps at the seam is penalised. Written out per step in float64."""
    g = torch.Generator().manual_seed(0)
    context, generated, future = (torch.rand(2, 3, k, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
                                  for k in (2, 3, 3))
    steps = [(generated[:, :, 0] - context[:, :, -1]) - (future[:, :, 0] - context[:, :, -1])]
    steps += [(generated[:, :, t] - generated[:, :, t - 1]) - (future[:, :, t] - future[:, :, t - 1]) for t in (1, 2)]
    expected = torch.stack(steps, 2).abs().mean()
    torch.testing.assert_close(temporal_difference_from_context(context, generated, future), expected,
                               rtol=1e-12, atol=0)

"""The trainer's adversarial recipe, one ``train_step`` at a time: R1/R2 in per-sample units through
the discriminators' view, time-consistent DiffAugment (the feature-matching pair shares a draw, the
discriminators' half draws independently), the video discriminator's frame differences, the
diagnostics on log steps, and the discriminators' half skipped when no term reads them.

Tiny models in-process with ``trainer_utils.StubAccelerator``; gradients compared in float64 against
the formulas recomputed here with plain torch (1e-10 relative), as in ``test_trainer_units.py``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainer_utils import TINY, TINY_SETTINGS, StubAccelerator, read_metrics

import genloss as gl
import train.gan as gan_module
import train.losses as losses_module
from genloss.augment import apply_augment
from train.build import build_models
from train.config import ConfigError, TrainConfig
from train.data import MovingShapes
from train.gan import GAN, train_step
from train.losses import build_losses

RTOL, ATOL = 1e-10, 1e-13  # float64: two summation orders agree to ~1e-15
TERMS = ("rec", "gdl", "tdl", "perceptual", "smooth", "adv")


class Recorder:
    """What one step did: each model's inputs and outputs (forward hooks), the frame indices the
    image discriminator got, and every augmentation draw, in call order."""

    def __init__(self, gan: GAN, monkeypatch) -> None:
        self.calls: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"g": [], "video": [], "image": []}
        for name, module in (("g", gan.generator), ("video", gan.d_video), ("image", gan.d_image)):
            module.register_forward_hook(self._hook(name))
        self.indices: list[torch.Tensor] = []
        self.draws: list[tuple[tuple[int, ...], dict[str, torch.Tensor]]] = []
        frame_indices, sample = gan_module.frame_indices, losses_module.sample_augment_params

        def recorded_indices(*args):
            self.indices.append(frame_indices(*args))
            return self.indices[-1]

        def recorded_draw(x, *args, **kwargs):
            self.draws.append((tuple(x.shape), sample(x, *args, **kwargs)))
            return self.draws[-1][1]

        monkeypatch.setattr(gan_module, "frame_indices", recorded_indices)
        monkeypatch.setattr(losses_module, "sample_augment_params", recorded_draw)

    def _hook(self, name: str):
        def hook(module, args, output):
            out = output if isinstance(output, torch.Tensor) else output[0]
            self.calls[name].append((args[0].detach().clone(), out.detach().clone()))
        return hook

    def clear(self) -> None:
        for calls in self.calls.values():
            calls.clear()
        self.indices.clear()
        self.draws.clear()


def _parts(**settings):
    """A tiny GAN (every generator layer with a gradient), its losses and one batch of real clips."""
    perceptual = "none" if settings.get("perceptual") == "none" else "feature-matching"
    cfg = TrainConfig(**{**TINY_SETTINGS, "frames": 5, "context_frames": 2, "adv_start": 0, "adv_ramp": 0,
                         "r1_interval": 1, **settings}).validate(environment=False)
    torch.manual_seed(0)
    generator, d_image, d_video = build_models(cfg)
    with torch.no_grad():
        for p in generator.head.parameters():  # zero at init ("copy the last frame")
            p.normal_(0, 0.05)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam([*d_image.parameters(), *d_video.parameters()], lr=cfg.lr_d, betas=(0.5, 0.99))
    gan = GAN(generator, d_image, d_video, opt_g, opt_d, d_image, d_video, generator.last_layer)
    shapes = MovingShapes(cfg.batch_size, frames=cfg.frames, size=cfg.size, seed=cfg.seed)
    real = torch.stack([shapes[i] for i in range(cfg.batch_size)]).to(torch.get_default_dtype())
    return cfg, gan, build_losses(cfg, None, perceptual), real


def _with_differences(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, 2C, T, H, W): the clip, then x_t - x_{t-1} with 0 at t = 0."""
    differences = torch.zeros_like(x)
    differences[:, :, 1:] = x[:, :, 1:] - x[:, :, :-1]
    return torch.cat([x, differences], dim=1)


def _frames(video: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Frames ``indices`` of every clip, clip by clip: (B * n, C, H, W)."""
    return video[:, :, indices].transpose(1, 2).flatten(0, 1)


def _mean_logit_penalty(d: nn.Module, x: torch.Tensor, view, real_half: bool) -> torch.Tensor:
    """Mean over samples of ||d mean_p D(view(x))_p / dx||^2 for the real (first) or generated
    (second) half of ``x``, differentiable in D's weights."""
    b = len(x) // 2
    logits = d(view(x))[0]
    part = logits[:b] if real_half else logits[b:]
    (grad,) = torch.autograd.grad(part.flatten(1).mean(1).sum(), x, create_graph=True)
    grad = grad[:b] if real_half else grad[b:]
    return grad.square().flatten(1).sum(1).mean()


def _hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


# ----------------------------------------------------------------------------------------------
# R1 and R2: per-sample units, w.r.t. the un-augmented inputs, gamma/2 x interval on due steps


@pytest.mark.parametrize("gamma1", [0.6, 0.0])  # 0.0: R2 alone, on the same due steps
def test_r1_r2_are_half_gamma_mean_logit_penalties_through_the_view(gamma1, float64, monkeypatch):
    gamma2, interval = 0.3, 3
    cfg, gan, losses, real = _parts(r1_gamma=gamma1, r2_gamma=gamma2, r1_interval=interval,
                                    augment="color,translation,cutout", video_d_input="clip+diff")
    rec = Recorder(gan, monkeypatch)
    d_video, d_image = gan.d_video, gan.d_image
    params = gan.d_parameters()
    checked, d_step = [], gan.opt_d.step

    def check_gradient(*args, **kwargs):
        (_, generated), = rec.calls["g"]
        fake = torch.cat([real[:, :, :2], generated], dim=2)
        (video_shape, video_draw), (frames_shape, frames_draw) = rec.draws[:2]  # the discriminators' half
        clips = torch.cat([real, fake]).requires_grad_(True)  # (2B, C, T, H, W): real, then generated
        frames = torch.cat([_frames(real, rec.indices[0]), _frames(fake, rec.indices[0])]).requires_grad_(True)
        assert video_shape == tuple(clips.shape) and frames_shape == tuple(frames.shape)

        def video_view(x):
            return _with_differences(apply_augment(x, video_draw))

        def image_view(x):
            return apply_augment(x, frames_draw)

        b = len(real)
        v, i = d_video(video_view(clips))[0], d_image(image_view(frames))[0]
        adversarial = _hinge_d(v[:b], v[b:]) + _hinge_d(i[: len(i) // 2], i[len(i) // 2:])
        r1 = gamma1 / 2 * (_mean_logit_penalty(d_video, clips, video_view, True)
                           + _mean_logit_penalty(d_image, frames, image_view, True))
        r2 = gamma2 / 2 * (_mean_logit_penalty(d_video, clips, video_view, False)
                           + _mean_logit_penalty(d_image, frames, image_view, False))
        due = state["step"] % interval == 0
        expected = torch.autograd.grad(adversarial + ((r1 + r2) * interval if due else 0), params)
        for p, e in zip(params, expected, strict=True):
            torch.testing.assert_close(p.grad, e, rtol=RTOL, atol=ATOL)
        checked.append((state["step"], r1.item(), r2.item()))
        return d_step(*args, **kwargs)

    gan.opt_d.step, state = check_gradient, {}
    for step in (0, 1):  # due, then not
        state["step"] = step
        rec.clear()
        ok, logs = train_step(step, real, gan, losses, cfg, StubAccelerator())
        assert ok and checked[-1][0] == step
        if step == 0:  # logged before the interval's gain
            if gamma1:
                assert logs["d/r1"].item() == pytest.approx(checked[-1][1], rel=1e-12)
            else:
                assert "d/r1" not in logs
            assert logs["d/r2"].item() == pytest.approx(checked[-1][2], rel=1e-12)
        else:
            assert "d/r1" not in logs and "d/r2" not in logs


def test_image_discriminator_sees_each_frame_next_to_its_last_context_frame(float64, monkeypatch):
    """--d-image-input frame+context: in both halves the image discriminator's input is each sampled
    frame then its clip's last context frame (always the real one) as 2C channels, both shown the
    frame's augmentation draw; R1 is taken with respect to the frames alone."""
    gamma = 0.6
    cfg, gan, losses, real = _parts(d_image_input="frame+context", augment="color,translation,cutout",
                                    r1_gamma=gamma)
    rec = Recorder(gan, monkeypatch)
    ok, logs = train_step(0, real, gan, losses, cfg, StubAccelerator())
    assert ok and gan.d_image.config.channels == 6
    (_, generated), = rec.calls["g"]
    fake = torch.cat([real[:, :, :2], generated], dim=2)
    d_idx, g_idx = rec.indices
    last = real[:, :, 1]  # (B, C, H, W): the last of the 2 context frames

    def shown(frames, context, draw):
        return torch.cat([apply_augment(frames, draw), apply_augment(context, draw)], dim=1)

    def context_of(idx):
        return last.repeat_interleave(len(idx), dim=0)  # clip by clip, as _frames orders the frames

    (_, d_draw), (_, g_draw) = rec.draws[1], rec.draws[3]  # video, frames; then the generator's half
    d_frames = torch.cat([_frames(real, d_idx), _frames(fake, d_idx)])
    seen_d, seen_g = rec.calls["image"][0][0], rec.calls["image"][1][0]
    torch.testing.assert_close(seen_d, shown(d_frames, torch.cat([context_of(d_idx)] * 2), d_draw),
                               rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(seen_g, shown(_frames(fake, g_idx), context_of(g_idx), g_draw), rtol=RTOL, atol=ATOL)
    assert not torch.equal(seen_d[:, 3:], seen_d[:, :3])  # the context is not the frame itself

    # R1 of this step (the parameters before the update are gone: recompute it from a copy)
    cfg2, gan2, losses2, _ = _parts(d_image_input="frame+context", augment="color,translation,cutout",
                                    r1_gamma=gamma)
    def real_half(draw, n):  # the draws cover real then generated inputs
        return {k: v[:n] for k, v in draw.items()}

    clips = real.clone().requires_grad_(True)
    frames = _frames(real, d_idx).requires_grad_(True)
    video_draw, frames_draw = real_half(rec.draws[0][1], len(clips)), real_half(d_draw, len(frames))
    r1 = gamma / 2 * (gl.r1_penalty(gan2.d_video(apply_augment(clips, video_draw))[0].flatten(1).mean(1), clips)
                      + gl.r1_penalty(gan2.d_image(shown(frames, context_of(d_idx), frames_draw))[0]
                                      .flatten(1).mean(1), frames))
    assert logs["d/r1"].item() == pytest.approx(r1.item(), rel=1e-9)


def test_frame_context_view_refuses_frames_without_their_context():
    from train.losses import DiscriminatorView

    view, frames = DiscriminatorView(frame_context=True), torch.zeros(4, 3, 8, 8)
    with pytest.raises(ValueError, match=r"expected a context frame per frame, of shape \(4, 3, 8, 8\); got None"):
        view.frames(frames)
    with pytest.raises(ValueError, match=r"got \(2, 3, 8, 8\)"):
        view.frames(frames, None, torch.zeros(2, 3, 8, 8))


def test_frame_context_needs_a_context():
    with pytest.raises(ConfigError, match=r"^--d-image-input frame\+context .* needs --context-frames 1 or more; got 0"):
        TrainConfig(d_image_input="frame+context", context_frames=0).validate(environment=False)
    TrainConfig(d_image_input="frame+context", context_frames=1).validate(environment=False)


def test_logged_r1_is_the_sum_convention_over_p_squared(float64, monkeypatch):
    # The conversion --help and the README give, gamma_sum = gamma / P^2, with the reference
    # discriminators' P: 32 logits per clip (T' x h x w = 2 x 4 x 4 for 6 frames of 32 px) and 64
    # per frame (8 x 8, two levels). genloss.r1_penalty on the summed logits is the library's own definition.
    gamma = 2.0
    cfg, gan, losses, real = _parts(size=32, frames=6, r1_gamma=gamma)
    rec = Recorder(gan, monkeypatch)
    expected, d_step = [], gan.opt_d.step

    def before_update(*args, **kwargs):
        clips = real.clone().requires_grad_(True)
        frames = _frames(real, rec.indices[0]).requires_grad_(True)
        v, i = gan.d_video(clips)[0], gan.d_image(frames)[0]
        assert v[0].numel() == 32 and i[0].numel() == 64
        expected.append(gamma / 2 * (gl.r1_penalty(v, clips) / 32**2 + gl.r1_penalty(i, frames) / 64**2))
        return d_step(*args, **kwargs)

    gan.opt_d.step = before_update
    _, logs = train_step(0, real, gan, losses, cfg, StubAccelerator())
    assert logs["d/r1"].item() == pytest.approx(expected[0].item(), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# DiffAugment: one draw per clip shared by its frames; the pair of the generator's half shares it


def _cutout_boxes(seen: torch.Tensor) -> torch.Tensor:
    """(N, H, W) masks of the zeroed box of each augmented clip (or frame), checking that it is the
    same box in every frame and channel. Real and generated pixels are never exactly 0 here."""
    zero = seen == 0
    dims = tuple(range(1, seen.ndim - 2))
    box = zero.all(dim=dims)
    assert torch.equal(box, zero.any(dim=dims)), "the box differs between the frames of a clip"
    assert box.flatten(1).any(1).all(), "every clip (frame) has a box: cutout was applied"
    return box


@pytest.mark.parametrize("pair", ["feature-matching", "relativistic"])
def test_generators_half_shares_one_draw_per_pair_discriminators_half_draws_independently(pair, monkeypatch):
    settings = ({"adv_weight": 0.0} if pair == "feature-matching"
                else {"adv_loss": "relativistic", "perceptual_weight": 0.0})
    cfg, gan, losses, real = _parts(augment="cutout", **settings)
    rec = Recorder(gan, monkeypatch)
    assert (real != 0).all()
    train_step(0, real, gan, losses, cfg, StubAccelerator())
    b = len(real)
    # Discriminators' half: one forward on real then generated clips, each clip its own box.
    d_half = _cutout_boxes(rec.calls["video"][0][0])
    assert not torch.equal(d_half[:b], d_half[b:])
    # Generator's half: the generated clip, then (no graph) the real one, with the same boxes.
    (fake_seen, _), (real_seen, _) = rec.calls["video"][1:]
    torch.testing.assert_close(_cutout_boxes(fake_seen), _cutout_boxes(real_seen), rtol=0, atol=0)
    assert not torch.equal(_cutout_boxes(real_seen), d_half[:b])  # a new draw in this half
    if pair == "relativistic":  # so are the image discriminator's frames
        (fake_frames, _), (real_frames, _) = rec.calls["image"][1:]
        image_d_half = _cutout_boxes(rec.calls["image"][0][0])
        n = len(image_d_half) // 2
        assert not torch.equal(image_d_half[:n], image_d_half[n:])
        torch.testing.assert_close(_cutout_boxes(fake_frames), _cutout_boxes(real_frames), rtol=0, atol=0)
    else:
        assert rec.calls["image"][1:] == []  # no adversarial term: the image discriminator is not asked


def test_feature_matching_compares_the_pair_under_the_same_draw(float64, monkeypatch):
    # The term's value: L1 between the video discriminator's features of the real clip and of its
    # generated continuation, both augmented with the generator's half's one draw.
    cfg, gan, losses, real = _parts(augment="color,translation,cutout", adv_weight=0.0,
                                    **{w: 0.0 for w in ("rec_weight", "gdl_weight", "tdl_weight", "smooth_weight")})
    rec = Recorder(gan, monkeypatch)
    values, g_step = [], gan.opt_g.step

    def before_update(*args, **kwargs):  # the discriminators' weights the term was computed with
        (_, generated), = rec.calls["g"]
        fake = torch.cat([real[:, :, :2], generated], dim=2)
        (shape, draw), = rec.draws[2:]  # after the discriminators' half's two
        assert shape == tuple(fake.shape)
        real_features = gan.d_video(apply_augment(real, draw))[1]
        fake_features = gan.d_video(apply_augment(fake, draw))[1]
        values.append(torch.stack([(r - f).abs().mean() for r, f in zip(real_features, fake_features,
                                                                         strict=True)]).mean())
        return g_step(*args, **kwargs)

    gan.opt_g.step = before_update
    _, logs = train_step(0, real, gan, losses, cfg, StubAccelerator())
    assert logs["g/perceptual"].item() == pytest.approx(values[0].item(), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# --video-d-input clip+diff


@pytest.mark.parametrize("augment", ["", "color,translation,cutout"])
def test_video_discriminator_gets_the_clip_and_its_frame_differences(augment, monkeypatch):
    cfg, gan, losses, real = _parts(video_d_input="clip+diff", augment=augment, adv_loss="relativistic")
    assert gan.d_video.trunk.layers[0][0].in_channels == 6 and gan.d_image.trunk.layers[0][0].in_channels == 3
    rec = Recorder(gan, monkeypatch)
    train_step(0, real, gan, losses, cfg, StubAccelerator())
    (_, generated), = rec.calls["g"]
    fake = torch.cat([real[:, :, :2], generated], dim=2)
    for k, (seen, _) in enumerate(rec.calls["video"]):  # both halves
        assert seen.shape[1] == 6
        clips, differences = seen[:, :3], seen[:, 3:]
        # The differences are those of the clip as the discriminator sees it (after augmentation).
        assert torch.equal(differences[:, :, 0], torch.zeros_like(differences[:, :, 0]))
        assert torch.equal(differences[:, :, 1:], clips[:, :, 1:] - clips[:, :, :-1])
        if not augment:
            expected = torch.cat([real, fake.detach()]) if k == 0 else (fake if k == 1 else real)
            assert torch.equal(clips, expected)


def test_new_settings_are_validated_and_classified():
    from train.config import RESUME_RULES

    for settings, flag in (({"augment": "color,flip"}, "--augment"), ({"video_d_input": "diff"}, "--video-d-input"),
                           ({"r2_gamma": -0.1}, "--r2-gamma")):
        with pytest.raises(ConfigError, match=flag):
            TrainConfig(**settings).validate(environment=False)
    assert RESUME_RULES["video_d_input"] == "model"  # the video discriminator's input layer
    assert {RESUME_RULES[n] for n in ("augment", "r1_gamma", "r2_gamma")} == {"training"}
    defaults = TrainConfig()
    assert (defaults.augment, defaults.video_d_input, defaults.r2_gamma) == ("", "clip", 0.0)


# ----------------------------------------------------------------------------------------------
# Diagnostics on log steps


def _weighted_terms(cfg, gan: GAN, real: torch.Tensor, generated: torch.Tensor, indices: torch.Tensor) -> dict:
    """Each generator term, weighted, from the formulas, as a function of ``generated``."""
    context, future = real[:, :, :2], real[:, :, 2:]
    fake = torch.cat([context, generated], dim=2)
    last = context[:, :, -1:]

    def grad_gap(dim):
        return (generated.diff(dim=dim).abs() - future.diff(dim=dim).abs()).abs().mean()

    with torch.no_grad():
        real_features = gan.d_video(real)[1]
    fake_logits, fake_features = gan.d_video(fake)
    terms = {
        "rec": (generated - future).abs().mean(),
        "gdl": (grad_gap(-1) + grad_gap(-2)) / 2,
        "tdl": (torch.cat([last, generated], 2).diff(dim=2) - torch.cat([last, future], 2).diff(dim=2)).abs().mean(),
        "perceptual": torch.stack([(r - f).abs().mean() for r, f in zip(real_features, fake_features,
                                                                         strict=True)]).mean(),
        "smooth": fake.diff(dim=2).diff(dim=2).abs().mean(),
        "adv": -fake_logits.mean() - gan.d_image(_frames(fake, indices))[0].mean(),
    }
    return {name: getattr(cfg, f"{name}_weight") * value for name, value in terms.items()}


def test_diagnostics_on_log_steps_equal_independent_autograd(float64, monkeypatch):
    cfg, gan, losses, real = _parts()
    rec = Recorder(gan, monkeypatch)
    expected, g_step = {}, gan.opt_g.step

    def before_update(*args, **kwargs):  # the generator's weights and the updated discriminators
        (_, generated), = rec.calls["g"]
        generated = generated.clone().requires_grad_(True)
        terms = _weighted_terms(cfg, gan, real, generated, rec.indices[1])
        for name, term in terms.items():
            expected[f"diag/gradnorm/{name}"] = torch.autograd.grad(term, generated, retain_graph=True)[0].norm().item()
        return g_step(*args, **kwargs)

    gan.opt_g.step = before_update
    _, logs = train_step(0, real, gan, losses, cfg, StubAccelerator(), log=True)
    assert set(expected) == {n for n in logs if n.startswith("diag/gradnorm/")}
    for name, value in expected.items():  # the norms are logged in float32: 2^-24 relative rounding
        assert logs[name].item() == pytest.approx(value, rel=1e-7), name
    # The discriminators' half: every patch logit one vote.
    b = len(real)
    for disc in ("video", "image"):
        logits = rec.calls[disc][0][1]
        r, f = logits[: len(logits) // 2], logits[len(logits) // 2:]
        accuracy = ((r > 0).sum() + (f < 0).sum()).item() / (r.numel() + f.numel())
        assert logs[f"diag/d_accuracy/{disc}"].item() == pytest.approx(accuracy, rel=1e-7)
        assert logs[f"diag/d_real/{disc}"].item() == pytest.approx(r.mean().item(), rel=1e-7)
        assert logs[f"diag/d_fake/{disc}"].item() == pytest.approx(f.mean().item(), rel=1e-7)
    assert len(rec.calls["video"][0][1]) == 2 * b


def test_diagnostics_only_on_log_steps_and_the_windows_last_micro_batch():
    cfg, gan, losses, real = _parts()
    diag = {*(f"diag/gradnorm/{t}" for t in TERMS),
            *(f"diag/{s}/{d}" for s in ("d_accuracy", "d_real", "d_fake") for d in ("video", "image"))}
    _, logs = train_step(0, real, gan, losses, cfg, StubAccelerator(), log=True)
    assert {n for n in logs if n.startswith("diag/")} == diag
    assert {n for n in logs if not n.startswith("diag/")} == {  # the flow term: no push on the frames to log
        *(f"g/{t}" for t in TERMS), "g/flow_tv", "g/total", "d/adv_video", "d/adv_image", "d/total", "d/r1"}
    _, logs = train_step(1, real, gan, losses, cfg, StubAccelerator(), log=False)
    assert not [n for n in logs if n.startswith("diag/")]
    inside_window = StubAccelerator()
    inside_window.sync_gradients = False  # a micro-batch before the last of a --grad-accum window
    _, logs = train_step(2, real, gan, losses, cfg, inside_window, log=True)
    assert not [n for n in logs if n.startswith("diag/")]


# ----------------------------------------------------------------------------------------------
# The discriminators' half: from step 0, skipped only when no term ever reads them


@pytest.mark.parametrize("settings,needed", [
    ({"adv_weight": 0.0, "perceptual": "none"}, False),
    ({"adv_weight": 0.0, "perceptual_weight": 0.0}, False),
    ({"perceptual": "none", "adv_start": 10, "max_steps": 10}, False),  # the adversarial term never starts
    ({"perceptual": "none", "adv_start": 9, "adv_ramp": 1, "max_steps": 10}, False),  # factor 0 at step 9
    ({"adv_weight": 0.0, "context_frames": 0}, False),  # unconditional: no target, no feature matching
    ({"perceptual": "none", "adv_start": 9, "max_steps": 10}, True),
    ({"adv_weight": 0.0}, True),  # discriminator feature matching
    ({"perceptual": "none", "adv_start": 5, "adv_ramp": 3}, True),  # trained from step 0, before the term starts
])
def test_discriminators_half_runs_from_step_0_and_is_skipped_only_when_nothing_reads_them(
        settings, needed, monkeypatch):
    cfg, gan, losses, real = _parts(**settings)
    assert losses.discriminators_needed is needed
    rec = Recorder(gan, monkeypatch)
    before = [p.detach().clone() for p in gan.d_parameters()]
    _, logs = train_step(0, real, gan, losses, cfg, StubAccelerator(), log=True)
    moved = any(not torch.equal(p, q) for p, q in zip(gan.d_parameters(), before, strict=True))
    assert moved is needed and bool(gan.opt_d.state) is needed
    assert bool(rec.calls["video"] or rec.calls["image"]) is needed
    assert bool([n for n in logs if n.startswith(("d/", "diag/d_"))]) is needed


# ----------------------------------------------------------------------------------------------
# main: diagnostics through metrics.jsonl, warnings once, the discriminators' note


def test_main_logs_diagnostics_and_prints_each_warning_once(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from accelerate.state import AcceleratorState

    from train.options import parse_args

    seen = []

    class OneWarning:  # stands in for train.diagnose.Monitor: a finding on the first record only
        def __init__(self, settings):
            seen.append(settings)

        def add(self, record):
            seen.append(record)
            return [SimpleNamespace(message="d at chance")] if len(seen) == 2 else []

    monkeypatch.setattr(gan_module, "Monitor", OneWarning)
    flags = [*TINY, "--max-steps", "4", "--log-every", "2", "--eval-every", "4", "--detect-clips", "0",
             "--adv-weight", "0", "--perceptual", "none", "--run-name", "diag", "--output-dir", str(tmp_path / "runs"),
             "--samples-dir", str(tmp_path / "samples")]
    try:
        gan_module.main(parse_args(flags))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        torch.set_num_threads(1)
    out = capsys.readouterr().out
    assert out.count("warning: d at chance") == 1
    assert out.count("discriminators: off") == 1
    records = [r for r in read_metrics(tmp_path / "runs" / "diag") if "g/total" in r]
    assert [r["step"] for r in records] == [2, 4] and seen[1:] == records
    for record in records:  # no discriminator ran, so no d/ values at all
        assert {n for n in record if n.startswith("diag/")} == {f"diag/gradnorm/{t}" for t in ("rec", "gdl", "tdl",
                                                                                                 "smooth")}
        assert not [n for n in record if n.startswith("d/")]
    import json
    run = json.loads((tmp_path / "runs" / "diag" / "config.json").read_text())["run"]
    assert run["discriminators"].startswith("off: no term of this run reads them")

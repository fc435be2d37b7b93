"""Schedule and CompositeLoss exactly as the API states."""

import io
import warnings

import pytest
import torch

import genloss as gl


class TestSchedule:
    def test_ramp(self):
        s = gl.Schedule(2.0, start=10, ramp=4)
        assert [s(step) for step in (0, 9, 10, 11, 12, 13, 14, 100)] == [0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.0]

    def test_no_ramp(self):
        s = gl.Schedule(0.1, start=3)
        assert [s(step) for step in (0, 2, 3, 50)] == [0.0, 0.0, 0.1, 0.1]
        assert gl.Schedule(1.5)(0) == 1.5

    @pytest.mark.parametrize("kwargs", [{"start": -1}, {"ramp": -2}, {"start": 1.5}])
    def test_bad_arguments(self, kwargs):
        with pytest.raises(ValueError, match="must be a non-negative int"):
            gl.Schedule(1.0, **kwargs)
        with pytest.raises(TypeError, match="`weight` must be a float; got str"):
            gl.Schedule("1.0")


class TestCompositeLoss:
    def test_total_and_logs(self):
        loss = gl.CompositeLoss({"a": 2.0, "b": gl.Schedule(0.5, start=0, ramp=10)})
        x = torch.tensor(3.0, requires_grad=True)
        total, logs = loss(5, a=lambda: x * 2, b=lambda: x**2)
        # 2 * (2x) + (0.5 * 5 / 10) * x^2 at x = 3
        assert total.item() == pytest.approx(2 * 6 + 0.25 * 9)
        assert set(logs) == {"a", "b", "total"}
        assert logs["a"].item() == 6.0 and logs["b"].item() == 9.0  # unweighted
        assert logs["total"].item() == pytest.approx(total.item())
        assert not any(v.requires_grad for v in logs.values())
        total.backward()
        assert x.grad.item() == pytest.approx(2 * 2 + 0.25 * 2 * 3)

    def test_zero_factor_terms_are_not_called(self):
        called = []

        def adversarial():
            called.append(True)
            return torch.tensor(1.0)

        loss = gl.CompositeLoss({"l1": 1.0, "adv": gl.Schedule(0.1, start=100)})
        total, logs = loss(99, l1=lambda: torch.tensor(0.5), adv=adversarial)
        assert not called and "adv" not in logs and total.item() == 0.5
        total, logs = loss(100, l1=lambda: torch.tensor(0.5), adv=adversarial)
        assert called and logs["adv"].item() == 1.0 and total.item() == pytest.approx(0.6)

    def test_all_terms_off(self):
        total, logs = gl.CompositeLoss({"a": 0.0})(0, a=lambda: torch.tensor(1.0))
        assert total.item() == 0.0 and logs == {"total": total}

    def test_unknown_and_missing_thunks(self):
        loss = gl.CompositeLoss({"a": 1.0, "b": 1.0})
        one = lambda: torch.tensor(1.0)  # noqa: E731
        with pytest.raises(ValueError, match=r"unknown: \['c'\], missing: \['b'\]"):
            loss(0, a=one, c=one)
        with pytest.raises(ValueError, match=r"unknown: \[\], missing: \['a'\]"):
            loss(0, b=one)

    def test_non_scalar_term(self):
        loss = gl.CompositeLoss({"a": 1.0})
        with pytest.raises(ValueError, match=r"term 'a' must return a scalar \(0-d\) tensor; got \(2,\)"):
            loss(0, a=lambda: torch.ones(2))

    def test_bad_terms(self):
        with pytest.raises(ValueError, match="non-empty mapping"):
            gl.CompositeLoss({})
        with pytest.raises(ValueError, match="other than 'total'"):
            gl.CompositeLoss({"total": 1.0})
        assert "Schedule(0.1, start=5, ramp=0)" in repr(gl.CompositeLoss({"adv": gl.Schedule(0.1, start=5)}))


class TestCompositeDiagnostics:
    def test_gradnorm_of_each_weighted_term(self):
        loss = gl.CompositeLoss({"lin": 2.0, "sq": gl.Schedule(0.5, ramp=10), "off": gl.Schedule(1.0, start=100)})
        x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        w = torch.randn(3, 4, dtype=torch.float64)
        thunks = dict(lin=lambda: (w * x).sum(), sq=lambda: x.square().mean(), off=lambda: x.sum())
        total, logs = loss(5, gradnorm_wrt=x, **thunks)
        assert list(logs) == ["lin", "sq", "total", "gradnorm/lin", "gradnorm/sq"]  # no entry for "off"
        # d(2 * <w, x>)/dx = 2w; d(0.25 * mean(x^2))/dx = 0.25 * 2x / 12.
        assert logs["gradnorm/lin"].item() == pytest.approx(2 * w.norm().item(), rel=1e-7)
        assert logs["gradnorm/sq"].item() == pytest.approx((0.25 * 2 / 12) * x.detach().norm().item(), rel=1e-7)
        assert not logs["gradnorm/lin"].requires_grad and logs["gradnorm/lin"].dtype == torch.float32
        total.backward()  # the graph survived
        grad_with = x.grad.clone()
        x.grad = None
        loss(5, **thunks)[0].backward()
        assert torch.equal(grad_with, x.grad)

    def test_gradnorm_zero_for_independent_term(self):
        loss = gl.CompositeLoss({"a": 1.0, "b": 1.0})
        x, y = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
        _, logs = loss(0, gradnorm_wrt=[x], a=lambda: x.sum(), b=lambda: y.sum())
        assert logs["gradnorm/a"].item() == pytest.approx(2.0) and logs["gradnorm/b"].item() == 0.0

    def test_d_stats(self):
        loss = gl.CompositeLoss({"adv_video": 1.0, "adv_image": gl.Schedule(1.0, start=10)})
        torch.manual_seed(0)
        v_real, v_fake = torch.randn(2, 1, 3, 2, 2), torch.randn(2, 1, 3, 2, 2)
        i_real, i_fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
        total, logs = loss(
            0,
            d_stats={"video": (v_real, v_fake), "image": (i_real, i_fake)},
            adv_video=lambda: gl.discriminator_loss(v_real, v_fake),
            adv_image=lambda: gl.discriminator_loss(i_real, i_fake),
        )
        for name, (r, f) in {"video": (v_real, v_fake), "image": (i_real, i_fake)}.items():
            stats = gl.discriminator_stats(r, f)  # itself tested against a hand count
            assert logs[f"d_accuracy/{name}"].item() == stats["accuracy"].item()
            assert logs[f"d_real/{name}"].item() == stats["real_mean"].item()
            assert logs[f"d_fake/{name}"].item() == stats["fake_mean"].item()
        # Reported whatever the terms' factors: "adv_image" is off at step 0, its stats are not.
        assert "adv_image" not in logs and "d_accuracy/image" in logs
        assert logs["total"].item() == pytest.approx(gl.discriminator_loss(v_real, v_fake).item())

    def test_nothing_added_by_default(self):
        x = torch.randn(3, requires_grad=True)
        _, logs = gl.CompositeLoss({"a": 1.0})(0, gradnorm_wrt=None, d_stats=None, a=lambda: x.sum())
        assert list(logs) == ["a", "total"]

    @pytest.mark.parametrize("name", ["step", "gradnorm_wrt", "d_stats", "gradnorm/a", "d_accuracy/v", "d_real/v", "d_fake/v"])
    def test_reserved_term_names(self, name):
        with pytest.raises(ValueError, match=f"term name '{name}' is reserved"):
            gl.CompositeLoss({name: 1.0})

    def test_bad_diagnostic_arguments_fail_before_any_term_runs(self):
        called = []

        def term():
            called.append(True)
            return torch.tensor(1.0)

        loss = gl.CompositeLoss({"a": 1.0})
        ok = torch.randn(2, 1)
        with pytest.raises(ValueError, match="`gradnorm_wrt` must be part of the autograd graph"):
            loss(0, gradnorm_wrt=torch.randn(3), a=term)
        with pytest.raises(TypeError, match="`d_stats` must be a mapping of discriminator name"):
            loss(0, d_stats=[(ok, ok)], a=term)
        with pytest.raises(TypeError, match=r"`d_stats\['v'\]` must be a pair \(real_logits, fake_logits\)"):
            loss(0, d_stats={"v": (ok, ok, ok)}, a=term)
        with pytest.raises(TypeError, match=r"`d_stats\['v'\]\[1\]` must be a floating-point tensor"):
            loss(0, d_stats={"v": (ok, torch.ones(2, dtype=torch.long))}, a=term)
        with pytest.raises(ValueError, match="`d_stats` keys must be non-empty strings"):
            loss(0, d_stats={"": (ok, ok)}, a=term)
        assert not called


def run_steps(loss, steps, rec_values, adv_calls):
    """Drive ``loss`` ({"rec", "adv"}) through ``steps``; rec returns the step's value, adv records calls."""
    totals = []
    for step in steps:
        def adv(step=step):
            adv_calls.append(step)
            return torch.tensor(1.0)
        totals.append(loss(step, rec=lambda: torch.tensor(rec_values[step]), adv=adv)[0])
    return totals


class TestScheduleTriggers:
    def test_at_fraction(self):
        s = gl.Schedule.at_fraction(0.1, 0.2, total_steps=1000, ramp=100)
        assert s.start == 200 and s.trigger == "fraction"
        assert [s(step) for step in (0, 199, 200, 250, 300, 10_000)] == [0, 0, 0, pytest.approx(0.05), 0.1, 0.1]
        # round(), not ceil(): 0.7 * 10 is 7.000000000000001 in floating point
        assert gl.Schedule.at_fraction(1.0, 0.7, total_steps=10).start == 7
        # a resumed run keeps the start it computed, even with another total_steps
        resumed = gl.Schedule.at_fraction(0.1, 0.2, total_steps=5000, ramp=100)
        resumed.load_state_dict(s.state_dict())
        assert s.state_dict() == {"start": 200} and resumed(300) == 0.1
        assert gl.Schedule(0.1, start=5).state_dict() == {}  # a fixed start is configuration
        with pytest.raises(ValueError, match=r"`fraction` must be a float in \[0, 1\]; got 1.5"):
            gl.Schedule.at_fraction(0.1, 1.5, total_steps=10)
        with pytest.raises(ValueError, match="`total_steps` must be a positive int; got 0"):
            gl.Schedule.at_fraction(0.1, 0.5, total_steps=0)

    def test_plateau_known_sequence(self):
        # window 3, rel 0.1. Window means: 10 (best), 8 (improves by 2 > 0.8: best 8), then
        # [9, 9, 5.5] with mean 7.833: improves by 0.167 <= 0.8 -> plateau (its last value alone,
        # 5.5, would have looked like progress). The window closes with the value at step 9, whose
        # factors were already read, so the term starts at step 10 and ramps over 4 steps.
        rec = [10, 10, 10, 8, 8, 8, 9, 9, 5.5, 7, 7, 9, 9, 9, 9, 9, 9, 9, 9, 9]
        adv = gl.Schedule.on_plateau(0.5, watch="rec", rel_improvement=0.1, window=3, ramp=4)
        loss = gl.CompositeLoss({"rec": 1.0, "adv": adv})
        calls = []
        totals = run_steps(loss, range(20), rec, calls)
        assert adv.start == 10 and calls == list(range(11, 20))  # factor 0 at the ramp's first step
        assert totals[12].item() == pytest.approx(9 + 0.5 * 2 / 4) and totals[19].item() == pytest.approx(9.5)
        assert adv.state_dict()["start"] == 10  # stays started: later values change nothing

    def test_plateau_waits_while_improving_and_fires_on_worse(self):
        improving = gl.Schedule.on_plateau(1.0, watch="rec", rel_improvement=0.1, window=2)
        for step in range(40):
            improving.observe(step, torch.tensor(100 * 0.8 ** (step // 2)))  # each window 20% lower
        assert improving.start is None and improving(10**6) == 0.0
        worse = gl.Schedule.on_plateau(1.0, watch="rec", rel_improvement=0.0, window=2)
        for step, value in enumerate([1.0, 1.0, 1.5, 1.5, 1.5]):
            worse.observe(step, value)
        assert worse.start == 5  # the second window (mean 1.5 > 1.0) closed at step 4
        nan = gl.Schedule.on_plateau(1.0, watch="rec", window=1)
        for step, value in enumerate([2.0, float("nan"), 1.0, 0.999]):
            nan.observe(step, value)
        assert nan.start is None  # the NaN window is skipped, not taken for a plateau

    def test_plateau_resume_is_identical(self):
        # Save mid-window after the first windows; a fresh composite that loads the state starts
        # the adversarial term at the same step as the uninterrupted run (a fresh one that does
        # not load it starts later: its windows restart).
        gen = torch.Generator().manual_seed(0)
        rec = (1 / torch.arange(1, 61).double() + 0.01 * torch.rand(60, generator=gen, dtype=torch.float64)).tolist()

        def make():
            adv = gl.Schedule.on_plateau(0.1, watch="rec", rel_improvement=0.2, window=7, ramp=3)
            return gl.CompositeLoss({"rec": 1.0, "adv": adv})

        whole, calls_whole = make(), []
        expected = run_steps(whole, range(60), rec, calls_whole)
        start = whole.terms["adv"].start
        assert 30 < start < 60
        # mid-run, and inside the window whose close fires the trigger (at step start - 1)
        for cut in (24, start - 3):
            first, calls = make(), []
            run_steps(first, range(cut), rec, calls)
            buffer = io.BytesIO()
            torch.save(first.state_dict(), buffer)
            buffer.seek(0)
            resumed = make()
            resumed.load_state_dict(torch.load(buffer))
            got = run_steps(resumed, range(cut, 60), rec, calls)
            assert calls == calls_whole and resumed.terms["adv"].start == start
            assert all(torch.equal(a, b) for a, b in zip(got, expected[cut:], strict=True))
            fresh = make()
            run_steps(fresh, range(cut, 60), rec, [])
            assert fresh.terms["adv"].start != start

    def test_plateau_errors(self):
        plateau = gl.Schedule.on_plateau(0.1, watch="rec")
        with pytest.raises(ValueError, match=r"term 'adv' watches 'rec', which must be another term of \['adv', 'l1'\]"):
            gl.CompositeLoss({"l1": 1.0, "adv": plateau})
        with pytest.raises(ValueError, match="term 'rec' watches 'rec'"):
            gl.CompositeLoss({"rec": gl.Schedule.on_plateau(0.1, watch="rec")})
        with pytest.raises(ValueError, match="only a Schedule.on_plateau schedule observes values"):
            gl.Schedule(0.1).observe(0, 1.0)
        with pytest.raises(ValueError, match="`window` must be a positive int; got 0"):
            gl.Schedule.on_plateau(0.1, watch="rec", window=0)
        with pytest.raises(ValueError, match="`rel_improvement` must be a non-negative float; got -0.1"):
            gl.Schedule.on_plateau(0.1, watch="rec", rel_improvement=-0.1)
        with pytest.raises(ValueError, match=r"`state` of a 'plateau' Schedule must have the keys \['best', "):
            plateau.load_state_dict({"start": 3})
        loss = gl.CompositeLoss({"rec": 1.0, "adv": plateau})
        with pytest.raises(ValueError, match=r"for the stateful schedules \['adv'\]; got \[\]"):
            loss.load_state_dict({"schedules": {}})
        assert "watch='rec'" in repr(plateau) and "start=None" in repr(plateau)


class TestCheckFinite:
    def test_names_the_term_and_step(self):
        loss = gl.CompositeLoss({"rec": 1.0, "adv": 0.1, "lpips": 1.0}, check_finite=True)
        with pytest.raises(gl.NonFiniteLossError, match=r"non-finite loss at step 7: 'adv' = nan, 'lpips' = inf") as err:
            loss(7, rec=lambda: torch.tensor(1.0), adv=lambda: torch.tensor(float("nan")),
                 lpips=lambda: torch.tensor(float("inf")))
        assert err.value.step == 7 and err.value.terms == ["adv", "lpips"]
        assert isinstance(err.value, ValueError)
        total, _ = loss(8, rec=lambda: torch.tensor(1.0), adv=lambda: torch.tensor(2.0), lpips=lambda: torch.tensor(0.5))
        assert total.item() == pytest.approx(1.7)

    def test_overflowing_total(self):
        loss = gl.CompositeLoss({"a": 1.0, "b": 1.0}, check_finite=True)
        big = lambda: torch.tensor(3e38)  # noqa: E731  finite in float32, the sum is not
        with pytest.raises(gl.NonFiniteLossError, match="step 0: 'total' = inf") as err:
            loss(0, a=big, b=big)
        assert err.value.terms == ["total"]

    def test_off_by_default(self):
        total, logs = gl.CompositeLoss({"a": 1.0})(0, a=lambda: torch.tensor(float("nan")))
        assert total.isnan() and logs["a"].isnan()
        with pytest.raises(TypeError, match="`check_finite` must be a bool; got int"):
            gl.CompositeLoss({"a": 1.0}, check_finite=1)


class TestDiscriminatorGate:
    def test_rule_and_counts(self):
        gate = gl.DiscriminatorGate(threshold=0.1)
        losses = [0.5, 0.05, 0.1, torch.tensor(0.09), float("nan"), torch.tensor(2.0)]
        # skip only strictly below the threshold; NaN is not below it
        assert [gate(v) for v in losses] == [True, False, True, False, True, True]
        logs = gate.logs()
        assert logs["d_gate/skipped"].item() == 2 and logs["d_gate/steps"].item() == 6
        assert logs["d_gate/skip_rate"].item() == pytest.approx(2 / 6)
        resumed = gl.DiscriminatorGate(threshold=0.1)
        resumed.load_state_dict(gate.state_dict())
        assert resumed(0.0) is False and resumed.logs()["d_gate/skipped"].item() == 3

    def test_errors(self):
        with pytest.raises(ValueError, match="`threshold` must be a float; got nan"):
            gl.DiscriminatorGate(float("nan"))
        with pytest.raises(ValueError, match=r"`d_loss` must be a scalar; got shape \(2,\)"):
            gl.DiscriminatorGate(0.1)(torch.ones(2))
        with pytest.raises(ValueError, match=r"`state` of a DiscriminatorGate must have the keys \['skipped', 'steps'\]"):
            gl.DiscriminatorGate(0.1).load_state_dict({"steps": 1})


class TestDriftMonitor:
    def test_adaptive_weight_warns_once_per_cause(self):
        monitor = gl.DriftMonitor(adaptive_weight=(0.01, 100.0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            flags = [monitor.check(step, adaptive_weight=torch.tensor(w))["drift/adaptive_weight"].item()
                     for step, w in enumerate([1.0, 150.0, 1e4, 0.001, 50.0, 0.002])]
        assert flags == [0.0, 1.0, 1.0, 1.0, 0.0, 1.0]
        messages = [str(w.message) for w in caught]
        assert all(w.category is gl.DriftWarning for w in caught) and len(messages) == 2
        assert messages[0].startswith("adaptive_weight = 150 at step 1 is above its bound 100: the adversarial gradient")
        assert messages[1].startswith("adaptive_weight = 0.001 at step 3 is below its bound 0.01")
        assert monitor.counts == {"adaptive_weight above": 2, "adaptive_weight below": 2}

    def test_logits_through_composite(self):
        monitor = gl.DriftMonitor(logits=(-5.0, 5.0))
        loss = gl.CompositeLoss({"adv": 1.0}, drift=monitor)
        real, fake = torch.full((2, 1, 4, 4), 6.0), torch.full((2, 1, 4, 4), -1.0)
        with pytest.warns(gl.DriftWarning, match="d_real/patch = 6 at step 3 is above its bound 5: the discriminator's logits"):
            _, logs = loss(3, d_stats={"patch": (real, fake)}, adv=lambda: gl.discriminator_loss(real, fake))
        assert logs["drift/d_real/patch"].item() == 1.0 and logs["drift/d_fake/patch"].item() == 0.0
        _, logs = loss(4, adv=lambda: gl.discriminator_loss(real, fake))
        assert not any(k.startswith("drift/") for k in logs)  # checked only when d_stats are passed
        # a resumed monitor remembers the causes it warned about
        resumed = gl.DriftMonitor(logits=(-5.0, 5.0))
        resumed.load_state_dict(monitor.state_dict())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert resumed.check(5, d_stats={"patch": (real, fake)})["drift/d_real/patch"].item() == 1.0
        with pytest.warns(gl.DriftWarning, match="d_fake/patch = nan at step 6 is not finite"):
            resumed.check(6, d_stats={"patch": (real, torch.full_like(fake, float("nan")))})

    def test_errors(self):
        with pytest.raises(ValueError, match=r"`logits` must be None or \(low, high\) floats with low < high; got \(5, 1\)"):
            gl.DriftMonitor(logits=(5, 1))
        with pytest.raises(TypeError, match="`drift` must be a DriftMonitor or None; got dict"):
            gl.CompositeLoss({"a": 1.0}, drift={})
        with pytest.raises(ValueError, match="term name 'drift/x' is reserved"):
            gl.CompositeLoss({"drift/x": 1.0})
        assert gl.DriftMonitor(adaptive_weight=None).check(0, adaptive_weight=1e9) == {}

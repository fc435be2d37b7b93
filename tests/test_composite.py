"""Schedule and CompositeLoss exactly as the API states."""

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

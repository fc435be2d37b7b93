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

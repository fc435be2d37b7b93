"""Tests of train/diagnose.py on synthetic metrics.jsonl records with the trainer's diag/* keys.

Settings follow the reference run: 3000 steps, adversarial start 1000, ramp 500, records every 25
steps, so a stretch must span max(200, 0.1 * 3000) = 300 steps.
"""

from __future__ import annotations

import json
import math

import pytest

from train.diagnose import CHANCE_LOSS, Monitor, Thresholds, diagnose, gradient_shares
from train.gallery import read_metrics

SETTINGS = {"max_steps": 3000, "adv_start": 1000, "adv_ramp": 500, "adv_weight": 0.05, "adv_loss": "hinge",
            "context_frames": 2, "rec_weight": 1.0, "gdl_weight": 1.0, "tdl_weight": 1.0, "smooth_weight": 0.02,
            "perceptual_weight": 0.1, "perceptual": "feature-matching"}
STEPS = range(25, 3001, 25)
HEALTHY_NORMS = {"rec": 1.0, "gdl": 0.5, "tdl": 0.4, "perceptual": 0.2, "smooth": 0.05, "adv": 0.3}


def records(accuracy=lambda step: 0.75, norms=lambda step: HEALTHY_NORMS, steps=STEPS, **losses) -> list[dict]:
    """Records every 25 steps: both discriminators' accuracy (or, given ``losses``, only their
    hinge losses ``d/adv_<disc>``) and the generator terms' gradient norms."""
    out = []
    for step in steps:
        record = {"step": step}
        if losses:
            record.update({f"d/adv_{disc}": value(step) for disc, value in losses.items()})
        else:
            for disc in ("video", "image"):
                record[f"diag/d_accuracy/{disc}"] = accuracy(step)
                record[f"diag/d_real/{disc}"], record[f"diag/d_fake/{disc}"] = 0.3, -0.3
        record.update({f"diag/gradnorm/{term}": norm for term, norm in norms(step).items()})
        out.append(record)
    return out


def checks(findings) -> list[tuple[str, str, int, int]]:
    return [(f.check, f.subject, f.first_step, f.last_step) for f in findings]


def test_a_healthy_run_has_no_findings():
    assert diagnose(records(), SETTINGS) == []


def test_discriminators_at_chance_after_the_adversarial_start(tmp_path):
    # At chance from the start of the run; only the stretch from the adversarial start counts.
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records(accuracy=lambda s: 0.5 + 0.01 * (-1) ** (s // 25))))
    findings = diagnose(read_metrics(path), SETTINGS)
    assert checks(findings) == [("d_chance", "image", 1000, 3000), ("d_chance", "video", 1000, 3000)]
    assert all(f.ongoing and f.measure == "accuracy" for f in findings)
    assert findings[1].value == pytest.approx(0.5, abs=0.011)
    assert "video discriminator at chance from step 1000 to 3000" in findings[1].message


def test_stretch_length_is_the_threshold():
    # 300 steps are needed (10% of 3000): 1000..1275 (275 steps, 12 records) is not enough, 1000..1300 is.
    for last, expected in ((1275, []), (1300, [("d_chance", "video", 1000, 1300)])):
        def accuracy(step, last=last):
            return 0.5 if step <= last else 0.8

        found = [c for c in checks(diagnose(records(accuracy=accuracy), SETTINGS)) if c[1] == "video"]
        assert found == expected, last
    # A short run: at least 200 steps, over at least 3 records.
    short = {**SETTINGS, "max_steps": 400, "adv_start": 0, "adv_ramp": 0}
    assert Thresholds().stretch_steps(400) == 200

    def at_chance(steps):
        return [c[2:] for c in checks(diagnose(records(accuracy=lambda s: 0.5, steps=steps), short))]

    assert at_chance(range(100, 301, 100)) == [(100, 300)] * 2  # 200 steps, 3 records
    assert at_chance(range(100, 251, 50)) == []  # 150 steps
    assert at_chance(range(100, 301, 200)) == []  # 200 steps, 2 records


def test_one_noisy_record_neither_starts_nor_breaks_a_stretch():
    def accuracy(step):
        return 0.9 if step == 2000 else 0.5  # one outlier in the middle of a stretch at chance

    assert checks(diagnose(records(accuracy=accuracy), SETTINGS))[:1] == [("d_chance", "image", 1000, 3000)]

    def blips(step):
        return 0.5 if step % 500 == 0 else 0.8  # isolated records at chance

    assert diagnose(records(accuracy=blips), SETTINGS) == []


def test_no_adversarial_term_no_discriminator_findings():
    assert diagnose(records(accuracy=lambda s: 0.5), {**SETTINGS, "adv_weight": 0.0}) == []


def test_discriminators_winning_outright():
    findings = diagnose(records(accuracy=lambda s: 0.99 if s >= 2000 else 0.7), SETTINGS)
    assert checks(findings) == [("d_wins", "image", 2000, 3000), ("d_wins", "video", 2000, 3000)]
    assert "wins outright" in findings[0].message


def test_losses_stand_in_for_accuracy_when_it_is_not_logged():
    # The committed reference run: hinge d/adv_image 1.997 of 2.0 after the start (no diag/* keys).
    findings = diagnose(records(video=lambda s: 1.999, image=lambda s: 1.997 if s >= 1000 else 1.5), SETTINGS)
    assert checks(findings) == [("d_chance", "image", 1000, 3000), ("d_chance", "video", 1000, 3000)]
    assert findings[0].measure == "hinge loss" and findings[0].value == pytest.approx(1.997)
    assert checks(diagnose(records(video=lambda s: 0.05), SETTINGS)) == [("d_wins", "video", 1000, 3000)]
    # The chance value follows the loss kind: 2 ln 2 for the non-saturating loss, none for WGAN.
    assert CHANCE_LOSS["non_saturating"] == pytest.approx(2 * math.log(2))
    non_saturating = {**SETTINGS, "adv_loss": "non_saturating"}
    assert checks(diagnose(records(video=lambda s: 1.38), non_saturating)) == [("d_chance", "video", 1000, 3000)]
    assert diagnose(records(video=lambda s: 1.99), non_saturating) == []
    assert diagnose(records(video=lambda s: 0.0), {**SETTINGS, "adv_loss": "wgan"}) == []


def test_adversarial_start_resolved_like_the_trainer():
    # adv_start/adv_ramp None: max_steps/3 and max_steps/6 with context frames (TrainConfig.adversarial_warmup).
    settings = {**SETTINGS, "adv_start": None, "adv_ramp": None}
    assert checks(diagnose(records(accuracy=lambda s: 0.5), settings))[0][2] == 1000
    unconditional = {**settings, "context_frames": 0}  # starts at 0 without context
    assert checks(diagnose(records(accuracy=lambda s: 0.5), unconditional))[0][2] == 25


def test_gradient_shares():
    shares = gradient_shares([{"step": 5, "diag/gradnorm/rec": 3.0, "diag/gradnorm/adv": 1.0, "g/rec": 9.0},
                              {"step": 6, "diag/gradnorm/rec": 0.0}])
    assert shares == {"rec": [(5, 0.75), (6, 0.0)], "adv": [(5, 0.25)]}


def test_one_term_dominating_the_gradient():
    def norms(step):
        return {"rec": 1.0, "gdl": 0.02, "smooth": 0.02} if step >= 1500 else HEALTHY_NORMS

    findings = diagnose(records(norms=norms), SETTINGS)
    assert checks(findings) == [("dominant_term", "rec", 1500, 3000)]
    assert findings[0].value == pytest.approx(1.0 / 1.04)  # 96.2%
    assert "rec takes 96.2% of the generator gradient" in findings[0].message

    def just_below(step):
        return {"rec": 0.94, "gdl": 0.06}  # 94%

    assert diagnose(records(norms=just_below), SETTINGS) == []
    assert diagnose(records(norms=lambda s: {"rec": 1.0}), SETTINGS) == []  # one term: nothing to drown


def test_a_weighted_term_with_a_near_zero_gradient():
    def norms(step):
        return {**HEALTHY_NORMS, "smooth": 1e-4}  # 4e-5 of the total

    findings = diagnose(records(norms=norms), SETTINGS)
    assert checks(findings) == [("silent_term", "smooth", 25, 3000)]
    assert "smooth with weight 0.02 has a near-zero gradient" in findings[0].message
    assert diagnose(records(norms=norms), {**SETTINGS, "smooth_weight": 0.0}) == []  # weight 0: nothing expected


def test_silent_adversarial_term_is_judged_after_its_ramp():
    def norms(step):
        return {**HEALTHY_NORMS, "adv": 0.0 if step < 2000 else 0.3}  # silent until 2000

    # 1500 (end of the ramp) .. 1975: 475 steps after the ramp; the ramp itself does not count.
    assert checks(diagnose(records(norms=norms), SETTINGS)) == [("silent_term", "adv", 1500, 1975)]
    assert diagnose(records(norms=norms), {**SETTINGS, "adv_ramp": 1000}) == []  # 2000..: never silent


def test_unconditional_runs_weigh_the_target_terms_zero():
    def norms(step):
        return {"rec": 0.0, "smooth": 1.0, "adv": 1.0}

    findings = diagnose(records(norms=norms), {**SETTINGS, "context_frames": 0})
    assert "rec" not in [f.subject for f in findings if f.check == "silent_term"]
    assert ("silent_term", "rec") in [(f.check, f.subject) for f in diagnose(records(norms=norms), SETTINGS)]


def test_monitor_reports_each_finding_once():
    monitor = Monitor(SETTINGS)
    reported = []
    for record in records(accuracy=lambda s: 0.5 if s >= 2000 else 0.8):
        reported += [(record["step"], f.check, f.subject) for f in monitor.add(record)]
    # 2000 + 300: the record where the stretch first spans 300 steps.
    assert reported == [(2300, "d_chance", "image"), (2300, "d_chance", "video")]

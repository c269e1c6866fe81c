"""Platt / vector scaling, isotonic calibration, fit_calibrator('auto') and their JSON states."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from medlearn.errors import ConfigError, NotFittedError
from medlearn.evaluation import (
    IsotonicCalibrator,
    PlattScaler,
    TemperatureScaler,
    apply_calibration,
    calibration_candidates,
    fit_calibrator,
    log_loss,
    softmax,
)


def _sample(proba, rng):
    u = rng.random(len(proba))[:, None]
    return (u > np.cumsum(proba, axis=1)).sum(axis=1).clip(max=proba.shape[1] - 1)


def test_platt_recovers_known_slope_and_intercept():
    rng = np.random.default_rng(0)
    z = 2.0 * rng.normal(size=20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 * z - 0.7)))).astype(int)
    scaler = PlattScaler().fit(z, y)
    assert scaler.coef_[0] == pytest.approx(0.5, abs=0.03)
    assert scaler.intercept_[0] == pytest.approx(-0.7, abs=0.05)
    p = scaler.transform(z)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert log_loss(y, p) < log_loss(y, softmax(np.stack([0 * z, z], 1)))


def test_platt_uses_the_log_odds_of_two_column_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 2))
    y = rng.integers(0, 2, 500)
    a = PlattScaler().fit(logits, y).transform(logits)
    b = PlattScaler().fit(logits[:, 1] - logits[:, 0], y).transform(logits[:, 1] - logits[:, 0])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_platt_stays_finite_on_separable_data():
    z = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    scaler = PlattScaler().fit(z, [0, 0, 0, 1, 1, 1])
    p = scaler.transform(z)[:, 1]
    assert np.all(np.isfinite(scaler.coef_))
    # Platt's smoothed targets (1/5 and 4/5 here) keep the fit away from 0 and 1.
    assert 0.05 < p.min() < 0.5 < p.max() < 0.95


def test_vector_scaling_beats_or_matches_temperature_in_sample():
    rng = np.random.default_rng(2)
    logits = 3.0 * rng.normal(size=(3000, 4))
    true = logits * np.array([0.3, 0.5, 0.8, 0.4]) + np.array([0.5, 0.0, -0.5, 0.2])
    y = _sample(softmax(true), rng)
    vs = PlattScaler().fit(logits, y)
    ts = TemperatureScaler().fit(logits, y)
    assert vs.to_dict()["kind"] == "vector"
    assert log_loss(y, vs.transform(logits)) <= log_loss(y, ts.transform(logits)) + 1e-4
    np.testing.assert_allclose(vs.coef_, [0.3, 0.5, 0.8, 0.4], atol=0.12)


def test_isotonic_binary_matches_scikit_learn():
    rng = np.random.default_rng(3)
    z = 2 * rng.normal(size=800)
    y = (rng.random(800) < 1 / (1 + np.exp(-z / 3))).astype(int)
    cal = IsotonicCalibrator().fit(z, y)
    p1 = softmax(np.stack([0 * z, z], 1))[:, 1]
    ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p1, y)
    new = 3 * rng.normal(size=300)
    q1 = softmax(np.stack([0 * new, new], 1))[:, 1]
    np.testing.assert_allclose(cal.transform(new)[:, 1], ref.predict(q1), atol=1e-9)


def test_isotonic_multiclass_is_renormalised_and_monotone():
    rng = np.random.default_rng(4)
    logits = 2 * rng.normal(size=(900, 3))
    y = _sample(softmax(logits / 2), rng)
    cal = IsotonicCalibrator().fit(logits, y)
    p = cal.transform(logits)
    np.testing.assert_allclose(p.sum(1), 1.0)
    for x, yk in cal.curves_:
        assert np.all(np.diff(x) >= 0) and np.all(np.diff(yk) >= -1e-12)


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic", "none"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_states_round_trip_through_json(method, n_classes):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(400, n_classes))
    y = rng.integers(0, n_classes, 400)
    state = fit_calibrator(method, logits, y)
    again = json.loads(json.dumps(state))
    assert again["method"] == method
    new = rng.normal(size=(50, n_classes))
    np.testing.assert_allclose(apply_calibration(new, again), apply_calibration(new, state))
    np.testing.assert_allclose(apply_calibration(new, again).sum(1), 1.0)


def test_apply_none_is_softmax_and_bad_states_raise():
    z = np.array([[0.0, 1.0], [2.0, -1.0]])
    np.testing.assert_allclose(apply_calibration(z, None), softmax(z))
    with pytest.raises(ConfigError, match="Unknown calibration method"):
        apply_calibration(z, {"method": "magic"})
    with pytest.raises(ConfigError, match="'a'"):
        PlattScaler.from_dict({"method": "platt", "n_classes": 2, "a": [np.nan], "b": [0.0]})
    with pytest.raises(ConfigError, match="ascending"):
        IsotonicCalibrator.from_dict(
            {"method": "isotonic", "n_classes": 2, "curves": [{"x": [0.5, 0.1], "y": [0, 1]}]}
        )
    with pytest.raises(ConfigError, match="Unknown calibration method"):
        fit_calibrator("beta", z, [0, 1])
    with pytest.raises(NotFittedError):
        PlattScaler().transform(z)


def test_auto_picks_a_recalibration_for_overconfident_logits():
    rng = np.random.default_rng(6)
    z = 4 * rng.normal(size=1500)
    y = (rng.random(1500) < 1 / (1 + np.exp(-z / 3))).astype(int)  # logits 3x overconfident
    state = fit_calibrator("auto", z, y)
    sel = state["selection"]
    assert sel["criterion"] == "cv_log_loss"
    assert state["method"] != "none"
    best = min(sel["cv_log_loss"], key=sel["cv_log_loss"].get)
    assert state["method"] == best
    assert sel["cv_log_loss"]["none"] > sel["cv_log_loss"][state["method"]] + 0.01


def test_cross_fitting_exposes_isotonic_overfitting_on_small_validation_sets():
    rng = np.random.default_rng(7)
    z = 1.5 * rng.normal(size=120)
    y = (rng.random(120) < 1 / (1 + np.exp(-z))).astype(int)  # already calibrated
    cands = calibration_candidates(z, y, seed=0)
    iso = cands["isotonic"]
    # In-sample, isotonic looks best of all; out of fold it is worse than its in-sample self
    # and loses to the parametric maps, so auto does not choose it.
    assert iso["val_log_loss"] == min(c["val_log_loss"] for c in cands.values())
    assert iso["cv_log_loss"] > iso["val_log_loss"] + 0.02
    assert fit_calibrator("auto", z, y)["method"] != "isotonic"


def test_auto_falls_back_to_in_sample_loss_without_enough_rows_per_class():
    z = np.array([-2.0, -1.0, 0.5, 1.0, 2.0])
    state = fit_calibrator("auto", z, [0, 0, 0, 0, 1])
    assert state["selection"]["criterion"] == "val_log_loss"

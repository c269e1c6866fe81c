"""TemperatureScaler, reliability_curve, softmax and ECE behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from medlearn.errors import ConfigError, DataValidationError, NotFittedError
from medlearn.evaluation import TemperatureScaler, ece, reliability_curve, softmax


def _sample_labels(proba, rng):
    u = rng.random(len(proba))[:, None]
    return (u > np.cumsum(proba, axis=1)).sum(axis=1).clip(max=proba.shape[1] - 1)


def _nll(proba, y):
    return float(-np.mean(np.log(proba[np.arange(len(y)), y])))


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_recovers_known_temperature(t_true):
    rng = np.random.default_rng(0)
    logits = 2.0 * rng.normal(size=(20000, 3))
    y = _sample_labels(softmax(logits / t_true), rng)
    scaler = TemperatureScaler().fit(logits, y)
    assert scaler.temperature_ == pytest.approx(t_true, rel=0.10)
    proba = scaler.transform(logits)
    assert _nll(proba, y) < _nll(softmax(logits), y)
    assert scaler.nll_after_ < scaler.nll_before_
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(proba.argmax(1), logits.argmax(1))  # ranking unchanged


def test_binary_logit_vector_is_accepted():
    rng = np.random.default_rng(1)
    z = 3.0 * rng.normal(size=5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-z / 2.0))).astype(int)
    scaler = TemperatureScaler().fit(z, y)
    assert scaler.temperature_ == pytest.approx(2.0, rel=0.15)
    assert scaler.transform(z).shape == (5000, 2)


def test_separable_data_stays_within_bounds():
    logits = np.array([[0.0, 4.0], [0.0, -4.0], [0.0, 6.0], [0.0, -5.0]])
    scaler = TemperatureScaler().fit(logits, [1, 0, 1, 0])
    assert 0.05 <= scaler.temperature_ <= 20.0
    assert np.all(np.isfinite(scaler.transform(logits)))


def test_round_trip_through_json():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(300, 4))
    scaler = TemperatureScaler().fit(logits, rng.integers(0, 4, 300))
    state = json.loads(json.dumps(scaler.to_dict()))
    again = TemperatureScaler.from_dict(state)
    assert again.temperature_ == scaler.temperature_
    np.testing.assert_allclose(again.transform(logits), scaler.transform(logits))
    # A minimal state (as stored in a bundle manifest) is enough.
    minimal = TemperatureScaler.from_dict({"temperature": 2.0})
    np.testing.assert_allclose(minimal.transform(logits), softmax(logits / 2.0))


def test_not_fitted_error_says_what_to_call():
    with pytest.raises(NotFittedError, match=r"Call fit\(logits, y\)"):
        TemperatureScaler().transform(np.zeros((2, 2)))
    with pytest.raises(NotFittedError):
        TemperatureScaler().to_dict()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: TemperatureScaler().fit(np.zeros((5, 3)), np.zeros(4)),
            DataValidationError,
            "5 rows",
        ),
        (
            lambda: TemperatureScaler().fit(np.zeros((3, 3)), [0, 1, 3]),
            DataValidationError,
            "class index 3",
        ),
        (
            lambda: TemperatureScaler().fit(np.full((2, 2), np.nan), [0, 1]),
            DataValidationError,
            "NaN",
        ),
        (
            lambda: TemperatureScaler(min_temperature=0).fit(np.zeros((2, 2)), [0, 1]),
            ConfigError,
            "0 < min < max",
        ),
        (lambda: TemperatureScaler.from_dict({"temperature": -1.0}), ConfigError, "positive"),
        (
            lambda: TemperatureScaler.from_dict({"method": "isotonic", "temperature": 1.0}),
            ConfigError,
            "method",
        ),
        (
            lambda: TemperatureScaler.from_dict({"temperature": 1.0, "n_classes": 3}).transform(
                np.zeros((2, 2))
            ),
            DataValidationError,
            "fitted on 3",
        ),
    ],
)
def test_ill_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


def test_reliability_curve_matches_sklearn():
    rng = np.random.default_rng(3)
    p = rng.random(2000)
    y = (rng.random(2000) < p**1.5).astype(int)
    mean_p, frac, counts = reliability_curve(y, p, n_bins=10)
    frac_ref, mean_ref = calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(mean_p, mean_ref)
    np.testing.assert_allclose(frac, frac_ref)
    assert counts.sum() == 2000


def test_reliability_curve_drops_empty_bins():
    mean_p, frac, counts = reliability_curve([0, 1, 1], [0.05, 0.95, 0.92], n_bins=10)
    assert counts.tolist() == [1, 2]
    assert frac.tolist() == [0.0, 1.0]


def test_ece_small_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(4)
    p = rng.random(50000)
    y = (rng.random(50000) < p).astype(int)
    assert ece(y, p) < 0.01
    overconfident = np.clip(0.5 + 1.8 * (p - 0.5), 0, 1)
    assert ece(y, overconfident) > 0.08  # expected ~0.1
    # Multiclass: top-label confidence against top-label accuracy.
    proba = softmax(2.0 * rng.normal(size=(50000, 3)))
    y_mc = _sample_labels(proba, rng)
    assert ece(y_mc, proba) < 0.01
    assert ece(y_mc, softmax(np.log(proba) * 3.0)) > 0.1

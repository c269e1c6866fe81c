"""Decision-curve analysis against hand-computed net benefits."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.errors import ConfigError, DataValidationError
from medlearn.evaluation import decision_curve, net_benefit, useful_ranges

Y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.6, 0.7, 0.2, 0.3, 0.1, 0.05, 0.4, 0.15, 0.5])


def test_net_benefit_matches_hand_computation():
    # pt=0.25: treat 6 (TP 3, FP 3): 3/10 - 3/10 * (1/3) = 0.2
    # pt=0.50: treat 4 (TP 2, FP 2): 2/10 - 2/10 * 1 = 0.0
    # pt=0.75: treat 1 (TP 1, FP 0): 0.1
    np.testing.assert_allclose(net_benefit(Y, P, [0.25, 0.5, 0.75]), [0.2, 0.0, 0.1])


def test_decision_curve_strategies_and_useful_range():
    out = decision_curve(Y, P, thresholds=[0.25, 0.5, 0.75])
    assert out["prevalence"] == pytest.approx(0.3)
    # treat all: 0.3 - 0.7 * pt / (1 - pt)
    np.testing.assert_allclose(
        out["treat_all"], [0.3 - 0.7 / 3, 0.3 - 0.7, 0.3 - 0.7 * 3], atol=1e-6
    )
    assert out["treat_none"] == [0.0, 0.0, 0.0]
    # NB 0.0 at 0.5 ties with treat-none, so it is not useful there.
    assert out["useful_ranges"] == [[0.25, 0.25], [0.75, 0.75]]
    assert out["max_net_benefit_gain"] == {
        "value": pytest.approx(0.2 - (0.3 - 0.7 / 3), abs=1e-6),
        "threshold": 0.25,
    }


def test_default_grid_and_a_perfect_model():
    y = np.array([0, 1] * 50)
    out = decision_curve(y, y.astype(float))
    assert out["thresholds"][0] == 0.01 and out["thresholds"][-1] == 0.99
    assert len(out["thresholds"]) == 99
    np.testing.assert_allclose(out["model"], 0.5)  # NB of a perfect model is the prevalence
    assert out["useful_ranges"] == [[0.01, 0.99]]


def test_useful_ranges_finds_runs():
    t = [0.1, 0.2, 0.3, 0.4, 0.5]
    model = [0.2, 0.1, -0.1, 0.05, 0.02]
    treat_all = [0.3, 0.05, -0.2, -0.3, -0.5]
    assert useful_ranges(t, model, treat_all) == [[0.2, 0.2], [0.4, 0.5]]


def test_bad_input_raises():
    with pytest.raises(DataValidationError, match="binary"):
        net_benefit([0, 2], [0.1, 0.2])
    with pytest.raises(DataValidationError, match="probabilities"):
        net_benefit([0, 1], [0.1, 1.2])
    with pytest.raises(ConfigError, match="thresholds"):
        net_benefit([0, 1], [0.1, 0.2], [0.0, 0.5])

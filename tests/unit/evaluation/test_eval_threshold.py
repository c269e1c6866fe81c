"""choose_threshold: known answers and brute-force optima."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.errors import ConfigError, DataValidationError
from medlearn.evaluation import choose_threshold
from medlearn.evaluation import metrics as M


def _rates(y, s, t):
    pred = (s >= t).astype(int)
    return M.sensitivity(y, pred), M.specificity(y, pred)


def _all_cuts(s):
    u = np.unique(s)
    return np.concatenate(([u[0]], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-9]))


def test_youden_known_answers():
    # Separable: the cut lies halfway between the highest negative and the lowest positive.
    assert choose_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.8]) == pytest.approx(
        0.45
    )
    # J = 0.5 at two cuts (0.6 and 0.225); ties go to the higher threshold.
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.6)
    # Order of rows does not matter.
    assert choose_threshold([1, 0, 1, 0], [0.8, 0.4, 0.35, 0.1]) == pytest.approx(0.6)


def test_youden_is_the_maximum_over_all_cuts(synthetic):
    y, s = synthetic.binary(300, seed=0)
    t = choose_threshold(y, s)
    sens, spec = _rates(y, s, t)
    best = max(sum(_rates(y, s, c)) - 1 for c in _all_cuts(s))
    assert sens + spec - 1 == pytest.approx(best)
    assert not np.any(s == t)  # a midpoint, not a validation score


def test_f1_is_the_maximum_over_all_cuts(synthetic):
    y, s = synthetic.binary(300, seed=1)
    t = choose_threshold(y, s, method="f1")
    f1 = M.f1(y, (s >= t).astype(int))
    best = max(M.f1(y, (s >= c).astype(int)) for c in _all_cuts(s))
    assert f1 == pytest.approx(best)


@pytest.mark.parametrize("target", [0.8, 0.95, 1.0])
def test_target_sensitivity(synthetic, target):
    y, s = synthetic.binary(300, seed=2)
    t = choose_threshold(y, s, target_sensitivity=target)
    sens, spec = _rates(y, s, t)
    assert sens >= target
    best_spec = max(sp for se, sp in (_rates(y, s, c) for c in _all_cuts(s)) if se >= target)
    assert spec == pytest.approx(best_spec)


def test_target_specificity(synthetic):
    y, s = synthetic.binary(300, seed=3)
    t = choose_threshold(y, s, target_specificity=0.9)
    sens, spec = _rates(y, s, t)
    assert spec >= 0.9
    best_sens = max(se for se, sp in (_rates(y, s, c) for c in _all_cuts(s)) if sp >= 0.9)
    assert sens == pytest.approx(best_sens)


def test_fixed():
    assert choose_threshold([0, 1], [0.2, 0.9], method="fixed", fixed=0.3) == 0.3


@pytest.mark.parametrize(
    ("y", "s", "kwargs", "error", "match"),
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], {}, DataValidationError, "both classes"),
        ([0, 1, 2], [0.1, 0.2, 0.3], {}, DataValidationError, "binary labels"),
        ([0, 1], [0.1, 0.2, 0.3], {}, DataValidationError, "2 rows but score has 3"),
        ([0, 1], [0.1, np.nan], {}, DataValidationError, "NaN"),
        ([0, 1], [0.1, 0.2], {"method": "best"}, ConfigError, "'method' parameter"),
        (
            [0, 1],
            [0.1, 0.2],
            {"target_sensitivity": 0.9, "target_specificity": 0.9},
            ConfigError,
            "not both",
        ),
        ([0, 1], [0.1, 0.2], {"target_sensitivity": 1.5}, ConfigError, r"\(0, 1\]"),
    ],
)
def test_ill_inputs(y, s, kwargs, error, match):
    with pytest.raises(error, match=match):
        choose_threshold(y, s, **kwargs)

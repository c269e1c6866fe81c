"""Survival metrics against lifelines and scikit-survival on seeded synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.utils import concordance_index
from sksurv.metrics import (
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv

from medlearn.errors import DataValidationError
from medlearn.evaluation.survival import (
    c_index,
    calibration_at_horizons,
    evaluate_survival,
    integrated_brier,
    kaplan_meier,
    td_auc,
    uno_c,
)


def _data(n: int = 250, seed: int = 0, rounding: int | None = None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    event_time = rng.exponential(np.exp(-x))
    censor = rng.exponential(1.5, size=n)
    t = np.minimum(event_time, censor) + 0.01
    if rounding is not None:
        t = np.round(t, rounding) + 0.01
    e = (event_time <= censor).astype(int)
    risk = x + rng.normal(scale=0.6, size=n)
    return t, e, risk


@pytest.mark.parametrize("rounding", [None, 1])
def test_c_index_matches_lifelines(rounding):
    t, e, r = _data(rounding=rounding)
    if rounding is not None:
        r = np.round(r, 1)  # ties in risk too
    assert c_index(t, e, r) == pytest.approx(concordance_index(t, -r, e), abs=1e-12)


def test_uno_c_and_td_auc_and_ibs_match_sksurv():
    t, e, r = _data(seed=1)
    tt, te, _ = _data(n=400, seed=2)
    y_train = Surv.from_arrays(te.astype(bool), tt)
    y_test = Surv.from_arrays(e.astype(bool), t)
    want = concordance_index_ipcw(y_train, y_test, r)[0]
    assert uno_c(t, e, r, train_time=tt, train_event=te) == pytest.approx(want, abs=1e-9)
    hs = np.quantile(t[e == 1], [0.25, 0.5, 0.75])
    got = td_auc(t, e, r, hs, train_time=tt, train_event=te)
    np.testing.assert_allclose(got, cumulative_dynamic_auc(y_train, y_test, r, hs)[0], atol=1e-9)
    grid = np.linspace(np.quantile(t, 0.1), np.quantile(t, 0.8), 10)
    surv = np.exp(-np.outer(np.exp(r), grid) * 0.7)
    want_ibs = integrated_brier_score(y_train, y_test, surv, grid)
    got_ibs = integrated_brier(t, e, surv, grid, train_time=tt, train_event=te)
    assert got_ibs == pytest.approx(want_ibs, abs=1e-9)


def test_kaplan_meier_matches_lifelines():
    from lifelines import KaplanMeierFitter

    t, e, _ = _data(rounding=1)
    times, s = kaplan_meier(t, e)
    km = KaplanMeierFitter().fit(t, e)
    np.testing.assert_allclose(s, km.survival_function_at_times(times).to_numpy(), atol=1e-12)


def test_bootstrap_ci_brackets_point_and_is_deterministic():
    t, e, r = _data(n=200, seed=3)
    hs = list(np.quantile(t[e == 1], [0.25, 0.5, 0.75]))
    grid = list(np.linspace(np.quantile(t, 0.1), np.quantile(t, 0.7), 8))
    surv = np.exp(-np.outer(np.exp(r), grid))
    out = evaluate_survival(t, e, r, survival=surv, horizons=grid, bootstrap=200, seed=0)
    again = evaluate_survival(t, e, r, survival=surv, horizons=grid, bootstrap=200, seed=0)
    assert out == again
    for name in ("c_index", "uno_c", "integrated_brier", "td_auc"):
        lo, hi = out[name]["ci95"]
        assert lo <= out[name]["value"] <= hi, name
    assert out["c_index"]["value"] == pytest.approx(c_index(t, e, r), abs=1e-6)
    assert len(out["td_auc"]["per_horizon"]) == len(grid)
    short = evaluate_survival(t, e, r, horizons=hs, bootstrap=0)
    assert short["c_index"]["ci95"] is None and "integrated_brier" not in short


def test_random_risk_is_near_half_and_perfect_risk_is_one():
    t, e, _ = _data(n=300, seed=4)
    assert c_index(t, e, -t) == pytest.approx(1.0)
    noise = np.random.default_rng(0).normal(size=len(t))
    assert abs(c_index(t, e, noise) - 0.5) < 0.08


def test_calibration_at_horizons_shapes():
    t, e, r = _data(n=200, seed=5)
    s = np.exp(-np.outer(np.exp(r), [0.3, 0.8]))
    cal = calibration_at_horizons(t, e, s, [0.3, 0.8], bins=5)
    assert [c["horizon"] for c in cal] == [0.3, 0.8]
    assert all(len(c["predicted"]) == 5 and sum(c["n"]) == 200 for c in cal)
    # better-predicted groups have higher observed survival
    assert cal[0]["observed"][-1] > cal[0]["observed"][0]


@pytest.mark.parametrize(
    "time, event",
    [([1.0, -2.0], [1, 0]), ([1.0, np.nan], [1, 0]), ([1.0, 2.0], [1, 2])],
)
def test_bad_inputs_raise(time, event):
    with pytest.raises(DataValidationError):
        c_index(time, event, [0.1, 0.2])

"""subgroup_analysis: per-subgroup metrics, min n, and the largest gap with a paired CI."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.errors import ConfigError, DataValidationError
from medlearn.evaluation import evaluate_predictions, subgroup_analysis


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b"], n)
    y = rng.integers(0, 2, n)
    noise = rng.random(n)
    # group a: informative scores; group b: nearly random.
    p = np.where(
        g == "a", np.clip(0.6 * y + 0.4 * noise, 0, 1), np.clip(0.05 * y + 0.9 * noise, 0, 1)
    )
    return y, p, g


def test_per_group_values_match_subset_evaluation_and_gap_is_max_minus_min():
    y, p, g = _data()
    out = subgroup_analysis(y, p, g, task="binary", metrics=["auroc", "brier"], bootstrap=200)
    for name in ("a", "b"):
        sel = g == name
        ref = evaluate_predictions(y[sel], p[sel], task="binary", metrics=["auroc"], bootstrap=0)
        assert out["groups"][name]["metrics"]["auroc"]["value"] == ref["auroc"]["value"]
        assert out["groups"][name]["n"] == int(sel.sum())
    gap = out["gaps"]["auroc"]
    a = out["groups"]["a"]["metrics"]["auroc"]["value"]
    b = out["groups"]["b"]["metrics"]["auroc"]["value"]
    assert (gap["high"], gap["low"]) == ("a", "b")
    assert gap["value"] == pytest.approx(a - b, abs=1e-6)
    lo, hi = gap["ci95"]
    assert 0 < lo <= gap["value"] <= hi  # a real gap: the paired CI excludes 0


def test_no_gap_between_exchangeable_groups_has_a_ci_covering_zero():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 800)
    p = np.clip(0.4 * y + 0.6 * rng.random(800), 0, 1)
    g = rng.choice(["x", "y"], 800)  # unrelated to anything
    gap = subgroup_analysis(y, p, g, task="binary", metrics=["auroc"], bootstrap=300)["gaps"]
    lo, hi = gap["auroc"]["ci95"]
    assert lo < 0 < hi or lo <= 0.0  # a fixed pair's difference can go either way


def test_small_groups_are_too_few_and_missing_values_form_a_group():
    y, p, g = _data(300)
    g = g.astype(object)
    g[:10] = "tiny"
    g[10:60] = None
    out = subgroup_analysis(y, p, g, task="binary", metrics=["auroc"], bootstrap=0, min_n=30)
    assert out["groups"]["tiny"] == {"n": 10, "status": "too few", "metrics": None}
    assert out["groups"]["missing"]["status"] == "ok"
    assert out["groups"]["missing"]["n"] == 50
    assert out["gaps"]["auroc"]["ci95"] is None  # no bootstrap asked for


def test_gap_is_none_with_fewer_than_two_eligible_groups():
    y, p, _ = _data(100)
    out = subgroup_analysis(y, p, ["only"] * 100, task="binary", metrics=["auroc"], bootstrap=20)
    assert out["gaps"]["auroc"] is None


def test_multiclass_and_bad_input():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    out = subgroup_analysis(
        y,
        proba,
        rng.choice(["u", "v"], 300),
        task="multiclass",
        metrics=["accuracy"],
        bootstrap=50,
    )
    assert set(out["groups"]) == {"u", "v"}
    with pytest.raises(DataValidationError, match="subgroup_values"):
        subgroup_analysis(y, proba, ["u"] * 5, task="multiclass", metrics=["accuracy"])
    with pytest.raises(ConfigError, match="min_n"):
        subgroup_analysis(y, proba, ["u"] * 300, task="multiclass", metrics=["accuracy"], min_n=0)

"""evaluate_predictions, paired_bootstrap_diff and subgroup_metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medlearn.errors import ConfigError, DataValidationError, UnknownComponentError
from medlearn.evaluation import (
    evaluate_predictions,
    paired_bootstrap_diff,
    subgroup_metrics,
)
from medlearn.evaluation import metrics as M
from medlearn.registry import METRICS

ALL = [
    "auroc",
    "auprc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "f1",
    "brier",
    "ece",
]


def _two_col(p):
    return np.stack([1 - p, p], axis=1)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_values_match_metric_functions_and_ci_contains_value(synthetic, task):
    if task == "binary":
        y, p = synthetic.binary(400, seed=0)
        proba, labels, score = _two_col(p), (p >= 0.4).astype(int), p
        out = evaluate_predictions(y, proba, task=task, metrics=ALL, threshold=0.4, bootstrap=300)
        kw = {}
    else:
        y, proba = synthetic.multiclass(400, 3, seed=0)
        labels, score = proba.argmax(1), proba
        out = evaluate_predictions(y, proba, task=task, metrics=ALL, bootstrap=300)
        kw = {"n_classes": 3}
    assert list(out) == ALL
    for name in ALL:
        fn = METRICS.get(name)
        needs = METRICS.meta(name)["needs"]
        expected = fn(y, labels, **kw) if needs == "label" else fn(y, score)
        entry = out[name]
        assert entry["value"] == pytest.approx(expected, abs=1e-6)
        lo, hi = entry["ci95"]
        assert lo <= entry["value"] <= hi, name
        assert hi - lo > 0
    json.dumps(out, allow_nan=False)  # JSON-ready: plain floats, no NaN


def test_ci_width_shrinks_with_n(synthetic):
    widths = []
    for n in (150, 2400):
        y, p = synthetic.binary(n, seed=1)
        ci = evaluate_predictions(y, _two_col(p), task="binary", metrics=["auroc"], bootstrap=400)[
            "auroc"
        ]["ci95"]
        widths.append(ci[1] - ci[0])
    assert widths[1] < widths[0] / 2.5  # ~ 1/sqrt(16) = 1/4


def test_deterministic_under_seed(synthetic):
    y, p = synthetic.binary(200, seed=2)
    kw = {"task": "binary", "metrics": ["auroc", "f1", "ece"], "bootstrap": 200}
    a = evaluate_predictions(y, _two_col(p), seed=7, **kw)
    b = evaluate_predictions(y, _two_col(p), seed=7, **kw)
    c = evaluate_predictions(y, _two_col(p), seed=8, **kw)
    assert a == b
    assert a["auroc"]["ci95"] != c["auroc"]["ci95"]


def test_bootstrap_zero_gives_no_ci(synthetic):
    y, p = synthetic.binary(100)
    out = evaluate_predictions(y, _two_col(p), task="binary", metrics=["auroc"], bootstrap=0)
    assert out["auroc"]["ci95"] is None
    assert isinstance(out["auroc"]["value"], float)


def test_undefined_metric_gives_none():
    y = np.zeros(20, dtype=int)
    p = np.linspace(0.05, 0.95, 20)
    out = evaluate_predictions(y, _two_col(p), task="binary", metrics=["auroc", "accuracy"])
    assert out["auroc"] == {"value": None, "ci95": None}
    assert out["accuracy"]["value"] is not None


def test_resamples_where_metric_is_undefined_are_dropped():
    # One positive in 40 rows: ~37% of resamples lack it; AUROC still gets an interval.
    y = np.zeros(40, dtype=int)
    y[0] = 1
    p = np.linspace(0.01, 0.6, 40)[::-1].copy()
    out = evaluate_predictions(y, _two_col(p), task="binary", metrics=["auroc"], bootstrap=300)
    assert out["auroc"]["value"] == 1.0
    assert out["auroc"]["ci95"] == [1.0, 1.0]


def test_vectorised_bootstrap_equals_a_plain_loop(synthetic):
    """A metric without a vectorised core takes the slow path; both must agree exactly."""
    METRICS.add(
        "test_sklearn_auroc",
        lambda y, s, **_: float(roc_auc_score(y, s)) if len(set(y)) == 2 else float("nan"),
        higher_is_better=True,
        needs="score",
        tasks=("binary",),
    )
    try:
        y, p = synthetic.binary(120, seed=3)
        out = evaluate_predictions(
            y, _two_col(p), task="binary", metrics=["auroc", "test_sklearn_auroc"], bootstrap=150
        )
    finally:
        METRICS.unregister("test_sklearn_auroc")
    assert out["auroc"] == out["test_sklearn_auroc"]


def test_cluster_bootstrap(synthetic):
    y, p = synthetic.binary(100, seed=4)
    kw = {"task": "binary", "metrics": ["auroc", "accuracy"], "bootstrap": 300, "seed": 0}
    rows = evaluate_predictions(y, _two_col(p), **kw)
    # One group per row is exactly the row bootstrap.
    assert evaluate_predictions(y, _two_col(p), groups=np.arange(100), **kw) == rows
    # Each patient contributes 5 identical rows: resampling rows pretends there are 500
    # independent cases; resampling patients gives the honest, wider interval.
    y5, p5 = np.repeat(y, 5), np.repeat(p, 5)
    patients = np.repeat([f"P{i:03d}" for i in range(100)], 5)
    naive = evaluate_predictions(y5, _two_col(p5), **kw)
    cluster = evaluate_predictions(y5, _two_col(p5), groups=patients, **kw)
    for name in ("auroc", "accuracy"):
        assert cluster[name]["value"] == naive[name]["value"]
        width = lambda e: e["ci95"][1] - e["ci95"][0]  # noqa: E731
        assert width(cluster[name]) > 1.6 * width(naive[name])


def test_multiclass_macro_metrics_keep_their_meaning_in_resamples():
    # Three classes; predictions only ever 0/1. The macro F1 must use n_classes=3.
    y = np.array([0, 1, 2] * 10)
    proba = np.tile([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]], (10, 1))
    out = evaluate_predictions(y, proba, task="multiclass", metrics=["f1"], bootstrap=50)
    assert out["f1"]["value"] == pytest.approx(M.f1(y, proba.argmax(1), n_classes=3), abs=1e-6)


def test_regression_task():
    rng = np.random.default_rng(0)
    y = rng.normal(size=80)
    pred = y + 0.3 * rng.normal(size=80)
    out = evaluate_predictions(y, pred, task="regression", metrics=["rmse", "r2"], bootstrap=100)
    assert out["rmse"]["value"] == pytest.approx(M.rmse(y, pred), abs=1e-6)
    assert out["r2"]["ci95"][0] <= out["r2"]["value"] <= out["r2"]["ci95"][1]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metrics": ["aurco"]}, UnknownComponentError, "Did you mean 'auroc'"),
        ({"metrics": ["rmse"]}, ConfigError, "does not apply to a binary task"),
        ({"task": "survival"}, ConfigError, "'task' parameter"),
        ({"bootstrap": -1}, ConfigError, "non-negative integer"),
        ({"threshold": 1.5}, ConfigError, "threshold"),
        ({"proba": np.full((10, 3), 1 / 3)}, DataValidationError, "must be \\(N, 2\\)"),
        ({"proba": np.full((9, 2), 0.5)}, DataValidationError, "10 rows but proba has 9"),
        ({"proba": np.full((10, 2), 0.7)}, DataValidationError, "sum to 1"),
        ({"groups": np.arange(9)}, DataValidationError, "groups has 9"),
    ],
)
def test_ill_arguments_raise(kwargs, error, match):
    args = {
        "y_true": np.array([0, 1] * 5),
        "proba": np.full((10, 2), 0.5),
        "task": "binary",
        "metrics": ["auroc"],
        "bootstrap": 10,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        evaluate_predictions(args.pop("y_true"), args.pop("proba"), **args)


def test_paired_difference(synthetic):
    y, p_good = synthetic.binary(300, seed=5)
    rng = np.random.default_rng(6)
    p_bad = np.clip(0.5 * p_good + 0.5 * rng.random(300), 0, 1)
    same = paired_bootstrap_diff(
        y, _two_col(p_good), _two_col(p_good), "auroc", task="binary", bootstrap=100
    )
    assert same["value"] == 0.0 and same["ci95"] == [0.0, 0.0]
    diff = paired_bootstrap_diff(
        y, _two_col(p_good), _two_col(p_bad), "auroc", task="binary", bootstrap=300
    )
    assert diff["value"] == pytest.approx(diff["a"] - diff["b"], abs=1e-5)
    assert 0 < diff["ci95"][0] <= diff["value"] <= diff["ci95"][1]
    assert diff["p_value"] < 0.05
    json.dumps(diff, allow_nan=False)


def test_subgroup_metrics(synthetic):
    y, p = synthetic.binary(200, seed=7)
    sex = np.array(["F", "M"] * 100, dtype=object)
    sex[:10] = None
    out = subgroup_metrics(
        y, _two_col(p), sex, task="binary", metrics=["auroc", "accuracy"], bootstrap=50
    )
    assert list(out) == ["F", "M", "missing"]
    assert sum(v["n"] for v in out.values()) == 200
    assert out["missing"]["n"] == 10
    sel = sex == "F"
    assert out["F"]["metrics"]["auroc"]["value"] == pytest.approx(M.auroc(y[sel], p[sel]), abs=1e-6)
    assert set(out["M"]["metrics"]["accuracy"]) == {"value", "ci95"}


def test_ece_interval_is_bias_corrected_and_contains_the_estimate(monkeypatch):
    from medlearn.evaluation import _bootstrap

    excluded = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        p = rng.random(3000)
        y = (rng.random(3000) < p).astype(int)  # perfectly calibrated: ECE is pure noise
        out = evaluate_predictions(y, p, task="binary", metrics=["ece"], bootstrap=400, seed=seed)
        lo, hi = out["ece"]["ci95"]
        assert 0.0 <= lo <= out["ece"]["value"] <= hi
        with monkeypatch.context() as m:
            m.setattr(_bootstrap, "BIAS_CORRECTED", frozenset())
            plain = evaluate_predictions(
                y, p, task="binary", metrics=["ece"], bootstrap=400, seed=seed
            )["ece"]
        excluded += plain["ci95"][0] > plain["value"]
    assert excluded >= 1  # the plain percentile interval does miss the estimate here

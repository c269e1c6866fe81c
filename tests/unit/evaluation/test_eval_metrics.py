"""Every metric against scikit-learn (or a closed form) on seeded data, plus ill cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from medlearn.errors import DataValidationError
from medlearn.evaluation import metrics as M
from medlearn.registry import METRICS


def _specificity_macro(y, p, sample_weight=None):
    labels = np.union1d(y, p)
    mcm = skm.multilabel_confusion_matrix(y, p, labels=labels, sample_weight=sample_weight)
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    return float(np.mean(tn / (tn + fp)))


def _ap_macro(y, proba, sample_weight=None):
    return float(
        np.mean(
            [
                skm.average_precision_score(y == k, proba[:, k], sample_weight=sample_weight)
                for k in range(proba.shape[1])
            ]
        )
    )


def _brier_multi(y, proba, sample_weight=None):
    onehot = np.eye(proba.shape[1])[y]
    return float(np.average(((proba - onehot) ** 2).sum(1), weights=sample_weight))


def _ece_reference(y, proba, sample_weight=None, n_bins=15):
    """A plain loop over bins, written independently of the vectorised implementation."""
    if proba.ndim == 1:
        conf, outcome = proba, y.astype(float)
    else:
        conf, outcome = proba.max(1), (proba.argmax(1) == y).astype(float)
    w = np.ones_like(conf) if sample_weight is None else sample_weight
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        sel = (conf > lo) & (conf <= hi) if b > 0 else (conf <= hi)
        if w[sel].sum() > 0:
            gap = abs(
                np.average(conf[sel], weights=w[sel]) - np.average(outcome[sel], weights=w[sel])
            )
            total += w[sel].sum() * gap
    return total / w.sum()


def _binary_labels(p):
    return (p >= 0.5).astype(int)


# (metric, task, reference(y, score_or_labels, sample_weight))
CASES = [
    ("auroc", "binary", lambda y, s, w: skm.roc_auc_score(y, s, sample_weight=w)),
    ("auprc", "binary", lambda y, s, w: skm.average_precision_score(y, s, sample_weight=w)),
    ("brier", "binary", lambda y, s, w: skm.brier_score_loss(y, s, sample_weight=w)),
    ("ece", "binary", _ece_reference),
    ("accuracy", "binary", lambda y, p, w: skm.accuracy_score(y, p, sample_weight=w)),
    (
        "balanced_accuracy",
        "binary",
        lambda y, p, w: skm.balanced_accuracy_score(y, p, sample_weight=w),
    ),
    ("sensitivity", "binary", lambda y, p, w: skm.recall_score(y, p, sample_weight=w)),
    (
        "specificity",
        "binary",
        lambda y, p, w: skm.recall_score(y, p, pos_label=0, sample_weight=w),
    ),
    ("f1", "binary", lambda y, p, w: skm.f1_score(y, p, sample_weight=w)),
    (
        "auroc",
        "multiclass",
        lambda y, s, w: skm.roc_auc_score(
            y, s, multi_class="ovr", average="macro", sample_weight=w
        ),
    ),
    ("auprc", "multiclass", _ap_macro),
    ("brier", "multiclass", _brier_multi),
    ("ece", "multiclass", _ece_reference),
    ("accuracy", "multiclass", lambda y, p, w: skm.accuracy_score(y, p, sample_weight=w)),
    (
        "balanced_accuracy",
        "multiclass",
        lambda y, p, w: skm.balanced_accuracy_score(y, p, sample_weight=w),
    ),
    (
        "sensitivity",
        "multiclass",
        lambda y, p, w: skm.recall_score(y, p, average="macro", sample_weight=w),
    ),
    ("specificity", "multiclass", _specificity_macro),
    ("f1", "multiclass", lambda y, p, w: skm.f1_score(y, p, average="macro", sample_weight=w)),
]


def _inputs(synthetic, name: str, task: str, seed: int):
    if task == "binary":
        y, p = synthetic.binary(240, seed)
        labels = _binary_labels(p)
    else:
        y, p = synthetic.multiclass(240, 4, seed)
        labels = p.argmax(1)
    needs = METRICS.meta(name)["needs"]
    return y, (labels if needs == "label" else p)


@pytest.mark.parametrize("variant", ["plain", "mask", "weights", "mask+weights"])
@pytest.mark.parametrize(
    ("name", "task", "reference"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_metric_matches_reference(synthetic, name, task, reference, variant):
    y, s = _inputs(synthetic, name, task, seed=1)
    rng = np.random.default_rng(2)
    mask = rng.random(len(y)) < 0.7 if "mask" in variant else None
    weights = rng.uniform(0.2, 3.0, len(y)) if "weights" in variant else None
    kwargs = (
        {"n_classes": 4} if task == "multiclass" and METRICS.meta(name)["needs"] == "label" else {}
    )
    got = METRICS.get(name)(y, s, mask=mask, sample_weight=weights, **kwargs)
    sel = np.ones(len(y), bool) if mask is None else mask
    expected = reference(y[sel], s[sel], None if weights is None else weights[sel])
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("rmse", lambda y, s, w: math.sqrt(skm.mean_squared_error(y, s, sample_weight=w))),
        ("mae", lambda y, s, w: skm.mean_absolute_error(y, s, sample_weight=w)),
        ("r2", lambda y, s, w: skm.r2_score(y, s, sample_weight=w)),
    ],
)
@pytest.mark.parametrize("variant", ["plain", "mask", "weights"])
def test_regression_metrics_match_sklearn(name, reference, variant):
    rng = np.random.default_rng(3)
    y = rng.normal(5.0, 2.0, 200)
    s = y + rng.normal(0, 1.0, 200)
    mask = rng.random(200) < 0.6 if variant == "mask" else None
    w = rng.uniform(0.5, 2.0, 200) if variant == "weights" else None
    y_in = y.copy()
    if mask is not None:
        y_in[~mask] = np.nan  # unselected targets are never read
    sel = np.ones(200, bool) if mask is None else mask
    got = METRICS.get(name)(y_in, s, mask=mask, sample_weight=w)
    assert got == pytest.approx(reference(y[sel], s[sel], None if w is None else w[sel]), rel=1e-9)


def test_docstring_example_and_ties():
    assert M.auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    # All scores tied: a coin flip, exactly 0.5.
    assert M.auroc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == 0.5


def test_label_metrics_infer_binary_without_n_classes():
    y = np.array([0, 1, 2, 2, 1, 0])
    p = np.array([0, 1, 1, 2, 1, 0])
    assert M.f1(y, p) == pytest.approx(skm.f1_score(y, p, average="macro"))
    # A multiclass problem whose labels happen to be 0/1 needs n_classes to stay macro.
    y2, p2 = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    assert M.f1(y2, p2) == pytest.approx(skm.f1_score(y2, p2))
    assert M.f1(y2, p2, n_classes=3) == pytest.approx(skm.f1_score(y2, p2, average="macro"))


# -- undefined cases give NaN -------------------------------------------------------------------
ONE_CLASS_Y = np.zeros(6, dtype=int)
UNDEFINED = [
    ("auroc", ONE_CLASS_Y, np.linspace(0.1, 0.9, 6)),
    ("auprc", ONE_CLASS_Y, np.linspace(0.1, 0.9, 6)),
    ("sensitivity", ONE_CLASS_Y, np.array([0, 1, 0, 1, 0, 0])),
    ("specificity", np.ones(6, dtype=int), np.array([0, 1, 0, 1, 0, 0])),
    ("f1", ONE_CLASS_Y, np.zeros(6, dtype=int)),
    ("r2", np.full(6, 2.0), np.linspace(0, 1, 6)),
    # Multiclass AUROC with a class missing from y_true.
    ("auroc", np.array([0, 1, 0, 1]), np.full((4, 3), 1 / 3)),
]


@pytest.mark.parametrize(("name", "y", "s"), UNDEFINED, ids=[u[0] for u in UNDEFINED])
def test_undefined_cases_return_nan(name, y, s):
    assert math.isnan(METRICS.get(name)(y, s))


@pytest.mark.parametrize("name", METRICS.list())
def test_empty_selection_returns_nan(name):
    meta = METRICS.meta(name)
    if "regression" in meta["tasks"]:
        y, s = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 2.0])
    elif meta["needs"] == "label":
        y, s = np.array([0, 1, 1]), np.array([0, 1, 0])
    else:
        y, s = np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4])
    assert math.isnan(METRICS.get(name)(y, s, mask=np.zeros(3, dtype=bool)))


# -- ill inputs raise DataValidationError -----------------------------------------------------
ILL = [
    ("auroc", np.zeros(10, int), np.zeros(9), {}, "y_true has 10 rows but y_score has 9"),
    ("accuracy", np.zeros(10, int), np.zeros(9, int), {}, "y_true has 10 rows but y_score has 9"),
    ("auroc", np.zeros((4, 2)), np.zeros(4), {}, "1-D"),
    ("auroc", np.array([0, 1, 3]), np.full((3, 3), 1 / 3), {}, "class index 3"),
    ("auroc", np.array([0, 1, -1]), np.array([0.1, 0.2, 0.3]), {}, "negative"),
    ("auroc", np.array([0.0, 1.0, np.nan]), np.array([0.1, 0.2, 0.3]), {}, "missing"),
    ("auroc", np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]), {}, "NaN"),
    ("auroc", np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]), {"mask": [1, 0, 1]}, "boolean"),
    ("auroc", np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]), {"mask": np.ones(2, bool)}, "mask"),
    (
        "auroc",
        np.array([0, 1, 1]),
        np.array([0.1, 0.2, 0.3]),
        {"sample_weight": [1, -1, 1]},
        "non-negative",
    ),
    ("brier", np.array([0, 1, 1]), np.array([0.1, 1.2, 0.3]), {}, "probabilities"),
    ("ece", np.array([0, 1, 1]), np.full((3, 3), 0.5), {}, "sum to 1"),
    ("accuracy", np.array([0, 1, 2]), np.array([0, 1, 3]), {"n_classes": 3}, "class index 3"),
    ("f1", np.array(["a", "b"]), np.array([0, 1]), {}, "integer class indices"),
    ("rmse", np.array([1.0, np.inf]), np.array([1.0, 2.0]), {}, "NaN or infinite"),
]


@pytest.mark.parametrize(("name", "y", "s", "kwargs", "match"), ILL)
def test_ill_inputs_raise(name, y, s, kwargs, match):
    with pytest.raises(DataValidationError, match=match):
        METRICS.get(name)(y, s, **kwargs)


def test_nan_labels_are_fine_when_masked_out():
    y = np.array([0.0, 1.0, np.nan, 1.0, 0.0])
    s = np.array([0.1, 0.8, 0.5, 0.6, 0.3])
    assert M.auroc(y, s, mask=~np.isnan(y)) == 1.0


# -- registry conformance -----------------------------------------------------------------------
REQUIRED = {
    "auroc",
    "auprc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "f1",
    "brier",
    "ece",
    "rmse",
    "mae",
    "r2",
}


def test_required_metrics_are_registered_with_meta():
    assert REQUIRED <= set(METRICS.list())
    for name in REQUIRED:
        meta = METRICS.meta(name)
        assert isinstance(meta["higher_is_better"], bool)
        assert meta["needs"] in ("score", "label")
        assert set(meta["tasks"]) <= {"binary", "multiclass", "regression"}
        assert callable(getattr(METRICS.get(name), "_batched", None))
    assert METRICS.meta("brier")["higher_is_better"] is False
    assert METRICS.meta("accuracy")["needs"] == "label"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_batched_core_equals_weighted_call(synthetic, name):
    """The vectorised core on count vectors equals the public function with those weights."""
    meta = METRICS.meta(name)
    fn = METRICS.get(name)
    if "regression" in meta["tasks"]:
        rng = np.random.default_rng(0)
        y = rng.normal(size=50)
        s = y + rng.normal(size=50)
        kwargs, n_classes = {}, None
    else:
        y, p = synthetic.multiclass(50, 3, seed=4)
        s = p.argmax(1) if meta["needs"] == "label" else p
        n_classes = 3
        kwargs = {"n_classes": 3} if meta["needs"] == "label" else {}
    counts = np.random.default_rng(5).integers(0, 3, size=(4, 50)).astype(float)
    batched = fn._batched(y, s, counts, n_classes=n_classes)
    singles = [fn(y, s, sample_weight=c, **kwargs) for c in counts]
    np.testing.assert_allclose(batched, singles, rtol=1e-12)

"""Metric functions, registered in :data:`medlearn.registry.METRICS`.

Every metric has the same signature::

    f(y_true, y_score, *, mask=None, sample_weight=None) -> float

- ``needs="score"`` metrics take probabilities: for a binary task ``y_score`` is the
  positive-class probability ``(N,)``; for a multiclass task it is ``(N, C)`` with rows summing
  to 1 (the ranking metrics also accept any real-valued scores).
- ``needs="label"`` metrics take predicted class indices ``(N,)``. They also accept a keyword
  ``n_classes``: without it, labels within ``{0, 1}`` are treated as a binary task, so pass
  ``n_classes=C`` for a multiclass task.
- Regression metrics take real-valued predictions ``(N,)``.
- ``mask`` is a boolean ``(N,)`` array selecting the rows that are used (e.g. rows whose label
  is present); values of ``y_true`` in unselected rows are never read, so they may be NaN.
- ``sample_weight`` are non-negative frequency weights ``(N,)``.

A metric that is undefined on its input (e.g. AUROC with one class only) returns
``float("nan")``; it never raises for that. Malformed input (mismatched shapes, labels out of
range, NaN scores) raises :class:`~medlearn.errors.DataValidationError`.

Each function also carries a vectorised implementation (``fn._batched``) that computes the
metric for many weight vectors at once; :mod:`medlearn.evaluation._bootstrap` uses it to
evaluate all bootstrap resamples (a resample is a vector of row counts) in one call, so point
estimates and confidence intervals come from the same code.

Multiclass definitions (macro averages):

- ``auroc``: mean over classes of the one-vs-rest AUROC; NaN if any class has no positive or
  no negative row.
- ``auprc``: mean over classes of the one-vs-rest average precision; NaN if any class has no
  positive row.
- ``sensitivity``: mean recall over the classes present in ``y_true`` (equals
  ``balanced_accuracy``).
- ``specificity``: mean one-vs-rest specificity over the classes present in ``y_true`` or the
  predictions.
- ``f1``: mean F1 over the classes present in ``y_true`` or the predictions (as scikit-learn's
  ``average="macro"``).
- ``brier``: mean over rows of ``sum_k (p_k - 1[y = k])**2`` (range 0 to 2).
- ``ece``: expected calibration error of the *top-label* confidence ``max_k p_k`` against the
  accuracy of ``argmax_k p_k``, over 15 equal-width bins. For a binary task it is computed on
  the positive-class probability against the label.

Example:
    >>> import numpy as np
    >>> from medlearn.registry import METRICS
    >>> METRICS.get("auroc")(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from medlearn.errors import DataValidationError
from medlearn.registry import METRICS

__all__ = [
    "ECE_BINS",
    "accuracy",
    "auprc",
    "auroc",
    "balanced_accuracy",
    "brier",
    "ece",
    "f1",
    "mae",
    "min_se_ppv",
    "prepare_inputs",
    "r2",
    "rmse",
    "sensitivity",
    "specificity",
]

#: Number of equal-width bins of :func:`ece`.
ECE_BINS = 15

Kind = Literal["score", "label", "regression"]
Batched = Callable[..., np.ndarray]  # core(y, s, W, n_classes=None) -> (B,)


# -- input validation ---------------------------------------------------------------------------
def _as_1d(name: str, values: Any, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataValidationError(f"{name} must be a 1-D array (N,). Got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise DataValidationError(f"y_true has {n} rows but {name} has {arr.shape[0]}.")
    return arr


def _check_labels(y: np.ndarray, name: str, n_classes: int | None) -> np.ndarray:
    """Return ``y`` as int64 after checking it holds class indices ``0..n_classes-1``."""
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise DataValidationError(
            f"{name} must hold integer class indices. Got dtype {y.dtype}.",
            hint="Encode class names as 0..C-1 first.",
        )
    if y.size and not np.all(np.isfinite(y)):
        bad = int(np.sum(~np.isfinite(y)))
        raise DataValidationError(
            f"{name} has {bad} missing (NaN) values.",
            hint="Pass mask=~np.isnan(y_true) to skip rows without a label.",
        )
    yi = y.astype(np.int64)
    if y.size and not np.array_equal(yi, y):
        raise DataValidationError(f"{name} must hold integer class indices; it has fractions.")
    if y.size and yi.min() < 0:
        raise DataValidationError(f"{name} has negative class indices; classes are 0..C-1.")
    if n_classes is not None and y.size and yi.max() >= n_classes:
        raise DataValidationError(
            f"{name} has class index {int(yi.max())} but there are only {n_classes} classes "
            f"(0..{n_classes - 1})."
        )
    return yi


def prepare_inputs(
    y_true: Any,
    y_score: Any,
    *,
    kind: Kind,
    mask: Any = None,
    sample_weight: Any = None,
    n_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate metric inputs, apply ``mask`` and return ``(y, s, w)``.

    Args:
        y_true: targets ``(N,)``.
        y_score: ``(N,)`` or ``(N, C)`` scores (``kind="score"``), ``(N,)`` predicted labels
            (``kind="label"``) or ``(N,)`` predictions (``kind="regression"``).
        kind: which of the three the metric takes.
        mask: boolean ``(N,)``; rows where it is False are dropped before anything is checked.
        sample_weight: non-negative weights ``(N,)``; default all ones.
        n_classes: number of classes, for label checks (default: inferred).

    Returns:
        ``y`` (int64 labels, or float64 for regression), ``s`` (float64 scores or int64
        labels) and ``w`` (float64 weights), all restricted to the selected rows.

    Raises:
        DataValidationError: for mismatched shapes, labels out of range, NaN values or
            negative weights.
    """
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataValidationError(f"y_true must be a 1-D array (N,). Got shape {y.shape}.")
    n = y.shape[0]
    s = np.asarray(y_score)
    if s.ndim == 0 or s.shape[0] != n:
        got = "a scalar" if s.ndim == 0 else f"{s.shape[0]} rows"
        raise DataValidationError(f"y_true has {n} rows but y_score has {got}.")
    if kind == "score":
        if s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        if s.ndim not in (1, 2) or (s.ndim == 2 and s.shape[1] < 2):
            raise DataValidationError(
                "y_score must be (N,) positive-class probabilities (binary) or (N, C) class "
                f"probabilities with C >= 2 (multiclass). Got shape {s.shape}."
            )
    else:
        s = _as_1d("y_score", s, n)

    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            raise DataValidationError(f"mask must be a boolean array. Got dtype {m.dtype}.")
        m = _as_1d("mask", m, n)
        y, s = y[m], s[m]
    if sample_weight is None:
        w = np.ones(y.shape[0], dtype=np.float64)
    else:
        w = _as_1d("sample_weight", sample_weight, n).astype(np.float64)
        if mask is not None:
            w = w[m]
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataValidationError("sample_weight must be finite and non-negative.")

    if kind == "regression":
        y = y.astype(np.float64)
        s = s.astype(np.float64)
        for name, arr in (("y_true", y), ("y_score", s)):
            if not np.all(np.isfinite(arr)):
                raise DataValidationError(
                    f"{name} has {int(np.sum(~np.isfinite(arr)))} NaN or infinite values.",
                    hint="Pass mask= to skip rows without a value.",
                )
        return y, s, w

    if kind == "score":
        k = s.shape[1] if s.ndim == 2 else 2
        y = _check_labels(y, "y_true", k)
        s = s.astype(np.float64)
        if not np.all(np.isfinite(s)):
            raise DataValidationError(
                f"y_score has {int(np.sum(~np.isfinite(s).reshape(len(s), -1).any(1)))} rows "
                "with NaN or infinite values."
            )
        return y, s, w

    y = _check_labels(y, "y_true", n_classes)
    s = _check_labels(s, "y_score (predicted labels)", n_classes)
    return y, s, w


def _check_probabilities(s: np.ndarray, name: str) -> None:
    if s.size and (s.min() < -1e-9 or s.max() > 1 + 1e-9):
        raise DataValidationError(
            f"{name} needs probabilities in [0, 1]; y_score ranges from {s.min():.3g} "
            f"to {s.max():.3g}.",
            hint="Apply a sigmoid / softmax to the model's logits first.",
        )
    if s.ndim == 2 and s.size:
        worst = float(np.max(np.abs(s.sum(axis=1) - 1.0)))
        if worst > 1e-3:
            raise DataValidationError(
                f"{name} needs (N, C) probability rows that sum to 1; a row is off by {worst:.3g}."
            )


# -- vectorised cores: (y, s, W (B, N)) -> (B,) -----------------------------------------------
def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted 1-D array."""
    if sorted_scores.size == 0:
        return np.zeros(0, dtype=np.intp)
    change = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]) + 1
    return np.concatenate(([0], change))


def _binary_auroc_b(pos: np.ndarray, s: np.ndarray, W: np.ndarray) -> np.ndarray:
    """AUROC of a boolean target ``pos`` for each row of weights ``W`` (ties count 1/2)."""
    if s.size == 0:
        return np.full(W.shape[0], np.nan)
    order = np.argsort(s, kind="stable")
    starts = _tie_groups(s[order])
    Wo = W[:, order]
    po = pos[order]
    gp = np.add.reduceat(Wo * po, starts, axis=1)
    gn = np.add.reduceat(Wo * ~po, starts, axis=1)
    neg_below = np.cumsum(gn, axis=1) - gn
    num = np.sum(gp * (neg_below + 0.5 * gn), axis=1)
    return _safe_div(num, gp.sum(axis=1) * gn.sum(axis=1))


def _binary_ap_b(pos: np.ndarray, s: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Average precision (step-wise, as scikit-learn) for each row of ``W``."""
    if s.size == 0:
        return np.full(W.shape[0], np.nan)
    order = np.argsort(-s, kind="stable")
    starts = _tie_groups(s[order])
    Wo = W[:, order]
    po = pos[order]
    gp = np.add.reduceat(Wo * po, starts, axis=1)
    gn = np.add.reduceat(Wo * ~po, starts, axis=1)
    tp = np.cumsum(gp, axis=1)
    fp = np.cumsum(gn, axis=1)
    precision = np.zeros_like(tp)
    np.divide(tp, tp + fp, out=precision, where=(tp + fp) > 0)
    return _safe_div(np.sum(gp * precision, axis=1), tp[:, -1])


def _per_class(binary_fn: Callable[..., np.ndarray], y, s, W) -> np.ndarray:
    if s.ndim == 1:
        return binary_fn(y == 1, s, W)
    per = np.stack([binary_fn(y == k, s[:, k], W) for k in range(s.shape[1])], axis=1)
    return per.mean(axis=1)  # NaN if any class is undefined


def _auroc_b(
    y: np.ndarray, s: np.ndarray, W: np.ndarray, n_classes: int | None = None
) -> np.ndarray:
    return _per_class(_binary_auroc_b, y, s, W)


def _auprc_b(
    y: np.ndarray, s: np.ndarray, W: np.ndarray, n_classes: int | None = None
) -> np.ndarray:
    return _per_class(_binary_ap_b, y, s, W)


def _confusion_b(y: np.ndarray, p: np.ndarray, W: np.ndarray, n_classes: int) -> np.ndarray:
    """Weighted confusion matrices ``(B, C, C)`` indexed ``[true, predicted]``."""
    c = n_classes
    cell = y * c + p
    onehot = np.zeros((y.shape[0], c * c))
    onehot[np.arange(y.shape[0]), cell] = 1.0
    return (W @ onehot).reshape(W.shape[0], c, c)


def _nanmean_rows(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    count = keep.sum(axis=1)
    total = np.where(keep, np.nan_to_num(values), 0.0).sum(axis=1)
    return _safe_div(total, count.astype(np.float64))


def _n_classes(y: np.ndarray, p: np.ndarray, n_classes: int | None) -> int:
    if n_classes is not None:
        return int(n_classes)
    top = max(int(y.max()) if y.size else 0, int(p.max()) if p.size else 0)
    return max(2, top + 1)


def _label_metric(which: str) -> Batched:
    def compute(
        y: np.ndarray, p: np.ndarray, W: np.ndarray, n_classes: int | None = None
    ) -> np.ndarray:
        c = _n_classes(y, p, n_classes)
        cm = _confusion_b(y, p, W, c)
        total = cm.sum(axis=(1, 2))
        tp = np.diagonal(cm, axis1=1, axis2=2)
        support = cm.sum(axis=2)  # true count per class
        predicted = cm.sum(axis=1)
        fn = support - tp
        fp = predicted - tp
        tn = total[:, None] - tp - fn - fp
        if which == "accuracy":
            return _safe_div(tp.sum(axis=1), total)
        recall = _safe_div(tp, support)
        if which == "balanced_accuracy":
            return _nanmean_rows(recall, support > 0)
        binary = c == 2
        if which == "sensitivity":
            return recall[:, 1] if binary else _nanmean_rows(recall, support > 0)
        if which == "specificity":
            spec = _safe_div(tn, tn + fp)
            if binary:
                return spec[:, 1]
            return _nanmean_rows(spec, ((support + predicted) > 0) & ((tn + fp) > 0))
        if which == "f1":
            f1s = _safe_div(2 * tp, 2 * tp + fp + fn)
            return f1s[:, 1] if binary else _nanmean_rows(f1s, (2 * tp + fp + fn) > 0)
        raise ValueError(which)  # pragma: no cover

    return compute


def _brier_b(
    y: np.ndarray, s: np.ndarray, W: np.ndarray, n_classes: int | None = None
) -> np.ndarray:
    if s.ndim == 1:
        loss = (s - y) ** 2
    else:
        onehot = np.zeros_like(s)
        onehot[np.arange(len(y)), y] = 1.0
        loss = ((s - onehot) ** 2).sum(axis=1)
    return _safe_div(W @ loss, W.sum(axis=1))


def _bin_index(prob: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each probability: bin ``i`` holds ``(i/n, (i+1)/n]`` (0 in bin 0)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], prob, side="left")


def _ece_b(y: np.ndarray, s: np.ndarray, W: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    if s.ndim == 1:
        conf, outcome = s, y.astype(np.float64)
    else:
        conf = s.max(axis=1)
        outcome = (s.argmax(axis=1) == y).astype(np.float64)
    bins = _bin_index(conf, ECE_BINS)
    onehot = np.zeros((len(y), ECE_BINS))
    onehot[np.arange(len(y)), bins] = 1.0
    gap = W @ (onehot * (conf - outcome)[:, None])  # (B, bins): sum of conf - outcome per bin
    return _safe_div(np.abs(gap).sum(axis=1), W.sum(axis=1))


def _mae_b(y: np.ndarray, s: np.ndarray, W: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    return _safe_div(W @ np.abs(s - y), W.sum(axis=1))


def _rmse_b(
    y: np.ndarray, s: np.ndarray, W: np.ndarray, n_classes: int | None = None
) -> np.ndarray:
    return np.sqrt(_safe_div(W @ (s - y) ** 2, W.sum(axis=1)))


def _r2_b(y: np.ndarray, s: np.ndarray, W: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    total = W.sum(axis=1)
    mean = _safe_div(W @ y, total)
    ss_tot = np.einsum("bn,bn->b", W, (y[None, :] - mean[:, None]) ** 2)
    ss_res = W @ (s - y) ** 2
    defined = (total > 0) & (ss_tot > 1e-12 * (W @ y**2))
    return np.where(defined, 1.0 - ss_res / np.where(defined, ss_tot, 1.0), np.nan)


# -- public functions ---------------------------------------------------------------------------
def _scalar(values: np.ndarray) -> float:
    return float(values[0])


def _score_metric(
    y_true, y_score, mask, sample_weight, core: Batched, name: str, probs: bool = False
) -> float:
    y, s, w = prepare_inputs(y_true, y_score, kind="score", mask=mask, sample_weight=sample_weight)
    if probs:
        _check_probabilities(s, name)
    return _scalar(core(y, s, w[None, :]))


def _with_batched(core: Batched) -> Callable[[Callable[..., float]], Callable[..., float]]:
    def attach(fn: Callable[..., float]) -> Callable[..., float]:
        fn._batched = core  # type: ignore[attr-defined]
        return fn

    return attach


@METRICS.register("auroc", higher_is_better=True, needs="score", tasks=("binary", "multiclass"))
@_with_batched(_auroc_b)
def auroc(y_true, y_score, *, mask=None, sample_weight=None) -> float:
    """Area under the ROC curve; multiclass: macro one-vs-rest.

    Args:
        y_true: class indices ``(N,)``.
        y_score: positive-class scores ``(N,)`` or class scores ``(N, C)``.
        mask: boolean ``(N,)`` selecting the rows used.
        sample_weight: non-negative weights ``(N,)``.

    Returns:
        AUROC in [0, 1]; NaN if a class has no positive or no negative row.
    """
    return _score_metric(y_true, y_score, mask, sample_weight, _auroc_b, "auroc")


@METRICS.register("auprc", higher_is_better=True, needs="score", tasks=("binary", "multiclass"))
@_with_batched(_auprc_b)
def auprc(y_true, y_score, *, mask=None, sample_weight=None) -> float:
    """Average precision (area under the precision-recall curve, step-wise).

    Multiclass: macro mean of the one-vs-rest average precision. NaN if a class has no
    positive row. Arguments as :func:`auroc`.
    """
    return _score_metric(y_true, y_score, mask, sample_weight, _auprc_b, "auprc")


@METRICS.register("brier", higher_is_better=False, needs="score", tasks=("binary", "multiclass"))
@_with_batched(_brier_b)
def brier(y_true, y_score, *, mask=None, sample_weight=None) -> float:
    """Brier score: binary ``mean((p - y)**2)``; multiclass ``mean(sum_k (p_k - 1[y=k])**2)``.

    Arguments as :func:`auroc`; ``y_score`` must be probabilities.
    """
    return _score_metric(y_true, y_score, mask, sample_weight, _brier_b, "brier", probs=True)


@METRICS.register("ece", higher_is_better=False, needs="score", tasks=("binary", "multiclass"))
@_with_batched(_ece_b)
def ece(y_true, y_score, *, mask=None, sample_weight=None) -> float:
    """Expected calibration error over 15 equal-width bins.

    ``sum_b (n_b / N) * |mean confidence_b - mean outcome_b|``. Binary: the confidence is the
    positive-class probability and the outcome the label. Multiclass: the confidence is the
    top-label probability ``max_k p_k`` and the outcome whether ``argmax_k p_k`` is correct.
    Arguments as :func:`auroc`; ``y_score`` must be probabilities.
    """
    return _score_metric(y_true, y_score, mask, sample_weight, _ece_b, "ece", probs=True)


def _label_public(which: str, y_true, y_pred, mask, sample_weight, n_classes) -> float:
    y, p, w = prepare_inputs(
        y_true, y_pred, kind="label", mask=mask, sample_weight=sample_weight, n_classes=n_classes
    )
    return _scalar(_label_metric(which)(y, p, w[None, :], n_classes))


_LABEL_TASKS = ("binary", "multiclass")


@METRICS.register("accuracy", higher_is_better=True, needs="label", tasks=_LABEL_TASKS)
@_with_batched(_label_metric("accuracy"))
def accuracy(y_true, y_pred, *, mask=None, sample_weight=None, n_classes=None) -> float:
    """Fraction of correct predictions.

    Args:
        y_true: class indices ``(N,)``.
        y_pred: predicted class indices ``(N,)``.
        mask: boolean ``(N,)`` selecting the rows used.
        sample_weight: non-negative weights ``(N,)``.
        n_classes: number of classes (default: binary if every label is 0 or 1).
    """
    return _label_public("accuracy", y_true, y_pred, mask, sample_weight, n_classes)


@METRICS.register("balanced_accuracy", higher_is_better=True, needs="label", tasks=_LABEL_TASKS)
@_with_batched(_label_metric("balanced_accuracy"))
def balanced_accuracy(y_true, y_pred, *, mask=None, sample_weight=None, n_classes=None) -> float:
    """Mean recall over the classes present in ``y_true``. Arguments as :func:`accuracy`."""
    return _label_public("balanced_accuracy", y_true, y_pred, mask, sample_weight, n_classes)


@METRICS.register("sensitivity", higher_is_better=True, needs="label", tasks=_LABEL_TASKS)
@_with_batched(_label_metric("sensitivity"))
def sensitivity(y_true, y_pred, *, mask=None, sample_weight=None, n_classes=None) -> float:
    """Recall of the positive class (binary; NaN without positives) or macro recall.

    Arguments as :func:`accuracy`.
    """
    return _label_public("sensitivity", y_true, y_pred, mask, sample_weight, n_classes)


@METRICS.register("specificity", higher_is_better=True, needs="label", tasks=_LABEL_TASKS)
@_with_batched(_label_metric("specificity"))
def specificity(y_true, y_pred, *, mask=None, sample_weight=None, n_classes=None) -> float:
    """``TN / (TN + FP)`` (binary; NaN without negatives) or macro one-vs-rest specificity.

    Arguments as :func:`accuracy`.
    """
    return _label_public("specificity", y_true, y_pred, mask, sample_weight, n_classes)


@METRICS.register("f1", higher_is_better=True, needs="label", tasks=_LABEL_TASKS)
@_with_batched(_label_metric("f1"))
def f1(y_true, y_pred, *, mask=None, sample_weight=None, n_classes=None) -> float:
    """F1 of the positive class (binary; NaN if no positives are true or predicted) or macro F1.

    Arguments as :func:`accuracy`.
    """
    return _label_public("f1", y_true, y_pred, mask, sample_weight, n_classes)


def _min_se_ppv_b(
    y: np.ndarray, p: np.ndarray, W: np.ndarray, n_classes: int | None = None
) -> np.ndarray:
    cm = _confusion_b(y, p, W, 2)
    tp = cm[:, 1, 1]
    recall = _safe_div(tp, cm[:, 1, :].sum(axis=1))
    precision = _safe_div(tp, cm[:, :, 1].sum(axis=1))
    return np.minimum(recall, precision)


@METRICS.register("min_se_ppv", higher_is_better=True, needs="label", tasks=("binary",))
@_with_batched(_min_se_ppv_b)
def min_se_ppv(y_true, y_pred, *, mask=None, sample_weight=None, n_classes=None) -> float:
    """PhysioNet/CinC 2012 challenge score: ``min(sensitivity, positive predictive value)``.

    Binary only; NaN without true or predicted positives. Arguments as :func:`accuracy`.
    """
    y, p, w = prepare_inputs(
        y_true, y_pred, kind="label", mask=mask, sample_weight=sample_weight, n_classes=2
    )
    return _scalar(_min_se_ppv_b(y, p, w[None, :], 2))


def _regression_public(core: Batched, y_true, y_pred, mask, sample_weight) -> float:
    y, s, w = prepare_inputs(
        y_true, y_pred, kind="regression", mask=mask, sample_weight=sample_weight
    )
    return _scalar(core(y, s, w[None, :]))


@METRICS.register("rmse", higher_is_better=False, needs="score", tasks=("regression",))
@_with_batched(_rmse_b)
def rmse(y_true, y_pred, *, mask=None, sample_weight=None) -> float:
    """Root mean squared error of real-valued predictions ``(N,)``."""
    return _regression_public(_rmse_b, y_true, y_pred, mask, sample_weight)


@METRICS.register("mae", higher_is_better=False, needs="score", tasks=("regression",))
@_with_batched(_mae_b)
def mae(y_true, y_pred, *, mask=None, sample_weight=None) -> float:
    """Mean absolute error of real-valued predictions ``(N,)``."""
    return _regression_public(_mae_b, y_true, y_pred, mask, sample_weight)


@METRICS.register("r2", higher_is_better=True, needs="score", tasks=("regression",))
@_with_batched(_r2_b)
def r2(y_true, y_pred, *, mask=None, sample_weight=None) -> float:
    """Coefficient of determination; NaN when ``y_true`` is constant."""
    return _regression_public(_r2_b, y_true, y_pred, mask, sample_weight)

"""Point estimates with bootstrap 95% confidence intervals.

A bootstrap resample is represented by its row counts (how often each row was drawn), so every
metric is evaluated on all resamples at once with the vectorised cores of
:mod:`medlearn.evaluation.metrics` (``W @ ...`` over a ``(B, N)`` count matrix). A cluster
bootstrap (``groups``, e.g. patient ids) draws whole groups with replacement and gives each row
its group's count. All metrics share the same resamples; a resample on which a metric is
undefined (e.g. no positive row for AUROC) is dropped for that metric only. The interval is the
percentile interval (2.5th and 97.5th percentiles). If fewer than half of the resamples give a
defined value, the interval is reported as ``None`` rather than resting on a biased subset.

ECE is biased upwards by resampling (duplicated rows make every bin look more miscalibrated),
so its percentile interval can lie entirely above the point estimate. For ECE the interval is
*median-bias-corrected*: the percentile interval shifted by ``median(ECE*) - ECE``, the
bootstrap estimate of the bias, and clipped at 0. It always contains the point estimate.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medlearn.errors import ConfigError, DataValidationError
from medlearn.evaluation.metrics import _check_labels, _check_probabilities
from medlearn.registry import METRICS

__all__ = ["evaluate_predictions", "paired_bootstrap_diff", "subgroup_metrics"]

Task = Literal["binary", "multiclass", "regression"]

#: Largest number of cells (resamples x rows) of one count matrix; bounds memory (~16 MB).
_MAX_CELLS = 2_000_000
#: A CI needs at least this fraction of resamples on which the metric is defined.
_MIN_VALID_FRACTION = 0.5
#: Metrics whose bootstrap interval is median-bias-corrected (see the module docstring).
BIAS_CORRECTED = frozenset({"ece"})


@dataclass
class _Prepared:
    """Validated inputs of one evaluation: targets, probabilities and hard labels."""

    task: Task
    y: np.ndarray
    proba: np.ndarray
    labels: np.ndarray | None
    n_classes: int | None

    def input_for(self, needs: str) -> np.ndarray:
        if self.task == "regression":
            return self.proba
        if needs == "label":
            assert self.labels is not None
            return self.labels
        return self.proba[:, 1] if self.task == "binary" else self.proba


def _prepare(y_true: Any, proba: Any, task: str, threshold: float, name: str) -> _Prepared:
    if task not in ("binary", "multiclass", "regression"):
        raise ConfigError(
            f"The 'task' parameter of {name} must be 'binary', 'multiclass' or 'regression'. "
            f"Got {task!r} instead."
        )
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataValidationError(f"y_true must be a 1-D array (N,). Got shape {y.shape}.")
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 0 or p.shape[0] != y.shape[0]:
        got = "a scalar" if p.ndim == 0 else f"{p.shape[0]} rows"
        raise DataValidationError(f"y_true has {y.shape[0]} rows but proba has {got}.")

    if task == "regression":
        if p.ndim == 2 and p.shape[1] == 1:
            p = p[:, 0]
        if p.ndim != 1:
            raise DataValidationError(
                f"For a regression task, proba holds predictions (N,). Got shape {p.shape}."
            )
        y = y.astype(np.float64)
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(p))):
            raise DataValidationError("y_true and predictions must be finite for regression.")
        return _Prepared(task, y, p, None, None)  # type: ignore[arg-type]

    if task == "binary" and p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2:
        raise DataValidationError(f"proba must be (N, C) class probabilities. Got {p.shape}.")
    n_classes = p.shape[1]
    if task == "binary" and n_classes != 2:
        raise DataValidationError(
            f"For a binary task, proba must be (N, 2). Got {n_classes} columns.",
            hint="Use task='multiclass' for more than two classes.",
        )
    if task == "multiclass" and n_classes < 2:
        raise DataValidationError(f"proba must have at least 2 columns. Got {n_classes}.")
    if not np.all(np.isfinite(p)):
        raise DataValidationError(
            f"proba has {int(np.sum(~np.isfinite(p).all(axis=1)))} rows with NaN or infinite "
            "values."
        )
    _check_probabilities(p, name)
    y = _check_labels(y, "y_true", n_classes)
    if task == "binary":
        if not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError(
                f"The 'threshold' parameter of {name} must be in [0, 1]. Got {threshold}."
            )
        labels = (p[:, 1] >= threshold).astype(np.int64)
    else:
        labels = p.argmax(axis=1).astype(np.int64)
    return _Prepared(task, y, p, labels, n_classes)  # type: ignore[arg-type]


@dataclass
class _Metric:
    name: str
    fn: Callable[..., float]
    needs: str
    core: Callable[..., np.ndarray] | None
    takes_n_classes: bool


def _resolve_metrics(metrics: Sequence[str] | str, task: str) -> list[_Metric]:
    if isinstance(metrics, str):
        metrics = [metrics]
    resolved = []
    for name in metrics:
        entry = METRICS.entry(name)
        tasks = entry.meta.get("tasks")
        if tasks is not None and task not in tasks:
            allowed = METRICS.list()
            allowed = [m for m in allowed if task in (METRICS.meta(m).get("tasks") or (task,))]
            raise ConfigError(
                f"The metric {name!r} does not apply to a {task} task.",
                hint=f"Metrics for {task} tasks: {', '.join(allowed)}.",
            )
        fn = entry.obj
        try:
            takes = "n_classes" in inspect.signature(fn).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins
            takes = False
        resolved.append(
            _Metric(
                name, fn, entry.meta.get("needs", "score"), getattr(fn, "_batched", None), takes
            )
        )
    return resolved


def _count_chunks(n: int, bootstrap: int, seed: int, groups: Any | None) -> Iterator[np.ndarray]:
    """Yield ``(b, N)`` float count matrices, ``bootstrap`` rows in all, deterministic in seed."""
    rng = np.random.default_rng(seed)
    if groups is None:
        inverse, n_units = None, n
    else:
        import pandas as pd

        g = np.asarray(groups, dtype=object)
        if g.ndim != 1 or g.shape[0] != n:
            raise DataValidationError(
                f"y_true has {n} rows but groups has {g.shape[0] if g.ndim else 0}."
            )
        inverse, uniques = pd.factorize(g, use_na_sentinel=False)
        n_units = len(uniques)
    chunk = max(1, _MAX_CELLS // max(n, n_units, 1))
    done = 0
    while done < bootstrap:
        b = min(chunk, bootstrap - done)
        draws = rng.integers(0, n_units, size=(b, n_units))
        offsets = (np.arange(b) * n_units)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=b * n_units)
        counts = counts.reshape(b, n_units).astype(np.float64)
        yield counts if inverse is None else counts[:, inverse]
        done += b


def _evaluate_on(metric: _Metric, prep: _Prepared, W: np.ndarray | None) -> np.ndarray:
    """Metric values for each row of weights ``W`` (``None``: the plain point estimate)."""
    s = prep.input_for(metric.needs)
    y = prep.y
    n = y.shape[0]
    if metric.core is not None:
        weights = np.ones((1, n)) if W is None else W
        return np.asarray(metric.core(y, s, weights, n_classes=prep.n_classes), dtype=np.float64)
    kwargs = {"n_classes": prep.n_classes} if metric.takes_n_classes else {}
    if W is None:
        return np.array([metric.fn(y, s, **kwargs)], dtype=np.float64)
    out = np.empty(W.shape[0])
    rows = np.arange(n)
    for b in range(W.shape[0]):
        idx = np.repeat(rows, W[b].astype(np.int64))
        out[b] = metric.fn(y[idx], s[idx], **kwargs)
    return out


def _jsonable(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def _interval(
    values: np.ndarray, point: float | None = None, *, bias_corrected: bool = False
) -> list[float] | None:
    """Percentile 95% interval of bootstrap ``values``; shifted by the median bias on request."""
    valid = values[np.isfinite(values)]
    if values.size == 0 or valid.size < _MIN_VALID_FRACTION * values.size:
        return None
    lo, hi = np.percentile(valid, [2.5, 97.5])
    if bias_corrected and point is not None and np.isfinite(point):
        shift = float(np.median(valid)) - float(point)
        lo, hi = max(0.0, lo - shift), max(0.0, hi - shift)
    return [round(float(lo), 6), round(float(hi), 6)]


def _check_bootstrap(bootstrap: int, name: str) -> int:
    if isinstance(bootstrap, bool) or int(bootstrap) != bootstrap or bootstrap < 0:
        raise ConfigError(
            f"The 'bootstrap' parameter of {name} must be a non-negative integer. "
            f"Got {bootstrap!r} instead.",
            hint="Use 0 to disable confidence intervals.",
        )
    return int(bootstrap)


def evaluate_predictions(
    y_true: Any,
    proba: Any,
    *,
    task: Task,
    metrics: Sequence[str],
    threshold: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
    groups: Any | None = None,
) -> dict[str, dict[str, Any]]:
    """Compute metrics with bootstrap 95% confidence intervals.

    Args:
        y_true: class indices ``(N,)`` (real values for ``task="regression"``).
        proba: class probabilities ``(N, C)``; ``C = 2`` for a binary task (a ``(N,)``
            positive-class probability is also accepted). For ``task="regression"``, the
            predictions ``(N,)``.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``.
        metrics: registry names (``medlearn metrics list``).
        threshold: binary decision threshold; labels are ``proba[:, 1] >= threshold``.
            Multiclass labels are the argmax.
        bootstrap: number of resamples; 0 disables confidence intervals.
        seed: seed of the resampling.
        groups: optional ``(N,)`` cluster ids (e.g. patient ids); whole clusters are resampled.

    Returns:
        ``{name: {"value": float | None, "ci95": [lo, hi] | None}}`` in the order of
        ``metrics``; floats are rounded to 6 decimals and undefined values are ``None``, so the
        result is JSON-ready.

    Raises:
        DataValidationError: for mismatched shapes, out-of-range labels or probabilities.
        ConfigError: for a metric that does not apply to ``task`` or a bad parameter.
        UnknownComponentError: for an unknown metric name.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, 200)
        >>> p1 = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
        >>> out = evaluate_predictions(
        ...     y, np.stack([1 - p1, p1], 1), task="binary", metrics=["auroc"], bootstrap=200
        ... )
        >>> sorted(out["auroc"])
        ['ci95', 'value']
    """
    name = "evaluate_predictions"
    bootstrap = _check_bootstrap(bootstrap, name)
    prep = _prepare(y_true, proba, task, threshold, name)
    resolved = _resolve_metrics(metrics, task)
    points = {m.name: float(_evaluate_on(m, prep, None)[0]) for m in resolved}
    boots: dict[str, list[np.ndarray]] = {m.name: [] for m in resolved}
    if bootstrap > 0 and prep.y.shape[0] > 0:
        for W in _count_chunks(prep.y.shape[0], bootstrap, seed, groups):
            for m in resolved:
                boots[m.name].append(_evaluate_on(m, prep, W))
    result: dict[str, dict[str, Any]] = {}
    for m in resolved:
        ci = (
            _interval(
                np.concatenate(boots[m.name]),
                points[m.name],
                bias_corrected=m.name in BIAS_CORRECTED,
            )
            if boots[m.name]
            else None
        )
        value = _jsonable(points[m.name])
        result[m.name] = {"value": value, "ci95": ci if value is not None else None}
    return result


def paired_bootstrap_diff(
    y_true: Any,
    proba_a: Any,
    proba_b: Any,
    metric: str,
    *,
    task: Task,
    threshold: float = 0.5,
    threshold_b: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    groups: Any | None = None,
) -> dict[str, Any]:
    """Difference ``metric(a) - metric(b)`` of two models on the same rows, with a paired CI.

    Both models are evaluated on the same resamples, so the interval accounts for the
    correlation between them.

    Args:
        y_true: targets ``(N,)``.
        proba_a: model A's probabilities ``(N, C)`` (predictions for regression).
        proba_b: model B's, same shape.
        metric: one registry name.
        task: as :func:`evaluate_predictions`.
        threshold: model A's binary threshold (and model B's unless ``threshold_b`` is set).
        threshold_b: model B's binary threshold.
        bootstrap: number of resamples (0: no interval).
        seed: seed of the resampling.
        groups: optional cluster ids ``(N,)``.

    Returns:
        ``{"value": a - b, "ci95": [lo, hi] | None, "a": a, "b": b, "p_value": p | None}`` where
        ``p_value`` is the two-sided bootstrap p-value of "no difference" (twice the smaller
        fraction of resampled differences on either side of 0).
    """
    name = "paired_bootstrap_diff"
    bootstrap = _check_bootstrap(bootstrap, name)
    prep_a = _prepare(y_true, proba_a, task, threshold, name)
    prep_b = _prepare(
        y_true, proba_b, task, threshold if threshold_b is None else threshold_b, name
    )
    if prep_a.proba.shape != prep_b.proba.shape:
        raise DataValidationError(
            f"proba_a has shape {prep_a.proba.shape} but proba_b has {prep_b.proba.shape}."
        )
    (m,) = _resolve_metrics([metric], task)
    a = float(_evaluate_on(m, prep_a, None)[0])
    b = float(_evaluate_on(m, prep_b, None)[0])
    diffs = []
    if bootstrap > 0 and prep_a.y.shape[0] > 0:
        for W in _count_chunks(prep_a.y.shape[0], bootstrap, seed, groups):
            diffs.append(_evaluate_on(m, prep_a, W) - _evaluate_on(m, prep_b, W))
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    value = _jsonable(a - b)
    ci = _interval(d) if value is not None else None
    p_value = None
    valid = d[np.isfinite(d)]
    if ci is not None and valid.size:
        p = 2.0 * min(np.mean(valid <= 0), np.mean(valid >= 0))
        p_value = round(float(min(1.0, p)), 6)
    return {"value": value, "ci95": ci, "a": _jsonable(a), "b": _jsonable(b), "p_value": p_value}


def _subgroup_key(value: Any) -> str:
    if value is None:
        return "missing"
    try:
        if np.isnan(value):
            return "missing"
    except (TypeError, ValueError):
        pass
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def subgroup_metrics(
    y_true: Any,
    proba: Any,
    subgroup_values: Any,
    *,
    task: Task,
    metrics: Sequence[str],
    threshold: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
    groups: Any | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics with CIs within each subgroup (e.g. sex, site, age band).

    Args:
        y_true, proba, task, metrics, threshold, bootstrap, seed, groups: as
            :func:`evaluate_predictions`.
        subgroup_values: ``(N,)`` subgroup of each row; missing values (None / NaN) form the
            subgroup ``"missing"``.

    Returns:
        ``{subgroup: {"n": rows, "metrics": {name: {"value", "ci95"}}}}``, subgroups sorted by
        name. Each subgroup uses the same ``seed``.
    """
    values = np.asarray(subgroup_values, dtype=object)
    y = np.asarray(y_true)
    if values.ndim != 1 or values.shape[0] != y.shape[0]:
        raise DataValidationError(
            f"y_true has {y.shape[0]} rows but subgroup_values has "
            f"{values.shape[0] if values.ndim else 0}."
        )
    keys = np.array([_subgroup_key(v) for v in values], dtype=object)
    p = np.asarray(proba)
    g = None if groups is None else np.asarray(groups, dtype=object)
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(keys.tolist())):
        sel = keys == key
        out[key] = {
            "n": int(sel.sum()),
            "metrics": evaluate_predictions(
                y[sel],
                p[sel],
                task=task,
                metrics=metrics,
                threshold=threshold,
                bootstrap=bootstrap,
                seed=seed,
                groups=None if g is None else g[sel],
            ),
        }
    return out

"""Subgroup metrics and the largest gap between subgroups, with bootstrap CIs.

For a grouping column (e.g. ``sex``, ``site``, an acquisition proxy), each subgroup with at
least ``min_n`` rows gets its metrics with 95% CIs (bootstrap *within* the subgroup, as
:func:`medlearn.evaluation.subgroup_metrics`); smaller subgroups are listed as "too few".

The largest gap of a metric is ``max - min`` over the eligible subgroups where it is defined,
between the two subgroups named ``high`` and ``low``. Its CI comes from a *paired* bootstrap
of the whole evaluation set (clustered by patient when ``groups`` is given): each resample
redraws rows from every subgroup at once, the metric is recomputed for the same two
subgroups, and the 2.5th/97.5th percentiles of their difference form the interval. Keeping
the pair fixed avoids the upward bias of re-picking the extremes on every resample; an
interval that includes 0 means the gap is compatible with chance.

Example:
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> p = np.clip(0.4 * y + 0.6 * rng.random(400), 0, 1)
    >>> out = subgroup_analysis(y, p, rng.choice(["a", "b"], 400), task="binary",
    ...                         metrics=["auroc"], bootstrap=100)
    >>> sorted(out)
    ['gaps', 'groups', 'min_n']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlearn.errors import ConfigError, DataValidationError
from medlearn.evaluation._bootstrap import (
    Task,
    _check_bootstrap,
    _count_chunks,
    _evaluate_on,
    _interval,
    _jsonable,
    _prepare,
    _resolve_metrics,
    _subgroup_key,
    subgroup_metrics,
)

__all__ = ["subgroup_analysis", "subgroup_labels"]


def subgroup_labels(values: Sequence[Any]) -> list[str]:
    """String labels of subgroup values: ``None``/NaN become ``"missing"``, ``2.0`` → ``"2"``."""
    return [_subgroup_key(v) for v in values]


def subgroup_analysis(
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
    min_n: int = 30,
) -> dict[str, Any]:
    """Metrics per subgroup and the largest gap between subgroups per metric.

    Args:
        y_true, proba, task, metrics, threshold, bootstrap, seed, groups: as
            :func:`medlearn.evaluation.evaluate_predictions`.
        subgroup_values: ``(N,)`` subgroup of each row (missing values form ``"missing"``).
        min_n: subgroups with fewer rows get no metrics (``"status": "too few"``).

    Returns:
        ``{"min_n": int, "groups": {name: {"n", "status": "ok" | "too few", "metrics":
        {metric: {"value", "ci95"}} | None}}, "gaps": {metric: {"value", "ci95", "high",
        "low"} | None}}``; a gap is ``None`` when fewer than two subgroups have a value.

    Raises:
        DataValidationError: for mismatched lengths (and as ``evaluate_predictions``).
        ConfigError: for a bad ``min_n`` or ``bootstrap``.
    """
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1:
        raise ConfigError(
            f"The 'min_n' parameter of subgroup_analysis must be a positive integer. "
            f"Got {min_n!r} instead."
        )
    bootstrap = _check_bootstrap(bootstrap, "subgroup_analysis")
    prep = _prepare(y_true, proba, task, threshold, "subgroup_analysis")
    values = np.asarray(subgroup_values, dtype=object)
    n = prep.y.shape[0]
    if values.ndim != 1 or values.shape[0] != n:
        raise DataValidationError(
            f"y_true has {n} rows but subgroup_values has {values.shape[0] if values.ndim else 0}."
        )
    keys = np.array(subgroup_labels(values.tolist()), dtype=object)
    names = sorted(set(keys.tolist()))
    eligible = [k for k in names if int(np.sum(keys == k)) >= min_n]
    per_group = (
        subgroup_metrics(
            prep.y[np.isin(keys, eligible)],
            np.asarray(proba)[np.isin(keys, eligible)],
            keys[np.isin(keys, eligible)],
            task=task,
            metrics=metrics,
            threshold=threshold,
            bootstrap=bootstrap,
            seed=seed,
            groups=None
            if groups is None
            else np.asarray(groups, dtype=object)[np.isin(keys, eligible)],
        )
        if eligible
        else {}
    )
    out_groups: dict[str, Any] = {}
    for k in names:
        size = int(np.sum(keys == k))
        if k in per_group:
            out_groups[k] = {"n": size, "status": "ok", "metrics": per_group[k]["metrics"]}
        else:
            out_groups[k] = {"n": size, "status": "too few", "metrics": None}

    resolved = _resolve_metrics(metrics, task)
    masks = {k: (keys == k).astype(np.float64) for k in eligible}
    pairs: dict[str, tuple[str, str, float] | None] = {}
    for m in resolved:
        vals = {k: float(_evaluate_on(m, prep, masks[k][None, :])[0]) for k in eligible}
        vals = {k: v for k, v in vals.items() if np.isfinite(v)}
        if len(vals) < 2:
            pairs[m.name] = None
            continue
        high = max(vals, key=lambda k: (vals[k], k))
        low = min(vals, key=lambda k: (vals[k], k))
        pairs[m.name] = (high, low, vals[high] - vals[low])
    diffs: dict[str, list[np.ndarray]] = {name: [] for name in pairs}
    if bootstrap > 0 and n > 0 and any(pairs.values()):
        for W in _count_chunks(n, bootstrap, seed, groups):
            for m in resolved:
                pair = pairs[m.name]
                if pair is None:
                    continue
                hi = _evaluate_on(m, prep, W * masks[pair[0]][None, :])
                lo = _evaluate_on(m, prep, W * masks[pair[1]][None, :])
                diffs[m.name].append(hi - lo)
    gaps: dict[str, Any] = {}
    for m in resolved:
        pair = pairs[m.name]
        if pair is None:
            gaps[m.name] = None
            continue
        d = np.concatenate(diffs[m.name]) if diffs[m.name] else np.zeros(0)
        gaps[m.name] = {
            "value": _jsonable(pair[2]),
            "ci95": _interval(d) if d.size else None,
            "high": pair[0],
            "low": pair[1],
        }
    return {"min_n": min_n, "groups": out_groups, "gaps": gaps}

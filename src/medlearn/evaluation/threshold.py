"""Choosing a binary decision threshold on validation data.

A case is called positive when its score is ``>= threshold``. The candidate thresholds lie
halfway between adjacent distinct validation scores, so the chosen cut point does not sit on a
validation case and transfers to new data; the two extremes are "every case positive" (the
lowest score) and "no case positive" (just above the highest score).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from medlearn.errors import ConfigError, DataValidationError

__all__ = ["choose_threshold"]


def _check_rate(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not 0.0 < float(value) <= 1.0:
        raise ConfigError(
            f"The '{name}' parameter of choose_threshold must be in (0, 1]. Got {value!r}."
        )
    return float(value)


def _operating_points(y: np.ndarray, s: np.ndarray):
    """Candidate thresholds (descending) with sensitivity, specificity and F1 at each."""
    distinct = np.unique(s)[::-1]  # descending
    # Positives at candidate i are the cases with score >= distinct[i].
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    pos_sorted = y[order] == 1
    tp_cum = np.cumsum(pos_sorted)
    fp_cum = np.cumsum(~pos_sorted)
    # Last index of each distinct value in the descending order.
    ends = np.searchsorted(-s_sorted, -distinct, side="right") - 1
    tp = np.concatenate(([0], tp_cum[ends]))
    fp = np.concatenate(([0], fp_cum[ends]))
    upper = np.nextafter(distinct[0], np.inf)
    mids = (distinct[:-1] + distinct[1:]) / 2.0
    thresholds = np.concatenate(([upper], mids, [distinct[-1]]))
    n_pos = int(pos_sorted.sum())
    n_neg = len(y) - n_pos
    sens = tp / n_pos
    spec = 1.0 - fp / n_neg
    fn = n_pos - tp
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return thresholds, sens, spec, f1


def choose_threshold(
    y_true: Any,
    score: Any,
    *,
    method: Literal["youden", "f1", "fixed"] = "youden",
    fixed: float = 0.5,
    target_sensitivity: float | None = None,
    target_specificity: float | None = None,
) -> float:
    """Choose the decision threshold of a binary classifier on validation data.

    Args:
        y_true: labels ``(N,)`` in {0, 1}.
        score: positive-class probabilities (or any scores) ``(N,)``.
        method: ``"youden"`` maximises ``sensitivity + specificity - 1``; ``"f1"`` maximises
            F1 of the positive class; ``"fixed"`` returns ``fixed``. Ties go to the higher
            threshold.
        fixed: the threshold for ``method="fixed"``.
        target_sensitivity: if set, the threshold with the best specificity among those whose
            sensitivity is at least this (overrides ``method``).
        target_specificity: if set, the threshold with the best sensitivity among those whose
            specificity is at least this (overrides ``method``).

    Returns:
        The threshold, a plain float; cases with ``score >= threshold`` are positive.

    Raises:
        ConfigError: for an unknown method, both targets set, or a target outside (0, 1].
        DataValidationError: for mismatched shapes, labels other than 0/1, NaN scores, or
            validation data lacking positives or negatives (no threshold can be chosen; use
            ``method="fixed"``).

    Example:
        >>> choose_threshold([0, 0, 1, 1], [0.2, 0.4, 0.6, 0.8])
        0.5
    """
    if method not in ("youden", "f1", "fixed"):
        raise ConfigError(
            "The 'method' parameter of choose_threshold must be 'youden', 'f1' or 'fixed'. "
            f"Got {method!r} instead."
        )
    t_sens = _check_rate(target_sensitivity, "target_sensitivity")
    t_spec = _check_rate(target_specificity, "target_specificity")
    if t_sens is not None and t_spec is not None:
        raise ConfigError(
            "choose_threshold takes target_sensitivity or target_specificity, not both."
        )
    if method == "fixed" and t_sens is None and t_spec is None:
        if not np.isfinite(fixed):
            raise ConfigError(f"The 'fixed' threshold must be a finite number. Got {fixed!r}.")
        return float(fixed)

    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise DataValidationError(
            f"y_true and score must be 1-D (N,). Got shapes {y.shape} and {s.shape}."
        )
    if y.shape[0] != s.shape[0]:
        raise DataValidationError(f"y_true has {y.shape[0]} rows but score has {s.shape[0]}.")
    if not np.all(np.isfinite(s)):
        raise DataValidationError(f"score has {int(np.sum(~np.isfinite(s)))} NaN values.")
    if not np.all(np.isin(y, (0, 1))):
        raise DataValidationError("y_true must hold binary labels 0 and 1.")
    y = y.astype(np.int64)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise DataValidationError(
            f"Cannot choose a threshold: the validation labels have {n_pos} positive and "
            f"{len(y) - n_pos} negative rows; both classes are needed.",
            hint="Use method='fixed' or a validation split with both classes.",
        )

    thresholds, sens, spec, f1 = _operating_points(y, s)
    if t_sens is not None:
        ok = sens >= t_sens - 1e-12
        objective = np.where(ok, spec, -np.inf)
    elif t_spec is not None:
        ok = spec >= t_spec - 1e-12
        objective = np.where(ok, sens, -np.inf)
    elif method == "youden":
        objective = sens + spec - 1.0
    else:
        objective = f1
    best = int(np.argmax(objective))  # first maximum = highest threshold
    return float(thresholds[best])

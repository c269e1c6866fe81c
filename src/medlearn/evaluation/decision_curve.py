"""Decision-curve analysis: net benefit of a binary risk model (Vickers & Elkin, 2006).

At a threshold probability ``pt`` a clinician treats a patient when the predicted risk is at
least ``pt``; ``pt`` expresses how many false positives one true positive is worth
(``pt / (1 - pt)``). The net benefit of treating by the model is

    NB(pt) = TP / N - FP / N * pt / (1 - pt),

compared with *treat all* (``prevalence - (1 - prevalence) * pt / (1 - pt)``) and *treat none*
(0). The model is useful at ``pt`` when its net benefit beats both.

Example:
    >>> out = decision_curve([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], thresholds=[0.5])
    >>> out["model"]  # TP = 1, FP = 1: 1/4 - 1/4 * 1
    [0.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlearn.errors import ConfigError, DataValidationError

__all__ = ["decision_curve", "net_benefit", "useful_ranges"]

#: The default grid of threshold probabilities: 0.01, 0.02, ..., 0.99.
DEFAULT_THRESHOLDS = np.round(np.arange(1, 100) / 100.0, 2)


def _inputs(y_true: Any, score: Any, thresholds: Any) -> tuple[np.ndarray, ...]:
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape[0] != s.shape[0]:
        raise DataValidationError(
            f"y_true and score must be 1-D with the same length. Got shapes {y.shape} and "
            f"{s.shape}."
        )
    if y.size == 0:
        raise DataValidationError("Decision-curve analysis needs at least one labelled row.")
    if not np.all(np.isin(y, (0, 1))):
        raise DataValidationError("y_true must hold binary labels 0 and 1.")
    if not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 1:
        raise DataValidationError("score must hold probabilities in [0, 1].")
    t = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or np.any(t <= 0) or np.any(t >= 1):
        raise ConfigError(
            "Decision-curve thresholds must be a non-empty 1-D list of probabilities in (0, 1)."
        )
    return y.astype(np.int64), s, t


def net_benefit(y_true: Any, score: Any, thresholds: Any = None) -> np.ndarray:
    """Net benefit of treating cases with ``score >= pt``, for each threshold ``pt``.

    Args:
        y_true: labels ``(N,)`` in {0, 1}.
        score: predicted risks ``(N,)`` in [0, 1].
        thresholds: threshold probabilities ``(T,)`` in (0, 1); default 0.01..0.99.

    Returns:
        ``(T,)`` net benefits.
    """
    y, s, t = _inputs(y_true, score, thresholds)
    treat = s[None, :] >= t[:, None]
    tp = (treat & (y == 1)[None, :]).sum(axis=1)
    fp = (treat & (y == 0)[None, :]).sum(axis=1)
    n = y.shape[0]
    return tp / n - fp / n * t / (1.0 - t)


def useful_ranges(
    thresholds: Any, model: Any, treat_all: Any, *, tol: float = 1e-9
) -> list[list[float]]:
    """Contiguous runs of thresholds where the model beats treat-all and treat-none.

    Returns:
        ``[[first, last], ...]`` threshold values of each run (inclusive), in order.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    better = np.asarray(model) > np.maximum(np.asarray(treat_all), 0.0) + tol
    runs: list[list[float]] = []
    start = None
    for i, ok in enumerate(better):
        if ok and start is None:
            start = i
        if start is not None and (not ok or i == len(better) - 1):
            end = i if ok else i - 1
            runs.append([round(float(t[start]), 6), round(float(t[end]), 6)])
            start = None
    return runs


def decision_curve(y_true: Any, score: Any, *, thresholds: Any = None) -> dict[str, Any]:
    """Net benefit of the model, treat-all and treat-none over threshold probabilities.

    Args:
        y_true: labels ``(N,)`` in {0, 1}.
        score: predicted risks ``(N,)`` (calibrated probabilities) in [0, 1].
        thresholds: threshold probabilities in (0, 1); default 0.01, 0.02, ..., 0.99.

    Returns:
        JSON-ready ``{"n", "prevalence", "thresholds", "model", "treat_all", "treat_none",
        "useful_ranges", "max_net_benefit_gain"}`` where ``useful_ranges`` lists the
        threshold runs where the model beats both strategies and ``max_net_benefit_gain`` is
        the largest ``NB(model) - max(NB(treat all), 0)`` with its threshold.

    Raises:
        DataValidationError: for bad labels or scores.
        ConfigError: for thresholds outside (0, 1).
    """
    y, s, t = _inputs(y_true, score, thresholds)
    model = net_benefit(y, s, t)
    prevalence = float(y.mean())
    treat_all = prevalence - (1.0 - prevalence) * t / (1.0 - t)
    gain = model - np.maximum(treat_all, 0.0)
    best = int(np.argmax(gain))
    return {
        "n": int(y.shape[0]),
        "prevalence": round(prevalence, 6),
        "thresholds": [round(float(v), 6) for v in t],
        "model": [round(float(v), 6) for v in model],
        "treat_all": [round(float(v), 6) for v in treat_all],
        "treat_none": [0.0] * int(t.size),
        "useful_ranges": useful_ranges(t, model, treat_all),
        "max_net_benefit_gain": {
            "value": round(float(gain[best]), 6),
            "threshold": round(float(t[best]), 6),
        },
    }

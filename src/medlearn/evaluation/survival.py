"""Survival metrics: Harrell's and Uno's C, time-dependent AUC, integrated Brier score,
calibration at horizons, and bootstrap 95% CIs for all of them.

Every pairwise metric is written as a quadratic form ``w' A w / w' B w`` over per-row weights
``w`` (``A``: weighted concordant pairs, ``B``: weighted comparable pairs). The point estimate
uses ``w = 1``; a bootstrap resample uses its row counts (a patient drawn twice counts twice),
so all resamples are evaluated at once with matrix products, like
:mod:`medlearn.evaluation._bootstrap` does for classification metrics. Inverse-probability-of-
censoring weights (Uno's C, time-dependent AUC, Brier) use the Kaplan-Meier estimate of the
censoring distribution fitted on the *training* times, as in scikit-survival.

Argument order follows the survival convention ``(time, event, risk)``: higher ``risk`` means
an earlier expected event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlearn.errors import DataValidationError
from medlearn.evaluation._bootstrap import _count_chunks, _interval, _jsonable

__all__ = [
    "c_index",
    "calibration_at_horizons",
    "censoring_survival",
    "evaluate_survival",
    "integrated_brier",
    "kaplan_meier",
    "td_auc",
    "uno_c",
]

_ROW_CHUNK = 512


# --- inputs and estimators -------------------------------------------------------------------


def _check(time: Any, event: Any, risk: Any | None = None) -> tuple[np.ndarray, ...]:
    t = np.asarray(time, dtype=np.float64).reshape(-1)
    e = np.asarray(event).reshape(-1)
    if t.shape != e.shape:
        raise DataValidationError(f"time has {t.size} rows but event has {e.size}.")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise DataValidationError("time must hold finite, non-negative values.")
    if not np.isin(e, (0, 1)).all():
        raise DataValidationError("event must hold only 0 (censored) and 1 (event).")
    out: tuple[np.ndarray, ...] = (t, e.astype(bool))
    if risk is not None:
        r = np.asarray(risk, dtype=np.float64).reshape(-1)
        if r.shape != t.shape:
            raise DataValidationError(f"time has {t.size} rows but risk has {r.size}.")
        if not np.all(np.isfinite(r)):
            raise DataValidationError("risk holds NaN or infinite values.")
        out = (*out, r)
    return out


def kaplan_meier(time: Any, event: Any) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier survival estimate.

    Args:
        time: ``(N,)`` follow-up times.
        event: ``(N,)`` 1 for an event, 0 for censoring.

    Returns:
        ``(times, survival)``: the distinct times and ``S(t)`` just after each of them.
    """
    t, e = _check(time, event)
    uniq, inv = np.unique(t, return_inverse=True)
    deaths = np.bincount(inv, weights=e.astype(float), minlength=len(uniq))
    counts = np.bincount(inv, minlength=len(uniq)).astype(float)
    at_risk = counts[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - deaths / at_risk, 1.0)
    return uniq, np.cumprod(factor)


def _step(times: np.ndarray, values: np.ndarray, at: np.ndarray, *, left: bool) -> np.ndarray:
    """Evaluate a right-continuous step function at ``at`` (its left limit when ``left``)."""
    idx = np.searchsorted(times, at, side="left" if left else "right") - 1
    out = np.ones(len(at))
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def censoring_survival(train_time: Any, train_event: Any, at: Any) -> np.ndarray:
    """``G(t)``: the Kaplan-Meier probability of being still uncensored at ``at``.

    Fitted on training times with the event indicator reversed (censoring is the "event").
    """
    t, e = _check(train_time, train_event)
    uniq, inv = np.unique(t, return_inverse=True)
    deaths = np.bincount(inv, weights=e.astype(float), minlength=len(uniq))
    counts = np.bincount(inv, minlength=len(uniq)).astype(float)
    censored = counts - deaths
    # Events at a time are taken to precede censorings at that time (as scikit-survival does).
    at_risk = counts[::-1].cumsum()[::-1] - deaths
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(censored > 0, 1.0 - censored / np.where(at_risk > 0, at_risk, 1), 1.0)
    g = np.cumprod(factor)
    return _step(uniq, g, np.asarray(at, dtype=np.float64).reshape(-1), left=False)


def _ipcw(
    train: tuple[Any, Any] | None, t: np.ndarray, e: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """``G`` at ``at`` from the training data (or the test data when ``train`` is None)."""
    train_t, train_e = (t, e.astype(int)) if train is None else train
    return censoring_survival(train_t, train_e, at)


# --- quadratic forms -------------------------------------------------------------------------


def _quad(W: np.ndarray, rows: Any, n: int) -> np.ndarray:
    """``diag(W A W')`` for ``A`` built block by block by ``rows(lo, hi) -> A[lo:hi]``."""
    out = np.zeros(W.shape[0])
    for lo in range(0, n, _ROW_CHUNK):
        hi = min(n, lo + _ROW_CHUNK)
        block = rows(lo, hi)  # (hi-lo, n)
        out += np.einsum("bi,bi->b", W[:, lo:hi], W @ block.T)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _concordance_forms(
    t: np.ndarray, e: np.ndarray, r: np.ndarray, weight: np.ndarray, *, harrell: bool = True
) -> tuple[Any, Any]:
    """Row builders of the concordant-pair (``A``) and comparable-pair (``B``) matrices."""

    def comparable(lo: int, hi: int) -> np.ndarray:
        ti, ei = t[lo:hi, None], e[lo:hi, None]
        comp = ei & (ti < t[None, :])
        if harrell:  # an event and a censoring at the same time: the censored one lived longer
            comp |= ei & (ti == t[None, :]) & ~e[None, :]
        return comp * weight[lo:hi, None]

    def concordant(lo: int, hi: int) -> np.ndarray:
        ri = r[lo:hi, None]
        score = (ri > r[None, :]) + 0.5 * (ri == r[None, :])
        return comparable(lo, hi) * score

    return concordant, comparable


def _c_values(
    t: np.ndarray, e: np.ndarray, r: np.ndarray, weight: np.ndarray, W: np.ndarray, harrell: bool
) -> np.ndarray:
    conc, comp = _concordance_forms(t, e, r, weight, harrell=harrell)
    n = len(t)
    return _ratio(_quad(W, conc, n), _quad(W, comp, n))


def _ones(n: int) -> np.ndarray:
    return np.ones((1, n))


def c_index(time: Any, event: Any, risk: Any) -> float:
    """Harrell's concordance index.

    A pair is comparable when the earlier time is an event (or an event and a censoring
    share a time); it is concordant when the earlier event has the higher risk; risk ties
    count one half. Matches ``lifelines.utils.concordance_index(time, -risk, event)``.

    Args:
        time: ``(N,)`` follow-up times.
        event: ``(N,)`` event indicators (1 event, 0 censored).
        risk: ``(N,)`` predicted risk (higher = earlier event).

    Returns:
        C in [0, 1]; NaN when no pair is comparable.
    """
    t, e, r = _check(time, event, risk)
    return float(_c_values(t, e, r, np.ones(len(t)), _ones(len(t)), True)[0])


def _uno_weights(
    t: np.ndarray, e: np.ndarray, train: tuple[Any, Any] | None, tau: float | None
) -> np.ndarray:
    g = _ipcw(train, t, e, t)
    w = np.zeros(len(t))
    keep = e & (t < (np.inf if tau is None else tau))
    if np.any(g[keep] <= 0):
        raise DataValidationError(
            "The censoring survival is 0 at an event time of the test set (test times lie "
            "beyond the training follow-up).",
            hint="Set tau below the largest training follow-up time.",
        )
    w[keep] = 1.0 / g[keep] ** 2
    return w


def uno_c(
    time: Any,
    event: Any,
    risk: Any,
    *,
    train_time: Any | None = None,
    train_event: Any | None = None,
    tau: float | None = None,
) -> float:
    """Uno's IPCW concordance index (``sksurv.metrics.concordance_index_ipcw``).

    Args:
        time, event, risk: ``(N,)`` test times, event indicators and predicted risks.
        train_time, train_event: times that estimate the censoring distribution (default:
            the test data themselves).
        tau: only pairs whose earlier time is below ``tau`` count (default: all).

    Returns:
        C in [0, 1]; NaN when no pair is comparable.
    """
    t, e, r = _check(time, event, risk)
    train = None if train_time is None else (train_time, train_event)
    w = _uno_weights(t, e, train, tau)
    return float(_c_values(t, e, r, w, _ones(len(t)), True)[0])


def _auc_forms(
    t: np.ndarray, e: np.ndarray, r: np.ndarray, g: np.ndarray, horizon: float
) -> tuple[Any, Any]:
    case_w = np.where(e & (t <= horizon), 1.0 / np.where(g > 0, g, np.inf), 0.0)
    control = t > horizon

    def num(lo: int, hi: int) -> np.ndarray:
        ri = r[lo:hi, None]
        score = (ri > r[None, :]) + 0.5 * (ri == r[None, :])
        return case_w[lo:hi, None] * control[None, :] * score

    def den(lo: int, hi: int) -> np.ndarray:
        return case_w[lo:hi, None] * control[None, :]

    return num, den


def _td_auc_values(
    t: np.ndarray, e: np.ndarray, r: np.ndarray, g: np.ndarray, horizon: float, W: np.ndarray
) -> np.ndarray:
    num, den = _auc_forms(t, e, r, g, horizon)
    n = len(t)
    return _ratio(_quad(W, num, n), _quad(W, den, n))


def td_auc(
    time: Any,
    event: Any,
    risk: Any,
    horizons: Sequence[float],
    *,
    train_time: Any | None = None,
    train_event: Any | None = None,
) -> np.ndarray:
    """Cumulative/dynamic time-dependent AUC at each horizon
    (``sksurv.metrics.cumulative_dynamic_auc``).

    Cases are patients with an event by ``t`` (weighted by ``1 / G(T_i)``), controls those
    still at risk after ``t``.

    Args:
        time, event, risk: ``(N,)`` test data and risks (one risk per patient).
        horizons: ``(T,)`` times.
        train_time, train_event: data that estimate the censoring distribution.

    Returns:
        ``(T,)`` AUC values (NaN where a horizon has no case or no control).
    """
    t, e, r = _check(time, event, risk)
    train = None if train_time is None else (train_time, train_event)
    g = _ipcw(train, t, e, t)
    return np.array(
        [_td_auc_values(t, e, r, g, float(h), _ones(len(t)))[0] for h in horizons], dtype=float
    )


def _brier_terms(
    t: np.ndarray,
    e: np.ndarray,
    surv: np.ndarray,
    horizons: np.ndarray,
    train: tuple[Any, Any] | None,
) -> np.ndarray:
    """Per-patient IPCW Brier contributions ``(N, T)``."""
    g_t = _ipcw(train, t, e, t)
    g_h = _ipcw(train, t, e, horizons)
    died = (t[:, None] <= horizons[None, :]) & e[:, None]
    alive = t[:, None] > horizons[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(died, surv**2 / np.where(g_t > 0, g_t, np.inf)[:, None], 0.0)
        b = np.where(alive, (1 - surv) ** 2 / np.where(g_h > 0, g_h, np.inf)[None, :], 0.0)
    return a + b


def _ibs_weights(horizons: np.ndarray) -> np.ndarray:
    """Trapezoid weights over ``horizons`` divided by their range."""
    if len(horizons) < 2:
        raise DataValidationError("integrated_brier needs at least 2 increasing times.")
    dt = np.diff(horizons)
    w = np.zeros(len(horizons))
    w[:-1] += dt / 2
    w[1:] += dt / 2
    return w / (horizons[-1] - horizons[0])


def integrated_brier(
    time: Any,
    event: Any,
    survival: Any,
    times: Sequence[float],
    *,
    train_time: Any | None = None,
    train_event: Any | None = None,
) -> float:
    """Integrated IPCW Brier score (``sksurv.metrics.integrated_brier_score``); lower is better.

    Args:
        time, event: ``(N,)`` test data.
        survival: ``(N, T)`` predicted survival probabilities at ``times``.
        times: ``(T,)`` increasing times (at least 2) inside the follow-up.
        train_time, train_event: data that estimate the censoring distribution.

    Returns:
        The Brier score integrated over ``times`` and divided by their range.
    """
    t, e = _check(time, event)
    h = np.asarray(times, dtype=np.float64)
    s = np.asarray(survival, dtype=np.float64)
    if s.shape != (len(t), len(h)):
        raise DataValidationError(f"survival must be (N, T) = ({len(t)}, {len(h)}). Got {s.shape}.")
    train = None if train_time is None else (train_time, train_event)
    terms = _brier_terms(t, e, s, h, train)
    return float(terms.mean(axis=0) @ _ibs_weights(h))


def calibration_at_horizons(
    time: Any, event: Any, survival: Any, horizons: Sequence[float], *, bins: int = 10
) -> list[dict[str, Any]]:
    """Predicted vs Kaplan-Meier observed survival per risk group, at each horizon.

    Patients are grouped into ``bins`` quantile groups of predicted survival at the horizon;
    per group the mean prediction is compared with the Kaplan-Meier estimate at the horizon.

    Args:
        time, event: ``(N,)`` test data.
        survival: ``(N, H)`` predicted survival at ``horizons``.
        horizons: ``(H,)`` times.
        bins: number of groups (deciles by default).

    Returns:
        One ``{"horizon", "predicted": [...], "observed": [...], "n": [...]}`` per horizon.
    """
    t, e = _check(time, event)
    s = np.asarray(survival, dtype=np.float64)
    out = []
    for k, h in enumerate(horizons):
        pred = s[:, k]
        groups = np.array_split(np.argsort(pred, kind="stable"), min(bins, len(t)))
        p_list, o_list, n_list = [], [], []
        for idx in groups:
            if len(idx) == 0:
                continue
            km_t, km_s = kaplan_meier(t[idx], e[idx].astype(int))
            p_list.append(round(float(pred[idx].mean()), 6))
            o_list.append(round(float(_step(km_t, km_s, np.array([h]), left=False)[0]), 6))
            n_list.append(len(idx))
        out.append({"horizon": float(h), "predicted": p_list, "observed": o_list, "n": n_list})
    return out


# --- bootstrap -------------------------------------------------------------------------------


def _entry(point: float, values: np.ndarray | None) -> dict[str, Any]:
    return {
        "value": _jsonable(point),
        "ci95": None if values is None else _interval(values),
    }


def evaluate_survival(
    time: Any,
    event: Any,
    risk: Any,
    *,
    survival: Any | None = None,
    horizons: Sequence[float] = (),
    train_time: Any | None = None,
    train_event: Any | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    groups: Any | None = None,
) -> dict[str, Any]:
    """All survival metrics with patient-level bootstrap 95% CIs.

    Args:
        time, event, risk: ``(N,)`` test times, events and risks.
        survival: ``(N, H)`` predicted survival at ``horizons`` (for the Brier score).
        horizons: ``(H,)`` times for ``td_auc`` and ``integrated_brier``.
        train_time, train_event: training data for the censoring distribution.
        bootstrap: resamples (0: no CIs).
        seed: resampling seed.
        groups: ``(N,)`` patient ids; whole patients are resampled.

    Returns:
        ``{"c_index", "uno_c", "integrated_brier", "td_auc"}``; each
        ``{"value", "ci95"}``; ``td_auc`` also holds ``per_horizon``
        (``[{"horizon", "value", "ci95"}]``) and its value is the mean over horizons.
    """
    t, e, r = _check(time, event, risk)
    n = len(t)
    h = np.asarray(list(horizons), dtype=np.float64)
    train = None if train_time is None else (train_time, train_event)
    ones = np.ones(n)
    g_t = _ipcw(train, t, e, t)
    beyond = e & (g_t <= 0)  # events after the training follow-up: Uno's C stops before them
    uno_w = _uno_weights(t, e, train, float(t[beyond].min()) if beyond.any() else None)
    brier_terms = None
    if survival is not None and h.size >= 2:
        brier_terms = _brier_terms(t, e, np.asarray(survival, dtype=float), h, train)
        ibs_w = _ibs_weights(h)

    def compute(W: np.ndarray) -> dict[str, np.ndarray]:
        vals = {
            "c_index": _c_values(t, e, r, ones, W, True),
            "uno_c": _c_values(t, e, r, uno_w, W, True),
        }
        for k, hk in enumerate(h):
            vals[f"auc_{k}"] = _td_auc_values(t, e, r, g_t, float(hk), W)
        if brier_terms is not None:
            vals["integrated_brier"] = _ratio(W @ (brier_terms @ ibs_w), W.sum(axis=1))
        return vals

    point = {k: float(v[0]) for k, v in compute(_ones(n)).items()}
    boot: dict[str, list[np.ndarray]] = {k: [] for k in point}
    if bootstrap > 0:
        for W in _count_chunks(n, bootstrap, seed, groups):
            for k, v in compute(W).items():
                boot[k].append(v)
    samples = {k: (np.concatenate(v) if v else None) for k, v in boot.items()}
    out: dict[str, Any] = {
        "c_index": _entry(point["c_index"], samples["c_index"]),
        "uno_c": _entry(point["uno_c"], samples["uno_c"]),
    }
    if "integrated_brier" in point:
        out["integrated_brier"] = _entry(point["integrated_brier"], samples["integrated_brier"])
    if h.size:
        keys = [f"auc_{k}" for k in range(len(h))]
        mean_point = float(np.nanmean([point[k] for k in keys]))
        mean_samples = None
        if bootstrap > 0:
            stack = np.stack([samples[k] for k in keys])
            with np.errstate(all="ignore"):
                mean_samples = np.nanmean(stack, axis=0)
        entry = _entry(mean_point, mean_samples)
        entry["per_horizon"] = [
            {"horizon": float(hk), **_entry(point[k], samples[k])}
            for hk, k in zip(h, keys, strict=True)
        ]
        out["td_auc"] = entry
    return out

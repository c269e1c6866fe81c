"""Shared arrays, masked multi-target scores with bootstrap CIs, uncertainty statistics and
atom-attribution helpers of the molecule task handlers (:mod:`medlearn.molecules._task`)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn._io import atomic_write_bytes
from medlearn.data import Record
from medlearn.errors import DataValidationError

#: The run-directory file holding the atom attributions drawn in the report.
ATTRIBUTIONS_FILE = "attributions.json"
#: How many test molecules the report explains.
N_ATTRIBUTIONS = 6
#: Multi-label metrics: binary score metrics with a vectorised core.
_MULTILABEL_METRICS = ("auroc", "auprc", "brier", "ece")
#: Smallest variance used in z-scores (a zero ensemble variance would give infinite z).
_MIN_VAR = 1e-12
#: Probability levels of the miscalibration area.
_LEVELS = np.linspace(0.01, 0.99, 99)


# -- arrays from records and frames -------------------------------------------------------------
def _targets_of(learner: Any, manifest: dict[str, Any] | None = None) -> list[str]:
    names = getattr(learner, "targets", None) or (manifest or {}).get("targets") or ["target"]
    return [str(n) for n in names]


def _target_matrix(records: Sequence[Record], n_targets: int) -> np.ndarray:
    """Targets ``(N, T)`` as floats with NaN for missing labels."""
    y = np.full((len(records), n_targets), np.nan)
    for i, rec in enumerate(records):
        value = rec["target"]
        if value is None:
            continue
        row = np.asarray(value, dtype=np.float64).reshape(-1)
        if row.shape[0] != n_targets:
            raise DataValidationError(
                f"Record {rec['id']} has {row.shape[0]} target values but the model predicts "
                f"{n_targets} targets.",
                hint="Evaluate on data with the same target columns as the training data.",
            )
        y[i] = row
    return y


def _predict(
    learner: Any, records: Sequence[Record], tta: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The learner's output and its ensemble variance ``(N, T)`` (``None``: a single model).

    For the validation records of a blend refitted on them (``blend_refit``), the outputs
    from before the refit, so that validation stays held out."""
    held = getattr(learner, "heldout_with_uncertainty", None)
    kept = held(records) if callable(held) else None
    fn = getattr(learner, "predict_with_uncertainty", None)
    if kept is not None:
        pred, var = kept
    elif callable(fn):
        pred, var = fn(records)
    else:
        pred = learner.predict_logits(records, tta=True) if tta else learner.predict_logits(records)
        var = None
    pred = np.asarray(pred, dtype=np.float64).reshape(len(records), -1)
    if var is not None:
        var = np.asarray(var, dtype=np.float64).reshape(len(records), -1)
        if not np.all(np.isfinite(var)):
            var = None
    return pred, var


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _col(prefix: str, name: str, n_targets: int) -> str:
    return prefix if n_targets == 1 else f"{prefix}_{name}"


def _base_frame(records: Sequence[Record], split: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [r["id"] for r in records],
            "patient_id": [r["patient_id"] for r in records],
            "split": split,
            "smiles": [str(r["input"]) for r in records],
        }
    )


def _task_frame(
    records: Sequence[Record],
    split: str,
    names: list[str],
    y: np.ndarray,
    pred: np.ndarray,
    var: np.ndarray | None,
) -> pd.DataFrame:
    """Predictions table: ``target[_<t>]``, ``prediction[_<t>]``, ``variance[_<t>]``."""
    t = len(names)
    columns: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):  # built at once: hundreds of targets stay fast
        columns[_col("target", name, t)] = y[:, k]
        columns[_col("prediction", name, t)] = pred[:, k]
        if var is not None:
            columns[_col("variance", name, t)] = var[:, k]
    return pd.concat([_base_frame(records, split), pd.DataFrame(columns)], axis=1)


def _frame_names(frame: pd.DataFrame) -> list[str]:
    if "prediction" in frame.columns:
        return ["target"]
    return [c[len("prediction_") :] for c in frame.columns if c.startswith("prediction_")]


def _frame_arrays(
    frame: pd.DataFrame, names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(y, prediction, variance | None)`` ``(N, T)`` from a predictions table."""
    t = len(names)
    y_cols = [_col("target", n, t) for n in names]
    p_cols = [_col("prediction", n, t) for n in names]
    v_cols = [_col("variance", n, t) for n in names]
    y = frame[y_cols].to_numpy(dtype=np.float64)
    p = frame[p_cols].to_numpy(dtype=np.float64)
    v = frame[v_cols].to_numpy(dtype=np.float64) if all(c in frame for c in v_cols) else None
    return y, p, v


def _split_doc(cfg: Any) -> dict[str, Any] | None:
    """``metrics.json["split"]``: the splitter, its seed and fractions."""
    if cfg is None:
        return None
    s = cfg.data.split
    return {"method": s.method, "seed": s.seed, "fractions": [float(f) for f in s.fractions]}


def _r6(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return round(v, 6) if math.isfinite(v) else None


# -- masked multi-target scoring with one shared bootstrap ----------------------------------------
@dataclass
class _Column:
    """One target's labelled molecules: row indices into the split, labels, outputs."""

    name: str
    rows: np.ndarray
    y: np.ndarray
    score: np.ndarray
    var: np.ndarray | None = None
    classification: bool = False


Stat = Callable[[_Column, np.ndarray], np.ndarray]  # (column, W (B, n_t)) -> (B,)


def _columns(
    names: list[str],
    y: np.ndarray,
    score: np.ndarray,
    var: np.ndarray | None = None,
    *,
    classification: bool = False,
) -> list[_Column]:
    cols = []
    for k, name in enumerate(names):
        rows = np.flatnonzero(np.isfinite(y[:, k]) & np.isfinite(score[:, k]))
        cols.append(
            _Column(
                name,
                rows,
                y[rows, k],
                score[rows, k],
                None if var is None else var[rows, k],
                classification,
            )
        )
    return cols


def _why_undefined(col: _Column) -> str:
    if col.rows.size == 0:
        return "no labelled molecule in this split"
    if col.classification and np.unique(col.y).size < 2:
        return f"only one class among the {col.rows.size} labelled molecules in this split"
    return "undefined on this split"


def _masked_scores(
    columns: list[_Column],
    stats: dict[str, Stat],
    *,
    n: int,
    bootstrap: int,
    seed: int,
    groups: np.ndarray | None,
    bias_corrected: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Per-target values and their macro mean, with percentile bootstrap CIs.

    Molecules (clustered by ``groups``) are resampled once for all targets; each target uses
    the resampled counts of its labelled rows. A resample's macro mean averages the targets
    that are defined on it.

    Returns:
        ``{stat: {"value", "ci95"[, "note"]}}`` for one target, else the macro means plus
        ``"per_task": {target: {stat: {...}}}``.
    """
    from medlearn.evaluation._bootstrap import _count_chunks, _interval

    points = {
        s: np.array([float(fn(c, np.ones((1, c.rows.size)))[0]) for c in columns])
        for s, fn in stats.items()
    }
    boots: dict[str, list[np.ndarray]] = {s: [] for s in stats}
    if bootstrap > 0 and n > 0:
        for W in _count_chunks(n, bootstrap, seed, groups):
            for s, fn in stats.items():
                boots[s].append(np.stack([fn(c, W[:, c.rows]) for c in columns], axis=1))
    per_task: dict[str, dict[str, Any]] = {c.name: {} for c in columns}
    macro: dict[str, Any] = {}
    for s in stats:
        values = np.concatenate(boots[s]) if boots[s] else np.zeros((0, len(columns)))
        bc = s in bias_corrected
        for k, col in enumerate(columns):
            point = _r6(points[s][k])
            entry: dict[str, Any] = {"value": point, "ci95": None}
            if point is None:
                entry["note"] = _why_undefined(col)
            elif values.shape[0]:
                entry["ci95"] = _interval(values[:, k], point, bias_corrected=bc)
            per_task[col.name][s] = entry
        defined = np.isfinite(points[s])
        mean = _r6(points[s][defined].mean()) if defined.any() else None
        entry = {"value": mean, "ci95": None}
        if mean is not None and values.shape[0]:
            sub = values[:, defined]
            with np.errstate(invalid="ignore"):
                counts = np.isfinite(sub).sum(axis=1)
                sums = np.where(np.isfinite(sub), sub, 0.0).sum(axis=1)
            resampled = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            entry["ci95"] = _interval(resampled, mean, bias_corrected=bc)
        if len(columns) > 1 and not defined.all():
            left = [c.name for c, ok in zip(columns, defined, strict=True) if not ok]
            entry["note"] = (
                f"mean over {int(defined.sum())} of {len(columns)} targets; undefined for "
                + ", ".join(left)
            )
        macro[s] = entry
    if len(columns) == 1:
        return per_task[columns[0].name]
    return {**macro, "per_task": per_task}


def _metric_stat(name: str) -> Stat:
    """A :data:`Stat` from a registered metric's vectorised core."""
    from medlearn.registry import METRICS

    core = METRICS.get(name)._batched

    def stat(col: _Column, W: np.ndarray) -> np.ndarray:
        if col.rows.size == 0:
            return np.full(W.shape[0], np.nan)
        return np.asarray(core(col.y, col.score, W), dtype=np.float64)

    return stat


def _metric_stats(names: Sequence[str]) -> dict[str, Stat]:
    return {m: _metric_stat(m) for m in names}


def _bootstrap_settings(cfg: Any) -> tuple[int, int]:
    if cfg is None:
        return 1000, 0
    return int(cfg.evaluation.bootstrap), int(cfg.training.seed)


def _groups(frame: pd.DataFrame) -> np.ndarray:
    return frame["patient_id"].astype(str).to_numpy()


# -- uncertainty statistics ---------------------------------------------------------------------
def _weighted_mean(W: np.ndarray, values: np.ndarray) -> np.ndarray:
    total = W.sum(axis=1)
    out = np.full(W.shape[0], np.nan)
    np.divide(W @ values, total, out=out, where=total > 0)
    return out


def _z(col: _Column) -> tuple[np.ndarray, np.ndarray]:
    assert col.var is not None
    var = np.maximum(col.var, _MIN_VAR)
    return (col.score - col.y) / np.sqrt(var), var


def _spearman_stat(col: _Column, W: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``|error|`` with the predicted std on each resample."""
    from scipy.stats import rankdata

    err = np.abs(col.score - col.y)
    std = np.sqrt(np.maximum(col.var, 0.0))  # type: ignore[arg-type]
    out = np.full(W.shape[0], np.nan)
    rows = np.arange(err.size)
    for b in range(W.shape[0]):
        idx = np.repeat(rows, W[b].astype(np.int64))
        if idx.size < 3:
            continue
        a, s = rankdata(err[idx]), rankdata(std[idx])
        if a.std() > 0 and s.std() > 0:
            out[b] = float(np.corrcoef(a, s)[0, 1])
    return out


def _nll_stat(col: _Column, W: np.ndarray) -> np.ndarray:
    z, var = _z(col)
    return _weighted_mean(W, 0.5 * (np.log(2 * np.pi * var) + z**2))


def _coverage_stat(level: float) -> Stat:
    from scipy.stats import norm

    q = float(norm.ppf(0.5 + level / 2))

    def stat(col: _Column, W: np.ndarray) -> np.ndarray:
        z, _ = _z(col)
        return _weighted_mean(W, (np.abs(z) <= q).astype(np.float64))

    return stat


def _inside(z: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``(n, L)``: 1 where ``|z|`` lies in the central Gaussian interval of each coverage
    level, else 0."""
    from scipy.stats import norm

    q = norm.ppf(0.5 + levels / 2)
    return (np.abs(z)[:, None] <= q[None, :]).astype(np.float64)


def coverage_curve(z: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Observed share of ``|z| <= q(level)`` for each expected central coverage ``level``
    (the curve whose mean gap from the diagonal is the miscalibration area)."""
    z = z[np.isfinite(z)]
    if z.size == 0:
        return np.full(levels.shape, np.nan)
    return _inside(z, levels).mean(axis=0)


def _miscalibration_stat(col: _Column, W: np.ndarray) -> np.ndarray:
    """Mean |observed - expected| coverage of central Gaussian intervals at 1%..99%."""
    z, _ = _z(col)
    inside = _inside(z, _LEVELS)  # (n, L)
    total = W.sum(axis=1, keepdims=True)
    observed = np.divide(
        W @ inside, total, out=np.full((W.shape[0], _LEVELS.size), np.nan), where=total > 0
    )
    return np.abs(observed - _LEVELS[None, :]).mean(axis=1)


def _misclassification_auroc(threshold: float) -> Stat:
    """AUROC of the variance for telling misclassified molecules from correct ones."""
    from medlearn.registry import METRICS

    core = METRICS.get("auroc")._batched

    def stat(col: _Column, W: np.ndarray) -> np.ndarray:
        if col.rows.size == 0 or col.var is None:
            return np.full(W.shape[0], np.nan)
        wrong = ((col.score >= threshold).astype(np.float64) != col.y).astype(np.float64)
        return np.asarray(core(wrong, col.var, W), dtype=np.float64)

    return stat


#: Statistics biased upwards by resampling (like ECE): their CIs are median-bias-corrected.
_BIASED_UQ = frozenset({"miscalibration_area"})

_REGRESSION_UQ: dict[str, Stat] = {
    "spearman": _spearman_stat,
    "nll": _nll_stat,
    "coverage_68": _coverage_stat(0.6827),
    "coverage_95": _coverage_stat(0.95),
    "miscalibration_area": _miscalibration_stat,
}


def _affine_nll(r2: np.ndarray, v: np.ndarray, s: float, c: float) -> float:
    total = np.maximum(s * v + c, _MIN_VAR)
    return float(np.mean(np.log(total) + r2 / total))


def _fit_affine(r2: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """``(s, c)`` minimising the Gaussian NLL of residuals ``r`` under variance ``s·v + c``."""
    from scipy.optimize import minimize

    v = np.maximum(v, 0.0)
    scale_only = float(np.mean(r2 / np.maximum(v, _MIN_VAR)))  # the optimum with c = 0
    best = (scale_only, 0.0)
    best_nll = _affine_nll(r2, v, *best)
    floor = max(float(np.mean(r2)), _MIN_VAR)

    def nll(theta: np.ndarray) -> float:
        return _affine_nll(r2, v, float(np.exp(theta[0])), float(np.exp(theta[1])))

    mean_v = max(float(np.mean(v)), _MIN_VAR)
    for start_c in (0.5, 0.1):  # c as a share of the mean squared residual
        s0 = max((1 - start_c) * floor / mean_v, _MIN_VAR)
        res = minimize(
            nll,
            np.log([s0, start_c * floor]),
            method="Nelder-Mead",
            options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000},
        )
        s, c = (float(x) for x in np.exp(res.x))
        value = _affine_nll(r2, v, s, c)
        if value < best_nll - 1e-12:
            best, best_nll = (s, c), value
    return best


def fit_variance_calibration(
    y: np.ndarray, pred: np.ndarray, var: np.ndarray
) -> tuple[list[float], list[float]]:
    """Per-target ``(scale, offset)`` so that ``scale · var + offset`` is the variance.

    Both are fitted on validation by the Gaussian negative log-likelihood of the errors.
    Plain scaling (``offset = 0``, ``scale`` = the mean squared ``z``-score) is the special
    case the fit starts from and keeps unless the offset lowers the likelihood. The offset
    matters when members agree by chance: a single network blended with a baseline has
    variance ``w (1 - w) (a - b)²``, near 0 wherever the two agree, and scaling alone then
    blows every other variance up to cover those molecules' errors.

    Args:
        y: validation targets ``(N, T)`` (NaN: missing).
        pred: predictions ``(N, T)``.
        var: ensemble variances ``(N, T)``.

    Returns:
        ``T`` scales and ``T`` offsets (target units²); ``(1.0, 0.0)`` where a target has
        fewer than 2 labelled rows.
    """
    scales, offsets = [], []
    for k in range(y.shape[1]):
        ok = np.isfinite(y[:, k]) & np.isfinite(pred[:, k]) & np.isfinite(var[:, k])
        if ok.sum() < 2:
            scales.append(1.0)
            offsets.append(0.0)
            continue
        s, c = _fit_affine((pred[ok, k] - y[ok, k]) ** 2, var[ok, k])
        scales.append(float(f"{s:.6g}") or 1.0)
        offsets.append(float(f"{c:.6g}"))
    return scales, offsets


#: below this median share of the ensemble term the calibrated variance is nearly constant
LOW_VARIANCE_SHARE = 0.1


def flat_variance_targets(names: Sequence[str], shares: Sequence[float | None]) -> list[str]:
    """The targets whose ``variance_share`` is below :data:`LOW_VARIANCE_SHARE`."""
    return [
        n
        for n, share in zip(names, shares, strict=False)
        if isinstance(share, (int, float)) and share < LOW_VARIANCE_SHARE
    ]


def variance_share(
    var: np.ndarray, scales: Sequence[float], offsets: Sequence[float]
) -> list[float | None]:
    """Per target, the median share of the calibrated variance that comes from the ensemble:
    ``scale · var / (scale · var + offset)`` over the rows with a finite variance.

    1 means plain scaling (no offset); near 0 means the fit found that the ensemble variance
    does not rank the validation errors, so every molecule gets about the same interval (the
    offset). ``None`` for a target without a finite variance (JSON has no NaN).
    """
    shares: list[float | None] = []
    for k in range(var.shape[1]):
        v = np.maximum(var[np.isfinite(var[:, k]), k], 0.0) * float(scales[k])
        c = float(offsets[k])
        if v.size == 0:
            shares.append(None)
        elif c <= 0.0:
            shares.append(1.0)
        else:
            shares.append(float(f"{float(np.median(v / (v + c))):.4g}"))
    return shares


def _scaled(var: np.ndarray | None, manifest_uq: dict[str, Any] | None) -> np.ndarray | None:
    """The calibrated variance: ``scale · var + offset`` per target (bundles written before
    the offset existed have none, i.e. 0)."""
    if var is None:
        return None
    uq = manifest_uq or {}
    scale = uq.get("variance_scale")
    offset = uq.get("variance_offset")
    if scale:
        var = var * np.asarray(scale, dtype=np.float64)[None, :]
    if offset:
        var = var + np.asarray(offset, dtype=np.float64)[None, :]
    return var


# -- attributions --------------------------------------------------------------------------------
def _pick_attributions(score: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` rows spread over the range of ``score`` (highest and lowest first)."""
    finite = np.flatnonzero(np.isfinite(score))
    if finite.size == 0 or n <= 0:
        return []
    order = finite[np.argsort(-score[finite], kind="stable")]
    if order.size <= n:
        return [int(i) for i in order]
    picks = np.unique(np.round(np.linspace(0, order.size - 1, n)).astype(int))
    return [int(order[i]) for i in picks]


def _save_attributions(
    run_dir: Path,
    learner: Any,
    records: Sequence[Record],
    split: str,
    names: list[str],
    task_index: int,
    y: np.ndarray,
    shown: np.ndarray,
    echo: Callable[[str], None],
) -> dict[str, Any] | None:
    """Explain a few molecules for target ``task_index``; write ``attributions.json``.

    Args:
        shown: the value shown for each molecule and used to spread the picks (prediction or
            probability), ``(N,)``.
    """
    if not records or not callable(getattr(learner, "explain", None)):
        return None
    picks = _pick_attributions(shown, N_ATTRIBUTIONS)
    if not picks:
        return None
    chosen = [records[i] for i in picks]
    try:
        explanations = learner.explain(chosen, [task_index] * len(chosen))
    except Exception as exc:  # an explanation must not lose a finished training run
        echo(f"atom attributions failed ({type(exc).__name__}); skipped")
        return {"error": type(exc).__name__}
    items = []
    for i, rec, exp in zip(picks, chosen, explanations, strict=False):
        atoms = getattr(exp, "atoms", None)
        if atoms is None:
            continue
        true = y[i, task_index]
        items.append(
            {
                "id": rec["id"],
                "smiles": str(rec["input"]),
                "true": None if not np.isfinite(true) else round(float(true), 6),
                "shown": round(float(shown[i]), 6),
                "atoms": [round(float(a), 6) for a in np.asarray(atoms).reshape(-1)],
            }
        )
    if not items:
        return None
    method = getattr(explanations[0], "method", "") if explanations else ""
    payload = {
        "split": split,
        "target": names[task_index],
        "task_index": task_index,
        "method": method,
        "items": items,
    }
    atomic_write_bytes(run_dir / ATTRIBUTIONS_FILE, json.dumps(payload, indent=2).encode())
    return {"file": ATTRIBUTIONS_FILE, "split": split, "target": names[task_index], "n": len(items)}


def _explain_rows(
    learner: Any,
    records: Sequence[Record],
    task_index: Sequence[int],
    names: list[str],
    explain_dir: Path,
) -> list[dict[str, Any] | None]:
    """One attribution SVG per record in ``explain_dir``; the row field for each record."""
    from medlearn.molecules._draw import draw_molecule

    if not callable(getattr(learner, "explain", None)):
        return [None] * len(records)
    explain_dir.mkdir(parents=True, exist_ok=True)
    explanations = learner.explain(records, list(task_index))
    out: list[dict[str, Any] | None] = []
    for i, rec in enumerate(records):
        exp = explanations[i] if i < len(explanations) else None
        atoms = getattr(exp, "atoms", None)
        if atoms is None:
            out.append(None)
            continue
        digest = hashlib.sha1(str(rec["id"]).encode("utf-8")).hexdigest()[:10]
        path = explain_dir / f"mol{i + 1}-{digest}.atoms.svg"
        target = names[task_index[i]]
        svg = draw_molecule(str(rec["input"]), atoms, legend=f"attribution: {target}")
        atomic_write_bytes(path, str(svg).encode("utf-8"))
        out.append(
            {
                "method": getattr(exp, "method", ""),
                "target": target,
                "file": str(path),
                "atoms": [round(float(a), 6) for a in np.asarray(atoms).reshape(-1)],
            }
        )
    return out


# -- report helpers ------------------------------------------------------------------------------

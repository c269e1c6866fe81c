"""Task handlers of molecular property prediction: ``molecules:regression``,
``molecules:binary`` and ``molecules:multilabel``.

Models registered with ``handler="molecules"`` are handled here instead of by the shared
``regression`` / ``binary`` handlers (see :mod:`medlearn.tasks`). On top of what the shared
handlers do, these:

* score **one or several targets with missing labels**: each target is scored on its labelled
  molecules only; several targets give the macro mean over targets, with each target's values
  under ``metrics[split]["per_task"]``. A target that is undefined on a split (e.g. a Tox21
  assay with no positive molecule) gets ``value: None`` and a ``note`` and is left out of the
  mean. Confidence intervals resample molecules (clustered by ``patient_id``, i.e. by
  canonical SMILES), one shared set of resamples for every target, so the CI of the macro mean
  accounts for the correlation between targets;
* measure **uncertainty** when the learner gives a variance (deep ensembles): columns
  ``variance`` / ``variance_<target>`` in ``predictions.parquet``; for regression a per-target
  variance scale fitted on validation (``z``-scaling: the mean squared ``z``-score on val is 1)
  stored in the bundle manifest and applied by ``predict`` and ``evaluate``; the calibration
  of the uncertainty (Spearman correlation of ``|error|`` with the predicted std, Gaussian
  negative log-likelihood, ``z``-score coverage at 68% / 95% and the miscalibration area) or,
  for classification, the AUROC of the variance for finding misclassified molecules, under
  ``metrics.json["uncertainty"]``;
* name the **split** (``method``, ``seed``, ``fractions``) in ``metrics.json``;
* explain ~6 test molecules with atom attributions (``attributions.json``), drawn on the
  molecules in the report, and draw an attribution SVG per molecule in ``predict --explain``.

``metrics.json`` fields written here: ``split``, ``targets``, ``uncertainty`` and
``attributions`` (plus the classification fields for ``binary``).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn._io import atomic_write_bytes
from medlearn.data import Record
from medlearn.errors import DataValidationError
from medlearn.registry import TASKS
from medlearn.tasks import ReportParts, RunContext, TaskOutcome
from medlearn.tasks.classification import ClassificationTask
from medlearn.tasks.regression import RegressionTask

__all__ = [
    "ATTRIBUTIONS_FILE",
    "MoleculeBinaryTask",
    "MoleculeMultilabelTask",
    "MoleculeRegressionTask",
]

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
    """The learner's output and its ensemble variance ``(N, T)`` (``None``: a single model)."""
    fn = getattr(learner, "predict_with_uncertainty", None)
    if callable(fn):
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
    frame = _base_frame(records, split)
    t = len(names)
    for k, name in enumerate(names):
        frame[_col("target", name, t)] = y[:, k]
        frame[_col("prediction", name, t)] = pred[:, k]
        if var is not None:
            frame[_col("variance", name, t)] = var[:, k]
    return frame


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


def _miscalibration_stat(col: _Column, W: np.ndarray) -> np.ndarray:
    """Mean |observed - expected| coverage of central Gaussian intervals at 1%..99%."""
    from scipy.stats import norm

    z, _ = _z(col)
    q = norm.ppf(0.5 + _LEVELS / 2)
    inside = (np.abs(z)[:, None] <= q[None, :]).astype(np.float64)  # (n, L)
    total = W.sum(axis=1, keepdims=True)
    observed = np.divide(
        W @ inside, total, out=np.full((W.shape[0], q.size), np.nan), where=total > 0
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


def fit_variance_scale(y: np.ndarray, pred: np.ndarray, var: np.ndarray) -> list[float]:
    """Per-target factor ``s`` so that ``s * var`` has mean squared ``z``-score 1 on ``y``.

    Args:
        y: validation targets ``(N, T)`` (NaN: missing).
        pred: predictions ``(N, T)``.
        var: ensemble variances ``(N, T)``.

    Returns:
        ``T`` factors (1.0 where a target has fewer than 2 labelled rows).
    """
    scales = []
    for k in range(y.shape[1]):
        ok = np.isfinite(y[:, k]) & np.isfinite(pred[:, k]) & np.isfinite(var[:, k])
        if ok.sum() < 2:
            scales.append(1.0)
            continue
        z2 = (pred[ok, k] - y[ok, k]) ** 2 / np.maximum(var[ok, k], _MIN_VAR)
        scales.append(round(float(np.mean(z2)), 6) or 1.0)
    return scales


def _scaled(var: np.ndarray | None, manifest_uq: dict[str, Any] | None) -> np.ndarray | None:
    if var is None:
        return None
    scale = (manifest_uq or {}).get("variance_scale")
    if not scale:
        return var
    return var * np.asarray(scale, dtype=np.float64)[None, :]


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
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt_entry(entry: Any) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        note = entry.get("note") if isinstance(entry, dict) else None
        return f'<span class="muted" title="{_e(note or "")}">—</span>'
    text = f"{entry['value']:.3f}"
    ci = entry.get("ci95")
    if isinstance(ci, list) and len(ci) == 2:
        text += f' <span class="ci">({ci[0]:.3f}–{ci[1]:.3f})</span>'
    return text


def _per_task_table(block: dict[str, Any], names: list[str], split: str) -> str:
    """A table of each target's metrics (rows) for one split, macro mean last."""
    if not block:
        return ""
    per_task = block.get("per_task") or {names[0]: block}
    metrics = [k for k in block if k not in ("per_task",) and isinstance(block[k], dict)]
    head = "".join(f"<th>{_e(m)}</th>" for m in metrics)
    rows = []
    notes = []
    for name in names:
        entries = per_task.get(name) or {}
        cells = "".join(f'<td class="num">{_fmt_entry(entries.get(m))}</td>' for m in metrics)
        rows.append(f"<tr><th>{_e(name)}</th>{cells}</tr>")
        for m in metrics:
            note = (entries.get(m) or {}).get("note")
            if note:
                notes.append(f"{name} ({m}): {note}")
    if "per_task" in block:
        cells = "".join(f'<td class="num"><b>{_fmt_entry(block.get(m))}</b></td>' for m in metrics)
        rows.append(f"<tr><th>macro mean</th>{cells}</tr>")
    text = (
        f'<div class="scroll"><table class="metrics"><thead><tr><th>{_e(split)} target</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="muted small">Each target is scored on its labelled molecules only; 95% '
        "CIs resample molecules (the same resamples for every target).</p>"
    )
    if notes:
        text += "".join(f'<p class="muted small">{_e(n)}</p>' for n in sorted(set(notes)))
    return text


def _png_uri(fig: Any) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _scatter_grid(frame: pd.DataFrame, names: list[str], split: str) -> str:
    """Predicted-vs-true scatter per target (up to 6), reusing the shared regression figure."""
    from medlearn.tasks.regression import _scatter_html

    parts = []
    t = len(names)
    for name in names[:6]:
        sub = pd.DataFrame(
            {
                "target": frame[_col("target", name, t)].to_numpy(dtype=float),
                "prediction": frame[_col("prediction", name, t)].to_numpy(dtype=float),
            }
        ).dropna()
        if sub.empty:
            continue
        label = split if t == 1 else f"{split}: {name}"
        parts.append(_scatter_html(sub, label))
    return '<div class="grid">' + "".join(parts) + "</div>" if parts else ""


def _error_vs_std_png(frame: pd.DataFrame, names: list[str]) -> str | None:
    from matplotlib.figure import Figure

    t = len(names)
    shown = [n for n in names[:4] if _col("variance", n, t) in frame.columns]
    if not shown:
        return None
    fig = Figure(figsize=(4.2 * len(shown), 3.8))
    for k, name in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), k + 1)
        y = frame[_col("target", name, t)].to_numpy(dtype=float)
        p = frame[_col("prediction", name, t)].to_numpy(dtype=float)
        s = np.sqrt(np.maximum(frame[_col("variance", name, t)].to_numpy(dtype=float), 0.0))
        ok = np.isfinite(y) & np.isfinite(p) & np.isfinite(s)
        err = np.abs(p[ok] - y[ok])
        ax.scatter(s[ok], err, s=10, alpha=0.6, color="#2563eb")
        if ok.any():
            ax.set_ylim(0, 1.1 * float(max(err.max(), 1.96 * s[ok].min(), 1e-9)))
            hi = float(max(s[ok].max(), 1e-9))
            xs = np.linspace(0, hi, 20)
            ax.plot(xs, xs, color="#94a3b8", ls="--", lw=1, label="|error| = 1 std")
            ax.plot(xs, 1.96 * xs, color="#dc2626", ls=":", lw=1, label="|error| = 1.96 std")
            ax.legend(fontsize=7, frameon=False)
        ax.set_xlabel("predicted std (scaled)")
        ax.set_ylabel("|error|")
        ax.set_title(name if t > 1 else "test split", fontsize=10)
    fig.tight_layout()
    return _png_uri(fig)


def _uq_table(block: dict[str, Any], names: list[str]) -> str:
    rows = []
    for split in ("test", "val"):
        scores = block.get(split)
        if not isinstance(scores, dict):
            continue
        stats = [k for k in scores if k != "per_task"]
        cells = "".join(f'<td class="num">{_fmt_entry(scores.get(k))}</td>' for k in stats)
        if not rows:
            head = "".join(f"<th>{_e(k)}</th>" for k in stats)
            rows.append(f"<thead><tr><th>split</th>{head}</tr></thead>")
        rows.append(f"<tr><th>{_e(split)}</th>{cells}</tr>")
    if not rows:
        return ""
    return f'<div class="scroll"><table class="metrics">{"".join(rows)}</table></div>'


def _uncertainty_section(doc: dict[str, Any], frame: pd.DataFrame, names: list[str]) -> str:
    block = doc.get("uncertainty")
    if not isinstance(block, dict):
        return ""
    parts = [_uq_table(block, names)]
    if block.get("kind") == "regression":
        scale = block.get("variance_scale")
        parts.append(
            '<p class="muted small">Ensemble variance in target units, multiplied by a '
            "per-target scale fitted on validation so that z-scores have unit mean square "
            f"(scale: {_e(scale)}). Spearman: rank correlation of |error| with the std (higher "
            "is better); nll: Gaussian negative log-likelihood (lower is better); coverage_68 / "
            "coverage_95: share of molecules within 1 / 1.96 std (ideal 0.683 / 0.95); "
            "miscalibration_area: mean gap between observed and expected coverage (0 is "
            "ideal).</p>"
        )
        test = frame[frame["split"] == "test"]
        uri = _error_vs_std_png(test, names) if not test.empty else None
        if uri:
            parts.append(
                f'<figure><img src="{uri}" alt="absolute error against predicted std">'
                "<figcaption>Test molecules: absolute error against the predicted std; "
                "about 68% should fall under the grey line and 95% under the red one."
                "</figcaption></figure>"
            )
    else:
        parts.append(
            '<p class="muted small">AUROC of the ensemble variance of the predicted '
            "probability for telling misclassified molecules from correct ones (0.5: the "
            "variance carries no warning; higher is better).</p>"
        )
    return "".join(p for p in parts if p)


def _attribution_section(run_dir: Path) -> str:
    from medlearn.molecules._draw import draw_grid, to_data_uri

    path = run_dir / ATTRIBUTIONS_FILE
    if not path.is_file():
        return ""
    payload = json.loads(path.read_text())
    items = payload.get("items") or []
    if not items:
        return ""
    legends = []
    for it in items:
        true = "—" if it.get("true") is None else f"{it['true']:.3g}"
        legends.append(f"{it['id']}: true {true}, predicted {it['shown']:.3g}")
    try:
        svg = draw_grid(
            [it["smiles"] for it in items],
            legends=legends,
            atom_weights=[it["atoms"] for it in items],
            per_row=3,
            sub_size=(300, 240),
        )
    except DataValidationError as exc:
        return f'<p class="muted">The attributions could not be drawn: {_e(exc.message)}</p>'
    return (
        f'<figure><img src="{to_data_uri(svg)}" alt="atom attributions of test molecules">'
        f"<figcaption>{_e(payload.get('split', 'test'))} molecules, target "
        f"{_e(payload.get('target'))}; method: {_e(payload.get('method') or 'model default')}. "
        "Red atoms push the prediction up, blue atoms push it down, relative to the "
        "attribution method's baseline (for integrated gradients, a molecule with all-zero "
        "features); colour strength is relative to the molecule's largest attribution."
        "</figcaption></figure>"
    )


def _molecule_sections(
    run_dir: Path, doc: dict[str, Any], frame: pd.DataFrame, names: list[str]
) -> list[tuple[str, str, str]]:
    sections = []
    uq = _uncertainty_section(doc, frame, names)
    if uq:
        sections.append(("uncertainty", "Uncertainty", uq))
    atoms = _attribution_section(run_dir)
    if atoms:
        sections.append(("atom-attributions", "Atom attributions", atoms))
    return sections


def _doc_names(doc: dict[str, Any], manifest: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    names = doc.get("targets") or manifest.get("targets")
    if names:
        return [str(n["name"]) if isinstance(n, dict) else str(n) for n in names]
    return _frame_names(frame)


def _targets_doc(names: list[str], y: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Each target's labelled count per split (and positives for classification)."""
    out = []
    for k, name in enumerate(names):
        entry: dict[str, Any] = {"name": name, "n_labelled": {}}
        for split, arr in y.items():
            entry["n_labelled"][split] = int(np.isfinite(arr[:, k]).sum())
        out.append(entry)
    return out


# -- regression ----------------------------------------------------------------------------------
@TASKS.register("molecules:regression")
class MoleculeRegressionTask(RegressionTask):
    """Regression of one or several molecular properties (missing labels allowed)."""

    def run(self, ctx: RunContext) -> TaskOutcome:
        parts, learner = ctx.parts, ctx.learner
        names = _targets_of(learner)
        splits = [s for s in ("val", "test") if parts.get(s)]
        ctx.echo("[4/6] predicting val and test")
        t0 = time.perf_counter()
        out = {s: _predict(learner, parts[s]) for s in splits}
        seconds = time.perf_counter() - t0
        y = {s: _target_matrix(parts[s], len(names)) for s in splits}
        uq_state = self._fit_uncertainty(y, out)
        var = {s: _scaled(out[s][1], uq_state) for s in splits}
        frame = pd.concat(
            [_task_frame(parts[s], s, names, y[s], out[s][0], var[s]) for s in splits],
            ignore_index=True,
        )
        ctx.echo("[5/6] evaluating with bootstrap CIs")
        metrics = {s: self.score(frame[frame["split"] == s], ctx.cfg) for s in ("test", "val")}
        metrics = {s: m for s, m in metrics.items() if s in splits}
        doc: dict[str, Any] = {"split": _split_doc(ctx.cfg), "targets": _targets_doc(names, y)}
        manifest: dict[str, Any] = {"targets": names}
        if uq_state is not None:
            doc["uncertainty"] = {
                **uq_state,
                **{s: self._score_uncertainty(frame[frame["split"] == s], ctx.cfg) for s in splits},
            }
            manifest["uncertainty"] = uq_state
        split = "test" if parts.get("test") else "val"
        sub = frame[frame["split"] == split]
        attr = _save_attributions(
            ctx.run_dir,
            learner,
            parts[split],
            split,
            names,
            0,
            y[split],
            sub[_col("prediction", names[0], len(names))].to_numpy(dtype=float),
            ctx.echo,
        )
        if attr is not None:
            doc["attributions"] = attr
        return TaskOutcome(
            predictions=frame,
            metrics=metrics,
            doc=doc,
            manifest=manifest,
            predict_seconds=seconds,
        )

    @staticmethod
    def _fit_uncertainty(
        y: dict[str, np.ndarray], out: dict[str, tuple[np.ndarray, np.ndarray | None]]
    ) -> dict[str, Any] | None:
        if any(v[1] is None for v in out.values()) or not out:
            return None
        state: dict[str, Any] = {"kind": "regression", "method": "ensemble_variance"}
        if "val" in out:
            pred, var = out["val"]
            state["variance_scale"] = fit_variance_scale(y["val"], pred, var)  # type: ignore[arg-type]
            state["scaling"] = "zscaling on val"
        return state

    def score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Metrics with CIs per target and their macro mean, missing labels masked."""
        from medlearn.tasks.regression import _metrics_of

        if frame.empty:
            return {}
        names = _frame_names(frame)
        y, p, _ = _frame_arrays(frame, names)
        bootstrap, seed = _bootstrap_settings(cfg)
        return _masked_scores(
            _columns(names, y, p),
            _metric_stats(_metrics_of(cfg)),
            n=len(frame),
            bootstrap=bootstrap,
            seed=seed,
            groups=_groups(frame),
        )

    @staticmethod
    def _score_uncertainty(frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        names = _frame_names(frame)
        y, p, v = _frame_arrays(frame, names)
        if v is None or frame.empty:
            return {}
        bootstrap, seed = _bootstrap_settings(cfg)
        return _masked_scores(
            _columns(names, y, p, v),
            _REGRESSION_UQ,
            n=len(frame),
            bootstrap=bootstrap,
            seed=seed,
            groups=_groups(frame),
            bias_corrected=_BIASED_UQ,
        )

    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: Any,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome:
        names = _targets_of(learner, manifest)
        t0 = time.perf_counter()
        pred, var = _predict(learner, records)
        seconds = time.perf_counter() - t0
        y = _target_matrix(records, len(names))
        var = _scaled(var, manifest.get("uncertainty"))
        frame = _task_frame(records, "test", names, y, pred, var)
        doc: dict[str, Any] = {"targets": _targets_doc(names, {"test": y})}
        if var is not None:
            doc["uncertainty"] = {
                **(manifest.get("uncertainty") or {"kind": "regression"}),
                "test": self._score_uncertainty(frame, cfg),
            }
        attr = _save_attributions(
            out_dir, learner, records, "test", names, 0, y, pred[:, 0], lambda _: None
        )
        if attr is not None:
            doc["attributions"] = attr
        return TaskOutcome(
            predictions=frame,
            metrics={"test": self.score(frame, cfg)},
            doc=doc,
            predict_seconds=seconds,
        )

    def predict(
        self,
        learner: Any,
        manifest: dict[str, Any],
        records: Sequence[Record],
        explain_dir: Path | None = None,
        output_dir: Path | None = None,
    ) -> list[dict[str, Any]]:
        names = _targets_of(learner, manifest)
        pred, var = _predict(learner, records)
        var = _scaled(var, manifest.get("uncertainty"))
        explained = (
            _explain_rows(learner, records, [0] * len(records), names, explain_dir)
            if explain_dir is not None
            else [None] * len(records)
        )
        rows = []
        for i, rec in enumerate(records):
            row: dict[str, Any] = {"input": rec["id"], "smiles": str(rec["input"])}
            row["prediction"] = _per_target(names, pred[i])
            if var is not None:
                row["uncertainty"] = _per_target(names, np.sqrt(np.maximum(var[i], 0.0)))
            row["model"] = manifest.get("name")
            if explained[i] is not None:
                row["explanation"] = explained[i]
            rows.append(row)
        return rows

    def report_sections(
        self,
        run_dir: Path,
        doc: dict[str, Any],
        frame: pd.DataFrame,
        cfg: Any,
        manifest: dict[str, Any],
    ) -> ReportParts:
        names = _doc_names(doc, manifest, frame)
        split = "test" if (frame["split"] == "test").any() else "cv"
        sub = frame[frame["split"] == split]
        sections: list[tuple[str, str, str]] = []
        table = _per_task_table((doc.get("metrics") or {}).get(split) or {}, names, split)
        if table and len(names) > 1:
            sections.append(("per-task", "Per-target metrics", table))
        scatter = _scatter_grid(sub, names, split) if not sub.empty else ""
        if scatter:
            sections.append(("scatter", "Predicted vs true", scatter))
        sections += _molecule_sections(run_dir, doc, frame, names)
        return ReportParts(sections=sections)


def _per_target(names: list[str], values: np.ndarray) -> float | dict[str, float]:
    if len(names) == 1:
        return round(float(values[0]), 6)
    return {n: round(float(v), 6) for n, v in zip(names, values, strict=True)}


# -- one binary target ---------------------------------------------------------------------------
class _Capture:
    """Wraps a learner so that the shared classification handler's ``predict_logits`` calls
    also record the ensemble variance (one prediction pass, not two).

    ``image_explanations`` is False: molecule explanations are atoms, drawn by this module,
    so the shared image gallery is not computed.
    """

    image_explanations = False

    def __init__(self, learner: Any) -> None:
        self._learner = learner
        self.variance: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._learner, name)

    def predict_logits(self, records: Sequence[Record], *, tta: bool = False) -> np.ndarray:
        logits, var = _predict(self._learner, records, tta)
        if var is not None:
            for rec, v in zip(records, var[:, 0], strict=True):
                self.variance[rec["id"]] = float(v)
        return logits


@TASKS.register("molecules:binary")
class MoleculeBinaryTask(ClassificationTask):
    """One binary molecular property: the shared classification handler (calibration,
    threshold, CIs, subgroups) plus SMILES, uncertainty, split and atom attributions."""

    def run(self, ctx: RunContext) -> TaskOutcome:
        capture = _Capture(ctx.learner)
        outcome = super().run(replace(ctx, learner=capture))
        frame = self._with_molecules(outcome.predictions, ctx.parts, capture)
        names = _targets_of(ctx.learner)
        outcome.predictions = frame
        outcome.doc["split"] = _split_doc(ctx.cfg)
        threshold = outcome.doc.get("threshold")
        if "variance" in frame.columns:
            state = {"kind": "classification", "method": "ensemble_variance"}
            outcome.doc["uncertainty"] = {
                **state,
                **{
                    s: self._score_uncertainty(frame[frame["split"] == s], ctx.cfg, threshold)
                    for s in ("test", "val")
                    if (frame["split"] == s).any()
                },
            }
            outcome.manifest["uncertainty"] = state
        outcome.manifest["targets"] = names
        split = "test" if ctx.parts.get("test") else "val"
        sub = frame[frame["split"] == split].reset_index(drop=True)
        y = sub["target"].to_numpy(dtype=float)
        y = np.where(y >= 0, y, np.nan)[:, None]
        attr = _save_attributions(
            ctx.run_dir,
            ctx.learner,
            ctx.parts[split],
            split,
            names,
            0,
            y,
            sub["prob_1"].to_numpy(dtype=float),
            ctx.echo,
        )
        if attr is not None:
            outcome.doc["attributions"] = attr
        return outcome

    @staticmethod
    def _with_molecules(
        frame: pd.DataFrame, parts: dict[str, list[Record]], capture: _Capture
    ) -> pd.DataFrame:
        smiles = {r["id"]: str(r["input"]) for p in parts.values() for r in p}
        frame = frame.copy()
        frame.insert(3, "smiles", frame["id"].map(smiles))
        if capture.variance:
            frame["variance"] = frame["id"].map(capture.variance).astype(float)
        return frame

    @staticmethod
    def _score_uncertainty(
        frame: pd.DataFrame, cfg: Any, threshold: float | None
    ) -> dict[str, Any]:
        y = frame["target"].to_numpy(dtype=float)
        y = np.where(y >= 0, y, np.nan)[:, None]
        p = frame["prob_1"].to_numpy(dtype=float)[:, None]
        v = frame["variance"].to_numpy(dtype=float)[:, None]
        bootstrap, seed = _bootstrap_settings(cfg)
        t = 0.5 if threshold is None else float(threshold)
        return _masked_scores(
            _columns(["target"], y, p, v, classification=True),
            {"misclassification_auroc": _misclassification_auroc(t)},
            n=len(frame),
            bootstrap=bootstrap,
            seed=seed,
            groups=_groups(frame),
        )

    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: Any,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome:
        capture = _Capture(learner)
        outcome = super().evaluate(capture, manifest, cfg, records, out_dir)
        frame = self._with_molecules(outcome.predictions, {"test": list(records)}, capture)
        outcome.predictions = frame
        if "variance" in frame.columns:
            outcome.doc["uncertainty"] = {
                **(manifest.get("uncertainty") or {"kind": "classification"}),
                "test": self._score_uncertainty(frame, cfg, manifest.get("threshold")),
            }
        y = frame["target"].to_numpy(dtype=float)
        attr = _save_attributions(
            out_dir,
            learner,
            records,
            "test",
            _targets_of(learner, manifest),
            0,
            np.where(y >= 0, y, np.nan)[:, None],
            frame["prob_1"].to_numpy(dtype=float),
            lambda _: None,
        )
        if attr is not None:
            outcome.doc["attributions"] = attr
        return outcome

    def predict(
        self,
        learner: Any,
        manifest: dict[str, Any],
        records: Sequence[Record],
        explain_dir: Path | None = None,
        output_dir: Path | None = None,
    ) -> list[dict[str, Any]]:
        capture = _Capture(learner)
        rows = super().predict(capture, manifest, records, explain_dir=None)
        names = _targets_of(learner, manifest)
        explained = (
            _explain_rows(learner, records, [0] * len(records), names, explain_dir)
            if explain_dir is not None
            else [None] * len(records)
        )
        for i, (row, rec) in enumerate(zip(rows, records, strict=True)):
            row["smiles"] = str(rec["input"])
            if rec["id"] in capture.variance:
                row["uncertainty"] = round(math.sqrt(max(capture.variance[rec["id"]], 0.0)), 6)
            if explained[i] is not None:
                row["explanation"] = explained[i]
        return rows

    def report_sections(
        self,
        run_dir: Path,
        doc: dict[str, Any],
        frame: pd.DataFrame,
        cfg: Any,
        manifest: dict[str, Any],
    ) -> ReportParts:
        parts = super().report_sections(run_dir, doc, frame, cfg, manifest)
        names = _doc_names(doc, manifest, frame)
        parts.sections = _molecule_sections(run_dir, doc, frame, names) + parts.sections
        return parts


# -- several binary targets ----------------------------------------------------------------------
def _multilabel_metrics(cfg: Any) -> list[str]:
    wanted = list(cfg.evaluation.metrics) if cfg is not None else []
    chosen = [m for m in wanted if m in _MULTILABEL_METRICS]
    return chosen or ["auroc", "auprc"]


@TASKS.register("molecules:multilabel")
class MoleculeMultilabelTask:
    """Several binary molecular properties (e.g. the 12 Tox21 assays) with missing labels.

    Predictions are per-target probabilities (sigmoid of the learner's logits, no post-hoc
    calibration). Metrics: ``auroc``, ``auprc``, ``brier``, ``ece`` (those of
    ``evaluation.metrics``; default ``auroc`` and ``auprc``) per target and their macro mean.
    """

    def run(self, ctx: RunContext) -> TaskOutcome:
        parts, learner = ctx.parts, ctx.learner
        names = _targets_of(learner)
        splits = [s for s in ("val", "test") if parts.get(s)]
        ctx.echo("[4/6] predicting val and test")
        t0 = time.perf_counter()
        out = {s: _predict(learner, parts[s]) for s in splits}
        seconds = time.perf_counter() - t0
        y = {s: _target_matrix(parts[s], len(names)) for s in splits}
        frame = pd.concat(
            [_task_frame(parts[s], s, names, y[s], _sigmoid(out[s][0]), out[s][1]) for s in splits],
            ignore_index=True,
        )
        ctx.echo("[5/6] evaluating with bootstrap CIs")
        metrics = {
            s: self.score(frame[frame["split"] == s], ctx.cfg)
            for s in ("test", "val")
            if s in splits
        }
        doc: dict[str, Any] = {
            "split": _split_doc(ctx.cfg),
            "targets": _targets_doc(names, y),
            "calibration": {"method": "none"},
        }
        manifest: dict[str, Any] = {"targets": names}
        if all(out[s][1] is not None for s in splits):
            state = {"kind": "classification", "method": "ensemble_variance"}
            doc["uncertainty"] = {
                **state,
                **{s: self._score_uncertainty(frame[frame["split"] == s], ctx.cfg) for s in splits},
            }
            manifest["uncertainty"] = state
        split = "test" if parts.get("test") else "val"
        k = self._most_positive(y[split])
        sub = frame[frame["split"] == split]
        attr = _save_attributions(
            ctx.run_dir,
            learner,
            parts[split],
            split,
            names,
            k,
            y[split],
            sub[_col("prediction", names[k], len(names))].to_numpy(dtype=float),
            ctx.echo,
        )
        if attr is not None:
            doc["attributions"] = attr
        return TaskOutcome(
            predictions=frame, metrics=metrics, doc=doc, manifest=manifest, predict_seconds=seconds
        )

    @staticmethod
    def _most_positive(y: np.ndarray) -> int:
        """The target with the most positive labels (the one the report explains)."""
        return int(np.argmax(np.nansum(y == 1, axis=0))) if y.size else 0

    def score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Per-target metrics with CIs and their macro mean, missing labels masked."""
        if frame.empty:
            return {}
        names = _frame_names(frame)
        y, p, _ = _frame_arrays(frame, names)
        bootstrap, seed = _bootstrap_settings(cfg)
        return _masked_scores(
            _columns(names, y, p, classification=True),
            _metric_stats(_multilabel_metrics(cfg)),
            n=len(frame),
            bootstrap=bootstrap,
            seed=seed,
            groups=_groups(frame),
            bias_corrected=frozenset({"ece"}),
        )

    @staticmethod
    def _score_uncertainty(frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        names = _frame_names(frame)
        y, p, v = _frame_arrays(frame, names)
        if v is None or frame.empty:
            return {}
        bootstrap, seed = _bootstrap_settings(cfg)
        return _masked_scores(
            _columns(names, y, p, v, classification=True),
            {"misclassification_auroc": _misclassification_auroc(0.5)},
            n=len(frame),
            bootstrap=bootstrap,
            seed=seed,
            groups=_groups(frame),
        )

    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: Any,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome:
        names = _targets_of(learner, manifest)
        t0 = time.perf_counter()
        logits, var = _predict(learner, records)
        seconds = time.perf_counter() - t0
        y = _target_matrix(records, len(names))
        proba = _sigmoid(logits)
        frame = _task_frame(records, "test", names, y, proba, var)
        doc: dict[str, Any] = {"targets": _targets_doc(names, {"test": y})}
        if var is not None:
            doc["uncertainty"] = {
                **(manifest.get("uncertainty") or {"kind": "classification"}),
                "test": self._score_uncertainty(frame, cfg),
            }
        k = self._most_positive(y)
        attr = _save_attributions(
            out_dir, learner, records, "test", names, k, y, proba[:, k], lambda _: None
        )
        if attr is not None:
            doc["attributions"] = attr
        return TaskOutcome(
            predictions=frame,
            metrics={"test": self.score(frame, cfg)},
            doc=doc,
            predict_seconds=seconds,
        )

    def predict(
        self,
        learner: Any,
        manifest: dict[str, Any],
        records: Sequence[Record],
        explain_dir: Path | None = None,
        output_dir: Path | None = None,
    ) -> list[dict[str, Any]]:
        names = _targets_of(learner, manifest)
        logits, var = _predict(learner, records)
        proba = _sigmoid(logits)
        top = [int(np.argmax(p)) for p in proba]  # explain each molecule's likeliest target
        explained = (
            _explain_rows(learner, records, top, names, explain_dir)
            if explain_dir is not None
            else [None] * len(records)
        )
        rows = []
        for i, rec in enumerate(records):
            row: dict[str, Any] = {
                "input": rec["id"],
                "smiles": str(rec["input"]),
                "prediction": {n: round(float(p), 6) for n, p in zip(names, proba[i], strict=True)},
            }
            if var is not None:
                row["uncertainty"] = _per_target(names, np.sqrt(np.maximum(var[i], 0.0)))
            row["model"] = manifest.get("name")
            if explained[i] is not None:
                row["explanation"] = explained[i]
            rows.append(row)
        return rows

    def report_sections(
        self,
        run_dir: Path,
        doc: dict[str, Any],
        frame: pd.DataFrame,
        cfg: Any,
        manifest: dict[str, Any],
    ) -> ReportParts:
        names = _doc_names(doc, manifest, frame)
        split = "test" if (frame["split"] == "test").any() else "cv"
        sub = frame[frame["split"] == split]
        sections: list[tuple[str, str, str]] = []
        table = _per_task_table((doc.get("metrics") or {}).get(split) or {}, names, split)
        if table:
            sections.append(("per-task", "Per-target metrics", table))
        roc = _roc_section(sub, names, split) if not sub.empty else ""
        if roc:
            sections.append(("roc-per-task", "ROC and PR curves per target", roc))
        sections += _molecule_sections(run_dir, doc, frame, names)
        return ReportParts(sections=sections)


def _roc_section(frame: pd.DataFrame, names: list[str], split: str) -> str:
    from medlearn.evaluation._figures import roc_pr_pngs

    t = len(names)
    series = []
    for name in names:
        y = frame[_col("target", name, t)].to_numpy(dtype=float)
        p = frame[_col("prediction", name, t)].to_numpy(dtype=float)
        ok = np.isfinite(y) & np.isfinite(p)
        pos = y[ok] == 1
        if 0 < pos.sum() < pos.size:
            series.append((name, pos, p[ok]))
    if not series:
        return ""
    roc, pr = roc_pr_pngs(series, binary=False)
    caption = f"{_e(split)} split; one line per target, on its labelled molecules."
    return (
        '<div class="grid">'
        f'<figure><img src="{roc}" alt="ROC curves per target"><figcaption>{caption}'
        "</figcaption></figure>"
        f'<figure><img src="{pr}" alt="precision-recall curves per target"><figcaption>'
        f"{caption}</figcaption></figure></div>"
    )

"""Input drift: a JSON reference of the training inputs, and distances to live inputs.

The reference is built once at training time (:func:`build_reference`) and stored in the
bundle as ``drift_reference.json``; the server bins every live input against it
(:func:`summarize_inputs`) and reports per-feature distances (:func:`drift_scores`):

* images — a pooled intensity histogram (``intensity``, PSI and KS on the binned CDF) and the
  distribution of per-image mean intensity (``mean_intensity``, binned at training deciles);
* tables — per numeric feature, counts in bins cut at the training deciles; per categorical
  feature, category frequencies (unseen categories go to an ``__other__`` bin).

Only bin counts leave this module: no patient values are stored in the reference beyond
decile cut points of the training data, and live summaries are counts, never values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "REFERENCE_FILE",
    "build_reference",
    "drift_scores",
    "ks_binned",
    "merge_counts",
    "psi",
    "summarize_inputs",
]

REFERENCE_FILE = "drift_reference.json"
_BINS = 32
_MAX_REFERENCE = 2000
_OTHER = "__other__"


def _unit(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return np.asarray(arr, dtype=np.float32)


def _is_image(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.ndim >= 2


def _rows(learner: Any, inputs: Sequence[Any]) -> list[dict[str, Any]] | None:
    """Inputs as feature dicts (tabular), or ``None`` when they are not feature rows."""
    first = inputs[0]
    if isinstance(first, Mapping):
        return [dict(v) for v in inputs]
    names = getattr(learner, "feature_names_", None) or getattr(learner, "feature_names", None)
    if isinstance(first, np.ndarray | list | tuple) and np.ndim(first) == 1 and names:
        return [dict(zip(names, list(v), strict=False)) for v in inputs]
    return None


_RASTER = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _materialise(value: Any) -> Any:
    """Lazy raster-image inputs (file paths) are read with Pillow; anything else is kept."""
    if isinstance(value, str | Path) and str(value).lower().endswith(_RASTER):
        from PIL import Image

        with Image.open(value) as im:
            return np.asarray(im)
    return value


def _edges(values: np.ndarray) -> list[float]:
    qs = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))
    return [float(q) for q in qs]


def build_reference(learner: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A JSON-able summary of training inputs for drift monitoring.

    Args:
        learner: the fitted learner (used for feature names of array-valued tabular inputs).
        records: training records; at most 2,000 (evenly spaced) are summarised.

    Returns:
        ``{"kind": "image" | "tabular" | "none", "n": int, "features": {name: spec}}`` where
        each spec holds ``type`` (``numeric``, ``categorical`` or ``histogram``), the bin
        definition and the reference ``counts``.
    """
    if not records:
        return {"kind": "none", "n": 0, "features": {}}
    step = max(1, math.ceil(len(records) / _MAX_REFERENCE))
    inputs = [_materialise(r["input"]) for r in list(records)[::step]]
    if _is_image(inputs[0]):
        hist = np.zeros(_BINS, dtype=np.int64)
        means = []
        for im in inputs:
            u = np.clip(_unit(np.asarray(im)), 0.0, 1.0)
            hist += np.histogram(u, bins=_BINS, range=(0.0, 1.0))[0]
            means.append(float(u.mean()))
        edges = _edges(np.asarray(means))
        ref = {
            "kind": "image",
            "n": len(inputs),
            "features": {
                "intensity": {"type": "histogram", "bins": _BINS, "counts": hist.tolist()},
                "mean_intensity": {
                    "type": "numeric",
                    "edges": edges,
                    "counts": _numeric_counts(np.asarray(means), edges),
                },
            },
        }
        return ref
    rows = _rows(learner, inputs)
    if rows is None:
        return {"kind": "none", "n": len(inputs), "features": {}}
    features: dict[str, Any] = {}
    for name in rows[0]:
        col = [row.get(name) for row in rows]
        nums = _as_numeric(col)
        if nums is not None:
            finite = nums[np.isfinite(nums)]
            if finite.size == 0:
                continue
            edges = _edges(finite)
            features[str(name)] = {
                "type": "numeric",
                "edges": edges,
                "counts": _numeric_counts(nums, edges),
            }
        else:
            cats = sorted({str(v) for v in col if v is not None})[:50]
            features[str(name)] = {
                "type": "categorical",
                "categories": cats,
                "counts": _categorical_counts(col, cats),
            }
    return {"kind": "tabular", "n": len(rows), "features": features}


def _as_numeric(col: Sequence[Any]) -> np.ndarray | None:
    out = np.empty(len(col), dtype=np.float64)
    for i, v in enumerate(col):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out[i] = np.nan
        elif isinstance(v, bool | np.bool_):
            out[i] = float(v)
        elif isinstance(v, int | float | np.integer | np.floating):
            out[i] = float(v)
        else:
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                return None
    return out


def _numeric_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts in ``len(edges) + 1`` bins plus a last bin for missing values."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    idx = np.searchsorted(np.asarray(edges), finite, side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).tolist()
    return [int(c) for c in counts] + [int((~np.isfinite(values)).sum())]


def _categorical_counts(col: Sequence[Any], cats: Sequence[str]) -> list[int]:
    index = {c: i for i, c in enumerate(cats)}
    counts = [0] * (len(cats) + 2)  # + __other__ + missing
    for v in col:
        if v is None:
            counts[-1] += 1
        else:
            counts[index.get(str(v), len(cats))] += 1
    return counts


def summarize_inputs(reference: Mapping[str, Any], inputs: Sequence[Any]) -> dict[str, list[int]]:
    """Bin live inputs against a reference; returns counts per feature (no values).

    Args:
        reference: the dict from :func:`build_reference`.
        inputs: record inputs (image arrays ``(C, H, W)`` or feature dicts).
    """
    out: dict[str, list[int]] = {}
    feats = reference.get("features", {})
    if not inputs or not feats:
        return out
    if reference.get("kind") == "image":
        hist = np.zeros(int(feats["intensity"]["bins"]), dtype=np.int64)
        means = []
        for im in inputs:
            if not _is_image(im):
                continue
            u = np.clip(_unit(np.asarray(im)), 0.0, 1.0)
            hist += np.histogram(u, bins=hist.size, range=(0.0, 1.0))[0]
            means.append(float(u.mean()))
        out["intensity"] = [int(c) for c in hist]
        out["mean_intensity"] = _numeric_counts(np.asarray(means), feats["mean_intensity"]["edges"])
        return out
    rows = [dict(v) for v in inputs if isinstance(v, Mapping)]
    for name, spec in feats.items():
        col = [row.get(name) for row in rows]
        if spec["type"] == "numeric":
            nums = _as_numeric(col)
            if nums is None:  # non-numeric where the training data had numbers
                nums = np.full(len(col), np.nan)
            out[name] = _numeric_counts(nums, spec["edges"])
        else:
            out[name] = _categorical_counts(col, spec["categories"])
    return out


def merge_counts(
    total: dict[str, list[int]], new: Mapping[str, Sequence[int]]
) -> dict[str, list[int]]:
    """Add ``new`` bin counts into ``total`` (in place) and return it."""
    for name, counts in new.items():
        cur = total.get(name)
        if cur is None or len(cur) != len(counts):
            total[name] = [int(c) for c in counts]
        else:
            total[name] = [int(a) + int(b) for a, b in zip(cur, counts, strict=True)]
    return total


def psi(expected: Sequence[float], actual: Sequence[float], *, eps: float = 1e-4) -> float:
    """Population stability index between two binned distributions (counts or shares).

    ``PSI = Σ (a_i − e_i) · ln(a_i / e_i)`` over bins, with shares floored at ``eps``.
    Rule of thumb: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"psi needs equal bin counts; got {e.size} and {a.size}.")
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    e = np.maximum(e / e.sum(), eps)
    a = np.maximum(a / a.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_binned(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Kolmogorov–Smirnov statistic on binned data: max |CDF_e − CDF_a| over bin edges."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    return float(np.max(np.abs(np.cumsum(e) / e.sum() - np.cumsum(a) / a.sum())))


def drift_scores(
    reference: Mapping[str, Any], live: Mapping[str, Sequence[int]]
) -> dict[str, dict[str, float]]:
    """PSI and binned KS per feature between the reference and accumulated live counts.

    Returns:
        ``{feature: {"psi": float, "ks": float, "n": live bin total}}`` for features with
        data (``n`` counts pixels for the ``intensity`` histogram, inputs otherwise).
    """
    out: dict[str, dict[str, float]] = {}
    for name, spec in reference.get("features", {}).items():
        counts = live.get(name)
        if not counts or sum(counts) == 0 or len(counts) != len(spec["counts"]):
            continue
        out[name] = {
            "psi": round(psi(spec["counts"], counts), 6),
            "ks": round(ks_binned(spec["counts"], counts), 6),
            "n": float(sum(counts)),
        }
    return out

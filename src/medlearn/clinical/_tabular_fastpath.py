"""A fast path from already-checked tabular records to the preprocessed matrix.

Records made by :meth:`TabularLearner.read_inputs` / ``records_from_rows`` hold canonical
values: numeric features as finite floats within the schema's range (``None`` when missing),
categories as one of the schema's levels. For such records the second row check and the
scikit-learn ``ColumnTransformer`` (pandas frames, per-step input validation) cost tens of
milliseconds per call for a few dozen numbers. :class:`FastMatrix` is compiled once from the
fitted preprocessing and computes the same matrix with numpy; any record it does not
recognise as canonical makes it answer ``None``, and the learner takes the general path
(which reports bad rows exactly as before).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlearn.clinical._tabular_data import ColumnSpec, _level

__all__ = ["FastMatrix"]


@dataclass
class _NumericBlock:
    """``SimpleImputer(median, add_indicator)`` then ``StandardScaler`` on numeric columns."""

    columns: list[str]
    fill: np.ndarray  # (k,) imputation values
    indicator: list[int]  # column positions that get a missing indicator
    mean: np.ndarray | None
    scale: np.ndarray | None

    def __call__(self, cols: Mapping[str, list[Any]], n: int) -> np.ndarray:
        raw = np.array([cols[c] for c in self.columns], dtype=float).T.reshape(n, -1)
        missing = np.isnan(raw)
        out = np.where(missing, self.fill, raw)
        if self.indicator:
            out = np.hstack([out, missing[:, self.indicator].astype(float)])
        if self.mean is not None:
            out -= self.mean
        if self.scale is not None:
            out /= self.scale
        return out


@dataclass
class _OneHotBlock:
    """``SimpleImputer(most_frequent)`` then ``OneHotEncoder`` on categorical columns."""

    columns: list[str]
    fill: list[str]
    positions: list[dict[str, int]]  # per column: category → output column (dropped: absent)
    widths: list[int]
    dropped: list[str | None]  # per column: the category encoded as all zeros (if_binary)

    def __call__(self, cols: Mapping[str, list[Any]], n: int) -> np.ndarray | None:
        out = np.zeros((n, sum(self.widths)))
        start = 0
        for c, fill, pos, width, dropped in zip(
            self.columns, self.fill, self.positions, self.widths, self.dropped, strict=True
        ):
            for i, v in enumerate(cols[c]):
                key = fill if v is None else v
                j = pos.get(key)
                if j is not None:
                    out[i, start + j] = 1.0
                elif key != dropped:
                    return None  # unknown category: the general path reports it
            start += width
        return out


@dataclass
class _MissingBlock:
    """``MissingIndicator(features='missing-only')`` on categorical columns."""

    columns: list[str]

    def __call__(self, cols: Mapping[str, list[Any]], n: int) -> np.ndarray:
        if not self.columns:
            return np.zeros((n, 0))
        return np.array(
            [[v is None for v in cols[c]] for c in self.columns], dtype=float
        ).T.reshape(n, -1)


class FastMatrix:
    """The preprocessed matrix of canonical records, without pandas or scikit-learn.

    Build it with :meth:`compile`; call :meth:`matrix`. Equal to the learner's general path
    (``check_rows`` → ``_for_sklearn`` → ``ColumnTransformer.transform``) value for value.
    """

    def __init__(
        self,
        features: Sequence[str],
        schema: Mapping[str, ColumnSpec],
        blocks: list[Any],
    ) -> None:
        self.features = list(features)
        self.numeric = [f for f in features if schema[f].type == "numeric"]
        self.bounds = {f: (schema[f].min, schema[f].max) for f in self.numeric}
        # a level is accepted as is only when check_rows would leave it unchanged
        self.levels = {
            f: {lv for lv in (schema[f].levels or []) if _level(lv) == lv}
            for f in features
            if schema[f].type != "numeric"
        }
        self.blocks = blocks

    @classmethod
    def compile(
        cls, preprocessor: Any, schema: Mapping[str, ColumnSpec], features: Sequence[str]
    ) -> FastMatrix | None:
        """A fast path for a fitted ``build_preprocessor`` transformer, or ``None`` when its
        layout is not the one :func:`build_preprocessor` makes (then only the general path runs)."""
        if any(schema[f].type != "numeric" and schema[f].levels is None for f in features):
            return None
        try:
            blocks = [_compile_part(pipe, list(cols)) for _n, pipe, cols in _parts(preprocessor)]
        except (AttributeError, TypeError, ValueError, KeyError, IndexError):
            return None
        if any(b is None for b in blocks):
            return None
        return cls(features, schema, blocks)

    def matrix(self, records: Sequence[Any]) -> np.ndarray | None:
        """``(N, columns)`` for canonical ``records``; ``None`` as soon as one is not."""
        cols = self._columns(records)
        if cols is None:
            return None
        n = len(records)
        parts = []
        for block in self.blocks:
            part = block(cols, n)
            if part is None:
                return None
            parts.append(part)
        return np.hstack(parts) if parts else np.zeros((n, 0))

    def _columns(self, records: Sequence[Any]) -> dict[str, list[Any]] | None:
        cols: dict[str, list[Any]] = {f: [] for f in self.features}
        for rec in records:
            inp = rec["input"]
            if not isinstance(inp, dict):
                return None
            for f in self.numeric:
                v = inp.get(f)
                if v is None or (type(v) is float and math.isnan(v)):
                    cols[f].append(math.nan)
                    continue
                if type(v) is not float or math.isinf(v):
                    return None
                lo, hi = self.bounds[f]
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    return None
                cols[f].append(v)
            for f, allowed in self.levels.items():
                v = inp.get(f)
                if v is not None and not (type(v) is str and v in allowed):
                    return None
                cols[f].append(v)
        return cols


def _parts(preprocessor: Any) -> list[tuple[str, Any, list[str]]]:
    parts = []
    for name, pipe, cols in preprocessor.transformers_:
        if name == "remainder":
            if pipe != "drop":
                raise ValueError("remainder columns are passed through")
            continue
        parts.append((name, pipe, cols))
    return parts


def _compile_part(pipe: Any, cols: list[str]) -> Any:
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if isinstance(pipe, MissingIndicator):
        if pipe.features != "missing-only" or not _is_nan(pipe.missing_values):
            return None
        return _MissingBlock([cols[int(i)] for i in pipe.features_])
    if not isinstance(pipe, Pipeline) or len(pipe.steps) != 2:
        return None
    (_, imp), (_, second) = pipe.steps
    if not isinstance(imp, SimpleImputer) or not _is_nan(imp.missing_values):
        return None
    if isinstance(second, StandardScaler) and imp.strategy == "median":
        fill = np.asarray(imp.statistics_, dtype=float)
        if np.isnan(fill).any():
            return None
        indicator: list[int] = []
        if imp.add_indicator:
            ind = imp.indicator_
            if ind.features != "missing-only":
                return None
            indicator = [int(i) for i in ind.features_]
        return _NumericBlock(
            cols,
            fill,
            indicator,
            np.asarray(second.mean_, dtype=float) if second.with_mean else None,
            np.asarray(second.scale_, dtype=float) if second.with_std else None,
        )
    if isinstance(second, OneHotEncoder) and imp.strategy == "most_frequent":
        if imp.add_indicator or getattr(second, "_infrequent_enabled", False):
            return None
        fills = [str(s) for s in imp.statistics_]
        if any(type(s) is not str for s in imp.statistics_):
            return None
        positions: list[dict[str, int]] = []
        widths: list[int] = []
        drops: list[str | None] = []
        drop_idx = second.drop_idx_
        for k, cats in enumerate(second.categories_):
            names = [str(c) for c in cats]
            if any(type(c) is not str for c in cats):
                return None
            dropped = None if drop_idx is None or drop_idx[k] is None else int(drop_idx[k])
            kept = [c for i, c in enumerate(names) if i != dropped]
            positions.append({c: i for i, c in enumerate(kept)})
            widths.append(len(kept))
            drops.append(None if dropped is None else names[dropped])
        return _OneHotBlock(cols, fills, positions, widths, drops)
    return None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)

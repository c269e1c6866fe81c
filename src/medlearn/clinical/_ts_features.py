"""Featurisation of irregular ICU time series, fitted on training patients only.

:class:`TimeSeriesFeaturizer` turns records of the canonical event table into fixed arrays:

- the binned view (GRU-D inputs): value (last in each bin, normalised), observation mask and
  hours since the variable was last observed, shape ``(N, T, V)``;
- static features (normalised numbers, one-hot categories, missing indicators);
- summary statistics per variable (for the scikit-learn baselines);
- the irregular event view (time, variable, normalised value) for attention models.

Everything is vectorised over all events of all records at once; the fitted state is plain
JSON (:meth:`TimeSeriesFeaturizer.to_dict`).

Physiological ranges (:data:`PHYSIO_RANGES`): plausible adult values for the PhysioNet/CinC
2012 variables (units of the challenge's variable list: mmHg, mg/dL, mmol/L, %, degrees C,
mL, kg ...), wide enough to keep every real extreme and narrow enough to catch unit slips and
zero placeholders (an arterial pressure of 0 when the line is off, a pH of 735). Values outside
are clipped to the bound and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["PHYSIO_RANGES", "SUMMARY_STATS", "TimeSeriesFeaturizer"]

#: variable -> (low, high) plausible adult range used for clipping.
PHYSIO_RANGES: dict[str, tuple[float, float]] = {
    "ALP": (1.0, 3000.0),
    "ALT": (1.0, 10000.0),
    "AST": (1.0, 10000.0),
    "Albumin": (0.5, 7.0),
    "BUN": (1.0, 250.0),
    "Bilirubin": (0.0, 60.0),
    "Cholesterol": (30.0, 700.0),
    "Creatinine": (0.1, 25.0),
    "DiasABP": (10.0, 200.0),
    "FiO2": (0.21, 1.0),
    "GCS": (3.0, 15.0),
    "Glucose": (10.0, 1500.0),
    "HCO3": (5.0, 60.0),
    "HCT": (10.0, 70.0),
    "HR": (20.0, 250.0),
    "K": (1.5, 10.0),
    "Lactate": (0.2, 30.0),
    "MAP": (20.0, 250.0),
    "MechVent": (0.0, 1.0),
    "Mg": (0.5, 6.0),
    "NIDiasABP": (10.0, 200.0),
    "NIMAP": (20.0, 250.0),
    "NISysABP": (40.0, 300.0),
    "Na": (100.0, 180.0),
    "PaCO2": (10.0, 150.0),
    "PaO2": (20.0, 700.0),
    "Platelets": (1.0, 1500.0),
    "RespRate": (0.0, 80.0),
    "SaO2": (40.0, 100.0),
    "SysABP": (40.0, 300.0),
    "Temp": (25.0, 45.0),
    "TroponinI": (0.0, 100.0),
    "TroponinT": (0.0, 50.0),
    "Urine": (0.0, 5000.0),
    "WBC": (0.0, 300.0),
    "Weight": (20.0, 350.0),
    "pH": (6.5, 8.0),
    # descriptors
    "Age": (15.0, 110.0),
    "Height": (100.0, 230.0),
}

#: Per-variable summary statistics, in column order. ``early`` / ``late`` are the first and
#: second halves of the window; ``slope`` is the least-squares trend in units per hour;
#: ``hours_first`` is the hour of the first observation.
SUMMARY_STATS = (
    "first",
    "last",
    "min",
    "max",
    "mean",
    "std",
    "count",
    "hours_since_last",
    "sum",
    "hours_first",
    "mean_early",
    "mean_late",
    "min_late",
    "max_late",
    "slope",
)


def _flatten(records: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All events of all records: (record index, time, code, value) flat arrays."""
    times, codes, values, owner = [], [], [], []
    for i, rec in enumerate(records):
        ev = rec["input"]["events"]
        t = np.asarray(ev["time"], dtype=np.float64)
        times.append(t)
        codes.append(np.asarray(ev["code"]).astype(str))
        values.append(np.asarray(ev["value"], dtype=np.float64))
        owner.append(np.full(len(t), i, dtype=np.int64))
    if not times:
        return (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, dtype=str), np.zeros(0))
    return (
        np.concatenate(owner),
        np.concatenate(times),
        np.concatenate(codes),
        np.concatenate(values),
    )


class TimeSeriesFeaturizer:
    """Binned, summary, static and event views of ICU stays; fitted on training records.

    Args:
        hours: the window from admission (events after it are ignored).
        bin_hours: bin width; ``n_bins = ceil(hours / bin_hours)``.
        variables: the variable codes to use, in order; default every code with a numeric
            value in the training records (sorted).
        clip: clip values to :data:`PHYSIO_RANGES`.
        max_events: length of the irregular event view (the last events in the window).
    """

    def __init__(
        self,
        *,
        hours: float = 48.0,
        bin_hours: float = 1.0,
        variables: Sequence[str] | None = None,
        clip: bool = True,
        max_events: int = 1024,
    ) -> None:
        if not hours > 0 or not bin_hours > 0:
            raise ValueError("hours and bin_hours must be positive.")
        if int(max_events) < 1:
            raise ValueError("max_events must be >= 1.")
        self.hours = float(hours)
        self.bin_hours = float(bin_hours)
        self.variables: list[str] = list(variables) if variables is not None else []
        self._fixed_variables = variables is not None
        self.clip = bool(clip)
        self.max_events = int(max_events)
        self.n_bins = int(math.ceil(self.hours / self.bin_hours - 1e-9))
        self.mean: list[float] = []
        self.std: list[float] = []
        self.static_numeric: dict[str, tuple[float, float]] = {}
        self.static_levels: dict[str, list[str]] = {}
        self.static_names: list[str] = []
        self.summary_names: list[str] = []
        self.fitted = False
        self.last_clipped = 0

    # -- helpers -----------------------------------------------------------------------------
    def _events(self, records: Sequence[Any]) -> tuple[np.ndarray, ...]:
        """Known-variable, in-window, numeric events sorted by (record, time): (owner, time,
        var index, clipped value)."""
        import pandas as pd

        owner, t, code, value = _flatten(records)
        index = {v: i for i, v in enumerate(self.variables)}
        if len(code):
            inv, uniq = pd.factorize(code)
            lut = np.array([index.get(str(u), -1) for u in uniq] + [-1], dtype=np.int64)
            var = lut[inv]
        else:
            var = np.zeros(0, np.int64)
        keep = (var >= 0) & np.isfinite(value) & np.isfinite(t) & (t >= 0) & (t <= self.hours)
        owner, t, var, value = owner[keep], t[keep], var[keep], value[keep]
        if len(t) > 1:
            same = owner[1:] == owner[:-1]
            if not np.all((owner[1:] > owner[:-1]) | (same & (t[1:] >= t[:-1]))):
                order = np.lexsort((t, owner))
                owner, t, var, value = owner[order], t[order], var[order], value[order]
        self.last_clipped = 0
        if self.clip and len(value):
            lo = np.array([PHYSIO_RANGES.get(v, (-np.inf, np.inf))[0] for v in self.variables])
            hi = np.array([PHYSIO_RANGES.get(v, (-np.inf, np.inf))[1] for v in self.variables])
            clipped = np.clip(value, lo[var], hi[var])
            self.last_clipped = int((clipped != value).sum())
            value = clipped
        return owner, t, var, value

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, records: Sequence[Any]) -> TimeSeriesFeaturizer:
        """Learn variables, normalisation and static encodings from training records only."""
        if not self._fixed_variables:
            import pandas as pd

            _, _, code, value = _flatten(records)
            self.variables = sorted(str(c) for c in pd.unique(code[np.isfinite(value)]))
        owner, t, var, value = self._events(records)
        V = len(self.variables)
        counts = np.bincount(var, minlength=V).astype(np.float64)
        sums = np.bincount(var, weights=value, minlength=V)
        mean = np.divide(sums, counts, out=np.zeros(V), where=counts > 0)
        sq = np.bincount(var, weights=(value - mean[var]) ** 2, minlength=V)
        std = np.sqrt(np.divide(sq, counts, out=np.zeros(V), where=counts > 0))
        std[~(std > 1e-8)] = 1.0
        self.mean, self.std = mean.tolist(), std.tolist()
        # statics: numbers are z-scored, strings one-hot; every static has a missing indicator
        numeric: dict[str, list[float]] = {}
        levels: dict[str, set[str]] = {}
        for rec in records:
            for name, val in (rec["input"].get("static") or {}).items():
                if isinstance(val, str):
                    levels.setdefault(name, set()).add(val)
                elif val is not None and isinstance(val, (int, float)) and math.isfinite(val):
                    numeric.setdefault(name, []).append(float(val))
                elif name not in levels:
                    numeric.setdefault(name, [])
        self.static_numeric = {}
        for name, vals in sorted(numeric.items()):
            if name in levels:
                continue
            arr = np.asarray(vals, dtype=np.float64)
            if self.clip and name in PHYSIO_RANGES and len(arr):
                arr = np.clip(arr, *PHYSIO_RANGES[name])
            m = float(arr.mean()) if len(arr) else 0.0
            s = float(arr.std()) if len(arr) else 1.0
            self.static_numeric[name] = (m, s if s > 1e-8 else 1.0)
        self.static_levels = {k: sorted(v) for k, v in sorted(levels.items())}
        self._names()
        self.fitted = True
        return self

    def _names(self) -> None:
        names: list[str] = []
        for name in self.static_numeric:
            names += [name, f"{name}_missing"]
        for name, lv in self.static_levels.items():
            names += [f"{name}={x}" for x in lv] + [f"{name}_missing"]
        self.static_names = names
        self.summary_names = [f"{v}_{s}" for v in self.variables for s in SUMMARY_STATS] + list(
            self.static_names
        )

    # -- transform ---------------------------------------------------------------------------
    def _static(self, records: Sequence[Any]) -> np.ndarray:
        out = np.zeros((len(records), len(self.static_names)), dtype=np.float32)
        col = {n: j for j, n in enumerate(self.static_names)}
        for i, rec in enumerate(records):
            st = rec["input"].get("static") or {}
            for name, (m, s) in self.static_numeric.items():
                val = st.get(name)
                ok = isinstance(val, (int, float)) and val is not None and math.isfinite(val)
                if ok:
                    x = float(val)
                    if self.clip and name in PHYSIO_RANGES:
                        x = min(max(x, PHYSIO_RANGES[name][0]), PHYSIO_RANGES[name][1])
                    out[i, col[name]] = (x - m) / s
                else:
                    out[i, col[f"{name}_missing"]] = 1.0
            for name, lv in self.static_levels.items():
                val = st.get(name)
                if isinstance(val, str) and val in lv:
                    out[i, col[f"{name}={val}"]] = 1.0
                else:
                    out[i, col[f"{name}_missing"]] = 1.0
        return out

    def transform(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        """Arrays for ``records`` (see the module docstring); shapes ``(N, ...)``.

        Raises:
            RuntimeError: if the featuriser is not fitted.
        """
        if not self.fitted:
            raise RuntimeError("TimeSeriesFeaturizer.transform called before fit.")
        N, T, V, E = len(records), self.n_bins, len(self.variables), self.max_events
        owner, t, var, raw = self._events(records)
        mean, std = np.asarray(self.mean), np.asarray(self.std)
        norm = (raw - mean[var]) / std[var] if len(raw) else raw
        # --- binned view: last value per (record, bin, variable)
        b = np.minimum((t / self.bin_hours).astype(np.int64), T - 1)
        key = (owner * T + b) * V + var
        order = np.argsort(key, kind="stable")  # events are time-sorted within a record
        sk = key[order]
        last = np.r_[sk[1:] != sk[:-1], True] if len(sk) else np.zeros(0, bool)
        pick = order[last]
        values = np.zeros(N * T * V, dtype=np.float32)
        mask = np.zeros(N * T * V, dtype=np.float32)
        obs_t = np.full(N * T * V, -np.inf)
        values[key[pick]] = norm[pick]
        mask[key[pick]] = 1.0
        obs_t[key[pick]] = t[pick]
        values, mask = values.reshape(N, T, V), mask.reshape(N, T, V)
        last_t = np.maximum.accumulate(obs_t.reshape(N, T, V), axis=1)
        bin_end = np.minimum((np.arange(T) + 1) * self.bin_hours, self.hours)[None, :, None]
        delta = np.minimum(bin_end - last_t, self.hours).astype(np.float32)
        # --- summary statistics per (record, variable), on clipped raw values
        gkey = owner * V + var
        gorder = np.argsort(gkey, kind="stable")
        gk = gkey[gorder]
        S = len(SUMMARY_STATS)
        summary = np.full((N * V, S), np.nan)
        summary[:, 6] = 0.0
        summary[:, 8] = 0.0
        if len(gk):
            starts = np.r_[0, np.nonzero(gk[1:] != gk[:-1])[0] + 1]
            ends = np.r_[starts[1:], len(gk)]
            gv, gt = raw[gorder], t[gorder]
            groups = gk[starts]
            cnt = (ends - starts).astype(np.float64)
            s1 = np.add.reduceat(gv, starts)
            mu = s1 / cnt
            s2 = np.add.reduceat((gv - np.repeat(mu, ends - starts)) ** 2, starts)
            summary[groups, 0] = gv[starts]
            summary[groups, 1] = gv[ends - 1]
            summary[groups, 2] = np.minimum.reduceat(gv, starts)
            summary[groups, 3] = np.maximum.reduceat(gv, starts)
            summary[groups, 4] = mu
            summary[groups, 5] = np.sqrt(s2 / cnt)
            summary[groups, 6] = cnt
            summary[groups, 7] = self.hours - gt[ends - 1]
            summary[groups, 8] = s1
            summary[groups, 9] = gt[starts]
            late = gt >= self.hours / 2
            n_late = np.add.reduceat(late.astype(np.float64), starts)
            s_late = np.add.reduceat(np.where(late, gv, 0.0), starts)
            with np.errstate(invalid="ignore", divide="ignore"):
                summary[groups, 10] = np.where(cnt > n_late, (s1 - s_late) / (cnt - n_late), np.nan)
                summary[groups, 11] = np.where(n_late > 0, s_late / n_late, np.nan)
                lo = np.minimum.reduceat(np.where(late, gv, np.inf), starts)
                hi = np.maximum.reduceat(np.where(late, gv, -np.inf), starts)
                summary[groups, 12] = np.where(n_late > 0, lo, np.nan)
                summary[groups, 13] = np.where(n_late > 0, hi, np.nan)
                tc = gt - np.repeat(np.add.reduceat(gt, starts) / cnt, ends - starts)
                sxx = np.add.reduceat(tc * tc, starts)
                sxy = np.add.reduceat(tc * (gv - np.repeat(mu, ends - starts)), starts)
                summary[groups, 14] = np.where(sxx > 1e-6, sxy / np.maximum(sxx, 1e-6), np.nan)
        static = self._static(records)
        summary = np.concatenate([summary.reshape(N, V * S), static], axis=1).astype(np.float32)
        # --- irregular event view: the last max_events events, left-aligned in time order
        eorder = np.arange(len(owner))
        eo = owner
        n_per = np.bincount(eo, minlength=N)
        first_of = np.r_[0, np.cumsum(n_per)[:-1]]
        rank = np.arange(len(eo)) - first_of[eo]
        skip = np.maximum(n_per - E, 0)
        keep = rank >= skip[eo]
        pos = rank - skip[eo]
        ev_time = np.zeros((N, E), dtype=np.float32)
        ev_var = np.zeros((N, E), dtype=np.int64)
        ev_val = np.zeros((N, E), dtype=np.float32)
        ev_mask = np.zeros((N, E), dtype=np.float32)
        sel = eorder[keep]
        rows, cols = eo[keep], pos[keep]
        ev_time[rows, cols] = t[sel]
        ev_var[rows, cols] = var[sel] + 1
        ev_val[rows, cols] = norm[sel]
        ev_mask[rows, cols] = 1.0
        return {
            "values": values,
            "mask": mask,
            "delta": delta,
            "static": static,
            "summary": summary,
            "event_time": ev_time,
            "event_var": ev_var,
            "event_value": ev_val,
            "event_mask": ev_mask,
        }

    def fit_transform(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        """:meth:`fit` then :meth:`transform` on the same records."""
        return self.fit(records).transform(records)

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The configuration and fitted state as plain JSON values."""
        return {
            "hours": self.hours,
            "bin_hours": self.bin_hours,
            "variables": list(self.variables),
            "fixed_variables": self._fixed_variables,
            "clip": self.clip,
            "max_events": self.max_events,
            "mean": [float(x) for x in self.mean],
            "std": [float(x) for x in self.std],
            "static_numeric": {
                k: [float(m), float(s)] for k, (m, s) in self.static_numeric.items()
            },
            "static_levels": {k: list(v) for k, v in self.static_levels.items()},
            "fitted": self.fitted,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimeSeriesFeaturizer:
        """Rebuild a featuriser saved with :meth:`to_dict` (no code is executed)."""
        f = cls(
            hours=float(d["hours"]),
            bin_hours=float(d["bin_hours"]),
            variables=[str(v) for v in d["variables"]],
            clip=bool(d["clip"]),
            max_events=int(d["max_events"]),
        )
        f._fixed_variables = bool(d.get("fixed_variables", True))
        f.mean = [float(x) for x in d["mean"]]
        f.std = [float(x) for x in d["std"]]
        f.static_numeric = {
            str(k): (float(v[0]), float(v[1])) for k, v in d["static_numeric"].items()
        }
        f.static_levels = {str(k): [str(x) for x in v] for k, v in d["static_levels"].items()}
        f.fitted = bool(d["fitted"])
        f._names()
        return f

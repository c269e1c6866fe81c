"""Figures of the survival report (matplotlib Agg, embedded as PNG data URIs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medlearn.evaluation._figures import PALETTE, _new_figure, _png, _style

__all__ = ["calibration_png", "km_by_group_png", "td_auc_png"]


def km_by_group_png(frame: pd.DataFrame) -> tuple[str, float | None]:
    """Kaplan-Meier curves per ``risk_group``; returns the PNG URI and the log-rank p-value."""
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    fig = _new_figure(6.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    for k, group in enumerate(("low", "medium", "high")):
        sub = frame[frame["risk_group"] == group]
        if sub.empty:
            continue
        km = KaplanMeierFitter().fit(sub["time"], sub["event"], label=f"{group} (n={len(sub)})")
        sf = km.survival_function_
        ax.step(sf.index, sf.iloc[:, 0], where="post", color=PALETTE[k], label=km._label)
    ax.set_xlabel("time")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, frameon=False)
    p = None
    if frame["risk_group"].nunique() > 1:
        p = float(
            multivariate_logrank_test(frame["time"], frame["risk_group"], frame["event"]).p_value
        )
    return _png(fig), p


def calibration_png(calibration: Sequence[dict[str, Any]]) -> str:
    """Predicted vs observed survival per risk decile, one panel per horizon."""
    n = max(1, len(calibration))
    fig = _new_figure(3.0 * n, 3.2, wspace=0.35)
    for k, item in enumerate(calibration):
        ax = fig.add_subplot(1, n, k + 1)
        _style(ax)
        ax.plot([0, 1], [0, 1], color="#94a3b8", linestyle="--", linewidth=1)
        ax.plot(item["predicted"], item["observed"], "o-", color=PALETTE[k % len(PALETTE)])
        ax.set_title(f"t = {item['horizon']:g}", fontsize=9)
        ax.set_xlabel("predicted survival")
        if k == 0:
            ax.set_ylabel("observed (KM)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    return _png(fig)


def td_auc_png(per_horizon: Sequence[dict[str, Any]]) -> str:
    """Time-dependent AUC with its 95% CI per horizon."""
    fig = _new_figure(5.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    h = np.array([p["horizon"] for p in per_horizon], dtype=float)
    v = np.array([np.nan if p["value"] is None else p["value"] for p in per_horizon], dtype=float)
    ax.plot(h, v, "o-", color=PALETTE[0])
    lo = [p["ci95"][0] if p.get("ci95") else np.nan for p in per_horizon]
    hi = [p["ci95"][1] if p.get("ci95") else np.nan for p in per_horizon]
    ax.fill_between(h, lo, hi, color=PALETTE[0], alpha=0.15)
    ax.axhline(0.5, color="#94a3b8", linestyle="--", linewidth=1)
    ax.set_xlabel("time")
    ax.set_ylabel("AUC(t)")
    ax.set_ylim(0.4, 1.0)
    return _png(fig)

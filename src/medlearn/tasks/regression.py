"""Regression: predict val and test, score RMSE / MAE / R² with bootstrap CIs, predict rows.

Learners return predictions ``(N, 1)`` from ``predict_logits`` for regression tasks (target
units; no calibration or threshold applies). The report gains a predicted-vs-true scatter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn.data import Record
from medlearn.registry import TASKS
from medlearn.tasks import ReportParts, RunContext, TaskOutcome

__all__ = ["RegressionTask"]

_DEFAULT_METRICS = ("rmse", "mae", "r2")


def _metrics_of(cfg: Any) -> list[str]:
    from medlearn.registry import METRICS

    wanted = list(cfg.evaluation.metrics) if cfg is not None else []
    chosen = [m for m in wanted if "regression" in (METRICS.meta(m).get("tasks") or ())]
    return chosen or list(_DEFAULT_METRICS)


def _predictions(learner: Any, records: Sequence[Record]) -> np.ndarray:
    out = np.asarray(learner.predict_logits(records), dtype=float)
    return out.reshape(len(records), -1)[:, 0]


def _frame(records: Sequence[Record], split: str, pred: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [r["id"] for r in records],
            "patient_id": [r["patient_id"] for r in records],
            "split": split,
            "target": [np.nan if r["target"] is None else float(r["target"]) for r in records],
            "prediction": pred.astype(float),
        }
    )


@TASKS.register("regression")
class RegressionTask:
    """The handler for ``regression`` tasks."""

    def run(self, ctx: RunContext) -> TaskOutcome:
        parts = ctx.parts
        ctx.echo("[4/6] predicting val and test")
        splits = [s for s in ("val", "test") if parts.get(s)]
        t0 = time.perf_counter()
        frames = [_frame(parts[s], s, _predictions(ctx.learner, parts[s])) for s in splits]
        seconds = time.perf_counter() - t0
        frame = pd.concat(frames, ignore_index=True) if frames else _frame([], "test", np.zeros(0))
        ctx.echo("[5/6] evaluating with bootstrap CIs")
        metrics = {
            s: self._score(frame[frame["split"] == s], ctx.cfg)
            for s in ("test", "val")
            if s in splits
        }
        return TaskOutcome(predictions=frame, metrics=metrics, predict_seconds=seconds)

    @staticmethod
    def _score(frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        from medlearn.evaluation import evaluate_predictions

        if frame.empty:
            return {}
        return evaluate_predictions(
            frame["target"].to_numpy(dtype=float),
            frame["prediction"].to_numpy(dtype=float),
            task="regression",
            metrics=_metrics_of(cfg),
            bootstrap=cfg.evaluation.bootstrap if cfg is not None else 1000,
            seed=cfg.training.seed if cfg is not None else 0,
            groups=frame["patient_id"].astype(str).to_numpy(),
        )

    def score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Metrics with CIs of a predictions table (e.g. pooled out-of-fold predictions)."""
        return self._score(frame, cfg)

    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: Any,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome:
        t0 = time.perf_counter()
        pred = _predictions(learner, records)
        seconds = time.perf_counter() - t0
        frame = _frame(records, "test", pred)
        return TaskOutcome(
            predictions=frame, metrics={"test": self._score(frame, cfg)}, predict_seconds=seconds
        )

    def predict(
        self,
        learner: Any,
        manifest: dict[str, Any],
        records: Sequence[Record],
        explain_dir: Path | None = None,
        output_dir: Path | None = None,
    ) -> list[dict[str, Any]]:
        pred = _predictions(learner, records)
        explanations: list[Any] = []
        if explain_dir is not None and hasattr(learner, "explain"):
            explanations = learner.explain(records, [0] * len(records))
        rows = []
        for i, rec in enumerate(records):
            row: dict[str, Any] = {
                "input": rec["id"],
                "prediction": round(float(pred[i]), 6),
                "model": manifest.get("name"),
            }
            if i < len(explanations) and getattr(explanations[i], "features", None):
                feats = explanations[i].features
                top = sorted(feats.items(), key=lambda kv: -abs(kv[1]))[:10]
                row["explanation"] = {"method": explanations[i].method, "features": dict(top)}
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
        split = "test" if (frame["split"] == "test").any() else "cv"
        sub = frame[frame["split"] == split]
        if sub.empty:
            return ReportParts()
        return ReportParts(sections=[("scatter", "Predicted vs true", _scatter_html(sub, split))])


def _scatter_html(frame: pd.DataFrame, split: str) -> str:
    """A predicted-vs-true scatter as an embedded PNG, with the identity line."""
    import base64
    import html
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = frame["target"].to_numpy(dtype=float)
    p = frame["prediction"].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=110)
    ax.scatter(y, p, s=10, alpha=0.6)
    lo = float(np.nanmin([y.min(), p.min()]))
    hi = float(np.nanmax([y.max(), p.max()]))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(f"{split} split (n={len(y)})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img src="{uri}" alt="predicted vs true scatter">'
        f"<figcaption>{html.escape(split)} predictions against the true values; the dashed "
        "line is perfect agreement.</figcaption></figure>"
    )

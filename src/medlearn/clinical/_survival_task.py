"""The ``survival`` task handler: risks, survival at horizons, C-indices, KM report, treatment.

Predictions table columns: ``id``, ``patient_id``, ``split``, ``time``, ``event``, ``risk``,
``risk_group`` (low / medium / high by tertiles of the training risks), ``surv@<h>`` (survival
probability at each horizon ``h``) and ``ibs@<g>`` (survival on the grid of the integrated
Brier score); with a treatment column also ``risk_arm0``, ``risk_arm1``, ``recommended_arm``.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn.clinical._survival_learner import survival_arrays
from medlearn.data import Record
from medlearn.registry import TASKS
from medlearn.tasks import ReportParts, RunContext, TaskOutcome

__all__ = ["SurvivalTask", "default_horizons"]

_GROUPS = ("low", "medium", "high")
_IBS_POINTS = 20
_TOP_FEATURES = 5


def default_horizons(time: np.ndarray, event: np.ndarray) -> list[float]:
    """The 25/50/75% quantiles of the event times (distinct, rounded to 4 significant digits)."""
    events = time[event.astype(bool)]
    if events.size == 0:
        events = time
    qs = np.quantile(events, [0.25, 0.5, 0.75])
    return sorted({float(f"{q:.4g}") for q in qs})


def _ibs_grid(time: np.ndarray, event: np.ndarray) -> list[float]:
    events = time[event.astype(bool)]
    if events.size == 0:
        events = time
    lo, hi = np.quantile(events, [0.1, 0.9])
    if hi <= lo:
        hi = lo + 1.0
    return [float(f"{g:.6g}") for g in np.linspace(lo, hi, _IBS_POINTS)]


def _columns(frame: pd.DataFrame, prefix: str) -> tuple[list[str], list[float]]:
    cols = [c for c in frame.columns if c.startswith(prefix) and frame[c].notna().all()]
    pairs = sorted((float(c[len(prefix) :]), c) for c in cols)
    return [c for _, c in pairs], [h for h, _ in pairs]


def _groups(risk: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    return np.array([_GROUPS[int(k)] for k in np.searchsorted(np.asarray(cuts), risk, "right")])


def _frame(
    learner: Any,
    records: Sequence[Record],
    split: str,
    horizons: list[float],
    grid: list[float],
    cuts: Sequence[float],
) -> pd.DataFrame:
    risk = learner.predict_risk(records)
    surv = learner.predict_survival(records, [*horizons, *grid])
    labelled = all(isinstance(r.get("target"), dict) for r in records)
    t, e = survival_arrays(records) if labelled else (np.full(len(records), np.nan), None)
    data: dict[str, Any] = {
        "id": [r["id"] for r in records],
        "patient_id": [r["patient_id"] for r in records],
        "split": split,
        "time": t,
        "event": e if e is not None else np.full(len(records), -1),
        "risk": risk,
        "risk_group": _groups(risk, cuts),
    }
    for k, h in enumerate(horizons):
        data[f"surv@{h:g}"] = surv[:, k]
    for k, g in enumerate(grid):
        data[f"ibs@{g:g}"] = surv[:, len(horizons) + k]
    frame = pd.DataFrame(data)
    if learner.treatment_index is not None:
        arms = learner.risk_by_arm(records)
        frame["risk_arm0"], frame["risk_arm1"] = arms[:, 0], arms[:, 1]
        frame["recommended_arm"] = arms.argmin(axis=1)
        frame["actual_arm"] = [int(r["input"][learner.treatment_index]) for r in records]
        frame["true_log_hr"] = [float(r["meta"].get("true_log_hr", np.nan)) for r in records]
    return frame


def _score(
    frame: pd.DataFrame,
    *,
    train: tuple[np.ndarray, np.ndarray] | None,
    bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    from medlearn.evaluation.survival import evaluate_survival

    h_cols, horizons = _columns(frame, "surv@")
    g_cols, grid = _columns(frame, "ibs@")
    return evaluate_survival(
        frame["time"].to_numpy(float),
        frame["event"].to_numpy(int),
        frame["risk"].to_numpy(float),
        survival=frame[g_cols].to_numpy(float) if len(g_cols) >= 2 else None,
        horizons=grid if len(g_cols) >= 2 else [],
        train_time=None if train is None else train[0],
        train_event=None if train is None else train[1],
        bootstrap=bootstrap,
        seed=seed,
        groups=frame["patient_id"].astype(str).to_numpy(),
    ) | _td_auc_only(frame, h_cols, horizons, train, bootstrap, seed)


def _td_auc_only(
    frame: pd.DataFrame,
    h_cols: list[str],
    horizons: list[float],
    train: tuple[np.ndarray, np.ndarray] | None,
    bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """``td_auc`` at the report horizons (the IBS grid above is only for the Brier score)."""
    from medlearn.evaluation.survival import evaluate_survival

    if not horizons:
        return {}
    out = evaluate_survival(
        frame["time"].to_numpy(float),
        frame["event"].to_numpy(int),
        frame["risk"].to_numpy(float),
        horizons=horizons,
        train_time=None if train is None else train[0],
        train_event=None if train is None else train[1],
        bootstrap=bootstrap,
        seed=seed,
        groups=frame["patient_id"].astype(str).to_numpy(),
    )
    return {"td_auc": out["td_auc"]} if "td_auc" in out else {}


def _recommendation(frame: pd.DataFrame) -> dict[str, Any]:
    """DeepSurv's treatment-recommendation evaluation on a labelled predictions table."""
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test

    rec = frame["recommended_arm"].to_numpy(int)
    actual = frame["actual_arm"].to_numpy(int)
    followed = rec == actual
    out: dict[str, Any] = {
        "n": len(frame),
        "fraction_recommended_treatment": round(float(rec.mean()), 6),
        "fraction_followed": round(float(followed.mean()), 6),
    }
    hr = frame["true_log_hr"].to_numpy(float)
    known = np.isfinite(hr)
    if known.any():
        truly_better = (hr[known] < 0).astype(int)  # hr: true log hazard ratio of treatment
        out["fraction_truly_better"] = round(float((rec[known] == truly_better).mean()), 6)
    t, e = frame["time"].to_numpy(float), frame["event"].to_numpy(int)
    if followed.any() and (~followed).any():
        medians = {}
        for name, mask in (("followed", followed), ("not_followed", ~followed)):
            km = KaplanMeierFitter().fit(t[mask], e[mask])
            m = float(km.median_survival_time_)
            medians[name] = None if not np.isfinite(m) else round(m, 6)
        test = logrank_test(t[followed], t[~followed], e[followed], e[~followed])
        out["median_survival"] = medians
        out["logrank_p"] = float(test.p_value)
    return out


def _permutation_importance(
    learner: Any, records: Sequence[Record], *, seed: int, repeats: int = 3
) -> list[dict[str, Any]]:
    """Mean drop in Harrell's C when one covariate is permuted across patients."""
    from medlearn.data import make_record
    from medlearn.evaluation.survival import c_index

    t, e = survival_arrays(records)
    x = np.stack([np.asarray(r["input"], dtype=np.float64) for r in records])
    base = c_index(t, e, learner.predict_risk(records))
    rng = np.random.default_rng(seed)
    rows = []
    for j, name in enumerate(learner.schema.features):
        drops = []
        for _ in range(repeats):
            xp = x.copy()
            xp[:, j] = xp[rng.permutation(len(xp)), j]
            recs = [make_record(str(i), xp[i]) for i in range(len(xp))]
            drops.append(base - c_index(t, e, learner.predict_risk(recs)))
        rows.append({"feature": name, "drop_c_index": round(float(np.mean(drops)), 6)})
    return sorted(rows, key=lambda r: -r["drop_c_index"])


@TASKS.register("survival")
class SurvivalTask:
    """The handler for ``task: survival``."""

    # -- after fit ---------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> TaskOutcome:
        from medlearn.evaluation.survival import calibration_at_horizons

        cfg, parts, learner = ctx.cfg, ctx.parts, ctx.learner
        ctx.echo("[4/6] predicting risks and survival curves")
        train_t, train_e = survival_arrays(parts["train"])
        horizons = [float(h) for h in cfg.evaluation.horizons] or default_horizons(train_t, train_e)
        grid = _ibs_grid(train_t, train_e)
        cuts = [float(c) for c in np.quantile(learner.predict_risk(parts["train"]), [1 / 3, 2 / 3])]
        splits = [s for s in ("val", "test") if parts.get(s)]
        t0 = time.perf_counter()
        frames = {s: _frame(learner, parts[s], s, horizons, grid, cuts) for s in splits}
        seconds = time.perf_counter() - t0
        frame = pd.concat(list(frames.values()), ignore_index=True)
        ctx.echo("[5/6] evaluating with bootstrap CIs")
        ev = cfg.evaluation
        metrics = {
            s: _score(
                frames[s], train=(train_t, train_e), bootstrap=ev.bootstrap, seed=cfg.training.seed
            )
            for s in ("test", "val")
            if s in frames
        }
        doc: dict[str, Any] = {"horizons": horizons, "ibs_grid": grid, "risk_cutpoints": cuts}
        main = "test" if "test" in frames else "val"
        f = frames[main]
        h_cols, _ = _columns(f, "surv@")
        doc["calibration_at_horizons"] = calibration_at_horizons(
            f["time"].to_numpy(float), f["event"].to_numpy(int), f[h_cols].to_numpy(float), horizons
        )
        doc["permutation_importance"] = {
            "split": main,
            "features": _permutation_importance(learner, parts[main], seed=cfg.training.seed),
        }
        if learner.treatment_index is not None:
            doc["recommendation"] = {"split": main, **_recommendation(f)}
        return TaskOutcome(
            predictions=frame,
            metrics=metrics,
            doc=doc,
            manifest={"horizons": horizons, "ibs_grid": grid, "risk_cutpoints": cuts},
            predict_seconds=seconds,
        )

    def score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Metrics with CIs of a predictions table (pooled out-of-fold predictions); the
        censoring distribution is estimated from the table itself."""
        ev = cfg.evaluation if cfg is not None else None
        return _score(
            frame,
            train=None,
            bootstrap=ev.bootstrap if ev else 1000,
            seed=cfg.training.seed if cfg is not None else 0,
        )

    # -- evaluate a bundle on new data ----------------------------------------------------------
    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: Any,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome:
        from medlearn.evaluation.survival import calibration_at_horizons

        horizons = list(manifest.get("horizons") or [])
        grid = list(manifest.get("ibs_grid") or [])
        cuts = list(manifest.get("risk_cutpoints") or [0.0, 0.0])
        t0 = time.perf_counter()
        frame = _frame(learner, records, "test", horizons, grid, cuts)
        seconds = time.perf_counter() - t0
        bootstrap = cfg.evaluation.bootstrap if cfg is not None else 1000
        seed = cfg.training.seed if cfg is not None else 0
        metrics = {"test": _score(frame, train=None, bootstrap=bootstrap, seed=seed)}
        h_cols, _ = _columns(frame, "surv@")
        doc: dict[str, Any] = {
            "horizons": horizons,
            "calibration_at_horizons": calibration_at_horizons(
                frame["time"].to_numpy(float),
                frame["event"].to_numpy(int),
                frame[h_cols].to_numpy(float),
                horizons,
            ),
        }
        if learner.treatment_index is not None:
            doc["recommendation"] = {"split": "test", **_recommendation(frame)}
        return TaskOutcome(predictions=frame, metrics=metrics, doc=doc, predict_seconds=seconds)

    # -- predict rows ------------------------------------------------------------------------
    def predict(
        self,
        learner: Any,
        manifest: dict[str, Any],
        records: Sequence[Record],
        explain_dir: Path | None = None,
        output_dir: Path | None = None,
    ) -> list[dict[str, Any]]:
        horizons = list(manifest.get("horizons") or [])
        cuts = list(manifest.get("risk_cutpoints") or [0.0, 0.0])
        risk = learner.predict_risk(records)
        surv = learner.predict_survival(records, horizons) if horizons else None
        arms = learner.risk_by_arm(records) if learner.treatment_index is not None else None
        contrib = learner.contributions(records) if explain_dir is not None else None
        groups = _groups(risk, cuts)
        features = learner.schema.features
        rows = []
        for i, rec in enumerate(records):
            row: dict[str, Any] = {
                "input": rec["id"],
                "risk": round(float(risk[i]), 6),
                "survival": {}
                if surv is None
                else {f"{h:g}": round(float(surv[i, k]), 6) for k, h in enumerate(horizons)},
                "risk_group": str(groups[i]),
                "model": manifest.get("name"),
            }
            if arms is not None:
                row["risk_by_arm"] = {
                    "0": round(float(arms[i, 0]), 6),
                    "1": round(float(arms[i, 1]), 6),
                }
                row["recommended_arm"] = int(np.argmin(arms[i]))
            if explain_dir is not None:
                if contrib is None:
                    row["explanation"] = None
                else:
                    top = np.argsort(-np.abs(contrib[i]))[:_TOP_FEATURES]
                    row["explanation"] = {
                        "method": "exact" if learner.model == "cox_ph" else "gradient_x_input",
                        "top_features": [
                            {"feature": features[j], "contribution": round(float(contrib[i, j]), 6)}
                            for j in top
                        ],
                    }
            rows.append(row)
        return rows

    # -- report ------------------------------------------------------------------------------
    def report_sections(
        self,
        run_dir: Path,
        doc: dict[str, Any],
        frame: pd.DataFrame,
        cfg: Any,
        manifest: dict[str, Any],
    ) -> ReportParts:
        from medlearn.clinical._survival_figures import (
            calibration_png,
            km_by_group_png,
            td_auc_png,
        )

        sections: list[tuple[str, str, str]] = []
        test = frame[frame["split"] == "test"]
        if test.empty:
            test = frame[frame["split"] == "val"]
        if not test.empty and (test["event"] >= 0).all():
            uri, p = km_by_group_png(test)
            note = "" if p is None else f"<p>Log-rank test across groups: p = {p:.3g}.</p>"
            sections.append(
                (
                    "km",
                    "Kaplan–Meier curves by predicted risk group",
                    f'<img src="{uri}" alt="Kaplan-Meier curves"><p>Test patients in tertiles '
                    f"of the training risk scores (low / medium / high).</p>{note}",
                )
            )
        cal = doc.get("calibration_at_horizons") or []
        if cal:
            sections.append(
                (
                    "survival-calibration",
                    "Calibration at horizons",
                    f'<img src="{calibration_png(cal)}" alt="calibration at horizons"><p>Mean '
                    "predicted survival vs Kaplan–Meier observed survival per risk decile.</p>",
                )
            )
        td = ((doc.get("metrics") or {}).get("test") or {}).get("td_auc")
        if td and td.get("per_horizon"):
            sections.append(
                (
                    "td-auc",
                    "Time-dependent AUC",
                    f'<img src="{td_auc_png(td["per_horizon"])}" alt="td AUC">',
                )
            )
        pi = (doc.get("permutation_importance") or {}).get("features") or []
        if pi:
            body = "".join(
                f"<tr><td>{html.escape(str(r['feature']))}</td><td>{r['drop_c_index']:.4f}</td></tr>"
                for r in pi
            )
            sections.append(
                (
                    "importance",
                    "Permutation importance",
                    f"<table><tr><th>feature</th><th>drop in C-index</th></tr>{body}</table>",
                )
            )
        rec = doc.get("recommendation")
        if rec:
            items = "".join(
                f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in rec.items()
            )
            sections.append(("recommendation", "Treatment recommendation", f"<ul>{items}</ul>"))
        return ReportParts(sections=sections)

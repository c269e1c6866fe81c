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
  variance scale and offset fitted on validation (``scale · var + offset``, by the Gaussian
  negative log-likelihood; plain ``z``-scaling when the offset does not help), stored in the
  bundle manifest and applied by ``predict`` and ``evaluate``; the calibration
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

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn.data import Record
from medlearn.molecules._task_metrics import (
    _BIASED_UQ,
    _MULTILABEL_METRICS,
    _REGRESSION_UQ,
    ATTRIBUTIONS_FILE,
    _bootstrap_settings,
    _col,
    _columns,
    _explain_rows,
    _frame_arrays,
    _frame_names,
    _groups,
    _masked_scores,
    _metric_stats,
    _misclassification_auroc,
    _predict,
    _save_attributions,
    _scaled,
    _sigmoid,
    _split_doc,
    _target_matrix,
    _targets_of,
    _task_frame,
    fit_variance_calibration,
    flat_variance_targets,
    variance_share,
)
from medlearn.molecules._task_report import (
    _doc_names,
    _molecule_sections,
    _per_task_table,
    _roc_section,
    _scatter_grid,
    _targets_doc,
)
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
                **self._share_note(uq_state, out.get("val"), names, ctx.echo),
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
            scale, offset = fit_variance_calibration(y["val"], pred, var)  # type: ignore[arg-type]
            state["variance_scale"] = scale
            state["variance_offset"] = offset
            state["scaling"] = "scale * variance + offset, fitted on val by Gaussian NLL"
        return state

    @staticmethod
    def _share_note(
        state: dict[str, Any],
        val: tuple[np.ndarray, np.ndarray | None] | None,
        names: list[str],
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """``variance_share`` per target (see :func:`variance_share`), and a line for each
        target whose calibrated variance is nearly constant."""
        if val is None or val[1] is None or "variance_scale" not in state:
            return {}
        shares = variance_share(val[1], state["variance_scale"], state["variance_offset"])
        share_of = dict(zip(names, shares, strict=True))
        for name in flat_variance_targets(names, shares):
            echo(
                f"note: target {name!r}: the ensemble variance did not rank the validation "
                f"errors, so its calibrated uncertainty is nearly constant (ensemble share "
                f"{share_of[name]:.2f}). More members or a larger validation split may help."
            )
        return {"variance_share": shares}

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
        return _prediction_rows(records, names, manifest, pred, var, explained)

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


def _prediction_rows(
    records: Sequence[Record],
    names: list[str],
    manifest: dict[str, Any],
    values: np.ndarray,
    var: np.ndarray | None,
    explained: Sequence[Any],
    *,
    per_name: bool = False,
) -> list[dict[str, Any]]:
    """One ``predict`` row per molecule: prediction per target (a dict even for one target
    when ``per_name``), its std when an ensemble gave a variance, and any explanation."""
    rows = []
    for i, rec in enumerate(records):
        row: dict[str, Any] = {"input": rec["id"], "smiles": str(rec["input"])}
        row["prediction"] = (
            {n: round(float(v), 6) for n, v in zip(names, values[i], strict=True)}
            if per_name
            else _per_target(names, values[i])
        )
        if var is not None:
            row["uncertainty"] = _per_target(names, np.sqrt(np.maximum(var[i], 0.0)))
        row["model"] = manifest.get("name")
        if explained[i] is not None:
            row["explanation"] = explained[i]
        rows.append(row)
    return rows


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
        return _prediction_rows(records, names, manifest, proba, var, explained, per_name=True)

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

"""Binary and multiclass classification: calibrate and choose the threshold on validation
data, score with bootstrap CIs, analyse subgroups and net benefit, explain, predict rows.

Learners give uncalibrated logits (:meth:`medlearn.training.Learner.predict_logits`;
log-probabilities for non-neural models). Post-processing fitted on the validation split
(calibration: ``none | temperature | platt | isotonic | auto``; the decision threshold) is
stored in the bundle manifest so ``evaluate``, ``predict`` and the server apply exactly the
same mapping (:func:`calibrate`).

``metrics.json`` fields written here (see ``docs/evaluation.md``): ``threshold``,
``threshold_selection``, ``calibration`` (the chosen state plus ``candidates``),
``uncalibrated``, ``subgroups``, ``decision_curve`` and ``importance``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn._io import atomic_write_bytes
from medlearn.data import Record
from medlearn.errors import ConfigError
from medlearn.registry import TASKS
from medlearn.tasks import ReportParts, RunContext, TaskOutcome

__all__ = [
    "ClassificationTask",
    "calibrate",
    "fit_calibration",
    "labels_from_proba",
    "softmax",
]

#: Prefix of the predictions columns holding subgroup labels (``subgroup.<meta key>``).
SUBGROUP_PREFIX = "subgroup."
#: Subgroups smaller than this get no metrics ("too few").
MIN_SUBGROUP_N = 30
#: How many feature contributions ``predict`` returns per row.
TOP_FEATURES = 10


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def labels_from_proba(proba: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class ids: the binary threshold on class 1 when given, else the arg-max."""
    if proba.shape[1] == 2 and threshold is not None:
        return (proba[:, 1] >= threshold).astype(int)
    return proba.argmax(axis=1)


def fit_calibration(
    method: str, logits: np.ndarray, y: np.ndarray, *, seed: int = 0
) -> dict[str, Any]:
    """Fit post-hoc calibration on validation logits; return its JSON state.

    A thin wrapper of :func:`medlearn.evaluation.fit_calibrator` (``auto`` chooses by 5-fold
    cross-fitted validation log-loss).
    """
    from medlearn.evaluation import fit_calibrator

    return fit_calibrator(method, logits, y, seed=seed)


def calibrate(logits: np.ndarray, state: dict[str, Any] | None) -> np.ndarray:
    """Calibrated probabilities ``(N, C)`` from logits and a calibration state (any method)."""
    from medlearn.evaluation import apply_calibration

    return apply_calibration(logits, state)


def _targets(records: Sequence[Record]) -> np.ndarray:
    return np.array([(-1 if r["target"] is None else int(r["target"])) for r in records])


def _meta_keys(records: Sequence[Record]) -> list[str]:
    keys: set[str] = set()
    for r in records:
        keys.update((r.get("meta") or {}).keys())
    return sorted(keys)


def check_subgroup_keys(keys: Sequence[str], records: Sequence[Record]) -> None:
    """Raise :class:`ConfigError` when a subgroup key is in no record's ``meta``."""
    if not keys:
        return
    available = _meta_keys(records)
    missing = [k for k in keys if k not in available]
    if missing:
        raise ConfigError(
            f"evaluation.subgroups names {', '.join(repr(k) for k in missing)}, which is not a "
            "meta field of the records. Available meta fields: "
            f"{', '.join(available) or '(none)'}.",
            hint="Set evaluation.subgroups to some of the available fields (or remove it).",
        )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def subgroup_bins(keys: Sequence[str], records: Sequence[Record]) -> dict[str, list[float]]:
    """Quartile cut points of numeric subgroup keys with more than 8 distinct values.

    Continuous meta fields (e.g. ``age``) would give one subgroup per value; they are cut at
    the quartiles of all ``records`` (the same cuts in every fold).
    """
    bins: dict[str, list[float]] = {}
    for key in keys:
        vals = [(r.get("meta") or {}).get(key) for r in records]
        present = [v for v in vals if v is not None and not (_is_number(v) and np.isnan(v))]
        if present and all(_is_number(v) for v in present) and len(set(present)) > 8:
            edges = np.unique(np.quantile(np.asarray(present, float), [0.25, 0.5, 0.75]))
            bins[key] = [float(e) for e in edges]
    return bins


def _band(value: Any, edges: list[float]) -> Any:
    if not _is_number(value) or np.isnan(value):
        return value
    k = int(np.searchsorted(edges, float(value), side="right"))
    if k == 0:
        return f"<{edges[0]:g}"
    if k == len(edges):
        return f">={edges[-1]:g}"
    return f"{edges[k - 1]:g}-{edges[k]:g}"


def _frame(
    records: Sequence[Record],
    split: str,
    proba: np.ndarray,
    raw: np.ndarray,
    labels: np.ndarray,
    subgroups: Sequence[str] = (),
    bins: dict[str, list[float]] | None = None,
) -> pd.DataFrame:
    from medlearn.evaluation import subgroup_labels

    frame = pd.DataFrame(
        {
            "id": [r["id"] for r in records],
            "patient_id": [r["patient_id"] for r in records],
            "split": split,
            "target": _targets(records),
            "prediction": labels.astype(int),
        }
    )
    for c in range(proba.shape[1]):
        frame[f"prob_{c}"] = proba[:, c]
    for c in range(raw.shape[1]):
        frame[f"raw_prob_{c}"] = raw[:, c]
    for key in subgroups:
        values = [(r.get("meta") or {}).get(key) for r in records]
        if bins and key in bins:
            values = [_band(v, bins[key]) for v in values]
        frame[SUBGROUP_PREFIX + key] = subgroup_labels(values)
    return frame


def _proba_of(frame: pd.DataFrame, prefix: str = "prob_") -> np.ndarray:
    cols = sorted(
        (c for c in frame.columns if c.startswith(prefix) and c[len(prefix) :].isdigit()),
        key=lambda c: int(c[len(prefix) :]),
    )
    return frame[cols].to_numpy(dtype=float)


def _pick_gallery(frame: pd.DataFrame, n: int) -> list[int]:
    """Row positions of up to ``n`` correct and ``n`` incorrect cases, most confident first."""
    if n <= 0 or frame.empty:
        return []
    conf = _proba_of(frame).max(axis=1)
    correct = (frame["prediction"] == frame["target"]).to_numpy()
    order = np.argsort(-conf, kind="stable")
    right = [int(i) for i in order if correct[i]][:n]
    wrong = [int(i) for i in order if not correct[i]][:n]
    return right + wrong


def _is_image_explanation(exp: Any) -> bool:
    return getattr(exp, "image", None) is not None and getattr(exp, "heatmap", None) is not None


def _top_features(features: dict[str, float], k: int = TOP_FEATURES) -> dict[str, float]:
    """The ``k`` largest contributions by absolute value, largest first."""
    items = sorted(features.items(), key=lambda kv: -abs(float(kv[1])))[:k]
    return {str(name): round(float(v), 6) for name, v in items}


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["target"] >= 0].reset_index(drop=True)


def _r6(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def _settings(cfg: Any) -> dict[str, Any]:
    """Evaluation settings of ``cfg`` (defaults when there is no run file)."""
    ev = cfg.evaluation if cfg is not None else None
    return {
        "task": cfg.task if cfg is not None else "binary",
        "metrics": list(ev.metrics) if ev else ["auroc", "accuracy"],
        "bootstrap": ev.bootstrap if ev else 1000,
        "seed": cfg.training.seed if cfg is not None else 0,
        "subgroups": list(ev.subgroups) if ev else [],
        "decision_curve": bool(ev.decision_curve) if ev else True,
    }


def analyse_split(
    frame: pd.DataFrame, cfg: Any, threshold: float | None, split: str
) -> dict[str, Any]:
    """Operating point, decision curve and subgroup analysis of one labelled split.

    Args:
        frame: the split's predictions (``target``, ``prob_*``, ``subgroup.<key>`` columns).
        cfg: the run file (``None``: defaults, no subgroups).
        threshold: the binary decision threshold (``None``: 0.5).
        split: the split's name, recorded in the output.

    Returns:
        ``{"operating_point": ..., "decision_curve": ..., "subgroups": ...}`` (keys present
        when they apply): JSON-ready.
    """
    from medlearn.evaluation import decision_curve, evaluate_predictions, subgroup_analysis

    s = _settings(cfg)
    lab = _labelled(frame)
    out: dict[str, Any] = {}
    if lab.empty:
        return out
    y = lab["target"].to_numpy(dtype=int)
    proba = _proba_of(lab)
    groups = lab["patient_id"].astype(str).to_numpy()
    t = 0.5 if threshold is None else float(threshold)
    if s["task"] == "binary":
        out["operating_point"] = {
            "split": split,
            **evaluate_predictions(
                y,
                proba,
                task="binary",
                metrics=["sensitivity", "specificity"],
                threshold=t,
                bootstrap=s["bootstrap"],
                seed=s["seed"],
                groups=groups,
            ),
        }
        if s["decision_curve"]:
            out["decision_curve"] = {"split": split, **decision_curve(y, proba[:, 1])}
    keys = [k for k in s["subgroups"] if SUBGROUP_PREFIX + k in lab.columns]
    if keys:
        out["subgroups"] = {
            "split": split,
            "min_n": MIN_SUBGROUP_N,
            "by": {
                key: subgroup_analysis(
                    y,
                    proba,
                    lab[SUBGROUP_PREFIX + key].astype(str).to_numpy(),
                    task=s["task"],
                    metrics=s["metrics"],
                    threshold=t,
                    bootstrap=s["bootstrap"],
                    seed=s["seed"],
                    groups=groups,
                    min_n=MIN_SUBGROUP_N,
                )
                for key in keys
            },
        }
    return out


@TASKS.register("binary")
@TASKS.register("multiclass")
class ClassificationTask:
    """The handler for ``binary`` and ``multiclass`` tasks."""

    # -- after fit ---------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> TaskOutcome:
        cfg, parts, learner = ctx.cfg, ctx.parts, ctx.learner
        ev = cfg.evaluation
        check_subgroup_keys(ev.subgroups, [r for p in parts.values() for r in p])
        bins = subgroup_bins(ev.subgroups, ctx.data.records)
        ctx.echo("[4/6] predicting, calibrating on val, choosing the threshold on val")
        splits = [s for s in ("val", "test") if parts.get(s)]  # test is empty in a CV refit
        t0 = time.perf_counter()
        logits = {s: learner.predict_logits(parts[s], tta=ev.tta) for s in splits}
        seconds = time.perf_counter() - t0
        y = {s: _targets(parts[s]) for s in splits}
        cal_state, cal_doc = self._calibration(cfg, logits, y)
        proba = {s: calibrate(v, cal_state) for s, v in logits.items()}
        raw = {s: softmax(v) for s, v in logits.items()}
        threshold = self._threshold(cfg, y["val"], proba["val"])
        frame = pd.concat(
            [
                _frame(
                    parts[s],
                    s,
                    proba[s],
                    raw[s],
                    labels_from_proba(proba[s], threshold),
                    ev.subgroups,
                    bins,
                )
                for s in splits
            ],
            ignore_index=True,
        )
        ctx.echo("[5/6] evaluating with bootstrap CIs")
        metrics = {
            s: self._score_split(frame[frame["split"] == s], cfg, threshold)
            for s in ("test", "val")
            if s in splits
        }
        doc: dict[str, Any] = {"threshold": threshold, "calibration": cal_doc}
        if cfg.task == "binary":
            doc["threshold_selection"] = self._threshold_doc(cfg, frame, threshold)
        if cal_state["method"] != "none" and "test" in splits:
            doc["uncalibrated"] = {"test": self._uncalibrated(frame[frame["split"] == "test"], cfg)}
        if "test" in splits:
            test_frame = frame[frame["split"] == "test"].reset_index(drop=True)
            extras = analyse_split(test_frame, cfg, threshold, "test")
            if "operating_point" in extras:
                doc["threshold_selection"]["test"] = extras.pop("operating_point")
            doc.update(extras)
            self._save_gallery(ctx.run_dir, learner, parts["test"], test_frame, ev.gallery)
        importance = self._importance(ctx, "test" if parts.get("test") else "val")
        if importance is not None:
            doc["importance"] = importance
        return TaskOutcome(
            predictions=frame,
            metrics=metrics,
            doc=doc,
            manifest={"threshold": threshold, "calibration": cal_state},
            predict_seconds=seconds,
        )

    @staticmethod
    def _calibration(
        cfg: Any, logits: dict[str, np.ndarray], y: dict[str, np.ndarray]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The chosen calibration state and its ``metrics.json`` entry with candidates."""
        from medlearn.evaluation import (
            apply_calibration,
            calibration_candidates,
            choose_calibration,
            evaluate_predictions,
        )

        requested = cfg.evaluation.calibration
        cands = calibration_candidates(logits["val"], y["val"], seed=cfg.training.seed)
        chosen = choose_calibration(cands) if requested == "auto" else requested
        state = dict(cands[chosen]["state"])
        use_cv = all(c["cv_log_loss"] is not None for c in cands.values())
        if requested == "auto":
            state["selection"] = {
                "criterion": "cv_log_loss" if use_cv else "val_log_loss",
                "folds": 5,
            }
        table: dict[str, Any] = {}
        test_ok = "test" in logits and bool(np.any(y["test"] >= 0))
        for method, c in cands.items():
            row: dict[str, Any] = {
                "val_log_loss": _r6(c["val_log_loss"]),
                "cv_log_loss": _r6(c["cv_log_loss"]),
                "chosen": method == chosen,
            }
            if test_ok:
                keep = y["test"] >= 0
                p = apply_calibration(logits["test"][keep], c["state"])
                scores = evaluate_predictions(
                    y["test"][keep], p, task=cfg.task, metrics=["ece", "brier"], bootstrap=0
                )
                row["test_ece"] = scores["ece"]["value"]
                row["test_brier"] = scores["brier"]["value"]
            row["state"] = c["state"]
            table[method] = row
        return state, {**state, "requested": requested, "candidates": table}

    @staticmethod
    def _threshold(cfg: Any, y_val: np.ndarray, proba_val: np.ndarray) -> float | None:
        """The binary threshold chosen on validation data (``None`` for multiclass).

        ``sensitivity`` / ``specificity`` pass ``threshold_target`` as the target, which
        :func:`medlearn.evaluation.choose_threshold` honours whatever ``method`` says.
        """
        from medlearn.evaluation import choose_threshold

        if cfg.task != "binary":
            return None
        ev = cfg.evaluation
        if ev.threshold == "sensitivity":
            kwargs: dict[str, Any] = {"target_sensitivity": ev.threshold_target}
        elif ev.threshold == "specificity":
            kwargs = {"target_specificity": ev.threshold_target}
        else:
            kwargs = {"method": ev.threshold}
        return float(choose_threshold(y_val, proba_val[:, 1], **kwargs))

    @staticmethod
    def _threshold_doc(cfg: Any, frame: pd.DataFrame, threshold: float | None) -> dict[str, Any]:
        from medlearn.evaluation import evaluate_predictions

        ev = cfg.evaluation
        val = _labelled(frame[frame["split"] == "val"])
        achieved = evaluate_predictions(
            val["target"].to_numpy(dtype=int),
            _proba_of(val),
            task="binary",
            metrics=["sensitivity", "specificity"],
            threshold=0.5 if threshold is None else threshold,
            bootstrap=0,
        )
        return {
            "method": ev.threshold,
            "target": ev.threshold_target
            if ev.threshold in ("sensitivity", "specificity")
            else None,
            "threshold": threshold,
            "val": {k: v["value"] for k, v in achieved.items()},
        }

    def _importance(self, ctx: RunContext, split: str) -> dict[str, Any] | None:
        """Global feature importance from learners that offer it, saved as importance.json."""
        fn = getattr(ctx.learner, "global_importance", None)
        records = ctx.parts.get(split) or []
        if not callable(fn) or not records:
            return None
        try:
            result = fn(records)
        except Exception as exc:  # an explanation must not lose a finished training run
            ctx.echo(f"feature importance failed ({type(exc).__name__}); skipped")
            return {"error": type(exc).__name__, "split": split}
        if not isinstance(result, dict) or not result.get("features"):
            return None
        payload = {"split": split, **result}
        atomic_write_bytes(
            ctx.run_dir / "importance.json",
            json.dumps(payload, indent=2, default=float).encode("utf-8"),
        )
        return {
            "file": "importance.json",
            "split": split,
            "methods": sorted((result.get("methods") or {}).keys()),
        }

    def _score_split(
        self,
        frame: pd.DataFrame,
        cfg: Any,
        threshold: float | None,
        *,
        bootstrap: int | None = None,
    ) -> dict[str, Any]:
        from medlearn.evaluation import evaluate_predictions

        s = _settings(cfg)
        return evaluate_predictions(
            frame["target"].to_numpy(dtype=int),
            _proba_of(frame),
            task=s["task"],
            metrics=s["metrics"],
            threshold=0.5 if threshold is None else threshold,
            bootstrap=s["bootstrap"] if bootstrap is None else bootstrap,
            seed=s["seed"],
            groups=frame["patient_id"].astype(str).to_numpy(),
        )

    def _uncalibrated(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        from medlearn.evaluation import evaluate_predictions

        return evaluate_predictions(
            frame["target"].to_numpy(dtype=int),
            _proba_of(frame, "raw_prob_"),
            task=cfg.task,
            metrics=[m for m in ("brier", "ece") if m in cfg.evaluation.metrics],
            threshold=0.5,
            bootstrap=0,
        )

    def analyse(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Operating point, decision curve and subgroups of pooled out-of-fold predictions."""
        threshold = None
        if "threshold" in frame.columns and frame["threshold"].notna().any():
            threshold = float(frame["threshold"].dropna().mean())
        return analyse_split(frame, cfg, threshold, "cv")

    def score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Metrics with CIs of a predictions table (e.g. pooled out-of-fold predictions).

        Binary labels use the mean of the thresholds the table's folds chose (column
        ``threshold`` when present), else 0.5.
        """
        return self._score_split(frame, cfg, _frame_threshold(frame))

    @staticmethod
    def _save_gallery(
        run_dir: Path, learner: Any, records: Sequence[Record], frame: pd.DataFrame, n: int
    ) -> None:
        # Learners whose explanations are not images (tables) declare it, so no time is spent
        # explaining cases the gallery would drop.
        if not getattr(learner, "image_explanations", True) or not hasattr(learner, "explain"):
            return
        picks = _pick_gallery(frame, n)
        if not picks:
            return
        chosen = [records[i] for i in picks]
        targets = [int(frame.loc[i, "prediction"]) for i in picks]
        explanations = learner.explain(chosen, targets)
        if not explanations:
            return
        rows, arrays = [], {}
        for pick, exp in zip(picks, explanations, strict=False):
            if not _is_image_explanation(exp):  # tabular explanations have no image
                continue
            k = len(rows)
            rows.append(pick)
            arrays[f"image_{k}"] = np.asarray(exp.image, dtype=np.float32)
            arrays[f"heatmap_{k}"] = np.asarray(exp.heatmap, dtype=np.float32)
        if not rows:
            return
        buf = io.BytesIO()
        np.savez_compressed(buf, rows=np.array(rows), **arrays)
        atomic_write_bytes(run_dir / "gallery.npz", buf.getvalue())

    # -- evaluate a bundle on new data ----------------------------------------------------------
    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: Any,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome:
        tta = bool(cfg.evaluation.tta) if cfg is not None else False
        keys = list(cfg.evaluation.subgroups) if cfg is not None else []
        check_subgroup_keys(keys, records)
        t0 = time.perf_counter()
        logits = learner.predict_logits(records, tta=tta)
        seconds = time.perf_counter() - t0
        proba = calibrate(logits, manifest.get("calibration"))
        threshold = manifest.get("threshold")
        frame = _frame(
            records,
            "test",
            proba,
            softmax(logits),
            labels_from_proba(proba, threshold),
            keys,
            subgroup_bins(keys, records),
        )
        metrics = {"test": self._score_split(frame, cfg, threshold)}
        doc: dict[str, Any] = {"threshold": threshold, "calibration": manifest.get("calibration")}
        extras = analyse_split(frame, cfg, threshold, "test")
        if "operating_point" in extras:
            doc["threshold_selection"] = {
                "threshold": threshold,
                "test": extras.pop("operating_point"),
            }
        doc.update(extras)
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
        logits = learner.predict_logits(records)
        proba = calibrate(logits, manifest.get("calibration"))
        threshold = manifest.get("threshold")
        labels = labels_from_proba(proba, threshold)
        classes = manifest["classes"]
        explanations = (
            learner.explain(records, [int(v) for v in labels])
            if explain_dir is not None and hasattr(learner, "explain")
            else []
        )
        rows = []
        for i, rec in enumerate(records):
            row: dict[str, Any] = {
                "input": rec["id"],
                "prediction": classes[int(labels[i])],
                "probabilities": {
                    c: round(float(p), 6) for c, p in zip(classes, proba[i], strict=True)
                },
                "threshold": threshold,
                "model": manifest.get("name"),
            }
            if explain_dir is not None and i < len(explanations):
                exp = explanations[i]
                features = getattr(exp, "features", None)
                if features:
                    row["explanation"] = {
                        "method": getattr(exp, "method", None),
                        "features": _top_features(dict(features)),
                    }
                elif _is_image_explanation(exp):
                    from medlearn.explain import save_overlay_png

                    explain_dir.mkdir(parents=True, exist_ok=True)
                    png = explain_dir / f"{Path(rec['id']).name}.gradcam.png"
                    save_overlay_png(png, exp.image, exp.heatmap)
                    row["explanation"] = str(png)
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
        classes = list(manifest.get("classes") or [])
        if not classes:
            classes = [str(c) for c in sorted(frame["target"].unique()) if c >= 0]
        split = "test" if (frame["split"] == "test").any() else "cv"
        part = frame[frame["split"] == split].reset_index(drop=True)
        analysis: dict[str, Any] = {}
        if split == "test":
            analysis = {k: doc[k] for k in ("subgroups", "decision_curve") if doc.get(k)}
        elif not part.empty:  # cross-validation: analyse the pooled out-of-fold predictions
            analysis = analyse_split(part, cfg, _frame_threshold(part), "cv")
        from medlearn.tasks._classification_report import (
            _calibration_section,
            _decision_section,
            _importance_section,
            _p,
            _subgroup_section,
            _threshold_section,
        )

        sections: list[tuple[str, str, str]] = []
        cal = _calibration_section(doc, part, split)
        if cal:
            sections.append(("calibration-methods", "Calibration methods", cal))
        op = _threshold_section(doc, analysis)
        if op:
            sections.append(("operating-point", "Operating point", op))
        if analysis.get("decision_curve"):
            sections.append(
                ("decision-curve", "Decision curve", _decision_section(analysis["decision_curve"]))
            )
        if analysis.get("subgroups"):
            sections.append(("subgroups", "Subgroups", _subgroup_section(analysis["subgroups"])))
        elif cfg is not None and cfg.evaluation.subgroups:
            sections.append(
                (
                    "subgroups",
                    "Subgroups",
                    _p("No subgroup columns are stored with these predictions.", muted=True),
                )
            )
        imp = _importance_section(run_dir)
        if imp:
            sections.append(("importance", "Feature importance", imp))
        return ReportParts(
            sections=sections, gallery=_gallery(run_dir, frame, classes), classes=classes
        )


def _frame_threshold(frame: pd.DataFrame) -> float | None:
    if "threshold" in frame.columns and frame["threshold"].notna().any():
        return float(frame["threshold"].dropna().mean())
    return None


def _gallery(run_dir: Path, frame: pd.DataFrame, classes: list[str]) -> list[Any]:
    from medlearn.evaluation import GalleryItem

    gallery: list[Any] = []
    path = run_dir / "gallery.npz"
    if not path.is_file():
        return gallery
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    with np.load(path, allow_pickle=False) as z:
        for k, row in enumerate(int(r) for r in z["rows"]):
            if f"image_{k}" not in z.files or row >= len(test):
                continue
            pred = int(test.loc[row, "prediction"])
            target = int(test.loc[row, "target"])
            gallery.append(
                GalleryItem(
                    id=str(test.loc[row, "id"]),
                    true_label=classes[target] if 0 <= target < len(classes) else "?",
                    predicted_label=classes[pred],
                    probability=float(test.loc[row, f"prob_{pred}"]),
                    correct=pred == target,
                    image=z[f"image_{k}"],
                    heatmap=z[f"heatmap_{k}"],
                )
            )
    return gallery

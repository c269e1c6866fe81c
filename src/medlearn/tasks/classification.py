"""Binary and multiclass classification: calibrate and choose the threshold on validation
data, score with bootstrap CIs, explain a gallery of test cases, predict rows.

Learners give uncalibrated logits (:meth:`medlearn.training.Learner.predict_logits`;
log-probabilities for non-neural models). Post-processing fitted on the validation split is
stored in the bundle manifest so ``evaluate``, ``predict`` and the server apply exactly the
same mapping.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn._io import atomic_write_bytes
from medlearn.data import Record
from medlearn.registry import TASKS
from medlearn.tasks import ReportParts, RunContext, TaskOutcome

__all__ = ["ClassificationTask", "calibrate", "labels_from_proba", "softmax"]


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


def fit_calibration(method: str, logits: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Fit post-hoc calibration on validation logits; return its JSON state."""
    from medlearn.evaluation import TemperatureScaler

    if method == "none":
        return {"method": "none"}
    if method == "temperature":
        scaler = TemperatureScaler().fit(logits, y)
        return {"method": "temperature", "temperature": float(scaler.temperature_)}
    raise ValueError(f"Unknown calibration method {method!r}.")


def calibrate(logits: np.ndarray, state: dict[str, Any] | None) -> np.ndarray:
    """Calibrated probabilities ``(N, C)`` from logits and a :func:`fit_calibration` state."""
    from medlearn.evaluation import TemperatureScaler

    state = state or {}
    if state.get("method") == "temperature" and state.get("temperature"):
        return TemperatureScaler.from_dict({"temperature": state["temperature"]}).transform(logits)
    return softmax(logits)


def _targets(records: Sequence[Record]) -> np.ndarray:
    return np.array([(-1 if r["target"] is None else int(r["target"])) for r in records])


def _frame(
    records: Sequence[Record], split: str, proba: np.ndarray, raw: np.ndarray, labels: np.ndarray
) -> pd.DataFrame:
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


@TASKS.register("binary")
@TASKS.register("multiclass")
class ClassificationTask:
    """The handler for ``binary`` and ``multiclass`` tasks."""

    # -- after fit ---------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> TaskOutcome:
        from medlearn.evaluation import choose_threshold

        cfg, parts, learner = ctx.cfg, ctx.parts, ctx.learner
        ctx.echo("[4/6] predicting, calibrating on val, choosing the threshold on val")
        splits = [s for s in ("val", "test") if parts.get(s)]  # test is empty in a CV refit
        t0 = time.perf_counter()
        logits = {s: learner.predict_logits(parts[s], tta=cfg.evaluation.tta) for s in splits}
        seconds = time.perf_counter() - t0
        y = {s: _targets(parts[s]) for s in splits}
        cal = fit_calibration(cfg.evaluation.calibration, logits["val"], y["val"])
        proba = {s: calibrate(v, cal) for s, v in logits.items()}
        raw = {s: softmax(v) for s, v in logits.items()}
        threshold = None
        if cfg.task == "binary":
            ev = cfg.evaluation
            kwargs: dict[str, Any] = {}
            method = ev.threshold
            if method == "sensitivity":
                kwargs, method = {"target_sensitivity": ev.threshold_target}, "youden"
            elif method == "specificity":
                kwargs, method = {"target_specificity": ev.threshold_target}, "youden"
            threshold = float(
                choose_threshold(y["val"], proba["val"][:, 1], method=method, **kwargs)
            )
        frame = pd.concat(
            [
                _frame(parts[s], s, proba[s], raw[s], labels_from_proba(proba[s], threshold))
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
        doc: dict[str, Any] = {"threshold": threshold, "calibration": cal}
        if cal["method"] != "none" and "test" in splits:
            doc["uncalibrated"] = {"test": self._uncalibrated(frame[frame["split"] == "test"], cfg)}
        if "test" in splits:
            test_frame = frame[frame["split"] == "test"].reset_index(drop=True)
            self._save_gallery(
                ctx.run_dir, learner, parts["test"], test_frame, cfg.evaluation.gallery
            )
        return TaskOutcome(
            predictions=frame,
            metrics=metrics,
            doc=doc,
            manifest={"threshold": threshold, "calibration": cal},
            predict_seconds=seconds,
        )

    def _score_split(
        self,
        frame: pd.DataFrame,
        cfg: Any,
        threshold: float | None,
        *,
        bootstrap: int | None = None,
    ) -> dict[str, Any]:
        from medlearn.evaluation import evaluate_predictions

        ev = cfg.evaluation if cfg is not None else None
        return evaluate_predictions(
            frame["target"].to_numpy(dtype=int),
            _proba_of(frame),
            task=cfg.task if cfg is not None else "binary",
            metrics=ev.metrics if ev else ["auroc", "accuracy"],
            threshold=0.5 if threshold is None else threshold,
            bootstrap=(ev.bootstrap if ev else 1000) if bootstrap is None else bootstrap,
            seed=cfg.training.seed if cfg is not None else 0,
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

    def score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Metrics with CIs of a predictions table (e.g. pooled out-of-fold predictions).

        Binary labels use the mean of the thresholds the table's folds chose (column
        ``threshold`` when present), else 0.5.
        """
        threshold = None
        if "threshold" in frame.columns and frame["threshold"].notna().any():
            threshold = float(frame["threshold"].dropna().mean())
        return self._score_split(frame, cfg, threshold)

    @staticmethod
    def _save_gallery(
        run_dir: Path, learner: Any, records: Sequence[Record], frame: pd.DataFrame, n: int
    ) -> None:
        picks = _pick_gallery(frame, n)
        if not picks or not hasattr(learner, "explain"):
            return
        chosen = [records[i] for i in picks]
        targets = [int(frame.loc[i, "prediction"]) for i in picks]
        explanations = learner.explain(chosen, targets)
        if not explanations:
            return
        arrays: dict[str, np.ndarray] = {"rows": np.array(picks[: len(explanations)])}
        for k, exp in enumerate(explanations):
            arrays[f"image_{k}"] = exp.image.astype(np.float32)
            arrays[f"heatmap_{k}"] = exp.heatmap.astype(np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
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
        t0 = time.perf_counter()
        logits = learner.predict_logits(records, tta=tta)
        seconds = time.perf_counter() - t0
        proba = calibrate(logits, manifest.get("calibration"))
        threshold = manifest.get("threshold")
        frame = _frame(records, "test", proba, softmax(logits), labels_from_proba(proba, threshold))
        metrics = {"test": self._score_split(frame, cfg, threshold)}
        return TaskOutcome(
            predictions=frame,
            metrics=metrics,
            doc={"threshold": threshold, "calibration": manifest.get("calibration")},
            predict_seconds=seconds,
        )

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
            learner.explain(records, [int(v) for v in labels]) if explain_dir is not None else []
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
                from medlearn.explain import save_overlay_png

                explain_dir.mkdir(parents=True, exist_ok=True)
                png = explain_dir / f"{Path(rec['id']).name}.gradcam.png"
                save_overlay_png(png, explanations[i].image, explanations[i].heatmap)
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
        from medlearn.evaluation import GalleryItem

        classes = list(manifest.get("classes") or [])
        if not classes:
            classes = [str(c) for c in sorted(frame["target"].unique()) if c >= 0]
        gallery = []
        path = run_dir / "gallery.npz"
        if path.is_file():
            test = frame[frame["split"] == "test"].reset_index(drop=True)
            with np.load(path, allow_pickle=False) as z:
                for k, row in enumerate(int(r) for r in z["rows"]):
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
        return ReportParts(gallery=gallery, classes=classes)

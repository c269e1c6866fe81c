"""The one pipeline: run file → records → split → fit → predictions → evaluation → report → bundle.

Every CLI verb is one function here (``train``, ``evaluate``, ``predict``, ``report``). The
module is domain-agnostic: it finds the domain's reader and learner through the registries and
talks to the learner only through :class:`medlearn.training.Learner`. Calibration, thresholds,
metrics, reports and bundles are done here, once, for every domain.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import medlearn
from medlearn._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from medlearn.bundle import find_bundle, read_manifest, write_manifest
from medlearn.config import RunConfig, dump_config, load_config
from medlearn.data import LoadedData, Record, make_splits
from medlearn.errors import CheckpointError, ConfigError, DataNotFoundError, DataValidationError
from medlearn.registry import DATASETS, LEARNERS, MODELS, READERS

__all__ = [
    "RunResult",
    "evaluate",
    "load_data",
    "load_learner",
    "predict",
    "report",
    "split_records",
    "train",
]

log = logging.getLogger(__name__)
Echo = Callable[[str], None]

_INTENDED_USE = (
    "Research and decision support for trained clinical staff. Not a medical device; not "
    "validated for diagnosis. Predictions must be reviewed by a clinician."
)


@dataclass
class RunResult:
    """What :func:`train` and :func:`evaluate` return."""

    run_dir: Path
    metrics: dict[str, Any]

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"


# --- helpers ----------------------------------------------------------------------------------


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    import lightning
    import sklearn
    import torch

    versions = {
        "medlearn": medlearn.__version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "lightning": str(lightning.__version__),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }
    try:
        import monai

        versions["monai"] = str(monai.__version__)
    except ImportError:  # pragma: no cover - imaging extra not installed
        pass
    return versions


def _domain_of(cfg: RunConfig) -> str:
    domain = MODELS.meta(cfg.model.name).get("domain")
    if not domain:
        raise ConfigError(f"Model {cfg.model.name!r} declares no domain.")
    return str(domain)


def _new_run_dir(cfg: RunConfig, out: str | Path | None) -> Path:
    if out is not None:
        return Path(out)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / cfg.name / f"{stamp}-{uuid.uuid4().hex[:6]}"


def load_data(cfg: RunConfig) -> LoadedData:
    """Load the records named by ``cfg.data`` (a catalog dataset, or a user path)."""
    from medlearn import catalog

    domain = _domain_of(cfg)
    if cfg.data.path:
        path = Path(cfg.data.path).expanduser()
        if not path.exists():
            raise DataNotFoundError(
                f"data.path {str(path)!r} does not exist.",
                hint="Give a file or folder that exists, or a catalog name in data.dataset.",
            )
        return READERS.get(domain)(path)
    assert cfg.data.dataset is not None
    spec = DATASETS.get(cfg.data.dataset)
    if getattr(spec, "domain", domain) != domain:
        raise ConfigError(
            f"Dataset {cfg.data.dataset!r} is {spec.domain} data but model {cfg.model.name!r} "
            f"is a {domain} model.",
            hint=f"Run `medlearn models list` for {spec.domain} models.",
        )
    return catalog.load(cfg.data.dataset)


def split_records(cfg: RunConfig, data: LoadedData) -> dict[str, list[str]]:
    """Record ids per split for ``cfg.data.split`` (patient-level; leaks raise)."""
    s = cfg.data.split
    return make_splits(
        data.records,
        method=s.method,
        fractions=s.fractions,
        seed=s.seed,
        given=data.given_split,
        group_by=s.group_by,
    )


def load_learner(bundle: str | Path) -> tuple[Any, dict[str, Any]]:
    """Verify a bundle's checksums and rebuild its learner (no code from the files runs)."""
    manifest = read_manifest(bundle)
    learner_name = manifest.get("learner")
    if not learner_name:
        raise CheckpointError(f"{manifest['_dir']}: bundle manifest names no learner.")
    learner = LEARNERS.get(learner_name).load(Path(manifest["_dir"]), manifest)
    return learner, manifest


def _proba_frame(
    records: Sequence[Record], split: str, proba: np.ndarray, raw: np.ndarray, labels: np.ndarray
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": [r["id"] for r in records],
            "patient_id": [r["patient_id"] for r in records],
            "split": split,
            "target": [(-1 if r["target"] is None else int(r["target"])) for r in records],
            "prediction": labels.astype(int),
        }
    )
    for c in range(proba.shape[1]):
        frame[f"prob_{c}"] = proba[:, c]
    for c in range(raw.shape[1]):
        frame[f"raw_prob_{c}"] = raw[:, c]
    return frame


def _labels(proba: np.ndarray, threshold: float | None) -> np.ndarray:
    if proba.shape[1] == 2 and threshold is not None:
        return (proba[:, 1] >= threshold).astype(int)
    return proba.argmax(axis=1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _pick_gallery(frame: pd.DataFrame, n: int) -> list[int]:
    """Row positions of up to ``n`` correct and ``n`` incorrect cases, most confident first."""
    if n <= 0 or frame.empty:
        return []
    prob_cols = [c for c in frame.columns if c.startswith("prob_")]
    conf = frame[prob_cols].to_numpy().max(axis=1)
    correct = (frame["prediction"] == frame["target"]).to_numpy()
    order = np.argsort(-conf, kind="stable")
    right = [int(i) for i in order if correct[i]][:n]
    wrong = [int(i) for i in order if not correct[i]][:n]
    return right + wrong


# --- train ------------------------------------------------------------------------------------


def train(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    echo: Echo = print,
) -> RunResult:
    """Run the whole pipeline for one run file and write a run directory.

    Args:
        cfg: the validated run file.
        out: the run directory (default ``runs/<name>/<timestamp>-<id>``).
        resume: continue from ``out/checkpoints/last.ckpt`` after an interruption.
        echo: where progress lines go (the CLI passes its console).

    Returns:
        The run directory and the metrics document (also in ``metrics.json``).
    """
    from medlearn.evaluation import TemperatureScaler, choose_threshold

    if resume and out is None:
        raise ConfigError(
            "--resume needs the run directory to continue in.",
            hint="Pass --out RUN_DIR (the directory of the interrupted run).",
        )
    run_dir = _new_run_dir(cfg, out)
    if resume and not (run_dir / "checkpoints").exists():
        raise CheckpointError(
            f"Nothing to resume in {run_dir}: it has no checkpoints/ folder.",
            hint="Drop --resume to start a new run there.",
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    provenance = {
        "started": started,
        "versions": _versions(),
        "git_sha": _git_sha(),
        "seed": cfg.training.seed,
        "command": " ".join(sys.argv),
    }
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg, provenance))

    domain = _domain_of(cfg)
    echo(f"[1/6] loading data ({cfg.data.dataset or cfg.data.path})")
    data = load_data(cfg)
    echo(f"      {len(data.records)} records, classes: {', '.join(data.classes or [])}")

    split_cfg = cfg.data.split
    splits = split_records(cfg, data)
    atomic_write_json(
        run_dir / "splits.json", {"method": split_cfg.method, "seed": split_cfg.seed, **splits}
    )
    by_id = data.by_id()
    parts = {name: [by_id[i] for i in ids] for name, ids in splits.items()}
    for name in ("train", "val", "test"):
        if not parts.get(name):
            raise DataValidationError(
                f"The {name} split is empty ({len(data.records)} records in all).",
                hint="Use more data or change data.split.fractions.",
            )
    echo(
        "[2/6] split "
        + ", ".join(f"{k} {len(v)}" for k, v in parts.items())
        + f" ({split_cfg.method})"
    )

    learner = LEARNERS.get(domain).from_config(cfg, data)
    echo(f"[3/6] training {cfg.model.name} (ensemble of {cfg.training.ensemble})")
    fit = learner.fit(parts["train"], parts["val"], work_dir=run_dir, resume=resume)
    atomic_write_json(run_dir / "history.json", fit.history)

    echo("[4/6] predicting, calibrating on val, choosing the threshold on val")
    t0 = time.perf_counter()
    raw_logits = {
        s: learner.predict_logits(parts[s], tta=cfg.evaluation.tta) for s in ("val", "test")
    }
    predict_seconds = time.perf_counter() - t0
    y = {s: np.array([int(r["target"]) for r in parts[s]]) for s in ("val", "test")}
    scaler = None
    if cfg.evaluation.calibration == "temperature":
        scaler = TemperatureScaler().fit(raw_logits["val"], y["val"])
    proba = {
        s: (scaler.transform(v) if scaler is not None else _softmax(v))
        for s, v in raw_logits.items()
    }
    raw_proba = {s: _softmax(v) for s, v in raw_logits.items()}
    threshold = None
    if cfg.task == "binary":
        threshold = float(
            choose_threshold(y["val"], proba["val"][:, 1], method=cfg.evaluation.threshold)
        )
    frames = [
        _proba_frame(parts[s], s, proba[s], raw_proba[s], _labels(proba[s], threshold))
        for s in ("val", "test")
    ]
    predictions = pd.concat(frames, ignore_index=True)

    echo("[5/6] evaluating with bootstrap CIs")
    metrics_doc = _metrics_document(
        cfg,
        data,
        parts,
        proba,
        y,
        threshold,
        scaler,
        fit,
        predict_seconds,
        uncalibrated=raw_proba,
    )
    _write_predictions(run_dir, predictions)
    atomic_write_json(run_dir / "metrics.json", metrics_doc)

    # Explanations for the report's gallery (test cases, correct and incorrect).
    test_frame = predictions[predictions["split"] == "test"].reset_index(drop=True)
    picks = _pick_gallery(test_frame, cfg.evaluation.gallery)
    _save_gallery(run_dir, learner, parts["test"], test_frame, picks)

    echo("[6/6] writing bundle and report")
    bundle_dir = run_dir / "bundle"
    fields = learner.save(bundle_dir)
    fields.update(
        {
            "name": cfg.name,
            "task": cfg.task,
            "created": started,
            "threshold": threshold,
            "calibration": {
                "method": cfg.evaluation.calibration,
                "temperature": None if scaler is None else float(scaler.temperature_),
            },
            "metrics": {"test": metrics_doc["metrics"]["test"]},
            "model_card": _model_card(cfg, data, parts, metrics_doc),
            "git_sha": provenance["git_sha"],
        }
    )
    write_manifest(bundle_dir, fields)
    report(run_dir)
    return RunResult(run_dir=run_dir, metrics=metrics_doc)


def _metrics_document(
    cfg: RunConfig,
    data: LoadedData,
    parts: dict[str, list[Record]],
    proba: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    threshold: float | None,
    scaler: Any,
    fit: Any,
    predict_seconds: float,
    *,
    uncalibrated: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    from medlearn.evaluation import evaluate_predictions
    from medlearn.training import configure_threads

    metrics: dict[str, Any] = {}
    for split in ("test", "val"):
        groups = np.array([r["patient_id"] for r in parts[split]])
        metrics[split] = evaluate_predictions(
            y[split],
            proba[split],
            task=cfg.task,
            metrics=cfg.evaluation.metrics,
            threshold=0.5 if threshold is None else threshold,
            bootstrap=cfg.evaluation.bootstrap,
            seed=cfg.training.seed,
            groups=groups,
        )
    doc: dict[str, Any] = {
        "task": cfg.task,
        "dataset": cfg.data.dataset or str(cfg.data.path),
        "model": cfg.model.name,
        "n": {k: len(v) for k, v in parts.items()},
        "metrics": metrics,
        "threshold": threshold,
        "calibration": {
            "method": cfg.evaluation.calibration,
            "temperature": None if scaler is None else float(scaler.temperature_),
        },
        "split": {"method": cfg.data.split.method, "seed": cfg.data.split.seed},
        "seed": cfg.training.seed,
        "timing": {
            "fit_seconds": round(fit.fit_seconds, 2),
            "predict_seconds": round(predict_seconds, 3),
            "device": "cpu",
            "threads": configure_threads(cfg.training.num_threads),
            "train_samples_per_second": (
                None if fit.samples_per_second is None else round(fit.samples_per_second, 1)
            ),
        },
        "training": {"epochs": fit.epochs, "stopped_by": fit.stopped_by, **fit.extra},
    }
    if uncalibrated is not None and cfg.evaluation.calibration != "none":
        from medlearn.evaluation import evaluate_predictions as ev

        doc["uncalibrated"] = {
            "test": ev(
                y["test"],
                uncalibrated["test"],
                task=cfg.task,
                metrics=[m for m in ("brier", "ece") if m in cfg.evaluation.metrics],
                threshold=0.5,
                bootstrap=0,
            )
        }
    return doc


def _write_predictions(run_dir: Path, frame: pd.DataFrame) -> None:
    tmp = run_dir / ".predictions.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, run_dir / "predictions.parquet")


def _save_gallery(
    run_dir: Path, learner: Any, records: Sequence[Record], frame: pd.DataFrame, picks: list[int]
) -> None:
    if not picks or not hasattr(learner, "explain"):
        return
    chosen = [records[i] for i in picks]
    targets = [int(frame.loc[i, "prediction"]) for i in picks]
    explanations = learner.explain(chosen, targets)
    arrays: dict[str, np.ndarray] = {}
    for k, exp in enumerate(explanations):
        arrays[f"image_{k}"] = exp.image.astype(np.float32)
        arrays[f"heatmap_{k}"] = exp.heatmap.astype(np.float32)
    arrays["rows"] = np.array(picks)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(run_dir / "gallery.npz", buf.getvalue())


def _model_card(
    cfg: RunConfig, data: LoadedData, parts: dict[str, list[Record]], doc: dict[str, Any]
) -> dict[str, Any]:
    test = doc["metrics"]["test"]
    summary = {
        k: f"{v['value']:.3f}"
        + (f" (95% CI {v['ci95'][0]:.3f}–{v['ci95'][1]:.3f})" if v.get("ci95") else "")
        for k, v in test.items()
        if isinstance(v, dict) and v.get("value") is not None
    }
    return {
        "model": f"{cfg.model.name} {cfg.model.params or ''}".strip(),
        "task": cfg.task,
        "intended_use": _INTENDED_USE,
        "data": {
            "source": cfg.data.dataset or str(cfg.data.path),
            "classes": data.classes,
            "split": f"{cfg.data.split.method} (seed {cfg.data.split.seed}), patient-level",
            "counts": {k: len(v) for k, v in parts.items()},
        },
        "training": {
            "epochs": cfg.training.epochs,
            "batch_size": cfg.training.batch_size,
            "lr": cfg.training.lr,
            "ensemble": cfg.training.ensemble,
            "seed": cfg.training.seed,
        },
        "test_metrics": summary,
        "limitations": [
            "Performance is measured on the test split named above only; expect lower "
            "performance on other sites, scanners, populations and acquisition protocols.",
            "Calibration and the decision threshold were fitted on the validation split; "
            "re-check both before use on a new population.",
            "Grad-CAM heatmaps show where the model looked, not why; they are not a "
            "localisation of disease.",
        ],
    }


# --- evaluate ---------------------------------------------------------------------------------


def evaluate(
    run_dir: str | Path, data: str | Path, *, out: str | Path | None = None, echo: Echo = print
) -> RunResult:
    """Score a trained run's bundle on new data and write ``metrics.json`` and a report.

    ``data`` is a run file (its test split is used) or a path the domain reader understands
    (a source with an official split contributes its ``test`` split; otherwise all records).
    """
    from medlearn.evaluation import evaluate_predictions

    run_dir = Path(run_dir)
    learner, manifest = load_learner(run_dir)
    cfg = _run_config(run_dir)
    data_path = Path(data)
    if data_path.suffix in (".yaml", ".yml"):
        other = load_config(data_path)
        loaded = load_data(other)
        ids = split_records(other, loaded)["test"]
        source = other.data.dataset or str(other.data.path)
    else:
        if not data_path.exists() and data_path.name in DATASETS:
            from medlearn import catalog

            loaded = catalog.load(str(data))
        elif not data_path.exists():
            raise DataNotFoundError(
                f"--data {str(data)!r} is neither a file, a folder nor a catalog dataset.",
                hint="Pass a path, a run file, or a name from `medlearn data list`.",
            )
        else:
            loaded = READERS.get(manifest["domain"])(data_path)
        ids = (loaded.given_split or {}).get("test") or [r["id"] for r in loaded.records]
        source = str(data)
    by_id = loaded.by_id()
    records = [by_id[i] for i in ids]
    if list(loaded.classes or manifest["classes"]) != list(manifest["classes"]):
        raise DataValidationError(
            f"--data has classes {loaded.classes} but the model predicts {manifest['classes']}.",
            hint="Evaluate on data labelled with the same classes, in the same order.",
        )
    echo(f"evaluating {manifest.get('name')} on {len(records)} records from {source}")
    t0 = time.perf_counter()
    tta = bool(cfg.evaluation.tta) if cfg else False
    logits = learner.predict_logits(records, tta=tta)
    seconds = time.perf_counter() - t0
    proba = _calibrated(logits, manifest)
    threshold = manifest.get("threshold")
    y = np.array([int(r["target"]) for r in records])
    metric_names = cfg.evaluation.metrics if cfg else ["auroc", "accuracy"]
    test = evaluate_predictions(
        y,
        proba,
        task=manifest["task"],
        metrics=metric_names,
        threshold=0.5 if threshold is None else threshold,
        bootstrap=cfg.evaluation.bootstrap if cfg else 1000,
        groups=np.array([r["patient_id"] for r in records]),
    )
    out_dir = (
        Path(out) if out else run_dir / "evaluations" / datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "task": manifest["task"],
        "dataset": source,
        "model": manifest["model"]["name"],
        "n": {"test": len(records)},
        "metrics": {"test": test},
        "threshold": threshold,
        "calibration": manifest.get("calibration"),
        "timing": {"predict_seconds": round(seconds, 3), "device": "cpu"},
        "bundle": str(find_bundle(run_dir)),
    }
    atomic_write_json(out_dir / "metrics.json", doc)
    raw = _softmax(logits)
    frame = _proba_frame(records, "test", proba, raw, _labels(proba, threshold))
    _write_predictions(out_dir, frame)
    _write_report(out_dir, doc, cfg, frame, manifest["classes"], threshold, history=[])
    return RunResult(run_dir=out_dir, metrics=doc)


def _calibrated(logits: np.ndarray, manifest: dict[str, Any]) -> np.ndarray:
    from medlearn.evaluation import TemperatureScaler

    cal = manifest.get("calibration") or {}
    if cal.get("method") == "temperature" and cal.get("temperature"):
        return TemperatureScaler.from_dict({"temperature": cal["temperature"]}).transform(logits)
    return _softmax(logits)


def _run_config(run_dir: Path) -> RunConfig | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    raw.pop("_run", None)
    from medlearn.config import validate_config

    return validate_config(raw, source=str(path))


# --- predict ----------------------------------------------------------------------------------


def predict(
    bundle: str | Path,
    inputs: Sequence[str],
    *,
    explain: bool = False,
    explain_dir: str | Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Predict each input with a bundle; yield one JSON-ready dict per input.

    Bad inputs yield ``{"input": ..., "error": ...}``; nothing is skipped silently.
    With ``explain``, a Grad-CAM overlay PNG is written per input into ``explain_dir``.
    """
    learner, manifest = load_learner(bundle)
    records, bad = learner.read_inputs(inputs)
    for b in bad:
        yield {"input": b.source, "error": b.message}
    if not records:
        return
    logits = learner.predict_logits(records)
    proba = _calibrated(logits, manifest)
    threshold = manifest.get("threshold")
    labels = _labels(proba, threshold)
    classes = manifest["classes"]
    explanations = learner.explain(records, [int(v) for v in labels]) if explain else []
    out_dir = Path(explain_dir or "explanations")
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
        if explain:
            from medlearn.explain import save_overlay_png

            out_dir.mkdir(parents=True, exist_ok=True)
            png = out_dir / f"{Path(rec['id']).name}.gradcam.png"
            save_overlay_png(png, explanations[i].image, explanations[i].heatmap)
            row["explanation"] = str(png)
        yield row


# --- report -----------------------------------------------------------------------------------


def report(run_dir: str | Path) -> Path:
    """(Re)build ``report.html`` of a run directory from its saved artifacts."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise DataNotFoundError(
            f"{run_dir} has no metrics.json.",
            hint="Pass a run directory written by `medlearn train` or `medlearn evaluate`.",
        )
    doc = json.loads(metrics_path.read_text())
    cfg = _run_config(run_dir)
    frame = pd.read_parquet(run_dir / "predictions.parquet")
    manifest = read_manifest(run_dir, verify=False) if (run_dir / "bundle").exists() else {}
    classes = manifest.get("classes") or sorted({str(c) for c in frame["target"].unique()})
    history = []
    if (run_dir / "history.json").is_file():
        history = json.loads((run_dir / "history.json").read_text())
    return _write_report(
        run_dir,
        doc,
        cfg,
        frame,
        classes,
        doc.get("threshold"),
        history=history,
        model_card=manifest.get("model_card"),
    )


def _write_report(
    run_dir: Path,
    doc: dict[str, Any],
    cfg: RunConfig | None,
    frame: pd.DataFrame,
    classes: list[str],
    threshold: float | None,
    *,
    history: list[dict[str, Any]],
    model_card: dict[str, Any] | None = None,
) -> Path:
    from medlearn.evaluation import GalleryItem, ReportInputs, write_report

    gallery = []
    gallery_path = run_dir / "gallery.npz"
    if gallery_path.is_file():
        test = frame[frame["split"] == "test"].reset_index(drop=True)
        with np.load(gallery_path, allow_pickle=False) as z:
            rows = [int(r) for r in z["rows"]]
            for k, row in enumerate(rows):
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
    inputs = ReportInputs(
        title=f"medlearn report — {doc.get('model')} on {doc.get('dataset')}",
        metrics_doc=doc,
        config=json.loads(cfg.model_dump_json()) if cfg else {},
        predictions=frame,
        classes=list(classes),
        threshold=threshold,
        history=history,
        gallery=gallery,
        model_card=model_card or {},
        notes=[],
    )
    path = run_dir / "report.html"
    write_report(path, inputs)
    return path

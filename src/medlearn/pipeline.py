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
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import medlearn
from medlearn._io import atomic_write_json, atomic_write_text
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
    "predict_records",
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
    """Versions of the main libraries, from their installed package metadata.

    Importing Lightning and MONAI just to read ``__version__`` took ~6 s of every run (most
    domains never import them), so only torch, already loaded, is asked directly.
    """
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {
        "medlearn": medlearn.__version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "lightning": version("lightning"),
        "numpy": np.__version__,
        "scikit-learn": version("scikit-learn"),
    }
    try:
        versions["monai"] = version("monai")
    except PackageNotFoundError:  # pragma: no cover - imaging extra not installed
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


def _reader_of(cfg: RunConfig) -> str:
    meta = MODELS.meta(cfg.model.name)
    return str(meta.get("reader") or _domain_of(cfg))


def _reader_kwargs(reader: str, cfg: RunConfig) -> dict[str, Any]:
    """Readers registered with ``run_config=True`` get the run file (target, task, options)."""
    return {"cfg": cfg} if READERS.meta(reader).get("run_config") else {}


def _without_source_options(reader: str, cfg: RunConfig) -> RunConfig:
    """The run file minus reader options that name further data sources (e.g. a separate
    ``test`` set): ``medlearn evaluate --data X`` must read X alone."""
    drop = set(READERS.meta(reader).get("source_options", ()))
    if not drop or not drop & set(cfg.data.options):
        return cfg
    options = {k: v for k, v in cfg.data.options.items() if k not in drop}
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"options": options})})


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
        reader = _reader_of(cfg)
        return READERS.get(reader)(path, **_reader_kwargs(reader, cfg))
    assert cfg.data.dataset is not None
    spec = DATASETS.get(cfg.data.dataset)
    if getattr(spec, "domain", domain) != domain:
        raise ConfigError(
            f"Dataset {cfg.data.dataset!r} is {spec.domain} data but model {cfg.model.name!r} "
            f"is a {domain} model.",
            hint=f"Run `medlearn models list` for {spec.domain} models.",
        )
    return catalog.load(cfg.data.dataset, **_reader_kwargs(spec.reader, cfg))


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


# --- train ------------------------------------------------------------------------------------


def train(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    echo: Echo = print,
) -> RunResult:
    """Run the whole pipeline for one run file and write a run directory.

    With ``data.split.method: kfold`` every fold is trained and scored (pooled out-of-fold
    metrics under ``metrics.cv``, per fold under ``folds``), then the bundled model is
    refitted on all records with a validation share for calibration and early stopping.

    Args:
        cfg: the validated run file.
        out: the run directory (default ``runs/<name>/<timestamp>-<id>``).
        resume: continue from ``out/checkpoints/last.ckpt`` after an interruption.
        echo: where progress lines go (the CLI passes its console).

    Returns:
        The run directory and the metrics document (also in ``metrics.json``).
    """
    from medlearn.tasks import RunContext, handler_for

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
    handler_name = _handler_of(cfg)
    handler = handler_for(cfg.task, handler_name)
    learner_cls = LEARNERS.get(_learner_of(cfg))
    _check_target(cfg)
    _check_transfer(cfg, learner_cls)

    echo(f"[1/6] loading data ({cfg.data.dataset or cfg.data.path})")
    data = load_data(cfg)
    classes = ", ".join(data.classes or [])
    echo(f"      {len(data.records)} records" + (f", classes: {classes}" if classes else ""))
    _check_subgroup_keys(cfg, data)
    split_cfg = cfg.data.split
    by_id = data.by_id()

    cv: dict[str, Any] | None = None
    if split_cfg.method == "kfold":
        cv = _cross_validate(cfg, data, handler, learner_cls, run_dir, echo)
        final = _refit_split(cfg, data)
        atomic_write_json(
            run_dir / "splits.json",
            {"method": "kfold", "seed": split_cfg.seed, "folds": cv["splits"], "final": final},
        )
        parts = {name: [by_id[i] for i in ids] for name, ids in final.items()}
        echo(
            f"[2/6] refitting on all records: train {len(parts['train'])}, val {len(parts['val'])}"
        )
    else:
        splits = split_records(cfg, data)
        atomic_write_json(
            run_dir / "splits.json", {"method": split_cfg.method, "seed": split_cfg.seed, **splits}
        )
        parts = {name: [by_id[i] for i in ids] for name, ids in splits.items()}
        _check_parts(parts, len(data.records))
        echo(
            "[2/6] split "
            + ", ".join(f"{k} {len(v)}" for k, v in parts.items())
            + f" ({split_cfg.method})"
        )

    learner = learner_cls.from_config(cfg, data)
    members = f" (ensemble of {cfg.training.ensemble})" if cfg.training.ensemble > 1 else ""
    echo(f"[3/6] training {cfg.model.name}{members}")
    fit = learner.fit(parts["train"], parts["val"], work_dir=run_dir, resume=resume)
    atomic_write_json(run_dir / "history.json", fit.history)

    ctx = RunContext(
        cfg=cfg, data=data, parts=parts, learner=learner, fit=fit, run_dir=run_dir, echo=echo
    )
    outcome = handler.run(ctx)
    predictions = outcome.predictions
    metrics_doc = _metrics_document(cfg, parts, fit, outcome)
    if handler_name:
        metrics_doc["handler"] = handler_name
    if data.info.get("data_quality"):
        metrics_doc["data_quality"] = data.info["data_quality"]
    if cv is not None:
        predictions = pd.concat([cv["predictions"], predictions], ignore_index=True)
        metrics_doc["metrics"] = {"cv": cv["metrics"], **metrics_doc["metrics"]}
        metrics_doc["folds"] = cv["folds"]
        if cv["analysis"]:
            metrics_doc["cv_analysis"] = cv["analysis"]
        metrics_doc["n"]["cv"] = int((cv["predictions"]["split"] == "cv").sum())
    _write_predictions(run_dir, predictions)
    atomic_write_json(run_dir / "metrics.json", metrics_doc)

    echo("[6/6] writing bundle and report")
    bundle_dir = run_dir / "bundle"
    fields = learner.save(bundle_dir)
    fields.setdefault("learner", _learner_of(cfg))
    if handler_name:
        fields["handler"] = handler_name
    fields.update(outcome.manifest)
    fields.update(
        {
            "name": cfg.name,
            "task": cfg.task,
            "created": started,
            "metrics": {k: v for k, v in metrics_doc["metrics"].items() if k in ("test", "cv")},
            "model_card": _model_card(cfg, data, parts, metrics_doc),
            "git_sha": provenance["git_sha"],
        }
    )
    from medlearn.evaluation.drift import REFERENCE_FILE, build_reference

    atomic_write_json(bundle_dir / REFERENCE_FILE, build_reference(learner, parts["train"]))
    fields["drift_reference"] = REFERENCE_FILE
    write_manifest(bundle_dir, fields)
    report(run_dir)
    return RunResult(run_dir=run_dir, metrics=metrics_doc)


def _check_subgroup_keys(cfg: RunConfig, data: LoadedData) -> None:
    """Refuse ``evaluation.subgroups`` keys no record has, before any training time is spent."""
    wanted = list(cfg.evaluation.subgroups)
    if not wanted:
        return
    available = sorted({k for r in data.records for k in r["meta"]})
    missing = [k for k in wanted if k not in available]
    if missing:
        raise ConfigError(
            f"evaluation.subgroups names {', '.join(repr(k) for k in missing)}, which no "
            f"record has. Available: {', '.join(available) or '(none)'}.",
            hint="Set evaluation.subgroups to some of the available fields (or remove it).",
        )


def _handler_of(cfg: RunConfig) -> str | None:
    """The domain specialisation of the task handler a model asks for (``handler`` meta)."""
    handler = MODELS.meta(cfg.model.name).get("handler")
    return str(handler) if handler else None


def _check_target(cfg: RunConfig) -> None:
    """A list of targets is only for readers that declare ``multi_target=True``."""
    if isinstance(cfg.data.target, str):
        return
    reader = _reader_of(cfg)
    if not cfg.data.path and cfg.data.dataset:
        reader = getattr(DATASETS.get(cfg.data.dataset), "reader", reader)
    if not READERS.meta(reader).get("multi_target"):
        raise ConfigError(
            f"data.target is a list ({len(cfg.data.target)} names), but the "
            f"{reader!r} reader takes a single target.",
            hint="Give data.target as one column name.",
        )


def _check_transfer(cfg: RunConfig, learner_cls: Any) -> None:
    """Refuse ``model.init_from`` / ``training.freeze_backbone_epochs`` for a learner that
    would silently ignore them, and an ``init_from`` that names no run or bundle (before any
    data is read)."""
    where = f"model {cfg.model.name!r} ({_learner_of(cfg)} learner)"
    if cfg.model.init_from and not getattr(learner_cls, "supports_init_from", False):
        raise ConfigError(
            f"model.init_from is not supported by {where}: it cannot start from pretrained "
            "weights.",
            hint="Remove model.init_from. Imaging classifiers and molecule graph networks "
            "support it.",
        )
    if cfg.model.init_from:
        from medlearn.bundle import find_bundle

        try:
            find_bundle(cfg.model.init_from)
        except DataNotFoundError as exc:
            raise DataNotFoundError(
                f"model.init_from: {exc.message}",
                hint="Train the source run first (e.g. examples/molecules/"
                "pretrain_descriptors.yaml for a molecule network), or fix the path; relative "
                "paths are read from the current directory.",
            ) from None
    if cfg.training.freeze_backbone_epochs and not getattr(
        learner_cls, "supports_freeze_backbone", False
    ):
        raise ConfigError(
            f"training.freeze_backbone_epochs is not supported by {where}.",
            hint="Set it to 0. Imaging classifiers and molecule graph networks support it.",
        )


def _learner_of(cfg: RunConfig) -> str:
    meta = MODELS.meta(cfg.model.name)
    return str(meta.get("learner") or _domain_of(cfg))


def _check_parts(
    parts: dict[str, list[Record]], n: int, names: Sequence[str] = ("train", "val", "test")
) -> None:
    for name in names:
        if not parts.get(name):
            raise DataValidationError(
                f"The {name} split is empty ({n} records in all).",
                hint="Use more data or change data.split.fractions.",
            )


def _cross_validate(
    cfg: RunConfig, data: LoadedData, handler: Any, learner_cls: Any, run_dir: Path, echo: Echo
) -> dict[str, Any]:
    """Train and score every fold; pool the out-of-fold test predictions."""
    from medlearn.data import kfold_splits
    from medlearn.tasks import RunContext

    s = cfg.data.split
    folds = kfold_splits(
        data.records, folds=s.folds, val_fraction=s.fractions[1], seed=s.seed, group_by=s.group_by
    )
    by_id = data.by_id()
    frames, per_fold = [], []
    for k, split in enumerate(folds):
        parts = {name: [by_id[i] for i in ids] for name, ids in split.items()}
        _check_parts(parts, len(data.records))
        echo(
            f"fold {k + 1}/{len(folds)}: train {len(parts['train'])}, val {len(parts['val'])}, "
            f"test {len(parts['test'])}"
        )
        fold_dir = run_dir / "folds" / f"fold{k}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        learner = learner_cls.from_config(cfg, data)
        fit = learner.fit(parts["train"], parts["val"], work_dir=fold_dir, resume=False)
        ctx = RunContext(
            cfg=cfg,
            data=data,
            parts=parts,
            learner=learner,
            fit=fit,
            run_dir=fold_dir,
            echo=lambda _line: None,
        )
        outcome = handler.run(ctx)
        test = outcome.predictions[outcome.predictions["split"] == "test"].copy()
        test["split"] = "cv"
        test["fold"] = k
        if "threshold" in outcome.manifest:
            test["threshold"] = outcome.manifest["threshold"]
        frames.append(test)
        per_fold.append(
            {
                "fold": k,
                "n_test": len(parts["test"]),
                "fit_seconds": round(fit.fit_seconds, 3),
                "test": outcome.metrics.get("test", {}),
            }
        )
    pooled = pd.concat(frames, ignore_index=True)
    analyse = getattr(handler, "analyse", None)
    return {
        "predictions": pooled,
        "analysis": analyse(pooled, cfg) if analyse is not None else {},
        "metrics": handler.score(pooled, cfg),
        "folds": per_fold,
        "splits": folds,
    }


def _refit_split(cfg: RunConfig, data: LoadedData) -> dict[str, list[str]]:
    """All records as train + val (the val share for calibration and early stopping)."""
    s = cfg.data.split
    val = s.fractions[1] or 0.15
    parts = make_splits(
        data.records,
        method="stratified",
        fractions=(1 - val, val, 0.0),
        seed=s.seed,
        group_by=s.group_by,
    )
    return {"train": parts["train"], "val": parts["val"], "test": []}


def _metrics_document(
    cfg: RunConfig, parts: dict[str, list[Record]], fit: Any, outcome: Any
) -> dict[str, Any]:
    from medlearn.training import configure_threads

    doc: dict[str, Any] = {
        "task": cfg.task,
        "dataset": cfg.data.dataset or str(cfg.data.path),
        "model": cfg.model.name,
        "n": {k: len(v) for k, v in parts.items()},
        "metrics": outcome.metrics,
        **outcome.doc,
        "split": {
            **outcome.doc.get("split", {}),
            "method": cfg.data.split.method,
            "seed": cfg.data.split.seed,
            **({"folds": cfg.data.split.folds} if cfg.data.split.method == "kfold" else {}),
        },
        "seed": cfg.training.seed,
        "timing": {
            "fit_seconds": round(fit.fit_seconds, 2),
            "predict_seconds": round(outcome.predict_seconds, 3),
            "device": "cpu",
            "threads": configure_threads(cfg.training.num_threads),
            "train_samples_per_second": (
                None if fit.samples_per_second is None else round(fit.samples_per_second, 1)
            ),
        },
        "training": {"epochs": fit.epochs, "stopped_by": fit.stopped_by, **fit.extra},
    }
    return doc


def _write_predictions(run_dir: Path, frame: pd.DataFrame) -> None:
    tmp = run_dir / ".predictions.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, run_dir / "predictions.parquet")


def _model_card(
    cfg: RunConfig, data: LoadedData, parts: dict[str, list[Record]], doc: dict[str, Any]
) -> dict[str, Any]:
    scope = "test" if "test" in doc["metrics"] else "cv"
    test = doc["metrics"].get(scope, {})
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
        "metrics_scope": (
            "held-out test split"
            if scope == "test"
            else f"pooled out-of-fold predictions of {cfg.data.split.folds}-fold cross-validation"
        ),
        "limitations": _limitations(cfg),
    }


def _limitations(cfg: RunConfig) -> list[str]:
    scope = "the cross-validation folds" if cfg.data.split.method == "kfold" else "the test split"
    out = [
        f"Performance is measured on {scope} named above only; expect lower performance on "
        "other sites, devices, populations and time periods.",
    ]
    if cfg.task in ("binary", "multiclass"):
        out.append(
            "Calibration and the decision threshold were fitted on the validation split; "
            "re-check both before use on a new population."
        )
        if _domain_of(cfg) == "imaging":
            out.append(
                "Grad-CAM heatmaps show where the model looked, not why; they are not a "
                "localisation of disease."
            )
        else:
            out.append(
                "Feature attributions (SHAP, permutation importance, integrated gradients) "
                "describe the model, not causal effects of the features."
            )
    return out


# --- evaluate ---------------------------------------------------------------------------------


def evaluate(
    run_dir: str | Path, data: str | Path, *, out: str | Path | None = None, echo: Echo = print
) -> RunResult:
    """Score a trained run's bundle on new data and write ``metrics.json`` and a report.

    ``data`` is a run file (its test split is used) or a path the domain reader understands
    (a source with an official split contributes its ``test`` split; otherwise all records).
    """
    from medlearn.tasks import handler_for

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
        kwargs = {}
        reader = manifest.get("reader") or manifest["domain"]
        if cfg is not None:
            kwargs = _reader_kwargs(reader, _without_source_options(reader, cfg))
        if not data_path.exists() and data_path.name in DATASETS:
            from medlearn import catalog

            loaded = catalog.load(str(data), **kwargs)
        elif not data_path.exists():
            raise DataNotFoundError(
                f"--data {str(data)!r} is neither a file, a folder nor a catalog dataset.",
                hint="Pass a path, a run file, or a name from `medlearn data list`.",
            )
        else:
            loaded = READERS.get(reader)(data_path, **kwargs)
        ids = (loaded.given_split or {}).get("test") or [r["id"] for r in loaded.records]
        source = str(data)
    by_id = loaded.by_id()
    records = [by_id[i] for i in ids]
    if manifest.get("classes") and list(loaded.classes or manifest["classes"]) != list(
        manifest["classes"]
    ):
        raise DataValidationError(
            f"--data has classes {loaded.classes} but the model predicts {manifest['classes']}.",
            hint="Evaluate on data labelled with the same classes, in the same order.",
        )
    echo(f"evaluating {manifest.get('name')} on {len(records)} records from {source}")
    out_dir = (
        Path(out) if out else run_dir / "evaluations" / datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = handler_for(manifest["task"], manifest.get("handler")).evaluate(
        learner, manifest, cfg, records, out_dir
    )
    doc = {
        "task": manifest["task"],
        **({"handler": manifest["handler"]} if manifest.get("handler") else {}),
        "dataset": source,
        "model": manifest["model"]["name"],
        "n": {"test": len(records)},
        "metrics": outcome.metrics,
        **outcome.doc,
        "timing": {"predict_seconds": round(outcome.predict_seconds, 3), "device": "cpu"},
        "bundle": str(find_bundle(run_dir)),
    }
    atomic_write_json(out_dir / "metrics.json", doc)
    _write_predictions(out_dir, outcome.predictions)
    _write_report(out_dir, doc, cfg, outcome.predictions, manifest, history=[])
    return RunResult(run_dir=out_dir, metrics=doc)


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


def predict_records(
    learner: Any,
    manifest: dict[str, Any],
    records: Sequence[Record],
    *,
    explain_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Predict already-read records with a loaded bundle (used by ``predict`` and the server).

    Returns one JSON-ready dict per record, in order; ``explain_dir`` asks for explanations,
    written as files there; ``output_dir`` is where file outputs go (segmentation masks).
    """
    from medlearn.tasks import handler_for

    if not records:
        return []
    return handler_for(manifest["task"], manifest.get("handler")).predict(
        learner,
        manifest,
        records,
        explain_dir=None if explain_dir is None else Path(explain_dir),
        output_dir=None if output_dir is None else Path(output_dir),
    )


def predict(
    bundle: str | Path,
    inputs: Sequence[str],
    *,
    explain: bool = False,
    explain_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Predict each input with a bundle; yield one JSON-ready dict per input.

    Bad inputs yield ``{"input": ..., "error": ...}``; nothing is skipped silently.
    With ``explain``, explanations (e.g. a Grad-CAM overlay PNG per input) are written into
    ``explain_dir`` (default ``explanations/``).
    """
    learner, manifest = load_learner(bundle)
    records, bad = learner.read_inputs(inputs)
    for b in bad:
        yield {"input": b.source, "error": b.message}
    out_dir = Path(explain_dir or "explanations") if explain else None
    yield from predict_records(
        learner, manifest, records, explain_dir=out_dir, output_dir=output_dir
    )


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
    history = []
    if (run_dir / "history.json").is_file():
        history = json.loads((run_dir / "history.json").read_text())
    return _write_report(run_dir, doc, cfg, frame, manifest, history=history)


def _write_report(
    run_dir: Path,
    doc: dict[str, Any],
    cfg: RunConfig | None,
    frame: pd.DataFrame,
    manifest: dict[str, Any],
    *,
    history: list[dict[str, Any]],
) -> Path:
    from medlearn.evaluation import ReportInputs, write_report
    from medlearn.tasks import handler_for

    handler = handler_for(doc["task"], doc.get("handler") or manifest.get("handler"))
    parts = handler.report_sections(run_dir, doc, frame, cfg, manifest)
    inputs = ReportInputs(
        title=f"medlearn report — {doc.get('model')} on {doc.get('dataset')}",
        metrics_doc=doc,
        config=json.loads(cfg.model_dump_json()) if cfg else {},
        predictions=frame,
        classes=list(parts.classes),
        threshold=doc.get("threshold"),
        history=history,
        gallery=parts.gallery,
        model_card=manifest.get("model_card") or {},
        notes=parts.notes,
        sections=parts.sections,
    )
    path = run_dir / "report.html"
    write_report(path, inputs)
    return path

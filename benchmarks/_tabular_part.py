"""Cleveland heart disease: 5-fold CV AUROC of every tabular model on the same folds.

Per model: the learner's uncalibrated out-of-fold probabilities pooled over folds (with a
bootstrap CI) and the mean ± sd of the per-fold AUROCs (the convention of the published
baselines); and, under ``pipeline``, what ``medlearn train`` on the run file reports (its pooled
out-of-fold probabilities are calibrated per fold, which changes the pooled ranking but not
the per-fold AUROCs).

The tabular half of ``benchmarks/tabular_survival.py``; ``python benchmarks/_tabular_part.py``
prints its JSON. Folds, models and params come from ``examples/clinical/heart_cleveland.yaml``
(patient-level, label-stratified; each fold's training part keeps a validation share for the
MLP's early stopping). A plain scikit-learn reference (median imputation + scaling +
LogisticRegression, ``cross_val_predict`` on the same test folds, trained on all other folds)
runs side by side.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNFILE = ROOT / "examples" / "clinical" / "heart_cleveland.yaml"


def _auroc_block(y: np.ndarray, p1: np.ndarray, fold_of: np.ndarray, seed: int) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from medlearn.evaluation import evaluate_predictions

    pooled = evaluate_predictions(
        y, np.stack([1 - p1, p1], 1), task="binary", metrics=["auroc"], bootstrap=1000, seed=seed
    )["auroc"]
    per_fold = [float(roc_auc_score(y[fold_of == k], p1[fold_of == k])) for k in np.unique(fold_of)]
    return {
        "auroc_pooled": pooled["value"],
        "auroc_ci95": pooled["ci95"],
        "auroc_fold_mean": round(float(np.mean(per_fold)), 4),
        "auroc_fold_sd": round(float(np.std(per_fold, ddof=1)), 4),
    }


def run_cleveland(data_dir: str | Path) -> dict[str, Any]:
    """5-fold CV AUROC (pooled out-of-fold with bootstrap CI, and mean ± sd over folds) and
    fit seconds for every model of the example run file, plus the scikit-learn reference."""
    os.environ["MEDLEARN_DATA_DIR"] = str(data_dir)
    import torch

    from medlearn.clinical.tabular import TabularLearner
    from medlearn.config import load_config
    from medlearn.data import kfold_splits
    from medlearn.pipeline import load_data

    torch.set_num_threads(1)
    cfg = load_config(RUNFILE)
    cfg.training.progress = False
    data = load_data(cfg)
    s = cfg.data.split
    folds = kfold_splits(data.records, folds=s.folds, val_fraction=s.fractions[1], seed=s.seed)
    by_id = data.by_id()
    order = [i for f in folds for i in f["test"]]
    y = np.array([by_id[i]["target"] for i in order])
    fold_of = np.array([k for k, f in enumerate(folds) for _ in f["test"]])
    models: dict[str, Any] = {}
    for m in [cfg.model, *cfg.compare]:
        one = cfg.model_copy(update={"model": m})
        probs, seconds = [], 0.0
        for k, f in enumerate(folds):
            learner = TabularLearner.from_config(one, data)
            work = Path(os.environ.get("TMPDIR", "/tmp")) / f"medlearn-bench-{os.getpid()}-{k}"
            t0 = time.perf_counter()
            learner.fit(
                [by_id[i] for i in f["train"]],
                [by_id[i] for i in f["val"]],
                work_dir=work,
                resume=False,
            )
            seconds += time.perf_counter() - t0
            probs.append(np.exp(learner.predict_logits([by_id[i] for i in f["test"]]))[:, 1])
        p1 = np.concatenate(probs)
        models[m.name] = {
            "params": m.params,
            **_auroc_block(y, p1, fold_of, cfg.training.seed),
            "fit_seconds": round(seconds, 3),
        }
    models_ref = _sklearn_reference(data, folds, y, fold_of, cfg.training.seed)
    nested = _nested_logistic_regression(cfg, data, folds, y, fold_of)
    # The product path: `medlearn train` on the run file per model (same folds), whose pooled
    # out-of-fold probabilities are calibrated per fold on that fold's small validation share.
    import tempfile

    from medlearn.pipeline import train

    with tempfile.TemporaryDirectory() as tmp:
        for m in [cfg.model, *cfg.compare]:
            one = cfg.model_copy(update={"model": m})
            doc = train(one, out=Path(tmp) / m.name, echo=lambda _line: None).metrics
            per_fold = [f["test"]["auroc"]["value"] for f in doc["folds"]]
            models[m.name]["pipeline"] = {
                "calibration": cfg.evaluation.calibration,
                "cv_auroc_pooled_calibrated": doc["metrics"]["cv"]["auroc"],
                "cv_auroc_fold_mean": round(float(np.mean(per_fold)), 4),
            }
    best = max(models, key=lambda k: models[k]["auroc_pooled"])
    import sklearn

    return {
        "dataset": "heart_cleveland",
        "target": cfg.data.target,
        "n": len(y),
        "folds": s.folds,
        "split_seed": s.seed,
        "val_fraction": s.fractions[1],
        "models": models,
        "sklearn_reference": models_ref,
        "nested_logistic_regression": nested,
        "best": {"model": best, "auroc_pooled": models[best]["auroc_pooled"]},
        "target_auroc": 0.91,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": 1,
        },
        "versions": {"scikit-learn": sklearn.__version__, "torch": str(torch.__version__)},
    }


C_GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _nested_logistic_regression(
    cfg: Any, data: Any, folds: list, y: np.ndarray, fold_of: np.ndarray
) -> dict[str, Any]:
    """``logistic_regression`` with C chosen inside each outer training part only (inner
    patient-level 5-fold CV AUROC over ``C_GRID``), so no test fold informs the choice."""
    from sklearn.metrics import roc_auc_score

    from medlearn.clinical.tabular import TabularLearner
    from medlearn.config import ModelConfig
    from medlearn.data import kfold_splits

    by_id = data.by_id()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"medlearn-nested-{os.getpid()}"

    def fit_predict(c: float, train: list, val: list, test: list) -> np.ndarray:
        one = cfg.model_copy(
            update={"model": ModelConfig(name="logistic_regression", params={"C": c})}
        )
        learner = TabularLearner.from_config(one, data)
        learner.fit(train, val, work_dir=work, resume=False)
        return np.exp(learner.predict_logits(test))[:, 1]

    probs, chosen = [], []
    for f in folds:
        outer = [by_id[i] for i in f["train"] + f["val"]]
        inner = kfold_splits(outer, folds=5, val_fraction=0.1, seed=cfg.data.split.seed)
        scores = {}
        for c in C_GRID:
            per = []
            for g in inner:
                p = fit_predict(
                    c,
                    [by_id[i] for i in g["train"]],
                    [by_id[i] for i in g["val"]],
                    [by_id[i] for i in g["test"]],
                )
                per.append(roc_auc_score([by_id[i]["target"] for i in g["test"]], p))
            scores[c] = float(np.mean(per))
        best_c = max(scores, key=lambda c: (scores[c], -c))
        chosen.append(best_c)
        probs.append(
            fit_predict(
                best_c,
                [by_id[i] for i in f["train"]],
                [by_id[i] for i in f["val"]],
                [by_id[i] for i in f["test"]],
            )
        )
    return {
        "c_grid": list(C_GRID),
        "chosen_c_per_fold": chosen,
        **_auroc_block(y, np.concatenate(probs), fold_of, cfg.training.seed),
    }


def _sklearn_reference(data: Any, folds: list, y: np.ndarray, fold_of: np.ndarray, seed: int):
    """LogisticRegression(C=1) after median imputation and scaling, on the same test folds."""
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import PredefinedSplit, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    by_id = data.by_id()
    order = [i for f in folds for i in f["test"]]
    X = pd.DataFrame([by_id[i]["input"] for i in order]).apply(pd.to_numeric, errors="coerce")
    pipe = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=2000)
    )
    t0 = time.perf_counter()
    proba = cross_val_predict(
        pipe, X.to_numpy(float), y, cv=PredefinedSplit(fold_of), method="predict_proba"
    )
    seconds = time.perf_counter() - t0
    return {
        "model": "sklearn Pipeline(SimpleImputer(median), StandardScaler, LogisticRegression)",
        **_auroc_block(y, proba[:, 1], fold_of, seed),
        "fit_seconds": round(seconds, 3),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    data_dir = os.environ.get("MEDLEARN_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    print(json.dumps(run_cleveland(data_dir), indent=2))

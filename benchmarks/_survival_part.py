"""Survival benchmark: test C-index and fit time of every medlearn survival model on WHAS,
SUPPORT and GBSG (DeepSurv's splits), next to lifelines and scikit-survival called directly.

``python benchmarks/_survival_part.py`` prints one JSON object. Each medlearn model and each
peer is fitted on the same training split (the file's train minus the validation share the
pipeline carves out with ``split: given``) and scored on the file's test split. Peers:
lifelines ``CoxPHFitter(penalizer=0.01)`` and scikit-survival ``RandomSurvivalForest``
with one fixed configuration (:data:`PEER_RSF`, exact times, ``low_memory=True``). ``ratio``
is ours / peer for the matching model. C-indices carry patient-level bootstrap 95% CIs.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

_DEEPSURV_TRAINING = {
    "epochs": 300,
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 1e-3,
    "patience": 30,
}

#: Per dataset, hyper-parameters chosen on the validation split only (never on test); the
#: best model of each dataset has a run file ``examples/clinical/<dataset>_<model>.yaml``
#: with the same settings. See docs/survival.md (Benchmark) for the grids tried.
MODELS: dict[str, dict[str, dict[str, Any]]] = {
    "whas": {
        "cox_ph": {"params": {"penalizer": 0.01}},
        "rsf": {"params": {"n_estimators": 200, "min_samples_leaf": 5, "max_features": "sqrt"}},
        "gradient_boosting_survival": {
            "params": {"n_estimators": 300, "learning_rate": 0.1, "max_depth": 4}
        },
        "deepsurv": {
            "params": {"hidden": [64, 64], "dropout": 0.1},
            "training": {**_DEEPSURV_TRAINING, "weight_decay": 1e-4},
        },
    },
    "support": {
        "cox_ph": {"params": {"penalizer": 0.01}},
        "rsf": {"params": {"n_estimators": 200, "min_samples_leaf": 20, "max_features": "sqrt"}},
        # scikit-survival's Cox gradient and loss are O(n^2) per boosting stage (~1.4 s at
        # 5,845 rows), so SUPPORT gets few, shallow, subsampled stages.
        "gradient_boosting_survival": {
            "params": {
                "n_estimators": 50,
                "learning_rate": 0.1,
                "max_depth": 3,
                "subsample": 0.5,
                "min_samples_leaf": 20,
            }
        },
        "deepsurv": {
            "params": {"hidden": [128, 128], "dropout": 0.3},
            "training": {**_DEEPSURV_TRAINING, "batch_size": 512},
        },
    },
    "gbsg": {
        "cox_ph": {"params": {"penalizer": 0.01}},
        "rsf": {"params": {"n_estimators": 200, "min_samples_leaf": 15, "max_features": "sqrt"}},
        "gradient_boosting_survival": {
            "params": {"n_estimators": 100, "learning_rate": 0.05, "max_depth": 2}
        },
        "deepsurv": {
            "params": {"hidden": [32, 32], "dropout": 0.2, "activation": "selu"},
            "training": _DEEPSURV_TRAINING,
        },
    },
}

#: The scikit-survival peer: one fixed configuration for every dataset (exact times).
PEER_RSF: dict[str, Any] = {
    "n_estimators": 100,
    "min_samples_leaf": 15,
    "max_features": "sqrt",
    "low_memory": True,
    "n_jobs": 2,
    "random_state": 0,
}
DATASETS = ("whas", "support", "gbsg")


def _split(name: str) -> dict[str, list[Any]]:
    from medlearn import catalog
    from medlearn.config import validate_config
    from medlearn.pipeline import split_records

    cfg = validate_config(
        {"task": "survival", "data": {"dataset": name}, "model": {"name": "cox_ph"}}
    )
    data = catalog.load(name, cfg=cfg)
    by_id = data.by_id()
    parts = {k: [by_id[i] for i in v] for k, v in split_records(cfg, data).items()}
    return {"parts": parts, "schema": data.info["survival"]}


def _c_with_ci(t: np.ndarray, e: np.ndarray, risk: np.ndarray, bootstrap: int) -> dict[str, Any]:
    from medlearn.evaluation.survival import evaluate_survival

    out = evaluate_survival(t, e, risk, bootstrap=bootstrap, seed=0)
    return out["c_index"]


def run_survival(data_dir: str | Path | None = None, *, bootstrap: int = 200) -> dict[str, Any]:
    """Benchmark every survival model and the peers on WHAS, SUPPORT and GBSG.

    Args:
        data_dir: the shared data directory (default: ``$MEDLEARN_DATA_DIR``).
        bootstrap: resamples for the C-index CIs.

    Returns:
        ``{"datasets": {name: {"models": {...}, "peers": {...}, "ratio": {...}}}, ...}``.
    """
    import pandas as pd
    import torch
    from lifelines import CoxPHFitter
    from sksurv.ensemble import RandomSurvivalForest
    from sksurv.util import Surv

    from medlearn.clinical._survival_learner import survival_arrays
    from medlearn.clinical.survival import SurvivalLearner, SurvivalSchema
    from medlearn.evaluation.survival import c_index

    if data_dir is not None:
        os.environ["MEDLEARN_DATA_DIR"] = str(data_dir)
    torch.set_num_threads(1)  # DeepSurv: a small MLP gains nothing from a 2nd thread
    started = time.perf_counter()
    result: dict[str, Any] = {"datasets": {}, "command": "python benchmarks/_survival_part.py"}
    for name in DATASETS:
        loaded = _split(name)
        parts = loaded["parts"]
        schema = SurvivalSchema.from_dict(loaded["schema"])
        t_test, e_test = survival_arrays(parts["test"])
        t_val, e_val = survival_arrays(parts["val"])
        entry: dict[str, Any] = {
            "n": {k: len(v) for k, v in parts.items()},
            "models": {},
            "peers": {},
        }
        for model, spec in MODELS[name].items():
            learner = SurvivalLearner(
                model=model,
                model_params=spec["params"],
                schema=schema,
                training={**spec.get("training", {}), "num_threads": 1, "max_minutes": 2},
            )
            with tempfile.TemporaryDirectory() as work:
                t0 = time.perf_counter()
                report = learner.fit(
                    parts["train"], parts["val"], work_dir=Path(work), resume=False
                )
                seconds = time.perf_counter() - t0
            risk = learner.predict_risk(parts["test"])
            val_c = c_index(t_val, e_val, learner.predict_risk(parts["val"]))
            entry["models"][model] = {
                "c_index": _c_with_ci(t_test, e_test, risk, bootstrap),
                "val_c_index": round(float(val_c), 4),
                "fit_seconds": round(seconds, 2),
            }
            if model == "deepsurv":
                entry["models"][model]["epochs"] = report.epochs[0]
        x_tr = np.stack([r["input"] for r in parts["train"]]).astype(float)
        t_tr, e_tr = survival_arrays(parts["train"])
        x_te = np.stack([r["input"] for r in parts["test"]]).astype(float)
        cols = [f"f{j}" for j in range(x_tr.shape[1])]
        frame = pd.DataFrame(x_tr, columns=cols).assign(_t=t_tr, _e=e_tr)
        t0 = time.perf_counter()
        cph = CoxPHFitter(penalizer=0.01).fit(frame, "_t", "_e")
        seconds = time.perf_counter() - t0
        risk = cph.predict_partial_hazard(pd.DataFrame(x_te, columns=cols)).to_numpy()
        entry["peers"]["lifelines_coxph"] = {
            "c_index": _c_with_ci(t_test, e_test, np.log(risk), bootstrap),
            "fit_seconds": round(seconds, 2),
        }
        t0 = time.perf_counter()
        forest = RandomSurvivalForest(**PEER_RSF).fit(
            x_tr, Surv.from_arrays(e_tr.astype(bool), t_tr)
        )
        seconds = time.perf_counter() - t0
        entry["peers"]["sksurv_rsf"] = {
            "c_index": _c_with_ci(t_test, e_test, forest.predict(x_te), bootstrap),
            "fit_seconds": round(seconds, 2),
        }
        ours = entry["models"]
        peers = entry["peers"]
        entry["ratio"] = {
            "cox_ph/lifelines_coxph": {
                "c_index": round(
                    ours["cox_ph"]["c_index"]["value"]
                    / peers["lifelines_coxph"]["c_index"]["value"],
                    4,
                ),
                "fit_seconds": round(
                    ours["cox_ph"]["fit_seconds"]
                    / max(peers["lifelines_coxph"]["fit_seconds"], 1e-3),
                    3,
                ),
            },
            "rsf/sksurv_rsf": {
                "c_index": round(
                    ours["rsf"]["c_index"]["value"] / peers["sksurv_rsf"]["c_index"]["value"], 4
                ),
                "fit_seconds": round(
                    ours["rsf"]["fit_seconds"] / max(peers["sksurv_rsf"]["fit_seconds"], 1e-3), 3
                ),
            },
        }
        best = max(ours, key=lambda m: ours[m]["c_index"]["value"])
        # best_model is a label of the test table; selected_on_val is what validation picks.
        entry["best_model"] = best
        entry["selected_on_val"] = max(ours, key=lambda m: ours[m]["val_c_index"])
        entry["config"] = {"models": MODELS[name], "sksurv_rsf": PEER_RSF}
        result["datasets"][name] = entry
    import lifelines
    import sksurv

    result["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    result["versions"] = {"lifelines": lifelines.__version__, "sksurv": sksurv.__version__}
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["note"] = "Timings are noisy on a shared machine; hyper-parameters chosen on val."
    return result


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "src"))
    print(json.dumps(run_survival(os.environ.get("MEDLEARN_DATA_DIR")), indent=2))

"""ICU in-hospital mortality on PhysioNet/CinC 2012: every time-series model, SAPS-I and SOFA.

Usage:
    MEDLEARN_DATA_DIR=../shared/data .venv/bin/python benchmarks/icu_mortality.py \
        [--threads 2] [--models ts_gradient_boosting,grud] [--max-minutes 3] [--bootstrap 1000]
        [--ensemble auto|a,b,c] [--quick]

``--quick``: logistic regression, gradient boosting and GRU-D with 1-minute torch budgets and
200 bootstrap replicates (a smoke run of a few minutes).

Protocol: train on set-a (a stratified 80/20 train/validation split of its 4,000 stays, seed
0; validation is used for early stopping and the ensemble's calibration only), test on set-b
(4,000 stays). The featuriser (48 h, hourly bins) is fitted on the training stays once and
shared by every model; its time is reported separately. SAPS-I and SOFA from the outcomes
files are scored directly as risk scores on set-b (stays with a missing score excluded).
``ts_ensemble`` averages the validation-Platt-calibrated probabilities of the other models'
fitted instances (its fit seconds are the sum of its members'). Default members: one per
family (gradient boosting, GRU-D, logistic regression), fixed a priori;
``--ensemble auto`` picks the best three by validation AUROC.
``ts_ensemble_all`` averages every fitted model (no selection at all). Prints one JSON
line per model as it finishes, then one JSON object; AUROC and AUPRC with bootstrap 95% CIs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

DEFAULT_MODELS = (
    "ts_logistic_regression",
    "ts_random_forest",
    "ts_gradient_boosting",
    "gru",
    "lstm_attention",
    "grud",
    "ts_transformer",
)
QUICK_MODELS = ("ts_logistic_regression", "ts_gradient_boosting", "grud")


def _scores(y, p1, bootstrap):
    from medlearn.evaluation import evaluate_predictions

    p1 = np.asarray(p1, dtype=float)
    return evaluate_predictions(
        y,
        np.stack([1 - p1, p1], 1),
        task="binary",
        metrics=["auroc", "auprc"],
        bootstrap=bootstrap,
        seed=0,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=None, help="comma-separated registry names")
    ap.add_argument(
        "--ensemble",
        default="ts_gradient_boosting,grud,ts_logistic_regression",
        help="'auto' (best --ensemble-size by validation AUROC), 'none' or comma-separated",
    )
    ap.add_argument("--ensemble-size", type=int, default=3)
    ap.add_argument("--max-minutes", type=float, default=None, help="per torch model")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--bootstrap", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="3 models, short budgets")
    ap.add_argument("--work", default="/tmp/medlearn_icu_bench")
    args = ap.parse_args()
    if args.models is None:
        args.models = ",".join(QUICK_MODELS if args.quick else DEFAULT_MODELS)
    if args.max_minutes is None:
        args.max_minutes = 1.0 if args.quick else 3.0
    if args.bootstrap is None:
        args.bootstrap = 200 if args.quick else 1000

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(limits=args.threads)
    from medlearn.clinical._ts_data import QualityCounter, read_physionet_set
    from medlearn.clinical._ts_learner import TimeSeriesLearner
    from medlearn.evaluation.calibration import apply_calibration, fit_calibrator

    root = Path(os.environ.get("MEDLEARN_DATA_DIR", "../shared/data")) / "physionet2012"
    t0 = time.perf_counter()
    q = QualityCounter()
    set_a = read_physionet_set(root / "set-a.tar.gz", quality=q)
    set_b = read_physionet_set(root / "set-b.tar.gz", quality=q)
    read_s = time.perf_counter() - t0

    from sklearn.model_selection import train_test_split

    ya = np.array([r["target"] for r in set_a])
    tr_idx, va_idx = train_test_split(
        np.arange(len(set_a)), test_size=0.2, stratify=ya, random_state=0
    )
    train = [set_a[i] for i in tr_idx]
    val = [set_a[i] for i in va_idx]
    y_tr, y_va = ya[tr_idx], ya[va_idx]
    y_te = np.array([r["target"] for r in set_b])

    def learner(name: str) -> TimeSeriesLearner:
        return TimeSeriesLearner(
            model=name,
            featurizer={"hours": 48.0},
            epochs=args.epochs,
            batch_size=64,
            lr=1e-3,
            weight_decay=1e-4,
            patience=6,
            max_minutes=args.max_minutes,
            num_threads=args.threads,
            progress=False,
        )

    t0 = time.perf_counter()
    from medlearn.clinical._ts_features import TimeSeriesFeaturizer

    feat = TimeSeriesFeaturizer(hours=48.0).fit(train)
    arr_tr, arr_va, arr_te = feat.transform(train), feat.transform(val), feat.transform(set_b)
    featurise_s = time.perf_counter() - t0
    aux = TimeSeriesLearner._aux_targets(train)

    results: dict[str, dict] = {}
    fitted: dict[str, tuple[TimeSeriesLearner, float]] = {}
    for name in [m for m in args.models.split(",") if m]:
        lrn = learner(name)
        lrn.featurizer_ = feat
        t1 = time.perf_counter()
        rep = lrn._fit_arrays(arr_tr, y_tr, aux, arr_va, y_va, Path(args.work) / name, resume=False)
        fit_s = time.perf_counter() - t1
        fitted[name] = (lrn, fit_s)
        z = lrn._logits_arrays(arr_te)
        p1 = np.exp(z[:, 1]) / np.exp(z).sum(1)
        zv = lrn._logits_arrays(arr_va)
        pv = np.exp(zv[:, 1]) / np.exp(zv).sum(1)
        results[name] = {
            **_scores(y_te, p1, args.bootstrap),
            "val_auroc": _scores(y_va, pv, 0)["auroc"]["value"],
            "fit_seconds": round(fit_s, 1),
            "epochs": rep.epochs,
            "stopped_by": rep.stopped_by,
        }
        print(json.dumps({name: results[name]}), flush=True)

    calibrated: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m, (lrn, _) in fitted.items():
        zv = lrn._logits_arrays(arr_va)
        cal = fit_calibrator("platt", zv, y_va)
        calibrated[m] = (
            apply_calibration(zv, cal)[:, 1],
            apply_calibration(lrn._logits_arrays(arr_te), cal)[:, 1],
        )

    def _ensemble(members: list[str]) -> dict:
        pv = np.mean([calibrated[m][0] for m in members], axis=0)
        pt = np.mean([calibrated[m][1] for m in members], axis=0)
        return {
            **_scores(y_te, pt, args.bootstrap),
            "members": members,
            "val_auroc": _scores(y_va, pv, 0)["auroc"]["value"],
            "fit_seconds": round(sum(fitted[m][1] for m in members), 1),
        }

    if args.ensemble == "auto":
        ranked = sorted(fitted, key=lambda k: -(results[k]["val_auroc"] or 0.0))
        members = ranked[: max(args.ensemble_size, 0)]
    else:
        members = [m for m in args.ensemble.split(",") if m in fitted]
    if len(members) > 1:
        results["ts_ensemble"] = _ensemble(members)
    if len(fitted) > 2:  # no selection at all: every fitted model, equal weights
        results["ts_ensemble_all"] = _ensemble(list(fitted))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        work / "predictions.npz",
        y_val=y_va,
        y_test=y_te,
        **{f"val_{k}": v for k, (v, _) in calibrated.items()},
        **{f"test_{k}": v for k, (_, v) in calibrated.items()},
    )

    for score in ("saps1", "sofa"):
        s = np.array([(r["meta"] or {}).get(score) for r in set_b], dtype=float)
        ok = np.isfinite(s) & (s >= 0)
        scaled = (s[ok] - s[ok].min()) / max(np.ptp(s[ok]), 1e-9)
        results[score] = {
            **_scores(y_te[ok], scaled, args.bootstrap),
            "n": int(ok.sum()),
            "n_missing_score": int((~ok).sum()),
            "fit_seconds": 0.0,
        }
        print(json.dumps({score: results[score]}), flush=True)

    best = max(
        (k for k in results if k not in ("saps1", "sofa")),
        key=lambda k: results[k]["auroc"]["value"] or 0,
        default=None,
    )
    print(
        json.dumps(
            {
                "benchmark": "icu_mortality",
                "dataset": "physionet2012 train/val set-a, test set-b",
                "n": {"train": len(train), "val": len(val), "test": len(set_b)},
                "deaths": {
                    "train": int(y_tr.sum()),
                    "val": int(y_va.sum()),
                    "test": int(y_te.sum()),
                },
                "read_seconds": round(read_s, 1),
                "featurise_seconds": round(featurise_s, 1),
                "results": results,
                "best": best,
                "machine": {
                    "threads": args.threads,
                    "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                    "note": "shared CPU: timings are noisy",
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

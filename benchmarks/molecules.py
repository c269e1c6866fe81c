"""Molecular property prediction side by side with Chemprop 2.3.1, and molecule generation.

Usage:
    MEDLEARN_DATA_DIR=../shared/data .venv/bin/python benchmarks/molecules.py \
        [--datasets esol,freesolv,bbbp,clintox,tox21] [--seeds 0,1,2,3,4] [--threads 2] \
        [--tools medlearn,chemprop] [--chemprop-epochs 50] [--set key=value ...] [--generation]

Protocol, per dataset and seed:

* The split comes from medlearn (the run file's splitter with ``data.split.seed = seed``:
  random 80/10/10 for ESOL, FreeSolv, ClinTox and Tox21; Chemprop's balanced scaffold split for
  BBBP). Its train/val/test molecules (canonical SMILES, targets, missing labels left empty)
  are written to three CSV files that Chemprop reads as its train, val and test sets, so both
  tools see identical molecules. Duplicate molecules share a group, so none crosses splits.
* medlearn trains the run file in ``examples/molecules/`` (``esol.yaml`` also for FreeSolv,
  ``tox21.yaml`` also for ClinTox, with the dataset swapped and the D-MPNN as measured for
  ClinTox: no descriptors, no dropout, which the Tox21 example adds, and the mean readout
  chosen on validation) through
  ``medlearn.pipeline.train``
  with ``training.seed = seed``; Chemprop runs ``chemprop train`` with its defaults (D-MPNN,
  hidden 300, depth 3, 50 epochs, Noam schedule, best-val checkpoint) and
  ``--pytorch-seed seed``.
* Both tools' test predictions are scored by the same code here: RMSE (regression) or ROC-AUC
  averaged over tasks, each task on its labelled molecules (classification). medlearn's
  validation molecules are scored the same way (``val_value``), so that settings can be
  chosen without looking at the test split; a run with ``model.params.blend_refit`` (its
  baselines refitted on validation too) reports instead the validation score in its
  ``metrics.json``, computed from the predictions made before the refit.
* medlearn trains one model (``training.ensemble = 1``), as Chemprop does by default.
* Fit seconds: medlearn's ``timing.fit_seconds`` (featurisation included, caches emptied
  before every run); Chemprop's wall time
  of ``chemprop train`` minus the wall time of its Python imports (``import chemprop,
  lightning``, measured once) — its featurisation, training and test prediction remain in it.
* Both get ``--threads`` threads (``OMP_NUM_THREADS`` / ``torch.set_num_threads``).

Chemprop is installed on first use into its own virtual environment (``--chemprop-venv``,
default ``~/.cache/medlearn/chemprop-venv``) with the same torch pin as medlearn
(``constraints/cpu.txt``); it is never a dependency of medlearn.

``--generation`` also trains the generation examples (``examples/molecules/generate_vae.yaml``
and ``generate_char_rnn.yaml``) and reports their sample metrics (validity, uniqueness,
novelty ...) and sampling throughput.

Prints one JSON line per (dataset, seed, tool) as it finishes, then one JSON summary with
mean ± std over seeds and the fit-time ratio medlearn / Chemprop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "molecules"
CHEMPROP_VERSION = "2.3.1"

#: dataset → (run file, overrides that turn it into this dataset, metric)
DATASETS: dict[str, tuple[str, list[str], str]] = {
    "esol": ("esol.yaml", [], "rmse"),
    "freesolv": (
        "esol.yaml",
        ["name=freesolv", "data.dataset=freesolv", "data.target=expt"],
        "rmse",
    ),
    "bbbp": ("bbbp_scaffold.yaml", [], "auroc"),
    "clintox": (
        "tox21.yaml",
        [
            "name=clintox",
            "data.dataset=clintox",
            "data.target=[FDA_APPROVED, CT_TOX]",
            # descriptors lowered ClinTox's ROC-AUC (0.595 vs 0.633, docs/benchmarks.md)
            "model.params.descriptors=false",
            "model.params.dropout=0.0",
            # mean readout (Chemprop's default) chosen on validation ROC-AUC over the five
            # splits: 0.686 against 0.612 for the sum / 100 readout (docs/benchmarks.md)
            "model.params.aggregation=mean",
        ],
        "auroc",
    ),
    "tox21": ("tox21.yaml", [], "auroc"),
}


# --- scoring (the same for both tools) ---------------------------------------------------------


def _score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """RMSE over all labelled values, or ROC-AUC averaged over tasks (labelled rows only)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=float).reshape(len(y), -1)
    pred = np.asarray(pred, dtype=float).reshape(len(pred), -1)
    if metric == "rmse":
        ok = ~np.isnan(y)
        return float(np.sqrt(np.mean((y[ok] - pred[ok]) ** 2)))
    aucs = []
    for t in range(y.shape[1]):
        ok = ~np.isnan(y[:, t])
        if len(np.unique(y[ok, t])) == 2:
            aucs.append(roc_auc_score(y[ok, t], pred[ok, t]))
    return float(np.mean(aucs))


def _targets(records: list[dict[str, Any]]) -> np.ndarray:
    rows = []
    for r in records:
        t = r["target"]
        rows.append([np.nan if v is None else float(v) for v in t] if isinstance(t, list) else [t])
    return np.asarray(rows, dtype=float)


# --- medlearn ----------------------------------------------------------------------------------


#: medlearn variants: extra overrides. ``single`` is the head-to-head with Chemprop's one model
#: (the fit-time ratio uses it); ``ens5`` is a 5-member deep ensemble (accuracy, uncertainty).
VARIANTS: dict[str, list[str]] = {"single": [], "ens5": ["training.ensemble=5"]}


def _config(dataset: str, seed: int, threads: int, extra: list[str]) -> Any:
    from medlearn.config import load_config

    run_file, overrides, _ = DATASETS[dataset]
    sets = [
        *overrides,
        f"data.split.seed={seed}",
        f"training.seed={seed}",
        f"training.num_threads={threads}",
        "training.progress=false",
        "training.ensemble=1",  # one model against Chemprop's one model
        "evaluation.bootstrap=200",
        *extra,
    ]
    return load_config(EXAMPLES / run_file, sets)


def _split(cfg: Any) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    from medlearn.pipeline import load_data, split_records

    data = load_data(cfg)
    ids = split_records(cfg, data)
    by_id = data.by_id()
    names = list(data.info.get("targets") or [])
    return {k: [by_id[i] for i in v] for k, v in ids.items()}, names


def _cold_caches(work: Path) -> None:
    """Empty medlearn's graph and descriptor caches (memory, and a fresh disk folder), so
    featurisation is counted in every run's fit time as it is in Chemprop's."""
    from medlearn.catalog import CACHE_ENV
    from medlearn.molecules import _data, _features

    _data.clear_memory_cache()
    _features.clear_feature_cache()
    os.environ[CACHE_ENV] = str(work / "cache")


def run_medlearn(cfg: Any, parts: dict[str, list], metric: str, work: Path) -> dict[str, Any]:
    from medlearn.pipeline import load_learner, train

    _cold_caches(work)
    t0 = time.perf_counter()
    result = train(cfg, out=work, echo=lambda _msg: None)
    wall = time.perf_counter() - t0
    learner, _ = load_learner(work)

    def score(records: list[dict[str, Any]]) -> float:
        logits = np.asarray(learner.predict_logits(records), dtype=float)
        if metric == "auroc" and logits.ndim == 2 and logits.shape[1] == 2 and cfg.task == "binary":
            logits = logits[:, 1:] - logits[:, :1]
        return _score(metric, _targets(records), logits)

    refit = (result.metrics.get("training", {}).get("blend") or {}).get("refit")
    if refit:  # the bundle's baselines have seen validation; metrics.json scored it before
        val_value = float(result.metrics["metrics"]["val"][metric]["value"])
    else:
        val_value = score(parts["val"])
    return {
        "value": score(parts["test"]),
        "val_value": val_value,  # for choosing settings without the test split
        "fit_seconds": float(result.metrics["timing"]["fit_seconds"]),
        "wall_seconds": round(wall, 1),
        "handler_test": result.metrics["metrics"].get("test", {}),
    }


# --- Chemprop ----------------------------------------------------------------------------------


def ensure_chemprop(venv: Path) -> Path:
    """Chemprop's own virtual environment (created on first use); returns its ``chemprop``."""
    exe = venv / "bin" / "chemprop"
    if exe.exists():
        return exe
    print(f"installing chemprop {CHEMPROP_VERSION} into {venv} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    constraints = ["-c", str(ROOT / "constraints" / "cpu.txt")]
    subprocess.run([*pip, *constraints, "torch"], check=True)
    subprocess.run([*pip, *constraints, f"chemprop=={CHEMPROP_VERSION}"], check=True)
    return exe


def _thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[key] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def chemprop_import_seconds(venv: Path, threads: int) -> float:
    """Wall time of Chemprop's imports: subtracted from its train wall time."""
    t0 = time.perf_counter()
    subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import chemprop, lightning, chemprop.cli.train"],
        check=True,
        env=_thread_env(threads),
    )
    return time.perf_counter() - t0


def _write_csv(path: Path, records: list[dict[str, Any]], names: list[str]) -> None:
    import pandas as pd

    y = _targets(records)
    frame = pd.DataFrame({"smiles": [r["input"] for r in records]})
    for j, name in enumerate(names):
        frame[name] = y[:, j]
    frame.to_csv(path, index=False)


def run_chemprop(
    exe: Path,
    parts: dict[str, list],
    names: list[str],
    metric: str,
    *,
    seed: int,
    epochs: int,
    threads: int,
    import_seconds: float,
    work: Path,
) -> dict[str, Any]:
    import pandas as pd

    work.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in ("train", "val", "test"):
        p = work / f"{split}.csv"
        _write_csv(p, parts[split], names)
        paths.append(str(p))
    cmd = [
        str(exe),
        "train",
        "--data-path",
        *paths,
        "-s",
        "smiles",
        "--target-columns",
        *names,
        "-t",
        "regression" if metric == "rmse" else "classification",
        "--epochs",
        str(epochs),
        "--pytorch-seed",
        str(seed),
        "--num-workers",
        "0",
        "--accelerator",
        "cpu",
        "-o",
        str(work / "out"),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_thread_env(threads), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"chemprop failed ({proc.returncode}): {proc.stderr[-2000:]}")
    preds = pd.read_csv(work / "out" / "model_0" / "test_predictions.csv")
    value = _score(metric, _targets(parts["test"]), preds[names].to_numpy(dtype=float))
    return {
        "value": value,
        "fit_seconds": round(wall - import_seconds, 1),
        "wall_seconds": round(wall, 1),
    }


# --- generation --------------------------------------------------------------------------------


#: the generation examples ``--generation`` trains, one after the other
GENERATORS = ("generate_vae.yaml", "generate_char_rnn.yaml")


def run_generation(threads: int, work: Path, extra: list[str]) -> dict[str, Any]:
    """Train every example of :data:`GENERATORS`; their metrics keyed by model name."""
    return {
        out["model"]: out
        for out in (
            _run_generator(example, threads, work / Path(example).stem, extra)
            for example in GENERATORS
        )
    }


def _run_generator(example: str, threads: int, work: Path, extra: list[str]) -> dict[str, Any]:
    from medlearn.config import load_config
    from medlearn.pipeline import train

    cfg = load_config(
        EXAMPLES / example,
        [f"training.num_threads={threads}", "training.progress=false", *extra],
    )
    t0 = time.perf_counter()
    result = train(cfg, out=work, echo=lambda _msg: None)
    doc = result.metrics
    return {
        "example": example,
        "model": cfg.model.name,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "fit_seconds": doc["timing"]["fit_seconds"],
        "test": {k: v.get("value") for k, v in doc["metrics"].get("test", {}).items()},
        "sampling": doc.get("sampling"),
    }


# --- main --------------------------------------------------------------------------------------


def _mean_std(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": round(float(arr.mean()), 4), "std": round(float(arr.std(ddof=0)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="esol,freesolv,bbbp,clintox,tox21")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--tools",
        default="medlearn,chemprop",
        help="medlearn (= medlearn:single), medlearn:ens5, chemprop; comma-separated",
    )
    ap.add_argument("--chemprop-epochs", type=int, default=50)
    ap.add_argument(
        "--chemprop-venv", type=Path, default=Path.home() / ".cache/medlearn/chemprop-venv"
    )
    ap.add_argument("--set", action="append", default=[], help="medlearn run-file override")
    ap.add_argument("--generation", action="store_true", help="also the generation examples")
    ap.add_argument("--work", type=Path, default=Path("/tmp/medlearn_mol_bench"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    tools = [t for t in args.tools.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    exe, import_s = None, 0.0
    if "chemprop" in tools:
        exe = ensure_chemprop(args.chemprop_venv)
        import_s = chemprop_import_seconds(args.chemprop_venv, args.threads)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for dataset in [d for d in args.datasets.split(",") if d]:
        metric = DATASETS[dataset][2]
        for seed in seeds:
            cfg = _config(dataset, seed, args.threads, args.set)
            parts, names = _split(cfg)
            for tool in tools:
                work = args.work / dataset / f"seed{seed}" / tool
                if tool.startswith("medlearn"):
                    variant = tool.partition(":")[2] or "single"
                    tool = "medlearn" if variant == "single" else f"medlearn:{variant}"
                    vcfg = _config(dataset, seed, args.threads, [*args.set, *VARIANTS[variant]])
                    row = run_medlearn(vcfg, parts, metric, work)
                else:
                    assert exe is not None
                    row = run_chemprop(
                        exe,
                        parts,
                        names,
                        metric,
                        seed=seed,
                        epochs=args.chemprop_epochs,
                        threads=args.threads,
                        import_seconds=import_s,
                        work=work,
                    )
                row.update(
                    {
                        "dataset": dataset,
                        "seed": seed,
                        "tool": tool,
                        "metric": metric,
                        "split": cfg.data.split.method,
                        "n": {k: len(v) for k, v in parts.items()},
                    }
                )
                results.setdefault(dataset, {}).setdefault(tool, []).append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "handler_test"}), flush=True)
    summary: dict[str, Any] = {
        "benchmark": "molecules",
        "threads": args.threads,
        "seeds": seeds,
        "platform": platform.platform(),
        "chemprop": CHEMPROP_VERSION if exe else None,
        "chemprop_import_seconds": round(import_s, 1),
        "datasets": {},
    }
    for dataset, by_tool in results.items():
        entry: dict[str, Any] = {"metric": DATASETS[dataset][2]}
        for tool, rows in by_tool.items():
            entry[tool] = {
                "test": _mean_std([r["value"] for r in rows]),
                **(
                    {"val": _mean_std([r["val_value"] for r in rows])}
                    if all("val_value" in r for r in rows)
                    else {}
                ),
                "fit_seconds": _mean_std([r["fit_seconds"] for r in rows]),
            }
        if "medlearn" in entry and "chemprop" in entry:
            entry["fit_time_ratio"] = round(
                entry["medlearn"]["fit_seconds"]["mean"] / entry["chemprop"]["fit_seconds"]["mean"],
                3,
            )
        summary["datasets"][dataset] = entry
    if args.generation:
        summary["generation"] = run_generation(args.threads, args.work / "generation", args.set)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

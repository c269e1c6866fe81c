"""Tabular risk models and survival models: medlearn beside scikit-learn, lifelines and
scikit-survival on the same folds / splits, in one run.

- Cleveland heart disease (binary, ``num > 0``): 5-fold cross-validated AUROC of every
  registered tabular model on identical patient-level folds (seed 0), pooled out-of-fold with a
  bootstrap 95% CI, beside a plain scikit-learn logistic-regression pipeline on the same folds
  (see ``benchmarks/_tabular_part.py``).
- WHAS, SUPPORT, GBSG (DeepSurv's train/test files): test C-index with a bootstrap CI and fit
  seconds for every medlearn survival model, beside lifelines' CoxPHFitter and
  scikit-survival's RandomSurvivalForest fitted directly on the same split
  (see ``benchmarks/_survival_part.py``).

Prints one JSON object. Usage (from the repository root)::

    MEDLEARN_DATA_DIR=../shared/data .venv/bin/python benchmarks/tabular_survival.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    data_dir = os.environ.get("MEDLEARN_DATA_DIR")
    if not data_dir:
        print(json.dumps({"error": "set MEDLEARN_DATA_DIR (e.g. ../shared/data)"}))
        return 2
    import torch
    from _survival_part import run_survival
    from _tabular_part import run_cleveland

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    t0 = time.perf_counter()
    out = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
        },
        "cleveland": run_cleveland(Path(data_dir)),
        "survival": run_survival(Path(data_dir)),
    }
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

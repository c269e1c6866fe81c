"""Cross-validated runs (data.split.method: kfold) through the CLI on tiny PNG data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from medlearn.bundle import read_manifest
from medlearn.cli import main

pytestmark = pytest.mark.e2e


def test_kfold_run_pools_out_of_fold_metrics_and_bundles_a_refit(
    png_dataset: Path, tmp_path: Path
) -> None:
    runfile = tmp_path / "cv.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-cv",
                "data": {
                    "path": str(png_dataset),
                    "split": {"method": "kfold", "folds": 3, "seed": 0},
                    "augment": None,
                },
                "model": {"name": "simple_cnn", "params": {"width": 8}},
                "training": {"epochs": 2, "batch_size": 16, "lr": 0.01, "progress": False},
                "evaluation": {"bootstrap": 20, "gallery": 0, "metrics": ["auroc", "accuracy"]},
            }
        )
    )
    out = tmp_path / "run"
    assert main(["train", str(runfile), "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["split"] == {"method": "kfold", "seed": 0, "folds": 3}
    assert set(doc["metrics"]) == {"cv", "val"}  # no held-out test after the refit
    assert 0.0 <= doc["metrics"]["cv"]["auroc"]["value"] <= 1.0
    assert [f["fold"] for f in doc["folds"]] == [0, 1, 2]
    assert doc["cv_analysis"]["decision_curve"]["split"] == "cv"
    frame = pd.read_parquet(out / "predictions.parquet")
    cv = frame[frame["split"] == "cv"]
    assert len(cv) == 48 and cv["id"].is_unique  # every record predicted out of fold once
    assert doc["n"]["cv"] == 48
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["folds"]) == 3 and splits["final"]["test"] == []
    assert sorted(splits["final"]["train"] + splits["final"]["val"]) == sorted(cv["id"])
    manifest = read_manifest(out)
    assert "cv" in manifest["metrics"] and 0.0 < manifest["threshold"] < 1.0
    html = (out / "report.html").read_text()
    assert "Cross-validation" in html and "ROC and precision-recall curves" in html

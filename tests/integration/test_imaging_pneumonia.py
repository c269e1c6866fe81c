"""The imaging pipeline on the real PneumoniaMNIST data (official splits), through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlearn.cli import main

pytestmark = pytest.mark.integration


def test_short_training_run_learns_pneumonia(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "examples/imaging/pneumoniamnist.yaml",
            "--out",
            str(out),
            "--set",
            "training.epochs=1",
            "--set",
            "training.ensemble=1",
            "--set",
            "training.max_minutes=1.5",
            "--set",
            "training.progress=false",
            "--set",
            "evaluation.bootstrap=200",
            "--set",
            "evaluation.gallery=2",
            "--set",
            "evaluation.tta=false",
        ]
    )
    assert code == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["n"] == {"train": 3882, "val": 524, "test": 624}
    assert doc["dataset"] == "pneumoniamnist"
    # One epoch of the default model already separates the classes on the official test set.
    assert doc["metrics"]["test"]["auroc"]["value"] > 0.85
    lo, hi = doc["metrics"]["test"]["auroc"]["ci95"]
    assert lo < doc["metrics"]["test"]["auroc"]["value"] < hi
    assert (out / "report.html").stat().st_size > 50_000

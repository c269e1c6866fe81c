"""Survival on the real WHAS data (DeepSurv's split), fast settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlearn.config import validate_config
from medlearn.pipeline import train

pytestmark = pytest.mark.integration


def test_whas_cox_and_forest_beat_published_cox(data_dir: Path, tmp_path: Path) -> None:
    for model, params, floor in (
        ("cox_ph", {"penalizer": 0.01}, 0.79),
        ("rsf", {"n_estimators": 100, "min_samples_leaf": 5}, 0.84),
    ):
        cfg = validate_config(
            {
                "name": f"whas-{model}",
                "task": "survival",
                "data": {"dataset": "whas", "split": {"method": "given"}, "augment": None},
                "model": {"name": model, "params": params},
                "evaluation": {"bootstrap": 100},
            }
        )
        result = train(cfg, out=tmp_path / model, echo=lambda _line: None)
        doc = json.loads((result.run_dir / "metrics.json").read_text())
        assert doc["n"]["test"] == 328
        assert doc["metrics"]["test"]["c_index"]["value"] > floor, model

"""Real UCI tables from MEDLEARN_DATA_DIR: the catalog entries read, and Cleveland trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlearn import catalog
from medlearn.config import load_config, validate_config

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinical" / "heart_cleveland.yaml"


@pytest.mark.parametrize(
    ("name", "target", "n", "positives"),
    [
        ("heart_cleveland", "num > 0", 303, 139),
        ("pima", "Outcome", 768, 268),
        ("breast_cancer_wisconsin", "class == 4", 699, 241),
        ("chronic_kidney_disease", "class == 'ckd'", 400, 250),
    ],
)
def test_catalog_tables_read(
    data_dir: Path, name: str, target: str, n: int, positives: int
) -> None:
    cfg = validate_config(
        {"data": {"dataset": name, "target": target}, "model": {"name": "logistic_regression"}}
    )
    data = catalog.load(name, cfg=cfg)
    assert len(data.records) == n
    assert sum(r["target"] for r in data.records) == positives


def test_cleveland_kfold_train_and_predict(data_dir: Path, tmp_path: Path) -> None:
    from medlearn.pipeline import predict, train

    cfg = load_config(EXAMPLE, overrides=["evaluation.bootstrap=100"])
    result = train(cfg, out=tmp_path / "run", echo=lambda s: None)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    assert doc["n"]["cv"] == 303
    assert doc["metrics"]["cv"]["auroc"]["value"] > 0.88  # published LR baseline ≈ 0.90
    table = tmp_path / "patients.csv"
    table.write_text(
        "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal\n"
        "63,1,1,145,233,1,2,150,0,2.3,3,0,6\n"
        "67,1,9,160,286,0,2,108,1,1.5,2,3,3\n"
    )
    rows = list(predict(result.run_dir, [str(table)]))
    assert rows[0]["input"] == "patients.csv:row2" and "column 'cp'" in rows[0]["error"]
    assert rows[1]["input"] == "patients.csv:row1" and "probabilities" in rows[1]

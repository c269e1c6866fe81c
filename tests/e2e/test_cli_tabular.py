"""The CLI on a tiny synthetic risk table: kfold train, evaluate, predict with bad rows, compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from medlearn.cli import main

pytestmark = pytest.mark.e2e


def _table(path: Path, n: int = 90, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = ["pid,age,sex,marker,y"]
    for i in range(n):
        age = int(rng.integers(30, 80))
        sex = "F" if i % 2 else "M"
        marker = rng.normal()
        risk = 1.5 * marker + 0.04 * (age - 55)
        y = int(rng.random() < 1 / (1 + np.exp(-risk)))
        rows.append(f"P{i},{age},{sex},{marker:.3f},{y}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def runfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("tab")
    table = _table(work / "risk.csv")
    path = work / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-tab",
                "task": "binary",
                "data": {
                    "path": str(table),
                    "target": "y == 1",
                    "options": {
                        "patient_id": "pid",
                        "schema": {"age": {"type": "numeric", "min": 18, "max": 100}},
                    },
                    "split": {"method": "kfold", "folds": 3, "seed": 0},
                },
                "model": {"name": "logistic_regression"},
                "compare": [{"name": "random_forest", "params": {"n_estimators": 20}}],
                "evaluation": {
                    "metrics": ["auroc", "accuracy"],
                    "bootstrap": 50,
                    "subgroups": ["sex", "age"],
                    "gallery": 0,
                },
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def trained(runfile: Path) -> Path:
    out = runfile.parent / "run"
    assert main(["train", str(runfile), "--out", str(out)]) == 0
    return out


def test_kfold_train_writes_cv_metrics(trained: Path) -> None:
    doc = json.loads((trained / "metrics.json").read_text())
    assert doc["n"]["cv"] == 90
    assert 0.5 < doc["metrics"]["cv"]["auroc"]["value"] <= 1.0
    assert len(doc["folds"]) == 3
    assert (trained / "bundle" / "model.skops").is_file()
    assert (trained / "report.html").is_file()


def test_predict_reports_the_bad_row_and_predicts_the_rest(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "new.csv"
    new.write_text("pid,age,sex,marker\nA,50,F,0.2\nB,150,M,0.1\nC,61,M,-1.0\n")
    capsys.readouterr()
    assert main(["predict", str(trained), str(new)]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    errors = [x for x in lines if "error" in x]
    preds = [x for x in lines if "prediction" in x]
    assert len(errors) == 1 and errors[0]["input"] == "new.csv:row2"
    assert "column 'age' is above the allowed maximum 100" in errors[0]["error"]
    assert [p["input"] for p in preds] == ["new.csv:row1", "new.csv:row3"]
    assert abs(sum(preds[0]["probabilities"].values()) - 1.0) < 1e-5


def test_evaluate_on_the_table(trained: Path, runfile: Path) -> None:
    table = runfile.parent / "risk.csv"
    out = trained / "eval"
    assert main(["evaluate", str(trained), "--data", str(table), "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["n"]["test"] == 90
    assert doc["metrics"]["test"]["auroc"]["value"] > 0.6


def test_compare_ranks_models_on_identical_folds(
    runfile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = runfile.parent / "cmp"
    assert main(["compare", str(runfile), "--out", str(out)]) == 0
    doc = json.loads((out / "compare.json").read_text())
    assert doc["split"] == "cv" and doc["n"] == 90 and doc["metric"] == "auroc"
    names = [m["model"] for m in doc["models"]]
    assert sorted(names) == ["logistic_regression", "random_forest"]
    assert [m["rank"] for m in doc["models"]] == [1, 2]
    best, other = doc["models"]
    assert best["model"] == doc["best"] and best["diff_vs_best"] is None
    diff = other["diff_vs_best"]
    assert diff["value"] == pytest.approx(other["value"] - best["value"], abs=1e-6)
    assert diff["ci95"][0] <= diff["value"] <= diff["ci95"][1]
    splits = [json.loads((out / n / "splits.json").read_text())["folds"] for n in names]
    assert splits[0] == splits[1]
    assert "<table>" in (out / "compare.html").read_text()
    assert "auroc" in capsys.readouterr().out

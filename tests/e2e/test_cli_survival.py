"""The CLI end to end on a WHAS-like synthetic DeepSurv HDF5 file (task: survival)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from medlearn.cli import main

pytestmark = pytest.mark.e2e


def _whas_like(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for group, n in (("train", 400), ("test", 150)):
            x = rng.normal(size=(n, 6)).astype(np.float32)
            x[:, 1] = rng.integers(0, 2, n)
            log_risk = 0.9 * x[:, 0] + 0.6 * x[:, 1] - 0.5 * x[:, 2] ** 2
            et = rng.exponential(300 * np.exp(-log_risk))
            ct = rng.uniform(50, 900, n)
            g = f.create_group(group)
            g["x"] = x
            g["t"] = np.minimum(et, ct).astype(np.float32)
            g["e"] = (et <= ct).astype(np.int32)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("surv_cli")
    h5 = _whas_like(work / "whas_like.h5")
    runfile = work / "run.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "whas-like",
                "task": "survival",
                "data": {"path": str(h5), "split": {"method": "given"}, "augment": None},
                "model": {"name": "deepsurv", "params": {"hidden": [16]}},
                "training": {
                    "epochs": 40,
                    "batch_size": 128,
                    "lr": 0.01,
                    "patience": 10,
                    "progress": False,
                },
                "evaluation": {"bootstrap": 50},
            }
        )
    )
    out = work / "run"
    assert main(["train", str(runfile), "--out", str(out)]) == 0
    return out


def test_metrics_have_c_index_with_ci(trained: Path) -> None:
    doc = json.loads((trained / "metrics.json").read_text())
    assert doc["task"] == "survival"
    c = doc["metrics"]["test"]["c_index"]
    assert c["value"] > 0.6 and c["ci95"][0] <= c["value"] <= c["ci95"][1]
    assert set(doc["metrics"]["test"]) >= {"uno_c", "integrated_brier", "td_auc"}
    assert len(doc["horizons"]) == 3


def test_report_has_kaplan_meier_section(trained: Path) -> None:
    html = (trained / "report.html").read_text()
    assert 'id="km"' in html and "Kaplan–Meier" in html
    assert "data:image/png;base64," in html


def test_predict_csv_rows(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv = tmp_path / "patients.csv"
    csv.write_text("x0,x1,x2,x3,x4,x5\n0.5,1,0.1,0,0,0\n-1,0,0.2,0,0,0\n0.1,0,abc,0,0,0\n")
    capsys.readouterr()
    code = main(["predict", str(trained), str(csv), "--explain"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert code in (0, 1, 2)
    errors = [r for r in lines if "error" in r]
    rows = [r for r in lines if "risk" in r]
    assert len(errors) == 1 and "row 3" in errors[0]["input"] and "x2" in errors[0]["error"]
    assert len(rows) == 2 and rows[0]["risk"] > rows[1]["risk"]
    assert len(rows[0]["survival"]) == 3
    assert rows[0]["explanation"]["top_features"][0]["feature"].startswith("x")

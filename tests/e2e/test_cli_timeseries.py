"""The CLI on a tiny synthetic PhysioNet-2012-like set: train, report, evaluate --data, predict."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from medlearn.cli import main

pytestmark = pytest.mark.e2e


def _record_text(rid: int, died: int, rng: np.random.Generator) -> str:
    lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}"]
    lines += [f"00:00,Age,{int(rng.integers(30, 90))}", f"00:00,Gender,{rid % 2}"]
    lines += ["00:00,Height,-1", f"00:00,ICUType,{1 + rid % 4}", "00:00,Weight,80"]
    for h in range(0, 12, 2):
        hr = 80 + rng.normal(0, 8) + (30 * died if h >= 6 else 0)
        lines.append(f"{h:02d}:{int(rng.integers(0, 59)):02d},HR,{hr:.0f}")
        if rng.random() < 0.5:
            lines.append(f"{h:02d}:30,GCS,{int(rng.integers(3, 16))}")
    lines.append(f"10:00,Lactate,{1.5 + rng.normal(0, 0.4) + 3.0 * died:.1f}")
    return "\n".join(lines) + "\n"


def _write_set(root: Path, name: str, ids: range, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    outcomes = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    tar_path = root / f"set-{name}.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for rid in ids:
            died = int(rid % 3 == 0)
            data = _record_text(rid, died, rng).encode()
            info = tarfile.TarInfo(f"set-{name}/{rid}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            (root / "txt").mkdir(exist_ok=True)
            if name == "b":
                (root / "txt" / f"{rid}.txt").write_bytes(data)
            surv = int(rng.integers(1, 8)) if died else -1
            outcomes.append(
                f"{rid},{10 + 5 * died},{2 + 3 * died},{int(rng.integers(2, 9))},{surv},{died}"
            )
    (root / f"Outcomes-{name}.txt").write_text("\n".join(outcomes) + "\n")
    return tar_path


@pytest.fixture(scope="module")
def runfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ts")
    set_a = _write_set(work, "a", range(1000, 1090), 0)
    _write_set(work, "b", range(2000, 2030), 1)
    path = work / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-icu",
                "task": "binary",
                "data": {
                    "path": str(set_a),
                    # set-b is scored by `evaluate --data` (an options.test source in the run
                    # file would be re-read by evaluate as well)
                    "options": {"hours": 12},
                    "split": {"method": "stratified", "seed": 0, "fractions": [0.6, 0.2, 0.2]},
                },
                "model": {"name": "gru", "params": {"hidden": 8, "static_hidden": 4}},
                "training": {"epochs": 6, "batch_size": 16, "lr": 1e-2, "progress": False},
                "evaluation": {
                    "metrics": ["auroc", "auprc", "brier", "ece", "min_se_ppv"],
                    "bootstrap": 50,
                    "subgroups": ["sex", "age_band", "icu_type"],
                    "calibration": "auto",
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


def test_train_writes_metrics_report_and_attributions(trained: Path) -> None:
    doc = json.loads((trained / "metrics.json").read_text())
    assert doc["n"]["test"] == 18
    test = doc["metrics"]["test"]
    assert test["auroc"]["value"] > 0.7
    for m in ("auprc", "brier", "ece", "min_se_ppv"):
        assert m in test
    imp = json.loads((trained / "importance.json").read_text())
    assert "integrated_gradients" in imp["methods"]
    heat = imp["time_heatmap"]
    assert np.asarray(heat["values"]).shape == (len(heat["variables"]), len(heat["hours"]))
    html = (trained / "report.html").read_text()
    assert "Feature importance" in html and "Subgroups" in html
    # the variable x time attribution heatmap is drawn (an embedded PNG)
    assert 'alt="Attribution by variable and time"' in html
    assert html.count("data:image/png;base64,") >= 2
    assert (trained / "bundle" / "featurizer.json").is_file()


def test_evaluate_on_another_set(trained: Path, runfile: Path) -> None:
    out = trained / "eval"
    set_b = runfile.parent / "set-b.tar.gz"
    assert main(["evaluate", str(trained), "--data", str(set_b), "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["n"]["test"] == 30
    assert doc["metrics"]["test"]["auroc"]["value"] > 0.7


def test_predict_on_record_files_reports_the_bad_one(
    trained: Path, runfile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    txt = runfile.parent / "txt"
    bad = txt / "broken.txt"
    bad.write_text("this is not a record\n")
    capsys.readouterr()
    code = main(
        [
            "predict",
            str(trained),
            str(txt / "2000.txt"),
            str(txt / "2001.txt"),
            str(bad),
            "--explain",
        ]
    )
    assert code == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    errors = [x for x in lines if "error" in x]
    preds = [x for x in lines if "prediction" in x]
    assert len(errors) == 1 and "broken.txt" in errors[0]["input"]
    assert len(preds) == 2
    assert abs(sum(preds[0]["probabilities"].values()) - 1.0) < 1e-5
    assert preds[0]["explanation"]["method"] == "integrated_gradients"
    assert preds[0]["explanation"]["features"]

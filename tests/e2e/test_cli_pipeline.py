"""The CLI end to end, in-process, on a tiny synthetic PNG dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from medlearn.bundle import read_manifest
from medlearn.cli import main
from medlearn.errors import ChecksumError

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(png_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("cli")
    runfile = work / "run.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "task": "binary",
                "data": {
                    "path": str(png_dataset),
                    "split": {"method": "stratified", "fractions": [0.5, 0.25, 0.25], "seed": 1},
                    "augment": {"name": "light"},
                },
                "model": {"name": "simple_cnn", "params": {"width": 8}},
                "training": {"epochs": 3, "batch_size": 16, "lr": 0.01, "progress": False},
                "evaluation": {"bootstrap": 50, "gallery": 2},
            }
        )
    )
    out = work / "run"
    assert main(["train", str(runfile), "--out", str(out), "--set", "training.seed=3"]) == 0
    return out


def test_run_directory_follows_the_contract(trained: Path) -> None:
    for name in (
        "config.yaml",
        "splits.json",
        "metrics.json",
        "predictions.parquet",
        "report.html",
    ):
        assert (trained / name).is_file(), name
    assert (trained / "checkpoints" / "last.ckpt").is_file()
    assert (trained / "checkpoints" / "best.ckpt").is_file()
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["training"]["seed"] == 3  # the --set override is in the resolved file
    assert cfg["_run"]["versions"]["torch"].startswith("2.")
    splits = json.loads((trained / "splits.json").read_text())
    assert sum(len(splits[s]) for s in ("train", "val", "test")) == 48


def test_metrics_json_schema(trained: Path) -> None:
    doc = json.loads((trained / "metrics.json").read_text())
    assert doc["task"] == "binary" and doc["model"] == "simple_cnn"
    assert doc["n"] == {"train": 24, "val": 12, "test": 12}
    for split in ("test", "val"):
        auroc = doc["metrics"][split]["auroc"]
        assert 0.0 <= auroc["value"] <= 1.0
        assert auroc["ci95"] is None or auroc["ci95"][0] <= auroc["value"] <= auroc["ci95"][1]
    assert {"fit_seconds", "predict_seconds", "device", "threads"} <= set(doc["timing"])
    assert 0.0 < doc["threshold"] < 1.0


def test_predictions_table(trained: Path) -> None:
    frame = pd.read_parquet(trained / "predictions.parquet")
    assert {"id", "patient_id", "split", "target", "prediction", "prob_0", "prob_1"} <= set(frame)
    assert set(frame["split"]) == {"val", "test"}
    assert ((frame["prob_0"] + frame["prob_1"] - 1).abs() < 1e-5).all()


def test_report_is_self_contained(trained: Path) -> None:
    html = (trained / "report.html").read_text()
    assert "data:image/png;base64" in html
    assert "Grad-CAM" in html or "gradcam" in html.lower()
    assert 'src="http' not in html


def test_predict_reports_every_bad_file_and_exits_1(
    trained: Path, png_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_text = tmp_path / "notes.png"
    bad_text.write_text("this is not an image")
    rgb = tmp_path / "color.png"
    from PIL import Image

    Image.new("RGB", (16, 16), (10, 200, 30)).save(rgb)
    good = sorted((png_dataset.parent / "img").glob("*.png"))[:3]
    code = main(
        [
            "predict",
            str(trained),
            *map(str, good),
            str(bad_text),
            str(rgb),
            "--explain",
            "--explain-dir",
            str(tmp_path / "cams"),
        ]
    )
    assert code == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 5  # nothing dropped
    errors = {Path(r["input"]).name: r["error"] for r in lines if "error" in r}
    assert set(errors) == {"notes.png", "color.png"}
    assert "channel" in errors["color.png"]
    ok = [r for r in lines if "error" not in r]
    assert all(r["prediction"] in ("normal", "pneumonia") for r in ok)
    assert all(Path(r["explanation"]).is_file() for r in ok)


def test_evaluate_on_new_data(trained: Path, png_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained), "--data", str(png_dataset), "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["n"]["test"] == 48 and "auroc" in doc["metrics"]["test"]
    assert (out / "report.html").is_file()


def test_report_verb_rebuilds(trained: Path) -> None:
    (trained / "report.html").unlink()
    assert main(["report", str(trained)]) == 0
    assert (trained / "report.html").is_file()


def test_tampered_bundle_is_refused(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained / "bundle", copy)
    (copy / "preprocessing.json").write_text("{}")
    with pytest.raises(ChecksumError):
        read_manifest(copy)
    assert main(["predict", str(copy), "x.png"]) == 2


def test_errors_are_one_line_with_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runfile = tmp_path / "bad.yaml"
    runfile.write_text("data: {dataset: pneumoniamnist}\nmodel: {name: resnet81}\n")
    assert main(["train", str(runfile), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Unknown model 'resnet81'" in err and "resnet18" in err and "hint:" in err


def test_help_lists_real_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "pneumoniamnist" in out
    assert main(["models", "list"]) == 0
    assert "densenet121" in capsys.readouterr().out


def test_fine_tune_from_run(trained: Path, png_dataset: Path, tmp_path: Path) -> None:
    runfile = tmp_path / "ft.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "ft",
                "data": {
                    "path": str(png_dataset),
                    "split": {"method": "stratified", "fractions": [0.5, 0.25, 0.25]},
                },
                "model": {"name": "simple_cnn", "params": {"width": 8}, "init_from": str(trained)},
                "training": {
                    "epochs": 2,
                    "batch_size": 16,
                    "freeze_backbone_epochs": 1,
                    "progress": False,
                },
                "evaluation": {"bootstrap": 0, "gallery": 0},
            }
        )
    )
    assert main(["train", str(runfile), "--out", str(tmp_path / "ft")]) == 0
    assert (tmp_path / "ft" / "bundle" / "bundle.json").is_file()

"""The segmentation CLI end to end: train a 3-D phantom run, predict NIfTI, report, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from medlearn.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("seg3d")
    recipe = work / "phantoms.json"
    recipe.write_text(
        json.dumps(
            {
                "kind": "medlearn-phantom3d",
                "n_cases": 6,
                "size": 24,
                "seed": 2,
                "radius": [2.5, 4.5],
            }
        )
    )
    runfile = work / "run.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "phantom-tiny",
                "task": "segmentation",
                "data": {
                    "path": str(recipe),
                    "split": {"method": "random", "fractions": [0.5, 0.17, 0.33], "seed": 0},
                    "options": {
                        "patch_size": [16, 16, 16],
                        "samples_per_image": 2,
                        "min_lesion_voxels": "auto",
                    },
                    "augment": None,
                },
                "model": {
                    "name": "unet",
                    "params": {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0},
                },
                "training": {
                    "epochs": 2,
                    "batch_size": 4,
                    "lr": 0.01,
                    "progress": False,
                    "num_threads": 1,
                },
                "evaluation": {"bootstrap": 20},
            }
        )
    )
    out = work / "run"
    assert main(["train", str(runfile), "--out", str(out)]) == 0
    return out


def test_run_directory_and_metrics(run3d: Path):
    for name in (
        "config.yaml",
        "splits.json",
        "metrics.json",
        "predictions.parquet",
        "report.html",
    ):
        assert (run3d / name).is_file(), name
    doc = json.loads((run3d / "metrics.json").read_text())
    assert doc["task"] == "segmentation" and doc["n"]["test"] == 2
    for name in ("dice", "hd95", "lesion_sensitivity", "lesion_fp_per_volume", "lesion_f1"):
        assert name in doc["metrics"]["test"]
    assert doc["postprocessing"]["chosen_on"] == "val"
    chosen = doc["postprocessing"]["min_lesion_voxels"]
    saved = json.loads((run3d / "bundle" / "preprocessing.json").read_text())
    assert saved["options"]["min_lesion_voxels"] == chosen  # the bundle predicts the same way
    html = (run3d / "report.html").read_text()
    assert "axial" in html or 'id="seg-overlays"' in html
    assert (run3d / "bundle" / "weights" / "net.pt").is_file()


def test_predict_nifti_keeps_affine(run3d: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    affine = np.array(
        [[0.0, -1.5, 0.0, 12.0], [1.2, 0.0, 0.0, -4.0], [0.0, 0.0, 2.0, 30.0], [0, 0, 0, 1]]
    )
    vol = np.random.default_rng(0).normal(size=(20, 22, 18)).astype(np.float32)
    vol[5:10, 5:10, 5:10] += 3
    src = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), src)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    out_dir = tmp_path / "masks"
    code = main(["predict", str(run3d), str(src), str(bad), "--out-dir", str(out_dir)])
    assert code == 1  # one input was bad, and it is reported
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    errors = [x for x in lines if "error" in x]
    assert len(errors) == 1 and "broken.nii.gz" in errors[0]["error"]
    ok = [x for x in lines if "output" in x][0]
    seg = nib.load(ok["output"])
    assert seg.shape == vol.shape
    assert np.allclose(seg.affine, affine)
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1}


def test_report_and_evaluate(run3d: Path, tmp_path: Path):
    assert main(["report", str(run3d)]) == 0
    cfg = yaml.safe_load((run3d / "config.yaml").read_text())
    data = cfg["data"]["path"]
    assert main(["evaluate", str(run3d), "--data", data, "--out", str(tmp_path / "ev")]) == 0
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert doc["n"]["test"] == 6 and "dice" in doc["metrics"]["test"]

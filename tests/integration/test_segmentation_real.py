"""Segmentation on the real data in MEDLEARN_DATA_DIR/segmentation (ISBI-2012, TotalSegmentator)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlearn import catalog


def test_isbi_catalog_entry(data_dir: Path):
    data = catalog.load("isbi2012_membranes")
    assert len(data.records) == 30
    assert data.classes == ["background", "membrane"]
    rec = data.records[0]
    assert rec["input"].shape == (1, 512, 512) and rec["target"].shape == (512, 512)
    fractions = [float(r["target"].mean()) for r in data.records]
    # membranes (dark in the label PNGs) are the minority foreground class
    assert 0.1 < np.mean(fractions) < 0.35
    assert catalog.info("isbi2012_membranes")["status"] == "verified"


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("totalsegmentator_ct_example", "TotalSegmentator_example_ct_sm.nii.gz"),
        ("totalsegmentator_mr_example", "TotalSegmentator_example_mr_sm.nii.gz"),
    ],
)
def test_totalsegmentator_geometry(data_dir: Path, name: str, image: str):
    data = catalog.load(name)
    rec = data.records[0]
    ref = nib.load(data_dir / "segmentation" / image)
    assert rec["input"].shape[1:] == ref.shape
    assert np.allclose(rec["meta"]["affine"], ref.affine)
    assert rec["meta"]["spacing"] == pytest.approx([3.0, 3.0, 3.0])
    assert int(rec["target"].max()) == len(data.classes) - 1 > 10  # many organ labels


@pytest.mark.slow
def test_totalsegmentator_3d_fit_predict_nifti(data_dir: Path, tmp_path: Path):
    """3-D pipeline check (labels are model outputs: no accuracy claim): fit briefly on the
    CT's body-vs-background labels, predict the file, and get NIfTI back with its affine."""
    from medlearn.data import make_record
    from medlearn.imaging.segmentation import SegmentationLearner
    from medlearn.pipeline import predict_records

    data = catalog.load("totalsegmentator_ct_example")
    src = data.records[0]
    rec = make_record("ct", src["input"], (src["target"] > 0).astype(np.int64), meta=src["meta"])
    learner = SegmentationLearner(
        model="unet",
        classes=["background", "organ"],
        spatial_dims=3,
        in_channels=1,
        model_params={"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0},
        options={
            "patch_size": [32, 32, 16],
            "samples_per_image": 4,
            "intensity": "ct",
            "window": [-500, 500],
        },
        epochs=2,
        batch_size=2,
        progress=False,
        num_threads=2,
    )
    learner.fit([rec], [rec], work_dir=tmp_path, resume=False)
    path = data_dir / "segmentation" / "TotalSegmentator_example_ct_sm.nii.gz"
    records, bad = learner.read_inputs([str(path)])
    assert not bad
    rows = predict_records(
        learner, {"name": "t", "task": "segmentation"}, records, output_dir=tmp_path / "o"
    )
    out = nib.load(rows[0]["output"])
    ref = nib.load(path)
    assert out.shape == ref.shape and np.allclose(out.affine, ref.affine)


@pytest.mark.slow
def test_isbi_short_training(data_dir: Path, tmp_path: Path):
    from medlearn.config import load_config
    from medlearn.pipeline import train

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(
        root / "examples/imaging/isbi_membranes.yaml",
        [
            "training.epochs=2",
            "training.progress=false",
            "data.options.patch_size=[128,128]",
            "data.options.overlap=0",
            "data.options.sw_batch_size=16",
            "data.options.tta=false",
            "evaluation.bootstrap=100",
        ],
    )
    res = train(cfg, out=tmp_path / "run", echo=lambda _l: None)
    test = res.metrics["metrics"]["test"]
    assert res.metrics["n"]["test"] == 6
    assert test["dice"]["value"] > 0.3 and test["hd95"]["value"] is not None

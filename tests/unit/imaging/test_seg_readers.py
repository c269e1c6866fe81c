"""Segmentation readers: pairing, NIfTI geometry, DICOM series, preprocessing, bad input."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlearn.errors import DataValidationError
from medlearn.imaging.segmentation.readers import (
    ct_window,
    load_volume,
    read_dicom_series,
    read_segmentation,
    resample_to_spacing,
    save_prediction,
    zscore,
)


def _png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _png_pairs(root: Path, n: int = 3, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 200, (size, size), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[2:8, 3:9] = 255
        _png(root / "images" / f"c{i}.png", img)
        _png(root / "masks" / f"c{i}.png", mask)
    return root


def _nii(path: Path, arr: np.ndarray, spacing=(1.0, 1.0, 2.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = [5.0, -3.0, 10.0]
    nib.save(nib.Nifti1Image(arr, aff), path)
    return path


def test_png_folder_pairs(tmp_path):
    data = read_segmentation(_png_pairs(tmp_path / "d"))
    assert [r["id"] for r in data.records] == ["c0", "c1", "c2"]
    rec = data.records[0]
    assert rec["input"].shape == (1, 16, 16) and rec["target"].shape == (16, 16)
    assert set(np.unique(rec["target"]).tolist()) == {0, 1}
    assert data.info["spatial_dims"] == 2 and data.classes == ["background", "label_1"]
    dark = read_segmentation(tmp_path / "d", foreground="dark")
    assert dark.records[0]["target"].sum() == 16 * 16 - 36


def test_archive_pairs(tmp_path):
    root = _png_pairs(tmp_path / "d", n=2)
    arc = tmp_path / "pairs.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(root, arcname="set/train")
    data = read_segmentation(arc, binary=True, classes=["background", "fg"])
    assert len(data.records) == 2 and data.classes == ["background", "fg"]


def test_nifti_geometry_kept_and_written_back(tmp_path):
    vol = np.random.default_rng(1).normal(size=(10, 12, 6)).astype(np.float32)
    mask = np.zeros((10, 12, 6), np.uint8)
    mask[2:5, 3:7, 1:4] = 1
    _nii(tmp_path / "images" / "a.nii.gz", vol)
    _nii(tmp_path / "masks" / "a.nii.gz", mask)
    data = read_segmentation(tmp_path)
    rec = data.records[0]
    assert rec["meta"]["spacing"] == [1.0, 1.0, 2.0]
    aff = np.asarray(rec["meta"]["affine"])
    assert np.allclose(aff[:3, 3], [5, -3, 10])
    out = save_prediction(rec["target"], rec["meta"], tmp_path / "out", "a.nii.gz")
    back = nib.load(out)
    assert out.name == "a.seg.nii.gz"
    assert np.allclose(back.affine, aff) and np.array_equal(np.asarray(back.dataobj), mask)


def test_bad_cases_all_named(tmp_path):
    vol = np.random.default_rng(1).normal(size=(8, 8, 4)).astype(np.float32)
    good = np.zeros((8, 8, 4), np.uint8)
    good[1:3, 1:3, 1:3] = 1
    _nii(tmp_path / "images" / "shape.nii.gz", vol)
    _nii(tmp_path / "masks" / "shape.nii.gz", np.zeros((8, 8, 5), np.uint8))
    _nii(tmp_path / "images" / "spacing.nii.gz", vol)
    _nii(tmp_path / "masks" / "spacing.nii.gz", good, spacing=(1.0, 1.0, 3.0))
    _nii(tmp_path / "images" / "labels.nii.gz", vol)
    _nii(tmp_path / "masks" / "labels.nii.gz", (good * 3).astype(np.uint8))
    _nii(tmp_path / "images" / "empty.nii.gz", np.zeros((8, 8, 4), np.float32))
    _nii(tmp_path / "masks" / "empty.nii.gz", good)
    _nii(tmp_path / "images" / "ok.nii.gz", vol)
    _nii(tmp_path / "masks" / "ok.nii.gz", good)
    _nii(tmp_path / "images" / "orphan.nii.gz", vol)
    with pytest.raises(DataValidationError) as err:
        read_segmentation(tmp_path, binary=True)
    msg = err.value.message
    assert "5 bad case(s)" in msg
    for case in ("shape", "spacing", "labels", "empty", "orphan"):
        assert case in msg
    assert "ok" not in msg.replace("no mask", "")
    assert "binary masks were declared" in msg and "differs from mask spacing" in msg


def test_unexpected_labels_with_label_list(tmp_path):
    vol = np.random.default_rng(1).normal(size=(8, 8, 4)).astype(np.float32)
    m = np.zeros((8, 8, 4), np.uint8)
    m[0, 0, 0], m[1, 1, 1] = 1, 7
    _nii(tmp_path / "images" / "x.nii.gz", vol)
    _nii(tmp_path / "masks" / "x.nii.gz", m)
    with pytest.raises(DataValidationError, match=r"x: the mask holds unexpected labels \[7\]"):
        read_segmentation(tmp_path, labels=[0, 1, 2])
    assert len(read_segmentation(tmp_path).records) == 1


def test_single_image_with_mask_option(tmp_path):
    vol = np.random.default_rng(2).normal(size=(6, 6, 3)).astype(np.float32)
    _nii(tmp_path / "img.nii.gz", vol)
    _nii(tmp_path / "seg.nii.gz", np.ones((6, 6, 3), np.uint8))
    data = read_segmentation(tmp_path / "img.nii.gz", mask="seg.nii.gz")
    assert data.records[0]["id"] == "img"


def test_phantom_recipe(tmp_path):
    recipe = tmp_path / "ph.json"
    recipe.write_text(json.dumps({"kind": "medlearn-phantom3d", "n_cases": 3, "size": 20}))
    data = read_segmentation(recipe)
    assert len(data.records) == 3 and data.info["spatial_dims"] == 3
    assert data.classes == ["background", "lesion"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataValidationError, match="phantom recipe"):
        read_segmentation(tmp_path / "bad.json")


def _dicom_series(folder: Path, n: int = 4, dz: float = 2.5) -> Path:
    import pydicom
    from pydicom.data import get_testdata_file

    folder.mkdir(parents=True, exist_ok=True)
    src = get_testdata_file("CT_small.dcm")
    order = [2, 0, 3, 1]  # written out of order on purpose
    for k, z in enumerate(order[:n]):
        ds = pydicom.dcmread(src)
        pos = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + z * dz]
        arr = ds.pixel_array.copy()
        arr[:] = arr + z  # slice z is recognisable by its offset
        ds.PixelData = arr.tobytes()
        ds.save_as(folder / f"s{k}.dcm")
    return folder


def test_dicom_series_sorted_with_spacing(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    folder = _dicom_series(tmp_path / "series")
    vol, meta = read_dicom_series(folder)
    ref = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert vol.shape == (int(ref.Columns), int(ref.Rows), 4)
    ps = [float(v) for v in ref.PixelSpacing]
    assert meta["spacing"] == pytest.approx([ps[1], ps[0], 2.5])
    slope = float(getattr(ref, "RescaleSlope", 1))
    diffs = np.diff([vol[..., k].mean() for k in range(4)])
    assert np.allclose(diffs, slope, atol=1e-3)  # slices come back in position order
    image, meta2 = load_volume(folder)
    assert image.shape == (1, *vol.shape) and meta2["format"] == "dicom"


def test_preprocessing_helpers():
    x = np.array([[[-2000.0, 0.0], [500.0, 3000.0]]])
    w = ct_window(x, (-1000, 1000))
    assert w.min() == 0.0 and w.max() == 1.0 and w[0, 0, 1] == pytest.approx(0.5)
    z = zscore(np.random.default_rng(0).normal(5, 3, size=(2, 10, 10)))
    assert np.allclose(z.mean(axis=(1, 2)), 0, atol=1e-5)
    lbl = np.zeros((10, 10, 4), np.int16)
    lbl[2:6, 2:6, 1:3] = 1
    r = resample_to_spacing(lbl, (1, 1, 2), (1, 1, 1), order=0)
    assert r.shape == (10, 10, 8) and set(np.unique(r).tolist()) == {0, 1}
    img = resample_to_spacing(np.ones((1, 10, 10, 4), np.float32), (1, 1, 2), (2, 2, 2), order=1)
    assert img.shape == (1, 5, 5, 4)

"""Imaging readers: .npz / folder / CSV into records, load_image for every format, check_inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medlearn.errors import ConfigError, DataNotFoundError, DataValidationError
from medlearn.imaging.readers import (
    IMAGE_EXTENSIONS,
    check_inputs,
    load_image,
    read_image_csv,
    read_image_folder,
    read_imaging,
    read_medmnist_npz,
)
from medlearn.registry import DATASETS, READERS

pydicom = pytest.importorskip("pydicom")
nibabel = pytest.importorskip("nibabel")
tifffile = pytest.importorskip("tifffile")


def write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def dicom_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not bundled")
    return Path(path)


# --- registration ----------------------------------------------------------------------------


def test_reader_and_catalog_entries_are_registered() -> None:
    assert READERS.get("imaging") is read_imaging
    assert READERS.meta("imaging")["check_inputs"] is check_inputs
    assert "pneumoniamnist" in DATASETS
    assert DATASETS.meta("pneumoniamnist")["domain"] == "imaging"
    assert ".nii.gz" in IMAGE_EXTENSIONS


# --- MedMNIST .npz ---------------------------------------------------------------------------


def _npz(path: Path, rng: np.random.Generator, *, rgb: bool = False, **override) -> Path:
    shape = (4, 4, 3) if rgb else (4, 4)
    arrays = {}
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, size=(n, 1), dtype=np.uint8)
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_npz_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _npz(tmp_path / "tiny.npz", rng)
    raw = np.load(path)
    data = read_medmnist_npz(path, classes=["normal", "pneumonia"])
    assert len(data.records) == 10
    assert data.classes == ["normal", "pneumonia"]
    assert data.given_split == {
        "train": [f"train/{i:05d}" for i in range(5)],
        "val": ["val/00000", "val/00001"],
        "test": ["test/00000", "test/00001", "test/00002"],
    }
    rec = data.by_id()["val/00001"]
    assert rec["input"].shape == (1, 4, 4) and rec["input"].dtype == np.uint8
    np.testing.assert_array_equal(rec["input"][0], raw["val_images"][1])
    assert rec["target"] == int(raw["val_labels"][1, 0]) and isinstance(rec["target"], int)
    assert rec["patient_id"] == "val/00001"
    assert rec["meta"] == {"split": "val", "index": 1, "exposure": rec["meta"]["exposure"]}
    assert rec["meta"]["exposure"] in {"low", "mid", "high"}  # acquisition proxy
    assert data.info["image_shape"] == (1, 4, 4)
    assert data.info["n"] == {"train": 5, "val": 2, "test": 3}


def test_npz_rgb_is_channel_first_and_default_classes(tmp_path: Path, rng) -> None:
    path = _npz(tmp_path / "rgb.npz", rng, rgb=True)
    raw = np.load(path)["train_images"][0]
    data = read_medmnist_npz(path)
    image = data.records[0]["input"]
    assert image.shape == (3, 4, 4)
    np.testing.assert_array_equal(image, raw.transpose(2, 0, 1))
    assert data.classes == ["0", "1"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"train_labels": None}, "'train_labels' is missing"),
        ({"train_images": np.zeros((5, 4, 4, 5), np.uint8)}, "'train_images' has shape"),
        ({"val_labels": np.zeros((3, 1), np.uint8)}, "'val_labels' has shape (3, 1)"),
        ({"test_labels": np.full((3, 1), -1, np.int64)}, "negative labels"),
        ({"test_labels": np.full((3, 1), 7, np.int64)}, "need 8 classes"),
    ],
)
def test_npz_errors_name_file_and_key(tmp_path: Path, rng, override, expected) -> None:
    path = _npz(tmp_path / "bad.npz", rng, **override)
    with pytest.raises(DataValidationError) as err:
        read_medmnist_npz(path, classes=["a", "b"])
    assert str(path) in str(err.value) and expected in str(err.value)


def test_npz_without_image_keys_lists_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(DataValidationError, match=r"Found keys: x"):
        read_medmnist_npz(path)


def test_npz_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.npz"
    path.write_text("hello")
    with pytest.raises(DataValidationError, match="not a readable .npz"):
        read_medmnist_npz(path)


# --- folders ---------------------------------------------------------------------------------


def test_folder_reader(image_folder: Path) -> None:
    (image_folder / "normal" / "notes.txt").write_text("x")
    (image_folder / "normal" / ".hidden.png").write_text("x")
    data = read_image_folder(image_folder)
    assert data.classes == ["normal", "pneumonia"]
    assert [r["id"] for r in data.records] == [
        "normal/a.png",
        "normal/b.png",
        "pneumonia/c.png",
        "pneumonia/sub/d.png",
    ]
    assert [r["target"] for r in data.records] == [0, 0, 1, 1]
    first = data.records[0]
    assert Path(first["input"]).is_absolute() and Path(first["input"]).is_file()
    assert data.info["counts"] == {"normal": 2, "pneumonia": 2}
    assert data.info["ignored_files"] == ["normal/notes.txt"]


def test_folder_reader_class_order_from_classes(image_folder: Path) -> None:
    data = read_image_folder(image_folder, classes=["pneumonia", "normal"])
    assert {r["id"]: r["target"] for r in data.records}["normal/a.png"] == 1


def test_folder_reader_lists_every_problem(image_folder: Path, gray8: np.ndarray) -> None:
    write_png(image_folder / "stray.png", gray8)
    (image_folder / "empty").mkdir()
    write_png(image_folder / "covid" / "e.png", gray8)
    with pytest.raises(DataValidationError) as err:
        read_image_folder(image_folder, classes=["normal", "pneumonia", "empty"])
    text = str(err.value)
    assert "3 problems" in text
    assert "stray.png: image outside a class folder" in text
    assert "covid/: folder is not one of the classes" in text
    assert "empty/: class folder holds no image files" in text


def test_folder_reader_without_subfolders(tmp_path: Path, gray8: np.ndarray) -> None:
    write_png(tmp_path / "flat" / "a.png", gray8)
    with pytest.raises(DataValidationError, match="no class subfolders"):
        read_image_folder(tmp_path / "flat")
    with pytest.raises(DataNotFoundError):
        read_image_folder(tmp_path / "missing")


# --- CSV manifests ---------------------------------------------------------------------------


def _csv(root: Path, gray8: np.ndarray, rows: list[str], header: str = "path,label,patient_id,sex"):
    for name in ("a", "b", "c"):
        write_png(root / "img" / f"{name}.png", gray8)
    csv = root / "labels.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    return csv


def test_csv_reader(tmp_path: Path, gray8: np.ndarray) -> None:
    csv = _csv(
        tmp_path,
        gray8,
        ["img/a.png,pneumonia,P1,F", "img/b.png,normal,P1,F", "./img/c.png,normal,P2,M"],
    )
    data = read_image_csv(csv)
    assert data.classes == ["normal", "pneumonia"]
    assert [r["id"] for r in data.records] == ["img/a.png", "img/b.png", "img/c.png"]
    assert [r["target"] for r in data.records] == [1, 0, 0]
    assert [r["patient_id"] for r in data.records] == ["P1", "P1", "P2"]
    assert data.records[2]["input"] == str((tmp_path / "img" / "c.png").resolve())
    assert data.records[0]["meta"]["sex"] == "F"
    assert data.info["n_patients"] == 2
    assert data.info["counts"] == {"normal": 2, "pneumonia": 1}


def test_csv_reader_optional_patient_and_index_labels(tmp_path: Path, gray8) -> None:
    csv = _csv(tmp_path, gray8, ["img/a.png,1", "img/b.png,0"], header="path,label")
    data = read_image_csv(csv, classes=["normal", "pneumonia"])
    assert [r["target"] for r in data.records] == [1, 0]
    assert [r["patient_id"] for r in data.records] == ["img/a.png", "img/b.png"]
    numeric = read_image_csv(csv)
    assert numeric.classes == ["0", "1"]


def test_csv_reader_lists_every_bad_row_without_patient_ids(tmp_path: Path, gray8) -> None:
    csv = _csv(
        tmp_path,
        gray8,
        [
            "img/a.png,normal,SECRET-1,F",  # line 2: fine
            "img/missing.png,normal,SECRET-2,F",  # line 3: file not found
            "img/b.png,,SECRET-3,F",  # line 4: empty label
            "img/c.png,covid,SECRET-4,M",  # line 5: label not in classes
            "img/a.png,normal,SECRET-5,M",  # line 6: repeats line 2
            ",normal,SECRET-6,M",  # line 7: empty path
            "img/c.png,normal,,M",  # line 8: repeats line 5 + empty patient id
        ],
    )
    with pytest.raises(DataValidationError) as err:
        read_image_csv(csv, classes=["normal", "pneumonia"])
    text = str(err.value)
    assert str(csv) in text and "6 of 7 rows are unusable" in text
    for expected in (
        "line 3, column 'path': file not found: img/missing.png",
        "line 4, column 'label': empty label",
        "line 5, column 'label': label 'covid' is not one of the classes (normal, pneumonia)",
        "line 6, column 'path': img/a.png repeats the file of line 2",
        "line 7, column 'path': empty path",
        "line 8, column 'patient_id': empty patient id",
    ):
        assert expected in text
    assert "SECRET" not in text
    assert err.value.hint and "resolved against the CSV's folder" in err.value.hint


def test_csv_reader_truncates_long_lists(tmp_path: Path, gray8) -> None:
    csv = _csv(tmp_path, gray8, [f"img/x{i}.png,normal,P,F" for i in range(25)])
    with pytest.raises(DataValidationError) as err:
        read_image_csv(csv)
    assert "... and 5 more" in str(err.value)
    assert str(err.value).count("file not found") == 20


def test_csv_reader_missing_column(tmp_path: Path, gray8) -> None:
    csv = _csv(tmp_path, gray8, ["img/a.png,x"], header="file,diagnosis")
    with pytest.raises(DataValidationError, match=r"missing column\(s\) 'path', 'label'.*'file'"):
        read_image_csv(csv)


# --- load_image: PNG / TIFF / NIfTI ----------------------------------------------------------


def test_png_gray_rgb_rgba_16bit(tmp_path: Path, rng) -> None:
    gray = rng.integers(0, 256, size=(6, 5), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((6, 5, 1), 7, np.uint8)], axis=-1)
    deep = rng.integers(0, 65536, size=(6, 5), dtype=np.uint16)

    out = load_image(write_png(tmp_path / "g.png", gray))
    assert out.shape == (1, 6, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], gray / 255.0, atol=1e-6)

    out = load_image(write_png(tmp_path / "c.png", rgb))
    np.testing.assert_allclose(out, rgb.transpose(2, 0, 1) / 255.0, atol=1e-6)

    out = load_image(write_png(tmp_path / "a.png", rgba))
    assert out.shape == (3, 6, 5)
    np.testing.assert_allclose(out, rgb.transpose(2, 0, 1) / 255.0, atol=1e-6)

    out = load_image(write_png(tmp_path / "d.png", deep))
    np.testing.assert_allclose(out[0], deep / 65535.0, atol=1e-6)


def test_color_conversion(tmp_path: Path, rng) -> None:
    rgb = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    gray = load_image(write_png(tmp_path / "c.png", rgb), color="grayscale")
    expected = (rgb / 255.0) @ np.array([0.299, 0.587, 0.114])
    assert gray.shape == (1, 4, 4)
    np.testing.assert_allclose(gray[0], expected, atol=1e-5)
    three = load_image(write_png(tmp_path / "g.png", rgb[..., 0]), color="rgb")
    assert three.shape == (3, 4, 4) and np.array_equal(three[0], three[2])


def test_window_on_png_and_bad_options(tmp_path: Path) -> None:
    path = write_png(tmp_path / "w.png", np.array([[0, 100, 200]], np.uint8))
    np.testing.assert_allclose(load_image(path, window=(100, 100))[0, 0], [0, 0.5, 1])
    with pytest.raises(ConfigError, match="positive width"):
        load_image(path, window=(40, 0))
    with pytest.raises(ConfigError, match="'color'"):
        load_image(path, color="cmyk")  # type: ignore[arg-type]


def test_tiff_8bit_16bit_rgb_and_errors(tmp_path: Path, rng) -> None:
    deep = rng.integers(0, 65536, size=(5, 7), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "d.tif", deep)
    np.testing.assert_allclose(load_image(tmp_path / "d.tif")[0], deep / 65535.0, atol=1e-6)

    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "c.tiff", rgb, photometric="rgb")
    np.testing.assert_allclose(
        load_image(tmp_path / "c.tiff"), rgb.transpose(2, 0, 1) / 255.0, atol=1e-6
    )

    floats = rng.random((5, 7)).astype(np.float32)
    floats[1, 2] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", floats)
    with pytest.raises(DataValidationError, match=r"nan\.tif: the image holds 1 NaN"):
        load_image(tmp_path / "nan.tif")

    pages = rng.integers(0, 255, (4, 5, 7), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "pages.tif", pages, photometric="minisblack")
    with pytest.raises(DataValidationError, match="multi-page TIFF"):
        load_image(tmp_path / "pages.tif")


def test_float_tiff_is_min_max_scaled(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "hu.tif", np.array([[-1000.0, 0.0, 1000.0]], np.float32))
    np.testing.assert_allclose(load_image(tmp_path / "hu.tif")[0, 0], [0, 0.5, 1])


def test_nifti_2d_and_3d(tmp_path: Path, rng) -> None:
    slab = rng.normal(size=(6, 5, 1)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(slab, np.eye(4)), tmp_path / "s.nii.gz")
    out = load_image(tmp_path / "s.nii.gz")
    assert out.shape == (1, 6, 5)
    expected = (slab[..., 0] - slab.min()) / (slab.max() - slab.min())
    np.testing.assert_allclose(out[0], expected, atol=1e-5)

    ct = np.array([[-1000, 40], [240, 1000]], dtype=np.int16)
    nibabel.save(nibabel.Nifti1Image(ct, np.eye(4)), tmp_path / "ct.nii")
    np.testing.assert_allclose(
        load_image(tmp_path / "ct.nii", window=(40, 400))[0], [[0, 0.5], [1, 1]]
    )

    nibabel.save(
        nibabel.Nifti1Image(np.zeros((4, 4, 3), np.float32), np.eye(4)), tmp_path / "v.nii"
    )
    with pytest.raises(DataValidationError) as err:
        load_image(tmp_path / "v.nii")
    assert "v.nii" in str(err.value) and "expects one slice" in str(err.value)
    assert "img.slicer" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("x.png", b"just some text, not pixels", "not a valid .png image"),
        ("x.nii", b"\x00" * 400, "not a valid .nii image"),
        ("x.xyz", b"\x00" * 400, "unsupported file type '.xyz'"),
        ("empty.png", b"", "the file is empty"),
        ("cut.png", b"\x89PNG\r\n\x1a\n\x00\x00", "cannot decode the image"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataValidationError) as err:
        load_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and expected in message and "\n" not in message


def test_missing_file() -> None:
    with pytest.raises(DataNotFoundError):
        load_image("/nonexistent/image.png")


# --- load_image: DICOM -----------------------------------------------------------------------


def _mr_reference() -> np.ndarray:
    ds = pydicom.dcmread(dicom_file("MR_small.dcm"))
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    values = ds.pixel_array.astype(np.float64)
    return np.clip((values - (center - width / 2)) / width, 0, 1)


def test_dicom_ct_rescale_then_min_max() -> None:
    path = dicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    out = load_image(path)
    assert out.shape == (1, 128, 128) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)
    windowed = load_image(path, window=(40, 400))[0]
    np.testing.assert_allclose(windowed, np.clip((hu - (40 - 200)) / 400, 0, 1), atol=1e-6)
    assert windowed.min() >= 0 and windowed.max() <= 1


@pytest.mark.parametrize(
    "name",
    [
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_dicom_file_window_and_lossless_codecs_match_reference(name: str) -> None:
    out = load_image(dicom_file(name))
    assert out.shape == (1, 64, 64)
    np.testing.assert_allclose(out[0], _mr_reference(), atol=1e-6)


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", "JPEG2000.dcm"])
def test_dicom_compressed_color_and_j2k(name: str) -> None:
    out = load_image(dicom_file(name))
    assert out.ndim == 3 and out.shape[0] in (1, 3)
    assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0 and out.max() > 0


def test_dicom_monochrome1_is_inverted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_file("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "inv.dcm")
    np.testing.assert_allclose(load_image(tmp_path / "inv.dcm")[0], 1 - _mr_reference(), atol=1e-6)


def test_dicom_detected_by_content_without_extension(tmp_path: Path) -> None:
    shutil.copy(dicom_file("MR_small.dcm"), tmp_path / "IM0001")
    np.testing.assert_allclose(load_image(tmp_path / "IM0001")[0], _mr_reference(), atol=1e-6)


def test_dicom_without_preamble_or_file_meta(tmp_path: Path) -> None:
    from pydicom.dataset import FileMetaDataset

    ds = pydicom.dcmread(dicom_file("MR_small.dcm"))
    ds.preamble = None
    ds.file_meta = FileMetaDataset()
    path = tmp_path / "raw.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_allclose(load_image(path)[0], _mr_reference(), atol=1e-6)


def test_truncated_dicom(tmp_path: Path) -> None:
    data = dicom_file("CT_small.dcm").read_bytes()
    path = tmp_path / "half.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataValidationError) as err:
        load_image(path)
    assert str(path) in str(err.value) and "truncated or corrupt" in str(err.value)


def test_dicom_without_pixels_and_multiframe() -> None:
    with pytest.raises(DataValidationError, match="no pixel data"):
        load_image(dicom_file("rtplan.dcm"))
    with pytest.raises(DataValidationError, match="multi-frame DICOM with 30 frames"):
        load_image(dicom_file("examples_ybr_color.dcm"))


def test_dicom_undecodable_transfer_syntax(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    ds = pydicom.dcmread(dicom_file("MR_small.dcm"))
    ds.PixelData = encapsulate([ds.PixelData])
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(tmp_path / "mpeg.dcm", enforce_file_format=True)
    with pytest.raises(DataValidationError) as err:
        load_image(tmp_path / "mpeg.dcm")
    assert "mpeg.dcm" in str(err.value) and MPEG2MPML in str(err.value)
    assert "MPEG2 Main Profile / Main Level" in str(err.value)


def test_dicom_missing_decoder_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import pydicom.pixels

    class Unavailable:
        is_available = False

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: Unavailable())
    with pytest.raises(DataValidationError) as err:
        load_image(dicom_file("MR_small_jp2klossless.dcm"))
    assert "JPEG 2000 Image Compression (Lossless Only)" in str(err.value)
    assert "pip install pylibjpeg pylibjpeg-openjpeg" in (err.value.hint or "")


# --- check_inputs and read_imaging -----------------------------------------------------------


def test_check_inputs_collects_every_failure(tmp_path: Path, gray8: np.ndarray) -> None:
    folder = tmp_path / "batch"
    write_png(folder / "good.png", gray8)
    shutil.copy(dicom_file("MR_small.dcm"), folder / "good.dcm")
    (folder / "bad.png").write_text("not an image")
    raw = dicom_file("CT_small.dcm").read_bytes()
    (folder / "sub").mkdir()
    (folder / "sub" / "bad.dcm").write_bytes(raw[: len(raw) // 2])
    (folder / "readme.md").write_text("ignored: not an image type")

    good, bad = check_inputs([folder, tmp_path / "missing.png"], color="rgb")
    assert sorted(Path(s).name for s, _ in good) == ["good.dcm", "good.png"]
    assert all(img.shape[0] == 3 for _, img in good)
    assert [Path(b.source).name for b in bad] == ["bad.png", "bad.dcm", "missing.png"]
    assert "not a valid .png image" in bad[0].message
    assert "truncated or corrupt" in bad[1].message
    assert "no such file" in bad[2].message
    with pytest.raises(ConfigError, match="Unknown load_image options: size"):
        check_inputs([folder], size=28)


def test_read_imaging_dispatch(tmp_path: Path, image_folder: Path, rng, gray8) -> None:
    assert read_imaging(image_folder).info["format"] == "image_folder"
    assert read_imaging(_npz(tmp_path / "t.npz", rng)).info["format"] == "medmnist_npz"
    csv = _csv(tmp_path / "c", gray8, ["img/a.png,x"], header="path,label")
    data = read_imaging(csv, window=(40, 400), color="grayscale")
    assert data.info["format"] == "image_csv"
    assert data.info["load_options"] == {"window": (40.0, 400.0), "color": "grayscale"}
    with pytest.raises(ConfigError, match="Unknown params.*extensions"):
        read_imaging(csv, extensions=[".png"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataValidationError, match="got a '.txt' file"):
        read_imaging(tmp_path / "notes.txt")
    with pytest.raises(DataNotFoundError):
        read_imaging(tmp_path / "nothing")


# --- `medlearn data check` -------------------------------------------------------------------


def test_cli_check_folder_reports_bad_files(image_folder: Path) -> None:
    from medlearn.cli.data import app

    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(image_folder)])
    assert ok.exit_code == 0, ok.output
    assert "normal" in ok.output and "ok: no bad items" in ok.output

    (image_folder / "normal" / "broken.png").write_text("text")
    bad = runner.invoke(app, ["check", str(image_folder)])
    assert bad.exit_code == 1
    assert "normal/broken.png" in bad.output and "1 bad items" in bad.output


def test_cli_check_csv_lists_bad_rows(tmp_path: Path, gray8, rng) -> None:
    from medlearn.cli.data import app

    csv = _csv(tmp_path, gray8, ["img/a.png,normal", "img/zz.png,normal"], header="path,label")
    result = CliRunner().invoke(app, ["check", str(csv), "--classes", "normal,pneumonia"])
    assert result.exit_code == 1
    assert "line 3, column 'path': file not found: img/zz.png" in result.output

    npz = CliRunner().invoke(app, ["check", str(_npz(tmp_path / "t.npz", rng))])
    assert npz.exit_code == 0, npz.output
    assert "train" in npz.output and "test" in npz.output

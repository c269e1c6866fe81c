"""Paired image/mask readers for segmentation, volume I/O and intensity preprocessing.

Records (``medlearn.data.Record``): ``input`` is the image ``(C, *spatial)`` float32,
``target`` the label map ``(*spatial)`` int64 (``None`` for unlabelled inputs), ``meta`` holds
``spacing`` (per spatial axis, mm), ``affine`` (4x4, NIfTI/RAS, 3-D only), ``format`` and
``source`` (the file name). Arrays keep the file's own axis order (NIfTI: nibabel's), so a
prediction written back with the input's affine overlays the input in 3D Slicer or ITK-SNAP.

Sources :func:`read_segmentation` understands:

* an archive (``.tar.gz``/``.tgz``/``.zip``) or folder with an image folder (``image``,
  ``images``, ``imgs``) and a mask folder (``label``, ``labels``, ``mask``, ``masks``) holding
  PNG/TIFF/NIfTI files (or DICOM series folders for images) paired by file stem;
* one NIfTI/DICOM image with ``mask: FILE`` in the options;
* a phantom recipe JSON (``{"kind": "medlearn-phantom3d", ...}``, see
  :mod:`~medlearn.imaging.segmentation.phantoms`).

Bad pairs (shape or spacing mismatch, unexpected labels, non-binary masks where
``binary: true`` is declared, empty images) are all collected and reported in one
:class:`~medlearn.errors.DataValidationError` naming every case.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.errors import ConfigError, DataNotFoundError, DataValidationError
from medlearn.registry import READERS

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData

__all__ = [
    "READER_OPTIONS",
    "ct_window",
    "load_mask",
    "load_volume",
    "read_dicom_series",
    "read_segmentation",
    "resample_to_spacing",
    "save_prediction",
    "zscore",
]

_IMAGE_DIRS = ("image", "images", "imgs")
_MASK_DIRS = ("label", "labels", "mask", "masks")
_SUFFIXES = (".nii.gz", ".nii", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dcm")
#: Options the reader takes from ``data.options`` (the learner reads the others).
READER_OPTIONS = ("binary", "classes", "foreground", "mask", "labels")


def _stem(name: str) -> str:
    low = name.lower()
    for s in _SUFFIXES:
        if low.endswith(s):
            return name[: -len(s)]
    return name


def _is_nifti(name: str) -> bool:
    return name.lower().endswith((".nii", ".nii.gz"))


# --- volume I/O ----------------------------------------------------------------------------------


def _nifti_from(source: str | Path | bytes, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    import nibabel as nib

    try:
        if isinstance(source, bytes):
            fh = nib.FileHolder(fileobj=io.BytesIO(source))
            if name.lower().endswith(".gz"):
                import gzip

                fh = nib.FileHolder(fileobj=io.BytesIO(gzip.decompress(source)))
            img = nib.Nifti1Image.from_file_map({"header": fh, "image": fh})
        else:
            img = nib.load(str(source))
        arr = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for broken files
        raise DataValidationError(
            f"{name}: not a readable NIfTI file ({type(exc).__name__}).",
            hint="Re-export it as .nii.gz (e.g. with dcm2niix or 3D Slicer).",
        ) from None
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise DataValidationError(
            f"{name}: NIfTI image has {arr.ndim} dimensions; expected a 2-D or 3-D volume.",
            hint="Split 4-D series into one volume per file.",
        )
    zooms = [float(z) for z in img.header.get_zooms()[: arr.ndim]]
    meta = {"spacing": zooms, "affine": np.asarray(img.affine, float).tolist(), "format": "nifti"}
    return arr, meta


def _raster_from(source: str | Path | bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        img.load()
    except Exception as exc:  # PIL raises many types for broken files
        raise DataValidationError(
            f"{name}: not a readable image ({type(exc).__name__}).",
            hint="Re-export it as PNG or TIFF.",
        ) from None
    if img.mode in ("RGBA", "P", "CMYK"):
        img = img.convert("RGB")
    return np.asarray(img)


def read_dicom_series(folder: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """A DICOM series folder → volume ``(X, Y, Z)`` float32 in modality units (e.g. HU).

    Slices are sorted by their position along the slice normal (from Image Position /
    Orientation (Patient)); in-plane spacing comes from Pixel Spacing and slice spacing from
    the positions. The affine is converted from DICOM's LPS to NIfTI's RAS.

    Raises:
        DataValidationError: no DICOM slices, mixed sizes or orientations, or missing
            geometry, naming the folder.
    """
    import pydicom

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    slices = []
    for p in files:
        try:
            ds = pydicom.dcmread(p)
        except Exception:  # noqa: BLE001 - non-DICOM files in the folder are skipped
            continue
        if "PixelData" in ds:
            slices.append(ds)
    if not slices:
        raise DataValidationError(
            f"{folder}: no DICOM slices with pixel data.",
            hint="Point to the folder holding one series' .dcm files.",
        )
    try:
        orient = np.asarray(slices[0].ImageOrientationPatient, float)
        row, col = orient[:3], orient[3:]
        normal = np.cross(row, col)
        pos = [np.asarray(s.ImagePositionPatient, float) for s in slices]
        ps = [float(v) for v in slices[0].PixelSpacing]
    except AttributeError:
        raise DataValidationError(
            f"{folder}: DICOM slices lack Image Position/Orientation (Patient) or Pixel Spacing.",
            hint="Geometry is needed to build a volume; export the series as NIfTI instead.",
        ) from None
    shapes = {(int(s.Rows), int(s.Columns)) for s in slices}
    if len(shapes) != 1:
        raise DataValidationError(
            f"{folder}: slices have different sizes {sorted(shapes)}.",
            hint="Keep one series per folder.",
        )
    order = np.argsort([float(p @ normal) for p in pos])
    slices = [slices[i] for i in order]
    pos = [pos[i] for i in order]
    dz = (
        float(np.median(np.diff([p @ normal for p in pos])))
        if len(pos) > 1
        else float(getattr(slices[0], "SliceThickness", 1.0) or 1.0)
    )
    if len(pos) > 1 and dz <= 0:
        raise DataValidationError(
            f"{folder}: slices repeat the same position.", hint="Keep one series per folder."
        )
    planes = []
    for s in slices:
        arr = s.pixel_array.astype(np.float32)
        slope = float(getattr(s, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(s, "RescaleIntercept", 0.0) or 0.0)
        planes.append(arr * slope + intercept)
    vol = np.stack(planes, axis=-1).transpose(1, 0, 2)  # (cols=X, rows=Y, Z)
    lps = np.eye(4)
    lps[:3, 0] = row * ps[1]
    lps[:3, 1] = col * ps[0]
    lps[:3, 2] = normal * dz
    lps[:3, 3] = pos[0]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    meta = {
        "spacing": [ps[1], ps[0], abs(dz)],
        "affine": ras.tolist(),
        "format": "dicom",
    }
    return vol.astype(np.float32), meta


def load_volume(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an image file or DICOM series folder → ``(C, *spatial)`` float32 and its meta.

    Raises:
        DataValidationError: unreadable or empty image, naming the file.
    """
    p = Path(path)
    if p.is_dir():
        arr, meta = read_dicom_series(p)
    elif _is_nifti(p.name):
        arr, meta = _nifti_from(p, p.name)
    elif p.suffix.lower() == ".dcm":
        arr, meta = read_dicom_series_file(p)
    else:
        arr = _raster_from(p, p.name)
        meta = {"spacing": [1.0, 1.0], "affine": None, "format": "raster"}
    image = _channels_first(arr, meta)
    meta["source"] = p.name
    _check_image(image, p.name)
    return image, meta


def read_dicom_series_file(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """One DICOM file as a 2-D image ``(cols, rows)`` (multi-frame files as 3-D)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # pydicom raises many types
        raise DataValidationError(
            f"{path.name}: not a readable DICOM image ({type(exc).__name__}).",
            hint="Check the file, or install the decoder named in `medlearn data check`.",
        ) from None
    arr = arr * float(getattr(ds, "RescaleSlope", 1.0) or 1.0) + float(
        getattr(ds, "RescaleIntercept", 0.0) or 0.0
    )
    ps = [float(v) for v in getattr(ds, "PixelSpacing", [1.0, 1.0])]
    if arr.ndim == 2:
        return arr.T, {"spacing": [ps[1], ps[0]], "affine": None, "format": "dicom"}
    return arr.transpose(2, 1, 0), {
        "spacing": [ps[1], ps[0], 1.0],
        "affine": None,
        "format": "dicom",
    }


def _channels_first(arr: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    if meta["format"] == "raster" and arr.ndim == 3:  # (H, W, C) colour
        return np.moveaxis(arr, -1, 0).astype(np.float32)
    return arr[None].astype(np.float32)


def _check_image(image: np.ndarray, name: str) -> None:
    if image.size == 0 or 0 in image.shape:
        raise DataValidationError(f"{name}: the image is empty (shape {image.shape[1:]}).")
    if not np.isfinite(image).all():
        raise DataValidationError(
            f"{name}: the image holds NaN or infinite values.",
            hint="Re-export it; medlearn does not guess missing voxels.",
        )
    if float(image.max()) == float(image.min()):
        raise DataValidationError(
            f"{name}: the image is empty (every voxel has the same value).",
            hint="Remove it or re-export the volume with its intensities.",
        )


def load_mask(path: str | Path, *, foreground: str = "bright") -> tuple[np.ndarray, dict[str, Any]]:
    """Read a mask file → int64 label map and meta. 8-bit PNG masks with values {0, 255} are
    binarised (``foreground="dark"`` makes the dark pixels the foreground)."""
    p = Path(path)
    if _is_nifti(p.name):
        arr, meta = _nifti_from(p, p.name)
    else:
        arr = _raster_from(p, p.name)
        meta = {"spacing": [1.0, 1.0], "affine": None, "format": "raster"}
    return _mask_values(arr, foreground, raster=meta["format"] == "raster"), meta


def _mask_values(arr: np.ndarray, foreground: str, *, raster: bool = False) -> np.ndarray:
    if raster and arr.ndim == 3:  # an RGB(A) PNG mask: its first channel
        arr = arr[..., 0]
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            return arr  # left as float: flagged as unexpected labels by the checks
        arr = arr.astype(np.int64)
    values = np.unique(arr)
    if arr.dtype == np.uint8 and set(values.tolist()) <= {0, 255} and values.max(initial=0) == 255:
        arr = (arr == 255).astype(np.int64)
    if foreground == "dark":
        if set(np.unique(arr).tolist()) - {0, 1}:
            return arr
        arr = 1 - arr
    return arr.astype(np.int64)


def save_prediction(
    labels: np.ndarray, meta: dict[str, Any], out_dir: str | Path, name: str
) -> Path:
    """Write a predicted label map: NIfTI (``.nii.gz``, the input's affine) for NIfTI, DICOM
    and 3-D inputs, PNG for 2-D raster inputs. Returns the written path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = _stem(Path(name).name) or "prediction"
    if meta.get("format") == "raster" and labels.ndim == 2:
        from PIL import Image

        path = out_dir / f"{base}.seg.png"
        tmp = path.with_name(path.name + ".tmp")
        Image.fromarray(labels.astype(np.uint8)).save(tmp, format="PNG")
        tmp.replace(path)
        return path
    import nibabel as nib

    affine = np.asarray(meta["affine"], float) if meta.get("affine") is not None else None
    if affine is None:
        affine = np.diag([*list(meta.get("spacing") or [1.0] * labels.ndim)[:3], 1.0])
        if labels.ndim == 2:
            affine = np.diag([*meta.get("spacing", [1.0, 1.0]), 1.0, 1.0])
    img = nib.Nifti1Image(
        labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.int16), affine
    )
    path = out_dir / f"{base}.seg.nii.gz"
    tmp = out_dir / f".{base}.seg.tmp.nii.gz"
    nib.save(img, tmp)
    tmp.replace(path)
    return path


# --- preprocessing -------------------------------------------------------------------------------


def ct_window(image: np.ndarray, window: Sequence[float] = (-1000.0, 1000.0)) -> np.ndarray:
    """Clip to ``(low, high)`` Hounsfield units and scale to [0, 1]."""
    lo, hi = float(window[0]), float(window[1])
    if hi <= lo:
        raise ConfigError(f"CT window {window} must be (low, high) with high > low.")
    return ((np.clip(image, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def zscore(image: np.ndarray, *, nonzero: bool = False) -> np.ndarray:
    """Per-channel z-scoring (MR style); ``nonzero`` uses only non-zero voxels' statistics."""
    out = np.empty_like(image, dtype=np.float32)
    for c in range(image.shape[0]):
        ch = image[c].astype(np.float32)
        sel = ch[ch != 0] if nonzero and (ch != 0).any() else ch
        out[c] = (ch - sel.mean()) / max(float(sel.std()), 1e-6)
    return out


def resample_to_spacing(
    array: np.ndarray, spacing: Sequence[float], target: Sequence[float], *, order: int
) -> np.ndarray:
    """Resample ``(C, *spatial)`` (or a label map ``(*spatial)``) from ``spacing`` to
    ``target`` (order 1 for images, 0 for labels)."""
    from scipy import ndimage

    has_c = array.ndim == len(spacing) + 1
    factors = [float(s) / float(t) for s, t in zip(spacing, target, strict=True)]
    if np.allclose(factors, 1.0):
        return array
    if has_c:
        return np.stack([ndimage.zoom(a, factors, order=order) for a in array])
    return ndimage.zoom(array, factors, order=order)


# --- pairing -------------------------------------------------------------------------------------


def _split_parts(name: str) -> tuple[str | None, str]:
    parts = Path(name).parts
    for i, part in enumerate(parts[:-1]):
        low = part.lower()
        if low in _IMAGE_DIRS:
            return "image", "/".join(parts[i + 1 :])
        if low in _MASK_DIRS:
            return "mask", "/".join(parts[i + 1 :])
    return None, name


def _archive_members(path: Path) -> Iterable[tuple[str, bytes]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, zf.read(info)
        return
    with tarfile.open(path, "r:*") as tf:
        for m in tf.getmembers():
            if m.isfile():
                fh = tf.extractfile(m)
                if fh is not None:
                    yield m.name, fh.read()


def _load_from(src: str | Path | bytes, name: str, *, mask: bool, foreground: str):
    if _is_nifti(name):
        arr, meta = _nifti_from(src, name)
    elif not isinstance(src, bytes) and Path(src).is_dir():
        arr, meta = read_dicom_series(Path(src))
    else:
        arr = _raster_from(src, name)
        meta = {"spacing": [1.0, 1.0], "affine": None, "format": "raster"}
    if mask:
        return _mask_values(arr, foreground, raster=meta["format"] == "raster"), meta
    return _channels_first(arr, meta), meta


def _pairs(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    images: dict[str, Any] = {}
    masks: dict[str, Any] = {}
    if path.is_file():
        members: Iterable[tuple[str, Any]] = _archive_members(path)
    else:
        members = []
        for sub in sorted(path.iterdir()):
            if sub.is_dir() and sub.name.lower() in _IMAGE_DIRS + _MASK_DIRS:
                for f in sorted(sub.iterdir()):
                    if f.name.startswith("."):
                        continue
                    members.append((f"{sub.name}/{f.name}", f))  # type: ignore[union-attr]
    for name, src in members:
        kind, rel = _split_parts(name)
        if kind is None or Path(rel).name.startswith("."):
            continue
        if isinstance(src, Path) and src.is_file() and not rel.lower().endswith(_SUFFIXES):
            continue
        (images if kind == "image" else masks)[_stem(rel)] = (src, rel)
    return images, masks


def _check_pair(
    case: str,
    image: np.ndarray,
    mask: np.ndarray,
    imeta: dict[str, Any],
    mmeta: dict[str, Any],
    *,
    allowed: set[int] | None,
    binary: bool,
) -> str | None:
    try:
        _check_image(image, case)
    except DataValidationError as exc:
        return exc.message
    if image.shape[1:] != mask.shape:
        return f"{case}: image shape {image.shape[1:]} differs from mask shape {mask.shape}"
    if imeta.get("spacing") and mmeta.get("spacing") and imeta["format"] != "raster":
        if not np.allclose(imeta["spacing"], mmeta["spacing"], rtol=1e-3, atol=1e-4):
            return (
                f"{case}: image spacing {_fmt(imeta['spacing'])} differs from mask spacing "
                f"{_fmt(mmeta['spacing'])}"
            )
    if not np.issubdtype(mask.dtype, np.integer):
        return f"{case}: the mask holds non-integer values (a label map must hold class ids)"
    values = set(np.unique(mask).tolist())
    if binary and not values <= {0, 1}:
        extra = sorted(values - {0, 1})[:5]
        return f"{case}: binary masks were declared but this mask holds labels {extra}"
    if allowed is not None and not values <= allowed:
        extra = sorted(values - allowed)[:5]
        return f"{case}: the mask holds unexpected labels {extra} (allowed: {sorted(allowed)})"
    return None


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _options(cfg: RunConfig | None, options: dict[str, Any]) -> dict[str, Any]:
    merged = dict(cfg.data.options) if cfg is not None else {}
    merged.update(options)
    return {k: v for k, v in merged.items() if k in READER_OPTIONS}


def read_segmentation(
    path: str | Path, *, cfg: RunConfig | None = None, **options: Any
) -> LoadedData:
    """Read paired images and masks (see the module docstring) into records.

    Args:
        path: an archive, a folder, a NIfTI/DICOM image (with ``mask``) or a phantom recipe.
        cfg: the run file (its ``data.options`` are read; learner options are ignored here).
        **options: ``binary`` (declare masks binary), ``labels`` (the allowed label values,
            or their count), ``classes`` (class names, index = label), ``foreground``
            (``"bright"``/``"dark"``: which 8-bit mask value is the foreground), ``mask``
            (the mask of a single image).

    Returns:
        :class:`~medlearn.data.LoadedData` with ``classes`` and ``info`` (spatial dims,
        channels, label counts).

    Raises:
        DataValidationError: every bad pair, named, in one error.
    """
    from medlearn.data import LoadedData, make_record

    p = Path(path)
    opts = _options(cfg, options)
    foreground = str(opts.get("foreground", "bright"))
    if foreground not in ("bright", "dark"):
        raise ConfigError(
            f"data.options.foreground must be 'bright' or 'dark'. Got {foreground!r}."
        )
    binary = bool(opts.get("binary", False))
    labels_opt = opts.get("labels")
    classes = [str(c) for c in opts.get("classes", [])] or None
    allowed: set[int] | None = None
    if isinstance(labels_opt, int):
        allowed = set(range(labels_opt))
    elif labels_opt is not None:
        allowed = {int(v) for v in labels_opt}
    elif classes:
        allowed = set(range(len(classes)))
    elif binary:
        allowed = {0, 1}

    cases: list[tuple[str, Any, Any, dict[str, Any], dict[str, Any]]] = []
    errors: list[str] = []
    if p.suffix.lower() == ".json":
        recipe = _read_recipe(p)
        from medlearn.imaging.segmentation.phantoms import phantom_cases

        for name, ph in phantom_cases(recipe):
            meta = {"spacing": [1.0, 1.0, 1.0], "affine": np.eye(4).tolist(), "format": "nifti"}
            cases.append((name, ph.image[None], ph.mask.astype(np.int64), meta, meta))
        binary = True
        allowed = {0, 1}
        classes = classes or ["background", "lesion"]
    elif "mask" in opts:
        mask_path = Path(str(opts["mask"]))
        if not mask_path.is_absolute():
            mask_path = p.parent / mask_path
        if not mask_path.exists():
            raise DataNotFoundError(
                f"data.options.mask {mask_path.name!r} does not exist next to {p.name}.",
                hint="Give the mask's path (relative to the image's folder, or absolute).",
            )
        try:
            image, imeta = _load_from(p, p.name, mask=False, foreground=foreground)
            mask, mmeta = _load_from(mask_path, mask_path.name, mask=True, foreground=foreground)
            cases.append((_stem(p.name), image, mask, imeta, mmeta))
        except DataValidationError as exc:
            errors.append(exc.message)
    else:
        if not p.exists():
            raise DataNotFoundError(f"{p} does not exist.")
        images, masks = _pairs(p)
        if not images:
            raise DataValidationError(
                f"{p.name}: found no image folder ({'/'.join(_IMAGE_DIRS)}) with images.",
                hint="Lay out images/ and masks/ side by side, files paired by name.",
            )
        for stem in sorted(images, key=_natural):
            if stem not in masks:
                errors.append(f"{images[stem][1]}: no mask with the same name")
                continue
            try:
                image, imeta = _load_from(*images[stem], mask=False, foreground=foreground)
                mask, mmeta = _load_from(*masks[stem], mask=True, foreground=foreground)
            except DataValidationError as exc:
                errors.append(exc.message)
                continue
            cases.append((stem, image, mask, imeta, mmeta))
        for stem in sorted(set(masks) - set(images)):
            errors.append(f"{masks[stem][1]}: no image with the same name")
    records = []
    label_counts: dict[int, int] = {}
    for name, image, mask, imeta, mmeta in cases:
        problem = _check_pair(name, image, mask, imeta, mmeta, allowed=allowed, binary=binary)
        if problem:
            errors.append(problem)
            continue
        for v in np.unique(mask).tolist():
            label_counts[int(v)] = label_counts.get(int(v), 0) + 1
        meta = {k: imeta.get(k) for k in ("spacing", "affine", "format")}
        meta["source"] = name
        records.append(make_record(name, image, mask, meta=meta))
    if errors:
        shown = "; ".join(errors[:20]) + (
            f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        )
        raise DataValidationError(
            f"{p.name}: {len(errors)} bad case(s): {shown}.",
            hint="Fix or remove these cases; each must have an image and a mask of the same "
            "shape and spacing holding only the declared labels.",
        )
    if not records:
        raise DataValidationError(f"{p.name}: no image/mask pairs found.")
    n_labels = max(label_counts) + 1
    if classes is None:
        classes = ["background"] + [f"label_{k}" for k in range(1, max(n_labels, 2))]
    dims = {r["input"].ndim - 1 for r in records}
    chans = {r["input"].shape[0] for r in records}
    if len(dims) != 1 or len(chans) != 1:
        raise DataValidationError(
            f"{p.name}: cases mix {sorted(dims)}-D images or {sorted(chans)} channel counts.",
            hint="Keep one kind of image per dataset.",
        )
    return LoadedData(
        records=records,
        classes=classes,
        source=str(p.name),
        info={
            "spatial_dims": dims.pop(),
            "channels": chans.pop(),
            "cases": len(records),
            "label_counts": {str(k): v for k, v in sorted(label_counts.items())},
        },
    )


def _natural(stem: str) -> tuple[Any, ...]:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", stem))


def _read_recipe(path: Path) -> dict[str, Any]:
    from medlearn.imaging.segmentation.phantoms import PHANTOM_KIND

    try:
        recipe = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataValidationError(f"{path.name}: not a readable JSON file ({exc}).") from None
    if not isinstance(recipe, dict) or recipe.get("kind") != PHANTOM_KIND:
        raise DataValidationError(
            f"{path.name}: a JSON data file must be a phantom recipe with kind {PHANTOM_KIND!r}.",
            hint='For example {"kind": "medlearn-phantom3d", "n_cases": 16, "size": 64}.',
        )
    return {k: v for k, v in recipe.items() if k != "kind"}


READERS.add("segmentation", read_segmentation, domain="imaging", run_config=True)

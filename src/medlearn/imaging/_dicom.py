"""DICOM pixel data → float32 ``(C, H, W)`` in [0, 1] (used by :func:`readers.load_image`).

Grayscale images go through the modality LUT (Rescale Slope / Intercept, or a Modality LUT
Sequence), then a linear window (an explicit one, else the file's first Window Center /
Width, else the image's min–max), and MONOCHROME1 images are inverted so that bright always
means dense. Colour images (RGB, YBR_* converted to RGB by pydicom, PALETTE COLOR through its
LUT) are scaled by their bit depth.

Compressed transfer syntaxes are decoded by pydicom's plugins (pylibjpeg + libjpeg /
openjpeg / rle, or Pillow). Errors never include element values: only the file, the
transfer syntax and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import DataValidationError, require

__all__ = ["is_dicom_file", "read_dicom"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# pip packages providing pydicom decoders, by transfer syntax UID prefix / value.
_JPEG = "pylibjpeg pylibjpeg-libjpeg"
_J2K = "pylibjpeg pylibjpeg-openjpeg"
_DECODER_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE Lossless
    "1.2.840.10008.1.2.4.50": _JPEG,
    "1.2.840.10008.1.2.4.51": _JPEG,
    "1.2.840.10008.1.2.4.57": _JPEG,
    "1.2.840.10008.1.2.4.70": _JPEG,
    "1.2.840.10008.1.2.4.80": _JPEG,  # JPEG-LS
    "1.2.840.10008.1.2.4.81": _JPEG,
    "1.2.840.10008.1.2.4.90": _J2K,
    "1.2.840.10008.1.2.4.91": _J2K,
    "1.2.840.10008.1.2.4.201": _J2K,  # HTJ2K
    "1.2.840.10008.1.2.4.202": _J2K,
    "1.2.840.10008.1.2.4.203": _J2K,
}


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` starts with the DICOM preamble (``DICM`` at byte 128)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _bad(path: Path, problem: str, hint: str) -> DataValidationError:
    return DataValidationError(f"{path}: {problem}.", hint=hint)


def _transfer_syntax(ds: Any) -> Any:
    """The dataset's transfer syntax; inferred from its encoding when File Meta lacks it."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return uid
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        return None
    if implicit:
        uid = ImplicitVRLittleEndian
    else:
        uid = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    ds.file_meta.TransferSyntaxUID = uid
    return uid


def _check_decoder(path: Path, uid: Any) -> None:
    """Raise a clear error when no installed plugin can decode transfer syntax ``uid``."""
    from pydicom.pixels import get_decoder

    label = f"{uid.name} ({uid})" if getattr(uid, "name", "") else str(uid)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise _bad(
            path,
            f"pixel data uses transfer syntax {label}, which no pydicom decoder supports",
            "Convert the file to an uncompressed syntax first, e.g. `gdcmconv --raw IN OUT` "
            "(GDCM) or `dcmdjpeg`/`dcmdrle` (DCMTK).",
        ) from None
    if not decoder.is_available:
        packages = _DECODER_PACKAGES.get(str(uid), "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg")
        raise _bad(
            path,
            f"pixel data uses transfer syntax {label} and no decoder for it is installed",
            f"pip install {packages}   (or: pip install 'medlearn[imaging]')",
        )


def _first(value: Any) -> float | None:
    """The first number of a (possibly multi-valued) DICOM element, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def apply_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear window: ``center - width/2`` → 0, ``center + width/2`` → 1, clipped."""
    lower = center - width / 2.0
    return np.clip((x - lower) / width, 0.0, 1.0)


def min_max(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the array's own range; a constant image becomes zeros."""
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        return (x - lo) / (hi - lo)
    return np.zeros_like(x)


def read_dicom(
    path: Path, *, window: tuple[float, float] | None = None, force: bool = False
) -> np.ndarray:
    """Read one single-frame DICOM image as float32 ``(C, H, W)`` in [0, 1].

    Args:
        path: the file.
        window: ``(center, width)`` in modality units (e.g. Hounsfield units) overriding the
            file's window; grayscale images only.
        force: read files without the 128-byte preamble + ``DICM`` marker.

    Returns:
        ``(1, H, W)`` for grayscale, ``(3, H, W)`` for colour images.

    Raises:
        DataValidationError: not DICOM, truncated or corrupt, no pixel data, multi-frame,
            undecodable transfer syntax, or non-finite values.
    """
    pydicom = require("pydicom", extra="imaging", purpose="reading DICOM files")
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    try:
        ds = pydicom.dcmread(path, force=force)
    except InvalidDicomError:
        raise _bad(
            path,
            "not a DICOM file (no 'DICM' marker at byte 128)",
            "Check that the file is a DICOM image; rename other files to their real extension.",
        ) from None
    except Exception as exc:  # pydicom raises many types on damaged files
        raise _bad(
            path,
            f"truncated or corrupt DICOM file (parsing failed: {type(exc).__name__})",
            "Re-export or re-transfer the file from the PACS; remove it if it cannot be fixed.",
        ) from exc
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise _bad(
            path,
            "DICOM file has no pixel data (e.g. a report, RT plan or DICOMDIR)",
            "Only DICOM images can be read; remove non-image objects from the input.",
        )
    uid = _transfer_syntax(ds)
    if uid is None:
        raise _bad(
            path,
            "DICOM file has no transfer syntax and its encoding cannot be inferred",
            "Re-export the file with a File Meta header (any DICOM toolkit does this).",
        )
    if getattr(uid, "is_compressed", False):
        _check_decoder(path, uid)
    frames = _first(ds.get("NumberOfFrames"))
    if frames is not None and frames > 1:
        raise _bad(
            path,
            f"multi-frame DICOM with {int(frames)} frames; 2-D classification expects one "
            "frame per file",
            "Split the frames into single-frame files (e.g. with pydicom or `dcmsplit`).",
        )
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        syntax = getattr(uid, "name", "") or str(uid)
        raise _bad(
            path,
            f"truncated or corrupt DICOM pixel data ({syntax}; decoding failed: "
            f"{type(exc).__name__})",
            "Re-export or re-transfer the file; remove it if it cannot be fixed.",
        ) from exc

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if pixels.size == 0:
        raise _bad(path, "DICOM image is empty (0 pixels)", "Remove the file from the input.")
    if photometric == "PALETTE COLOR":
        rgb = np.asarray(apply_color_lut(pixels, ds))
        return _scale_color(rgb)
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):  # RGB / YBR (converted to RGB)
        return _scale_color(pixels[..., :3], bits=_first(ds.get("BitsStored")))
    if pixels.ndim != 2:
        raise _bad(
            path,
            f"unexpected DICOM pixel array of shape {tuple(pixels.shape)}",
            "2-D classification expects one grayscale or colour frame per file.",
        )

    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    if not np.isfinite(values).all():
        n = int((~np.isfinite(values)).sum())
        raise _bad(
            path,
            f"DICOM image holds {n} NaN or infinite values",
            "Re-export the image without invalid values.",
        )
    if window is None:
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        if center is not None and width is not None and width > 0:
            window = (center, width)
    scaled = apply_window(values, *window) if window is not None else min_max(values)
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    return scaled[None].astype(np.float32)


def _scale_color(rgb: np.ndarray, *, bits: float | None = None) -> np.ndarray:
    """``(H, W, 3)`` integers → ``(3, H, W)`` float32 in [0, 1]."""
    if np.issubdtype(rgb.dtype, np.integer):
        top = 2.0 ** int(bits) - 1 if bits else float(np.iinfo(rgb.dtype).max)
        out = np.clip(rgb.astype(np.float64) / top, 0.0, 1.0)
    else:
        out = min_max(rgb.astype(np.float64))
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)

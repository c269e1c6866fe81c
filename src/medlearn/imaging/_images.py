"""Single 2-D images → float32 ``(C, H, W)`` in [0, 1]: :func:`load_image` and its helpers.

Formats are recognised by content first (PNG, JPEG, BMP, TIFF, NIfTI-1/2, DICOM ``DICM``
marker) and by extension second. Errors are one line naming the file, plus a hint.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medlearn.errors import ConfigError, DataNotFoundError, DataValidationError, require
from medlearn.imaging._dicom import apply_window, is_dicom_file, min_max, read_dicom

__all__ = [
    "IMAGE_EXTENSIONS",
    "LOAD_OPTIONS",
    "ColorMode",
    "check_load_options",
    "file_suffix",
    "is_image_file",
    "load_image",
    "load_image_bytes",
]

ColorMode = Literal["keep", "grayscale", "rgb"]

_KIND_BY_EXTENSION: dict[str, str] = {
    ".png": "pillow",
    ".jpg": "pillow",
    ".jpeg": "pillow",
    ".bmp": "pillow",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".nii": "nifti",
    ".nii.gz": "nifti",
}
#: File extensions :func:`load_image` reads (DICOM files are also recognised without one).
IMAGE_EXTENSIONS: tuple[str, ...] = tuple(_KIND_BY_EXTENSION)
#: Keyword options of :func:`load_image` that readers and learners pass through.
LOAD_OPTIONS = ("window", "color")


def file_suffix(path: Path) -> str:
    """Lower-case extension; ``.nii.gz`` counts as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def is_image_file(path: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> bool:
    """By extension; files without an extension count when they hold DICOM."""
    suffix = file_suffix(path)
    if suffix in extensions:
        return True
    return suffix == "" and is_dicom_file(path)


_PNG = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _check_window(window: Any) -> tuple[float, float] | None:
    if window is None:
        return None
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError):
        center, width = float("nan"), float("nan")
    if not (np.isfinite(center) and np.isfinite(width) and width > 0):
        raise ConfigError(
            "The 'window' parameter of load_image must be (center, width) with a positive "
            f"width. Got {window!r}.",
            hint="For example window=(40, 400) for a CT soft-tissue window.",
        )
    return center, width


def _check_color(color: Any) -> ColorMode:
    if color not in ("keep", "grayscale", "rgb"):
        raise ConfigError(
            "The 'color' parameter of load_image must be 'keep', 'grayscale' or 'rgb'. "
            f"Got {color!r}."
        )
    return color  # type: ignore[no-any-return]


def check_load_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(LOAD_OPTIONS))
    if unknown:
        raise ConfigError(
            f"Unknown load_image options: {', '.join(unknown)}. "
            f"Accepted: {', '.join(LOAD_OPTIONS)}."
        )
    out = dict(options)
    if "window" in out:
        out["window"] = _check_window(out["window"])
    if "color" in out:
        out["color"] = _check_color(out["color"])
    return out


def _detect(path: Path) -> str:
    """The decoder for ``path``: by content first, then by extension."""
    try:
        with path.open("rb") as fh:
            head = fh.read(348)
    except OSError as exc:
        raise DataValidationError(
            f"{path}: the file cannot be read ({type(exc).__name__}).",
            hint="Check its permissions and that the disk or network share is available.",
        ) from exc
    return _detect_head(head, path)


def _detect_head(head: bytes, path: Path) -> str:
    """The decoder for a file starting with ``head`` (its first 348 bytes) named ``path``."""
    suffix = file_suffix(path)
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PNG) or head[:3] == b"\xff\xd8\xff" or head[:2] == b"BM":
        return "pillow"
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    if head[:2] == b"\x1f\x8b" and suffix == ".nii.gz":
        return "nifti"
    expected = _KIND_BY_EXTENSION.get(suffix)
    if expected == "dicom":  # DICOM written without the preamble: let pydicom try
        return "dicom-nopreamble"
    if expected is not None:
        raise DataValidationError(
            f"{path}: not a valid {suffix} image; its content is not PNG, JPEG, BMP, TIFF, "
            "DICOM or NIfTI data.",
            hint="The file is damaged or another type with an image extension; re-export it.",
        )
    raise DataValidationError(
        f"{path}: unsupported file type '{suffix or '(no extension)'}'.",
        hint=f"Supported: {', '.join(IMAGE_EXTENSIONS)}, and DICOM files without extension.",
    )


def _decode_failed(path: Path, what: str, exc: BaseException) -> DataValidationError:
    return DataValidationError(
        f"{path}: cannot decode the {what} ({type(exc).__name__}); the file is truncated, "
        "corrupt or uses an unsupported encoding.",
        hint="Re-export the image (e.g. as PNG); remove it if it cannot be fixed.",
    )


def _read_pillow(path: Path, source: Any = None) -> np.ndarray:
    """PNG / JPEG / BMP → ``(H, W)`` or ``(H, W, 3)`` raw values (alpha dropped).

    ``source`` (a file object) is read instead of ``path`` when given; ``path`` names it.
    """
    image_module = require("PIL.Image", extra="imaging", purpose="reading PNG/JPEG images")
    try:
        with image_module.open(path if source is None else source) as img:
            img.load()
            mode = img.mode
            if mode == "1" or mode in ("LA", "La"):
                img = img.convert("L")
            elif mode in ("P", "PA", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
                img = img.convert("RGB")
            arr = np.asarray(img)
            if img.mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 0xFFFF:
                arr = arr.astype(np.uint16)  # 16-bit grayscale decoded as 32-bit
    except Exception as exc:  # UnidentifiedImageError, OSError (truncated), SyntaxError ...
        raise _decode_failed(path, "image", exc) from exc
    return arr


def _read_tiff(path: Path, source: Any = None) -> np.ndarray:
    """TIFF (any bit depth) → ``(H, W)`` or ``(H, W, C)``; multi-page files are refused.

    ``source`` (a file object) is read instead of ``path`` when given; ``path`` names it.
    """
    tifffile = require("tifffile", extra="imaging", purpose="reading TIFF images")
    try:
        with tifffile.TiffFile(path if source is None else source) as tif:
            series = tif.series[0]
            axes, arr = series.axes, series.asarray()
    except Exception as exc:
        raise _decode_failed(path, "TIFF image", exc) from exc
    keep = [i for i, n in enumerate(arr.shape) if n != 1 or axes[i] in "YX"]
    shape = tuple(arr.shape)
    arr = arr.reshape([arr.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    channel = next((a for a in "SC" if a in axes), None)
    if sorted(axes.replace(channel or "", "")) != ["X", "Y"] or (
        channel and axes.count(channel) != 1
    ):
        raise DataValidationError(
            f"{path}: a multi-page TIFF (axes {axes}, shape {shape}); 2-D classification "
            "expects one image per file.",
            hint="Save each page as its own file (e.g. with tifffile), or use a 3-D task.",
        )
    if channel:
        arr = np.moveaxis(arr, axes.index(channel), -1)
        if arr.shape[-1] in (2, 4):  # gray + alpha, RGB + alpha
            arr = arr[..., : arr.shape[-1] - 1]
        if arr.shape[-1] not in (1, 3):
            raise DataValidationError(
                f"{path}: a TIFF with {arr.shape[-1]} channels; expected 1 (gray) or 3 (RGB).",
                hint="Save the channels to use as a grayscale or RGB image.",
            )
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    return np.asarray(arr)


def _read_nifti(path: Path) -> np.ndarray:
    """NIfTI (.nii / .nii.gz) → ``(X, Y)`` float32 with the file's scaling applied."""
    nibabel = require("nibabel", extra="imaging", purpose="reading NIfTI images")
    try:
        img = nibabel.load(str(path))
        shape = tuple(int(n) for n in img.shape)
    except Exception as exc:
        raise _decode_failed(path, "NIfTI header", exc) from exc
    spatial = [n for n in shape if n != 1]
    if len(spatial) > 2:
        raise DataValidationError(
            f"{path}: a {len(spatial)}-D volume of shape {shape}; 2-D classification expects "
            "one slice per file.",
            hint=(
                "Save the slice to classify as its own file (nibabel: img.slicer[:, :, k]), "
                "or use a 3-D task (e.g. segmentation) for whole volumes."
            ),
        )
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:
        raise _decode_failed(path, "NIfTI data", exc) from exc
    return data.reshape(spatial) if len(spatial) == 2 else data.reshape(-1)


def _to_unit(path: Path, arr: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Raw ``(H, W)`` / ``(H, W, C)`` values → float32 ``(C, H, W)`` in [0, 1]."""
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise DataValidationError(
            f"{path}: empty or degenerate image (shape {tuple(arr.shape)}).",
            hint="Remove the file or re-export the image.",
        )
    if arr.dtype.kind not in "buif":
        raise DataValidationError(
            f"{path}: unsupported pixel type {arr.dtype}.",
            hint="Save the image with integer or real-valued pixels.",
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n = int((~np.isfinite(arr)).sum())
        raise DataValidationError(
            f"{path}: the image holds {n} NaN or infinite values.",
            hint="Replace them (e.g. with 0 or the background value) when exporting.",
        )
    if window is not None:
        out = apply_window(arr.astype(np.float64), *window)
    elif arr.dtype.kind == "b":
        out = arr.astype(np.float64)
    elif arr.dtype.kind == "u":
        out = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    elif arr.dtype.kind == "f" and float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0:
        out = arr.astype(np.float64)
    else:
        out = min_max(arr.astype(np.float64))
    out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
    return np.ascontiguousarray(out, dtype=np.float32)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L"


def _convert_color(arr: np.ndarray, color: ColorMode) -> np.ndarray:
    if color == "grayscale" and arr.shape[0] == 3:
        return np.tensordot(_LUMA, arr, axes=1)[None].astype(np.float32)
    if color == "rgb" and arr.shape[0] == 1:
        return np.repeat(arr, 3, axis=0)
    return arr


def load_image(
    path: str | os.PathLike[str],
    *,
    window: tuple[float, float] | None = None,
    color: ColorMode = "keep",
) -> np.ndarray:
    """Load one 2-D image as float32 ``(C, H, W)`` in [0, 1].

    The format is recognised by content (PNG, JPEG, BMP, TIFF, NIfTI-1/2, DICOM with its
    ``DICM`` marker — with or without an extension) and by extension (``.dcm`` without the
    preamble, ``.nii.gz``).

    Intensities:

    - DICOM: modality LUT (rescale slope / intercept), then ``window``, else the file's first
      Window Center / Width, else min–max; MONOCHROME1 is inverted. Colour DICOM is scaled by
      its bit depth.
    - Other formats: ``window`` when given (in the file's units, e.g. HU for NIfTI CT);
      otherwise unsigned integers are divided by their type's maximum (8-bit by 255, 16-bit
      by 65535), reals already in [0, 1] are kept, and anything else (signed integers,
      NIfTI, other reals) is min–max scaled.

    Args:
        path: the image file.
        window: ``(center, width)`` of a linear intensity window; ``center - width/2`` maps
            to 0 and ``center + width/2`` to 1, clipped.
        color: ``"keep"`` (1 channel for grayscale, 3 for colour; alpha is dropped),
            ``"grayscale"`` (colour → 1 channel, BT.601 luma) or ``"rgb"`` (gray → 3
            identical channels).

    Returns:
        ``(C, H, W)`` float32 array, ``C`` = 1 or 3. NIfTI arrays keep the file's axis
        order, ``(1, X, Y)``, as MONAI's loaders do.

    Raises:
        DataNotFoundError: the file does not exist.
        DataValidationError: one line naming the file and what to do: unsupported or
            mislabelled file type, truncated or corrupt data, undecodable DICOM transfer
            syntax, multi-frame / multi-page / 3-D input, NaN or infinite values, empty image.
        ConfigError: ``window`` or ``color`` is invalid.
    """
    p = Path(path)
    window = _check_window(window)
    color = _check_color(color)
    if not p.exists():
        raise DataNotFoundError(f"{p}: no such file.", hint="Check the path.")
    if not p.is_file():
        raise DataValidationError(f"{p}: not a file.", hint="Give the path of an image file.")
    if p.stat().st_size == 0:
        raise DataValidationError(f"{p}: the file is empty (0 bytes).", hint="Remove it.")
    kind = _detect(p)
    if kind.startswith("dicom"):
        arr = read_dicom(p, window=window, force=kind == "dicom-nopreamble")
    else:
        reader = {"pillow": _read_pillow, "tiff": _read_tiff, "nifti": _read_nifti}[kind]
        arr = _to_unit(p, reader(p), window)
    return _convert_color(arr, color)


#: Decoders :func:`load_image_bytes` runs on bytes in memory (DICOM and NIfTI need a file).
_IN_MEMORY_KINDS = {"pillow": _read_pillow, "tiff": _read_tiff}


def load_image_bytes(
    data: bytes,
    name: str,
    *,
    window: tuple[float, float] | None = None,
    color: ColorMode = "keep",
) -> np.ndarray:
    """:func:`load_image` for a PNG, JPEG, BMP or TIFF file already in memory (an upload).

    Decodes exactly as :func:`load_image` does for the same file, without writing it to disk.

    Args:
        data: the file's bytes.
        name: the file's name, used for its extension and in error messages.
        window: as in :func:`load_image`.
        color: as in :func:`load_image`.

    Returns:
        ``(C, H, W)`` float32 array in [0, 1].

    Raises:
        DataValidationError: as :func:`load_image`; also for DICOM and NIfTI content, which
            must be read from a file (save the bytes and call :func:`load_image`).
        ConfigError: ``window`` or ``color`` is invalid.
    """
    path = Path(name)
    window = _check_window(window)
    color = _check_color(color)
    if not data:
        raise DataValidationError(f"{path}: the file is empty (0 bytes).", hint="Remove it.")
    kind = _detect_head(bytes(data[:348]), path)
    reader = _IN_MEMORY_KINDS.get(kind)
    if reader is None:
        raise DataValidationError(
            f"{path}: {kind.split('-')[0].upper()} data is read from a file, not from memory.",
            hint="Save the bytes to a file and call load_image on it.",
        )
    arr = _to_unit(path, reader(path, io.BytesIO(data)), window)
    return _convert_color(arr, color)

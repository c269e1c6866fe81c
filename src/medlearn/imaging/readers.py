"""Imaging readers: MedMNIST ``.npz`` files, class folders and CSV manifests into records,
and :func:`load_image` for single PNG/JPEG/TIFF, DICOM and NIfTI files.

Records (see :mod:`medlearn.data`) hold:

- in-memory datasets (``.npz``): ``input`` is a ``uint8`` array ``(C, H, W)`` (a view into
  the file's image array), ids ``"train/00000"``, the file's splits in ``given_split``;
- file datasets (folders, CSVs): ``input`` is the absolute path of the image, loaded lazily
  by :func:`load_image`; ids are the paths relative to the folder or CSV.

Readers validate everything first and raise one :class:`~medlearn.errors.DataValidationError`
listing every bad row or file. Messages name files, rows, columns and class names, never
patient identifiers or pixel values.

Example:
    >>> from medlearn.imaging.readers import read_imaging, load_image
    >>> data = read_imaging("labels.csv", classes=["normal", "pneumonia"])  # doctest: +SKIP
    >>> image = load_image(data.records[0]["input"], color="grayscale")    # doctest: +SKIP
    >>> image.shape, image.dtype                                           # doctest: +SKIP
    ((1, 512, 512), dtype('float32'))
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from medlearn.config import check_params
from medlearn.data._records import LoadedData, Record, make_record
from medlearn.errors import ConfigError, DataNotFoundError, DataValidationError
from medlearn.imaging import _catalog  # noqa: F401  (registers the MedMNIST catalog entries)
from medlearn.imaging._images import (
    IMAGE_EXTENSIONS,
    LOAD_OPTIONS,
    check_load_options,
    file_suffix,
    is_image_file,
    load_image,
)
from medlearn.registry import READERS
from medlearn.training.learner import BadInput

__all__ = [
    "IMAGE_EXTENSIONS",
    "check_inputs",
    "load_image",
    "read_image_csv",
    "read_image_folder",
    "read_imaging",
    "read_medmnist_npz",
]

_SPLITS = ("train", "val", "test")
_MAX_LISTED = 20


# --- small helpers ---------------------------------------------------------------------------


def _is_hidden(rel: PurePosixPath) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _listing(problems: Sequence[str], *, limit: int = _MAX_LISTED) -> str:
    lines = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def _sort_labels(labels: Iterable[str]) -> list[str]:
    """Sorted unique labels; numerically when every label is an integer."""
    unique = set(labels)
    if unique and all(_as_int(v) is not None for v in unique):
        return sorted(unique, key=lambda v: int(v))
    return sorted(unique)


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _check_classes(classes: Sequence[str] | None, where: str) -> list[str] | None:
    if classes is None:
        return None
    out = [str(c) for c in classes]
    if not out or any(not c for c in out) or len(set(out)) != len(out):
        raise ConfigError(
            f"The 'classes' parameter of {where} must be unique non-empty names. "
            f"Got {len(out)} names{' with repeats or blanks' if out else ''}.",
            hint="For example classes=['normal', 'pneumonia'].",
        )
    return out


# --- MedMNIST .npz ---------------------------------------------------------------------------


def read_medmnist_npz(
    path: str | os.PathLike[str], *, classes: Sequence[str] | None = None
) -> LoadedData:
    """Read a MedMNIST-style ``.npz`` file.

    The file holds ``<split>_images`` and ``<split>_labels`` for some of the splits
    ``train``, ``val``, ``test``. Images are ``(N, H, W)`` (grayscale) or ``(N, H, W, C)``
    with ``C`` in 1, 3; labels ``(N,)`` or ``(N, 1)`` integer class indices, or ``(N, K)``
    0/1 indicators for multi-label sets.

    Args:
        path: the ``.npz`` file.
        classes: class names (index = label). Default: ``"0"``, ``"1"``, ... up to the
            largest label.

    Returns:
        One record per image: id ``"<split>/<index>"`` (zero-padded to 5 digits), input a
        ``(C, H, W)`` array view, target an ``int`` (or a list of 0/1 ints for multi-label),
        ``meta`` ``{"split", "index", "exposure"}``; ``given_split`` maps each split to its
        ids. ``exposure`` (``"low"``, ``"mid"``, ``"high"``) is the tertile band of the
        image's mean intensity over the whole file: an *acquisition proxy* for subgroup
        analysis (``evaluation.subgroups: [exposure]``), not a demographic.

    Raises:
        DataNotFoundError: the file does not exist.
        DataValidationError: naming the file and the missing key or bad shape.
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"{p}: no such file.", hint="Check the path.")
    classes = _check_classes(classes, "read_medmnist_npz")
    try:
        npz = np.load(p, allow_pickle=False)
    except Exception as exc:  # not a zip, truncated, pickled objects ...
        raise DataValidationError(
            f"{p}: not a readable .npz file ({type(exc).__name__}).",
            hint="Save arrays with numpy.savez / savez_compressed; re-download a catalog file.",
        ) from exc
    with npz:
        keys = set(npz.files)
        present = [s for s in _SPLITS if f"{s}_images" in keys or f"{s}_labels" in keys]
        if not present:
            raise DataValidationError(
                f"{p}: no 'train_images'/'val_images'/'test_images' key. "
                f"Found keys: {', '.join(sorted(keys)) or '(none)'}.",
                hint="A MedMNIST file holds <split>_images and <split>_labels per split.",
            )
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split in present:
            for kind in ("images", "labels"):
                if f"{split}_{kind}" not in keys:
                    raise DataValidationError(
                        f"{p}: key '{split}_{kind}' is missing (found {', '.join(sorted(keys))}).",
                        hint=f"Add '{split}_{kind}' or drop the other '{split}_*' key.",
                    )
            try:
                images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
            except Exception as exc:
                raise DataValidationError(
                    f"{p}: the '{split}' arrays cannot be read ({type(exc).__name__}).",
                    hint="The file is truncated or holds object arrays; re-create it.",
                ) from exc
            arrays[split] = (_npz_images(p, split, images), _npz_labels(p, split, labels, images))

    multilabel = any(lab.ndim == 2 for _, lab in arrays.values())
    n_classes = 0
    for split, (_, labels) in arrays.items():
        if labels.size and (labels.min() < 0):
            raise DataValidationError(
                f"{p}: '{split}_labels' holds negative labels.",
                hint="Labels must be class indices 0..K-1 (or 0/1 indicators).",
            )
        n_classes = max(n_classes, labels.shape[1] if labels.ndim == 2 else int(labels.max()) + 1)
    if classes is None:
        classes = [str(i) for i in range(n_classes)]
    elif n_classes > len(classes):
        raise DataValidationError(
            f"{p}: labels need {n_classes} classes but {len(classes)} class names were given "
            f"({', '.join(classes)}).",
            hint="Pass one class name per label value (index = label).",
        )

    records: list[Record] = []
    given: dict[str, list[str]] = {}
    shapes: set[tuple[int, ...]] = set()
    exposure = _exposure_bands(arrays)
    for split, (images, labels) in arrays.items():
        width = max(5, len(str(len(images) - 1)))
        ids = [f"{split}/{i:0{width}d}" for i in range(len(images))]
        targets = labels.tolist()
        for i, rid in enumerate(ids):
            meta = {"split": split, "index": i, "exposure": exposure[split][i]}
            records.append(make_record(rid, images[i], targets[i], meta=meta))
        given[split] = ids
        shapes.add(tuple(images.shape[1:]))
    counts = {s: len(ids) for s, ids in given.items()}
    first_images = next(iter(arrays.values()))[0]
    return LoadedData(
        records=records,
        classes=list(classes),
        given_split=given,
        source=str(p),
        info={
            "format": "medmnist_npz",
            "task": "multilabel"
            if multilabel
            else ("binary" if len(classes) == 2 else "multiclass"),
            "image_shape": sorted(shapes)[0] if len(shapes) == 1 else sorted(shapes),
            "channels": int(first_images.shape[1]),
            "dtype": str(first_images.dtype),
            "n": counts,
        },
    )


def _exposure_bands(arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list[str]]:
    """Tertile band (low/mid/high) of each image's mean intensity, cut over all splits."""
    means = {
        s: images.reshape(len(images), -1).mean(axis=1) if len(images) else np.zeros(0)
        for s, (images, _) in arrays.items()
    }
    pooled = np.concatenate(list(means.values())) if means else np.zeros(0)
    cuts = np.quantile(pooled, [1 / 3, 2 / 3]) if pooled.size else np.zeros(2)
    names = np.array(["low", "mid", "high"])
    return {s: names[np.searchsorted(cuts, m, side="right")].tolist() for s, m in means.items()}


def _npz_images(p: Path, split: str, images: np.ndarray) -> np.ndarray:
    key = f"{split}_images"
    if images.dtype.kind not in "uif" or images.dtype.kind == "b":
        raise DataValidationError(
            f"{p}: '{key}' has dtype {images.dtype}; expected integers or floats.",
            hint="Store images as uint8 (0-255) or float32 arrays.",
        )
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    else:
        raise DataValidationError(
            f"{p}: '{key}' has shape {tuple(images.shape)}; expected (N, H, W) or "
            "(N, H, W, C) with C = 1 or 3.",
            hint="3-D MedMNIST sets are not 2-D images; use a 3-D reader.",
        )
    if images.shape[0] == 0 or 0 in images.shape[2:]:
        raise DataValidationError(
            f"{p}: '{key}' is empty (shape {tuple(images.shape)}).", hint="Re-create the file."
        )
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise DataValidationError(
            f"{p}: '{key}' holds NaN or infinite values.",
            hint="Replace them (e.g. with 0) before saving.",
        )
    return images


def _npz_labels(p: Path, split: str, labels: np.ndarray, images: np.ndarray) -> np.ndarray:
    key = f"{split}_labels"
    shape = tuple(labels.shape)
    if labels.dtype.kind not in "uib" and not (
        labels.dtype.kind == "f"
        and np.all(np.isfinite(labels))
        and np.all(labels == np.round(labels))
    ):
        raise DataValidationError(
            f"{p}: '{key}' has dtype {labels.dtype}; expected integer class indices.",
            hint="Store labels as integers (N,) or (N, 1).",
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim not in (1, 2) or labels.shape[0] != images.shape[0]:
        raise DataValidationError(
            f"{p}: '{key}' has shape {shape} but '{split}_images' holds {images.shape[0]} images.",
            hint="Labels must be (N,) or (N, 1), one per image.",
        )
    return labels.astype(np.int64)


# --- folders and CSVs ------------------------------------------------------------------------


def read_image_folder(
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> LoadedData:
    """Read a folder with one subfolder per class: ``root/<class>/**/<image>``.

    Files are listed recursively inside each class folder, sorted, so the order is
    deterministic. Hidden files and folders (names starting with ``.``) are skipped; other
    files without an image extension are listed in ``info["ignored_files"]``.

    Args:
        path: the root folder.
        classes: class names in label order. Default: the sorted subfolder names.
        extensions: lower-case file extensions to read (``".nii.gz"`` counts as one);
            extension-less DICOM files are always read.

    Returns:
        One record per image: id = the path relative to ``path`` (POSIX), input = the
        absolute path, target = the class index, ``meta`` ``{"path", "class"}``.

    Raises:
        DataNotFoundError: ``path`` does not exist.
        DataValidationError: one error listing every problem (image outside a class
            folder, folder not in ``classes``, empty class folder).
    """
    root = Path(path)
    if not root.exists():
        raise DataNotFoundError(f"{root}: no such folder.", hint="Check the path.")
    if not root.is_dir():
        raise DataValidationError(
            f"{root}: not a folder.", hint="Give a folder with one subfolder per class."
        )
    classes = _check_classes(classes, "read_image_folder")
    exts = tuple(e.lower() for e in extensions)
    problems: list[str] = []
    ignored: list[str] = []
    folders: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files: list[Path] = []
            for f in sorted(entry.rglob("*")):
                rel = PurePosixPath(f.relative_to(root).as_posix())
                if _is_hidden(rel) or not f.is_file():
                    continue
                if is_image_file(f, exts):
                    files.append(f)
                else:
                    ignored.append(str(rel))
            folders[entry.name] = files
        elif is_image_file(entry, exts):
            problems.append(f"{entry.name}: image outside a class folder")
        else:
            ignored.append(entry.name)
    if not folders:
        raise DataValidationError(
            f"{root}: no class subfolders found.",
            hint="Lay images out as <folder>/<class name>/<image>, one subfolder per class.",
        )
    if classes is None:
        classes = sorted(folders)
    for name, files in folders.items():
        if name not in classes:
            problems.append(f"{name}/: folder is not one of the classes ({', '.join(classes)})")
        elif not files:
            problems.append(f"{name}/: class folder holds no image files ({', '.join(exts)})")
    if problems:
        raise DataValidationError(
            f"{root}: {len(problems)} problems with the class folders:\n" + _listing(problems),
            hint="Move images into <folder>/<class>/ and name every class folder in 'classes'.",
        )
    records: list[Record] = []
    for label, name in enumerate(classes):
        for f in folders.get(name, []):
            rel = f.relative_to(root).as_posix()
            records.append(
                make_record(rel, str(f.resolve()), label, meta={"path": rel, "class": name})
            )
    counts = Counter(r["meta"]["class"] for r in records)
    return LoadedData(
        records=records,
        classes=list(classes),
        source=str(root),
        info={
            "format": "image_folder",
            "root": str(root.resolve()),
            "counts": {c: counts.get(c, 0) for c in classes},
            "ignored_files": ignored,
        },
    )


def read_image_csv(
    csv_path: str | os.PathLike[str],
    *,
    path_column: str = "path",
    label_column: str | None = "label",
    patient_column: str | None = "patient_id",
    classes: Sequence[str] | None = None,
) -> LoadedData:
    """Read a CSV manifest with one image per row.

    Relative paths are resolved against the CSV's folder. The patient column is optional
    (without it each image is its own patient). Other columns go into ``meta`` (for
    subgroup analysis).

    Args:
        csv_path: the CSV file (UTF-8, header row).
        path_column: the column holding image paths.
        label_column: the column holding class labels, or ``None`` for unlabeled data.
        patient_column: the column holding patient ids; ignored when absent from the file.
        classes: class names in label order. A label may be a class name or an integer
            index into ``classes``. Default: the sorted distinct labels.

    Returns:
        One record per row: id = the path as written (POSIX, relative to the CSV), input =
        the absolute path, target = the class index (``None`` without a label column).

    Raises:
        DataNotFoundError: the CSV does not exist.
        DataValidationError: one error listing every bad row (line number, column and
            problem: missing file, empty label, label not in ``classes`` ...).
    """
    p = Path(csv_path)
    if not p.is_file():
        raise DataNotFoundError(f"{p}: no such file.", hint="Check the path.")
    classes = _check_classes(classes, "read_image_csv")
    base = p.parent.resolve()
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError:
        raise DataValidationError(
            f"{p}: not UTF-8 text.", hint="Save the CSV as UTF-8 (e.g. 'CSV UTF-8' in Excel)."
        ) from None
    except csv.Error as exc:
        raise DataValidationError(
            f"{p}: malformed CSV ({type(exc).__name__}).",
            hint="Check quoting and remove NUL bytes; save it again from a spreadsheet.",
        ) from None
    required = [c for c in (path_column, label_column) if c]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataValidationError(
            f"{p}: missing column(s) {', '.join(repr(c) for c in missing)}. "
            f"Found columns: {', '.join(repr(c) for c in header) or '(none)'}.",
            hint="Rename the columns or pass path_column= / label_column= to the reader.",
        )
    if not rows:
        raise DataValidationError(f"{p}: the CSV has no data rows.", hint="Add one row per image.")
    has_patient = bool(patient_column) and patient_column in header
    extra_columns = [c for c in header if c not in (path_column, label_column, patient_column)]

    problems: list[str] = []
    bad_lines: set[int] = set()
    parsed: list[tuple[int, str, Path, str | None, str | None, dict[str, Any]]] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        row_problems: list[str] = []
        if None in row:
            row_problems.append(f"line {line}: has more fields than the header")
        cell = (row.get(path_column) or "").strip()
        rid, file = "", Path()
        if not cell:
            row_problems.append(f"line {line}, column '{path_column}': empty path")
        else:
            written = Path(cell.replace("\\", "/"))
            file = written if written.is_absolute() else base / written
            try:
                rid = file.resolve().relative_to(base).as_posix()
            except ValueError:
                rid = file.as_posix()
            if rid in first_line:
                row_problems.append(
                    f"line {line}, column '{path_column}': {rid} repeats the file of line "
                    f"{first_line[rid]}"
                )
            else:
                first_line[rid] = line
                if not file.is_file():
                    row_problems.append(
                        f"line {line}, column '{path_column}': file not found: {rid}"
                    )
                elif not is_image_file(file):
                    row_problems.append(
                        f"line {line}, column '{path_column}': unsupported file type "
                        f"'{file_suffix(file) or '(none)'}': {rid}"
                    )
        label: str | None = None
        if label_column:
            label = (row.get(label_column) or "").strip()
            if not label:
                row_problems.append(f"line {line}, column '{label_column}': empty label")
            elif classes is not None and label not in classes:
                index = _as_int(label)
                if index is None or not 0 <= index < len(classes):
                    row_problems.append(
                        f"line {line}, column '{label_column}': label {label!r} is not one of "
                        f"the classes ({', '.join(classes)})"
                    )
        patient: str | None = None
        if has_patient:
            patient = (row.get(patient_column) or "").strip()  # type: ignore[arg-type]
            if not patient:
                row_problems.append(f"line {line}, column '{patient_column}': empty patient id")
        problems.extend(row_problems)
        if row_problems:
            bad_lines.add(line)
        else:
            meta = {c: row.get(c) for c in extra_columns}
            parsed.append((line, rid, file, label, patient, meta))
    if problems:
        raise DataValidationError(
            f"{p}: {len(bad_lines)} of {len(rows)} rows are unusable:\n" + _listing(problems),
            hint=(
                f"Fix or remove these rows. Paths are resolved against the CSV's folder "
                f"({base}); labels must be one of the classes."
            ),
        )

    if label_column and classes is None:
        classes = _sort_labels(label for *_, label, _, _ in parsed if label)  # type: ignore[misc]
    records: list[Record] = []
    for line, rid, file, label, patient, meta in parsed:
        target: int | None = None
        if label is not None and classes is not None:
            target = classes.index(label) if label in classes else int(label)
        meta = {**meta, "path": rid, "line": line}
        records.append(make_record(rid, str(file.resolve()), target, patient_id=patient, meta=meta))
    info: dict[str, Any] = {
        "format": "image_csv",
        "csv": str(p.resolve()),
        "columns": header,
        "patient_column": patient_column if has_patient else None,
        "n_patients": len({r["patient_id"] for r in records}),
    }
    if classes is not None and label_column:
        counts = Counter(r["target"] for r in records)
        info["counts"] = {c: counts.get(i, 0) for i, c in enumerate(classes)}
    return LoadedData(records=records, classes=classes, source=str(p), info=info)


# --- many inputs -----------------------------------------------------------------------------


def _expand(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[str, Path | None]]:
    """(source, file) pairs; folders expand to their image files, missing paths give None."""
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found = False
            for f in sorted(p.rglob("*")):
                rel = PurePosixPath(f.relative_to(p).as_posix())
                if f.is_file() and not _is_hidden(rel) and is_image_file(f):
                    found = True
                    yield str(f), f
            if not found:
                yield str(p), None
        else:
            yield str(p), p if p.is_file() else None


def check_inputs(
    paths: Iterable[str | os.PathLike[str]], **load_options: Any
) -> tuple[list[tuple[str, np.ndarray]], list[BadInput]]:
    """Load every image in ``paths``, collecting every failure instead of stopping.

    Args:
        paths: image files and/or folders (expanded recursively to their image files,
            skipping hidden ones).
        **load_options: passed to :func:`load_image` (``window``, ``color``).

    Returns:
        ``(good, bad)``: ``good`` holds ``(source, image)`` pairs with ``(C, H, W)`` float32
        images; ``bad`` one :class:`~medlearn.training.learner.BadInput` per unusable input
        (missing file, empty folder, unreadable or invalid image), in input order.

    Raises:
        ConfigError: unknown or invalid ``load_options``.
        MissingDependencyError: a decoder library is not installed.
    """
    options = check_load_options(load_options)
    good: list[tuple[str, np.ndarray]] = []
    bad: list[BadInput] = []
    for source, file in _expand(paths):
        if file is None:
            what = "folder holds no image files" if Path(source).is_dir() else "no such file"
            bad.append(BadInput(source, f"{source}: {what}."))
            continue
        try:
            good.append((source, load_image(file, **options)))
        except (DataValidationError, DataNotFoundError) as exc:
            bad.append(BadInput(source, str(exc)))
        except (ConfigError, ImportError):
            raise
        except Exception as exc:  # a decoder bug must not stop the batch
            bad.append(
                BadInput(source, f"{source}: unexpected {type(exc).__name__} while reading.")
            )
    return good, bad


# --- dispatch --------------------------------------------------------------------------------


def read_imaging(path: str | os.PathLike[str], **options: Any) -> LoadedData:
    """The imaging domain's reader (``READERS.get("imaging")``): dispatch on ``path``.

    - a folder → :func:`read_image_folder`
    - ``.npz`` → :func:`read_medmnist_npz`
    - ``.csv`` → :func:`read_image_csv`

    Args:
        path: the dataset file or folder.
        **options: the chosen reader's keyword arguments (e.g. ``classes``,
            ``label_column``), plus :func:`load_image` options (``window``, ``color``),
            which are validated and stored in ``info["load_options"]`` for whoever loads
            the images.

    Raises:
        DataNotFoundError: ``path`` does not exist.
        DataValidationError: an unsupported file type, or the chosen reader's errors.
        ConfigError: an option the chosen reader does not accept (the accepted ones listed).
    """
    p = Path(path)
    if not p.exists():
        raise DataNotFoundError(
            f"{p}: no such file or folder.",
            hint="Give a .npz file, a CSV manifest (path,label) or a folder of class folders.",
        )
    load_options = check_load_options({k: options.pop(k) for k in LOAD_OPTIONS if k in options})
    suffix = file_suffix(p)
    if p.is_dir():
        fn: Any = read_image_folder
        what = "image folders"
    elif suffix == ".npz":
        fn, what = read_medmnist_npz, ".npz files"
    elif suffix == ".csv":
        fn, what = read_image_csv, "CSV manifests"
    else:
        raise DataValidationError(
            f"{p}: the imaging reader reads a MedMNIST-style .npz file, a CSV manifest or a "
            f"folder of class subfolders; got a '{suffix or '(no extension)'}' file.",
            hint=(
                "List images in a CSV with 'path' and 'label' columns, or lay them out as "
                "<folder>/<class>/<image>; single images go to `medlearn predict`."
            ),
        )
    check_params(fn, options, what=f"the imaging reader for {what}", reserved=("path", "csv_path"))
    data = fn(p, **options)
    if load_options:
        data.info["load_options"] = load_options
    return data


READERS.add(
    "imaging",
    read_imaging,
    domain="imaging",
    check_inputs=check_inputs,
    extensions=IMAGE_EXTENSIONS,
)

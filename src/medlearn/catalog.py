"""Named datasets: where they come from, how to check them and how to load them.

A :class:`DatasetSpec` records a dataset's official source (URL and checksums), the path it
has inside a local data directory, its classes, licence and citation, and which registered
reader (:data:`medlearn.registry.READERS`) turns the file into records. Specs live in
:data:`medlearn.registry.DATASETS`; domain packages register theirs when imported (the
imaging package registers the MedMNIST sets), so this module never imports a domain.

Where a dataset is looked for, in order:

1. ``$MEDLEARN_DATA_DIR/<relpath>`` when ``MEDLEARN_DATA_DIR`` is set (a shared, read-only
   data directory laid out like ``../shared/data``);
2. ``$MEDLEARN_CACHE_DIR/<relpath>`` (default ``~/.cache/medlearn/<relpath>``);
3. otherwise it is downloaded from ``spec.url`` into the cache directory.

Every file is checked against the spec's checksums before it is used; a file matching any
listed digest is accepted. Verified files are remembered by ``(path, size, mtime)`` for the
life of the process, so repeated calls do not hash the file again.

Example:
    >>> from medlearn import catalog
    >>> data = catalog.load("pneumoniamnist")          # doctest: +SKIP
    >>> len(data.records), data.classes                 # doctest: +SKIP
    (5030, ['normal', 'pneumonia'])
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import numbers
import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from medlearn.errors import ChecksumError, ConfigError, DataNotFoundError, DataValidationError
from medlearn.registry import DATASETS, READERS

if TYPE_CHECKING:
    from medlearn.data import LoadedData

__all__ = [
    "CACHE_ENV",
    "DATA_ENV",
    "DatasetSpec",
    "cache_dir",
    "check_file",
    "data_dir",
    "fetch",
    "get_spec",
    "info",
    "load",
    "locate",
    "register",
    "resolve",
]

#: Environment variable naming a local data directory laid out like ``../shared/data``.
DATA_ENV = "MEDLEARN_DATA_DIR"
#: Environment variable naming the download cache (default ``~/.cache/medlearn``).
CACHE_ENV = "MEDLEARN_CACHE_DIR"

_ALGORITHMS: dict[str, int] = {"sha256": 64, "md5": 32}  # name -> hex digest length
StatusKind = Literal["verified", "found", "checksum mismatch", "missing"]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetSpec:
    """Everything medlearn knows about one named dataset.

    Args:
        name: the catalog name (``"pneumoniamnist"``), lower-case.
        domain: the domain package that reads it (``"imaging"``).
        task: the task kind of its labels (``"binary"``, ``"multiclass"``, ...).
        relpath: the file's path inside a data directory, POSIX style
            (``"medmnist/pneumoniamnist.npz"``); also its path inside the cache directory.
        url: the official download URL, or ``None`` when it cannot be downloaded.
        checksums: accepted hex digests per algorithm, ``{"sha256": [...], "md5": [...]}``.
            A file is accepted when any listed digest matches. Empty: not verified.
        size_bytes: size of the official file in bytes, when known (informational).
        classes: class names; index ``i`` is label ``i``.
        description: one paragraph for ``medlearn data info``.
        license: the data licence (``"CC BY 4.0"``).
        citation: how to cite it.
        reader: the :data:`~medlearn.registry.READERS` name that loads the file.
        reader_options: keyword arguments always passed to the reader.
        notes: anything a user should know (e.g. how a local copy differs from the official
            release, or that it is not in the shared data directory).

    Raises:
        ConfigError: if a field is malformed (unknown checksum algorithm, absolute
            ``relpath``, empty class name ...).
    """

    name: str
    domain: str
    task: str
    relpath: str
    url: str | None
    checksums: Mapping[str, Sequence[str]]
    size_bytes: int | None = None
    classes: Sequence[str] = ()
    description: str = ""
    license: str = ""
    citation: str = ""
    reader: str = ""
    reader_options: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        where = f"DatasetSpec {self.name!r}"
        if not self.name or self.name != self.name.strip():
            raise ConfigError(f"A DatasetSpec needs a non-empty name. Got {self.name!r}.")
        rel = PurePosixPath(self.relpath)
        if not self.relpath or rel.is_absolute() or ".." in rel.parts or "\\" in self.relpath:
            raise ConfigError(
                f"The 'relpath' of {where} must be a relative POSIX path inside a data "
                f"directory. Got {self.relpath!r}.",
                hint="For example 'medmnist/pneumoniamnist.npz'.",
            )
        checksums: dict[str, tuple[str, ...]] = {}
        for algo, digests in dict(self.checksums).items():
            if algo not in _ALGORITHMS:
                raise ConfigError(
                    f"The 'checksums' of {where} use an unknown algorithm {algo!r}. "
                    f"Allowed: {', '.join(_ALGORITHMS)}."
                )
            values = (digests,) if isinstance(digests, str) else tuple(digests)
            for d in values:
                if len(d) != _ALGORITHMS[algo] or any(c not in "0123456789abcdefABCDEF" for c in d):
                    raise ConfigError(
                        f"The {algo} checksums of {where} must be {_ALGORITHMS[algo]} hex "
                        f"characters. Got {d!r}."
                    )
            checksums[algo] = tuple(d.lower() for d in values)
        classes = tuple(self.classes)
        if any(not isinstance(c, str) or not c for c in classes):
            raise ConfigError(f"The 'classes' of {where} must be non-empty strings.")
        if len(set(classes)) != len(classes):
            raise ConfigError(f"The 'classes' of {where} repeat a name.")
        if self.size_bytes is not None and self.size_bytes < 0:
            raise ConfigError(f"The 'size_bytes' of {where} must be >= 0 or None.")
        object.__setattr__(self, "checksums", checksums)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "reader_options", dict(self.reader_options))

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain JSON-able values (lists instead of tuples)."""
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        out["checksums"] = {k: list(v) for k, v in self.checksums.items()}
        return out


# --- registry helpers ------------------------------------------------------------------------


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`~medlearn.registry.DATASETS` (meta: domain, task) and return it.

    Raises:
        ConfigError: if a dataset with that name is already registered.
    """
    DATASETS.add(spec.name, spec, domain=spec.domain, task=spec.task)
    return spec


def get_spec(name: str) -> DatasetSpec:
    """The registered :class:`DatasetSpec` called ``name``.

    Raises:
        UnknownComponentError: with did-you-mean suggestions if ``name`` is not registered.
    """
    spec = DATASETS.get(name)
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(
            f"The dataset entry {name!r} is a {type(spec).__name__}, not a DatasetSpec.",
            hint="Register datasets with medlearn.catalog.register(DatasetSpec(...)).",
        )
    return spec


# --- directories -----------------------------------------------------------------------------


def data_dir() -> Path | None:
    """The local data directory from ``$MEDLEARN_DATA_DIR``, or ``None`` when unset."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The download cache: ``$MEDLEARN_CACHE_DIR`` or ``~/.cache/medlearn``."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "medlearn"


def _candidates(spec: DatasetSpec) -> list[tuple[str, Path]]:
    """(where, path) pairs in lookup order."""
    out: list[tuple[str, Path]] = []
    local = data_dir()
    if local is not None:
        out.append((DATA_ENV, local / spec.relpath))
    out.append(("cache", cache_dir() / spec.relpath))
    return out


def locate(name: str) -> Path | None:
    """The local copy of ``name`` (data directory first, then cache), without checking or
    downloading it; ``None`` when there is none."""
    spec = get_spec(name)
    for _, path in _candidates(spec):
        if path.is_file():
            return path
    return None


# --- checksums -------------------------------------------------------------------------------

#: (resolved path, size, mtime_ns) -> {algorithm: hex digest}
_DIGESTS: dict[tuple[str, int, int], dict[str, str]] = {}
_DIGESTS_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _digests(path: Path, algorithms: Sequence[str]) -> dict[str, str]:
    """Hex digests of ``path`` for ``algorithms``, memoised by (path, size, mtime)."""
    key = _file_key(path)
    with _DIGESTS_LOCK:
        known = dict(_DIGESTS.get(key, {}))
    missing = [a for a in algorithms if a not in known]
    if missing:
        hashers = {a: hashlib.new(a) for a in missing}
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                for h in hashers.values():
                    h.update(chunk)
        known.update({a: h.hexdigest() for a, h in hashers.items()})
        with _DIGESTS_LOCK:
            _DIGESTS[key] = known
    return {a: known[a] for a in algorithms}


def _match(spec: DatasetSpec, got: Mapping[str, str]) -> bool:
    return any(got.get(algo) in digests for algo, digests in spec.checksums.items())


def _mismatch_error(what: str, spec: DatasetSpec, got: Mapping[str, str]) -> ChecksumError:
    expected = "; ".join(
        f"{algo} one of [{', '.join(d)}]" for algo, d in spec.checksums.items() if d
    )
    observed = ", ".join(f"{algo} {d}" for algo, d in got.items())
    return ChecksumError(
        f"{what}: checksum mismatch for dataset {spec.name!r}. Expected {expected}; "
        f"got {observed}.",
        hint=(
            "The file is corrupt, incomplete or a different version. Delete it and run "
            f"`medlearn data fetch {spec.name}`, or point {DATA_ENV} at a verified copy."
        ),
    )


def check_file(path: str | os.PathLike[str], spec: DatasetSpec) -> None:
    """Check ``path`` against ``spec.checksums``; a spec without checksums accepts any file.

    Results are memoised by (path, size, mtime), so checking an unchanged file again is free.

    Raises:
        DataNotFoundError: if ``path`` is not a file.
        ChecksumError: naming the file, the expected digests and the digests found.
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(
            f"{p}: no such file (dataset {spec.name!r}).",
            hint=f"Run `medlearn data fetch {spec.name}`.",
        )
    algorithms = [a for a, d in spec.checksums.items() if d]
    if not algorithms:
        return
    got = _digests(p, algorithms)
    if not _match(spec, got):
        raise _mismatch_error(str(p), spec, got)


# --- resolve / download ----------------------------------------------------------------------


def _not_found(spec: DatasetSpec, tried: list[str], reason: str = "") -> DataNotFoundError:
    where = "; ".join(tried)
    env_note = "" if data_dir() is not None else f" ({DATA_ENV} is not set)"
    return DataNotFoundError(
        f"Dataset {spec.name!r} was not found{env_note}. Tried: {where}.{reason}",
        hint=(
            f"Set {DATA_ENV} to a data directory holding {spec.relpath}, "
            f"or run `medlearn data fetch {spec.name}`."
        ),
    )


def _download(spec: DatasetSpec, url: str, target: Path, *, progress: bool) -> None:
    """Stream ``url`` into ``target`` via a temp file + rename, verifying on the way.

    A download that fails or does not match the spec's checksums leaves nothing behind.
    """
    from tqdm.auto import tqdm

    algorithms = [a for a, d in spec.checksums.items() if d]
    hashers = {a: hashlib.new(a) for a in algorithms}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as exc:
        raise DataNotFoundError(
            f"Dataset {spec.name!r} cannot be downloaded: the cache folder {target.parent} "
            f"is not writable ({type(exc).__name__}).",
            hint=f"Set {CACHE_ENV} to a writable folder, or {DATA_ENV} to a data directory.",
        ) from exc
    tmp = Path(tmp_name)
    try:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "medlearn"})
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(request, timeout=60) as response,
            ):
                length = response.headers.get("Content-Length") if response.headers else None
                with tqdm(
                    total=int(length) if length and length.isdigit() else spec.size_bytes,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=spec.name,
                    disable=None if progress else True,
                    leave=False,
                ) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        for h in hashers.values():
                            h.update(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise DataNotFoundError(
                f"Dataset {spec.name!r} could not be downloaded from {url}: {reason}.",
                hint=(
                    "Check the network connection, or download the file yourself and set "
                    f"{DATA_ENV} to a directory holding {spec.relpath}."
                ),
            ) from exc
        got = {a: h.hexdigest() for a, h in hashers.items()}
        if algorithms and not _match(spec, got):
            raise _mismatch_error(f"{url} (download deleted)", spec, got)
        os.replace(tmp, target)
        with _DIGESTS_LOCK:
            _DIGESTS[_file_key(target)] = got
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def resolve(name: str, *, download: bool = True, progress: bool = True) -> Path:
    """The verified local file of dataset ``name``, downloading it if needed.

    Looks in ``$MEDLEARN_DATA_DIR/<relpath>``, then the cache directory, then downloads
    ``spec.url`` into the cache directory (with a progress bar when ``progress`` and stderr
    is a terminal).

    Args:
        name: a catalog name (``medlearn data list``).
        download: whether a missing file may be downloaded.
        progress: whether to show a download progress bar.

    Returns:
        The path of a file whose checksum matches the spec.

    Raises:
        UnknownComponentError: ``name`` is not a registered dataset.
        DataNotFoundError: no local copy exists and downloading is off or failed; the
            message lists every path tried.
        ChecksumError: the local or downloaded file does not match the spec.
    """
    spec = get_spec(name)
    tried: list[str] = []
    for where, path in _candidates(spec):
        if path.is_file():
            check_file(path, spec)
            return path
        tried.append(f"{where}: {path}" if where == DATA_ENV else f"cache: {path}")
    target = cache_dir() / spec.relpath
    if not download:
        raise _not_found(spec, tried, " Downloading was not allowed.")
    if not spec.url:
        raise _not_found(spec, tried, " It has no public download URL.")
    _download(spec, spec.url, target, progress=progress)
    return target


def fetch(name: str, *, progress: bool = True) -> Path:
    """Make dataset ``name`` available locally (download and verify if needed).

    Same as ``resolve(name, download=True)``; returns the verified path.
    """
    return resolve(name, download=True, progress=progress)


def info(name: str, *, verify: bool = True) -> dict[str, Any]:
    """All spec fields of ``name`` plus where it is available locally.

    Args:
        name: a catalog name.
        verify: hash the local file (memoised) to report ``verified`` or ``checksum
            mismatch``; without it a local file is reported as ``found``.

    Returns:
        The :class:`DatasetSpec` fields, plus ``local_path`` (``str`` or ``None``), ``status``
        (``"verified"``, ``"found"``, ``"checksum mismatch"`` or ``"missing"``) and
        ``looked_in`` (the paths checked, in order).
    """
    spec = get_spec(name)
    out = spec.to_dict()
    local = locate(name)
    status: StatusKind = "missing"
    if local is not None:
        status = "found"
        if verify:
            try:
                check_file(local, spec)
                status = "verified"
            except ChecksumError:
                status = "checksum mismatch"
    out["local_path"] = str(local) if local is not None else None
    out["status"] = status
    out["looked_in"] = [str(p) for _, p in _candidates(spec)]
    return out


def load(name: str, *, download: bool = True, **options: Any) -> LoadedData:
    """Resolve dataset ``name`` and read it with its registered reader.

    Args:
        name: a catalog name.
        download: whether a missing file may be downloaded.
        **options: reader options; they override ``spec.reader_options``.

    Returns:
        The reader's :class:`~medlearn.data.LoadedData` with ``classes`` taken from the spec
        and ``source`` set to the dataset name.

    Raises:
        UnknownComponentError, DataNotFoundError, ChecksumError: see :func:`resolve`.
        DataValidationError: the file does not hold what the spec describes.
    """
    spec = get_spec(name)
    path = resolve(name, download=download)
    reader = READERS.get(spec.reader)
    data = reader(path, **{**spec.reader_options, **options})
    if spec.classes:
        _check_targets(data, spec, path)
        data.classes = list(spec.classes)
    data.source = name
    return data


def _check_targets(data: LoadedData, spec: DatasetSpec, path: Path) -> None:
    """Refuse integer targets outside ``range(len(spec.classes))``."""
    n = len(spec.classes)
    bad = 0
    for rec in data.records:
        target = rec["target"]
        values = target if isinstance(target, (list, tuple)) else [target]
        if spec.task == "multilabel":
            bad += int(len(values) != n)
            continue
        for v in values:
            if isinstance(v, numbers.Integral) and not isinstance(v, bool) and not 0 <= v < n:
                bad += 1
    if bad:
        raise DataValidationError(
            f"{path}: {bad} records have labels outside the {n} classes of dataset "
            f"{spec.name!r} ({', '.join(spec.classes)}).",
            hint="The file does not match its catalog entry; fetch it again.",
        )

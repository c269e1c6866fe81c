"""The FastAPI application: prediction, FHIR, CDS Hooks, registry, audit, metrics, web page.

Build it with :func:`create_app`; ``medlearn serve`` runs it under uvicorn. Security is on by
default: every ``/v1`` and ``/cds-services`` endpoint needs an API key (``Authorization:
Bearer mlk_...``) of an allowed role, and every such request — refused ones included — gets
one audit row, committed before the response leaves. Logs carry key ids, model names,
status codes and latencies only, never inputs, file names or patient references.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import io
import json
import logging
import math
import os
import re
import secrets
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from medlearn.errors import MedlearnError
from medlearn.serving.audit import AuditEntry, AuditLog, export_rows, verify_chain
from medlearn.serving.auth import KeyStore, Principal
from medlearn.serving.batching import MicroBatcher
from medlearn.serving.monitor import DriftMonitor, ShadowRunner
from medlearn.serving.store import ModelRegistry, VersionInfo, make_engine, migrate

__all__ = ["ServeSettings", "create_app"]

log = logging.getLogger("medlearn.serving")
_WEB = Path(__file__).parent / "web"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz")
_AUDITED = ("/v1/", "/cds-services")
_LOOKUP_TTL = 2.0
#: Uploads a learner can decode from memory (its ``read_input_bytes`` hook); DICOM and
#: NIfTI are spooled to a file and read with ``read_inputs``.
_MEMORY_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Requests whose uploads total at most this many bytes are decoded on the event loop (a
#: 28-px PNG takes ~0.1 ms); larger ones in a worker thread.
_INLINE_BYTES = 64 * 1024
_SWITCH_INTERVAL = 0.0005  # seconds; see ServeSettings.tune_process


@dataclass
class ServeSettings:
    """Server options (``medlearn serve`` flags map onto these).

    Attributes:
        db_url: the serving database URL (SQLite file or PostgreSQL).
        auth: require API keys. ``False`` is for local development only and warns loudly.
        max_request_bytes: larger request bodies are refused with 413.
        max_files: most files in one multipart request (batch prediction).
        max_records: most JSON records in one request.
        max_image_side: largest accepted image side in pixels (checked before decoding).
        max_image_voxels: largest accepted image size in pixels/voxels (all dimensions).
        batch_max: most records per micro-batch.
        batch_wait_ms: how long a micro-batch waits for more requests.
        shadow: score requests with a model's ``shadow`` alias in the background.
        preload: load every model's ``production`` version at startup.
        tune_process: the process does nothing but serve (``medlearn serve`` sets it): after
            loading models, move every object into the garbage collector's permanent
            generation (otherwise a full collection of the ~600,000 objects torch and
            friends create stalls every request for half a second now and then) and let
            threads take turns on the GIL every 0.5 ms instead of 5 ms (the event loop
            waits less for the model's thread). Leave it off in shared processes (tests,
            notebooks).
    """

    db_url: str
    auth: bool = True
    max_request_bytes: int = 20 * 1024 * 1024
    max_files: int = 64
    max_records: int = 1000
    max_image_side: int = 4096
    max_image_voxels: int = 2**27
    batch_max: int = 64
    batch_wait_ms: float = 2.0
    shadow: bool = True
    preload: bool = True
    tune_process: bool = False


class RecordsIn(BaseModel):
    """JSON input for record (tabular) models: one dict of feature values per patient."""

    records: list[dict[str, Any]] = Field(..., min_length=1)


class AliasIn(BaseModel):
    """Body of an alias move."""

    version: str = Field(..., min_length=1, max_length=64)


@dataclass
class LoadedModel:
    """A loaded model version and its batcher."""

    info: VersionInfo
    learner: Any
    manifest: dict[str, Any]
    reference: dict[str, Any] | None
    batcher: MicroBatcher
    explain_lock: threading.Lock = field(default_factory=threading.Lock)


class ApiError(Exception):
    """An error answered as JSON ``{"error": {"code", "message", "hint", "details"}}``."""

    def __init__(
        self, status: int, message: str, *, hint: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.hint, self.details = status, message, hint, details


class Service:
    """Everything the routes share: database, registry, keys, audit, models, monitors."""

    def __init__(self, settings: ServeSettings) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.settings = settings
        self.engine = make_engine(settings.db_url)
        self.registry = ModelRegistry(self.engine)
        self.keys = KeyStore(self.engine)
        self.audit = AuditLog(self.engine)
        self.drift = DriftMonitor(self.engine)
        self.shadow = ShadowRunner(self.engine)
        self.ready = False
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._load_lock = threading.Lock()
        # Alias/version lookups are cached briefly so a prediction needs no database session;
        # moves through this server clear the cache at once, moves from another process
        # (``medlearn registry promote``) take effect within ``_LOOKUP_TTL`` seconds.
        self._lookups: dict[tuple[str, str, str | None], tuple[float, Any]] = {}
        # Request preparation (spool, header check, decode) runs in worker threads; a few
        # are enough, and more only fight over the GIL with the model's batch thread.
        self.prep_limiter = anyio.CapacityLimiter(4)
        self.spool = Path(tempfile.mkdtemp(prefix="medlearn-spool-", dir=_spool_base()))
        self.metrics = CollectorRegistry()
        self.m_requests = Counter(
            "medlearn_requests_total",
            "Requests by endpoint and status.",
            ["endpoint", "status"],
            registry=self.metrics,
        )
        self.m_latency = Histogram(
            "medlearn_request_latency_seconds",
            "Request latency.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.metrics,
        )
        self.m_predictions = Counter(
            "medlearn_predictions_total",
            "Predicted inputs by model version.",
            ["model", "version"],
            registry=self.metrics,
        )
        self.m_batch = Histogram(
            "medlearn_batch_size",
            "Records per micro-batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.metrics,
        )
        self.m_psi = Gauge(
            "medlearn_input_drift_psi",
            "Population stability index of live inputs vs the training reference.",
            ["model", "version", "feature"],
            registry=self.metrics,
        )
        self.m_ks = Gauge(
            "medlearn_input_drift_ks",
            "Kolmogorov-Smirnov statistic (binned) of live inputs vs the training reference.",
            ["model", "version", "feature"],
            registry=self.metrics,
        )
        self.m_shadow = Gauge(
            "medlearn_shadow_agreement_ratio",
            "Share of shadow-scored inputs where the candidate's label equals production's.",
            registry=self.metrics,
        )

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        migrate(self.engine)
        self.audit.start()
        if self.settings.preload:
            for name in self.registry.names():
                if "production" in self.registry.aliases(name):
                    try:
                        self.model(self.registry.resolve(name, "production"))
                    except MedlearnError as exc:
                        log.error("model %s could not be loaded: %s", name, exc.message)
        if self.settings.tune_process:
            sys.setswitchinterval(_SWITCH_INTERVAL)
            gc.collect()
            gc.freeze()
        self.ready = True

    def resolve(self, name: str, ref: str | None = None) -> VersionInfo:
        """:meth:`ModelRegistry.resolve`, cached for ``_LOOKUP_TTL`` seconds."""
        return self._cached(("resolve", name, ref), lambda: self.registry.resolve(name, ref))

    def aliases(self, name: str) -> dict[str, str]:
        """:meth:`ModelRegistry.aliases`, cached for ``_LOOKUP_TTL`` seconds."""
        return self._cached(("aliases", name, None), lambda: self.registry.aliases(name))

    def _cached(self, key: tuple[str, str, str | None], fn: Callable[[], Any]) -> Any:
        now = time.monotonic()
        hit = self._lookups.get(key)
        if hit is not None and now - hit[0] < _LOOKUP_TTL:
            return hit[1]
        value = fn()
        if len(self._lookups) > 10_000:
            self._lookups.clear()
        self._lookups[key] = (now, value)
        return value

    def resolved(self, name: str, ref: str | None) -> LoadedModel | None:
        """The loaded model for a fresh cached lookup, without touching the database."""
        hit = self._lookups.get(("resolve", name, ref))
        if hit is None or time.monotonic() - hit[0] >= _LOOKUP_TTL:
            return None
        return self._models.get((hit[1].name, hit[1].version))

    def forget_lookups(self) -> None:
        """Drop cached alias/version lookups (after a registry change)."""
        self._lookups.clear()

    def stop(self) -> None:
        self.ready = False
        for m in list(self._models.values()):
            m.batcher.close()
        self.shadow.close()
        self.drift.flush()
        self.audit.stop()
        self.engine.dispose()
        shutil.rmtree(self.spool, ignore_errors=True)

    # -- models -----------------------------------------------------------------------------
    def model(self, info: VersionInfo) -> LoadedModel:
        """The loaded model of a registered version (checksums verified on first load)."""
        key = (info.name, info.version)
        hit = self._models.get(key)
        if hit is not None:
            return hit
        with self._load_lock:
            hit = self._models.get(key)
            if hit is not None:
                return hit
            from medlearn.pipeline import load_learner

            root = self.registry.verified_bundle(info)
            learner, manifest = load_learner(root)
            reference = None
            ref_name = manifest.get("drift_reference")
            if ref_name and (root / ref_name).is_file():
                reference = json.loads((root / ref_name).read_text())
            loaded = LoadedModel(
                info=info,
                learner=learner,
                manifest=manifest,
                reference=reference,
                batcher=MicroBatcher(
                    self._batch_fn(info, learner, manifest, reference),
                    max_batch=self.settings.batch_max,
                    max_wait_ms=self.settings.batch_wait_ms,
                    name=f"{info.name}-{info.version}",
                ),
            )
            self._models[key] = loaded
            if self.settings.tune_process:
                gc.freeze()  # the new model's objects too (see ServeSettings.tune_process)
            return loaded

    def _batch_fn(
        self, info: VersionInfo, learner: Any, manifest: dict[str, Any], reference: Any
    ) -> Callable[[Sequence[Any]], list[dict[str, Any]]]:
        from medlearn.pipeline import predict_records

        # One output folder per model, reused by every batch (batches of a model run one at a
        # time in its batcher thread); files written there are inlined and removed.
        out = Path(tempfile.mkdtemp(prefix="medlearn-out-", dir=self.spool))

        def fn(records: Sequence[Any]) -> list[dict[str, Any]]:
            try:
                rows = predict_records(learner, manifest, list(records), output_dir=out)
                if any(out.iterdir()):
                    rows = [_inline_files(r, out) for r in rows]
            finally:
                for child in list(out.iterdir()):
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            self.m_batch.observe(len(records))
            self.m_predictions.labels(info.name, info.version).inc(len(records))
            self.drift.observe(info.name, info.version, reference, [r["input"] for r in records])
            return rows

        return fn


# --- helpers ---------------------------------------------------------------------------------


def _inline_files(row: dict[str, Any], out: Path) -> dict[str, Any]:
    """Replace paths of files written under ``out`` by their base64 content."""
    for k, v in list(row.items()):
        if isinstance(v, str) and v.startswith(str(out)) and Path(v).is_file():
            row[k] = {
                "filename": Path(v).name,
                "base64": base64.b64encode(Path(v).read_bytes()).decode(),
            }
    return row


def _uncertainty(row: dict[str, Any]) -> dict[str, Any] | None:
    probs = row.get("probabilities")
    if not isinstance(probs, dict) or len(probs) < 2:
        return None
    ps = [min(max(float(p), 1e-12), 1.0) for p in probs.values()]
    entropy = -sum(p * math.log(p) for p in ps) / math.log(len(ps))
    return {
        "entropy": round(entropy, 4),
        "method": "normalised predictive entropy of the calibrated probabilities "
        "(0 = certain, 1 = uniform)",
    }


def _summary(rows: Sequence[dict[str, Any]]) -> str:
    out = []
    for r in rows[:50]:
        item: dict[str, Any] = {"prediction": r.get("prediction")}
        probs = r.get("probabilities")
        if isinstance(probs, dict) and r.get("prediction") in probs:
            item["p"] = round(float(probs[r["prediction"]]), 3)
        out.append(item)
    return json.dumps({"n": len(rows), "rows": out}, separators=(",", ":"), default=str)[:2000]


def _safe_suffix(filename: str) -> str | None:
    low = (filename or "").lower()
    for suf in sorted(_IMAGE_SUFFIXES, key=len, reverse=True):
        if low.endswith(suf):
            return suf
    return None


def _sniff_suffix(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if len(data) > 132 and data[128:132] == b"DICM":
        return ".dcm"
    if data[:2] == b"\x1f\x8b":
        return ".nii.gz"
    if len(data) >= 348 and data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return ".nii"
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR chunk (always the first chunk), else ``None``."""
    if len(data) >= 24 and data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _check_dimensions(
    path: Path | None, suffix: str, settings: ServeSettings, data: bytes | None = None
) -> str | None:
    """Image size from the header, before any pixel is decoded; a message when too large.

    ``path`` is a spooled file; without one, ``data`` (a PNG, JPEG or TIFF upload in memory)
    is checked: a PNG's size is read straight from its IHDR chunk, others through Pillow.
    """
    try:
        size = _png_size(data) if path is None and data is not None else None
        if size is not None:
            shape: tuple[int, ...] = tuple(size)
        elif suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(io.BytesIO(data) if path is None else path) as im:
                shape = tuple(im.size)
        elif suffix == ".dcm":
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            shape = (int(ds.Rows), int(ds.Columns), int(getattr(ds, "NumberOfFrames", 1) or 1))
        else:
            import nibabel

            shape = tuple(int(s) for s in nibabel.load(str(path)).shape)
    except Exception as exc:  # noqa: BLE001 - any unreadable header is a bad input
        return f"not a readable image ({type(exc).__name__})"
    if not shape or min(shape) <= 0:
        return "the image is empty"
    if max(shape[:2]) > settings.max_image_side:
        return f"image side {max(shape[:2])} px exceeds the limit of {settings.max_image_side} px"
    if math.prod(shape) > settings.max_image_voxels:
        return (
            f"image has {math.prod(shape)} pixels/voxels; the limit is {settings.max_image_voxels}"
        )
    return None


def _spool_base() -> str | None:
    """Where uploads are spooled: ``$MEDLEARN_SPOOL``, else ``/dev/shm`` (memory: uploads
    never reach a disk, and writing them costs no disk I/O), else the system temp folder."""
    env = os.environ.get("MEDLEARN_SPOOL")
    if env:
        return env
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


class _Scratch:
    """A request's scratch files in the server's spool folder, removed by :meth:`cleanup`.

    Files get a random token in their names, so requests never collide; a folder is made only
    when one is needed (explanations, the CSV fallback), as creating and removing folders
    costs milliseconds on some file systems.
    """

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self._token: str | None = None
        self.files: list[Path] = []
        self._dir: Path | None = None

    @property
    def token(self) -> str:
        if self._token is None:  # drawn on first use: most requests never touch the spool
            self._token = secrets.token_hex(8)
        return self._token

    def file(self, stem: str, suffix: str) -> Path:
        p = self.spool / f"{stem}_{self.token}{suffix}"
        self.files.append(p)
        return p

    def dir(self) -> Path:
        if self._dir is None:
            self._dir = self.spool / f"req_{self.token}"
            self._dir.mkdir(mode=0o700)
        return self._dir

    @property
    def has_dir(self) -> bool:
        return self._dir is not None

    @property
    def used(self) -> bool:
        return bool(self.files) or self._dir is not None

    def cleanup(self) -> None:
        for p in self.files:
            with contextlib.suppress(OSError):
                os.unlink(p)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def _decodes_in_memory(uploads: Sequence[tuple[str, bytes]], learner: Any) -> bool:
    """Whether every upload is a format ``learner`` can decode from memory."""
    if not hasattr(learner, "read_input_bytes"):
        return False
    return all(
        (_safe_suffix(name) or _sniff_suffix(data)) in _MEMORY_SUFFIXES for name, data in uploads
    )


def _prepare_uploads(
    uploads: Sequence[tuple[str, bytes]], scratch: _Scratch, learner: Any, settings: ServeSettings
) -> tuple[list[dict[str, str]], dict[str, str], list[Any]]:
    """Check the uploads' headers, then read them with the learner.

    PNG/JPEG/TIFF uploads are decoded from memory when the learner has a
    ``read_input_bytes`` hook (nothing touches the disk); otherwise every upload is spooled
    to ``scratch`` and read with ``read_inputs``. Either way a record's id is
    ``upload_<i><suffix>`` (or its spooled path), which the caller maps back to the client's
    file name.

    Returns ``(bad, names, records)``: every unusable file as ``{"input": "file[i]", "error"}``
    (nothing is decoded when any file is bad), the record id → client file name map, and
    the records.
    """
    in_memory = _decodes_in_memory(uploads, learner)
    bad: list[dict[str, str]] = []
    names: dict[str, str] = {}
    sources: list[str] = []
    items: list[tuple[str, bytes]] = []
    for i, (filename, data) in enumerate(uploads):
        label = f"file[{i}]"
        suffix = _safe_suffix(filename) or _sniff_suffix(data)
        if suffix is None:
            bad.append({"input": label, "error": "unsupported file type"})
            continue
        name = f"upload_{i:03d}{suffix}"
        if in_memory:
            source = name
            problem = _check_dimensions(None, suffix, settings, data)
        else:
            p = scratch.file(f"upload_{i:03d}", suffix)
            p.write_bytes(data)
            source = str(p)
            problem = _check_dimensions(p, suffix, settings)
        if problem:
            bad.append({"input": label, "error": problem})
            continue
        names[source] = names[name] = filename or label
        if not in_memory:
            names[Path(source).name] = filename or label
        sources.append(source)
        items.append((name, data))
    if bad or not sources:
        return bad, names, []
    if in_memory:
        records, bad_inputs = learner.read_input_bytes(items)
    else:
        records, bad_inputs = learner.read_inputs(sources)
    for b in bad_inputs:
        src = Path(b.source).name
        label = f"file[{int(src[7:10])}]" if src.startswith("upload_") else "file"
        msg = b.message.replace(str(b.source), label).replace(src, label)
        bad.append({"input": label, "error": msg})
    return bad, names, records


_DISPOSITION = re.compile(rb'form-data; name="([^"\\\r\n]*)"(?:; filename="([^"\\\r\n]*)")?')


def _field_text(raw: bytes) -> str:
    """A header parameter's bytes as text, as Starlette decodes it (UTF-8, else Latin-1)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _plain_parts(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes | None, bytes]] | None:
    """The parts of a plainly laid-out multipart body, or ``None`` to use the full parser.

    "Plain" is what browsers, curl, httpx and requests send: the body opens with the
    boundary line, every part has a ``Content-Disposition: form-data; name="..."[;
    filename="..."]`` header without escapes, and the closing delimiter ends the body.
    Anything else (preamble, odd spacing, quoted escapes, RFC 2231 names, broken framing)
    returns ``None``, and python-multipart parses it (or refuses it) instead.
    """
    opening = b"--" + boundary + b"\r\n"
    if not body.startswith(opening):
        return None
    delimiter = b"\r\n--" + boundary
    pos, parts = len(opening), []
    while True:
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return None
        disposition = None
        for line in body[pos:head_end].split(b"\r\n"):
            key, sep, value = line.partition(b":")
            if not sep or key != key.strip():
                return None
            if key.lower() == b"content-disposition":
                disposition = value.strip()
        match = _DISPOSITION.fullmatch(disposition) if disposition is not None else None
        if match is None:
            return None
        end = body.find(delimiter, head_end + 4)
        if end < 0:
            return None
        parts.append((match[1], match[2], body[head_end + 4 : end]))
        pos = end + len(delimiter)
        if body[pos : pos + 2] == b"--":
            return parts if body[pos + 2 :] in (b"", b"\r\n") else None
        if body[pos : pos + 2] != b"\r\n":
            return None
        pos += 2


class _MultipartFiles:
    """The parts of a multipart body already in memory, with Starlette's form limits.

    Plain bodies (:func:`_plain_parts`) are split directly; any other body goes through
    python-multipart, the parser behind Starlette's ``request.form()``. Either way parts stay
    ``bytes``: no temporary file per upload and no worker-thread hop to fill it.
    """

    def __init__(self, *, max_files: int, max_fields: int, max_part_size: int) -> None:
        self.max_files, self.max_fields, self.max_part_size = max_files, max_fields, max_part_size
        self.parts: list[tuple[str, str | None, bytes]] = []
        self._files = self._fields = 0
        self._header_name = self._header_value = b""
        self._disposition = b""
        self._data: list[bytes] = []

    def parse(
        self, body: bytes, content_type: str, *, plain: bool = True
    ) -> list[tuple[str, str | None, bytes]]:
        """``(field name, file name or None, bytes)`` per part. Raises ValueError if malformed.

        ``plain=False`` always uses python-multipart (tests compare the two).
        """
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise ValueError("Missing boundary in multipart.")
        found = _plain_parts(body, boundary) if plain else None
        if found is not None:
            for name, filename, data in found:
                self._add(name, filename, data)
            return self.parts
        self._parse_full(body, boundary)
        return self.parts

    def _parse_full(self, body: bytes, boundary: bytes) -> None:
        from python_multipart import MultipartParser

        callbacks = {
            "on_part_begin": self._begin,
            "on_part_data": self._part_data,
            "on_part_end": self._end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_val,
            "on_header_end": self._header_end,
        }
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        try:
            parser.write(body)
            parser.finalize()
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - python-multipart's FormParserError family
            raise ValueError("Invalid multipart data.") from exc

    def _add(self, name: bytes, filename: bytes | None, data: bytes) -> None:
        if filename is not None:
            self._files += 1
            if self._files > self.max_files:
                raise ValueError(f"Too many files. Maximum number of files is {self.max_files}.")
        else:
            self._fields += 1
            if self._fields > self.max_fields:
                raise ValueError(f"Too many fields. Maximum number of fields is {self.max_fields}.")
            if len(data) > self.max_part_size:
                raise ValueError(
                    f"Part exceeded maximum size of {int(self.max_part_size / 1024)}KB."
                )
        text = None if filename is None else _field_text(filename)
        self.parts.append((_field_text(name), text, data))

    def _begin(self) -> None:
        self._disposition, self._data = b"", []

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_val(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data.append(data[start:end])

    def _end(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise ValueError('The Content-Disposition header field "name" must be provided.')
        self._add(options[b"name"], options.get(b"filename"), b"".join(self._data))


def _records_from_rows(
    learner: Any, rows: list[dict[str, Any]], scratch: _Scratch
) -> tuple[list, list]:
    """Feature dicts → records: the learner's ``records_from_rows`` hook, else a temp CSV."""
    if hasattr(learner, "records_from_rows"):
        return learner.records_from_rows(rows)
    import pandas as pd

    csv = scratch.dir() / "records.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return learner.read_inputs([str(csv)])


_FORMAT = re.compile(r"^(json|fhir)$")
_PATIENT = re.compile(r"^Patient/[A-Za-z0-9\-\.]{1,64}$")
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


def _predict_query(request: Request) -> tuple[str | None, bool, str, str | None]:
    """``(version, explain, format, patient)`` from the predict query, validated.

    Raises:
        ApiError: 422 naming the parameter when a value is not allowed.
    """
    q = request.query_params
    explain_text = q.get("explain")
    if explain_text is None:
        explain = False
    elif explain_text.lower() in _TRUE:
        explain = True
    elif explain_text.lower() in _FALSE:
        explain = False
    else:
        raise ApiError(422, "Query parameter 'explain' must be true or false.")
    fmt = q.get("format", "json")
    if not _FORMAT.fullmatch(fmt):
        raise ApiError(422, "Query parameter 'format' must be 'json' or 'fhir'.")
    patient = q.get("patient")
    if patient is not None and not _PATIENT.fullmatch(patient):
        raise ApiError(
            422,
            "Query parameter 'patient' must be a FHIR reference 'Patient/<id>' "
            "(letters, digits, '-' and '.'; at most 64).",
        )
    return q.get("version"), explain, fmt, patient


def _json_error(status: int, message: str, hint: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": status, "message": message}
    if hint:
        body["hint"] = hint
    return JSONResponse({"error": body}, status_code=status)


@dataclass
class _DirectRoute:
    """A FastAPI route the audit middleware calls directly (see :class:`_AuditMiddleware`)."""

    method: str
    route: Any
    handler: Callable[..., Any]


class _AuditMiddleware:
    """Pure ASGI middleware: body-size limits, one audit row per audited request, metrics.

    An audited request's response messages are held back until its audit row is committed
    (group commit); if the audit log cannot be written the client gets 503 instead, so no
    answer ever leaves without its row. A plain ASGI middleware (rather than
    ``@app.middleware``) avoids a task group and a memory stream per request.

    ``direct`` routes (the predict route) are called from here without FastAPI's router,
    dependency solving and exception middleware, which would cost more than the rest of a
    small prediction's request handling; their handlers answer errors themselves.
    """

    def __init__(
        self, app: Any, *, svc: Service, settings: ServeSettings, direct: list[_DirectRoute]
    ) -> None:
        self.app, self.svc, self.settings, self.direct = app, svc, settings, direct

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        audited = path.startswith(_AUDITED)
        scope.setdefault("state", {})["audit"] = {}
        held: list[dict[str, Any]] = []
        status = [500]
        auth_off = not self.settings.auth

        async def hold(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                if auth_off:
                    headers = list(message.get("headers", []))
                    headers.append((b"x-medlearn-auth", b"disabled"))
                    message = {**message, "headers": headers}
            if audited:
                held.append(message)
            else:
                await send(message)

        refusal = self._size_refusal(scope, method)
        try:
            if refusal is not None:
                await refusal(scope, receive, hold)
            elif (hit := self._direct(scope, method, path)) is not None:
                await hit.handler(scope, receive, hold)
            else:
                await self.app(scope, receive, hold)
        except Exception:
            if audited:  # the failure is audited too, then handled by the server
                await self._audit(scope, method, path, 500, time.perf_counter() - t0)
            raise
        latency = time.perf_counter() - t0
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or ("static" if not audited else path[:64])
        if audited:
            ok = await self._audit(scope, method, path, status[0], latency)
            if not ok:
                status[0] = 503
                held = []
                await _json_error(503, "The audit log is unavailable.")(scope, receive, send)
            for message in held:
                await send(message)
        self.svc.m_requests.labels(endpoint, str(status[0])).inc()
        self.svc.m_latency.labels(endpoint).observe(latency)

    def _direct(self, scope: dict[str, Any], method: str, path: str) -> _DirectRoute | None:
        for d in self.direct:
            if method == d.method and (match := d.route.path_regex.match(path)) is not None:
                scope["route"] = d.route
                scope["path_params"] = match.groupdict()
                return d
        return None

    def _size_refusal(self, scope: dict[str, Any], method: str) -> JSONResponse | None:
        if method not in ("POST", "PUT", "PATCH"):
            return None
        length = None
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                length = v.decode("latin-1")
                break
        if length is None or not length.isdigit():
            return _json_error(411, "A Content-Length header is required.")
        if int(length) > self.settings.max_request_bytes:
            return _json_error(
                413,
                f"Request body of {length} bytes exceeds the limit of "
                f"{self.settings.max_request_bytes} bytes.",
                "Send fewer or smaller files per request.",
            )
        return None

    async def _audit(
        self, scope: dict[str, Any], method: str, path: str, status: int, latency: float
    ) -> bool:
        a = scope["state"].get("audit", {})
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or path[:64]
        entry = AuditEntry(
            key_id=a.get("key_id", "-"),
            endpoint=f"{method} {endpoint}",
            model_name=a.get("model", ""),
            model_version=a.get("version", ""),
            input_sha256=a.get("input_sha256", ""),
            output_summary=a.get("summary", ""),
            latency_ms=latency * 1000.0,
            status=status,
        )
        try:
            await self.svc.audit.commit(entry)
        except Exception:  # noqa: BLE001 - no answer without its audit row
            log.exception("audit write failed; answering 503")
            return False
        return True


# --- the app -----------------------------------------------------------------------------------


def create_app(settings: ServeSettings) -> FastAPI:
    """Build the FastAPI app (migrates the database and loads production models on startup).

    Args:
        settings: see :class:`ServeSettings`.

    Example:
        >>> app = create_app(ServeSettings(db_url="sqlite:///medlearn.db"))  # doctest: +SKIP
    """
    svc = Service(settings)
    if not settings.auth:
        log.warning(
            "AUTHENTICATION IS DISABLED (--dev-no-auth): anyone who can reach this server can "
            "predict, read the audit log and change the registry. Never use this with real data."
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(svc.start)
        try:
            yield
        finally:
            await run_in_threadpool(svc.stop)

    app = FastAPI(
        title="medlearn decision-support service",
        version=_version(),
        description=(
            "Predictions from registered medlearn model bundles, as JSON, FHIR R4 "
            "RiskAssessment or CDS Hooks cards. Every /v1 and /cds-services call needs "
            "`Authorization: Bearer <API key>` and is written to a hash-chained audit log. "
            "Decision support only; not a medical device."
        ),
        lifespan=lifespan,
    )
    app.state.service = svc
    bearer = HTTPBearer(auto_error=False, description="An API key from `medlearn keys create`.")

    # -- errors -----------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"code": exc.status, "message": exc.message}
        if exc.hint:
            body["hint"] = exc.hint
        if exc.details is not None:
            body["details"] = exc.details
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": body}, status_code=exc.status, headers=headers)

    @app.exception_handler(MedlearnError)
    async def _ml_error(_req: Request, exc: MedlearnError) -> JSONResponse:
        from medlearn.errors import DataNotFoundError

        status = 404 if isinstance(exc, DataNotFoundError) else 422
        if type(exc).__name__ in ("ChecksumError", "CheckpointError"):
            status = 503
        body = {"code": status, "message": exc.message, "hint": exc.hint}
        return JSONResponse({"error": body}, status_code=status)

    # -- middleware: size limit, audit, metrics ----------------------------------------------
    direct: list[_DirectRoute] = []  # filled below, once the predict route exists
    app.add_middleware(_AuditMiddleware, svc=svc, settings=settings, direct=direct)

    # -- auth -------------------------------------------------------------------------------
    def authorize(
        request: Request, scheme: str, credentials: str, roles: tuple[str, ...]
    ) -> Principal:
        """The request's principal if its key is valid and its role is one of ``roles``."""
        if not settings.auth:
            principal = Principal(key_id="dev-no-auth", role="admin")
            request.state.audit["key_id"] = principal.key_id
            return principal
        if not scheme or not credentials or scheme.lower() != "bearer":
            raise ApiError(
                401,
                "Missing API key.",
                hint="Send `Authorization: Bearer <key>`; create one with "
                "`medlearn keys create --role clinician`.",
            )
        principal = svc.keys.check(credentials)
        if principal is None:
            raise ApiError(401, "Invalid or revoked API key.")
        request.state.audit["key_id"] = principal.key_id
        if principal.role not in roles:
            raise ApiError(
                403,
                f"Role {principal.role!r} may not use this endpoint (allowed: {', '.join(roles)}).",
            )
        return principal

    def require(*roles: str) -> Callable[..., Principal]:
        def dep(
            request: Request,
            creds: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        ) -> Principal:
            if creds is None:
                return authorize(request, "", "", roles)
            return authorize(request, creds.scheme, creds.credentials, roles)

        return dep

    def authorize_header(request: Request, roles: tuple[str, ...]) -> Principal:
        """:func:`authorize` from the Authorization header, without a FastAPI dependency."""
        scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
        return authorize(request, scheme, credentials, roles)

    any_role = require("clinician", "admin", "auditor")
    predictor = require("clinician", "admin")
    admin = require("admin")
    auditor = require("auditor", "admin")

    # -- health and metrics -----------------------------------------------------------------
    @app.get("/healthz", tags=["ops"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: database reachable, models loaded")
    def readyz() -> JSONResponse:
        import sqlalchemy as sa

        try:
            with svc.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            db_ok = True
        except Exception:  # noqa: BLE001
            db_ok = False
        ok = db_ok and svc.ready
        body = {
            "status": "ready" if ok else "not ready",
            "database": db_ok,
            "models_loaded": [f"{n}:{v}" for n, v in svc._models],
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (no patient data)")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        for (name, version), doc in svc.drift.scores().items():
            for feat, s in doc["features"].items():
                if not math.isnan(s["psi"]):
                    svc.m_psi.labels(name, version, feat).set(s["psi"])
                if not math.isnan(s["ks"]):
                    svc.m_ks.labels(name, version, feat).set(s["ks"])
        if svc.shadow.compared:
            svc.m_shadow.set(svc.shadow.agreed / svc.shadow.compared)
        return Response(generate_latest(svc.metrics), media_type=CONTENT_TYPE_LATEST)

    # -- models -----------------------------------------------------------------------------
    @app.get("/v1/me", tags=["auth"], summary="The calling key's id and role")
    def me(p: Principal = Depends(any_role)) -> dict[str, str]:  # noqa: B008
        return {"key_id": p.key_id, "role": p.role}

    @app.get("/v1/models", tags=["models"], summary="Registered models, versions and aliases")
    def list_models(_p: Principal = Depends(any_role)) -> dict[str, Any]:  # noqa: B008
        out = []
        for name in svc.registry.names():
            versions = svc.registry.list(name)
            out.append(
                {
                    "name": name,
                    "versions": [v.version for v in versions],
                    "aliases": svc.registry.aliases(name),
                    "task": versions[-1].task,
                    "domain": versions[-1].domain,
                }
            )
        return {"models": out}

    def _resolve(name: str, version: str | None, request: Request) -> LoadedModel:
        ref = version
        if "@" in name:
            name, ref = name.split("@", 1)
        info = svc.resolve(name, ref)
        request.state.audit.update(model=info.name, version=info.version)
        return svc.model(info)

    async def _aresolve(name: str, version: str | None, request: Request) -> LoadedModel:
        """:func:`_resolve` inline when cached and loaded, else in a worker thread."""
        ref = version
        base = name
        if "@" in name:
            base, ref = name.split("@", 1)
        hit = svc.resolved(base, ref)
        if hit is not None:
            request.state.audit.update(model=hit.info.name, version=hit.info.version)
            return hit
        return await run_in_threadpool(_resolve, name, version, request)

    @app.get("/v1/models/{name}", tags=["models"], summary="A model version's card and schema")
    async def model_card(
        name: str,
        request: Request,
        version: str | None = Query(None, description="A version or alias (default production)"),
        _p: Principal = Depends(any_role),  # noqa: B008
    ) -> dict[str, Any]:
        m = await run_in_threadpool(_resolve, name, version, request)
        man = m.manifest
        return {
            "name": m.info.name,
            "version": m.info.version,
            "aliases": svc.registry.aliases(m.info.name),
            "task": man.get("task"),
            "domain": man.get("domain"),
            "classes": man.get("classes"),
            "threshold": man.get("threshold"),
            "input": man.get("input"),
            "explain": man.get("explain"),
            "calibration": (man.get("calibration") or {}).get("method")
            if isinstance(man.get("calibration"), dict)
            else man.get("calibration"),
            "metrics": man.get("metrics"),
            "model_card": man.get("model_card"),
            "created": man.get("created"),
        }

    predict_body = {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "One or more images (PNG, JPEG, TIFF, DICOM, "
                                "NIfTI); several files make a batch.",
                            }
                        },
                        "required": ["file"],
                    }
                },
                "application/json": {"schema": RecordsIn.model_json_schema()},
            },
        }
    }

    async def _read_uploads(
        m: LoadedModel, request: Request, ctype: str, scratch: _Scratch
    ) -> tuple[dict[str, str], list[Any]]:
        """Multipart files → records (and the record id → client file name map)."""
        body = await request.body()
        try:
            parts = _MultipartFiles(
                max_files=settings.max_files,
                max_fields=20,
                max_part_size=settings.max_request_bytes,
            ).parse(body, ctype)
        except ValueError as exc:
            raise ApiError(400, f"Malformed multipart body: {exc}") from None
        uploads = [
            (fname or "", data)
            for field, fname, data in parts
            if field == "file" and fname is not None
        ]
        if not uploads:
            raise ApiError(
                422,
                "No file in the form field 'file'.",
                hint="Send the image as multipart form field 'file' (curl -F file=@image.png).",
            )
        digest = hashlib.sha256()
        for _, data in uploads:
            digest.update(hashlib.sha256(data).digest())
        request.state.audit["input_sha256"] = digest.hexdigest()
        args = (uploads, scratch, m.learner, settings)
        if sum(len(d) for _, d in uploads) <= _INLINE_BYTES and _decodes_in_memory(
            uploads, m.learner
        ):
            bad, names, records = _prepare_uploads(*args)  # small images: no thread hop
        else:  # spooling, header checks and decoding in one worker-thread hop
            bad, names, records = await anyio.to_thread.run_sync(
                _prepare_uploads, *args, limiter=svc.prep_limiter
            )
        if bad:
            raise ApiError(
                422,
                f"{len(bad)} of {len(uploads)} file(s) could not be used.",
                hint="Fix or drop the listed files and send the request again.",
                details=bad,
            )
        return names, records

    async def _read_records(m: LoadedModel, request: Request, scratch: _Scratch) -> list[Any]:
        """A JSON ``{"records": [...]}`` body → records."""
        try:
            body = RecordsIn.model_validate_json(await request.body())
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError
            raise ApiError(
                422,
                "The body must be multipart with field 'file', or JSON "
                '{"records": [{feature: value, ...}]}.',
                details=str(exc)[:500],
            ) from None
        canon = json.dumps(body.records, sort_keys=True, separators=(",", ":"))
        request.state.audit["input_sha256"] = hashlib.sha256(canon.encode()).hexdigest()
        if (m.manifest.get("input") or {}).get("kind") == "image":
            raise ApiError(
                415,
                f"Model {m.info.name!r} takes images, not JSON records.",
                hint="Upload the image as multipart form field 'file'.",
            )
        if len(body.records) > settings.max_records:
            raise ApiError(
                413,
                f"{len(body.records)} records exceed the limit of "
                f"{settings.max_records} per request.",
            )
        records, bad_inputs = await run_in_threadpool(
            _records_from_rows, m.learner, body.records, scratch
        )
        if bad_inputs:
            raise ApiError(
                422,
                f"{len(bad_inputs)} record(s) could not be used.",
                details=[{"input": b.source, "error": b.message} for b in bad_inputs],
            )
        return records

    async def _predict_rows(
        m: LoadedModel, request: Request, explain: bool
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        ctype = request.headers.get("content-type", "")
        scratch = _Scratch(svc.spool)
        try:
            names: dict[str, str] = {}
            if ctype.startswith("multipart/form-data"):
                names, records = await _read_uploads(m, request, ctype, scratch)
            else:
                records = await _read_records(m, request, scratch)
            if explain:
                rows = await run_in_threadpool(_explain_rows, m, records, scratch.dir())
            else:
                rows = await m.batcher.run(records)
            for r in rows:
                src = str(r.get("input", ""))
                name = names.get(src)
                r["input"] = name if name is not None else names.get(Path(src).name, src)
        finally:
            if scratch.has_dir:
                await run_in_threadpool(scratch.cleanup)
            elif scratch.used:
                scratch.cleanup()  # unlinking a few spooled files
        return rows, records

    def _explain_rows(m: LoadedModel, records: list[Any], tmp: Path) -> list[dict[str, Any]]:
        from medlearn.pipeline import predict_records

        exp_dir, out_dir = tmp / "explain", tmp / "out"
        with m.explain_lock:
            rows = predict_records(
                m.learner, m.manifest, records, explain_dir=exp_dir, output_dir=out_dir
            )
        svc.m_predictions.labels(m.info.name, m.info.version).inc(len(records))
        svc.drift.observe(m.info.name, m.info.version, m.reference, [r["input"] for r in records])
        for r in rows:
            _inline_files(r, out_dir)
            exp = r.get("explanation")
            if isinstance(exp, str) and Path(exp).is_file():
                r["explanation"] = {
                    "method": (m.manifest.get("explain") or {}).get("method", "explanation"),
                    "media_type": "image/png",
                    "base64": base64.b64encode(Path(exp).read_bytes()).decode(),
                }
        return rows

    def _finish(m: LoadedModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows:
            r["model"] = {"name": m.info.name, "version": m.info.version}
            unc = _uncertainty(r)
            if unc is not None:
                r["uncertainty"] = unc
            if isinstance(r.get("probabilities"), dict):
                r["calibration"] = _calibration_name(m.manifest)
        return rows

    def _shadow(m: LoadedModel, records: list[Any], rows: list[dict[str, Any]]) -> None:
        if not settings.shadow:
            return
        cand = svc.aliases(m.info.name).get("shadow")
        if not cand or cand == m.info.version:
            return

        def score() -> list[dict[str, Any]]:
            cm = svc.model(svc.resolve(m.info.name, cand))
            from medlearn.pipeline import predict_records

            return predict_records(cm.learner, cm.manifest, records)

        svc.shadow.submit(m.info.name, m.info.version, cand, score, rows)

    predict_params = [
        {
            "name": "version",
            "in": "query",
            "required": False,
            "description": "A version or alias (default production)",
            "schema": {"type": "string"},
        },
        {
            "name": "explain",
            "in": "query",
            "required": False,
            "description": "Add the explanation (Grad-CAM PNG, SHAP)",
            "schema": {"type": "boolean", "default": False},
        },
        {
            "name": "format",
            "in": "query",
            "required": False,
            "description": "json or fhir",
            "schema": {"type": "string", "pattern": _FORMAT.pattern, "default": "json"},
        },
        {
            "name": "patient",
            "in": "query",
            "required": False,
            "description": "FHIR subject reference for format=fhir (never logged)",
            "schema": {"type": "string", "pattern": _PATIENT.pattern},
        },
    ]

    # The hottest route takes its query and key by hand rather than through FastAPI
    # dependencies (a third of a millisecond per request); the schema above documents them.
    @app.post(
        "/v1/models/{name}/predict",
        tags=["predict"],
        summary="Predict one or more inputs (images as multipart 'file', or JSON records)",
        openapi_extra={
            **predict_body,
            "parameters": predict_params,
            "security": [{"HTTPBearer": []}],
        },
        responses={
            401: {"description": "Missing or invalid API key"},
            403: {"description": "Role may not predict"},
            404: {"description": "Unknown model, version or alias"},
            413: {"description": "Request too large"},
            415: {"description": "Wrong input kind for this model"},
            422: {"description": "Invalid input (every bad item listed)"},
        },
    )
    async def predict(name: str, request: Request) -> Response:
        return await predict_response(name, request)

    async def predict_direct(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """:func:`predict` without FastAPI's routing (errors answered as its handlers do)."""
        request = Request(scope, receive)
        try:
            response = await predict_response(scope["path_params"]["name"], request)
        except ApiError as exc:
            response = await _api_error(request, exc)
        except MedlearnError as exc:
            response = await _ml_error(request, exc)
        await response(scope, receive, send)

    route = next(r for r in app.router.routes if getattr(r, "endpoint", None) is predict)
    direct.append(_DirectRoute("POST", route, predict_direct))

    async def predict_response(name: str, request: Request) -> Response:
        authorize_header(request, ("clinician", "admin"))
        version, explain, format, patient = _predict_query(request)
        m = await _aresolve(name, version, request)
        rows, records = await _predict_rows(m, request, explain)
        rows = _finish(m, rows)
        request.state.audit["summary"] = _summary(rows)
        _shadow(m, records, rows)
        if format == "fhir":
            from medlearn.serving.fhir import to_fhir

            doc = await run_in_threadpool(
                lambda: to_fhir(
                    rows,
                    name=m.info.name,
                    version=m.info.version,
                    manifest=m.manifest,
                    patient=patient,
                )
            )
            return JSONResponse(doc, media_type="application/fhir+json")
        return JSONResponse(
            {"model": {"name": m.info.name, "version": m.info.version}, "predictions": rows}
        )

    # -- CDS Hooks --------------------------------------------------------------------------
    @app.get("/cds-services", tags=["cds-hooks"], summary="CDS Hooks discovery")
    def cds_discovery(_p: Principal = Depends(predictor)) -> dict[str, Any]:  # noqa: B008
        from medlearn.serving.cds import service_entry

        services = []
        for name in svc.registry.names():
            try:
                m = svc.model(svc.registry.resolve(name))
            except MedlearnError:
                continue
            if (m.manifest.get("input") or {}).get("kind", "image") != "image":
                services.append(service_entry(name, m.info.version, m.manifest))
        return {"services": services}

    @app.post("/cds-services/{service_id}", tags=["cds-hooks"], summary="patient-view cards")
    async def cds_call(
        service_id: str,
        request: Request,
        hook: dict[str, Any],
        _p: Principal = Depends(predictor),  # noqa: B008
    ) -> dict[str, Any]:
        from medlearn.serving.cds import card_for, features_from_prefetch, input_features

        if hook.get("hook") != "patient-view":
            raise ApiError(400, "Only the patient-view hook is supported.")
        m = await run_in_threadpool(_resolve, service_id, None, request)
        if (m.manifest.get("input") or {}).get("kind", "image") == "image":
            raise ApiError(404, f"Model {service_id!r} takes images; it is not a CDS service.")
        prefetch = hook.get("prefetch") or {}
        if not isinstance(prefetch, dict):
            raise ApiError(400, "prefetch must be an object.")
        row = features_from_prefetch(prefetch, input_features(m.manifest))
        canon = json.dumps(row, sort_keys=True, default=str)
        request.state.audit["input_sha256"] = hashlib.sha256(canon.encode()).hexdigest()
        if not row:
            return {
                "cards": [
                    {
                        "summary": f"{service_id}: no model inputs found for this patient",
                        "indicator": "info",
                        "source": {"label": f"medlearn {service_id}"},
                    }
                ]
            }
        scratch = _Scratch(svc.spool)
        try:
            records, bad = await run_in_threadpool(_records_from_rows, m.learner, [row], scratch)
        finally:
            await run_in_threadpool(scratch.cleanup)
        if bad or not records:
            raise ApiError(422, "The patient's data could not be used by the model.")
        rows = _finish(m, await m.batcher.run(records))
        request.state.audit["summary"] = _summary(rows)
        return {"cards": [card_for(rows[0], name=m.info.name, version=m.info.version)]}

    # -- registry (admin) -------------------------------------------------------------------
    @app.get("/v1/registry", tags=["registry"], summary="Every registered version")
    def registry_list(_p: Principal = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        return {"versions": [v.__dict__ for v in svc.registry.list()]}

    @app.put("/v1/registry/{name}/aliases/{alias}", tags=["registry"], summary="Move an alias")
    def registry_promote(
        name: str,
        alias: str,
        body: AliasIn,
        request: Request,
        _p: Principal = Depends(admin),  # noqa: B008
    ) -> dict[str, Any]:
        request.state.audit.update(model=name, version=body.version)
        previous = svc.registry.promote(name, body.version, alias=alias)
        svc.forget_lookups()
        return {"name": name, "alias": alias, "version": body.version, "previous": previous}

    @app.post("/v1/registry/{name}/rollback", tags=["registry"], summary="Roll an alias back")
    def registry_rollback(
        name: str,
        request: Request,
        alias: str = Query("production", max_length=64),
        _p: Principal = Depends(admin),  # noqa: B008
    ) -> dict[str, Any]:
        version = svc.registry.rollback(name, alias=alias)
        svc.forget_lookups()
        request.state.audit.update(model=name, version=version)
        return {"name": name, "alias": alias, "version": version}

    @app.get("/v1/registry/verify", tags=["registry"], summary="Re-check every bundle sha256")
    def registry_verify(_p: Principal = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        results = [
            {"name": v.name, "version": v.version, "ok": p is None, "problem": p}
            for v, p in svc.registry.verify()
        ]
        return {"ok": all(r["ok"] for r in results), "versions": results}

    # -- audit (auditor) --------------------------------------------------------------------
    @app.get("/v1/audit", tags=["audit"], summary="Audit rows (newest last)")
    def audit_rows(
        after: int = Query(0, ge=0, le=2**62, description="Only rows with seq > after"),
        limit: int = Query(100, ge=1, le=1000),
        _p: Principal = Depends(auditor),  # noqa: B008
    ) -> dict[str, Any]:
        rows = []
        for r in export_rows(svc.engine):
            if r["seq"] > after:
                rows.append(r)
                if len(rows) >= limit:
                    break
        return {"rows": rows}

    @app.get("/v1/audit/verify", tags=["audit"], summary="Verify the audit hash chain")
    def audit_verify(_p: Principal = Depends(auditor)) -> dict[str, Any]:  # noqa: B008
        rep = verify_chain(svc.engine)
        return {
            "ok": rep.ok,
            "rows": rep.rows,
            "first_bad_seq": rep.first_bad_seq,
            "problem": rep.problem,
        }

    # -- web page ---------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(_WEB / "index.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=_WEB), name="static")
    return app


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _calibration_name(manifest: dict[str, Any]) -> str:
    cal = manifest.get("calibration")
    if isinstance(cal, dict):
        return str(cal.get("method") or cal.get("name") or "calibrated")
    return str(cal) if cal else "none"


def _version() -> str:
    import medlearn

    return str(medlearn.__version__)

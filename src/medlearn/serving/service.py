"""What the routes share: the server settings, the loaded-model cache and the service object.

:class:`Service` owns the database engine, model registry, API keys, audit log, drift and shadow
monitors, Prometheus metrics and the loaded models (:class:`LoadedModel`, each with its
micro-batcher). :class:`ApiError` is the error every route answers as JSON.
"""

from __future__ import annotations

import base64
import gc
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from medlearn.errors import MedlearnError
from medlearn.serving.audit import AuditLog
from medlearn.serving.auth import KeyStore
from medlearn.serving.batching import GroupsFn, MicroBatcher
from medlearn.serving.monitor import DriftMonitor, ShadowRunner, load_reference
from medlearn.serving.store import ModelRegistry, VersionInfo, make_engine, migrate
from medlearn.serving.uploads import _spool_base

log = logging.getLogger("medlearn.serving")
_LOOKUP_TTL = 1.0
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
        model_process: predict each model's micro-batches in a child process of its own
            (:class:`~medlearn.serving.model_process.ModelProcess`), so the forward pass does
            not share the interpreter lock with the event loop (``medlearn serve`` sets it;
            explanations, shadow scoring and CDS Hooks still use the in-process model).
        model_processes: with ``model_process``, how many child processes each model gets
            (each with its own batch worker): while one answers a batch, the next batch is
            gathered and sent to another, so prediction can use more than one core.
        pin_cpus: with ``model_process``, give the model processes cores of their own: the
            n-th child of every model runs on the n-th last CPU this process may use, and
            this process's threads on the others (needs more CPUs than
            ``model_processes``; otherwise nothing is pinned). For a machine that does
            nothing but serve; on the 2-core VM it made no difference beyond the VM's own
            variation (docs/benchmarks.md).
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
    model_process: bool = False
    model_processes: int = 1
    pin_cpus: bool = False


@dataclass
class LoadedModel:
    """A loaded model version and its batcher."""

    info: VersionInfo
    learner: Any
    manifest: dict[str, Any]
    reference: dict[str, Any] | None
    batcher: MicroBatcher
    explain_lock: threading.Lock = field(default_factory=threading.Lock)
    #: the model's ModelProcess children with ``model_process``, else empty
    processes: list[Any] = field(default_factory=list)

    @property
    def process(self) -> Any:
        """The first model process, or None when the model predicts in this process."""
        return self.processes[0] if self.processes else None


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
        self._cpu_plan = (
            cpu_plan(settings.model_processes)
            if settings.model_process and settings.pin_cpus
            else None
        )
        # Alias/version lookups are cached briefly so a prediction needs no database session;
        # moves through this server clear the cache at once, moves from another process
        # (``medlearn registry promote``) take effect within 2 * ``_LOOKUP_TTL`` seconds.
        self._lookups: dict[tuple[str, str, str | None], tuple[float, Any]] = {}
        self._refreshing: set[tuple[str, str, str | None]] = set()
        self._refresh_lock = threading.Lock()
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medlearn-lookup")
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
        if self._cpu_plan is not None:
            from medlearn.serving.model_process import pin_process_threads

            pin_process_threads(self._cpu_plan[0])
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
        """``fn()`` cached under ``key`` for ``_LOOKUP_TTL`` seconds. In the next
        ``_LOOKUP_TTL`` seconds the value is still answered while one background refresh
        replaces it, so under steady traffic requests never wait for the database (a
        refresh that fails drops the value: the next request asks the database itself and
        gets its error); older values are looked up again before answering."""
        hit = self._lookups.get(key)
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age < _LOOKUP_TTL:
                return hit[1]
            if age < 2 * _LOOKUP_TTL:
                self._refresh(key, fn)
                return hit[1]
        return self._store(key, fn())

    def _store(self, key: tuple[str, str, str | None], value: Any) -> Any:
        if len(self._lookups) > 10_000:
            self._lookups.clear()
        self._lookups[key] = (time.monotonic(), value)
        return value

    def _refresh(self, key: tuple[str, str, str | None], fn: Callable[[], Any]) -> None:
        with self._refresh_lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def job() -> None:
            try:
                self._store(key, fn())
            except Exception:  # noqa: BLE001 - the next request asks the database itself
                self._lookups.pop(key, None)
            finally:
                with self._refresh_lock:
                    self._refreshing.discard(key)

        try:
            self._refresher.submit(job)
        except RuntimeError:  # shutting down
            with self._refresh_lock:
                self._refreshing.discard(key)

    def resolved(self, name: str, ref: str | None) -> LoadedModel | None:
        """The loaded model of a cached lookup, without touching the database (a stale
        lookup is refreshed in the background)."""
        key = ("resolve", name, ref)
        hit = self._lookups.get(key)
        if hit is None:
            return None
        age = time.monotonic() - hit[0]
        if age >= 2 * _LOOKUP_TTL:
            return None
        if age >= _LOOKUP_TTL:
            self._refresh(key, lambda: self.registry.resolve(name, ref))
        return self._models.get((hit[1].name, hit[1].version))

    def forget_lookups(self) -> None:
        """Drop cached alias/version lookups (after a registry change)."""
        self._lookups.clear()

    def stop(self) -> None:
        self.ready = False
        for m in list(self._models.values()):
            m.batcher.close()
            for process in m.processes:
                process.close()
        self._refresher.shutdown(wait=True)
        self.shadow.close()
        self.drift.close()
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
            processes = []
            if self.settings.model_process:
                import torch

                from medlearn.serving.model_process import ModelProcess

                plan = self._cpu_plan
                try:
                    for i in range(max(1, self.settings.model_processes)):
                        cpus = plan[1][i] if plan else None
                        processes.append(
                            ModelProcess(root, threads=torch.get_num_threads(), cpus=cpus)
                        )
                except Exception:
                    for process in processes:
                        process.close()
                    raise
            learner, manifest = load_learner(root)
            reference = load_reference(root, manifest)
            batching = {
                "max_batch": self.settings.batch_max,
                "max_wait_ms": self.settings.batch_wait_ms,
                "name": f"{info.name}-{info.version}",
            }
            if processes:
                batcher = MicroBatcher(
                    None,
                    groups_fn=[self._process_fn(info, reference, p) for p in processes],
                    **batching,
                )
            else:
                batcher = MicroBatcher(
                    self._batch_fn(info, learner, manifest, reference),
                    prepare=prepare_fn(learner),
                    **batching,
                )
            loaded = LoadedModel(
                info=info,
                learner=learner,
                manifest=manifest,
                reference=reference,
                batcher=batcher,
                processes=processes,
            )
            self._models[key] = loaded
            if self.settings.tune_process:
                gc.freeze()  # the new model's objects too (see ServeSettings.tune_process)
            return loaded

    def _batch_fn(
        self, info: VersionInfo, learner: Any, manifest: dict[str, Any], reference: Any
    ) -> Callable[[Sequence[Any]], list[dict[str, Any]]]:
        """The batcher's function predicting in this process."""
        from medlearn.pipeline import predict_records

        # One output folder per model, reused by every batch (batches of a model run one at a
        # time in its batcher thread); files written there are inlined and removed.
        out = Path(tempfile.mkdtemp(prefix="medlearn-out-", dir=self.spool))

        def fn(records: Sequence[Any]) -> list[dict[str, Any]]:
            try:
                rows = predict_records(learner, manifest, list(records), output_dir=out)
                rows = _inlined(rows, out)
            finally:
                _empty(out)
            self.m_batch.observe(len(records))
            self.m_predictions.labels(info.name, info.version).inc(len(records))
            self.drift.observe(info.name, info.version, reference, [r["input"] for r in records])
            return rows

        return fn

    def _process_fn(self, info: VersionInfo, reference: Any, process: Any) -> GroupsFn:
        """The batcher's whole-batch function for a model process: the child prepares,
        predicts and bins the batch; this thread inlines output files and counts."""
        out = Path(tempfile.mkdtemp(prefix="medlearn-out-", dir=self.spool))

        def groups_fn(groups: list[tuple[Sequence[Any], bool]]) -> list[Any]:
            try:
                outcomes, counts, n = process.answer(groups, out)
                outcomes = [
                    o if isinstance(o, BaseException) else _inlined(o, out) for o in outcomes
                ]
            finally:
                _empty(out)
            if n:
                self.m_batch.observe(n)
                self.m_predictions.labels(info.name, info.version).inc(n)
                self.drift.add(info.name, info.version, reference, counts, n)
            return outcomes

        return groups_fn


def cpu_plan(children: int) -> tuple[frozenset[int], list[frozenset[int]]] | None:
    """Cores for a pinned server: ``(server's CPUs, one CPU per model-process slot)``.

    The model-process slots take the last ``children`` CPUs this process may use, the server
    the rest; ``None`` (nothing pinned, with a warning) when that leaves the server none.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        log.warning("CPU pinning is not available on this system; nothing is pinned")
        return None
    if len(allowed) <= children:
        log.warning(
            "CPU pinning needs more CPUs (%d here) than model processes per model (%d); "
            "nothing is pinned",
            len(allowed),
            children,
        )
        return None
    slots = [frozenset({allowed[-1 - i]}) for i in range(children)]
    return frozenset(allowed[: len(allowed) - children]), slots


def bad_records_error(bad: Sequence[Any]) -> ApiError:
    """The 422 answer for JSON records that could not be used (every bad one listed)."""
    return ApiError(
        422,
        f"{len(bad)} record(s) could not be used.",
        details=[{"input": b.source, "error": b.message} for b in bad],
    )


def bad_uploads_error(bad: list[dict[str, str]], n_files: int) -> ApiError:
    """The 422 answer for uploaded files that could not be used (every bad one listed)."""
    return ApiError(
        422,
        f"{len(bad)} of {n_files} file(s) could not be used.",
        hint="Fix or drop the listed files and send the request again.",
        details=bad,
    )


def prepare_fn(learner: Any) -> Callable[[list[Sequence[Any]]], list[Any]] | None:
    """The micro-batcher's ``prepare`` for ``learner``: raw request inputs → records, per
    request, or the 422 that request gets.

    * JSON rows, for learners that check them in groups (``records_from_row_groups``): every
      request's rows become records in one table check per batch; a request with a bad row
      gets its own 422, rows numbered within it.
    * Uploaded files (an :class:`~medlearn.serving.uploads.UploadGroup`, whose types and
      headers the server checked), for learners that decode from memory
      (``read_input_bytes``): each request's files are decoded; bad files are listed as
      ``file[i]``.

    ``None`` for learners that take neither.
    """
    from medlearn.serving.uploads import UploadGroup

    rows_ok = hasattr(learner, "records_from_row_groups")
    bytes_ok = hasattr(learner, "read_input_bytes")
    if not rows_ok and not bytes_ok:
        return None

    def prepare(groups: list[Sequence[Any]]) -> list[Any]:
        out: list[Any] = [None] * len(groups)
        rows = [i for i, g in enumerate(groups) if not isinstance(g, UploadGroup)]
        for i, g in enumerate(groups):
            if isinstance(g, UploadGroup):
                out[i] = read_upload_group(learner, g) if bytes_ok else _no_raw("uploaded files")
        if rows:
            if not rows_ok:
                for i in rows:
                    out[i] = _no_raw("JSON rows")
            else:
                joint = learner.records_from_row_groups([groups[i] for i in rows])
                for i, (records, bad) in zip(rows, joint, strict=True):
                    out[i] = bad_records_error(bad) if bad else records
        return out

    return prepare


def read_upload_group(learner: Any, group: Sequence[tuple[str, bytes]]) -> Any:
    """A request's checked uploads decoded by ``learner.read_input_bytes``: its records, or
    the 422 listing every file that could not be used (as ``file[i]``)."""
    from medlearn.serving.uploads import _read_planned

    bad, records = _read_planned(learner, True, [n for n, _ in group], group)
    return bad_uploads_error(bad, len(group)) if bad else records


def _no_raw(what: str) -> ApiError:
    return ApiError(415, f"This model does not take {what}.")


def _inlined(rows: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """``rows`` with the files written under ``out`` inlined (base64)."""
    return [_inline_files(r, out) for r in rows] if any(out.iterdir()) else rows


def _empty(out: Path) -> None:
    for child in list(out.iterdir()):
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _inline_files(row: dict[str, Any], out: Path) -> dict[str, Any]:
    """Replace paths of files written under ``out`` by their base64 content."""
    for k, v in list(row.items()):
        if isinstance(v, str) and v.startswith(str(out)) and Path(v).is_file():
            row[k] = {
                "filename": Path(v).name,
                "base64": base64.b64encode(Path(v).read_bytes()).decode(),
            }
    return row

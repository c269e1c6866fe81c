"""The audit trail: one row per request, append-only, each row chained to the previous one.

Every row holds the time, the API key's public id, the endpoint, the model name and version,
the sha256 of the request's input, a short output summary (labels and rounded probabilities,
never inputs), the latency and the HTTP status, plus ``prev_hash`` (the previous row's hash)
and ``row_hash = sha256(prev_hash ‖ canonical JSON of the row)``. Editing, deleting or
reordering any row breaks the chain, which :func:`verify_chain` reports with the first bad
sequence number.

Rows are committed before the response is sent: :class:`AuditLog` groups the rows of
concurrent requests into one transaction (group commit) and each request waits for its own
row's commit, so a server killed at any moment has lost no row it answered for.
Appends are serialised within a process by a lock and across processes by a row lock on
PostgreSQL (``SELECT ... FOR UPDATE`` of the last row) or SQLite's single writer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import hashlib
import json
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from medlearn.serving.batching import Waiter, settle
from medlearn.serving.store import AuditRow

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditLog",
    "ChainReport",
    "export_rows",
    "row_hash",
    "verify_chain",
]

GENESIS = "0" * 64
_FIELDS = (
    "seq",
    "time",
    "key_id",
    "endpoint",
    "model_name",
    "model_version",
    "input_sha256",
    "output_summary",
    "latency_ms",
    "status",
)


@dataclass
class AuditEntry:
    """What a request contributes to the log (sequence number and hashes are added on append)."""

    key_id: str
    endpoint: str
    model_name: str = ""
    model_version: str = ""
    input_sha256: str = ""
    output_summary: str = ""
    latency_ms: float = 0.0
    status: int = 200
    time: str = ""


def row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """``sha256(prev_hash ‖ canonical JSON of the row's fields)``."""
    doc = {k: fields[k] for k in _FIELDS}
    doc["latency_ms"] = round(float(doc["latency_ms"]), 3)
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


@dataclass
class ChainReport:
    """Result of :func:`verify_chain`."""

    ok: bool
    rows: int
    first_bad_seq: int | None = None
    problem: str | None = None


def _fields(r: AuditRow) -> dict[str, Any]:
    return {k: getattr(r, k) for k in _FIELDS}


def verify_chain(engine: Engine) -> ChainReport:
    """Walk the log in sequence order and check every link and hash.

    Detects an edited row (its hash no longer matches), a deleted row (a gap in ``seq`` or a
    broken ``prev_hash`` link) and reordered rows (the links no longer follow ``seq``).
    """
    prev, expected_seq, n = GENESIS, 1, 0
    with Session(engine) as s:
        for r in s.scalars(sa.select(AuditRow).order_by(AuditRow.seq)).yield_per(1000):
            n += 1
            if r.seq != expected_seq:
                return ChainReport(False, n, r.seq, f"row {expected_seq} is missing")
            if r.prev_hash != prev:
                return ChainReport(
                    False, n, r.seq, "prev_hash does not match the previous row's hash"
                )
            if row_hash(prev, _fields(r)) != r.row_hash:
                return ChainReport(False, n, r.seq, "row content does not match its hash")
            prev, expected_seq = r.row_hash, expected_seq + 1
    return ChainReport(True, n)


def export_rows(engine: Engine) -> Iterator[dict[str, Any]]:
    """Every audit row as a dict, in sequence order."""
    with Session(engine) as s:
        for r in s.scalars(sa.select(AuditRow).order_by(AuditRow.seq)).yield_per(1000):
            yield {**_fields(r), "prev_hash": r.prev_hash, "row_hash": r.row_hash}


class AuditLog:
    """Appends chained rows, with group commit from a writer thread.

    Args:
        engine: the serving database.
        max_group: most rows committed in one transaction.
    """

    def __init__(self, engine: Engine, *, max_group: int = 256) -> None:
        self.engine = engine
        self.max_group = max_group
        self._queue: queue.Queue[tuple[AuditEntry, Waiter] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- synchronous append -----------------------------------------------------------------
    def append_many(self, entries: Sequence[AuditEntry]) -> list[int]:
        """Append and commit ``entries`` in one transaction; returns their sequence numbers."""
        if not entries:
            return []
        table = AuditRow.__table__
        with self._lock, self.engine.begin() as conn:
            last = conn.execute(
                sa.select(table.c.seq, table.c.row_hash)
                .order_by(table.c.seq.desc())
                .limit(1)
                .with_for_update()
            ).first()
            prev = last.row_hash if last else GENESIS
            seq = last.seq if last else 0
            seqs = []
            rows = []
            for e in entries:
                seq += 1
                fields = {
                    "seq": seq,
                    "time": e.time or datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                    "key_id": e.key_id[:32],
                    "endpoint": e.endpoint[:200],
                    "model_name": e.model_name[:128],
                    "model_version": e.model_version[:64],
                    "input_sha256": e.input_sha256,
                    "output_summary": e.output_summary,
                    "latency_ms": round(float(e.latency_ms), 3),
                    "status": int(e.status),
                }
                h = row_hash(prev, fields)
                rows.append({**fields, "prev_hash": prev, "row_hash": h})
                prev = h
                seqs.append(seq)
            conn.execute(sa.insert(table), rows)  # one executemany, no ORM unit of work
        return seqs

    def append(self, entry: AuditEntry) -> int:
        """Append one row and commit it (synchronously)."""
        return self.append_many([entry])[0]

    # -- group commit -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread used by :meth:`submit`."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="medlearn-audit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Commit what is queued and stop the writer thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)
        self._thread = None

    def submit(self, entry: AuditEntry) -> cf.Future[int]:
        """Queue a row; the future resolves to its sequence number once it is committed."""
        fut: cf.Future[int] = cf.Future()
        if self._thread is None:
            try:
                fut.set_result(self.append(entry))
            except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                fut.set_exception(exc)
            return fut
        self._queue.put((entry, fut))
        return fut

    async def commit(self, entry: AuditEntry) -> int:
        """Queue a row from a coroutine; returns its sequence number once it is committed.

        The writer commits the rows of concurrent requests in one transaction and wakes the
        event loop once per group.
        """
        if self._thread is None:
            return self.append(entry)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._queue.put((entry, (loop, fut)))
        return await fut

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                seqs = self.append_many([e for e, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                settle([(waiter, None, exc) for _, waiter in batch])
                continue
            settle([(waiter, seq, None) for (_, waiter), seq in zip(batch, seqs, strict=True)])

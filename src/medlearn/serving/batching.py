"""Dynamic micro-batching: concurrent requests for one model share one forward pass.

A :class:`MicroBatcher` owns one worker thread per model version. Requests submit their
records and get a future; the worker takes the first waiting request, then gathers more
for up to ``max_wait_ms`` (or until ``max_batch`` records), runs the model once on all of
them and hands each request its own rows. If a batch fails, its requests are retried one
by one, so one bad request never fails its neighbours.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MicroBatcher"]

PredictFn = Callable[[Sequence[Any]], list[dict[str, Any]]]


class MicroBatcher:
    """Group concurrent calls of ``fn`` (records → one row per record) into batches.

    Args:
        fn: the batch function; must return exactly one row per record, in order.
        max_batch: most records per call of ``fn``.
        max_wait_ms: how long the worker waits for more requests after the first one.
        name: thread name (for debugging).
    """

    def __init__(
        self, fn: PredictFn, *, max_batch: int = 64, max_wait_ms: float = 2.0, name: str = "batch"
    ) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: queue.Queue[tuple[Sequence[Any], cf.Future[list[dict[str, Any]]]] | None]
        self._queue = queue.Queue()
        self.batches = 0
        self.items = 0
        self._thread = threading.Thread(target=self._run, name=f"medlearn-{name}", daemon=True)
        self._thread.start()

    def submit(self, records: Sequence[Any]) -> cf.Future[list[dict[str, Any]]]:
        """Queue ``records``; the future resolves to their rows."""
        fut: cf.Future[list[dict[str, Any]]] = cf.Future()
        if not records:
            fut.set_result([])
            return fut
        self._queue.put((records, fut))
        return fut

    def close(self) -> None:
        """Finish queued work and stop the worker."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            n = len(item[0])
            deadline = time.monotonic() + self.max_wait
            stop = False
            while n < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                n += len(nxt[0])
            self._process(batch)
            if stop:
                return

    def _process(self, batch: list[tuple[Sequence[Any], cf.Future[list[dict[str, Any]]]]]) -> None:
        records = [r for recs, _ in batch for r in recs]
        try:
            rows = self.fn(records)
            if len(rows) != len(records):
                raise RuntimeError(f"batch function returned {len(rows)} rows for {len(records)}")
        except Exception as exc:  # noqa: BLE001 - isolate the failing request below
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            for item in batch:
                self._one(item)
            return
        self.batches += 1
        self.items += len(records)
        start = 0
        for recs, fut in batch:
            fut.set_result(rows[start : start + len(recs)])
            start += len(recs)

    def _one(self, item: tuple[Sequence[Any], cf.Future[list[dict[str, Any]]]]) -> None:
        recs, fut = item
        try:
            fut.set_result(self.fn(recs))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            fut.set_exception(exc)

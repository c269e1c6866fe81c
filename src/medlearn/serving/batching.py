"""Dynamic micro-batching: concurrent requests for one model share one forward pass.

A :class:`MicroBatcher` owns one worker thread per model version. Requests submit their
records and get a future; the worker takes the first waiting request, then gathers more
for up to ``max_wait_ms`` (or until ``max_batch`` records), runs the model once on all of
them and hands each request its own rows. If a batch fails, its requests are retried one
by one, so one bad request never fails its neighbours.

A batcher can also take requests' *raw* inputs (e.g. JSON rows) with a ``prepare`` function
that turns all of a batch's raw groups into records in one call, in the worker thread: a
cost that is mostly fixed per call (checking a table of rows) is then paid once per batch
rather than once per request. ``prepare`` answers per group, records or the exception that
group's request gets (bad rows refuse their own request only).

Requests on an event loop use :meth:`MicroBatcher.run`: the worker wakes the loop once per
batch (:func:`settle`) rather than once per request, which keeps the loop's thread free for
HTTP work under load.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MicroBatcher", "Waiter", "settle"]

PredictFn = Callable[[Sequence[Any]], list[dict[str, Any]]]
#: Raw input groups → per group, its records or the exception its request gets.
PrepareFn = Callable[[list[Sequence[Any]]], list["Sequence[Any] | BaseException"]]
#: What a worker thread resolves: a concurrent future, or an asyncio future with its loop.
Waiter = cf.Future | tuple[asyncio.AbstractEventLoop, asyncio.Future]


def _set(fut: cf.Future | asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if fut.done():  # an asyncio future whose request was cancelled (client went away)
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


def _set_all(items: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for fut, value, exc in items:
        _set(fut, value, exc)


def settle(outcomes: Sequence[tuple[Waiter, Any, BaseException | None]]) -> None:
    """Resolve waiters from a worker thread: ``(waiter, value, exception)`` each.

    Concurrent futures are resolved at once; asyncio futures are resolved on their own loop,
    with one ``call_soon_threadsafe`` per loop for all of them (one wake-up of the loop).
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, Any]]] = {}
    for waiter, value, exc in outcomes:
        if isinstance(waiter, tuple):
            loop, fut = waiter
            by_loop.setdefault(loop, []).append((fut, value, exc))
        else:
            _set(waiter, value, exc)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all, items)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


#: A queued request: its records (or raw inputs), who waits for the rows, and whether raw.
_Item = tuple[Sequence[Any], Waiter, bool]


class MicroBatcher:
    """Group concurrent calls of ``fn`` (records → one row per record) into batches.

    Args:
        fn: the batch function; must return exactly one row per record, in order.
        max_batch: most records per call of ``fn``.
        max_wait_ms: how long the worker waits for more requests after the first one.
        name: thread name (for debugging).
        prepare: raw input groups → records (see the module docstring); needed for
            ``run(..., raw=True)``.
    """

    def __init__(
        self,
        fn: PredictFn,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        name: str = "batch",
        prepare: PrepareFn | None = None,
    ) -> None:
        self.fn = fn
        self.prepare = prepare
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: queue.Queue[_Item | None] = queue.Queue()
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
        self._queue.put((records, fut, False))
        return fut

    async def run(self, records: Sequence[Any], *, raw: bool = False) -> list[dict[str, Any]]:
        """Queue ``records`` from a coroutine and wait for their rows.

        Args:
            records: the request's records, or with ``raw`` its raw inputs (turned into
                records by ``prepare`` in the worker, together with the batch's others).
            raw: see ``records``.

        Raises:
            Exception: what ``prepare`` or the batch function raised for this request.
        """
        if not records:
            return []
        if raw and self.prepare is None:
            raise ValueError("this batcher has no prepare function for raw inputs")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._queue.put((records, (loop, fut), raw))
        return await fut

    def close(self) -> None:
        """Finish queued work and stop the worker."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch: list[_Item] = [item]
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

    def _prepared(self, batch: list[_Item]) -> list[tuple[Sequence[Any], Waiter]]:
        """Records for every request of ``batch`` (raw groups prepared in one call); requests
        whose preparation failed are answered here and left out."""
        raw = [i for i, item in enumerate(batch) if item[2]]
        if not raw:
            return [(recs, waiter) for recs, waiter, _ in batch]
        assert self.prepare is not None
        groups = [batch[i][0] for i in raw]
        try:
            prepared = list(self.prepare(groups))
            if len(prepared) != len(groups):
                raise RuntimeError(f"prepare returned {len(prepared)} groups for {len(groups)}")
        except Exception:  # noqa: BLE001 - prepare each group alone to find the culprit
            prepared = [self._prepare_one(g) for g in groups]
        by_index = dict(zip(raw, prepared, strict=True))
        ready, failed = [], []
        for i, (recs, waiter, is_raw) in enumerate(batch):
            got = by_index[i] if is_raw else recs
            if isinstance(got, BaseException):
                failed.append((waiter, None, got))
            else:
                ready.append((got, waiter))
        if failed:
            settle(failed)
        return ready

    def _prepare_one(self, group: Sequence[Any]) -> Sequence[Any] | BaseException:
        assert self.prepare is not None
        try:
            (got,) = self.prepare([group])
            return got
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            return exc

    def _process(self, items: list[_Item]) -> None:
        batch = self._prepared(items)
        records = [r for recs, _ in batch for r in recs]
        if not records:  # nothing left to predict (or raw rows that prepared to no records)
            settle([(waiter, [], None) for _, waiter in batch])
            return
        try:
            rows = self.fn(records)
            if len(rows) != len(records):
                raise RuntimeError(f"batch function returned {len(rows)} rows for {len(records)}")
        except Exception as exc:  # noqa: BLE001 - isolate the failing request below
            if len(batch) == 1:
                settle([(batch[0][1], None, exc)])
                return
            settle([self._one(item) for item in batch])
            return
        self.batches += 1
        self.items += len(records)
        outcomes = []
        start = 0
        for recs, waiter in batch:
            outcomes.append((waiter, rows[start : start + len(recs)], None))
            start += len(recs)
        settle(outcomes)

    def _one(
        self, item: tuple[Sequence[Any], Waiter]
    ) -> tuple[Waiter, list[dict[str, Any]] | None, BaseException | None]:
        recs, waiter = item
        if not recs:
            return waiter, [], None
        try:
            return waiter, self.fn(recs), None
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            return waiter, None, exc

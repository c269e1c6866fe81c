"""Dynamic micro-batching: concurrent requests for one model share one forward pass.

A :class:`MicroBatcher` owns one worker thread per model version (or one per whole-batch
function it is given, e.g. per model process; they take turns gathering). Requests submit their
records and get a future. An idle worker takes the first request, then gathers more for up
to ``max_wait_ms`` (or until ``max_batch`` records); a worker coming back from a batch takes
the requests that queued meanwhile at once (up to ``max_batch`` records), without waiting:
under load the model never idles for the window. It runs the model once on all of them and
hands each request its own rows. If a batch fails, its requests are retried one
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
import functools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["GroupsFn", "MicroBatcher", "Waiter", "answer_groups", "settle"]

PredictFn = Callable[[Sequence[Any]], list[dict[str, Any]]]
#: Raw input groups → per group, its records or the exception its request gets.
PrepareFn = Callable[[list[Sequence[Any]]], list["Sequence[Any] | BaseException"]]
#: A batch's requests as ``(records or raw inputs, raw)`` → per request, its rows or the
#: exception that request gets.
GroupsFn = Callable[
    [list[tuple[Sequence[Any], bool]]], list["list[dict[str, Any]] | BaseException"]
]
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
        groups_fn: answers a whole batch instead of :func:`answer_groups` with ``fn`` and
            ``prepare``: ``(records or raw inputs, raw)`` per request → per request, its rows
            or the exception it gets (e.g. a model process that prepares and predicts the
            batch in one round trip). It then also takes raw inputs. A sequence of them
            starts one worker thread each (e.g. one per model process): while one worker
            waits for its batch's answer, the next gathers the requests that queued and
            sends them to its own function, so several batches are answered at once.
    """

    def __init__(
        self,
        fn: PredictFn | None,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        name: str = "batch",
        prepare: PrepareFn | None = None,
        groups_fn: GroupsFn | Sequence[GroupsFn] | None = None,
    ) -> None:
        self.takes_raw = prepare is not None or groups_fn is not None
        if groups_fn is None:
            if fn is None:
                raise ValueError("MicroBatcher needs fn or groups_fn")
            groups_fn = functools.partial(answer_groups, fn=fn, prepare=prepare)
        fns = list(groups_fn) if isinstance(groups_fn, Sequence) else [groups_fn]
        if not fns:
            raise ValueError("MicroBatcher needs at least one groups_fn")
        self.fn = fn
        self.prepare = prepare
        self.groups_fn = fns[0]
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._gather = threading.Lock()  # one worker gathers a batch at a time
        self._count = threading.Lock()
        self.batches = 0
        self.items = 0
        self._threads = [
            threading.Thread(target=self._run, args=(f,), name=f"medlearn-{name}-{i}", daemon=True)
            for i, f in enumerate(fns)
        ]
        for t in self._threads:
            t.start()

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
        if raw and not self.takes_raw:
            raise ValueError("this batcher has no prepare function for raw inputs")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._queue.put((records, (loop, fut), raw))
        return await fut

    def close(self) -> None:
        """Finish queued work and stop the workers."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=30)

    def _run(self, groups_fn: GroupsFn) -> None:
        while True:
            with self._gather:
                batch, stop = self._next_batch()
            if batch:
                self._process(batch, groups_fn)
            if stop:
                return

    def _next_batch(self) -> tuple[list[_Item], bool]:
        """The next batch, and whether the stop marker was met."""
        try:  # requests that queued while the last batch ran: no reason to wait for more
            item = self._queue.get_nowait()
            wait = 0.0
        except queue.Empty:  # idle: gather arrivals for up to max_wait
            item = self._queue.get()
            wait = self.max_wait
        if item is None:
            return [], True
        batch: list[_Item] = [item]
        n = len(item[0])
        deadline = time.monotonic() + wait
        while n < self.max_batch:
            left = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
            n += len(nxt[0])
        return batch, False

    def _process(self, items: list[_Item], groups_fn: GroupsFn) -> None:
        groups = [(recs, raw) for recs, _, raw in items]
        try:
            outcomes = groups_fn(groups)
            if len(outcomes) != len(groups):
                raise RuntimeError(f"the batch answered {len(outcomes)} of {len(groups)} requests")
        except Exception as exc:  # noqa: BLE001 - e.g. the model process stopped
            outcomes = [exc] * len(groups)
        n = sum(len(o) for o in outcomes if not isinstance(o, BaseException))
        if n:
            with self._count:
                self.batches += 1
                self.items += n
        settle(
            [
                (waiter, None, got) if isinstance(got, BaseException) else (waiter, got, None)
                for (_, waiter, _), got in zip(items, outcomes, strict=True)
            ]
        )


def answer_groups(
    groups: Sequence[tuple[Sequence[Any], bool]],
    fn: PredictFn,
    prepare: PrepareFn | None = None,
) -> list[list[dict[str, Any]] | BaseException]:
    """Answer a micro-batch's requests: per request, its rows or the exception it gets.

    Raw groups are turned into records by one ``prepare`` call (each group alone if that
    call fails, to find the culprit); then every record of the batch is predicted by one
    ``fn`` call, and if that fails, each request's records alone, so that one bad request
    never fails its neighbours.

    Args:
        groups: ``(records, raw)`` per request; raw groups hold inputs for ``prepare``.
        fn: the batch function (records → one row per record, in order).
        prepare: raw groups → per group, records or an exception.
    """
    ready: list[Sequence[Any] | BaseException] = [recs for recs, _ in groups]
    raw = [i for i, (_, is_raw) in enumerate(groups) if is_raw]
    if raw:
        if prepare is None:
            for i in raw:
                ready[i] = ValueError("this model has no prepare function for raw inputs")
        else:
            for i, got in zip(raw, _prepare_all(prepare, [groups[i][0] for i in raw]), strict=True):
                ready[i] = got
    out: list[list[dict[str, Any]] | BaseException] = [
        got if isinstance(got, BaseException) else [] for got in ready
    ]
    live = [i for i, got in enumerate(ready) if not isinstance(got, BaseException) and len(got)]
    records = [r for i in live for r in ready[i]]  # type: ignore[union-attr]
    if not records:
        return out
    rows = _call(fn, records)
    if isinstance(rows, BaseException):  # isolate the failing request
        if len(live) == 1:
            out[live[0]] = rows
            return out
        for i in live:
            out[i] = _call(fn, ready[i])  # type: ignore[arg-type]
        return out
    start = 0
    for i in live:
        n = len(ready[i])  # type: ignore[arg-type]
        out[i] = rows[start : start + n]
        start += n
    return out


def _prepare_all(
    prepare: PrepareFn, groups: list[Sequence[Any]]
) -> list[Sequence[Any] | BaseException]:
    try:
        prepared = list(prepare(groups))
        if len(prepared) != len(groups):
            raise RuntimeError(f"prepare returned {len(prepared)} groups for {len(groups)}")
        return prepared
    except Exception:  # noqa: BLE001 - prepare each group alone to find the culprit
        out: list[Sequence[Any] | BaseException] = []
        for group in groups:
            try:
                (got,) = prepare([group])
                out.append(got)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                out.append(exc)
        return out


def _call(fn: PredictFn, records: Sequence[Any]) -> list[dict[str, Any]] | BaseException:
    try:
        rows = fn(records)
        if len(rows) != len(records):
            raise RuntimeError(f"batch function returned {len(rows)} rows for {len(records)}")
        return rows
    except Exception as exc:  # noqa: BLE001 - handed to the waiting request
        return exc

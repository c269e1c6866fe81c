"""A model's micro-batches prepared and predicted in a child process, with its own GIL.

In one process the event loop (HTTP, decoding, audit hand-off) and the batch thread's Python
between torch operations take turns on the GIL, and the forward pass of a small model ran
about twice as slow as in a process of its own. :class:`ModelProcess` loads the same verified
bundle in a spawned child, which answers a whole micro-batch per round trip (the batcher's
thread is the only caller): it turns the requests' raw inputs into records (decoding uploaded
images, checking JSON rows: :func:`medlearn.serving.service.prepare_fn`), predicts every record
in one call (each request alone if that fails) and bins the predicted inputs for drift
monitoring, so none of that work is left on the server's event loop.

Exceptions raised in the child come back as plain data (type name, message, hint, and for an
:class:`~medlearn.serving.service.ApiError` its status and details): medlearn's own errors
and API errors are raised again as the same class in the parent (so a bad input still answers
422 with every bad item listed), anything else as a :class:`RuntimeError` naming the type. The
pipe carries records, raw request inputs and rows between the server and its own child only;
nothing is read from a file but the bundle, by the same safe loader the server uses.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ModelProcess", "pin_process_threads"]

_START_TIMEOUT_S = 300.0

log = logging.getLogger(__name__)


def _serve(root: str, conn: Any, threads: int, cpus: frozenset[int] | None = None) -> None:
    """The child: load the bundle, then answer ``(groups, output_dir)`` until ``None``."""
    if cpus:
        pin_process_threads(cpus)  # before torch starts its threads: they inherit it
    import torch

    torch.set_num_threads(max(1, threads))
    from medlearn.pipeline import load_learner

    try:
        learner, manifest = load_learner(Path(root))
        answer = _batch_answerer(Path(root), learner, manifest)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", _portable(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the parent went away
            return
        if msg is None:
            return
        groups, out = msg
        try:
            reply = answer(groups, Path(out))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting batch
            conn.send(("error", _portable(exc)))
        else:
            conn.send(("ok", reply))


def pin_process_threads(cpus: frozenset[int]) -> None:
    """Let every thread of this process (and the threads they start) run only on ``cpus``."""
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (OSError, ValueError):  # a thread that just ended
            pass


def _batch_answerer(
    root: Path, learner: Any, manifest: dict[str, Any]
) -> Callable[[list[tuple[Sequence[Any], bool]], Path], tuple[list[Any], Any, int]]:
    """The child's batch handler: groups → ``(outcomes, drift counts, inputs counted)``;
    an outcome is ``("rows", rows)`` or ``("error", portable error)``."""
    from medlearn.pipeline import predict_records
    from medlearn.serving.batching import answer_groups
    from medlearn.serving.monitor import input_counts, load_reference
    from medlearn.serving.service import prepare_fn

    reference = load_reference(root, manifest)
    prepare = prepare_fn(learner)

    def answer(groups: list[tuple[Sequence[Any], bool]], out: Path) -> tuple[list[Any], Any, int]:
        seen: list[Any] = []

        def fn(records: Sequence[Any]) -> list[dict[str, Any]]:
            rows = predict_records(learner, manifest, list(records), output_dir=out)
            seen.extend(records)
            return rows

        outcomes = answer_groups(groups, fn, prepare)
        try:
            counts = input_counts(reference, [r["input"] for r in seen]) if seen else None
        except Exception:  # noqa: BLE001 - monitoring must never fail a prediction
            log.exception("could not bin the inputs for drift monitoring")
            counts = None
        return (
            [
                ("error", _portable(o)) if isinstance(o, BaseException) else ("rows", o)
                for o in outcomes
            ],
            counts,
            len(seen),
        )

    return answer


def _portable(exc: BaseException) -> dict[str, Any]:
    """An exception as plain data: type name, message, hint (and an API error's status and
    details)."""
    out: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(getattr(exc, "message", exc)),
        "hint": getattr(exc, "hint", None),
    }
    if out["type"] == "ApiError":
        out["status"] = int(getattr(exc, "status", 500))
        out["details"] = getattr(exc, "details", None)
    return out


def _rebuild(error: dict[str, Any]) -> BaseException:
    """The parent's exception for a child's :func:`_portable` error."""
    from medlearn import errors
    from medlearn.serving.service import ApiError

    name, message, hint = error["type"], error["message"], error.get("hint")
    if name == "ApiError":
        return ApiError(error["status"], message, hint=hint, details=error.get("details"))
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.MedlearnError):
        try:
            return cls(message, hint=hint)
        except TypeError:  # a subclass with another signature
            return errors.MedlearnError(message, hint=hint)
    return RuntimeError(f"{name} in the model process: {message}")


class ModelProcess:
    """``predict_records`` of one bundle, in a spawned child process.

    Args:
        root: the bundle directory (already checksum-verified by the registry).
        threads: torch threads in the child.
        cpus: CPU numbers the child may run on (``None``: wherever the parent may).

    Raises:
        RuntimeError: the child could not start or load the bundle (the loader's own
            exception when it can be passed back).
    """

    def __init__(self, root: Path, *, threads: int = 1, cpus: frozenset[int] | None = None) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(str(root), child, threads, cpus),
            name="medlearn-model",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._lock = threading.Lock()
        if not self._conn.poll(_START_TIMEOUT_S):
            self.close()
            raise RuntimeError(f"the model process for {root} did not start in time")
        status, payload = self._conn.recv()
        if status != "ready":
            self.close()
            raise _rebuild(payload)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def answer(
        self, groups: list[tuple[Sequence[Any], bool]], output_dir: Path
    ) -> tuple[list[list[dict[str, Any]] | BaseException], Any, int]:
        """Answer a micro-batch in the child (see :func:`~medlearn.serving.batching.answer_groups`).

        Args:
            groups: ``(records or raw inputs, raw)`` per request.
            output_dir: where the child may write output files (e.g. NIfTI masks).

        Returns:
            ``(outcomes, drift counts, inputs counted)``: per request its rows or the exception
            it gets; the drift bin counts of the predicted inputs (``None`` without a drift
            reference) and how many inputs they cover.

        Raises:
            RuntimeError: the child stopped, or failed outside any one request.
        """
        with self._lock:
            try:
                self._conn.send((list(groups), str(output_dir)))
                status, payload = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                raise RuntimeError("the model process has stopped") from exc
        if status != "ok":
            raise _rebuild(payload)
        outcomes, counts, n = payload
        return [rows if kind == "rows" else _rebuild(rows) for kind, rows in outcomes], counts, n

    def close(self) -> None:
        """Stop the child (it finishes the batch in hand first)."""
        try:
            self._conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        self._conn.close()

"""A model's micro-batches predicted in a child process, with its own interpreter lock.

In one process the event loop (HTTP, decoding, audit hand-off) and the batch thread's Python
between torch operations take turns on the GIL, and the forward pass of a small model ran
about twice as slow as in a process of its own. :class:`ModelProcess` loads the same verified
bundle in a spawned child and answers ``predict_records`` calls over a pipe, one batch at a
time (the micro-batcher's thread is the only caller).

Exceptions raised in the child come back as plain data (type name, message, hint): medlearn's
own errors are raised again as the same class in the parent (so a bad input still answers 422),
anything else as a :class:`RuntimeError` naming the type. The pipe carries records and rows
between the server and its own child only; nothing is read from a file but the bundle, by the
same safe loader the server uses.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ModelProcess"]

_START_TIMEOUT_S = 300.0


def _serve(root: str, conn: Any, threads: int) -> None:
    """The child: load the bundle, then answer ``(records, output_dir)`` until ``None``."""
    import torch

    torch.set_num_threads(max(1, threads))
    from medlearn.pipeline import load_learner, predict_records

    try:
        learner, manifest = load_learner(Path(root))
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
        records, out = msg
        try:
            rows = predict_records(learner, manifest, records, output_dir=Path(out))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting batch
            conn.send(("error", _portable(exc)))
        else:
            conn.send(("ok", rows))


def _portable(exc: BaseException) -> tuple[str, str, str | None]:
    """An exception as ``(type name, message, hint)``."""
    return type(exc).__name__, str(getattr(exc, "message", exc)), getattr(exc, "hint", None)


def _rebuild(error: tuple[str, str, str | None]) -> BaseException:
    """The parent's exception for a child's :func:`_portable` error."""
    from medlearn import errors

    name, message, hint = error
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

    Raises:
        RuntimeError: the child could not start or load the bundle (the loader's own
            exception when it can be passed back).
    """

    def __init__(self, root: Path, *, threads: int = 1) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(str(root), child, threads), name="medlearn-model", daemon=True
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

    def predict(self, records: Sequence[Any], output_dir: Path) -> list[dict[str, Any]]:
        """``predict_records(learner, manifest, records, output_dir=output_dir)`` in the child."""
        with self._lock:
            try:
                self._conn.send((list(records), str(output_dir)))
                status, payload = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                raise RuntimeError("the model process has stopped") from exc
        if status != "ok":
            raise _rebuild(payload)
        return payload

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

"""A model's micro-batches predicted in a child process, with its own interpreter lock.

In one process the event loop (HTTP, decoding, audit hand-off) and the batch thread's Python
between torch operations take turns on the GIL, and the forward pass of a small model ran
about twice as slow as in a process of its own. :class:`ModelProcess` loads the same verified
bundle in a spawned child and answers ``predict_records`` calls over a pipe, one batch at a
time (the micro-batcher's thread is the only caller).

Exceptions raised in the child come back as the same exception when they can be pickled
(medlearn's own errors can), else as a :class:`RuntimeError` naming the type and message.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
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


def _portable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - not picklable: keep its type name and message
        return RuntimeError(f"{type(exc).__name__} in the model process: {exc}")
    return exc


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
            raise payload

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
            raise payload
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

"""Monitoring: live-input drift against the bundle's training reference, and shadow scoring.

* :class:`DriftMonitor` bins every predicted input against the version's
  ``drift_reference.json`` (counts only, never values), keeps running totals for ``/metrics``
  and flushes them to the ``drift_counts`` table, which ``medlearn monitor report`` reads.
* :class:`ShadowRunner` scores the same records with the ``shadow`` alias's version in the
  background after the response has been sent, compares its rows with production's
  (label agreement, largest probability difference) and records the comparison in
  ``shadow_results``. A shadow's output is never returned to the caller.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from medlearn.evaluation.drift import drift_scores, merge_counts, summarize_inputs
from medlearn.serving.store import DriftCount, ShadowResult

__all__ = [
    "DriftMonitor",
    "ShadowRunner",
    "compare_rows",
    "drift_report",
    "input_counts",
    "load_reference",
    "shadow_report",
]

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _uint8_bins(bins: int) -> np.ndarray:
    """The intensity bin of each 8-bit value ``v / 255``, exactly as ``np.histogram`` over
    ``[0, 1]`` places it (a bin depends only on its own value), so a batch's histogram is a
    count of its byte values."""
    values = np.arange(256, dtype=np.float32) / np.float32(255.0)
    return np.array(
        [
            int(np.argmax(np.histogram(values[i : i + 1], bins=bins, range=(0.0, 1.0))[0]))
            for i in range(256)
        ]
    )


def _image_batch_counts(
    reference: Mapping[str, Any], inputs: Sequence[Any]
) -> dict[str, list[int]] | None:
    """:func:`summarize_inputs` for a batch of same-shaped images, in a few numpy calls.

    The intensity histogram of the stacked batch is the sum of the per-image histograms, and
    each image's mean is its row mean, so the counts are the ones ``summarize_inputs`` gives
    (a test checks this). ``None`` when the batch is not one shape of image arrays.
    """
    feats = reference.get("features") or {}
    if reference.get("kind") != "image" or "intensity" not in feats:
        return None
    first = inputs[0]
    if not isinstance(first, np.ndarray) or first.ndim < 2:
        return None
    for im in inputs:
        if not isinstance(im, np.ndarray) or im.shape != first.shape or im.dtype != first.dtype:
            return None
    stack = np.stack(inputs)
    bins = int(feats["intensity"]["bins"])
    if stack.dtype == np.uint8:
        u = stack.astype(np.float32) / 255.0
        per_value = np.bincount(stack.ravel(), minlength=256)
        hist = np.bincount(_uint8_bins(bins), weights=per_value, minlength=bins)
    else:
        if stack.dtype == np.uint16:
            u = stack.astype(np.float32) / 65535.0
        else:
            u = np.asarray(stack, dtype=np.float32)
        u = np.clip(u, 0.0, 1.0)
        hist = np.histogram(u, bins=bins, range=(0.0, 1.0))[0]
    means = u.reshape(len(inputs), -1).mean(axis=1)
    edges = np.asarray(feats["mean_intensity"]["edges"])
    means64 = means.astype(np.float64)
    finite = means64[np.isfinite(means64)]
    idx = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    return {
        "intensity": [int(c) for c in hist],
        "mean_intensity": [int(c) for c in idx] + [int((~np.isfinite(means64)).sum())],
    }


def input_counts(
    reference: Mapping[str, Any] | None, inputs: Sequence[Any]
) -> dict[str, list[int]] | None:
    """Drift bin counts of ``inputs`` against ``reference`` (``None`` without a reference
    or inputs): counts only, never values."""
    if not reference or not reference.get("features") or not inputs:
        return None
    return _image_batch_counts(reference, inputs) or summarize_inputs(reference, inputs)


def load_reference(root: Path, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The bundle's drift reference (``manifest["drift_reference"]``), or ``None``."""
    name = manifest.get("drift_reference")
    if name and (Path(root) / name).is_file():
        return json.loads((Path(root) / name).read_text())
    return None


class DriftMonitor:
    """Running drift counts per model version, flushed to the database.

    Args:
        engine: the serving database.
        flush_every: flush after this many inputs of one version (and on :meth:`flush`).
    """

    def __init__(self, engine: Engine, *, flush_every: int = 200) -> None:
        self.engine = engine
        self.flush_every = flush_every
        self._lock = threading.Lock()
        self._refs: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._total: dict[tuple[str, str], dict[str, list[int]]] = {}
        self._pending: dict[tuple[str, str], tuple[int, dict[str, list[int]]]] = {}
        self._n: dict[tuple[str, str], int] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medlearn-drift")
        self._closed = False

    def observe(
        self, name: str, version: str, reference: Mapping[str, Any] | None, inputs: Sequence[Any]
    ) -> None:
        """Bin ``inputs`` against ``reference`` and add them to the running totals."""
        if not inputs:
            return
        self.add(name, version, reference, input_counts(reference, inputs), len(inputs))

    def add(
        self,
        name: str,
        version: str,
        reference: Mapping[str, Any] | None,
        counts: dict[str, list[int]] | None,
        n_inputs: int,
    ) -> None:
        """Add bin counts of ``n_inputs`` inputs (from :func:`input_counts`, possibly made in
        another process) to the running totals."""
        if not reference or not counts or not n_inputs:
            return
        key = (name, version)
        flush = None
        with self._lock:
            self._refs[key] = reference
            merge_counts(self._total.setdefault(key, {}), counts)
            self._n[key] = self._n.get(key, 0) + n_inputs
            n, pend = self._pending.get(key, (0, {}))
            merge_counts(pend, counts)
            n += n_inputs
            if n >= self.flush_every:
                flush = (n, pend)
                self._pending.pop(key, None)
            else:
                self._pending[key] = (n, pend)
        if flush and self._closed:
            self._write(key, *flush)
        elif flush:  # in the background: a batch thread never waits for the database
            self._writer.submit(self._write, key, *flush)

    def _write(self, key: tuple[str, str], n: int, counts: dict[str, list[int]]) -> None:
        try:
            with Session(self.engine) as s, s.begin():
                s.add(
                    DriftCount(
                        model_name=key[0],
                        model_version=key[1],
                        time=datetime.now(timezone.utc),
                        n_inputs=n,
                        counts_json=json.dumps(counts),
                    )
                )
        except Exception:  # noqa: BLE001 - monitoring must never fail a prediction
            log.exception("could not store drift counts")

    def flush(self) -> None:
        """Write every pending count to the database (and wait for background writes)."""
        if not self._closed:
            self._writer.submit(lambda: None).result()
        with self._lock:
            pending, self._pending = self._pending, {}
        for key, (n, counts) in pending.items():
            self._write(key, n, counts)

    def close(self) -> None:
        """Write every pending count and stop the background writer (idempotent; counts
        added afterwards are written by the adding thread)."""
        self.flush()
        self._closed = True
        self._writer.shutdown(wait=True)

    def scores(self) -> dict[tuple[str, str], dict[str, Any]]:
        """``{(name, version): {"n": inputs, "features": {feature: {psi, ks, n}}}}`` so far."""
        with self._lock:
            items = [(k, self._refs[k], dict(v), self._n.get(k, 0)) for k, v in self._total.items()]
        return {k: {"n": n, "features": drift_scores(ref, tot)} for k, ref, tot, n in items}


def drift_report(
    engine: Engine,
    references: Callable[[str, str], Mapping[str, Any] | None],
    *,
    name: str | None = None,
    since_hours: float | None = None,
) -> list[dict[str, Any]]:
    """Drift per model version from the stored counts (what ``medlearn monitor report`` shows).

    Args:
        engine: the serving database.
        references: ``(name, version) -> reference`` (read from the registered bundle).
        name: only this model.
        since_hours: only counts from the last so many hours.
    """
    q = sa.select(DriftCount)
    if name:
        q = q.where(DriftCount.model_name == name)
    if since_hours:
        q = q.where(DriftCount.time >= datetime.now(timezone.utc) - timedelta(hours=since_hours))
    totals: dict[tuple[str, str], tuple[int, dict[str, list[int]]]] = {}
    with Session(engine) as s:
        for r in s.scalars(q):
            n, tot = totals.get((r.model_name, r.model_version), (0, {}))
            merge_counts(tot, json.loads(r.counts_json))
            totals[(r.model_name, r.model_version)] = (n + r.n_inputs, tot)
    out = []
    for (mname, version), (n, tot) in sorted(totals.items()):
        ref = references(mname, version)
        out.append(
            {
                "model": mname,
                "version": version,
                "inputs": n,
                "features": drift_scores(ref, tot) if ref else {},
            }
        )
    return out


def compare_rows(
    prod: Sequence[Mapping[str, Any]], cand: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """Agreement of two versions' rows: same label count, largest and mean |Δ probability|."""
    agree, diffs = 0, []
    for a, b in zip(prod, cand, strict=False):
        if a.get("prediction") == b.get("prediction"):
            agree += 1
        pa, pb = a.get("probabilities") or {}, b.get("probabilities") or {}
        common = set(pa) & set(pb)
        if common:
            diffs.append(max(abs(float(pa[c]) - float(pb[c])) for c in common))
    return {
        "n": float(min(len(prod), len(cand))),
        "agree": float(agree),
        "max_abs_diff": float(max(diffs, default=0.0)),
        "mean_abs_diff": float(sum(diffs) / len(diffs)) if diffs else 0.0,
    }


class ShadowRunner:
    """Score requests with a candidate version in the background and record the comparison."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medlearn-shadow")
        self.compared = 0
        self.agreed = 0
        self.last_max_abs_diff = 0.0

    def submit(
        self,
        name: str,
        version: str,
        candidate: str,
        score: Callable[[], Sequence[Mapping[str, Any]]],
        prod_rows: Sequence[Mapping[str, Any]],
    ) -> None:
        """Run ``score`` (the candidate's prediction) later and store the comparison."""
        self._pool.submit(self._run, name, version, candidate, score, list(prod_rows))

    def _run(
        self,
        name: str,
        version: str,
        candidate: str,
        score: Callable[[], Sequence[Mapping[str, Any]]],
        prod_rows: list[Mapping[str, Any]],
    ) -> None:
        try:
            cmp = compare_rows(prod_rows, score())
            with Session(self.engine) as s, s.begin():
                s.add(
                    ShadowResult(
                        model_name=name,
                        version=version,
                        candidate=candidate,
                        time=datetime.now(timezone.utc),
                        n=int(cmp["n"]),
                        agree=int(cmp["agree"]),
                        max_abs_diff=cmp["max_abs_diff"],
                        mean_abs_diff=cmp["mean_abs_diff"],
                    )
                )
            self.compared += int(cmp["n"])
            self.agreed += int(cmp["agree"])
            self.last_max_abs_diff = cmp["max_abs_diff"]
        except Exception:  # noqa: BLE001 - a failing shadow must never affect production
            log.exception("shadow scoring failed for model version %s", candidate)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for queued shadow work (tests, shutdown)."""
        self._pool.submit(lambda: None).result(timeout=timeout)

    def close(self) -> None:
        """Finish queued work and stop."""
        self._pool.shutdown(wait=True)


def shadow_report(engine: Engine, *, name: str | None = None) -> list[dict[str, Any]]:
    """Shadow comparisons summed per (model, production version, candidate)."""
    q = sa.select(
        ShadowResult.model_name,
        ShadowResult.version,
        ShadowResult.candidate,
        sa.func.sum(ShadowResult.n),
        sa.func.sum(ShadowResult.agree),
        sa.func.max(ShadowResult.max_abs_diff),
    ).group_by(ShadowResult.model_name, ShadowResult.version, ShadowResult.candidate)
    if name:
        q = q.where(ShadowResult.model_name == name)
    with Session(engine) as s:
        rows = s.execute(q).all()
    return [
        {
            "model": m,
            "version": v,
            "candidate": c,
            "n": int(n or 0),
            "agreement": (float(a) / float(n)) if n else None,
            "max_abs_diff": float(d or 0.0),
        }
        for m, v, c, n, a, d in rows
    ]

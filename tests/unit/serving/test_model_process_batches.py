"""The model process answers whole micro-batches: raw inputs in, rows or refusals out.

Covered: :func:`answer_groups` prepares a batch's raw groups in one call and predicts all its
records in one call, isolating a failing group either way; a batcher built on a whole-batch
function takes raw inputs and fails every request of a batch whose function crashed; API errors
cross the process boundary with their status and details; a served image model with a model
process decodes uploads in the child (the server's own decoder is never called) and answers
exactly as the in-process server does, refusals, drift counts and shadow comparisons included;
JSON rows for a tabular model are checked in the child with the same answers; a batcher with
several whole-batch functions answers batches concurrently, and a model served by two model
processes answers as one does and stops both; CPU pinning plans the model processes' cores
and a pinned model process runs every thread on its core.
"""

from __future__ import annotations

import asyncio
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
from medlearn.serving.batching import MicroBatcher, answer_groups
from medlearn.serving.store import migrate


def _rows(records: list[Any]) -> list[dict[str, Any]]:
    return [{"input": r} for r in records]


def test_answer_groups_prepares_and_predicts_once_and_isolates_failures() -> None:
    prepared: list[int] = []
    predicted: list[int] = []

    def prepare(groups: list[list[str]]) -> list[Any]:
        prepared.append(len(groups))
        return [ValueError("bad group") if "x" in g else [s.upper() for s in g] for g in groups]

    def fn(records: list[Any]) -> list[dict[str, Any]]:
        predicted.append(len(records))
        if "POISON" in records:
            raise RuntimeError("model failed")
        return _rows(records)

    groups = [(["a", "b"], True), (["x"], True), (["ready"], False), ([], False), (["c"], True)]
    out = answer_groups(groups, fn, prepare)
    assert out[0] == [{"input": "A"}, {"input": "B"}]
    assert isinstance(out[1], ValueError)
    assert out[2] == [{"input": "ready"}] and out[3] == [] and out[4] == [{"input": "C"}]
    assert prepared == [3] and predicted == [4]

    predicted.clear()
    out = answer_groups([(["a"], True), (["poison"], True), (["b"], False)], fn, prepare)
    assert out[0] == [{"input": "A"}] and out[2] == [{"input": "b"}]
    assert isinstance(out[1], RuntimeError) and "model failed" in str(out[1])
    assert predicted == [3, 1, 1, 1]  # the batch, then each request alone

    out = answer_groups([(["a"], True)], fn, None)
    assert isinstance(out[0], ValueError) and "no prepare function" in str(out[0])


def test_whole_batch_batcher_takes_raw_inputs_and_a_crash_fails_every_request() -> None:
    seen: list[list[tuple[list[str], bool]]] = []

    def groups_fn(groups: list[tuple[list[str], bool]]) -> list[Any]:
        seen.append(groups)
        if any("crash" in g for g, _ in groups):
            raise RuntimeError("the model process has stopped")
        return [[{"input": s, "raw": raw} for s in g] for g, raw in groups]

    batcher = MicroBatcher(None, max_wait_ms=400.0, groups_fn=groups_fn)

    async def go(*calls: tuple[list[str], bool]) -> list[Any]:
        return await asyncio.gather(
            *(batcher.run(g, raw=raw) for g, raw in calls), return_exceptions=True
        )

    out = asyncio.run(go((["a"], True), (["b", "c"], False)))
    assert out == [[{"input": "a", "raw": True}], [{"input": s, "raw": False} for s in "bc"]]
    assert len(seen) == 1 and batcher.items == 3
    out = asyncio.run(go((["d"], True), (["crash"], True)))
    assert all(isinstance(o, RuntimeError) for o in out)
    batcher.close()
    with pytest.raises(ValueError, match="fn or groups_fn"):
        MicroBatcher(None)


def test_api_errors_cross_the_process_boundary_with_status_and_details() -> None:
    from medlearn.serving.model_process import _portable, _rebuild
    from medlearn.serving.service import ApiError, bad_uploads_error

    err = bad_uploads_error([{"input": "file[1]", "error": "truncated"}], 2)
    again = _rebuild(_portable(err))
    assert isinstance(again, ApiError)
    assert (again.status, again.message, again.hint, again.details) == (
        err.status,
        err.message,
        err.hint,
        err.details,
    )


def _png(seed: int, size: int = 16) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(size, size), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _serve_all(
    db_url: str,
    key: str,
    model_process: bool,
    path: str,
    requests: list[dict[str, Any]],
    processes: int = 1,
    seen: list[Any] | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Send ``requests`` concurrently; their (status, body) and the service's counters
    (``seen`` collects the loaded models' model processes)."""
    settings = ServeSettings(
        db_url=db_url,
        batch_wait_ms=300.0,
        model_process=model_process,
        model_processes=processes,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(lambda kw: client.post(path, **kw), requests))
        svc = app.state.service
        svc.shadow.drain()
        loaded = list(svc._models.values())
        assert all((m.process is not None) == model_process for m in loaded)
        if seen is not None:
            seen.extend(p for m in loaded for p in m.processes)
        counters = {
            "drift_inputs": sum(svc.drift._n.values()),
            "drift_totals": {k: dict(v) for k, v in svc.drift._total.items()},
            "shadow_compared": svc.shadow.compared,
            "batched_items": sum(m.batcher.items for m in loaded),
        }
    return [(r.status_code, r.json()) for r in answers], counters


def test_uploads_are_decoded_in_the_model_process_with_the_same_answers(
    db_url: str, tiny_bundle: Path, tiny_bundle_b: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlearn.imaging.tasks import ImageClassifier

    engine = make_engine(db_url)
    migrate(engine)
    reg = ModelRegistry(engine)
    reg.push(tiny_bundle, name="cxr")
    reg.push(tiny_bundle_b, name="cxr")
    reg.promote("cxr", "1", alias="production")
    reg.promote("cxr", "2", alias="shadow")
    key = KeyStore(engine).create("clinician")[1]
    good = [_png(seed) for seed in range(4)]
    broken = good[0][:-30]  # the header is intact; the pixel data is cut short
    requests = [
        {"files": [("file", ("one.png", good[0], "image/png"))]},
        {
            "files": [
                ("file", ("two.png", good[1], "image/png")),
                ("file", ("three.png", good[2], "image/png")),
            ]
        },
        {
            "files": [
                ("file", ("fine.png", good[3], "image/png")),
                ("file", ("cut.png", broken, "image/png")),
            ]
        },
    ]
    path = "/v1/models/cxr/predict"
    local, local_counts = _serve_all(db_url, key, False, path, requests)

    decoded_by: list[str] = []
    original = ImageClassifier.read_input_bytes

    def spy(self: Any, items: Any) -> Any:
        decoded_by.append(threading.current_thread().name)
        return original(self, items)

    monkeypatch.setattr(ImageClassifier, "read_input_bytes", spy)
    remote, remote_counts = _serve_all(db_url, key, True, path, requests)
    # Only the shadow version (scored in the background, in this process) decoded here.
    assert decoded_by and {n.split("_")[0] for n in decoded_by} == {"medlearn-shadow"}

    assert [s for s, _ in remote] == [s for s, _ in local] == [200, 200, 422]
    for (_, a), (_, b) in zip(local[:2], remote[:2], strict=True):
        assert [p["input"] for p in a["predictions"]] == [p["input"] for p in b["predictions"]]
        for pa, pb in zip(a["predictions"], b["predictions"], strict=True):
            assert pa["prediction"] == pb["prediction"]
            assert pa["probabilities"] == pytest.approx(pb["probabilities"], abs=1e-6)
    assert remote[2][1]["error"] == local[2][1]["error"]
    assert [d["input"] for d in remote[2][1]["error"]["details"]] == ["file[1]"]
    assert "cut.png" not in str(remote[2][1])  # refusals name the field, not the file
    assert remote_counts == local_counts
    assert remote_counts["drift_inputs"] == 3 and remote_counts["shadow_compared"] == 3
    engine.dispose()


def test_json_rows_are_checked_in_the_model_process_with_the_same_answers(
    db_url: str, tiny_tabular_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlearn.clinical._tabular_learner import TabularLearner

    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_tabular_bundle, name="risk")
    key = KeyStore(engine).create("clinician")[1]
    bodies = [
        [{"age": 61, "chol": 230, "smoker": "no"}, {"age": 35, "chol": None, "smoker": " no "}],
        [{"age": "old", "chol": 200, "smoker": "no"}, {"age": 50, "chol": 199, "smoker": "no"}],
        [{"chol": 180, "smoker": "no"}],
        [{"age": 44, "smoker": "yes", "chol": 205}],
    ]
    requests = [{"json": {"records": b}} for b in bodies]
    path = "/v1/models/risk/predict"
    local, local_counts = _serve_all(db_url, key, False, path, requests)

    def no_checking_here(self: Any, groups: Any, **kw: Any) -> Any:
        raise AssertionError("the server process checked the rows")

    monkeypatch.setattr(TabularLearner, "records_from_row_groups", no_checking_here)
    remote, remote_counts = _serve_all(db_url, key, True, path, requests)
    assert [s for s, _ in remote] == [s for s, _ in local] == [200, 422, 422, 200]
    assert remote[1][1] == local[1][1] and remote[2][1] == local[2][1]
    for i in (0, 3):
        a, b = local[i][1]["predictions"], remote[i][1]["predictions"]
        assert [p["input"] for p in a] == [p["input"] for p in b]
        for pa, pb in zip(a, b, strict=True):
            assert pa["probabilities"] == pytest.approx(pb["probabilities"], abs=1e-9)
    assert remote_counts == local_counts and remote_counts["batched_items"] == 3
    engine.dispose()


def test_drift_counts_are_stored_in_the_background_and_all_kept_on_close(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from medlearn.serving.monitor import DriftMonitor
    from medlearn.serving.store import DriftCount

    engine = make_engine(db_url)
    migrate(engine)
    ref = {"kind": "image", "features": {"intensity": {"type": "histogram", "bins": 4}}}
    monitor = DriftMonitor(engine, flush_every=3)
    writers: list[str] = []
    original = monitor._write

    def spy(*args: Any) -> None:
        writers.append(threading.current_thread().name)
        original(*args)

    monkeypatch.setattr(monitor, "_write", spy)
    for i in range(7):
        monitor.add("cxr", "1", ref, {"intensity": [i, 1, 0, 0]}, 1)
    monitor.close()
    with engine.connect() as con:
        rows = con.execute(sa.select(DriftCount.n_inputs)).scalars().all()
    assert sorted(rows) == [1, 3, 3]  # two full flushes and the remainder on close
    assert writers[:2] == ["medlearn-drift_0"] * 2  # not the batch thread that added them
    assert monitor._n[("cxr", "1")] == 7 and monitor._total[("cxr", "1")]["intensity"][0] == 21
    monitor.close()  # a server stopped twice (e.g. a restarted lifespan) does not fail
    for _ in range(3):  # counts added after close are written by the adding thread
        monitor.add("cxr", "1", ref, {"intensity": [1, 0, 0, 0]}, 1)
    assert writers[-1] == threading.current_thread().name
    with engine.connect() as con:
        rows = con.execute(sa.select(DriftCount.n_inputs)).scalars().all()
    assert sorted(rows) == [1, 3, 3, 3]
    engine.dispose()


def test_requests_queued_during_a_batch_go_next_without_the_wait_window() -> None:
    started, release = threading.Event(), threading.Event()
    batches: list[list[Any]] = []

    def fn(records: list[Any]) -> list[dict[str, Any]]:
        batches.append(list(records))
        if len(batches) == 1:
            started.set()
            release.wait(30)
        return _rows(records)

    # An idle worker waits up to a minute for company: only max_batch (2) ends the window.
    batcher = MicroBatcher(fn, max_batch=2, max_wait_ms=60_000.0)
    first = [batcher.submit(["a"]), batcher.submit(["b"])]
    assert started.wait(30)
    queued = [batcher.submit(["c"])]  # arrives while the first batch runs
    release.set()
    assert [f.result(timeout=30) for f in first] == [[{"input": "a"}], [{"input": "b"}]]
    # Taken as soon as the first batch ended, not after the 60 s window.
    assert queued[0].result(timeout=30) == [{"input": "c"}]
    assert batches == [["a", "b"], ["c"]]
    batcher.close()


def test_two_workers_answer_batches_concurrently_each_batch_once() -> None:
    inside = threading.Barrier(2, timeout=30)
    calls: list[tuple[str, list[Any]]] = []

    def worker(name: str) -> Any:
        def groups_fn(groups: list[tuple[list[Any], bool]]) -> list[Any]:
            calls.append((name, [r for recs, _ in groups for r in recs]))
            if len(calls) <= 2:
                inside.wait()  # both batches are in flight at once, or this times out
            return [_rows(list(recs)) for recs, _ in groups]

        return groups_fn

    batcher = MicroBatcher(None, groups_fn=[worker("w1"), worker("w2")], max_batch=1)
    futures = [batcher.submit([x]) for x in "abcd"]
    assert [f.result(timeout=30) for f in futures] == [[{"input": x}] for x in "abcd"]
    assert sorted(r for _, recs in calls for r in recs) == list("abcd")  # each batch once
    assert {name for name, _ in calls[:2]} == {"w1", "w2"}
    assert batcher.batches == 4 and batcher.items == 4
    batcher.close()
    assert not any(t.is_alive() for t in batcher._threads)
    with pytest.raises(ValueError, match="at least one"):
        MicroBatcher(None, groups_fn=[])


def test_two_model_processes_answer_as_one_and_both_stop(db_url: str, tiny_bundle: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_bundle, name="cxr")
    key = KeyStore(engine).create("clinician")[1]
    requests = [{"files": [("file", (f"{i}.png", _png(i), "image/png"))]} for i in range(6)]
    path = "/v1/models/cxr/predict"
    one, one_counts = _serve_all(db_url, key, True, path, requests)
    children: list[Any] = []
    two, two_counts = _serve_all(db_url, key, True, path, requests, processes=2, seen=children)
    assert len({c.pid for c in children}) == 2
    assert not any(c._proc.is_alive() for c in children)  # stopped with the server
    assert [s for s, _ in two] == [s for s, _ in one] == [200] * 6
    for (_, a), (_, b) in zip(one, two, strict=True):
        assert a["predictions"][0]["probabilities"] == pytest.approx(
            b["predictions"][0]["probabilities"], abs=1e-6
        )
    assert two_counts == one_counts and two_counts["batched_items"] == 6
    engine.dispose()


def test_cpu_plan_gives_model_slots_the_last_cpus_and_the_server_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from medlearn.serving.service import cpu_plan

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {4, 5, 6, 7})
    assert cpu_plan(1) == (frozenset({4, 5, 6}), [frozenset({7})])
    assert cpu_plan(2) == (frozenset({4, 5}), [frozenset({7}), frozenset({6})])
    assert cpu_plan(4) is None  # the server would have no CPU left: nothing is pinned


def test_a_pinned_model_process_runs_every_thread_on_its_cpu(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    import os

    from medlearn.serving.model_process import ModelProcess
    from medlearn.serving.uploads import UploadGroup

    target = frozenset({max(os.sched_getaffinity(0))})
    proc = ModelProcess(tiny_bundle, threads=2, cpus=target)
    try:
        tasks = Path(f"/proc/{proc.pid}/task").iterdir()
        masks = {frozenset(os.sched_getaffinity(int(t.name))) for t in tasks}
        assert masks == {target}
        outcomes, _, n = proc.answer([(UploadGroup([("a.png", _png(1))]), True)], tmp_path)
    finally:
        proc.close()
    assert n == 1 and len(outcomes[0]) == 1 and "probabilities" in outcomes[0][0]

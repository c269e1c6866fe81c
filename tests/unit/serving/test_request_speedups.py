"""The fast request path gives the same answers as the slow one it replaced.

Covered: the API-key cache still honours revocation, group-committed audit rows are all
present and chained under concurrency, uploads decoded in memory equal files decoded from
disk, JSON records equal the same rows read from a CSV, the plain multipart splitter equals
python-multipart, batched drift counts equal per-image counts, the micro-batcher's asyncio
waiters, the hand-parsed predict query, and the dedicated-process tuning.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
from medlearn.serving.audit import AuditEntry, AuditLog, export_rows, verify_chain
from medlearn.serving.batching import MicroBatcher
from medlearn.serving.store import migrate


def _png(seed: int, size: int = 16, mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    arr = np.clip(rng.normal(100, 30, size=shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _encoded(seed: int, fmt: str) -> bytes:
    arr = np.clip(np.random.default_rng(seed).normal(100, 30, size=(16, 16)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


# --- API keys ----------------------------------------------------------------------------------


def test_key_cache_still_honours_revocation(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import medlearn.serving.auth as auth

    engine = make_engine(db_url)
    migrate(engine)
    server = KeyStore(engine, cache_seconds=5.0)
    key_id, key = server.create("clinician")
    other_id, other = server.create("clinician")
    assert server.check(key) is not None and server.check(other) is not None  # now cached

    lookups: list[object] = []
    real_get = auth.Session.get

    def counting_get(session: object, *args: object, **kwargs: object) -> object:
        lookups.append(args)
        return real_get(session, *args, **kwargs)

    monkeypatch.setattr(auth.Session, "get", counting_get)
    assert server.check(key).key_id == key_id  # type: ignore[union-attr]
    assert lookups == []  # served from memory: no database session

    KeyStore(engine).revoke(other_id)  # revoked by another process (the CLI)
    assert server.check(other) is not None  # still cached ...
    now = auth.time.monotonic()
    monkeypatch.setattr(auth.time, "monotonic", lambda: now + 5.1)
    assert server.check(other) is None  # ... but only until the cache entry expires

    assert server.check(key) is not None  # cached again at the new time
    server.revoke(key_id)  # revoked through this server: refused at once
    assert server.check(key) is None
    assert server.check("_".join(key.split("_", 2)[:2]) + "_" + "x" * 43) is None  # bad secret
    engine.dispose()


# --- audit: group commit -------------------------------------------------------------------------


def test_async_group_commit_under_concurrency_keeps_every_row_chained(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    log = AuditLog(engine, max_group=16)
    log.start()

    async def many() -> list[int]:
        return list(
            await asyncio.gather(
                *(
                    log.commit(AuditEntry(key_id=f"a{i}", endpoint="x", status=200))
                    for i in range(150)
                )
            )
        )

    thread_seqs: list[int] = []

    def from_threads() -> None:
        thread_seqs.extend(
            log.submit(AuditEntry(key_id="t", endpoint="y")).result() for _ in range(50)
        )

    t = threading.Thread(target=from_threads)
    t.start()
    loop_seqs = asyncio.run(many())
    t.join()
    log.stop()
    assert sorted(loop_seqs + thread_seqs) == list(range(1, 201))  # every row, each seq once
    rows = list(export_rows(engine))
    assert len(rows) == 200 and sorted(r["key_id"] for r in rows).count("t") == 50
    by_seq = {r["seq"]: r["key_id"] for r in rows}
    assert all(by_seq[s] == f"a{i}" for i, s in enumerate(loop_seqs))  # each got its own seq
    rep = verify_chain(engine)
    assert rep.ok and rep.rows == 200
    engine.dispose()


def test_failed_group_commit_fails_every_waiter(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    log = AuditLog(engine)
    log.start()

    def broken(_entries: object) -> list[int]:
        raise OSError("disk full")

    monkeypatch.setattr(log, "append_many", broken)

    async def two() -> list[object]:
        return await asyncio.gather(
            log.commit(AuditEntry(key_id="a", endpoint="x")),
            log.commit(AuditEntry(key_id="b", endpoint="x")),
            return_exceptions=True,
        )

    assert all(isinstance(r, OSError) for r in asyncio.run(two()))
    log.stop()
    engine.dispose()


# --- micro-batcher -------------------------------------------------------------------------------


def test_batcher_run_batches_requests_and_isolates_a_failing_one() -> None:
    calls: list[int] = []

    def fn(records: list[object]) -> list[dict[str, object]]:
        calls.append(len(records))
        if "bad" in records:
            raise ValueError("bad record")
        return [{"input": r} for r in records]

    batcher = MicroBatcher(fn, max_batch=64, max_wait_ms=500.0)

    async def go() -> list[object]:
        return await asyncio.gather(
            *(batcher.run([f"r{i}", f"s{i}"]) for i in range(5)),
            batcher.run(["bad"]),
            batcher.run([]),
            return_exceptions=True,
        )

    out = asyncio.run(go())
    batcher.close()
    assert out[:5] == [[{"input": f"r{i}"}, {"input": f"s{i}"}] for i in range(5)]
    assert isinstance(out[5], ValueError) and out[6] == []
    assert calls == [11, 2, 2, 2, 2, 2, 1]  # one batch for all, then each request alone


# --- uploads decoded in memory --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("BMP", ".bmp")]
)
def test_load_image_bytes_equals_load_image(tmp_path: Path, fmt: str, suffix: str) -> None:
    from medlearn.imaging._images import load_image, load_image_bytes

    data = _encoded(7, fmt)
    (tmp_path / f"a{suffix}").write_bytes(data)
    from_file = load_image(tmp_path / f"a{suffix}", color="rgb")
    from_memory = load_image_bytes(data, f"a{suffix}", color="rgb")
    assert from_memory.dtype == from_file.dtype and np.array_equal(from_memory, from_file)


def test_load_image_bytes_refuses_what_needs_a_file() -> None:
    from medlearn.errors import DataValidationError
    from medlearn.imaging._images import load_image_bytes

    nifti = b"\0" * 344 + b"n+1\0" + b"\0" * 10
    with pytest.raises(DataValidationError, match="read from a file"):
        load_image_bytes(nifti, "x.nii")
    with pytest.raises(DataValidationError, match="empty"):
        load_image_bytes(b"", "x.png")


def test_read_input_bytes_equals_read_inputs(tiny_bundle: Path, tmp_path: Path) -> None:
    from medlearn.pipeline import load_learner

    learner, _ = load_learner(tiny_bundle)
    uploads = [
        ("upload_000.png", _png(1)),
        ("upload_001.png", b"\x89PNG\r\n\x1a\nbroken"),
        ("upload_002.png", _png(2, mode="RGB")),  # 3 channels for a 1-channel model
        ("upload_003.jpg", _encoded(3, "JPEG")),
        ("upload_004.png", _png(4, size=20)),
    ]
    paths = []
    for name, data in uploads:
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    file_recs, file_bad = learner.read_inputs(paths)
    mem_recs, mem_bad = learner.read_input_bytes(uploads)
    assert [Path(r["id"]).name for r in file_recs] == [r["id"] for r in mem_recs]
    for a, b in zip(file_recs, mem_recs, strict=True):
        assert np.array_equal(a["input"], b["input"]) and a["input"].dtype == b["input"].dtype
    strip = str(tmp_path) + "/"
    assert [(Path(b.source).name, b.message.replace(strip, "")) for b in file_bad] == [
        (b.source, b.message) for b in mem_bad
    ]
    assert len(mem_bad) == 2


# --- JSON records ---------------------------------------------------------------------------------


def test_records_from_rows_equal_the_same_rows_read_from_csv(
    tiny_tabular_bundle: Path, tmp_path: Path
) -> None:
    from medlearn.pipeline import load_learner

    learner, _ = load_learner(tiny_tabular_bundle)
    rows = [
        {"age": 75.0, "chol": 210, "smoker": "yes"},
        {"age": 35, "chol": None, "smoker": " no "},  # missing number, padded category
        {"age": "old", "chol": 200, "smoker": "no"},  # not a number
        {"age": 50.5, "chol": 199.0, "smoker": "sometimes"},  # unseen category
        {"age": "NA", "chol": "220", "smoker": True, "extra": [1, 2]},  # NA text, bool, extra
        {"chol": 180, "smoker": "no"},  # a key missing in one row
    ]
    csv = tmp_path / "records.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    file_recs, file_bad = learner.read_inputs([str(csv)])
    json_recs, json_bad = learner.records_from_rows(rows, name="records.csv")
    assert [(r["id"], r["input"]) for r in file_recs] == [(r["id"], r["input"]) for r in json_recs]
    assert [(b.source, b.message) for b in file_bad] == [(b.source, b.message) for b in json_bad]
    assert len(json_recs) == 3 and len(json_bad) == 3

    missing, bad = learner.records_from_rows([{"age": 40}])
    assert missing == [] and "missing feature column" in bad[0].message


def test_json_records_skip_the_temporary_csv(
    db_url: str, tiny_tabular_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_tabular_bundle, name="risk")
    key = KeyStore(engine).create("clinician")[1]
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda *a, **k: pytest.fail("wrote a CSV"))
    with TestClient(create_app(ServeSettings(db_url=db_url, batch_wait_ms=1.0))) as client:
        r = client.post(
            "/v1/models/risk/predict",
            json={"records": [{"age": 60, "chol": 200, "smoker": "yes"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["input"] == "records:row1"
    engine.dispose()


# --- multipart ------------------------------------------------------------------------------------


def _multipart(files: list[tuple[str, tuple[str, bytes]]], data: dict[str, str] | None = None):
    req = httpx.Request("POST", "http://x/", files=files, data=data)
    return req.read(), req.headers["content-type"]


@pytest.mark.parametrize(
    "files",
    [
        [("file", ("a.png", b"\x89PNG data"))],
        [
            ("file", ("a b.png", b"x" * 5000)),
            ("file", ("b.png", b"\r\n--almost\r\n")),
            ("o", ("", b"")),
        ],
        [("file", ("sc\u00e9n.png", b"\r\n\r\n"))],
    ],
)
def test_plain_multipart_split_equals_python_multipart(files: list) -> None:
    from medlearn.serving.app import _MultipartFiles, _plain_parts

    body, ctype = _multipart(files, data={"note": "hello"})
    boundary = ctype.split("boundary=")[1].encode()
    assert _plain_parts(body, boundary) is not None  # the fast path is taken ...

    def parse(plain: bool) -> list:
        limits = {"max_files": 64, "max_fields": 20, "max_part_size": 2**20}
        return _MultipartFiles(**limits).parse(body, ctype, plain=plain)

    assert parse(True) == parse(False)  # ... and gives python-multipart's parts


def test_unusual_or_broken_multipart_goes_to_python_multipart() -> None:
    from medlearn.serving.app import _MultipartFiles, _plain_parts

    limits = {"max_files": 64, "max_fields": 20, "max_part_size": 2**20}
    ctype = "multipart/form-data; boundary=BND"
    unusual = (
        b'--BND\r\nContent-Disposition: form-data; name="file"; filename="a\\"b.png"\r\n\r\n'
        b"DATA\r\n--BND--\r\n"
    )
    assert _plain_parts(unusual, b"BND") is None  # an escaped quote: not "plain"
    assert _MultipartFiles(**limits).parse(unusual, ctype) == [("file", 'a"b.png', b"DATA")]
    truncated = b'--BND\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nDA'
    assert _plain_parts(truncated, b"BND") is None
    with pytest.raises(ValueError):
        _MultipartFiles(**limits).parse(b"garbage", ctype)
    two = _multipart([("file", ("a.png", b"1")), ("file", ("b.png", b"2"))])
    with pytest.raises(ValueError, match="Too many files"):
        _MultipartFiles(max_files=1, max_fields=20, max_part_size=2**20).parse(*two)


# --- drift ----------------------------------------------------------------------------------------


def test_batched_image_drift_counts_equal_per_image_counts() -> None:
    from medlearn.evaluation.drift import summarize_inputs
    from medlearn.serving.monitor import _image_batch_counts

    ref = {
        "kind": "image",
        "features": {
            "intensity": {"type": "histogram", "bins": 32},
            "mean_intensity": {"type": "numeric", "edges": [0.3, 0.4, 0.45, 0.5, 0.6]},
        },
    }
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.uint8, np.uint16):
        for n in (1, 7, 33):
            if dtype == np.float32:
                ims = [(rng.random((1, 12, 12)) * 1.2 - 0.1).astype(dtype) for _ in range(n)]
                ims[0][0, 0, 0] = np.nan
            else:
                ims = [
                    rng.integers(0, np.iinfo(dtype).max, (1, 12, 12)).astype(dtype)
                    for _ in range(n)
                ]
            assert _image_batch_counts(ref, ims) == summarize_inputs(ref, ims)
    mixed = [np.zeros((1, 4, 4), np.float32), np.zeros((1, 5, 5), np.float32)]
    assert _image_batch_counts(ref, mixed) is None  # other shapes: the per-image path


@pytest.mark.parametrize("bins", [3, 7, 10, 32, 100, 255, 256])
def test_byte_image_histograms_count_every_value_in_numpys_bin(bins: int) -> None:
    from medlearn.evaluation.drift import summarize_inputs
    from medlearn.serving.monitor import _image_batch_counts

    ref = {
        "kind": "image",
        "features": {
            "intensity": {"type": "histogram", "bins": bins},
            "mean_intensity": {"type": "numeric", "edges": [0.25, 0.5]},
        },
    }
    every = np.arange(256, dtype=np.uint8).reshape(16, 16)  # each byte value once
    ims = [every, np.flipud(every), np.full((16, 16), 255, np.uint8)]
    got = _image_batch_counts(ref, ims)
    assert got == summarize_inputs(ref, ims)
    assert sum(got["intensity"]) == 3 * 256


# --- the predict route ----------------------------------------------------------------------------


@pytest.fixture()
def served(db_url: str, tiny_bundle: Path):
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_bundle, name="pneumo")
    keys = KeyStore(engine)
    tokens = {r: keys.create(r)[1] for r in ("clinician", "auditor")}
    with TestClient(create_app(ServeSettings(db_url=db_url, batch_wait_ms=1.0))) as client:
        client.tokens = tokens  # type: ignore[attr-defined]
        yield client
    engine.dispose()


def test_predict_query_is_validated_and_every_call_audited(served: TestClient) -> None:
    h = {"Authorization": f"Bearer {served.tokens['clinician']}"}  # type: ignore[attr-defined]
    files = {"file": ("a.png", _png(5))}
    ok = served.post("/v1/models/pneumo/predict?explain=false&format=json", headers=h, files=files)
    assert ok.status_code == 200 and ok.json()["predictions"][0]["input"] == "a.png"
    for query in ("format=xml", "format=json%0A", "explain=maybe", "patient=Bob"):
        bad = served.post(f"/v1/models/pneumo/predict?{query}", headers=h, files=files)
        assert bad.status_code == 422, query
        assert query.split("=")[0] in bad.json()["error"]["message"]
    missing = served.post("/v1/models/nope/predict", headers=h, files=files)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    assert served.get("/v1/models/pneumo/predict", headers=h).status_code == 405
    params = served.get("/openapi.json").json()["paths"]["/v1/models/{name}/predict"]["post"]
    assert {p["name"] for p in params["parameters"]} == {
        "name",
        "version",
        "explain",
        "format",
        "patient",
    }
    assert params["security"] == [{"HTTPBearer": []}]

    auditor = {"Authorization": f"Bearer {served.tokens['auditor']}"}  # type: ignore[attr-defined]
    rows = served.get("/v1/audit", headers=auditor).json()["rows"]
    predict_rows = [r for r in rows if r["endpoint"] == "POST /v1/models/{name}/predict"]
    assert [r["status"] for r in predict_rows] == [200, 422, 422, 422, 422, 404]
    assert all(r["key_id"] != "-" for r in predict_rows)


def test_tune_process_freezes_startup_objects_and_shortens_gil_turns(
    db_url: str, tiny_bundle: Path
) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_bundle, name="pneumo")
    ModelRegistry(engine).promote("pneumo", "1")
    old = sys.getswitchinterval()
    try:
        with TestClient(create_app(ServeSettings(db_url=db_url, tune_process=True))):
            assert sys.getswitchinterval() == pytest.approx(0.0005)
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        sys.setswitchinterval(old)
    with TestClient(create_app(ServeSettings(db_url=db_url))):  # off by default
        assert sys.getswitchinterval() == pytest.approx(old) and gc.get_freeze_count() == 0
    engine.dispose()


def test_fastapi_request_telemetry_is_off_even_with_a_configured_provider(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect

    from fastapi import FastAPI

    if "telemetry" not in inspect.signature(FastAPI).parameters:
        pytest.fail("the locked FastAPI has native telemetry; this test expects it")
    import fastapi.telemetry._asgi as fastapi_otel

    app = create_app(ServeSettings(db_url=db_url))
    # As if an OpenTelemetry SDK had been set up in the process: FastAPI would trace requests
    # (and export their URLs) unless the app turned its telemetry off.
    monkeypatch.setattr(fastapi_otel, "_unconfigured", lambda _provider: False)
    assert app._native_telemetry.enabled() is False
    assert FastAPI()._native_telemetry.enabled() is True  # the default would trace

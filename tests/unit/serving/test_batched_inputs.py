"""JSON rows checked per micro-batch: the same records and refusals as one request at a time.

Covered: ``TabularLearner.records_from_row_groups`` equals reading each group from its own CSV
file; the micro-batcher prepares all raw groups of a batch in one call, refuses only the group
that failed and falls back to one group at a time when ``prepare`` itself breaks; concurrent
JSON requests to a served tabular model share one table check, and a bad row refuses only its
own request, numbered within that request; the model process gives the same predictions, stops
with the server and hands errors back as their class; the plain multipart boundary reader
equals python-multipart's; the orjson answers equal the json module's.
"""

from __future__ import annotations

import asyncio
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from PIL import Image

from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
from medlearn.serving.audit import verify_chain
from medlearn.serving.batching import MicroBatcher
from medlearn.serving.predict import FastJSONResponse
from medlearn.serving.store import migrate
from medlearn.serving.uploads import _plain_boundary

pytest.importorskip("medlearn.clinical.tabular")

GROUPS = [
    [{"age": 75.0, "chol": 210, "smoker": "yes"}, {"age": 35, "chol": None, "smoker": " no "}],
    [
        {"age": "old", "chol": 200, "smoker": "no"},  # not a number
        {"age": 50.5, "chol": 199.0, "smoker": "sometimes"},  # unseen category
        {"age": "NA", "chol": "220", "smoker": True, "extra": [1, 2]},
    ],
    [{"chol": 180, "smoker": "no"}],  # no 'age' column at all: the whole group is refused
    [{"age": 61, "chol": 230, "smoker": "no"}],
    [{"age": 40, " chol": 1, "chol": 2, "smoker": "no"}],  # a name given twice
    [{"age": 44, "smoker": "yes", "chol": 205}, {"chol": 150, "smoker": "no"}],
]


def test_row_groups_equal_each_group_read_from_its_own_csv(
    tiny_tabular_bundle: Path, tmp_path: Path
) -> None:
    from medlearn.pipeline import load_learner

    learner, _ = load_learner(tiny_tabular_bundle)
    joint = learner.records_from_row_groups(GROUPS, name="records.csv")
    assert len(joint) == len(GROUPS)
    for i, (group, (recs, bad)) in enumerate(zip(GROUPS, joint, strict=True)):
        alone = learner.records_from_rows(group, name="records.csv")
        assert [(r["id"], r["input"], r["meta"]) for r in recs] == [
            (r["id"], r["input"], r["meta"]) for r in alone[0]
        ]
        assert [(b.source, b.message) for b in bad] == [(b.source, b.message) for b in alone[1]]
        if i == 4:  # duplicate column names are refused before any file is involved
            assert "given twice" in bad[0].message
            continue
        csv = tmp_path / f"g{i}" / "records.csv"
        csv.parent.mkdir()
        pd.DataFrame(group).to_csv(csv, index=False)
        file_recs, file_bad = learner.read_inputs([str(csv)])
        assert [(r["id"], r["input"]) for r in file_recs] == [(r["id"], r["input"]) for r in recs]
        assert [b.message for b in file_bad] == [b.message for b in bad]
    counts = [(len(r), len(b)) for r, b in joint]
    assert counts == [(2, 0), (0, 3), (0, 1), (1, 0), (0, 1), (2, 0)]
    assert joint[1][1][0].source == "records.csv:row1"  # numbered within its own group
    assert joint[5][0][1]["id"] == "records.csv:row2"


def _fn(records: list[object]) -> list[dict[str, object]]:
    return [{"input": r} for r in records]


def test_batcher_prepares_raw_groups_in_one_call_and_refuses_only_the_bad_group() -> None:
    prepared: list[int] = []
    predicted: list[int] = []

    def prepare(groups: list[list[str]]) -> list[object]:
        prepared.append(len(groups))
        return [ValueError(f"bad {g}") if "x" in g else [s.upper() for s in g] for g in groups]

    def fn(records: list[object]) -> list[dict[str, object]]:
        predicted.append(len(records))
        return _fn(records)

    batcher = MicroBatcher(fn, max_batch=64, max_wait_ms=400.0, prepare=prepare)

    async def go() -> list[object]:
        return await asyncio.gather(
            batcher.run(["a", "b"], raw=True),
            batcher.run(["x"], raw=True),
            batcher.run(["ready"]),  # already records: not prepared
            batcher.run(["c"], raw=True),
            return_exceptions=True,
        )

    out = asyncio.run(go())
    batcher.close()
    assert out[0] == [{"input": "A"}, {"input": "B"}]
    assert isinstance(out[1], ValueError) and str(out[1]) == "bad ['x']"
    assert out[2] == [{"input": "ready"}] and out[3] == [{"input": "C"}]
    assert prepared == [3] and predicted == [4]  # one prepare and one forward for the batch


def test_batcher_prepares_groups_alone_when_prepare_breaks() -> None:
    def prepare(groups: list[list[str]]) -> list[object]:
        if any("boom" in g for g in groups):
            raise RuntimeError("prepare crashed")
        return [list(g) for g in groups]

    batcher = MicroBatcher(_fn, max_batch=64, max_wait_ms=400.0, prepare=prepare)

    async def go() -> list[object]:
        return await asyncio.gather(
            batcher.run(["a"], raw=True),
            batcher.run(["boom"], raw=True),
            batcher.run(["b"], raw=True),
            return_exceptions=True,
        )

    out = asyncio.run(go())
    batcher.close()
    assert out[0] == [{"input": "a"}] and out[2] == [{"input": "b"}]
    assert isinstance(out[1], RuntimeError)

    plain = MicroBatcher(_fn, max_wait_ms=1.0)
    with pytest.raises(ValueError, match="no prepare function"):
        asyncio.run(plain.run(["a"], raw=True))
    plain.close()


def test_concurrent_json_requests_share_one_table_check(
    db_url: str, tiny_tabular_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlearn.clinical._tabular_learner import TabularLearner

    group_calls: list[int] = []
    original = TabularLearner.records_from_row_groups

    def spy(self, groups, **kw):  # type: ignore[no-untyped-def]
        group_calls.append(len(groups))
        return original(self, groups, **kw)

    monkeypatch.setattr(TabularLearner, "records_from_row_groups", spy)
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_tabular_bundle, name="risk")
    key = KeyStore(engine).create("clinician")[1]
    bodies = [
        [{"age": 60 + i, "chol": 200, "smoker": "yes"}, {"age": 30, "chol": 180, "smoker": "no"}]
        for i in range(5)
    ]
    bodies.append([{"age": 50, "chol": 200, "smoker": "no"}, {"age": "old", "chol": 1}])
    settings = ServeSettings(db_url=db_url, batch_wait_ms=400.0, shadow=False)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(
                pool.map(
                    lambda b: client.post("/v1/models/risk/predict", json={"records": b}), bodies
                )
            )
        alone = client.post("/v1/models/risk/predict", json={"records": bodies[0]})
    for r in answers[:5]:
        assert r.status_code == 200, r.text
        assert [p["input"] for p in r.json()["predictions"]] == ["records:row1", "records:row2"]
    assert answers[0].json()["predictions"] == alone.json()["predictions"]
    bad = answers[5]
    assert bad.status_code == 422
    details = bad.json()["error"]["details"]
    assert [d["input"] for d in details] == ["records:row2"]  # numbered within its request
    assert "age" in details[0]["error"] and "old" not in details[0]["error"]
    assert sum(group_calls) == len(bodies) + 1
    assert max(group_calls) > 1  # concurrent requests were checked together
    rep = verify_chain(engine)
    assert rep.ok and rep.rows == len(bodies) + 1
    engine.dispose()


@pytest.mark.parametrize(
    "ctype",
    [
        "multipart/form-data; boundary=abc123",
        "multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        "multipart/form-data; boundary=a'()+_,-./:=?z",
        'multipart/form-data; boundary="quoted boundary"',
        "multipart/form-data; charset=utf-8; boundary=x",
        "multipart/form-data",
    ],
)
def test_plain_boundary_equals_python_multipart(ctype: str) -> None:
    from python_multipart.multipart import parse_options_header

    expected = parse_options_header(ctype)[1].get(b"boundary")
    got = _plain_boundary(ctype)
    assert got is None or got == expected  # None: python-multipart reads it instead
    if '"' in ctype or "charset" in ctype or "boundary" not in ctype:
        assert got is None
    else:
        assert got == expected


def test_fast_json_answers_equal_the_json_module() -> None:
    content = {
        "model": {"name": "risk", "version": "1"},
        "predictions": [
            {
                "input": "records:row1",
                "prediction": 1,
                "probabilities": {0: 0.25, 1: 0.75},
                "label": "m\u00e9lanome",
                "flags": [True, None, 1e-12, -3],
            }
        ],
    }
    fast = json.loads(FastJSONResponse(content).body)
    slow = json.loads(JSONResponse(content).body)
    assert fast == slow
    arr = {"p": np.float32(0.5), "v": np.arange(3)}
    assert json.loads(FastJSONResponse(arr).body) == {"p": 0.5, "v": [0, 1, 2]}


def test_model_process_gives_the_same_predictions_and_stops_with_the_server(
    db_url: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_bundle, name="cxr")
    key = KeyStore(engine).create("clinician")[1]
    pngs = []
    for seed in range(3):
        arr = np.random.default_rng(seed).integers(0, 255, size=(16, 16), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    files = [("file", (f"img{i}.png", p, "image/png")) for i, p in enumerate(pngs)]
    answers = {}
    for flag in (False, True):
        settings = ServeSettings(db_url=db_url, batch_wait_ms=1.0, model_process=flag)
        app = create_app(settings)
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            r = client.post("/v1/models/cxr/predict", files=files)
            assert r.status_code == 200, r.text
            answers[flag] = r.json()["predictions"]
            loaded = list(app.state.service._models.values())
            assert [m.process is not None for m in loaded] == [flag]
            proc = loaded[0].process
        if proc is not None:
            assert not proc._proc.is_alive()  # stopped with the server
    assert [p["input"] for p in answers[True]] == ["img0.png", "img1.png", "img2.png"]
    for a, b in zip(answers[False], answers[True], strict=True):
        assert a["prediction"] == b["prediction"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)
    engine.dispose()


def test_model_process_errors_come_back_as_the_same_medlearn_error() -> None:
    from medlearn.errors import DataValidationError
    from medlearn.serving.model_process import _portable, _rebuild

    again = _rebuild(_portable(DataValidationError("x.png: empty", hint="Remove it.")))
    assert isinstance(again, DataValidationError)
    assert (again.message, again.hint) == ("x.png: empty", "Remove it.")
    other = _rebuild(_portable(ValueError("boom")))
    assert isinstance(other, RuntimeError) and "ValueError" in str(other) and "boom" in str(other)

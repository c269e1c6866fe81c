"""The request path: no answer without its audit row, lookup cache, spooled uploads removed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
from medlearn.serving.store import migrate


def _png(seed: int) -> bytes:
    img = np.random.default_rng(seed).normal(90, 15, size=(16, 16))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def client(db_url: str, tiny_bundle: Path, tiny_bundle_b: Path):
    engine = make_engine(db_url)
    migrate(engine)
    reg = ModelRegistry(engine)
    reg.push(tiny_bundle, name="pneumo")
    reg.push(tiny_bundle_b, name="pneumo")
    reg.promote("pneumo", "1")
    tokens = {r: KeyStore(engine).create(r)[1] for r in ("clinician", "admin")}
    with TestClient(create_app(ServeSettings(db_url=db_url, batch_wait_ms=1.0))) as c:
        c.tokens = tokens  # type: ignore[attr-defined]
        yield c
    engine.dispose()


def _auth(c: TestClient, role: str = "clinician") -> dict[str, str]:
    return {"Authorization": f"Bearer {c.tokens[role]}"}  # type: ignore[attr-defined]


def test_no_prediction_leaves_when_the_audit_row_cannot_be_written(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = client.app.state.service  # type: ignore[attr-defined]

    def broken(_entries: object) -> list[int]:
        raise OSError("disk full")

    monkeypatch.setattr(svc.audit, "append_many", broken)  # the group-commit writer fails
    r = client.post(
        "/v1/models/pneumo/predict", files={"file": ("a.png", _png(1))}, headers=_auth(client)
    )
    assert r.status_code == 503
    assert "predictions" not in r.text and "audit" in r.json()["error"]["message"]


def test_alias_move_through_the_api_takes_effect_at_once(client: TestClient) -> None:
    files = {"file": ("a.png", _png(2))}
    first = client.post("/v1/models/pneumo/predict", files=files, headers=_auth(client))
    assert first.json()["model"]["version"] == "1"  # now cached
    moved = client.put(
        "/v1/registry/pneumo/aliases/production",
        json={"version": "2"},
        headers=_auth(client, "admin"),
    )
    assert moved.status_code == 200
    again = client.post("/v1/models/pneumo/predict", files=files, headers=_auth(client))
    assert again.json()["model"]["version"] == "2"


def test_spooled_uploads_are_removed(client: TestClient) -> None:
    svc = client.app.state.service  # type: ignore[attr-defined]
    files = [("file", (f"s{i}.png", _png(i))) for i in range(3)]
    r = client.post("/v1/models/pneumo/predict", files=files, headers=_auth(client))
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    bad = client.post(
        "/v1/models/pneumo/predict", files={"file": ("x.png", b"not a png")}, headers=_auth(client)
    )
    assert bad.status_code == 422
    leftovers = [p for p in svc.spool.rglob("*") if p.is_file()]
    assert leftovers == []

"""The service in-process (FastAPI TestClient): every endpoint and role, FHIR, audit, drift."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
from medlearn.serving.store import migrate


def _png(value: int = 90, size: int = 16, square: bool = False) -> bytes:
    rng = np.random.default_rng(value)
    img = rng.normal(value, 10, size=(size, size))
    if square:
        img[4:10, 4:10] += 110
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def served(db_url: str, tiny_bundle: Path, tiny_bundle_b: Path):
    engine = make_engine(db_url)
    migrate(engine)
    reg = ModelRegistry(engine)
    reg.push(tiny_bundle, name="pneumo")
    reg.push(tiny_bundle_b, name="pneumo")
    reg.promote("pneumo", "1")
    keys = KeyStore(engine)
    tokens = {role: keys.create(role)[1] for role in ("clinician", "admin", "auditor")}
    app = create_app(ServeSettings(db_url=db_url, batch_wait_ms=1.0))
    with TestClient(app) as client:
        client.tokens = tokens  # type: ignore[attr-defined]
        yield client
    engine.dispose()


def _h(client: TestClient, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[role]}"}  # type: ignore[attr-defined]


def test_health_ready_metrics_need_no_key(served: TestClient) -> None:
    assert served.get("/healthz").json() == {"status": "ok"}
    ready = served.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models_loaded"] == ["pneumo:1"]
    assert "medlearn_requests_total" in served.get("/metrics").text
    assert served.get("/openapi.json").json()["paths"]["/v1/models/{name}/predict"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/me"),
        ("get", "/v1/models"),
        ("post", "/v1/models/pneumo/predict"),
        ("get", "/v1/audit"),
        ("get", "/v1/registry"),
        ("get", "/cds-services"),
    ],
)
def test_missing_or_bad_key_is_401(served: TestClient, method: str, path: str) -> None:
    kwargs = {"files": {"file": ("a.png", _png())}} if method == "post" else {}
    r = getattr(served, method)(path, **kwargs)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer mlk_deadbeef_not-a-real-secret"}
    assert getattr(served, method)(path, headers=bad, **kwargs).status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        ("auditor", "post", "/v1/models/pneumo/predict", False),
        ("clinician", "post", "/v1/models/pneumo/predict", True),
        ("clinician", "get", "/v1/audit", False),
        ("auditor", "get", "/v1/audit", True),
        ("clinician", "get", "/v1/audit/verify", False),
        ("clinician", "get", "/v1/registry", False),
        ("auditor", "get", "/v1/registry", False),
        ("admin", "get", "/v1/registry", True),
        ("clinician", "get", "/v1/registry/verify", False),
        ("auditor", "get", "/cds-services", False),
        ("clinician", "get", "/cds-services", True),
        ("auditor", "get", "/v1/models/pneumo", True),
    ],
)
def test_roles(served: TestClient, role: str, method: str, path: str, allowed: bool) -> None:
    kwargs = {"files": {"file": ("a.png", _png())}} if method == "post" else {}
    r = getattr(served, method)(path, headers=_h(served, role), **kwargs)
    assert r.status_code == (200 if allowed else 403), r.text


def test_predict_png_returns_calibrated_probability_and_uncertainty(served: TestClient) -> None:
    r = served.post(
        "/v1/models/pneumo/predict",
        headers=_h(served, "clinician"),
        files={"file": ("scan.png", _png(square=True), "image/png")},
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model"] == {"name": "pneumo", "version": "1"}  # production alias
    (row,) = doc["predictions"]
    assert row["input"] == "scan.png"
    assert set(row["probabilities"]) == {"normal", "pneumonia"}
    assert abs(sum(row["probabilities"].values()) - 1) < 1e-5
    assert row["prediction"] in row["probabilities"]
    assert 0.0 <= row["uncertainty"]["entropy"] <= 1.0
    assert "calibration" in row


def test_predict_batch_version_and_alias(served: TestClient) -> None:
    files = [("file", (f"x{i}.png", _png(80 + i), "image/png")) for i in range(3)]
    r = served.post(
        "/v1/models/pneumo/predict?version=2", headers=_h(served, "clinician"), files=files
    )
    assert r.status_code == 200
    assert [p["input"] for p in r.json()["predictions"]] == ["x0.png", "x1.png", "x2.png"]
    assert r.json()["model"]["version"] == "2"
    r = served.post(
        "/v1/models/pneumo@production/predict", headers=_h(served, "clinician"), files=files[:1]
    )
    assert r.json()["model"]["version"] == "1"


def test_predict_explain_returns_gradcam_png(served: TestClient) -> None:
    r = served.post(
        "/v1/models/pneumo/predict?explain=true",
        headers=_h(served, "clinician"),
        files={"file": ("a.png", _png(square=True), "image/png")},
    )
    exp = r.json()["predictions"][0]["explanation"]
    assert exp["method"] == "gradcam" and exp["media_type"] == "image/png"
    png = base64.b64decode(exp["base64"])
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size[0] > 0


def test_predict_fhir_risk_assessment_validates(served: TestClient) -> None:
    from fhir.resources.R4B.riskassessment import RiskAssessment

    r = served.post(
        "/v1/models/pneumo/predict?format=fhir&patient=Patient/123",
        headers=_h(served, "clinician"),
        files={"file": ("a.png", _png(), "image/png")},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    doc = r.json()
    ra = RiskAssessment.model_validate(doc)
    assert ra.subject.reference == "Patient/123"
    assert doc["contained"][0]["resourceType"] == "Device"
    assert doc["performer"]["reference"] == "#model"
    probs = [p["probabilityDecimal"] for p in doc["prediction"]]
    assert abs(sum(probs) - 1) < 1e-4


def test_bad_inputs_are_422_and_name_every_file(served: TestClient) -> None:
    files = [
        ("file", ("ok.png", _png(), "image/png")),
        ("file", ("notes.txt", b"hello", "text/plain")),
        ("file", ("broken.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")),
    ]
    r = served.post("/v1/models/pneumo/predict", headers=_h(served, "clinician"), files=files)
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert [d["input"] for d in details] == ["file[1]", "file[2]"]
    r = served.post(
        "/v1/models/pneumo/predict",
        headers=_h(served, "clinician"),
        json={"records": [{"age": 3}]},
    )
    assert r.status_code == 415  # image model, JSON records
    r = served.post("/v1/models/nope/predict", headers=_h(served, "clinician"), files=files[:1])
    assert r.status_code == 404


def test_size_and_dimension_limits(db_url: str, tiny_bundle: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_bundle, name="pneumo")
    token = KeyStore(engine).create("clinician")[1]
    app = create_app(ServeSettings(db_url=db_url, max_request_bytes=5000, max_image_side=20))
    h = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        big = client.post(
            "/v1/models/pneumo/predict", headers=h, files={"file": ("a.png", b"\0" * 6000)}
        )
        assert big.status_code == 413
        wide = client.post(
            "/v1/models/pneumo/predict", headers=h, files={"file": ("a.png", _png(size=24))}
        )
        assert wide.status_code == 422 and "limit of 20 px" in wide.text


def test_every_request_is_audited_and_chain_verifies(served: TestClient) -> None:
    png = _png(square=True)
    served.post("/v1/models/pneumo/predict", files={"file": ("a.png", png)})  # 401
    served.post(
        "/v1/models/pneumo/predict", headers=_h(served, "clinician"), files={"file": ("a.png", png)}
    )
    rows = served.get("/v1/audit", headers=_h(served, "auditor")).json()["rows"]
    assert [r["status"] for r in rows] == [401, 200]
    import hashlib

    ok = rows[1]
    assert ok["input_sha256"] == hashlib.sha256(hashlib.sha256(png).digest()).hexdigest()
    assert ok["model_name"] == "pneumo" and ok["model_version"] == "1"
    assert json.loads(ok["output_summary"])["n"] == 1
    assert "a.png" not in json.dumps(rows)  # no file names (may identify patients)
    assert rows[1]["prev_hash"] == rows[0]["row_hash"]
    v = served.get("/v1/audit/verify", headers=_h(served, "auditor")).json()
    assert v["ok"] and v["rows"] == 3  # the /v1/audit read itself is row 3


def test_registry_endpoints_move_aliases(served: TestClient) -> None:
    h = _h(served, "admin")
    r = served.put("/v1/registry/pneumo/aliases/production", headers=h, json={"version": "2"})
    assert r.json() == {"name": "pneumo", "alias": "production", "version": "2", "previous": "1"}
    assert served.post("/v1/registry/pneumo/rollback", headers=h).json()["version"] == "1"
    assert served.get("/v1/registry/verify", headers=h).json()["ok"] is True
    bad = served.put("/v1/registry/pneumo/aliases/production", headers=h, json={"version": "9"})
    assert bad.status_code == 404


def test_drift_in_metrics_and_shadow_is_never_returned(served: TestClient) -> None:
    h = _h(served, "admin")
    served.put("/v1/registry/pneumo/aliases/shadow", headers=h, json={"version": "2"})
    for i in range(4):
        r = served.post(
            "/v1/models/pneumo/predict",
            headers=_h(served, "clinician"),
            files={"file": ("a.png", _png(200 + i))},  # much brighter than training images
        )
        assert r.json()["model"]["version"] == "1"
    svc = served.app.state.service
    svc.shadow.drain()
    assert svc.shadow.compared == 4
    text = served.get("/metrics").text
    psi = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("medlearn_input_drift_psi{") and 'feature="intensity"' in line
    ]
    assert psi and psi[0] > 0.25  # a major shift in intensity
    assert "medlearn_shadow_agreement_ratio" in text


def test_dev_no_auth_is_explicit_and_flagged(db_url: str, tiny_bundle: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_bundle, name="pneumo")
    with TestClient(create_app(ServeSettings(db_url=db_url, auth=False))) as client:
        r = client.get("/v1/models")
        assert r.status_code == 200 and r.headers["x-medlearn-auth"] == "disabled"


def test_web_page_is_served_with_csp(served: TestClient) -> None:
    r = served.get("/")
    assert r.status_code == 200 and "Sign in" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert served.get("/static/app.js").status_code == 200

"""JSON-record prediction and CDS Hooks cards through the app, with a real tabular bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
from medlearn.serving.audit import verify_chain
from medlearn.serving.store import migrate

pytest.importorskip("medlearn.clinical.tabular")


@pytest.fixture()
def tab_client(db_url: str, tiny_tabular_bundle: Path):
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(tiny_tabular_bundle, name="risk")
    ModelRegistry(engine).promote("risk", "1")
    key = KeyStore(engine).create("clinician")[1]
    with TestClient(create_app(ServeSettings(db_url=db_url, batch_wait_ms=1.0))) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        client.engine = engine  # type: ignore[attr-defined]
        yield client
    engine.dispose()


def test_json_records_predict_with_calibrated_probabilities(tab_client: TestClient) -> None:
    records = [
        {"age": 75.0, "chol": 210, "smoker": "yes"},
        {"age": 35.0, "chol": 190, "smoker": "no"},
    ]
    r = tab_client.post("/v1/models/risk/predict", json={"records": records})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "risk", "version": "1"}
    rows = body["predictions"]
    assert len(rows) == 2
    for row in rows:
        probs = row["probabilities"]
        assert len(probs) == 2
        assert abs(sum(probs.values()) - 1.0) < 1e-6
        assert 0.0 <= row["uncertainty"]["entropy"] <= 1.0
    p_old_smoker = list(rows[0]["probabilities"].values())[-1]
    p_young = list(rows[1]["probabilities"].values())[-1]
    assert p_old_smoker > p_young  # the synthetic signal: risk rises with age and smoking

    fhir = tab_client.post(
        "/v1/models/risk/predict?format=fhir&patient=Patient/p1", json={"records": records[:1]}
    )
    assert fhir.status_code == 200
    assert fhir.json()["resourceType"] == "RiskAssessment"


def test_bad_records_are_422_and_every_one_is_named(tab_client: TestClient) -> None:
    records = [
        {"age": "old", "chol": 200, "smoker": "no"},
        {"age": 50.0, "chol": 200, "smoker": "no"},
        {"age": 50.0, "chol": 200, "smoker": "sometimes"},
    ]
    r = tab_client.post("/v1/models/risk/predict", json={"records": records})
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert len(details) == 2
    text = str(details)
    assert "row1" in text and "row3" in text and "row2" not in text
    assert "age" in text and "smoker" in text


def test_cds_hooks_discovery_and_patient_view_card(tab_client: TestClient) -> None:
    disc = tab_client.get("/cds-services")
    assert disc.status_code == 200
    services = {s["id"]: s for s in disc.json()["services"]}
    assert services["risk"]["hook"] == "patient-view"

    hook = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "prefetch": {
            "observations": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "Observation",
                            "code": {"text": "age"},
                            "valueQuantity": {"value": 78},
                        }
                    },
                    {
                        "resource": {
                            "resourceType": "Observation",
                            "code": {"text": "chol"},
                            "valueQuantity": {"value": 230},
                        }
                    },
                    {
                        "resource": {
                            "resourceType": "Observation",
                            "code": {"text": "smoker"},
                            "valueString": "yes",
                        }
                    },
                ],
            }
        },
    }
    r = tab_client.post("/cds-services/risk", json=hook)
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    assert card["summary"].startswith("risk: ")
    assert card["indicator"] in ("info", "warning")
    assert "version 1" in card["detail"]
    assert card["source"]["label"] == "medlearn risk v1"

    rep = verify_chain(tab_client.engine)  # type: ignore[attr-defined]
    assert rep.ok and rep.rows == 2  # the discovery and the hook call

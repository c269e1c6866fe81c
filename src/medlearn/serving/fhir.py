"""FHIR R4 output: a prediction as a ``RiskAssessment`` that references the model as a ``Device``.

Resources are built as plain dicts and validated with ``fhir.resources`` (its ``R4B`` package:
R4B changed nothing in ``RiskAssessment`` or ``Device`` from R4, and ``fhir.resources`` ships
R4B and R5 only). The Device is *contained* in the RiskAssessment (``#model``), so one
response is self-contained; several predictions come back as a ``collection`` Bundle.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

__all__ = ["device_resource", "risk_assessment", "to_fhir"]


def _ml() -> str:
    import medlearn

    return str(medlearn.__version__)


def device_resource(name: str, version: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The model as a FHIR ``Device`` (software): name, version, medlearn version, intended use."""
    card = manifest.get("model_card") or {}
    return {
        "resourceType": "Device",
        "id": "model",
        "identifier": [{"system": "urn:medlearn:model", "value": f"{name}:{version}"}],
        "status": "active",
        "deviceName": [{"name": name, "type": "model-name"}],
        "type": {"text": "Machine-learning decision-support model (software)"},
        "version": [
            {"type": {"text": "model version"}, "value": str(version)},
            {"type": {"text": "medlearn"}, "value": str(manifest.get("medlearn_version") or _ml())},
        ],
        "note": [{"text": str(card.get("intended_use", "Research use; not a medical device."))}],
    }


def risk_assessment(
    row: Mapping[str, Any],
    *,
    name: str,
    version: str,
    manifest: Mapping[str, Any],
    patient: str | None = None,
) -> dict[str, Any]:
    """One prediction row as a validated R4 ``RiskAssessment`` dict.

    Args:
        row: a prediction row from the server (``prediction``, ``probabilities``,
            ``uncertainty``; survival rows may carry ``risk``).
        name, version: the registered model.
        manifest: the bundle manifest (for the Device).
        patient: a FHIR reference such as ``Patient/123``; without it the subject is a
            display-only reference.
    """
    predictions: list[dict[str, Any]] = []
    probs = row.get("probabilities") or {}
    for cls, p in probs.items():
        item: dict[str, Any] = {
            "outcome": {"text": str(cls)},
            "probabilityDecimal": round(float(p), 6),
        }
        if cls == row.get("prediction"):
            item["qualitativeRisk"] = {"text": "predicted class"}
        predictions.append(item)
    if not predictions and row.get("prediction") is not None:
        predictions.append({"outcome": {"text": str(row["prediction"])}})
    unc = row.get("uncertainty") or {}
    notes = [f"Model {name} version {version}. Decision support only; review by a clinician."]
    if unc:
        notes.append(
            "Uncertainty: " + ", ".join(f"{k}={v}" for k, v in unc.items() if v is not None)
        )
    subject = {"reference": patient} if patient else {"display": "Patient not identified"}
    doc = {
        "resourceType": "RiskAssessment",
        "id": uuid.uuid4().hex,
        "contained": [device_resource(name, version, manifest)],
        "status": "final",
        "subject": subject,
        "occurrenceDateTime": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "performer": {"reference": "#model", "display": f"{name} {version}"},
        "method": {"text": f"medlearn {manifest.get('task', '')} model {name}".strip()},
        "prediction": predictions or None,
        "note": [{"text": t} for t in notes],
    }
    doc = {k: v for k, v in doc.items() if v is not None}
    return _validate(doc)


def to_fhir(
    rows: Sequence[Mapping[str, Any]],
    *,
    name: str,
    version: str,
    manifest: Mapping[str, Any],
    patient: str | None = None,
) -> dict[str, Any]:
    """One row → a RiskAssessment; several → a ``collection`` Bundle of them (validated)."""
    resources = [
        risk_assessment(r, name=name, version=version, manifest=manifest, patient=patient)
        for r in rows
    ]
    if len(resources) == 1:
        return resources[0]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }
    return _validate(bundle)


def _validate(doc: dict[str, Any]) -> dict[str, Any]:
    """Validate with fhir.resources (R4B) and return the JSON-ready dict it produces."""
    from fhir.resources.R4B import get_fhir_model_class

    cls = get_fhir_model_class(doc["resourceType"])
    obj = cls.model_validate(doc)
    return obj.model_dump(mode="json", exclude_none=True)

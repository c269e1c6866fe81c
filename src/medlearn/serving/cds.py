"""CDS Hooks 2.0: a discovery document and ``patient-view`` cards for record-input models.

Only models whose bundle takes patient records (``manifest["input"]["kind"]`` is not
``image``) are offered, as service ``<model name>``. A ``patient-view`` call's prefetch is
mapped to one feature row:

* ``prefetch.patient`` (a FHIR Patient): ``gender`` → feature ``sex`` or ``gender``,
  ``birthDate`` → ``age`` in years, when the model has those features;
* ``prefetch.observations`` (a FHIR searchset Bundle of Observations): each Observation's
  ``code.coding[].code`` or ``code.text`` naming a feature gives its ``valueQuantity.value``
  (or ``valueString`` / ``valueBoolean`` / ``valueCodeableConcept.text``);
* ``prefetch.features`` (a medlearn extension): ``{feature: value}`` taken as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

__all__ = ["card_for", "features_from_prefetch", "input_features", "service_entry"]


def input_features(manifest: Mapping[str, Any]) -> list[str]:
    """Feature names of a record-input bundle (``manifest["input"]["features"]``)."""
    feats = (manifest.get("input") or {}).get("features") or []
    return [f["name"] if isinstance(f, Mapping) else str(f) for f in feats]


def service_entry(name: str, version: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The discovery entry of one model."""
    feats = input_features(manifest)
    return {
        "hook": "patient-view",
        "id": name,
        "title": f"medlearn {name} ({manifest.get('task', 'model')})",
        "description": (
            f"Risk prediction by model {name} version {version} from {len(feats)} patient "
            "features. Decision support only."
        ),
        "prefetch": {
            "patient": "Patient/{{context.patientId}}",
            "observations": "Observation?patient={{context.patientId}}&_sort=-date&_count=200",
        },
    }


def _obs_value(obs: Mapping[str, Any]) -> Any:
    if "valueQuantity" in obs:
        return (obs["valueQuantity"] or {}).get("value")
    for key in ("valueString", "valueBoolean", "valueInteger"):
        if key in obs:
            return obs[key]
    if "valueCodeableConcept" in obs:
        vc = obs["valueCodeableConcept"] or {}
        return vc.get("text") or next((c.get("code") for c in vc.get("coding", [])), None)
    return None


def features_from_prefetch(
    prefetch: Mapping[str, Any], features: Sequence[str], *, today: date | None = None
) -> dict[str, Any]:
    """One feature row from a hook's prefetch (see the module docstring); missing → absent."""
    wanted = set(features)
    row: dict[str, Any] = {}
    patient = prefetch.get("patient") or {}
    if isinstance(patient, Mapping):
        gender = patient.get("gender")
        for name in ("sex", "gender"):
            if gender is not None and name in wanted:
                row[name] = gender
        birth = patient.get("birthDate")
        if birth and "age" in wanted:
            try:
                b = date.fromisoformat(str(birth)[:10])
                t = today or date.today()
                row["age"] = t.year - b.year - ((t.month, t.day) < (b.month, b.day))
            except ValueError:
                pass
    bundle = prefetch.get("observations") or {}
    entries = bundle.get("entry", []) if isinstance(bundle, Mapping) else []
    for entry in entries:  # newest first (the prefetch sorts by -date); keep the first seen
        obs = (entry or {}).get("resource") or {}
        code = obs.get("code") or {}
        names = [c.get("code") for c in code.get("coding", []) if isinstance(c, Mapping)]
        names.append(code.get("text"))
        for n in names:
            if n in wanted and n not in row:
                value = _obs_value(obs)
                if value is not None:
                    row[n] = value
    extra = prefetch.get("features") or {}
    if isinstance(extra, Mapping):
        row.update({k: v for k, v in extra.items() if k in wanted})
    return row


def card_for(row: Mapping[str, Any], *, name: str, version: str) -> dict[str, Any]:
    """A CDS Hooks card for one prediction row."""
    probs = row.get("probabilities") or {}
    pred = row.get("prediction")
    p = probs.get(pred) if pred in probs else None
    positive = list(probs)[-1] if probs else None
    summary = f"{name}: {pred}" + (f" (p = {float(p):.2f})" if p is not None else "")
    unc = row.get("uncertainty") or {}
    detail = [
        f"Model **{name}** version {version} predicts **{pred}**.",
        "Probabilities: " + ", ".join(f"{k} {float(v):.3f}" for k, v in probs.items())
        if probs
        else "",
        f"Uncertainty (normalised entropy): {unc.get('entropy')}" if unc else "",
        "Decision support only: review with the full clinical picture.",
    ]
    return {
        "summary": summary[:140],
        "indicator": "warning" if positive is not None and pred == positive else "info",
        "detail": "\n\n".join(d for d in detail if d),
        "source": {"label": f"medlearn {name} v{version}"},
    }

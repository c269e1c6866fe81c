"""FHIR R4 into the canonical event table (and PhysioNet records out to FHIR, for tests).

Reads a Bundle (``.json``), a single resource, NDJSON (one resource per line) or a folder of
those. Every resource is validated with ``fhir.resources`` (its R4B models, compatible with
R4 for the resources used here); an invalid one gets a :class:`DataValidationError` naming
the file, the resource (type/id, NDJSON line) and the field.

Mapping:

- ``Patient``: the subject; ``gender`` -> Gender; ``birthDate`` -> Age at admission (an
  Age observation, LOINC 30525-0, wins); ``deceasedBoolean`` / ``deceasedDateTime`` -> the
  in-hospital death outcome (absent -> unknown).
- ``Encounter`` (optional): ``period.start`` is the admission time (default: the subject's
  first Observation); a ``type`` code or text naming an ICU type (coronary, cardiac_surgery,
  medical, surgical) -> ICUType.
- ``Observation``: ``code`` -> a PhysioNet variable through :data:`LOINC_TO_VARIABLE` (or a
  coding with system :data:`PHYSIONET_SYSTEM` whose code is the variable name); time from
  ``effectiveDateTime`` / ``effectiveInstant`` / ``effectivePeriod.start``; value from
  ``valueQuantity`` / ``valueInteger`` / ``valueDecimal`` (text values are kept as text).
  Height (8302-2) is a static descriptor; the first body weight is also the static Weight.
  Unknown codes stay in the table as ``system|code`` and are counted as ``unknown_variable``.
- ``Condition`` / ``MedicationRequest``: text events ``condition:<code>`` /
  ``medication:<code>`` at onset / authoredOn time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.clinical._ts_data import PHYSIONET_VARIABLES, QualityCounter, build_records
from medlearn.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    from medlearn.data import Record

__all__ = ["LOINC_TO_VARIABLE", "PHYSIONET_SYSTEM", "read_fhir", "record_to_fhir_bundle"]

LOINC = "http://loinc.org"
#: Coding system for PhysioNet 2012 variable names without a LOINC code (e.g. MechVent).
PHYSIONET_SYSTEM = "https://physionet.org/content/challenge-2012/variables"

#: LOINC code -> PhysioNet 2012 variable (common ICU vitals and labs).
LOINC_TO_VARIABLE: dict[str, str] = {
    "8867-4": "HR",
    "8480-6": "SysABP",
    "8462-4": "DiasABP",
    "8478-0": "MAP",
    "76534-7": "NISysABP",
    "76535-4": "NIDiasABP",
    "76536-2": "NIMAP",
    "8310-5": "Temp",
    "9279-1": "RespRate",
    "2708-6": "SaO2",
    "59408-5": "SaO2",
    "9269-2": "GCS",
    "2345-7": "Glucose",
    "2160-0": "Creatinine",
    "3094-0": "BUN",
    "4544-3": "HCT",
    "6690-2": "WBC",
    "777-3": "Platelets",
    "2823-3": "K",
    "2951-2": "Na",
    "1963-8": "HCO3",
    "2524-7": "Lactate",
    "2744-1": "pH",
    "2703-7": "PaO2",
    "2019-8": "PaCO2",
    "9187-6": "Urine",
    "3150-0": "FiO2",
    "19123-9": "Mg",
    "1751-7": "Albumin",
    "6768-6": "ALP",
    "1742-6": "ALT",
    "1920-8": "AST",
    "1975-2": "Bilirubin",
    "2093-3": "Cholesterol",
    "10839-9": "TroponinI",
    "6598-7": "TroponinT",
    "29463-7": "Weight",
}
_VARIABLE_TO_LOINC = {}
for _code, _var in LOINC_TO_VARIABLE.items():
    _VARIABLE_TO_LOINC.setdefault(_var, _code)
_STATIC_LOINC = {"30525-0": "Age", "8302-2": "Height"}
_SUPPORTED = ("Patient", "Observation", "Condition", "MedicationRequest", "Encounter")
_MAX_ERRORS = 20


def _iter_raw(path: Path) -> Iterator[tuple[str, int | None, Any]]:
    """(file, NDJSON line or None, resource dict) for every resource under ``path``."""
    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".ndjson", ".jsonl"))
        if path.is_dir()
        else [path]
    )
    for f in files:
        text = f.read_text(encoding="utf-8")
        if f.suffix.lower() in (".ndjson", ".jsonl"):
            for n, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    yield str(f), n, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataValidationError(
                        f"{f}: line {n} is not valid JSON ({exc.msg}).",
                        hint="NDJSON holds one FHIR resource per line.",
                    ) from exc
            continue
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataValidationError(
                f"{f}: not valid JSON ({exc.msg}, line {exc.lineno}).",
                hint="Give a FHIR Bundle, a single resource, or NDJSON (.ndjson).",
            ) from exc
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            for i, entry in enumerate(doc.get("entry") or []):
                res = entry.get("resource") if isinstance(entry, dict) else None
                if res is None:
                    raise DataValidationError(
                        f"{f}: Bundle entry {i} has no 'resource'.",
                        hint="Every Bundle entry needs a resource.",
                    )
                yield str(f), None, res
        else:
            yield str(f), None, doc


def _validate(items: Iterable[tuple[str, int | None, Any]], quality: QualityCounter) -> list[Any]:
    """Validate with fhir.resources (R4B models); collect every error, raise them together."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    out: list[Any] = []
    errors: list[str] = []
    for where, line, raw in items:
        at = f"{where}" + (f" line {line}" if line is not None else "")
        if not isinstance(raw, dict) or "resourceType" not in raw:
            errors.append(f"{at}: not a FHIR resource (no resourceType)")
            continue
        rtype = str(raw["resourceType"])
        rid = raw.get("id", "?")
        if rtype not in _SUPPORTED:
            quality["unsupported_resource"] += 1
            continue
        try:
            out.append(get_fhir_model_class(rtype).model_validate(raw))
        except ValidationError as exc:
            for err in exc.errors()[:3]:
                field = ".".join(str(x) for x in err.get("loc", ())) or "(resource)"
                errors.append(f"{at}: {rtype}/{rid} field {field}: {err.get('msg', 'invalid')}")
    if errors:
        more = f" (and {len(errors) - _MAX_ERRORS} more)" if len(errors) > _MAX_ERRORS else ""
        raise DataValidationError(
            f"{len(errors)} invalid FHIR resource field(s): "
            + "; ".join(errors[:_MAX_ERRORS])
            + more,
            hint="Fix the named fields (FHIR R4); validate with fhir.resources.",
        )
    return out


def _ref_id(ref: Any) -> str | None:
    if ref is None or not getattr(ref, "reference", None):
        return None
    return str(ref.reference).rsplit("/", 1)[-1]


def _as_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        try:
            dt = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _codings(concept: Any) -> list[tuple[str, str, str]]:
    """(system, code, display) of a CodeableConcept's codings, plus its text."""
    if concept is None:
        return []
    out = [(c.system or "", c.code or "", c.display or "") for c in concept.coding or []]
    if concept.text:
        out.append(("", "", concept.text))
    return out


def _variable(concept: Any) -> tuple[str | None, str]:
    """(PhysioNet variable or static name, fallback code) of an Observation code."""
    cods = _codings(concept)
    for system, code, _ in cods:
        if system == LOINC and code in _STATIC_LOINC:
            return "static:" + _STATIC_LOINC[code], code
        if system == LOINC and code in LOINC_TO_VARIABLE:
            return LOINC_TO_VARIABLE[code], code
        if system == PHYSIONET_SYSTEM and code in PHYSIONET_VARIABLES:
            return code, code
    system, code, display = cods[0] if cods else ("", "", "")
    return None, f"{system}|{code or display}"


def _obs_time(obs: Any) -> Any:
    if getattr(obs, "effectiveDateTime", None) is not None:
        return obs.effectiveDateTime
    if getattr(obs, "effectiveInstant", None) is not None:
        return obs.effectiveInstant
    period = getattr(obs, "effectivePeriod", None)
    return period.start if period is not None else None


def _obs_value(obs: Any) -> tuple[float, str | None]:
    q = getattr(obs, "valueQuantity", None)
    if q is not None and q.value is not None:
        return float(q.value), None
    for name in ("valueInteger", "valueDecimal"):
        v = getattr(obs, name, None)
        if v is not None:
            return float(v), None
    if getattr(obs, "valueBoolean", None) is not None:
        return float(bool(obs.valueBoolean)), None
    if getattr(obs, "valueString", None) is not None:
        return math.nan, str(obs.valueString)
    cc = getattr(obs, "valueCodeableConcept", None)
    if cc is not None:
        c = _codings(cc)
        return math.nan, (c[0][1] or c[0][2]) if c else None
    return math.nan, None


def read_fhir(
    path: str | Path,
    *,
    hours: float = 48.0,
    name: str | None = None,
    outcomes: str | Path | None = None,
    missing_outcome: str = "exclude",
    quality: QualityCounter | None = None,
    variables: Iterable[str] = PHYSIONET_VARIABLES,
) -> list[Record]:
    """Read FHIR R4 resources into records (see the module docstring for the mapping).

    Args:
        path: a Bundle / resource ``.json``, an ``.ndjson`` file, or a folder of them.
        hours: observation window from admission.
        name: set name in record ids (default the file or folder name).
        outcomes: not supported for FHIR (outcomes come from ``Patient.deceased[x]``).
        missing_outcome: ``"exclude"`` or ``"keep"`` patients without ``deceased[x]`` when
            some patients have it (when none has, all are kept with target ``None``).
        quality: counter to update.
        variables: known variable codes.

    Raises:
        DataValidationError: invalid JSON or invalid resources (file, type/id, line, field).
    """
    path = Path(path)
    if outcomes:
        raise ConfigError(
            "data.options.outcomes is not supported for FHIR input.",
            hint="Record the outcome in Patient.deceasedBoolean / deceasedDateTime.",
        )
    quality = quality if quality is not None else QualityCounter()
    resources = _validate(_iter_raw(path), quality)
    patients: dict[str, Any] = {}
    admission: dict[str, datetime] = {}
    icu: dict[str, str] = {}
    raw_events: dict[str, list[tuple[datetime, str, float, str | None]]] = {}
    static_obs: dict[str, dict[str, tuple[datetime, float]]] = {}
    extra_codes: set[str] = set()
    for res in resources:
        rtype = res.get_resource_type()
        if rtype == "Patient":
            if res.id in patients:
                quality["duplicate_record"] += 1
                continue
            patients[str(res.id)] = res
            continue
        sid = _ref_id(getattr(res, "subject", None))
        if sid is None:
            quality["resource_without_subject"] += 1
            continue
        if rtype == "Encounter":
            start = _as_dt(res.period.start) if res.period is not None else None
            if start is not None and (sid not in admission or start < admission[sid]):
                admission[sid] = start
            for concept in res.type or []:
                for _, code, display in _codings(concept):
                    for cand in (code, display):
                        if cand and cand.strip().lower() in (
                            "coronary",
                            "cardiac_surgery",
                            "medical",
                            "surgical",
                        ):
                            icu[sid] = cand.strip().lower()
            continue
        if rtype == "Observation":
            when = _as_dt(_obs_time(res))
            var, fallback = _variable(res.code)
            value, text = _obs_value(res)
            if when is None:
                quality["unparseable_time"] += 1
                continue
            if var is not None and var.startswith("static:"):
                if math.isfinite(value):
                    static_obs.setdefault(sid, {}).setdefault(var[7:], (when, value))
                continue
            if not math.isfinite(value) and text is None:
                quality["unparseable_value"] += 1
                continue
            raw_events.setdefault(sid, []).append((when, var or fallback, value, text))
            continue
        if rtype == "Condition":
            when = _as_dt(res.onsetDateTime or res.recordedDate)
            label = "condition"
            concept = res.code
        else:  # MedicationRequest
            when = _as_dt(res.authoredOn)
            label = "medication"
            concept = res.medicationCodeableConcept
        cods = _codings(concept)
        code = f"{label}:{(cods[0][1] or cods[0][2]) if cods else 'unknown'}"
        if when is None:
            quality["unparseable_time"] += 1
            continue
        extra_codes.add(code)
        raw_events.setdefault(sid, []).append((when, code, math.nan, cods[0][2] if cods else None))
    subjects = list(patients) + [s for s in raw_events if s not in patients]
    quality["events_without_patient"] += sum(len(raw_events[s]) for s in subjects[len(patients) :])
    events: dict[str, dict[str, Any]] = {}
    static: dict[str, dict[str, Any]] = {}
    has_outcome = any(
        p.deceasedBoolean is not None or p.deceasedDateTime is not None for p in patients.values()
    )
    outs: dict[str, dict[str, Any]] | None = {} if has_outcome else None
    for sid in subjects:
        evs = sorted(raw_events.get(sid, []), key=lambda e: e[0])
        obs_times = [e[0] for e in evs if not e[1].startswith(("condition:", "medication:"))]
        base = admission.get(sid) or (min(obs_times) if obs_times else None)
        if base is None and evs:
            base = evs[0][0]
        t = np.array([(e[0] - base).total_seconds() / 3600.0 for e in evs]) if evs else np.zeros(0)
        events[sid] = {
            "time": t,
            "code": np.array([e[1] for e in evs], dtype=str) if evs else np.zeros(0, dtype=str),
            "value": np.array([e[2] for e in evs], dtype=np.float64),
            "text": [e[3] for e in evs] if any(e[3] is not None for e in evs) else None,
        }
        st: dict[str, Any] = {}
        pat = patients.get(sid)
        sobs = static_obs.get(sid, {})
        age = sobs.get("Age", (None, None))[1]
        if age is None and pat is not None and pat.birthDate is not None and base is not None:
            b = pat.birthDate
            age = base.year - b.year - ((base.month, base.day) < (b.month, b.day))
        st["Age"] = float(age) if age is not None else None
        st["Gender"] = pat.gender if pat is not None and pat.gender in ("female", "male") else None
        st["Height"] = sobs.get("Height", (None, None))[1]
        st["ICUType"] = icu.get(sid)
        weights = [e for e in evs if e[1] == "Weight" and math.isfinite(e[2])]
        st["Weight"] = weights[0][2] if weights else None
        static[sid] = st
        if outs is not None and pat is not None:
            dead = pat.deceasedBoolean
            if dead is None and pat.deceasedDateTime is not None:
                dead = True
            if dead is not None:
                outs[sid] = {"target": int(bool(dead))}
    return build_records(
        subjects,
        events,
        static,
        outs,
        set_name=name or path.name.split(".")[0],
        hours=hours,
        quality=quality,
        variables=[*variables, *sorted(extra_codes)],
        missing_outcome=missing_outcome,
    )


def record_to_fhir_bundle(
    record: Mapping[str, Any], *, admission: datetime | None = None
) -> dict[str, Any]:
    """A canonical record as a FHIR R4 collection Bundle (Patient, Encounter, Observations).

    The inverse of :func:`read_fhir` for PhysioNet-like records: used to test that FHIR input
    goes through the same featurisation, and to export examples. Times are rounded to whole
    seconds.

    Args:
        record: a record from :func:`~medlearn.clinical.timeseries.read_timeseries`.
        admission: the admission time (default 2012-01-01T00:00Z).
    """
    base = admission or datetime(2012, 1, 1, tzinfo=timezone.utc)
    pid = str(record["patient_id"])
    st = record["input"].get("static") or {}
    subject = {"reference": f"Patient/{pid}"}
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if st.get("Gender") in ("female", "male"):
        patient["gender"] = st["Gender"]
    if record.get("target") is not None:
        patient["deceasedBoolean"] = bool(record["target"])
    entries: list[dict[str, Any]] = [{"resource": patient}]
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": f"{pid}-icu",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": subject,
        "period": {"start": base.isoformat()},
    }
    if st.get("ICUType"):
        encounter["type"] = [{"text": str(st["ICUType"])}]
    entries.append({"resource": encounter})

    def obs(n: int, system: str, code: str, when: datetime, value: float) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "Observation",
                "id": f"{pid}-{n}",
                "status": "final",
                "code": {"coding": [{"system": system, "code": code}]},
                "subject": subject,
                "effectiveDateTime": when.isoformat(),
                "valueQuantity": {"value": float(value)},
            }
        }

    n = 0
    for name, loinc in (("Age", "30525-0"), ("Height", "8302-2")):
        if isinstance(st.get(name), float):
            entries.append(obs(n, LOINC, loinc, base, st[name]))
            n += 1
    ev = record["input"]["events"]
    for t, code, value in zip(ev["time"], ev["code"], ev["value"], strict=True):
        if not math.isfinite(float(value)):
            continue
        code = str(code)
        system, c = (
            (LOINC, _VARIABLE_TO_LOINC[code])
            if code in _VARIABLE_TO_LOINC
            else (PHYSIONET_SYSTEM, code)
        )
        when = base + timedelta(seconds=round(float(t) * 3600))
        entries.append(obs(n, system, c, when, float(value)))
        n += 1
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}

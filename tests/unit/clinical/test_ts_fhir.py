"""FHIR R4 input: validation errors, mapping, and the same featurisation as PhysioNet."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from medlearn.clinical.timeseries import (
    TimeSeriesFeaturizer,
    read_timeseries,
    record_to_fhir_bundle,
)
from medlearn.errors import DataValidationError


def _physionet_tar(root: Path) -> Path:
    rng = np.random.default_rng(3)
    path = root / "set-f.tar.gz"
    rows = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    with tarfile.open(path, "w:gz") as tar:
        for i in range(4):
            rid = 150000 + i
            lines = [
                "Time,Parameter,Value",
                f"00:00,RecordID,{rid}",
                f"00:00,Age,{40 + 10 * i}",
                f"00:00,Gender,{i % 2}",
                "00:00,Height,170.2",
                f"00:00,ICUType,{i + 1}",
                "00:00,Weight,-1",
            ]
            for h in range(0, 47, 2):
                m = int(rng.integers(0, 60))
                lines += [
                    f"{h:02d}:{m:02d},HR,{int(rng.integers(50, 130))}",
                    f"{h:02d}:{m:02d},NISysABP,{int(rng.integers(90, 160))}",
                    f"{h:02d}:{m:02d},MechVent,1",
                ]
                if h % 12 == 0:
                    lines += [
                        f"{h + 1:02d}:00,Lactate,{rng.uniform(0.5, 4):.1f}",
                        f"{h + 1:02d}:00,pH,{rng.uniform(7.2, 7.5):.2f}",
                    ]
            data = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo(f"set-f/{rid}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            rows.append(f"{rid},10,2,5,-1,{i % 2}")
    (root / "Outcomes-f.txt").write_text("\n".join(rows) + "\n")
    return path


def test_fhir_bundle_featurises_like_physionet(tmp_path: Path) -> None:
    phys = read_timeseries(_physionet_tar(tmp_path))
    bundles = [record_to_fhir_bundle(r) for r in phys.records]
    one = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [e for b in bundles for e in b["entry"]],
    }
    (tmp_path / "stays.json").write_text(json.dumps(one))
    fhir = read_timeseries(tmp_path / "stays.json")
    assert [r["patient_id"] for r in fhir.records] == [r["patient_id"] for r in phys.records]
    assert [r["target"] for r in fhir.records] == [r["target"] for r in phys.records]
    for a, b in zip(phys.records, fhir.records, strict=True):
        assert a["input"]["static"] == b["input"]["static"]
        assert a["meta"]["icu_type"] == b["meta"]["icu_type"]
    f = TimeSeriesFeaturizer().fit(phys.records)
    x, y = f.transform(phys.records), f.transform(fhir.records)
    assert x["mask"].sum() > 100
    for k in x:
        np.testing.assert_allclose(x[k], y[k], rtol=1e-6, atol=1e-6, err_msg=k)


def test_ndjson_unknown_codes_conditions_and_missing_outcome(tmp_path: Path) -> None:
    lines = [
        {
            "resourceType": "Patient",
            "id": "p1",
            "gender": "female",
            "birthDate": "1950-06-01",
            "deceasedBoolean": False,
        },
        {"resourceType": "Patient", "id": "p2"},
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2020-03-01T08:00:00Z",
            "valueQuantity": {"value": 88},
        },
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "99999-9"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2020-03-01T09:00:00Z",
            "valueQuantity": {"value": 1},
        },
        {
            "resourceType": "Condition",
            "id": "c1",
            "code": {
                "coding": [
                    {"system": "http://snomed.info/sct", "code": "91302008", "display": "Sepsis"}
                ]
            },
            "subject": {"reference": "Patient/p1"},
            "onsetDateTime": "2020-03-01T10:00:00Z",
        },
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "norepinephrine"},
            "subject": {"reference": "Patient/p1"},
            "authoredOn": "2020-03-01T11:00:00Z",
        },
    ]
    path = tmp_path / "ehr.ndjson"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    data = read_timeseries(path)
    assert [r["patient_id"] for r in data.records] == ["p1"]  # p2 has no outcome: excluded
    q = data.info["data_quality"]
    assert q["missing_outcome"] == 1 and q["unknown_variable"] == 1
    rec = data.records[0]
    ev = rec["input"]["events"]
    assert list(ev["code"]) == [
        "HR",
        "http://loinc.org|99999-9",
        "condition:91302008",
        "medication:norepinephrine",
    ]
    np.testing.assert_allclose(ev["time"], [0, 1, 2, 3])
    assert ev["text"][2] == "Sepsis"
    assert rec["input"]["static"]["Age"] == 69.0 and rec["target"] == 0


def test_invalid_resource_named(tmp_path: Path) -> None:
    good = {"resourceType": "Patient", "id": "p1"}
    bad = {
        "resourceType": "Observation",
        "id": "obs-7",
        "status": "final",
        "code": {"text": "HR"},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": "fast"},
    }
    path = tmp_path / "bad.ndjson"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataValidationError) as err:
        read_timeseries(path)
    msg = str(err.value)
    assert "line 2" in msg and "Observation/obs-7" in msg and "valueQuantity.value" in msg
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "q", "gender": 5}}],
    }
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    with pytest.raises(DataValidationError, match=r"Patient/q field gender"):
        read_timeseries(tmp_path / "b.json")

"""A molecule property bundle served through the app: JSON records of SMILES."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
from medlearn.serving.audit import verify_chain
from medlearn.serving.store import migrate

pytest.importorskip("rdkit")

_SMILES = ["C" * k + suffix for k in range(1, 9) for suffix in ("", "O", "N", "Cl", "C(=O)O")]


@pytest.fixture(scope="module")
def mol_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny D-MPNN regressing the carbon count (trains in a few seconds)."""
    from medlearn.cli import main

    work = tmp_path_factory.mktemp("serving-mol")
    rng = np.random.default_rng(0)
    rows = ["smiles,y"] + [f"{s},{s.count('C') + rng.normal(0, 0.1):.3f}" for s in _SMILES]
    (work / "mols.csv").write_text("\n".join(rows) + "\n")
    runfile = work / "run.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "carbons",
                "task": "regression",
                "data": {
                    "path": str(work / "mols.csv"),
                    "target": "y",
                    "split": {"method": "random", "fractions": [0.7, 0.15, 0.15], "seed": 0},
                },
                "model": {"name": "dmpnn", "params": {"hidden": 32, "ffn_hidden": 32}},
                "training": {
                    "epochs": 60,
                    "lr": 3.0e-3,
                    "seed": 0,
                    "progress": False,
                    "num_threads": 1,
                },
                "evaluation": {"bootstrap": 20},
            }
        )
    )
    assert main(["train", str(runfile), "--out", str(work / "run")]) == 0
    return work / "run" / "bundle"


@pytest.fixture()
def mol_client(db_url: str, mol_bundle: Path):
    engine = make_engine(db_url)
    migrate(engine)
    ModelRegistry(engine).push(mol_bundle, name="carbons")
    ModelRegistry(engine).promote("carbons", "1")
    key = KeyStore(engine).create("clinician")[1]
    with TestClient(create_app(ServeSettings(db_url=db_url, batch_wait_ms=1.0))) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        client.engine = engine  # type: ignore[attr-defined]
        yield client
    engine.dispose()


def test_smiles_records_are_predicted_and_audited(mol_client: TestClient) -> None:
    r = mol_client.post(
        "/v1/models/carbons/predict", json={"records": [{"smiles": "CCCCCCCC"}, {"smiles": "C"}]}
    )
    assert r.status_code == 200, r.text
    rows = r.json()["predictions"]
    assert len(rows) == 2
    assert rows[0]["prediction"] > rows[1]["prediction"]  # eight carbons vs one
    report = verify_chain(mol_client.engine)  # type: ignore[attr-defined]
    assert report.ok and report.rows == 1


def test_a_bad_smiles_is_named_by_row(mol_client: TestClient) -> None:
    r = mol_client.post(
        "/v1/models/carbons/predict",
        json={"records": [{"smiles": "CCO"}, {"smiles": "C1CC"}, {"smiles": ""}]},
    )
    assert r.status_code == 422, r.text
    text = str(r.json()["error"]["details"])
    assert "row 2" in text and "row 3" in text and "row 1" not in text

"""End to end: train the generation example with tiny settings, then `medlearn sample`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("rdkit")
pytest.importorskip("selfies")

import medlearn.cli.sample  # noqa: E402,F401  (registers the verb if _app does not yet)
from medlearn.cli import main  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "molecules" / "generate_vae.yaml"

SMILES = """CCO CCN CC(=O)O CC(=O)Oc1ccccc1C(=O)O Cn1cnc2c1c(=O)n(C)c(=O)n2C c1ccccc1 Oc1ccccc1
Nc1ccccc1 Clc1ccccc1 Brc1ccccc1 CC(C)Cc1ccc(C(C)C(=O)O)cc1 CC(=O)Nc1ccc(O)cc1 c1ccc2ccccc2c1
c1ccncc1 C1CCCCC1 C1CCNCC1 C1CCOC1 O=C(O)c1ccccc1 CC(C)O CCCCCC CCOC(C)=O COc1ccccc1
Cc1ccccc1 Cc1ccc(C)cc1 O=C1CCCCC1 NC(=O)c1ccccc1 CC(N)C(=O)O NCC(=O)O OCC(O)CO CC#N
O=C(c1ccccc1)c1ccccc1 c1ccc(Oc2ccccc2)cc1 CN(C)C CCCl FC(F)(F)c1ccccc1 CS(C)(=O)=O c1ccsc1
c1cc[nH]c1 c1ccoc1 CC1=CC(=O)C=CC1=O OC1CCCCC1 CCCCO CC(C)(C)O c1ccc2[nH]ccc2c1 Nc1ccccn1
CCOCC NC1CCCCC1 O=C(O)CCC(=O)O c1ccc(-c2ccccc2)cc1 CCCCCCO CCCCN CC(C)CO""".split()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example run file, pointed at a 52-molecule CSV with a tiny network (seconds)."""
    work = tmp_path_factory.mktemp("generate-e2e")
    csv = work / "molecules.csv"
    csv.write_text("smiles\n" + "\n".join(SMILES) + "\n")
    cfg = yaml.safe_load(EXAMPLE.read_text())
    assert cfg["task"] == "generation" and cfg["model"]["name"] == "selfies_vae"
    cfg["data"] = {"path": str(csv), "split": {"method": "random", "seed": 0}}
    cfg["model"]["params"].update(
        {
            "embed_dim": 16,
            "encoder_dim": 16,
            "hidden_dim": 32,
            "latent_dim": 8,
            "n_samples": 300,
            "optimize_starts": 4,
            "optimize_steps": 5,
        }
    )
    cfg["training"].update({"epochs": 2, "batch_size": 16, "progress": False, "num_threads": 1})
    cfg["evaluation"] = {"bootstrap": 50}
    runfile = work / "run.yaml"
    runfile.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(runfile), "--out", str(work / "run")]) == 0
    return work / "run"


def test_train_writes_generation_metrics_and_artifacts(trained_run: Path) -> None:
    doc = json.loads((trained_run / "metrics.json").read_text())
    test = doc["metrics"]["test"]
    for name in ("validity", "uniqueness_1k", "uniqueness_10k", "novelty", "int_div", "snn"):
        assert set(test[name]) >= {"value", "ci95"}
    assert test["validity"]["value"] == 1.0  # SELFIES
    assert test["validity"]["ci95"] == [1.0, 1.0]
    assert doc["task"] == "generation" and doc["generation"]["n_samples"] == 300
    assert doc["generation"]["molecules_per_second"] > 0
    assert doc["split"]["method"] == "random"
    frame = pd.read_parquet(trained_run / "predictions.parquet")
    assert list(frame.columns) == ["id", "patient_id", "split", "smiles", "valid"]
    assert len(frame) == 300 and set(frame["split"]) == {"sample"}
    samples = pd.read_csv(trained_run / "samples.csv")
    assert len(samples) == 300 and samples["valid"].all()
    assert (trained_run / "optimization.json").is_file()
    report = (trained_run / "report.html").read_text()
    for title in ("Sampled molecules", "Property distributions", "Latent-space optimisation"):
        assert title in report


def test_sample_prints_smiles_and_a_summary(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["sample", str(trained_run / "bundle"), "-n", "20", "--seed", "3"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 20  # every SELFIES sample is valid
    assert "validity 1.000" in err and "unique" in err and "novelty" in err
    assert main(["sample", str(trained_run), "-n", "20", "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines  # seeded; run dir accepted


def test_sample_writes_csv(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples.csv"
    assert main(["sample", str(trained_run), "-n", "15", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["smiles", "valid"] and len(frame) == 15


def test_sample_refuses_bad_arguments(trained_run: Path) -> None:
    assert main(["sample", str(trained_run), "-n", "0"]) == 2
    assert main(["sample", str(trained_run), "-n", "5", "--temperature", "0"]) == 2
    assert main(["sample", str(trained_run / "missing"), "-n", "5"]) == 2


def test_predict_gives_likelihood_and_reconstruction(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["predict", str(trained_run), "CCO", "C1CC"]) == 1  # one bad input
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert "error" in rows[0] and "row" not in rows[0]["error"]
    assert rows[1]["smiles"] == "CCO" and rows[1]["nll"] > 0 and "reconstruction" in rows[1]


CHAR_RNN_EXAMPLE = EXAMPLE.with_name("generate_char_rnn.yaml")


def test_char_rnn_example_trains_and_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the second generator's example, shrunk the same way: a language model has no latent
    # space, so there is no optimisation section; SELFIES tokens make every sample valid
    csv = tmp_path / "molecules.csv"
    csv.write_text("smiles\n" + "\n".join(SMILES) + "\n")
    cfg = yaml.safe_load(CHAR_RNN_EXAMPLE.read_text())
    assert cfg["task"] == "generation" and cfg["model"]["name"] == "char_rnn"
    assert cfg["data"]["dataset"] == "moleculenet_smiles"
    cfg["data"] = {"path": str(csv), "split": {"method": "random", "seed": 0}}
    cfg["model"]["params"].update({"embed_dim": 16, "hidden_dim": 32, "n_samples": 200})
    cfg["training"].update({"epochs": 2, "batch_size": 16, "progress": False, "num_threads": 1})
    cfg["evaluation"] = {"bootstrap": 50}
    runfile = tmp_path / "run.yaml"
    runfile.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", str(runfile), "--out", str(run)]) == 0
    assert "optimisation" not in capsys.readouterr().out
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["model"] == "char_rnn" and doc["generation"]["n_samples"] == 200
    assert doc["metrics"]["test"]["validity"]["value"] == 1.0
    samples = pd.read_csv(run / "samples.csv")
    assert len(samples) == 200 and samples["valid"].all()
    assert not (run / "optimization.json").exists()
    report = (run / "report.html").read_text()
    assert "Sampled molecules" in report and "Latent-space optimisation" not in report
    capsys.readouterr()
    assert main(["sample", str(run / "bundle"), "-n", "25", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert "validity 1.000" in err and len(out.strip().splitlines()) == 25

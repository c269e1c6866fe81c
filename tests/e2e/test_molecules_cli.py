"""The molecules domain through the CLI on small slices of the MoleculeNet files: train the
shipped examples (ESOL regression with an ensemble, BBBP on a scaffold split, Tox21 with 12
targets and missing labels), then predict with a bad SMILES, evaluate, and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("rdkit")

from medlearn.cli import main  # noqa: E402
from medlearn.config import load_config  # noqa: E402

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "molecules"
#: Small, fast networks: the e2e tests check the plumbing, not the accuracy.
TINY = [
    "--set",
    "model.params.hidden=32",
    "--set",
    "model.params.ffn_hidden=32",
    "--set",
    "training.epochs=2",
    "--set",
    "training.max_minutes=1",
    "--set",
    "evaluation.bootstrap=50",
]


def _slice(data_dir: Path, name: str, rows: int, out: Path) -> Path:
    """The header and the first ``rows`` data rows of a MoleculeNet CSV."""
    src = data_dir / "moleculenet" / f"{name}.csv"
    lines = src.read_text().splitlines()[: rows + 1]
    out.write_text("\n".join(lines) + "\n")
    return out


def _train(example: str, data: Path, out: Path, *extra: str) -> Path:
    args = ["train", str(EXAMPLES / example), "--set", f"data.path={data}", *TINY, *extra]
    assert main([*args, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", ["esol.yaml", "bbbp_scaffold.yaml", "tox21.yaml"])
def test_examples_are_valid_run_files(name: str) -> None:
    cfg = load_config(EXAMPLES / name)
    assert cfg.model.name == "dmpnn" and cfg.training.max_minutes <= 10
    if name == "tox21.yaml":
        assert cfg.task == "multilabel" and len(cfg.data.target) == 12


@pytest.fixture(scope="module")
def esol_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("esol")
    data = _slice(data_dir, "esol", 160, work / "esol_slice.csv")
    return _train("esol.yaml", data, work / "run", "--set", "training.ensemble=2")


def test_esol_train_writes_split_metrics_uncertainty_and_report(esol_run: Path) -> None:
    doc = json.loads((esol_run / "metrics.json").read_text())
    assert doc["task"] == "regression" and doc["handler"] == "molecules"
    assert doc["split"]["method"] == "random" and doc["split"]["seed"] == 0
    assert sum(doc["n"].values()) == 160 and doc["n"]["train"] > doc["n"]["test"] > 0
    rmse = doc["metrics"]["test"]["rmse"]
    assert rmse["value"] > 0 and rmse["ci95"][0] <= rmse["value"] <= rmse["ci95"][1]
    uq = doc["uncertainty"]
    assert len(uq["variance_scale"]) == 1 and uq["variance_scale"][0] > 0
    assert len(uq["variance_offset"]) == 1 and uq["variance_offset"][0] >= 0
    assert len(uq["variance_share"]) == 1 and 0 <= uq["variance_share"][0] <= 1
    assert set(uq["test"]) >= {"spearman", "nll", "coverage_68", "coverage_95"}
    frame = pd.read_parquet(esol_run / "predictions.parquet")
    assert {"id", "patient_id", "split", "smiles", "target", "prediction", "variance"} <= set(
        frame.columns
    )
    assert frame["id"].str.match(r"^row\d+$").all()
    attributions = json.loads((esol_run / "attributions.json").read_text())
    assert 1 <= len(attributions["items"]) <= 6
    page = (esol_run / "report.html").read_text()
    assert 'id="atom-attributions"' in page and "data:image/svg+xml;base64," in page
    assert 'id="uncertainty"' in page and "observed against expected coverage" in page


def test_predict_gives_one_prediction_and_one_error(
    esol_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(
        [
            "predict",
            str(esol_run / "bundle"),
            "CCO",
            "not_a_smiles",
            "--explain",
            "--explain-dir",
            str(tmp_path / "exp"),
        ]
    )
    assert code == 1  # one input was bad
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    errors = [x for x in lines if "error" in x]
    preds = [x for x in lines if "prediction" in x]
    assert len(errors) == 1 and len(preds) == 1 and len(lines) == 2
    assert errors[0]["error"].strip()
    assert preds[0]["smiles"] == "CCO"
    assert isinstance(preds[0]["prediction"], float) and preds[0]["uncertainty"] >= 0
    assert Path(preds[0]["explanation"]["file"]).is_file()


def test_evaluate_scores_new_labelled_molecules(
    esol_run: Path, data_dir: Path, tmp_path: Path
) -> None:
    data = _slice(data_dir, "esol", 40, tmp_path / "new.csv")
    out = tmp_path / "eval"
    assert main(["evaluate", str(esol_run), "--data", str(data), "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["n"]["test"] == 40 and doc["metrics"]["test"]["rmse"]["value"] > 0
    assert "test" in doc["uncertainty"]
    assert 'id="atom-attributions"' in (out / "report.html").read_text()


def test_bbbp_scaffold_binary(data_dir: Path, tmp_path: Path) -> None:
    data = _slice(data_dir, "bbbp", 200, tmp_path / "bbbp_slice.csv")
    run = _train("bbbp_scaffold.yaml", data, tmp_path / "run")
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["split"]["method"] == "scaffold_balanced"
    assert doc["threshold"] is not None and "auroc" in doc["metrics"]["test"]
    splits = json.loads((run / "splits.json").read_text())
    frame = pd.read_parquet(run / "predictions.parquet")
    assert {"smiles", "prob_1"} <= set(frame.columns)
    assert set(frame.loc[frame["split"] == "test", "id"]) == set(splits["test"])
    assert 'id="atom-attributions"' in (run / "report.html").read_text()


def test_tox21_multilabel_with_missing_labels(data_dir: Path, tmp_path: Path) -> None:
    data = _slice(data_dir, "tox21", 400, tmp_path / "tox21_slice.csv")
    run = _train("tox21.yaml", data, tmp_path / "run")
    doc = json.loads((run / "metrics.json").read_text())
    test = doc["metrics"]["test"]
    assert set(test["per_task"]) == set(load_config(EXAMPLES / "tox21.yaml").data.target)
    defined = [v["auroc"]["value"] for v in test["per_task"].values() if v["auroc"]["value"]]
    assert defined and test["auroc"]["value"] == pytest.approx(
        sum(defined) / len(defined), abs=1e-5
    )
    undefined = [v["auroc"] for v in test["per_task"].values() if v["auroc"]["value"] is None]
    assert all("note" in u for u in undefined)
    frame = pd.read_parquet(run / "predictions.parquet")
    assert frame["target_NR-AR"].isna().any()  # missing labels stay missing
    assert frame["prediction_SR-p53"].between(0, 1).all()
    page = (run / "report.html").read_text()
    assert 'id="per-task"' in page and 'id="atom-attributions"' in page


def test_esol_blend_through_the_cli(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _slice(data_dir, "esol", 160, tmp_path / "esol_slice.csv")
    run = _train(
        "esol.yaml",
        data,
        tmp_path / "run",
        "--set",
        "training.ensemble=1",
        "--set",
        "model.params.blend=fp_gradient_boosting",
    )
    doc = json.loads((run / "metrics.json").read_text())
    blend = doc["training"]["blend"]
    assert blend["model"] == "fp_gradient_boosting"
    (w,) = blend["weights"].values()
    assert 0.0 <= w <= 1.0
    assert set(blend["val_rmse"]) == {"network", "baseline", "blend"}
    assert (
        blend["val_rmse"]["blend"]
        <= min(blend["val_rmse"]["network"], blend["val_rmse"]["baseline"]) + 1e-9
    )
    assert (run / "bundle" / "blend_target_0.skops").is_file()
    page = (run / "report.html").read_text()
    assert 'id="blend"' in page and f'<td class="num">{w:.1f}</td>' in page
    # one network and a baseline: their disagreement is the uncertainty, unless one has it all
    assert ("uncertainty" in doc) == (0.0 < w < 1.0)
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(run / "bundle"),
                "CCO",
                "c1ccccc1O",
                "--explain",
                "--explain-dir",
                str(tmp_path / "exp"),
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["smiles"] for x in lines] == ["CCO", "Oc1ccccc1"]
    assert all(isinstance(x["prediction"], float) for x in lines)
    assert all(Path(x["explanation"]["file"]).is_file() for x in lines)


def test_descriptor_pretraining_then_fine_tuning(data_dir: Path, tmp_path: Path) -> None:
    """The two shipped run files chained: pretrain on descriptor targets, fine-tune FreeSolv."""
    pre_data = _slice(data_dir, "esol", 80, tmp_path / "esol_slice.csv")
    pre = _train("pretrain_descriptors.yaml", pre_data, tmp_path / "pre")
    doc = json.loads((pre / "metrics.json").read_text())
    assert doc["task"] == "regression" and doc["metrics"]["test"]["rmse"]["value"] > 0
    targets = json.loads((pre / "bundle" / "bundle.json").read_text())["targets"]
    assert len(targets) > 50 and all(t.startswith("rdkit:") for t in targets)

    fine_data = _slice(data_dir, "freesolv", 80, tmp_path / "freesolv_slice.csv")
    run = _train(
        "freesolv_finetune.yaml",
        fine_data,
        tmp_path / "fine",
        "--set",
        f"model.init_from={pre}",
        "--set",
        "training.ensemble=1",
    )
    doc = json.loads((run / "metrics.json").read_text())
    copied = doc["training"]["init_from"]
    assert copied["source"] == str(pre) and copied["encoder"] > 0
    assert copied["encoder"] <= copied["tensors"] < copied["of"]
    assert doc["metrics"]["test"]["rmse"]["value"] > 0
    blend = doc["training"]["blend"]  # the example blends both baselines
    assert blend["model"] == ["fp_gradient_boosting", "fp_kernel_ridge"]
    weights = blend["weights"]["expt"]
    assert set(weights) == set(blend["model"]) and sum(weights.values()) <= 1 + 1e-9
    assert "fp_kernel_ridge" in blend["search"]
    # ... then refits them on training and validation together (blend_refit)
    parts = json.loads((run / "splits.json").read_text())
    assert blend["refit"]["molecules"] == len(parts["train"]) + len(parts["val"])

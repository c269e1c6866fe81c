"""The molecule task handlers with a tiny fake learner: masked multi-target metrics with
per-task values, undefined targets, ensemble uncertainty and its calibration, the split in
metrics.json, predict rows with attribution drawings, evaluate and the report sections."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rdkit")

from rdkit import Chem  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from medlearn.config import validate_config  # noqa: E402
from medlearn.data import LoadedData, make_record  # noqa: E402
from medlearn.molecules import _task  # noqa: E402
from medlearn.registry import TASKS  # noqa: E402
from medlearn.tasks import RunContext  # noqa: E402
from medlearn.training import FitReport  # noqa: E402
from medlearn.training.learner import Explanation  # noqa: E402

SMILES = [
    "CCO",
    "CCN",
    "CCCC",
    "c1ccccc1",
    "c1ccccc1O",
    "CC(=O)O",
    "CC(=O)Nc1ccc(O)cc1",
    "CCOC(=O)C",
    "C1CCCCC1",
    "c1ccncc1",
    "OCC(O)CO",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
]


def _record(i: int, target) -> dict:
    smi = Chem.MolToSmiles(Chem.MolFromSmiles(SMILES[i % len(SMILES)]))
    pid = hashlib.sha1(f"{smi}{i}".encode()).hexdigest()[:16]
    return make_record(f"row{i + 1}", smi, target, patient_id=pid, meta={"scaffold": ""})


class FakeLearner:
    """Predictions and ensemble variances stored per record id; atoms = atom index - 1."""

    def __init__(self, targets, out, var, classes=None) -> None:
        self.targets = targets
        self.classes = classes
        self.out = out
        self.var = var
        self.explained: list[list[int]] = []

    def predict_logits(self, records, tta=False):
        return np.stack([self.out[r["id"]] for r in records])

    def predict_with_uncertainty(self, records):
        pred = self.predict_logits(records)
        if self.var is None:
            return pred, None
        return pred, np.stack([self.var[r["id"]] for r in records])

    def explain(self, records, targets):
        self.explained.append(list(targets))
        out = []
        for rec, t in zip(records, targets, strict=True):
            n = Chem.MolFromSmiles(rec["input"]).GetNumAtoms()
            out.append(Explanation(target=t, method="fake", atoms=np.arange(n) - 1.0))
        return out


def _cfg(task: str, targets, bootstrap: int = 200, metrics=None):
    ev = {"bootstrap": bootstrap}
    if metrics:
        ev["metrics"] = metrics
    return validate_config(
        {
            "task": task,
            "data": {
                "path": "mols.csv",
                "target": targets,
                "split": {"method": "scaffold_balanced", "seed": 3, "fractions": [0.8, 0.1, 0.1]},
            },
            "model": {"name": "random_forest"},
            "training": {"seed": 0},
            "evaluation": ev,
        }
    )


def _ctx(cfg, parts, learner, run_dir: Path) -> RunContext:
    return RunContext(
        cfg=cfg,
        data=LoadedData(records=[r for p in parts.values() for r in p]),
        parts=parts,
        learner=learner,
        fit=FitReport(0.0, [1], ["x"]),
        run_dir=run_dir,
        echo=lambda _: None,
    )


# -- regression ----------------------------------------------------------------------------------
def _regression(n: int, seed: int, names, missing: float = 0.25, inflate: float = 4.0):
    """Targets with missing labels; errors ~ N(0, sd_i), reported variance inflate * sd_i**2."""
    rng = np.random.default_rng(seed)
    t = len(names)
    records, out, var = [], {}, {}
    for i in range(n):
        y = rng.normal(size=t)
        sd = rng.uniform(0.1, 1.0, size=t)
        pred = y + rng.normal(size=t) * sd
        y_obs = np.where(rng.random(t) < missing, np.nan, y)
        target = float(y_obs[0]) if t == 1 else [float(v) for v in y_obs]
        rec = _record(seed * 1000 + i, target)
        records.append(rec)
        out[rec["id"]] = pred
        var[rec["id"]] = inflate * sd**2
    return records, out, var


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory):
    """Two targets with missing labels, val and test, an ensemble's variances (run once)."""
    run_dir = tmp_path_factory.mktemp("mol-regression")
    names = ["logS", "logP"]
    val, o1, v1 = _regression(150, 1, names)
    test, o2, v2 = _regression(200, 2, names)
    learner = FakeLearner(names, {**o1, **o2}, {**v1, **v2})
    cfg = _cfg("regression", names)
    handler = TASKS.get("molecules:regression")()
    outcome = handler.run(_ctx(cfg, {"train": [], "val": val, "test": test}, learner, run_dir))
    return handler, outcome, cfg, learner, test, run_dir


def test_regression_masks_missing_labels_and_reports_per_task(regression_run) -> None:
    _, outcome, _, learner, test, _ = regression_run
    block = outcome.metrics["test"]
    assert set(block) == {"rmse", "mae", "r2", "per_task"}
    assert set(block["per_task"]) == {"logS", "logP"}
    per = []
    for k, name in enumerate(["logS", "logP"]):
        y = np.array([r["target"][k] for r in test])
        p = np.array([learner.out[r["id"]][k] for r in test])
        ok = ~np.isnan(y)
        assert 0 < ok.sum() < len(y)  # some labels are missing
        rmse = float(np.sqrt(np.mean((y[ok] - p[ok]) ** 2)))
        entry = block["per_task"][name]["rmse"]
        assert entry["value"] == pytest.approx(rmse, abs=1e-5)
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
        per.append(rmse)
    assert block["rmse"]["value"] == pytest.approx(np.mean(per), abs=1e-5)
    lo, hi = block["rmse"]["ci95"]
    assert lo < block["rmse"]["value"] < hi


def test_regression_frame_columns_and_split_doc(regression_run) -> None:
    _, outcome, _, _, _, _ = regression_run
    frame = outcome.predictions
    for col in ("id", "patient_id", "split", "smiles", "target_logS", "prediction_logP"):
        assert col in frame.columns
    assert {"variance_logS", "variance_logP"} <= set(frame.columns)
    assert frame["target_logS"].isna().any()
    assert set(frame["split"]) == {"val", "test"}
    assert outcome.doc["split"] == {
        "method": "scaffold_balanced",
        "seed": 3,
        "fractions": [0.8, 0.1, 0.1],
    }
    assert outcome.doc["targets"][0]["name"] == "logS"
    assert 0 < outcome.doc["targets"][0]["n_labelled"]["test"] < 200


def test_regression_uncertainty_is_rescaled_on_val_and_calibrated(regression_run) -> None:
    _, outcome, _, _, _, _ = regression_run
    scale = outcome.manifest["uncertainty"]["variance_scale"]
    assert len(scale) == 2
    assert all(0.15 < s < 0.4 for s in scale)  # the fake inflates variances 4x
    offset = outcome.manifest["uncertainty"]["variance_offset"]
    assert len(offset) == 2 and all(0 <= c < 0.05 for c in offset)  # errors follow the std
    uq = outcome.doc["uncertainty"]["test"]
    assert uq["spearman"]["value"] > 0.3  # errors grow with the reported std
    assert uq["coverage_68"]["value"] == pytest.approx(0.68, abs=0.08)
    assert uq["coverage_95"]["value"] == pytest.approx(0.95, abs=0.05)
    area = uq["miscalibration_area"]
    assert area["value"] < 0.08
    assert area["ci95"][0] <= area["value"] <= area["ci95"][1]  # bias-corrected interval
    assert np.isfinite(uq["nll"]["value"])
    assert set(uq["per_task"]) == {"logS", "logP"}
    frame = outcome.predictions
    test = frame[frame["split"] == "test"]
    z = (test["prediction_logS"] - test["target_logS"]) / np.sqrt(test["variance_logS"])
    assert float(np.mean(np.abs(z.dropna()) <= 1.0)) == pytest.approx(
        uq["per_task"]["logS"]["coverage_68"]["value"], abs=1e-6
    )


def test_uncalibrated_variance_has_poor_coverage_before_scaling(tmp_path: Path) -> None:
    names = ["y"]
    val, o1, v1 = _regression(150, 1, names, missing=0.0)
    test, o2, v2 = _regression(200, 2, names, missing=0.0)
    learner = FakeLearner(names, {**o1, **o2}, {**v1, **v2})
    handler = TASKS.get("molecules:regression")()
    only_test = handler.run(
        _ctx(_cfg("regression", "y"), {"train": [], "test": test}, learner, tmp_path)
    )
    assert "variance_scale" not in only_test.manifest["uncertainty"]  # no val: no scaling
    raw = only_test.doc["uncertainty"]["test"]["coverage_68"]["value"]
    assert raw > 0.9  # a 4x inflated variance covers far too much


def test_single_target_regression_is_flat(tmp_path: Path) -> None:
    from medlearn.evaluation import evaluate_predictions

    val, o1, v1 = _regression(60, 1, ["y"], missing=0.0)
    test, o2, v2 = _regression(80, 2, ["y"], missing=0.0)
    learner = FakeLearner(["y"], {**o1, **o2}, {**v1, **v2})
    handler = TASKS.get("molecules:regression")()
    cfg = _cfg("regression", "y")
    outcome = handler.run(_ctx(cfg, {"train": [], "val": val, "test": test}, learner, tmp_path))
    assert {"target", "prediction", "variance", "smiles"} <= set(outcome.predictions.columns)
    assert "per_task" not in outcome.metrics["test"]
    y = np.array([r["target"] for r in test])
    p = np.array([o2[r["id"]][0] for r in test])
    ref = evaluate_predictions(
        y,
        p,
        task="regression",
        metrics=["rmse", "mae", "r2"],
        bootstrap=200,
        seed=0,
        groups=[r["patient_id"] for r in test],
    )
    assert outcome.metrics["test"] == ref  # same resamples as the shared bootstrap
    pooled = handler.score(outcome.predictions[outcome.predictions["split"] == "test"], cfg)
    assert pooled == outcome.metrics["test"]


def test_single_model_has_no_uncertainty(tmp_path: Path) -> None:
    test, out, _ = _regression(40, 2, ["y"], missing=0.0)
    learner = FakeLearner(["y"], out, None)
    outcome = TASKS.get("molecules:regression")().run(
        _ctx(_cfg("regression", "y"), {"train": [], "test": test}, learner, tmp_path)
    )
    assert "variance" not in outcome.predictions.columns
    assert "uncertainty" not in outcome.doc and "uncertainty" not in outcome.manifest
    rows = TASKS.get("molecules:regression")().predict(learner, {"name": "m"}, test[:2])
    assert "uncertainty" not in rows[0]


def test_attributions_json_and_report_sections(regression_run) -> None:
    handler, outcome, cfg, learner, _, run_dir = regression_run
    payload = json.loads((run_dir / "attributions.json").read_text())
    assert payload["split"] == "test" and payload["target"] == "logS"
    assert len(payload["items"]) == 6 and learner.explained[0] == [0] * 6
    item = payload["items"][0]
    assert len(item["atoms"]) == Chem.MolFromSmiles(item["smiles"]).GetNumAtoms()
    assert outcome.doc["attributions"]["n"] == 6
    doc = {"metrics": outcome.metrics, **outcome.doc}
    parts = handler.report_sections(run_dir, doc, outcome.predictions, cfg, outcome.manifest)
    keys = [k for k, _, _ in parts.sections]
    assert keys == ["per-task", "scatter", "uncertainty", "atom-attributions"]
    body = dict((k, b) for k, _, b in parts.sections)
    assert "data:image/svg+xml;base64," in body["atom-attributions"]
    assert "macro mean" in body["per-task"] and "logP" in body["per-task"]
    assert "data:image/png;base64," in body["uncertainty"]


def test_full_report_builds(regression_run) -> None:
    from medlearn.evaluation import ReportInputs, build_report

    handler, outcome, cfg, _, _, run_dir = regression_run
    doc = {"task": "regression", "metrics": outcome.metrics, **outcome.doc}
    parts = handler.report_sections(run_dir, doc, outcome.predictions, cfg, outcome.manifest)
    page = build_report(
        ReportInputs(
            title="t", metrics_doc=doc, predictions=outcome.predictions, sections=parts.sections
        )
    )
    assert 'id="atom-attributions"' in page and "split: scaffold_balanced, seed 3" in page


def test_regression_predict_rows_and_explanations(regression_run, tmp_path: Path) -> None:
    handler, outcome, _, learner, test, _ = regression_run
    manifest = {"name": "m", **outcome.manifest}
    rows = handler.predict(learner, manifest, test[:3], explain_dir=tmp_path / "exp")
    assert [r["input"] for r in rows] == [r["id"] for r in test[:3]]
    assert rows[0]["smiles"] == test[0]["input"]
    assert set(rows[0]["prediction"]) == {"logS", "logP"}
    assert rows[0]["prediction"]["logS"] == pytest.approx(learner.out[test[0]["id"]][0], abs=1e-6)
    scale = manifest["uncertainty"]["variance_scale"][0]
    offset = manifest["uncertainty"]["variance_offset"][0]
    std = float(np.sqrt(scale * learner.var[test[0]["id"]][0] + offset))
    assert rows[0]["uncertainty"]["logS"] == pytest.approx(std, abs=1e-5)
    svg = Path(rows[0]["explanation"]["file"])
    assert svg.is_file() and svg.parent == tmp_path / "exp" and "<svg" in svg.read_text()


def test_regression_evaluate_applies_the_stored_scale(regression_run, tmp_path: Path) -> None:
    handler, outcome, cfg, learner, test, _ = regression_run
    out = handler.evaluate(learner, {"name": "m", **outcome.manifest}, cfg, test, tmp_path / "ev")
    assert out.metrics["test"]["rmse"] == outcome.metrics["test"]["rmse"]
    assert out.doc["uncertainty"]["test"] == outcome.doc["uncertainty"]["test"]
    assert (tmp_path / "ev" / "attributions.json").is_file()


# -- multilabel ----------------------------------------------------------------------------------
def _multilabel(n: int, seed: int, names, one_class: str | None = None):
    rng = np.random.default_rng(seed)
    records, out, var = [], {}, {}
    for i in range(n):
        z = rng.normal(size=len(names)) * 2
        y = (rng.random(len(names)) < 1 / (1 + np.exp(-z))).astype(float)
        y[rng.random(len(names)) < 0.3] = np.nan
        if one_class is not None:
            k = names.index(one_class)
            y[k] = 0.0 if not np.isnan(y[k]) else np.nan
        rec = _record(seed * 1000 + i, [float(v) for v in y])
        records.append(rec)
        out[rec["id"]] = z
        p = 1 / (1 + np.exp(-z))
        var[rec["id"]] = p * (1 - p) * 0.1
    return records, out, var


def test_multilabel_per_task_auc_with_undefined_task(tmp_path: Path) -> None:
    names = ["NR-AR", "SR-ARE", "SR-MMP"]
    val, o1, v1 = _multilabel(80, 1, names)
    test, o2, v2 = _multilabel(150, 2, names, one_class="SR-MMP")
    learner = FakeLearner(names, {**o1, **o2}, {**v1, **v2})
    cfg = _cfg("multilabel", names, metrics=["auroc", "auprc", "accuracy"])
    handler = TASKS.get("molecules:multilabel")()
    outcome = handler.run(_ctx(cfg, {"train": [], "val": val, "test": test}, learner, tmp_path))
    block = outcome.metrics["test"]
    assert set(block) == {"auroc", "auprc", "per_task"}  # accuracy is not a score metric
    undefined = block["per_task"]["SR-MMP"]["auroc"]
    assert undefined["value"] is None and "one class" in undefined["note"]
    aucs = []
    for k, name in enumerate(names[:2]):
        y = np.array([r["target"][k] for r in test])
        p = 1 / (1 + np.exp(-np.array([o2[r["id"]][k] for r in test])))
        ok = ~np.isnan(y)
        auc = roc_auc_score(y[ok], p[ok])
        assert block["per_task"][name]["auroc"]["value"] == pytest.approx(auc, abs=1e-6)
        ap = average_precision_score(y[ok], p[ok])
        assert block["per_task"][name]["auprc"]["value"] == pytest.approx(ap, abs=1e-6)
        aucs.append(auc)
    assert block["auroc"]["value"] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert "SR-MMP" in block["auroc"]["note"]
    lo, hi = block["auroc"]["ci95"]
    assert lo < block["auroc"]["value"] < hi
    assert outcome.metrics["val"]["per_task"]["SR-MMP"]["auroc"]["value"] is not None
    frame = outcome.predictions
    assert frame["prediction_SR-ARE"].between(0, 1).all()
    assert {"variance_NR-AR", "target_SR-MMP", "smiles"} <= set(frame.columns)
    uq = outcome.doc["uncertainty"]["test"]
    assert uq["misclassification_auroc"]["value"] > 0.5  # p(1-p) flags the errors
    pooled = handler.score(frame[frame["split"] == "test"], cfg)
    assert pooled == block


def test_multilabel_predict_report_and_evaluate(tmp_path: Path) -> None:
    names = ["a", "b"]
    test, out, var = _multilabel(60, 2, names)
    learner = FakeLearner(names, out, var)
    cfg = _cfg("multilabel", names, bootstrap=50)
    handler = TASKS.get("molecules:multilabel")()
    outcome = handler.run(_ctx(cfg, {"train": [], "test": test}, learner, tmp_path))
    rows = handler.predict(learner, {"name": "m", **outcome.manifest}, test[:2], tmp_path / "x")
    assert set(rows[0]["prediction"]) == {"a", "b"}
    assert 0 <= rows[0]["prediction"]["a"] <= 1
    top = int(np.argmax(out[test[0]["id"]]))
    assert rows[0]["explanation"]["target"] == names[top]
    doc = {"task": "multilabel", "metrics": outcome.metrics, **outcome.doc}
    parts = handler.report_sections(tmp_path, doc, outcome.predictions, cfg, outcome.manifest)
    keys = [k for k, _, _ in parts.sections]
    assert keys[:2] == ["per-task", "roc-per-task"] and "atom-attributions" in keys
    ev = handler.evaluate(learner, outcome.manifest, cfg, test, tmp_path / "ev")
    assert ev.metrics["test"]["auroc"] == outcome.metrics["test"]["auroc"]


# -- one binary target ---------------------------------------------------------------------------
def _binary(n: int, seed: int):
    rng = np.random.default_rng(seed)
    records, out, var = [], {}, {}
    for i in range(n):
        z = rng.normal() * 2
        y = int(rng.random() < 1 / (1 + np.exp(-z)))
        rec = _record(seed * 1000 + i, y)
        records.append(rec)
        out[rec["id"]] = np.array([0.0, z])
        p = 1 / (1 + np.exp(-z))
        var[rec["id"]] = np.array([p * (1 - p) * 0.05])
    return records, out, var


class HeldOutLearner(FakeLearner):
    """A FakeLearner whose validation outputs were kept from before a blend refit
    (``blend_refit``): ``held`` answers for exactly the validation records, as the real
    learner does; ``asked`` lists the record ids sent to ``predict_with_uncertainty``."""

    def __init__(self, *args, held, val_ids, **kw) -> None:
        super().__init__(*args, **kw)
        self.held, self.val_ids, self.asked = held, val_ids, []

    def predict_with_uncertainty(self, records):
        self.asked += [r["id"] for r in records]
        return super().predict_with_uncertainty(records)

    def heldout_with_uncertainty(self, records):
        if [r["id"] for r in records] != self.val_ids:
            return None
        return (
            np.stack([self.held[r["id"]][0] for r in records]),
            np.stack([self.held[r["id"]][1] for r in records]),
        )


def test_refitted_blends_are_scored_and_calibrated_on_held_out_validation_outputs(
    tmp_path: Path,
) -> None:
    names = ["logS", "logP"]
    val, o1, v1 = _regression(150, 1, names)
    test, o2, v2 = _regression(200, 2, names)
    # what the refitted model says about validation: nearly right, with a tiny variance
    held = {k: (o1[k], v1[k]) for k in o1}
    refit = dict(o2)
    for r in val:
        refit[r["id"]] = np.nan_to_num(np.asarray(r["target"], dtype=float))
    learner = HeldOutLearner(
        names,
        refit,
        {**{k: v * 1e-4 for k, v in v1.items()}, **v2},
        held=held,
        val_ids=[r["id"] for r in val],
    )
    cfg = _cfg("regression", names)
    outcome = TASKS.get("molecules:regression")().run(
        _ctx(cfg, {"train": [], "val": val, "test": test}, learner, tmp_path)
    )
    frame = outcome.predictions
    got = frame[frame["split"] == "val"][["prediction_logS", "prediction_logP"]].to_numpy()
    assert np.allclose(got, np.stack([o1[r["id"]] for r in val]))
    assert set(learner.asked) == {r["id"] for r in test}  # validation never re-predicted
    assert outcome.metrics["val"]["rmse"]["value"] > 0.1  # not the refit's near-zero error
    # the variance scale is fitted on the held-out variances (reported ~4x the error
    # variance), not on the refit's 1e-4 of them
    assert all(0.1 < s < 1.0 for s in outcome.doc["uncertainty"]["variance_scale"])


def test_binary_calibration_uses_held_out_validation_outputs(tmp_path: Path) -> None:
    val, o1, v1 = _binary(80, 1)
    test, o2, v2 = _binary(120, 2)
    flipped = {k: -v for k, v in o1.items()}  # validation as a refit would see it: any other
    learner = HeldOutLearner(
        ["p_np"],
        {**flipped, **o2},
        {**v1, **v2},
        classes=["negative", "positive"],
        held={k: (o1[k], v1[k]) for k in o1},
        val_ids=[r["id"] for r in val],
    )
    cfg = _cfg("binary", "p_np", metrics=["auroc"])
    outcome = TASKS.get("molecules:binary")().run(
        _ctx(cfg, {"train": [], "val": val, "test": test}, learner, tmp_path)
    )
    y = np.array([r["target"] for r in val])
    z = np.array([o1[r["id"]][1] for r in val])
    assert outcome.metrics["val"]["auroc"]["value"] == pytest.approx(roc_auc_score(y, z), abs=1e-6)
    assert set(learner.asked) == {r["id"] for r in test}


def test_binary_delegates_and_adds_molecule_fields(tmp_path: Path) -> None:
    val, o1, v1 = _binary(80, 1)
    test, o2, v2 = _binary(120, 2)
    learner = FakeLearner(["p_np"], {**o1, **o2}, {**v1, **v2}, classes=["negative", "positive"])
    cfg = _cfg("binary", "p_np", metrics=["auroc", "accuracy"])
    handler = TASKS.get("molecules:binary")()
    outcome = handler.run(_ctx(cfg, {"train": [], "val": val, "test": test}, learner, tmp_path))
    y = np.array([r["target"] for r in test])
    z = np.array([o2[r["id"]][1] for r in test])
    assert outcome.metrics["test"]["auroc"]["value"] == pytest.approx(roc_auc_score(y, z), abs=1e-6)
    assert outcome.doc["threshold"] is not None and "calibration" in outcome.doc
    assert outcome.doc["split"]["method"] == "scaffold_balanced"
    frame = outcome.predictions
    assert {"smiles", "variance", "prob_1", "target"} <= set(frame.columns)
    assert frame["variance"].notna().all()
    assert outcome.doc["uncertainty"]["test"]["misclassification_auroc"]["value"] > 0.5
    assert outcome.manifest["targets"] == ["p_np"]
    assert learner.explained == [[0] * 6]  # the image gallery is not computed
    manifest = {"name": "m", "classes": ["negative", "positive"], **outcome.manifest}
    rows = handler.predict(learner, manifest, test[:2], explain_dir=tmp_path / "e")
    assert set(rows[0]["probabilities"]) == {"negative", "positive"}
    assert rows[0]["smiles"] == test[0]["input"] and rows[0]["uncertainty"] > 0
    assert Path(rows[1]["explanation"]["file"]).is_file()
    doc = {"task": "binary", "metrics": outcome.metrics, **outcome.doc}
    parts = handler.report_sections(tmp_path, doc, frame, cfg, manifest)
    keys = [k for k, _, _ in parts.sections]
    assert keys[:2] == ["uncertainty", "atom-attributions"] and "operating-point" in keys
    ev = handler.evaluate(learner, manifest, cfg, test, tmp_path / "ev")
    assert "smiles" in ev.predictions.columns and "uncertainty" in ev.doc


def test_target_count_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    from medlearn.errors import DataValidationError

    test, out, var = _multilabel(5, 2, ["a", "b"])
    learner = FakeLearner(["a", "b", "c"], out, var)
    with pytest.raises(DataValidationError, match="has 2 target values but the model predicts 3"):
        TASKS.get("molecules:multilabel")().evaluate(learner, {}, None, test, tmp_path)


def test_variance_scale_closed_form() -> None:
    # errors exactly proportional to the std: plain scaling is optimal and the offset stays 0
    y = np.array([[0.0], [0.0], [np.nan]])
    pred = np.array([[1.0], [3.0], [5.0]])
    var = np.array([[1.0], [9.0], [1.0]])
    assert _task.fit_variance_calibration(y, pred, var) == ([1.0], [0.0])  # z = 1, 1
    assert _task.fit_variance_calibration(y, 2 * pred, var) == ([4.0], [0.0])
    assert _task.fit_variance_calibration(y[:1], pred[:1], var[:1]) == ([1.0], [0.0])  # < 2 rows


def test_variance_offset_rescues_members_that_agree_by_chance() -> None:
    # a blend of one network with a baseline: variance ~0 wherever the two agree, but the
    # errors there are as large as elsewhere. Plain z-scaling would inflate every other
    # variance by orders of magnitude to cover them; the fitted offset absorbs them instead.
    rng = np.random.default_rng(0)
    n = 400
    true_var = rng.uniform(0.1, 1.0, n)
    var = np.where(rng.random(n) < 0.2, 1e-9, true_var)  # a fifth of the members agree
    err = rng.normal(0, np.sqrt(true_var + 0.05))
    y, pred = np.zeros((n, 1)), err[:, None]
    (scale,), (offset,) = _task.fit_variance_calibration(y, pred, var[:, None])
    assert 0.0 < offset < 1.0 and 0.2 < scale < 2.0
    z_only = float(np.mean(err**2 / np.maximum(var, 1e-12)))
    assert z_only > 1e4  # what plain scaling would have used

    def nll(s: float, c: float) -> float:
        total = s * var + c
        return float(np.mean(np.log(total) + err**2 / total))

    assert nll(scale, offset) < nll(z_only, 0.0) - 1.0
    z = err / np.sqrt(scale * var + offset)
    assert np.mean(np.abs(z) <= 1.0) == pytest.approx(0.683, abs=0.06)


def test_frame_is_parquet_ready(regression_run, tmp_path: Path) -> None:
    _, outcome, _, _, _, _ = regression_run
    path = tmp_path / "p.parquet"
    outcome.predictions.to_parquet(path, index=False)
    back = pd.read_parquet(path)
    assert list(back.columns) == list(outcome.predictions.columns)


def test_bundles_without_an_offset_are_scaled_as_before() -> None:
    var = np.array([[1.0, 2.0], [3.0, 4.0]])
    old = {"variance_scale": [2.0, 0.5]}  # written before variance_offset existed
    np.testing.assert_allclose(_task._scaled(var, old), [[2.0, 1.0], [6.0, 2.0]])
    new = {"variance_scale": [2.0, 0.5], "variance_offset": [0.1, 0.0]}
    np.testing.assert_allclose(_task._scaled(var, new), [[2.1, 1.0], [6.1, 2.0]])
    assert _task._scaled(None, new) is None


def test_report_coverage_curve_matches_the_miscalibration_area(regression_run) -> None:
    from medlearn.molecules._task_metrics import _LEVELS, coverage_curve
    from medlearn.molecules._task_report import _coverage_png

    _, outcome, _, _, _, _ = regression_run
    frame = outcome.predictions
    test = frame[frame["split"] == "test"]
    z = (test["prediction_logS"] - test["target_logS"]) / np.sqrt(test["variance_logS"])
    curve = coverage_curve(z.to_numpy(dtype=float), _LEVELS)
    assert np.all(np.diff(curve) >= 0) and 0 <= curve[0] <= curve[-1] <= 1
    area = outcome.doc["uncertainty"]["test"]["per_task"]["logS"]["miscalibration_area"]
    assert float(np.mean(np.abs(curve - _LEVELS))) == pytest.approx(area["value"], abs=1e-6)
    assert _coverage_png(test, ["logS", "logP"]).startswith("data:image/png;base64,")
    assert (
        _coverage_png(test.drop(columns=["variance_logS", "variance_logP"]), ["logS", "logP"])
        is None
    )


def test_variance_share_tells_a_flat_calibration_from_a_ranking_one() -> None:
    from medlearn.molecules._task_metrics import LOW_VARIANCE_SHARE, variance_share

    var = np.array([[1.0, 1.0, np.nan], [3.0, 1.0, np.nan]])
    shares = variance_share(var, [1.0, 1e-12, 1.0], [0.0, 0.7, 0.5])
    assert shares[0] == 1.0  # plain scaling: all of it is the ensemble's
    assert shares[1] < 1e-9 < LOW_VARIANCE_SHARE  # all offset
    assert shares[2] is None  # no finite variance (JSON has no NaN)
    assert variance_share(var[:, :1], [1.0], [1.0]) == [0.625]  # median of 1/2 and 3/4


def test_an_ensemble_variance_that_ranks_nothing_is_flagged(tmp_path: Path) -> None:
    from medlearn.molecules._task_report import _uncertainty_section

    # the members' variance is noise: unrelated to the errors, so the calibration keeps
    # (almost) only the offset; the run says so, records the share and the report warns
    names = ["logS"]
    rng = np.random.default_rng(3)
    parts, out, var = {}, {}, {}
    for split, n, offset in (("val", 120, 0), ("test", 80, 500)):
        parts[split] = [_record(offset + i, 0.0) for i in range(n)]
        for rec in parts[split]:
            out[rec["id"]] = np.array([rng.normal(0.0, 1.0)])
            var[rec["id"]] = np.array([rng.uniform(0.01, 1.0)])
    said: list[str] = []
    ctx = _ctx(
        _cfg("regression", names), {"train": [], **parts}, FakeLearner(names, out, var), tmp_path
    )
    ctx.echo = said.append
    outcome = TASKS.get("molecules:regression")().run(ctx)
    block = outcome.doc["uncertainty"]
    assert block["variance_share"][0] < 0.1
    assert any("'logS'" in line and "nearly constant" in line for line in said)
    html = _uncertainty_section(outcome.doc, outcome.predictions, names)
    assert "did not rank the validation errors for logS" in html


def test_a_ranking_ensemble_variance_is_not_flagged(regression_run) -> None:
    from medlearn.molecules._task_report import _uncertainty_section

    _, outcome, _, _, _, _ = regression_run
    block = outcome.doc["uncertainty"]
    assert all(share >= 0.1 for share in block["variance_share"])
    html = _uncertainty_section(outcome.doc, outcome.predictions, ["logS", "logP"])
    assert "did not rank" not in html

"""The classification TaskHandler with a tiny fake learner: calibration candidates, the
operating point, subgroups, decision curves, feature importance and tabular explanations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlearn.config import RunConfig
from medlearn.data import LoadedData, make_record
from medlearn.errors import ConfigError
from medlearn.tasks import RunContext
from medlearn.tasks.classification import ClassificationTask, calibrate
from medlearn.training import FitReport
from medlearn.training.learner import Explanation


class FakeLearner:
    """Logits stored per record; an over-confident binary model (3x the true log-odds)."""

    classes = ["neg", "pos"]

    def __init__(self, logits: dict[str, np.ndarray], importance: bool = False) -> None:
        self.logits = logits
        if importance:
            self.global_importance = self._importance

    def predict_logits(self, records, tta=False):
        return np.stack([self.logits[r["id"]] for r in records])

    def explain(self, records, targets):
        return [
            Explanation(target=t, method="shap_tree", features={"age": 0.4, "bp": -0.9, "x": 0.1})
            for t in targets
        ]

    def _importance(self, records):
        return {
            "features": ["age", "bp", "x"],
            "methods": {
                "shap_mean_abs": [0.4, 0.9, 0.1],
                "permutation": [0.02, 0.05, 0.0],
                "permutation_std": [0.01, 0.01, 0.005],
            },
        }


def _records(n: int, seed: int, n_classes: int = 2):
    rng = np.random.default_rng(seed)
    records, logits = [], {}
    for i in range(n):
        z = rng.normal(size=n_classes) * 1.5
        p = np.exp(z) / np.exp(z).sum()
        y = int(rng.choice(n_classes, p=p))
        rid = f"s{seed}-{i}"
        site = "A" if i % 3 else "B"
        records.append(make_record(rid, None, y, meta={"site": site, "age": 50 + i % 20}))
        logits[rid] = 3.0 * z
    return records, logits


def _cfg(**evaluation) -> RunConfig:
    task = evaluation.pop("task", "binary")
    return RunConfig.model_validate(
        {
            "task": task,
            "data": {"path": "unused"},
            "model": {"name": "simple_cnn"},
            "evaluation": {"bootstrap": 50, "gallery": 0, **evaluation},
        }
    )


def _run(tmp_path: Path, cfg: RunConfig, n_classes: int = 2, importance: bool = False):
    parts, logits = {}, {}
    for seed, split in enumerate(("train", "val", "test")):
        recs, lg = _records(240, seed, n_classes)
        parts[split] = recs
        logits.update(lg)
    learner = FakeLearner(logits, importance=importance)
    data = LoadedData(records=[r for p in parts.values() for r in p], classes=learner.classes)
    ctx = RunContext(
        cfg=cfg,
        data=data,
        parts=parts,
        learner=learner,
        fit=FitReport(fit_seconds=0.0, epochs=[1], stopped_by=["max_epochs"]),
        run_dir=tmp_path,
        echo=lambda _line: None,
    )
    return ClassificationTask().run(ctx), learner, parts


def test_auto_calibration_records_candidates_and_applies_the_chosen_state(tmp_path):
    out, learner, parts = _run(tmp_path, _cfg(calibration="auto", subgroups=["site"]))
    cal = out.doc["calibration"]
    assert set(cal["candidates"]) == {"none", "temperature", "platt", "isotonic"}
    chosen = [m for m, c in cal["candidates"].items() if c["chosen"]]
    assert chosen == [cal["method"]] and cal["method"] != "none"  # logits 3x overconfident
    for c in cal["candidates"].values():
        assert {"val_log_loss", "cv_log_loss", "test_ece", "test_brier"} <= set(c)
    assert cal["candidates"]["none"]["test_ece"] > cal["candidates"][cal["method"]]["test_ece"]
    state = out.manifest["calibration"]
    assert "candidates" not in state and state["method"] == cal["method"]
    test = out.predictions[out.predictions["split"] == "test"]
    again = calibrate(learner.predict_logits(parts["test"]), json.loads(json.dumps(state)))
    np.testing.assert_allclose(test[["prob_0", "prob_1"]].to_numpy(), again, atol=1e-12)
    assert out.doc["uncalibrated"]["test"]["ece"]["value"] == pytest.approx(
        cal["candidates"]["none"]["test_ece"]
    )


@pytest.mark.parametrize(("kind", "target"), [("sensitivity", 0.9), ("specificity", 0.85)])
def test_threshold_for_a_target_rate(tmp_path, kind, target):
    out, _, _ = _run(tmp_path, _cfg(threshold=kind, threshold_target=target))
    sel = out.doc["threshold_selection"]
    assert sel["method"] == kind and sel["target"] == target
    assert sel["threshold"] == out.manifest["threshold"]
    assert sel["val"][kind] >= target  # reached on the validation split
    other = "specificity" if kind == "sensitivity" else "sensitivity"
    assert sel["val"][other] < 1.0
    test = out.predictions[out.predictions["split"] == "test"]
    pos = test["target"] == 1
    called = test["prob_1"] >= sel["threshold"]
    achieved = called[pos].mean() if kind == "sensitivity" else (~called[~pos]).mean()
    assert sel["test"][kind]["value"] == pytest.approx(achieved, abs=1e-6)


def test_subgroups_and_decision_curve_in_metrics_and_report(tmp_path):
    cfg = _cfg(subgroups=["site"])
    out, _, _ = _run(tmp_path, cfg)
    sub = out.doc["subgroups"]
    assert sub["split"] == "test"
    groups = sub["by"]["site"]["groups"]
    assert {g: v["n"] for g, v in groups.items()} == {"A": 160, "B": 80}
    assert set(sub["by"]["site"]["gaps"]) == set(cfg.evaluation.metrics)
    dc = out.doc["decision_curve"]
    assert len(dc["model"]) == 99 and dc["n"] == 240
    assert "subgroup.site" in out.predictions.columns
    doc = {"task": "binary", **out.doc}
    parts = ClassificationTask().report_sections(
        tmp_path, doc, out.predictions, cfg, {"classes": ["neg", "pos"]}
    )
    anchors = [a for a, _, _ in parts.sections]
    assert anchors == ["calibration-methods", "operating-point", "decision-curve", "subgroups"]
    body = dict((a, b) for a, _, b in parts.sections)
    assert "largest gap" in body["subgroups"] and "data:image/png;base64," in body["decision-curve"]


def test_cross_validated_frames_get_subgroups_and_decision_curve_in_the_report(tmp_path):
    cfg = _cfg(subgroups=["site"])
    out, _, _ = _run(tmp_path, cfg)
    frame = out.predictions[out.predictions["split"] == "test"].copy()
    frame["split"] = "cv"
    frame["threshold"] = out.manifest["threshold"]
    parts = ClassificationTask().report_sections(
        tmp_path, {"task": "binary"}, frame, cfg, {"classes": ["neg", "pos"]}
    )
    anchors = [a for a, _, _ in parts.sections]
    assert "subgroups" in anchors and "decision-curve" in anchors


def test_unknown_subgroup_key_lists_available_meta_fields(tmp_path):
    with pytest.raises(ConfigError, match=r"'sex'.*Available meta fields: age, site"):
        _run(tmp_path, _cfg(subgroups=["sex"]))


def test_multiclass_has_calibration_and_subgroups_but_no_decision_curve(tmp_path):
    cfg = _cfg(
        task="multiclass",
        calibration="platt",
        subgroups=["site"],
        metrics=["accuracy", "brier", "ece"],
    )
    out, _, _ = _run(tmp_path, cfg, n_classes=3)
    assert out.doc["calibration"]["method"] == "platt"
    assert out.doc["calibration"]["kind"] == "vector"
    assert "decision_curve" not in out.doc and "threshold_selection" not in out.doc
    assert out.doc["subgroups"]["by"]["site"]["gaps"]["accuracy"] is not None


def test_feature_importance_and_tabular_explanations(tmp_path):
    cfg = _cfg()
    out, learner, parts = _run(tmp_path, cfg, importance=True)
    saved = json.loads((tmp_path / "importance.json").read_text())
    assert saved["split"] == "test" and saved["features"] == ["age", "bp", "x"]
    assert out.doc["importance"]["methods"] == ["permutation", "permutation_std", "shap_mean_abs"]
    assert not (tmp_path / "gallery.npz").exists()  # no image explanations
    parts_ = ClassificationTask().report_sections(
        tmp_path, {"task": "binary", **out.doc}, out.predictions, cfg, {"classes": ["n", "p"]}
    )
    body = dict((a, b) for a, _, b in parts_.sections)
    assert "importance" in body and "bp" in body["importance"]
    rows = ClassificationTask().predict(
        learner,
        {"classes": ["neg", "pos"], **out.manifest},
        parts["test"][:3],
        explain_dir=tmp_path / "explain",
    )
    exp = rows[0]["explanation"]
    assert exp["method"] == "shap_tree"
    assert list(exp["features"]) == ["bp", "age", "x"]  # largest |contribution| first
    assert not (tmp_path / "explain").exists()  # no PNG for tabular explanations


def test_failing_importance_does_not_lose_the_run(tmp_path):
    cfg = _cfg()
    parts, logits = {}, {}
    for seed, split in enumerate(("train", "val", "test")):
        recs, lg = _records(120, seed)
        parts[split] = recs
        logits.update(lg)
    learner = FakeLearner(logits)

    def broken(records):
        raise RuntimeError("boom")

    learner.global_importance = broken
    lines: list[str] = []
    ctx = RunContext(
        cfg=cfg,
        data=LoadedData(records=parts["train"]),
        parts=parts,
        learner=learner,
        fit=FitReport(fit_seconds=0.0, epochs=[1], stopped_by=["x"]),
        run_dir=tmp_path,
        echo=lines.append,
    )
    out = ClassificationTask().run(ctx)
    assert out.doc["importance"] == {"error": "RuntimeError", "split": "test"}
    assert any("feature importance failed" in line for line in lines)


def test_evaluate_applies_the_manifest_calibration_and_analyses_subgroups(tmp_path):
    cfg = _cfg(calibration="isotonic", subgroups=["site"])
    out, learner, parts = _run(tmp_path, cfg)
    manifest = {"classes": ["neg", "pos"], **out.manifest}
    new = ClassificationTask().evaluate(learner, manifest, cfg, parts["test"], tmp_path)
    trained = out.predictions[out.predictions["split"] == "test"].reset_index(drop=True)
    pd.testing.assert_series_equal(new.predictions["prob_1"], trained["prob_1"])
    assert new.doc["subgroups"]["by"]["site"]["groups"]["A"]["n"] == 160
    assert "test" in new.doc["threshold_selection"]


def test_continuous_subgroup_keys_are_cut_at_quartiles(tmp_path):
    out, _, _ = _run(tmp_path, _cfg(subgroups=["age"]))  # age: 20 distinct values 50..69
    groups = out.doc["subgroups"]["by"]["age"]["groups"]
    assert len(groups) == 4 and sum(g["n"] for g in groups.values()) == 240
    assert all(g["status"] == "ok" for g in groups.values())

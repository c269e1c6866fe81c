"""The survival task handler: run, score, evaluate, predict and report sections."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medlearn.clinical.survival import SurvivalLearner, SurvivalSchema, SurvivalTask
from medlearn.config import validate_config
from medlearn.data import LoadedData, make_record
from medlearn.tasks import RunContext, handler_for


def _records(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    x[:, 2] = rng.integers(0, 2, n)
    hr = np.where(x[:, 1] > 0, 1.0, -1.0)  # treatment harms when x1 > 0
    log_risk = x[:, 0] + hr * x[:, 2]
    et = rng.exponential(np.exp(-log_risk))
    ct = rng.exponential(2.0, n)
    t, e = np.minimum(et, ct), (et <= ct).astype(int)
    return [
        make_record(
            f"s{seed}_{i}",
            x[i],
            {"time": float(t[i]), "event": int(e[i])},
            meta={"true_log_hr": float(hr[i])},
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    cfg = validate_config(
        {
            "task": "survival",
            "data": {"path": "unused.csv", "options": {"treatment": "rx"}},
            "model": {"name": "gradient_boosting_survival", "params": {"n_estimators": 60}},
            "evaluation": {"bootstrap": 50},
        }
    )
    parts = {"train": _records(400, 0), "val": _records(100, 1), "test": _records(200, 2)}
    schema = SurvivalSchema(features=["a", "b", "rx"], treatment=2)
    data = LoadedData(
        records=[r for p in parts.values() for r in p], info={"survival": schema.to_dict()}
    )
    learner = SurvivalLearner.from_config(cfg, data)
    run_dir = tmp_path_factory.mktemp("run")
    fit = learner.fit(parts["train"], parts["val"], work_dir=run_dir, resume=False)
    ctx = RunContext(cfg=cfg, data=data, parts=parts, learner=learner, fit=fit, run_dir=run_dir)
    outcome = handler_for("survival").run(ctx)
    return cfg, parts, learner, outcome, run_dir


def test_run_metrics_and_doc(fitted):
    cfg, parts, learner, outcome, _ = fitted
    test = outcome.metrics["test"]
    for name in ("c_index", "uno_c", "integrated_brier", "td_auc"):
        assert test[name]["ci95"] is not None, name
    assert test["c_index"]["value"] > 0.65
    assert len(test["td_auc"]["per_horizon"]) == 3
    assert set(outcome.predictions["split"]) == {"val", "test"}
    assert {"risk", "risk_group", "recommended_arm"} <= set(outcome.predictions.columns)
    rec = outcome.doc["recommendation"]
    assert rec["fraction_truly_better"] > 0.7  # the interaction is learnable
    assert 0 <= rec["logrank_p"] <= 1
    assert outcome.doc["permutation_importance"]["features"][0]["feature"] in ("a", "rx")
    json.dumps(outcome.doc)  # JSON-ready
    assert outcome.manifest["horizons"] == outcome.doc["horizons"]


def test_score_of_pooled_frame_matches_run(fitted):
    cfg, _, _, outcome, _ = fitted
    test = outcome.predictions[outcome.predictions["split"] == "test"]
    scored = SurvivalTask().score(test, cfg)
    assert scored["c_index"]["value"] == outcome.metrics["test"]["c_index"]["value"]


def test_predict_rows_and_evaluate(fitted, tmp_path):
    cfg, parts, learner, outcome, _ = fitted
    manifest = {"name": "t", **outcome.manifest}
    rows = SurvivalTask().predict(learner, manifest, parts["test"][:5], explain_dir=tmp_path)
    assert len(rows) == 5
    row = rows[0]
    assert set(row["survival"]) == {f"{h:g}" for h in manifest["horizons"]}
    assert row["recommended_arm"] in (0, 1) and set(row["risk_by_arm"]) == {"0", "1"}
    assert row["risk_group"] in ("low", "medium", "high")
    assert row["explanation"] is None  # tree model: no per-patient contributions
    ev = SurvivalTask().evaluate(learner, manifest, cfg, parts["test"], tmp_path)
    assert ev.metrics["test"]["c_index"]["value"] == pytest.approx(
        outcome.metrics["test"]["c_index"]["value"]
    )


def test_report_sections(fitted):
    cfg, _, _, outcome, run_dir = fitted
    doc = {**outcome.doc, "metrics": outcome.metrics}
    parts = SurvivalTask().report_sections(run_dir, doc, outcome.predictions, cfg, {})
    anchors = [s[0] for s in parts.sections]
    assert anchors[:4] == ["km", "survival-calibration", "td-auc", "importance"]
    assert "data:image/png;base64," in parts.sections[0][2]


def test_predictions_frame_is_parquet_safe(fitted, tmp_path):
    _, _, _, outcome, _ = fitted
    outcome.predictions.to_parquet(tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "p.parquet")
    assert list(back.columns) == list(outcome.predictions.columns)

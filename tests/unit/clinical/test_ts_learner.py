"""TimeSeriesLearner on tiny synthetic ICU stays: fit, predict, explain, importance, bundle."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.clinical._ts_learner import TimeSeriesLearner
from medlearn.data import make_record
from medlearn.errors import DataValidationError, NotFittedError

VARS = ["HR", "GCS", "Lactate"]


def make_stays(n: int = 80, seed: int = 0) -> list:
    """Deaths have a rising heart rate and high lactate late in the stay."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        died = int(i % 3 == 0)
        times, codes, values = [], [], []
        for h in range(0, 12, 2):
            times.append(h + rng.random())
            codes.append("HR")
            values.append(80 + rng.normal(0, 8) + (25 * died if h >= 6 else 0))
            if rng.random() < 0.5:
                times.append(h + rng.random())
                codes.append("GCS")
                values.append(float(rng.integers(3, 16)))
        times.append(10.0)
        codes.append("Lactate")
        values.append(1.5 + rng.normal(0, 0.5) + 3.0 * died)
        order = np.argsort(times)
        events = {
            "time": np.asarray(times, dtype=float)[order],
            "code": np.asarray(codes, dtype=object)[order].astype(str),
            "value": np.asarray(values, dtype=float)[order],
            "text": None,
        }
        static = {
            "Age": float(rng.integers(30, 90)),
            "Gender": "female" if i % 2 else "male",
            "ICUType": "medical",
        }
        meta = {
            "los_days": float(rng.integers(2, 20)),
            "survival_days": float(rng.integers(1, 10)) if died else None,
            "sex": static["Gender"],
        }
        out.append(
            make_record(
                f"a/{i}", {"events": events, "static": static}, died, patient_id=str(i), meta=meta
            )
        )
    return out


@pytest.fixture(scope="module")
def stays():
    return make_stays(90, 0), make_stays(30, 1)


def _learner(model: str, **params) -> TimeSeriesLearner:
    from medlearn.registry import MODELS

    return TimeSeriesLearner(
        model=model,
        model_params={**MODELS.meta(model)["tiny"], **params},
        featurizer={"hours": 12.0, "bin_hours": 2.0},
        epochs=12,
        batch_size=32,
        lr=1e-2,
        patience=None,
        num_threads=1,
    )


def test_not_fitted_raises():
    with pytest.raises(NotFittedError, match="fit"):
        _learner("gru").predict_logits(make_stays(2))


def test_missing_outcome_in_training_is_an_error(stays, tmp_path):
    train, val = stays
    bad = [dict(r) for r in train]
    bad[3]["target"] = None
    with pytest.raises(DataValidationError, match="no in-hospital outcome"):
        _learner("ts_logistic_regression").fit(bad, val, work_dir=tmp_path, resume=False)


@pytest.mark.parametrize(
    "model", ["ts_logistic_regression", "ts_gradient_boosting", "grud", "ts_transformer"]
)
def test_fit_predict_explain_save_load(model, stays, tmp_path):
    from sklearn.metrics import roc_auc_score

    train, val = stays
    learner = _learner(model, **({"hidden": 16} if model == "ts_transformer" else {}))
    report = learner.fit(train, val, work_dir=tmp_path, resume=False)
    assert report.extra["n_variables"] == len(VARS)
    logits = learner.predict_logits(val)
    assert logits.shape == (len(val), 2) and np.isfinite(logits).all()
    y = np.array([r["target"] for r in val])
    assert roc_auc_score(y, logits[:, 1] - logits[:, 0]) > 0.8

    exps = learner.explain(val[:4], [1, 1, 0, 0])
    assert len(exps) == 4 and all(set(VARS) <= set(e.features) for e in exps)
    # the planted variables dominate the attributions of deaths
    top = max(exps[0].features, key=lambda k: abs(exps[0].features[k]))
    assert top in ("HR", "Lactate")

    imp = learner.global_importance(val)
    (method,) = imp["methods"]
    assert len(imp["methods"][method]) == len(imp["features"])
    if model in ("grud", "ts_transformer"):
        heat = imp["time_heatmap"]
        assert heat["variables"] == learner.featurizer_.variables
        assert np.asarray(heat["values"]).shape == (len(VARS), 6)

    fields = learner.save(tmp_path / "bundle")
    assert fields["learner"] == "timeseries"
    again = TimeSeriesLearner.load(tmp_path / "bundle", fields)
    np.testing.assert_allclose(again.predict_logits(val), logits, rtol=1e-6, atol=1e-6)


def test_integrated_gradients_complete(stays, tmp_path):
    """IG attributions sum to f(x) - f(baseline) (completeness), up to the Riemann error."""
    import torch

    from medlearn.clinical._ts_learner import integrated_gradients

    train, val = stays
    learner = _learner("gru")
    learner.fit(train, val, work_dir=tmp_path, resume=False)
    t = learner._tensors(learner.transform(val[:6]))
    ig = integrated_gradients(learner.net_, t, [1] * 6, steps=64)
    total = ig["grid"].sum(axis=(1, 2)) + ig["static"].sum(axis=1)
    base = dict(t)
    for k in ("values", "mask", "static"):
        base[k] = torch.zeros_like(t[k])
    with torch.no_grad():
        f = learner.net_(t)["logits"]
        f0 = learner.net_(base)["logits"]
    diff = ((f[:, 1] - f[:, 0]) - (f0[:, 1] - f0[:, 0])).numpy()
    np.testing.assert_allclose(total, diff, atol=0.05 * max(1.0, np.abs(diff).max()))


def test_ensemble_averages_calibrated_members(stays, tmp_path):
    train, val = stays
    learner = _learner(
        "ts_ensemble",
        members=["ts_logistic_regression", "gru"],
        member_params={"gru": {"hidden": 8}},
    )
    learner.fit(train, val, work_dir=tmp_path, resume=False)
    proba = np.exp(learner.predict_logits(val))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    fields = learner.save(tmp_path / "bundle")
    again = TimeSeriesLearner.load(tmp_path / "bundle", fields)
    np.testing.assert_allclose(np.exp(again.predict_logits(val)), proba, atol=1e-6)
    assert learner.explain(val[:2], [1, 0])[0].method == "integrated_gradients"


def test_report_draws_the_time_heatmap(tmp_path):
    import json

    from medlearn.tasks._classification_report import _importance_section

    heat = {
        "variables": VARS,
        "hours": [0.0, 2.0, 4.0],
        "values": [[0.1, 0.2, 0.9], [0.0, 0.1, 0.0], [0.3, 0.0, 0.5]],
    }
    doc = {"split": "test", "features": VARS, "methods": {"integrated_gradients": [1, 2, 3]}}
    (tmp_path / "importance.json").write_text(json.dumps(doc))
    html = _importance_section(tmp_path)
    assert "Feature importance" in html and "Attribution by variable and time" not in html
    (tmp_path / "importance.json").write_text(json.dumps({**doc, "time_heatmap": heat}))
    html = _importance_section(tmp_path)
    assert 'alt="Attribution by variable and time"' in html
    assert html.count("data:image/png;base64,") == 2
    # a malformed heatmap is reported, not drawn
    bad = {**heat, "values": [[0.1]]}
    (tmp_path / "importance.json").write_text(json.dumps({**doc, "time_heatmap": bad}))
    assert _importance_section(tmp_path).count("data:image/png;base64,") == 1

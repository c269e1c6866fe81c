"""TabularLearner: every model trains, save/load round trip, skops trust list, bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlearn.clinical.tabular import TabularLearner, load_skops, read_tabular
from medlearn.config import validate_config
from medlearn.errors import CheckpointError
from medlearn.registry import MODELS

MODELS_ = MODELS.list(domain="clinical", learner="tabular")


def write_table(path: Path, n: int = 80, seed: int = 0, regression: bool = False) -> Path:
    """A seeded synthetic risk table: risk rises with x1 and smoker; x2 is noise."""
    rng = np.random.default_rng(seed)
    rows = ["x1,x2,smoker,site,y"]
    for i in range(n):
        x1 = rng.normal()
        smoker = "yes" if rng.random() < 0.4 else "no"
        site = ["a", "b", "c"][i % 3]
        logit = 2.0 * x1 + (1.5 if smoker == "yes" else -0.5)
        y = (
            logit + rng.normal() * 0.3
            if regression
            else int(rng.random() < 1 / (1 + np.exp(-logit)))
        )
        x2 = "" if i % 11 == 5 else f"{rng.normal():.3f}"
        rows.append(f"{x1:.3f},{x2},{smoker},{site},{y if not regression else round(y, 3)}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _setup(tmp_path: Path, model: str, task: str = "binary", params=None):
    p = write_table(tmp_path / "t.csv", regression=task == "regression")
    cfg = validate_config(
        {
            "task": task,
            "data": {"path": str(p), "target": "y"},
            "model": {"name": model, "params": params or MODELS.meta(model)["tiny"]},
            "training": {"epochs": 5, "batch_size": 16, "progress": False, "seed": 0},
        }
    )
    data = read_tabular(p, cfg=cfg)
    recs = data.records
    return cfg, data, recs[:50], recs[50:62], recs[62:]


@pytest.mark.parametrize("model", MODELS_)
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_every_model_trains_and_round_trips(tmp_path: Path, model: str, task: str) -> None:
    cfg, data, train, val, test = _setup(tmp_path, model, task)
    learner = TabularLearner.from_config(cfg, data)
    learner.fit(train, val, work_dir=tmp_path / "w", resume=False)
    out = learner.predict_logits(test)
    if task == "binary":
        assert out.shape == (len(test), 2)
        np.testing.assert_allclose(np.exp(out).sum(1), 1.0, atol=1e-6)
    else:
        assert out.shape == (len(test), 1)
        assert np.isfinite(out).all()
    fields = learner.save(tmp_path / "bundle")
    again = TabularLearner.load(tmp_path / "bundle", fields)
    np.testing.assert_allclose(again.predict_logits(test), out, rtol=0, atol=1e-10)


def test_deterministic_under_seed(tmp_path: Path) -> None:
    cfg, data, train, val, test = _setup(tmp_path, "random_forest")
    preds = []
    for k in range(2):
        learner = TabularLearner.from_config(cfg, data)
        learner.fit(train, val, work_dir=tmp_path / f"w{k}", resume=False)
        preds.append(learner.predict_logits(test))
    np.testing.assert_array_equal(preds[0], preds[1])


def test_logistic_regression_learns_the_signal(tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    p = write_table(tmp_path / "big.csv", n=400, seed=1)
    cfg = validate_config(
        {"data": {"path": str(p), "target": "y"}, "model": {"name": "logistic_regression"}}
    )
    data = read_tabular(p, cfg=cfg)
    learner = TabularLearner.from_config(cfg, data)
    learner.fit(data.records[:300], [], work_dir=tmp_path, resume=False)
    test = data.records[300:]
    auc = roc_auc_score([r["target"] for r in test], learner.predict_logits(test)[:, 1])
    assert auc > 0.8


def test_preprocessing_is_fitted_on_training_rows_only(tmp_path: Path) -> None:
    cfg, data, train, val, test = _setup(tmp_path, "logistic_regression")
    learner = TabularLearner.from_config(cfg, data)
    learner.fit(train, val, work_dir=tmp_path, resume=False)
    scaler = learner.preprocessor_.named_transformers_["num"].named_steps["scale"]
    x1 = np.array([r["input"]["x1"] for r in train])
    assert scaler.mean_[0] == pytest.approx(x1.mean())
    everything = np.array([r["input"]["x1"] for r in data.records])
    assert scaler.mean_[0] != pytest.approx(everything.mean())


def test_skops_load_refuses_untrusted_types(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(n_neighbors=1).fit(np.zeros((2, 1)), [0, 1])
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(model))
    with pytest.raises(CheckpointError, match="KNeighborsClassifier"):
        load_skops(path)


def test_read_inputs_reports_every_bad_row(tmp_path: Path) -> None:
    cfg, data, train, val, _ = _setup(tmp_path, "logistic_regression")
    learner = TabularLearner.from_config(cfg, data)
    learner.fit(train, val, work_dir=tmp_path, resume=False)
    new = tmp_path / "new.csv"
    new.write_text("x1,x2,smoker,site\n0.1,0.2,yes,a\nabc,0.1,no,b\n0.3,,maybe,c\n0.5,1.0,no,a\n")
    records, bad = learner.read_inputs([str(new)])
    assert [r["id"] for r in records] == ["new.csv:row1", "new.csv:row4"]
    messages = {b.source: b.message for b in bad}
    assert "column 'x1' is not a number" in messages["new.csv:row2"]
    assert "column 'smoker' has a category not seen in training" in messages["new.csv:row3"]
    assert "maybe" not in messages["new.csv:row3"]  # never echo values
    assert learner.predict_logits(records).shape == (2, 2)
    missing = tmp_path / "missing.csv"
    missing.write_text("x1,smoker\n0.1,yes\n")
    _, bad = learner.read_inputs([str(missing)])
    assert "x2" in bad[0].message and "site" in bad[0].message


@pytest.mark.parametrize("model", ["logistic_regression", "random_forest", "svm"])
def test_explain_and_global_importance(tmp_path: Path, model: str) -> None:
    cfg, data, train, val, test = _setup(tmp_path, model)
    learner = TabularLearner.from_config(cfg, data)
    learner.fit(train, val, work_dir=tmp_path, resume=False)
    exps = learner.explain(test[:3], [1, 0, 1])
    assert len(exps) == 3
    assert set(exps[0].features) == {"x1", "x2", "smoker", "site"}
    assert exps[0].method.startswith("shap_") and exps[0].image is None
    imp = learner.global_importance(test + val)
    assert imp["features"] == ["x1", "x2", "smoker", "site"]
    shap_rank = np.argsort(-np.array(imp["methods"]["shap_mean_abs"]))
    assert imp["features"][shap_rank[0]] == "x1"
    assert len(imp["methods"]["permutation"]) == 4
    assert imp["methods"]["permutation"][0] > imp["methods"]["permutation"][1]


def test_value_missing_at_prediction_in_a_column_complete_in_training(tmp_path: Path) -> None:
    """A deployed model meets a missing category its training rows never had: it imputes it
    (most frequent level) instead of refusing the row."""
    cfg, data, train, val, test = _setup(tmp_path, "logistic_regression")
    assert all(r["input"]["smoker"] not in (None, "") for r in train)  # complete in training
    learner = TabularLearner.from_config(cfg, data)
    learner.fit(train, val, work_dir=tmp_path / "w", resume=False)
    row = dict(test[0])
    row["input"] = {**row["input"], "smoker": None}
    out = learner.predict_logits([row, test[1]])
    assert out.shape == (2, 2) and np.isfinite(out).all()

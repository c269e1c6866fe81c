"""MoleculeLearner on 40 tiny synthetic molecules: learning, masking, multi-task, scaling,
ensembles, checkpoints and resume, explanations, every model family, save → load."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch

from medlearn.data import LoadedData, make_record
from medlearn.errors import ConfigError, DataValidationError, NotFittedError
from medlearn.molecules import _fit as fit_mod
from medlearn.molecules import _learner as learner_mod
from medlearn.molecules._learner import MoleculeLearner, lr_at, masked_loss
from medlearn.registry import LEARNERS, MODELS


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLEARN_CACHE_DIR", str(tmp_path / "cache"))


def _smiles() -> list[str]:
    """40 molecules: alkanes, alcohols, alkylbenzenes and alkylcyclohexanes."""
    from rdkit import Chem

    raw = (
        ["C" * n for n in range(1, 11)]
        + ["C" * n + "O" for n in range(1, 11)]
        + ["c1ccccc1" + "C" * k for k in range(10)]
        + ["C1CCCCC1" + "C" * k + "O" for k in range(10)]
    )
    return [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in raw]


def _counts(smiles: str) -> tuple[int, int, int]:
    """(carbons, oxygens, has a ring)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    c = sum(a.GetSymbol() == "C" for a in mol.GetAtoms())
    o = sum(a.GetSymbol() == "O" for a in mol.GetAtoms())
    return c, o, int(mol.GetRingInfo().NumRings() > 0)


def records(kind: str) -> list:
    """``carbons`` (regression), ``two`` (carbons and oxygens, with NaN), ``ring`` (binary),
    ``labels`` (ring and oxygen, 0/1 with NaN)."""
    out = []
    for i, s in enumerate(_smiles()):
        c, o, ring = _counts(s)
        if kind == "carbons":
            target = float(c)
        elif kind == "two":
            target = [float(c) if i % 4 else math.nan, float(o) if i % 5 else math.nan]
        elif kind == "ring":
            target = ring
        else:
            target = [float(ring) if i % 3 else math.nan, float(o > 0)]
        out.append(make_record(f"row{i + 1}", s, target, meta={"scaffold": ""}))
    return out


def split(recs):
    """Every 4th molecule to validation (both families on both sides)."""
    val = [r for i, r in enumerate(recs) if i % 4 == 1]
    train = [r for i, r in enumerate(recs) if i % 4 != 1]
    return train, val


TASK_OF = {"carbons": "regression", "two": "regression", "ring": "binary", "labels": "multilabel"}
TARGETS = {
    "carbons": ["carbons"],
    "two": ["carbons", "oxygens"],
    "ring": ["ring"],
    "labels": ["ring", "oxygen"],
}


def make(kind: str = "carbons", model: str = "dmpnn", **kw) -> MoleculeLearner:
    params = kw.pop("params", None)
    if params is None:
        params = (
            {"hidden": 32, "ffn_hidden": 32, "aggregation": "sum"}
            if MODELS.meta(model)["kind"] == "torch"
            else MODELS.meta(model)["tiny"]
        )
    opts = {"epochs": 30, "batch_size": 8, "lr": 1e-2, "num_threads": 1, "seed": 0, **kw}
    return MoleculeLearner(
        model=model,
        task=TASK_OF[kind],
        targets=TARGETS[kind],
        classes=["negative", "positive"] if kind == "ring" else None,
        model_params=params,
        **opts,
    )


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.fixture(scope="module")
def fitted_carbons(tmp_path_factory):
    import os

    os.environ.setdefault("MEDLEARN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    train, val = split(records("carbons"))
    lrn = make()
    report = lrn.fit(train, val, work_dir=tmp_path_factory.mktemp("run"), resume=False)
    return lrn, report, train, val


# --- pieces ----------------------------------------------------------------------------------


def test_registered_as_the_molecules_learner():
    assert LEARNERS.get("molecules") is MoleculeLearner


def test_masked_loss_ignores_missing_labels():
    out = torch.tensor([[0.5, 2.0], [1.0, -1.0], [3.0, 0.0]], requires_grad=True)
    y = torch.tensor([[1.0, math.nan], [0.0, 1.0], [math.nan, math.nan]])
    loss = masked_loss(out, y, classification=False)
    assert loss.item() == pytest.approx(((0.5 - 1) ** 2 + 1.0**2 + 2.0**2) / 3)
    loss.backward()
    assert out.grad[0, 1] == 0 and (out.grad[2] == 0).all() and out.grad[1, 0] != 0
    bce = masked_loss(out.detach(), y, classification=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.5, 1.0, -1.0]), torch.tensor([1.0, 0.0, 1.0])
    )
    assert bce.item() == pytest.approx(ref.item())
    empty = masked_loss(out, torch.full((3, 2), math.nan), classification=True)
    assert empty.item() == 0.0


def test_noam_schedule_warms_up_then_decays_to_a_tenth():
    kw = {"kind": "noam", "lr": 1e-3, "steps_per_epoch": 10, "epochs": 20, "warmup_epochs": 2}
    assert lr_at(0, **kw) == pytest.approx(1e-4)
    assert lr_at(20, **kw) == pytest.approx(1e-3)
    assert lr_at(10, **kw) == pytest.approx(5.5e-4)
    assert lr_at(200, **kw) == pytest.approx(1e-4)
    assert lr_at(100, **kw) < lr_at(50, **kw) < 1e-3
    cos = {**kw, "kind": "cosine"}
    assert lr_at(200, **cos) == pytest.approx(1e-5) and lr_at(20, **cos) == pytest.approx(1e-3)
    assert lr_at(57, **{**kw, "kind": "constant"}) == 1e-3


def test_model_selection_handles_undefined_scores():
    improved = fit_mod._improved
    assert improved(0.7, None, higher=True) and improved(0.7, math.nan, higher=True)
    assert improved(math.nan, math.nan, higher=True)  # all undefined: keep the newest
    assert not improved(math.nan, 0.6, higher=True)
    assert improved(0.5, 0.6, higher=False) and not improved(0.5, 0.6, higher=True)


def test_not_fitted_raises():
    with pytest.raises(NotFittedError, match="fit"):
        make().predict_logits(records("carbons")[:2])


# --- learning -----------------------------------------------------------------------------------


def test_dmpnn_learns_the_number_of_carbons(fitted_carbons):
    lrn, report, train, val = fitted_carbons
    y_val = np.array([r["target"] for r in val])
    pred = lrn.predict_logits(val)
    assert pred.shape == (len(val), 1)
    assert rmse(pred[:, 0], y_val) < 0.25 * np.std(y_val)
    # history: one entry per epoch, validation RMSE recorded, best epoch restored
    assert len(report.history) == report.epochs[0] == 30
    assert {"member", "epoch", "train_loss", "val_loss", "val_rmse", "lr"} <= set(report.history[0])
    best = min(h["val_rmse"] for h in report.history)
    assert rmse(pred[:, 0], y_val) == pytest.approx(best, rel=1e-4)
    assert report.extra["best_val_rmse"] == pytest.approx(best)


def test_targets_are_scaled_inside_the_model(fitted_carbons):
    lrn, _, train, _ = fitted_carbons
    y = np.array([r["target"] for r in train])
    net = lrn.nets_[0]
    assert net.y_mean.item() == pytest.approx(y.mean(), rel=1e-5)
    assert net.y_std.item() == pytest.approx(y.std(), rel=1e-5)
    # the network's raw output is standardised; predictions come back in carbons
    b = lrn._split(train, "x", labelled=False).batch(np.arange(len(train)))
    with torch.no_grad():
        raw = net(b)[:, 0].numpy()
    assert abs(raw.mean()) < 0.5 and 0.5 < raw.std() < 1.5
    assert lrn.predict_logits(train)[:, 0].mean() == pytest.approx(y.mean(), abs=0.5)


def test_multitask_regression_with_missing_labels(tmp_path):
    train, val = split(records("two"))
    lrn = make("two")
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    pred = lrn.predict_logits(val)
    assert pred.shape == (len(val), 2)
    y = np.array([r["target"] for r in val])
    for t in range(2):
        ok = ~np.isnan(y[:, t])
        assert rmse(pred[ok, t], y[ok, t]) < 0.5 * np.nanstd(y[:, t]) + 0.05
    pred_u, var = lrn.predict_with_uncertainty(val)
    assert var is None and np.allclose(pred_u, pred)


def test_single_binary_target_gives_two_column_logits(tmp_path):
    train, val = split(records("ring"))
    lrn = make("ring", epochs=15)
    report = lrn.fit(train, val, work_dir=tmp_path, resume=False)
    logits = lrn.predict_logits(val)
    assert logits.shape == (len(val), 2) and (logits[:, 0] == 0).all()
    y = np.array([r["target"] for r in val])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, logits[:, 1]) >= 0.9  # selected on validation ROC-AUC
    assert "val_auroc" in report.history[0]
    assert lrn.predict(val).shape == (len(val), 1)


def test_multilabel_with_missing_labels_and_class_weights(tmp_path):
    train, val = split(records("labels"))
    lrn = make("labels", epochs=15, class_weights="balanced")
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    logits = lrn.predict_logits(val)
    assert logits.shape == (len(val), 2)
    y = np.array([r["target"] for r in val])
    from sklearn.metrics import roc_auc_score

    for t in range(2):
        ok = ~np.isnan(y[:, t])
        assert roc_auc_score(y[ok, t], logits[ok, t]) >= 0.8
    w = fit_mod._pos_weight(lrn, np.array([[1, 0], [0, 0], [0, math.nan], [0, 1]], float))
    assert w.tolist() == [3.0, 2.0]


def test_bad_labels_are_reported_with_the_record(tmp_path):
    recs = records("ring")
    recs[3]["target"] = 2
    with pytest.raises(DataValidationError, match="row4"):
        make("ring").fit(recs, [], work_dir=tmp_path, resume=False)
    two = records("two")
    for r in two:
        r["target"] = [r["target"][0], math.nan]
    with pytest.raises(DataValidationError, match="'oxygens' have no label"):
        make("two").fit(two, [], work_dir=tmp_path, resume=False)


# --- ensembles ----------------------------------------------------------------------------------


def test_ensemble_gives_a_positive_variance_per_target(tmp_path):
    train, val = split(records("two"))
    lrn = make("two", epochs=8, ensemble=3)
    report = lrn.fit(train, val, work_dir=tmp_path, resume=False)
    assert len(lrn.nets_) == 3 and len(set(lrn.member_seeds_)) == 3
    assert report.epochs == [8, 8, 8] and {h["member"] for h in report.history} == {0, 1, 2}
    pred, var = lrn.predict_with_uncertainty(val)
    assert pred.shape == var.shape == (len(val), 2)
    assert (var > 0).all()
    members = np.stack(
        [lrn._net_outputs(n, lrn._split(val, "v", labelled=False)) for n in lrn.nets_]
    )
    assert np.allclose(pred, members.mean(axis=0)) and np.allclose(var, members.var(axis=0))
    for k in range(3):
        assert (tmp_path / "checkpoints" / f"member_{k}" / "last.ckpt").is_file()


def test_classification_ensemble_variance_is_of_probabilities(tmp_path):
    train, val = split(records("ring"))
    lrn = make("ring", epochs=4, ensemble=2)
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    logits, var = lrn.predict_with_uncertainty(val)
    assert logits.shape == (len(val), 2) and var.shape == (len(val), 1)
    assert (var >= 0).all() and (var <= 0.25).all() and var.max() > 0


# --- stopping, checkpoints, resume --------------------------------------------------------------


def test_early_stopping_restores_the_best_epoch(tmp_path):
    train, val = split(records("carbons"))
    rng = np.random.default_rng(0)
    for r in val:  # validation targets unrelated to the molecules: no lasting improvement
        r["target"] = float(rng.normal(5, 3))
    lrn = make(epochs=40, patience=3)
    report = lrn.fit(train, val, work_dir=tmp_path, resume=False)
    assert report.stopped_by == ["early_stopping"] and report.epochs[0] < 40
    scores = [h["val_rmse"] for h in report.history]
    assert int(np.argmin(scores)) == len(scores) - 4
    y = np.array([r["target"] for r in val])
    assert rmse(lrn.predict_logits(val)[:, 0], y) == pytest.approx(min(scores), rel=1e-4)


def test_max_minutes_stops_after_one_epoch(tmp_path):
    train, val = split(records("carbons"))
    report = make(epochs=50, max_minutes=1e-6).fit(train, val, work_dir=tmp_path, resume=False)
    assert report.stopped_by == ["max_time"] and report.epochs == [1]


@contextlib.contextmanager
def _crash_after_saves(monkeypatch, n: int):
    """Inside: the ``n``-th checkpoint save is written, then the fit is interrupted."""
    real_save, saves = fit_mod._save_ckpt, []

    def save_then_crash(path, state):
        real_save(path, state)
        saves.append(path)
        if len(saves) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(fit_mod, "_save_ckpt", save_then_crash)
    try:
        yield
    finally:
        monkeypatch.setattr(fit_mod, "_save_ckpt", real_save)


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    train, val = split(records("carbons"))
    whole = make(epochs=6)
    whole.fit(train, val, work_dir=tmp_path / "a", resume=False)

    with pytest.raises(KeyboardInterrupt), _crash_after_saves(monkeypatch, 3):
        make(epochs=6).fit(train, val, work_dir=tmp_path / "b", resume=False)
    resumed = make(epochs=6)
    report = resumed.fit(train, val, work_dir=tmp_path / "b", resume=True)
    assert [h["epoch"] for h in report.history] == [1, 2, 3, 4, 5, 6]
    assert np.allclose(resumed.predict_logits(val), whole.predict_logits(val), atol=1e-5)


def test_resume_counts_the_checkpointed_time_against_the_budget(tmp_path, monkeypatch):
    train, val = split(records("carbons"))
    with pytest.raises(KeyboardInterrupt), _crash_after_saves(monkeypatch, 3):
        make(epochs=6).fit(train, val, work_dir=tmp_path, resume=False)
    # say the three epochs took 100 s each: 300 s of a 240 s budget are spent
    last = tmp_path / "checkpoints" / "member_0" / "last.ckpt"
    state = fit_mod._load_ckpt(last)
    for entry in state["history"]:
        entry["seconds"] = 100.0
    fit_mod._save_ckpt(last, state)
    assert fit_mod.checkpointed_seconds(tmp_path, 1) == 300.0
    report = make(epochs=6, max_minutes=4).fit(train, val, work_dir=tmp_path, resume=True)
    assert report.stopped_by == ["max_time"] and report.epochs == [3]
    assert report.extra["resumed_seconds"] == 300.0 and report.fit_seconds >= 300.0
    # without --resume the checkpoint is not counted
    fresh = make(epochs=2, max_minutes=4).fit(train, val, work_dir=tmp_path, resume=False)
    assert "resumed_seconds" not in fresh.extra and fresh.epochs == [2]


def test_resume_takes_checkpoints_across_blend_changes_and_of_earlier_versions(
    tmp_path, monkeypatch
):
    import json

    train, val = split(records("carbons"))
    with pytest.raises(KeyboardInterrupt), _crash_after_saves(monkeypatch, 2):
        make(epochs=4).fit(train, val, work_dir=tmp_path, resume=False)
    # the blend is fitted after the network, so adding one does not orphan the checkpoint
    params = {"hidden": 32, "ffn_hidden": 32, "aggregation": "sum", "blend": "fp_random_forest"}
    report = make(epochs=4, params=params).fit(train, val, work_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in report.history] == [1, 2, 3, 4]
    assert report.extra["blend"]["model"] == "fp_random_forest"
    # a checkpoint written before list blends signs the whole architecture of its day
    last = tmp_path / "checkpoints" / "member_0" / "last.ckpt"
    state = fit_mod._load_ckpt(last)
    lrn = make(epochs=6)
    arch = {k: v for k, v in lrn._spec().items() if k != "blend_specs"}
    state["signature"] = json.dumps(
        {"arch": arch, "n": len(train), "tasks": ["carbons"]}, sort_keys=True
    )
    state["finished"] = False
    fit_mod._save_ckpt(last, state)
    report = lrn.fit(train, val, work_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in report.history] == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    train, val = split(records("carbons"))
    make(epochs=1).fit(train, val, work_dir=tmp_path, resume=False)
    other = make(epochs=2, params={"hidden": 16, "ffn_hidden": 16})
    from medlearn.errors import CheckpointError

    with pytest.raises(CheckpointError, match="another model"):
        other.fit(train, val, work_dir=tmp_path, resume=True)


# --- explanations -------------------------------------------------------------------------------


def test_integrated_gradients_give_one_value_per_atom(fitted_carbons):
    from rdkit import Chem

    lrn, _, _, val = fitted_carbons
    exps = lrn.explain(val[:5], [0] * 5)
    assert len(exps) == 5
    for rec, exp in zip(val[:5], exps, strict=True):
        assert exp.method == "integrated_gradients" and exp.target == 0
        assert exp.atoms.shape == (Chem.MolFromSmiles(rec["input"]).GetNumAtoms(),)
        assert np.isfinite(exp.atoms).all()
    # completeness: attributions add up to f(x) - f(zero atom features)
    rec = val[2]
    data = lrn._split([rec], "x", labelled=False)
    b = data.batch([0])
    net = lrn.nets_[0]
    with torch.no_grad():
        fx = net.unscale(net(b))[0, 0].item()
        f0 = net.unscale(net(b, torch.zeros_like(b.x)))[0, 0].item()
    assert exps[2].atoms.sum() == pytest.approx(fx - f0, rel=0.05, abs=0.05)


def test_explain_rejects_a_task_index_out_of_range(fitted_carbons):
    lrn, _, _, val = fitted_carbons
    with pytest.raises(ConfigError, match="task index"):
        lrn.explain(val[:1], [3])


# --- other models --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gin", "gine", "attentivefp"])
def test_pyg_networks_fit_and_predict(model, tmp_path):
    train, val = split(records("carbons"))
    params = {"hidden": 32, "ffn_hidden": 32, "depth": 2}
    if model == "attentivefp":
        params["timesteps"] = 1
    lrn = make(model=model, epochs=25, params=params)
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    y = np.array([r["target"] for r in val])
    pred = lrn.predict_logits(val)[:, 0]
    assert np.isfinite(pred).all() and rmse(pred, y) < 0.6 * np.std(y)
    exp = lrn.explain(val[:2], [0, 0])
    assert exp[0].atoms.shape[0] > 0 and np.isfinite(exp[0].atoms).all()


@pytest.mark.parametrize("model", ["fp_random_forest", "fp_gradient_boosting"])
def test_fingerprint_baselines_fit_predict_explain(model, tmp_path, monkeypatch):
    from rdkit import Chem

    rows_seen = []
    real = learner_mod.make_estimator

    def spy(*args, **kwargs):
        est = real(*args, **kwargs)
        fit = est.fit

        def recording_fit(X, y):
            rows_seen.append(len(X))
            assert np.isfinite(y).all()
            return fit(X, y)

        est.fit = recording_fit
        return est

    monkeypatch.setattr(learner_mod, "make_estimator", spy)
    train, val = split(records("two"))
    lrn = make("two", model=model, params={**MODELS.meta(model)["tiny"], "n_bits": 512})
    report = lrn.fit(train, val, work_dir=tmp_path, resume=False)
    assert len(lrn.estimators_[0]) == 2 and "val_rmse" in report.history[0]
    # each target's model is fitted on that target's labelled rows only
    y = np.array([r["target"] for r in train])
    assert rows_seen == [int((~np.isnan(y[:, t])).sum()) for t in range(2)]
    assert rows_seen[0] < len(train) and rows_seen[1] < len(train)
    pred = lrn.predict_logits(val)
    assert pred.shape == (len(val), 2) and np.isfinite(pred).all()
    exps = lrn.explain(val[:3], [0, 1, 0])
    for rec, exp in zip(val[:3], exps, strict=True):
        assert exp.method == "fingerprint_occlusion"
        assert exp.atoms.shape == (Chem.MolFromSmiles(rec["input"]).GetNumAtoms(),)
        assert np.isfinite(exp.atoms).all()


def test_fingerprint_classifier_with_a_single_class_target(tmp_path):
    train, val = split(records("labels"))
    for r in train:  # the ring target becomes all-negative in training
        r["target"] = [0.0 if not math.isnan(r["target"][0]) else math.nan, r["target"][1]]
    lrn = make("labels", model="fp_random_forest")
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    assert isinstance(lrn.estimators_[0][0], float)
    p = learner_mod._sigmoid(lrn.predict_logits(val))
    assert np.allclose(p[:, 0], 0.0, atol=1e-6)


# --- persistence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "params", "ensemble"),
    [
        ("dmpnn", {"hidden": 16, "ffn_hidden": 16, "descriptors": True}, 2),
        ("gine", {"hidden": 16, "ffn_hidden": 16, "depth": 2}, 1),
        ("fp_random_forest", {"n_estimators": 5, "n_bits": 256, "descriptors": True}, 2),
        ("fp_gradient_boosting", {"max_iter": 5, "n_bits": 256}, 1),
    ],
)
def test_save_load_gives_identical_predictions(model, params, ensemble, tmp_path):
    import json

    train, val = split(records("two"))
    lrn = make("two", model=model, params=params, epochs=3, ensemble=ensemble)
    lrn.fit(train, val, work_dir=tmp_path / "run", resume=False)
    fields = lrn.save(tmp_path / "bundle")
    assert fields["learner"] == "molecules" and fields["targets"] == ["carbons", "oxygens"]
    files = {p.name for p in (tmp_path / "bundle").rglob("*") if p.is_file()}
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    if params.get("descriptors"):
        assert "descriptor_scaler.json" in files
        json.loads((tmp_path / "bundle" / "descriptor_scaler.json").read_text())
    back = MoleculeLearner.load(tmp_path / "bundle", fields)
    a, va = lrn.predict_with_uncertainty(val)
    b, vb = back.predict_with_uncertainty(val)
    assert np.array_equal(a, b)
    assert (va is None and vb is None) or np.array_equal(va, vb)
    ea, eb = lrn.explain(val[:2], [1, 1]), back.explain(val[:2], [1, 1])
    assert np.allclose(ea[0].atoms, eb[0].atoms)


def test_load_refuses_untrusted_skops_types(tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    from medlearn.errors import CheckpointError

    train, val = split(records("carbons"))
    lrn = make(model="fp_gradient_boosting", params={"max_iter": 3, "n_bits": 128})
    lrn.fit(train, val, work_dir=tmp_path / "run", resume=False)
    fields = lrn.save(tmp_path / "bundle")
    path = tmp_path / "bundle" / "member_0_target_0.skops"
    path.write_bytes(sio.dumps(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])))
    with pytest.raises(CheckpointError, match="LinearRegression"):
        MoleculeLearner.load(tmp_path / "bundle", fields)


def test_load_refuses_another_featurizer_version(tmp_path, fitted_carbons):
    import json

    from medlearn.errors import CheckpointError

    lrn = fitted_carbons[0]
    fields = lrn.save(tmp_path)
    state = json.loads((tmp_path / "molecules.json").read_text())
    state["featurizer_version"] = "old"
    (tmp_path / "molecules.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="features version"):
        MoleculeLearner.load(tmp_path, fields)


# --- configuration and inputs --------------------------------------------------------------------


def _cfg(task: str, model: str = "dmpnn", **training):
    from medlearn.config import validate_config

    return validate_config(
        {
            "task": task,
            "data": {"path": "x.csv", "target": "y"},
            "model": {"name": model, "params": {"hidden": 8}},
            "training": {"epochs": 3, "ensemble": 2, "scheduler": "onecycle", **training},
        }
    )


def test_from_config_reads_targets_and_training():
    data = LoadedData(
        records=records("labels"),
        info={"targets": ["ring", "oxygen"], "task_types": ["classification"] * 2},
    )
    lrn = MoleculeLearner.from_config(_cfg("multilabel", patience=4), data)
    assert lrn.targets == ["ring", "oxygen"] and lrn.task == "multilabel"
    assert (lrn.epochs, lrn.ensemble, lrn.patience, lrn.scheduler) == (3, 2, 4, "noam")
    assert lrn.model_params == {"hidden": 8} and lrn.classes == []


@pytest.mark.parametrize(
    ("task", "info", "match"),
    [
        ("multilabel", {"targets": ["ring"], "task_types": ["classification"]}, "several"),
        ("binary", {"targets": ["c"], "task_types": ["regression"]}, "0/1 targets"),
        ("regression", {"targets": [], "task_types": []}, "no target"),
        ("multiclass", {"targets": ["c"], "task_types": ["regression"]}, "does not support"),
    ],
)
def test_from_config_refuses_mismatched_tasks(task, info, match):
    data = LoadedData(records=records("carbons"), info=info)
    with pytest.raises(ConfigError, match=match):
        MoleculeLearner.from_config(_cfg(task), data)


def test_from_config_refuses_unknown_params():
    from medlearn.config import validate_config

    cfg = validate_config(
        {
            "task": "regression",
            "data": {"path": "x.csv"},
            "model": {"name": "dmpnn", "params": {"hiden": 8}},
        }
    )
    data = LoadedData(
        records=records("carbons"), info={"targets": ["c"], "task_types": ["regression"]}
    )
    with pytest.raises(ConfigError, match="hiden"):
        MoleculeLearner.from_config(cfg, data)


def test_read_inputs_reports_bad_smiles(fitted_carbons):
    lrn = fitted_carbons[0]
    recs, bad = lrn.read_inputs(["CCO", "C1CC", "c1ccccc1O"])
    assert [r["input"] for r in recs] == ["CCO", "Oc1ccccc1"]
    assert len(bad) == 1
    assert lrn.predict_logits(recs).shape == (2, 1)


def test_keep_freed_memory_restores_glibc_defaults_even_on_error(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append(("mallopt", param, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(fit_mod, "_glibc", lambda: FakeLibc())
    with pytest.raises(RuntimeError, match="boom"), fit_mod.keep_freed_memory():
        assert ("mallopt", -1, 256 << 20) in calls and ("mallopt", -3, 32 << 20) in calls
        raise RuntimeError("boom")
    assert calls[-3:] == [("mallopt", -1, 128 << 10), ("mallopt", -3, 128 << 10), ("trim", 0)]


def test_keep_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(fit_mod, "_glibc", lambda: None)
    with fit_mod.keep_freed_memory():
        value = torch.ones(3).sum().item()
    assert value == 3.0


def test_gradient_boosting_classifier_bundle_loads(tmp_path):
    """Its label encoder is on the trusted list (it was refused before)."""
    train, val = split(records("ring"))
    lrn = make("ring", model="fp_gradient_boosting", params={"max_iter": 5, "n_bits": 128})
    lrn.fit(train, val, work_dir=tmp_path / "run", resume=False)
    fields = lrn.save(tmp_path / "bundle")
    back = MoleculeLearner.load(tmp_path / "bundle", fields)
    assert np.array_equal(lrn.predict_logits(val), back.predict_logits(val))


# --- fine-tuning from a pretrained bundle (model.init_from) ------------------------------------


def _bundle(lrn: MoleculeLearner, root) -> str:
    from medlearn.bundle import write_manifest

    fields = lrn.save(root)
    write_manifest(root, fields)
    return str(root)


def test_init_from_copies_the_encoder_and_leaves_head_and_scaler_fresh(tmp_path):
    train, val = split(records("two"))
    source = make("two", epochs=3)
    source.fit(train, val, work_dir=tmp_path / "pre", resume=False)
    bundle = _bundle(source, tmp_path / "pre_bundle")
    pre = source.nets_[0].state_dict()

    # one target instead of two: the last head layer differs in shape, so it stays fresh
    tr1, va1 = split(records("carbons"))
    tuned = make("carbons", epochs=1, lr=1e-12, init_from=bundle)  # ~no update: see the copy
    report = tuned.fit(tr1, va1, work_dir=tmp_path / "tune", resume=False)
    got = tuned.nets_[0].state_dict()
    enc = [k for k in got if k.startswith("encoder.")]
    assert enc and all(torch.allclose(got[k], pre[k], atol=1e-6) for k in enc)
    last = [k for k in got if k.startswith("head.") and got[k].shape != pre[k].shape]
    assert last  # the output layer
    copied = report.extra["init_from"]
    assert copied["source"] == bundle and copied["encoder"] == len(enc)
    assert copied["tensors"] == len(got) - len(last) - 2  # minus the target scaler
    # the target scaler is the fine-tuning data's, not the pretraining data's
    y = np.array([r["target"] for r in tr1])
    assert float(got["y_mean"][0]) == pytest.approx(y.mean(), rel=1e-5)

    # and a fresh model (no init_from) starts elsewhere
    plain = make("carbons", epochs=1, lr=1e-12)
    plain_report = plain.fit(tr1, va1, work_dir=tmp_path / "plain", resume=False)
    assert not torch.allclose(plain.nets_[0].state_dict()[enc[0]], pre[enc[0]])
    assert "init_from" not in plain_report.extra


def test_init_from_copies_a_layer_whole_or_not_at_all(tmp_path):
    """With descriptors added, the head's first layer has a wider weight but a bias of the
    same shape: neither is copied (a bias without its weight means nothing)."""
    train, val = split(records("carbons"))
    source = make(epochs=1)
    source.fit(train, val, work_dir=tmp_path / "pre", resume=False)
    bundle = _bundle(source, tmp_path / "pre_bundle")
    pre = source.nets_[0].state_dict()

    tuned = make(
        epochs=1,
        lr=1e-12,
        init_from=bundle,
        params={"hidden": 32, "ffn_hidden": 32, "aggregation": "sum", "descriptors": True},
    )
    report = tuned.fit(train, val, work_dir=tmp_path / "tune", resume=False)
    got = tuned.nets_[0].state_dict()
    first = sorted(k for k in got if k.startswith("head.") and k.endswith(".weight"))[0]
    bias = first.replace(".weight", ".bias")
    assert got[first].shape != pre[first].shape and got[bias].shape == pre[bias].shape
    assert not torch.allclose(got[bias], pre[bias])
    copied = report.extra["init_from"]
    assert copied["tensors"] == len(got) - 2 - 2  # minus that layer, minus the target scaler


def test_init_from_refuses_mismatched_sources(tmp_path):
    from medlearn.errors import CheckpointError, ChecksumError

    train, val = split(records("carbons"))
    source = make(epochs=1)
    source.fit(train, val, work_dir=tmp_path / "pre", resume=False)
    bundle = _bundle(source, tmp_path / "pre_bundle")

    wider = make(epochs=1, init_from=bundle, params={"hidden": 48, "ffn_hidden": 32})
    with pytest.raises(ConfigError, match=r"encoder tensors do not match.*hidden, depth"):
        wider.fit(train, val, work_dir=tmp_path / "a", resume=False)
    gin = make(epochs=1, model="gin", params={"hidden": 32, "depth": 2}, init_from=bundle)
    with pytest.raises(ConfigError, match=r"is a 'dmpnn' network; this model is 'gin'"):
        gin.fit(train, val, work_dir=tmp_path / "b", resume=False)
    fp = make(epochs=1, model="fp_gradient_boosting", init_from=bundle)
    with pytest.raises(ConfigError, match="fingerprint baseline"):
        fp.fit(train, val, work_dir=tmp_path / "c", resume=False)

    baseline = make(model="fp_gradient_boosting")
    baseline.fit(train, val, work_dir=tmp_path / "d", resume=False)
    fp_bundle = _bundle(baseline, tmp_path / "fp_bundle")
    with pytest.raises(CheckpointError, match="holds fingerprint models"):
        make(epochs=1, init_from=fp_bundle).fit(train, val, work_dir=tmp_path / "e", resume=False)

    # a changed file fails its checksum before anything is loaded
    weights = tmp_path / "pre_bundle" / "weights" / "member_0.pt"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match="fails its checksum"):
        make(epochs=1, init_from=bundle).fit(train, val, work_dir=tmp_path / "f", resume=False)


def test_freeze_encoder_epochs_hold_the_encoder_then_release_it(tmp_path, monkeypatch):
    starts: list[dict] = []
    real_new_net = MoleculeLearner._new_net

    def recording(self, n_extra):
        net = real_new_net(self, n_extra)
        starts.append({k: v.clone() for k, v in net.state_dict().items()})
        return net

    monkeypatch.setattr(MoleculeLearner, "_new_net", recording)
    train, val = split(records("carbons"))
    for freeze, encoder_moves in ((2, False), (1, True)):
        lrn = make(epochs=2, freeze_encoder_epochs=freeze)
        lrn.fit(train, val, work_dir=tmp_path / str(freeze), resume=False)
        got, start = lrn.nets_[0].state_dict(), starts[-1]
        enc = [k for k in got if k.startswith("encoder.")]
        head = [k for k in got if k.startswith("head.")]
        assert all(torch.equal(got[k], start[k]) for k in enc) is not encoder_moves
        assert not all(torch.equal(got[k], start[k]) for k in head)

"""Blends (``model.params.blend``): a graph network averaged with a fingerprint baseline, the
weight chosen on validation; predictions, variance, explanations and save → load."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.errors import ConfigError
from medlearn.molecules import _learner as learner_mod
from medlearn.molecules._learner import MoleculeLearner
from medlearn.registry import MODELS

from .test_learner import make, records, split

#: a one-baseline blend's weights: 0, 0.1, ..., 1
_BLEND_GRID = tuple(round(0.1 * i, 1) for i in range(11))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLEARN_CACHE_DIR", str(tmp_path / "cache"))


def _net_and_base(lrn: MoleculeLearner, recs) -> tuple[np.ndarray, np.ndarray]:
    """The networks' mean output and the baseline's output, computed apart from the blend."""
    data = lrn._split(recs, "r", labelled=False)
    net = np.mean([lrn._net_outputs(n, data) for n in lrn.nets_], axis=0)
    X = lrn._fp_features(data.smiles, data.extra, lrn.blend_arch_[0])
    return net, lrn._targets_out(lrn.blend_[0], X)


def _params(blend: str = "fp_gradient_boosting", **kw) -> dict:
    return {"hidden": 16, "ffn_hidden": 16, "aggregation": "sum", "blend": blend, **kw}


def test_regression_blend_weight_minimises_the_validation_error(tmp_path):
    train, val = split(records("two"))
    lrn = make("two", params=_params(descriptors=True), epochs=6)
    report = lrn.fit(train, val, work_dir=tmp_path, resume=False)
    info = report.extra["blend"]
    assert info["model"] == "fp_gradient_boosting"
    assert set(info["weights"]) == {"carbons", "oxygens"}
    assert set(info["val_rmse"]) == {"network", "baseline", "blend"}
    assert lrn.blend_arch_[0]["descriptors"] is True  # the network's descriptor setting
    w = lrn.blend_weights_[0]
    assert lrn.blend_weights_.shape == (1, 2) and all(x in _BLEND_GRID for x in w)
    # each target's weight is the grid point with the smallest validation squared error
    net, base = _net_and_base(lrn, val)
    y = np.array([r["target"] for r in val], dtype=float)
    for t in range(2):
        ok = ~np.isnan(y[:, t])
        errs = [
            np.mean(((1 - g) * net[ok, t] + g * base[ok, t] - y[ok, t]) ** 2) for g in _BLEND_GRID
        ]
        assert w[t] == _BLEND_GRID[int(np.argmin(errs))]
        assert info["weights"][lrn.targets[t]] == w[t]
    # predictions are the weighted average; the variance that of a two-member mixture
    pred, var = lrn.predict_with_uncertainty(val)
    assert np.allclose(pred, (1 - w) * net + w * base)
    assert np.allclose(lrn.predict(val), pred)
    if var is None:  # every target chose one model alone
        assert all(x in (0.0, 1.0) for x in w)
    else:
        assert np.allclose(var, w * (1 - w) * (net - base) ** 2)


def test_single_target_blend_is_no_worse_on_validation_than_either_model(tmp_path):
    train, val = split(records("carbons"))
    lrn = make("carbons", params=_params(), epochs=3)
    scores = lrn.fit(train, val, work_dir=tmp_path, resume=False).extra["blend"]["val_rmse"]
    # the grid holds 0 (the network alone) and 1 (the baseline alone)
    assert scores["blend"] <= min(scores["network"], scores["baseline"]) + 1e-9


def test_ensemble_blend_weighs_each_network_equally(tmp_path):
    train, val = split(records("carbons"))
    lrn = make("carbons", params=_params("fp_random_forest"), epochs=4, ensemble=2)
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    lrn.blend_weights_ = np.array([[0.3]])  # a fixed weight, to check the arithmetic
    data = lrn._split(val, "r", labelled=False)
    a, b = (lrn._net_outputs(n, data) for n in lrn.nets_)
    base = lrn._targets_out(lrn.blend_[0], lrn._fp_features(data.smiles, None, lrn.blend_arch_[0]))
    pred, var = lrn.predict_with_uncertainty(val)
    members = np.stack([a, b, base])
    weights = np.array([0.35, 0.35, 0.3])[:, None, None]
    mean = (weights * members).sum(axis=0)
    assert np.allclose(pred, mean)
    assert np.allclose(var, (weights * (members - mean) ** 2).sum(axis=0))


def test_classification_blend_averages_probabilities(tmp_path):
    train, val = split(records("ring"))
    lrn = make("ring", params=_params(), epochs=4)
    report = lrn.fit(train, val, work_dir=tmp_path, resume=False)
    assert set(report.extra["blend"]["val_auroc"]) == {"network", "baseline", "blend"}
    net, base = _net_and_base(lrn, val)
    w = lrn.blend_weights_[0, 0]
    logits = lrn.predict_logits(val)
    assert logits.shape == (len(val), 2)
    p = learner_mod._sigmoid(logits[:, 1])
    expected = (1 - w) * learner_mod._sigmoid(net[:, 0]) + w * learner_mod._sigmoid(base[:, 0])
    assert np.allclose(p, expected, atol=1e-6)


def test_blend_explanations_weigh_both_models(tmp_path):
    from rdkit import Chem

    train, val = split(records("carbons"))
    lrn = make("carbons", params=_params(), epochs=4)
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    lrn.blend_weights_ = np.array([[0.4]])
    exps = lrn.explain(val[:3], [0, 0, 0])
    ig = lrn._integrated_gradients(val[:3], [0, 0, 0])
    occ = lrn._fp_occlusion(val[:3], [0, 0, 0], lrn.blend_arch_[0], [lrn.blend_[0]])
    for rec, e, a, b in zip(val[:3], exps, ig, occ, strict=True):
        assert e.method == "integrated_gradients+fingerprint_occlusion"
        assert e.atoms.shape == (Chem.MolFromSmiles(rec["input"]).GetNumAtoms(),)
        assert np.allclose(e.atoms, 0.6 * a + 0.4 * b)
        assert not np.allclose(a, b)


def test_blend_save_load_gives_identical_predictions(tmp_path):
    import json

    train, val = split(records("two"))
    lrn = make("two", params=_params(descriptors=True), epochs=3)
    lrn.fit(train, val, work_dir=tmp_path / "run", resume=False)
    fields = lrn.save(tmp_path / "bundle")
    assert fields["explain"]["method"] == "integrated_gradients+fingerprint_occlusion"
    files = {p.name for p in (tmp_path / "bundle").rglob("*") if p.is_file()}
    assert {"blend_target_0.skops", "blend_target_1.skops"} <= files
    state = json.loads((tmp_path / "bundle" / "molecules.json").read_text())
    assert state["blend"]["weights"] == [float(x) for x in lrn.blend_weights_[0]]
    assert state["blends"] is None  # one baseline: the format before list blends
    back = MoleculeLearner.load(tmp_path / "bundle", fields)
    a, va = lrn.predict_with_uncertainty(val)
    b, vb = back.predict_with_uncertainty(val)
    assert np.array_equal(a, b)
    assert (va is None and vb is None) or np.array_equal(va, vb)
    assert np.allclose(
        lrn.explain(val[:2], [1, 0])[1].atoms, back.explain(val[:2], [1, 0])[1].atoms
    )


def test_blend_bundle_with_a_wrong_weight_count_is_refused(tmp_path):
    import json

    from medlearn.errors import CheckpointError

    train, val = split(records("carbons"))
    lrn = make("carbons", params=_params(), epochs=2)
    lrn.fit(train, val, work_dir=tmp_path / "run", resume=False)
    fields = lrn.save(tmp_path / "bundle")
    path = tmp_path / "bundle" / "molecules.json"
    state = json.loads(path.read_text())
    state["blend"]["weights"] = [0.5, 0.5]
    path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="incomplete"):
        MoleculeLearner.load(tmp_path / "bundle", fields)


def test_blend_without_a_validation_split_is_a_clear_error(tmp_path):
    train, _ = split(records("carbons"))
    lrn = make("carbons", params=_params(), epochs=2)
    with pytest.raises(ConfigError, match="model.params.blend") as err:
        lrn.fit(train, [], work_dir=tmp_path, resume=False)
    assert "validation" in err.value.hint


def test_unknown_blend_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="fp_gradient_boosting"):
        MODELS.get("dmpnn")(blend="svm")
    for name in ("gin", "gine", "attentivefp"):
        assert MODELS.get(name)(blend="fp_random_forest")["blend"] == "fp_random_forest"
    assert MODELS.get("dmpnn")()["blend"] == "none"


def test_blend_params_reach_the_baseline_and_are_checked():
    spec = MODELS.get("dmpnn")(blend="fp_gradient_boosting", descriptors=True)["blend_spec"]
    assert spec["n_bits"] == 512 and spec["descriptors"] is True  # cheap default, net's setting
    spec = MODELS.get("gin")(blend="fp_random_forest", blend_params={"n_bits": 128})["blend_spec"]
    assert spec["n_bits"] == 128 and spec["estimator"] == "random_forest"
    assert MODELS.get("dmpnn")()["blend_spec"] is None
    with pytest.raises(ConfigError, match="not parameters of fp_gradient_boosting"):
        MODELS.get("dmpnn")(blend="fp_gradient_boosting", blend_params={"trees": 5})
    with pytest.raises(ConfigError, match="blend' is none"):
        MODELS.get("dmpnn")(blend_params={"n_bits": 128})
    with pytest.raises(ConfigError, match="descriptors"):
        MODELS.get("dmpnn")(blend="fp_gradient_boosting", blend_params={"descriptors": True})


def test_blend_fits_the_baseline_with_its_params(tmp_path):
    train, val = split(records("carbons"))
    lrn = make("carbons", params=_params(blend_params={"n_bits": 64, "max_iter": 7}), epochs=2)
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    ((est,),) = lrn.blend_
    assert est.max_iter == 7 and est.n_features_in_ == 64


@pytest.mark.parametrize("blend", ["fp_gradient_boosting", "fp_random_forest"])
def test_classification_blend_bundle_loads(blend, tmp_path):
    """Gradient-boosting classifiers hold a label encoder; the bundle must still load."""
    train, val = split(records("labels"))
    lrn = make("labels", params=_params(blend, blend_params={"n_bits": 128}), epochs=2)
    lrn.fit(train, val, work_dir=tmp_path / "run", resume=False)
    fields = lrn.save(tmp_path / "bundle")
    back = MoleculeLearner.load(tmp_path / "bundle", fields)
    assert np.array_equal(lrn.predict_logits(val), back.predict_logits(val))


# -- blend_refit ----------------------------------------------------------------------------------


def test_blend_refit_refits_the_baselines_on_train_and_val_and_keeps_val_held_out(tmp_path):
    from medlearn.molecules._task_metrics import _predict

    train, val = split(records("two"))
    params = _params(["fp_gradient_boosting", "fp_kernel_ridge"], descriptors=True)
    kw = {"params": params, "epochs": 3, "ensemble": 2}
    plain = make("two", **kw)
    plain.fit(train, val, work_dir=tmp_path / "plain", resume=False)
    lrn = make("two", **{**kw, "params": {**params, "blend_refit": True}})
    info = lrn.fit(train, val, work_dir=tmp_path / "refit", resume=False).extra["blend"]
    # the networks and the weights are those of the same run without the refit
    assert np.array_equal(lrn.blend_weights_, plain.blend_weights_)
    data = lrn._split(val, "val", labelled=False)
    for a, b in zip(lrn.nets_, plain.nets_, strict=True):
        assert np.array_equal(lrn._net_outputs(a, data), plain._net_outputs(b, data))
    # the refit saw every molecule labelled for some target: training and validation
    y = np.array([r["target"] for r in train + val], dtype=float)
    assert info["refit"]["molecules"] == int((~np.isnan(y)).any(axis=1).sum())
    for t in range(2):
        n_labelled = int((~np.isnan(y[:, t])).sum())
        krr = lrn.blend_[1][t]
        assert krr.regressor_.X_fit_.shape[0] == n_labelled
        # the kernel ridge searched again on those molecules; metrics record its choice
        chosen = info["refit"]["search"]["fp_kernel_ridge"][lrn.targets[t]]
        assert (krr.regressor.alpha, krr.regressor.gamma) == (chosen["alpha"], chosen["gamma"])
        assert lrn.blend_[0][t].get_params() == plain.blend_[0][t].get_params()
    # validation: the held-out outputs (those of the run without refit), through the task's
    # prediction helper too; other records get the refitted baselines
    held, held_var = lrn.heldout_with_uncertainty(val)
    ref, ref_var = plain.predict_with_uncertainty(val)
    assert np.allclose(held, ref)
    assert (held_var is None and ref_var is None) or np.allclose(held_var, ref_var)
    assert np.allclose(_predict(lrn, val)[0], ref)
    now, _ = lrn.predict_with_uncertainty(val)
    assert not np.allclose(now, ref)  # the refitted baselines have seen these molecules
    assert lrn.heldout_with_uncertainty(val[:-1]) is None
    assert lrn.heldout_with_uncertainty(train) is None
    # the kept outputs are not part of the bundle
    fields = lrn.save(tmp_path / "bundle")
    back = MoleculeLearner.load(tmp_path / "bundle", fields)
    assert back.heldout_with_uncertainty(val) is None
    assert np.allclose(back.predict(val), lrn.predict(val))


def test_blend_refit_is_checked_and_leaves_older_architectures_alone():
    assert "blend_refit" not in MODELS.get("dmpnn")(blend="fp_kernel_ridge")
    assert MODELS.get("gine")(blend="fp_random_forest", blend_refit=True)["blend_refit"] is True
    with pytest.raises(ConfigError, match="'blend' is none") as err:
        MODELS.get("attentivefp")(blend_refit=True)
    assert "model.params.blend" in err.value.hint
    with pytest.raises(ConfigError, match="true or false"):
        MODELS.get("gin")(blend="fp_random_forest", blend_refit="yes")


def test_blend_refit_does_not_change_a_checkpoint_signature():
    from medlearn.molecules._fit import _signatures

    arch = MODELS.get("dmpnn")(hidden=16, blend="fp_kernel_ridge")
    refit = MODELS.get("dmpnn")(hidden=16, blend="fp_kernel_ridge", blend_refit=True)
    assert _signatures(arch, 10, ["y"])[0] == _signatures(refit, 10, ["y"])[0]


def test_blend_refit_leaves_a_baseline_without_weight_alone(tmp_path):
    train, val = split(records("carbons"))
    params = _params(["fp_gradient_boosting", "fp_kernel_ridge"], descriptors=True)
    lrn = make("carbons", params=params, epochs=2)
    lrn.fit(train, val, work_dir=tmp_path, resume=False)
    lrn.blend_weights_ = np.array([[0.0], [0.5]])  # no weight on the gradient boosting
    unused, used = lrn.blend_
    tr = lrn._split(train, "train", labelled=True)
    va = lrn._split(val, "val", labelled=True)
    info = lrn._refit_blend(tr, va, val, threads=1)
    assert info["not_refitted"] == ["fp_gradient_boosting"]
    assert lrn.blend_[0] is unused and lrn.blend_[1] is not used
    assert lrn.blend_[1][0].regressor_.X_fit_.shape[0] == len(train) + len(val)


def test_classification_blend_refit_keeps_validation_held_out(tmp_path):
    train, val = split(records("labels"))
    params = _params("fp_gradient_boosting", blend_params={"n_bits": 128}, blend_refit=True)
    lrn = make("labels", params=params, epochs=2)
    info = lrn.fit(train, val, work_dir=tmp_path, resume=False).extra["blend"]
    assert info["refit"]["molecules"] == len(train) + len(val)
    held, _ = lrn.heldout_with_uncertainty(val)
    now = lrn.predict_logits(val)
    assert held.shape == now.shape
    if lrn.blend_weights_.any():  # a baseline with weight changed, so validation moved
        assert not np.allclose(held, now)
    p = lrn.predict(val)
    assert ((p >= 0) & (p <= 1)).all()

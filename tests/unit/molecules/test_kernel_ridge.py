"""The kernel ridge baseline (``fp_kernel_ridge``) and blends of several baselines
(``model.params.blend: [...]``): the k-fold search, the joint weight grid chosen on validation,
predictions, explanations, save → load and the refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medlearn.data import LoadedData
from medlearn.errors import CheckpointError, ConfigError
from medlearn.molecules import _learner as learner_mod
from medlearn.molecules._learner import MoleculeLearner, _weight_grid
from medlearn.registry import MODELS

from .test_learner import make, records, split

BOTH = ["fp_gradient_boosting", "fp_kernel_ridge"]
KRR_TINY = {
    "n_bits": 256,
    "alphas": [0.01, 0.1, 1.0],
    "gammas": [1e-3, 1e-2],
    "cv_folds": 3,
    "cv_repeats": 1,
}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLEARN_CACHE_DIR", str(tmp_path / "cache"))


def _y(recs) -> np.ndarray:
    return np.array([r["target"] for r in recs], dtype=float).reshape(len(recs), -1)


# --- the baseline alone --------------------------------------------------------------------------


def test_kernel_ridge_is_the_refitted_best_of_its_k_fold_search(tmp_path):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import KFold

    train, val = split(records("carbons"))
    lrn = make("carbons", model="fp_kernel_ridge", params=KRR_TINY)
    report = lrn.fit(train, val, work_dir=tmp_path, resume=False)
    chosen = report.extra["search"]["carbons"]
    assert chosen["alpha"] in KRR_TINY["alphas"] and chosen["gamma"] in KRR_TINY["gammas"]

    # the same search by hand: per fold, targets standardised on the fold's training part,
    # an RBF kernel ridge, RMSE in target units; 3 shuffled folds, mean over folds
    data = lrn._split(train, "t", labelled=True)
    X, y = lrn._fp_features(data.smiles, data.extra), data.y[:, 0]
    folds = list(KFold(3, shuffle=True, random_state=lrn.seed).split(X))

    def cv_rmse(a: float, g: float) -> float:
        errs = []
        for fit_idx, test_idx in folds:
            mu, sd = y[fit_idx].mean(), y[fit_idx].std()
            m = KernelRidge(kernel="rbf", alpha=a, gamma=g).fit(X[fit_idx], (y[fit_idx] - mu) / sd)
            pred = m.predict(X[test_idx]) * sd + mu
            errs.append(np.sqrt(np.mean((pred - y[test_idx]) ** 2)))
        return float(np.mean(errs))

    scores = {(a, g): cv_rmse(a, g) for a in KRR_TINY["alphas"] for g in KRR_TINY["gammas"]}
    best = min(scores, key=scores.get)
    assert (chosen["alpha"], chosen["gamma"]) == best
    assert chosen["cv_rmse"] == pytest.approx(scores[best], abs=1e-6)
    z = (y - y.mean()) / y.std()

    # predictions are that model refitted on every training molecule, in target units
    ref = KernelRidge(kernel="rbf", alpha=best[0], gamma=best[1]).fit(X, z)
    vdata = lrn._split(val, "v", labelled=False)
    expected = ref.predict(lrn._fp_features(vdata.smiles, vdata.extra)) * y.std() + y.mean()
    assert np.allclose(lrn.predict(val)[:, 0], expected)
    # and it learned something: better than predicting the training mean
    err = np.sqrt(np.mean((lrn.predict(val)[:, 0] - _y(val)[:, 0]) ** 2))
    assert err < 0.5 * np.std(_y(val)[:, 0])


def test_kernel_ridge_bundle_loads_with_trusted_types_only(tmp_path):
    train, val = split(records("two"))
    lrn = make("two", model="fp_kernel_ridge", params=KRR_TINY)
    lrn.fit(train, val, work_dir=tmp_path / "run", resume=False)
    fields = lrn.save(tmp_path / "bundle")
    back = MoleculeLearner.load(tmp_path / "bundle", fields)
    assert np.array_equal(lrn.predict(val), back.predict(val))
    # a type outside the trusted list is refused, not loaded
    trusted = learner_mod.TRUSTED_TYPES
    learner_mod.TRUSTED_TYPES = tuple(t for t in trusted if not t.endswith("KernelRidge"))
    try:
        with pytest.raises(CheckpointError, match="KernelRidge"):
            MoleculeLearner.load(tmp_path / "bundle", fields)
    finally:
        learner_mod.TRUSTED_TYPES = trusted


def test_kernel_ridge_refuses_classification_and_too_many_molecules(tmp_path):
    from medlearn.config import validate_config

    assert MODELS.meta("fp_kernel_ridge")["tasks"] == ("regression",)
    cfg = validate_config(
        {
            "task": "binary",
            "data": {"path": "x.csv", "target": "ring"},
            "model": {"name": "fp_kernel_ridge"},
        }
    )
    data = LoadedData(records("ring"), info={"targets": ["ring"], "task_types": ["binary"]})
    with pytest.raises(ConfigError, match="does not support task 'binary'"):
        MoleculeLearner.from_config(cfg, data)
    train, val = split(records("carbons"))
    lrn = make("carbons", model="fp_kernel_ridge", params={**KRR_TINY, "max_train": 10})
    with pytest.raises(ConfigError, match="max_train") as err:
        lrn.fit(train, val, work_dir=tmp_path, resume=False)
    assert "30 labelled training molecules" in str(err.value)
    assert "fp_gradient_boosting" in err.value.hint


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"alphas": []}, "alphas"),
        ({"gammas": [0.1, -1]}, "gammas"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"max_train": 0}, "max_train"),
        ({"cv_repeats": 0}, "cv_repeats"),
    ],
)
def test_kernel_ridge_params_are_checked(params, match):
    with pytest.raises(ConfigError, match=match):
        MODELS.get("fp_kernel_ridge")(**params)


# --- blends of several baselines -----------------------------------------------------------------


def test_weight_grid_covers_the_simplex_with_the_network_first():
    one = _weight_grid(1)
    assert np.allclose(one[:, 0] + one[:, 1], 1.0)
    assert np.allclose(one[:, 1], np.round(np.arange(11) * 0.1, 1))  # 0, 0.1, ..., 1 in order
    two = _weight_grid(2)
    assert two.shape == (math.comb(12, 2), 3)  # 66 points of steps of 0.1 summing to 1
    assert np.allclose(two.sum(1), 1.0) and (two >= 0).all()
    assert np.allclose(two[0], [1, 0, 0])  # ties go to the network alone
    assert len({tuple(np.round(r, 6)) for r in two}) == len(two)


def _blended(tmp_path, kind="two", **kw):
    train, val = split(records(kind))
    params = {
        "hidden": 16,
        "ffn_hidden": 16,
        "aggregation": "sum",
        "descriptors": True,
        "blend": BOTH,
        "blend_params": {"fp_kernel_ridge": KRR_TINY, "fp_gradient_boosting": {"n_bits": 128}},
    }
    lrn = make(kind, params=params, epochs=4, **kw)
    report = lrn.fit(train, val, work_dir=tmp_path / "run", resume=False)
    return lrn, report, train, val


def test_two_baseline_blend_takes_the_grid_point_with_the_least_validation_error(tmp_path):
    lrn, report, _, val = _blended(tmp_path)
    info = report.extra["blend"]
    assert info["model"] == BOTH
    assert set(info["val_rmse"]) == {"network", *BOTH, "blend"}
    assert set(info["search"]) == {"fp_kernel_ridge"}
    w = lrn.blend_weights_
    assert w.shape == (2, 2) and (w.sum(0) <= 1 + 1e-9).all()
    data = lrn._split(val, "v", labelled=False)
    net = lrn._net_outputs(lrn.nets_[0], data)
    bases = [
        lrn._targets_out(m, lrn._fp_features(data.smiles, data.extra, s))
        for s, m in zip(lrn.blend_arch_, lrn.blend_, strict=True)
    ]
    y = _y(val)
    grid = _weight_grid(2)
    for t in range(2):
        ok = ~np.isnan(y[:, t])
        errs = [
            np.mean(
                (g[0] * net[ok, t] + g[1] * bases[0][ok, t] + g[2] * bases[1][ok, t] - y[ok, t])
                ** 2
            )
            for g in grid
        ]
        assert np.allclose(w[:, t], grid[int(np.argmin(errs)), 1:])
        assert info["weights"][lrn.targets[t]] == {
            b: float(x) for b, x in zip(BOTH, w[:, t], strict=True)
        }
    # the blend is never worse on validation than any of its members alone
    scores = info["val_rmse"]
    assert scores["blend"] <= min(scores["network"], *(scores[b] for b in BOTH)) + 1e-9
    # predictions: the weighted mixture; variance: that of the mixture
    pred, var = lrn.predict_with_uncertainty(val)
    members = np.stack([net, *bases])
    a = np.concatenate([1 - w.sum(0, keepdims=True), w])[:, None, :]
    mean = (a * members).sum(0)
    assert np.allclose(pred, mean)
    if var is not None:
        assert np.allclose(var, (a * (members - mean) ** 2).sum(0))


def test_two_baseline_blend_explains_and_round_trips(tmp_path):
    lrn, _, _, val = _blended(tmp_path)
    lrn.blend_weights_ = np.array([[0.3, 0.2], [0.2, 0.5]])  # fixed, to check the arithmetic
    exps = lrn.explain(val[:3], [0, 0, 0])
    ig = lrn._integrated_gradients(val[:3], [0, 0, 0])
    occ = [
        lrn._fp_occlusion(val[:3], [0, 0, 0], s, [m])
        for s, m in zip(lrn.blend_arch_, lrn.blend_, strict=True)
    ]
    for i, e in enumerate(exps):
        assert e.method == "integrated_gradients+fingerprint_occlusion"
        assert np.allclose(e.atoms, 0.5 * ig[i] + 0.3 * occ[0][i] + 0.2 * occ[1][i])
    fields = lrn.save(tmp_path / "bundle")
    state = json.loads((tmp_path / "bundle" / "molecules.json").read_text())
    assert state["blend"] is None and [b["model"] for b in state["blends"]] == BOTH
    files = {p.name for p in (tmp_path / "bundle").iterdir()}
    assert {"blend_target_0.skops", "blend1_target_1.skops"} <= files
    back = MoleculeLearner.load(tmp_path / "bundle", fields)
    a, va = lrn.predict_with_uncertainty(val)
    b, vb = back.predict_with_uncertainty(val)
    assert np.array_equal(a, b) and np.array_equal(va, vb)
    # a weight row missing from the file is refused
    state["blends"][1]["weights"] = [0.5]
    (tmp_path / "bundle" / "molecules.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="incomplete"):
        MoleculeLearner.load(tmp_path / "bundle", fields)


def test_classification_blend_refuses_the_kernel_ridge_before_training():
    from medlearn.config import validate_config

    cfg = validate_config(
        {
            "task": "binary",
            "data": {"path": "x.csv", "target": "ring"},
            "model": {"name": "dmpnn", "params": {"blend": BOTH}},
        }
    )
    data = LoadedData(records("ring"), info={"targets": ["ring"], "task_types": ["binary"]})
    with pytest.raises(ConfigError, match="fp_kernel_ridge predicts numbers") as err:
        MoleculeLearner.from_config(cfg, data)
    assert "fp_gradient_boosting" in err.value.hint


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"blend": []}, "non-empty list"),
        ({"blend": ["fp_random_forest", "fp_random_forest"]}, "twice"),
        ({"blend": ["none", "fp_random_forest"]}, "must be one of"),
        ({"blend": BOTH, "blend_params": {"fp_random_forest": {}}}, "Not in the list"),
        ({"blend": BOTH, "blend_params": {"fp_kernel_ridge": 3}}, "Not a mapping"),
        ({"blend": BOTH, "blend_params": {"fp_kernel_ridge": {"trees": 3}}}, "trees"),
    ],
)
def test_blend_lists_are_checked(params, match):
    with pytest.raises(ConfigError, match=match):
        MODELS.get("dmpnn")(descriptors=True, **params)


def test_blend_params_of_a_list_reach_each_baseline():
    arch = MODELS.get("gin")(
        descriptors=True,
        blend=BOTH,
        blend_params={"fp_kernel_ridge": {"alphas": [0.5]}},
    )
    gbm, krr = arch["blend_specs"]
    assert arch["blend"] == BOTH and arch["blend_spec"] is None
    assert gbm["n_bits"] == 512 and gbm["name"] == "fp_gradient_boosting"  # its blend default
    assert krr["n_bits"] == 2048 and krr["params"]["alphas"] == [0.5]
    # one baseline keeps the single spec of earlier bundles, and its parameters may be given
    # either way
    one = MODELS.get("gin")(blend="fp_kernel_ridge", blend_params={"alphas": [0.5]})
    assert one["blend_spec"]["params"]["alphas"] == [0.5] and one["blend"] == "fp_kernel_ridge"
    keyed = MODELS.get("gin")(
        blend="fp_kernel_ridge", blend_params={"fp_kernel_ridge": {"alphas": [0.5]}}
    )
    assert keyed["blend_spec"] == one["blend_spec"]


@pytest.mark.parametrize("repeats", [1, 3])
def test_kernel_ridge_search_agrees_with_scikit_learns_grid_search(repeats):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import GridSearchCV, KFold, RepeatedKFold
    from sklearn.preprocessing import StandardScaler

    from medlearn.molecules._models import KernelRidgeSearch

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 5))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.1 * rng.normal(size=60)
    alphas, gammas = [0.01, 0.1, 1.0], [0.03, 0.1, 0.3]
    ours = KernelRidgeSearch(
        alphas=alphas, gammas=gammas, cv_folds=4, cv_repeats=repeats, seed=7
    ).fit(X, y)
    cv = (
        KFold(4, shuffle=True, random_state=7)
        if repeats == 1
        else RepeatedKFold(n_splits=4, n_repeats=repeats, random_state=7)
    )
    ref = GridSearchCV(
        TransformedTargetRegressor(
            regressor=KernelRidge(kernel="rbf"), transformer=StandardScaler()
        ),
        {"regressor__alpha": alphas, "regressor__gamma": gammas},
        cv=cv,
        scoring="neg_root_mean_squared_error",
    ).fit(X, y)
    assert ours.best_params_ == ref.best_params_
    assert ours.best_score_ == pytest.approx(ref.best_score_, abs=1e-8)
    assert np.allclose(ours.best_estimator_.predict(X), ref.best_estimator_.predict(X))


def test_report_shows_a_weight_per_baseline_and_every_validation_score(tmp_path):
    from medlearn.molecules._task_report import _blend_section

    lrn, report, _, _ = _blended(tmp_path)
    html = _blend_section({"training": {"blend": report.extra["blend"]}})
    for name in BOTH:
        assert f"<th>weight of {name}</th>" in html and f"<th>{name}</th>" in html
    w = lrn.blend_weights_
    first_row = "<tr><th>carbons</th>" + "".join(f'<td class="num">{x:.1f}</td>' for x in w[:, 0])
    assert first_row in html
    assert f"{report.extra['blend']['val_rmse']['blend']:.3f}" in html
    # a one-baseline blend keeps its table: one weight column and a "baseline" score
    single = {
        "model": "fp_random_forest",
        "weights": {"y": 0.3},
        "val_rmse": {"network": 1.0, "baseline": 2.0, "blend": 0.9},
    }
    html = _blend_section({"training": {"blend": single}})
    assert "<th>weight of fp_random_forest</th>" in html and "<th>baseline</th>" in html
    assert '<tr><th>y</th><td class="num">0.3</td></tr>' in html

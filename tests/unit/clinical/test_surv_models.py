"""Survival models and the SurvivalLearner on a tiny synthetic proportional-hazards set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.clinical._survival_models import BreslowBaseline, cox_partial_nll
from medlearn.clinical.survival import SurvivalLearner, SurvivalSchema
from medlearn.data import make_record
from medlearn.evaluation.survival import c_index
from medlearn.registry import MODELS

MODELS_UNDER_TEST = ["cox_ph", "rsf", "gradient_boosting_survival", "deepsurv"]


def ph_records(n: int, seed: int, *, treatment: bool = False):
    """Proportional hazards: log-risk = x0 - 0.8 x1 (+ treatment helps when x2 > 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    log_risk = x[:, 0] - 0.8 * x[:, 1]
    if treatment:
        x[:, 3] = rng.integers(0, 2, n)
        log_risk = log_risk - 1.5 * x[:, 3] * np.sign(x[:, 2])
    event_time = rng.exponential(np.exp(-log_risk))
    censor = rng.exponential(2.0, size=n)
    t = np.minimum(event_time, censor)
    e = (event_time <= censor).astype(int)
    return [
        make_record(f"r{seed}_{i}", x[i], {"time": float(t[i]), "event": int(e[i])})
        for i in range(n)
    ]


def _learner(name: str, treatment: int | None = None) -> SurvivalLearner:
    schema = SurvivalSchema(features=["a", "b", "c", "d"], treatment=treatment)
    return SurvivalLearner(
        model=name,
        model_params=dict(MODELS.meta(name)["tiny"]),
        schema=schema,
        training={"epochs": 30, "batch_size": 64, "lr": 1e-2, "patience": 10},
    )


def test_cox_loss_matches_lifelines_and_brute_force_breslow():
    import pandas as pd
    from lifelines import CoxPHFitter

    recs = ph_records(80, seed=3)
    x = np.stack([r["input"] for r in recs]).astype(float)
    t = np.array([r["target"]["time"] for r in recs])
    e = np.array([r["target"]["event"] for r in recs])
    frame = pd.DataFrame(x[:, :2], columns=["a", "b"]).assign(t=t, e=e)
    cph = CoxPHFitter().fit(frame, "t", "e")
    f = torch.tensor(x[:, :2] @ cph.params_.to_numpy())
    nll = cox_partial_nll(f, torch.tensor(t), torch.tensor(e)).item()
    # without tied times Efron's and Breslow's likelihoods coincide
    assert nll * e.sum() == pytest.approx(-cph.log_likelihood_, rel=1e-6)
    assert cox_partial_nll(f * 1.3, torch.tensor(t), torch.tensor(e)).item() > nll
    # with ties: the Breslow risk set holds everyone with time >= t_i
    tr = np.round(t, 1)
    fn = f.numpy()
    want = -sum(fn[i] - np.log(np.exp(fn[tr >= tr[i]]).sum()) for i in np.flatnonzero(e))
    got = cox_partial_nll(f, torch.tensor(tr), torch.tensor(e)).item() * e.sum()
    assert got == pytest.approx(want, rel=1e-9)


def test_breslow_baseline_survival_is_monotone_and_ordered():
    recs = ph_records(100, seed=4)
    t = np.array([r["target"]["time"] for r in recs])
    e = np.array([r["target"]["event"] for r in recs])
    f = np.array([r["input"][0] for r in recs], dtype=float)
    base = BreslowBaseline().fit(f, t, e)
    s = base.survival(np.array([-1.0, 0.0, 1.0]), [0.1, 0.5, 1.0, 2.0])
    assert np.all(np.diff(s, axis=1) <= 0)
    assert np.all(s[0] >= s[1]) and np.all(s[1] >= s[2])


@pytest.mark.parametrize("name", MODELS_UNDER_TEST)
def test_model_beats_chance_and_round_trips(name, tmp_path):
    train, val, test = ph_records(300, 0), ph_records(100, 1), ph_records(200, 2)
    learner = _learner(name)
    report = learner.fit(train, val, work_dir=tmp_path / "work", resume=False)
    assert report.fit_seconds > 0
    t = np.array([r["target"]["time"] for r in test])
    e = np.array([r["target"]["event"] for r in test])
    risk = learner.predict_risk(test)
    assert c_index(t, e, risk) > 0.68, name
    assert learner.predict_logits(test).shape == (200, 1)
    surv = learner.predict_survival(test, [0.2, 0.5, 1.0])
    assert surv.shape == (200, 3) and np.all((surv >= 0) & (surv <= 1))
    assert np.all(np.diff(surv, axis=1) <= 1e-12)
    fields = learner.save(tmp_path / "bundle")
    again = SurvivalLearner.load(tmp_path / "bundle", fields)
    # identical up to the summation order of parallel tree averaging
    np.testing.assert_allclose(again.predict_risk(test), risk, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(again.predict_survival(test, [0.2, 0.5, 1.0]), surv, rtol=1e-12)


def test_treatment_recommendation_finds_the_better_arm(tmp_path):
    train, val, test = (ph_records(600, s, treatment=True) for s in (5, 6, 7))
    learner = _learner("cox_ph", treatment=3)
    learner.fit(train, val, work_dir=tmp_path, resume=False)
    arms = learner.risk_by_arm(test)
    assert arms.shape == (600, 2)
    # cox_ph has no interaction: the treated risk is the control risk plus a constant
    np.testing.assert_allclose(np.ptp(arms[:, 1] - arms[:, 0]), 0.0, atol=1e-9)
    raw = learner.predict_risk(test)
    treated = np.array([r["input"][3] for r in test]) == 1
    np.testing.assert_allclose(raw[treated], arms[treated, 1])
    np.testing.assert_allclose(raw[~treated], arms[~treated, 0])


def test_not_fitted_and_bad_params():
    from medlearn.errors import ConfigError, NotFittedError

    with pytest.raises(NotFittedError):
        _learner("cox_ph").predict_risk(ph_records(5, 0))
    with pytest.raises(ConfigError):
        MODELS.get("deepsurv")(activation="gelu")

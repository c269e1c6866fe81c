"""Time-series models on tiny seeded synthetic arrays: shapes, gradients, planted signal,
GRU-D decay, the Cox loss and the scikit-learn baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.clinical._ts_models import (
    GRUDEncoder,
    build_network,
    cox_partial_likelihood,
)
from medlearn.errors import ConfigError
from medlearn.registry import MODELS

TORCH_MODELS = ["gru", "lstm_attention", "grud", "ts_transformer"]
N, T, V, S, E = 96, 8, 3, 2, 12


def _arrays(seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Planted signal: class 1 has a high value of variable 0 in the last hours."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(N) % 2).long()
    mask = (torch.rand(N, T, V, generator=g) < 0.6).float()
    values = torch.randn(N, T, V, generator=g) * 0.5
    values[:, -3:, 0] += 2.0 * y[:, None].float()
    mask[:, -3:, 0] = 1.0
    values = values * mask
    delta = torch.rand(N, T, V, generator=g) * 5
    ev_var = torch.randint(1, V + 1, (N, E), generator=g)
    ev_time = torch.sort(torch.rand(N, E, generator=g) * T, dim=1).values
    ev_val = torch.randn(N, E, generator=g) * 0.5
    ev_val[:, -1] += 2.0 * y.float()
    ev_var[:, -1] = 1
    batch = {
        "values": values,
        "mask": mask,
        "delta": delta,
        "static": torch.randn(N, S, generator=g),
        "event_time": ev_time,
        "event_var": ev_var,
        "event_value": ev_val,
        "event_mask": torch.ones(N, E),
    }
    return batch, y


def _net(name: str, **params):
    arch = MODELS.get(name)(**{**MODELS.meta(name)["tiny"], **params})
    torch.manual_seed(0)
    return build_network(arch, n_vars=V, n_static=S, delta_scale=float(T))


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_forward_shapes_and_every_parameter_gets_a_gradient(name):
    batch, y = _arrays()
    net = _net(name)
    out = net(batch)
    assert out["logits"].shape == (N, 2)
    assert out["los"].shape == (N,) and out["risk"].shape == (N,)
    loss = (
        torch.nn.functional.cross_entropy(out["logits"], y) + out["los"].mean() + out["risk"].mean()
    )
    loss.backward()
    for pname, p in net.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize(
    "name,params",
    [
        ("gru", {}),
        # the learner tests train GRU-D and the transformer end to end (fast); these are slow
        pytest.param("lstm_attention", {}, marks=pytest.mark.slow),
        pytest.param("grud", {}, marks=pytest.mark.slow),
        pytest.param("ts_transformer", {"view": "events"}, marks=pytest.mark.slow),
    ],
)
def test_learns_planted_signal(name, params):
    torch.manual_seed(0)
    batch, y = _arrays()
    net = _net(name, **params)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    net.train()
    for _ in range(25):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(batch)["logits"], y)
        loss.backward()
        opt.step()
    net.eval()
    test, yt = _arrays(seed=1)
    with torch.no_grad():
        pred = net(test)["logits"].argmax(1)
    assert (pred == yt).float().mean() > 0.85


def test_grud_decay_goes_from_last_value_to_mean():
    enc = GRUDEncoder(2, 4, delta_scale=10.0)
    with torch.no_grad():
        enc.x_mean.copy_(torch.tensor([0.5, -1.0]))
    deltas = torch.tensor([[0.0, 0.0], [1.0, 1.0], [10.0, 10.0], [1000.0, 1000.0]])
    gamma = enc.input_decay(deltas)
    assert torch.all(gamma <= 1.0) and torch.all(gamma >= 0)
    assert torch.allclose(gamma[0], torch.ones(2))  # just observed: no decay
    assert torch.all(gamma[1:] <= gamma[:-1])  # non-increasing in delta
    x = torch.zeros(4, 2)
    m = torch.zeros(4, 2)
    last = torch.tensor([[3.0, 3.0]]).expand(4, 2)
    x_hat = enc.impute(x, m, deltas, last)
    assert torch.allclose(x_hat[0], torch.tensor([3.0, 3.0]))  # carries the last value
    assert torch.allclose(x_hat[-1], enc.x_mean, atol=1e-3)  # long gaps decay to the mean
    observed = enc.impute(torch.full((4, 2), 7.0), torch.ones(4, 2), deltas, last)
    assert torch.allclose(observed, torch.full((4, 2), 7.0))  # observed values pass through
    h_gamma = enc.hidden_decay(deltas)
    assert h_gamma.shape == (4, 4) and torch.all(h_gamma <= 1.0)


def test_cox_partial_likelihood_matches_hand_computation():
    risk = torch.tensor([0.5, -0.2, 1.0, 0.0])
    time = torch.tensor([2.0, 5.0, 1.0, 4.0])
    event = torch.tensor([1.0, 0.0, 1.0, 1.0])
    got = cox_partial_likelihood(risk, time, event)
    r = risk.numpy()
    t = time.numpy()
    terms = [r[i] - np.log(np.exp(r[t >= t[i]]).sum()) for i in range(4) if event[i] > 0]
    assert got.item() == pytest.approx(-np.mean(terms), rel=1e-5)
    assert cox_partial_likelihood(risk, time, torch.zeros(4)).item() == 0.0
    # higher risk for the earlier deaths lowers the loss
    better = cox_partial_likelihood(torch.tensor([1.0, -1.0, 2.0, 0.0]), time, event)
    assert better < got


def test_save_load_state_dict_gives_identical_predictions(tmp_path):
    batch, _ = _arrays()
    for name in TORCH_MODELS:
        net = _net(name).eval()
        torch.save(net.state_dict(), tmp_path / f"{name}.pt")
        other = _net(name)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(1.0)
        other.load_state_dict(torch.load(tmp_path / f"{name}.pt", weights_only=True))
        other.eval()
        with torch.no_grad():
            assert torch.equal(net(batch)["logits"], other(batch)["logits"])


@pytest.mark.parametrize(
    "name", ["ts_logistic_regression", "ts_random_forest", "ts_gradient_boosting"]
)
def test_sklearn_baselines_handle_nan_and_learn(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] > 0).astype(int)
    X[rng.random(X.shape) < 0.2] = np.nan
    est = MODELS.get(name)(**MODELS.meta(name)["tiny"], seed=0, class_weight="balanced")
    est.fit(X[:150], y[:150])
    proba = est.predict_proba(X[150:])
    assert proba.shape == (50, 2) and np.isfinite(proba).all()
    known = ~np.isnan(X[150:, 0])
    assert ((proba[:, 1] > 0.5) == y[150:])[known].mean() > 0.75


@pytest.mark.parametrize(
    "name,params",
    [
        ("gru", {"dropout": 1.5}),
        ("grud", {"aux_weights": {"mortality": 1.0}}),
        ("ts_transformer", {"hidden": 10, "heads": 4}),
        ("ts_transformer", {"view": "sideways"}),
        ("ts_ensemble", {"members": ["random_forest"]}),
        ("ts_ensemble", {"members": []}),
    ],
)
def test_bad_params_are_refused(name, params):
    with pytest.raises((ConfigError, KeyError)):
        MODELS.get(name)(**params)


def test_every_model_is_registered_for_the_timeseries_learner():
    for name in [
        *TORCH_MODELS,
        "ts_logistic_regression",
        "ts_random_forest",
        "ts_gradient_boosting",
        "ts_ensemble",
    ]:
        meta = MODELS.meta(name)
        assert meta["domain"] == "clinical" and meta["learner"] == "timeseries"
        assert meta["reader"] == "timeseries" and meta["tasks"] == ("binary",)

"""Molecule models: the D-MPNN message rule by hand, readouts, and every registered network
(forward shapes, gradients to every parameter, no NaN), fingerprint estimator factories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.errors import ConfigError
from medlearn.molecules._featurize import collate, mol_to_graph
from medlearn.molecules._models import (
    DMPNNEncoder,
    MoleculeNet,
    build_network,
    directed_messages,
    make_estimator,
    readout,
    reverse_edges,
    scatter_sum,
)
from medlearn.registry import MODELS

NETWORKS = MODELS.list(domain="molecules", kind="torch")
BASELINES = MODELS.list(domain="molecules", kind="sklearn")
SMILES = ["CCO", "c1ccccc1O", "C", "CC(=O)Nc1ccc(O)cc1", "C1CC1N"]


def _graphs(smiles=SMILES):
    from rdkit import Chem

    return [mol_to_graph(Chem.MolFromSmiles(s)) for s in smiles]


def test_registry_holds_the_issue_models_with_molecule_meta():
    assert set(NETWORKS) == {"dmpnn", "gin", "gine", "attentivefp"}
    assert set(BASELINES) == {"fp_random_forest", "fp_gradient_boosting"}
    for name in NETWORKS + BASELINES:
        meta = MODELS.meta(name)
        assert meta["learner"] == meta["reader"] == meta["handler"] == "molecules"
        assert set(meta["tasks"]) == {"binary", "multilabel", "regression"}
        assert meta["description"] and isinstance(meta["tiny"], dict)


def test_dmpnn_message_excludes_the_reverse_bond_by_hand():
    """C-C-O: edges e0 = 0→1, e1 = 1→0, e2 = 1→2, e3 = 2→1 (reverse of e is e ^ 1)."""
    from rdkit import Chem

    g = mol_to_graph(Chem.MolFromSmiles("CCO"))
    ei = torch.from_numpy(g.edge_index)
    assert ei.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    h = torch.tensor([[1.0], [2.0], [4.0], [8.0]])
    # into atom 0: e1 (2); into atom 1: e0 + e3 (1 + 8); into atom 2: e2 (4)
    # m(e0: 0→1) = in(0) - h(e1) = 0;  m(e1: 1→0) = in(1) - h(e0) = 8
    # m(e2: 1→2) = in(1) - h(e3) = 1;  m(e3: 2→1) = in(2) - h(e2) = 0
    assert directed_messages(h, ei, 3).flatten().tolist() == [0.0, 8.0, 1.0, 0.0]


def test_reverse_edges_is_index_xor_one():
    h = torch.arange(12.0).reshape(6, 2)
    assert torch.equal(reverse_edges(h), h[torch.arange(6) ^ 1])


def test_scatter_sum_and_readouts():
    h = torch.tensor([[1.0], [3.0], [10.0]])
    batch = torch.tensor([0, 0, 1])
    assert scatter_sum(h, batch, 3).flatten().tolist() == [4.0, 10.0, 0.0]
    assert readout(h, batch, 2, "sum").flatten().tolist() == [4.0, 10.0]
    assert readout(h, batch, 2, "mean").flatten().tolist() == [2.0, 10.0]
    assert readout(h, batch, 2, "norm").flatten().tolist() == pytest.approx([0.04, 0.1])


@pytest.mark.parametrize("smiles", ["CC(=O)Nc1ccc(O)cc1", "C1CC1N", "OCC(O)CO"])
def test_dmpnn_messages_match_a_brute_force_loop(smiles):
    """m_e for e = u→v: the sum of h over edges into u, leaving out v→u."""
    (g,) = _graphs([smiles])
    ei = torch.from_numpy(g.edge_index)
    h = torch.randn(ei.shape[1], 5, generator=torch.Generator().manual_seed(0))
    expected = torch.zeros_like(h)
    for e in range(ei.shape[1]):
        u, v = ei[:, e].tolist()
        for f in range(ei.shape[1]):
            if ei[1, f] == u and ei[0, f] != v:
                expected[e] += h[f]
    assert torch.allclose(directed_messages(h, ei, g.n_atoms), expected, atol=1e-6)


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("n_extra", [0, 3])
def test_network_forward_backward(name, n_extra):
    torch.manual_seed(0)
    arch = MODELS.get(name)(**MODELS.meta(name)["tiny"])
    net = build_network(arch, n_tasks=2, n_extra=n_extra)
    extra = np.random.default_rng(0).normal(size=(len(SMILES), n_extra)) if n_extra else None
    b = collate(_graphs(), extra)
    out = net(b)
    assert out.shape == (len(SMILES), 2)
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_molecule_without_bonds_is_handled():
    torch.manual_seed(0)
    net = build_network(MODELS.get("dmpnn")(hidden=8, ffn_hidden=8), n_tasks=1).eval()
    out = net(collate(_graphs(["C", "[Na+]"])))  # no bonds at all in the batch
    assert out.shape == (2, 1) and torch.isfinite(out).all()


def test_network_outputs_do_not_depend_on_batch_neighbours():
    torch.manual_seed(0)
    net = build_network(MODELS.get("dmpnn")(hidden=8, ffn_hidden=8), n_tasks=1).eval()
    together = net(collate(_graphs()))
    alone = torch.cat([net(collate(_graphs([s]))) for s in SMILES])
    assert torch.allclose(together, alone, atol=1e-5)


def test_target_scaler_round_trip():
    net = MoleculeNet(DMPNNEncoder(hidden=4), 2)
    net.set_target_scaler([1.5, -3.0], [2.0, 0.5])
    scaled = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    assert net.unscale(scaled).tolist() == [[1.5, -3.0], [3.5, -4.0]]
    assert {"y_mean", "y_std"} <= set(net.state_dict())


def test_descriptor_width_is_checked():
    net = build_network(MODELS.get("dmpnn")(hidden=4, ffn_hidden=4), n_tasks=1, n_extra=2)
    with pytest.raises(ValueError, match="2 descriptor features"):
        net(collate(_graphs()))


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("dmpnn", {"aggregation": "max"}, "'aggregation' parameter of dmpnn"),
        ("dmpnn", {"depth": 0}, "'depth' parameter of dmpnn"),
        ("gin", {"dropout": 1.5}, "'dropout' parameter of gin"),
        ("gine", {"ffn_layers": -1}, "'ffn_layers' parameter of gine"),
        ("attentivefp", {"timesteps": 0}, "'timesteps' parameter of attentivefp"),
        ("fp_random_forest", {"fingerprint": "maccs"}, "'fingerprint' parameter"),
        ("fp_gradient_boosting", {"n_bits": 0}, "'n_bits' parameter"),
    ],
)
def test_bad_params_are_refused(name, params, match):
    with pytest.raises(ConfigError, match=match):
        MODELS.get(name)(**params)


def test_fingerprint_estimators_per_task_type():
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    rf = MODELS.get("fp_random_forest")(n_estimators=5)
    hgb = MODELS.get("fp_gradient_boosting")(max_iter=5)
    assert rf["fingerprint"] == "count" and rf["n_bits"] == 2048
    clf = make_estimator(rf, task_type="classification", class_weight="balanced", seed=3)
    assert isinstance(clf, RandomForestClassifier)
    assert clf.class_weight == "balanced_subsample" and clf.max_features == "sqrt"
    reg = make_estimator(rf, task_type="regression")
    assert isinstance(reg, RandomForestRegressor) and reg.max_features == 1.0
    assert isinstance(
        make_estimator(hgb, task_type="classification"), HistGradientBoostingClassifier
    )
    assert isinstance(make_estimator(hgb, task_type="regression"), HistGradientBoostingRegressor)

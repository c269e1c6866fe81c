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
    assert set(BASELINES) == {"fp_random_forest", "fp_gradient_boosting", "fp_kernel_ridge"}
    for name in NETWORKS + BASELINES:
        meta = MODELS.meta(name)
        assert meta["learner"] == meta["reader"] == meta["handler"] == "molecules"
        tasks = (
            {"regression"} if name == "fp_kernel_ridge" else {"binary", "multilabel", "regression"}
        )
        assert set(meta["tasks"]) == tasks
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


def test_scatter_sum_is_scatter_reduce_sum():
    # the message and readout sums are torch's scatter_reduce (reduce="sum"), written as
    # index_add_, which takes the row index as it is instead of one expanded per column
    g = torch.Generator().manual_seed(0)
    src = torch.randn(50, 7, generator=g)
    index = torch.randint(0, 12, (50,), generator=g)
    reduced = torch.zeros(12, 7).scatter_reduce(0, index[:, None].expand(-1, 7), src, "sum")
    assert torch.allclose(scatter_sum(src, index, 12), reduced, atol=1e-6)


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


def _reference_dmpnn_atom_states(enc: DMPNNEncoder, x, edge_index, edge_attr):
    """The D-MPNN of the module docstring written out plainly (per-edge concatenation,
    messages as "all edges into u minus the reverse edge", W_o on the concatenation)."""
    src, dst = edge_index
    n = x.shape[0]
    h_in = enc.W_i(torch.cat([x[src], edge_attr], dim=1))
    h = torch.relu(h_in)
    for _ in range(enc.depth - 1):
        incoming = torch.zeros(n, h.shape[1]).index_add(0, dst, h)
        m = incoming[src] - h[torch.arange(h.shape[0]) ^ 1]
        h = torch.relu(h_in + enc.W_h(m))
    m_atom = torch.zeros(n, h.shape[1]).index_add(0, dst, h)
    return torch.relu(enc.W_o(torch.cat([x, m_atom], dim=1)))


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_dmpnn_encoder_matches_the_plain_formula_values_and_gradients(depth):
    torch.manual_seed(0)
    enc = DMPNNEncoder(hidden=24, depth=depth)
    b = collate(_graphs(SMILES + ["C", "[Na+].[Cl-]", "OC(=O)c1ccccc1C#N"]))
    x = b.x.clone().requires_grad_(True)  # integrated gradients differentiate by x
    got = enc.atom_states(x, b.edge_index, b.edge_attr, b.message_pairs())
    x_ref = b.x.clone().requires_grad_(True)
    want = _reference_dmpnn_atom_states(enc, x_ref, b.edge_index, b.edge_attr)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    weights = torch.randn(want.shape, generator=torch.Generator().manual_seed(1))
    params = [x, *enc.parameters()]
    grads = torch.autograd.grad((got * weights).sum(), params, allow_unused=True)
    ref_params = [x_ref, *enc.parameters()]
    ref_grads = torch.autograd.grad((want * weights).sum(), ref_params, allow_unused=True)
    for g, r in zip(grads, ref_grads, strict=True):
        assert (g is None) == (r is None)  # W_h is unused at depth 1
        assert g is None or torch.allclose(g, r, atol=1e-5, rtol=1e-4)


def test_message_pairs_of_a_batch_are_cached_and_match_the_edge_index():
    b = collate(_graphs())
    rows, cols = b.message_pairs()
    assert b.message_pairs()[0] is rows  # computed once per batch
    src, dst = b.edge_index
    assert torch.all(dst[cols] == src[rows])  # every pair feeds an edge into u ...
    assert torch.all(cols != (rows ^ 1))  # ... other than the reverse edge
    assert torch.all(rows[1:] >= rows[:-1])
    # every (edge into u, edge out of u) combination except reverses is present
    expected = sum(int((dst == u).sum()) * (int((dst == u).sum()) - 1) for u in range(b.x.shape[0]))
    assert len(rows) == expected


@pytest.mark.parametrize(
    "smiles",
    [
        "CCO",
        "C",
        "[Na+].[Cl-]",
        "C[C@H](N)C(=O)O",  # chirality
        r"F/C=C/F",  # bond stereo
        "c1ccc2[nH]ccc2c1",  # aromatic rings
        "[NH4+]",
        "O=S(=O)([O-])c1ccccc1",
        "[Fe+3]",
        "C[Si](C)(C)O[Se]",
        "[CH2]C",  # a radical
        "F[P-](F)(F)(F)(F)F",  # degree 6 ("other" degree slot), SP3D2
        "[O-2]",
        "[13CH4]",
        "[H][H]",
    ],
)
def test_mol_to_graph_rows_are_the_per_atom_and_per_bond_features(smiles):
    from rdkit import Chem

    from medlearn.molecules._featurize import atom_features, bond_features

    mol = Chem.MolFromSmiles(smiles)
    g = mol_to_graph(mol)
    want_x = np.asarray([atom_features(a) for a in mol.GetAtoms()], dtype=np.float32)
    np.testing.assert_array_equal(g.x, want_x.reshape(-1, g.x.shape[1]))
    assert g.x.dtype == np.float32 and g.edge_attr.dtype == np.float32
    assert g.edge_index.dtype == np.int64
    src, dst, attr = [], [], []
    for bond in mol.GetBonds():
        u, v = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        src += [u, v]
        dst += [v, u]
        attr += [bond_features(bond)] * 2
    assert g.edge_index.tolist() == [src, dst]
    want_attr = np.asarray(attr, dtype=np.float32).reshape(-1, g.edge_attr.shape[1])
    np.testing.assert_array_equal(g.edge_attr, want_attr)

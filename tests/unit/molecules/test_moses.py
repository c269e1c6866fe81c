"""MOSES metrics on tiny, hand-checkable sets (RDKit's own Tanimoto as the reference)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("rdkit")

from rdkit import Chem, DataStructs  # noqa: E402
from rdkit.Chem import rdFingerprintGenerator  # noqa: E402

from medlearn.molecules import _moses as M  # noqa: E402


def _rdkit_tanimoto(a: str, b: str, n_bits: int = 1024) -> float:
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=n_bits)
    fa = gen.GetFingerprint(Chem.MolFromSmiles(a))
    fb = gen.GetFingerprint(Chem.MolFromSmiles(b))
    return float(DataStructs.TanimotoSimilarity(fa, fb))


def test_validity_counts_empty_none_and_unparseable_as_invalid() -> None:
    assert M.fraction_valid(["CCO", "C1CC", "", None, "c1ccccc1"]) == pytest.approx(2 / 5)
    assert M.fraction_valid([]) == 0.0


@pytest.mark.parametrize(
    ("canonical", "k", "expected"),
    [
        (["CCO", "CCO", "c1ccccc1"], None, 2 / 3),
        (["CCO", "CCO", "c1ccccc1"], 2, 1 / 2),
        (["CCO", "CCN", "c1ccccc1"], 10_000, 1.0),  # fewer than k: all of them
        ([], 1000, 0.0),
    ],
)
def test_unique_at_k(canonical: list[str], k: int | None, expected: float) -> None:
    assert M.fraction_unique(canonical, k) == pytest.approx(expected)


def test_novelty_is_over_distinct_molecules() -> None:
    assert M.novelty(["CCO", "CCN", "CCN"], ["CCO"]) == pytest.approx(0.5)
    assert M.novelty(["CCO"], ["CCO"]) == 0.0


def test_tanimoto_matrix_by_hand() -> None:
    a = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32)
    b = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=np.float32)
    sim = M.tanimoto_matrix(a, b)
    assert sim[0, 0] == pytest.approx(1 / 3)  # 1 shared bit of 3 set in either
    assert sim[0, 1] == 0.0
    assert sim[1, 1] == 1.0  # two empty fingerprints count as identical (MOSES)


def test_internal_diversity_matches_the_pair_formula() -> None:
    a, b = "c1ccccc1O", "CCCCCCN"
    s = _rdkit_tanimoto(a, b)
    mols = M.to_mols([a, b])
    # all |G|^2 ordered pairs, self-pairs included: (1 + 1 + 2s) / 4
    assert M.internal_diversity(mols) == pytest.approx(1 - (2 + 2 * s) / 4, abs=1e-6)
    assert M.internal_diversity(mols, p=2) == pytest.approx(
        1 - np.sqrt((2 + 2 * s**2) / 4), abs=1e-6
    )
    assert M.internal_diversity(M.to_mols(["CCO", "CCO"])) == pytest.approx(0.0)


def test_snn_is_the_mean_nearest_neighbour_similarity() -> None:
    a, b = "c1ccccc1CC(=O)O", "c1ccccc1CCO"
    assert M.snn(M.to_mols([a]), M.to_mols([a, b])) == pytest.approx(1.0)
    expected = (1.0 + _rdkit_tanimoto(a, b)) / 2
    assert M.snn(M.to_mols([a, b]), M.to_mols([a])) == pytest.approx(expected, abs=1e-6)


def test_cosine_of_counts_by_hand() -> None:
    assert M.cosine_similarity_counts(Counter(x=1, y=1), Counter(x=1)) == pytest.approx(
        1 / np.sqrt(2)
    )
    assert M.cosine_similarity_counts(Counter(x=2), Counter(x=5)) == pytest.approx(1.0)
    assert np.isnan(M.cosine_similarity_counts(Counter(), Counter(x=1)))


def test_fragments_are_brics_pieces() -> None:
    counts = M.fragment_counts(M.to_mols(["CCOC(=O)c1ccccc1", "CCOC(=O)c1ccccc1"]))
    assert sum(counts.values()) > 2 and all(v % 2 == 0 for v in counts.values())
    assert M.fragment_similarity(
        M.to_mols(["CCOC(=O)c1ccccc1"]), M.to_mols(["CCOC(=O)c1ccccc1"])
    ) == (pytest.approx(1.0))


def test_scaffolds_need_min_rings() -> None:
    mols = M.to_mols(["c1ccc2ccccc2c1CCO", "c1ccccc1CCO", "CCCC"])
    assert M.scaffold_counts(mols) == Counter({"c1ccc2ccccc2c1": 1})
    assert M.scaffold_counts(mols, min_rings=1) == Counter({"c1ccc2ccccc2c1": 1, "c1ccccc1": 1})
    assert M.scaffold_similarity(mols, M.to_mols(["c1ccc2ccccc2c1C"])) == pytest.approx(1.0)


def test_property_values() -> None:
    weight = M.property_values(["CCO", "not a smiles"], "weight")
    assert weight[0] == pytest.approx(46.069, abs=1e-3)
    assert np.isnan(weight[1])
    qed = M.property_values(["CC(=O)Oc1ccccc1C(=O)O"], "qed")[0]
    assert 0.4 < qed < 0.7  # aspirin's QED is about 0.55
    sa_small, sa_big = M.property_values(["c1ccccc1", "CC12CCC3C(CCC4=CC(=O)CCC34C)C1CCC2O"], "sa")
    assert 1.0 <= sa_small < sa_big <= 10.0
    with pytest.raises(ValueError, match="Unknown property"):
        M.property_values(["CCO"], "colour")


def test_compute_metrics_against_itself() -> None:
    smiles = ["c1ccccc1O", "CCN(CC)CC", "c1ccc2ccccc2c1C(=O)O", "CC(=O)Nc1ccc(O)cc1"]
    train = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles[:2]]  # canonical
    gm = M.compute_metrics([*smiles, None, "C1CC"], train=train, reference=smiles)
    v = gm.values
    assert v["validity"] == pytest.approx(4 / 6)
    assert v["uniqueness_1k"] == v["uniqueness_10k"] == 1.0
    assert v["novelty"] == pytest.approx(0.5)
    assert v["snn"] == pytest.approx(1.0)
    assert v["frag_sim"] == pytest.approx(1.0)
    for name in M.PROPERTIES:
        assert v[f"wasserstein_{name}"] == pytest.approx(0.0, abs=1e-9)
    assert gm.counts == {"n_samples": 6, "n_valid": 4, "n_unique": 4, "n_reference": 4}
    assert gm.per_item["validity"].tolist() == [1, 1, 1, 1, 0, 0]


def test_compute_metrics_without_references_leaves_them_none() -> None:
    gm = M.compute_metrics(["CCO", "CCO"])
    assert gm.values["novelty"] is None and gm.values["snn"] is None
    assert gm.values["uniqueness_1k"] == 0.5
    assert gm.values["int_div"] == pytest.approx(0.0)


def test_wasserstein_distance_shifts_with_the_property() -> None:
    ref = ["CCO", "CCCO"]
    near = M.compute_metrics(["CCCO", "CCO"], reference=ref).values["wasserstein_weight"]
    far = M.compute_metrics(["CCCCCCCCO", "CCCCCCCCCO"], reference=ref).values["wasserstein_weight"]
    assert near == pytest.approx(0.0, abs=1e-9)
    assert far == pytest.approx(6 * 14.027, abs=0.05)  # six CH2 groups heavier

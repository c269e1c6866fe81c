"""Morgan fingerprints and RDKit descriptors with their scaler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlearn.errors import ConfigError, DataValidationError, NotFittedError
from medlearn.molecules._features import (
    DescriptorScaler,
    clear_feature_cache,
    descriptor_names,
    morgan_fingerprints,
    rdkit_descriptors,
)

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCCCCCCCCC", "OC(=O)CC(O)(CC(=O)O)C(=O)O"]


@pytest.mark.parametrize("counts", [False, True])
@pytest.mark.parametrize(("radius", "n_bits"), [(2, 2048), (3, 512), (0, 64)])
def test_fingerprint_shapes_and_determinism(counts: bool, radius: int, n_bits: int) -> None:
    X = morgan_fingerprints(SMILES, radius=radius, n_bits=n_bits, counts=counts)
    assert X.shape == (len(SMILES), n_bits) and X.dtype == np.float32
    clear_feature_cache()
    np.testing.assert_array_equal(
        X, morgan_fingerprints(SMILES, radius=radius, n_bits=n_bits, counts=counts)
    )
    assert (X.sum(axis=1) > 0).all()


def test_counts_dominate_bits() -> None:
    bits = morgan_fingerprints(SMILES, n_bits=1024)
    counts = morgan_fingerprints(SMILES, n_bits=1024, counts=True)
    assert set(np.unique(bits)) <= {0.0, 1.0}
    np.testing.assert_array_equal(counts > 0, bits > 0)
    assert counts.max() > 1  # decane repeats its CH2 environment


def test_fingerprint_radius_matters_and_order_follows_input() -> None:
    r1 = morgan_fingerprints(SMILES, radius=1)
    r2 = morgan_fingerprints(SMILES, radius=2)
    assert (r2.sum(axis=1) >= r1.sum(axis=1)).all() and not np.array_equal(r1, r2)
    rev = morgan_fingerprints(SMILES[::-1], radius=2)
    np.testing.assert_array_equal(rev, r2[::-1])


def test_fingerprint_errors() -> None:
    with pytest.raises(ConfigError, match="radius"):
        morgan_fingerprints(SMILES, radius=-1)
    with pytest.raises(ConfigError, match="n_bits"):
        morgan_fingerprints(SMILES, n_bits=0)
    with pytest.raises(DataValidationError, match=r"2 of 3 SMILES .*items 2, 3"):
        morgan_fingerprints(["CCO", "C1CC", ""])


def test_descriptors_all_columns() -> None:
    from rdkit.Chem import Descriptors

    names = descriptor_names()
    assert names == [n for n, _ in Descriptors._descList]
    X = rdkit_descriptors(SMILES[:3])
    assert X.shape == (3, len(names)) and X.dtype == np.float64
    mw = X[:, names.index("MolWt")]
    np.testing.assert_allclose(mw[0], 46.069, atol=0.01)
    sub = rdkit_descriptors(SMILES[:3], names=["MolWt", "TPSA"])
    np.testing.assert_array_equal(sub[:, 0], mw)
    with pytest.raises(ConfigError, match="Unknown RDKit descriptor"):
        rdkit_descriptors(SMILES[:1], names=["NoSuchThing"])


def test_descriptors_equal_rdkit_functions_called_one_by_one() -> None:
    # The E-state extremes share one computation per molecule; every value must still be
    # exactly what RDKit's own function returns, in any order of names.
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    table = dict(Descriptors._descList)
    names = ["MinAbsEStateIndex", "MolWt", "MaxEStateIndex", "MinEStateIndex", "MaxAbsEStateIndex"]
    clear_feature_cache()
    X = rdkit_descriptors(SMILES, names=names)
    for i, smi in enumerate(SMILES):
        want = [float(table[n](Chem.MolFromSmiles(smi))) for n in names]
        np.testing.assert_array_equal(X[i], want)
    assert (X[:, 2] >= X[:, 3]).all() and (X[:, 2] > X[:, 3]).any()


def test_scaler_handles_nan_inf_and_extremes() -> None:
    X = np.array([[1.0, np.nan, 5.0], [2.0, np.inf, 5.0], [3.0, 1.0, 5.0], [1e30, 2.0, 5.0]])
    scaler = DescriptorScaler(["a", "b", "c"], clip_quantile=0.25).fit(X)
    Z = scaler.transform(X)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    assert np.allclose(Z[:, 2], 0.0)  # a constant column becomes 0
    assert np.abs(Z).max() < 10  # 1e30 is clipped to the training quantile
    # a missing value is imputed with the training median
    imputed = scaler.transform(np.array([[np.nan, np.nan, np.nan]]))[0]
    expected = (np.clip(scaler.median_, scaler.low_, scaler.high_) - scaler.mean_) / scaler.std_
    np.testing.assert_allclose(imputed, expected.astype(np.float32), rtol=1e-6)
    assert scaler.median_[1] == pytest.approx(1.5)  # NaN and inf ignored


def test_scaler_round_trip(tmp_path: Path) -> None:
    names = descriptor_names()
    X = rdkit_descriptors(SMILES)
    scaler = DescriptorScaler(names).fit(X[:4])
    path = scaler.save(tmp_path / "descriptors.json")
    loaded = DescriptorScaler.load(path)
    assert loaded.names == names
    np.testing.assert_array_equal(loaded.transform(X), scaler.transform(X))


def test_scaler_errors(tmp_path: Path) -> None:
    scaler = DescriptorScaler(["a", "b"])
    with pytest.raises(NotFittedError, match="Call fit"):
        scaler.transform(np.zeros((1, 2)))
    with pytest.raises(DataValidationError, match=r"shape \(N, 2\)"):
        scaler.fit(np.zeros((3, 5)))
    with pytest.raises(DataValidationError, match="Not a saved descriptor scaler"):
        DescriptorScaler.from_dict({"kind": "something else"})
    bad = DescriptorScaler(["a", "b"]).fit(np.ones((2, 2))).to_dict()
    bad["mean"] = [0.0]
    with pytest.raises(DataValidationError, match="mean"):
        DescriptorScaler.from_dict(bad)


def test_descriptor_disk_cache_round_trip_corrupt_and_unwritable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from medlearn.molecules import _features

    monkeypatch.setenv("MEDLEARN_CACHE_DIR", str(tmp_path / "cache"))
    names = ["MolWt", "TPSA", "MaxEStateIndex"]
    clear_feature_cache()
    X = rdkit_descriptors(SMILES, names=names)
    folder = _features.descriptor_cache_dir(names)
    assert folder.parent == tmp_path / "cache" / "descriptors"
    assert folder != _features.descriptor_cache_dir(["MolWt"])  # another list, another folder
    shards = sorted(folder.glob("*.npz"))
    assert shards

    # from disk: nothing is parsed again, and the values are the same
    clear_feature_cache()

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("descriptors were recomputed instead of read from disk")

    monkeypatch.setattr(_features, "_mols", no_parsing)
    np.testing.assert_array_equal(rdkit_descriptors(SMILES[::-1], names=names), X[::-1])
    monkeypatch.undo()
    monkeypatch.setenv("MEDLEARN_CACHE_DIR", str(tmp_path / "cache"))

    # a corrupt shard is rebuilt with a warning
    shards[0].write_bytes(b"not a cache")
    clear_feature_cache()
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(rdkit_descriptors(SMILES, names=names), X)
    assert "unreadable" in caplog.text
    clear_feature_cache()
    np.testing.assert_array_equal(rdkit_descriptors(SMILES, names=names), X)

    # an unwritable cache folder only costs speed
    blocker = tmp_path / "file"
    blocker.write_text("x")
    clear_feature_cache()
    caplog.clear()
    with caplog.at_level("WARNING"):
        got = rdkit_descriptors(SMILES, names=names, cache_dir=blocker)
    np.testing.assert_array_equal(got, X)
    assert "cannot write the descriptor cache" in caplog.text
    clear_feature_cache()
    np.testing.assert_array_equal(rdkit_descriptors(SMILES, names=names, disk=False), X)


def test_descriptors_from_worker_processes_equal_the_serial_rows(monkeypatch) -> None:
    from medlearn.molecules import _features

    # a seeded set of small molecules: a chain with a group at each end
    rng = np.random.default_rng(0)
    ends = ["", "O", "N", "C(=O)O", "c1ccccc1", "Cl", "C#N"]
    smiles = list(
        dict.fromkeys(
            str(rng.choice(ends[:5])) + "C" * int(rng.integers(1, 8)) + str(rng.choice(ends))
            for _ in range(300)
        )
    )
    assert len(smiles) > 50
    names = ["MolWt", "MolLogP", "TPSA", "qed", "BertzCT", "fr_COO", "NumHDonors"]
    clear_feature_cache()
    serial = rdkit_descriptors(smiles, names=names, disk=False)
    clear_feature_cache()
    monkeypatch.setattr(_features, "PARALLEL_MIN", 10)
    calls = []
    real = _features._parallel_descriptor_rows
    monkeypatch.setattr(
        _features,
        "_parallel_descriptor_rows",
        lambda s, n, w: calls.append((len(s), w)) or real(s, n, w),
    )
    parallel = rdkit_descriptors(smiles, names=names, disk=False, workers=2)
    assert calls == [(len(smiles), 2)]  # the workers did compute them
    np.testing.assert_array_equal(parallel, serial)
    # too few uncached molecules: no processes are started
    clear_feature_cache()
    rdkit_descriptors(smiles[:5], names=names, disk=False, workers=2)
    assert len(calls) == 1
    # a SMILES that does not parse is still reported by position before any worker starts
    clear_feature_cache()
    with pytest.raises(DataValidationError, match="items 3"):
        rdkit_descriptors([*smiles[:2], "C1CC", *smiles[2:20]], names=names, workers=2)
    assert len(calls) == 1

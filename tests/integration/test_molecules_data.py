"""Real MoleculeNet files from MEDLEARN_DATA_DIR through the catalog and the molecules reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlearn import catalog
from medlearn.config import RunConfig
from medlearn.data import check_no_leak, make_splits
from medlearn.errors import ConfigError

pytestmark = pytest.mark.integration


def _cfg(dataset: str, task: str, target: str | list[str] = "label") -> RunConfig:
    return RunConfig.model_validate(
        {"task": task, "data": {"dataset": dataset, "target": target}, "model": {"name": "x"}}
    )


def test_esol_regression(data_dir: Path) -> None:
    data = catalog.load("esol", cfg=_cfg("esol", "regression"))
    assert len(data.records) == 1128
    assert data.info["targets"] == ["measured log solubility in mols per litre"]
    assert data.info["task_types"] == ["regression"] and data.classes is None
    y = np.array([r["target"] for r in data.records])
    assert y.dtype == float and -12 < y.min() < y.max() < 3
    assert len({r["id"] for r in data.records}) == 1128
    with pytest.raises(ConfigError, match="other than 0 and 1"):
        catalog.load("esol", cfg=_cfg("esol", "binary"))


def test_esol_graphs_cached(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlearn.molecules import _data

    monkeypatch.setenv("MEDLEARN_CACHE_DIR", str(tmp_path))
    _data.clear_memory_cache()
    smiles = [r["input"] for r in catalog.load("esol").records]
    graphs = _data.featurize(smiles)
    _data.clear_memory_cache()
    again = _data.featurize(smiles)  # from disk
    assert len(again) == 1128
    assert all(np.array_equal(a.x, b.x) for a, b in zip(graphs, again, strict=True))


def test_tox21_twelve_targets_with_missing_labels(data_dir: Path) -> None:
    data = catalog.load("tox21", cfg=_cfg("tox21", "binary"))
    assert len(data.info["targets"]) == 12 and data.info["targets"][0] == "NR-AR"
    assert data.info["task_types"] == ["classification"] * 12
    # 8 aluminium complexes that this RDKit refuses are skipped, counted and listed
    assert data.info["rows"] == 7831 and len(data.records) == 7823
    assert data.info["data_quality"]["skipped"] == {"invalid_valence": 8}
    assert [s["row"] for s in data.info["skipped_rows"]][:2] == [1323, 2291]
    y = np.array([r["target"] for r in data.records])
    assert y.shape == (7823, 12)
    assert np.isnan(y).any() and not np.isnan(y).all(axis=1).any()
    assert set(np.unique(y[~np.isnan(y)])) == {0.0, 1.0}
    assert data.info["data_quality"]["labels"]["missing_labels"] == int(np.isnan(y).sum())
    sub = catalog.load("tox21", cfg=_cfg("tox21", "binary", ["NR-AR", "SR-p53"]))
    assert sub.info["targets"] == ["NR-AR", "SR-p53"]
    assert all(len(r["target"]) == 2 for r in sub.records)


def test_bbbp_binary_scaffold_split(data_dir: Path) -> None:
    data = catalog.load("bbbp", cfg=_cfg("bbbp", "binary"))
    assert len(data.records) == 2039 and data.classes == ["negative", "positive"]
    assert data.info["data_quality"]["standardised"]["fragments_removed"] > 50
    assert all("." not in r["input"] for r in data.records)
    for method in ("scaffold", "scaffold_balanced"):
        split = make_splits(data.records, method=method, seed=0, fractions=(0.8, 0.1, 0.1))
        check_no_leak(split, data.records)
        by_id = data.by_id()
        seen: dict[str, str] = {}
        for name, ids in split.items():
            for rid in ids:
                assert seen.setdefault(by_id[rid]["meta"]["scaffold"], name) == name
        assert 0.75 < len(split["train"]) / len(data.records) <= 0.8

"""PhysioNet/CinC 2012 on the real set-a (and set-b) tarballs: reading and featurisation."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from medlearn import catalog
from medlearn.clinical.timeseries import TimeSeriesFeaturizer, read_timeseries


def test_set_a_reads_and_featurises(data_dir: Path) -> None:
    tar = data_dir / "physionet2012" / "set-a.tar.gz"
    data = read_timeseries(tar)
    assert len(data.records) == 4000
    assert sum(r["target"] == 1 for r in data.records) == 554
    assert all(r["meta"]["icu_type"] is not None for r in data.records)
    q = data.info["data_quality"]
    assert q.get("missing_outcome", 0) == 0 and q.get("unknown_variable", 0) == 0
    start = time.perf_counter()
    f = TimeSeriesFeaturizer().fit(data.records)
    out = f.transform(data.records)
    elapsed = time.perf_counter() - start
    assert len(f.variables) == 37 and out["values"].shape == (4000, 48, 37)
    assert 0.05 < out["mask"].mean() < 0.3
    assert np.isfinite(out["values"]).all() and np.isfinite(out["delta"]).all()
    assert elapsed < 120


@pytest.mark.slow
def test_catalog_combined_split(data_dir: Path) -> None:
    data = catalog.load("physionet2012")
    assert len(data.given_split["train"]) == 4000 and len(data.given_split["test"]) == 4000
    test_ids = set(data.given_split["test"])
    assert sum(r["target"] == 1 for r in data.records if r["id"] in test_ids) == 568

"""The catalog on the real shared data (MEDLEARN_DATA_DIR); skipped when it is not set."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from medlearn import catalog

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pneumonia_path() -> Path:
    value = os.environ.get(catalog.DATA_ENV)
    if not value:
        pytest.skip("MEDLEARN_DATA_DIR is not set (run through `make test` to use ../shared/data)")
    path = Path(value) / "medmnist" / "pneumoniamnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} does not exist")
    return path


def test_pneumoniamnist_resolves_and_verifies(pneumonia_path: Path) -> None:
    assert catalog.resolve("pneumoniamnist", download=False) == pneumonia_path
    assert catalog.info("pneumoniamnist")["status"] == "verified"


def test_pneumoniamnist_loads(pneumonia_path: Path) -> None:
    data = catalog.load("pneumoniamnist", download=False)
    assert data.classes == ["normal", "pneumonia"]
    assert {k: len(v) for k, v in data.given_split.items()} == {
        "train": 3882,
        "val": 524,
        "test": 624,
    }
    assert len(data.records) == 3882 + 524 + 624
    shapes = {r["input"].shape for r in data.records}
    assert shapes == {(1, 28, 28)}
    assert data.records[0]["input"].dtype == np.uint8
    by_id = data.by_id()
    test_counts = Counter(by_id[i]["target"] for i in data.given_split["test"])
    assert test_counts == {0: 234, 1: 390}  # the official test split (SOURCE.md)

"""Patient-level, stratified k-fold cross-validation splits."""

from __future__ import annotations

from collections import Counter

import pytest

from medlearn.data import kfold_splits, make_record
from medlearn.errors import ConfigError, DataValidationError


def _records(n: int = 120, per_patient: int = 2, pos_every: int = 4):
    return [
        make_record(
            f"r{i}",
            None,
            int((i // per_patient) % pos_every == 0),
            patient_id=f"p{i // per_patient}",
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("folds", [2, 5])
def test_every_record_is_tested_exactly_once_and_patients_stay_together(folds: int) -> None:
    recs = _records()
    splits = kfold_splits(recs, folds=folds, val_fraction=0.2, seed=3)
    assert len(splits) == folds
    tested = Counter(i for s in splits for i in s["test"])
    assert set(tested) == {r["id"] for r in recs} and set(tested.values()) == {1}
    patient = {r["id"]: r["patient_id"] for r in recs}
    for s in splits:
        sides = {name: {patient[i] for i in ids} for name, ids in s.items()}
        assert not (sides["train"] & sides["test"]) and not (sides["val"] & sides["test"])
        assert not (sides["train"] & sides["val"])
        assert sum(len(v) for v in s.values()) == len(recs)
        assert 0.1 < len(s["val"]) / (len(s["train"]) + len(s["val"])) < 0.3


def test_folds_are_stratified_and_deterministic() -> None:
    recs = _records(n=200, per_patient=1)
    label = {r["id"]: r["target"] for r in recs}
    splits = kfold_splits(recs, folds=5, seed=0)
    rates = [sum(label[i] for i in s["test"]) / len(s["test"]) for s in splits]
    assert max(rates) - min(rates) < 0.06
    assert splits == kfold_splits(recs, folds=5, seed=0)
    assert splits != kfold_splits(recs, folds=5, seed=1)


def test_too_few_patients_and_bad_arguments_are_refused() -> None:
    recs = _records(n=6, per_patient=2)  # 3 patients
    with pytest.raises(DataValidationError, match="at least 5 patients"):
        kfold_splits(recs, folds=5)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        kfold_splits(recs, folds=1)
    with pytest.raises(ConfigError, match="validation fraction"):
        kfold_splits(recs, folds=2, val_fraction=1.0)

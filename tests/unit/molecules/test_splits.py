"""Scaffold splits: deterministic (MoleculeNet) and balanced (Chemprop)."""

from __future__ import annotations

from collections import Counter

import pytest

from medlearn.data import SPLITTERS, make_record, make_splits
from medlearn.molecules import _splits  # noqa: F401  (registers the splitters)
from medlearn.molecules._data import molecule_id

# scaffold -> how many molecules carry it (60 records, 9 scaffolds + acyclic)
SIZES = {"A": 14, "B": 10, "C": 8, "D": 7, "E": 6, "F": 5, "G": 4, "H": 3, "I": 2, "": 1}


def _records(order_seed: int = 0) -> list[dict]:
    import random

    items = [(s, k) for s, n in SIZES.items() for k in range(n)]
    random.Random(order_seed).shuffle(items)
    return [
        make_record(
            f"row{i + 1}",
            f"mol-{s}-{k}",
            float(i),
            patient_id=f"{s}{k}",
            meta={"scaffold": s, "n_heavy_atoms": 10},
        )
        for i, (s, k) in enumerate(items)
    ]


def _sides(split: dict[str, list[str]], records: list[dict]) -> dict[str, set[str]]:
    by_id = {r["id"]: r for r in records}
    sides: dict[str, set[str]] = {}
    for name, ids in split.items():
        for rid in ids:
            sides.setdefault(by_id[rid]["meta"]["scaffold"], set()).add(name)
    return sides


def test_registered() -> None:
    assert "scaffold" in SPLITTERS and "scaffold_balanced" in SPLITTERS


@pytest.mark.parametrize("method", ["scaffold", "scaffold_balanced"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_scaffold_on_two_sides(method: str, seed: int) -> None:
    records = _records(seed)
    split = make_splits(records, method=method, seed=seed, fractions=(0.7, 0.15, 0.15))
    assert sum(len(v) for v in split.values()) == len(records)
    assert all(len(s) == 1 for s in _sides(split, records).values())
    assert all(split[name] for name in ("train", "val", "test"))


def test_scaffold_is_deterministic_largest_to_train() -> None:
    records = _records(0)
    split = make_splits(records, method="scaffold", seed=0, fractions=(0.7, 0.15, 0.15))
    # 0.7 * 60 = 42: A+B+C+D = 39 fit, E (6) would overflow -> val (cap 51): E+F? 39+6=45..
    sides = {s: next(iter(v)) for s, v in _sides(split, records).items()}
    assert [sides[s] for s in "ABCD"] == ["train"] * 4
    assert sides["E"] == "val" and sides["G"] == "test" and sides[""] == "test"
    for seed in (1, 7):
        assert make_splits(records, method="scaffold", seed=seed) == make_splits(
            records, method="scaffold", seed=0
        )
    # the same molecules in another order give the same assignment of scaffolds
    other = _records(5)
    sides2 = {
        s: next(iter(v))
        for s, v in _sides(
            make_splits(other, method="scaffold", fractions=(0.7, 0.15, 0.15)), other
        ).items()
    }
    assert sides2 == sides


def test_scaffold_balanced_depends_on_seed_only() -> None:
    records = _records(0)
    kw = {"method": "scaffold_balanced", "fractions": (0.7, 0.15, 0.15)}
    a = make_splits(records, seed=0, **kw)
    assert make_splits(records, seed=0, **kw) == a
    outcomes = {tuple(make_splits(records, seed=s, **kw)["test"]) for s in range(6)}
    assert len(outcomes) > 1
    for seed in range(6):
        split = make_splits(records, seed=seed, **kw)
        n_train = len(split["train"])
        assert n_train <= 0.7 * 60
        # greedy fill: a set outside train did not fit when it came
        for s, side in _sides(split, records).items():
            if side != {"train"}:
                assert n_train + SIZES[s] > 0.7 * 60


def test_scaffold_balanced_puts_big_sets_first() -> None:
    sizes = {"A": 10, "B": 8, "C": 6, **{f"s{i}": 1 for i in range(30)}}
    records = [
        make_record(f"row{i}", f"m{i}", 0.0, meta={"scaffold": s})
        for i, s in enumerate(s for s, n in sizes.items() for _ in range(n))
    ]
    for seed in range(5):
        split = make_splits(records, method="scaffold_balanced", seed=seed)
        sides = _sides(split, records)
        # half the val/test size is 54 * 0.15 / 2 = 4.05: A, B, C are big and all fit in train
        assert all(sides[s] == {"train"} for s in "ABC")


def test_duplicates_and_groups_stay_together() -> None:
    records = _records(0)
    # a duplicate of an "I" molecule whose scaffold field disagrees still follows its patient
    dup = make_record(
        "row99", "mol-I-0", 0.0, patient_id="I0", meta={"scaffold": "Z", "n_heavy_atoms": 10}
    )
    records.append(dup)
    for method in ("scaffold", "scaffold_balanced"):
        split = make_splits(records, method=method, seed=3)
        where = {rid: name for name, ids in split.items() for rid in ids}
        first_i0 = next(r["id"] for r in records if r["patient_id"] == "I0")
        assert where["row99"] == where[first_i0]


def test_scaffold_computed_from_smiles_when_meta_lacks_it() -> None:
    smiles = ["c1ccccc1C", "c1ccccc1CC", "C1CCCCC1O", "CCO", "c1ccncc1N", "c1ccccc1O"]
    records = [
        make_record(f"r{i}", s, 0.0, patient_id=molecule_id(s)) for i, s in enumerate(smiles)
    ]
    split = make_splits(records, method="scaffold", fractions=(0.5, 0.25, 0.25))
    where = {rid: name for name, ids in split.items() for rid in ids}
    benzene = [where[f"r{i}"] for i in (0, 1, 5)]
    assert len(set(benzene)) == 1 and benzene[0] == "train"
    assert Counter(where.values())["train"] == 3

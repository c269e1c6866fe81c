"""Splits: every id exactly once, no patient (or group) on two sides, for every method."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from medlearn.data import SPLITTERS, check_no_leak, make_record, make_splits
from medlearn.errors import ConfigError, DataValidationError, UnknownComponentError

SEEDS = range(12)


def fake_patients(seed: int = 0, n_patients: int = 32, p_positive: float = 0.3) -> list[dict]:
    """32 fake patients with 1-5 records each; one label per patient; 4 hospitals."""
    rng = np.random.default_rng(seed)
    records = []
    for p in range(n_patients):
        label = int(rng.random() < p_positive)
        for k in range(int(rng.integers(1, 6))):
            records.append(
                make_record(
                    f"P{p:02d}/img{k}",
                    input=None,
                    target=label,
                    patient_id=f"P{p:02d}",
                    meta={"hospital": f"H{p % 4}"},
                )
            )
    return records


def side_of(splits: dict[str, list[str]]) -> dict[str, str]:
    return {rid: name for name, ids in splits.items() for rid in ids}


def assert_valid(splits: dict[str, list[str]], records: list[dict], group_by: str | None = None):
    assert list(splits) == ["train", "val", "test"]
    all_ids = [rid for ids in splits.values() for rid in ids]
    assert Counter(all_ids) == Counter(r["id"] for r in records)  # every id exactly once
    order = {r["id"]: i for i, r in enumerate(records)}
    for ids in splits.values():  # record order within each split
        assert [order[i] for i in ids] == sorted(order[i] for i in ids)
    side = side_of(splits)
    for key in ("patient_id", group_by):
        if key is None:
            continue
        sides: dict[str, set[str]] = {}
        for r in records:
            value = r["patient_id"] if key == "patient_id" else r["meta"][key]
            sides.setdefault(value, set()).add(side[r["id"]])
        assert all(len(s) == 1 for s in sides.values()), f"a {key} is on two sides"


# --- valid cases ---------------------------------------------------------------------------

CASES = [
    pytest.param({"method": "random"}, id="random"),
    pytest.param({"method": "stratified"}, id="stratified"),
    pytest.param({"method": "group", "group_by": "hospital"}, id="group"),
    pytest.param({"method": "random", "group_by": "hospital"}, id="random-group_by"),
    pytest.param({"method": "stratified", "fractions": (0.8, 0.0, 0.2)}, id="no-val"),
    pytest.param({"method": "random", "fractions": (0.5, 0.25, 0.25)}, id="halves"),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kwargs", CASES)
def test_every_id_once_and_no_patient_on_two_sides(kwargs: dict, seed: int) -> None:
    records = fake_patients(seed)
    splits = make_splits(records, seed=seed, **kwargs)
    assert_valid(splits, records, kwargs.get("group_by"))
    check_no_leak(splits, records)
    fractions = kwargs.get("fractions", (0.7, 0.15, 0.15))
    for name, f in zip(splits, fractions, strict=True):
        assert bool(splits[name]) == (f > 0)  # every split with a positive fraction is used


@pytest.mark.parametrize("method", ["random", "stratified"])
def test_fractions_of_records_are_close(method: str) -> None:
    records = fake_patients(0, n_patients=200)
    splits = make_splits(records, method=method, seed=0)
    n = len(records)
    for name, f in zip(splits, (0.7, 0.15, 0.15), strict=True):
        assert abs(len(splits[name]) / n - f) < 0.03


@pytest.mark.parametrize("seed", SEEDS)
def test_stratified_keeps_class_ratio(seed: int) -> None:
    records = fake_patients(seed, n_patients=120, p_positive=0.25)
    target = {r["id"]: r["target"] for r in records}
    overall = np.mean(list(target.values()))
    splits = make_splits(records, method="stratified", seed=seed)
    for ids in splits.values():
        assert abs(np.mean([target[i] for i in ids]) - overall) < 0.05


def test_stratified_balances_better_than_random() -> None:
    def worst_gap(method: str, seed: int) -> float:
        records = fake_patients(seed, n_patients=60, p_positive=0.2)
        target = {r["id"]: r["target"] for r in records}
        overall = np.mean(list(target.values()))
        splits = make_splits(records, method=method, seed=seed)
        return max(abs(np.mean([target[i] for i in ids]) - overall) for ids in splits.values())

    assert np.mean([worst_gap("stratified", s) for s in SEEDS]) < 0.5 * np.mean(
        [worst_gap("random", s) for s in SEEDS]
    )


@pytest.mark.parametrize(
    "target", [0.5, None, [0, 1], "yes"], ids=["float", "none", "multilabel", "str"]
)
def test_stratified_falls_back_to_random_for_non_label_targets(target: object) -> None:
    records = [make_record(f"r{i}", None, target, patient_id=f"p{i // 2}") for i in range(40)]
    assert make_splits(records, method="stratified", seed=3) == make_splits(
        records, method="random", seed=3
    )


def test_stratified_accepts_numpy_labels() -> None:
    records = fake_patients(0)
    as_numpy = [{**r, "target": np.array([r["target"]], dtype=np.int64)} for r in records]
    assert make_splits(as_numpy, method="stratified") == make_splits(records, method="stratified")


@pytest.mark.parametrize("method", ["random", "stratified", "group"])
def test_deterministic_under_seed_and_different_across_seeds(method: str) -> None:
    records = fake_patients(0)
    kw = {"method": method, "group_by": "hospital" if method == "group" else None}
    assert make_splits(records, seed=1, **kw) == make_splits(records, seed=1, **kw)
    assert len({str(make_splits(records, seed=s, **kw)) for s in range(6)}) > 1


def test_order_of_records_does_not_change_membership_under_group_by_joins() -> None:
    # a patient seen in two hospitals joins them: neither may be split apart
    records = fake_patients(0)
    records.append(make_record("P00/extra", None, 0, patient_id="P00", meta={"hospital": "H1"}))
    for seed in SEEDS:
        splits = make_splits(records, method="group", group_by="hospital", seed=seed)
        assert_valid(splits, records, "hospital")


# --- given ---------------------------------------------------------------------------------


def official(records: list[dict], *, val: bool = True, test: bool = True) -> dict:
    """An official split by patient number: 0-19 train, 20-25 val, 26-31 test."""
    out: dict[str, list[str]] = {"train": []}
    if val:
        out["val"] = []
    if test:
        out["test"] = []
    for r in records:
        p = int(r["patient_id"][1:])
        name = "train" if p < 20 else "val" if p < 26 else "test"
        out.get(name, out["train"]).append(r["id"])
    return out


def test_given_is_kept_as_is() -> None:
    records = fake_patients(0)
    given = official(records)
    assert make_splits(records, method="given", given=given) == given


def test_given_ignores_ids_of_records_not_loaded() -> None:
    records = fake_patients(0)
    given = official(records)
    given["test"] = [*given["test"], "not/loaded"]
    assert make_splits(records, method="given", given=given)["test"] == given["test"][:-1]


@pytest.mark.parametrize(
    "missing", [("val",), ("test",), ("val", "test")], ids=["no-val", "no-test", "neither"]
)
@pytest.mark.parametrize("seed", range(4))
def test_given_carves_missing_splits_from_train_leak_free(missing: tuple, seed: int) -> None:
    records = fake_patients(seed)
    given = official(records, val="val" not in missing, test="test" not in missing)
    splits = make_splits(records, method="given", given=given, seed=seed)
    assert_valid(splits, records)
    for name in ("val", "test"):
        assert splits[name]
        if name not in missing:
            assert splits[name] == given[name]
    carved = {rid for name in missing for rid in splits[name]}
    assert carved <= set(given["train"])  # carved out of train only
    if missing == ("val",):  # about 0.15 / 0.85 of train
        assert 0.08 < len(splits["val"]) / len(given["train"]) < 0.3


def test_given_without_official_split_says_use_stratified() -> None:
    with pytest.raises(ConfigError, match="no official split") as err:
        make_splits(fake_patients(0), method="given", given=None)
    assert "stratified" in str(err.value)


def test_given_that_leaks_a_patient_raises_with_a_count() -> None:
    records = fake_patients(0)
    given = official(records)
    per_patient = Counter(r["patient_id"] for r in records)
    moved = next(r for r in records if per_patient[r["patient_id"]] > 1)
    name = side_of(given)[moved["id"]]
    given[name].remove(moved["id"])
    given["test" if name != "test" else "train"].append(moved["id"])
    with pytest.raises(DataValidationError, match="puts 1 patients") as err:
        make_splits(records, method="given", given=given)
    assert moved["patient_id"] not in str(err.value)  # never an identifier


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda g: g.pop("train"), "must name 'train'"),
        (lambda g: g.update(valid=g.pop("val")), "must name 'train'"),
        (lambda g: g["test"].pop(), "leaves 1 of"),
        (lambda g: g["test"].append(g["train"][0]), "more than one split"),
    ],
    ids=["no-train", "unknown-name", "record-left-out", "record-twice"],
)
def test_given_ill_cases(mutate, match: str) -> None:
    records = fake_patients(0)
    given = official(records)
    mutate(given)
    with pytest.raises(DataValidationError, match=match):
        make_splits(records, method="given", given=given)


# --- ill cases -----------------------------------------------------------------------------


def test_group_without_group_by_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="needs group_by"):
        make_splits(fake_patients(0), method="group")


def test_missing_group_by_key_names_the_record_index() -> None:
    records = fake_patients(0)
    del records[5]["meta"]["hospital"]
    with pytest.raises(DataValidationError, match="Record 5 has no meta key 'hospital'"):
        make_splits(records, method="group", group_by="hospital")


@pytest.mark.parametrize(
    "fractions", [(0.7, 0.2), (0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.0, 0.5, 0.5), ("a", 0, 1)]
)
def test_bad_fractions_raise_config_error(fractions: tuple) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        make_splits(fake_patients(0), method="random", fractions=fractions)


def test_unknown_method_suggests_a_name() -> None:
    with pytest.raises(UnknownComponentError, match="stratified"):
        make_splits(fake_patients(0), method="stratifed")


@pytest.mark.parametrize(
    ("break_record", "match"),
    [
        (lambda r: r.update(id=""), "Record 3 has no 'id'"),
        (lambda r: r.update(patient_id=""), "Record 3 has no 'patient_id'"),
        (lambda r: r.update(id="P00/img0"), "Record 3 repeats an id"),
    ],
    ids=["no-id", "no-patient", "repeated-id"],
)
def test_bad_records_name_the_index(break_record, match: str) -> None:
    records = fake_patients(0)
    break_record(records[3])
    with pytest.raises(DataValidationError, match=match):
        make_splits(records, method="random")


def test_check_no_leak_counts_leaks_without_naming_patients() -> None:
    records = fake_patients(0)
    splits = make_splits(records, method="random")
    per_patient = Counter(r["patient_id"] for r in records)
    moved = next(
        r for r in records if per_patient[r["patient_id"]] > 1 and r["id"] in splits["train"]
    )
    splits["train"].remove(moved["id"])
    splits["test"].append(moved["id"])
    with pytest.raises(DataValidationError, match="1 patients appear in more than one split") as e:
        check_no_leak(splits, records)
    assert moved["patient_id"] not in str(e.value)


def test_check_no_leak_by_group_and_unknown_ids() -> None:
    records = fake_patients(0)
    by_hospital = {
        "train": [r["id"] for r in records if r["meta"]["hospital"] != "H3"],
        "test": [r["id"] for r in records if r["meta"]["hospital"] == "H3"],
    }
    check_no_leak(by_hospital, records, group_by="hospital")
    by_hospital["test"].append(by_hospital["train"].pop(0))
    with pytest.raises(DataValidationError, match="values of meta key 'hospital'"):
        check_no_leak(by_hospital, records, group_by="hospital")
    with pytest.raises(DataValidationError, match="not among"):
        check_no_leak({"train": ["nope"]}, records)


# --- the registry --------------------------------------------------------------------------


def test_registry_holds_the_four_methods_and_accepts_more() -> None:
    assert {"given", "random", "stratified", "group"} <= set(SPLITTERS.list())
    assert SPLITTERS.meta("group")["requires_group_by"] is True

    @SPLITTERS.register("first_half_test", description="test only")
    def first_half(records, groups, *, fractions, seed, given):
        n = len(records)
        return {"train": list(range(n // 2)), "val": [], "test": list(range(n // 2, n))}

    try:
        records = [make_record(f"r{i}", None, 0) for i in range(6)]
        assert make_splits(records, method="first_half_test")["test"] == ["r3", "r4", "r5"]
        leaky = [make_record(f"r{i}", None, 0, patient_id="same") for i in range(6)]
        with pytest.raises(DataValidationError, match="1 patients"):
            make_splits(leaky, method="first_half_test")  # a leaky plug-in is caught
    finally:
        SPLITTERS.unregister("first_half_test")

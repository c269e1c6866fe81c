"""The tabular fast path (canonical records → matrix with numpy) equals the general path."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medlearn.clinical._tabular_fastpath import FastMatrix
from medlearn.clinical.tabular import TabularLearner, read_tabular
from medlearn.config import validate_config
from medlearn.errors import DataValidationError

# Cells as a client would send them: numbers, numeric text, blanks, missing categories.
_CSV = (
    "x1,x2,smoker,site\n"
    "0.1,0.2,yes,a\n"
    "-1.25,,no,b\n"
    "2,3,,c\n"
    "0.5,1.0,no,\n"
    ",-0.5,yes,a\n"
    "1e-3,NA,no,b\n"
)
_BAD_CSV = "x1,x2,smoker,site\n0.1,0.2,yes,a\nabc,0.1,no,b\n0.3,,maybe,c\n0.5,1.0,no,zz\n"


def _fitted(tmp_path: Path, model: str) -> TabularLearner:
    """A learner fitted on a seeded table (numeric x1, x2 with blanks, binary, categorical)."""
    rng = np.random.default_rng(0)
    lines = ["x1,x2,smoker,site,y"]
    for i in range(80):
        x1, smoker = rng.normal(), "yes" if rng.random() < 0.4 else "no"
        y = int(rng.random() < 1 / (1 + np.exp(-(2.0 * x1 + (1.5 if smoker == "yes" else -0.5)))))
        x2 = "" if i % 11 == 5 else f"{rng.normal():.3f}"
        lines.append(f"{x1:.3f},{x2},{smoker},{'abc'[i % 3]},{y}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    params = {"n_estimators": 10} if model == "random_forest" else {}
    cfg = validate_config(
        {
            "task": "binary",
            "data": {"path": str(path), "target": "y"},
            "model": {"name": model, "params": params},
            "training": {"progress": False, "seed": 0},
        }
    )
    data = read_tabular(path, cfg=cfg)
    train, val = data.records[:60], data.records[60:]
    learner = TabularLearner.from_config(cfg, data)
    learner.fit(train, val, work_dir=tmp_path / "w", resume=False)
    return learner


def _rows(text: str) -> list[dict[str, str | None]]:
    return [
        {k: (v if v != "" else None) for k, v in row.items()}
        for row in csv.DictReader(text.splitlines())
    ]


def _general(learner: TabularLearner, records: list) -> np.ndarray:
    converted, problems = learner._checked(records)
    assert not problems
    return learner._transform(converted)


@pytest.mark.parametrize("model", ["logistic_regression", "random_forest"])
def test_json_rows_give_the_csv_path_probabilities(tmp_path: Path, model: str) -> None:
    learner = _fitted(tmp_path, model)
    table = tmp_path / "new.csv"
    table.write_text(_CSV)
    from_csv, bad = learner.read_inputs([str(table)])
    assert not bad
    from_json, bad = learner.records_from_rows(_rows(_CSV), name="new.csv")
    assert not bad
    assert from_json == from_csv
    plan = FastMatrix.compile(learner.preprocessor_, learner.schema, learner.features)
    assert plan is not None
    fast = plan.matrix(from_json)
    assert fast is not None
    assert np.array_equal(fast, _general(learner, from_csv))
    # the learner's answer equals the general path's, first call (checked) and later ones
    expected = learner._predict_matrix(_general(learner, from_csv))
    for _ in range(2):
        assert np.array_equal(learner.predict_proba(from_json), expected)
    assert learner._fast_ is not None and learner._fast_[2] is True


def test_json_rows_report_the_csv_path_bad_rows(tmp_path: Path) -> None:
    learner = _fitted(tmp_path, "logistic_regression")
    table = tmp_path / "new.csv"
    table.write_text(_BAD_CSV)
    rec_csv, bad_csv = learner.read_inputs([str(table)])
    rec_json, bad_json = learner.records_from_rows(_rows(_BAD_CSV), name="new.csv")
    assert [(b.source, b.message) for b in bad_json] == [(b.source, b.message) for b in bad_csv]
    assert [b.source for b in bad_json] == ["new.csv:row2", "new.csv:row3", "new.csv:row4"]
    assert rec_json == rec_csv and [r["id"] for r in rec_json] == ["new.csv:row1"]


@pytest.mark.parametrize(
    ("column", "value", "refused"),
    [
        ("x1", 1, None),  # an int: converted by the general path
        ("x1", "0.5", None),  # numeric text
        ("x1", float("inf"), "could not be preprocessed"),
        ("smoker", "maybe", "column 'smoker' has a category not seen"),
        ("site", 1.0, "column 'site' has a category not seen"),
    ],
)
def test_records_that_are_not_canonical_take_the_general_path(
    tmp_path: Path, column: str, value: object, refused: str | None
) -> None:
    learner = _fitted(tmp_path, "logistic_regression")
    good, _ = learner.records_from_rows(_rows(_CSV))
    plan = FastMatrix.compile(learner.preprocessor_, learner.schema, learner.features)
    assert plan is not None
    record = {**good[0], "input": {**good[0]["input"], column: value}}
    assert plan.matrix([good[1], record]) is None
    if refused is not None:
        with pytest.raises(DataValidationError, match=refused):
            learner.predict_proba([record])
    else:
        expected = learner._predict_matrix(_general(learner, [record]))
        assert np.array_equal(learner.predict_proba([record]), expected)


def test_out_of_range_values_are_reported_by_the_general_path(tmp_path: Path) -> None:
    learner = _fitted(tmp_path, "logistic_regression")
    learner.schema["x1"].max = 1.0
    good, _ = learner.records_from_rows(_rows(_CSV)[:1])
    record = {**good[0], "input": {**good[0]["input"], "x1": 1.5}}
    with pytest.raises(DataValidationError, match="above the allowed maximum 1"):
        learner.predict_proba([record])


def test_a_disagreeing_fast_path_is_switched_off(tmp_path: Path) -> None:
    learner = _fitted(tmp_path, "logistic_regression")
    records, _ = learner.records_from_rows(_rows(_CSV))
    plan = FastMatrix.compile(learner.preprocessor_, learner.schema, learner.features)
    assert plan is not None
    plan.blocks[0].fill = plan.blocks[0].fill + 1.0  # a wrong imputation value
    learner._fast_ = (learner.preprocessor_, plan, False)
    expected = learner._predict_matrix(_general(learner, records))
    assert np.array_equal(learner.predict_proba(records), expected)
    assert learner._fast_[1] is None

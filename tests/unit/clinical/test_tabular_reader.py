"""The tabular reader: delimiters, headerless and ARFF files, target expressions, schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlearn.clinical.tabular import parse_target, read_table, read_tabular
from medlearn.config import validate_config
from medlearn.errors import ConfigError, DataValidationError


def _cfg(path: Path, target: str, task: str = "binary", **options):
    return validate_config(
        {
            "task": task,
            "data": {"path": str(path), "target": target, "options": options},
            "model": {"name": "logistic_regression"},
            "evaluation": {"subgroups": options.pop("_subgroups", [])},
        }
    )


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, sep: str) -> None:
    p = tmp_path / "t.csv"
    p.write_text(
        sep.join(["a", "b", "y"])
        + "\n"
        + "\n".join(sep.join([str(i), "x", str(i % 2)]) for i in range(6))
    )
    frame = read_table(p)
    assert list(frame.columns) == ["a", "b", "y"]
    assert frame.shape == (6, 3)


def test_headerless_with_columns_and_question_marks(tmp_path: Path) -> None:
    p = tmp_path / "x.data"
    p.write_text("1.0,?,0\n2.0,3,1\n?,4,2\n")
    frame = read_table(p, columns=["a", "b", "num"])
    assert frame["b"].isna().tolist() == [True, False, False]
    assert frame["a"].isna().tolist() == [False, False, True]
    with pytest.raises(DataValidationError, match="names 2 columns but the file has 3"):
        read_table(p, columns=["a", "b"])


def test_arff_with_stray_commas(tmp_path: Path) -> None:
    p = tmp_path / "k.arff"
    p.write_text(
        "@relation k\n@attribute 'age' numeric\n@attribute 'htn' {yes,no}\n"
        "@attribute 'class' {ckd,notckd}\n@data\n48,yes,ckd\n7,\tno,ckd,\n?,no,,notckd\n"
    )
    frame = read_table(p)
    assert list(frame.columns) == ["age", "htn", "class"]
    assert frame["htn"].tolist() == ["yes", "no", "no"]
    assert frame["age"].isna().tolist() == [False, False, True]


@pytest.mark.parametrize(
    ("text", "op", "value"),
    [
        ("num > 0", ">", 0),
        ("col >= 2.5", ">=", 2.5),
        ("smoker == 'yes'", "==", "yes"),
        ("x != b", "!=", "b"),
        ("stage in [3, 4]", "in", [3, 4]),
        ("stage not in [a, 'b c']", "not in", ["a", "b c"]),
        ("Outcome", None, None),
    ],
)
def test_parse_target(text: str, op: str | None, value) -> None:
    rule = parse_target(text)
    assert rule.op == op
    assert rule.value == value


@pytest.mark.parametrize("bad", ["num >", "a > 'x'", "__import__('os') == 1", "a in 3"])
def test_parse_target_refuses(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_target(bad)


def _table(tmp_path: Path) -> Path:
    p = tmp_path / "t.csv"
    rows = ["pid,age,sex,cp,bp,num"]
    for i in range(20):
        bp = "" if i == 3 else 120 + i
        rows.append(f"P{i // 2},{30 + i * 2},{'M' if i % 2 else 'F'},{i % 3},{bp},{i % 4}")
    p.write_text("\n".join(rows) + "\n")
    return p


def test_records_with_expression_target_and_subgroups(tmp_path: Path) -> None:
    p = _table(tmp_path)
    cfg = _cfg(
        p,
        "num > 0",
        patient_id="pid",
        schema={"cp": {"type": "categorical"}},
        _subgroups=["sex", "age"],
    )
    data = read_tabular(p, cfg=cfg)
    assert len(data.records) == 20
    assert data.classes == ["not (num > 0)", "num > 0"]
    assert [r["target"] for r in data.records[:4]] == [0, 1, 1, 1]
    r = data.records[3]
    assert r["patient_id"] == "P1" and r["id"] == "row4"
    assert set(r["input"]) == {"age", "sex", "cp", "bp"}
    assert r["input"]["bp"] is None
    assert r["meta"]["sex"] == "M" and r["meta"]["age_band"] == "30-39"
    assert data.info["schema"]["cp"]["type"] == "categorical"
    assert data.info["schema"]["sex"]["type"] == "binary"
    assert data.info["schema"]["age"]["type"] == "numeric"


def test_schema_range_violation_names_column_and_row(tmp_path: Path) -> None:
    p = _table(tmp_path)
    cfg = _cfg(p, "num > 0", schema={"age": {"type": "numeric", "min": 0, "max": 60}})
    with pytest.raises(
        DataValidationError, match=r"row 17: column 'age' is above the allowed maximum 60"
    ):
        read_tabular(p, cfg=cfg)


def test_non_numeric_where_numeric_declared(tmp_path: Path) -> None:
    p = _table(tmp_path)
    cfg = _cfg(p, "num > 0", schema={"sex": "numeric"})
    with pytest.raises(DataValidationError, match=r"row 1: column 'sex' is not a number"):
        read_tabular(p, cfg=cfg)


def test_schema_from_yaml_file_and_unknown_key(tmp_path: Path) -> None:
    p = _table(tmp_path)
    schema = tmp_path / "schema.yaml"
    schema.write_text("cp: {type: categorical, levels: [0, 1]}\n")
    with pytest.raises(DataValidationError, match="column 'cp' has a category"):
        read_tabular(p, cfg=_cfg(p, "num > 0", schema=str(schema)))
    with pytest.raises(ConfigError, match="unknown schema keys"):
        read_tabular(p, cfg=_cfg(p, "num > 0", schema={"cp": {"kind": "x"}}))


def test_unknown_column_did_you_mean(tmp_path: Path) -> None:
    p = _table(tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'num'"):
        read_tabular(p, cfg=_cfg(p, "nm > 0"))


def test_regression_and_multiclass_targets(tmp_path: Path) -> None:
    p = _table(tmp_path)
    reg = read_tabular(p, cfg=_cfg(p, "bp", task="regression", features=["age", "sex"]))
    assert reg.classes is None and len(reg.records) == 19  # the row without bp is left out
    assert isinstance(reg.records[0]["target"], float)
    multi = read_tabular(p, cfg=_cfg(p, "num", task="multiclass"))
    assert multi.classes == ["0", "1", "2", "3"]
    with pytest.raises(DataValidationError, match="4 distinct values"):
        read_tabular(p, cfg=_cfg(p, "num", task="binary"))


def test_parquet_and_na_values(tmp_path: Path) -> None:
    import pandas as pd

    p = tmp_path / "t.parquet"
    frame = {"a": [1.0, -999.0, 3.0, 4.5], "b": ["x", "y", None, "x"], "y": [0, 1, 1, 0]}
    pd.DataFrame(frame).to_parquet(p)
    cfg = _cfg(p, "y", na_values=["-999", "-999.0"])
    data = read_tabular(p, cfg=cfg)
    assert [r["input"]["a"] for r in data.records] == [1.0, None, 3.0, 4.5]
    assert data.records[2]["input"]["b"] is None

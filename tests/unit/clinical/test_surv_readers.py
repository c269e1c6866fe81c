"""The survival reader: DeepSurv HDF5, CSV and Parquet, and bad rows."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from medlearn.clinical.survival import read_survival
from medlearn.errors import ConfigError, DataValidationError
from medlearn.registry import DATASETS, READERS


def _h5(path, *, n=(30, 10), d=4, valid=False, hr=False, bad_time=False):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for name, k in zip(["train", "test"] + (["valid"] if valid else []), [*n, 8], strict=False):
            g = f.create_group(name)
            x = rng.normal(size=(k, d)).astype(np.float32)
            x[:, -1] = rng.integers(0, 2, k)
            t = rng.exponential(size=k).astype(np.float32)
            if bad_time and name == "train":
                t[3] = -1
                t[5] = np.nan
            g["x"], g["t"], g["e"] = x, t, rng.integers(0, 2, k).astype(np.int32)
            if hr:
                g["hr"] = rng.normal(size=k).astype(np.float32)
    return path


def test_h5_gives_records_and_given_split(tmp_path):
    data = read_survival(_h5(tmp_path / "s.h5", valid=True, hr=True), treatment=-1)
    assert set(data.given_split) == {"train", "val", "test"}
    assert len(data.given_split["train"]) == 30 and len(data.given_split["val"]) == 8
    rec = data.records[0]
    assert rec["input"].dtype == np.float32 and rec["input"].shape == (4,)
    assert set(rec["target"]) == {"time", "event"} and rec["target"]["event"] in (0, 1)
    assert "true_log_hr" in rec["meta"]
    assert data.info["survival"]["treatment"] == 3
    assert data.info["survival"]["features"] == ["x0", "x1", "x2", "x3"]


def test_h5_bad_rows_all_counted(tmp_path):
    with pytest.raises(DataValidationError) as err:
        read_survival(_h5(tmp_path / "bad.h5", bad_time=True))
    msg = str(err.value)
    assert "bad.h5" in msg and "2 of 40 rows" in msg and "train/t" in msg


def _csv(tmp_path, rows):
    frame = pd.DataFrame(rows)
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    return path


def test_csv_with_categorical_and_treatment(tmp_path):
    path = _csv(
        tmp_path,
        {
            "time": [1.0, 2.0, 3.0, 4.0],
            "cens": [1, 0, 1, 1],
            "age": [50, 60, 70, 80],
            "grade": ["I", "II", "III", "II"],
            "rx": [0, 1, 0, 1],
        },
    )
    data = read_survival(path, duration="time", event="cens", categorical=["grade"], treatment="rx")
    schema = data.info["survival"]
    assert schema["features"] == ["age", "grade=II", "grade=III", "rx"]
    assert schema["treatment"] == 3
    np.testing.assert_array_equal(data.records[2]["input"], [70, 0, 1, 0])
    assert data.records[1]["target"] == {"time": 2.0, "event": 0}
    pq = tmp_path / "d.parquet"
    pd.read_csv(path).to_parquet(pq)
    assert len(read_survival(pq, duration="time", event="cens", categorical=["grade"]).records) == 4


def test_csv_bad_rows_name_file_column_and_row(tmp_path):
    path = _csv(
        tmp_path,
        {
            "time": [1.0, -2.0, None, 4.0, 5.0],
            "status": [1, 0, 1, 2, 1],
            "age": [50, 60, 70, 80, "old"],
        },
    )
    with pytest.raises(DataValidationError) as err:
        read_survival(path, duration="time", event="status")
    msg = str(err.value)
    assert "d.csv" in msg and "4 of 5 rows" in msg
    assert "row 2 column 'time'" in msg and "row 4 column 'status'" in msg
    assert "row 5 column 'age'" in msg


def test_options_are_checked(tmp_path):
    path = _csv(tmp_path, {"time": [1.0], "event": [1], "a": [1.0]})
    with pytest.raises(ConfigError, match="duration"):
        read_survival(path)
    with pytest.raises(ConfigError, match="Unknown data.options"):
        read_survival(path, duration="time", event="event", colour="x")
    with pytest.raises(DataValidationError, match="not found"):
        read_survival(path, duration="time", event="event", features=["b"])


def test_registrations():
    assert READERS.meta("survival")["run_config"] is True
    for name in ("whas", "support", "gbsg", "sim_treatment"):
        spec = DATASETS.get(name)
        assert spec.reader == "survival" and spec.task == "survival"
        assert len(spec.checksums["sha256"][0]) == 64


def test_lifelines_csv_reads(data_dir):
    data = read_survival(
        data_dir / "survival" / "gbsg2.csv",
        duration="time",
        event="cens",
        categorical=["horTh", "menostat", "tgrade"],
    )
    assert len(data.records) == 686

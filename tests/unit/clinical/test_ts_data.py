"""The time-series readers: PhysioNet 2012 sets (tarball/folder), long CSV, quality counts."""

from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest

from medlearn.clinical.timeseries import QualityCounter, read_physionet_set, read_timeseries
from medlearn.errors import ConfigError, DataValidationError
from medlearn.registry import DATASETS, READERS


def _record_text(rid: int, rng: np.random.Generator, *, extra: str = "") -> str:
    lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}", "00:00,Age,67", "00:00,Gender,1"]
    lines += ["00:00,Height,-1", "00:00,ICUType,3", "00:00,Weight,80"]
    for h in range(0, 48, 3):
        lines.append(f"{h:02d}:{int(rng.integers(0, 60)):02d},HR,{int(rng.integers(60, 110))}")
        lines.append(f"{h:02d}:30,Temp,{36.5 + rng.random():.1f}")
    lines.append("05:10,Weight,81")
    return "\n".join(lines) + "\n" + extra


def write_set(root: Path, name: str = "a", n: int = 6, *, seed: int = 0) -> Path:
    """A tiny PhysioNet-like set tarball + outcomes file; returns the tarball path."""
    rng = np.random.default_rng(seed)
    tar_path = root / f"set-{name}.tar.gz"
    rids = [140000 + 100 * ord(name) + i for i in range(n)]
    with tarfile.open(tar_path, "w:gz") as tar:
        for i, rid in enumerate(rids):
            extra = ""
            if i == 0:
                extra = "49:30,HR,90\nab:cd,HR,80\n07:00,Bogus,3\n08:00,HR,x\n09:00,HR,400\n"
            data = _record_text(rid, rng, extra=extra).encode()
            info = tarfile.TarInfo(f"set-{name}/{rid}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    rows = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    for i, rid in enumerate(rids[:-1]):  # the last record has no outcome
        rows.append(f"{rid},{10 + i},{i},{5 + i},{-1 if i % 2 else 3},{i % 2 == 0:d}")
    (root / f"Outcomes-{name}.txt").write_text("\n".join(rows) + "\n")
    return tar_path


def test_tarball_records_meta_and_quality(tmp_path: Path) -> None:
    data = read_timeseries(write_set(tmp_path))
    assert len(data.records) == 5  # one record lacks an outcome and is excluded (counted)
    q = data.info["data_quality"]
    assert q["missing_outcome"] == 1
    assert q["out_of_window"] == 1
    assert q["unparseable_time"] == 1
    assert q["unknown_variable"] == 1
    assert q["unparseable_value"] == 1
    assert q["clipped_out_of_range"] == 1
    rec = data.records[0]
    assert rec["id"] == f"a/{rec['patient_id']}" and rec["target"] == 1
    ev = rec["input"]["events"]
    assert np.all(np.diff(ev["time"]) >= 0) and ev["time"].max() <= 48
    assert set(ev["code"]) == {"HR", "Temp", "Weight", "Bogus"}
    assert rec["input"]["static"] == {
        "Age": 67.0,
        "Gender": "male",
        "Height": None,
        "ICUType": "medical",
        "Weight": 80.0,
    }
    assert rec["meta"]["age_band"] == "65-79" and rec["meta"]["icu_type"] == "medical"
    assert rec["meta"]["survival_days"] == 3.0 and rec["meta"]["saps1"] == 10.0
    assert data.records[1]["meta"]["survival_days"] is None  # -1 = not known to have died
    assert data.classes == ["survived", "died"] and data.given_split is None


def test_keep_missing_outcome_and_folder(tmp_path: Path) -> None:
    tar_path = write_set(tmp_path)
    folder = tmp_path / "dir"
    with tarfile.open(tar_path) as tar:
        tar.extractall(folder, filter="data")
    (folder / "Outcomes-a.txt").write_text((tmp_path / "Outcomes-a.txt").read_text())
    data = read_timeseries(
        folder / "set-a", outcomes=str(tmp_path / "Outcomes-a.txt"), missing_outcome="keep"
    )
    assert len(data.records) == 6
    assert sum(r["target"] is None for r in data.records) == 1
    assert data.info["data_quality"]["missing_outcome"] == 1


def test_missing_outcome_logs_count_not_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tar_path = write_set(tmp_path)
    with caplog.at_level(logging.WARNING):
        read_timeseries(tar_path)
    text = caplog.text
    assert "1 records have no outcome" in text
    assert "1400" not in text  # no record ids in logs


def test_given_split_with_test_set(tmp_path: Path) -> None:
    tar_a = write_set(tmp_path, "a", 6, seed=1)
    write_set(tmp_path, "b", 4, seed=2)
    data = read_timeseries(tar_a, test="set-b.tar.gz", hours=24)
    assert data.given_split is not None
    assert len(data.given_split["train"]) == 5 and len(data.given_split["test"]) == 3
    assert all(i.startswith("b/") for i in data.given_split["test"])
    assert data.info["data_quality"]["missing_outcome"] == 2
    assert all(r["input"]["events"]["time"].max() <= 24 for r in data.records)


def test_duplicate_record_counted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "set-x"
    folder.mkdir()
    (folder / "1.txt").write_text(_record_text(7, rng))
    (folder / "2.txt").write_text(_record_text(7, rng))
    (folder / "3.txt").write_text("Time,Parameter,Value\n00:00,RecordID,8\n00:00,Age,40\n")
    quality = QualityCounter()
    recs = read_physionet_set(folder, quality=quality)
    assert [r["patient_id"] for r in recs] == ["7", "8"]
    assert all(r["target"] is None for r in recs)  # no outcomes file: prediction
    assert quality["duplicate_record"] == 1
    assert quality["stay_without_measurements"] == 1


def test_malformed_line_falls_back_and_counts(tmp_path: Path) -> None:
    folder = tmp_path / "set-m"
    folder.mkdir()
    (folder / "1.txt").write_text(
        "Time,Parameter,Value\n00:00,RecordID,9\n01:00,HR,80,5\n02:00,HR,85\n"
    )
    data = read_timeseries(folder)
    assert data.info["data_quality"]["malformed_line"] == 1
    assert list(data.records[0]["input"]["events"]["value"]) == [85.0]


def test_not_a_record_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "set-z"
    folder.mkdir()
    (folder / "1.txt").write_text("hello\n")
    with pytest.raises(DataValidationError, match="Time,Parameter,Value"):
        read_timeseries(folder)


def test_bad_options(tmp_path: Path) -> None:
    tar_path = write_set(tmp_path)
    with pytest.raises(ConfigError, match="Unknown data.options"):
        read_timeseries(tar_path, windoww=3)
    with pytest.raises(ConfigError, match="hours"):
        read_timeseries(tar_path, hours=-1)


def test_long_csv_with_mapping(tmp_path: Path) -> None:
    ev = tmp_path / "events.csv"
    ev.write_text(
        "pid,ts,var,val\n"
        "p1,2020-01-01T00:00:00,HR,80\n"
        "p1,2020-01-01T02:30:00,HR,90\n"
        "p1,2020-01-01T03:00:00,Mystery,1\n"
        "p1,garbage,HR,70\n"
        "p2,2020-02-01T10:00:00,Temp,37.5\n"
        "p2,2020-02-01T11:00:00,Temp,abc\n"
    )
    st = tmp_path / "static.csv"
    st.write_text("pid,Age,Gender,admit\np1,55,female,2020-01-01T00:00:00\np2,81,1,\np3,40,0,\n")
    out = tmp_path / "out.csv"
    out.write_text("pid,died\np1,1\np2,0\np3,0\n")
    data = read_timeseries(
        ev,
        subject_column="pid",
        time_column="ts",
        code_column="var",
        value_column="val",
        static=str(st),
        admission_column="admit",
        outcomes=str(out),
        outcome_column="died",
    )
    by = {r["patient_id"]: r for r in data.records}
    assert set(by) == {"p1", "p2", "p3"}
    np.testing.assert_allclose(by["p1"]["input"]["events"]["time"], [0.0, 2.5, 3.0])
    assert by["p1"]["target"] == 1 and by["p2"]["input"]["static"]["Gender"] == "male"
    assert by["p2"]["meta"]["age_band"] == "80+"
    q = data.info["data_quality"]
    assert q["unparseable_time"] == 1 and q["unparseable_value"] == 1
    assert q["unknown_variable"] == 1 and q["stay_without_measurements"] == 1


def test_long_csv_missing_column(tmp_path: Path) -> None:
    ev = tmp_path / "events.csv"
    ev.write_text("subject_id,time,code\n1,0,HR\n")
    with pytest.raises(ConfigError, match="value_column"):
        read_timeseries(ev)


def test_registered() -> None:
    assert READERS.meta("timeseries")["run_config"] is True
    spec = DATASETS.get("physionet2012")
    assert spec.reader == "timeseries" and spec.reader_options["test"] == "set-b.tar.gz"
    assert DATASETS.get("physionet2012_b").relpath.endswith("set-b.tar.gz")


def test_test_option_naming_the_same_source_reads_it_once(tmp_path: Path) -> None:
    write_set(tmp_path, "b", 4, seed=2)
    data = read_timeseries(tmp_path / "set-b.tar.gz", test="set-b.tar.gz")
    assert data.given_split is None and len(data.records) == 3

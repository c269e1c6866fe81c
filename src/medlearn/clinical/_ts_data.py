"""The canonical ICU/EHR event table and the readers into it.

Every source (PhysioNet/CinC 2012 records, long-format CSV/Parquet, FHIR R4) is turned into
the same long-format event table, one row per measurement::

    subject_id (str) | time (float, hours since admission) | code (str) | value (float) | text

plus a static table (one row per subject: Age, Gender, Height, ICUType, Weight ...) and an
outcomes table. :func:`build_records` turns these three tables into medlearn records whose
``input`` is ``{"events": {"time", "code", "value", "text"}, "static": {...}}``.

Data problems are counted per kind in a :class:`QualityCounter` (never with values or record
ids) and end up in ``LoadedData.info["data_quality"]``.
"""

from __future__ import annotations

import logging
import math
import re
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.errors import ConfigError, DataNotFoundError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = [
    "CLASSES",
    "ICU_TYPES",
    "OPTIONS",
    "PHYSIONET_STATIC",
    "PHYSIONET_VARIABLES",
    "QualityCounter",
    "age_band",
    "build_records",
    "read_long_table",
    "read_physionet_set",
    "read_timeseries",
]

log = logging.getLogger(__name__)

#: Class names of the in-hospital mortality target (index = label).
CLASSES = ["survived", "died"]

#: The general descriptors recorded once at admission (time 00:00) in a PhysioNet 2012 record.
PHYSIONET_STATIC = ("Age", "Gender", "Height", "ICUType", "Weight")

#: The 37 time-series variables of the PhysioNet/CinC 2012 challenge (Weight is both a
#: descriptor and a time series).
PHYSIONET_VARIABLES = (
    "ALP",
    "ALT",
    "AST",
    "Albumin",
    "BUN",
    "Bilirubin",
    "Cholesterol",
    "Creatinine",
    "DiasABP",
    "FiO2",
    "GCS",
    "Glucose",
    "HCO3",
    "HCT",
    "HR",
    "K",
    "Lactate",
    "MAP",
    "MechVent",
    "Mg",
    "NIDiasABP",
    "NIMAP",
    "NISysABP",
    "Na",
    "PaCO2",
    "PaO2",
    "Platelets",
    "RespRate",
    "SaO2",
    "SysABP",
    "Temp",
    "TroponinI",
    "TroponinT",
    "Urine",
    "WBC",
    "Weight",
    "pH",
)

#: ICUType codes of PhysioNet 2012.
ICU_TYPES = {1: "coronary", 2: "cardiac_surgery", 3: "medical", 4: "surgical"}

#: Reader options accepted in ``data.options`` (and catalog ``reader_options``).
OPTIONS = {
    "format": "physionet | long | fhir (default: from the path)",
    "hours": "observation window in hours from admission (default 48)",
    "test": "a second source read as the official test split (e.g. set-b.tar.gz)",
    "outcomes": "outcomes file (PhysioNet Outcomes-x.txt; default: beside the set)",
    "test_outcomes": "outcomes file of the test source (default: beside it)",
    "missing_outcome": "exclude (default: counted, warned, left out) | keep (target None)",
    "variables": "known variable codes (default: the PhysioNet 2012 variables)",
    "subject_column": "long format: subject id column (default subject_id)",
    "time_column": "long format: time column, hours or date-times (default time)",
    "code_column": "long format: variable code column (default code)",
    "value_column": "long format: numeric value column (default value)",
    "text_column": "long format: text value column (optional)",
    "static": "long format: static table path (one row per subject)",
    "static_subject_column": "static table subject column (default: subject_column)",
    "admission_column": "static table column with the admission date-time (optional)",
    "outcome_subject_column": "outcome table subject column (default: subject_column)",
    "outcome_column": "outcome table 0/1 in-hospital death column (default In-hospital_death)",
    "los_column": "outcome table length of stay in days (default Length_of_stay)",
    "survival_column": "outcome table days to death (default Survival)",
    "name": "set name used in record ids (default from the file name)",
}

_PHYSIONET_OUTCOME_COLUMNS = {
    "id": "RecordID",
    "target": "In-hospital_death",
    "los": "Length_of_stay",
    "survival": "Survival",
    "saps1": "SAPS-I",
    "sofa": "SOFA",
}


class QualityCounter(Counter):
    """Counts of data problems by kind (``unknown_variable``, ``out_of_window`` ...).

    Only counts: never values, record ids or file names of patients.
    """

    def as_dict(self) -> dict[str, int]:
        """The non-zero counts, sorted by kind."""
        return {k: int(v) for k, v in sorted(self.items()) if v}


def age_band(age: float | None) -> str | None:
    """The subgroup band of an age in years (``<50``, ``50-64``, ``65-79``, ``80+``)."""
    if age is None or not math.isfinite(age):
        return None
    if age < 50:
        return "<50"
    if age < 65:
        return "50-64"
    if age < 80:
        return "65-79"
    return "80+"


def _num(value: Any) -> float | None:
    """``value`` as a float; ``None`` for missing, unparseable or PhysioNet's -1."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f) or f == -1:
        return None
    return f


def _sex(value: Any) -> str | None:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("female", "f", "0"):
            return "female"
        if v in ("male", "m", "1"):
            return "male"
        return None
    f = _num(value)
    return {0.0: "female", 1.0: "male"}.get(f) if f is not None else None


def _icu_type(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower() in ICU_TYPES.values():
        return value.strip().lower()
    f = _num(value)
    return ICU_TYPES.get(int(f)) if f is not None and f.is_integer() else None


# --- building records ------------------------------------------------------------------------


def _static_of(raw: Mapping[str, Any]) -> dict[str, float | str | None]:
    """Normalise a subject's descriptors: Gender/ICUType as names, numbers as floats."""
    out: dict[str, float | str | None] = {}
    for name, value in raw.items():
        if name == "Gender":
            out[name] = _sex(value)
        elif name == "ICUType":
            out[name] = _icu_type(value)
        elif isinstance(value, str) and _num(value) is None and value.strip() not in ("", "-1"):
            out[name] = value.strip()
        else:
            f = _num(value)
            out[name] = None if f is None or (name in ("Height", "Weight") and f <= 0) else f
    return out


def build_records(
    subjects: Iterable[str],
    events: Mapping[str, Mapping[str, Any]],
    static: Mapping[str, Mapping[str, Any]],
    outcomes: Mapping[str, Mapping[str, Any]] | None,
    *,
    set_name: str,
    hours: float,
    quality: QualityCounter,
    variables: Iterable[str] = PHYSIONET_VARIABLES,
    missing_outcome: str = "exclude",
) -> list[Record]:
    """Turn per-subject event arrays, statics and outcomes into medlearn records.

    Args:
        subjects: subject ids in record order.
        events: subject -> ``{"time": float array (hours), "code": str array, "value": float
            array (NaN for text), "text": list | None}``; times must already be parsed.
        static: subject -> descriptors (Age, Gender, Height, ICUType, Weight ...).
        outcomes: subject -> ``{"target", "los", "survival", "saps1", "sofa"}``, or ``None``
            when the source has no outcomes at all (prediction: every target is ``None``).
        set_name: used in record ids (``f"{set_name}/{subject}"``) and ``meta["set"]``.
        hours: the observation window; events outside ``[0, hours]`` are counted as
            ``out_of_window`` and left out of the record.
        quality: counter updated with ``out_of_window``, ``unknown_variable``,
            ``stay_without_measurements``, ``missing_outcome``, ``clipped_out_of_range``.
        variables: the known variable codes; others are counted as ``unknown_variable`` but
            kept in the record (the featuriser ignores codes it was not fitted on).
        missing_outcome: ``"exclude"`` leaves records without an outcome out (counted and
            logged) or ``"keep"`` keeps them with target ``None``.

    Returns:
        The records, one per subject (minus excluded ones).
    """
    import pandas as pd

    from medlearn.clinical._ts_features import PHYSIO_RANGES
    from medlearn.data import make_record

    known = set(variables)
    subjects = list(subjects)
    empty = {"time": np.zeros(0), "code": np.zeros(0, dtype=str), "value": np.zeros(0)}
    evs = [events.get(sid) or dict(empty, text=None) for sid in subjects]
    lengths = np.array([len(ev["time"]) for ev in evs], dtype=np.int64)
    bounds = np.r_[0, np.cumsum(lengths)]
    if bounds[-1]:
        all_t = np.concatenate([np.asarray(ev["time"], dtype=np.float64) for ev in evs])
        all_c = np.concatenate([np.asarray(ev["code"]).astype(str) for ev in evs])
        all_v = np.concatenate([np.asarray(ev["value"], dtype=np.float64) for ev in evs])
    else:
        all_t, all_c, all_v = np.zeros(0), np.zeros(0, dtype=str), np.zeros(0)
    inv, uniq = pd.factorize(all_c) if len(all_c) else (np.zeros(0, np.int64), [])
    ranges = [PHYSIO_RANGES.get(str(u), (-np.inf, np.inf)) for u in uniq]
    known_lut = np.array([str(u) in known for u in uniq] + [False], dtype=bool)
    lo = np.array([r[0] for r in ranges] + [-np.inf])
    hi = np.array([r[1] for r in ranges] + [np.inf])
    inside = (all_t >= 0) & (all_t <= hours)
    is_known = known_lut[inv] if len(inv) else np.zeros(0, bool)
    quality["out_of_window"] += int((~inside).sum())
    quality["unknown_variable"] += int((inside & ~is_known).sum())
    if len(inv):
        outside = (all_v < lo[inv]) | (all_v > hi[inv])
        quality["clipped_out_of_range"] += int((inside & is_known & outside).sum())
    owner = np.repeat(np.arange(len(subjects)), lengths)
    n_known = np.bincount(owner[inside & is_known], minlength=len(subjects))
    quality["stay_without_measurements"] += int((n_known == 0).sum())
    records: list[Record] = []
    for i, sid in enumerate(subjects):
        a, b = bounds[i], bounds[i + 1]
        t, code, value = all_t[a:b], all_c[a:b], all_v[a:b]
        text = evs[i].get("text")
        keep = inside[a:b]
        if not keep.all():
            t, code, value = t[keep], code[keep], value[keep]
            if text is not None:
                text = [x for x, k in zip(text, keep, strict=True) if k]
        if len(t) > 1 and np.any(t[1:] < t[:-1]):
            order = np.argsort(t, kind="stable")
            t, code, value = t[order], code[order], value[order]
            if text is not None:
                text = [text[j] for j in order]
        st = _static_of(static.get(sid, {}))
        out = outcomes.get(sid) if outcomes is not None else None
        target: int | None = None
        if outcomes is not None:
            target = out.get("target") if out else None
            if target is None:
                quality["missing_outcome"] += 1
                if missing_outcome == "exclude":
                    continue
        out = out or {}
        survival = out.get("survival")
        age = st.get("Age")
        meta = {
            "los_days": out.get("los"),
            "survival_days": survival if survival is not None and survival >= 0 else None,
            "saps1": out.get("saps1"),
            "sofa": out.get("sofa"),
            "sex": st.get("Gender"),
            "age_band": age_band(age if isinstance(age, float) else None),
            "icu_type": st.get("ICUType"),
            "set": set_name,
        }
        records.append(
            make_record(
                f"{set_name}/{sid}",
                {"events": {"time": t, "code": code, "value": value, "text": text}, "static": st},
                target,
                patient_id=str(sid),
                meta=meta,
            )
        )
    return records


# --- PhysioNet 2012 --------------------------------------------------------------------------

_HHMM = re.compile(r"^\s*(\d+):(\d{1,2})\s*$")


def _parse_physionet_text(
    text: str, quality: QualityCounter, where: str
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """One PhysioNet record file -> (RecordID, descriptors, events)."""
    lines = text.splitlines()
    if not lines or not lines[0].replace(" ", "").lower().startswith("time,parameter,value"):
        raise DataValidationError(
            f"{where}: not a PhysioNet 2012 record (the first line must be "
            "'Time,Parameter,Value').",
            hint="Each record file is a CSV with the header Time,Parameter,Value.",
        )
    rid: str | None = None
    static: dict[str, Any] = {}
    times: list[float] = []
    codes: list[str] = []
    values: list[float] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 3:
            quality["malformed_line"] += 1
            continue
        tstr, param, vstr = parts[0], parts[1].strip(), parts[2]
        m = _HHMM.match(tstr)
        if m is None or int(m.group(2)) >= 60:
            quality["unparseable_time"] += 1
            continue
        t = int(m.group(1)) + int(m.group(2)) / 60.0
        if param == "RecordID" and rid is None:
            rid = vstr.strip()
            continue
        if t == 0 and param in PHYSIONET_STATIC and param not in static:
            static[param] = vstr.strip()
            continue
        try:
            v = float(vstr)
        except ValueError:
            quality["unparseable_value"] += 1
            continue
        if not math.isfinite(v):
            quality["unparseable_value"] += 1
            continue
        times.append(t)
        codes.append(param)
        values.append(v)
    events = {
        "time": np.asarray(times, dtype=np.float64),
        "code": np.asarray(codes, dtype=str) if codes else np.zeros(0, dtype="<U1"),
        "value": np.asarray(values, dtype=np.float64),
        "text": None,
    }
    return rid, static, events


def _parse_physionet_files(
    files: list[tuple[str, str]], path: Path, quality: QualityCounter
) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Parse many record files at once with pandas' C parser (falls back to the line parser
    for a set holding a malformed line)."""
    import io

    import pandas as pd

    bodies: list[str] = []
    lengths: list[int] = []
    for member, text in files:
        head, _, body = text.partition("\n")
        if not head.replace(" ", "").lower().startswith("time,parameter,value"):
            where = f"{path}:{member}" if not path.is_dir() else str(path / member)
            raise DataValidationError(
                f"{where}: not a PhysioNet 2012 record (the first line must be "
                "'Time,Parameter,Value').",
                hint="Each record file is a CSV with the header Time,Parameter,Value.",
            )
        body = "\n".join(x for x in body.replace("\r", "").split("\n") if x.strip())
        if body:
            body += "\n"
        bodies.append(body)
        lengths.append(body.count("\n"))
    try:
        # "HH:MM,Parameter,Value" -> four columns, parsed by pandas' C parser in one go
        frame = pd.read_csv(
            io.StringIO("".join(bodies).replace(":", ",")),
            header=None,
            names=["h", "m", "p", "v"],
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=[""],
            engine="c",
            dtype={"p": str},
        )
        if len(frame) != sum(lengths) or frame["p"].isna().any():
            raise ValueError("misaligned")
    except (ValueError, pd.errors.ParserError):
        return _parse_physionet_slow(files, path, quality)
    owner = np.repeat(np.arange(len(files)), lengths)

    def numeric(col: str) -> np.ndarray:
        c = frame[col]
        if c.dtype.kind in "fiu":
            return c.to_numpy(dtype=np.float64)
        return pd.to_numeric(c, errors="coerce").to_numpy(dtype=np.float64)

    h, m = numeric("h"), numeric("m")
    ok_t = np.isfinite(h) & np.isfinite(m) & (m >= 0) & (m < 60) & (h >= 0)
    t = h + m / 60.0
    param = frame["p"].to_numpy().astype(str)
    value = numeric("v")
    vtext = frame["v"].to_numpy()
    quality["unparseable_time"] += int((~ok_t).sum())
    rid_rows = np.nonzero(ok_t & (param == "RecordID"))[0]
    first_rid = np.zeros(len(param), bool)
    if len(rid_rows):
        o = owner[rid_rows]
        first_rid[rid_rows[np.r_[True, o[1:] != o[:-1]]]] = True
    st_index = {name: j for j, name in enumerate(PHYSIONET_STATIC)}
    st_code = pd.Series(param).map(st_index).fillna(-1).to_numpy(dtype=np.int64)
    st_rows = np.nonzero(ok_t & (t == 0) & (st_code >= 0))[0]
    first_static = np.zeros(len(param), bool)
    if len(st_rows):
        _, first = np.unique(owner[st_rows] * len(st_index) + st_code[st_rows], return_index=True)
        first_static[st_rows[first]] = True
    is_event = ok_t & ~first_rid & ~first_static
    bad_v = is_event & ~np.isfinite(value)
    quality["unparseable_value"] += int(bad_v.sum())
    is_event &= ~bad_v
    rid_of = {
        int(o): f"{v:.0f}" if isinstance(v, float) else str(v).strip()
        for o, v in zip(owner[first_rid], vtext[first_rid], strict=True)
    }
    st_rows = np.nonzero(first_static)[0]
    ev_rows = np.nonzero(is_event)[0]
    ev_owner = owner[ev_rows]
    bounds = np.searchsorted(ev_owner, np.arange(len(files) + 1))
    st_of: dict[int, dict[str, Any]] = {}
    for r in st_rows:
        st_of.setdefault(int(owner[r]), {})[str(param[r])] = vtext[r]
    subjects: list[str] = []
    events: dict[str, dict[str, Any]] = {}
    static: dict[str, dict[str, Any]] = {}
    ev_t, ev_p, ev_v = t[ev_rows], param[ev_rows], value[ev_rows]
    for i, (member, _) in enumerate(files):
        rid = rid_of.get(i)
        if rid is None:
            rid = Path(member).stem
            quality["missing_record_id"] += 1
        if rid in events:
            quality["duplicate_record"] += 1
            continue
        a, b = bounds[i], bounds[i + 1]
        subjects.append(rid)
        events[rid] = {"time": ev_t[a:b], "code": ev_p[a:b], "value": ev_v[a:b], "text": None}
        static[rid] = st_of.get(i, {})
    return subjects, events, static


def _parse_physionet_slow(
    files: list[tuple[str, str]], path: Path, quality: QualityCounter
) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Line-by-line parsing (handles malformed lines, counted as ``malformed_line``)."""
    subjects: list[str] = []
    events: dict[str, dict[str, Any]] = {}
    static: dict[str, dict[str, Any]] = {}
    for member, text in files:
        where = f"{path}:{member}" if not path.is_dir() else str(path / member)
        rid, st, ev = _parse_physionet_text(text, quality, where)
        if rid is None:
            rid = Path(member).stem
            quality["missing_record_id"] += 1
        if rid in events:
            quality["duplicate_record"] += 1
            continue
        subjects.append(rid)
        events[rid] = ev
        static[rid] = st
    return subjects, events, static


def _iter_physionet_files(path: Path) -> Iterator[tuple[str, str]]:
    """(member name, text) of every ``.txt`` record in a directory or tarball, sorted."""
    if path.is_dir():
        for f in sorted(path.glob("*.txt")):
            yield f.name, f.read_text(encoding="utf-8", errors="replace")
        return
    try:
        with tarfile.open(path, mode="r:*") as tar:
            members = sorted(
                (m for m in tar.getmembers() if m.isfile() and m.name.endswith(".txt")),
                key=lambda m: m.name,
            )
            for m in members:
                fh = tar.extractfile(m)
                if fh is None:
                    continue
                yield m.name, fh.read().decode("utf-8", errors="replace")
    except tarfile.TarError as exc:
        raise DataValidationError(
            f"{path}: not a readable tar archive ({type(exc).__name__}).",
            hint="Give a PhysioNet set as a folder of .txt records or a .tar.gz of them.",
        ) from exc


def _set_name(path: Path) -> str:
    """``set-a.tar.gz`` -> ``a``; ``records/`` -> ``records``."""
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[4:] if name.lower().startswith("set-") else name


def _default_outcomes(path: Path) -> Path | None:
    """``set-a.tar.gz`` -> ``Outcomes-a.txt`` beside it, when it exists."""
    cand = path.parent / f"Outcomes-{_set_name(path)}.txt"
    return cand if cand.is_file() else None


def read_physionet_outcomes(path: Path, quality: QualityCounter) -> dict[str, dict[str, Any]]:
    """Read an ``Outcomes-x.txt`` file: RecordID -> target, los, survival, saps1, sofa.

    Raises:
        DataValidationError: a missing column, or a non-0/1 death flag (naming the row).
    """
    import pandas as pd

    frame = pd.read_csv(path, dtype=str)
    frame.columns = [c.strip() for c in frame.columns]
    cols = _PHYSIONET_OUTCOME_COLUMNS
    missing = [c for c in (cols["id"], cols["target"]) if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{path}: outcomes file lacks the column(s) {', '.join(missing)}.",
            hint="A PhysioNet outcomes file has RecordID, SAPS-I, SOFA, Length_of_stay, "
            "Survival, In-hospital_death.",
        )
    out: dict[str, dict[str, Any]] = {}
    for row, rec in enumerate(frame.to_dict("records"), start=2):
        rid = str(rec[cols["id"]]).strip()
        raw = _num(rec.get(cols["target"]))
        if raw is not None and raw not in (0.0, 1.0):
            raise DataValidationError(
                f"{path}: row {row}, column {cols['target']}: in-hospital death must be 0 or 1.",
                hint="Fix the row, or leave the cell empty for an unknown outcome.",
            )
        if rid in out:
            quality["duplicate_outcome"] += 1
            continue
        out[rid] = {
            "target": int(raw) if raw is not None else None,
            "los": _num(rec.get(cols["los"])),
            "survival": _num(rec.get(cols["survival"])),
            "saps1": _num(rec.get(cols["saps1"])),
            "sofa": _num(rec.get(cols["sofa"])),
        }
    return out


def read_physionet_set(
    path: str | Path,
    *,
    outcomes: str | Path | None = None,
    hours: float = 48.0,
    name: str | None = None,
    missing_outcome: str = "exclude",
    quality: QualityCounter | None = None,
    variables: Iterable[str] = PHYSIONET_VARIABLES,
) -> list[Record]:
    """Read one PhysioNet/CinC 2012 set (folder or tarball of ``.txt`` records).

    The tarball is read member by member with :mod:`tarfile`, never extracted to disk.

    Args:
        path: ``set-a/`` or ``set-a.tar.gz``.
        outcomes: the outcomes file; default ``Outcomes-<set>.txt`` beside ``path`` (when
            there is none, every target is ``None``: prediction).
        hours: observation window (hours from admission).
        name: set name in record ids (default ``a`` for ``set-a.tar.gz``).
        missing_outcome: ``"exclude"`` or ``"keep"`` records absent from the outcomes file.
        quality: counter to update (a new one when ``None``).
        variables: known variable codes.

    Returns:
        The records in RecordID order.
    """
    path = Path(path)
    quality = quality if quality is not None else QualityCounter()
    set_name = name or _set_name(path)
    files = list(_iter_physionet_files(path))
    n_files = len(files)
    subjects, events, static = _parse_physionet_files(files, path, quality)
    if n_files == 0:
        raise DataValidationError(
            f"{path}: no PhysioNet record (.txt) files found.",
            hint="Give a folder or a .tar.gz holding the set's <RecordID>.txt files.",
        )
    out_path = Path(outcomes) if outcomes else _default_outcomes(path)
    outs = read_physionet_outcomes(out_path, quality) if out_path is not None else None
    if outs is not None:
        extra = len(set(outs) - set(events))
        if extra:
            quality["outcome_without_record"] += extra
    return build_records(
        subjects,
        events,
        static,
        outs,
        set_name=set_name,
        hours=hours,
        quality=quality,
        variables=variables,
        missing_outcome=missing_outcome,
    )


# --- long format CSV / Parquet ----------------------------------------------------------------


def _read_frame(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file.", hint="Check the path in data.options.")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=True)


def _need(frame: pd.DataFrame, col: str, path: Path, option: str) -> None:
    if col not in frame.columns:
        raise ConfigError(
            f"{path}: no column {col!r} (from data.options.{option}). Columns: "
            f"{', '.join(map(str, frame.columns))}.",
            hint=f"Set data.options.{option} to the right column name.",
        )


def read_long_table(
    path: str | Path,
    *,
    hours: float = 48.0,
    name: str | None = None,
    missing_outcome: str = "exclude",
    quality: QualityCounter | None = None,
    variables: Iterable[str] = PHYSIONET_VARIABLES,
    **options: Any,
) -> list[Record]:
    """Read a long-format event table (CSV or Parquet) with a small column mapping.

    Options (see :data:`OPTIONS`): ``subject_column``, ``time_column`` (hours since
    admission, or date-times: then hours since ``admission_column`` of the static table, or
    since the subject's first event), ``code_column``, ``value_column``, ``text_column``,
    ``static`` (path; one row per subject, other columns are descriptors), ``outcomes``
    (path; ``outcome_column``, ``los_column``, ``survival_column``).

    Raises:
        ConfigError: a mapped column that the file does not have.
    """
    import pandas as pd

    path = Path(path)
    quality = quality if quality is not None else QualityCounter()
    scol = options.get("subject_column", "subject_id")
    tcol = options.get("time_column", "time")
    ccol = options.get("code_column", "code")
    vcol = options.get("value_column", "value")
    xcol = options.get("text_column")
    frame = _read_frame(path)
    for col, opt in ((scol, "subject_column"), (tcol, "time_column"), (ccol, "code_column")):
        _need(frame, col, path, opt)
    if vcol not in frame.columns and not xcol:
        _need(frame, vcol, path, "value_column")
    subj = frame[scol].astype(str).str.strip()
    bad_subject = subj.isin(["", "nan", "None"])
    quality["missing_subject"] += int(bad_subject.sum())

    static: dict[str, dict[str, Any]] = {}
    admission: dict[str, pd.Timestamp] = {}
    if options.get("static"):
        spath = Path(options["static"])
        sframe = _read_frame(spath)
        sscol = options.get("static_subject_column", scol)
        _need(sframe, sscol, spath, "static_subject_column")
        acol = options.get("admission_column")
        if acol:
            _need(sframe, acol, spath, "admission_column")
        for rec in sframe.to_dict("records"):
            sid = str(rec.pop(sscol)).strip()
            if sid in static:
                quality["duplicate_record"] += 1
                continue
            if acol:
                raw_adm = rec.pop(acol)
                ts = pd.to_datetime(raw_adm, errors="coerce", utc=True)
                if pd.isna(ts):
                    quality["unparseable_time"] += int(
                        bool(str(raw_adm).strip()) and not pd.isna(raw_adm)
                    )
                else:
                    admission[sid] = ts
            static[sid] = rec

    raw_t = frame[tcol]
    t = pd.to_numeric(raw_t, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(t).all() and raw_t.notna().any():
        stamps = pd.to_datetime(raw_t, errors="coerce", utc=True)
        base = pd.Series(
            [admission.get(s) for s in subj], index=frame.index, dtype="datetime64[ns, UTC]"
        )
        first = stamps.groupby(subj).transform("min")
        base = base.fillna(first)
        t = ((stamps - base).dt.total_seconds() / 3600.0).to_numpy(dtype=np.float64)
    bad_time = np.isnan(t)
    quality["unparseable_time"] += int((bad_time & ~bad_subject.to_numpy()).sum())

    if vcol in frame.columns:
        raw_v = frame[vcol]
        v = pd.to_numeric(raw_v, errors="coerce").to_numpy(dtype=np.float64)
        has_raw = raw_v.notna().to_numpy() & (raw_v.astype(str).str.strip() != "").to_numpy()
    else:
        v = np.full(len(frame), np.nan)
        has_raw = np.zeros(len(frame), bool)
    text = frame[xcol].astype(object).where(frame[xcol].notna(), None) if xcol else None
    has_text = text.notna().to_numpy() if text is not None else np.zeros(len(frame), bool)
    bad_value = np.isnan(v) & ~has_text
    quality["unparseable_value"] += int((bad_value & ~bad_time & ~bad_subject.to_numpy()).sum())
    keep = ~(bad_subject.to_numpy() | bad_time | bad_value)
    _ = has_raw

    codes = frame[ccol].astype(str).str.strip().to_numpy()
    sub_arr = subj.to_numpy()
    events: dict[str, dict[str, Any]] = {}
    subjects: list[str] = list(dict.fromkeys(sub_arr[keep]))
    idx = np.nonzero(keep)[0]
    if len(idx):
        order = idx[np.argsort(sub_arr[idx], kind="stable")]
        sorted_sub = sub_arr[order]
        starts = np.r_[0, np.nonzero(sorted_sub[1:] != sorted_sub[:-1])[0] + 1]
        ends = np.r_[starts[1:], len(order)]
        text_list = list(text) if text is not None else None
        for a, b in zip(starts, ends, strict=True):
            rows = order[a:b]
            events[str(sorted_sub[a])] = {
                "time": t[rows],
                "code": codes[rows],
                "value": v[rows],
                "text": [text_list[i] for i in rows] if text_list is not None else None,
            }
    for sid in static:
        if sid not in events:
            subjects.append(sid)

    outs: dict[str, dict[str, Any]] | None = None
    if options.get("outcomes"):
        opath = Path(options["outcomes"])
        oframe = _read_frame(opath)
        oscol = options.get("outcome_subject_column", scol)
        ocol = options.get("outcome_column", "In-hospital_death")
        for col, opt in ((oscol, "outcome_subject_column"), (ocol, "outcome_column")):
            _need(oframe, col, opath, opt)
        lcol = options.get("los_column", "Length_of_stay")
        svcol = options.get("survival_column", "Survival")
        outs = {}
        for row, rec in enumerate(oframe.to_dict("records"), start=2):
            sid = str(rec[oscol]).strip()
            raw = _num(rec.get(ocol))
            if raw is not None and raw not in (0.0, 1.0):
                raise DataValidationError(
                    f"{opath}: row {row}, column {ocol}: the outcome must be 0 or 1.",
                    hint="Fix the row, or leave it empty for an unknown outcome.",
                )
            if sid in outs:
                quality["duplicate_outcome"] += 1
                continue
            outs[sid] = {
                "target": int(raw) if raw is not None else None,
                "los": _num(rec.get(lcol)),
                "survival": _num(rec.get(svcol)),
                "saps1": _num(rec.get("SAPS-I")),
                "sofa": _num(rec.get("SOFA")),
            }
    return build_records(
        subjects,
        events,
        static,
        outs,
        set_name=name or path.stem,
        hours=hours,
        quality=quality,
        variables=variables,
        missing_outcome=missing_outcome,
    )


# --- dispatch --------------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir():
        if any(path.glob("*.txt")):
            return "physionet"
        if any(path.glob("*.ndjson")) or any(path.glob("*.json")):
            return "fhir"
        raise DataValidationError(
            f"{path}: the folder holds neither PhysioNet .txt records nor FHIR .json/.ndjson.",
            hint="Set data.options.format to physionet, long or fhir.",
        )
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "physionet"
    if name.endswith((".csv", ".tsv", ".parquet", ".pq", ".csv.gz")):
        return "long"
    if name.endswith((".json", ".ndjson", ".jsonl")):
        return "fhir"
    raise DataValidationError(
        f"{path}: cannot tell the time-series format from the file name.",
        hint="Use a .tar.gz / folder (PhysioNet), .csv / .parquet (long format) or "
        ".json / .ndjson (FHIR), or set data.options.format.",
    )


def _read_source(
    path: Path, fmt: str, opts: dict[str, Any], quality: QualityCounter, *, test: bool = False
) -> list[Record]:
    hours = float(opts.get("hours", 48.0))
    variables = tuple(opts.get("variables") or PHYSIONET_VARIABLES)
    missing = str(opts.get("missing_outcome", "exclude"))
    if fmt == "physionet":
        outcomes = opts.get("test_outcomes") if test else opts.get("outcomes")
        return read_physionet_set(
            path,
            outcomes=outcomes,
            hours=hours,
            name=None if test else opts.get("name"),
            missing_outcome=missing,
            quality=quality,
            variables=variables,
        )
    if fmt == "long":
        long_opts = {k: v for k, v in opts.items() if k.endswith("_column") or k == "static"}
        if opts.get("test_outcomes" if test else "outcomes"):
            long_opts["outcomes"] = opts["test_outcomes" if test else "outcomes"]
        return read_long_table(
            path,
            hours=hours,
            name=None if test else opts.get("name"),
            missing_outcome=missing,
            quality=quality,
            variables=variables,
            **long_opts,
        )
    if fmt == "fhir":
        from medlearn.clinical._ts_fhir import read_fhir

        return read_fhir(
            path,
            hours=hours,
            name=None if test else opts.get("name"),
            outcomes=opts.get("test_outcomes" if test else "outcomes"),
            missing_outcome=missing,
            quality=quality,
            variables=variables,
        )
    raise ConfigError(f"Unknown data.options.format {fmt!r}.", hint="Use physionet, long or fhir.")


def read_timeseries(path: str | Path, cfg: RunConfig | None = None, **options: Any) -> LoadedData:
    """Read ICU/EHR time series into records (READERS name ``"timeseries"``).

    Dispatches on ``path``: a folder or ``.tar.gz`` of PhysioNet 2012 ``.txt`` records (its
    ``Outcomes-<set>.txt`` beside it), a long-format ``.csv`` / ``.parquet`` event table, or
    FHIR R4 ``.json`` (Bundle) / ``.ndjson``. Options come from the catalog entry, then
    ``cfg.data.options`` (which win), then keyword arguments; see :data:`OPTIONS`.

    With ``test: <second source>`` the second source is read too and
    ``given_split = {"train": first source, "test": second}`` (the pipeline carves val out of
    train). Records lacking an outcome (when an outcomes table exists) are left out by
    default, counted as ``missing_outcome`` and reported in a warning; ``missing_outcome:
    keep`` keeps them with target ``None``. Every problem is counted in
    ``info["data_quality"]``.

    Raises:
        ConfigError: unknown options or a malformed option value.
        DataNotFoundError: a path that does not exist.
        DataValidationError: a malformed file (naming the file and the problem).
    """
    from medlearn.data import LoadedData

    path = Path(path)
    opts = dict(options)
    if cfg is not None:
        opts.update(cfg.data.options)
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"Unknown data.options for time-series data: {', '.join(unknown)}. "
            f"Accepted: {', '.join(OPTIONS)}."
        )
    try:
        hours = float(opts.get("hours", 48.0))
    except (TypeError, ValueError):
        hours = float("nan")
    if not math.isfinite(hours) or hours <= 0:
        raise ConfigError(
            f"data.options.hours must be a positive number of hours. Got {opts.get('hours')!r}."
        )
    if str(opts.get("missing_outcome", "exclude")) not in ("exclude", "keep"):
        raise ConfigError(
            "data.options.missing_outcome must be 'exclude' or 'keep'. Got "
            f"{opts.get('missing_outcome')!r}."
        )
    if not path.exists():
        raise DataNotFoundError(f"{path}: no such file or folder.", hint="Check data.path.")
    fmt = str(opts.get("format") or _format_of(path))
    quality = QualityCounter()
    records = _read_source(path, fmt, opts, quality)
    given: dict[str, list[str]] | None = None
    sources = [str(path)]
    tpath = Path(opts["test"]).expanduser() if opts.get("test") else None
    if tpath is not None and not tpath.is_absolute() and not tpath.exists():
        tpath = path.parent / tpath
    if tpath is not None and tpath.exists() and tpath.resolve() == path.resolve():
        tpath = None  # evaluating the test source itself: all its records
    if tpath is not None:
        if not tpath.exists():
            raise DataNotFoundError(
                f"data.options.test {str(tpath)!r} does not exist.",
                hint="Give the test set's path (e.g. set-b.tar.gz).",
            )
        test_records = _read_source(tpath, _format_of(tpath), opts, quality, test=True)
        given = {"train": [r["id"] for r in records], "test": [r["id"] for r in test_records]}
        records = records + test_records
        sources.append(str(tpath))
    if quality.get("missing_outcome") and str(opts.get("missing_outcome", "exclude")) == (
        "exclude"
    ):
        log.warning(
            "%d records have no outcome and were left out (data.options.missing_outcome: keep "
            "keeps them for prediction).",
            quality["missing_outcome"],
        )
    n_pos = sum(1 for r in records if r["target"] == 1)
    info = {
        "n_records": len(records),
        "n_with_outcome": sum(1 for r in records if r["target"] is not None),
        "n_deaths": n_pos,
        "hours": hours,
        "format": fmt,
        "data_quality": quality.as_dict(),
    }
    return LoadedData(
        records=records,
        classes=list(CLASSES),
        given_split=given,
        source=" + ".join(sources),
        info=info,
    )

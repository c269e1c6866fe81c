"""Survival data: the ``survival`` reader (DeepSurv HDF5, CSV, Parquet) and catalog entries.

Records: ``input`` is a float32 covariate vector, ``target`` is ``{"time": float,
"event": int}``, ``patient_id`` one per row (or the ``patient`` column). How the covariates
were built (feature names, one-hot levels, treatment column) is a :class:`SurvivalSchema`,
kept in ``LoadedData.info["survival"]`` and in the model bundle, so ``predict`` parses
CSV rows exactly as training did.

Reader options (``data.options``):

=============  ===================================================================
``duration``   time column (CSV/Parquet; required there)
``event``      event column, values 0/1 (CSV/Parquet; required there)
``features``   covariate columns (CSV/Parquet; default: every other column) or, for
               HDF5, names of the ``x`` columns (default ``x0 .. x{d-1}``)
``categorical`` columns one-hot encoded (first level dropped); others must be numeric
``treatment``  the treatment column (name, or index into HDF5 ``x``), values 0/1
``id``         a row id column; ``patient``: a patient id column
=============  ===================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medlearn.catalog import DatasetSpec, register
from medlearn.data import LoadedData, make_record
from medlearn.errors import ConfigError, DataValidationError
from medlearn.registry import READERS

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import Record

__all__ = ["SURVIVAL_SPECS", "SurvivalSchema", "parse_table", "read_survival"]

_OPTIONS = ("duration", "event", "features", "categorical", "treatment", "id", "patient")
_H5_SUFFIXES = (".h5", ".hdf5")
_TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
_MAX_LISTED = 10


@dataclass
class SurvivalSchema:
    """How covariate vectors are built from a source.

    Attributes:
        features: names of the vector's entries, in order.
        columns: source columns read (CSV/Parquet; empty for HDF5).
        categorical: column → levels; each level after the first is a 0/1 entry.
        duration, event: time and event columns (CSV/Parquet).
        treatment: index of the 0/1 treatment entry in the vector, or ``None``.
        id_column, patient_column: optional id columns.
    """

    features: list[str]
    columns: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    duration: str | None = None
    event: str | None = None
    treatment: int | None = None
    id_column: str | None = None
    patient_column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SurvivalSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(**raw)


def _options(cfg: RunConfig | None, options: dict[str, Any]) -> dict[str, Any]:
    merged = dict(options)
    if cfg is not None:
        merged.update(cfg.data.options)
    unknown = sorted(k for k in merged if k not in _OPTIONS)
    if unknown:
        raise ConfigError(
            f"Unknown data.options for survival data: {', '.join(unknown)}. "
            f"Accepted: {', '.join(_OPTIONS)}.",
            hint="Fix the names under data.options.",
        )
    return merged


def _raise_bad(source: str, bad: Sequence[tuple[int, str, str]], total: int) -> None:
    shown = "; ".join(f"row {row} column {col!r}: {why}" for row, col, why in bad[:_MAX_LISTED])
    more = f" (and {len(bad) - _MAX_LISTED} more)" if len(bad) > _MAX_LISTED else ""
    rows = len({row for row, _, _ in bad})
    raise DataValidationError(
        f"{source}: {rows} of {total} rows are unusable: {shown}{more}.",
        hint="Fix or remove these rows (times must be >= 0, events 0 or 1, covariates "
        "numeric and present; list text columns under data.options.categorical).",
    )


# --- HDF5 (DeepSurv) ---------------------------------------------------------------------------


def _read_h5(path: Path, opts: dict[str, Any]) -> LoadedData:
    import h5py

    for key in ("duration", "event", "categorical", "id", "patient"):
        if key in opts:
            raise ConfigError(
                f"data.options.{key} does not apply to DeepSurv HDF5 files ({path.name}).",
                hint="HDF5 groups hold x, t and e; drop the option.",
            )
    records: list[Record] = []
    given: dict[str, list[str]] = {}
    bad: list[tuple[int, str, str]] = []
    width = None
    with h5py.File(path, "r") as f:
        groups = [g for g in ("train", "valid", "val", "test") if g in f]
        if not groups:
            raise DataValidationError(
                f"{path}: no train/valid/test groups found (groups: {', '.join(f.keys())}).",
                hint="Give a DeepSurv-style HDF5 file: groups train/test with x, t, e.",
            )
        for group in groups:
            g = f[group]
            missing = [k for k in ("x", "t", "e") if k not in g]
            if missing:
                raise DataValidationError(
                    f"{path}: group {group!r} lacks {', '.join(missing)}.",
                    hint="Each group needs x (N, D), t (N,) and e (N,).",
                )
            x = np.asarray(g["x"], dtype=np.float64)
            t = np.asarray(g["t"], dtype=np.float64).reshape(-1)
            e = np.asarray(g["e"], dtype=np.float64).reshape(-1)
            hr = np.asarray(g["hr"], dtype=np.float64).reshape(-1) if "hr" in g else None
            if x.ndim != 2 or len(x) != len(t) or len(t) != len(e):
                raise DataValidationError(
                    f"{path}: group {group!r} has x {x.shape}, t {t.shape}, e {e.shape}.",
                    hint="x must be (N, D) and t, e (N,).",
                )
            if width is None:
                width = x.shape[1]
            elif x.shape[1] != width:
                raise DataValidationError(
                    f"{path}: group {group!r} has {x.shape[1]} covariates, others {width}."
                )
            split = "val" if group in ("valid", "val") else group
            ids = []
            for i in range(len(t)):
                where = f"{group}/{i}"
                if not np.isfinite(t[i]) or t[i] < 0:
                    bad.append((i, f"{group}/t", "time missing or negative"))
                if e[i] not in (0.0, 1.0):
                    bad.append((i, f"{group}/e", "event not 0 or 1"))
                if not np.all(np.isfinite(x[i])):
                    bad.append((i, f"{group}/x", "covariate missing or not finite"))
                meta = {"split": split}
                if hr is not None:
                    meta["true_log_hr"] = float(hr[i])
                records.append(
                    make_record(
                        where,
                        x[i].astype(np.float32),
                        {"time": float(t[i]), "event": int(e[i]) if e[i] in (0, 1) else -1},
                        meta=meta,
                    )
                )
                ids.append(where)
            given[split] = ids
    if bad:
        _raise_bad(str(path), bad, len(records))
    assert width is not None
    names = opts.get("features") or [f"x{j}" for j in range(width)]
    if len(names) != width:
        raise ConfigError(
            f"data.options.features names {len(names)} covariates; {path.name} has {width}.",
            hint="Give one name per column of x, or drop the option.",
        )
    schema = SurvivalSchema(features=[str(n) for n in names])
    schema.treatment = _treatment_index(opts.get("treatment"), schema.features, str(path))
    _check_treatment(records, schema, str(path))
    return LoadedData(
        records=records,
        given_split=given,
        source=str(path),
        info={"survival": schema.to_dict(), "format": "hdf5", "covariates": width},
    )


def _treatment_index(value: Any, features: list[str], source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        index = value if value >= 0 else len(features) + value
        if not 0 <= index < len(features):
            raise ConfigError(
                f"data.options.treatment index {value} is outside the {len(features)} "
                f"covariates of {source}."
            )
        return index
    if str(value) not in features:
        raise ConfigError(
            f"data.options.treatment {value!r} is not a covariate of {source}.",
            hint=f"Covariates: {', '.join(features[:20])}.",
        )
    return features.index(str(value))


def _check_treatment(records: Sequence[Record], schema: SurvivalSchema, source: str) -> None:
    if schema.treatment is None:
        return
    values = np.array([r["input"][schema.treatment] for r in records])
    bad = int(np.sum(~np.isin(values, (0.0, 1.0))))
    if bad:
        raise DataValidationError(
            f"{source}: the treatment column {schema.features[schema.treatment]!r} holds values "
            f"other than 0/1 in {bad} rows.",
            hint="Code the treatment arm as 0 (control) / 1 (treated).",
        )


# --- CSV / Parquet -----------------------------------------------------------------------------


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataValidationError(
            f"{path}: cannot be read as a table ({type(exc).__name__}).",
            hint="Give a CSV with a header row, or a Parquet file.",
        ) from None


def _schema_for_table(frame: pd.DataFrame, opts: dict[str, Any], source: str) -> SurvivalSchema:
    duration, event = opts.get("duration"), opts.get("event")
    if not duration or not event:
        raise ConfigError(
            f"{source}: survival tables need data.options.duration and data.options.event.",
            hint="For example data.options: {duration: time, event: cens}.",
        )
    idc, pc = opts.get("id"), opts.get("patient")
    named = [c for c in (duration, event, idc, pc) if c]
    columns = list(opts.get("features") or [c for c in frame.columns if c not in named])
    missing = [c for c in [*named, *columns] if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{source}: column(s) {', '.join(repr(c) for c in missing)} not found.",
            hint=f"Columns: {', '.join(map(str, frame.columns[:30]))}.",
        )
    categorical: dict[str, list[str]] = {}
    for col in opts.get("categorical") or []:
        if col not in columns:
            raise ConfigError(f"data.options.categorical names {col!r}, not a feature column.")
        levels = sorted({str(v) for v in frame[col].dropna()})
        categorical[str(col)] = levels
    features: list[str] = []
    for col in columns:
        if col in categorical:
            features.extend(f"{col}={lv}" for lv in categorical[col][1:])
        else:
            features.append(str(col))
    schema = SurvivalSchema(
        features=features,
        columns=[str(c) for c in columns],
        categorical=categorical,
        duration=str(duration),
        event=str(event),
        id_column=idc,
        patient_column=pc,
    )
    treatment = opts.get("treatment")
    if treatment is not None and str(treatment) in categorical:
        raise ConfigError("data.options.treatment must be a numeric 0/1 column, not categorical.")
    schema.treatment = _treatment_index(treatment, features, source)
    return schema


def parse_table(
    frame: pd.DataFrame, schema: SurvivalSchema, source: str, *, require_target: bool
) -> tuple[list[Record], list[tuple[int, str, str]]]:
    """Turn table rows into records, collecting every bad cell.

    Args:
        frame: the rows.
        schema: how to build covariate vectors.
        source: file name for ids and messages.
        require_target: whether the time/event columns must be present and valid
            (training); for prediction they are used when present.

    Returns:
        ``(records, bad)``; ``bad`` holds ``(row, column, reason)`` with 1-based row numbers.
    """
    n = len(frame)
    bad: list[tuple[int, str, str]] = []
    x = np.zeros((n, len(schema.features)), dtype=np.float64)
    ok = np.ones(n, dtype=bool)
    j = 0
    for col in schema.columns:
        if col not in frame.columns:
            raise DataValidationError(
                f"{source}: column {col!r} is missing.",
                hint=f"The model needs the columns {', '.join(schema.columns)}.",
            )
        values = frame[col]
        if col in schema.categorical:
            levels = schema.categorical[col]
            text = values.astype("string")
            for i, v in enumerate(text):
                if pd.isna(v) or str(v) not in levels:
                    bad.append((i + 1, col, "missing or unknown category"))
                    ok[i] = False
                    continue
                k = levels.index(str(v))
                if k > 0:
                    x[i, j + k - 1] = 1.0
            j += len(levels) - 1
            continue
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        for i in np.flatnonzero(~np.isfinite(num)):
            reason = "missing value" if pd.isna(values.iloc[i]) else "not a number"
            bad.append((int(i) + 1, col, reason))
            ok[i] = False
        x[:, j] = num
        j += 1
    has_target = schema.duration in frame.columns and schema.event in frame.columns
    if require_target and not has_target:
        raise DataValidationError(
            f"{source}: the time column {schema.duration!r} or event column {schema.event!r} "
            "is missing.",
            hint="Set data.options.duration and data.options.event to the right columns.",
        )
    t = e = None
    if has_target:
        t_raw = frame[schema.duration]
        t = pd.to_numeric(t_raw, errors="coerce").to_numpy(dtype=np.float64)
        e = pd.to_numeric(frame[schema.event], errors="coerce").to_numpy(dtype=np.float64)
        for i in range(n):
            if not np.isfinite(t[i]) or t[i] < 0:
                bad.append((i + 1, str(schema.duration), "time missing, non-numeric or negative"))
                ok[i] = False
            if e[i] not in (0.0, 1.0):
                bad.append((i + 1, str(schema.event), "event not 0 or 1"))
                ok[i] = False
    if schema.treatment is not None:
        col = schema.features[schema.treatment]
        for i in np.flatnonzero(ok & ~np.isin(x[:, schema.treatment], (0.0, 1.0))):
            bad.append((int(i) + 1, col, "treatment not 0 or 1"))
            ok[i] = False
    records = []
    name = Path(source).name
    for i in np.flatnonzero(ok):
        rid = str(frame[schema.id_column].iloc[i]) if schema.id_column else f"{name}:row{i + 1}"
        pid = str(frame[schema.patient_column].iloc[i]) if schema.patient_column else None
        target = None
        if t is not None and e is not None:
            target = {"time": float(t[i]), "event": int(e[i])}
        records.append(
            make_record(rid, x[i].astype(np.float32), target, patient_id=pid, meta={"row": i + 1})
        )
    bad.sort()
    return records, bad


def _read_table(path: Path, opts: dict[str, Any]) -> LoadedData:
    frame = _read_frame(path)
    schema = _schema_for_table(frame, opts, str(path))
    records, bad = parse_table(frame, schema, str(path), require_target=True)
    if bad:
        _raise_bad(str(path), bad, len(frame))
    return LoadedData(
        records=records,
        source=str(path),
        info={"survival": schema.to_dict(), "format": "table", "covariates": len(schema.features)},
    )


@READERS.register("survival", run_config=True)
def read_survival(path: str | Path, *, cfg: RunConfig | None = None, **options: Any) -> LoadedData:
    """Read survival data: a DeepSurv HDF5 file, or a CSV / Parquet table.

    Args:
        path: the file.
        cfg: the run file; its ``data.options`` override ``options``.
        **options: reader options (see the module docstring).

    Returns:
        Records with float32 covariate vectors and ``{"time", "event"}`` targets. HDF5 files
        give their groups as ``given_split`` (``valid`` becomes ``val``).

    Raises:
        DataValidationError: for negative or missing times, events other than 0/1, missing or
            non-numeric covariates (every bad row is counted; the first are listed).
        ConfigError: for unknown or missing options.
    """
    path = Path(path)
    opts = _options(cfg, options)
    suffix = path.suffix.lower()
    if suffix in _H5_SUFFIXES:
        return _read_h5(path, opts)
    if suffix in _TABLE_SUFFIXES:
        return _read_table(path, opts)
    raise DataValidationError(
        f"{path}: survival data must be .h5/.hdf5 (DeepSurv) or .csv/.parquet. Got {suffix!r}.",
        hint="Convert the file, or point data.path at one of these formats.",
    )


# --- catalog -----------------------------------------------------------------------------------

_DEEPSURV = (
    "https://raw.githubusercontent.com/jaredleekatzman/DeepSurv/"
    "41eed003e5b892c81e7855e400861fa7a2d9da4f/experiments/data/{path}"
)
_CITATION = (
    "Katzman JL, Shaham U, Cloninger A, Bates J, Jiang T, Kluger Y. DeepSurv: personalized "
    "treatment recommender system using a Cox proportional hazards deep neural network. "
    "BMC Med Res Methodol 18:24 (2018)."
)


def _deepsurv(
    name: str, path: str, sha256: str, size: int, description: str, license: str
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        domain="clinical",
        task="survival",
        relpath=f"survival/{Path(path).name}",
        url=_DEEPSURV.format(path=path),
        checksums={"sha256": [sha256]},
        size_bytes=size,
        description=description,
        license=license,
        citation=_CITATION,
        reader="survival",
    )


SURVIVAL_SPECS: tuple[DatasetSpec, ...] = (
    _deepsurv(
        "whas",
        "whas/whas_train_test.h5",
        "2ed86f073fdbe34be10f7e485eeaf67b61004521390c46b9a18aa9b82d5e8f9c",
        58656,
        "Worcester Heart Attack Study (Hosmer & Lemeshow), as prepared for DeepSurv: "
        "6 covariates, time to death. Splits: train 1310 / test 328.",
        "MIT (DeepSurv repository); study data: Hosmer & Lemeshow teaching data",
    ),
    _deepsurv(
        "support",
        "support/support_train_test.h5",
        "e398f49930e4efc4ecd675a72ac547f0d1ae25ccf13f6a1024cded12ea88a83e",
        574112,
        "SUPPORT (Knaus et al. 1995), seriously ill hospitalised adults, as prepared for "
        "DeepSurv: 14 covariates, time to death. Splits: train 7098 / test 1775.",
        "MIT (DeepSurv repository); study data: Vanderbilt Biostatistics",
    ),
    _deepsurv(
        "gbsg",
        "gbsg/gbsg_cancer_train_test.h5",
        "bd455f4395322a8b23040c15cedbef00ad51a447d02c95f1f1d686a6b196484b",
        86592,
        "Breast cancer: train = Rotterdam tumour bank (1546), test = German Breast Cancer "
        "Study Group (686), as prepared for DeepSurv: 7 covariates, recurrence-free survival.",
        "MIT (DeepSurv repository); study data: Foekens 2000 / Schumacher 1994",
    ),
    _deepsurv(
        "sim_treatment",
        "treatment/sim_treatment_dataset.h5",
        "d39e041b13c56969a5eccc9b8371084fde977a8ac7648a41b8fe14ca06393343",
        906336,
        "Simulated treatment data from DeepSurv: 10 covariates plus the treatment arm "
        "(x10, 0/1) and the true log hazard ratio of treatment per patient (hr). "
        "Splits: train 4000 / valid 1000 / test 1000. Use data.options.treatment: 10.",
        "MIT (DeepSurv repository)",
    ),
)

for _spec in SURVIVAL_SPECS:
    register(_spec)

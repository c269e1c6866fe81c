"""Tabular clinical data: reading tables, column schemas, target expressions, row checks.

A table is read into a :class:`pandas.DataFrame` of strings (:func:`read_table`: CSV with any
delimiter, Parquet, headerless UCI ``.data`` files, ARFF), missing markers (``?``, blank,
``NA`` ...) become missing values, and every column gets a :class:`ColumnSpec` (declared in
``schema`` or inferred). :func:`read_tabular` turns the table into records; the same
:func:`check_rows` validates training rows and rows sent for prediction, so a value outside
the declared range or an unseen category is reported with its column and row everywhere.

Error messages name files, columns and row numbers only, never values.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from medlearn.errors import ConfigError, DataNotFoundError, DataValidationError

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData

__all__ = [
    "ColumnSpec",
    "TargetRule",
    "check_rows",
    "infer_schema",
    "load_schema",
    "parse_target",
    "read_table",
    "read_tabular",
]

log = logging.getLogger(__name__)

ColumnType = Literal["numeric", "categorical", "binary"]
#: Cell texts read as missing in every table (plus ``na_values`` from the options).
DEFAULT_NA: tuple[str, ...] = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
#: Reader options accepted in ``data.options`` (and catalog ``reader_options``).
OPTIONS: tuple[str, ...] = (
    "columns",
    "patient_id",
    "features",
    "schema",
    "na_values",
    "target",
    "delimiter",
    "header",
)
_TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".data", ".parquet", ".pq", ".arff")
_MAX_SHOWN = 10


# --- schema -----------------------------------------------------------------------------------


@dataclass
class ColumnSpec:
    """What one column may hold.

    Attributes:
        type: ``numeric``, ``categorical`` or ``binary``.
        unit: free text shown in reports (``"mm Hg"``).
        min: smallest allowed value (numeric columns).
        max: largest allowed value (numeric columns).
        levels: allowed categories (categorical / binary), as strings; ``None`` = learned
            from the training rows.
    """

    type: ColumnType = "numeric"
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    levels: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        return asdict(self)


def _spec_from_mapping(name: str, raw: Any, where: str) -> ColumnSpec:
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: the schema of column {name!r} must be a mapping (type, unit, min, max, "
            f"levels) or a type name. Got {type(raw).__name__}."
        )
    unknown = sorted(set(raw) - {"type", "unit", "min", "max", "levels"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown schema keys for column {name!r}: {', '.join(unknown)}. "
            "Accepted: type, unit, min, max, levels."
        )
    kind = raw.get("type", "numeric")
    if kind not in ("numeric", "categorical", "binary"):
        raise ConfigError(
            f"{where}: column {name!r} has type {kind!r}; allowed: numeric, categorical, binary."
        )
    levels = raw.get("levels")
    if levels is not None:
        if not isinstance(levels, (list, tuple)) or not levels:
            raise ConfigError(f"{where}: 'levels' of column {name!r} must be a non-empty list.")
        levels = [_level(v) for v in levels]
    if kind == "binary" and levels is not None and len(levels) != 2:
        raise ConfigError(f"{where}: binary column {name!r} needs exactly 2 levels.")
    bounds = {}
    for key in ("min", "max"):
        value = raw.get(key)
        if value is not None:
            try:
                bounds[key] = float(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{where}: '{key}' of column {name!r} must be a number."
                ) from None
    if bounds.get("min") is not None and bounds.get("max") is not None:
        if bounds["min"] > bounds["max"]:
            raise ConfigError(f"{where}: column {name!r} has min > max.")
    return ColumnSpec(
        type=kind,
        unit=raw.get("unit"),
        min=bounds.get("min"),
        max=bounds.get("max"),
        levels=levels,
    )


def load_schema(schema: Any, *, where: str = "data.options.schema") -> dict[str, ColumnSpec]:
    """Parse a schema: a mapping ``column -> {type, unit, min, max, levels}`` or a YAML path.

    Raises:
        ConfigError: for a missing file or malformed entries.
    """
    if schema is None:
        return {}
    if isinstance(schema, (str, Path)):
        import yaml

        path = Path(schema).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{where}: schema file {str(path)!r} does not exist.",
                hint="Give an inline mapping or the path of a YAML schema file.",
            )
        schema = yaml.safe_load(path.read_text()) or {}
        where = str(path)
    if not isinstance(schema, Mapping):
        raise ConfigError(f"{where}: a schema must map column names to specs.")
    return {str(k): _spec_from_mapping(str(k), v, where) for k, v in schema.items()}


def _level(value: Any) -> str:
    """The canonical string of a category (``1.0`` and ``1`` are the same level)."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer() and re.fullmatch(r"[+-]?\d+(\.0*)?", text):
        return str(int(number))
    return text


def _numeric(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def infer_schema(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, ColumnSpec]:
    """Guess a :class:`ColumnSpec` per column: numbers → ``numeric`` (two distinct values →
    ``binary``), text → ``categorical`` (two distinct values → ``binary``)."""
    out: dict[str, ColumnSpec] = {}
    for col in columns:
        values = frame[col].dropna()
        as_num = _numeric(values)
        distinct = {_level(v) for v in values}
        if len(values) and as_num.notna().all():
            out[col] = ColumnSpec(type="binary" if len(distinct) == 2 else "numeric")
        else:
            out[col] = ColumnSpec(type="binary" if len(distinct) == 2 else "categorical")
    return out


# --- target expressions -----------------------------------------------------------------------

_EXPR = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|>=|<=|>|<|\bnot\s+in\b|\bin\b)\s*(.+?)\s*$")


@dataclass
class TargetRule:
    """A target column, optionally with a comparison that makes it a binary label.

    Attributes:
        column: the column holding the target.
        op: ``None`` (the column itself), or ``==``, ``!=``, ``>``, ``>=``, ``<``, ``<=``,
            ``in``, ``not in``.
        value: the right-hand side (a number, a string, or a list for ``in``).
        text: the expression as written.
    """

    column: str
    op: str | None = None
    value: Any = None
    text: str = ""

    def apply(self, series: pd.Series) -> pd.Series:
        """Binary labels (0/1 floats, NaN where the target is missing)."""
        missing = series.isna()
        if self.op in ("in", "not in"):
            wanted = {_level(v) for v in self.value}
            hit = series.map(lambda v: _level(v) in wanted if not pd.isna(v) else False)
            out = hit if self.op == "in" else ~hit
        else:
            number = _number_or_none(self.value)
            if number is not None and _numeric(series.dropna()).notna().all():
                left = _numeric(series)
                right: Any = number
            elif self.op in ("==", "!="):
                left, right = (
                    series.map(lambda v: _level(v) if not pd.isna(v) else v),
                    _level(self.value),
                )
            else:
                raise DataValidationError(
                    f"Target expression {self.text!r} compares column {self.column!r} with a "
                    "number, but the column holds text.",
                    hint="Use == / != / in for text columns.",
                )
            ops = {
                "==": lambda a, b: a == b,
                "!=": lambda a, b: a != b,
                ">": lambda a, b: a > b,
                ">=": lambda a, b: a >= b,
                "<": lambda a, b: a < b,
                "<=": lambda a, b: a <= b,
            }
            out = ops[str(self.op)](left, right)
        return out.astype(float).where(~missing)


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_target(text: str) -> TargetRule:
    """Parse ``column`` or ``column OP value`` without ``eval``.

    Supported: ``num > 0``, ``col >= 2``, ``col == 'yes'``, ``col != x``, ``col in [a, b]``,
    ``col not in [a, b]``. Values are numbers, quoted or bare words.

    Raises:
        ConfigError: if the text is neither a column name nor such a comparison.
    """
    text = str(text).strip()
    if re.fullmatch(r"[A-Za-z_][\w .\-]*", text) and not _EXPR.match(text):
        return TargetRule(column=text, text=text)
    m = _EXPR.match(text)
    if not m:
        raise ConfigError(
            f"data.target {text!r} is neither a column name nor a comparison.",
            hint="Use a column name or e.g. 'num > 0', \"smoker == 'yes'\", 'stage in [3, 4]'.",
        )
    column, op, rhs = m.group(1), re.sub(r"\s+", " ", m.group(2)), m.group(3)
    if op in ("in", "not in"):
        if not (rhs.startswith("[") and rhs.endswith("]")):
            raise ConfigError(
                f"data.target {text!r}: '{op}' needs a list like [a, b].",
                hint="For example 'stage in [3, 4]'.",
            )
        inner = rhs[1:-1].strip()
        items = (
            [_literal(x) for x in next(csv.reader([inner], skipinitialspace=True))] if inner else []
        )
        if not items:
            raise ConfigError(f"data.target {text!r}: the list is empty.")
        value: Any = items
    else:
        value = _literal(rhs)
        if isinstance(value, str) and op in (">", ">=", "<", "<="):
            raise ConfigError(f"data.target {text!r}: '{op}' needs a number on the right.")
    return TargetRule(column=column, op=op, value=value, text=text)


# --- reading tables ---------------------------------------------------------------------------


def _read_arff(path: Path, na: set[str]) -> pd.DataFrame:
    """A small ARFF reader tolerant of the UCI CKD file's quirks (stray tabs and commas)."""
    names: list[str] = []
    rows: list[list[str]] = []
    in_data = False
    bad: list[int] = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        if not in_data:
            low = stripped.lower()
            if low.startswith("@attribute"):
                m = re.match(r"@attribute\s+('([^']*)'|\"([^\"]*)\"|(\S+))", stripped, re.I)
                if not m:
                    raise DataValidationError(f"{path}: line {lineno}: malformed @attribute.")
                names.append(next(g for g in m.groups()[1:] if g is not None))
            elif low.startswith("@data"):
                in_data = True
            continue
        fields = [f.strip().strip("'\"") for f in stripped.split(",")]
        while len(fields) > len(names) and "" in fields:
            # the UCI CKD file has stray empty fields (",," and trailing commas)
            idx = len(fields) - 1 if fields[-1] == "" else fields.index("")
            fields.pop(idx)
        if len(fields) != len(names):
            bad.append(lineno)
            continue
        rows.append(fields)
    if not names:
        raise DataValidationError(f"{path}: no @attribute lines; is this an ARFF file?")
    if bad:
        shown = ", ".join(str(b) for b in bad[:_MAX_SHOWN])
        raise DataValidationError(
            f"{path}: {len(bad)} data line(s) do not have {len(names)} fields (lines {shown}).",
            hint="Fix those lines; ARFF rows need one value per @attribute.",
        )
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    return frame.map(lambda v: None if v in na else v)


def read_table(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    na_values: Sequence[str] = (),
    delimiter: str | None = None,
    header: bool | None = None,
) -> pd.DataFrame:
    """Read a CSV / TSV / UCI ``.data`` / Parquet / ARFF table as strings with missing as None.

    Args:
        path: the file.
        columns: column names for a headerless file (the file then has no header line).
        na_values: extra cell texts meaning "missing" (``?`` and blanks always do).
        delimiter: the field separator (default: sniffed from the first lines).
        header: whether the first line is a header (default: yes unless ``columns`` is given).

    Returns:
        A frame with one column per table column (object dtype; cells are stripped strings,
        numbers for Parquet, or ``None``).

    Raises:
        DataNotFoundError: the file does not exist.
        DataValidationError: the file cannot be parsed, or ``columns`` does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"Table {str(path)!r} does not exist.", hint="Give the path of a CSV or Parquet file."
        )
    na = set(DEFAULT_NA) | {str(v) for v in na_values}
    suffix = path.suffix.lower()
    if suffix == ".arff":
        frame = _read_arff(path, na)
    elif suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types
            raise DataValidationError(
                f"{path}: not a readable Parquet file ({type(exc).__name__})."
            ) from None
        frame = frame.astype(object).where(frame.notna(), None)
        frame = frame.map(lambda v: None if v is None or str(v).strip() in na else v)
    else:
        text = path.read_text(errors="replace")
        if not text.strip():
            raise DataValidationError(f"{path}: the file is empty.")
        if delimiter is None:
            sample = "\n".join(text.splitlines()[:20])
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t| ").delimiter
            except csv.Error:
                delimiter = ","
        has_header = header if header is not None else columns is None
        try:
            frame = pd.read_csv(
                io.StringIO(text),
                sep=delimiter,
                header=0 if has_header else None,
                dtype=str,
                keep_default_na=False,
                skipinitialspace=True,
                skip_blank_lines=True,
                engine="python" if delimiter == " " else "c",
            )
        except (pd.errors.ParserError, ValueError) as exc:
            raise DataValidationError(
                f"{path}: cannot be parsed as a delimited table ({str(exc).splitlines()[0]}).",
                hint="Check the delimiter (data.options.delimiter) and quoting.",
            ) from None
        frame.columns = [str(c).strip() for c in frame.columns]
        frame = frame.map(lambda v: None if v is None or v.strip() in na else v.strip())
    if columns is not None:
        columns = [str(c) for c in columns]
        if len(columns) != frame.shape[1]:
            raise DataValidationError(
                f"{path}: data.options.columns names {len(columns)} columns but the file has "
                f"{frame.shape[1]}.",
                hint="Give one name per column (the .names file of a UCI dataset lists them).",
            )
        frame.columns = columns
    if len(set(frame.columns)) != frame.shape[1]:
        raise DataValidationError(f"{path}: the header repeats a column name.")
    return frame.reset_index(drop=True)


# --- row checks -------------------------------------------------------------------------------


@dataclass
class RowProblem:
    """One bad cell: which row and column and what is wrong (never the value)."""

    row: int
    column: str
    problem: str

    def text(self) -> str:
        return f"row {self.row}: column {self.column!r} {self.problem}"


def check_rows(
    frame: pd.DataFrame,
    schema: Mapping[str, ColumnSpec],
    features: Sequence[str],
    *,
    row_numbers: Sequence[int] | None = None,
    strict_levels: bool = True,
) -> tuple[pd.DataFrame, list[RowProblem]]:
    """Convert and validate feature cells against ``schema``.

    Numeric columns become floats (NaN for missing); categorical and binary columns become
    canonical strings (None for missing).

    Args:
        frame: the raw table (strings / numbers / None).
        schema: a spec per feature.
        features: the feature columns, in model order.
        row_numbers: the row number reported for each frame row (default 1, 2, ...).
        strict_levels: refuse categories outside ``spec.levels`` (when levels are known).

    Returns:
        The converted feature frame (same index) and every problem found.
    """
    rows = list(row_numbers) if row_numbers is not None else list(range(1, len(frame) + 1))
    out: dict[str, pd.Series] = {}  # one frame built at the end (column inserts cost more)
    problems: list[RowProblem] = []
    for col in features:
        spec = schema[col]
        raw = (
            frame[col]
            if col in frame.columns
            else pd.Series([None] * len(frame), index=frame.index)
        )
        if spec.type == "numeric":
            values = _numeric(raw)
            non_numeric = raw.notna() & values.isna()
            for pos in np.flatnonzero(non_numeric.to_numpy()):
                problems.append(RowProblem(rows[pos], col, "is not a number (numeric declared)"))
            finite = values.to_numpy(dtype=float)
            if spec.min is not None:
                for pos in np.flatnonzero(finite < spec.min):
                    problems.append(
                        RowProblem(rows[pos], col, f"is below the allowed minimum {spec.min:g}")
                    )
            if spec.max is not None:
                for pos in np.flatnonzero(finite > spec.max):
                    problems.append(
                        RowProblem(rows[pos], col, f"is above the allowed maximum {spec.max:g}")
                    )
            out[col] = values.astype(float)
        else:
            levels = raw.map(
                lambda v: (
                    None if v is None or (isinstance(v, float) and math.isnan(v)) else _level(v)
                )
            )
            if strict_levels and spec.levels is not None:
                allowed = set(spec.levels)
                unseen = np.array([v is not None and v not in allowed for v in levels], dtype=bool)
                for pos in np.flatnonzero(unseen):
                    problems.append(
                        RowProblem(
                            rows[pos],
                            col,
                            "has a category not seen in training and not among the declared levels",
                        )
                    )
            out[col] = levels.astype(object)
    problems.sort(key=lambda p: (p.row, features.index(p.column)))
    return pd.DataFrame(out, index=frame.index), problems


def raise_problems(problems: Sequence[RowProblem], source: str) -> None:
    """Raise one :class:`DataValidationError` listing (up to 10 of) ``problems``."""
    if not problems:
        return
    shown = "; ".join(p.text() for p in problems[:_MAX_SHOWN])
    more = f" (and {len(problems) - _MAX_SHOWN} more)" if len(problems) > _MAX_SHOWN else ""
    raise DataValidationError(
        f"{source}: {len(problems)} bad value(s): {shown}{more}.",
        hint="Fix those cells, mark them missing, or widen data.options.schema.",
    )


# --- the reader -------------------------------------------------------------------------------


def _band(name: str, values: pd.Series) -> pd.Series:
    """Decade bands for age-like columns, tertiles otherwise."""
    num = _numeric(values)
    if "age" in name.lower():
        return num.map(
            lambda v: None if pd.isna(v) else f"{int(v // 10) * 10}-{int(v // 10) * 10 + 9}"
        )
    valid = num.dropna()
    if valid.nunique() < 3:
        return num.map(lambda v: None if pd.isna(v) else _level(v))
    q1, q2 = np.quantile(valid, [1 / 3, 2 / 3])
    return num.map(
        lambda v: None if pd.isna(v) else ("T1" if v <= q1 else "T2" if v <= q2 else "T3")
    )


def _json_value(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def read_tabular(path: str | Path, cfg: RunConfig | None = None, **options: Any) -> LoadedData:
    """Read a clinical table into records (READERS name ``"tabular"``).

    Options come from the catalog entry, then ``cfg.data.options`` (which win), then keyword
    arguments: ``columns`` (names for headerless files), ``patient_id`` (column; default the
    row number), ``features`` (default all but target and id), ``schema`` (mapping or YAML
    path), ``na_values``, ``delimiter``, ``header``, and ``target`` (used when the run file
    keeps the default ``data.target: label`` and the table has no ``label`` column).

    Records: ``id`` ``"row<N>"`` (N = 1-based data row), ``patient_id``, ``input`` = dict of
    feature values (floats for numeric, strings for categories, None for missing), ``target``
    = class index (classification) or float (regression), ``meta`` = the columns named in
    ``cfg.evaluation.subgroups`` (and ``data.split.group_by``), numeric ones also as
    ``<col>_band``.

    Raises:
        ConfigError: unknown options, unknown columns, a malformed target expression.
        DataValidationError: values outside the declared schema (naming column and row).
    """
    from medlearn.data import LoadedData, make_record

    path = Path(path)
    opts = dict(options)
    if cfg is not None:
        opts.update(cfg.data.options)
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"Unknown data.options for tabular data: {', '.join(unknown)}. "
            f"Accepted: {', '.join(OPTIONS)}."
        )
    frame = read_table(
        path,
        columns=opts.get("columns"),
        na_values=opts.get("na_values") or (),
        delimiter=opts.get("delimiter"),
        header=opts.get("header"),
    )
    task = cfg.task if cfg is not None else "binary"
    target_text = cfg.data.target if cfg is not None else opts.get("target", "label")
    if target_text == "label" and "label" not in frame.columns and opts.get("target"):
        target_text = str(opts["target"])
    rule = parse_target(target_text)
    columns = list(frame.columns)

    def need(col: str, what: str) -> None:
        if col not in columns:
            import difflib

            close = difflib.get_close_matches(col, columns, n=1)
            raise ConfigError(
                f"{path}: {what} names column {col!r}, which the table does not have"
                + (f"; did you mean {close[0]!r}?" if close else ".")
                + f" Columns: {', '.join(columns[:30])}.",
                hint="Check the spelling, or name headerless columns with data.options.columns.",
            )

    need(rule.column, "data.target")
    pid_col = opts.get("patient_id")
    if pid_col:
        need(pid_col, "data.options.patient_id")
    features = opts.get("features")
    if features is None:
        features = [c for c in columns if c not in (rule.column, pid_col)]
    else:
        features = [str(f) for f in features]
        for f in features:
            need(f, "data.options.features")
        if rule.column in features:
            raise ConfigError(f"{path}: the target column {rule.column!r} is also a feature.")
    if not features:
        raise ConfigError(f"{path}: no feature columns left.", hint="Set data.options.features.")
    declared = load_schema(opts.get("schema"))
    for col in declared:
        if col not in columns:
            need(col, "data.options.schema")
    inferred = infer_schema(frame, [f for f in features if f not in declared])
    schema = {f: declared.get(f) or inferred[f] for f in features}

    # target
    rows = np.arange(1, len(frame) + 1)
    if rule.op is not None:
        if task not in ("binary",):
            raise ConfigError(
                f"data.target {rule.text!r} is a comparison, which gives a binary label, but "
                f"task is {task!r}.",
                hint="Set task: binary, or name a column as the target.",
            )
        y = rule.apply(frame[rule.column])
        classes: list[str] | None = [f"not ({rule.text})", rule.text]
    elif task == "regression":
        raw = frame[rule.column]
        y = _numeric(raw)
        non_num = raw.notna() & y.isna()
        if non_num.any():
            bad = ", ".join(str(r) for r in rows[non_num.to_numpy()][:_MAX_SHOWN])
            raise DataValidationError(
                f"{path}: target column {rule.column!r} is not a number in "
                f"{int(non_num.sum())} row(s) (rows {bad}).",
                hint="A regression target must be numeric.",
            )
        classes = None
    else:
        raw = frame[rule.column]
        lv = raw.map(lambda v: None if v is None else _level(v))
        found = sorted({v for v in lv.dropna()}, key=_sort_key)
        if task == "binary" and len(found) != 2:
            raise DataValidationError(
                f"{path}: task is binary but target column {rule.column!r} has "
                f"{len(found)} distinct values.",
                hint="Use a comparison such as 'num > 0' as data.target, or task: multiclass.",
            )
        classes = found
        index = {c: i for i, c in enumerate(found)}
        y = lv.map(lambda v: np.nan if v is None else float(index[v]))
    missing_target = y.isna().to_numpy()
    if missing_target.all():
        raise DataValidationError(f"{path}: every row lacks the target {rule.column!r}.")
    if missing_target.any():
        log.warning(
            "%s: %d row(s) without a target value were left out",
            path.name,
            int(missing_target.sum()),
        )

    # features: validate against the schema (training data must respect declared ranges)
    keep = ~missing_target
    converted, problems = check_rows(
        frame.loc[keep], schema, features, row_numbers=rows[keep].tolist()
    )
    raise_problems(problems, str(path))

    group_by = cfg.data.split.group_by if cfg is not None else None
    meta_cols = list(cfg.evaluation.subgroups) if cfg is not None else []
    if group_by and group_by not in meta_cols:
        meta_cols.append(group_by)
    base_cols: list[str] = []
    for col in meta_cols:
        base = col[: -len("_band")] if col.endswith("_band") and col not in columns else col
        need(base, "evaluation.subgroups / data.split.group_by")
        if base not in base_cols:
            base_cols.append(base)
    bands = {
        f"{col}_band": _band(col, frame[col])
        for col in base_cols
        if frame[col].notna().any() and _numeric(frame[col].dropna()).notna().all()
    }

    records = []
    pids = frame[pid_col] if pid_col else None
    for pos in np.flatnonzero(keep):
        row_no = int(rows[pos])
        inputs = {f: _json_value(converted.at[frame.index[pos], f]) for f in features}
        meta: dict[str, Any] = {"row": row_no}
        for col in base_cols:
            raw_v = frame.at[frame.index[pos], col]
            num = pd.to_numeric(pd.Series([raw_v]), errors="coerce").iloc[0]
            meta[col] = None if raw_v is None else (float(num) if not pd.isna(num) else raw_v)
        for key, series in bands.items():
            meta[key] = series.iloc[pos]
        target = y.iloc[pos]
        value: Any = float(target) if task == "regression" else int(target)
        pid = None
        if pids is not None:
            pid_val = pids.iloc[pos]
            if pid_val is None:
                raise DataValidationError(
                    f"{path}: row {row_no} has no value in patient_id column {pid_col!r}.",
                    hint="Every row needs a patient id, or drop data.options.patient_id.",
                )
            pid = _level(pid_val)
        records.append(make_record(f"row{row_no}", inputs, value, patient_id=pid, meta=meta))
    info = {
        "kind": "tabular",
        "features": list(features),
        "schema": {f: schema[f].to_dict() for f in features},
        "target": rule.text,
        "rows": len(frame),
        "rows_without_target": int(missing_target.sum()),
    }
    return LoadedData(records=records, classes=classes, source=str(path), info=info)


def _sort_key(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)

"""SMILES data: parsing and standardisation, the ``molecules`` reader, and cached graphs.

* :func:`parse_smiles` turns one SMILES string into an RDKit molecule, its canonical
  (standardised) SMILES, or the reason it cannot be used.
* :func:`read_molecules` (READERS name ``"molecules"``) reads a CSV / Parquet table of SMILES
  and targets into records; every bad row is reported with its row number.
* :func:`read_smiles_inputs` reads SMILES for ``predict`` (strings, ``.smi`` or ``.csv``
  files): the good ones become records, each bad one a :class:`BadInput`.
* :func:`featurize` (from :mod:`medlearn.molecules._graph_cache`) turns canonical SMILES
  into :class:`~medlearn.molecules._featurize.MolGraph` objects, computed once and cached in
  memory and on disk (keyed by :data:`~medlearn.molecules._featurize.FEATURIZER_VERSION`).

Error messages name files, columns and row numbers, never molecule values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from medlearn._io import atomic_write_bytes
from medlearn.errors import ConfigError, DataNotFoundError, DataValidationError
from medlearn.molecules import _featurize
from medlearn.molecules._dedupe import DUPLICATE_POLICIES, find_duplicates, merge_targets
from medlearn.molecules._graph_cache import (
    _cache_root,
    clear_memory_cache,
    featurize,
    graph_cache_dir,
)
from medlearn.registry import READERS

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = [
    "BadInput",
    "ParsedSmiles",
    "clear_memory_cache",
    "featurize",
    "graph_cache_dir",
    "parse_smiles",
    "read_molecules",
    "read_smiles_inputs",
]

log = logging.getLogger(__name__)

_MAX_SHOWN = 20  # bad rows listed in one message


# --- parsing and standardisation ----------------------------------------------------------------

FragmentPolicy = Literal["largest", "keep", "error"]


class ParsedSmiles(NamedTuple):
    """One parsed SMILES: the molecule, its canonical SMILES, or why it cannot be used.

    Attributes:
        mol: the (standardised) RDKit molecule, or ``None`` when ``problem`` is set.
        canonical: its canonical isomeric SMILES, ``""`` when ``problem`` is set.
        problem: ``None``, or a short reason (no molecule values in it).
    """

    mol: Any
    canonical: str
    problem: str | None


@dataclass
class _Parsed:
    mol: Any = None
    canonical: str = ""
    problem: str | None = None
    changes: list[str] = field(default_factory=list)


def _rdkit() -> Any:
    from rdkit import Chem

    return Chem


def _syntax_or_chemistry_problem(text: str) -> str:
    """Why RDKit refused ``text``: a syntax error, or the first sanitisation problem."""
    Chem = _rdkit()
    raw = Chem.MolFromSmiles(text, sanitize=False)
    if raw is None:
        return "unparseable SMILES (syntax error)"
    try:
        problems = Chem.DetectChemistryProblems(raw)
    except Exception:  # noqa: BLE001 - RDKit raises many kinds here
        problems = ()
    if problems:
        p = problems[0]
        kind = p.GetType()
        if kind == "AtomValenceException":
            atom = raw.GetAtomWithIdx(p.GetAtomIdx())
            return f"invalid valence on atom {p.GetAtomIdx() + 1} ({atom.GetSymbol()})"
        if kind == "AtomKekulizeException" or kind == "KekulizeException":
            return "aromatic ring cannot be kekulized"
        return f"invalid chemistry ({kind})"
    return "unparseable SMILES"


_QUERIES: dict[str, Any] = {}


def _query(smarts: str) -> Any:
    """A compiled SMARTS query, memoised."""
    q = _QUERIES.get(smarts)
    if q is None:
        q = _QUERIES[smarts] = _rdkit().MolFromSmarts(smarts)
    return q


def _outside(mol: Any, elements: Sequence[int]) -> list[str]:
    """Sorted symbols of the atoms of ``mol`` outside ``elements`` (a fast SMARTS pre-check)."""
    allowed = set(elements)
    banned = [z for z in range(0, 119) if z not in allowed]
    if not banned or not mol.HasSubstructMatch(
        _query(",".join(f"#{z}" for z in banned).join("[]"))
    ):
        return []
    return sorted({a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() not in allowed})


_TOOLS: dict[str, Any] = {}


def _tool(name: str) -> Any:
    """A reusable RDKit standardiser (``largest`` fragment chooser or ``uncharger``)."""
    tool = _TOOLS.get(name)
    if tool is None:
        from rdkit.Chem.MolStandardize import rdMolStandardize

        if name == "largest":
            tool = rdMolStandardize.LargestFragmentChooser(preferOrganic=True)
        else:
            tool = rdMolStandardize.Uncharger()
        _TOOLS[name] = tool
    return tool


def _standardize(
    mol: Any, text: str, *, standardize: bool, fragments: FragmentPolicy
) -> tuple[Any, list[str], str | None]:
    """Apply the fragment policy and (optionally) neutralisation.

    Returns:
        ``(mol, changes, problem)``: ``changes`` lists what was done
        (``"fragments_removed"``, ``"charges_neutralised"``); ``problem`` is set for a
        refused multi-fragment input.
    """
    changes: list[str] = []
    n_frags = len(_rdkit().GetMolFrags(mol)) if "." in text else 1
    if n_frags > 1:
        if fragments == "error":
            return None, changes, f"{n_frags} disconnected fragments (a salt or mixture)"
        if fragments == "largest":
            mol = _tool("largest").choose(mol)
            changes.append("fragments_removed")
    if standardize:
        charged = _query("[!+0]")
        before = len(mol.GetSubstructMatches(charged))
        if before:
            mol = _tool("uncharger").uncharge(mol)
            if len(mol.GetSubstructMatches(charged)) != before:
                changes.append("charges_neutralised")
    return mol, changes, None


def _parse(
    text: Any,
    *,
    standardize: bool = True,
    fragments: FragmentPolicy = "largest",
    elements: Sequence[int] = _featurize.DEFAULT_ELEMENTS,
) -> _Parsed:
    """Parse, standardise and check one SMILES (see :func:`parse_smiles`)."""
    from rdkit import rdBase

    if text is None or (isinstance(text, float) and np.isnan(text)):
        return _Parsed(problem="empty SMILES")
    text = str(text).strip()
    if not text:
        return _Parsed(problem="empty SMILES")
    Chem = _rdkit()
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            return _Parsed(problem=_syntax_or_chemistry_problem(text))
        if mol.GetNumAtoms() == 0:
            return _Parsed(problem="SMILES has no atoms")
        mol, changes, problem = _standardize(
            mol, text, standardize=standardize, fragments=fragments
        )
        if problem:
            return _Parsed(problem=problem, changes=changes)
        bad = _outside(mol, elements)
        if bad:
            return _Parsed(
                problem=f"element(s) {', '.join(bad)} outside the featuriser's element set "
                "(H to Rn)",
                changes=changes,
            )
        canonical = Chem.MolToSmiles(mol)
        if Chem.MolFromSmiles(canonical) is None:
            # Neutralising can leave a molecule RDKit cannot write back (a metallocene's
            # cyclopentadienyl ring, [SbH6+3] → [SbH9]): keep the charged form instead.
            if standardize:
                return _parse(text, standardize=False, fragments=fragments, elements=elements)
            return _Parsed(
                problem="its canonical SMILES does not parse back (RDKit round trip failed)",
                changes=changes,
            )
    return _Parsed(mol=mol, canonical=canonical, changes=changes)


def parse_smiles(
    text: Any, *, standardize: bool = True, fragments: FragmentPolicy = "largest"
) -> ParsedSmiles:
    """Parse and standardise one SMILES string.

    Args:
        text: the SMILES (surrounding whitespace is ignored; ``None`` / NaN / ``""`` count
            as empty).
        standardize: neutralise charges where a neutral form exists (RDKit ``Uncharger``).
        fragments: for inputs of several disconnected fragments (salts, mixtures):
            ``"largest"`` keeps the largest organic fragment, ``"keep"`` keeps all,
            ``"error"`` refuses the molecule.

    Returns:
        A :class:`ParsedSmiles` ``(mol, canonical, problem)``; ``problem`` is ``None`` when
        the molecule is usable and otherwise says why not (empty, syntax error, invalid
        valence, several fragments, an element outside the featuriser's set).

    Example:
        >>> parse_smiles("OCC.[Na+].[Cl-]").canonical
        'CCO'
        >>> parse_smiles("C1CC").problem
        'unparseable SMILES (syntax error)'
    """
    p = _parse(text, standardize=standardize, fragments=fragments)
    return ParsedSmiles(p.mol, p.canonical, p.problem)


def scaffold_of(mol: Any) -> str:
    """The Bemis–Murcko scaffold SMILES of ``mol`` (``""`` for acyclic molecules)."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    try:
        return str(MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False))
    except Exception:  # noqa: BLE001 - RDKit raises on odd valences after stripping
        return ""


def molecule_id(canonical: str) -> str:
    """The ``patient_id`` of a molecule: the first 16 hex chars of sha1(canonical SMILES)."""
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:16]


# --- reading tables of SMILES --------------------------------------------------------------------

#: Reader options accepted in ``data.options`` (and catalog ``reader_options``).
OPTIONS: tuple[str, ...] = (
    "smiles_column",
    "target",
    "standardize",
    "fragments",
    "on_error",
    "union_datasets",
    "duplicates",
    "descriptor_targets",
)
#: Column names taken as the SMILES column (compared lower-case), in order of preference.
SMILES_NAMES: tuple[str, ...] = (
    "smiles",
    "canonical_smiles",
    "isomeric_smiles",
    "smile",
    "smiles_string",
    "mol",
    "molecule",
    "structure",
)
_NA = {"", "nan", "NaN", "NA", "N/A", "na", "null", "NULL", "None", "none", "?"}
_TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".smi", ".parquet", ".pq", ".gz")
_PARSED: dict[tuple[str, bool, str], tuple[str, str, int, str | None, tuple[str, ...]]] = {}


@dataclass
class _Row:
    """One parsed input row (no RDKit object kept)."""

    row: int
    canonical: str = ""
    scaffold: str = ""
    n_heavy: int = 0
    problem: str | None = None
    changes: tuple[str, ...] = ()


def _parse_cached(text: Any, standardize: bool, fragments: FragmentPolicy) -> _Row:
    """:func:`_parse` plus scaffold and size, memoised per (text, options) for the process."""
    key = ("" if text is None else str(text).strip(), bool(standardize), str(fragments))
    hit = _PARSED.get(key)
    if hit is None:
        p = _parse(key[0], standardize=standardize, fragments=fragments)
        if p.problem is None:
            scaffold, n_heavy = scaffold_of(p.mol), int(p.mol.GetNumHeavyAtoms())
        else:
            scaffold, n_heavy = "", 0
        hit = (p.canonical, scaffold, n_heavy, p.problem, tuple(p.changes))
        _PARSED[key] = hit
    canonical, scaffold, n_heavy, problem, changes = hit
    return _Row(0, canonical, scaffold, n_heavy, problem, changes)


def _read_frame(path: Path) -> Any:
    """A table as a DataFrame of strings (CSV/TSV/Parquet) or one ``smiles`` column (.smi)."""
    import pandas as pd

    if not path.is_file():
        raise DataNotFoundError(
            f"{path}: no such file.", hint="Give the path of a CSV, Parquet or .smi file."
        )
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
            return frame.map(
                lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            )
        if name.endswith((".smi", ".smi.gz")):
            return _read_smi(path)
        sep = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataValidationError(
            f"{path}: cannot be read as a table ({type(exc).__name__}).",
            hint="Give a comma-separated CSV with a header line, a Parquet file or a .smi file.",
        ) from exc


def _read_smi(path: Path) -> Any:
    """A ``.smi`` file: one SMILES per line (optionally followed by a name); no header."""
    import gzip

    import pandas as pd

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        lines = fh.read().splitlines()
    first = [ln.split()[0] if ln.split() else "" for ln in lines]
    if first and first[0].lower() in SMILES_NAMES:  # a header line after all
        first = first[1:]
    return pd.DataFrame({"smiles": first}, dtype=object)


def _find_smiles_column(frame: Any, path: Path, named: str | None) -> str:
    """The SMILES column: ``named``, a conventionally named one, or the one that parses."""
    columns = [str(c) for c in frame.columns]
    if named:
        if named not in columns:
            raise _unknown_column(path, named, columns, "data.options.smiles_column")
        return named
    lower = {c.lower(): c for c in columns}
    for name in SMILES_NAMES:
        if name in lower:
            return lower[name]
    for c in columns:
        if "smiles" in c.lower():
            return c
    from rdkit import rdBase

    Chem = _rdkit()
    best, best_frac = None, 0.0
    with rdBase.BlockLogs():
        for c in columns:
            values = [v.strip() for v in frame[c].astype(str).head(200) if v.strip() not in _NA]
            values = values[:50]
            if not values or all(_is_number(v) for v in values):
                continue
            frac = sum(Chem.MolFromSmiles(v) is not None for v in values) / len(values)
            if frac > best_frac:
                best, best_frac = c, frac
    if best is None or best_frac < 0.6:
        raise DataValidationError(
            f"{path}: no SMILES column found among {', '.join(columns[:30])} (none is named "
            "like 'smiles' and none holds mostly valid SMILES).",
            hint="Name the column with data.options.smiles_column.",
        )
    return best


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unknown_column(path: Path, col: str, columns: list[str], what: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(col, columns, n=1)
    return ConfigError(
        f"{path}: {what} names column {col!r}, which the table does not have"
        + (f"; did you mean {close[0]!r}?" if close else ".")
        + f" Columns: {', '.join(columns[:30])}.",
        hint="Check the spelling (column names are case-sensitive).",
    )


def _target_names(
    frame: Any, path: Path, smiles_col: str, cfg: RunConfig | None, opts: dict[str, Any]
) -> list[str]:
    """The target columns: ``cfg.data.target`` or the catalog default, validated."""
    columns = [str(c) for c in frame.columns]
    task = cfg.task if cfg is not None else None
    if task == "generation" or opts.get("union_datasets") or opts.get("descriptor_targets"):
        return []
    requested: Any = cfg.data.target if cfg is not None else opts.get("target", "label")
    if requested == "label" and "label" not in columns:
        if opts.get("target"):
            requested = opts["target"]
        elif cfg is None:
            return []
        else:
            others = [c for c in columns if c != smiles_col]
            raise ConfigError(
                f"{path}: data.target is 'label' (the default), which is not a column. "
                f"Columns besides the SMILES column {smiles_col!r}: "
                f"{', '.join(others[:30]) or '(none)'}.",
                hint="Set data.target to a column name or a list of them "
                "(e.g. target: [NR-AR, SR-p53]).",
            )
    names = [requested] if isinstance(requested, str) else [str(t) for t in requested]
    if not names:
        raise ConfigError(f"{path}: data.target is an empty list.", hint="Name a target column.")
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: data.target names a column twice.")
    for name in names:
        if name not in columns:
            raise _unknown_column(path, name, columns, "data.target")
        if name == smiles_col:
            raise ConfigError(f"{path}: data.target {name!r} is the SMILES column.")
    return names


def _target_matrix(frame: Any, names: list[str]) -> tuple[np.ndarray, dict[int, list[str]]]:
    """Targets as floats ``(n_rows, n_targets)`` (NaN = missing) and bad cells by row index."""
    import pandas as pd

    y = np.full((len(frame), len(names)), np.nan)
    bad: dict[int, list[str]] = {}
    for j, name in enumerate(names):
        text = frame[name].astype(str).str.strip()
        missing = text.isin(_NA).to_numpy()
        num = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=float)
        invalid = ~missing & ~np.isfinite(num)
        for i in np.flatnonzero(invalid):
            bad.setdefault(int(i), []).append(f"target {name!r} is not a finite number")
        y[:, j] = np.where(missing | invalid, np.nan, num)
    return y, bad


def _task_types(y: np.ndarray) -> list[str]:
    out = []
    for j in range(y.shape[1]):
        col = y[:, j][~np.isnan(y[:, j])]
        out.append(
            "classification" if len(col) and np.isin(col, (0.0, 1.0)).all() else "regression"
        )
    return out


def _check_task(path: Path, task: str | None, names: list[str], types: list[str], y: Any) -> None:
    """Refuse a run-file task that the targets cannot support."""
    if task is None or not names:
        return
    if task in ("segmentation", "survival"):
        raise ConfigError(
            f"task {task!r} is not available for molecules.",
            hint="Use task: regression, binary (one or several 0/1 targets), multilabel or "
            "generation.",
        )
    continuous = [n for n, t in zip(names, types, strict=True) if t == "regression"]
    if task in ("binary", "multilabel") and continuous:
        raise ConfigError(
            f"{path}: task is {task!r} but target(s) {', '.join(map(repr, continuous))} hold "
            "values other than 0 and 1.",
            hint="Set task: regression for continuous targets, or give 0/1 labels.",
        )
    if task == "multiclass":
        col = y[:, 0][~np.isnan(y[:, 0])] if len(names) == 1 else None
        if col is None or not np.all(col == np.round(col)) or col.min() < 0:
            raise ConfigError(
                f"{path}: task multiclass needs one target of integer class labels 0..K-1.",
                hint="Give one integer-labelled target, or use task: binary / regression.",
            )


def _problem_kind(problem: str) -> str:
    """A short stable name for counting problems in ``data_quality``."""
    for prefix, kind in (
        ("empty", "empty_smiles"),
        ("unparseable", "unparseable_smiles"),
        ("invalid valence", "invalid_valence"),
        ("aromatic", "kekulization_failed"),
        ("invalid chemistry", "invalid_chemistry"),
        ("SMILES has no atoms", "empty_smiles"),
        ("element", "unsupported_element"),
        ("target", "non_numeric_target"),
    ):
        if problem.startswith(prefix):
            return kind
    if "fragments" in problem:
        return "multiple_fragments"
    return "other"


def _bad_rows_message(path: Path, bad: list[tuple[int, str]], total: int) -> str:
    """One message listing every bad row number, grouped by problem."""
    groups: dict[str, list[int]] = {}
    for row, problem in bad:
        groups.setdefault(problem, []).append(row)
    parts = []
    for problem, rows in groups.items():
        shown = ", ".join(str(r) for r in rows[:200])
        more = f" and {len(rows) - 200} more" if len(rows) > 200 else ""
        parts.append(f"{problem}: row{'s' if len(rows) > 1 else ''} {shown}{more}")
    return (
        f"{path}: {len(bad)} of {total} rows cannot be used (rows count data lines from 1, "
        "header excluded) — " + "; ".join(parts) + "."
    )


def _options(cfg: RunConfig | None, options: dict[str, Any]) -> dict[str, Any]:
    opts = dict(options)
    if cfg is not None:
        opts.update(cfg.data.options)
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"Unknown data.options for molecules: {', '.join(unknown)}. "
            f"Accepted: {', '.join(OPTIONS)}."
        )
    if opts.get("fragments", "largest") not in ("largest", "keep", "error"):
        raise ConfigError(
            "data.options.fragments must be 'largest' (keep the largest organic fragment), "
            f"'keep' or 'error'. Got {opts['fragments']!r}."
        )
    if opts.get("on_error", "raise") not in ("raise", "skip"):
        raise ConfigError(
            f"data.options.on_error must be 'raise' or 'skip'. Got {opts['on_error']!r}."
        )
    if opts.get("duplicates", "keep") not in DUPLICATE_POLICIES:
        raise ConfigError(
            "data.options.duplicates must be 'keep' (repeated molecules stay as separate rows, "
            "on one side of every split) or 'merge' (one record per molecule; conflicting class "
            f"labels become missing). Got {opts['duplicates']!r}."
        )
    if not isinstance(opts.get("descriptor_targets", False), bool):
        raise ConfigError(
            "data.options.descriptor_targets must be true or false. "
            f"Got {opts['descriptor_targets']!r}."
        )
    task = cfg.task if cfg is not None else None
    if opts.get("descriptor_targets") and task not in (None, "regression"):
        raise ConfigError(
            f"data.options.descriptor_targets makes the RDKit descriptors the regression "
            f"targets; task is {task!r}.",
            hint="Set task: regression for descriptor pretraining.",
        )
    if not isinstance(opts.get("standardize", True), bool):
        raise ConfigError(
            f"data.options.standardize must be true or false. Got {opts['standardize']!r}."
        )
    return opts


#: Bump when parsing / standardisation changes: cached parse results carry it.
PARSE_VERSION = "p2"  # p2: standardised SMILES must parse back
_PARSE_CACHE_MIN_ROWS = 500  # smaller tables are parsed again (fast enough)


def _parse_rows(
    texts: Sequence[Any], rows: Iterable[int], standardize: bool, fragments: FragmentPolicy
) -> list[_Row]:
    """Parse a column of SMILES; big columns are cached on disk by their content."""
    norm = ["" if t is None else str(t).strip() for t in texts]
    cached = False
    path = None
    if len(norm) >= _PARSE_CACHE_MIN_ROWS:
        path = _parse_cache_path(norm, standardize, fragments)
        cached = _load_parse_cache(path, norm, standardize, fragments)
    out = []
    for text, row in zip(norm, rows, strict=True):
        r = _parse_cached(text, standardize, fragments)
        r.row = row
        out.append(r)
    if path is not None and not cached:
        _save_parse_cache(path, out)
    return out


def _parse_cache_path(norm: list[str], standardize: bool, fragments: str) -> Path:
    import rdkit

    h = hashlib.sha1(f"{PARSE_VERSION}|{rdkit.__version__}|{standardize}|{fragments}\n".encode())
    h.update("\n".join(norm).encode("utf-8"))
    return _cache_root() / "molparse" / f"{h.hexdigest()}.json"


def _load_parse_cache(path: Path, norm: list[str], standardize: bool, fragments: str) -> bool:
    """Fill the memory parse cache from ``path``; ``False`` when missing or unreadable."""
    if not path.is_file():
        return False
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        if len(entries) != len(norm):
            raise ValueError("row count differs")
        for text, (canonical, scaffold, n_heavy, problem, changes) in zip(
            norm, entries, strict=True
        ):
            _PARSED[(text, standardize, fragments)] = (
                str(canonical),
                str(scaffold),
                int(n_heavy),
                None if problem is None else str(problem),
                tuple(str(c) for c in changes),
            )
    except (ValueError, TypeError, OSError) as exc:
        log.warning("parse cache file %s is unreadable (%s); parsing again", path.name, exc)
        return False
    return True


def _save_parse_cache(path: Path, rows: list[_Row]) -> None:
    entries = [[r.canonical, r.scaffold, r.n_heavy, r.problem, list(r.changes)] for r in rows]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(
            path, json.dumps(entries, separators=(",", ":")).encode("utf-8"), durable=False
        )
    except OSError as exc:
        log.warning("cannot write the parse cache %s (%s)", path.parent, type(exc).__name__)


def read_molecules(path: str | Path, cfg: RunConfig | None = None, **options: Any) -> LoadedData:
    """Read a table of SMILES (and targets) into records (READERS name ``"molecules"``).

    Options come from the catalog entry, then ``cfg.data.options`` (which win):

    * ``smiles_column``: the SMILES column (default: a column named like ``smiles`` /
      ``canonical_smiles`` / ``mol``, else the column whose values mostly parse as SMILES);
    * ``target``: the default target column(s), used when the run file keeps
      ``data.target: label`` and the table has no ``label`` column;
    * ``standardize`` (default ``true``): neutralise charges where possible;
    * ``fragments``: ``largest`` (default; salts and mixtures keep their largest organic
      fragment), ``keep`` or ``error`` (a multi-fragment input is a bad row);
    * ``on_error``: ``raise`` (default: one error listing every bad row) or ``skip`` (bad
      rows are left out, counted in ``info["data_quality"]`` and listed in
      ``info["skipped_rows"]``);
    * ``duplicates``: ``keep`` (default; rows holding the same standardised molecule stay
      separate records, on one side of every split) or ``merge`` (one record per molecule,
      see :mod:`medlearn.molecules._dedupe`; merged records list their rows in
      ``meta["rows"]``). Either way, molecules whose class labels conflict are counted in
      ``info["data_quality"]["duplicate_molecules"]``;
    * ``union_datasets``: catalog names whose SMILES are added (unique canonical SMILES of
      all of them, no targets; used for generation).
    * ``descriptor_targets`` (default ``false``): self-supervised pretraining targets. The
      table's target columns are ignored, repeated molecules are merged, and each molecule's
      RDKit 2D descriptors become its regression targets (``rdkit:<name>``; clipped at the
      0.5th/99.5th percentiles of this data, constant descriptors left out, a descriptor
      RDKit cannot compute is a missing label). A network trained on them initialises a
      property model through ``model.init_from``.

    Bad rows are empty or unparseable SMILES, invalid valences, multi-fragment inputs under
    ``fragments: error``, elements outside the featuriser's set, and non-numeric targets.
    Row numbers count data lines from 1 (header excluded). Rows whose targets are all
    missing are left out and counted.

    Records: ``id`` ``"row<N>"``, ``patient_id`` = first 16 hex chars of sha1(canonical
    SMILES) (duplicates stay together), ``input`` = canonical SMILES, ``target`` = float
    (regression), int 0/1 (binary), list of floats with NaN (several targets) or ``None``;
    ``meta`` = ``{"scaffold", "n_heavy_atoms"}``.

    Returns:
        :class:`~medlearn.data.LoadedData` with ``classes`` ``["negative", "positive"]`` for
        one binary target, and ``info``: ``targets``, ``task_types`` (one per target),
        ``task_type``, ``smiles_column``, ``standardization``, ``rows``, ``data_quality``,
        ``skipped_rows``.

    Raises:
        ConfigError: unknown options or columns, or a task the targets cannot support.
        DataValidationError: bad rows (with ``on_error: raise``), or no usable row.
    """
    from medlearn.data import LoadedData, make_record

    path = Path(path)
    opts = _options(cfg, options)
    standardize = bool(opts.get("standardize", True))
    fragments: FragmentPolicy = opts.get("fragments", "largest")
    frame = _read_frame(path)
    smiles_col = _find_smiles_column(frame, path, opts.get("smiles_column"))
    names = _target_names(frame, path, smiles_col, cfg, opts)
    y, bad_targets = _target_matrix(frame, names)
    parsed = _parse_rows(
        frame[smiles_col].tolist(), range(1, len(frame) + 1), standardize, fragments
    )
    sources = [path.name] * len(parsed)
    file_rows = list(range(1, len(parsed) + 1))
    for name in opts.get("union_datasets") or ():
        extra_path = _resolve_dataset(name)
        if extra_path.resolve() == path.resolve():
            continue
        extra = _read_frame(extra_path)
        col = _find_smiles_column(extra, extra_path, None)
        start = len(parsed)
        parsed += _parse_rows(
            extra[col].tolist(), range(start + 1, start + len(extra) + 1), standardize, fragments
        )
        sources += [extra_path.name] * len(extra)
        file_rows += list(range(1, len(extra) + 1))
    if len(y) < len(parsed):
        y = np.vstack([y, np.full((len(parsed) - len(y), len(names)), np.nan)])

    bad: list[tuple[int, str]] = []
    for i, r in enumerate(parsed):
        problems = ([r.problem] if r.problem else []) + bad_targets.get(i, [])
        bad += [(r.row, p) for p in problems]
    if bad and opts.get("on_error", "raise") == "raise":
        raise DataValidationError(
            _bad_rows_message(path, bad, len(parsed)),
            hint="Fix or remove those rows, or set data.options.on_error: skip to leave them "
            "out (they are counted in the data-quality report).",
        )
    bad_rows = {row for row, _ in bad}
    keep = [i for i, r in enumerate(parsed) if r.row not in bad_rows]
    types = _task_types(y[keep]) if names else []
    _check_task(path, cfg.task if cfg is not None else None, names, types, y[keep])

    class_tasks = [
        t == "classification" and (cfg is None or cfg.task != "regression") for t in types
    ]
    dup = find_duplicates([r.canonical for r in parsed], y, keep, class_tasks) if names else None
    merge = opts.get("duplicates", "keep") == "merge"
    merged_rows: dict[int, list[int]] = {}
    if dup is not None and dup.groups and merge:
        y = y.copy()
        for group in dup.groups:
            y[group[0]] = merge_targets(y[group], class_tasks)
            merged_rows[group[0]] = [parsed[i].row for i in group]
        later = {i for group in dup.groups for i in group[1:]}
        keep = [i for i in keep if i not in later]
    elif dup is not None and dup.conflicting:
        log.warning(
            "%s: %d molecule(s) appear in several rows with conflicting labels; set "
            "data.options.duplicates: merge to keep one record per molecule with the "
            "conflicting labels marked missing",
            path.name,
            len(dup.conflicting),
        )

    quality: dict[str, dict[str, int]] = {"standardised": {}, "skipped": {}, "labels": {}}
    # duplicates: same canonical SMILES in several rows (after standardisation)
    for r in parsed:
        if r.row not in bad_rows:
            for change in r.changes:
                quality["standardised"][change] = quality["standardised"].get(change, 0) + 1
    for _, problem in bad:
        kind = _problem_kind(problem)
        quality["skipped"][kind] = quality["skipped"].get(kind, 0) + 1

    records: list[Record] = []
    no_label: list[int] = []
    seen: dict[str, int] = {}
    multi = len(names) > 1
    classification = bool(types) and all(t == "classification" for t in types)
    # without targets (generation, descriptor pretraining), repeated molecules are merged
    dedupe = not names
    duplicates = 0
    conflicts_dropped = 0
    for i in keep:
        r = parsed[i]
        if r.canonical in seen:
            duplicates += 1
            if dedupe:
                continue
        seen.setdefault(r.canonical, r.row)
        target: Any = None
        if names:
            values = y[i]
            if np.isnan(values).all():
                if i in merged_rows:
                    conflicts_dropped += 1
                else:
                    no_label.append(r.row)
                continue
            if multi:
                target = [float(v) for v in values]
            elif classification and (cfg is None or cfg.task != "regression"):
                target = int(values[0])
            else:
                target = float(values[0])
        meta: dict[str, Any] = {"scaffold": r.scaffold, "n_heavy_atoms": r.n_heavy}
        if opts.get("union_datasets"):
            meta["source"] = sources[i]
        if i in merged_rows:
            meta["rows"] = merged_rows[i]
        records.append(
            make_record(
                f"row{r.row}", r.canonical, target, patient_id=molecule_id(r.canonical), meta=meta
            )
        )
    if no_label:
        quality["labels"]["rows_without_label"] = len(no_label)
        log.warning(
            "%s: %d row(s) without any target value were left out", path.name, len(no_label)
        )
    if multi and records:
        quality["labels"]["missing_labels"] = int(
            sum(np.isnan(np.asarray(rec["target"])).sum() for rec in records)
        )
    if duplicates:
        key = "repeats_merged" if dedupe else "repeats_kept_on_one_side"
        quality["duplicate_molecules"] = {key: duplicates}
    if dup is not None and dup.groups:
        repeats = quality.setdefault("duplicate_molecules", {})
        if merge:
            repeats["repeats_merged"] = dup.extra_rows
        if dup.conflicting:
            repeats["molecules_with_conflicting_labels"] = len(dup.conflicting)
        if conflicts_dropped:
            repeats["dropped_all_labels_conflicting"] = conflicts_dropped
    if bad:
        log.warning("%s: %d bad row(s) skipped (on_error: skip)", path.name, len(bad_rows))
    if not records:
        raise DataValidationError(
            f"{path}: no usable molecules ({len(parsed)} rows, {len(bad_rows)} bad, "
            f"{len(no_label)} without a target).",
            hint="Check the SMILES column and the targets.",
        )
    classes = None
    if names and not multi and classification and (cfg is None or cfg.task != "regression"):
        classes = ["negative", "positive"]
    if cfg is not None and cfg.task == "multiclass":
        labels = sorted({int(rec["target"]) for rec in records})
        classes = [str(v) for v in labels]
        index = {v: k for k, v in enumerate(labels)}
        for rec in records:
            rec["target"] = index[int(rec["target"])]
    task_type = None
    if types:
        task_type = types[0] if len(set(types)) == 1 else "mixed"
    info = {
        "kind": "molecules",
        "smiles_column": smiles_col,
        "targets": names,
        "task_types": types,
        "task_type": task_type,
        "standardization": {"standardize": standardize, "fragments": fragments},
        "rows": len(parsed),
        "molecules": len(records),
        "data_quality": {k: v for k, v in quality.items() if v},
        "skipped_rows": [{"row": row, "problem": p} for row, p in bad],
    }
    if opts.get("descriptor_targets"):
        _set_descriptor_targets(records, info)
    if opts.get("union_datasets"):
        info["union_datasets"] = list(opts["union_datasets"])
        for entry in info["skipped_rows"]:  # rows count through the files in turn
            entry["file"] = sources[entry["row"] - 1]
            entry["file_row"] = file_rows[entry["row"] - 1]
    return LoadedData(records=records, classes=classes, source=str(path), info=info)


def _set_descriptor_targets(records: list[Record], info: dict[str, Any]) -> None:
    """Make each record's RDKit descriptors its targets (``data.options.descriptor_targets``)."""
    from medlearn.molecules._features import descriptor_targets

    names, matrix = descriptor_targets([str(rec["input"]) for rec in records])
    # each record's targets are a row view of one array: lists of Python floats took ~330 MB
    # for the 52k x 202 MoleculeNet union, the array takes ~84 MB
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    matrix.flags.writeable = False  # rows are shared views: nothing may change one in place
    for rec, row in zip(records, matrix, strict=True):
        rec["target"] = row
    info.update(
        targets=names,
        task_types=["regression"] * len(names),
        task_type="regression",
        descriptor_targets=True,
    )
    missing = int(np.isnan(matrix).sum())
    if missing:
        info["data_quality"].setdefault("labels", {})["missing_labels"] = missing


def _resolve_dataset(name: str) -> Path:
    """The verified local file of catalog dataset ``name``."""
    from medlearn import catalog

    return catalog.resolve(str(name))


READERS.add(
    "molecules",
    read_molecules,
    run_config=True,
    multi_target=True,
    domain="molecules",
    description=(
        "SMILES tables (CSV/TSV/Parquet/.smi): SMILES column auto-detected or named, one or "
        "many targets with missing labels, RDKit standardisation, bad rows by row number."
    ),
)


# --- inputs for predict -----------------------------------------------------------------------


@dataclass(frozen=True)
class BadInput:
    """One input ``predict`` cannot use.

    Attributes:
        id: the id its record would have had (``input<K>`` or ``<file>:row<N>``).
        source: ``"input<K>"`` (the K-th argument, as in its prediction row's ``input``) or
            the file's path.
        row: the data row in the file (1-based, header excluded), ``None`` for arguments.
        input: the SMILES text as given (``""`` when empty or for an unreadable file).
        problem: why it cannot be used.
    """

    id: str
    source: str
    row: int | None
    input: str
    problem: str

    @property
    def message(self) -> str:
        """The :meth:`describe` text (the field :class:`medlearn.training.BadInput` has)."""
        return self.describe()

    def describe(self) -> str:
        """``"<source>[ row N]: <problem>"``."""
        where = self.source if self.row is None else f"{self.source} row {self.row}"
        return f"{where}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields plus ``error`` (the :meth:`describe` text)."""
        return {
            "id": self.id,
            "source": self.source,
            "row": self.row,
            "input": self.input,
            "error": self.describe(),
        }


def _looks_like_file(text: str) -> bool:
    return text.lower().endswith(_TABLE_SUFFIXES) or os.sep in text


def read_smiles_inputs(
    sources: Sequence[str | Path],
    *,
    standardize: bool = True,
    fragments: FragmentPolicy = "largest",
    smiles_column: str | None = None,
) -> tuple[list[Record], list[BadInput]]:
    """Read molecules for ``predict``: SMILES strings and files of SMILES.

    Each source is a path to an existing ``.csv`` / ``.tsv`` / ``.parquet`` / ``.smi`` file
    (its SMILES column auto-detected or ``smiles_column``) or else a SMILES string. Every
    molecule that cannot be used becomes a :class:`BadInput`; the others become records
    (same layout as :func:`read_molecules`, ``target`` ``None``, ``meta`` also ``source``
    and ``row``). Use the standardisation options of the training data
    (``info["standardization"]``).

    Returns:
        ``(records, bad)``, each in input order.
    """
    records: list[Record] = []
    bad: list[BadInput] = []
    for k, src in enumerate(sources, start=1):
        text = str(src)
        path = Path(text).expanduser()
        if (
            isinstance(src, Path)
            or path.is_file()
            or (_looks_like_file(text) and not _parses(text))
        ):
            _read_file_inputs(path, smiles_column, standardize, fragments, records, bad)
            continue
        _add_input(text, f"input{k}", f"input{k}", None, standardize, fragments, records, bad)
    return records, bad


def _parses(text: str) -> bool:
    from rdkit import rdBase

    with rdBase.BlockLogs():
        return _rdkit().MolFromSmiles(text.strip()) is not None


def _read_file_inputs(
    path: Path,
    smiles_column: str | None,
    standardize: bool,
    fragments: FragmentPolicy,
    records: list[Record],
    bad: list[BadInput],
) -> None:
    try:
        frame = _read_frame(path)
        col = _find_smiles_column(frame, path, smiles_column)
    except (DataNotFoundError, DataValidationError, ConfigError) as exc:
        bad.append(BadInput(str(path), str(path), None, "", exc.message))
        return
    for n, text in enumerate(frame[col].tolist(), start=1):
        _add_input(text, f"{path}:row{n}", str(path), n, standardize, fragments, records, bad)


def _add_input(
    text: Any,
    rid: str,
    source: str,
    row: int | None,
    standardize: bool,
    fragments: FragmentPolicy,
    records: list[Record],
    bad: list[BadInput],
) -> None:
    from medlearn.data import make_record

    r = _parse_cached(text, standardize, fragments)
    given = "" if text is None else str(text).strip()
    if r.problem:
        bad.append(BadInput(rid, source, row, given, r.problem))
        return
    meta = {"scaffold": r.scaffold, "n_heavy_atoms": r.n_heavy, "source": source, "row": row}
    records.append(
        make_record(rid, r.canonical, None, patient_id=molecule_id(r.canonical), meta=meta)
    )

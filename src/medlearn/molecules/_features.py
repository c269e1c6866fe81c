"""Fixed-length molecular features: Morgan fingerprints and RDKit 2D descriptors.

* :func:`morgan_fingerprints` — ECFP-like bit or count vectors
  (``rdkit.Chem.rdFingerprintGenerator``), for the random-forest / gradient-boosting
  baselines;
* :func:`rdkit_descriptors` — every descriptor in ``rdkit.Chem.Descriptors._descList``
  (non-finite values become NaN), and :class:`DescriptorScaler`, fitted on training
  molecules and saved as JSON, which turns them into finite standardised features (used as
  "descriptor features concatenated after readout").

Both are vectorised over a list of SMILES and memoised per SMILES for the process.
Descriptor rows are also cached on disk (:func:`descriptor_cache_dir`: 256 shards by the
first byte of sha1(SMILES), one folder per RDKit version and descriptor list), because they
take most of a featurisation (~8 ms per drug-sized molecule against well under 1 ms for a
graph or a fingerprint).

Example:
    >>> X = morgan_fingerprints(["CCO", "c1ccccc1"], radius=2, n_bits=1024)
    >>> X.shape, X.dtype
    ((2, 1024), dtype('float32'))
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn._io import atomic_write_bytes
from medlearn.errors import ConfigError, DataValidationError, NotFittedError

__all__ = [
    "DescriptorScaler",
    "clear_feature_cache",
    "descriptor_cache_dir",
    "descriptor_names",
    "descriptor_targets",
    "morgan_fingerprints",
    "rdkit_descriptors",
]

log = logging.getLogger(__name__)

_MAX_SHOWN = 20
#: (kind, params..., SMILES) -> one feature row.
_ROWS: dict[tuple[Any, ...], np.ndarray] = {}
_GENERATORS: dict[tuple[int, int, bool], Any] = {}


def clear_feature_cache() -> None:
    """Forget every memoised fingerprint and descriptor row."""
    _ROWS.clear()


def _mols(smiles: Sequence[str], positions: Sequence[int], total: int) -> list[Any]:
    """Parse ``smiles``; one error lists every position that does not parse."""
    from rdkit import Chem, rdBase

    out, bad = [], []
    with rdBase.BlockLogs():
        for pos, smi in zip(positions, smiles, strict=True):
            mol = Chem.MolFromSmiles(str(smi)) if smi else None
            if mol is None:
                bad.append(pos + 1)
            out.append(mol)
    if bad:
        shown = ", ".join(map(str, bad[:_MAX_SHOWN]))
        more = f" and {len(bad) - _MAX_SHOWN} more" if len(bad) > _MAX_SHOWN else ""
        raise DataValidationError(
            f"{len(bad)} of {total} SMILES cannot be parsed (items {shown}{more}).",
            hint="Read molecules with the 'molecules' reader first; it reports bad rows.",
        )
    return out


def _fill(
    smiles: Sequence[str],
    key: tuple[Any, ...],
    width: int,
    compute: Any,
    disk: Path | None = None,
    compute_smiles: Any = None,
) -> np.ndarray:
    """Rows for ``smiles`` from the memo, then from the ``disk`` cache folder (if given),
    computing the missing ones with ``compute(mols)`` (and writing them to ``disk``).
    ``compute_smiles(smiles)``, when given, computes them from the (already checked) SMILES
    instead, e.g. in worker processes; it returns ``None`` to fall back to ``compute``."""
    wanted = [str(s) for s in smiles]
    missing = list(dict.fromkeys(s for s in wanted if (*key, s) not in _ROWS))
    shards: dict[str, dict[str, np.ndarray]] = {}
    if missing and disk is not None:
        shards = _load_shards(disk, missing, width)
        for s in missing:
            row = shards[_shard(s)].get(s)
            if row is not None:
                _ROWS[(*key, s)] = row
        missing = [s for s in missing if (*key, s) not in _ROWS]
    if missing:
        first: dict[str, int] = {}
        for i, s in enumerate(wanted):
            first.setdefault(s, i)
        mols = _mols(missing, [first[s] for s in missing], len(wanted))
        rows = compute_smiles(missing) if compute_smiles is not None else None
        if rows is None:
            rows = compute(mols)
        for s, row in zip(missing, rows, strict=True):
            _ROWS[(*key, s)] = row
        if disk is not None:
            _write_disk_rows(disk, dict(zip(missing, rows, strict=True)), shards)
    if not wanted:
        return np.zeros((0, width), dtype=np.float32)
    return np.stack([_ROWS[(*key, s)] for s in wanted])


# --- disk cache of descriptor rows ----------------------------------------------------------------

#: bumped when the way medlearn turns RDKit's values into a row changes.
_DESCRIPTOR_CACHE_VERSION = 1
_CACHE_MAGIC = "medlearn-descriptor-rows-1"


def descriptor_cache_dir(
    names: Sequence[str] | None = None, cache_dir: str | Path | None = None
) -> Path:
    """The disk cache of descriptor rows for this RDKit version and descriptor list.

    ``<cache_dir or $MEDLEARN_CACHE_DIR/descriptors or ~/.cache/medlearn/descriptors>/
    rdkit-<version>-<sha1 of the names>-v<N>``, so another RDKit or another list of
    descriptors never reads rows computed differently.
    """
    from rdkit import __version__ as rdkit_version

    from medlearn.molecules._graph_cache import _cache_root  # the same cache root as graphs

    names = list(names) if names is not None else descriptor_names()
    tag = hashlib.sha1("\n".join(names).encode("utf-8")).hexdigest()[:12]
    root = Path(cache_dir).expanduser() if cache_dir is not None else _cache_root() / "descriptors"
    return root / f"rdkit-{rdkit_version}-{tag}-v{_DESCRIPTOR_CACHE_VERSION}"


def _shard(smiles: str) -> str:
    return hashlib.sha1(smiles.encode("utf-8")).hexdigest()[:2]


def _read_rows(path: Path, width: int) -> dict[str, np.ndarray]:
    """One shard's rows by SMILES; ``{}`` for a missing or unreadable shard (rebuilt)."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["magic"]) != _CACHE_MAGIC:
                raise ValueError("not a descriptor cache file")
            keys, rows = z["keys"].tolist(), np.asarray(z["rows"], dtype=np.float64)
        if rows.shape != (len(keys), width):
            raise ValueError(f"rows of shape {rows.shape} for {len(keys)} keys × {width}")
    except Exception as exc:  # noqa: BLE001 - a corrupt cache file is rebuilt, never fatal
        log.warning("descriptor cache file %s is unreadable (%s); rebuilding it", path.name, exc)
        return {}
    return dict(zip(keys, rows, strict=True))


def _load_shards(
    folder: Path, smiles: Sequence[str], width: int
) -> dict[str, dict[str, np.ndarray]]:
    """The shards (by name) that hold ``smiles``, each read once."""
    return {
        shard: _read_rows(folder / f"{shard}.npz", width)
        for shard in dict.fromkeys(_shard(s) for s in smiles)
    }


def _write_disk_rows(
    folder: Path, rows: dict[str, np.ndarray], shards: dict[str, dict[str, np.ndarray]]
) -> None:
    """Merge ``rows`` into their shards (``shards``: those already read by
    :func:`_load_shards`) and write each atomically; an unwritable folder only costs speed and
    is reported once."""
    from medlearn.molecules._graph_cache import warn_unwritable

    by_shard: dict[str, dict[str, np.ndarray]] = {}
    for s, row in rows.items():
        by_shard.setdefault(_shard(s), {})[s] = row
    width = len(next(iter(rows.values())))
    try:
        for shard, new in by_shard.items():
            path = folder / f"{shard}.npz"
            old = shards[shard] if shard in shards else _read_rows(path, width)
            merged = {**old, **new}
            keys = sorted(merged)
            buf = io.BytesIO()
            np.savez(
                buf,
                magic=np.array(_CACHE_MAGIC),
                keys=np.array(keys, dtype=str),
                rows=np.stack([merged[k] for k in keys]).astype(np.float64),
            )
            atomic_write_bytes(path, buf.getvalue(), durable=False)  # a cache: rebuilt if lost
    except OSError as exc:
        warn_unwritable(folder, "descriptor", exc)


# --- Morgan fingerprints ------------------------------------------------------------------------


def _generator(radius: int, n_bits: int, chirality: bool) -> Any:
    key = (radius, n_bits, chirality)
    gen = _GENERATORS.get(key)
    if gen is None:
        from rdkit.Chem import rdFingerprintGenerator

        gen = rdFingerprintGenerator.GetMorganGenerator(
            radius=radius, fpSize=n_bits, includeChirality=chirality
        )
        _GENERATORS[key] = gen
    return gen


def morgan_fingerprints(
    smiles: Sequence[str],
    *,
    radius: int = 2,
    n_bits: int = 2048,
    counts: bool = False,
    chirality: bool = False,
) -> np.ndarray:
    """Morgan (ECFP-like) fingerprints of ``smiles``.

    Args:
        smiles: SMILES strings.
        radius: neighbourhood radius (2 ≈ ECFP4).
        n_bits: vector length (bits are folded modulo ``n_bits``).
        counts: occurrence counts instead of 0/1 bits.
        chirality: include chirality in the atom invariants.

    Returns:
        ``(N, n_bits)`` float32: 0/1 bits, or counts.

    Raises:
        ConfigError: for ``radius < 0`` or ``n_bits < 1``.
        DataValidationError: listing the positions of SMILES that do not parse.
    """
    if int(radius) != radius or radius < 0:
        raise ConfigError(f"The 'radius' parameter must be an integer >= 0. Got {radius!r}.")
    if int(n_bits) != n_bits or n_bits < 1:
        raise ConfigError(f"The 'n_bits' parameter must be an integer >= 1. Got {n_bits!r}.")
    gen = _generator(int(radius), int(n_bits), bool(chirality))

    def compute(mols: list[Any]) -> list[np.ndarray]:
        if counts:
            return [gen.GetCountFingerprintAsNumPy(m).astype(np.float32) for m in mols]
        return [gen.GetFingerprintAsNumPy(m).astype(np.float32) for m in mols]

    key = ("morgan", int(radius), int(n_bits), bool(counts), bool(chirality))
    return _fill(smiles, key, int(n_bits), compute)


# --- RDKit 2D descriptors -----------------------------------------------------------------------


def descriptor_names() -> list[str]:
    """Names of every RDKit 2D descriptor (``Descriptors._descList``), in RDKit's order."""
    from rdkit.Chem import Descriptors

    return [name for name, _ in Descriptors._descList]


def _estate_extreme(pick: Any) -> Any:
    """One of RDKit's four E-state extremes, reusing the molecule's E-state indices.

    RDKit's ``MaxEStateIndex`` & co. each recompute every atom's E-state index (a Python
    loop over atom pairs, ~0.5 ms for a drug-sized molecule) with ``force=1``. Asking with
    ``force=False`` returns the indices RDKit stored on the same ``Mol`` object at the first
    call, so the values are identical and the loop runs once per molecule, not four times.
    """
    from rdkit.Chem.EState.EState import EStateIndices

    def descriptor(mol: Any) -> float:
        return pick(EStateIndices(mol, force=False))

    return descriptor


#: descriptor name -> a faster function with identical values.
_SHARED_WORK = {
    "MaxEStateIndex": lambda: _estate_extreme(max),
    "MinEStateIndex": lambda: _estate_extreme(min),
    "MaxAbsEStateIndex": lambda: _estate_extreme(lambda v: max(abs(x) for x in v)),
    "MinAbsEStateIndex": lambda: _estate_extreme(lambda v: min(abs(x) for x in v)),
}


def _functions(names: Sequence[str]) -> list[Any]:
    from rdkit.Chem import Descriptors

    table = dict(Descriptors._descList)
    for name, make in _SHARED_WORK.items():
        if name in table:
            table[name] = make()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(
            f"Unknown RDKit descriptor(s): {', '.join(unknown[:10])}. This RDKit has "
            f"{len(table)} descriptors.",
            hint="A descriptor scaler saved with another RDKit version names descriptors this "
            "one lacks; retrain, or install the RDKit version the model was trained with.",
        )
    return [table[n] for n in names]


def rdkit_descriptors(
    smiles: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    disk: bool = True,
    cache_dir: str | Path | None = None,
    workers: int = 1,
) -> np.ndarray:
    """RDKit 2D descriptors of ``smiles``, memoised and cached on disk.

    Args:
        smiles: SMILES strings.
        names: descriptor names (default :func:`descriptor_names`, all of them).
        disk: also use the disk cache (:func:`descriptor_cache_dir`); ``False``: memory only.
        cache_dir: the ``descriptors`` cache folder (default
            ``$MEDLEARN_CACHE_DIR/descriptors`` or ``~/.cache/medlearn/descriptors``).
        workers: processes that compute the rows not yet cached when there are at least
            ``PARALLEL_MIN`` of them (the values are the same as with 1).

    Returns:
        ``(N, D)`` float64; a descriptor that fails or is not finite is NaN (use
        :class:`DescriptorScaler` to impute and scale).

    Raises:
        ConfigError: for an unknown descriptor name.
        DataValidationError: listing the positions of SMILES that do not parse.
    """

    names = list(names) if names is not None else descriptor_names()
    funcs = _functions(names)

    def compute(mols: list[Any]) -> list[np.ndarray]:
        return _descriptor_rows(mols, funcs)

    def in_workers(missing: list[str]) -> list[np.ndarray] | None:
        if int(workers) < 2 or len(missing) < PARALLEL_MIN:
            return None
        return _parallel_descriptor_rows(missing, names, int(workers))

    folder = descriptor_cache_dir(names, cache_dir) if disk else None
    return _fill(smiles, ("descriptors", tuple(names)), len(names), compute, folder, in_workers)


def descriptor_targets(
    smiles: Sequence[str], *, clip_quantile: float = 0.005
) -> tuple[list[str], np.ndarray]:
    """Self-supervised regression targets: the RDKit 2D descriptors of ``smiles``.

    Each descriptor is clipped at its ``clip_quantile`` / ``1 - clip_quantile`` quantiles over
    ``smiles`` (a few descriptors, e.g. ``Ipc``, span many orders of magnitude) and
    standardised to mean 0 and standard deviation 1 over ``smiles``, so that an RMSE pooled
    over the targets is in standard deviations; descriptors that are constant after clipping
    are left out; a value RDKit cannot compute stays NaN (a missing label). Uncached rows are
    computed by one process per available CPU (at most 8).

    Returns:
        ``(names, Y)``: ``rdkit:<descriptor>`` names and ``(N, len(names))`` float64.
    """
    names = descriptor_names()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    X = rdkit_descriptors(list(smiles), names=names, workers=max(1, min(8, cpus or 1)))
    X = np.where(np.isfinite(X), X, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanquantile(X, clip_quantile, axis=0)
        high = np.nanquantile(X, 1 - clip_quantile, axis=0)
        Y = np.clip(X, low, high)
        center, spread = np.nanmean(Y, axis=0), np.nanstd(Y, axis=0)
    keep = np.flatnonzero(np.isfinite(spread) & (spread > 1e-12))
    Z = (Y[:, keep] - center[keep]) / spread[keep]
    return [f"rdkit:{names[j]}" for j in keep], Z


#: fewest uncached molecules worth starting worker processes for (~8 ms each)
PARALLEL_MIN = 400


def _descriptor_rows(mols: list[Any], funcs: list[Any]) -> list[np.ndarray]:
    from rdkit import rdBase

    rows = []
    with rdBase.BlockLogs(), np.errstate(all="ignore"):
        for m in mols:
            row = np.empty(len(funcs), dtype=np.float64)
            for j, f in enumerate(funcs):
                try:
                    row[j] = float(f(m))
                except Exception:  # noqa: BLE001 - RDKit descriptors raise many types
                    row[j] = np.nan
            row[~np.isfinite(row)] = np.nan
            rows.append(row)
    return rows


def _descriptor_chunk(smiles: list[str], names: list[str]) -> np.ndarray:
    """A worker's share: parse and describe ``smiles`` (checked by the parent)."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mols = [Chem.MolFromSmiles(s) for s in smiles]
    return np.stack(_descriptor_rows(mols, _functions(names)))


def _parallel_descriptor_rows(
    smiles: list[str], names: list[str], workers: int
) -> list[np.ndarray]:
    """Descriptor rows computed by ``workers`` processes, in the order of ``smiles``.

    Forked where the platform allows (the children only run RDKit, never torch, so the
    parent's thread pools do not matter), spawned elsewhere.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    n_chunks = min(len(smiles), workers * 4)
    bounds = np.linspace(0, len(smiles), n_chunks + 1).astype(int)
    chunks = [smiles[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
        parts = list(pool.map(_descriptor_chunk, chunks, [names] * len(chunks)))
    return [row for part in parts for row in part]


class DescriptorScaler:
    """Impute, clip and standardise descriptor columns, fitted on training molecules.

    ``fit`` learns per column the median (for NaN), the 0.5th and 99.5th percentiles (values
    are clipped to them, which tames descriptors such as ``Ipc`` that span 30 orders of
    magnitude) and the mean and standard deviation after clipping; ``transform`` returns
    finite float32 features. Columns with no finite training value become 0.

    Args:
        names: the descriptor names of the columns (saved with the scaler, so prediction
            computes the same columns).
        clip_quantile: fraction clipped at each end.

    Example:
        >>> X = rdkit_descriptors(["CCO", "CCCO", "c1ccccc1O"])
        >>> scaler = DescriptorScaler(descriptor_names()).fit(X)
        >>> Z = scaler.transform(X)
        >>> bool(np.isfinite(Z).all())
        True
    """

    def __init__(self, names: Sequence[str], *, clip_quantile: float = 0.005) -> None:
        self.names = list(names)
        self.clip_quantile = float(clip_quantile)

    def fit(self, X: np.ndarray) -> DescriptorScaler:
        """Learn the statistics from training rows ``X`` ``(N, D)`` (NaN allowed)."""
        X = self._check(X)
        if len(X) == 0:
            raise DataValidationError("DescriptorScaler.fit needs at least one row.")
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = self.clip_quantile
            low = np.nanquantile(X, q, axis=0)
            high = np.nanquantile(X, 1 - q, axis=0)
            median = np.nanmedian(X, axis=0)
        empty = ~np.isfinite(median)
        low[empty], high[empty], median[empty] = 0.0, 0.0, 0.0
        clipped = np.clip(np.where(np.isnan(X), median, X), low, high)
        mean = clipped.mean(axis=0)
        std = clipped.std(axis=0)
        std[~(std > 1e-12)] = 1.0
        self.median_, self.low_, self.high_ = median, low, high
        self.mean_, self.std_ = mean, std
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled features ``(N, D)`` float32, all finite."""
        if not hasattr(self, "mean_"):
            raise NotFittedError(
                "This DescriptorScaler is not fitted yet. Call fit(X) with training "
                "descriptors first, or load a saved one with DescriptorScaler.load(path)."
            )
        X = self._check(X)
        X = np.where(np.isnan(X), self.median_, X)
        Z = (np.clip(X, self.low_, self.high_) - self.mean_) / self.std_
        return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """:meth:`fit` then :meth:`transform`."""
        return self.fit(X).transform(X)

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.names):
            raise DataValidationError(
                f"DescriptorScaler expects an array of shape (N, {len(self.names)}). Got {X.shape}."
            )
        return np.where(np.isfinite(X), X, np.nan)

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted scaler as plain JSON-able values."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("Fit the DescriptorScaler before saving it.")
        return {
            "kind": "rdkit_descriptor_scaler",
            "version": 1,
            "names": self.names,
            "clip_quantile": self.clip_quantile,
            "median": self.median_.tolist(),
            "low": self.low_.tolist(),
            "high": self.high_.tolist(),
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DescriptorScaler:
        """Rebuild a scaler from :meth:`to_dict` output.

        Raises:
            DataValidationError: if the mapping is not a saved descriptor scaler.
        """
        try:
            if data.get("kind") != "rdkit_descriptor_scaler":
                raise KeyError("kind")
            scaler = cls(data["names"], clip_quantile=data["clip_quantile"])
            n = len(scaler.names)
            stats = {}
            for key in ("median", "low", "high", "mean", "std"):
                arr = np.asarray(data[key], dtype=np.float64)
                if arr.shape != (n,):
                    raise ValueError(key)
                stats[key] = arr
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise DataValidationError(
                f"Not a saved descriptor scaler (problem with field {exc}).",
                hint="The bundle file is damaged or from another tool; retrain the model.",
            ) from exc
        scaler.median_, scaler.low_, scaler.high_ = stats["median"], stats["low"], stats["high"]
        scaler.mean_, scaler.std_ = stats["mean"], stats["std"]
        return scaler

    def save(self, path: str | Path) -> Path:
        """Write the scaler as JSON (atomically)."""
        from medlearn._io import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> DescriptorScaler:
        """Read a scaler written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

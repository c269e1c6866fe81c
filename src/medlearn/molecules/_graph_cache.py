"""Molecular graphs computed once: a memory cache for the process and a disk cache.

:func:`featurize` turns canonical SMILES into :class:`~medlearn.molecules._featurize.MolGraph`
objects. It looks in a process-wide memory cache keyed by ``(FEATURIZER_VERSION, smiles)``,
then in 256 zlib-compressed shards on disk (one folder per featuriser version, so a new
featuriser never reads old graphs), and only then computes and writes back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn._io import atomic_write_bytes
from medlearn.catalog import CACHE_ENV  # medlearn's cache folder (default ~/.cache/medlearn)
from medlearn.errors import DataValidationError
from medlearn.molecules import _featurize
from medlearn.molecules._featurize import MolGraph, UnsupportedElementError

__all__ = ["CACHE_ENV", "clear_memory_cache", "featurize", "graph_cache_dir"]

log = logging.getLogger(__name__)

_MAX_SHOWN = 20  # featurisation failures listed in one message
#: zlib level of the shards: 1 is about 4x faster to write than 6 and ~10% larger.
_ZLIB_LEVEL = 1

#: (FEATURIZER_VERSION, SMILES) -> graph, for the life of the process.
_MEMORY: dict[tuple[str, str], MolGraph] = {}
_WARNED_UNWRITABLE: set[str] = set()


def clear_memory_cache() -> None:
    """Forget every graph held in memory (the disk cache is kept)."""
    _MEMORY.clear()


def _cache_root() -> Path:
    """``$MEDLEARN_CACHE_DIR`` or ``~/.cache/medlearn``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "medlearn"


def graph_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The on-disk graph cache of the current featuriser version.

    ``<cache_dir or $MEDLEARN_CACHE_DIR/molgraphs or ~/.cache/medlearn/molgraphs>/
    <FEATURIZER_VERSION>``; a ``cache_dir`` argument is the ``molgraphs`` folder itself.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else _cache_root() / "molgraphs"
    return root / _featurize.FEATURIZER_VERSION


def _key(smiles: str) -> str:
    return hashlib.sha1(smiles.encode("utf-8")).hexdigest()


_MAGIC = b"MEDLEARN-MOLGRAPHS\n"


def _read_shard(path: Path) -> dict[str, MolGraph]:
    """The graphs of one shard by SMILES key; ``{}`` for a missing or unreadable shard.

    A shard is ``_MAGIC``, an 8-byte header length, a JSON header (featuriser version,
    keys, atoms and edges per graph, feature widths) and one zlib-compressed buffer of
    ``x`` (float32), ``edge_index`` (int64) and ``edge_attr`` (float32), concatenated.
    """
    if not path.is_file():
        return {}
    try:
        blob = path.read_bytes()
        if not blob.startswith(_MAGIC):
            raise ValueError("not a graph cache file")
        pos = len(_MAGIC)
        n_header = int.from_bytes(blob[pos : pos + 8], "little")
        header = json.loads(blob[pos + 8 : pos + 8 + n_header])
        if header["version"] != _featurize.FEATURIZER_VERSION:
            raise ValueError("featuriser version differs")
        n_atoms = np.asarray(header["n_atoms"], dtype=np.int64)
        n_edges = np.asarray(header["n_edges"], dtype=np.int64)
        atom_dim, bond_dim = int(header["atom_dim"]), int(header["bond_dim"])
        data = zlib.decompress(blob[pos + 8 + n_header :])
        total_a, total_e = int(n_atoms.sum()), int(n_edges.sum())
        sizes = (total_a * atom_dim * 4, 2 * total_e * 8, total_e * bond_dim * 4)
        if len(data) != sum(sizes) or len(header["keys"]) != len(n_atoms):
            raise ValueError("array sizes disagree")
        x = np.frombuffer(data, np.float32, total_a * atom_dim, 0).reshape(total_a, atom_dim)
        ei = np.frombuffer(data, np.int64, 2 * total_e, sizes[0]).reshape(2, total_e)
        ea = np.frombuffer(data, np.float32, total_e * bond_dim, sizes[0] + sizes[1])
        ea = ea.reshape(total_e, bond_dim)
    except Exception as exc:  # noqa: BLE001 - a corrupt cache file is rebuilt, never fatal
        log.warning("graph cache file %s is unreadable (%s); rebuilding it", path.name, exc)
        return {}
    a_off = np.concatenate([[0], np.cumsum(n_atoms)]).tolist()
    e_off = np.concatenate([[0], np.cumsum(n_edges)]).tolist()
    return {
        k: MolGraph(
            x=x[a_off[i] : a_off[i + 1]],
            edge_index=ei[:, e_off[i] : e_off[i + 1]],
            edge_attr=ea[e_off[i] : e_off[i + 1]],
        )
        for i, k in enumerate(header["keys"])
    }


def _write_shard(path: Path, graphs: dict[str, MolGraph]) -> None:
    """Write one shard (format in :func:`_read_shard`) atomically: temp file, then rename."""
    keys = sorted(graphs)
    gs = [graphs[k] for k in keys]
    header = {
        "version": _featurize.FEATURIZER_VERSION,
        "atom_dim": _featurize.ATOM_DIM,
        "bond_dim": _featurize.BOND_DIM,
        "keys": keys,
        "n_atoms": [g.n_atoms for g in gs],
        "n_edges": [g.n_edges for g in gs],
    }
    payload = b"".join(
        [
            np.ascontiguousarray(np.concatenate([g.x for g in gs]), np.float32).tobytes(),
            np.ascontiguousarray(np.concatenate([g.edge_index for g in gs], 1), np.int64).tobytes(),
            np.ascontiguousarray(np.concatenate([g.edge_attr for g in gs]), np.float32).tobytes(),
        ]
    )
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob = _MAGIC + len(head).to_bytes(8, "little") + head + zlib.compress(payload, _ZLIB_LEVEL)
    atomic_write_bytes(path, blob, durable=False)  # a cache: rebuilt if lost


def _compute_graphs(smiles: Sequence[str], positions: Sequence[int]) -> dict[str, MolGraph]:
    """Featurise ``smiles`` (already canonical); every failure is listed in one error."""
    from rdkit import Chem, rdBase

    out: dict[str, MolGraph] = {}
    bad: list[str] = []
    with rdBase.BlockLogs():
        for pos, smi in zip(positions, smiles, strict=True):
            mol = Chem.MolFromSmiles(smi) if smi else None
            if mol is None:
                bad.append(f"item {pos + 1}: unparseable or empty SMILES")
                continue
            try:
                out[smi] = _featurize.mol_to_graph(mol)
            except UnsupportedElementError as exc:
                bad.append(f"item {pos + 1}: {exc}")
    if bad:
        shown = "; ".join(bad[:_MAX_SHOWN])
        more = f" (and {len(bad) - _MAX_SHOWN} more)" if len(bad) > _MAX_SHOWN else ""
        raise DataValidationError(
            f"{len(bad)} of {len(smiles)} molecules cannot be featurised: {shown}{more}.",
            hint="Read molecules with the 'molecules' reader (or parse_smiles) first; it "
            "reports or skips bad rows.",
        )
    return out


def featurize(
    smiles: Sequence[str], *, cache_dir: str | Path | None = None, disk: bool = True
) -> list[MolGraph]:
    """Molecular graphs of ``smiles``, computed once and cached.

    Graphs are looked up in a process-wide memory cache keyed by
    ``(FEATURIZER_VERSION, smiles)``, then in the disk cache (:func:`graph_cache_dir`: 256
    zlib-compressed shards by the first byte of sha1(SMILES), one folder per featuriser
    version), and only then computed with :func:`~medlearn.molecules._featurize.mol_to_graph`
    and written back (atomically). An unreadable cache file is rebuilt with a warning; an
    unwritable cache folder only costs speed.

    The atom order of each graph is RDKit's order for the given SMILES, so pass the
    records' canonical SMILES (``record["input"]``) to keep atom attributions aligned.

    Args:
        smiles: SMILES strings (normally canonical, from the reader).
        cache_dir: the ``molgraphs`` cache folder (default ``$MEDLEARN_CACHE_DIR/molgraphs``
            or ``~/.cache/medlearn/molgraphs``).
        disk: use the disk cache (``False``: memory only).

    Returns:
        One :class:`MolGraph` per SMILES, in order (repeated SMILES share one object; treat
        the arrays as read-only).

    Raises:
        DataValidationError: listing every position whose SMILES cannot be parsed or holds
            an element outside the featuriser's set.
    """
    version = _featurize.FEATURIZER_VERSION
    wanted = [str(s) for s in smiles]
    missing = list(dict.fromkeys(s for s in wanted if (version, s) not in _MEMORY))
    if missing:
        _fill(missing, wanted, version, graph_cache_dir(cache_dir) if disk else None)
    return [_MEMORY[(version, s)] for s in wanted]


def _fill(missing: list[str], wanted: list[str], version: str, folder: Path | None) -> None:
    """Load ``missing`` graphs from disk or compute them; put them in memory (and on disk)."""
    by_shard: dict[str, list[str]] = {}
    keys = {s: _key(s) for s in missing}
    for s in missing:
        by_shard.setdefault(keys[s][:2], []).append(s)
    loaded: dict[str, dict[str, MolGraph]] = {}
    todo: list[str] = []
    for shard, items in by_shard.items():
        stored = _read_shard(folder / f"{shard}.bin") if folder is not None else {}
        loaded[shard] = stored
        for s in items:
            g = stored.get(keys[s])
            if g is None:
                todo.append(s)
            else:
                _MEMORY[(version, s)] = g
    if not todo:
        return
    first = {}
    for i, s in enumerate(wanted):
        first.setdefault(s, i)
    computed = _compute_graphs(todo, [first[s] for s in todo])
    for s, g in computed.items():
        _MEMORY[(version, s)] = g
    if folder is None:
        return
    new_by_shard: dict[str, dict[str, MolGraph]] = {}
    for s, g in computed.items():
        new_by_shard.setdefault(keys[s][:2], {})[keys[s]] = g
    try:
        for shard, new in new_by_shard.items():
            _write_shard(folder / f"{shard}.bin", {**loaded[shard], **new})
    except OSError as exc:
        warn_unwritable(folder, "graph", exc)


def warn_unwritable(folder: Path, what: str, exc: OSError) -> None:
    """Log once per folder that a ``what`` cache cannot be written (it only costs speed)."""
    if str(folder) in _WARNED_UNWRITABLE:
        return
    _WARNED_UNWRITABLE.add(str(folder))
    log.warning(
        "cannot write the %s cache in %s (%s); %ss stay in memory only. "
        "Set %s to a writable folder.",
        what,
        folder,
        type(exc).__name__,
        what,
        CACHE_ENV,
    )

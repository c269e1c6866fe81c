"""Molecular graphs for message passing: atom and bond features, and batching.

A molecule becomes a :class:`MolGraph` of numpy arrays:

* ``x`` ``(n_atoms, ATOM_DIM)`` float32 — one-hot element (the featuriser's element set),
  degree, formal charge, chirality, hydrogen count, hybridisation, plus aromaticity and
  mass / 100;
* ``edge_index`` ``(2, 2 * n_bonds)`` int64 — every bond twice, as two *directed* edges:
  edge ``2k`` goes ``u → v`` and edge ``2k + 1`` goes ``v → u``, so the reverse of edge ``e``
  is ``e ^ 1`` (what a directed message-passing network needs to exclude the reverse bond);
* ``edge_attr`` ``(2 * n_bonds, BOND_DIM)`` float32 — bond type, conjugation, ring, stereo.

:func:`collate` stacks graphs into one disjoint-union :class:`GraphBatch` of tensors
(``batch[i]`` = the molecule of atom ``i``), in the layout PyTorch Geometric uses, so the
same batch feeds our D-MPNN and PyG's GIN/AttentiveFP layers.

The layout is versioned by :data:`FEATURIZER_VERSION`; caches key on it, so a change to the
features invalidates every cached graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "ATOM_DIM",
    "BOND_DIM",
    "DEFAULT_ELEMENTS",
    "FEATURIZER_VERSION",
    "GraphBatch",
    "MolGraph",
    "UnsupportedElementError",
    "collate",
    "message_pairs",
    "mol_to_graph",
]

#: Bump when any feature below changes: cached graphs carry it and are rebuilt on mismatch.
FEATURIZER_VERSION = "mg1"

#: Atomic numbers the featuriser encodes: H (1) to Rn (86). Anything heavier (actinides,
#: superheavy elements) is refused with the element named, rather than silently bucketed.
DEFAULT_ELEMENTS: tuple[int, ...] = tuple(range(1, 87))

_DEGREES = (0, 1, 2, 3, 4, 5)
_CHARGES = (-2, -1, 0, 1, 2)
_CHIRAL = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER")
_HS = (0, 1, 2, 3, 4)
_HYBRID = ("S", "SP", "SP2", "SP2D", "SP3", "SP3D", "SP3D2")
_BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
_STEREO = ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")

# Every one-hot block has one extra "other" slot.
ATOM_DIM = (
    len(DEFAULT_ELEMENTS)
    + 1
    + len(_DEGREES)
    + 1
    + len(_CHARGES)
    + 1
    + len(_CHIRAL)
    + 1
    + len(_HS)
    + 1
    + len(_HYBRID)
    + 1
    + 2
)
BOND_DIM = len(_BOND_TYPES) + 1 + 2 + len(_STEREO) + 1


class UnsupportedElementError(ValueError):
    """A molecule has an atom outside the featuriser's element set."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = sorted(set(symbols))
        super().__init__(
            "element(s) " + ", ".join(self.symbols) + " are outside the featuriser's element "
            "set (H to Rn)"
        )


@dataclass
class MolGraph:
    """One molecule as arrays (see the module docstring for the layout)."""

    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray

    @property
    def n_atoms(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_index.shape[1])


def _one_hot(value: Any, choices: Sequence[Any]) -> list[float]:
    out = [0.0] * (len(choices) + 1)
    try:
        out[list(choices).index(value)] = 1.0
    except ValueError:
        out[-1] = 1.0
    return out


def atom_features(atom: Any) -> list[float]:
    """The ``ATOM_DIM`` features of an RDKit atom."""
    return (
        _one_hot(atom.GetAtomicNum(), DEFAULT_ELEMENTS)
        + _one_hot(atom.GetTotalDegree(), _DEGREES)
        + _one_hot(atom.GetFormalCharge(), _CHARGES)
        + _one_hot(str(atom.GetChiralTag()), _CHIRAL)
        + _one_hot(int(atom.GetTotalNumHs()), _HS)
        + _one_hot(str(atom.GetHybridization()), _HYBRID)
        + [1.0 if atom.GetIsAromatic() else 0.0, atom.GetMass() * 0.01]
    )


def bond_features(bond: Any) -> list[float]:
    """The ``BOND_DIM`` features of an RDKit bond."""
    return (
        _one_hot(str(bond.GetBondType()), _BOND_TYPES)
        + [1.0 if bond.GetIsConjugated() else 0.0, 1.0 if bond.IsInRing() else 0.0]
        + _one_hot(str(bond.GetStereo()), _STEREO)
    )


_ATOM_CHOICES: tuple[Sequence[Any], ...] = (
    DEFAULT_ELEMENTS,
    _DEGREES,
    _CHARGES,
    _CHIRAL,
    _HS,
    _HYBRID,
)
#: First column of each one-hot block of an atom row, and its last ("other") column.
_ATOM_BLOCKS = np.cumsum([0] + [len(c) + 1 for c in _ATOM_CHOICES[:-1]]).tolist()
_ATOM_OTHER = tuple(b + len(c) for b, c in zip(_ATOM_BLOCKS, _ATOM_CHOICES, strict=True))
#: First column of a bond row's type block, its two flags and its stereo block.
_BOND_BLOCKS = [0, len(_BOND_TYPES) + 1, len(_BOND_TYPES) + 3]


def _slot_table(choices: Sequence[Any], offset: int) -> dict[Any, int]:
    """choice → its column ``offset + position``; a lookup's default is the block's "other"
    column ``offset + len(choices)``."""
    return {v: offset + i for i, v in enumerate(choices)}


_TABLES: dict[str, dict[Any, int]] = {}


def _tables() -> dict[str, dict[Any, int]]:
    """Column lookup tables of every one-hot block (built on first use, as RDKit's enums
    are imported lazily). RDKit enum values map through their ``str`` names."""
    if not _TABLES:
        from rdkit import Chem

        def by_name(enum: Any, names: Sequence[str], offset: int) -> dict[Any, int]:
            return {
                v: offset + names.index(str(v)) for v in enum.values.values() if str(v) in names
            }

        e0, d0, c0, k0, h0, y0 = _ATOM_BLOCKS
        t0, _, s0 = _BOND_BLOCKS
        _TABLES.update(
            element=_slot_table(DEFAULT_ELEMENTS, e0),
            degree=_slot_table(_DEGREES, d0),
            charge=_slot_table(_CHARGES, c0),
            chiral=by_name(Chem.ChiralType, _CHIRAL, k0),
            hs=_slot_table(_HS, h0),
            hybrid=by_name(Chem.HybridizationType, _HYBRID, y0),
            bond=by_name(Chem.BondType, _BOND_TYPES, t0),
            stereo=by_name(Chem.BondStereo, _STEREO, s0),
        )
    return _TABLES


def _atom_matrix(atoms: Sequence[Any]) -> np.ndarray:
    """``(n_atoms, ATOM_DIM)`` float32: :func:`atom_features` of every atom, built as one
    column index per one-hot block and one scatter (the same values, several times faster)."""
    t = _tables()
    elem, deg, chg = t["element"], t["degree"], t["charge"]
    chi, hs, hyb = t["chiral"], t["hs"], t["hybrid"]
    other = _ATOM_OTHER
    cols = [
        (
            elem.get(a.GetAtomicNum(), other[0]),
            deg.get(a.GetTotalDegree(), other[1]),
            chg.get(a.GetFormalCharge(), other[2]),
            chi.get(a.GetChiralTag(), other[3]),
            hs.get(a.GetTotalNumHs(), other[4]),
            hyb.get(a.GetHybridization(), other[5]),
            1.0 if a.GetIsAromatic() else 0.0,
            a.GetMass() * 0.01,
        )
        for a in atoms
    ]
    x = np.zeros((len(atoms), ATOM_DIM), dtype=np.float32)
    if atoms:
        table = np.asarray(cols, dtype=np.float64)
        x[np.arange(len(atoms))[:, None], table[:, :6].astype(np.int64)] = 1.0
        x[:, -2:] = table[:, 6:]
    return x


def _bond_matrix(bonds: Sequence[Any]) -> np.ndarray:
    """``(n_bonds, BOND_DIM)`` float32: :func:`bond_features` of every bond (one row per
    bond, not per directed edge)."""
    t = _tables()
    kinds, stereo = t["bond"], t["stereo"]
    t0, f0, s0 = _BOND_BLOCKS
    other = (t0 + len(_BOND_TYPES), s0 + len(_STEREO))
    cols = [
        (
            kinds.get(b.GetBondType(), other[0]),
            stereo.get(b.GetStereo(), other[1]),
            1.0 if b.GetIsConjugated() else 0.0,
            1.0 if b.IsInRing() else 0.0,
        )
        for b in bonds
    ]
    out = np.zeros((len(bonds), BOND_DIM), dtype=np.float32)
    if bonds:
        table = np.asarray(cols, dtype=np.float64)
        out[np.arange(len(bonds))[:, None], table[:, :2].astype(np.int64)] = 1.0
        out[:, f0 : f0 + 2] = table[:, 2:]
    return out


def mol_to_graph(mol: Any, elements: Sequence[int] = DEFAULT_ELEMENTS) -> MolGraph:
    """Featurise an RDKit molecule (implicit hydrogens) into a :class:`MolGraph`.

    The rows equal :func:`atom_features` and :func:`bond_features` of every atom and bond.

    Raises:
        UnsupportedElementError: for atoms outside ``elements``.
    """
    atoms = [mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms())]
    allowed = set(elements)
    bad = [a.GetSymbol() for a in atoms if a.GetAtomicNum() not in allowed]
    if bad:
        raise UnsupportedElementError(bad)
    x = _atom_matrix(atoms)
    bonds = [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]
    ends = np.asarray(
        [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in bonds], dtype=np.int64
    ).reshape(-1, 2)
    # bond k becomes edges 2k (u → v) and 2k + 1 (v → u)
    edge_index = np.stack([ends.reshape(-1), ends[:, ::-1].reshape(-1)])
    edge_attr = np.repeat(_bond_matrix(bonds), 2, axis=0)
    return MolGraph(x=x, edge_index=edge_index, edge_attr=edge_attr)


@dataclass
class GraphBatch:
    """Graphs stacked as one disjoint union (tensors).

    Attributes:
        x: ``(N_atoms, ATOM_DIM)`` atom features.
        edge_index: ``(2, N_edges)`` directed edges, atom indices offset per molecule; the
            reverse of edge ``e`` is ``e ^ 1``.
        edge_attr: ``(N_edges, BOND_DIM)`` bond features.
        batch: ``(N_atoms,)`` molecule index of each atom.
        num_graphs: molecules in the batch.
        extra: ``(num_graphs, D)`` per-molecule features (descriptors) or ``None``.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    batch: torch.Tensor
    num_graphs: int
    extra: torch.Tensor | None = None
    _pairs: tuple[torch.Tensor, torch.Tensor] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def rev_edge(self) -> torch.Tensor:
        """Index of the reverse of every directed edge."""
        import torch

        return torch.arange(self.edge_index.shape[1], device=self.edge_index.device) ^ 1

    def message_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The D-MPNN message pairs of this batch (:func:`message_pairs`) as int64 tensors,
        computed on first use and kept with the batch (a batch reused every epoch, such as
        a validation batch, computes them once)."""
        if self._pairs is None:
            import torch

            ei = self.edge_index.detach().cpu().numpy()
            rows, cols = message_pairs(ei, int(self.x.shape[0]))
            device = self.edge_index.device
            self._pairs = (torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device))
        return self._pairs


def message_pairs(edge_index: np.ndarray, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Which edge states feed which D-MPNN message: ``(rows, cols)`` such that the message
    of directed edge ``e = u → v`` is the sum of ``h[cols[i]]`` over ``rows[i] == e``, i.e.
    every edge into ``u`` except the reverse edge ``v → u`` (``e ^ 1``).

    Args:
        edge_index: ``(2, E)`` source and destination atoms (the reverse of edge ``e`` is
            ``e ^ 1``).
        n_atoms: atoms of the graph(s), more than the largest atom index.

    Returns:
        Two int64 arrays of equal length: ``rows`` ascending, and for each row its ``cols``
        in ascending edge order.
    """
    src = np.asarray(edge_index[0], dtype=np.int64)
    dst = np.asarray(edge_index[1], dtype=np.int64)
    n_edges = src.shape[0]
    into = np.bincount(dst, minlength=n_atoms)  # edges into each atom
    by_dst = np.argsort(dst, kind="stable")  # edges grouped by destination, ascending
    first_into = np.cumsum(into) - into  # where each atom's group starts in by_dst
    per_edge = into[src]  # candidate edges of each message (the reverse one included)
    rows = np.repeat(np.arange(n_edges, dtype=np.int64), per_edge)
    starts = np.cumsum(per_edge) - per_edge
    within = np.arange(rows.shape[0], dtype=np.int64) - np.repeat(starts, per_edge)
    cols = by_dst[np.repeat(first_into[src], per_edge) + within]
    keep = cols != (rows ^ 1)
    return rows[keep], cols[keep]


def collate(graphs: Sequence[MolGraph], extra: np.ndarray | None = None) -> GraphBatch:
    """Stack ``graphs`` into a :class:`GraphBatch`; ``extra`` rows are per-molecule features."""
    import torch

    offsets = np.cumsum([0] + [g.n_atoms for g in graphs[:-1]])
    x = np.concatenate([g.x for g in graphs]) if graphs else np.zeros((0, ATOM_DIM), np.float32)
    ei = [g.edge_index + off for g, off in zip(graphs, offsets, strict=True)]
    edge_index = np.concatenate(ei, axis=1) if ei else np.zeros((2, 0), np.int64)
    edge_attr = (
        np.concatenate([g.edge_attr for g in graphs])
        if graphs
        else np.zeros((0, BOND_DIM), np.float32)
    )
    batch = np.repeat(np.arange(len(graphs)), [g.n_atoms for g in graphs])
    return GraphBatch(
        x=torch.from_numpy(np.ascontiguousarray(x)),
        edge_index=torch.from_numpy(np.ascontiguousarray(edge_index)),
        edge_attr=torch.from_numpy(np.ascontiguousarray(edge_attr)),
        batch=torch.from_numpy(batch.astype(np.int64)),
        num_graphs=len(graphs),
        extra=None if extra is None else torch.as_tensor(extra, dtype=torch.float32),
    )

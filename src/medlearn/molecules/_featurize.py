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
from dataclasses import dataclass
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


def mol_to_graph(mol: Any, elements: Sequence[int] = DEFAULT_ELEMENTS) -> MolGraph:
    """Featurise an RDKit molecule (implicit hydrogens) into a :class:`MolGraph`.

    Raises:
        UnsupportedElementError: for atoms outside ``elements``.
    """
    allowed = set(elements)
    bad = [a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() not in allowed]
    if bad:
        raise UnsupportedElementError(bad)
    x = np.asarray([atom_features(a) for a in mol.GetAtoms()], dtype=np.float32).reshape(
        -1, ATOM_DIM
    )
    src: list[int] = []
    dst: list[int] = []
    attr: list[list[float]] = []
    for bond in mol.GetBonds():
        u, v = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        f = bond_features(bond)
        src += [u, v]
        dst += [v, u]
        attr += [f, f]
    edge_index = np.asarray([src, dst], dtype=np.int64).reshape(2, -1)
    edge_attr = np.asarray(attr, dtype=np.float32).reshape(-1, BOND_DIM)
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

    def rev_edge(self) -> torch.Tensor:
        """Index of the reverse of every directed edge."""
        import torch

        return torch.arange(self.edge_index.shape[1], device=self.edge_index.device) ^ 1


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

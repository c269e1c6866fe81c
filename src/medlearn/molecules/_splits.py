"""Scaffold splits: every Bemis–Murcko scaffold on one side of the split.

Two methods are registered in :data:`medlearn.data.splits.SPLITTERS`:

* ``scaffold`` — deterministic, as in MoleculeNet / DeepChem: scaffold sets sorted largest
  first go to train until it would overflow ``fractions[0]``, then to val, then to test. The
  seed is not used; the rarest scaffolds end up in test, so it measures generalisation to
  new chemotypes.
* ``scaffold_balanced`` — as in Chemprop: sets bigger than half the val or test size go first
  (so they land in train), the rest follow in an order shuffled under ``seed``; each set goes
  to train if it fits, else val if it fits, else test.

The scaffold of a record is ``record["meta"]["scaffold"]`` (the molecules reader sets it; ``""``
for acyclic molecules, which form one set). Scaffold sets are also joined with the groups
:func:`~medlearn.data.make_splits` passes in (duplicate molecules share a ``patient_id``, and
``group_by`` values), so neither a scaffold nor a molecule is ever on two sides.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.data.splits import SPLIT_NAMES, SPLITTERS
from medlearn.errors import DataValidationError

if TYPE_CHECKING:
    from medlearn.data import Record

__all__ = ["scaffold_balanced_split", "scaffold_sets", "scaffold_split"]


def _scaffold(rec: Record, row: int) -> str:
    meta = rec.get("meta") or {}
    if "scaffold" in meta and meta["scaffold"] is not None:
        return str(meta["scaffold"])
    smiles = rec.get("input")
    if isinstance(smiles, str):
        from medlearn.molecules._data import _parse, scaffold_of

        parsed = _parse(smiles, standardize=False, fragments="keep")
        if parsed.problem is None:
            return scaffold_of(parsed.mol)
    raise DataValidationError(
        f"Record {row} has no meta['scaffold'] and no SMILES input to compute it from.",
        hint="Scaffold splits are for molecules: read the data with the 'molecules' reader.",
    )


def scaffold_sets(records: Sequence[Record], groups: Sequence[Hashable]) -> list[list[int]]:
    """Positions of ``records`` grouped by scaffold, joined with ``groups``.

    Records sharing a scaffold or a group end up in one set (connected components).

    Returns:
        The sets, each sorted, in order of their first position.
    """
    n = len(records)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keys in ([_scaffold(r, i) for i, r in enumerate(records)], list(groups)):
        first: dict[Any, int] = {}
        for i, key in enumerate(keys):
            j = first.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    sets: dict[int, list[int]] = {}
    for i in range(n):
        sets.setdefault(find(i), []).append(i)
    return list(sets.values())


def _fill(sets: Sequence[list[int]], sizes: tuple[float, float]) -> dict[str, list[int]]:
    """Each set to train if it fits ``sizes[0]``, else val if it fits ``sizes[1]``, else test."""
    out: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    train_cap, val_cap = sizes
    for s in sets:
        if len(out["train"]) + len(s) <= train_cap:
            out["train"] += s
        elif len(out["val"]) + len(s) <= val_cap:
            out["val"] += s
        else:
            out["test"] += s
    return out


@SPLITTERS.register(
    "scaffold",
    description="Bemis–Murcko scaffold sets, largest to train, deterministic (MoleculeNet)",
)
def scaffold_split(
    records: Sequence[Record],
    groups: Sequence[Hashable],
    *,
    fractions: tuple[float, float, float],
    seed: int,
    given: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[int]]:
    """Deterministic scaffold split (DeepChem's ``ScaffoldSplitter``); ``seed`` is unused.

    Sets are sorted by size (largest first; ties by first position) and assigned in that
    order: to train while ``len(train) + len(set) <= fractions[0] * n``, otherwise to val
    while within ``(fractions[0] + fractions[1]) * n`` in train and val together, otherwise
    to test.
    """
    n = len(records)
    sets = sorted(scaffold_sets(records, groups), key=lambda s: (-len(s), s[0]))
    train_cut = fractions[0] * n
    val_cut = (fractions[0] + fractions[1]) * n
    out: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for s in sets:
        if len(out["train"]) + len(s) <= train_cut:
            out["train"] += s
        elif len(out["train"]) + len(out["val"]) + len(s) <= val_cut:
            out["val"] += s
        else:
            out["test"] += s
    return out


@SPLITTERS.register(
    "scaffold_balanced",
    description="scaffold sets, big ones to train, the rest shuffled under the seed (Chemprop)",
)
def scaffold_balanced_split(
    records: Sequence[Record],
    groups: Sequence[Hashable],
    *,
    fractions: tuple[float, float, float],
    seed: int,
    given: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[int]]:
    """Chemprop's balanced scaffold split.

    Sets larger than half the val size or half the test size are "big": they are placed
    first (shuffled among themselves), then the small sets (shuffled); each goes to train if
    it fits within ``fractions[0] * n``, else to val if it fits within ``fractions[1] * n``,
    else to test. Different seeds give different splits; the same seed the same split.
    """
    n = len(records)
    val_size, test_size = fractions[1] * n, fractions[2] * n
    sets = scaffold_sets(records, groups)
    big = [s for s in sets if len(s) > val_size / 2 or len(s) > test_size / 2]
    small = [s for s in sets if not (len(s) > val_size / 2 or len(s) > test_size / 2)]
    rng = np.random.default_rng(seed)
    ordered = [big[i] for i in rng.permutation(len(big))]
    ordered += [small[i] for i in rng.permutation(len(small))]
    return _fill(ordered, (fractions[0] * n, val_size))

"""Repeated molecules in a labelled table: find them, and merge them when asked.

After standardisation, two rows can hold the same molecule (a salt and its parent, a Kekulé
and an aromatic spelling). Their labels may disagree: ClinTox lists 46 drugs both as
FDA-approved and as failed for toxicity. Kept as they are (the default), the copies share a
``patient_id`` and so one side of every split, but a test set holding both copies with
opposite labels scores the model on a coin toss. ``data.options.duplicates: merge`` keeps one
record per molecule: regression values are averaged, agreeing class labels are kept, and a
class label that disagrees between copies becomes missing (the masked multi-task loss and the
metrics skip it). A molecule left with no label is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DUPLICATE_POLICIES", "DuplicateGroups", "find_duplicates", "merge_targets"]

#: Accepted values of ``data.options.duplicates``.
DUPLICATE_POLICIES: tuple[str, ...] = ("keep", "merge")


@dataclass
class DuplicateGroups:
    """Rows of a table grouped by canonical SMILES (only groups of two or more)."""

    groups: list[list[int]] = field(default_factory=list)
    """Each group: the positions (into the caller's arrays) of one molecule's rows, in order."""
    conflicting: list[int] = field(default_factory=list)
    """Indices into :attr:`groups` whose class labels disagree on at least one task."""

    @property
    def extra_rows(self) -> int:
        """Rows beyond the first of each group."""
        return sum(len(g) - 1 for g in self.groups)


def find_duplicates(
    canonical: Sequence[str],
    y: np.ndarray,
    positions: Sequence[int],
    classification: Sequence[bool],
) -> DuplicateGroups:
    """Group ``positions`` by their canonical SMILES and flag disagreeing class labels.

    Args:
        canonical: canonical SMILES of every row (indexed by position).
        y: target matrix ``(rows, tasks)`` with NaN for missing labels.
        positions: the rows to consider (bad rows already removed), in table order.
        classification: per task, whether it is a class label (regression values may differ
            between copies without being a conflict).

    Returns:
        The groups with more than one row, and which of them conflict.
    """
    by_smiles: dict[str, list[int]] = {}
    for i in positions:
        by_smiles.setdefault(canonical[i], []).append(i)
    out = DuplicateGroups()
    for rows in by_smiles.values():
        if len(rows) < 2:
            continue
        out.groups.append(rows)
        if _disagree(y[rows], classification):
            out.conflicting.append(len(out.groups) - 1)
    return out


def _disagree(values: np.ndarray, classification: Sequence[bool]) -> bool:
    for t, is_class in enumerate(classification):
        if not is_class:
            continue
        col = values[:, t]
        if len(np.unique(col[~np.isnan(col)])) > 1:
            return True
    return False


def merge_targets(values: np.ndarray, classification: Sequence[bool]) -> np.ndarray:
    """One molecule's target vector from the rows that hold it.

    Regression tasks: the mean of the labelled values. Class tasks: the label if every
    labelled copy agrees, else NaN (missing). A task no copy labels stays NaN.

    Args:
        values: ``(copies, tasks)`` targets with NaN for missing labels.
        classification: per task, whether it is a class label.

    Returns:
        ``(tasks,)`` merged targets.
    """
    merged = np.full(values.shape[1], np.nan)
    for t, is_class in enumerate(classification):
        col = values[:, t]
        col = col[~np.isnan(col)]
        if not len(col):
            continue
        if not is_class:
            merged[t] = float(col.mean())
        elif len(np.unique(col)) == 1:
            merged[t] = float(col[0])
    return merged

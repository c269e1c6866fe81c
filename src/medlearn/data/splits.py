"""Leak-free train / val / test splits.

Every method splits **groups**, never rows. A group is a patient (``record["patient_id"]``)
or, with ``group_by``, a value of ``record["meta"][group_by]`` (e.g. a hospital). When both
apply, records that share a patient *or* a group value are kept together, so neither a patient
nor a hospital ever ends up on two sides. :func:`make_splits` checks the result with
:func:`check_no_leak` before returning it, whichever splitter produced it.

Split methods live in the :data:`SPLITTERS` registry, so domains can add their own (scaffold,
temporal). A splitter is a function with the :class:`Splitter` signature::

    @SPLITTERS.register("by_site", description="...", requires_group_by=False)
    def by_site(records, groups, *, fractions, seed, given):
        return {"train": [0, 2], "val": [1], "test": [3]}  # positions in records

Example:
    >>> from medlearn.data import make_record, make_splits
    >>> recs = [make_record(f"r{i}", None, i % 2, patient_id=f"p{i // 2}") for i in range(40)]
    >>> s = make_splits(recs, method="stratified", seed=0)
    >>> sorted(s), sum(len(v) for v in s.values())
    (['test', 'train', 'val'], 40)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from medlearn.errors import ConfigError, DataValidationError
from medlearn.registry import Registry

if TYPE_CHECKING:
    from medlearn.data._records import Record

__all__ = [
    "SPLITTERS",
    "SPLIT_NAMES",
    "Splitter",
    "check_no_leak",
    "kfold_splits",
    "make_splits",
]

#: The split names every method returns, in this order.
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")

Fractions = tuple[float, float, float]


class Splitter(Protocol):
    """A split method registered in :data:`SPLITTERS`.

    Args:
        records: all records, in their stable order.
        groups: ``groups[i]`` is the group of ``records[i]``; records of one group must land
            in one split. Already validated by :func:`make_splits`.
        fractions: (train, val, test) fractions of records, non-negative, summing to 1.
        seed: seed of any randomness.
        given: the source's official split (ids per split), or ``None``.

    Returns:
        Positions in ``records`` per split name (``train``, ``val``, ``test``); every position
        exactly once. Order does not matter: :func:`make_splits` returns record order.
    """

    def __call__(
        self,
        records: Sequence[Record],
        groups: Sequence[Hashable],
        *,
        fractions: Fractions,
        seed: int,
        given: Mapping[str, Sequence[str]] | None,
    ) -> dict[str, list[int]]: ...


#: Split methods by name. Meta: ``description``; ``requires_group_by`` (bool).
SPLITTERS: Registry[Splitter] = Registry("split method", plugins=())


# --- public API ------------------------------------------------------------------------------


def make_splits(
    records: Sequence[Record],
    *,
    method: Literal["given", "random", "stratified", "group"] | str,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    given: Mapping[str, Sequence[str]] | None = None,
    group_by: str | None = None,
) -> dict[str, list[str]]:
    """Split records into train / val / test, keeping every patient (and group) on one side.

    Args:
        records: the records, each with ``id``, ``patient_id``, ``target`` and ``meta``.
        method: a name in :data:`SPLITTERS`: ``"given"`` (the source's official split, with a
            missing ``val`` or ``test`` carved out of ``train``, stratified), ``"random"``
            (shuffled groups), ``"stratified"`` (class proportions kept across splits; falls back
            to ``random`` when targets are not integer labels) or ``"group"`` (groups of
            ``meta[group_by]``, shuffled).
        fractions: (train, val, test) fractions of records; non-negative, summing to 1. Whole
            groups are assigned, so the achieved fractions are approximate.
        seed: seed of the shuffling; the same seed gives the same split.
        given: the source's official split, record ids per split name (``train``, ``val``,
            ``test``). Used only by ``method="given"``; ids not among ``records`` are ignored.
        group_by: a ``meta`` key whose values must not be shared across splits (e.g. a
            hospital). Required by ``method="group"``; honoured by every method.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``: every record id exactly once, each
        list in the order of ``records``. A split may be empty when its fraction is 0 or
        there are too few groups.

    Raises:
        ConfigError: for invalid ``fractions``, ``method="group"`` without ``group_by``, or
            ``method="given"`` when the source has no official split.
        UnknownComponentError: for an unknown ``method`` (with did-you-mean).
        DataValidationError: for a record without an id, patient or ``group_by`` value, a
            repeated id, or an official split that puts one patient on two sides.
    """
    fracs = _check_fractions(fractions)
    entry = SPLITTERS.entry(method)
    if entry.meta.get("requires_group_by") and not group_by:
        raise ConfigError(
            f"Split method {method!r} needs group_by: the record meta key whose values "
            "(e.g. hospitals) must stay on one side. Got group_by=None.",
            hint="Set data.split.group_by, e.g. `split: {method: group, group_by: hospital}`.",
        )
    ids = _check_ids(records)
    groups = _components(records, group_by)
    parts = entry.obj(records, groups, fractions=fracs, seed=int(seed), given=given)
    out = _normalise(parts, ids, method)
    check_no_leak(out, records)
    if group_by:
        check_no_leak(out, records, group_by=group_by)
    return out


def check_no_leak(
    splits: Mapping[str, Sequence[str]],
    records: Sequence[Record],
    group_by: str | None = None,
) -> None:
    """Raise if any patient (or ``meta[group_by]`` value) appears in two splits.

    Args:
        splits: record ids per split name (any names).
        records: the records the ids refer to.
        group_by: check this ``meta`` key's values instead of ``patient_id``.

    Raises:
        DataValidationError: naming how many patients (or groups) leak and between which
            splits (never which ones), or how many ids are unknown.
    """
    keys = _group_keys(records, group_by)
    by_id = {str(rec.get("id")): key for rec, key in zip(records, keys, strict=True)}
    unknown = 0
    seen: dict[Hashable, str] = {}
    leaks: Counter[tuple[str, str]] = Counter()
    leaked: set[Hashable] = set()
    for name, split_ids in splits.items():
        for rid in split_ids:
            key = by_id.get(str(rid), _MISSING)
            if key is _MISSING:
                unknown += 1
                continue
            first = seen.setdefault(key, name)
            if first != name and key not in leaked:
                leaked.add(key)
                leaks[(first, name)] += 1
    what = "patients" if group_by is None else f"values of meta key {group_by!r}"
    if unknown:
        raise DataValidationError(
            f"{unknown} ids in the splits are not among the {len(records)} records, so leakage "
            "cannot be checked.",
            hint="Split the same records you check (e.g. reload splits.json with its data).",
        )
    if leaks:
        pairs = ", ".join(f"{a}/{b}: {n}" for (a, b), n in sorted(leaks.items()))
        raise DataValidationError(
            f"{len(leaked)} {what} appear in more than one split ({pairs}); their data would "
            "leak between training and evaluation.",
            hint="Split by patient: use data.split.method: stratified, random or group.",
        )


# --- validation helpers ----------------------------------------------------------------------

_MISSING = object()


def _check_fractions(fractions: Sequence[float]) -> Fractions:
    try:
        f = tuple(float(x) for x in fractions)
    except (TypeError, ValueError):
        f = ()
    if len(f) != 3 or any(not np.isfinite(x) or x < 0 for x in f) or abs(sum(f) - 1) > 1e-6:
        raise ConfigError(
            "The 'fractions' parameter of make_splits must be 3 non-negative numbers "
            f"(train, val, test) summing to 1. Got {tuple(fractions)!r}.",
            hint="For example: fractions: [0.7, 0.15, 0.15]",
        )
    if f[0] <= 0:
        raise ConfigError(
            f"The train fraction must be positive. Got fractions={f!r}.",
            hint="For example: fractions: [0.7, 0.15, 0.15]",
        )
    return (f[0], f[1], f[2])


def _check_ids(records: Sequence[Record]) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    for row, rec in enumerate(records):
        rid = rec.get("id") if isinstance(rec, Mapping) else None
        if rid is None or rid == "":
            raise DataValidationError(
                f"Record {row} has no 'id'.", hint="Build records with medlearn.data.make_record."
            )
        rid = str(rid)
        if rid in seen:
            raise DataValidationError(
                f"Record {row} repeats an id used by an earlier record.",
                hint="Every record needs a unique id (e.g. its relative file path).",
            )
        seen.add(rid)
        ids.append(rid)
    return ids


def _group_keys(records: Sequence[Record], group_by: str | None) -> list[Hashable]:
    """The patient id (or ``meta[group_by]`` value) of each record, validated."""
    keys: list[Hashable] = []
    for row, rec in enumerate(records):
        if group_by is None:
            value = rec.get("patient_id")
            if value is None or value == "":
                raise DataValidationError(
                    f"Record {row} has no 'patient_id'.",
                    hint="Readers without patient information set patient_id to the record id.",
                )
        else:
            meta = rec.get("meta") or {}
            value = meta.get(group_by) if isinstance(meta, Mapping) else None
            if value is None:
                raise DataValidationError(
                    f"Record {row} has no meta key {group_by!r} to group by.",
                    hint=f"Give every record a meta[{group_by!r}] value, or change "
                    "data.split.group_by.",
                )
        keys.append(str(value))
    return keys


def _components(records: Sequence[Record], group_by: str | None) -> list[int]:
    """Group index per record: records sharing a patient or a ``group_by`` value are joined."""
    patients = _group_keys(records, None)
    if group_by is None:
        index: dict[Hashable, int] = {}
        return [index.setdefault(p, len(index)) for p in patients]
    values = _group_keys(records, group_by)
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keys in (patients, values):
        first: dict[Hashable, int] = {}
        for i, key in enumerate(keys):
            j = first.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(len(records))]


def _normalise(
    parts: Mapping[str, Sequence[int]], ids: list[str], method: str
) -> dict[str, list[str]]:
    """Check a splitter's output (every position once) and return ids in record order."""
    unknown = sorted(set(parts) - set(SPLIT_NAMES))
    if unknown:
        raise ConfigError(
            f"Split method {method!r} returned unknown split names {unknown}. "
            f"Allowed: {', '.join(SPLIT_NAMES)}."
        )
    where = np.full(len(ids), -1, dtype=np.int64)
    for k, name in enumerate(SPLIT_NAMES):
        for pos in parts.get(name, ()):
            if where[pos] != -1:
                raise ConfigError(f"Split method {method!r} put record {pos} in two splits.")
            where[pos] = k
    missing = int((where == -1).sum())
    if missing:
        raise ConfigError(f"Split method {method!r} left {missing} records out of every split.")
    return {
        name: [ids[i] for i in np.flatnonzero(where == k)] for k, name in enumerate(SPLIT_NAMES)
    }


# --- the assignment algorithm ----------------------------------------------------------------


def _int_label(target: Any) -> int | None:
    """``target`` as an int class label, or ``None`` when it is not one."""
    if isinstance(target, (bool, int, np.integer)):
        return int(target)
    if isinstance(target, np.ndarray) and target.size == 1 and target.dtype.kind in "iub":
        return int(target.reshape(()))
    return None


def _labels(records: Sequence[Record], positions: Sequence[int]) -> list[int] | None:
    """Int class labels of ``records[positions]``, or ``None`` if any target is not one."""
    out: list[int] = []
    for i in positions:
        label = _int_label(records[i].get("target"))
        if label is None:
            return None
        out.append(label)
    return out


def _assign(
    groups: Sequence[int],
    labels: Sequence[int] | None,
    fractions: Sequence[float],
    seed: int,
) -> list[int]:
    """Assign whole groups to ``len(fractions)`` bins; return the bin of each row.

    Groups are visited in a seeded random order, each going to the bin that keeps
    ``sum((records - target)**2 / target)`` over bins and classes smallest (a greedy
    chi-square fit of the per-class record counts to ``fractions``). With one class this
    balances record counts; with labels it balances every class separately, which is
    stratification at the group level (mixed-label groups included). Every bin with a
    positive fraction receives a group before any bin receives its second, so no such bin is
    left empty when there are enough groups.
    """
    if not groups:
        return []
    gindex: dict[int, int] = {}
    for g in groups:
        gindex.setdefault(g, len(gindex))
    # per group: {class: record count}
    counts: list[Counter[int]] = [Counter() for _ in gindex]
    for row, g in enumerate(groups):
        counts[gindex[g]][labels[row] if labels is not None else 0] += 1
    totals: Counter[int] = Counter()
    for c in counts:
        totals.update(c)
    nbins = len(fractions)
    target = [{c: f * t for c, t in totals.items()} for f in fractions]
    filled: list[Counter[int]] = [Counter() for _ in range(nbins)]
    open_bins = [b for b in range(nbins) if fractions[b] > 0]
    fresh = list(open_bins)
    order = np.random.default_rng(seed).permutation(len(counts)).tolist()
    bin_of_group = [0] * len(counts)
    for g in order:
        v = counts[g]
        if fresh:  # give every open bin one group first
            best = fresh.pop(0)
        else:
            best, best_score = open_bins[0], float("inf")
            for b in open_bins:
                # growth of sum((filled - target)^2 / target) if the group went to b
                score = sum(
                    (2 * n * (filled[b][c] - target[b][c]) + n * n) / target[b][c]
                    for c, n in v.items()
                )
                if score < best_score:
                    best, best_score = b, score
        bin_of_group[g] = best
        filled[best].update(v)
    return [bin_of_group[gindex[g]] for g in groups]


def _split_positions(
    positions: Sequence[int],
    groups: Sequence[Hashable],
    labels: Sequence[int] | None,
    fractions: Sequence[float],
    seed: int,
) -> list[list[int]]:
    """Split ``positions`` (with their groups and optional labels) into ``len(fractions)``."""
    gidx: dict[Hashable, int] = {}
    local = [gidx.setdefault(groups[p], len(gidx)) for p in positions]
    bins = _assign(local, labels, fractions, seed)
    out: list[list[int]] = [[] for _ in fractions]
    for p, b in zip(positions, bins, strict=True):
        out[b].append(p)
    return out


# --- the built-in methods --------------------------------------------------------------------


@SPLITTERS.register("random", description="shuffled patients (or groups) under the seed")
def random_split(
    records: Sequence[Record],
    groups: Sequence[Hashable],
    *,
    fractions: Fractions,
    seed: int,
    given: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[int]]:
    """Shuffle groups under ``seed`` and fill train / val / test to ``fractions`` of records."""
    parts = _split_positions(range(len(records)), groups, None, fractions, seed)
    return dict(zip(SPLIT_NAMES, parts, strict=True))


@SPLITTERS.register(
    "stratified", description="class proportions kept in every split, patient-level"
)
def stratified_split(
    records: Sequence[Record],
    groups: Sequence[Hashable],
    *,
    fractions: Fractions,
    seed: int,
    given: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[int]]:
    """Like :func:`random_split`, balancing each class separately across the splits.

    Targets must be integer class labels; otherwise (regression, multi-label, missing
    targets) this is :func:`random_split`.
    """
    positions = range(len(records))
    labels = _labels(records, positions)
    parts = _split_positions(positions, groups, labels, fractions, seed)
    return dict(zip(SPLIT_NAMES, parts, strict=True))


@SPLITTERS.register(
    "group",
    description="values of meta[group_by] (e.g. hospitals) kept on one side, shuffled",
    requires_group_by=True,
)
def group_split(
    records: Sequence[Record],
    groups: Sequence[Hashable],
    *,
    fractions: Fractions,
    seed: int,
    given: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[int]]:
    """Shuffle the ``group_by`` groups (already joined with patients by :func:`make_splits`)."""
    return random_split(records, groups, fractions=fractions, seed=seed)


@SPLITTERS.register(
    "given", description="the source's official split; a missing val/test is carved from train"
)
def given_split(
    records: Sequence[Record],
    groups: Sequence[Hashable],
    *,
    fractions: Fractions,
    seed: int,
    given: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[int]]:
    """Use the official split; carve a missing ``val`` / ``test`` out of ``train``.

    The carved part is stratified at the patient level (when targets are class labels) with
    ``fractions[1] / (fractions[0] + fractions[1])`` of train for val (likewise for test).

    Raises:
        ConfigError: if the source has no official split.
        DataValidationError: for unknown split names, no ``train``, records in no split or in
            two, or patients on two sides.
    """
    if given is None:
        raise ConfigError(
            "This data source has no official split, so data.split.method 'given' cannot be used.",
            hint="Use data.split.method: stratified (or random / group).",
        )
    unknown = sorted(set(given) - set(SPLIT_NAMES))
    if unknown or "train" not in given:
        raise DataValidationError(
            f"The official split must name 'train' and may name 'val' and 'test'. Got "
            f"{sorted(given)}.",
            hint="Fix the reader's given_split, or use data.split.method: stratified.",
        )
    pos_of = {str(rec["id"]): i for i, rec in enumerate(records)}
    where: dict[int, str] = {}
    twice = 0
    for name in SPLIT_NAMES:
        for rid in given.get(name, ()):
            pos = pos_of.get(str(rid))
            if pos is None:
                continue  # records filtered out after the source defined its split
            if where.setdefault(pos, name) != name:
                twice += 1
    if twice:
        raise DataValidationError(
            f"The official split lists {twice} records in more than one split.",
            hint="Fix the reader's given_split, or use data.split.method: stratified.",
        )
    missing = len(records) - len(where)
    if missing:
        raise DataValidationError(
            f"The official split leaves {missing} of {len(records)} records out of every split.",
            hint="Fix the reader's given_split, or use data.split.method: stratified.",
        )
    sides: dict[Hashable, set[str]] = {}
    for pos, name in where.items():
        sides.setdefault(groups[pos], set()).add(name)
    leaking = sum(len(s) > 1 for s in sides.values())
    if leaking:
        raise DataValidationError(
            f"The official split puts {leaking} patients (or groups) on more than one side.",
            hint="Use data.split.method: stratified to split by patient instead.",
        )
    parts = {name: [p for p in range(len(records)) if where.get(p) == name] for name in SPLIT_NAMES}
    f_train, f_val, f_test = fractions
    carve = [name for name in ("val", "test") if name not in given]
    if carve:
        pool = parts["train"]
        if len(carve) == 2:
            fr: tuple[float, ...] = (f_train, f_val, f_test)
        else:
            other = f_val if carve[0] == "val" else f_test
            fr = (f_train, other) if f_train + other > 0 else (1.0, 0.0)
            fr = tuple(x / sum(fr) for x in fr)
        pieces = _split_positions(pool, groups, _labels(records, pool), fr, seed)
        parts["train"] = pieces[0]
        for name, piece in zip(carve, pieces[1:], strict=True):
            parts[name] = piece
    return parts


def kfold_splits(
    records: Sequence[Record],
    *,
    folds: int = 5,
    val_fraction: float = 0.15,
    seed: int = 0,
    group_by: str | None = None,
) -> list[dict[str, list[str]]]:
    """Patient-level, label-stratified k-fold cross-validation.

    Whole patients (and ``group_by`` groups) are assigned to ``folds`` folds, balancing every
    class across folds (integer targets; otherwise record counts). Fold ``k`` is the test set
    of split ``k``; the other folds are divided into train and val (``val_fraction`` of them,
    also stratified and patient-level).

    Returns:
        ``folds`` dicts ``{"train", "val", "test"}`` of record ids; each record is in exactly
        one ``test`` list across folds. Every dict is checked with :func:`check_no_leak`.

    Raises:
        ConfigError: for ``folds < 2`` or a ``val_fraction`` outside [0, 1).
        DataValidationError: when there are fewer patients (groups) than folds.
    """
    if folds < 2:
        raise ConfigError(f"kfold needs at least 2 folds. Got {folds}.")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"The validation fraction must be in [0, 1). Got {val_fraction}.")
    ids = _check_ids(records)
    groups = _components(records, group_by)
    if len(set(groups)) < folds:
        raise DataValidationError(
            f"{folds}-fold cross-validation needs at least {folds} patients; "
            f"the data has {len(set(groups))}.",
            hint="Lower data.split.folds or add data.",
        )
    positions = list(range(len(records)))
    labels = _labels(records, positions)
    fold_of = _assign(groups, labels, [1.0 / folds] * folds, seed)
    out = []
    for k in range(folds):
        test = [p for p in positions if fold_of[p] == k]
        rest = [p for p in positions if fold_of[p] != k]
        rest_labels = None if labels is None else [labels[p] for p in rest]
        if val_fraction > 0:
            train, val = _split_positions(
                rest, groups, rest_labels, [1 - val_fraction, val_fraction], seed + k + 1
            )
        else:
            train, val = rest, []
        split = {
            "train": [ids[p] for p in sorted(train)],
            "val": [ids[p] for p in sorted(val)],
            "test": [ids[p] for p in sorted(test)],
        }
        check_no_leak(split, records)
        if group_by:
            check_no_leak(split, records, group_by=group_by)
        out.append(split)
    return out

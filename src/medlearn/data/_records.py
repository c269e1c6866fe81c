"""Records: the one in-memory shape every domain reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from medlearn.errors import DataValidationError

__all__ = ["LoadedData", "Record", "make_record"]


class Record(TypedDict):
    """One example.

    Keys:
        id: unique within a dataset (e.g. ``"test/00017"`` or a file's relative path).
        patient_id: the patient it belongs to; splits never put one patient on two sides.
            Readers without patient information use ``id`` (one record per patient).
        input: what the domain's model consumes (an array, a file path, a SMILES string ...).
        target: the label(s); ``None`` when unknown (prediction only).
        meta: anything else (source file, original split, subgroup columns ...).
    """

    id: str
    patient_id: str
    input: Any
    target: Any
    meta: dict[str, Any]


def make_record(
    id: str,
    input: Any,
    target: Any = None,
    *,
    patient_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Record:
    """Build a :class:`Record`, defaulting ``patient_id`` to ``id``."""
    return Record(
        id=str(id),
        patient_id=str(patient_id) if patient_id is not None else str(id),
        input=input,
        target=target,
        meta=dict(meta or {}),
    )


@dataclass
class LoadedData:
    """What a reader returns.

    Attributes:
        records: all records, in a stable order.
        classes: class names for classification targets (index = label), else ``None``.
        given_split: record ids per split (``train``/``val``/``test``) when the source
            defines official splits, else ``None``.
        source: a short description of where the data came from (a path or catalog name),
            never patient data.
        info: reader-specific facts (image shape, channels, counts) for the report. A
            ``"data_quality"`` entry (``{kind of problem: count}``, or ``{section: {kind:
            count}}``) is copied into ``metrics.json`` and shown in the report's data-quality
            section; readers count every problem they fixed or skipped there.
    """

    records: list[Record]
    classes: list[str] | None = None
    given_split: dict[str, list[str]] | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for row, rec in enumerate(self.records):
            if rec["id"] in seen:
                raise DataValidationError(
                    f"{self.source or 'data'}: record {row} repeats an id used earlier.",
                    hint="Every record needs a unique id (e.g. its relative file path).",
                )
            seen.add(rec["id"])

    def by_id(self) -> dict[str, Record]:
        """Map id → record."""
        return {r["id"]: r for r in self.records}

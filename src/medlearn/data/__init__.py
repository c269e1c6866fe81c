"""Records, loaded data and leak-free splits, shared by every domain."""

from __future__ import annotations

from medlearn.data._records import LoadedData, Record, make_record
from medlearn.data.splits import SPLITTERS, check_no_leak, kfold_splits, make_splits

__all__ = [
    "LoadedData",
    "Record",
    "SPLITTERS",
    "check_no_leak",
    "kfold_splits",
    "make_record",
    "make_splits",
]

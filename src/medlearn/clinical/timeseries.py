"""ICU and EHR time series: the canonical event table, readers (PhysioNet 2012, long-format
CSV/Parquet, FHIR R4), featurisation fitted on training patients, and sequence models.

Importing this module registers the ``timeseries`` reader, the PhysioNet 2012 catalog
entries, and (from the models half) the time-series models and learner.
"""

from __future__ import annotations

import importlib.util

from medlearn.clinical import _ts_catalog  # noqa: F401  (registration)
from medlearn.clinical._ts_catalog import TIMESERIES_SPECS
from medlearn.clinical._ts_data import (
    CLASSES,
    ICU_TYPES,
    PHYSIONET_STATIC,
    PHYSIONET_VARIABLES,
    QualityCounter,
    age_band,
    build_records,
    read_long_table,
    read_physionet_set,
    read_timeseries,
)
from medlearn.clinical._ts_features import PHYSIO_RANGES, SUMMARY_STATS, TimeSeriesFeaturizer
from medlearn.clinical._ts_fhir import LOINC_TO_VARIABLE, read_fhir, record_to_fhir_bundle
from medlearn.registry import READERS

# The models half (torch modules, sklearn baselines, the learner) registers itself on import.
for _mod in ("_ts_models", "_ts_learner"):
    if importlib.util.find_spec(f"medlearn.clinical.{_mod}") is not None:
        importlib.import_module(f"medlearn.clinical.{_mod}")

__all__ = [
    "CLASSES",
    "ICU_TYPES",
    "LOINC_TO_VARIABLE",
    "PHYSIONET_STATIC",
    "PHYSIONET_VARIABLES",
    "PHYSIO_RANGES",
    "QualityCounter",
    "SUMMARY_STATS",
    "TIMESERIES_SPECS",
    "TimeSeriesFeaturizer",
    "age_band",
    "build_records",
    "read_fhir",
    "read_long_table",
    "read_physionet_set",
    "read_timeseries",
    "record_to_fhir_bundle",
]

READERS.add(
    "timeseries",
    read_timeseries,
    run_config=True,
    # options naming other sources, dropped by `medlearn evaluate --data X` (reads X alone)
    source_options=("test", "test_outcomes"),
    description=(
        "ICU/EHR time series: PhysioNet 2012 sets (folder or .tar.gz + Outcomes file), "
        "long-format CSV/Parquet event tables, FHIR R4 Bundle/NDJSON."
    ),
)

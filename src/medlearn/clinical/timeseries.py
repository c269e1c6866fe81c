"""ICU and EHR time series: the canonical event table, readers (PhysioNet 2012, long-format
CSV/Parquet, FHIR R4), featurisation fitted on training patients, and sequence models.

Importing this module registers the ``timeseries`` reader, models and learner.
"""

from __future__ import annotations

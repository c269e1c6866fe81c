"""Clinical data: tabular risk models, survival analysis and ICU/EHR time series.

Importing this package registers its readers, models, learners and task handlers.
"""

from __future__ import annotations

from medlearn.clinical import survival, tabular, timeseries  # noqa: F401  (registration)

__all__: list[str] = []

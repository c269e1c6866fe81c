"""Clinical data: tabular risk models and survival analysis (EHR time series to follow).

Importing this package registers its readers, models, learners and task handlers.
"""

from __future__ import annotations

from medlearn.clinical import survival, tabular  # noqa: F401  (registration)

__all__: list[str] = []

"""Survival analysis: readers, Cox / random survival forest / DeepSurv learners, the task.

Importing this module registers the ``survival`` reader, the catalog entries ``whas``,
``support``, ``gbsg`` and ``sim_treatment``, the models ``cox_ph``, ``rsf``,
``gradient_boosting_survival`` and ``deepsurv``, the ``survival`` learner and the
``survival`` task handler. See ``docs/survival.md``.
"""

from __future__ import annotations

from medlearn.clinical import (  # noqa: F401  (registration)
    _survival_data,
    _survival_learner,
    _survival_models,
    _survival_task,
)
from medlearn.clinical._survival_data import SurvivalSchema, read_survival
from medlearn.clinical._survival_learner import SurvivalLearner
from medlearn.clinical._survival_models import BreslowBaseline, cox_partial_nll
from medlearn.clinical._survival_task import SurvivalTask, default_horizons

__all__ = [
    "BreslowBaseline",
    "SurvivalLearner",
    "SurvivalSchema",
    "SurvivalTask",
    "cox_partial_nll",
    "default_horizons",
    "read_survival",
]

"""Tabular clinical data: reader, schema, preprocessing, classical models and the learner.

Importing this module registers:

- the reader ``READERS["tabular"]`` (:func:`read_tabular`; CSV with any delimiter, Parquet,
  headerless UCI ``.data`` files, ARFF);
- the catalog datasets ``heart_cleveland``, ``pima``, ``breast_cancer_wisconsin`` and
  ``chronic_kidney_disease``;
- the models ``logistic_regression``, ``svm``, ``random_forest``, ``extra_trees``,
  ``hist_gradient_boosting`` and ``mlp`` (meta ``domain="clinical"``, ``learner="tabular"``,
  ``reader="tabular"``);
- the learner ``LEARNERS["tabular"]`` (:class:`TabularLearner`).
"""

from __future__ import annotations

from medlearn._lazy import lazy_attributes
from medlearn.clinical import _tabular_catalog  # noqa: F401  (registers datasets)
from medlearn.clinical._tabular_data import (
    ColumnSpec,
    TargetRule,
    check_rows,
    infer_schema,
    load_schema,
    parse_target,
    read_table,
    read_tabular,
)
from medlearn.clinical._tabular_learner import (
    TRUSTED_TYPES,
    TabularLearner,
    build_preprocessor,
    load_skops,
)
from medlearn.clinical._tabular_models import TabularMLP
from medlearn.registry import READERS

__all__ = [
    "ColumnSpec",
    "TRUSTED_TYPES",
    "TabularLearner",
    "TabularMLP",
    "TargetRule",
    "build_preprocessor",
    "check_rows",
    "infer_schema",
    "load_schema",
    "load_skops",
    "parse_target",
    "read_table",
    "read_tabular",
]

READERS.add(
    "tabular",
    read_tabular,
    run_config=True,
    description="CSV / Parquet / UCI .data / ARFF tables, one record per row.",
)


# TabularMLPModule subclasses Lightning's LightningModule, which takes seconds to import: it is
# imported on first use, and this name keeps working
__getattr__ = lazy_attributes(__name__, {"TabularMLPModule": "medlearn.clinical._tabular_module"})

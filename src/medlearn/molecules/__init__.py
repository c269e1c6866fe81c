"""Molecules for drug discovery: SMILES data, graph neural networks for property prediction,
fingerprint baselines, and molecule generation.

Importing this package registers its reader, catalog entries, scaffold splitters, models,
learners and task handlers. Needs the ``molecules`` extra (RDKit, PyTorch Geometric, SELFIES).
"""

from __future__ import annotations

import importlib
import importlib.util

import rdkit  # noqa: F401  (an ImportError here marks the domain as not installed)

for _mod in (
    "_data",
    "_splits",
    "_catalog",
    "_models",
    "_learner",
    "_task",
    "_generate",
    "_generate_task",
):
    if importlib.util.find_spec(f"medlearn.molecules.{_mod}") is not None:
        importlib.import_module(f"medlearn.molecules.{_mod}")

__all__: list[str] = []

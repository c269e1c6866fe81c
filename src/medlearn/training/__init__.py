"""Training: one trainer over Lightning for every torch model, seeding, threads, and the
learner contract between the pipeline and the domains.

- :func:`fit_module` trains any ``lightning.pytorch.LightningModule`` reproducibly, with
  crash-safe ``last.ckpt`` / ``best.ckpt`` and exact resume; it returns a :class:`FitOutcome`.
- :func:`seed_everything` and :func:`configure_threads` are the one place seeds and CPU
  threads are set.
- :class:`Learner` (with :class:`FitReport`, :class:`Explanation`, :class:`BadInput`) is what
  a domain implements for the pipeline.
- ``medlearn.training.testing`` holds a tiny model and dataset for tests.

Lightning takes seconds to import, so the trainer is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medlearn._lazy import lazy_attributes
from medlearn.training.learner import BadInput, Explanation, FitReport, Learner

if TYPE_CHECKING:
    from medlearn.training._seed import seed_everything
    from medlearn.training._threads import configure_threads
    from medlearn.training._trainer import AtomicCheckpointIO, FitOutcome, SeededSampler, fit_module

__all__ = [
    "AtomicCheckpointIO",
    "BadInput",
    "Explanation",
    "FitOutcome",
    "FitReport",
    "Learner",
    "SeededSampler",
    "configure_threads",
    "fit_module",
    "seed_everything",
]

_LAZY = {
    "AtomicCheckpointIO": "medlearn.training._trainer",
    "FitOutcome": "medlearn.training._trainer",
    "SeededSampler": "medlearn.training._trainer",
    "fit_module": "medlearn.training._trainer",
    "configure_threads": "medlearn.training._threads",
    "seed_everything": "medlearn.training._seed",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""Task handlers: everything the pipeline does after ``fit``, once per task kind.

The pipeline (``medlearn.pipeline``) owns what every run shares: the run directory, provenance,
loading, splitting, building and fitting the learner, writing ``metrics.json``,
``predictions.parquet`` and the bundle. What depends on the *kind of task* lives in a
:class:`TaskHandler`, looked up in :data:`medlearn.registry.TASKS` by ``cfg.task``:

==================  ===========================================  ==============================
task kind           handler                                      lives in
==================  ===========================================  ==============================
binary, multiclass  calibrate + threshold on val, classification  ``medlearn.tasks.classification``
regression          target-scale metrics                          ``medlearn.tasks.regression``
segmentation        volumes, Dice/HD95, lesion detection          ``medlearn.imaging``
survival            risk scores, C-index, KM curves               ``medlearn.clinical``
==================  ===========================================  ==============================

A handler is a class with a no-argument constructor and four methods:

* ``run(ctx) -> TaskOutcome`` — after fitting: predict the val and test splits, fit any
  post-processing on val (calibration, threshold), score with bootstrap CIs, write extra
  artifacts into ``ctx.run_dir`` (e.g. ``gallery.npz``). Returns the predictions table, the
  ``metrics`` block (split → metric → ``{"value", "ci95"}``), extra top-level fields of
  ``metrics.json`` and the fields the bundle manifest needs to predict later.
* ``score(frame, cfg) -> dict`` — metrics with CIs from a predictions table written by
  ``run``; used for pooled out-of-fold metrics in cross-validation (``metrics.cv``).
* ``evaluate(learner, manifest, cfg, records, out_dir) -> TaskOutcome`` — score a bundle on
  new labelled records (``medlearn evaluate``), post-processing taken from the manifest.
* ``predict(learner, manifest, records, explain_dir=None, output_dir=None) -> list[dict]`` —
  one JSON-ready dict per record (``medlearn predict`` and the server); ``explain_dir`` not
  None asks for explanations, written as files there; ``output_dir`` receives file outputs
  (e.g. a predicted mask as NIfTI with the input's affine) whose paths go in the rows.
* optional ``analyse(frame, cfg) -> dict`` — further analyses of pooled out-of-fold
  predictions (subgroups, decision curve), stored under ``metrics.json["cv_analysis"]``.
* ``run`` must cope with an empty ``ctx.parts["test"]``: the refit after cross-validation
  has only train and val.
* ``report_sections(run_dir, doc, frame, cfg, manifest) -> ReportParts`` — what the task adds
  to ``report.html`` (the pipeline supplies summary, training curves and model card).

Handlers never import a domain package; domain handlers (segmentation, survival) live in their
domain and register themselves. A domain can also specialise a shared task kind: a model
registered with ``handler="molecules"`` is handled by the ``TASKS`` entry
``"molecules:<task>"`` when one exists (e.g. multi-task heads with missing labels, ensemble
uncertainty), else by the plain ``"<task>"`` entry. The key is stored in the bundle manifest
(``handler``) so ``evaluate``, ``predict`` and ``report`` find the same handler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record
    from medlearn.evaluation import GalleryItem
    from medlearn.training import FitReport

__all__ = [
    "ReportParts",
    "RunContext",
    "TaskHandler",
    "TaskOutcome",
    "handler_for",
    "handler_key",
]


@dataclass
class RunContext:
    """What a handler's :meth:`TaskHandler.run` gets after the learner is fitted.

    Attributes:
        cfg: the validated run file.
        data: everything the reader loaded.
        parts: records per split (``train``, ``val``, ``test``).
        learner: the fitted learner (:class:`medlearn.training.Learner`).
        fit: what ``fit`` reported.
        run_dir: where artifacts go.
        echo: progress lines for the user (never patient values).
    """

    cfg: RunConfig
    data: LoadedData
    parts: dict[str, list[Record]]
    learner: Any
    fit: FitReport
    run_dir: Path
    echo: Callable[[str], None] = print


@dataclass
class TaskOutcome:
    """What :meth:`TaskHandler.run` and :meth:`TaskHandler.evaluate` return.

    Attributes:
        predictions: one row per record: ``id``, ``patient_id``, ``split``, target column(s),
            prediction column(s); written to ``predictions.parquet``.
        metrics: split → metric name → ``{"value": float | None, "ci95": [lo, hi] | None}``
            (multi-task metrics add ``"per_task"``); becomes ``metrics.json["metrics"]``.
        doc: extra top-level fields of ``metrics.json`` (``threshold``, ``calibration``,
            ``subgroups``, ``uncalibrated`` ...).
        manifest: fields the bundle manifest needs for ``predict`` and ``evaluate`` (e.g.
            ``threshold``, ``calibration``), JSON-serialisable.
        predict_seconds: wall time spent predicting.
    """

    predictions: pd.DataFrame
    metrics: dict[str, Any]
    doc: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    predict_seconds: float = 0.0


@dataclass
class ReportParts:
    """What a task adds to the report.

    Attributes:
        sections: ``(anchor, title, html_body)`` in order, placed after the summary.
        gallery: explained cases (drawn by the shared gallery section).
        notes: remarks shown under the header.
        classes: class names for the summary and confusion tables (classification only).
    """

    sections: list[tuple[str, str, str]] = field(default_factory=list)
    gallery: list[GalleryItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


@runtime_checkable
class TaskHandler(Protocol):
    """Everything after ``fit`` for one task kind (see the module docstring)."""

    def run(self, ctx: RunContext) -> TaskOutcome: ...

    def score(self, frame: pd.DataFrame, cfg: RunConfig) -> dict[str, Any]: ...

    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: RunConfig | None,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome: ...

    def predict(
        self,
        learner: Any,
        manifest: dict[str, Any],
        records: Sequence[Record],
        explain_dir: Path | None = None,
        output_dir: Path | None = None,
    ) -> list[dict[str, Any]]: ...

    def report_sections(
        self,
        run_dir: Path,
        doc: dict[str, Any],
        frame: pd.DataFrame,
        cfg: RunConfig | None,
        manifest: dict[str, Any],
    ) -> ReportParts: ...


def handler_key(task: str, handler: str | None = None) -> str:
    """The ``TASKS`` key for ``task``: ``"<handler>:<task>"`` when a domain registered that
    specialisation, else ``task``."""
    from medlearn.registry import TASKS

    if handler:
        key = f"{handler}:{task}"
        if key in TASKS:
            return key
    return task


def handler_for(task: str, handler: str | None = None) -> TaskHandler:
    """A new handler for the task kind ``task`` (from :data:`medlearn.registry.TASKS`),
    specialised by the domain key ``handler`` when one is registered (see :func:`handler_key`).
    """
    from medlearn.registry import TASKS

    return TASKS.get(handler_key(task, handler))()

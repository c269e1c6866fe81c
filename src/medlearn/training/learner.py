"""The contract between the domain-agnostic pipeline and a domain's supervised model.

The pipeline (``medlearn.pipeline``) never imports a domain. It finds the learner class for a
model through the registries (``MODELS.meta(name)["domain"]`` → ``LEARNERS.get(domain)``) and
talks to it only through this protocol. Calibration, thresholds, metrics, reports and bundles
are the pipeline's job; the learner owns data loading, preprocessing and the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = ["BadInput", "Explanation", "FitReport", "Learner"]


@dataclass
class FitReport:
    """What :meth:`Learner.fit` reports back.

    Attributes:
        fit_seconds: wall time of training (all ensemble members).
        epochs: epochs completed per member.
        stopped_by: why each member stopped (``max_epochs``, ``early_stopping``, ``max_time``).
        history: one dict per epoch (``member``, ``epoch``, ``train_loss``, ``val_loss``,
            ``val_<metric>`` ...), for the report's training curves.
        samples_per_second: training throughput.
        extra: anything else worth recording (FLOP counts, best scores).
    """

    fit_seconds: float
    epochs: list[int]
    stopped_by: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    samples_per_second: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Explanation:
    """An attribution for one input, drawn in reports and returned by ``predict --explain``.

    Attributes:
        image: the input as shown to a person, ``(H, W)`` or ``(H, W, 3)`` floats in [0, 1]
            (image models; ``None`` otherwise).
        heatmap: attribution ``(H, W)`` in [0, 1] at the image's resolution (image models).
        target: the class index explained.
        method: e.g. ``"gradcam"``, ``"shap_tree"``.
        features: per-feature attributions (tabular models), feature name → value in the
            model's output space (log-odds or probability for classes, target units for
            regression); positive values push towards ``target``.
        atoms: per-atom attributions ``(n_atoms,)`` (molecule models), in the atom order of
            the record's canonical SMILES, same units and sign convention as ``features``.
    """

    image: np.ndarray | None = None
    heatmap: np.ndarray | None = None
    target: int = 0
    method: str = ""
    features: dict[str, float] | None = None
    atoms: np.ndarray | None = None


@dataclass
class BadInput:
    """One input that could not be used: which one and why (never its content)."""

    source: str
    message: str


@runtime_checkable
class Learner(Protocol):
    """A domain's supervised model, built from a run file and trained on records.

    A learner that honours ``model.init_from`` or ``training.freeze_backbone_epochs`` says so
    with a class attribute ``supports_init_from = True`` / ``supports_freeze_backbone =
    True``; for any other, the pipeline refuses the field rather than ignore it.
    """

    classes: list[str]

    @classmethod
    def from_config(cls, cfg: RunConfig, data: LoadedData) -> Learner:
        """Build an unfitted learner for ``cfg`` (data gives classes, channels, shapes)."""
        ...

    def fit(
        self, train: Sequence[Record], val: Sequence[Record], *, work_dir: Path, resume: bool
    ) -> FitReport:
        """Fit on ``train``, selecting and early-stopping on ``val``; checkpoints go under
        ``work_dir`` (``work_dir/checkpoints``); ``resume`` continues from the last one."""
        ...

    def predict_logits(self, records: Sequence[Record], *, tta: bool = False) -> np.ndarray:
        """Uncalibrated logits ``(N, C)`` (log-probabilities for non-neural models)."""
        ...

    def explain(self, records: Sequence[Record], targets: Sequence[int]) -> list[Explanation]:
        """One explanation per record for class ``targets[i]``."""
        ...

    def read_inputs(self, sources: Sequence[str]) -> tuple[list[Record], list[BadInput]]:
        """Turn user inputs (file paths) into records, reporting every unusable one."""
        ...

    def save(self, directory: Path) -> dict[str, Any]:
        """Write weights and preprocessing into ``directory``; return manifest fields."""
        ...

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> Learner:
        """Rebuild a fitted learner from a bundle directory (checksums already verified).
        Must not execute code from the files (``torch.load(weights_only=True)``)."""
        ...

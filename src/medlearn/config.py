"""The run file: a pydantic schema, YAML loading and ``--set a.b=value`` overrides.

A run file describes one experiment (see DESIGN.md). Unknown keys are errors at every level.
Components are ``{name: ..., params: {...}}``; ``params`` are checked against the registered
constructor's signature by :func:`check_params` when the component is built.

Example:
    >>> cfg = load_config("examples/imaging/pneumoniamnist.yaml", overrides=["training.lr=1e-4"])
    >>> cfg.training.lr
    0.0001
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medlearn.errors import ConfigError

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "EvaluationConfig",
    "ModelConfig",
    "RunConfig",
    "SplitConfig",
    "TrainingConfig",
    "apply_overrides",
    "check_params",
    "dump_config",
    "load_config",
    "validate_config",
]

TaskKind = Literal[
    "binary", "multiclass", "multilabel", "regression", "segmentation", "survival", "generation"
]
SplitMethod = Literal[
    "given", "random", "stratified", "group", "kfold", "scaffold", "scaffold_balanced"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(_Strict):
    """How records are split. Every method keeps each patient on one side.

    ``given`` uses the source's official split (falling back to ``stratified`` for a split
    the source lacks, e.g. no ``val``); the others split patients with ``fractions``
    (train, val, test) under ``seed``. ``group`` keeps every value of the record ``meta`` key
    ``group_by`` (e.g. a hospital) on one side; the others group by ``patient_id``.
    ``kfold`` is patient-level, label-stratified cross-validation: each of ``folds`` folds is
    the test set once and a ``fractions[1]`` share of the rest is validation; pooled
    out-of-fold metrics go under ``metrics.cv`` and the bundled model is refitted on all
    records (with the same validation share for calibration and early stopping).
    ``scaffold`` and ``scaffold_balanced`` (molecules) keep every Bemis–Murcko scaffold on one
    side: ``scaffold`` is deterministic (largest scaffold sets to train, as in MoleculeNet);
    ``scaffold_balanced`` shuffles scaffold sets under ``seed`` (large sets still to train, as
    in Chemprop).
    """

    method: SplitMethod = "given"
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    group_by: str | None = None
    folds: int = Field(5, ge=2)

    @field_validator("fractions")
    @classmethod
    def _fractions_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"fractions must be 3 non-negative numbers summing to 1. Got {v}.")
        return v


class AugmentConfig(_Strict):
    """A registered augmentation preset (``medlearn.registry.TRANSFORMS``)."""

    name: str = "default"
    params: dict[str, Any] = Field(default_factory=dict)


class DataConfig(_Strict):
    """Where the data comes from and how it is split.

    Attributes:
        dataset: a catalog name (``medlearn data list``) ...
        path: ... or a user's file or folder; overrides ``dataset``.
        target: the column or key holding the label; a list names several targets
            (multi-task molecules, e.g. the 12 Tox21 assays), for readers that accept it.
        split: the split method.
        options: reader options (e.g. ``size``, ``window`` for DICOM), checked by the reader.
        augment: training-time augmentation preset, or ``null`` for none.
    """

    dataset: str | None = None
    path: str | None = None
    target: str | list[str] = "label"
    split: SplitConfig = Field(default_factory=SplitConfig)
    options: dict[str, Any] = Field(default_factory=dict)
    augment: AugmentConfig | None = Field(default_factory=AugmentConfig)

    @model_validator(mode="after")
    def _has_source(self) -> DataConfig:
        if not self.dataset and not self.path:
            raise ValueError("data needs a 'dataset' (catalog name) or a 'path'.")
        return self


class ModelConfig(_Strict):
    """The model: a registry name with constructor params.

    Attributes:
        name: ``medlearn models list`` shows all.
        params: keyword arguments of the registered constructor.
        init_from: a run directory or bundle whose weights initialise the model
            (transfer learning / fine-tuning). A layer is copied whole or not at all: layers
            whose shapes differ (e.g. the head for a different number of classes) are left
            freshly initialised.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    init_from: str | None = None


class TrainingConfig(_Strict):
    """Optimisation settings shared by every torch model."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1.0e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    scheduler: Literal["none", "cosine", "onecycle"] = "none"
    seed: int = 0
    deterministic: bool = True
    max_minutes: float | None = Field(10.0, gt=0)
    patience: int | None = Field(None, ge=1)
    monitor: str = "auroc"
    class_weights: Literal["none", "balanced"] = "balanced"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    ensemble: int = Field(1, ge=1)
    freeze_backbone_epochs: int = Field(0, ge=0)
    num_threads: int | None = Field(None, ge=1)
    progress: bool = True


class EvaluationConfig(_Strict):
    """Evaluation settings.

    Attributes:
        metrics: registry names (``medlearn metrics list``); shown first in summaries.
        bootstrap: bootstrap resamples for the 95% CIs (0 disables CIs).
        subgroups: ``meta`` keys to break metrics down by.
        threshold: how the decision threshold is chosen on validation data: ``youden``,
            ``f1``, ``fixed`` (0.5), or the lowest/highest threshold reaching
            ``threshold_target`` ``sensitivity`` / ``specificity``.
        threshold_target: the sensitivity or specificity to reach (0-1).
        calibration: post-hoc calibration fitted on validation data (``auto`` picks the
            method with the lowest validation log-loss).
        decision_curve: draw decision-curve analysis (net benefit) in the report.
        horizons: survival tasks: times at which calibration and time-dependent AUC are shown.
        tta: test-time augmentation at prediction time.
        gallery: how many correct and incorrect test cases the report explains.
    """

    metrics: list[str] = Field(
        default_factory=lambda: [
            "auroc",
            "auprc",
            "accuracy",
            "balanced_accuracy",
            "sensitivity",
            "specificity",
            "f1",
            "brier",
            "ece",
        ]
    )
    bootstrap: int = Field(1000, ge=0)
    subgroups: list[str] = Field(default_factory=list)
    threshold: Literal["youden", "f1", "fixed", "sensitivity", "specificity"] = "youden"
    threshold_target: float | None = Field(None, gt=0, lt=1)
    calibration: Literal["none", "temperature", "platt", "isotonic", "auto"] = "temperature"
    decision_curve: bool = True
    horizons: list[float] = Field(default_factory=list)
    tta: bool = False
    gallery: int = Field(8, ge=0)

    @model_validator(mode="after")
    def _target_for_threshold(self) -> EvaluationConfig:
        if self.threshold in ("sensitivity", "specificity") and self.threshold_target is None:
            raise ValueError(
                f"threshold: {self.threshold} needs threshold_target (e.g. 0.9 for 90%)."
            )
        return self


class RunConfig(_Strict):
    """A whole run file.

    ``compare`` lists further models that ``medlearn compare`` trains on the same splits as
    ``model`` and ranks with paired bootstrap CIs of the differences.
    """

    name: str = "run"
    task: TaskKind = "binary"
    data: DataConfig
    model: ModelConfig
    compare: list[ModelConfig] = Field(default_factory=list)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)


# --- loading ---------------------------------------------------------------------------------


def _parse_scalar(text: str) -> Any:
    """Parse an override value with YAML rules (``1e-4`` → float, ``[a, b]`` → list)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads "1e-4" as a string; accept it as a float as users expect.
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides to a raw (unvalidated) run-file mapping, in place.

    Raises:
        ConfigError: for an override without ``=``; unknown keys are caught by validation.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"An override must look like key.path=value. Got {item!r}.",
                hint="For example: --set training.lr=1e-4",
            )
        path, _, text = item.partition("=")
        keys = [k for k in path.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"An override needs a key before '='. Got {item!r}.")
        node: dict[str, Any] = raw
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"Cannot set {path!r}: {key!r} holds a value, not a section.",
                    hint="Override the whole value instead, e.g. --set " + key + "=...",
                )
            node = child
        node[keys[-1]] = _parse_scalar(text)
    return raw


def _format_validation_error(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent_model = _model_at(RunConfig, [str(p) for p in err["loc"][:-1]])
            allowed = sorted(parent_model.model_fields) if parent_model else []
            lines.append(f"unknown key '{loc}' (allowed here: {', '.join(allowed)})")
        elif err["type"] == "missing":
            lines.append(f"missing key '{loc}'")
        else:
            lines.append(f"'{loc}': {err['msg']}")
    return ConfigError(
        f"{source}: invalid run file: " + "; ".join(lines) + ".",
        hint="See examples/ for complete run files; DESIGN.md lists every key.",
    )


def _model_at(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    for key in path:
        field = model.model_fields.get(key)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if nxt is None:
            return None
        model = nxt
    return model


def validate_config(raw: Mapping[str, Any], *, source: str = "run file") -> RunConfig:
    """Validate a raw mapping into a :class:`RunConfig`, raising :class:`ConfigError`."""
    try:
        return RunConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise _format_validation_error(exc, source) from None


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """Read a YAML run file, apply ``key=value`` overrides and validate it.

    Raises:
        ConfigError: if the file is missing, is not valid YAML, or fails validation.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"Run file {str(p)!r} does not exist.",
            hint="Pass the path of a YAML run file, e.g. examples/imaging/pneumoniamnist.yaml",
        )
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{p}: not valid YAML{where}.", hint="Check indentation and colons."
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a run file must be a mapping of keys. Got {type(raw).__name__}.")
    apply_overrides(raw, overrides)
    return validate_config(raw, source=str(p))


def dump_config(cfg: RunConfig, extra: Mapping[str, Any] | None = None) -> str:
    """Serialise a resolved config to YAML, with ``extra`` provenance keys under ``_run``."""
    data = json.loads(cfg.model_dump_json())
    if extra:
        data["_run"] = dict(extra)
    return yaml.safe_dump(data, sort_keys=False)


def check_params(
    fn: Callable[..., Any], params: Mapping[str, Any], *, what: str, reserved: Iterable[str] = ()
) -> None:
    """Refuse ``params`` that ``fn``'s signature does not accept, listing the accepted ones.

    Args:
        fn: the registered constructor.
        params: user-supplied keyword arguments.
        what: the component, for the message (``"model 'resnet18'"``).
        reserved: parameters medlearn passes itself (e.g. ``in_channels``), refused from users.
    """
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    reserved = set(reserved)
    accepted = [
        n
        for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in reserved
    ]
    bad = [k for k in params if k not in accepted]
    if bad:
        raise ConfigError(
            f"Unknown params for {what}: {', '.join(sorted(bad))}. "
            f"Accepted: {', '.join(accepted) or '(none)'}.",
            hint="Fix the names under model.params (or the matching params section).",
        )

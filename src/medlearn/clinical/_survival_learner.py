"""The :class:`SurvivalLearner`: standardisation, a survival model, treatment arms, bundles.

It implements :class:`medlearn.training.Learner` for ``task: survival``. Besides the generic
``predict_logits`` (the risk as ``(N, 1)``) it offers :meth:`~SurvivalLearner.predict_risk`,
:meth:`~SurvivalLearner.predict_survival` and, when the data name a treatment column,
:meth:`~SurvivalLearner.risk_by_arm` (DeepSurv's treatment recommender).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn._io import atomic_write_json
from medlearn.clinical._survival_data import SurvivalSchema, parse_table
from medlearn.errors import CheckpointError, ConfigError, DataValidationError, NotFittedError
from medlearn.registry import LEARNERS, MODELS
from medlearn.training import BadInput, Explanation, FitReport

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = ["SurvivalLearner", "survival_arrays"]


def survival_arrays(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """``(time, event)`` arrays ``(N,)`` of labelled records.

    Raises:
        DataValidationError: if a record has no survival target.
    """
    missing = sum(1 for r in records if not isinstance(r.get("target"), dict))
    if missing:
        raise DataValidationError(
            f"{missing} record(s) have no {{'time', 'event'}} target.",
            hint="Survival evaluation needs labelled rows (time and event columns).",
        )
    t = np.array([float(r["target"]["time"]) for r in records], dtype=np.float64)
    e = np.array([int(r["target"]["event"]) for r in records], dtype=np.int64)
    return t, e


class SurvivalLearner:
    """A survival model on standardised covariate vectors.

    Args:
        model: registry name (``cox_ph``, ``rsf``, ``gradient_boosting_survival``,
            ``deepsurv``).
        model_params: the model's constructor params.
        schema: how covariate vectors are built (see
            :class:`~medlearn.clinical._survival_data.SurvivalSchema`).
        training: torch training settings (DeepSurv): ``epochs``, ``batch_size``, ``lr``,
            ``weight_decay``, ``optimizer``, ``seed``, ``deterministic``, ``max_minutes``,
            ``patience``, ``monitor``, ``num_threads``, ``progress``.
    """

    domain = "clinical"
    classes: list[str] = []

    def __init__(
        self,
        *,
        model: str,
        schema: SurvivalSchema,
        model_params: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.model_params = dict(model_params or {})
        self.schema = schema
        self.training = {
            "epochs": 100,
            "batch_size": 256,
            "lr": 1e-3,
            "weight_decay": 0.0,
            "optimizer": "adam",
            "seed": 0,
            "deterministic": True,
            "max_minutes": None,
            "patience": 20,
            "monitor": "loss",
            "num_threads": None,
            "progress": False,
            **(training or {}),
        }
        self.classes = []
        self.model_: Any = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: RunConfig, data: LoadedData) -> SurvivalLearner:
        """Build from a run file; the reader's schema comes from ``data.info["survival"]``."""
        from medlearn.config import check_params

        if cfg.task != "survival":
            raise ConfigError(
                f"Model {cfg.model.name!r} is a survival model; the run file says task "
                f"{cfg.task!r}.",
                hint="Set task: survival.",
            )
        check_params(MODELS.get(cfg.model.name), cfg.model.params, what=f"model {cfg.model.name!r}")
        raw = data.info.get("survival")
        if not raw:
            raise ConfigError(
                f"{data.source}: was not read by the survival reader.",
                hint="Survival models read DeepSurv HDF5 or CSV/Parquet with time/event columns.",
            )
        t = cfg.training
        params = dict(cfg.model.params)
        if cfg.model.name in ("rsf", "gradient_boosting_survival"):
            params.setdefault("seed", t.seed)
        return cls(
            model=cfg.model.name,
            model_params=params,
            schema=SurvivalSchema.from_dict(raw),
            training={
                "epochs": t.epochs,
                "batch_size": t.batch_size,
                "lr": t.lr,
                "weight_decay": t.weight_decay,
                "optimizer": t.optimizer,
                "seed": t.seed,
                "deterministic": t.deterministic,
                "max_minutes": t.max_minutes,
                "patience": t.patience,
                "monitor": "c_index" if t.monitor == "c_index" else "loss",
                "num_threads": t.num_threads,
                "progress": t.progress,
            },
        )

    # -- arrays -----------------------------------------------------------------------------
    def _raw(self, records: Sequence[Record]) -> np.ndarray:
        d = len(self.schema.features)
        x = np.zeros((len(records), d), dtype=np.float64)
        for i, r in enumerate(records):
            v = np.asarray(r["input"], dtype=np.float64).reshape(-1)
            if v.shape[0] != d:
                raise DataValidationError(
                    f"record {i} has {v.shape[0]} covariates; the model expects {d}.",
                    hint=f"Covariates: {', '.join(self.schema.features[:20])}.",
                )
            x[i] = v
        if not np.all(np.isfinite(x)):
            rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
            raise DataValidationError(
                f"{len(rows)} record(s) hold missing or infinite covariates (first: {rows[0]}).",
                hint="Impute or drop them before prediction.",
            )
        return x

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        assert self.mean_ is not None and self.scale_ is not None
        return (x - self.mean_) / self.scale_

    def _check_fitted(self) -> None:
        if self.model_ is None or self.mean_ is None:
            raise NotFittedError(
                "This SurvivalLearner is not fitted yet. Call fit(...) or "
                "SurvivalLearner.load(...) before predicting."
            )

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[Record], val: Sequence[Record], *, work_dir: Path, resume: bool
    ) -> FitReport:
        """Fit on ``train`` (standardisation on train only); DeepSurv early-stops on ``val``."""
        t0 = time.perf_counter()
        x = self._raw(train)
        t, e = survival_arrays(train)
        if e.sum() < 2:
            raise DataValidationError(
                f"The training split has {int(e.sum())} events; at least 2 are needed.",
                hint="Use more data or a split with more events in train.",
            )
        self.mean_ = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        xs = self._standardise(x)
        model = MODELS.get(self.model)(**self.model_params)
        kwargs: dict[str, Any] = {}
        if self.model == "deepsurv":
            xv = self._standardise(self._raw(val)) if val else np.zeros((0, x.shape[1]))
            tv, ev = survival_arrays(val) if val else (np.zeros(0), np.zeros(0))
            kwargs = {
                "x_val": xv,
                "t_val": tv,
                "e_val": ev,
                "work_dir": Path(work_dir),
                "resume": resume,
                "training": self.training,
            }
        info = model.fit(xs, t, e, **kwargs)
        self.model_ = model
        seconds = time.perf_counter() - t0
        history = info.pop("history", [])
        epochs = info.pop("epochs", 1)
        stopped = info.pop("stopped_by", "converged")
        samples = info.pop("samples_seen", len(train))
        return FitReport(
            fit_seconds=seconds,
            epochs=[int(epochs)],
            stopped_by=[str(stopped)],
            history=[{"member": 0, **h} for h in history],
            samples_per_second=samples / max(seconds, 1e-9),
            extra={k: v for k, v in info.items() if v is not None},
        )

    # -- inference --------------------------------------------------------------------------
    def predict_risk(self, records: Sequence[Record]) -> np.ndarray:
        """Risk scores ``(N,)`` (higher = earlier event)."""
        self._check_fitted()
        return self.model_.risk(self._standardise(self._raw(records)))

    def predict_survival(self, records: Sequence[Record], times: Sequence[float]) -> np.ndarray:
        """Survival probabilities ``(N, T)`` at ``times``."""
        self._check_fitted()
        return self.model_.survival(self._standardise(self._raw(records)), times)

    def predict_logits(self, records: Sequence[Record], *, tta: bool = False) -> np.ndarray:
        """The risk as ``(N, 1)``, for generic code that asks for logits."""
        return self.predict_risk(records)[:, None]

    @property
    def treatment_index(self) -> int | None:
        """Index of the 0/1 treatment covariate, or ``None``."""
        return self.schema.treatment

    def _arms(self, records: Sequence[Record]) -> list[np.ndarray]:
        j = self.schema.treatment
        if j is None:
            raise ConfigError(
                "This model has no treatment column.",
                hint="Train with data.options.treatment naming the 0/1 treatment column.",
            )
        x = self._raw(records)
        arms = []
        for arm in (0.0, 1.0):
            xa = x.copy()
            xa[:, j] = arm
            arms.append(self._standardise(xa))
        return arms

    def risk_by_arm(self, records: Sequence[Record]) -> np.ndarray:
        """Risk ``(N, 2)`` of each patient under control (0) and treatment (1)."""
        self._check_fitted()
        return np.stack([self.model_.risk(xa) for xa in self._arms(records)], axis=1)

    def contributions(self, records: Sequence[Record]) -> np.ndarray | None:
        """Per-covariate contributions ``(N, D)`` to the log-risk (Cox: exact; DeepSurv:
        gradient × input on standardised covariates); ``None`` for tree models."""
        self._check_fitted()
        if not hasattr(self.model_, "contributions"):
            return None
        return self.model_.contributions(self._standardise(self._raw(records)))

    def explain(self, records: Sequence[Record], targets: Sequence[int]) -> list[Explanation]:
        """No image explanations for tabular survival data (see :meth:`contributions`)."""
        return []

    def read_inputs(self, sources: Sequence[str]) -> tuple[list[Record], list[BadInput]]:
        """Read CSV/Parquet files of covariate rows (time/event columns optional).

        Every unusable row or file is reported as a :class:`BadInput`; nothing is dropped.
        """
        import pandas as pd

        self._check_fitted()
        schema = self.schema
        if not schema.columns:  # trained on HDF5: columns are named by the features
            schema = SurvivalSchema(
                features=list(schema.features),
                columns=list(schema.features),
                treatment=schema.treatment,
                duration=schema.duration or "time",
                event=schema.event or "event",
            )
        records: list[Record] = []
        bad: list[BadInput] = []
        for src in sources:
            path = Path(src)
            if not path.is_file() or path.suffix.lower() not in (".csv", ".parquet", ".pq"):
                bad.append(BadInput(str(src), "not a CSV or Parquet file"))
                continue
            try:
                frame = (
                    pd.read_parquet(path)
                    if path.suffix.lower() in (".parquet", ".pq")
                    else pd.read_csv(path)
                )
                recs, rows = parse_table(frame, schema, str(path), require_target=False)
            except (DataValidationError, ValueError, OSError) as exc:
                bad.append(BadInput(str(src), getattr(exc, "message", type(exc).__name__)))
                continue
            by_row: dict[int, list[str]] = {}
            for row, col, why in rows:
                by_row.setdefault(row, []).append(f"column {col!r}: {why}")
            for row, msgs in sorted(by_row.items()):
                bad.append(BadInput(f"{src} row {row}", "; ".join(msgs)))
            records.extend(recs)
        return records, bad

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the model and preprocessing into ``directory``; return manifest fields."""
        self._check_fitted()
        assert self.mean_ is not None and self.scale_ is not None
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fields = self.model_.save(directory)
        atomic_write_json(
            directory / "preprocessing.json",
            {
                "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(),
                "schema": self.schema.to_dict(),
            },
        )
        return {
            "domain": self.domain,
            "learner": "survival",
            "reader": "survival",
            "model": {"name": self.model, "params": self.model_params},
            "classes": [],
            "preprocessing": "preprocessing.json",
            "survival_model": fields,
            "input": {
                "kind": "table",
                "columns": self.schema.columns or self.schema.features,
                "formats": ["csv", "parquet"],
                "treatment": None
                if self.schema.treatment is None
                else self.schema.features[self.schema.treatment],
            },
        }

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> SurvivalLearner:
        """Rebuild from a verified bundle (JSON, tensors and checked skops types only)."""
        directory = Path(directory)
        try:
            pre = json.loads((directory / manifest["preprocessing"]).read_text())
            model = manifest["model"]
            obj = cls(
                model=model["name"],
                model_params=model.get("params"),
                schema=SurvivalSchema.from_dict(pre["schema"]),
            )
            obj.mean_ = np.asarray(pre["mean"], dtype=np.float64)
            obj.scale_ = np.asarray(pre["scale"], dtype=np.float64)
            m = MODELS.get(obj.model)(**obj.model_params)
            m.load(directory, manifest["survival_model"])
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{directory}: the survival bundle is incomplete ({exc}).",
                hint="Re-export the bundle with this medlearn version.",
            ) from None
        obj.model_ = m
        return obj


LEARNERS.add("survival", SurvivalLearner)

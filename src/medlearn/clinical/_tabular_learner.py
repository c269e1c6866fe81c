"""The tabular learner: preprocessing fitted on training rows, classical models and an MLP.

:class:`TabularLearner` implements :class:`medlearn.training.Learner` for tables. Rows are
validated against the column schema (:func:`~medlearn.clinical._tabular_data.check_rows`),
then a scikit-learn ``ColumnTransformer`` fitted on the training rows only imputes (median /
most frequent, with missing indicators), standardises and one-hot encodes them. The
preprocessing and scikit-learn models are saved with skops and loaded with an explicit list of
trusted types; MLP weights are tensors loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medlearn._io import atomic_write_bytes, atomic_write_json
from medlearn.clinical._tabular_data import (
    DEFAULT_NA,
    ColumnSpec,
    RowProblem,
    check_rows,
    raise_problems,
    read_table,
)
from medlearn.clinical._tabular_models import RESERVED, TabularMLP
from medlearn.errors import CheckpointError, ConfigError, DataValidationError, NotFittedError
from medlearn.registry import LEARNERS, MODELS
from medlearn.training import BadInput, Explanation, FitReport

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = ["TRUSTED_TYPES", "TabularLearner", "build_preprocessor", "load_skops"]

log = logging.getLogger(__name__)

#: Every type a tabular bundle's skops files may contain; anything else is refused on load.
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.getattr",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random.mtrand.RandomState",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.impute._base.MissingIndicator",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.svm._classes.SVC",
    "sklearn.svm._classes.SVR",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
)

_EXPLAIN_CAP = 50  # rows explained per call with the kernel explainer


# --- preprocessing ----------------------------------------------------------------------------


def build_preprocessor(schema: dict[str, ColumnSpec], features: Sequence[str]) -> Any:
    """An unfitted ``ColumnTransformer`` for ``features`` under ``schema``.

    Numeric: median imputation with missing indicators, then standardisation. Categorical:
    most-frequent imputation with missing indicators, then one-hot with the known levels and
    ``handle_unknown='error'``. Binary: the same with the first level dropped.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f for f in features if schema[f].type == "numeric"]
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            (
                "num",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                strategy="median", add_indicator=True, keep_empty_features=True
                            ),
                        ),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    for kind, drop in (("categorical", None), ("binary", "if_binary")):
        cols = [f for f in features if schema[f].type == kind]
        if not cols:
            continue
        parts.append(
            (
                "cat" if kind == "categorical" else "bin",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        (
                            "onehot",
                            OneHotEncoder(
                                categories=[list(schema[c].levels or []) for c in cols],
                                handle_unknown="error",
                                drop=drop,
                                sparse_output=False,
                                dtype=np.float64,
                            ),
                        ),
                    ]
                ),
                cols,
            )
        )
        parts.append(
            (
                f"{parts[-1][0]}_missing",
                MissingIndicator(features="missing-only", error_on_new=False),
                cols,
            )
        )
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def _frame_of(records: Sequence[Record], features: Sequence[str]) -> pd.DataFrame:
    rows = []
    for rec in records:
        inp = rec["input"]
        if not isinstance(inp, dict):
            raise DataValidationError(
                f"record {rec['id']}: a tabular input must be a mapping of feature values."
            )
        rows.append({f: inp.get(f) for f in features})
    return pd.DataFrame(rows, columns=list(features))


def _for_sklearn(frame: pd.DataFrame, schema: dict[str, ColumnSpec]) -> pd.DataFrame:
    """Numeric columns as float, categories as object with NaN for missing."""
    out = frame.copy()
    for col in out.columns:
        if schema[col].type == "numeric":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
        else:
            values = out[col].astype(object)
            out[col] = values.where(values.notna(), np.nan)
    return out


# --- the learner ------------------------------------------------------------------------------


class TabularLearner:
    """A risk model on a table: preprocessing + one registered tabular model.

    Args:
        model: a registry name (``logistic_regression``, ``svm``, ``random_forest``,
            ``extra_trees``, ``hist_gradient_boosting``, ``mlp``).
        task: ``binary``, ``multiclass`` or ``regression``.
        classes: class names (classification), else ``None``.
        features: the feature columns, in order.
        schema: a :class:`ColumnSpec` (or its dict) per feature.
        model_params: keyword arguments of the model factory.
        seed: seed of everything random.
        class_weights: ``"balanced"`` or ``"none"``.
        epochs, batch_size, lr, weight_decay, patience, monitor, max_minutes, deterministic,
        num_threads, progress: MLP training settings (:class:`medlearn.config.TrainingConfig`).
    """

    domain = "clinical"
    #: explanations are per-feature SHAP values, not images (no report gallery)
    image_explanations = False

    def __init__(
        self,
        *,
        model: str,
        task: str,
        features: Sequence[str],
        schema: dict[str, Any],
        classes: Sequence[str] | None = None,
        model_params: dict[str, Any] | None = None,
        seed: int = 0,
        class_weights: str = "balanced",
        epochs: int = 200,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int | None = 20,
        monitor: str = "loss",
        max_minutes: float | None = None,
        deterministic: bool = True,
        num_threads: int | None = None,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.task = task
        self.features = [str(f) for f in features]
        self.schema = {
            k: v if isinstance(v, ColumnSpec) else ColumnSpec(**v) for k, v in schema.items()
        }
        self.classes = [str(c) for c in classes] if classes else []
        self.model_params = dict(model_params or {})
        self.seed = seed
        self.class_weights = class_weights
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.monitor = monitor
        self.max_minutes = max_minutes
        self.deterministic = deterministic
        self.num_threads = num_threads
        self.progress = progress
        self.kind = str(MODELS.meta(model).get("kind", "sklearn"))
        self.preprocessor_: Any = None
        self.estimator_: Any = None
        self.net_: Any = None
        self.background_: np.ndarray | None = None
        # (preprocessor, FastMatrix or None, verified) — see _fast_matrix
        self._fast_: tuple[Any, Any, bool] | None = None

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: RunConfig, data: LoadedData) -> TabularLearner:
        """Build an unfitted learner from the run file and the reader's feature schema."""
        from medlearn.config import check_params

        meta = MODELS.meta(cfg.model.name)
        if cfg.task not in meta.get("tasks", ()):
            raise ConfigError(
                f"Model {cfg.model.name!r} does not support task {cfg.task!r}.",
                hint=f"Tasks it supports: {', '.join(meta.get('tasks', ()))}.",
            )
        check_params(
            MODELS.get(cfg.model.name),
            cfg.model.params,
            what=f"model {cfg.model.name!r}",
            reserved=RESERVED,
        )
        info = data.info or {}
        if info.get("kind") != "tabular":
            raise ConfigError(
                f"Model {cfg.model.name!r} needs tabular data (reader 'tabular').",
                hint="Give a CSV/Parquet/ARFF table in data.path or a tabular catalog dataset.",
            )
        if cfg.task != "regression" and not data.classes:
            raise ConfigError(f"Task {cfg.task!r} needs class labels; the data has none.")
        t = cfg.training
        return cls(
            model=cfg.model.name,
            task=cfg.task,
            features=info["features"],
            schema=info["schema"],
            classes=data.classes if cfg.task != "regression" else None,
            model_params=cfg.model.params,
            seed=t.seed,
            class_weights=t.class_weights,
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            weight_decay=t.weight_decay,
            patience=t.patience if t.patience is not None else 20,
            monitor=t.monitor if cfg.task != "regression" else "loss",
            max_minutes=t.max_minutes,
            deterministic=t.deterministic,
            num_threads=t.num_threads,
            progress=t.progress,
        )

    def _factory_kwargs(self) -> dict[str, Any]:
        cw = "balanced" if self.class_weights == "balanced" and self.task != "regression" else None
        return {"task": self.task, "seed": self.seed, "class_weight": cw, **self.model_params}

    # -- rows -------------------------------------------------------------------------------
    def _checked(
        self, records: Sequence[Record], *, row_numbers: Sequence[int] | None = None
    ) -> tuple[pd.DataFrame, list[RowProblem]]:
        frame = _frame_of(records, self.features)
        if row_numbers is None:
            row_numbers = [
                int((r.get("meta") or {}).get("row", i + 1)) for i, r in enumerate(records)
            ]
        return check_rows(frame, self.schema, self.features, row_numbers=row_numbers)

    def _matrix(self, records: Sequence[Record], what: str) -> np.ndarray:
        if self.preprocessor_ is None:
            self._check_fitted()
        fast = self._fast_matrix(records)
        if fast is not None:
            return fast
        converted, problems = self._checked(records)
        raise_problems(problems, f"{what} rows")
        return self._transform(converted)

    def _fast_matrix(self, records: Sequence[Record]) -> np.ndarray | None:
        """:meth:`_matrix` of canonical records (what ``read_inputs`` and ``records_from_rows``
        make) without the second row check and scikit-learn; ``None`` for any other records.

        The fast path (:class:`FastMatrix`) is compiled once per fitted preprocessor; its
        first answer is compared with the general path's and it is switched off for good on
        any difference.
        """
        fast = self._fast_
        if fast is None or fast[0] is not self.preprocessor_:
            from medlearn.clinical._tabular_fastpath import FastMatrix

            plan = FastMatrix.compile(self.preprocessor_, self.schema, self.features)
            fast = self._fast_ = (self.preprocessor_, plan, False)
        _pre, plan, verified = fast
        if plan is None:
            return None
        X = plan.matrix(records)
        if X is None or verified:
            return X
        converted, problems = self._checked(records)
        if not problems and np.array_equal(X, self._transform(converted), equal_nan=True):
            self._fast_ = (self.preprocessor_, plan, True)
            return X
        if not problems:
            log.warning("tabular fast path disagrees with scikit-learn; switched off")
            self._fast_ = (self.preprocessor_, None, False)
        return None

    def _transform(self, converted: pd.DataFrame) -> np.ndarray:
        try:
            return np.asarray(
                self.preprocessor_.transform(_for_sklearn(converted, self.schema)), dtype=float
            )
        except ValueError as exc:  # a backstop; check_rows reports unseen categories first
            raise DataValidationError(
                f"rows could not be preprocessed: {str(exc).splitlines()[0][:200]}",
                hint="Check the columns against the model's schema (bundle tabular.json).",
            ) from None

    def _targets(self, records: Sequence[Record]) -> np.ndarray:
        if self.task == "regression":
            return np.array([float(r["target"]) for r in records], dtype=float)
        y = np.array([int(r["target"]) for r in records], dtype=np.int64)
        bad = int(((y < 0) | (y >= len(self.classes))).sum())
        if bad:
            raise DataValidationError(
                f"{bad} record(s) have a label outside 0..{len(self.classes) - 1}."
            )
        return y

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[Record], val: Sequence[Record], *, work_dir: Path, resume: bool
    ) -> FitReport:
        """Fit preprocessing and the model on ``train``; the MLP early-stops on ``val``."""
        t0 = time.perf_counter()
        converted, problems = self._checked(train)
        raise_problems(problems, "training rows")
        # learn categorical levels from the training rows where the schema declares none
        for f in self.features:
            spec = self.schema[f]
            if spec.type != "numeric" and spec.levels is None:
                levels = sorted({v for v in converted[f].dropna()}, key=str)
                if spec.type == "binary" and len(levels) > 2:
                    raise DataValidationError(
                        f"training rows: binary column {f!r} has {len(levels)} categories.",
                        hint="Declare it categorical in data.options.schema.",
                    )
                if not levels:
                    levels = ["missing"]
                spec.levels = [str(v) for v in levels]
        self.preprocessor_ = build_preprocessor(self.schema, self.features)
        X = np.asarray(
            self.preprocessor_.fit_transform(_for_sklearn(converted, self.schema)), dtype=float
        )
        y = self._targets(train)
        rng = np.random.default_rng(self.seed)
        keep = rng.choice(len(X), size=min(len(X), 200), replace=False)
        self.background_ = X[np.sort(keep)]
        extra: dict[str, Any] = {"n_features_in": len(self.features), "n_columns": X.shape[1]}
        if self.task != "regression":
            extra["class_counts"] = np.bincount(y, minlength=len(self.classes)).tolist()
        if self.kind == "torch":
            return self._fit_mlp(
                X, y, val, work_dir=Path(work_dir), resume=resume, t0=t0, extra=extra
            )
        self.estimator_ = MODELS.get(self.model)(**self._factory_kwargs())
        if self.task != "regression" and len(np.unique(y)) < 2:
            raise DataValidationError(
                "training rows hold a single class; a classifier needs at least two.",
                hint="Use more data or a stratified split.",
            )
        self.estimator_.fit(X, y)
        seconds = time.perf_counter() - t0
        return FitReport(
            fit_seconds=seconds,
            epochs=[1],
            stopped_by=["converged"],
            samples_per_second=len(X) / max(seconds, 1e-9),
            extra=extra,
        )

    def _fit_mlp(
        self,
        X: np.ndarray,
        y: np.ndarray,
        val: Sequence[Record],
        *,
        work_dir: Path,
        resume: bool,
        t0: float,
        extra: dict[str, Any],
    ) -> FitReport:
        import torch

        from medlearn.clinical._tabular_module import TabularMLPModule
        from medlearn.training import fit_module

        arch = MODELS.get(self.model)(**self._factory_kwargs())
        out = 1 if self.task == "regression" else len(self.classes)
        torch.manual_seed(self.seed)
        net = TabularMLP(X.shape[1], out, arch["hidden"], arch["dropout"])
        weights = None
        if self.task != "regression" and self.class_weights == "balanced":
            counts = np.bincount(y, minlength=out).astype(float)
            weights = torch.tensor(
                counts.sum() / (out * np.maximum(counts, 1)), dtype=torch.float32
            )
        module = TabularMLPModule(
            net,
            task=self.task,
            lr=self.lr,
            weight_decay=self.weight_decay,
            class_weights=weights,
            monitor=self.monitor,
        )
        y_t = torch.tensor(y, dtype=torch.float32 if self.task == "regression" else torch.long)
        train_ds = torch.utils.data.TensorDataset(torch.tensor(X, dtype=torch.float32), y_t)
        val_ds = None
        if val:
            Xv = self._matrix(val, "validation")
            yv = torch.tensor(
                self._targets(val), dtype=torch.float32 if self.task == "regression" else torch.long
            )
            val_ds = torch.utils.data.TensorDataset(torch.tensor(Xv, dtype=torch.float32), yv)
        monitor_meta = {} if self.monitor == "loss" else _metric_meta(self.monitor)
        mode = "max" if monitor_meta.get("higher_is_better") else "min"
        outcome = fit_module(
            module,
            train_ds,
            val_ds,
            batch_size=self.batch_size,
            max_epochs=self.epochs,
            ckpt_dir=work_dir / "checkpoints",
            monitor="val_loss" if self.monitor == "loss" else f"val_{self.monitor}",
            mode=mode,
            patience=self.patience,
            max_minutes=self.max_minutes,
            seed=self.seed,
            deterministic=self.deterministic,
            resume=resume,
            progress=self.progress,
            num_threads=self.num_threads,
        )
        net.eval()
        self.net_ = net
        seconds = time.perf_counter() - t0
        return FitReport(
            fit_seconds=seconds,
            epochs=[outcome.epochs_completed],
            stopped_by=[outcome.stopped_by],
            history=[{"member": 0, **h} for h in outcome.history],
            samples_per_second=outcome.samples_seen / max(seconds, 1e-9),
            extra=extra,
        )

    # -- inference --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.preprocessor_ is None or (self.estimator_ is None and self.net_ is None):
            raise NotFittedError(
                "This TabularLearner is not fitted yet. Call fit(...) or "
                "TabularLearner.load(...) before predicting."
            )

    def _predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, C)`` (classification) or predictions ``(N, 1)`` (regression)."""
        if self.net_ is not None:
            import torch

            with torch.no_grad():
                out = self.net_(torch.tensor(X, dtype=torch.float32))
                if self.task == "regression":
                    return out.numpy().astype(float)
                return torch.softmax(out, dim=1).numpy().astype(float)
        if self.task == "regression":
            return np.asarray(self.estimator_.predict(X), dtype=float).reshape(-1, 1)
        proba = np.asarray(self.estimator_.predict_proba(X), dtype=float)
        full = np.zeros((len(X), len(self.classes)))
        full[:, np.asarray(self.estimator_.classes_, dtype=int)] = proba
        return full

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        """Class probabilities ``(N, C)`` (or predictions ``(N, 1)`` for regression)."""
        return self._predict_matrix(self._matrix(records, "input"))

    def predict_logits(self, records: Sequence[Record], *, tta: bool = False) -> np.ndarray:
        """Log-probabilities ``(N, C)``; for regression the predictions ``(N, 1)``."""
        out = self.predict_proba(records)
        if self.task == "regression":
            return out
        return np.log(np.clip(out, 1e-12, 1.0))

    # -- explanations -----------------------------------------------------------------------
    def _column_origins(self) -> list[str]:
        """The original feature behind each preprocessed column."""
        origins: list[str] = []
        for name, pipe, cols in self.preprocessor_.transformers_:
            if name == "remainder" or pipe == "drop":
                continue
            out_names = list(pipe.get_feature_names_out(cols))
            for out in out_names:
                stem = (
                    out[len("missingindicator_") :] if out.startswith("missingindicator_") else out
                )
                match = [c for c in cols if stem == c or stem.startswith(f"{c}_")]
                origins.append(max(match, key=len) if match else stem)
        return origins

    def _explainer_kind(self) -> str:
        if self.net_ is not None:
            return "kernel"
        from sklearn.ensemble import (
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            HistGradientBoostingClassifier,
            HistGradientBoostingRegressor,
            RandomForestClassifier,
            RandomForestRegressor,
        )
        from sklearn.linear_model import LogisticRegression, Ridge

        trees = (
            RandomForestClassifier,
            RandomForestRegressor,
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            HistGradientBoostingRegressor,
        )
        if isinstance(self.estimator_, trees):
            return "tree"
        if isinstance(self.estimator_, HistGradientBoostingClassifier) and len(self.classes) == 2:
            return "tree"
        if isinstance(self.estimator_, (LogisticRegression, Ridge)):
            return "linear"
        return "kernel"

    def _shap_matrix(self, X: np.ndarray) -> tuple[np.ndarray, str]:
        """SHAP values ``(N, columns, K)`` and the method used."""
        from medlearn.explain import shap_values

        kind = self._explainer_kind()
        if kind == "kernel":
            values = shap_values(
                X,
                kind="kernel",
                predict=self._predict_matrix,
                background=self.background_,
                max_background=10,
                nsamples=100,
                seed=self.seed,
            )
        else:
            values = shap_values(X, kind=kind, model=self.estimator_, background=self.background_)
        return values, f"shap_{kind}"

    def _per_feature(self, values: np.ndarray) -> np.ndarray:
        """Sum preprocessed-column attributions into original features: ``(N, F, K)``."""
        origins = self._column_origins()
        index = {f: i for i, f in enumerate(self.features)}
        out = np.zeros((values.shape[0], len(self.features), values.shape[2]))
        for j, origin in enumerate(origins):
            out[:, index[origin], :] += values[:, j, :]
        return out

    def _class_slice(self, per_feature: np.ndarray, target: int, row: int) -> np.ndarray:
        k = per_feature.shape[2]
        if self.task == "regression" or k == 1:
            v = per_feature[row, :, 0]
            # single-output binary models explain class 1; class 0 is its negation
            return -v if (self.task != "regression" and target == 0) else v
        return per_feature[row, :, target]

    def explain(self, records: Sequence[Record], targets: Sequence[int]) -> list[Explanation]:
        """Per-patient SHAP values: one :class:`Explanation` with ``features`` per record.

        Tree models use ``TreeExplainer``, logistic regression ``LinearExplainer`` (log-odds),
        the others ``KernelExplainer`` on a 10-centre k-means background of training rows
        (at most 50 records per call; later records get no explanation).
        """
        self._check_fitted()
        if not records:
            return []
        kind = self._explainer_kind()
        records = list(records)[: _EXPLAIN_CAP if kind == "kernel" else len(records)]
        X = self._matrix(records, "input")
        values, method = self._shap_matrix(X)
        per_feature = self._per_feature(values)
        out = []
        for i, _rec in enumerate(records):
            t = int(targets[i]) if self.task != "regression" else 0
            vec = self._class_slice(per_feature, t, i)
            out.append(
                Explanation(
                    target=t,
                    method=method,
                    features={
                        f: round(float(v), 6) for f, v in zip(self.features, vec, strict=True)
                    },
                )
            )
        return out

    def global_importance(
        self, records: Sequence[Record], *, n_repeats: int = 5, max_rows: int = 200
    ) -> dict[str, Any]:
        """Global feature importance on labelled ``records`` (e.g. the test split).

        Returns:
            ``{"features": [names], "methods": {"shap_mean_abs": [...], "permutation": [...],
            "permutation_std": [...]}, "scoring": "roc_auc" | "r2", "shap_method": ...}``;
            permutation importance is the drop of AUROC (macro one-vs-rest for multiclass) or
            R² when a feature's values are shuffled.
        """
        from sklearn.metrics import r2_score, roc_auc_score

        from medlearn.explain import permutation_scores

        self._check_fitted()
        records = list(records)[:max_rows]
        converted, problems = self._checked(records)
        raise_problems(problems, "input rows")
        y = self._targets(records)
        X = self._transform(converted)
        shap_rows = X if self._explainer_kind() != "kernel" else X[:_EXPLAIN_CAP]
        values, method = self._shap_matrix(shap_rows)
        per_feature = self._per_feature(values)
        shap_mean = np.abs(per_feature).mean(axis=(0, 2))

        # Preprocessing is row-wise, so shuffling a raw column equals shuffling the rows of
        # its preprocessed columns: permute row indices per feature (sklearn's
        # permutation_importance on an index table) and transform only once.
        origins = self._column_origins()
        groups = [[j for j, o in enumerate(origins) if o == f] for f in self.features]
        index_table = np.tile(np.arange(len(X))[:, None], (1, len(self.features)))

        def score(idx: np.ndarray) -> float:
            Xp = X.copy()
            for k, cols in enumerate(groups):
                if cols:
                    Xp[:, cols] = X[np.asarray(idx[:, k], dtype=int)][:, cols]
            pred = self._predict_matrix(Xp)
            if self.task == "regression":
                return float(r2_score(y, pred[:, 0]))
            if len(self.classes) == 2:
                return float(roc_auc_score(y, pred[:, 1]))
            return float(
                roc_auc_score(y, pred, multi_class="ovr", labels=list(range(len(self.classes))))
            )

        try:
            mean, std = permutation_scores(score, index_table, n_repeats=n_repeats, seed=self.seed)
        except ValueError:  # e.g. one class only among the records
            mean = std = np.full(len(self.features), np.nan)
        clean = lambda a: [None if not np.isfinite(v) else round(float(v), 6) for v in a]  # noqa: E731
        return {
            "features": list(self.features),
            "methods": {
                "shap_mean_abs": clean(shap_mean),
                "permutation": clean(mean),
                "permutation_std": clean(std),
            },
            "scoring": "r2" if self.task == "regression" else "roc_auc",
            "shap_method": method,
            "n": len(records),
        }

    # -- user inputs ------------------------------------------------------------------------
    def read_inputs(self, sources: Sequence[str]) -> tuple[list[Record], list[BadInput]]:
        """Read CSV / Parquet / ARFF tables, one record per row; every bad row is reported.

        A row is bad when a feature column is missing from the file, a numeric cell is not a
        number or outside the schema's range, or a category was not seen in training. Ids
        are ``<file name>:row<N>`` (N = 1-based data row).
        """
        self._check_fitted()
        records: list[Record] = []
        bad: list[BadInput] = []
        for source in sources:
            path = Path(source)
            try:
                frame = read_table(path)
            except (DataValidationError, OSError) as exc:
                bad.append(BadInput(str(source), getattr(exc, "message", str(exc))))
                continue
            got, problems = self._records_from_frame(frame, path.name, str(source))
            records.extend(got)
            bad.extend(problems)
        return records, bad

    def records_from_rows(
        self, rows: Sequence[Mapping[str, Any]], *, name: str = "records"
    ) -> tuple[list[Record], list[BadInput]]:
        """:meth:`read_inputs` for feature dicts in memory (JSON records), without a file.

        Each value counts as the text a CSV cell holding it would have (``None`` and the
        missing-value texts are missing), so a dict gives exactly the record that the same
        row read from a CSV file gives. Ids are ``<name>:row<N>`` (N = 1-based position).
        """
        return self.records_from_row_groups([rows], name=name)[0]

    def records_from_row_groups(
        self, groups: Sequence[Sequence[Mapping[str, Any]]], *, name: str = "records"
    ) -> list[tuple[list[Record], list[BadInput]]]:
        """:meth:`records_from_rows` for several groups of rows (e.g. requests) at once.

        Every group gets exactly what ``records_from_rows(group)`` gives it: ids and row
        numbers count within the group, and a group with a missing feature column or a
        column named twice is refused as a whole. The cells of all groups are checked in one
        pass, so the fixed cost of the table check (most of the cost for a few rows) is paid
        once per call rather than once per group; the server's micro-batches use this.

        Args:
            groups: one sequence of feature dicts per group.
            name: the label in ids and messages (``<name>:row<N>``).

        Returns:
            One ``(records, bad inputs)`` pair per group, in order.
        """

        self._check_fitted()
        results: list[tuple[list[Record], list[BadInput]]] = []
        cells: list[list[str | None]] = []
        spans: list[tuple[int, int, int]] = []  # (group, first cell row, end) of good groups
        for rows in groups:
            keys, problem = _row_keys(rows)
            missing = [f for f in self.features if f not in keys]
            if problem or missing:
                why = problem or f"missing feature column(s) {', '.join(missing[:10])}."
                results.append(([], [BadInput(name, f"{name}: {why}")]))
                continue
            start = len(cells)
            cells.extend([_cell_text(row.get(keys[f])) for f in self.features] for row in rows)
            spans.append((len(results), start, len(cells)))
            results.append(([], []))
        if not cells:
            return results
        frame = pd.DataFrame(cells, columns=list(self.features), dtype=object)
        built = self._checked_records(frame, [(start, end) for _, start, end in spans], name)
        for (g, _, _), got in zip(spans, built, strict=True):
            results[g] = got
        return results

    def _records_from_frame(
        self, frame: pd.DataFrame, label: str, source: str
    ) -> tuple[list[Record], list[BadInput]]:
        """Check a raw table (cells as text or ``None``) and build one record per good row."""

        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            return [], [
                BadInput(source, f"{label}: missing feature column(s) {', '.join(missing[:10])}.")
            ]
        return self._checked_records(frame, [(0, len(frame))], label)[0]

    def _checked_records(
        self, frame: pd.DataFrame, spans: Sequence[tuple[int, int]], label: str
    ) -> list[tuple[list[Record], list[BadInput]]]:
        """Check ``frame``'s feature cells once; then, per ``(start, end)`` span of its rows,
        the records of the good rows and the bad inputs (ids ``<label>:row<N>``, N counted
        from 1 within the span)."""
        from medlearn.data import make_record

        converted, problems = check_rows(frame, self.schema, self.features)
        by_row: dict[int, list[RowProblem]] = {}
        for p in problems:
            by_row.setdefault(p.row - 1, []).append(p)  # p.row is 1-based in the frame
        columns = {f: converted[f].tolist() for f in self.features}
        out: list[tuple[list[Record], list[BadInput]]] = []
        for start, end in spans:
            records: list[Record] = []
            bad: list[BadInput] = []
            for pos in range(start, end):
                row_no = pos - start + 1
                rid = f"{label}:row{row_no}"
                if pos in by_row:
                    msg = "; ".join(f"column {p.column!r} {p.problem}" for p in by_row[pos])
                    bad.append(BadInput(rid, f"{label} row {row_no}: {msg}."))
                    continue
                values = {f: _plain(columns[f][pos]) for f in self.features}
                records.append(make_record(rid, values, None, meta={"row": row_no}))
            out.append((records, bad))
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``preprocessing.skops``, the model (``model.skops`` or ``weights/mlp.pt``)
        and ``tabular.json``; return the manifest fields."""
        import skops.io as sio

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(directory / "preprocessing.skops", sio.dumps(self.preprocessor_))
        files = {"preprocessing": "preprocessing.skops"}
        if self.net_ is not None:
            import torch

            (directory / "weights").mkdir(exist_ok=True)
            tmp = directory / "weights" / ".mlp.pt.tmp"
            torch.save({k: v.detach().cpu() for k, v in self.net_.state_dict().items()}, tmp)
            tmp.replace(directory / "weights" / "mlp.pt")
            files["weights"] = "weights/mlp.pt"
        else:
            atomic_write_bytes(directory / "model.skops", sio.dumps(self.estimator_))
            files["model"] = "model.skops"
        state = {
            "task": self.task,
            "features": self.features,
            "schema": {f: self.schema[f].to_dict() for f in self.features},
            "classes": self.classes,
            "seed": self.seed,
            "background": np.asarray(self.background_).tolist(),
            "mlp": None,
        }
        if self.net_ is not None:
            arch = MODELS.get(self.model)(**self._factory_kwargs())
            state["mlp"] = {
                "in_features": int(self.net_.net[0].in_features),
                "out_features": 1 if self.task == "regression" else len(self.classes),
                **arch,
            }
        atomic_write_json(directory / "tabular.json", state)
        return {
            "domain": self.domain,
            "learner": "tabular",
            "reader": "tabular",
            "model": {"name": self.model, "params": self.model_params},
            "classes": self.classes,
            "files_tabular": {**files, "state": "tabular.json"},
            "input": {
                "kind": "table",
                "features": self.features,
                "formats": ["csv", "parquet", "arff"],
            },
            "explain": {"method": f"shap_{self._explainer_kind()}"},
        }

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> TabularLearner:
        """Rebuild from a verified bundle directory: skops with :data:`TRUSTED_TYPES` only,
        tensors with ``weights_only=True``, JSON for the rest.

        Raises:
            CheckpointError: a file is missing or holds a type outside the trusted list.
        """
        directory = Path(directory)
        try:
            files = manifest["files_tabular"]
            state = json.loads((directory / files["state"]).read_text())
            model = manifest["model"]
            obj = cls(
                model=model["name"],
                task=state["task"],
                features=state["features"],
                schema=state["schema"],
                classes=state["classes"] or None,
                model_params=model.get("params"),
                seed=state.get("seed", 0),
            )
        except (KeyError, TypeError, OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{directory}: the tabular bundle is incomplete ({type(exc).__name__}: {exc}).",
                hint="Re-export the bundle with this medlearn version.",
            ) from None
        obj.preprocessor_ = load_skops(directory / files["preprocessing"])
        obj.background_ = np.asarray(state.get("background") or [], dtype=float)
        if "model" in files:
            obj.estimator_ = load_skops(directory / files["model"])
        else:
            import torch

            mlp = state["mlp"]
            net = TabularMLP(mlp["in_features"], mlp["out_features"], mlp["hidden"], mlp["dropout"])
            weights = torch.load(
                directory / files["weights"], map_location="cpu", weights_only=True
            )
            try:
                net.load_state_dict(weights)
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{directory / files['weights']}: weights do not fit the MLP "
                    f"({str(exc)[:200]}).",
                    hint="Retrain; the bundle was written by another model definition.",
                ) from None
            net.eval()
            obj.net_ = net
        return obj


def load_skops(path: Path) -> Any:
    """Load a skops file, refusing any type outside :data:`TRUSTED_TYPES`.

    Raises:
        CheckpointError: the file is missing or holds untrusted types (listed).
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the bundle.")
    data = path.read_bytes()
    try:
        present = _skops_types(data)
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops / zipfile raise several types for corrupt files
        raise CheckpointError(
            f"{path}: not a readable skops file ({type(exc).__name__})."
        ) from None
    # skops trusts scikit-learn estimators by default; medlearn trusts only its own list.
    refused = sorted(
        t for t in present | set(untrusted) if t not in TRUSTED_TYPES and not _basic(t)
    )
    if refused:
        raise CheckpointError(
            f"{path}: refuses to load types outside medlearn's trusted list: "
            f"{', '.join(refused[:10])}.",
            hint="Only bundles written by medlearn's tabular learner can be loaded.",
        )
    return sio.loads(data, trusted=list(untrusted))


def _basic(name: str) -> bool:
    """Plain containers and scalars every skops file holds."""
    module, _, _cls = name.rpartition(".")
    return (
        module == "builtins"
        and _cls
        in {"dict", "list", "tuple", "str", "int", "float", "bool", "NoneType", "slice", "set"}
        or name in {"numpy.ndarray", "numpy.dtype"}
        or module == "numpy"
        and _cls.startswith(("float", "int", "uint", "bool"))
    )


def _skops_types(data: bytes) -> set[str]:
    """Every ``module.class`` named in a skops file's schema."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        schema = json.loads(z.read("schema.json"))
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _cell_text(v: Any) -> str | None:
    """A JSON value as :func:`read_table` would see it in a CSV cell: stripped text or None."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    text = str(v).strip()
    return None if text in DEFAULT_NA else text


def _row_keys(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """Column name (spaces stripped, as :func:`read_table` strips CSV headers) → the key the
    rows use for it, or a problem when two keys differ only in spaces."""
    columns: dict[str, Any] = {}
    for row in rows:
        for key in row:
            name = str(key).strip()
            if columns.setdefault(name, key) != key:
                return columns, "a column name is given twice (differing only in spaces)."
    return columns, None


def _plain(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else float(v)
    return v


def _metric_meta(name: str) -> dict[str, Any]:
    from medlearn.registry import METRICS

    return METRICS.meta(name)


LEARNERS.add("tabular", TabularLearner)

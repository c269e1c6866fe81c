"""The time-series learner: featurisation fitted on training stays, baselines and sequence models.

:class:`TimeSeriesLearner` implements :class:`medlearn.training.Learner` for ICU stays. A
:class:`~medlearn.clinical._ts_features.TimeSeriesFeaturizer` is fitted on the training
records only and saved as JSON; scikit-learn baselines read its ``summary`` matrix and are
saved with skops (explicit trusted types); torch models read the hourly grid (or the event
view), train through :func:`medlearn.training.fit_module` with early stopping on validation
AUROC, and are saved as tensors loaded with ``torch.load(weights_only=True)``.

Explanations: torch models use integrated gradients over values × time (plus statics);
scikit-learn models use occlusion (a variable's summary columns set missing, so the model's
own missing-value handling replaces them), reported as the change in log-odds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn._io import atomic_write_bytes, atomic_write_json
from medlearn.clinical._ts_models import RESERVED, build_network
from medlearn.errors import CheckpointError, ConfigError, DataValidationError, NotFittedError
from medlearn.registry import LEARNERS, MODELS
from medlearn.training import BadInput, Explanation, FitReport

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = ["TimeSeriesLearner", "integrated_gradients"]

log = logging.getLogger(__name__)

_GRID_KEYS = ("values", "mask", "delta", "static")
_EVENT_KEYS = ("event_time", "event_var", "event_value", "event_mask")
_IG_STEPS = 16
_IMPORTANCE_ROWS = 200


def _featurizer_cls() -> Any:
    from medlearn.clinical._ts_features import TimeSeriesFeaturizer

    return TimeSeriesFeaturizer


# --- integrated gradients ----------------------------------------------------------------------


def integrated_gradients(
    net: Any, batch: dict[str, Any], targets: Sequence[int], *, steps: int = _IG_STEPS
) -> dict[str, np.ndarray]:
    """Integrated gradients (Sundararajan et al. 2017) of the target's log-odds.

    The baseline is "nothing observed": values, mask and static features at 0 (the
    normalised mean), the time since last observation kept. Riemann midpoint rule.

    Args:
        net: a :class:`~medlearn.clinical._ts_models.TimeSeriesNet` in eval mode.
        batch: its input tensors (``values``, ``mask``, ``delta`` ``(B, T, V)``,
            ``static`` ``(B, S)``; events view: ``event_*`` ``(B, E)``).
        targets: the class explained per row ``(B,)``.
        steps: interpolation steps.

    Returns:
        ``{"grid": (B, T, V) or None, "events": (B, E) or None, "static": (B, S)}``:
        attributions whose sums approximate ``f(x) - f(baseline)``.
    """
    import torch

    events = "event_value" in batch and getattr(net.encoder, "view", "grid") == "events"
    scaled = ["event_value"] if events else ["values", "mask"]
    if net.n_static:
        scaled.append("static")
    sign = torch.tensor([1.0 if int(t) == 1 else -1.0 for t in targets])
    totals = {k: torch.zeros_like(batch[k]) for k in scaled}
    for k in range(steps):
        alpha = (k + 0.5) / steps
        inputs = dict(batch)
        leaves = {}
        for name in scaled:
            leaf = (batch[name] * alpha).detach().requires_grad_(True)
            leaves[name] = leaf
            inputs[name] = leaf
        logits = net(inputs)["logits"]
        log_odds = (logits[:, 1] - logits[:, 0]) * sign
        grads = torch.autograd.grad(log_odds.sum(), list(leaves.values()))
        for name, g in zip(leaves, grads, strict=True):
            totals[name] += g.detach()
    out = {name: (totals[name] * batch[name] / steps).numpy() for name in scaled}
    return {
        "grid": (out["values"] + out["mask"]) if not events else None,
        "events": out.get("event_value"),
        "static": out.get("static", np.zeros((len(targets), 0), dtype=np.float32)),
    }


# --- the learner -------------------------------------------------------------------------------


class TimeSeriesLearner:
    """ICU mortality from irregular time series: featuriser + one registered model.

    Args:
        model: a registry name (``ts_logistic_regression``, ``ts_random_forest``,
            ``ts_gradient_boosting``, ``gru``, ``lstm_attention``, ``grud``,
            ``ts_transformer``, ``ts_ensemble``).
        classes: class names (``["survived", "died"]``).
        model_params: keyword arguments of the model factory.
        featurizer: keyword arguments of ``TimeSeriesFeaturizer`` (``hours``, ``bin_hours`` ...).
        seed: seed of everything random.
        class_weights: ``"balanced"`` (weighted cross-entropy / class weights) or ``"none"``.
        epochs, batch_size, lr, weight_decay, patience, max_minutes, deterministic,
        num_threads, progress: torch training settings (:class:`medlearn.config.TrainingConfig`).
    """

    domain = "clinical"
    #: explanations are per-variable attributions, not images (no report gallery)
    image_explanations = False

    def __init__(
        self,
        *,
        model: str,
        classes: Sequence[str] = ("survived", "died"),
        model_params: dict[str, Any] | None = None,
        featurizer: dict[str, Any] | None = None,
        seed: int = 0,
        class_weights: str = "balanced",
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int | None = 5,
        max_minutes: float | None = None,
        deterministic: bool = True,
        num_threads: int | None = None,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.classes = [str(c) for c in classes]
        self.model_params = dict(model_params or {})
        self.featurizer_params = dict(featurizer or {})
        self.seed = seed
        self.class_weights = class_weights
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.max_minutes = max_minutes
        self.deterministic = deterministic
        self.num_threads = num_threads
        self.progress = progress
        self.kind = str(MODELS.meta(model).get("kind", "sklearn"))
        self.featurizer_: Any = None
        self.estimator_: Any = None
        self.net_: Any = None
        self.arch_: dict[str, Any] | None = None
        self.members_: list[TimeSeriesLearner] = []
        self.member_calibration_: list[dict[str, Any]] = []
        self.member_weights_: list[float] = []
        self.dead_columns_: list[int] = []

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: RunConfig, data: LoadedData) -> TimeSeriesLearner:
        """Build an unfitted learner from the run file (``data.options.featurizer`` if any)."""
        from medlearn.config import check_params

        meta = MODELS.meta(cfg.model.name)
        if meta.get("learner") != "timeseries":
            raise ConfigError(f"Model {cfg.model.name!r} is not a time-series model.")
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
        if not data.classes or len(data.classes) != 2:
            raise ConfigError("Time-series models need a binary target (two classes).")
        options = dict(getattr(cfg.data, "options", None) or {})
        feat = dict((data.info or {}).get("featurizer") or {})
        if "hours" in (data.info or {}) or "hours" in options:
            feat.setdefault("hours", float((data.info or {}).get("hours", options.get("hours"))))
        t = cfg.training
        return cls(
            model=cfg.model.name,
            classes=data.classes,
            model_params=cfg.model.params,
            featurizer=feat,
            seed=t.seed,
            class_weights=t.class_weights,
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            weight_decay=t.weight_decay,
            patience=t.patience if t.patience is not None else 5,
            max_minutes=t.max_minutes,
            deterministic=t.deterministic,
            num_threads=t.num_threads,
            progress=t.progress,
        )

    def _factory_kwargs(self) -> dict[str, Any]:
        cw = "balanced" if self.class_weights == "balanced" else None
        return {"task": "binary", "seed": self.seed, "class_weight": cw, **self.model_params}

    def _member(self, name: str, params: dict[str, Any], max_minutes: float | None) -> Any:
        return TimeSeriesLearner(
            model=name,
            classes=self.classes,
            model_params=params,
            featurizer=self.featurizer_params,
            seed=self.seed,
            class_weights=self.class_weights,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            max_minutes=max_minutes,
            deterministic=self.deterministic,
            num_threads=self.num_threads,
            progress=self.progress,
        )

    # -- data -------------------------------------------------------------------------------
    def _targets(self, records: Sequence[Record], what: str) -> np.ndarray:
        bad = [i for i, r in enumerate(records) if r.get("target") is None or int(r["target"]) > 1]
        if bad:
            raise DataValidationError(
                f"{what}: {len(bad)} record(s) have no in-hospital outcome "
                f"(first at position {bad[0]}).",
                hint="Give the outcomes file beside the set, or leave such stays out.",
            )
        return np.array([int(r["target"]) for r in records], dtype=np.int64)

    @staticmethod
    def _aux_targets(records: Sequence[Record]) -> dict[str, np.ndarray]:
        """``los`` (log1p days, NaN unknown), ``surv_time`` and ``surv_event`` per record."""
        los = np.full(len(records), np.nan, dtype=np.float32)
        surv = np.full(len(records), np.nan, dtype=np.float32)
        for i, r in enumerate(records):
            meta = r.get("meta") or {}
            v = meta.get("los_days")
            if v is not None and np.isfinite(float(v)) and float(v) >= 0:
                los[i] = np.log1p(float(v))
            s = meta.get("survival_days")
            if s is not None and np.isfinite(float(s)) and float(s) >= 0:
                surv[i] = float(s)
        event = np.isfinite(surv).astype(np.float32)
        # the censored are followed beyond every observed death: in every risk set
        horizon = float(np.nanmax(surv)) + 1.0 if event.any() else 1.0
        surv_time = np.where(event > 0, surv, horizon).astype(np.float32)
        return {"los": los, "surv_time": surv_time, "surv_event": event}

    def _tensors(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        keys = list(_GRID_KEYS)
        if self.arch_ and self.arch_.get("view") == "events":
            keys += list(_EVENT_KEYS)
        out = {}
        for k in keys:
            a = arrays[k]
            out[k] = torch.as_tensor(a, dtype=torch.long if k == "event_var" else torch.float32)
        return out

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[Record], val: Sequence[Record], *, work_dir: Path, resume: bool
    ) -> FitReport:
        """Fit the featuriser on ``train`` only, then the model (early stopping on ``val``)."""
        t0 = time.perf_counter()
        y = self._targets(train, "training records")
        if len(np.unique(y)) < 2:
            raise DataValidationError(
                "training records hold a single class; a classifier needs both outcomes.",
                hint="Use more stays or a stratified split.",
            )
        self.featurizer_ = _featurizer_cls()(**self.featurizer_params).fit(list(train))
        tf0 = time.perf_counter()
        arr_tr = self.featurizer_.transform(list(train))
        arr_va = self.featurizer_.transform(list(val)) if val else None
        yv = self._targets(val, "validation records") if val else None
        featurise_s = time.perf_counter() - tf0
        report = self._fit_arrays(
            arr_tr, y, self._aux_targets(train), arr_va, yv, Path(work_dir), resume
        )
        report.fit_seconds = time.perf_counter() - t0
        report.extra.update(
            {
                "featurise_seconds": round(featurise_s, 3),
                "n_variables": len(self.featurizer_.variables),
                "n_static": len(self.featurizer_.static_names),
                "n_summary": len(self.featurizer_.summary_names),
                "class_counts": np.bincount(y, minlength=2).tolist(),
            }
        )
        return report

    def _fit_arrays(
        self,
        arr_tr: dict[str, np.ndarray],
        y: np.ndarray,
        aux: dict[str, np.ndarray],
        arr_va: dict[str, np.ndarray] | None,
        yv: np.ndarray | None,
        work_dir: Path,
        resume: bool,
    ) -> FitReport:
        t0 = time.perf_counter()
        if self.kind == "ensemble":
            return self._fit_ensemble(arr_tr, y, aux, arr_va, yv, work_dir, resume)
        if self.kind == "torch":
            return self._fit_torch(arr_tr, y, aux, arr_va, yv, work_dir, resume)
        self.estimator_ = MODELS.get(self.model)(**self._factory_kwargs())
        summary = np.asarray(arr_tr["summary"], dtype=np.float64)
        # columns never observed in training carry no information (and break binning)
        self.dead_columns_ = np.flatnonzero(~np.isfinite(summary).any(axis=0)).tolist()
        with self._thread_limit():
            self.estimator_.fit(self._summary(summary), y)
        seconds = time.perf_counter() - t0
        return FitReport(
            fit_seconds=seconds,
            epochs=[1],
            stopped_by=["converged"],
            samples_per_second=len(y) / max(seconds, 1e-9),
        )

    def _thread_limit(self) -> Any:
        """Cap OpenMP/BLAS threads at ``num_threads`` (oversubscribed OpenMP on a shared
        machine makes histogram gradient boosting many times slower)."""
        from contextlib import nullcontext

        if not self.num_threads:
            return nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=int(self.num_threads))

    def _fit_torch(self, arr_tr, y, aux, arr_va, yv, work_dir, resume) -> FitReport:
        import torch

        from medlearn.clinical._ts_module import TimeSeriesModule
        from medlearn.training import fit_module

        t0 = time.perf_counter()
        self.arch_ = MODELS.get(self.model)(**self._factory_kwargs())
        torch.manual_seed(self.seed)
        net = self._new_net()
        weights = None
        if self.class_weights == "balanced":
            counts = np.bincount(y, minlength=2).astype(float)
            weights = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), dtype=torch.float32)
        module = TimeSeriesModule(
            net,
            lr=self.lr,
            weight_decay=self.weight_decay,
            class_weights=weights,
            aux_weights=self.arch_["aux_weights"],
        )
        train_t = self._tensors(arr_tr)
        train_t["y"] = torch.as_tensor(y, dtype=torch.long)
        for k, v in aux.items():
            train_t[k] = torch.as_tensor(v, dtype=torch.float32)
        val_ds = None
        if arr_va is not None and yv is not None and len(yv):
            val_t = self._tensors(arr_va)
            val_t["y"] = torch.as_tensor(yv, dtype=torch.long)
            val_ds = _DictDataset(val_t)
        outcome = fit_module(
            module,
            _DictDataset(train_t),
            val_ds,
            batch_size=self.batch_size,
            max_epochs=self.epochs,
            ckpt_dir=Path(work_dir) / "checkpoints",
            monitor="val_auroc" if val_ds is not None else "val_loss",
            mode="max",
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
            extra={"best_val_auroc": outcome.best_score},
        )

    def _fit_ensemble(self, arr_tr, y, aux, arr_va, yv, work_dir, resume) -> FitReport:
        from medlearn.evaluation.calibration import fit_calibrator

        if arr_va is None or yv is None or len(np.unique(yv)) < 2:
            raise DataValidationError(
                "ts_ensemble calibrates its members on the validation split, which is empty "
                "or holds one class.",
                hint="Use a split with a validation share (data.split).",
            )
        spec = MODELS.get(self.model)(**self._factory_kwargs())
        n_torch = sum(MODELS.meta(m).get("kind") == "torch" for m in spec["members"])
        budget = self.max_minutes / max(n_torch, 1) if self.max_minutes else None
        self.members_, self.member_calibration_ = [], []
        epochs, stopped, history = [], [], []
        for k, name in enumerate(spec["members"]):
            member = self._member(name, spec["member_params"].get(name, {}), budget)
            member.featurizer_ = self.featurizer_
            rep = member._fit_arrays(
                arr_tr, y, aux, arr_va, yv, Path(work_dir) / f"member_{k}", resume
            )
            z = member._logits_arrays(arr_va)
            self.member_calibration_.append(fit_calibrator("platt", z, yv))
            self.members_.append(member)
            epochs += rep.epochs
            stopped += rep.stopped_by
            history += [{**h, "member": k} for h in rep.history]
        self.member_weights_ = list(spec["weights"])
        return FitReport(fit_seconds=0.0, epochs=epochs, stopped_by=stopped, history=history)

    def _new_net(self) -> Any:
        return build_network(
            self.arch_,
            n_vars=len(self.featurizer_.variables),
            n_static=len(self.featurizer_.static_names),
            delta_scale=float(getattr(self.featurizer_, "hours", 48.0)),
        )

    # -- inference --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.featurizer_ is None or (
            self.estimator_ is None and self.net_ is None and not self.members_
        ):
            raise NotFittedError(
                "This TimeSeriesLearner is not fitted yet. Call fit(...) or "
                "TimeSeriesLearner.load(...) before predicting."
            )

    def _logits_arrays(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (torch) or log-probabilities ``(N, 2)``."""
        if self.members_:
            from medlearn.evaluation.calibration import apply_calibration

            w = np.asarray(self.member_weights_, dtype=float)
            proba = sum(
                wk * apply_calibration(m._logits_arrays(arrays), cal)
                for wk, m, cal in zip(w, self.members_, self.member_calibration_, strict=True)
            ) / max(w.sum(), 1e-12)
            return np.log(np.clip(np.asarray(proba, dtype=float), 1e-12, 1.0))
        if self.net_ is not None:
            import torch

            n = len(arrays["values"])
            out = []
            t = self._tensors(arrays)
            with torch.no_grad():
                for s in range(0, n, 256):
                    chunk = {k: v[s : s + 256] for k, v in t.items()}
                    out.append(self.net_(chunk)["logits"].numpy().astype(float))
            return np.concatenate(out) if out else np.zeros((0, 2))
        proba = self._proba_summary(arrays["summary"])
        return np.log(np.clip(proba, 1e-12, 1.0))

    def _summary(self, summary: np.ndarray) -> np.ndarray:
        out = np.array(summary, dtype=np.float64)
        if self.dead_columns_:
            out[:, self.dead_columns_] = 0.0
        return out

    def _proba_summary(self, summary: np.ndarray) -> np.ndarray:
        with self._thread_limit():
            proba = self.estimator_.predict_proba(self._summary(summary))
        proba = np.asarray(proba, dtype=float)
        full = np.zeros((len(summary), 2))
        full[:, np.asarray(self.estimator_.classes_, dtype=int)] = proba
        return full

    def transform(self, records: Sequence[Record]) -> dict[str, np.ndarray]:
        """The fitted featuriser's arrays for ``records``."""
        self._check_fitted()
        return self.featurizer_.transform(list(records))

    def predict_logits(self, records: Sequence[Record], *, tta: bool = False) -> np.ndarray:
        """Logits ``(N, 2)`` (torch) or log-probabilities (scikit-learn, ensembles)."""
        self._check_fitted()
        if not records:
            return np.zeros((0, 2))
        return self._logits_arrays(self.transform(records))

    # -- explanations -----------------------------------------------------------------------
    def _explainer(self) -> TimeSeriesLearner:
        """The model explained: itself, or an ensemble's first torch (else first) member."""
        if not self.members_:
            return self
        torch_members = [m for m in self.members_ if m.net_ is not None]
        return (torch_members or self.members_)[0]

    def _attributions(
        self, arrays: dict[str, np.ndarray], targets: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray | None, str]:
        """Per feature ``(N, V + S)`` (variables then statics), per ``(N, T, V)`` or None,
        and the method name."""
        feat = self.featurizer_
        n_v = len(feat.variables)
        if self.net_ is not None:
            import torch

            t_all = self._tensors(arrays)
            per_feat, grid = [], []
            n_bins = int(feat.n_bins)
            bin_h = float(getattr(feat, "bin_hours", 1.0))
            for s in range(0, len(targets), 64):
                chunk = {k: v[s : s + 64] for k, v in t_all.items()}
                with torch.enable_grad():
                    ig = integrated_gradients(self.net_, chunk, targets[s : s + 64])
                if ig["grid"] is not None:
                    g = ig["grid"]
                else:  # events: scatter onto (bin, variable)
                    ev = ig["events"]
                    g = np.zeros((len(ev), n_bins, n_v), dtype=np.float32)
                    tt = chunk["event_time"].numpy()
                    vv = chunk["event_var"].numpy()
                    b = np.clip((tt // bin_h).astype(int), 0, n_bins - 1)
                    for i in range(len(ev)):
                        ok = vv[i] > 0
                        np.add.at(g[i], (b[i][ok], vv[i][ok] - 1), ev[i][ok])
                grid.append(g)
                per_feat.append(np.concatenate([g.sum(axis=1), ig["static"]], axis=1))
            return np.concatenate(per_feat), np.concatenate(grid), "integrated_gradients"
        # scikit-learn: occlusion per variable / static on the summary matrix
        summary = np.asarray(arrays["summary"], dtype=np.float64)
        groups = self._summary_groups()
        base = self._log_odds(summary)
        sign = np.array([1.0 if int(t) == 1 else -1.0 for t in targets])
        out = np.zeros((len(summary), len(groups)))
        for j, cols in enumerate(groups):
            if not cols:
                continue
            occluded = summary.copy()
            occluded[:, cols] = np.nan
            out[:, j] = (base - self._log_odds(occluded)) * sign
        return out, None, "occlusion"

    def _log_odds(self, summary: np.ndarray) -> np.ndarray:
        p = np.clip(self._proba_summary(summary)[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    def _summary_groups(self) -> list[list[int]]:
        """Summary columns of each variable, then of each static feature."""
        feat = self.featurizer_
        names = list(feat.variables) + list(feat.static_names)
        groups: list[list[int]] = [[] for _ in names]
        n_v = len(feat.variables)
        statics = list(feat.static_names)
        for j, col in enumerate(feat.summary_names):
            if col in statics:
                groups[n_v + statics.index(col)].append(j)
                continue
            match = [i for i, v in enumerate(feat.variables) if col.startswith(f"{v}_")]
            if match:
                best = max(match, key=lambda i: len(feat.variables[i]))
                groups[best].append(j)
        return groups

    def _feature_names(self) -> list[str]:
        return list(self.featurizer_.variables) + list(self.featurizer_.static_names)

    def explain(self, records: Sequence[Record], targets: Sequence[int]) -> list[Explanation]:
        """Per-stay attributions of each variable (summed over time) and static feature.

        Torch models: integrated gradients over values × time of the target's log-odds;
        scikit-learn models: occlusion. ``features`` maps every variable and static feature
        to its contribution (positive pushes towards ``target``).
        """
        self._check_fitted()
        if not records:
            return []
        who = self._explainer()
        arrays = self.transform(records)
        per_feat, _grid, method = who._attributions(arrays, [int(t) for t in targets])
        names = who._feature_names()
        return [
            Explanation(
                target=int(targets[i]),
                method=method,
                features={n: round(float(v), 6) for n, v in zip(names, per_feat[i], strict=True)},
            )
            for i in range(len(records))
        ]

    def global_importance(
        self, records: Sequence[Record], *, max_rows: int = _IMPORTANCE_ROWS
    ) -> dict[str, Any]:
        """Mean |attribution| per variable (and static feature) on ``records``.

        Returns:
            ``{"features": [...], "methods": {"integrated_gradients" | "occlusion": [...]},
            "n": int}`` plus, for torch models, ``"time_heatmap": {"variables", "hours",
            "values"}`` — mean |IG| per variable (rows) and time bin (columns).
        """
        self._check_fitted()
        records = list(records)[:max_rows]
        if not records:
            return {}
        who = self._explainer()
        arrays = self.transform(records)
        targets = [1] * len(records)  # the log-odds of death, whatever the label
        per_feat, grid, method = who._attributions(arrays, targets)
        out: dict[str, Any] = {
            "features": who._feature_names(),
            "methods": {method: [round(float(v), 6) for v in np.abs(per_feat).mean(axis=0)]},
            "n": len(records),
            "model_explained": who.model,
        }
        if grid is not None:
            feat = self.featurizer_
            bin_h = float(getattr(feat, "bin_hours", 1.0))
            heat = np.abs(grid).mean(axis=0).T  # (V, T)
            out["time_heatmap"] = {
                "variables": list(feat.variables),
                "hours": [round(i * bin_h, 3) for i in range(heat.shape[1])],
                "values": [[round(float(v), 6) for v in row] for row in heat],
            }
        return out

    # -- user inputs ------------------------------------------------------------------------
    def read_inputs(self, sources: Sequence[str]) -> tuple[list[Record], list[BadInput]]:
        """PhysioNet 2012 ``.txt`` files, sets (folder / ``.tar.gz``) or FHIR bundles → records.

        Every unreadable source is reported as a :class:`BadInput` naming the file.
        """
        from medlearn.clinical import _ts_data

        self._check_fitted()
        hours = float(self.featurizer_.hours)
        records: list[Record] = []
        bad: list[BadInput] = []
        for source in sources:
            path = Path(source)
            quality = _ts_data.QualityCounter()
            try:
                if not path.exists():
                    raise DataValidationError(f"{path}: no such file or folder.")
                name = path.name.lower()
                if path.is_file() and name.endswith(".txt"):
                    text = path.read_text(encoding="utf-8", errors="replace")
                    rid, st, ev = _ts_data._parse_physionet_text(text, quality, str(path))
                    rid = rid or path.stem
                    got = _ts_data.build_records(
                        [rid],
                        {rid: ev},
                        {rid: st},
                        None,
                        set_name=path.parent.name or "input",
                        hours=hours,
                        quality=quality,
                    )
                elif name.endswith((".json", ".ndjson", ".jsonl")):
                    from medlearn.clinical._ts_fhir import read_fhir

                    got = read_fhir(path, hours=hours, missing_outcome="keep", quality=quality)
                else:
                    got = _ts_data.read_physionet_set(
                        path, hours=hours, missing_outcome="keep", quality=quality
                    )
            except (DataValidationError, OSError, UnicodeError) as exc:
                bad.append(BadInput(str(source), getattr(exc, "message", None) or str(exc)))
                continue
            if not got:
                bad.append(BadInput(str(source), f"{path.name}: holds no ICU stay."))
            records.extend(got)
        return records, bad

    # -- persistence ------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_params": self.model_params,
            "kind": self.kind,
            "arch": self.arch_,
        }

    def _save_model(self, directory: Path, prefix: str) -> dict[str, Any]:
        """Write this (non-ensemble) model's file; return its state entry."""
        state = self._state()
        if self.net_ is not None:
            import torch

            (directory / "weights").mkdir(parents=True, exist_ok=True)
            path = directory / "weights" / f"{prefix}.pt"
            tmp = path.with_suffix(".pt.tmp")
            torch.save({k: v.detach().cpu() for k, v in self.net_.state_dict().items()}, tmp)
            tmp.replace(path)
            state["file"] = f"weights/{prefix}.pt"
        else:
            import skops.io as sio

            atomic_write_bytes(directory / f"{prefix}.skops", sio.dumps(self.estimator_))
            state["file"] = f"{prefix}.skops"
            state["dead_columns"] = list(self.dead_columns_)
        return state

    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``featurizer.json``, the model(s) and ``timeseries.json``; return the
        manifest fields."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(directory / "featurizer.json", self.featurizer_.to_dict())
        state: dict[str, Any] = {"classes": self.classes, "seed": self.seed}
        if self.members_:
            state["members"] = [
                m._save_model(directory, f"member_{k}") for k, m in enumerate(self.members_)
            ]
            state["member_calibration"] = self.member_calibration_
            state["member_weights"] = self.member_weights_
        else:
            state["single"] = self._save_model(directory, "model")
        atomic_write_json(directory / "timeseries.json", state)
        files = {"featurizer": "featurizer.json", "state": "timeseries.json"}
        return {
            "domain": self.domain,
            "learner": "timeseries",
            "reader": "timeseries",
            "model": {"name": self.model, "params": self.model_params},
            "classes": self.classes,
            "files_timeseries": files,
            "input": {
                "kind": "timeseries",
                "variables": list(self.featurizer_.variables),
                "formats": ["physionet2012-txt", "physionet2012-set", "fhir-bundle"],
            },
            "explain": {"method": self._explainer()._method_name()},
        }

    def _method_name(self) -> str:
        return "integrated_gradients" if self.net_ is not None else "occlusion"

    @classmethod
    def _load_model(
        cls, directory: Path, entry: dict[str, Any], featurizer: Any, classes: list[str]
    ) -> TimeSeriesLearner:
        obj = cls(model=entry["model"], classes=classes, model_params=entry.get("model_params"))
        obj.featurizer_ = featurizer
        path = directory / entry["file"]
        if entry.get("arch"):
            import torch

            obj.arch_ = dict(entry["arch"])
            net = obj._new_net()
            if not path.is_file():
                raise CheckpointError(f"{path}: missing from the bundle.")
            weights = torch.load(path, map_location="cpu", weights_only=True)
            try:
                net.load_state_dict(weights)
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{path}: weights do not fit the {entry['model']} network ({str(exc)[:200]}).",
                    hint="Retrain; the bundle was written by another model definition.",
                ) from None
            net.eval()
            obj.net_ = net
        else:
            from medlearn.clinical._tabular_learner import load_skops

            obj.estimator_ = load_skops(path)
            obj.dead_columns_ = [int(c) for c in entry.get("dead_columns", [])]
        return obj

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> TimeSeriesLearner:
        """Rebuild from a verified bundle: JSON, skops with trusted types, tensors with
        ``weights_only=True``.

        Raises:
            CheckpointError: a file is missing, malformed or holds untrusted types.
        """
        directory = Path(directory)
        try:
            files = manifest["files_timeseries"]
            state = json.loads((directory / files["state"]).read_text())
            featurizer = _featurizer_cls().from_dict(
                json.loads((directory / files["featurizer"]).read_text())
            )
            classes = list(state["classes"])
            model = manifest["model"]
            obj = cls(
                model=model["name"],
                classes=classes,
                model_params=model.get("params"),
                seed=state.get("seed", 0),
            )
            obj.featurizer_ = featurizer
            if "members" in state:
                obj.members_ = [
                    cls._load_model(directory, e, featurizer, classes) for e in state["members"]
                ]
                obj.member_calibration_ = list(state["member_calibration"])
                obj.member_weights_ = [float(w) for w in state["member_weights"]]
            else:
                single = cls._load_model(directory, state["single"], featurizer, classes)
                obj.net_, obj.estimator_, obj.arch_ = single.net_, single.estimator_, single.arch_
                obj.dead_columns_ = single.dead_columns_
        except (KeyError, TypeError, OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{directory}: the time-series bundle is incomplete ({type(exc).__name__}).",
                hint="Re-export the bundle with this medlearn version.",
            ) from None
        return obj


class _DictDataset:
    """A map-style dataset over a dict of equally long tensors; items are dicts."""

    def __init__(self, tensors: dict[str, Any]) -> None:
        self.tensors = tensors
        self.n = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.tensors.items()}


LEARNERS.add("timeseries", TimeSeriesLearner)

"""Survival models: Cox PH (lifelines), random survival forest and gradient-boosted survival
(scikit-survival), and DeepSurv (a torch MLP trained with the Cox partial likelihood).

Every model maps standardised covariates ``(N, D)`` to a risk score ``(N,)`` (higher = earlier
event) and to survival curves ``(N, T)``. Cox-type models (``cox_ph``, ``deepsurv``,
``gradient_boosting_survival``) give a log hazard ratio; their curves come from the Breslow
estimate of the baseline hazard on the training data. The forest gives its own curves.

Persistence never executes code from a file: coefficients and the Breslow hazard are JSON,
DeepSurv weights are read with ``torch.load(weights_only=True)``, scikit-survival models are
read with skops after checking the file's types against an explicit trusted list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medlearn._io import atomic_write_json
from medlearn._lazy import lazy_attributes
from medlearn.errors import CheckpointError, ConfigError
from medlearn.registry import MODELS

__all__ = [
    "BreslowBaseline",
    "CoxPHModel",
    "DeepSurvModel",
    "ForestSurvivalModel",
    "GradientBoostingSurvivalModel",
    "cox_partial_nll",
]

log = logging.getLogger(__name__)

#: Types a scikit-survival bundle may contain (checked against skops.io.get_untrusted_types).
TRUSTED_SKOPS_TYPES: tuple[str, ...] = (
    "sksurv.ensemble.forest.RandomSurvivalForest",
    "sksurv.ensemble.boosting.GradientBoostingSurvivalAnalysis",
    "sksurv.tree.tree.SurvivalTree",
    "sksurv.functions.StepFunction",
    "sksurv.linear_model.coxph.BreslowEstimator",
    "sksurv.ensemble.survival_loss.CoxPH",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._gb._init_raw_predictions",
    "sklearn.dummy.DummyRegressor",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "numpy.random._mt19937.MT19937",
    "numpy.random.mtrand.RandomState",
    "numpy.dtype",
    "builtins.slice",
    "collections.OrderedDict",
)


# --- Cox partial likelihood and Breslow -------------------------------------------------------


def cox_partial_nll(
    log_risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor
) -> torch.Tensor:
    """Negative Cox partial log-likelihood with Breslow's handling of tied times.

    Args:
        log_risk: ``(B,)`` predicted log hazard ratios.
        time: ``(B,)`` follow-up times.
        event: ``(B,)`` 1 for an event, 0 for censoring.

    Returns:
        The mean over events (0 when the batch has none), a scalar tensor.
    """
    order = torch.argsort(time, descending=True, stable=True)
    f, t, e = log_risk[order], time[order], event[order].to(log_risk.dtype)
    lse = torch.logcumsumexp(f, dim=0)
    # Breslow: the risk set of a time holds everyone with time >= it, ties included, so each
    # tie group uses the cumulative sum up to its last member (in descending order).
    _, group = torch.unique_consecutive(t, return_inverse=True)
    pos = torch.arange(len(t), device=t.device)
    last = torch.zeros(int(group.max()) + 1 if len(t) else 0, dtype=torch.long, device=t.device)
    last = last.scatter_reduce(0, group, pos, reduce="amax", include_self=False)
    denom = lse[last[group]]
    n_events = e.sum()
    if n_events <= 0:
        return f.sum() * 0.0
    return -((f - denom) * e).sum() / n_events


class BreslowBaseline:
    """Breslow estimate of the cumulative baseline hazard ``H0(t)``.

    ``S(t | x) = exp(-H0(t) exp(f(x)))`` for a log hazard ratio ``f``.
    """

    def __init__(self, times: np.ndarray | None = None, cumhaz: np.ndarray | None = None):
        self.times_ = times
        self.cumhaz_ = cumhaz

    def fit(self, log_risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> BreslowBaseline:
        """Fit on training log-risks ``(N,)``, times and events."""
        f = np.asarray(log_risk, dtype=np.float64)
        shift = f.max() if f.size else 0.0
        w = np.exp(f - shift)
        uniq, inv = np.unique(np.asarray(time, dtype=np.float64), return_inverse=True)
        deaths = np.bincount(inv, weights=np.asarray(event, dtype=float), minlength=len(uniq))
        at_risk = np.bincount(inv, weights=w, minlength=len(uniq))[::-1].cumsum()[::-1]
        hazard = np.where(deaths > 0, deaths / np.maximum(at_risk, 1e-300), 0.0) * np.exp(-shift)
        keep = deaths > 0
        self.times_ = uniq[keep]
        self.cumhaz_ = np.cumsum(hazard)[keep]
        return self

    def cumulative_hazard(self, times: Sequence[float]) -> np.ndarray:
        """``H0`` at ``times`` ``(T,)`` (a right-continuous step function)."""
        assert self.times_ is not None and self.cumhaz_ is not None
        idx = np.searchsorted(self.times_, np.asarray(times, dtype=float), side="right") - 1
        return np.where(idx >= 0, self.cumhaz_[np.maximum(idx, 0)], 0.0)

    def survival(self, log_risk: np.ndarray, times: Sequence[float]) -> np.ndarray:
        """``(N, T)`` survival probabilities for log-risks ``(N,)``."""
        h0 = self.cumulative_hazard(times)
        return np.exp(-np.outer(np.exp(np.asarray(log_risk, dtype=float)), h0))

    def to_dict(self) -> dict[str, Any]:
        assert self.times_ is not None and self.cumhaz_ is not None
        return {"times": self.times_.tolist(), "cumhaz": self.cumhaz_.tolist()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BreslowBaseline:
        return cls(np.asarray(raw["times"], dtype=float), np.asarray(raw["cumhaz"], dtype=float))


# --- models ----------------------------------------------------------------------------------


class _CoxLike:
    """Shared: a log hazard ratio plus a Breslow baseline."""

    kind = "cox"

    def __init__(self) -> None:
        self.baseline_: BreslowBaseline | None = None

    def log_risk(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_baseline(self, x: np.ndarray, t: np.ndarray, e: np.ndarray) -> None:
        self.baseline_ = BreslowBaseline().fit(self.log_risk(x), t, e)

    def risk(self, x: np.ndarray) -> np.ndarray:
        """Risk scores ``(N,)``: the log hazard ratio."""
        return self.log_risk(x)

    def survival(self, x: np.ndarray, times: Sequence[float]) -> np.ndarray:
        """``(N, T)`` survival probabilities."""
        assert self.baseline_ is not None
        return self.baseline_.survival(self.log_risk(x), times)


class CoxPHModel(_CoxLike):
    """Cox proportional hazards (lifelines ``CoxPHFitter``) on standardised covariates.

    Args:
        penalizer: ridge/elastic-net strength (lifelines ``penalizer``).
        l1_ratio: share of L1 in the penalty.
    """

    def __init__(self, *, penalizer: float = 0.01, l1_ratio: float = 0.0) -> None:
        super().__init__()
        if penalizer < 0 or not 0 <= l1_ratio <= 1:
            raise ConfigError(
                "The 'penalizer' parameter of cox_ph must be >= 0 and 'l1_ratio' in [0, 1]. "
                f"Got {penalizer}, {l1_ratio} instead."
            )
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.coef_: np.ndarray | None = None

    def fit(self, x: np.ndarray, t: np.ndarray, e: np.ndarray, **_: Any) -> dict[str, Any]:
        import pandas as pd
        from lifelines import CoxPHFitter

        cols = [f"f{j}" for j in range(x.shape[1])]
        frame = pd.DataFrame(x, columns=cols)
        frame["_t"], frame["_e"] = t, e
        cph = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio)
        cph.fit(frame, duration_col="_t", event_col="_e")
        self.coef_ = cph.params_[cols].to_numpy(dtype=np.float64)
        self._fit_baseline(x, t, e)
        return {"log_likelihood": float(cph.log_likelihood_)}

    def log_risk(self, x: np.ndarray) -> np.ndarray:
        assert self.coef_ is not None
        return np.asarray(x, dtype=np.float64) @ self.coef_

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Exact additive contributions ``(N, D)`` of each covariate to the log-risk."""
        assert self.coef_ is not None
        return np.asarray(x, dtype=np.float64) * self.coef_[None, :]

    def save(self, directory: Path) -> dict[str, Any]:
        assert self.coef_ is not None and self.baseline_ is not None
        state = {"coef": self.coef_.tolist(), "baseline": self.baseline_.to_dict()}
        atomic_write_json(directory / "cox_ph.json", state)
        return {"state": "cox_ph.json"}

    def load(self, directory: Path, fields: dict[str, Any]) -> None:
        state = json.loads((directory / fields["state"]).read_text())
        self.coef_ = np.asarray(state["coef"], dtype=np.float64)
        self.baseline_ = BreslowBaseline.from_dict(state["baseline"])


class _MLP(nn.Module):
    """DeepSurv's network: ``D → hidden… → 1`` (log hazard ratio)."""

    def __init__(
        self, in_features: int, hidden: Sequence[int], dropout: float, activation: str
    ) -> None:
        super().__init__()
        act = {"relu": nn.ReLU, "selu": nn.SELU, "elu": nn.ELU, "tanh": nn.Tanh}[activation]
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), act()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, 1, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class DeepSurvModel(_CoxLike):
    """DeepSurv (Katzman et al. 2018): an MLP log hazard ratio trained with the Cox partial
    likelihood through :func:`medlearn.training.fit_module`, early-stopped on validation.

    Args:
        hidden: widths of the hidden layers.
        dropout: dropout after each hidden layer.
        activation: ``relu``, ``selu``, ``elu`` or ``tanh``.
    """

    def __init__(
        self, *, hidden: Sequence[int] = (32, 32), dropout: float = 0.1, activation: str = "relu"
    ) -> None:
        super().__init__()
        if activation not in ("relu", "selu", "elu", "tanh"):
            raise ConfigError(
                "The 'activation' parameter of deepsurv must be 'relu', 'selu', 'elu' or "
                f"'tanh'. Got {activation!r} instead."
            )
        if not 0 <= dropout < 1:
            raise ConfigError(
                f"The 'dropout' parameter of deepsurv must be in [0, 1). Got {dropout}."
            )
        self.hidden = [int(h) for h in hidden]
        self.dropout = float(dropout)
        self.activation = activation
        self.net_: _MLP | None = None
        self.in_features_: int | None = None

    def _new_net(self, d: int) -> _MLP:
        return _MLP(d, self.hidden, self.dropout, self.activation)

    def fit(
        self,
        x: np.ndarray,
        t: np.ndarray,
        e: np.ndarray,
        *,
        x_val: np.ndarray,
        t_val: np.ndarray,
        e_val: np.ndarray,
        work_dir: Path,
        resume: bool,
        training: dict[str, Any],
    ) -> dict[str, Any]:
        from medlearn.clinical._survival_module import DeepSurvModule
        from medlearn.training import fit_module

        torch.manual_seed(training["seed"])
        self.in_features_ = x.shape[1]
        net = self._new_net(x.shape[1])
        module = DeepSurvModule(
            net,
            lr=training["lr"],
            weight_decay=training["weight_decay"],
            optimizer=training["optimizer"],
            max_epochs=training["epochs"],
        )

        def ds(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> torch.utils.data.TensorDataset:
            return torch.utils.data.TensorDataset(
                torch.as_tensor(a, dtype=torch.float32),
                torch.as_tensor(b, dtype=torch.float32),
                torch.as_tensor(c, dtype=torch.float32),
            )

        monitor = "val_c_index" if training["monitor"] == "c_index" else "val_loss"
        outcome = fit_module(
            module,
            ds(x, t, e),
            ds(x_val, t_val, e_val) if len(x_val) else None,
            batch_size=min(training["batch_size"], len(x)),
            max_epochs=training["epochs"],
            ckpt_dir=Path(work_dir) / "checkpoints",
            monitor=monitor,
            mode="max" if monitor == "val_c_index" else "min",
            patience=training["patience"] if len(x_val) else None,
            max_minutes=training["max_minutes"],
            seed=training["seed"],
            deterministic=training["deterministic"],
            resume=resume,
            progress=training["progress"],
            num_threads=training["num_threads"],
        )
        net.eval()
        self.net_ = net
        self._fit_baseline(x, t, e)
        return {
            "epochs": outcome.epochs_completed,
            "stopped_by": outcome.stopped_by,
            "history": outcome.history,
            "samples_seen": outcome.samples_seen,
            "best_score": outcome.best_score,
        }

    @torch.no_grad()
    def log_risk(self, x: np.ndarray) -> np.ndarray:
        assert self.net_ is not None
        self.net_.eval()
        return self.net_(torch.as_tensor(x, dtype=torch.float32)).double().numpy()

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Gradient × input ``(N, D)`` of the log-risk (standardised covariates)."""
        assert self.net_ is not None
        xt = torch.as_tensor(x, dtype=torch.float32).clone().requires_grad_(True)
        self.net_.eval()
        self.net_(xt).sum().backward()
        return (xt.grad * xt).detach().double().numpy()

    def save(self, directory: Path) -> dict[str, Any]:
        assert self.net_ is not None and self.baseline_ is not None
        (directory / "weights").mkdir(parents=True, exist_ok=True)
        tmp = directory / "weights" / "deepsurv.pt.tmp"
        torch.save({k: v.detach().cpu() for k, v in self.net_.state_dict().items()}, tmp)
        tmp.replace(directory / "weights" / "deepsurv.pt")
        atomic_write_json(directory / "baseline.json", self.baseline_.to_dict())
        return {
            "weights": "weights/deepsurv.pt",
            "baseline": "baseline.json",
            "in_features": self.in_features_,
        }

    def load(self, directory: Path, fields: dict[str, Any]) -> None:
        self.in_features_ = int(fields["in_features"])
        net = self._new_net(self.in_features_)
        state = torch.load(directory / fields["weights"], map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{directory}: DeepSurv weights do not fit the network ({str(exc)[:200]}).",
                hint="Retrain; the bundle was written by another model definition.",
            ) from None
        net.eval()
        self.net_ = net
        self.baseline_ = BreslowBaseline.from_dict(
            json.loads((directory / fields["baseline"]).read_text())
        )


def _structured(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    from sksurv.util import Surv

    return Surv.from_arrays(event=np.asarray(e).astype(bool), time=np.asarray(t, dtype=float))


def _snap_times(t: np.ndarray, e: np.ndarray, grid: int | None) -> np.ndarray:
    """Round times up to a grid of ``grid`` event-time quantiles (bounds forest memory)."""
    if not grid:
        return t
    events = t[e.astype(bool)]
    if len(np.unique(events)) <= grid:
        return t
    edges = np.unique(np.quantile(events, np.linspace(0, 1, grid + 1)))
    idx = np.minimum(np.searchsorted(edges, t, side="left"), len(edges) - 1)
    return np.where(t <= edges[-1], edges[idx], t)


class _SkopsModel:
    """Shared persistence of scikit-survival estimators through skops."""

    estimator_: Any = None
    file_name = "model.skops"

    def save(self, directory: Path) -> dict[str, Any]:
        import skops.io as sio

        tmp = directory / (self.file_name + ".tmp")
        sio.dump(self.estimator_, tmp)
        untrusted = sio.get_untrusted_types(file=tmp)
        unknown = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
        if unknown:
            tmp.unlink(missing_ok=True)
            raise CheckpointError(
                f"The fitted model holds types outside medlearn's trusted list: {unknown}.",
                hint="Report this with your scikit-survival version; the list must be extended.",
            )
        tmp.replace(directory / self.file_name)
        return {"skops": self.file_name}

    def load(self, directory: Path, fields: dict[str, Any]) -> None:
        import skops.io as sio

        path = directory / fields["skops"]
        untrusted = sio.get_untrusted_types(file=path)
        unknown = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
        if unknown:
            raise CheckpointError(
                f"{path}: holds types outside the trusted list ({', '.join(unknown)}); "
                "refusing to load it.",
                hint="Only load bundles written by medlearn.",
            )
        self.estimator_ = sio.load(path, trusted=[t for t in untrusted])


class ForestSurvivalModel(_SkopsModel):
    """Random survival forest (scikit-survival ``RandomSurvivalForest``).

    Args:
        n_estimators: trees (capped by ``max_memory_mb``).
        min_samples_leaf: smallest leaf.
        max_features: features tried per split (``sqrt``, a fraction or a count).
        max_depth: depth limit, or None.
        time_grid: training times are rounded up to this many event-time quantiles, which
            bounds the size of each leaf's survival curve (None: exact times).
        max_memory_mb: the forest's estimated size limit; fewer trees are grown above it.
        n_jobs: worker threads (at most 2).
        seed: random state.
    """

    kind = "forest"

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        min_samples_leaf: int = 15,
        max_features: str | float | int | None = "sqrt",
        max_depth: int | None = None,
        time_grid: int | None = 100,
        max_memory_mb: float = 400.0,
        n_jobs: int = 2,
        seed: int = 0,
    ) -> None:
        if n_estimators < 1 or min_samples_leaf < 1:
            raise ConfigError(
                "The 'n_estimators' and 'min_samples_leaf' parameters of rsf must be >= 1. "
                f"Got {n_estimators}, {min_samples_leaf} instead."
            )
        self.n_estimators = int(n_estimators)
        self.min_samples_leaf = int(min_samples_leaf)
        self.max_features = max_features
        self.max_depth = max_depth
        self.time_grid = time_grid
        self.max_memory_mb = float(max_memory_mb)
        self.n_jobs = max(1, min(2, int(n_jobs)))
        self.seed = seed

    def fit(self, x: np.ndarray, t: np.ndarray, e: np.ndarray, **_: Any) -> dict[str, Any]:
        from sksurv.ensemble import RandomSurvivalForest

        t_fit = _snap_times(t, e, self.time_grid)
        n_times = len(np.unique(t_fit[e.astype(bool)]))
        nodes = 2 * max(1, len(x) // self.min_samples_leaf)
        per_tree_mb = nodes * n_times * 2 * 8 / 2**20
        n_trees = self.n_estimators
        if n_trees * per_tree_mb > self.max_memory_mb:
            n_trees = max(1, int(self.max_memory_mb // max(per_tree_mb, 1e-9)))
            log.warning(
                "rsf: %d trees would need ~%.0f MB; growing %d (max_memory_mb=%.0f). Raise "
                "min_samples_leaf or lower time_grid for more trees.",
                self.n_estimators,
                self.n_estimators * per_tree_mb,
                n_trees,
                self.max_memory_mb,
            )
        self.estimator_ = RandomSurvivalForest(
            n_estimators=n_trees,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            max_depth=self.max_depth,
            n_jobs=self.n_jobs,
            random_state=self.seed,
        ).fit(x, _structured(t_fit, e))
        return {"n_estimators": n_trees, "estimated_mb": round(n_trees * per_tree_mb, 1)}

    def risk(self, x: np.ndarray) -> np.ndarray:
        """Risk: the forest's expected number of events (sum of the cumulative hazard)."""
        return np.asarray(self.estimator_.predict(x), dtype=np.float64)

    def survival(self, x: np.ndarray, times: Sequence[float]) -> np.ndarray:
        est = self.estimator_
        grid = np.asarray(est.unique_times_, dtype=float)
        surv = est.predict_survival_function(x, return_array=True)
        idx = np.searchsorted(grid, np.asarray(times, dtype=float), side="right") - 1
        out = np.ones((len(x), len(idx)))
        ok = idx >= 0
        out[:, ok] = surv[:, idx[ok]]
        return out


class GradientBoostingSurvivalModel(_CoxLike, _SkopsModel):
    """Gradient-boosted trees with the Cox loss (scikit-survival
    ``GradientBoostingSurvivalAnalysis``); curves from the Breslow baseline.

    Args:
        n_estimators, learning_rate, max_depth, subsample, min_samples_leaf: boosting settings.
        seed: random state.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        subsample: float = 0.8,
        min_samples_leaf: int = 10,
        seed: int = 0,
    ) -> None:
        _CoxLike.__init__(self)
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.max_depth = int(max_depth)
        self.subsample = float(subsample)
        self.min_samples_leaf = int(min_samples_leaf)
        self.seed = seed

    def fit(self, x: np.ndarray, t: np.ndarray, e: np.ndarray, **_: Any) -> dict[str, Any]:
        from sksurv.ensemble import GradientBoostingSurvivalAnalysis

        self.estimator_ = GradientBoostingSurvivalAnalysis(
            loss="coxph",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            subsample=self.subsample,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.seed,
        ).fit(x, _structured(t, e))
        self._fit_baseline(x, t, e)
        return {}

    def log_risk(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator_.predict(x), dtype=np.float64)

    def save(self, directory: Path) -> dict[str, Any]:
        assert self.baseline_ is not None
        fields = _SkopsModel.save(self, directory)
        atomic_write_json(directory / "baseline.json", self.baseline_.to_dict())
        return {**fields, "baseline": "baseline.json"}

    def load(self, directory: Path, fields: dict[str, Any]) -> None:
        _SkopsModel.load(self, directory, fields)
        self.baseline_ = BreslowBaseline.from_dict(
            json.loads((directory / fields["baseline"]).read_text())
        )


# --- registry --------------------------------------------------------------------------------

_META = {"domain": "clinical", "learner": "survival", "reader": "survival", "tasks": ("survival",)}


@MODELS.register(
    "cox_ph", **_META, tiny={}, description="Cox proportional hazards (lifelines CoxPHFitter)"
)
def cox_ph(*, penalizer: float = 0.01, l1_ratio: float = 0.0) -> CoxPHModel:
    """Cox PH with a ridge / elastic-net penalty (see :class:`CoxPHModel`)."""
    return CoxPHModel(penalizer=penalizer, l1_ratio=l1_ratio)


@MODELS.register(
    "rsf",
    **_META,
    tiny={"n_estimators": 10, "min_samples_leaf": 5},
    description="Random survival forest (scikit-survival)",
)
def rsf(
    *,
    n_estimators: int = 200,
    min_samples_leaf: int = 15,
    max_features: str | float | int | None = "sqrt",
    max_depth: int | None = None,
    time_grid: int | None = 100,
    max_memory_mb: float = 400.0,
    n_jobs: int = 2,
    seed: int = 0,
) -> ForestSurvivalModel:
    """Random survival forest (see :class:`ForestSurvivalModel`)."""
    return ForestSurvivalModel(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        max_depth=max_depth,
        time_grid=time_grid,
        max_memory_mb=max_memory_mb,
        n_jobs=n_jobs,
        seed=seed,
    )


@MODELS.register(
    "gradient_boosting_survival",
    **_META,
    tiny={"n_estimators": 20},
    description="Gradient-boosted trees with the Cox loss (scikit-survival)",
)
def gradient_boosting_survival(
    *,
    n_estimators: int = 200,
    learning_rate: float = 0.05,
    max_depth: int = 3,
    subsample: float = 0.8,
    min_samples_leaf: int = 10,
    seed: int = 0,
) -> GradientBoostingSurvivalModel:
    """Gradient-boosted Cox trees (see :class:`GradientBoostingSurvivalModel`)."""
    return GradientBoostingSurvivalModel(
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        max_depth=max_depth,
        subsample=subsample,
        min_samples_leaf=min_samples_leaf,
        seed=seed,
    )


@MODELS.register(
    "deepsurv",
    **_META,
    tiny={"hidden": [8]},
    description="DeepSurv: MLP with the Cox partial likelihood (Katzman et al. 2018)",
)
def deepsurv(
    *, hidden: Sequence[int] = (32, 32), dropout: float = 0.1, activation: str = "relu"
) -> DeepSurvModel:
    """DeepSurv (see :class:`DeepSurvModel`)."""
    return DeepSurvModel(hidden=hidden, dropout=dropout, activation=activation)


# DeepSurvModule subclasses Lightning's LightningModule, which takes seconds to import: it is
# imported on first use, and this name keeps working
__getattr__ = lazy_attributes(__name__, {"DeepSurvModule": "medlearn.clinical._survival_module"})

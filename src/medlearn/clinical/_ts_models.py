"""ICU time-series models registered in :data:`medlearn.registry.MODELS`.

Two families share one learner (:class:`~medlearn.clinical._ts_learner.TimeSeriesLearner`):

- **baselines on summary statistics** (``ts_logistic_regression``, ``ts_random_forest``,
  ``ts_gradient_boosting``): scikit-learn estimators on the featuriser's ``summary`` matrix
  (per variable first/last/min/max/mean/std/count/hours since last, plus statics). Linear
  models and forests impute (median with missing indicators); histogram gradient boosting
  handles NaN natively.
- **sequence models in torch** (``gru``, ``lstm_attention``, ``grud``, ``ts_transformer``):
  an encoder over the hourly grid (values, observation mask, time since last observation) or
  the irregular event view, joined with the static features, then three heads sharing that
  representation: in-hospital mortality (the run's binary target), length of stay
  (regression on ``log1p(los_days)``) and time to death (Cox partial likelihood). The
  auxiliary losses are weighted by ``aux_weights``.

``ts_ensemble`` averages the calibrated probabilities of several members.

Each factory takes its own parameters (``model.params``) plus ``task``, ``seed`` and
``class_weight``, which the learner passes itself. scikit-learn factories return an unfitted
estimator; torch factories return an architecture dict that :func:`build_network` turns into
a :class:`TimeSeriesNet`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlearn._lazy import lazy_attributes
from medlearn.errors import ConfigError
from medlearn.registry import MODELS

__all__ = [
    "GRUDEncoder",
    "GridRNNEncoder",
    "TimeSeriesNet",
    "TransformerEncoder",
    "build_network",
    "cox_partial_likelihood",
]

_META = {
    "domain": "clinical",
    "learner": "timeseries",
    "reader": "timeseries",
    "tasks": ("binary",),
}
#: Parameters the learner passes itself; refused in ``model.params``.
RESERVED = ("task", "seed", "class_weight")
#: Auxiliary tasks a torch model may weight.
AUX_TASKS = ("los", "survival")


def _register(name: str, *, kind: str, tiny: dict[str, Any], description: str):
    return MODELS.register(name, kind=kind, tiny=tiny, description=description, **_META)


# --- scikit-learn baselines on the summary matrix ----------------------------------------------


@_register(
    "ts_logistic_regression",
    kind="sklearn",
    tiny={"C": 1.0},
    description="Logistic regression on per-variable summary statistics (median imputation).",
)
def ts_logistic_regression(
    *,
    task: str = "binary",
    seed: int = 0,
    class_weight: str | None = None,
    C: float = 0.01,
    max_iter: int = 3000,
) -> Any:
    """Median imputation with missing indicators → standardisation → L2 logistic regression."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
            (
                "model",
                LogisticRegression(
                    C=C, max_iter=max_iter, class_weight=class_weight, random_state=seed
                ),
            ),
        ]
    )


@_register(
    "ts_random_forest",
    kind="sklearn",
    tiny={"n_estimators": 10},
    description="Random forest on per-variable summary statistics (median imputation).",
)
def ts_random_forest(
    *,
    task: str = "binary",
    seed: int = 0,
    class_weight: str | None = None,
    n_estimators: int = 500,
    min_samples_leaf: int = 3,
    max_features: str | float | None = "sqrt",
    n_jobs: int | None = 1,
) -> Any:
    """Median imputation with missing indicators → random forest."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    cw = "balanced_subsample" if class_weight == "balanced" else None
    return Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            (
                "model",
                RandomForestClassifier(
                    n_estimators=n_estimators,
                    min_samples_leaf=min_samples_leaf,
                    max_features=max_features,
                    class_weight=cw,
                    n_jobs=n_jobs,
                    random_state=seed,
                ),
            ),
        ]
    )


@_register(
    "ts_gradient_boosting",
    kind="sklearn",
    tiny={"max_iter": 10},
    description="Histogram gradient boosting on summary statistics (NaN handled natively).",
)
def ts_gradient_boosting(
    *,
    task: str = "binary",
    seed: int = 0,
    class_weight: str | None = None,
    learning_rate: float = 0.05,
    max_iter: int = 250,
    max_leaf_nodes: int = 15,
    min_samples_leaf: int = 20,
    l2_regularization: float = 1.0,
    max_features: float = 0.5,
    weighted: bool = False,
) -> Any:
    """``HistGradientBoostingClassifier``; unweighted unless ``weighted`` (then the run's
    ``class_weights`` apply): reweighting did not help ranking and hurts calibration.

    The defaults were tuned on a validation split carved from PhysioNet 2012 set-a (250
    rounds at learning rate 0.05 take 10–25 s on one shared core for 3,200 stays × ~570 columns).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
        max_features=max_features,
        early_stopping=False,
        class_weight=class_weight if weighted else None,
        random_state=seed,
    )


# --- torch architectures -----------------------------------------------------------------------


def _check_arch(name: str, hidden: int, dropout: float, aux_weights: Mapping[str, float]) -> dict:
    if int(hidden) < 1:
        raise ConfigError(f"The 'hidden' parameter of {name} must be a positive int. Got {hidden}.")
    if not 0 <= float(dropout) < 1:
        raise ConfigError(f"The 'dropout' parameter of {name} must be in [0, 1). Got {dropout}.")
    aux = dict(aux_weights or {})
    bad = [k for k in aux if k not in AUX_TASKS]
    if bad or any(float(v) < 0 for v in aux.values()):
        raise ConfigError(
            f"The 'aux_weights' parameter of {name} must map {'/'.join(AUX_TASKS)} to "
            f"non-negative weights. Got {aux!r}.",
            hint="e.g. aux_weights: {los: 0.1, survival: 0.1}",
        )
    return {k: float(aux.get(k, 0.0)) for k in AUX_TASKS}


def _torch_factory(name: str, encoder: str, description: str, extra_tiny: dict | None = None):
    tiny = {"hidden": 8, **(extra_tiny or {})}

    def factory(
        *,
        task: str = "binary",
        seed: int = 0,
        class_weight: str | None = None,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.2,
        static_hidden: int = 32,
        aux_weights: Mapping[str, float] | None = None,
        heads: int = 4,
        view: str = "grid",
        pooling: str = "cls",
    ) -> dict[str, Any]:
        aux = _check_arch(name, hidden, dropout, aux_weights or {"los": 0.1, "survival": 0.1})
        if view not in ("grid", "events"):
            raise ConfigError(f"The 'view' parameter of {name} must be 'grid' or 'events'.")
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"The 'pooling' parameter of {name} must be 'cls' or 'mean'.")
        if encoder == "transformer" and int(hidden) % int(heads):
            raise ConfigError(
                f"The 'hidden' parameter of {name} ({hidden}) must be divisible by heads ({heads})."
            )
        return {
            "encoder": encoder,
            "hidden": int(hidden),
            "layers": int(layers),
            "dropout": float(dropout),
            "static_hidden": int(static_hidden),
            "aux_weights": aux,
            "heads": int(heads),
            "view": view if encoder == "transformer" else "grid",
            "pooling": pooling,
        }

    factory.__name__ = name
    factory.__doc__ = f"{description} Returns the architecture dict for :func:`build_network`."
    _register(name, kind="torch", tiny=tiny, description=description)(factory)
    return factory


gru = _torch_factory("gru", "gru", "GRU over the hourly grid (values, mask, time since last).")
lstm_attention = _torch_factory(
    "lstm_attention", "lstm_attention", "LSTM with additive attention pooling over hours."
)
grud = _torch_factory(
    "grud", "grud", "GRU-D (Che et al. 2018): GRU with learned input and hidden-state decay."
)
ts_transformer = _torch_factory(
    "ts_transformer",
    "transformer",
    "Transformer encoder over the hourly grid or the irregular events, with time embedding.",
    {"heads": 2},
)


@_register(
    "ts_ensemble",
    kind="ensemble",
    tiny={"members": ["ts_gradient_boosting", "gru"]},
    description="Average of the validation-calibrated probabilities of several members.",
)
def ts_ensemble(
    *,
    task: str = "binary",
    seed: int = 0,
    class_weight: str | None = None,
    members: Sequence[str] = ("ts_gradient_boosting", "grud", "ts_transformer"),
    member_params: Mapping[str, Mapping[str, Any]] | None = None,
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The member list (registered time-series models), their params and averaging weights."""
    members = [str(m) for m in members]
    if not members:
        raise ConfigError("The 'members' parameter of ts_ensemble must name at least one model.")
    for m in members:
        meta = MODELS.meta(m)  # unknown names raise with did-you-mean
        if meta.get("learner") != "timeseries" or meta.get("kind") == "ensemble":
            raise ConfigError(
                f"ts_ensemble member {m!r} is not a time-series model.",
                hint="Members: ts_logistic_regression, ts_random_forest, ts_gradient_boosting, "
                "gru, lstm_attention, grud, ts_transformer.",
            )
    if weights is not None and (len(weights) != len(members) or any(w < 0 for w in weights)):
        raise ConfigError(
            "The 'weights' parameter of ts_ensemble must hold one non-negative weight per member."
        )
    params = {str(k): dict(v) for k, v in (member_params or {}).items()}
    unknown = [k for k in params if k not in members]
    if unknown:
        raise ConfigError(f"ts_ensemble member_params names non-members: {', '.join(unknown)}.")
    return {
        "members": members,
        "member_params": params,
        "weights": [float(w) for w in weights] if weights is not None else [1.0] * len(members),
    }


# --- encoders ----------------------------------------------------------------------------------


class GridRNNEncoder(nn.Module):
    """GRU or LSTM (optionally with additive attention) over the hourly grid.

    The input at hour ``t`` is ``[values_t, mask_t, delta_t / delta_scale]`` (``3V``).

    Args:
        n_vars: V.
        hidden: H.
        layers: stacked recurrent layers.
        dropout: between layers.
        cell: ``"gru"`` or ``"lstm"``.
        attention: pool the hidden states with additive attention instead of the last one.
        delta_scale: hours dividing ``delta``.
    """

    def __init__(
        self,
        n_vars: int,
        hidden: int,
        *,
        layers: int = 1,
        dropout: float = 0.0,
        cell: str = "gru",
        attention: bool = False,
        delta_scale: float = 48.0,
    ) -> None:
        super().__init__()
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(
            3 * n_vars,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.attention = attention
        self.delta_scale = float(delta_scale)
        if attention:
            self.att_proj = nn.Linear(hidden, hidden)
            self.att_score = nn.Linear(hidden, 1, bias=False)
        self.last_attention: torch.Tensor | None = None

    def forward(self, values, mask, delta, **_: Any) -> torch.Tensor:
        """``(B, T, V)`` ×3 → ``(B, H)``."""
        x = torch.cat([values, mask, delta / self.delta_scale], dim=-1)
        out, _ = self.rnn(x)
        if not self.attention:
            return out[:, -1]
        scores = self.att_score(torch.tanh(self.att_proj(out))).squeeze(-1)  # (B, T)
        weights = torch.softmax(scores, dim=1)
        self.last_attention = weights.detach()
        return (weights.unsqueeze(-1) * out).sum(dim=1)


class GRUDEncoder(nn.Module):
    """GRU-D (Che et al., *Sci. Rep.* 2018): missing values decay towards the mean.

    At hour ``t`` with value ``x``, mask ``m`` and time since last observation ``δ``:
    ``γ_x = exp(-relu(w_x ⊙ δ + b_x))`` (per variable), ``x̂ = m x + (1-m)(γ_x x_last +
    (1-γ_x) x̄)``, ``γ_h = exp(-relu(W_h δ + b_h))``, ``h ← γ_h ⊙ h``, then a GRU cell on
    ``[x̂, m]``. Values are normalised by the featuriser, so ``x̄`` (a buffer) is 0 unless set.

    Args:
        n_vars: V.
        hidden: H.
        dropout: on the output.
        delta_scale: hours dividing ``δ``.
    """

    def __init__(
        self, n_vars: int, hidden: int, *, dropout: float = 0.0, delta_scale: float = 48.0
    ) -> None:
        super().__init__()
        self.n_vars = n_vars
        self.hidden = hidden
        self.delta_scale = float(delta_scale)
        self.w_x = nn.Parameter(torch.full((n_vars,), 1.0))
        self.b_x = nn.Parameter(torch.zeros(n_vars))
        self.decay_h = nn.Linear(n_vars, hidden)
        nn.init.zeros_(self.decay_h.bias)
        self.cell = nn.GRUCell(2 * n_vars, hidden)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("x_mean", torch.zeros(n_vars))

    def input_decay(self, delta: torch.Tensor) -> torch.Tensor:
        """``γ_x`` in (0, 1], non-increasing in ``delta`` ``(..., V)``."""
        return torch.exp(-F.relu(F.softplus(self.w_x) * delta / self.delta_scale + self.b_x))

    def hidden_decay(self, delta: torch.Tensor) -> torch.Tensor:
        """``γ_h`` ``(B, H)`` in (0, 1] from ``delta`` ``(B, V)``."""
        return torch.exp(-F.relu(self.decay_h(delta / self.delta_scale)))

    def impute(self, x, m, delta, x_last) -> torch.Tensor:
        """The decayed input ``x̂`` ``(B, V)``."""
        g = self.input_decay(delta)
        return m * x + (1 - m) * (g * x_last + (1 - g) * self.x_mean)

    def forward(self, values, mask, delta, **_: Any) -> torch.Tensor:
        """``(B, T, V)`` ×3 → ``(B, H)``."""
        b, t, _v = values.shape
        h = values.new_zeros(b, self.hidden)
        x_last = self.x_mean.expand(b, -1)
        for step in range(t):
            x, m, d = values[:, step], mask[:, step], delta[:, step]
            x_hat = self.impute(x, m, d, x_last)
            h = self.hidden_decay(d) * h
            h = self.cell(torch.cat([x_hat, m], dim=-1), h)
            x_last = m * x + (1 - m) * x_last
        return self.drop(h)


class TransformerEncoder(nn.Module):
    """Transformer encoder with a time embedding and CLS or mean pooling.

    ``view="grid"``: one token per hour from ``[values, mask, delta]``; ``view="events"``: one
    token per observation, ``embed(var) + value · scale(var)``. Both add a sinusoidal
    embedding of the hour (continuous, so irregular times keep their spacing).

    Args:
        n_vars: V.
        hidden: model width (divisible by ``heads``).
        heads, layers, dropout: encoder settings.
        view: ``"grid"`` or ``"events"``.
        pooling: ``"cls"`` or ``"mean"``.
        delta_scale: hours dividing ``delta`` (grid view).
    """

    def __init__(
        self,
        n_vars: int,
        hidden: int,
        *,
        heads: int = 4,
        layers: int = 1,
        dropout: float = 0.1,
        view: str = "grid",
        pooling: str = "cls",
        delta_scale: float = 48.0,
    ) -> None:
        super().__init__()
        self.view, self.pooling, self.hidden = view, pooling, hidden
        self.delta_scale = float(delta_scale)
        if view == "grid":
            self.proj = nn.Linear(3 * n_vars, hidden)
        else:
            self.var_embed = nn.Embedding(n_vars + 1, hidden, padding_idx=0)
            self.var_scale = nn.Embedding(n_vars + 1, hidden, padding_idx=0)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden))
        self.time_freq = nn.Parameter(
            torch.exp(torch.linspace(0, -math.log(100.0), hidden // 2)), requires_grad=False
        )
        self.time_proj = nn.Linear(2 * (hidden // 2), hidden)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=2 * hidden, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)

    def _time(self, hours: torch.Tensor) -> torch.Tensor:
        ang = hours.unsqueeze(-1) * self.time_freq
        return self.time_proj(torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1))

    def forward(
        self,
        values=None,
        mask=None,
        delta=None,
        event_time=None,
        event_var=None,
        event_value=None,
        event_mask=None,
        **_: Any,
    ) -> torch.Tensor:
        """Grid ``(B, T, V)`` or events ``(B, E)`` → ``(B, H)``."""
        if self.view == "grid":
            b, t, _v = values.shape
            tok = self.proj(torch.cat([values, mask, delta / self.delta_scale], dim=-1))
            hours = torch.arange(t, dtype=values.dtype, device=values.device).expand(b, t)
            valid = torch.ones(b, t, dtype=torch.bool, device=values.device)
        else:
            var = event_var.long()
            tok = self.var_embed(var) + event_value.unsqueeze(-1) * self.var_scale(var)
            hours = event_time
            valid = event_mask > 0
        tok = tok + self._time(hours)
        b = tok.shape[0]
        tok = torch.cat([self.cls.expand(b, -1, -1), tok], dim=1)
        valid = torch.cat([valid.new_ones(b, 1), valid], dim=1)
        out = self.encoder(tok, src_key_padding_mask=~valid)
        if self.pooling == "cls":
            return self.norm(out[:, 0])
        w = valid.float().unsqueeze(-1)
        return self.norm((out * w).sum(1) / w.sum(1).clamp_min(1.0))


class TimeSeriesNet(nn.Module):
    """Encoder + static MLP → shared trunk → mortality, length-of-stay and risk heads.

    ``forward(batch)`` takes the featuriser's tensors (``values``, ``mask``, ``delta``
    ``(B, T, V)``; ``static`` ``(B, S)``; the ``event_*`` tensors ``(B, E)``) and returns
    ``{"logits": (B, 2), "los": (B,), "risk": (B,)}``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        enc_dim: int,
        n_static: int,
        *,
        static_hidden: int = 32,
        hidden: int = 64,
        dropout: float = 0.2,
        n_classes: int = 2,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.n_static = n_static
        s_dim = static_hidden if n_static else 0
        if n_static:
            self.static = nn.Sequential(nn.Linear(n_static, static_hidden), nn.ReLU())
        self.trunk = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(enc_dim + s_dim, hidden), nn.ReLU(), nn.Dropout(dropout)
        )
        self.head_mortality = nn.Linear(hidden, n_classes)
        self.head_los = nn.Linear(hidden, 1)
        self.head_risk = nn.Linear(hidden, 1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z = self.encoder(**{k: v for k, v in batch.items() if k != "static"})
        if self.n_static:
            z = torch.cat([z, self.static(batch["static"])], dim=-1)
        z = self.trunk(z)
        return {
            "logits": self.head_mortality(z),
            "los": self.head_los(z).squeeze(-1),
            "risk": self.head_risk(z).squeeze(-1),
        }


def build_network(
    arch: Mapping[str, Any], *, n_vars: int, n_static: int, delta_scale: float = 48.0
) -> TimeSeriesNet:
    """A :class:`TimeSeriesNet` from a torch factory's architecture dict.

    Args:
        arch: what ``gru`` / ``lstm_attention`` / ``grud`` / ``ts_transformer`` return.
        n_vars: V, time-series variables.
        n_static: S, static feature columns.
        delta_scale: the featuriser's window in hours.
    """
    kind, h = arch["encoder"], int(arch["hidden"])
    drop = float(arch["dropout"])
    if kind in ("gru", "lstm_attention"):
        enc: nn.Module = GridRNNEncoder(
            n_vars,
            h,
            layers=int(arch["layers"]),
            dropout=drop,
            cell="gru" if kind == "gru" else "lstm",
            attention=kind == "lstm_attention",
            delta_scale=delta_scale,
        )
    elif kind == "grud":
        enc = GRUDEncoder(n_vars, h, dropout=drop, delta_scale=delta_scale)
    elif kind == "transformer":
        enc = TransformerEncoder(
            n_vars,
            h,
            heads=int(arch["heads"]),
            layers=int(arch["layers"]),
            dropout=min(drop, 0.1),
            view=arch["view"],
            pooling=arch["pooling"],
            delta_scale=delta_scale,
        )
    else:
        raise ConfigError(f"Unknown time-series encoder {kind!r}.")
    return TimeSeriesNet(
        enc,
        h,
        n_static,
        static_hidden=int(arch["static_hidden"]),
        hidden=h,
        dropout=drop,
    )


# --- losses and the Lightning task -------------------------------------------------------------


def cox_partial_likelihood(
    risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor
) -> torch.Tensor:
    """Negative Cox partial log-likelihood (Breslow ties), averaged over events.

    Args:
        risk: log hazard ratios ``(N,)``.
        time: follow-up times ``(N,)``.
        event: 1 for an observed death, 0 for censored ``(N,)``.

    Returns:
        A scalar; 0 when the batch holds no event.
    """
    event = event.float()
    if event.sum() <= 0:
        return risk.sum() * 0.0
    order = torch.argsort(time, descending=True)
    r, e, t = risk[order], event[order], time[order]
    log_cum = torch.logcumsumexp(r, dim=0)
    # Breslow: every subject tied at a time shares the risk set of the earliest of them
    _, inverse, counts = torch.unique_consecutive(t, return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, 0) - 1
    log_cum = log_cum[last[inverse]]
    return -((r - log_cum) * e).sum() / e.sum()


# TimeSeriesModule subclasses Lightning's LightningModule, which takes seconds to import: it is
# imported on first use, and this name keeps working
__getattr__ = lazy_attributes(__name__, {"TimeSeriesModule": "medlearn.clinical._ts_module"})

"""Tabular risk models registered in :data:`medlearn.registry.MODELS`.

Each factory takes the model's own keyword parameters (``model.params`` in a run file) plus
three that medlearn passes itself: ``task`` (``binary`` / ``multiclass`` / ``regression``),
``seed`` and ``class_weight`` (``"balanced"`` or ``None``). scikit-learn factories return an
unfitted estimator; ``mlp`` returns a torch module factory trained by the shared trainer
(:func:`medlearn.training.fit_module`) inside :class:`~medlearn.clinical.TabularLearner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from medlearn._lazy import lazy_attributes
from medlearn.registry import MODELS

__all__ = ["TabularMLP"]

_TASKS = ("binary", "multiclass", "regression")
_META = {"domain": "clinical", "learner": "tabular", "reader": "tabular", "tasks": _TASKS}
#: Parameters the learner passes itself; refused in ``model.params``.
RESERVED = ("task", "seed", "class_weight")


def _register(name: str, *, kind: str, tiny: dict[str, Any], description: str):
    return MODELS.register(name, kind=kind, tiny=tiny, description=description, **_META)


@_register(
    "logistic_regression",
    kind="sklearn",
    tiny={"C": 1.0},
    description="L2-regularised logistic regression (ridge regression for regression tasks).",
)
def logistic_regression(
    *,
    task: str,
    seed: int = 0,
    class_weight: str | None = None,
    C: float = 1.0,
    max_iter: int = 2000,
) -> Any:
    """Logistic regression (``lbfgs``, L2 penalty ``1/C``); Ridge(alpha=1/C) for regression."""
    if task == "regression":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0 / C)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter, class_weight=class_weight, random_state=seed)


@_register(
    "svm",
    kind="sklearn",
    tiny={"C": 1.0},
    description="RBF support vector machine, probabilities by 5-fold sigmoid calibration.",
)
def svm(
    *,
    task: str,
    seed: int = 0,
    class_weight: str | None = None,
    C: float = 1.0,
    gamma: str | float = "scale",
    kernel: str = "rbf",
    calibration_folds: int = 5,
) -> Any:
    """An SVC wrapped in ``CalibratedClassifierCV`` (sigmoid); an SVR for regression."""
    if task == "regression":
        from sklearn.svm import SVR

        return SVR(C=C, gamma=gamma, kernel=kernel)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    base = SVC(C=C, gamma=gamma, kernel=kernel, class_weight=class_weight, random_state=seed)
    return CalibratedClassifierCV(base, method="sigmoid", cv=calibration_folds)


@_register(
    "random_forest",
    kind="sklearn",
    tiny={"n_estimators": 10},
    description="Random forest (scikit-learn).",
)
def random_forest(
    *,
    task: str,
    seed: int = 0,
    class_weight: str | None = None,
    n_estimators: int = 500,
    max_depth: int | None = None,
    min_samples_leaf: int = 1,
    max_features: str | float | None = "sqrt",
    n_jobs: int | None = 1,
) -> Any:
    """A random forest; ``class_weight="balanced"`` becomes ``balanced_subsample``."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    return _forest(
        RandomForestClassifier if task != "regression" else RandomForestRegressor,
        task=task,
        class_weight=class_weight,
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        n_jobs=n_jobs,
        random_state=seed,
    )


def _forest(cls: Any, *, task: str, class_weight: str | None, **params: Any) -> Any:
    """A tree ensemble of ``cls``; classifiers get ``balanced_subsample`` class weights when
    ``class_weight="balanced"`` (each tree's bootstrap sample is re-weighted)."""
    if task == "regression":
        return cls(**params)
    cw = "balanced_subsample" if class_weight == "balanced" else None
    return cls(class_weight=cw, **params)


@_register(
    "extra_trees",
    kind="sklearn",
    tiny={"n_estimators": 10},
    description="Extremely randomised trees (scikit-learn).",
)
def extra_trees(
    *,
    task: str,
    seed: int = 0,
    class_weight: str | None = None,
    n_estimators: int = 500,
    max_depth: int | None = None,
    min_samples_leaf: int = 1,
    max_features: str | float | None = "sqrt",
    n_jobs: int | None = 1,
) -> Any:
    """Extra trees; ``class_weight="balanced"`` becomes ``balanced_subsample``."""
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    return _forest(
        ExtraTreesClassifier if task != "regression" else ExtraTreesRegressor,
        task=task,
        class_weight=class_weight,
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        n_jobs=n_jobs,
        random_state=seed,
    )


@_register(
    "hist_gradient_boosting",
    kind="sklearn",
    tiny={"max_iter": 10},
    description="Histogram gradient boosting (scikit-learn, LightGBM-style).",
)
def hist_gradient_boosting(
    *,
    task: str,
    seed: int = 0,
    class_weight: str | None = None,
    learning_rate: float = 0.05,
    max_iter: int = 200,
    max_leaf_nodes: int = 15,
    max_depth: int | None = None,
    min_samples_leaf: int = 20,
    l2_regularization: float = 1.0,
    early_stopping: bool = False,
) -> Any:
    """Histogram gradient boosting (classifier or regressor)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    common = dict(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
        early_stopping=early_stopping,
        random_state=seed,
    )
    if task == "regression":
        return HistGradientBoostingRegressor(**common)
    return HistGradientBoostingClassifier(class_weight=class_weight, **common)


# --- the MLP ----------------------------------------------------------------------------------


class TabularMLP(nn.Module):
    """A feed-forward network ``(B, F) -> (B, K)``: Linear → ReLU → Dropout blocks.

    Args:
        in_features: F, the preprocessed feature count.
        out_features: K (classes, or 1 for regression).
        hidden: widths of the hidden layers.
        dropout: dropout after every hidden layer.
    """

    def __init__(
        self, in_features: int, out_features: int, hidden: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@_register(
    "mlp",
    kind="torch",
    tiny={"hidden": [8]},
    description="Multilayer perceptron (torch, shared Lightning trainer, early stopping on val).",
)
def mlp(
    *,
    task: str,
    seed: int = 0,
    class_weight: str | None = None,
    hidden: Sequence[int] = (64, 32),
    dropout: float = 0.2,
) -> dict[str, Any]:
    """The MLP's architecture settings (the learner builds :class:`TabularMLP` from them)."""
    if not hidden or any(int(h) < 1 for h in hidden):
        from medlearn.errors import ConfigError

        raise ConfigError(
            f"The 'hidden' parameter of mlp must be a non-empty list of positive widths. "
            f"Got {list(hidden)!r}."
        )
    if not 0 <= float(dropout) < 1:
        from medlearn.errors import ConfigError

        raise ConfigError(f"The 'dropout' parameter of mlp must be in [0, 1). Got {dropout}.")
    return {"hidden": [int(h) for h in hidden], "dropout": float(dropout)}


# TabularMLPModule subclasses Lightning's LightningModule, which takes seconds to import: it is
# imported on first use, and this name keeps working
__getattr__ = lazy_attributes(__name__, {"TabularMLPModule": "medlearn.clinical._tabular_module"})

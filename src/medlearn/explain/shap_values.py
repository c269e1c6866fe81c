"""Feature attributions for tabular models: SHAP values and permutation importance.

A layer module: it knows scikit-learn estimators and plain prediction functions, never a
domain. :func:`shap_values` picks the exact explainer where one exists (``TreeExplainer`` for
tree ensembles, ``LinearExplainer`` for linear models) and falls back to ``KernelExplainer``
on a small k-means background, capped in background size and evaluations so it stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from medlearn.errors import ConfigError, MissingDependencyError

__all__ = ["permutation_scores", "shap_values"]

Kind = Literal["tree", "linear", "kernel"]


def _shap() -> Any:
    try:
        import shap
    except ImportError as exc:  # pragma: no cover - installed with the clinical extra
        raise MissingDependencyError(
            "SHAP explanations need the 'shap' package.",
            hint="pip install 'medlearn[clinical]'",
        ) from exc
    return shap


def _as_nfk(values: Any, n: int, f: int) -> np.ndarray:
    """Normalise shap's outputs (list per class, (N, F), (N, F, K)) to ``(N, F, K)``."""
    if isinstance(values, list):
        arr = np.stack([np.asarray(v, dtype=float) for v in values], axis=-1)
    else:
        arr = np.asarray(values, dtype=float)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[:2] != (n, f):
        raise ValueError(f"unexpected SHAP output shape {arr.shape} for {n} rows x {f} features")
    return arr


def shap_values(
    X: np.ndarray,
    *,
    kind: Kind,
    model: Any = None,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
    background: np.ndarray | None = None,
    max_background: int = 20,
    nsamples: int = 200,
    seed: int = 0,
) -> np.ndarray:
    """SHAP values of each row of ``X`` for every model output.

    Args:
        X: rows to explain ``(N, F)`` in the model's (preprocessed) feature space.
        kind: ``"tree"`` (``model`` is a tree ensemble), ``"linear"`` (``model`` is a linear
            model; values in log-odds / margin space) or ``"kernel"`` (model-agnostic,
            explains ``predict``).
        model: the fitted estimator (tree and linear kinds).
        predict: ``(M, F) -> (M, K)`` probabilities or predictions (kernel kind).
        background: reference rows ``(B, F)`` (linear and kernel kinds), e.g. training rows.
        max_background: k-means centres summarising ``background`` for the kernel explainer.
        nsamples: model evaluations per explained row (kernel explainer).
        seed: seed of k-means and kernel sampling.

    Returns:
        ``(N, F, K)`` attributions; ``K`` is the number of outputs the explainer reports (1
        for single-output models such as binary boosting or a regressor).

    Raises:
        ConfigError: for an unknown ``kind`` or missing ``model`` / ``predict`` / background.
    """
    shap = _shap()
    X = np.asarray(X, dtype=float)
    n, f = X.shape
    if kind == "tree":
        if model is None:
            raise ConfigError("shap_values(kind='tree') needs the fitted tree model.")
        explainer = shap.TreeExplainer(model)
        return _as_nfk(explainer.shap_values(X, check_additivity=False), n, f)
    if kind == "linear":
        if model is None or background is None:
            raise ConfigError("shap_values(kind='linear') needs the model and background rows.")
        explainer = shap.LinearExplainer(model, np.asarray(background, dtype=float))
        return _as_nfk(explainer.shap_values(X), n, f)
    if kind == "kernel":
        if predict is None or background is None:
            raise ConfigError("shap_values(kind='kernel') needs predict and background rows.")
        bg = np.asarray(background, dtype=float)
        if len(bg) > max_background:
            bg = shap.kmeans(bg, max_background)
        np.random.seed(seed)  # KernelExplainer samples coalitions with numpy's global RNG
        explainer = shap.KernelExplainer(predict, bg)
        values = explainer.shap_values(X, nsamples=nsamples, silent=True)
        return _as_nfk(values, n, f)
    raise ConfigError(
        f"The 'kind' parameter of shap_values must be tree, linear or kernel. Got {kind!r}."
    )


def permutation_scores(
    score: Callable[[Any], float],
    X: Any,
    *,
    n_repeats: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Permutation importance of each column of ``X`` under ``score``.

    Uses :func:`sklearn.inspection.permutation_importance` with a scoring callable, so any
    model works (``score(X_permuted) -> float``, higher is better, e.g. AUROC or R²).

    Args:
        score: the model's score on a table with one column permuted.
        X: the table (a pandas DataFrame of raw features, or an array).
        n_repeats: permutations per column.
        seed: seed of the permutations.

    Returns:
        Mean and standard deviation of the score drop per column, ``(F,)`` each.
    """
    from sklearn.inspection import permutation_importance

    class _Scored:
        """The estimator stand-in permutation_importance passes to the scoring callable."""

        def fit(self, *args: Any) -> _Scored:  # pragma: no cover - never called
            return self

    def scorer(_est: Any, X_: Any, _y: Any) -> float:
        return float(score(X_))

    y_dummy = np.zeros(len(X))
    result = permutation_importance(
        _Scored(), X, y_dummy, scoring=scorer, n_repeats=n_repeats, random_state=seed, n_jobs=1
    )
    return np.asarray(result.importances_mean), np.asarray(result.importances_std)

"""Post-hoc calibration (temperature scaling) and reliability curves.

Temperature scaling (Guo et al., 2017) divides a classifier's logits by one scalar ``T``
fitted on validation data by minimising the negative log-likelihood. It changes confidence but
never the ranking of classes, so accuracy and AUROC are unchanged. When only probabilities are
available, their logarithms are valid logits (``softmax(log p) == p``).

Example:
    >>> rng = np.random.default_rng(0)
    >>> logits = 3.0 * rng.normal(size=(500, 3))
    >>> y = logits.argmax(axis=1)
    >>> scaler = TemperatureScaler().fit(logits, y)
    >>> proba = scaler.transform(logits)  # (500, 3), rows sum to 1
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlearn.errors import ConfigError, DataValidationError, NotFittedError
from medlearn.evaluation.metrics import _bin_index, _check_labels

__all__ = ["TemperatureScaler", "reliability_curve", "softmax"]


def softmax(logits: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax.

    Args:
        logits: real array, e.g. ``(N, C)``.
        axis: the class axis.

    Returns:
        Probabilities of the same shape, summing to 1 along ``axis``.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _as_logits(logits: Any, n_classes: int | None = None) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 1:  # binary: one logit of the positive class
        z = np.stack([np.zeros_like(z), z], axis=1)
    if z.ndim != 2 or z.shape[1] < 2:
        raise DataValidationError(
            f"logits must be (N, C) with C >= 2, or (N,) binary logits. Got shape {z.shape}."
        )
    if n_classes is not None and z.shape[1] != n_classes:
        raise DataValidationError(
            f"logits have {z.shape[1]} classes but the scaler was fitted on {n_classes}."
        )
    if not np.all(np.isfinite(z)):
        raise DataValidationError(
            f"logits have {int(np.sum(~np.isfinite(z).all(axis=1)))} rows with NaN or infinite "
            "values.",
            hint="Use log-probabilities clipped away from 0, e.g. np.log(np.clip(p, 1e-12, 1)).",
        )
    return z


class TemperatureScaler:
    """Temperature scaling of logits, fitted by minimising the negative log-likelihood.

    Args:
        min_temperature: lower bound of ``T``.
        max_temperature: upper bound of ``T``. The bounds keep the fit finite on separable
            data, where the likelihood keeps improving as ``T`` goes to 0.

    Attributes:
        temperature_: the fitted temperature ``T`` (probabilities are ``softmax(logits / T)``).
        n_classes_: number of classes seen in ``fit`` (``None`` for a scaler loaded from a
            state without it; then any number of classes is accepted).
        nll_before_: mean NLL of the validation data at ``T = 1``.
        nll_after_: mean NLL at ``temperature_``.
    """

    def __init__(self, *, min_temperature: float = 0.05, max_temperature: float = 20.0) -> None:
        self.min_temperature = min_temperature
        self.max_temperature = max_temperature

    def _check_params(self) -> None:
        lo, hi = self.min_temperature, self.max_temperature
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
            raise ConfigError(
                "The 'min_temperature' and 'max_temperature' parameters of TemperatureScaler "
                f"must satisfy 0 < min < max. Got {lo!r} and {hi!r} instead."
            )

    @staticmethod
    def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
        logp = _log_softmax(z / temperature)
        return float(-np.mean(logp[np.arange(len(y)), y]))

    def fit(self, logits: Any, y: Any) -> TemperatureScaler:
        """Fit the temperature on validation logits.

        Args:
            logits: ``(N, C)`` logits (or ``(N,)`` binary logits, or log-probabilities).
            y: class indices ``(N,)``.

        Returns:
            ``self``.

        Raises:
            DataValidationError: for mismatched shapes, labels out of range or NaN logits.
        """
        from scipy.optimize import minimize_scalar

        self._check_params()
        z = _as_logits(logits)
        y_arr = np.asarray(y)
        if y_arr.ndim != 1 or y_arr.shape[0] != z.shape[0]:
            raise DataValidationError(
                f"logits have {z.shape[0]} rows but y has shape {y_arr.shape}; expected "
                f"({z.shape[0]},)."
            )
        if z.shape[0] == 0:
            raise DataValidationError("Cannot fit a TemperatureScaler on 0 rows.")
        labels = _check_labels(y_arr, "y", z.shape[1])
        lo, hi = np.log(self.min_temperature), np.log(self.max_temperature)
        res = minimize_scalar(
            lambda log_t: self._nll(z, labels, float(np.exp(log_t))),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-6},
        )
        # The NLL is unimodal in log T; still compare with T = 1 and the bounds so that a
        # flat objective can never make calibration worse than doing nothing.
        candidates = [float(np.exp(res.x)), 1.0, self.min_temperature, self.max_temperature]
        nlls = [self._nll(z, labels, t) for t in candidates]
        best = int(np.argmin(nlls))
        self.temperature_ = candidates[best]
        self.n_classes_ = int(z.shape[1])
        self.nll_before_ = self._nll(z, labels, 1.0)
        self.nll_after_ = nlls[best]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "temperature_"):
            raise NotFittedError(
                "This TemperatureScaler is not fitted yet. Call fit(logits, y) on validation "
                "data first, or load one with TemperatureScaler.from_dict(...)."
            )

    def transform(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities ``softmax(logits / T)``, shape ``(N, C)``.

        Raises:
            NotFittedError: if called before :meth:`fit`.
        """
        self._check_fitted()
        z = _as_logits(logits, self.n_classes_)
        return softmax(z / self.temperature_, axis=1)

    def fit_transform(self, logits: Any, y: Any) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same logits."""
        return self.fit(logits, y).transform(logits)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: ``{"method": "temperature", "temperature": T, "n_classes": C}``."""
        self._check_fitted()
        return {
            "method": "temperature",
            "temperature": float(self.temperature_),
            "n_classes": self.n_classes_,
            "min_temperature": float(self.min_temperature),
            "max_temperature": float(self.max_temperature),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TemperatureScaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output.

        Only ``temperature`` is required; ``method`` (if given) must be ``"temperature"``.

        Raises:
            ConfigError: if ``state`` is not a temperature-scaling state.
        """
        if not isinstance(state, dict) or state.get("method", "temperature") != "temperature":
            method = state.get("method") if isinstance(state, dict) else None
            raise ConfigError(
                "TemperatureScaler.from_dict needs a dict with method='temperature'. "
                f"Got a {type(state).__name__} with method {method!r}."
            )
        temperature = state.get("temperature")
        n_classes = state.get("n_classes")
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not 0 < temperature < float("inf")
        ):
            raise ConfigError(
                f"The temperature in a calibration state must be a positive number. "
                f"Got {temperature!r}."
            )
        if n_classes is not None and (not isinstance(n_classes, int) or n_classes < 2):
            raise ConfigError(
                f"n_classes in a calibration state must be an integer >= 2. Got {n_classes!r}."
            )
        scaler = cls(
            min_temperature=float(state.get("min_temperature", 0.05)),
            max_temperature=float(state.get("max_temperature", 20.0)),
        )
        scaler.temperature_ = float(temperature)
        scaler.n_classes_ = n_classes
        return scaler

    def __repr__(self) -> str:
        fitted = f", temperature_={self.temperature_:.4g}" if hasattr(self, "temperature_") else ""
        return (
            f"TemperatureScaler(min_temperature={self.min_temperature}, "
            f"max_temperature={self.max_temperature}{fitted})"
        )


def reliability_curve(
    y_true: Any, score: Any, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability (calibration) curve of a binary classifier over equal-width bins.

    Bin ``i`` holds probabilities in ``(i / n_bins, (i + 1) / n_bins]`` (0 goes to the first
    bin), as in :func:`medlearn.evaluation.metrics.ece`. Empty bins are left out.

    Args:
        y_true: labels ``(N,)`` in {0, 1}.
        score: positive-class probabilities ``(N,)`` in [0, 1].
        n_bins: number of bins.

    Returns:
        ``(mean_predicted, fraction_positive, counts)``, one entry per non-empty bin.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(
            f"The 'n_bins' parameter of reliability_curve must be a positive integer. "
            f"Got {n_bins!r} instead."
        )
    y = np.asarray(y_true)
    p = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1 or y.shape[0] != p.shape[0]:
        raise DataValidationError(
            f"y_true and score must be 1-D with the same length. Got shapes {y.shape} and "
            f"{p.shape}."
        )
    y = _check_labels(y, "y_true", 2)
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise DataValidationError("score must hold probabilities in [0, 1].")
    bins = _bin_index(p, int(n_bins))
    counts = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)
    keep = counts > 0
    return sum_p[keep] / counts[keep], sum_y[keep] / counts[keep], counts[keep]

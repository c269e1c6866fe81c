"""Post-hoc calibration (temperature, Platt, isotonic) and reliability curves.

Every calibrator is fitted on *validation* logits and stored as a JSON state (no pickle):

- **temperature** (Guo et al., 2017) divides the logits by one scalar ``T`` fitted by
  minimising the negative log-likelihood. It never changes the ranking of classes, so
  accuracy and AUROC are unchanged.
- **platt** (Platt, 1999). Binary: a logistic regression ``sigmoid(a * z + b)`` on the
  log-odds ``z = logit_1 - logit_0`` of the positive class, fitted with Platt's smoothed
  targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` so it stays finite on separable data.
  Multiclass: *vector scaling* (Guo et al., 2017), ``softmax(a * z + b)`` with one slope and
  one intercept per class, fitted by minimising the NLL with a small ridge penalty
  (``1e-3``) pulling ``a`` towards 1 and ``b`` towards 0.
- **isotonic** (Zadrozny & Elkan, 2002). Binary: a monotone step function of the
  positive-class probability (scikit-learn's ``IsotonicRegression``; interpolated linearly
  between its knots, clipped outside). Multiclass: one-vs-rest isotonic maps of each class
  probability, then each row is renormalised to sum to 1. Its flexibility overfits small
  validation sets, which is why ``auto`` chooses by cross-fitted log-loss.

:func:`fit_calibrator` fits any of them (or ``auto``: the lowest 5-fold cross-fitted
validation log-loss, then refitted on all validation rows) and returns the state;
:func:`apply_calibration` maps logits to calibrated probabilities with a state. When only
probabilities are available, their logarithms are valid logits (``softmax(log p) == p``).

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

__all__ = [
    "CALIBRATION_METHODS",
    "IsotonicCalibrator",
    "PlattScaler",
    "TemperatureScaler",
    "apply_calibration",
    "calibration_candidates",
    "choose_calibration",
    "fit_calibrator",
    "log_loss",
    "reliability_curve",
    "softmax",
]

#: The calibration methods :func:`fit_calibrator` knows (``auto`` chooses among the others).
CALIBRATION_METHODS = ("none", "temperature", "platt", "isotonic")


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


# -- Platt scaling and vector scaling ---------------------------------------------------------
def _fit_inputs(logits: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(N, C)`` logits and int labels for a calibrator's ``fit``."""
    z = _as_logits(logits)
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or y_arr.shape[0] != z.shape[0]:
        raise DataValidationError(
            f"logits have {z.shape[0]} rows but y has shape {y_arr.shape}; expected "
            f"({z.shape[0]},)."
        )
    if z.shape[0] == 0:
        raise DataValidationError(f"Cannot fit a {name} on 0 rows.")
    return z, _check_labels(y_arr, "y", z.shape[1])


def _finite_list(value: Any, length: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64) if isinstance(value, list) else None
    if arr is None or arr.shape != (length,) or not np.all(np.isfinite(arr)):
        raise ConfigError(
            f"{what} in a calibration state must be a list of {length} finite numbers. "
            f"Got {value!r}."
        )
    return arr


def _state_classes(state: dict[str, Any], method: str) -> int:
    if not isinstance(state, dict) or state.get("method") != method:
        got = state.get("method") if isinstance(state, dict) else type(state).__name__
        raise ConfigError(f"Expected a calibration state with method={method!r}. Got {got!r}.")
    n_classes = state.get("n_classes")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ConfigError(
            f"n_classes in a {method} calibration state must be an integer >= 2. Got {n_classes!r}."
        )
    return n_classes


class PlattScaler:
    """Platt scaling (binary) or vector scaling (multiclass), fitted on validation logits.

    Binary: ``p1 = sigmoid(a * z + b)`` with ``z = logit_1 - logit_0``, fitted by maximum
    likelihood against Platt's smoothed targets. Multiclass: ``softmax(a * logits + b)`` with
    per-class ``a`` and ``b`` (vector scaling), fitted by minimising the NLL plus
    ``l2 * (||a - 1||^2 + ||b||^2)``.

    Args:
        l2: ridge penalty of vector scaling (multiclass only).

    Attributes:
        coef_: slopes ``a`` (one for binary, ``C`` for multiclass).
        intercept_: intercepts ``b`` (same length).
        n_classes_: number of classes seen in ``fit``.
    """

    def __init__(self, *, l2: float = 1e-3) -> None:
        self.l2 = l2

    def fit(self, logits: Any, y: Any) -> PlattScaler:
        """Fit on validation logits ``(N, C)`` (or ``(N,)`` binary logits) and labels ``(N,)``.

        Returns:
            ``self``.

        Raises:
            DataValidationError: for mismatched shapes, labels out of range or NaN logits.
        """
        from scipy.optimize import minimize

        if not (np.isfinite(self.l2) and self.l2 >= 0):
            raise ConfigError(
                f"The 'l2' parameter of PlattScaler must be a non-negative number. "
                f"Got {self.l2!r} instead."
            )
        z, labels = _fit_inputs(logits, y, "PlattScaler")
        n, c = z.shape
        if c == 2:
            x = z[:, 1] - z[:, 0]
            n_pos = int(labels.sum())
            t = np.where(labels == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n - n_pos + 2.0))

            def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
                m = theta[0] * x + theta[1]
                loss = float(np.mean(np.logaddexp(0.0, m) - t * m))
                r = 1.0 / (1.0 + np.exp(-m)) - t
                return loss, np.array([np.mean(r * x), np.mean(r)])

            theta0 = np.array([1.0, 0.0])
        else:
            onehot = np.eye(c)[labels]

            def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
                a, b = theta[:c], theta[c:]
                logp = _log_softmax(z * a + b)
                loss = -float(np.mean(np.sum(onehot * logp, axis=1)))
                loss += self.l2 * float(np.sum((a - 1.0) ** 2) + np.sum(b**2))
                r = np.exp(logp) - onehot
                grad_a = np.mean(r * z, axis=0) + 2 * self.l2 * (a - 1.0)
                grad_b = np.mean(r, axis=0) + 2 * self.l2 * b
                return loss, np.concatenate([grad_a, grad_b])

            theta0 = np.concatenate([np.ones(c), np.zeros(c)])
        res = minimize(objective, theta0, jac=True, method="L-BFGS-B")
        theta = res.x if np.all(np.isfinite(res.x)) else theta0
        k = 1 if c == 2 else c
        self.coef_ = np.asarray(theta[:k], dtype=np.float64)
        self.intercept_ = np.asarray(theta[k:], dtype=np.float64)
        self.n_classes_ = c
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError(
                "This PlattScaler is not fitted yet. Call fit(logits, y) on validation data "
                "first, or load one with PlattScaler.from_dict(...)."
            )

    def transform(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities ``(N, C)``.

        Raises:
            NotFittedError: if called before :meth:`fit`.
        """
        self._check_fitted()
        z = _as_logits(logits, self.n_classes_)
        if self.n_classes_ == 2:
            m = self.coef_[0] * (z[:, 1] - z[:, 0]) + self.intercept_[0]
            p1 = 0.5 * (1.0 + np.tanh(0.5 * m))  # a sigmoid that never overflows
            return np.stack([1.0 - p1, p1], axis=1)
        return softmax(z * self.coef_ + self.intercept_, axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state ``{"method": "platt", "kind", "n_classes", "a", "b"}``."""
        self._check_fitted()
        return {
            "method": "platt",
            "kind": "binary" if self.n_classes_ == 2 else "vector",
            "n_classes": self.n_classes_,
            "a": [float(v) for v in self.coef_],
            "b": [float(v) for v in self.intercept_],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> PlattScaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output.

        Raises:
            ConfigError: if ``state`` is not a valid Platt state.
        """
        c = _state_classes(state, "platt")
        k = 1 if c == 2 else c
        scaler = cls()
        scaler.coef_ = _finite_list(state.get("a"), k, "'a'")
        scaler.intercept_ = _finite_list(state.get("b"), k, "'b'")
        scaler.n_classes_ = c
        return scaler


# -- isotonic regression ------------------------------------------------------------------------
class IsotonicCalibrator:
    """Isotonic calibration: binary on ``p1``; multiclass one-vs-rest, rows renormalised.

    The fitted maps are piecewise linear between knots (``x`` ascending, ``y`` in [0, 1])
    and constant outside them, as scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``.
    A multiclass row whose mapped probabilities are all 0 keeps its uncalibrated softmax.

    Attributes:
        curves_: list of ``(x, y)`` knot arrays: one (the positive class) for binary, one per
            class for multiclass.
        n_classes_: number of classes seen in ``fit``.
    """

    def fit(self, logits: Any, y: Any) -> IsotonicCalibrator:
        """Fit on validation logits ``(N, C)`` (or ``(N,)`` binary logits) and labels ``(N,)``.

        Returns:
            ``self``.
        """
        from sklearn.isotonic import IsotonicRegression

        z, labels = _fit_inputs(logits, y, "IsotonicCalibrator")
        p = softmax(z, axis=1)
        cols = [1] if z.shape[1] == 2 else list(range(z.shape[1]))
        self.curves_ = []
        for k in cols:
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(p[:, k], (labels == k).astype(np.float64))
            self.curves_.append(
                (np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float))
            )
        self.n_classes_ = int(z.shape[1])
        return self

    def transform(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities ``(N, C)``.

        Raises:
            NotFittedError: if called before :meth:`fit`.
        """
        if not hasattr(self, "curves_"):
            raise NotFittedError(
                "This IsotonicCalibrator is not fitted yet. Call fit(logits, y) on validation "
                "data first, or load one with IsotonicCalibrator.from_dict(...)."
            )
        p = softmax(_as_logits(logits, self.n_classes_), axis=1)
        if self.n_classes_ == 2:
            x, yk = self.curves_[0]
            p1 = np.interp(p[:, 1], x, yk)
            return np.stack([1.0 - p1, p1], axis=1)
        q = np.stack([np.interp(p[:, k], x, yk) for k, (x, yk) in enumerate(self.curves_)], 1)
        total = q.sum(axis=1, keepdims=True)
        ok = total[:, 0] > 0
        out = p.copy()
        out[ok] = q[ok] / total[ok]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state ``{"method": "isotonic", "n_classes", "curves": [{"x", "y"}]}``."""
        if not hasattr(self, "curves_"):
            raise NotFittedError("This IsotonicCalibrator is not fitted yet.")
        return {
            "method": "isotonic",
            "n_classes": self.n_classes_,
            "curves": [{"x": x.tolist(), "y": yk.tolist()} for x, yk in self.curves_],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> IsotonicCalibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output.

        Raises:
            ConfigError: if ``state`` is not a valid isotonic state.
        """
        c = _state_classes(state, "isotonic")
        curves = state.get("curves")
        want = 1 if c == 2 else c
        if not isinstance(curves, list) or len(curves) != want:
            raise ConfigError(
                f"An isotonic calibration state for {c} classes needs {want} curve(s) in "
                f"'curves'. Got {type(curves).__name__}."
            )
        parsed = []
        for k, curve in enumerate(curves):
            xs = curve.get("x") if isinstance(curve, dict) else None
            n = len(xs) if isinstance(xs, list) else 0
            x = _finite_list(xs, max(n, 1), f"curves[{k}].x")
            yk = _finite_list(curve.get("y"), max(n, 1), f"curves[{k}].y")
            if np.any(np.diff(x) < 0) or yk.min() < 0 or yk.max() > 1:
                raise ConfigError(
                    f"curves[{k}] of an isotonic calibration state must have ascending 'x' and "
                    "'y' in [0, 1]."
                )
            parsed.append((x, yk))
        cal = cls()
        cal.curves_ = parsed
        cal.n_classes_ = c
        return cal


# -- choosing and applying a calibrator ----------------------------------------------------------
_CALIBRATORS: dict[str, Any] = {
    "temperature": TemperatureScaler,
    "platt": PlattScaler,
    "isotonic": IsotonicCalibrator,
}


def log_loss(y: Any, proba: Any, *, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of class indices ``y (N,)`` under ``proba (N, C)``.

    Probabilities are clipped to ``[eps, 1]`` so a confident miss costs ``-log(eps)``, not
    infinity.
    """
    p = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], eps, 1.0))))


def _check_method(method: str, allow_auto: bool) -> None:
    known = CALIBRATION_METHODS + (("auto",) if allow_auto else ())
    if method not in known:
        raise ConfigError(
            f"Unknown calibration method {method!r}.",
            hint=f"Choose one of: {', '.join(known)}.",
        )


def _fit_one(method: str, z: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    if method == "none":
        return {"method": "none"}
    return _CALIBRATORS[method]().fit(z, y).to_dict()


def _cv_log_loss(method: str, z: np.ndarray, y: np.ndarray, folds: int, seed: int) -> float | None:
    """Out-of-fold log-loss of ``method`` by stratified ``folds``-fold cross-fitting."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=z.shape[1])
    k = min(folds, int(counts[counts > 0].min()) if counts.any() else 0)
    if k < 2:
        return None
    oof = np.empty_like(z)
    for train, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(z, y):
        oof[held] = apply_calibration(z[held], _fit_one(method, z[train], y[train]))
    return log_loss(y, oof)


def calibration_candidates(
    logits: Any,
    y: Any,
    *,
    methods: tuple[str, ...] = CALIBRATION_METHODS,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Fit each method on all validation rows and score it by in-sample and cross-fitted NLL.

    Args:
        logits: validation logits ``(N, C)`` (or ``(N,)`` binary logits).
        y: validation labels ``(N,)``.
        methods: methods to try (from :data:`CALIBRATION_METHODS`).
        folds: stratified folds of the cross-fitting (reduced to the smallest class count;
            below 2 the cross-fitted loss is ``None``).
        seed: seed of the fold assignment.

    Returns:
        ``{method: {"state": state, "val_log_loss": in-sample NLL, "cv_log_loss": NLL | None}}``.
    """
    z, labels = _fit_inputs(logits, y, "calibrator")
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        _check_method(method, allow_auto=False)
        state = _fit_one(method, z, labels)
        out[method] = {
            "state": state,
            "val_log_loss": log_loss(labels, apply_calibration(z, state)),
            "cv_log_loss": _cv_log_loss(method, z, labels, folds, seed),
        }
    return out


def choose_calibration(candidates: dict[str, dict[str, Any]]) -> str:
    """The method with the lowest cross-fitted log-loss (in-sample when CV was impossible).

    Ties go to the simpler method (order of :data:`CALIBRATION_METHODS`).
    """
    use_cv = all(c.get("cv_log_loss") is not None for c in candidates.values())
    key = "cv_log_loss" if use_cv else "val_log_loss"
    return min(candidates, key=lambda m: (candidates[m][key], CALIBRATION_METHODS.index(m)))


def fit_calibrator(
    method: str, logits: Any, y: Any, *, folds: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Fit post-hoc calibration on validation logits and return its JSON state.

    Args:
        method: ``none``, ``temperature``, ``platt``, ``isotonic`` or ``auto`` (the method
            with the lowest ``folds``-fold cross-fitted validation log-loss, refitted on all
            validation rows; the state then carries ``"selection"``).
        logits: validation logits ``(N, C)`` (or ``(N,)`` binary logits).
        y: validation labels ``(N,)``.
        folds: folds of the cross-fitting for ``auto``.
        seed: seed of the folds.

    Returns:
        A state for :func:`apply_calibration`, e.g. ``{"method": "temperature", ...}``.

    Raises:
        ConfigError: for an unknown method.
        DataValidationError: for bad logits or labels.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = 3 * rng.normal(size=400)
        >>> y = (rng.random(400) < 1 / (1 + np.exp(-z / 3))).astype(int)
        >>> fit_calibrator("platt", z, y)["method"]
        'platt'
    """
    _check_method(method, allow_auto=True)
    if method != "auto":
        z, labels = _fit_inputs(logits, y, "calibrator")
        return _fit_one(method, z, labels)
    cands = calibration_candidates(logits, y, folds=folds, seed=seed)
    best = choose_calibration(cands)
    return {
        **cands[best]["state"],
        "selection": {
            "criterion": "cv_log_loss"
            if all(c["cv_log_loss"] is not None for c in cands.values())
            else "val_log_loss",
            "folds": folds,
            "val_log_loss": {m: c["val_log_loss"] for m, c in cands.items()},
            "cv_log_loss": {m: c["cv_log_loss"] for m, c in cands.items()},
        },
    }


def apply_calibration(logits: Any, state: dict[str, Any] | None) -> np.ndarray:
    """Calibrated probabilities ``(N, C)`` from logits and a :func:`fit_calibrator` state.

    ``None`` or ``{"method": "none"}`` gives the plain softmax.

    Raises:
        ConfigError: for an unknown or malformed state.
    """
    method = (state or {}).get("method", "none")
    if method == "none":
        return softmax(_as_logits(logits), axis=1)
    if method not in _CALIBRATORS:
        raise ConfigError(
            f"Unknown calibration method {method!r} in a calibration state.",
            hint=f"Known methods: {', '.join(CALIBRATION_METHODS)}.",
        )
    return _CALIBRATORS[method].from_dict(state).transform(logits)

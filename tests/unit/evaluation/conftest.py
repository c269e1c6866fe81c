"""Seeded synthetic predictions shared by the evaluation tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medlearn.evaluation import softmax


def make_binary(n: int = 300, seed: int = 0, *, ties: bool = True):
    """Labels ``(n,)`` and positive-class probabilities ``(n,)`` carrying signal (with ties)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0.0, 1.0)
    if ties:
        p = np.round(p, 2)
    return y, p


def make_multiclass(n: int = 300, n_classes: int = 4, seed: int = 0):
    """Labels ``(n,)`` and class probabilities ``(n, C)`` carrying signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), y] += 1.5
    return y, softmax(logits)


@pytest.fixture
def synthetic() -> SimpleNamespace:
    """Factories ``binary(n, seed)`` and ``multiclass(n, n_classes, seed)``."""
    return SimpleNamespace(binary=make_binary, multiclass=make_multiclass)

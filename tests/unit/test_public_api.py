"""Each package's public API is its sorted ``__all__``; nothing private leaks in."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "medlearn",
    "medlearn.errors",
    "medlearn.registry",
    "medlearn.config",
    "medlearn.bundle",
    "medlearn.catalog",
    "medlearn.data",
    "medlearn.training",
    "medlearn.evaluation",
    "medlearn.explain",
    "medlearn.imaging",
    "medlearn.pipeline",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"
        assert not symbol.startswith("_") or symbol == "__version__"

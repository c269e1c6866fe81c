"""Module attributes imported on first use (PEP 562), for names whose modules are slow to
import: Lightning takes seconds, so classes that subclass its ``LightningModule`` live in
their own modules and are only imported when a model is trained."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(module: str, sources: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``module`` that imports ``name`` from
    ``sources[name]`` on first access and keeps it in the module's namespace.

    Example:
        ``__getattr__ = lazy_attributes(__name__, {"Model": "package._model"})``
    """

    def __getattr__(name: str) -> Any:
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__

"""The medlearn exception tree.

Every error medlearn raises on purpose derives from :class:`MedlearnError`, so callers can
catch one base class. Each subclass also derives from the matching builtin, so code written
against the builtin keeps working::

    MedlearnError
    ├── ConfigError(ValueError)             a run file or parameter is invalid
    ├── UnknownComponentError(KeyError)     a registry name does not exist (with did-you-mean)
    ├── DataValidationError(ValueError)     input data is malformed (names file / row / field)
    ├── DataNotFoundError(FileNotFoundError) a dataset or input file is missing
    ├── ChecksumError(ValueError)           a file's sha256 differs from the recorded one
    ├── NotFittedError(RuntimeError)        predict / save called before fit
    ├── MissingDependencyError(ImportError) an optional extra is not installed
    └── CheckpointError(RuntimeError)       a checkpoint or bundle cannot be used

Messages say what was wrong, what was given, what is allowed and how to fix it. They never
contain patient values or identifiers: file names, column names, shapes, counts and row
numbers only. ``hint`` carries the "how to fix it" part separately so the CLI and the server
can show it on its own line or field.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ChecksumError",
    "ConfigError",
    "DataNotFoundError",
    "DataValidationError",
    "MedlearnError",
    "MissingDependencyError",
    "NotFittedError",
    "UnknownComponentError",
    "require",
]


class MedlearnError(Exception):
    """Base class of every error medlearn raises on purpose.

    Args:
        message: what was wrong and what was given.
        hint: how to fix it (one sentence), shown by the CLI on its own line.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} Hint: {self.hint}"
        return self.message


class ConfigError(MedlearnError, ValueError):
    """A run file, override or parameter is invalid."""


class UnknownComponentError(MedlearnError, KeyError):
    """A name was looked up in a registry and does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return MedlearnError.__str__(self)


class DataValidationError(MedlearnError, ValueError):
    """Input data is malformed. The message names the file, row or field."""


class DataNotFoundError(MedlearnError, FileNotFoundError):
    """A dataset or input file does not exist where it was expected."""


class ChecksumError(MedlearnError, ValueError):
    """A file's sha256 differs from the one recorded for it."""


class NotFittedError(MedlearnError, RuntimeError):
    """A model was used before ``fit`` was called."""


class MissingDependencyError(MedlearnError, ImportError):
    """An optional dependency is not installed; the hint holds the install command."""


class CheckpointError(MedlearnError, RuntimeError):
    """A checkpoint or bundle is incomplete, incompatible or unreadable."""


def require(module: str, *, extra: str, purpose: str):
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Args:
        module: the importable module name, e.g. ``"pydicom"``.
        extra: the medlearn extra that installs it, e.g. ``"imaging"``.
        purpose: what it is needed for, e.g. ``"reading DICOM files"``.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is needed for {purpose} but is not installed.",
            hint=f"pip install 'medlearn[{extra}]'",
        ) from exc

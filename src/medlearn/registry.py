"""Named components: ``Registry[T]`` and the registries medlearn's layers look things up in.

Layers (``data``, ``training``, ``evaluation``, the pipeline, the CLI) never import a domain
package. They look components up here by name; domain packages register into these registries
when imported. Each registry knows which built-in modules populate it (``plugins``) and imports
them on first lookup, so ``MODELS.get("resnet18")`` works without importing
``medlearn.imaging`` first.

Example:
    >>> from medlearn.registry import Registry
    >>> LOSSES: Registry[object] = Registry("loss", list_command="medlearn losses list")
    >>> @LOSSES.register("l1", higher_is_better=False)
    ... def l1(a, b):
    ...     return abs(a - b)
    >>> LOSSES.get("l1")(3, 1)
    2
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from medlearn.errors import ConfigError, UnknownComponentError

__all__ = [
    "DATASETS",
    "Entry",
    "LEARNERS",
    "METRICS",
    "MODELS",
    "READERS",
    "Registry",
    "TASKS",
    "TRANSFORMS",
]

T = TypeVar("T")

#: Built-in domain modules; importing one registers its components.
#: Lookups import them in this order and stop at the one that registers the name, so the
#: cheapest come first (imaging imports MONAI, seconds).
BUILTIN_PLUGINS: tuple[str, ...] = ("medlearn.clinical", "medlearn.molecules", "medlearn.imaging")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component: the object and its metadata (domain, tiny variant, ...)."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A name → component mapping with did-you-mean lookups.

    Args:
        kind: what the entries are, used in messages (``"model"``).
        list_command: the CLI command that lists all entries, used in hints.
        plugins: modules that register entries when imported. A lookup imports them in order
            until one has registered the name; listing imports them all.
    """

    def __init__(
        self,
        kind: str,
        *,
        list_command: str | None = None,
        plugins: tuple[str, ...] = BUILTIN_PLUGINS,
    ) -> None:
        self.kind = kind
        self.list_command = list_command
        self._plugins = plugins
        self._loaded = not plugins  # every plugin imported
        self._next_plugin = 0  # plugins before this index are imported
        self._entries: dict[str, Entry[T]] = {}

    # -- registration -----------------------------------------------------------------------
    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` with metadata ``meta``.

        Raises:
            ConfigError: if ``name`` is already registered.
        """

        def decorator(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return decorator

    def add(self, name: str, obj: T, **meta: Any) -> None:
        """Register ``obj`` under ``name`` (non-decorator form)."""
        if not name or name != name.strip():
            raise ConfigError(f"A {self.kind} name must be a non-empty string. Got {name!r}.")
        if name in self._entries:
            raise ConfigError(
                f"A {self.kind} named {name!r} is already registered.",
                hint="Pick another name or unregister the existing entry first.",
            )
        self._entries[name] = Entry(name, obj, dict(meta))

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests and plugins that replace an entry)."""
        self._entries.pop(name, None)

    # -- lookup -----------------------------------------------------------------------------
    def _import_next_plugin(self) -> None:
        module = self._plugins[self._next_plugin]
        self._next_plugin += 1
        if self._next_plugin == len(self._plugins):
            self._loaded = True
        try:
            importlib.import_module(module)
        except ImportError:  # an optional domain whose extra is not installed
            pass

    def _ensure_loaded(self) -> None:
        """Import every plugin (listing and searching need all of them)."""
        while not self._loaded:
            self._import_next_plugin()

    def _load_until(self, name: str) -> None:
        """Import plugins in order only until one has registered ``name``: a molecule run
        then never pays for importing MONAI, which the imaging plugin needs (seconds)."""
        while name not in self._entries and not self._loaded:
            self._import_next_plugin()

    def entry(self, name: str) -> Entry[T]:
        """Return the :class:`Entry` for ``name``.

        Raises:
            UnknownComponentError: with the closest names and the command listing all.
        """
        self._load_until(name)
        try:
            return self._entries[name]
        except KeyError:
            pass
        self._ensure_loaded()  # for the did-you-mean suggestions
        close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
        message = f"Unknown {self.kind} {name!r}."
        if close:
            message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        hint = (
            f"Run `{self.list_command}` to see all."
            if self.list_command
            else f"Available: {', '.join(sorted(self._entries)) or '(none)'}."
        )
        raise UnknownComponentError(message, hint=hint)

    def get(self, name: str) -> T:
        """Return the component registered as ``name``."""
        return self.entry(name).obj

    def meta(self, name: str) -> dict[str, Any]:
        """Return the metadata registered with ``name``."""
        return self.entry(name).meta

    def list(self, pattern: str = "*", **where: Any) -> list[str]:
        """Sorted names matching a glob ``pattern`` and metadata equalities ``where``.

        Example:
            ``MODELS.list("res*", domain="imaging")``
        """
        self._ensure_loaded()
        names = [n for n in self._entries if fnmatch.fnmatchcase(n, pattern)]
        for key, value in where.items():
            names = [n for n in names if self._entries[n].meta.get(key) == value]
        return sorted(names)

    def registered_now(self, name: str) -> bool:
        """Whether ``name`` is registered by the plugins imported so far (imports nothing,
        unlike ``name in registry``, which imports every plugin before answering a miss)."""
        return name in self._entries

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._load_until(name)  # a miss still imports every plugin before answering
        else:
            self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


#: Model constructors. Meta: ``domain``, ``tasks``, ``tiny`` (params of a tiny variant),
#: ``description``; imaging models also ``cam_layer`` and ``head``.
MODELS: Registry[Callable[..., Any]] = Registry("model", list_command="medlearn models list")
#: Named datasets (:class:`medlearn.catalog.DatasetSpec`).
DATASETS: Registry[Any] = Registry("dataset", list_command="medlearn data list")
#: Metric functions ``f(y_true, y_score, *, mask=None, sample_weight=None) -> float``.
#: Meta: ``higher_is_better``, ``needs`` (``"score"`` or ``"label"``), ``tasks``.
METRICS: Registry[Callable[..., float]] = Registry(
    "metric", list_command="medlearn metrics list", plugins=("medlearn.evaluation.metrics",)
)
#: Per-domain readers ``f(path, **options) -> medlearn.data.LoadedData``.
READERS: Registry[Callable[..., Any]] = Registry("reader")
#: Augmentation / preprocessing presets ``f(**params) -> transform``. Meta: ``domain``.
TRANSFORMS: Registry[Callable[..., Any]] = Registry("transform")
#: Per-domain learners (classes implementing :class:`medlearn.training.Learner`).
LEARNERS: Registry[Any] = Registry("learner")
#: Task handlers (classes implementing :class:`medlearn.tasks.TaskHandler`) by task kind:
#: everything after ``fit`` (predict, calibrate, score, report, predict rows) for that kind.
TASKS: Registry[Any] = Registry(
    "task",
    plugins=("medlearn.tasks.classification", "medlearn.tasks.regression", *BUILTIN_PLUGINS),
)

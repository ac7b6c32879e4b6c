"""Plugin registries with entry-point discovery.

Each extension point (verifiers, behaviours, ledgers, executors, tasks) is
a :class:`Registry`. Built-ins are registered lazily by ``"module:attr"``
path so that listing them imports nothing heavy; third-party packages add
entries through an entry-point group (e.g. ``vcompute.verifiers``).

Example:
    >>> reg = Registry("widget", group=None)
    >>> _ = reg.register("box", lambda: "a box")
    >>> reg.get("box")()
    'a box'
    >>> reg.get("ball")
    Traceback (most recent call last):
    ...
    vcompute.core.registry.UnknownPluginError: unknown widget 'ball'; known widgets: box
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "UnknownPluginError", "load_path"]

T = TypeVar("T")


class UnknownPluginError(KeyError, ValueError):
    """Raised when a registry has no entry of the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def load_path(path: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    mod, _, attr = path.partition(":")
    obj = importlib.import_module(mod)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """A named collection of plugins.

    Args:
        kind: what the entries are, for messages (``"verifier"``).
        group: the entry-point group scanned for third-party entries, or None.
    """

    def __init__(self, kind: str, group: str | None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T | str] = {}
        self._scanned = False

    def __repr__(self) -> str:
        group = f", entry points {self.group!r}" if self.group else ""
        return f"Registry({self.kind}s: {', '.join(self.names()) or '(none)'}{group})"

    def register(self, name: str, obj: T | str | None = None, *, replace: bool = False):
        """Register ``obj`` (or a lazy ``"module:attr"`` path) under ``name``.

        Usable as a decorator when ``obj`` is omitted.

        Raises:
            ValueError: if ``name`` is taken and ``replace`` is false.
        """
        if obj is None:
            def deco(o: T) -> T:
                self.register(name, o, replace=replace)
                return o
            return deco
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string")
        if name in self._entries and not replace and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass replace=True to override")
        self._entries[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error if absent)."""
        self._entries.pop(name, None)

    def _scan(self) -> None:
        if self._scanned or self.group is None:
            return
        self._scanned = True
        for ep in metadata.entry_points(group=self.group):
            self._entries.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        """Sorted names of all entries (built-in and entry points)."""
        self._scan()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._scan()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The entry called ``name``, importing it if registered lazily.

        Raises:
            UnknownPluginError: naming the known entries.
        """
        self._scan()
        if name not in self._entries:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownPluginError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
        obj = self._entries[name]
        if isinstance(obj, str):
            try:
                obj = load_path(obj)
            except (ImportError, AttributeError) as e:
                raise ImportError(f"{self.kind} {name!r} could not be loaded from {obj!r}: {e}") from e
            self._entries[name] = obj
        return obj  # type: ignore[return-value]

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Look ``name`` up and call it with the given arguments."""
        factory: Callable[..., Any] = self.get(name)  # type: ignore[assignment]
        return factory(*args, **kwargs)

"""The package's own modules, found on disk without importing any of them.

Walkers over vcompute's modules (the API reference, the docstring and
doctest checks, the layer check) read the tree here rather than through
:func:`pkgutil.walk_packages`, which imports every package it descends
into. Moved modules keep their old path as a *deprecated re-export*: a
module whose docstring starts with ``Deprecated``; walkers skip those, since
they document nothing of their own.

Example:
    >>> "vcompute.core.modules" in package_modules()
    True
    >>> is_deprecated("vcompute.core.modules")
    False
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

__all__ = ["ROOT", "package_modules", "module_path", "is_deprecated"]

#: The directory of the ``vcompute`` package.
ROOT = Path(__file__).resolve().parent.parent


def module_path(name: str) -> Path:
    """The source file of module ``name`` (``vcompute.x.y``).

    Raises:
        ValueError: if ``name`` is not a module of this package on disk.
    """
    parts = name.split(".")
    if parts[0] != "vcompute":
        raise ValueError(f"name must be a vcompute module, got {name!r}")
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    raise ValueError(f"no module {name!r} under {ROOT}")


@lru_cache(maxsize=None)
def is_deprecated(name: str) -> bool:
    """Whether module ``name`` is a deprecated re-export of a moved module."""
    doc = ast.get_docstring(ast.parse(module_path(name).read_text())) or ""
    return doc.startswith("Deprecated")


def package_modules(*, private: bool = False, deprecated: bool = False) -> list[str]:
    """Every module of the package, sorted, found on disk.

    Args:
        private: include modules with a ``_private`` path component.
        deprecated: include deprecated re-export paths.
    """
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if any(not p.isidentifier() for p in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        elif (path.parent / "__init__.py").is_file() is False:
            continue
        name = ".".join(parts)
        if not private and any(p.startswith("_") for p in parts[1:]):
            continue
        if not deprecated and is_deprecated(name):
            continue
        names.append(name)
    return sorted(set(names))

"""Every public name of every public module has a docstring.

Public modules: every module of ``vcompute`` without a ``_private`` path
component. Public names: the module's ``__all__`` (or, without one, its
public classes and functions), and the public methods and properties those
classes define. Module-level data in ``__all__`` (registries, constants,
type aliases) needs a ``#:`` doc comment, which autodoc renders.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

from vcompute.core.modules import package_modules


def public_modules() -> list[str]:
    return package_modules()  # deprecated re-export paths document nothing of their own


def exported(mod: Any) -> list[str]:
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    return [n for n, o in vars(mod).items() if not n.startswith("_")
            and (inspect.isclass(o) or inspect.isfunction(o)) and o.__module__ == mod.__name__]


def _own_doc(obj: Any) -> str | None:
    # A class's own docstring: inspect.getdoc would inherit BaseModel's or Protocol's.
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return doc.strip() if isinstance(doc, str) and doc.strip() else None


def _attr_docs(modname: str) -> set[str]:
    """Names with a ``#:`` doc comment (or a docstring after the assignment) in the module source."""
    from sphinx.pycode import ModuleAnalyzer

    try:
        return {name for (ns, name) in ModuleAnalyzer.for_module(modname).find_attr_docs() if ns == ""}
    except Exception:  # no source available
        return set()


def _method_problems(cls: type, where: str) -> list[str]:
    problems = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        func = member
        if isinstance(member, (staticmethod, classmethod)):
            func = member.__func__
        elif isinstance(member, property):
            func = member.fget
        if not inspect.isfunction(func):
            continue
        # An override may inherit the documented contract of the protocol or base class.
        if not (inspect.getdoc(getattr(cls, name, None)) or "").strip() and not _own_doc(func):
            problems.append(f"{where}.{name}")
    return problems


def missing_docstrings(modname: str) -> list[str]:
    """Public names of ``modname`` without documentation."""
    mod = importlib.import_module(modname)
    problems = [] if _own_doc(mod) else [f"{modname} (module docstring)"]
    attr_docs: set[str] | None = None
    for name in exported(mod):
        if not hasattr(mod, name):
            problems.append(f"{modname}.{name} (in __all__ but not defined)")
            continue
        obj = getattr(mod, name)
        if inspect.ismodule(obj) or (name.startswith("__") and name.endswith("__")):
            continue
        if inspect.isclass(obj) or inspect.isroutine(obj) or hasattr(obj, "__wrapped__"):
            home = getattr(obj, "__module__", modname)
            if home != modname and home in sys_modules() and name in exported(sys_modules()[home]):
                continue  # re-exported: checked where it is defined
            if not _own_doc(obj):
                problems.append(f"{modname}.{name}")
            if inspect.isclass(obj) and home == modname:
                problems += _method_problems(obj, f"{modname}.{name}")
        else:
            if attr_docs is None:
                attr_docs = _attr_docs(modname)
            if name not in attr_docs and not _documented_elsewhere(obj, name):
                problems.append(f"{modname}.{name} (data: add a `#:` comment above it)")
    return problems


def sys_modules() -> dict[str, Any]:
    import sys

    return sys.modules


def _documented_elsewhere(obj: Any, name: str) -> bool:
    """Re-exported data (``from x import REGISTRY``) is documented in the module defining it."""
    for modname, mod in list(sys_modules().items()):
        if not modname.startswith("vcompute") or mod is None:
            continue
        if getattr(mod, name, None) is obj and name in getattr(mod, "__all__", ()) \
                and name in _attr_docs(modname):
            return True
    return False


@pytest.mark.parametrize("modname", public_modules())
def test_public_names_have_docstrings(modname):
    problems = missing_docstrings(modname)
    assert not problems, "public names without a docstring (Google style: Args/Returns/Raises/Example):\n  " \
        + "\n  ".join(problems)


def test_the_checker_catches_a_missing_docstring(tmp_path, monkeypatch):
    (tmp_path / "vc_doccheck_probe.py").write_text(
        '"""Probe."""\n__all__ = ["f", "C", "X"]\n\ndef f():\n    pass\n\n'
        'class C:\n    """Doc."""\n    def m(self):\n        pass\n\nX = 1\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert set(missing_docstrings("vc_doccheck_probe")) == {
        "vc_doccheck_probe.f", "vc_doccheck_probe.C.m", "vc_doccheck_probe.X (data: add a `#:` comment above it)"}

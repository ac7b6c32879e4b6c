"""The package layers of DESIGN.md, checked on every import statement in the source.

Every ``import`` / ``from ... import`` in ``vcompute/`` (top level or inside a
function, where heavy frameworks are imported lazily) is parsed with
:mod:`ast`; an import of a layer the importing layer may not use fails,
and so does an import of a deprecated re-export path from inside vcompute
(those paths exist for outside code only).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import importlib
from pathlib import Path

import pytest

import vcompute
from vcompute.core.modules import package_modules

ROOT = Path(vcompute.__file__).parent

#: Layer -> the layers it may import (itself included). Imports point down only;
#: ``verify`` and ``ledger`` never import each other; ``trust`` is pure maths.
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "trust": {"core", "trust"},
    "workloads": {"core", "workloads"},
    "verify": {"core", "trust", "workloads", "verify"},
    "ledger": {"core", "ledger"},
    "market": {"core", "trust", "workloads", "verify", "ledger", "market"},
    "experiment": {"core", "trust", "workloads", "verify", "ledger", "market", "experiment"},
    "cli": {"core", "trust", "workloads", "verify", "ledger", "market", "experiment", "cli"},
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "vcompute":
        return None
    if len(parts) == 1:
        return None  # the package root: its version, and subpackages loaded lazily
    return parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # ``from vcompute.verify import freivalds`` imports a submodule too
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names
                    if (ROOT.parent / Path(*f"{target}.{a.name}".split("."))).exists()
                    or (ROOT.parent / Path(*f"{target}.{a.name}".split("."))).with_suffix(".py").exists()]
    return out


SOURCES = sorted(p for p in ROOT.rglob("*.py") if "_build" not in p.parts)


def _is_deprecated_shim(path: Path) -> bool:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.startswith("Deprecated")


SHIMS = {_module_name(p) for p in SOURCES if _is_deprecated_shim(p)}


def test_every_source_belongs_to_a_layer():
    stray = [str(p) for p in SOURCES if _layer(_module_name(p)) not in ALLOWED and _module_name(p) != "vcompute"]
    assert stray == []


@pytest.mark.parametrize("path", [p for p in SOURCES if not _is_deprecated_shim(p)],
                         ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_point_down(path):
    mine = _layer(_module_name(path))
    bad = [f"line {ln}: {target}" for ln, target in _imports(path)
           if (layer := _layer(target)) is not None and layer not in ALLOWED[mine]]
    assert bad == [], f"{_module_name(path)} ({mine}) imports a layer above it or beside it: {bad}"


@pytest.mark.parametrize("path", [p for p in SOURCES if not _is_deprecated_shim(p)],
                         ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_no_internal_use_of_deprecated_paths(path):
    used = [f"line {ln}: {target}" for ln, target in _imports(path) if target in SHIMS]
    assert used == [], f"{_module_name(path)} imports deprecated re-export paths: {used}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_no_import_cycles_between_modules_at_import_time():
    """Importing every module in a fresh order succeeds (a cycle at module level fails here)."""
    for name in reversed(package_modules(private=True, deprecated=True)):
        if name.endswith(("__main__",)):
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:  # an optional heavy dependency missing is not a cycle
            if "cannot import name" in str(e) or "partially initialized" in str(e):
                raise


OLD_PATHS = sorted(SHIMS)


@pytest.mark.parametrize("old", OLD_PATHS)
def test_deprecated_paths_still_import(old):
    """Outside code keeps working: every moved module's old path imports, warns, and is the new module."""
    code = (f"import warnings, importlib; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    importlib.import_module({old!r})\nexcept DeprecationWarning as w:\n    print('warned', w)\n"
            f"warnings.simplefilter('ignore')\nm = importlib.import_module({old!r})\n"
            f"print('names', len([n for n in dir(m) if not n.startswith('__')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "warned" in out.stdout and "is deprecated" in out.stdout
    assert int(out.stdout.split("names")[1]) > 0

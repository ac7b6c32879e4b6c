"""Every test a proof document names (``tests/...py::name``) exists.

A proof's claims are only as good as the tests that check them; a renamed
or deleted test must not leave a claim pointing at nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_REF = re.compile(r"(tests/[\w/.-]+\.py)((?:::[A-Za-z_]\w*)+)")


def references() -> list[tuple[str, str, str]]:
    refs = []
    for doc in sorted((ROOT / "proofs").glob("*.md")):
        for path, names in _REF.findall(doc.read_text()):
            refs.append((doc.name, path, names.lstrip(":")))
    return sorted(set(refs))


def defined_names(path: Path) -> set[str]:
    """``name`` and ``Class::method`` for every function and class in a test file."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names |= {f"{node.name}::{n.name}" for n in node.body
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


@pytest.mark.parametrize("doc,path,name", references() or [pytest.param("", "", "", marks=pytest.mark.skip(
    reason="no proofs/*.md names a test yet"))])
def test_named_test_exists(doc, path, name):
    file = ROOT / path
    assert file.is_file(), f"proofs/{doc} names {path}, which does not exist"
    assert name in defined_names(file), f"proofs/{doc} names {path}::{name}, which is not defined there"


def test_reference_pattern():
    text = "checked by `tests/verify/test_x.py::test_a`, tests/y/test_z.py::TestK::test_b."
    assert _REF.findall(text) == [("tests/verify/test_x.py", "::test_a"), ("tests/y/test_z.py", "::TestK::test_b")]

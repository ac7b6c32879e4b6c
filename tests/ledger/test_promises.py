"""Every test that the ledger's written promises name exists.

The promises are the spec: the ``vcompute.ledger`` docstring, ``protocols/*.md``
and README name, beside each claim, the test that checks it
(``tests/...py::name``, or ``::name`` continuing the file named before it; in
``protocols/JobEscrow.md`` a bare ``test_...`` is in ``tests/ledger/test_job_escrow.py``).
A renamed or deleted test must not leave a promise pointing at nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import vcompute.ledger

ROOT = Path(__file__).resolve().parents[2]
_TOKEN = re.compile(r"(tests/[\w/.-]+\.py)((?:::\w+)*)|(?<![\w/])::(\w+)|`(test_\w+)`")


def _defined(path: Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def references(name: str, text: str, bare_file: str | None = None) -> list[tuple[str, str, str]]:
    """``(document, test file, test name)`` for every test ``text`` names (files alone: name ``""``)."""
    out, last = [], None
    for path, names, cont, bare in _TOKEN.findall(text):
        if path:
            last = path
            out += [(name, path, n) for n in names.split("::") if n] or [(name, path, "")]
        elif cont and last:
            out.append((name, last, cont))
        elif bare and bare_file:
            out.append((name, bare_file, bare))
    return out


def all_references() -> list[tuple[str, str, str]]:
    refs = references("vcompute.ledger", vcompute.ledger.__doc__ or "")
    refs += references("README.md", (ROOT / "README.md").read_text())
    for doc in sorted((ROOT / "protocols").glob("*.md")):
        refs += references(doc.name, doc.read_text(),
                           "tests/ledger/test_job_escrow.py" if doc.name == "JobEscrow.md" else None)
    return sorted(set(refs))


@pytest.mark.parametrize("doc,path,name", all_references())
def test_named_test_exists(doc, path, name):
    file = ROOT / path
    assert file.is_file(), f"{doc} names {path}, which does not exist"
    assert not name or name in _defined(file), f"{doc} names {path}::{name}, which is not defined there"


def test_every_promise_document_names_tests():
    docs = {d for d, _, _ in all_references()}
    assert {"vcompute.ledger", "VLedger.md", "JobEscrow.md"} <= docs


def test_reference_parser():
    text = "see `tests/a/test_x.py::test_a`, ``::test_b`` and `test_c`; tests/b/test_y.py"
    assert references("d", text, "tests/j.py") == [
        ("d", "tests/a/test_x.py", "test_a"), ("d", "tests/a/test_x.py", "test_b"), ("d", "tests/j.py", "test_c"),
        ("d", "tests/b/test_y.py", "")]

"""Every ``>>>`` example in the package's docstrings runs and prints what it says.

One test per public module that has examples; docstring examples are part
of the API reference, so a stale one is a bug.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

from vcompute.core.modules import package_modules

_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def modules_with_examples() -> list[str]:
    names = package_modules(private=True)  # deprecated re-export paths have no examples of their own
    found = []
    finder = doctest.DocTestFinder(exclude_empty=True)
    for name in sorted(names):
        try:
            mod = importlib.import_module(name)
        except ImportError:  # an optional dependency is missing: that module's own tests skip too
            continue
        if any(t.examples for t in finder.find(mod, name)):
            found.append(name)
    return found


@pytest.mark.parametrize("modname", modules_with_examples())
def test_docstring_examples(modname):
    mod = importlib.import_module(modname)
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    failures = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(mod, modname):
        out: list[str] = []
        result = runner.run(test, out=out.append)
        if result.failed:
            failures.append("".join(out))
    assert not failures, "\n".join(failures)


def test_examples_exist_and_a_wrong_one_fails():
    assert len(modules_with_examples()) >= 5
    bad = doctest.DocTestParser().get_doctest(">>> 1 + 1\n3\n", {}, "probe", None, 0)
    assert doctest.DocTestRunner().run(bad, out=lambda s: None).failed == 1

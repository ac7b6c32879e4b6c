"""Layering: light entry points must not import heavy frameworks."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "jax", "web3", "simpy", "ray", "Crypto", "py_ecc", "sklearn", "matplotlib", "numba")


def _loaded_after(stmt: str) -> list[str]:
    code = (f"import sys; {stmt}; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("stmt", [
    "import vcompute",
    "import vcompute.verify",
    "from vcompute.verify import Freivalds",
    "import vcompute.core",
    "import vcompute.workloads",
])
def test_light_imports_pull_in_no_framework(stmt):
    assert _loaded_after(stmt) == []


def test_verify_needs_numpy():
    code = "import sys, vcompute.verify; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"

"""The pinned environment: constraints.txt pins the numeric stack exactly, and every pip install of the Makefile uses it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)", line)
        assert m, f"constraints.txt: not an exact pin: {line!r}"
        name = re.sub(r"[-_.]+", "-", m.group(1).lower())
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = m.group(2)
    return pins


def test_constraints_pin_the_numeric_stack_exactly():
    pins = _pins()
    for name in ("numpy", "jax", "jaxlib", "torch", "numba", "scipy", "pydantic", "safetensors"):
        assert name in pins, f"constraints.txt does not pin {name}"
    # the Makefile's TORCH chooses the build (CPU or CUDA); a local tag here would refuse the other
    assert "+" not in pins["torch"]
    make = (ROOT / "Makefile").read_text()
    assert f"TORCH  ?= torch=={pins['torch']}" in make, "the Makefile's TORCH and constraints.txt disagree"


def test_every_pip_install_of_the_makefile_uses_the_constraints():
    make = (ROOT / "Makefile").read_text()
    assert "PIP_C  := -c constraints.txt" in make
    installs = [ln for ln in make.splitlines() if ln.startswith("\t") and "pip install" in ln and "--upgrade pip" not in ln]
    assert installs, "no pip install in the Makefile"
    for ln in installs:
        assert "$(PIP_C)" in ln, f"a pip install without the constraints: {ln.strip()!r}"

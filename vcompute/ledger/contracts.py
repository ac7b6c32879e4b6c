"""Compile and load the Vyper contracts in ``protocols/``.

The compiled ABI and bytecode are checked in under ``protocols/build/``
(``NAME.json``) so that using the EVM ledger needs no compiler;
``tests/ledger/test_contracts_build.py`` recompiles every source and
checks that the files match. Rebuild after editing a contract with::

    python -m vcompute.ledger.contracts

The ``protocols/`` folder is found next to the package in a source
checkout, or at ``$VCOMPUTE_PROTOCOLS``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from collections.abc import Mapping
from typing import Any

__all__ = ["CONTRACTS", "build_all", "compile_contract", "load_contract", "protocols_dir"]

#: Contracts with checked-in builds (source file stem).
CONTRACTS = ("VLedger", "JobEscrow", "MaliciousProvider", "ForceSend", "Dispute", "FloatStep", "HostileGame",
             "LyingGame", "GameProxy", "OperatorStep", "OperatorGame")


def protocols_dir() -> Path:
    """Where the Vyper sources live.

    Raises:
        FileNotFoundError: if neither ``$VCOMPUTE_PROTOCOLS`` nor a source checkout's ``protocols/`` exists.
    """
    env = os.environ.get("VCOMPUTE_PROTOCOLS")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "protocols"
    if not d.is_dir():
        raise FileNotFoundError(f"no protocols/ folder at {d}; set VCOMPUTE_PROTOCOLS to the folder holding "
                                "the Vyper sources and their build/")
    return d


def _source_path(name: str) -> Path:
    d = protocols_dir()
    for p in (d / f"{name}.vy", d / "testing" / f"{name}.vy"):
        if p.exists():
            return p
    raise FileNotFoundError(f"no Vyper source {name}.vy under {d}; known contracts: {', '.join(CONTRACTS)}")


def compile_contract(name: str, constants: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Compile ``protocols/NAME.vy`` with the installed vyper.

    Args:
        name: the contract (file stem), e.g. ``"VLedger"``.
        constants: ``uint256`` constants to set before compiling (``{"MAX_DIM": 1024}``): a benchmark
            build with other bounds, never checked in (its ``source_sha256`` is the edited source's).

    Returns:
        ``{"contract", "vyper", "source_sha256", "abi", "bytecode"}``.

    Raises:
        ImportError: if vyper is not installed (``pip install 'vcompute[evm]'``).
        ValueError: if a constant is not a literal ``NAME: constant(uint256) = N`` line of the source,
            or its value is not a positive int.
    """
    import re

    import vyper

    src = _source_path(name).read_text()
    for key, value in (constants or {}).items():
        if type(value) is not int or value <= 0:
            raise ValueError(f"constants[{key!r}] must be a positive int, got {value!r}")
        src, n = re.subn(rf"^{re.escape(key)}: constant\(uint256\) = \d+", f"{key}: constant(uint256) = {value}",
                         src, flags=re.M)
        if n != 1:
            raise ValueError(f"{name}.vy has no literal uint256 constant {key!r} to set")
    out = vyper.compile_code(src, output_formats=["abi", "bytecode"])
    return {"contract": name, "vyper": vyper.__version__,
            "source_sha256": hashlib.sha256(src.encode()).hexdigest(),
            "abi": out["abi"], "bytecode": out["bytecode"]}


def load_contract(name: str) -> dict[str, Any]:
    """The checked-in build of ``name`` (compiled on the fly if its build file is missing).

    Args:
        name: the contract (file stem).

    Returns:
        The dict :func:`compile_contract` returns.

    Raises:
        RuntimeError: if the build is stale (its source changed): rebuild with ``python -m vcompute.ledger.contracts``.
    """
    path = protocols_dir() / "build" / f"{name}.json"
    if not path.exists():
        return compile_contract(name)
    build = json.loads(path.read_text())
    src = _source_path(name).read_bytes()
    if hashlib.sha256(src).hexdigest() != build["source_sha256"]:
        raise RuntimeError(f"{path} is stale: {name}.vy changed since it was built; "
                           "run `python -m vcompute.ledger.contracts` to rebuild")
    return build


def build_all() -> list[Path]:
    """Recompile every contract and write ``protocols/build/NAME.json``.

    Returns:
        The paths written.
    """
    out = []
    d = protocols_dir() / "build"
    d.mkdir(exist_ok=True)
    for name in CONTRACTS:
        p = d / f"{name}.json"
        p.write_text(json.dumps(compile_contract(name), indent=1, sort_keys=True) + "\n")
        out.append(p)
    return out


if __name__ == "__main__":  # pragma: no cover - maintenance command
    for p in build_all():
        print("wrote", p)

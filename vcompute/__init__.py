"""vcompute: verifiable outsourced compute.

The package is layered (see ``DESIGN.md``): :mod:`vcompute.core` holds the
vocabulary, :mod:`vcompute.verify` the verification schemes,
:mod:`vcompute.workloads` the jobs and provider behaviours,
:mod:`vcompute.ledger` the ledgers, :mod:`vcompute.market` the marketplace
simulation and :mod:`vcompute.experiment` the experiment runner.

Importing :mod:`vcompute` itself is cheap: subpackages load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("core", "verify", "workloads", "ledger", "market", "experiment", "cli")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"vcompute.{name}")
    raise AttributeError(f"module 'vcompute' has no attribute {name!r}")

"""A cheap, deterministic, CPU-bound task for testing and benchmarking executors.

``synthetic.burn`` does a seeded elementwise numpy computation of a chosen
size. Elementwise operations and numpy's pairwise sum do not depend on the
number of BLAS threads, so its ``checksum`` is bit-identical on every
executor and machine with the same numpy: exactly what a test comparing
executors, or a benchmark of their throughput, needs. It can also fail on
purpose (``fail_seed``: the task raises; ``exit_seed``: the worker process
dies) so that executors' failure handling is tested for real.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from pydantic import Field

from vcompute.experiment.tasks.base import TaskParams

__all__ = ["Burn", "BurnParams"]


class BurnParams(TaskParams):
    """Parameters of :class:`Burn`."""

    size: int = Field(100_000, ge=1, le=100_000_000, description="elements in the working array")
    iters: int = Field(10, ge=0, le=100_000, description="elementwise passes over the array")
    sleep_s: float = Field(0.0, ge=0, le=60, description="extra idle seconds per run (latency, not CPU)")
    fail_seed: int | None = Field(None, description="the run with this seed raises RuntimeError")
    exit_seed: int | None = Field(None, description="the run with this seed kills its worker process")


class Burn:
    """Burns CPU on a seeded array and returns its checksum.

    Metrics: ``checksum`` (deterministic in ``size``, ``iters`` and the
    seed), ``elements`` (``size * iters``, the work done) and ``burn_s``
    (seconds, the only non-deterministic metric).

    Example:
        >>> task = Burn()
        >>> m = task.run(BurnParams(size=1000, iters=2), seed=0)
        >>> m["checksum"] == task.run(BurnParams(size=1000, iters=2), seed=0)["checksum"]
        True
        >>> m["elements"]
        2000
    """

    Params = BurnParams
    description = "seeded elementwise numpy work (executor tests and benchmarks)"
    metrics = ("checksum", "elements", "burn_s")

    def run(self, params: BurnParams, seed: int) -> dict[str, Any]:
        """Execute one run.

        Args:
            params: validated parameters.
            seed: seeds the working array.

        Returns:
            ``{"checksum", "elements", "burn_s"}``.

        Raises:
            RuntimeError: if ``seed == params.fail_seed`` (on purpose).
        """
        if params.exit_seed is not None and seed == params.exit_seed:
            os._exit(3)  # simulates a worker killed mid-run (OOM killer, segfault)
        if params.fail_seed is not None and seed == params.fail_seed:
            raise RuntimeError(f"synthetic failure for seed {seed} (fail_seed={params.fail_seed})")
        t = time.perf_counter()
        x = np.random.default_rng(seed).standard_normal(params.size)
        for _ in range(params.iters):
            x = np.sin(x) * 1.5 + 0.25
        if params.sleep_s:
            time.sleep(params.sleep_s)
        return {"checksum": float(x.sum()), "elements": params.size * params.iters,
                "burn_s": time.perf_counter() - t}

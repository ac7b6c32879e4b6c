"""Freivalds against honest and cheating matmul providers."""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vcompute.core.arrays import synchronize
from vcompute.experiment.tasks.base import TaskParams
from vcompute.verify.base import VerifyContext
from vcompute.verify.freivalds import Freivalds
from vcompute.workloads.behaviours import BEHAVIOURS, execute
from vcompute.workloads.matmul import honest_matmul, make_matmul_job

__all__ = ["FreivaldsDetection"]


class FreivaldsDetectionParams(TaskParams):
    """Parameters of :class:`FreivaldsDetection`."""

    n: int = Field(256, ge=1, le=16384, description="matrix size (n x n times n x n)")
    backend: Literal["numpy", "torch", "jax"] = "numpy"
    dtype: Literal["float32", "float64"] = "float32"
    behaviour: str = Field("honest", description="provider behaviour from the registry")
    rounds: int = Field(2, ge=1, le=64, description="Freivalds rounds k")
    safety: float = Field(5.5, gt=0, description="tolerance tail parameter lambda")
    mean: float = Field(0.0, description="mean of the input entries")
    trials: int = Field(4, ge=1, le=10000, description="jobs per run")
    behaviour_params: dict[str, float | str] = Field(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        BEHAVIOURS.get(self.behaviour)  # unknown names fail at validation, listing the known ones


class FreivaldsDetection:
    """Runs ``trials`` jobs through one behaviour and Freivalds' check.

    Metrics: ``detected`` (fraction of claims rejected), ``cheated`` (1 if
    the behaviour is not honest), ``verify_s`` and ``compute_s`` (median
    seconds), ``verify_over_compute`` (their ratio), ``max_error_ratio``.
    """

    Params = FreivaldsDetectionParams
    description = "detection rate and verify/compute time of Freivalds against one provider behaviour"

    def run(self, params: FreivaldsDetectionParams, seed: int) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        verifier = Freivalds(rounds=params.rounds, safety=params.safety)
        rejected, t_verify, t_compute, ratios = 0, [], [], []
        for trial in range(params.trials):
            job = make_matmul_job(params.n, backend=params.backend, dtype=params.dtype,
                                  seed=int(rng.integers(2**31)), mean=params.mean)
            claim = execute(job, params.behaviour, rng=rng, **params.behaviour_params)
            t = time.perf_counter()
            synchronize(honest_matmul(job))
            t_compute.append(time.perf_counter() - t)
            verdict = verifier.verify(job, [claim], VerifyContext(rng=rng))
            t_verify.append(verdict.cost.seconds)
            ratios.append(verdict.details.get("max_error_ratio", float("nan")))
            rejected += not verdict.accepted
        v, c = float(np.median(t_verify)), float(np.median(t_compute))
        return {
            "detected": rejected / params.trials,
            "cheated": int(params.behaviour != "honest"),
            "verify_s": v,
            "compute_s": c,
            "verify_over_compute": v / c if c > 0 else float("nan"),
            "max_error_ratio": float(np.nanmax(ratios)),
        }

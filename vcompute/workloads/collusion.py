"""Behaviours that defeat naive replication: colluding and malformed answers.

- ``colluding``: every colluder returns the *same* wrong matmul product, a
  perturbation derived from the job id alone (the worst case for voting:
  the collusion rate ``c = 1`` of ``proofs/replication.md``).
- ``nan_output`` and ``wrong_shape``: malformed answers a replication
  verifier must count as disagreeing without crashing.

Registered in :data:`vcompute.workloads.behaviours.BEHAVIOURS` by path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, from_numpy, namespace
from vcompute.core.types import Job

__all__ = ["colluding", "nan_output", "wrong_shape"]


def _product(job: Job) -> Any:
    if job.kind != "matmul":
        raise ValueError(f"collusion behaviours cannot run a {job.kind!r} job")
    return job.inputs["a"] @ job.inputs["b"]


def colluding(job: Job, rng: np.random.Generator, *, magnitude: float = 0.05, ring: str = "ring") -> Any:
    """The product plus a perturbation every member of ``ring`` derives identically.

    ``rng`` is deliberately unused: the perturbation is seeded by the job id
    and ring name so that colluders agree bit for bit without talking.
    """
    c = _product(job)
    xp = namespace(c)
    seed = int.from_bytes(bytes.fromhex(job.id[:16]), "big")
    shared = np.random.default_rng([seed, sum(map(ord, ring))])
    i, j = int(shared.integers(c.shape[0])), int(shared.integers(c.shape[1]))
    bump = np.zeros(tuple(c.shape), dtype=np.float32)
    rms = float(xp.sqrt(xp.mean(xp.astype(c, xp.float32) ** 2)))
    bump[i, j] = magnitude * max(rms, 1e-30)
    return c + xp.astype(from_numpy(bump, backend_of(c), like=c), c.dtype)


def nan_output(job: Job, rng: np.random.Generator) -> Any:
    """The product with one NaN entry (a malformed answer)."""
    c = _product(job)
    xp = namespace(c)
    mask = np.zeros(tuple(c.shape), dtype=np.float32)
    mask[int(rng.integers(c.shape[0])), int(rng.integers(c.shape[1]))] = np.nan
    return c + xp.astype(from_numpy(mask, backend_of(c), like=c), c.dtype)


def wrong_shape(job: Job, rng: np.random.Generator) -> Any:
    """The product with its last column dropped (a malformed answer)."""
    return _product(job)[:, :-1]

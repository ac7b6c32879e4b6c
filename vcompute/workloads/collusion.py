"""Behaviours that defeat naive replication: colluding and malformed answers.

- ``colluding``: every colluder returns the *same* wrong matmul product, a
  perturbation derived from the job id alone (the worst case for voting:
  the collusion rate ``c = 1`` of ``proofs/replication.md``). With
  ``rate < 1`` the colluders also coordinate *when* to cheat: a hash of the
  job id and ring decides, so on a given job either every member cheats or
  none does (the correlated cheating of claim C9).
- ``nan_output`` and ``wrong_shape``: malformed answers a replication
  verifier must count as disagreeing without crashing.

Registered as ``matmul/<name>`` in :data:`vcompute.workloads.kinds.behaviours.BEHAVIOURS` by path.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, from_numpy, namespace
from vcompute.core.types import Job

__all__ = ["colluding", "cheats_on", "nan_output", "wrong_shape"]


def _product(job: Job) -> Any:
    if job.kind != "matmul":
        raise ValueError(f"collusion behaviours cannot run a {job.kind!r} job")
    return job.inputs["a"] @ job.inputs["b"]


def cheats_on(job: Job, rate: float, ring: str = "ring") -> bool:
    """Whether the ring cheats on ``job``: a uniform from a hash of the job id and ring, below ``rate``.

    Every member computes the same answer without talking; over jobs it is
    true for a share ``rate`` of them.

    Example:
        >>> from vcompute.workloads.matmul import make_matmul_job
        >>> cheats_on(make_matmul_job(2, seed=0), 1.0), cheats_on(make_matmul_job(2, seed=0), 0.0)
        (True, False)
    """
    h = hashlib.sha256(f"{job.id}/{ring}/when".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64 < rate


def colluding(job: Job, rng: np.random.Generator, *, magnitude: float = 0.05, ring: str = "ring",
              rate: float = 1.0) -> Any:
    """The product plus a perturbation every member of ``ring`` derives identically, on a share ``rate`` of jobs.

    ``rng`` is deliberately unused: the perturbation, and whether to cheat
    at all (:func:`cheats_on`), are seeded by the job id and ring name so
    that colluders agree bit for bit without talking. On the other jobs the
    answer is the honest product.
    """
    c = _product(job)
    if rate < 1.0 and not cheats_on(job, rate, ring):
        return c
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

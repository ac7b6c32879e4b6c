"""The matmul adversary suite: cheating providers a product verifier must catch.

Each is a real computation a lazy or malicious provider could run, written
against the array API (numpy, torch, JAX), with the signature
``(job, rng, **params) -> output`` of :mod:`vcompute.workloads.behaviours`
(where they are registered by path):

- ``cancelling_pair``: ``+delta`` and ``-delta`` in one row; invisible to
  a 0/1 vector with equal entries there, so it is the case that meets the
  ``2^-k`` soundness bound with equality for sign vectors.
- ``rank_one``: ``C + eps u v^T`` with unit vectors ``u, v``, scaled to a
  chosen fraction of ``||C||_F``.
- ``low_precision_fp8``: inputs rounded to 3 mantissa bits (fp8 e4m3, range
  ignored) and multiplied in fp32, returned as the claimed dtype.
- ``replay``: the (honest) product of another job of the same shape (a
  stale or replayed result).
- ``nan_inject`` / ``inf_inject``: one entry replaced by NaN / +Inf.
- ``shape_lie``: a product with one row dropped.
- ``dtype_lie``: the product returned in float16 (half the bytes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, from_numpy, namespace, to_numpy
from vcompute.core.types import Job
from vcompute.workloads.matmul import product

__all__ = ["ADVERSARIES", "cancelling_pair", "rank_one", "low_precision_fp8", "replay",
           "nan_inject", "inf_inject", "shape_lie", "dtype_lie", "round_mantissa"]

#: Names of the adversaries defined here (deprecated list: they are registered as ``matmul/<name>``
#: in :data:`vcompute.workloads.kinds.behaviours.BEHAVIOURS`).
ADVERSARIES = ("cancelling_pair", "rank_one", "low_precision_fp8", "replay", "nan_inject",
               "inf_inject", "shape_lie", "dtype_lie")


def _ab(job: Job) -> tuple[Any, Any]:
    if job.kind != "matmul":
        raise ValueError(f"matmul adversaries cannot run a {job.kind!r} job")
    return job.inputs["a"], job.inputs["b"]


def _add_host(c: Any, delta: np.ndarray) -> Any:
    """``c + delta`` with ``delta`` given on the host, rounded once to ``c``'s dtype."""
    xp = namespace(c)
    if str(c.dtype).split(".")[-1].startswith("int"):
        return c + xp.astype(from_numpy(np.rint(delta).astype(np.int64), backend_of(c), like=c), c.dtype)
    host = to_numpy(c).astype(np.float64) + delta
    return xp.astype(from_numpy(host, backend_of(c), like=c), c.dtype)


def _rms(c: Any) -> float:
    h = to_numpy(c).astype(np.float64)
    return max(float(np.sqrt(np.mean(h * h))), 1e-30)


def cancelling_pair(job: Job, rng: np.random.Generator, *, magnitude: float = 0.05) -> Any:
    """Honest product with ``+delta`` and ``-delta`` in two entries of one row (``delta = magnitude x RMS``)."""
    a, b = _ab(job)
    c = product(a, b)
    m, n = c.shape[-2], c.shape[-1]
    if n < 2:
        raise ValueError("cancelling_pair needs at least two output columns")
    i = int(rng.integers(m))
    j1, j2 = (int(x) for x in rng.choice(n, size=2, replace=False))
    delta = np.zeros(tuple(c.shape))
    d = max(1.0, magnitude * _rms(c)) if str(c.dtype).startswith(("int", "torch.int")) else magnitude * _rms(c)
    delta[..., i, j1], delta[..., i, j2] = d, -d
    return _add_host(c, delta)


def rank_one(job: Job, rng: np.random.Generator, *, magnitude: float = 1e-3) -> Any:
    """Honest product plus ``eps u v^T`` with ``||eps u v^T||_F = magnitude ||C||_F``."""
    a, b = _ab(job)
    c = product(a, b)
    m, n = c.shape[-2], c.shape[-1]
    u = rng.standard_normal(m)
    v = rng.standard_normal(n)
    u /= np.linalg.norm(u)
    v /= np.linalg.norm(v)
    eps = magnitude * _rms(c) * math.sqrt(m * n)
    return _add_host(c, eps * np.outer(u, v))


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Round to ``bits`` explicit mantissa bits (nearest; exponent range ignored).

    Args:
        x: float array.
        bits: explicit mantissa bits (fp8 e4m3: 3; bfloat16: 7).

    Returns:
        The rounded values, float64.

    Example:
        >>> float(round_mantissa(np.array([1.2]), 3)[0])
        1.25
    """
    m, e = np.frexp(np.asarray(x, dtype=np.float64))
    scale = 2.0 ** (bits + 1)
    return np.ldexp(np.round(m * scale) / scale, e)


def low_precision_fp8(job: Job, rng: np.random.Generator) -> Any:
    """Multiplies fp8-e4m3-rounded inputs (fp32 accumulation), returned in the claimed dtype."""
    a, b = _ab(job)
    xp = namespace(a)
    lo = [from_numpy(round_mantissa(to_numpy(x), 3).astype(np.float32), backend_of(a), like=a) for x in (a, b)]
    return xp.astype(lo[0] @ lo[1], a.dtype)


def replay(job: Job, rng: np.random.Generator) -> Any:
    """The honest product of a different job of the same shape and dtype (a stale result)."""
    from vcompute.workloads.matmul import make_matmul_job

    s = job.spec
    other = make_matmul_job(int(s["m"]), int(s["k"]), int(s["n"]), backend=s["backend"], dtype=s["dtype"],
                            seed=int(s.get("seed", 0)) + 1 + int(rng.integers(1000)),
                            mean=float(s.get("mean", 0.0)), scale=float(s.get("scale", 1.0)),
                            spread=float(s.get("spread", 0.0))
                            ) if "m" in s else None
    if other is None:
        raise ValueError("replay needs a job made by make_matmul_job (spec with m, k, n)")
    return product(other.inputs["a"], other.inputs["b"])


def _inject(job: Job, rng: np.random.Generator, value: float) -> Any:
    a, b = _ab(job)
    c = product(a, b)
    if "int" in str(c.dtype):
        raise ValueError("an integer output cannot hold NaN or Inf; this adversary needs a float job")
    i, j = int(rng.integers(c.shape[-2])), int(rng.integers(c.shape[-1]))
    mask = np.zeros(tuple(c.shape))
    mask[..., i, j] = value
    return _add_host(c, mask)


def nan_inject(job: Job, rng: np.random.Generator) -> Any:
    """The honest product with one entry set to NaN."""
    return _inject(job, rng, np.nan)


def inf_inject(job: Job, rng: np.random.Generator) -> Any:
    """The honest product with one entry set to +Inf."""
    return _inject(job, rng, np.inf)


def shape_lie(job: Job, rng: np.random.Generator) -> Any:
    """A product with its last row dropped (claims a smaller job was the job)."""
    a, b = _ab(job)
    return product(a[..., :-1, :], b)


def dtype_lie(job: Job, rng: np.random.Generator) -> Any:
    """The product returned as float16 (smaller to store and ship)."""
    a, b = _ab(job)
    c = product(a, b)
    xp = namespace(c)
    with np.errstate(over="ignore"):  # entries beyond float16's range become inf: the lie, not a problem
        return xp.astype(c, xp.float16 if str(c.dtype).split(".")[-1] != "float16" else xp.float32)

"""Matrix-multiplication jobs on numpy, torch or JAX.

A matmul job is the unit every matrix-product verifier works on: inputs
``a`` (m x k) and ``b`` (k x n) generated from a seed on a named backend,
and the honest output ``a @ b``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vcompute.core.arrays import BACKENDS, from_numpy, namespace
from vcompute.core.types import Job

__all__ = ["make_matmul_job", "matmul_flops", "honest_matmul", "product", "INT_DTYPES"]

_FLOAT = ("float64", "float32", "float16", "bfloat16")
#: Integer (quantised) input dtypes; their products accumulate in int32.
INT_DTYPES = ("int8", "int16")
_DTYPES = _FLOAT + INT_DTYPES


def make_matmul_job(
    m: int,
    k: int | None = None,
    n: int | None = None,
    *,
    backend: str = "numpy",
    dtype: str = "float32",
    seed: int,
    mean: float = 0.0,
    scale: float = 1.0,
    spread: float = 0.0,
) -> Job:
    """A seeded random matmul job.

    Args:
        m, k, n: shapes (``k`` and ``n`` default to ``m``).
        backend: ``numpy``, ``torch`` or ``jax``.
        dtype: input dtype (``bfloat16`` not on numpy); ``int8``/``int16``
            give quantised inputs uniform over their range (int16: |x| < 2**11
            so int32 accumulation cannot overflow at k <= 512) and an int32
            product.
        seed: seed of the input generator.
        mean, scale: entries are ``mean + scale * N(0, 1)``; a non-zero mean
            makes partial sums grow linearly, the hard case for tolerances.
        spread: rows of ``a`` and columns of ``b`` are further scaled by
            ``10 ** U(-spread, spread)``, mixing magnitudes (3 -> 1e-3..1e3).

    Raises:
        ValueError: for bad sizes, backends or dtypes.

    Example:
        >>> job = make_matmul_job(4, backend="numpy", seed=0)
        >>> job.inputs["a"].shape, job.spec["dtype"]
        ((4, 4), 'float32')
    """
    k = m if k is None else k
    n = m if n is None else n
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"matmul size {name} must be a positive integer, got {v!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if dtype not in _DTYPES:
        raise ValueError(f"unsupported matmul dtype {dtype!r}; known: {', '.join(_DTYPES)}")
    if backend == "numpy" and dtype == "bfloat16":
        raise ValueError("numpy has no bfloat16; use backend 'torch' or 'jax'")
    if backend == "jax" and dtype == "float64":
        import jax

        if not jax.config.jax_enable_x64:
            raise ValueError("JAX float64 arrays need x64 mode: set JAX_ENABLE_X64=1 or "
                             "jax.config.update('jax_enable_x64', True) first")
    rng = np.random.default_rng(seed)
    if dtype in INT_DTYPES:
        hi = 128 if dtype == "int8" else 2048
        a = rng.integers(-hi, hi, size=(m, k)).astype(dtype)
        b = rng.integers(-hi, hi, size=(k, n)).astype(dtype)
        spec = {"m": int(m), "k": int(k), "n": int(n), "backend": backend, "dtype": dtype,
                "out_dtype": "int32", "seed": int(seed), "mean": 0.0, "scale": float(hi)}
        return Job("matmul", spec, {"a": from_numpy(a, backend), "b": from_numpy(b, backend)})
    a = mean + scale * rng.standard_normal((m, k))
    b = mean + scale * rng.standard_normal((k, n))
    if spread > 0:
        a = a * 10.0 ** rng.uniform(-spread, spread, size=(m, 1))
        b = b * 10.0 ** rng.uniform(-spread, spread, size=(1, n))
    a = a.astype(np.float32 if dtype != "float64" else np.float64)
    b = b.astype(a.dtype)
    A, B = (_cast(from_numpy(x, backend), dtype) for x in (a, b))
    spec = {"m": int(m), "k": int(k), "n": int(n), "backend": backend, "dtype": dtype,
            "seed": int(seed), "mean": float(mean), "scale": float(scale)}
    if spread > 0:
        spec["spread"] = float(spread)
    return Job("matmul", spec, {"a": A, "b": B})


def _cast(x: Any, dtype: str) -> Any:
    xp = namespace(x)
    return xp.astype(x, getattr(xp, dtype))


def matmul_flops(job: Job) -> float:
    """Floating-point operations of the job's product: 2 m k n."""
    s = job.spec
    return 2.0 * s["m"] * s["k"] * s["n"]


def product(a: Any, b: Any) -> Any:
    """``a @ b`` as an honest provider computes it: integers accumulate in int32.

    Args:
        a: ``(..., m, k)`` array.
        b: ``(..., k, n)`` array of the same backend and dtype.

    Returns:
        The product (int32 for integer inputs, the input dtype otherwise).

    Example:
        >>> product(np.ones((2, 3), np.int8), np.ones((3, 2), np.int8)).dtype
        dtype('int32')
    """
    if str(a.dtype).split(".")[-1] in INT_DTYPES:
        xp = namespace(a)
        return xp.astype(a, xp.int32) @ xp.astype(b, xp.int32)
    if isinstance(a, np.ndarray):
        # A float16 product that overflows to inf is the honest IEEE result (the check handles it);
        # numpy's warning about it is not a problem to report.
        with np.errstate(over="ignore", invalid="ignore"):
            return a @ b
    return a @ b


def honest_matmul(job: Job) -> Any:
    """The honest product of the job's inputs on its backend (plus ``bias`` if present)."""
    c = product(job.inputs["a"], job.inputs["b"])
    if "bias" in job.inputs:
        c = c + job.inputs["bias"]
    return c

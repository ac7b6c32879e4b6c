"""The numeric core of the float check: residual ``A(BR) - CR`` and row tolerances, in float64.

On JAX the whole computation is one jitted function per (shapes, rounding
model) so it runs as a single XLA program instead of dozens of dispatches;
numpy and torch run it eagerly.
"""

from __future__ import annotations

from typing import Any

from vcompute.core.arrays import backend_of, namespace
from vcompute.verify.tolerance import Precision, row_tolerance

__all__ = ["residual_and_tolerance"]

_JAX_KERNELS: dict = {}


def _core(xp: Any, a: Any, b: Any, c: Any, R: Any, bias: Any, stats: Any, prec: Precision, safety: float):
    f64 = xp.float64
    A, B, C = xp.astype(a, f64), xp.astype(b, f64), xp.astype(c, f64)
    D = A @ (B @ R) - C @ R
    if bias is not None:
        D = D + xp.astype(bias, f64)[None, :] @ R
    diff = xp.max(xp.abs(D), axis=-1)
    tol, c2 = row_tolerance(xp, A, B, C, prec=prec, safety=safety, stats=stats, bias=bias is not None)
    return diff, tol, c2


def residual_and_tolerance(a: Any, b: Any, c: Any, R: Any, bias: Any, stats: Any, *, prec: Precision,
                           safety: float) -> tuple[Any, Any, Any]:
    """``max_t |(A(BR) - CR (+ bias R))_it|``, the row tolerance and ``||C_i||^2``, all float64.

    Args:
        a, b, c: the operands (any float dtype, same backend; JAX callers must be in x64 mode).
        R: ``(n, k)`` float64 signs on the same backend.
        bias: ``(n,)`` bias or None.
        stats: cached row norms of ``b`` (float64) or None.
        prec: rounding model of the honest product; safety: ``lambda``.

    Returns:
        ``(diff, tol, c2)``, each of shape ``(..., m)``.
    """
    if backend_of(a) != "jax":
        return _core(namespace(a, c), a, b, c, R, bias, stats, prec, safety)
    import jax

    key = (prec, float(safety), bias is None, stats is None)
    fn = _JAX_KERNELS.get(key)
    if fn is None:
        import jax.numpy as jnp

        def kernel(a, b, c, R, bias, stats):
            return _core(jnp, a, b, c, R, bias, stats, prec, safety)

        fn = _JAX_KERNELS[key] = jax.jit(kernel)
    return fn(a, b, c, R, bias, stats)

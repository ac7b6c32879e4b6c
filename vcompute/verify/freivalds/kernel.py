"""The numeric core of the float check: residual ``A(BR) - CR`` and row tolerances, in float64.

On CPUs (numpy arrays, CPU torch tensors, CPU JAX arrays; float32, float64,
bfloat16 or float16 operands, 2-D or batched) the check runs :func:`fused_residual_and_tolerance`:
three fused one-pass kernels (:mod:`vcompute.verify.freivalds.fused`, numba)
that read A, B and C once each in their own dtype and widen to float64 in
registers. Without numba, or for other cases, the kernels below are used.

On JAX accelerators the whole computation is one jitted function per
(shapes, rounding model), a single XLA program instead of dozens of
dispatches; CPU JAX arrays are viewed as numpy (no copy) because XLA's CPU
float64 reductions are slow.
On numpy and torch (2-D operands) each matrix is streamed once in row blocks
that are converted to float64 in a reused, cache-sized buffer: a full float64
copy of an n x n operand costs more than the whole check (allocating and
first-touching the pages), and so does every full-size temporary like |A|.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, namespace, to_numpy

from vcompute.verify.freivalds.tolerance import Precision, row_tolerance, tolerance_from_sums

__all__ = ["residual_and_tolerance", "fused_residual_and_tolerance", "fused_b_pass", "host_view"]

_JAX_KERNELS: dict = {}


def _core(xp: Any, a: Any, b: Any, c: Any, R: Any, bias: Any, stats: Any, prec: Precision, safety: float):
    f64 = xp.float64
    A, B, C = xp.astype(a, f64), xp.astype(b, f64), xp.astype(c, f64)
    D = A @ (B @ R) - C @ R
    if bias is not None:
        D = D + xp.astype(bias, f64)[None, :] @ R
    diff = xp.max(xp.abs(D), axis=-1)
    bnorm = None if bias is None else xp.sqrt(xp.sum(xp.astype(bias, f64) ** 2))
    tol, c2 = row_tolerance(xp, A, B, C, prec=prec, safety=safety, stats=stats, bias=bias is not None,
                            bias_norm=bnorm)
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
    backend = backend_of(a)
    if backend != "jax":
        if a.ndim == 2 and b.ndim == 2 and prec.u_in == 0.0:
            return _streamed(backend, a, b, c, R, bias, stats, prec, safety)
        return _core(namespace(a, c), a, b, c, R, bias, stats, prec, safety)
    import jax

    if _on_cpu(a):
        # XLA's CPU float64 reductions are slow; CPU JAX arrays view as numpy without a copy
        host = [None if x is None else np.asarray(x) for x in (a, b, c, R, bias, stats)]
        if a.ndim == 2 and b.ndim == 2 and prec.u_in == 0.0:
            return _streamed("numpy", *host[:4], host[4], host[5], prec, safety)
        return _core(np, *host, prec, safety)
    key = (prec, float(safety), bias is None, stats is None)
    fn = _JAX_KERNELS.get(key)
    if fn is None:
        import jax.numpy as jnp

        def kernel(a, b, c, R, bias, stats):
            return _core(jnp, a, b, c, R, bias, stats, prec, safety)

        fn = _JAX_KERNELS[key] = jax.jit(kernel)
    return fn(a, b, c, R, bias, stats)


_BLOCK_BYTES = 1 << 21


def _on_cpu(x: Any) -> bool:
    try:
        return all(d.platform == "cpu" for d in x.devices())
    except Exception:
        return False


class _Ops:
    """The handful of in-place float64 operations the streamed kernel needs, per backend."""

    def __init__(self, backend: str, like: Any) -> None:
        self.torch = backend == "torch"
        if self.torch:
            import torch

            self.t = torch
            self.device = like.device

    def empty(self, shape: tuple) -> Any:
        if self.torch:
            return self.t.empty(shape, dtype=self.t.float64, device=self.device)
        return np.empty(shape, dtype=np.float64)

    def load(self, buf: Any, src: Any) -> Any:
        if self.torch:
            return buf[: src.shape[0]].copy_(src)
        out = buf[: src.shape[0]]
        np.copyto(out, src, casting="unsafe")
        return out

    def rowsq(self, x: Any) -> Any:
        if self.torch:  # torch.einsum here is ~5x slower than a fused norm
            return self.t.linalg.vector_norm(x, dim=1) ** 2
        return np.einsum("ij,ij->i", x, x)

    def abs_(self, x: Any) -> Any:
        return x.abs_() if self.torch else np.abs(x, out=x)

    def square_(self, x: Any) -> Any:
        return x.square_() if self.torch else np.square(x, out=x)


def _streamed(backend: str, a: Any, b: Any, c: Any, R: Any, bias: Any, stats: Any, prec: Precision,
              safety: float) -> tuple[Any, Any, Any]:
    """The same numbers as :func:`_core` for 2-D operands, one pass over each matrix."""
    ops = _Ops(backend, a)
    m, K = a.shape
    n = b.shape[1]
    f64_b = str(b.dtype).endswith("float64")
    rows = lambda cols: max(1, min(_BLOCK_BYTES // (8 * cols), 4096))  # noqa: E731

    # B: P = B R and (unless cached) its row norms
    if f64_b:
        P = b @ R
        norm2 = stats if stats is not None else ops.t.sqrt(ops.rowsq(b)) if ops.torch else np.sqrt(ops.rowsq(b))
    else:
        P = ops.empty((K, R.shape[1]))
        sq = ops.empty((K,))
        buf = ops.empty((rows(n), n))
        step = rows(n)
        for i in range(0, K, step):
            blk = ops.load(buf, b[i:i + step])
            P[i:i + step] = blk @ R
            if stats is None:
                sq[i:i + step] = ops.rowsq(blk)
        norm2 = stats if stats is not None else (sq.sqrt_() if ops.torch else np.sqrt(sq, out=sq))
    # A: y = A P, S = |A| ||b|| and T = A^2 ||b||^2, from one float64 block at a time
    W = norm2 + 1e-300
    W2 = norm2 * norm2
    y = ops.empty((m, R.shape[1]))
    S = ops.empty((m,))
    T = ops.empty((m,))
    step = rows(K)
    buf = ops.empty((step, K))
    for i in range(0, m, step):
        blk = ops.load(buf, a[i:i + step])
        y[i:i + step] = blk @ P
        S[i:i + step] = ops.abs_(blk) @ W
        T[i:i + step] = ops.square_(blk) @ W2
    # C: z = C R and ||C_i||^2
    z = ops.empty((m, R.shape[1]))
    C2 = ops.empty((m,))
    step = rows(n)
    buf = ops.empty((step, n))
    for i in range(0, m, step):
        blk = ops.load(buf, c[i:i + step])
        z[i:i + step] = blk @ R
        C2[i:i + step] = ops.rowsq(blk)
    D = y - z
    bnorm = None
    if bias is not None:
        bb = bias.to(ops.t.float64) if ops.torch else np.asarray(bias, dtype=np.float64)
        D = D + bb[None, :] @ R
        bnorm = float((bb * bb).sum()) ** 0.5
    xp = namespace(a)
    diff = xp.max(xp.abs(D), axis=-1)
    tol = tolerance_from_sums(xp, S=S, C2=C2, T=T, K=K, n=n, prec=prec, safety=safety, bias=bias is not None,
                              bias_norm=bnorm)
    return diff, tol, C2


def host_view(x: Any) -> tuple[np.ndarray, str | None] | None:
    """A zero-copy numpy view of a CPU array for the fused kernels, or None.

    float32/float64 arrays view as themselves; bfloat16 and float16 view as
    their raw ``uint16`` bits (numba has neither type). Accelerator arrays,
    non-native byte order and other dtypes give None.

    Args:
        x: a numpy array, torch tensor or JAX array.

    Returns:
        ``(view, bits)`` with ``bits`` None or the 16-bit format's name, or None
        when the fused kernels cannot read ``x`` in place.
    """
    backend = backend_of(x)
    if backend == "numpy":
        v = x
    elif backend == "torch":
        if x.device.type != "cpu" or x.is_sparse or x.is_complex():
            return None
        t = x.detach()
        name = str(t.dtype).removeprefix("torch.")
        if name in ("bfloat16", "float16"):
            import torch

            return t.view(torch.int16).numpy().view(np.uint16), name
        v = t.numpy()
    else:
        if not _on_cpu(x):
            return None
        v = np.asarray(x)
    name = v.dtype.name
    if not v.dtype.isnative:  # a byte-swapped array would view as the wrong bits (dtype.name ignores order)
        return None
    if name in ("bfloat16", "float16"):
        return v.view(np.uint16), name
    return (v, None) if name in ("float32", "float64") else None


def fused_b_pass(b: Any, R: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(B R, row norms of B)`` in float64 from one fused pass over ``b``, or None where that path does not apply.

    The part of :func:`fused_residual_and_tolerance` that depends on ``b`` and ``R`` only: several
    products with the same ``b``, checked with the same ``R`` (drawn after all of their claims are
    fixed), pass it as ``b_pass`` and read ``b`` once.
    """
    from vcompute.verify.freivalds import fused

    view = host_view(b) if fused.available() else None
    if view is None:
        return None
    B, bbits = view
    P, Bsq, _, _ = fused.row_pass(B, np.ascontiguousarray(R.T, dtype=np.float32), sq=True, bits=bbits)
    return P, np.sqrt(Bsq)


def fused_residual_and_tolerance(a: Any, b: Any, c: Any, R: np.ndarray, bias: Any, *, prec: Precision,
                                 safety: float, b_pass: tuple[np.ndarray, np.ndarray] | None = None,
                                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`residual_and_tolerance` for CPU operands in one fused pass per matrix, or None.

    Args:
        a, b, c, bias: the operands (numpy, CPU torch or CPU JAX; float32,
            float64, bfloat16 or float16; batch dims broadcast as in ``a @ b``); ``bias`` is
            ``(n,)``, or ``(..., n)`` with ``a``'s batch dims (one bias per product of a stack).
        R: ``(n, k)`` numpy signs (+-1).
        prec: rounding model of the honest product; safety: ``lambda``.
        b_pass: :func:`fused_b_pass` of this very ``b`` and ``R`` (None: computed here).

    Returns:
        ``(diff, tol, c2, norms)`` as float64 numpy arrays (``norms`` are the
        row norms of ``b``), or None when this path does not apply (numba
        missing, accelerator arrays, other dtypes).

    The row norms of ``b`` are always taken from the same pass that computes
    ``B R``: they cost nothing extra there, and norms cached from an earlier
    call would go stale if ``b`` were changed in place, pairing a residual of
    the new ``B`` with a tolerance of the old one (too large if ``B`` shrank).
    """
    from vcompute.verify.freivalds import fused

    if not fused.available():
        return None
    views = [host_view(x) for x in (a, b, c)]
    if any(v is None for v in views):
        return None
    (A, abits), (B, bbits), (C, cbits) = views
    K, n = A.shape[-1], B.shape[-1]
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    if A.shape[:-2] != batch:
        A = np.broadcast_to(A, batch + A.shape[-2:])
    if C.shape[:-2] != batch:
        C = np.broadcast_to(C, batch + C.shape[-2:])
    Rt = np.ascontiguousarray(R.T, dtype=np.float32)  # +-1: exact, and products with it are exact
    if b_pass is None:
        P, Bsq, _, _ = fused.row_pass(B, Rt, sq=True, bits=bbits)  # P = B R and the row norms of B
        norms = np.sqrt(Bsq)  # never cached: see above
    else:
        P, norms = b_pass
    w = norms + 1e-300  # some kernels skip zero weights, which would hide an Inf/NaN in A
    G = np.swapaxes(P, -1, -2)
    if B.ndim > 2 and B.shape[:-2] != batch:
        G = np.broadcast_to(G, batch + G.shape[-2:])
        w = np.broadcast_to(w, batch + w.shape[-1:])
    y, _, S, T = fused.row_pass(A, G, w, absw=True, t=True, bits=abits)
    z, C2, _, _ = fused.row_pass(C, Rt, sq=True, bits=cbits)
    D = y - z
    bnorm = None
    if bias is not None:
        bb = np.asarray(to_numpy(bias), dtype=np.float64)
        if bb.ndim == 1:
            D += bb @ R
            bnorm = float(np.sqrt(bb @ bb))
        else:  # one bias per batch entry, (..., n): a stack of linear layers checked in one pass
            D += (bb @ R)[..., None, :]
            bnorm = np.sqrt(np.sum(bb * bb, axis=-1))[..., None]
    diff = np.max(np.abs(D), axis=-1)
    tol = tolerance_from_sums(np, S=S, C2=C2, T=T, K=K, n=n, prec=prec, safety=safety, bias=bias is not None,
                              bias_norm=bnorm)
    return diff, tol, C2, norms

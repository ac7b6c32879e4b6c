"""One-pass fused row kernels for the float check on CPU (compiled with numba).

Freivalds' check of ``C = A B`` on a CPU is memory-bound: it must read A, B
and C at least once, and everything else it does per entry (a few multiply-adds)
is cheap if it happens while the entry is in cache. :func:`row_pass` reads a
matrix ``X`` once, row by row, and from each row computes in float64

- ``Y[i, t] = sum_j X[i, j] G[t, j]`` for the ``k`` rows of ``G`` (``B R``,
  ``A (B R)`` or ``C R``);
- optionally ``sum_j X[i, j]^2`` (row norms of ``B``, ``||C_i||^2``);
- optionally ``sum_j |X[i, j]| w_j`` and ``sum_j X[i, j]^2 w_j^2`` (the
  tolerance sums ``S`` and ``T`` of :mod:`vcompute.verify.freivalds.tolerance`).

The inputs stay in their own dtype (float32, float64, or bfloat16 and float16 passed as
its raw 16 bits); each entry is widened to float64 in registers, so there is
no float64 copy and no full-size temporary. Products with the +-1 signs are
exact; the float64 products of the A pass round, which the check's own error
bound covers. The loops may be reassociated (``fastmath`` reassoc/contract only, never
no-NaN/no-Inf, so NaN and Inf still propagate); the check's own rounding
bound in :func:`~vcompute.verify.freivalds.tolerance.tolerance_from_sums` holds for any
summation order.

Matrices below :data:`_PARALLEL_MIN_ENTRIES` entries run on one thread
through serial twins of the kernels that never touch numba's threading layer;
larger ones on numba's thread count (``NUMBA_NUM_THREADS``, all cores by
default). Concurrent calls from several Python threads are safe: launches of
the parallel kernels are serialised by a lock unless the threading layer is
known to be thread-safe (numba's ``workqueue`` layer aborts the process on a
concurrent launch). A process forked after this one launched parallel kernels
runs the serial twins (GNU OpenMP aborts a parallel launch in such a child).

numba is imported on first use; :func:`available` says whether it is
installed, and callers fall back to the blocked numpy/torch kernel when not.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

__all__ = ["available", "row_pass", "warm_up"]

_KERNELS: dict[str, Any] = {}
#: Matrices with fewer entries are swept by one thread (about 1 MB of float32).
_PARALLEL_MIN_ENTRIES = 1 << 18
_LAUNCH_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"pid": None, "layer": None, "quad": True}  # who launched parallel kernels, on which layer;
# "quad": whether the four-row float kernels run where they apply (False: the two-row ones, for comparison)
_THREADSAFE_LAYERS = ("tbb", "omp")


def available() -> bool:
    """Whether the fused kernels can run (numba importable and not disabled).

    Set ``VCOMPUTE_NO_NUMBA=1`` to force the fallback kernel.

    Returns:
        True if numba is installed and the kernels are enabled.
    """
    if os.environ.get("VCOMPUTE_NO_NUMBA"):
        return False
    try:
        import numba  # noqa: F401
    except Exception:
        return False
    return True


#: Rounds per sweep of the four-row float kernels (``_fused_codegen.QUAD``); other round counts use the two-row ones.
_QUAD = 5


def _kernels() -> dict[str, Any]:
    if not _KERNELS:
        from vcompute.verify.freivalds import _fused_kernels as K

        _KERNELS.update({"float": K.row_pass_f, "lut": K.row_pass_lut, "float_serial": K.row_pass_f_serial,
                         "lut_serial": K.row_pass_lut_serial, "float4": K.row_pass_f4,
                         "float4_serial": K.row_pass_f4_serial,
                         "f16_table": np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
                         .astype(np.float32)})
    return _KERNELS


def row_pass(X: np.ndarray, G: np.ndarray, w: np.ndarray | None = None, *, sq: bool = False,
             absw: bool = False, t: bool = False,
             bits: str | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """One pass over the rows of ``X``: ``X G^T`` and per-row sums, in float64.

    Batched operands are supported: ``X`` of shape ``(..., m, n)`` with ``G`` of
    shape ``(k, n)`` (shared) or ``(..., k, n)`` (one per batch), and ``w`` of
    shape ``(n,)`` or ``(..., n)``.

    Args:
        X: ``(..., m, n)`` float32 or float64 array, or uint16 raw bits of a 16-bit float (``bits``).
        G: ``([...,] k, n)`` float64 array (``(B R)^T``), or float32/float64 signs ``R^T``
            (products with +-1 are exact in float32, and half the bytes).
        w: ``([...,] n)`` float64 weights for ``absw``/``t``.
        sq: return ``sum_j X_ij^2`` (the B and C passes).
        absw: return ``sum_j |X_ij| w_j`` instead (the A pass).
        t: with ``absw``, also return ``sum_j X_ij^2 w_j^2`` (TF32 input rounding).
        bits: ``"bfloat16"`` or ``"float16"`` when ``X`` holds raw uint16 bits.

    Returns:
        ``(Y, SQ, SA, ST)`` with ``Y`` of shape ``(..., m, k)`` and the requested
        sums of shape ``(..., m)`` (None where not requested).

    Raises:
        ValueError: for unsupported dtypes, shapes or flag combinations.
    """
    if X.ndim < 2 or G.ndim < 2 or G.shape[-1] != X.shape[-1] or G.shape[-2] < 1:
        raise ValueError(f"row_pass needs X (..., m, n) and G (..., k >= 1, n); got {X.shape} and {G.shape}")
    if G.dtype not in (np.float32, np.float64):
        raise ValueError(f"G must be float32 or float64, not {G.dtype}")
    if bits is not None:
        if bits not in ("bfloat16", "float16") or X.dtype != np.uint16:
            raise ValueError(f"bits={bits!r} needs X as uint16 bits of bfloat16 or float16")
    elif X.dtype not in (np.float32, np.float64):
        raise ValueError(f"row_pass supports float32, float64 and 16-bit floats as bits, not {X.dtype}")
    if sq == absw or (t and not absw):
        raise ValueError("row_pass computes either sq, or absw (optionally with t)")
    if absw and w is None:
        raise ValueError("absw needs weights w")
    kernels = _kernels()
    batch = X.shape[:-2]
    m, n = X.shape[-2:]
    nbat = int(np.prod(batch, dtype=np.int64))
    k = G.shape[-2]
    X3 = np.ascontiguousarray(X.reshape((nbat, m, n)))
    G3 = np.ascontiguousarray(G.reshape((-1, k, n)))
    if G3.shape[0] not in (1, nbat) or (G.ndim > 2 and G.shape[:-2] != batch):
        raise ValueError(f"G batch dims {G.shape[:-2]} do not match X's {batch}")
    if absw:
        w2 = np.ascontiguousarray(np.asarray(w, dtype=np.float64).reshape((-1, n)))
        if w2.shape[0] not in (1, nbat):
            raise ValueError(f"w has shape {np.shape(w)}, X {X.shape}")
    else:
        w2 = np.zeros((1, 1))
    mode = 0 if sq else (2 if t else 1)
    Y = np.empty((nbat, m + 1, k))  # row m: scratch for the pair kernels' odd last row
    Q = np.empty((nbat, m + 1))
    T = np.empty((nbat, m + 1 if t else 0))
    args = (X3, G3, w2, mode, Y, Q, T) if bits is None else (
        X3, kernels["f16_table"], bits == "bfloat16", G3, w2, mode, Y, Q, T)
    name = "float" if bits is None else "lut"
    if bits is None and k % _QUAD == 0 and m >= 4 and _STATE["quad"]:
        name = "float4"  # four rows per sweep, QUAD rounds each: fewer loads and widenings per multiply-add
    if X3.size < _PARALLEL_MIN_ENTRIES or _forked_after_parallel():
        kernels[name + "_serial"](*args)  # a thread launch costs more than it saves
    else:
        _launch_parallel(kernels[name], args)
    Y = Y[:, :m].reshape(batch + (m, k))
    Q = Q[:, :m].reshape(batch + (m,))
    return Y, (Q if sq else None), (Q if absw else None), (T[:, :m].reshape(batch + (m,)) if t else None)


def _forked_after_parallel() -> bool:
    """Whether this process is a fork of one that launched the parallel kernels."""
    pid = _STATE["pid"]
    return pid is not None and pid != os.getpid()


def _launch_parallel(kernel: Any, args: tuple) -> None:
    """Run a parallel kernel, holding a lock unless numba's threading layer is known to be thread-safe."""
    import numba

    layer = _STATE["layer"]
    if layer in _THREADSAFE_LAYERS:
        kernel(*args)
        return
    with _LAUNCH_LOCK:  # the first launch chooses the layer; workqueue aborts on concurrent launches
        _STATE["pid"] = os.getpid()
        kernel(*args)
        try:
            _STATE["layer"] = numba.threading_layer()
        except ValueError:  # pragma: no cover - no layer initialised (cannot happen after a launch)
            pass


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) the kernels the common checks use.

    The first float check in a fresh environment otherwise pays numba's compile
    time (a few seconds per dtype combination); ``make setup`` calls this once.
    Covers float32 and float64 operands and 16-bit bits, serial and parallel.

    Returns:
        Seconds spent (0.0 when numba is not available).

    Example:
        >>> warm_up() >= 0.0
        True
    """
    import time

    if not available():
        return 0.0
    t0 = time.perf_counter()
    side = 1 << 9  # 2^18 entries: the smallest matrix the parallel kernels take
    for dtype in (np.float32, np.float64):
        for rows in (2, side):
            X = np.zeros((rows, side), dtype)
            row_pass(X, np.ones((2, side), np.float32), sq=True)
            row_pass(X, np.ones((2, side)), np.ones(side), absw=True)
    for rows in (2, side):
        bits = np.zeros((rows, side), np.uint16)
        row_pass(bits, np.ones((2, side), np.float32), sq=True, bits="bfloat16")
        row_pass(bits, np.ones((2, side)), np.ones(side), absw=True, bits="bfloat16")
    return time.perf_counter() - t0


if __name__ == "__main__":  # python -m vcompute.verify.freivalds.fused: warm the kernel cache
    print(f"fused Freivalds kernels ready ({warm_up():.1f} s)")

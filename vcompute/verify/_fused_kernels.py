"""numba kernels behind :mod:`vcompute.verify.freivalds_fused` (imported on first use: needs numba).

Module-level so that numba can cache the compiled code on disk (``cache=True``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["row_pass_f", "row_pass_lut", "row_pass_f_serial", "row_pass_lut_serial"]

_FLAGS = {"reassoc", "contract"}  # never nnan/ninf: NaN and Inf must reach the residual

jit = nb.njit(fastmath=_FLAGS, inline="always")

# Dot products of two (cached) rows x, y with up to 8 rows of G per sweep: each entry of x
# and G is loaded and widened once per sweep and reused from registers (the two rows share every load
# of G), and the independent sums keep the vector units busy. The first sweep also accumulates
# the row statistic (mode 0: sum x^2; otherwise sum |x| w). Generated code, kept explicit so that
# numba compiles and caches it like any other function.

@jit
def dot1p(x, y, g0):  # pragma: no cover - compiled
    a0 = 0.0
    b0 = 0.0
    for j in range(x.shape[0]):
        va = np.float64(x[j])
        vb = np.float64(y[j])
        h = np.float64(g0[j])
        a0 += va * h
        b0 += vb * h
    return a0, b0


@jit
def dot1p_stat(x, y, g0, w, mode):  # pragma: no cover - compiled
    a0 = 0.0
    aq = 0.0
    b0 = 0.0
    bq = 0.0
    if mode == 0:
        for j in range(x.shape[0]):
            va = np.float64(x[j])
            vb = np.float64(y[j])
            h = np.float64(g0[j])
            a0 += va * h
            b0 += vb * h
            aq += va * va
            bq += vb * vb
    else:
        for j in range(x.shape[0]):
            va = np.float64(x[j])
            vb = np.float64(y[j])
            h = np.float64(g0[j])
            a0 += va * h
            b0 += vb * h
            h = w[j]
            aq += abs(va) * h
            bq += abs(vb) * h
    return a0, aq, b0, bq


@jit
def dot2p(x, y, g0, g1):  # pragma: no cover - compiled
    a0 = 0.0
    a1 = 0.0
    b0 = 0.0
    b1 = 0.0
    for j in range(x.shape[0]):
        va = np.float64(x[j])
        vb = np.float64(y[j])
        h = np.float64(g0[j])
        a0 += va * h
        b0 += vb * h
        h = np.float64(g1[j])
        a1 += va * h
        b1 += vb * h
    return a0, a1, b0, b1


@jit
def dot2p_stat(x, y, g0, g1, w, mode):  # pragma: no cover - compiled
    a0 = 0.0
    a1 = 0.0
    aq = 0.0
    b0 = 0.0
    b1 = 0.0
    bq = 0.0
    if mode == 0:
        for j in range(x.shape[0]):
            va = np.float64(x[j])
            vb = np.float64(y[j])
            h = np.float64(g0[j])
            a0 += va * h
            b0 += vb * h
            h = np.float64(g1[j])
            a1 += va * h
            b1 += vb * h
            aq += va * va
            bq += vb * vb
    else:
        for j in range(x.shape[0]):
            va = np.float64(x[j])
            vb = np.float64(y[j])
            h = np.float64(g0[j])
            a0 += va * h
            b0 += vb * h
            h = np.float64(g1[j])
            a1 += va * h
            b1 += vb * h
            h = w[j]
            aq += abs(va) * h
            bq += abs(vb) * h
    return a0, a1, aq, b0, b1, bq


@jit
def dot4p(x, y, g0, g1, g2, g3):  # pragma: no cover - compiled
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    b0 = 0.0
    b1 = 0.0
    b2 = 0.0
    b3 = 0.0
    for j in range(x.shape[0]):
        va = np.float64(x[j])
        vb = np.float64(y[j])
        h = np.float64(g0[j])
        a0 += va * h
        b0 += vb * h
        h = np.float64(g1[j])
        a1 += va * h
        b1 += vb * h
        h = np.float64(g2[j])
        a2 += va * h
        b2 += vb * h
        h = np.float64(g3[j])
        a3 += va * h
        b3 += vb * h
    return a0, a1, a2, a3, b0, b1, b2, b3


@jit
def dot4p_stat(x, y, g0, g1, g2, g3, w, mode):  # pragma: no cover - compiled
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    aq = 0.0
    b0 = 0.0
    b1 = 0.0
    b2 = 0.0
    b3 = 0.0
    bq = 0.0
    if mode == 0:
        for j in range(x.shape[0]):
            va = np.float64(x[j])
            vb = np.float64(y[j])
            h = np.float64(g0[j])
            a0 += va * h
            b0 += vb * h
            h = np.float64(g1[j])
            a1 += va * h
            b1 += vb * h
            h = np.float64(g2[j])
            a2 += va * h
            b2 += vb * h
            h = np.float64(g3[j])
            a3 += va * h
            b3 += vb * h
            aq += va * va
            bq += vb * vb
    else:
        for j in range(x.shape[0]):
            va = np.float64(x[j])
            vb = np.float64(y[j])
            h = np.float64(g0[j])
            a0 += va * h
            b0 += vb * h
            h = np.float64(g1[j])
            a1 += va * h
            b1 += vb * h
            h = np.float64(g2[j])
            a2 += va * h
            b2 += vb * h
            h = np.float64(g3[j])
            a3 += va * h
            b3 += vb * h
            h = w[j]
            aq += abs(va) * h
            bq += abs(vb) * h
    return a0, a1, a2, a3, aq, b0, b1, b2, b3, bq


@jit
def dot8p(x, y, g0, g1, g2, g3, g4, g5, g6, g7):  # pragma: no cover - compiled
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    a4 = 0.0
    a5 = 0.0
    a6 = 0.0
    a7 = 0.0
    b0 = 0.0
    b1 = 0.0
    b2 = 0.0
    b3 = 0.0
    b4 = 0.0
    b5 = 0.0
    b6 = 0.0
    b7 = 0.0
    for j in range(x.shape[0]):
        va = np.float64(x[j])
        vb = np.float64(y[j])
        h = np.float64(g0[j])
        a0 += va * h
        b0 += vb * h
        h = np.float64(g1[j])
        a1 += va * h
        b1 += vb * h
        h = np.float64(g2[j])
        a2 += va * h
        b2 += vb * h
        h = np.float64(g3[j])
        a3 += va * h
        b3 += vb * h
        h = np.float64(g4[j])
        a4 += va * h
        b4 += vb * h
        h = np.float64(g5[j])
        a5 += va * h
        b5 += vb * h
        h = np.float64(g6[j])
        a6 += va * h
        b6 += vb * h
        h = np.float64(g7[j])
        a7 += va * h
        b7 += vb * h
    return a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7


@jit
def dot8p_stat(x, y, g0, g1, g2, g3, g4, g5, g6, g7, w, mode):  # pragma: no cover - compiled
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    a4 = 0.0
    a5 = 0.0
    a6 = 0.0
    a7 = 0.0
    aq = 0.0
    b0 = 0.0
    b1 = 0.0
    b2 = 0.0
    b3 = 0.0
    b4 = 0.0
    b5 = 0.0
    b6 = 0.0
    b7 = 0.0
    bq = 0.0
    if mode == 0:
        for j in range(x.shape[0]):
            va = np.float64(x[j])
            vb = np.float64(y[j])
            h = np.float64(g0[j])
            a0 += va * h
            b0 += vb * h
            h = np.float64(g1[j])
            a1 += va * h
            b1 += vb * h
            h = np.float64(g2[j])
            a2 += va * h
            b2 += vb * h
            h = np.float64(g3[j])
            a3 += va * h
            b3 += vb * h
            h = np.float64(g4[j])
            a4 += va * h
            b4 += vb * h
            h = np.float64(g5[j])
            a5 += va * h
            b5 += vb * h
            h = np.float64(g6[j])
            a6 += va * h
            b6 += vb * h
            h = np.float64(g7[j])
            a7 += va * h
            b7 += vb * h
            aq += va * va
            bq += vb * vb
    else:
        for j in range(x.shape[0]):
            va = np.float64(x[j])
            vb = np.float64(y[j])
            h = np.float64(g0[j])
            a0 += va * h
            b0 += vb * h
            h = np.float64(g1[j])
            a1 += va * h
            b1 += vb * h
            h = np.float64(g2[j])
            a2 += va * h
            b2 += vb * h
            h = np.float64(g3[j])
            a3 += va * h
            b3 += vb * h
            h = np.float64(g4[j])
            a4 += va * h
            b4 += vb * h
            h = np.float64(g5[j])
            a5 += va * h
            b5 += vb * h
            h = np.float64(g6[j])
            a6 += va * h
            b6 += vb * h
            h = np.float64(g7[j])
            a7 += va * h
            b7 += vb * h
            h = w[j]
            aq += abs(va) * h
            bq += abs(vb) * h
    return a0, a1, a2, a3, a4, a5, a6, a7, aq, b0, b1, b2, b3, b4, b5, b6, b7, bq


@nb.njit(fastmath=_FLAGS, cache=True)
def rows2(x, y, G, w, mode, Y, Q, T, i):  # pragma: no cover - compiled
    k = G.shape[0]
    if k >= 8:
        r = dot8p_stat(x, y, G[0], G[1], G[2], G[3], G[4], G[5], G[6], G[7], w, mode)
        Y[i, 0] = r[0]
        Y[i, 1] = r[1]
        Y[i, 2] = r[2]
        Y[i, 3] = r[3]
        Y[i, 4] = r[4]
        Y[i, 5] = r[5]
        Y[i, 6] = r[6]
        Y[i, 7] = r[7]
        Q[i] = r[8]
        Y[i + 1, 0] = r[9]
        Y[i + 1, 1] = r[10]
        Y[i + 1, 2] = r[11]
        Y[i + 1, 3] = r[12]
        Y[i + 1, 4] = r[13]
        Y[i + 1, 5] = r[14]
        Y[i + 1, 6] = r[15]
        Y[i + 1, 7] = r[16]
        Q[i + 1] = r[17]
        t = 8
    elif k >= 4:
        r = dot4p_stat(x, y, G[0], G[1], G[2], G[3], w, mode)
        Y[i, 0] = r[0]
        Y[i, 1] = r[1]
        Y[i, 2] = r[2]
        Y[i, 3] = r[3]
        Q[i] = r[4]
        Y[i + 1, 0] = r[5]
        Y[i + 1, 1] = r[6]
        Y[i + 1, 2] = r[7]
        Y[i + 1, 3] = r[8]
        Q[i + 1] = r[9]
        t = 4
    elif k >= 2:
        r = dot2p_stat(x, y, G[0], G[1], w, mode)
        Y[i, 0] = r[0]
        Y[i, 1] = r[1]
        Q[i] = r[2]
        Y[i + 1, 0] = r[3]
        Y[i + 1, 1] = r[4]
        Q[i + 1] = r[5]
        t = 2
    else:
        r = dot1p_stat(x, y, G[0], w, mode)
        Y[i, 0] = r[0]
        Q[i] = r[1]
        Y[i + 1, 0] = r[2]
        Q[i + 1] = r[3]
        t = 1
    while t + 8 <= k:
        r = dot8p(x, y, G[t], G[t + 1], G[t + 2], G[t + 3], G[t + 4], G[t + 5], G[t + 6], G[t + 7])
        Y[i, t] = r[0]
        Y[i, t + 1] = r[1]
        Y[i, t + 2] = r[2]
        Y[i, t + 3] = r[3]
        Y[i, t + 4] = r[4]
        Y[i, t + 5] = r[5]
        Y[i, t + 6] = r[6]
        Y[i, t + 7] = r[7]
        Y[i + 1, t] = r[8]
        Y[i + 1, t + 1] = r[9]
        Y[i + 1, t + 2] = r[10]
        Y[i + 1, t + 3] = r[11]
        Y[i + 1, t + 4] = r[12]
        Y[i + 1, t + 5] = r[13]
        Y[i + 1, t + 6] = r[14]
        Y[i + 1, t + 7] = r[15]
        t += 8
    if t + 4 <= k:
        r = dot4p(x, y, G[t], G[t + 1], G[t + 2], G[t + 3])
        Y[i, t] = r[0]
        Y[i, t + 1] = r[1]
        Y[i, t + 2] = r[2]
        Y[i, t + 3] = r[3]
        Y[i + 1, t] = r[4]
        Y[i + 1, t + 1] = r[5]
        Y[i + 1, t + 2] = r[6]
        Y[i + 1, t + 3] = r[7]
        t += 4
    if t + 2 <= k:
        r = dot2p(x, y, G[t], G[t + 1])
        Y[i, t] = r[0]
        Y[i, t + 1] = r[1]
        Y[i + 1, t] = r[2]
        Y[i + 1, t + 1] = r[3]
        t += 2
    if t < k:
        r = dot1p(x, y, G[t])
        Y[i, t] = r[0]
        Y[i + 1, t] = r[1]
    if mode == 2:  # TF32 input rounding: sum x^2 w^2
        st = 0.0
        for j in range(x.shape[0]):
            v = np.float64(x[j]) * w[j]
            st += v * v
        T[i] = st
        st = 0.0
        for j in range(y.shape[0]):
            v = np.float64(y[j]) * w[j]
            st += v * v
        T[i + 1] = st


# The drivers take batched operands: X (nb, m, n); G (1 or nb, k, n); w (1 or nb, n);
# outputs Y (nb, m + 1, k), Q and T (nb, m + 1): row m is scratch for an odd row count. Pairs of
# rows of all batches are split over threads (block must stay even).

@nb.njit(parallel=True, fastmath=_FLAGS, cache=True)
def row_pass_f(X, G, w, mode, Y, Q, T):  # pragma: no cover - compiled
    nbat, m, _ = X.shape
    gs = 1 if G.shape[0] > 1 else 0
    ws = 1 if w.shape[0] > 1 else 0
    half = (m + 1) // 2
    for r in nb.prange(nbat * half):
        b = r // half
        i = 2 * (r - b * half)
        j = min(i + 1, m - 1)  # an odd last row is paired with itself; the copy lands in row m
        rows2(X[b, i], X[b, j], G[b * gs], w[b * ws], mode, Y[b], Q[b], T[b], i)


@jit
def _widen16(src, bits, x, lut, shift):  # pragma: no cover - compiled
    if shift:  # bfloat16 is the top half of a float32
        for j in range(src.shape[0]):
            bits[j] = np.uint32(src[j]) << np.uint32(16)
    else:  # float16 through a 65536-entry table (numba has no float16)
        for j in range(src.shape[0]):
            x[j] = lut[src[j]]


@nb.njit(parallel=True, fastmath=_FLAGS, cache=True)
def row_pass_lut(X, lut, shift, G, w, mode, Y, Q, T):  # pragma: no cover - compiled
    # 16-bit floats as raw bits, widened to float32 one pair of rows at a time into two buffers.
    nbat, m, n = X.shape
    gs = 1 if G.shape[0] > 1 else 0
    ws = 1 if w.shape[0] > 1 else 0
    block = 64
    nblk = (m + block - 1) // block
    for rb in nb.prange(nbat * nblk):
        b = rb // nblk
        ib = rb - b * nblk
        bits = np.empty(n, np.uint32)
        x = bits.view(np.float32)
        bits2 = np.empty(n, np.uint32)
        y = bits2.view(np.float32)
        stop = min(m, (ib + 1) * block)
        for i in range(ib * block, stop, 2):
            _widen16(X[b, i], bits, x, lut, shift)
            _widen16(X[b, min(i + 1, m - 1)], bits2, y, lut, shift)
            rows2(x, y, G[b * gs], w[b * ws], mode, Y[b], Q[b], T[b], i)


# Serial twins of the two drivers (same loops, no prange): small matrices, and processes forked after the
# parent launched parallel kernels (GNU OpenMP aborts a parallel launch in such a child), never touch
# numba's threading layer.

@nb.njit(fastmath=_FLAGS, cache=True)
def row_pass_f_serial(X, G, w, mode, Y, Q, T):  # pragma: no cover - compiled
    nbat, m, _ = X.shape
    gs = 1 if G.shape[0] > 1 else 0
    ws = 1 if w.shape[0] > 1 else 0
    half = (m + 1) // 2
    for r in range(nbat * half):
        b = r // half
        i = 2 * (r - b * half)
        j = min(i + 1, m - 1)
        rows2(X[b, i], X[b, j], G[b * gs], w[b * ws], mode, Y[b], Q[b], T[b], i)


@nb.njit(fastmath=_FLAGS, cache=True)
def row_pass_lut_serial(X, lut, shift, G, w, mode, Y, Q, T):  # pragma: no cover - compiled
    nbat, m, n = X.shape
    gs = 1 if G.shape[0] > 1 else 0
    ws = 1 if w.shape[0] > 1 else 0
    bits = np.empty(n, np.uint32)
    x = bits.view(np.float32)
    bits2 = np.empty(n, np.uint32)
    y = bits2.view(np.float32)
    for b in range(nbat):
        for i in range(0, m, 2):
            _widen16(X[b, i], bits, x, lut, shift)
            _widen16(X[b, min(i + 1, m - 1)], bits2, y, lut, shift)
            rows2(x, y, G[b * gs], w[b * ws], mode, Y[b], Q[b], T[b], i)

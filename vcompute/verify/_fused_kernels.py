"""numba kernels behind :mod:`vcompute.verify.freivalds_fused` (imported on first use: needs numba).

Module-level so that numba can cache the compiled code on disk (``cache=True``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["row_pass_f", "row_pass_lut"]

_FLAGS = {"reassoc", "contract"}  # never nnan/ninf: NaN and Inf must reach the residual

jit = nb.njit(fastmath=_FLAGS, inline="always")

# Dot products of one (cached) row x with up to 8 rows of G per sweep: each entry is loaded and
# widened once per sweep and the independent sums keep the vector units busy. The first sweep of a
# row also accumulates its statistic (mode 0: sum x^2; otherwise sum |x| w).

@jit
def dot1(x, g0):  # pragma: no cover - compiled
    s0 = 0.0
    for j in range(x.shape[0]):
        v = np.float64(x[j])
        s0 += v * np.float64(g0[j])
    return s0


@jit
def dot1_stat(x, g0, w, mode):  # pragma: no cover - compiled
    s0 = 0.0
    q = 0.0
    if mode == 0:
        for j in range(x.shape[0]):
            v = np.float64(x[j])
            s0 += v * np.float64(g0[j])
            q += v * v
    else:
        for j in range(x.shape[0]):
            v = np.float64(x[j])
            s0 += v * np.float64(g0[j])
            q += abs(v) * w[j]
    return s0, q


@jit
def dot2(x, g0, g1):  # pragma: no cover - compiled
    s0 = 0.0
    s1 = 0.0
    for j in range(x.shape[0]):
        v = np.float64(x[j])
        s0 += v * np.float64(g0[j])
        s1 += v * np.float64(g1[j])
    return s0, s1


@jit
def dot2_stat(x, g0, g1, w, mode):  # pragma: no cover - compiled
    s0 = 0.0
    s1 = 0.0
    q = 0.0
    if mode == 0:
        for j in range(x.shape[0]):
            v = np.float64(x[j])
            s0 += v * np.float64(g0[j])
            s1 += v * np.float64(g1[j])
            q += v * v
    else:
        for j in range(x.shape[0]):
            v = np.float64(x[j])
            s0 += v * np.float64(g0[j])
            s1 += v * np.float64(g1[j])
            q += abs(v) * w[j]
    return s0, s1, q


@jit
def dot4(x, g0, g1, g2, g3):  # pragma: no cover - compiled
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for j in range(x.shape[0]):
        v = np.float64(x[j])
        s0 += v * np.float64(g0[j])
        s1 += v * np.float64(g1[j])
        s2 += v * np.float64(g2[j])
        s3 += v * np.float64(g3[j])
    return s0, s1, s2, s3


@jit
def dot4_stat(x, g0, g1, g2, g3, w, mode):  # pragma: no cover - compiled
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    q = 0.0
    if mode == 0:
        for j in range(x.shape[0]):
            v = np.float64(x[j])
            s0 += v * np.float64(g0[j])
            s1 += v * np.float64(g1[j])
            s2 += v * np.float64(g2[j])
            s3 += v * np.float64(g3[j])
            q += v * v
    else:
        for j in range(x.shape[0]):
            v = np.float64(x[j])
            s0 += v * np.float64(g0[j])
            s1 += v * np.float64(g1[j])
            s2 += v * np.float64(g2[j])
            s3 += v * np.float64(g3[j])
            q += abs(v) * w[j]
    return s0, s1, s2, s3, q


@jit
def dot8(x, g0, g1, g2, g3, g4, g5, g6, g7):  # pragma: no cover - compiled
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    s5 = 0.0
    s6 = 0.0
    s7 = 0.0
    for j in range(x.shape[0]):
        v = np.float64(x[j])
        s0 += v * np.float64(g0[j])
        s1 += v * np.float64(g1[j])
        s2 += v * np.float64(g2[j])
        s3 += v * np.float64(g3[j])
        s4 += v * np.float64(g4[j])
        s5 += v * np.float64(g5[j])
        s6 += v * np.float64(g6[j])
        s7 += v * np.float64(g7[j])
    return s0, s1, s2, s3, s4, s5, s6, s7


@jit
def dot8_stat(x, g0, g1, g2, g3, g4, g5, g6, g7, w, mode):  # pragma: no cover - compiled
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    s5 = 0.0
    s6 = 0.0
    s7 = 0.0
    q = 0.0
    if mode == 0:
        for j in range(x.shape[0]):
            v = np.float64(x[j])
            s0 += v * np.float64(g0[j])
            s1 += v * np.float64(g1[j])
            s2 += v * np.float64(g2[j])
            s3 += v * np.float64(g3[j])
            s4 += v * np.float64(g4[j])
            s5 += v * np.float64(g5[j])
            s6 += v * np.float64(g6[j])
            s7 += v * np.float64(g7[j])
            q += v * v
    else:
        for j in range(x.shape[0]):
            v = np.float64(x[j])
            s0 += v * np.float64(g0[j])
            s1 += v * np.float64(g1[j])
            s2 += v * np.float64(g2[j])
            s3 += v * np.float64(g3[j])
            s4 += v * np.float64(g4[j])
            s5 += v * np.float64(g5[j])
            s6 += v * np.float64(g6[j])
            s7 += v * np.float64(g7[j])
            q += abs(v) * w[j]
    return s0, s1, s2, s3, s4, s5, s6, s7, q


@jit
def row(x, G, w, mode, Y, Q, T, i):  # pragma: no cover - compiled
    k = G.shape[0]
    if k >= 8:
        s0, s1, s2, s3, s4, s5, s6, s7, q = dot8_stat(x, G[0], G[1], G[2], G[3], G[4], G[5], G[6], G[7], w, mode)
        Y[i, 0], Y[i, 1], Y[i, 2], Y[i, 3], Y[i, 4], Y[i, 5], Y[i, 6], Y[i, 7] = s0, s1, s2, s3, s4, s5, s6, s7
        t = 8
    elif k >= 4:
        s0, s1, s2, s3, q = dot4_stat(x, G[0], G[1], G[2], G[3], w, mode)
        Y[i, 0], Y[i, 1], Y[i, 2], Y[i, 3] = s0, s1, s2, s3
        t = 4
    elif k >= 2:
        s0, s1, q = dot2_stat(x, G[0], G[1], w, mode)
        Y[i, 0], Y[i, 1] = s0, s1
        t = 2
    else:
        s0, q = dot1_stat(x, G[0], w, mode)
        Y[i, 0] = s0
        t = 1
    Q[i] = q
    while t + 8 <= k:
        s0, s1, s2, s3, s4, s5, s6, s7 = dot8(x, G[t], G[t + 1], G[t + 2], G[t + 3], G[t + 4], G[t + 5], G[t + 6],
                                              G[t + 7])
        Y[i, t], Y[i, t + 1], Y[i, t + 2], Y[i, t + 3] = s0, s1, s2, s3
        Y[i, t + 4], Y[i, t + 5], Y[i, t + 6], Y[i, t + 7] = s4, s5, s6, s7
        t += 8
    if t + 4 <= k:
        s0, s1, s2, s3 = dot4(x, G[t], G[t + 1], G[t + 2], G[t + 3])
        Y[i, t], Y[i, t + 1], Y[i, t + 2], Y[i, t + 3] = s0, s1, s2, s3
        t += 4
    if t + 2 <= k:
        s0, s1 = dot2(x, G[t], G[t + 1])
        Y[i, t], Y[i, t + 1] = s0, s1
        t += 2
    if t < k:
        Y[i, t] = dot1(x, G[t])
    if mode == 2:  # TF32 input rounding: sum x^2 w^2
        st = 0.0
        for j in range(x.shape[0]):
            v = np.float64(x[j]) * w[j]
            st += v * v
        T[i] = st


# The drivers take batched operands: X (nb, m, n); G (1 or nb, k, n); w (1 or nb, n);
# outputs Y (nb, m, k), Q and T (nb, m). Rows of all batches are split over threads.

@nb.njit(parallel=True, fastmath=_FLAGS, cache=True)
def row_pass_f(X, G, w, mode, Y, Q, T):  # pragma: no cover - compiled
    nbat, m, _ = X.shape
    gs = 1 if G.shape[0] > 1 else 0
    ws = 1 if w.shape[0] > 1 else 0
    for r in nb.prange(nbat * m):
        b = r // m
        i = r - b * m
        row(X[b, i], G[b * gs], w[b * ws], mode, Y[b], Q[b], T[b], i)


@nb.njit(parallel=True, fastmath=_FLAGS, cache=True)
def row_pass_lut(X, lut, shift, G, w, mode, Y, Q, T):  # pragma: no cover - compiled
    # 16-bit floats as raw bits: bfloat16 is the top half of a float32 (shift), float16 is decoded
    # by a 65536-entry float32 table (numba has no float16); each row is widened once into a buffer.
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
        for i in range(ib * block, min(m, (ib + 1) * block)):
            src = X[b, i]
            if shift:
                for j in range(n):
                    bits[j] = np.uint32(src[j]) << np.uint32(16)
            else:
                for j in range(n):
                    x[j] = lut[src[j]]
            row(x, G[b * gs], w[b * ws], mode, Y[b], Q[b], T[b], i)

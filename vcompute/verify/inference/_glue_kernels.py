"""numba kernels behind the sampled-glue check (:mod:`.glue`), imported on first use (needs numba).

Module-level so that numba caches the compiled code on disk (``cache=True``). Each kernel
reads the provider's float32 trace in place and widens every entry to float64 in registers:
no float64 copy of a key/value matrix or a residual stream is ever made.

- :func:`attention_scores`, :func:`attention_values`: the two products of causal attention of the
  sampled query rows in float64, reading keys and values ``0..t`` (and only those) of row ``t``
  straight from the claimed ``qkv`` (the softmax between them is numpy's, vectorised).
- :func:`sum_mismatches`: how many entries of a claimed float32 sum differ from the exact
  float32 sum of its operands (one pass over three arrays, no temporaries).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["attention_scores", "attention_values", "sum_mismatches"]

# reassociation only: NaN and Inf must propagate to the comparison, which rejects them
_FLAGS = {"reassoc", "contract"}


@nb.njit(fastmath=_FLAGS, cache=True)
def attention_scores(qkv, rows, n_heads, sc):  # pragma: no cover - compiled
    """``sc[a, h, j] = q_t . k_j / sqrt(hd)`` for ``t = rows[a]`` and keys ``j <= t``, in float64.

    ``qkv`` is the claimed ``[T, 3d]`` float32 block of q, k, v rows; ``sc`` a ``[len(rows), heads, top]``
    float64 array whose entries past each row's last key are left as they are (the caller's ``-inf``).
    """
    s = rows.shape[0]
    d = qkv.shape[1] // 3
    hd = d // n_heads
    scale = 1.0 / math.sqrt(hd)
    q = np.empty(d)
    for a in range(s):
        t = rows[a]
        for e in range(d):
            q[e] = np.float64(qkv[t, e]) * scale
        for j in range(t + 1):
            for h in range(n_heads):
                o = h * hd
                acc = 0.0
                for e in range(hd):
                    acc += q[o + e] * np.float64(qkv[j, d + o + e])
                sc[a, h, j] = acc


@nb.njit(fastmath=_FLAGS, cache=True)
def attention_values(qkv, rows, n_heads, p, out):  # pragma: no cover - compiled
    """``out[a] = sum_{j <= t} p[a, h, j] v_j`` per head (heads concatenated), ``t = rows[a]``, in float64."""
    s = rows.shape[0]
    d = qkv.shape[1] // 3
    hd = d // n_heads
    acc = np.empty(d)
    for a in range(s):
        t = rows[a]
        acc[:] = 0.0
        for j in range(t + 1):
            for h in range(n_heads):
                w = p[a, h, j]
                o = h * hd
                for e in range(hd):
                    acc[o + e] += w * np.float64(qkv[j, 2 * d + o + e])
        for e in range(d):
            out[a, e] = acc[e]


@nb.njit(cache=True)
def sum_mismatches(c, a, b):  # pragma: no cover - compiled
    """How many entries of ``c`` differ from the float32 sum ``a + b`` (2-D float32, same shape; NaN counts)."""
    bad = 0
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            bad += not (c[i, j] == a[i, j] + b[i, j])
    return bad



@nb.njit(fastmath=_FLAGS, cache=True)
def layer_norm_rows(x, w, b, eps, out):  # pragma: no cover - compiled
    """``out[i] = (x[i] - mean) / sqrt(var + eps) * w + b`` per row, in float64 from float32 ``x``."""
    m, n = x.shape
    for i in range(m):
        mu = 0.0
        for j in range(n):
            mu += np.float64(x[i, j])
        mu /= n
        var = 0.0
        for j in range(n):
            c = np.float64(x[i, j]) - mu
            var += c * c
        inv = 1.0 / math.sqrt(var / n + eps)
        for j in range(n):
            out[i, j] = (np.float64(x[i, j]) - mu) * inv * w[j] + b[j]


@nb.njit(fastmath=_FLAGS, cache=True)
def row_errors(claimed, ref, rtol, worst):  # pragma: no cover - compiled
    """``worst[i] = max_j |claimed - ref| / (rtol (|ref| + rms(ref_i)) + 1e-30)``; NaN anywhere in a row gives NaN."""
    m, n = ref.shape
    for i in range(m):
        s = 0.0
        for j in range(n):
            s += ref[i, j] * ref[i, j]
        scale = math.sqrt(s / n)
        wmax = 0.0
        nan = False
        for j in range(n):
            r = abs(np.float64(claimed[i, j]) - ref[i, j]) / (rtol * (abs(ref[i, j]) + scale) + 1e-30)
            if r > wmax:
                wmax = r
            elif not r <= wmax:  # NaN
                nan = True
        worst[i] = np.nan if nan else wmax

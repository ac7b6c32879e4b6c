"""Exact Freivalds check of an integer (quantised) matrix product.

Paper: F. Tramer and D. Boneh, "Slalom: Fast, verifiable and private
execution of neural networks in trusted hardware", ICLR 2019 (Freivalds over
``F_p`` for quantised layers).

For integer inputs (int8/int16/... with int32/int64 accumulation) the honest
product is exact, so there is no tolerance and no false reject. The check:

1. Range: ``|c_ij| <= M_i = sum_l |a_il| max_j |b_lj| (+ |bias_j|)``, the
   largest value an honest entry can take (O(mK + Kn + mn)).
2. Congruence: for each prime ``p`` of a small set whose product exceeds
   ``2 max_i M_i``, ``A (B r) = C r (mod p)`` for ``rounds`` vectors ``r``
   uniform in ``F_p^n``. If all congruences hold then ``C = AB (mod prod p)``
   and, as ``|C - AB| <= 2M``, ``C = AB``. A wrong ``C`` passes one round for
   one prime with probability at most ``1/p`` (Schwartz-Zippel), so at most
   ``p_min^-rounds`` overall.

If the exact product can overflow the claimed output dtype, the honest
provider's result is the product modulo ``2^w`` (two's-complement wrap); the
check is then done in the ring ``Z / 2^w`` with ``r`` uniform there, which
catches an error ``2^v * odd`` with probability ``1 - 2^(v - w)`` per round
(at least 1/2). See ``proofs/freivalds.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["INT_INPUT_DTYPES", "INT_OUTPUT_DTYPES", "PRIMES", "exact_check"]

#: Integer dtypes accepted for A and B.
INT_INPUT_DTYPES = ("int8", "uint8", "int16", "int32")
#: Integer dtypes accepted for the claimed product (the accumulator).
INT_OUTPUT_DTYPES = ("int32", "int64")
#: The three largest primes below 2**26: products of residues (< 2**52)
#: summed over chunks of 2048 stay below 2**63.
PRIMES = (67108859, 67108837, 67108819)
_CHUNK = 2048


def _matmul_mod(x: np.ndarray, y: np.ndarray, p: int) -> np.ndarray:
    """``x @ y mod p`` for residues in ``[0, p)``, overflow-free in int64."""
    K = x.shape[-1]
    acc = None
    for s in range(0, K, _CHUNK):
        part = np.matmul(x[..., s:s + _CHUNK], y[..., s:s + _CHUNK, :]) % p
        acc = part if acc is None else (acc + part) % p
    return acc


def exact_check(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, rng: np.random.Generator, rounds: int,
                bias: np.ndarray | None = None) -> tuple[bool, str, dict[str, Any]]:
    """Exact check of ``c == a @ b (+ bias)`` for integer arrays on the host.

    Args:
        a: ``(..., m, K)`` integer array.
        b: ``(..., K, n)`` integer array.
        c: ``(..., m, n)`` claimed product, int32 or int64.
        rng: randomness drawn after ``c`` is fixed.
        rounds: random vectors per modulus.
        bias: optional ``(n,)`` integer bias added to every row.

    Returns:
        ``(accepted, reason, details)``.
    """
    w = 8 * c.dtype.itemsize
    A, B, C = (np.asarray(x, dtype=np.int64) for x in (a, b, c))
    bias64 = None if bias is None else np.asarray(bias, dtype=np.int64)
    # Largest honest |c_ij| per row, in Python ints via float64 (exact below 2**53; else conservative).
    rowmax_b = np.max(np.abs(B), axis=-1).astype(np.float64)
    M = np.abs(A).astype(np.float64) @ rowmax_b[..., None]
    M = M[..., 0] + (0.0 if bias64 is None else float(np.max(np.abs(bias64))))
    bound = float(np.max(M))
    details: dict[str, Any] = {"rounds": rounds, "max_honest_abs": bound}
    if bound < 2.0 ** (w - 1):
        over = np.abs(C).astype(np.float64) > M[..., None]
        if np.any(over):
            idx = np.argwhere(over)[0]
            return False, (f"entry {tuple(int(i) for i in idx)} is larger in magnitude than any honest "
                           f"product entry can be (bound {M[tuple(idx[:-1])]:.0f})"), details
        need = 2.0 * bound + 1.0
        primes, prod = [], 1.0
        for p in PRIMES:
            primes.append(p)
            prod *= p
            if prod > need:
                break
        details.update(mode="field", primes=primes, false_accept_bound=float(min(primes)) ** -rounds)
        for p in primes:
            ok, where = _congruent(A % p, B % p, C % p, None if bias64 is None else bias64 % p,
                                   rng.integers(0, p, size=B.shape[:-2] + (B.shape[-1], rounds)), p)
            if not ok:
                return False, f"row {where}: A(Br) != Cr modulo the prime {p}: the product is wrong", details
        return True, (f"exact: A(Br) = Cr modulo {len(primes)} prime(s) ~2^26 over {rounds} round(s); "
                      f"false-accept probability <= {details['false_accept_bound']:.2g}"), details
    # The honest product may wrap around the output dtype: check in Z / 2^w.
    details.update(mode="ring", modulus_bits=w, false_accept_bound=0.5**rounds)
    U = [x.astype(np.uint64) for x in (A, B, C)]
    ub = None if bias64 is None else bias64.astype(np.uint64)
    r = rng.integers(0, 2**63, size=B.shape[:-2] + (B.shape[-1], rounds), dtype=np.uint64) * np.uint64(2) \
        + rng.integers(0, 2, size=B.shape[:-2] + (B.shape[-1], rounds), dtype=np.uint64)
    mask = np.uint64(2**w - 1) if w < 64 else np.uint64(2**64 - 1)
    with np.errstate(over="ignore"):
        lhs = (U[0] @ (U[1] @ r)) & mask
        rhs = U[2] @ r
        if ub is not None:
            rhs = rhs - ub[None, :] @ r
        rhs = rhs & mask
    bad = np.any(lhs != rhs, axis=-1)
    if np.any(bad):
        return False, (f"row {tuple(int(i) for i in np.argwhere(bad)[0])}: A(Br) != Cr modulo 2^{w} "
                       "(the product may wrap; checked in the ring)"), details
    return True, f"exact modulo 2^{w} over {rounds} round(s) (the honest product may wrap around int{w})", details


def _congruent(A: np.ndarray, B: np.ndarray, C: np.ndarray, bias: np.ndarray | None, r: np.ndarray,
               p: int) -> tuple[bool, Any]:
    lhs = _matmul_mod(A, _matmul_mod(B, r, p), p)
    rhs = _matmul_mod(C, r, p)
    if bias is not None:
        rhs = (rhs - _matmul_mod(bias[None, :], r, p)) % p
    bad = np.any(lhs != rhs, axis=-1)
    if np.any(bad):
        return False, tuple(int(i) for i in np.argwhere(bad)[0])
    return True, None

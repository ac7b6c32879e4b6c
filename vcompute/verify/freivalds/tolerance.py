"""Rounding-error model of an honest matrix product, and the row tolerance it implies.

Model (after N. J. Higham and T. Mary, "A new approach to probabilistic
rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019): every
floating-point operation of the honest product rounds its exact result
``v`` to ``v (1 + delta)`` with ``|delta| <= u``, and the ``delta`` are
mean-independent (each has mean zero given the ones before it). The
summation order (BLAS blocking, pairwise, FMA or not) is arbitrary: any
binary summation tree.

Freivalds compares ``d = A (B R) - C R`` row by row. To first order the
honest ``d_i`` is a sum of independent bounded mean-zero terms, one per
rounding event, so it is sub-Gaussian with variance proxy

``V_i = u_acc^2 (T_i + sum_{s=2..K} min(H_i^2, s T_i)) + u_in^2 (1 + lambda_R^2) T_i + (u_out^2 + u_bias^2) ||C_i||_2^2``

where ``T_i = sum_l a_il^2 ||b_l||_2^2`` (the row's second moment: product
roundings, and the Cauchy-Schwarz bound ``|partial sum of s terms| <= sqrt(s)
||t||_2`` on the partial sums), ``H_i = min(S_i, (S_i + X_i) / 2)`` bounds
the partial sums by the larger of the positive and the negative part of each
dot product (``S_i = sum_l |a_il| ||b_l||_2``, ``X_i >= ||(A B)_i||_2``), and
the sum over node sizes ``s`` is the largest any summation tree can give (a
tree has at most ``K - s + 1`` partial sums of ``s`` or more terms). The
TF32 term covers the rounding of B's entries (``u_in^2 T_i``) and of A's,
whose events ``a_il (B R)_l`` are bounded through ``|(B R)_l| <= lambda_R
||b_l||_2``, ``lambda_R^2 = lambda^2 + 2 ln K`` (Hoeffding over the signs).
Azuma-Hoeffding gives ``|d_i| <= lambda sqrt(V_i)`` except with probability
``2 exp(-lambda^2 / 2)`` (plus ``2 exp(-lambda^2 / 2)`` per round for the
TF32 sign event, shared by all rows). ``proofs/freivalds.md`` has the derivation; this
module only evaluates it, in O(mK + Kn + mn) work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Precision", "precision_of", "unit_roundoff", "FLOAT_DTYPES", "false_reject_bound", "row_tolerance",
           "tolerance_from_sums", "matrix_stats"]

_UNIT_ROUNDOFF = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "tf32": 2.0**-11,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
#: Float dtypes the float check accepts for A, B and C.
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
#: Unit roundoff of the float64 arithmetic the check itself runs in.
U_CHECK = 2.0**-53


def unit_roundoff(dtype: str) -> float:
    """Unit roundoff ``u`` of a float format.

    Args:
        dtype: ``float64``, ``float32``, ``tf32``, ``float16`` or ``bfloat16``.

    Returns:
        ``u`` (``float32`` -> 2**-24; ``tf32`` -> 2**-11).

    Raises:
        ValueError: for a format that is not a known float format.

    Example:
        >>> unit_roundoff("float32") == 2.0**-24
        True
    """
    try:
        return _UNIT_ROUNDOFF[dtype]
    except KeyError:
        raise ValueError(f"unknown float format {dtype!r}; known: {', '.join(_UNIT_ROUNDOFF)}") from None


@dataclass(frozen=True)
class Precision:
    """Unit roundoffs of the three places an honest product rounds.

    Attributes:
        u_in: rounding of each input before multiplying (TF32 rounds fp32
            inputs to 10 mantissa bits; 0 when products are exact in the
            accumulator, e.g. bf16/fp16 inputs with fp32 accumulation).
        u_acc: rounding of each product and partial sum in the accumulator.
        u_out: rounding of the accumulated result to the output dtype.
    """

    u_in: float
    u_acc: float
    u_out: float


def precision_of(out_dtype: str, accumulation: str | None = None) -> Precision:
    """The rounding model of an honest product returned in ``out_dtype``.

    Args:
        out_dtype: dtype of the claimed product.
        accumulation: ``float64``, ``float32``, ``tf32`` (fp32 accumulation of
            inputs rounded to TF32), ``float16`` or ``bfloat16``; None
            infers it: half outputs accumulate in fp32 (as cuBLAS and XLA do),
            others in their own precision.

    Returns:
        The :class:`Precision`.

    Raises:
        ValueError: for an unknown dtype or accumulation.

    Example:
        >>> precision_of("bfloat16").u_acc == 2.0**-24
        True
    """
    u_out = unit_roundoff(out_dtype)
    acc = accumulation or ("float32" if out_dtype in ("float16", "bfloat16") else out_dtype)
    if acc == "tf32":
        return Precision(u_in=unit_roundoff("tf32"), u_acc=unit_roundoff("float32"), u_out=u_out)
    return Precision(u_in=0.0, u_acc=unit_roundoff(acc), u_out=u_out)


def false_reject_bound(safety: float, rows: int) -> float:
    """Model bound on the probability that an honest product is rejected.

    Args:
        safety: the tail parameter ``lambda``.
        rows: number of checked rows (times rounds, if rounds are checked separately).

    Returns:
        ``min(1, rows * 2 exp(-lambda^2 / 2))`` (a union bound over rows).

    Example:
        >>> false_reject_bound(8.0, 1000) < 1e-10
        True
    """
    return min(1.0, rows * 2.0 * math.exp(-safety * safety / 2.0))


def _gamma(n: float, u: float) -> float:
    nu = n * u
    return nu / (1.0 - nu) if nu < 1.0 else math.inf


def row_tolerance(xp: Any, A: Any, B: Any, C: Any, *, prec: Precision, safety: float,
                  stats: tuple[Any, Any] | None = None, bias: bool = False, bias_norm: Any = None) -> Any:
    """Per-row tolerance on ``max_r |A (B R) - C R|`` (arrays in float64, any batch dims).

    Args:
        xp: array namespace of the float64 arrays.
        A: ``(..., m, K)``; B: ``(..., K, n)``; C: ``(..., m, n)``.
        prec: the honest product's rounding model.
        safety: tail parameter ``lambda``.
        stats: ``||b_l||_2`` over each row ``l`` of ``B`` if
            already known (weights verified repeatedly), shape ``(..., K)``.
        bias: whether a bias was added in the accumulator after the product.
        bias_norm: ``||bias||_2`` when ``bias`` (without it the partial-sum
            bound falls back to ``S_i``).

    Returns:
        ``(tolerance, ||C_i||_2^2)``, both of shape ``(..., m)``.
    """
    K = A.shape[-1]
    n = B.shape[-1]
    norm2 = matrix_stats(xp, B) if stats is None else stats
    # + tiny: some BLAS kernels skip zero vector entries, which would hide an Inf/NaN in A
    S = (xp.abs(A) @ (norm2 + 1e-300)[..., None])[..., 0]
    T = ((A * A) @ (norm2 * norm2)[..., None])[..., 0]
    C2 = xp.vecdot(C, C, axis=-1)
    tol = tolerance_from_sums(xp, S=S, C2=C2, T=T, K=K, n=n, prec=prec, safety=safety, bias=bias,
                              bias_norm=bias_norm)
    return tol, C2


def tolerance_from_sums(xp: Any, *, S: Any, C2: Any, T: Any, K: int, n: int,
                        prec: Precision, safety: float, bias: bool = False, bias_norm: Any = None) -> Any:
    """The tolerance of :func:`row_tolerance` from its per-row sums (shared with the conv check).

    Args:
        xp: array namespace.
        S: ``sum_l |a_il| ||b_l||_2`` per row.
        C2: ``||C_i||_2^2``.
        T: ``sum_l a_il^2 ||b_l||_2^2``, or None (then bounded by ``S^2``,
            which loses the second-moment bound on the partial sums).
        K: inner dimension; n: columns of C.
        prec: the rounding model; safety: ``lambda``; bias: whether a bias was added.
        bias_norm: ``||bias||_2`` when ``bias``; None falls back to ``H_i = S_i``.

    Returns:
        Per-row tolerance.
    """
    if T is None:
        T = S * S  # sum_l a_il^2 ||b_l||^2 <= (sum_l |a_il| ||b_l||)^2
    eta = (1.0 + prec.u_in) ** 2 - 1.0  # TF32: the accumulator sums products of rounded inputs
    H2 = ((1.0 + eta) ** 2) * (S * S)
    g_acc = _gamma(K + 1, prec.u_acc)
    if math.isfinite(g_acc) and (not bias or bias_norm is not None):
        # Every partial sum of a dot product lies between minus its negative part and its positive
        # part, so |s| <= (sum_l |a_il b_lj| + |(AB)_ij|) / 2. ||(AB)_i|| is bounded from the
        # claimed row: the honest c = fl_out(x + bias + e), |e| <= g_acc (|a_i||B| + |bias|).
        X = (1.0 + prec.u_out) * xp.sqrt(C2) + (g_acc + 2.0 * eta) * S
        if bias:
            X = X + (1.0 + g_acc) * bias_norm
        H2 = xp.minimum(H2, 0.25 * ((1.0 + eta) * S + X) ** 2)
    # sum over the K - 1 addition nodes of a summation tree of min(H^2, |node| T): a tree has at
    # most K - s + 1 nodes of s or more terms, so nodes of sizes 2..K (a chain) give the maximum.
    ratio = H2 / xp.where(T > 0, T, 1.0)
    k0 = xp.clip(xp.floor(xp.where(T > 0, ratio, float(K))), 1.0, float(K))
    nodes = T * (0.5 * k0 * (k0 + 1.0) - 1.0) + H2 * (float(K) - k0)
    var = prec.u_acc**2 * ((1.0 + eta) ** 2) * (T + nodes) + (prec.u_out**2 + (prec.u_acc**2 if bias else 0.0)) * C2
    if prec.u_in > 0.0:
        # Input rounding (TF32): B's entries round independently for each (l, j): proxy u_in^2 T. A's entry
        # a_il rounds once for the whole row, so its events are a_il (B R)_l: the signs enter. Within the
        # model's failure probability, every |(B R)_l| <= lam_R ||b_l|| (Hoeffding over R, union over l).
        lam_r2 = safety * safety + 2.0 * math.log(max(K, 1))
        var = var + (prec.u_in**2 * (1.0 + lam_r2)) * T
    # Second-order terms: products of up to K (1 + delta) factors (Higham & Mary, Lemma 3.1)
    g1 = safety * math.sqrt(K) * prec.u_acc
    second = (math.expm1(g1 + K * prec.u_acc**2 / (1.0 - prec.u_acc)) / g1) if g1 > 0 else 1.0
    # Deterministic bound on the float64 check's own error, each round: |fl(CR) - CR| <= g_n ||C_i||_1
    # and |fl(A fl(BR)) - ABR| <= (g_K + g_n (1 + g_K)) sum_l |a_il| ||b_l||_1, with the 1-norms
    # bounded by sqrt(n) times the 2-norms (loose, but this term is ~1e-16 relative).
    g_n, g_k = _gamma(n, U_CHECK), _gamma(K, U_CHECK)
    rn = math.sqrt(n)
    chk = (g_n * rn) * xp.sqrt(C2) + ((g_k + g_n * (1.0 + g_k)) * rn) * S
    return (safety * second) * xp.sqrt(var) + chk


def matrix_stats(xp: Any, B: Any) -> Any:
    """Row norms ``||b_l||_2`` of ``B`` (float64, shape ``(..., K)``).

    Args:
        xp: array namespace.
        B: ``(..., K, n)`` float64 array.

    Returns:
        The norm vector.
    """
    return xp.sqrt(xp.vecdot(B, B, axis=-1))

"""The elementwise operator checks of ``protocols/OperatorStep.vy``, mirrored exactly in Python integers.

An operator-level dispute (:mod:`~vcompute.verify.dispute.op_trace`) ends at
one element of one operator's output. A linear operator's element is one
dot product (``FloatStep.vy``, :func:`~vcompute.verify.dispute.float_trace.within`);
the nonlinear and elementwise ones are decided here, each against a bound
from a rounding model:

- **add** (bias add, residual add): ``|z - (a + b)| <= 2^-u (|a + b|)`` plus
  an absolute ``2^-140``. IEEE round-to-nearest satisfies it with ``u = 24``
  for float32 (``|fl(s) - s| <= 2^-24 |s|``; a subnormal sum is exact), so
  an honest add can never fail it; any order of one rounding passes.
- **relu**: exact, ``z = max(0, x)`` (``x`` itself for ``x > 0``, either
  signed zero otherwise): ``max`` never rounds, so no tolerance is needed.
- **softmax** (one row block, optionally causal): ``p_j = e^(x_j - m) /
  sum_t e^(x_t - m)`` over the block's ``n`` unmasked elements, each
  ``e^-s`` kept as ``E 2^(-64 - n)`` (a 64-bit mantissa and its own
  exponent, so small probabilities keep their relative precision); a claimed
  ``z`` passes when ``|z - p_j| <= 2^-t p_j (|x_j - m| + 2 n + 8)`` plus
  ``2^-140``; a masked element must be zero exactly. The base follows the
  float32 rounding model (the subtraction ``x_j - m`` errs by ``u |x_j -
  m|`` relative in ``e^(x_j - m)``, exp by a few ulps, the sum by ``n u``
  plus ``u sum_t p_t |x_t - m| <= u n / e``, the division one ulp), so ``t
  = 18`` leaves a factor 64 over it.
- **gelu** (the tanh form, GPT-2's ``gelu_new``):
  ``g(x) = x sigma(2y)``, ``y = sqrt(2/pi) (x + 0.044715 x^3)``, computed
  here in 64-bit fixed point (exp by range reduction and a 24-term series),
  with reference error at most ``2^-50 |x|`` (:data:`GELU_REF_ERROR_BITS`;
  beyond ``|x| >= 8`` the reference is ``max(x, 0)``, off by under ``2^-71 |x|``).
  A claimed ``z`` passes when ``|z - g| <= 2^-t (|x| + |g|)`` plus ``2^-140``,
  ``t = tol_bits`` from the operator's leaf. The tolerance is *derived*
  (float32 evaluation of the tanh form: a few ulps of ``x`` and of ``g``,
  and the cancellation in ``1 + tanh`` for negative ``x``, ``2^-25 |x|``
  per ulp of tanh) and *checked* against torch's and numpy's float32 GELU
  (``tests/verify/test_dispute_op_step.py``); ``t = 18`` leaves a factor 64
  over the worst error measured there.

Every comparison runs in one truncated fixed-point frame (as ``FloatStep.vy``
does), with the truncation (under one frame unit per term) in the slack, so
the check never overflows 256 bits.

Every element whose inputs are committed is decided, finite or not
(``proofs/dispute.md``, "Non-finite values"): a non-finite input follows
IEEE-754 (NaN in, NaN out, any payload; ``inf + finite = inf``, ``inf - inf
= NaN``, ``0 inf = NaN``; a LayerNorm row holding an inf or a NaN is NaN
throughout; a softmax's ``-inf`` weighs zero, a ``+inf`` or NaN in its block
makes it NaN), and where IEEE rules leave the honest value to the
implementation (``relu(NaN)``, ``gelu(-inf)``, a block with ``+inf``) either
outcome passes. With finite inputs a claimed infinity passes when the
bound's interval reaches float32's overflow threshold ``(2 - 2^-24) 2^127``
on its side, a NaN only where two terms may each overflow (``axpby``).

Example:
    >>> import numpy as np
    >>> bits = lambda v: int(np.float32(v).view("<u4"))
    >>> add_within(bits(1.5), bits(2.25), bits(3.75), 24), add_within(bits(1.5), bits(2.25), bits(3.7501), 24)
    (True, False)
    >>> gelu_within(bits(1.0), bits(0.8411920070648193), 18), gelu_within(bits(1.0), bits(0.8413), 18)
    (True, False)
"""

from __future__ import annotations

import math

import numpy as np

from vcompute.verify.dispute.float_trace import _decode, _scale

__all__ = ["GELU_REF_ERROR_BITS", "FX", "LN_EPS_M", "LN_EPS_E", "decode", "gelu_reference", "gelu_within",
           "add_within", "axpby_within", "ln_within", "relu_within", "relu_grad_within", "scaled_bits",
           "softmax_within", "softmax_window", "gelu_f64", "ln_f64",
           "softmax_f64"]

#: Fixed-point fraction bits of the on-chain GELU.
FX = 64
_ONE = 1 << FX
#: round(sqrt(2/pi) 2^64), round(0.044715 2^64), round(ln 2 2^64): the contract's constants.
C_SQRT2PI = 14718372293494604904
C_CUBIC = 824846161255922601
C_LN2 = 12786308645202655660
_TERMS = 24
#: The fixed-point reference is within 2^-GELU_REF_ERROR_BITS |x| of the exact tanh-form GELU.
GELU_REF_ERROR_BITS = 50
_ABS_BITS = 140  # the absolute floor 2^-140 covers gradual underflow of honest float32 arithmetic
_FRAME = 200  # values are truncated to units of 2^(top - 200): all stay below 2^200
#: LayerNorm's eps, float32 1e-5 as ``M 2^(E - 150)``.
LN_EPS_M, LN_EPS_E = 10995116, 110
_LN_HOFF = 300  # keeps gamma n's exponent non-negative: h is in -90..64


def decode(b: int) -> tuple[bool, int, int, bool]:
    """float32 bits -> ``(finite, M, E, negative)`` with ``|v| = M 2^(E - 150)``, subnormals at ``E = 1``."""
    return _decode(int(b) & 0xFFFFFFFF)


_POS_INF, _NEG_INF = 0x7F800000, 0xFF800000
_OVF_M = 2**24 - 1  # float32 round-to-nearest overflows at (2^24 - 1) 2^104 = (2 - 2^-24) 2^127


def _nan(b: int) -> bool:
    return int(b) & 0x7FFFFFFF > _POS_INF


def _inf(b: int) -> bool:
    return int(b) & 0x7FFFFFFF == _POS_INF


def _zero(b: int) -> bool:
    return int(b) & 0x7FFFFFFF == 0


def _exp_neg(s: int) -> int:
    """``e^(-s / 2^64) 2^64`` for ``s >= 0``, by ``s = n ln2 + r`` and a series for ``e^-r`` (:func:`_exp_parts`)."""
    n, v = _exp_parts(s)
    return v >> n if n < 256 else 0


def gelu_reference(xb: int) -> tuple[int, int, bool]:
    """The contract's reference GELU of float32 bits ``xb``: ``(G, q, negative)``, ``|g| = G 2^(q - 214)``.

    Raises:
        ValueError: if the input is not finite.
    """
    fx, mx, ex, sx = decode(xb)
    if not fx:
        raise ValueError("a non-finite input; no bound applies")
    if ex >= 130:  # |x| >= 8: sigma(2y) is 1 or 0 to within 2^-71
        return (0, ex, False) if sx else (mx << FX, ex, False)
    x = _scale(mx, ex, 86)  # |x| 2^64, truncated
    x3 = x * x * x >> 2 * FX
    t = 2 * C_SQRT2PI * (x + (C_CUBIC * x3 >> FX)) >> FX  # 2|y| 2^64
    u = _exp_neg(t)
    f = (_ONE * _ONE) // (_ONE + u)  # sigma(2|y|) 2^64
    if sx:
        f = _ONE - f  # sigma(-t) = 1 - sigma(t); g = x sigma(2y) keeps x's sign
    return mx * f, ex, sx


def _close(zb: int, refs: list[tuple[int, int, bool]], extra: list[tuple[int, int]], bits: int, off: int,
           with_ref: bool = True, wide: bool = False) -> bool:
    """``|z - ref| 2^bits <= (extra [+ |ref|]) + slack 2^bits`` in one truncated frame, as the contract.

    ``ref`` is the sum of the signed terms ``refs`` ``(M, q, negative)``, each ``M 2^(q - 150 - off)``;
    ``extra`` holds non-negative terms ``(M, q)`` of the same form (the rest of the tolerance's base);
    ``with_ref``: whether ``|ref|`` is part of the base. A claimed infinity passes when the bound's
    interval reaches the overflow threshold on its side; a NaN only if ``wide`` (two terms either of
    which may overflow), when the base (``|t1| + |t2|``) and its bound reach it.
    """
    fz, mz, ez, sz = decode(zb)
    nan = _nan(zb)
    if nan and not wide:
        return False
    qz = ez + off
    if not fz:  # z stands at the threshold on its side
        mz, qz, sz = _OVF_M, 254 + off, bool(int(zb) >> 31 & 1) and not nan
    top = qz + 24
    for m, q, _ in refs:
        top = max(top, q + m.bit_length())
    for m, q in extra:
        top = max(top, q + m.bit_length())
    low = top - _FRAME if top > _FRAME else 0
    z = _scale(mz, qz, low)
    zi = -z if sz else z
    ref = 0
    for m, q, neg in refs:
        v = _scale(m, q, low)
        ref += -v if neg else v
    base = abs(ref) if with_ref else 0
    for m, q in extra:
        base += _scale(m, q, low)
    if nan:
        ref = base
    if not fz and ((sz and ref <= zi) or (not sz and ref >= zi)):
        return True
    floor_at = off + 150 - _ABS_BITS  # 2^-140 is one unit at this exponent
    slack = 4 + ((1 << (floor_at - low)) if low < floor_at else 1)
    return abs(zi - ref) << bits <= base + (slack << bits)


def gelu_within(xb: int, zb: int, tol_bits: int) -> bool:
    """Whether claimed float32 ``zb`` is GELU(``xb``) within ``2^-tol_bits (|x| + |g|)``, as the contract decides.

    ``gelu(NaN)`` is NaN, ``gelu(+inf) = +inf``; ``gelu(-inf)`` is zero in the limit and NaN in float
    arithmetic (``-inf`` times 0): either.

    Raises:
        ValueError: if ``tol_bits`` is outside 8..30.
    """
    if not 8 <= tol_bits <= 30:
        raise ValueError(f"tol_bits must be in 8..30, got {tol_bits}")
    x = int(xb) & 0xFFFFFFFF
    if _nan(x):
        return _nan(zb)
    if x == _POS_INF:
        return int(zb) & 0xFFFFFFFF == _POS_INF
    if x == _NEG_INF:
        return _nan(zb) or _zero(zb)
    g, q, s = gelu_reference(x)
    _, mx, ex, _ = decode(x)
    # |x| = mx 2^(ex - 150) = (mx << 64) 2^(ex - 150 - 64): the reference's units
    return _close(zb, [(g, q, s)], [(mx << FX, ex)], tol_bits, FX)


def add_within(ab: int, bb: int, zb: int, u_bits: int) -> bool:
    """Whether claimed float32 ``zb`` is ``a + b`` within ``2^-u_bits |a + b|``, as the contract decides.

    Non-finite inputs by IEEE: a NaN makes NaN (any payload), ``inf + finite = inf + inf = inf``,
    ``inf - inf = NaN``; a finite sum may be claimed infinite where ``|a + b| (1 + 2^-u)`` reaches
    the overflow threshold.

    Raises:
        ValueError: if ``u_bits`` is outside 8..30.
    """
    if not 8 <= u_bits <= 30:
        raise ValueError(f"u_bits must be in 8..30, got {u_bits}")
    a, b = int(ab) & 0xFFFFFFFF, int(bb) & 0xFFFFFFFF
    if _nan(a) or _nan(b):
        return _nan(zb)
    if _inf(a) or _inf(b):
        if _inf(a) and _inf(b) and a != b:
            return _nan(zb)
        return int(zb) & 0xFFFFFFFF == (a if _inf(a) else b)
    _, ma, ea, sa = decode(a)
    _, mb, eb, sb = decode(b)
    return _close(zb, [(ma, ea, sa), (mb, eb, sb)], [], u_bits, 0)


def _ln_stats(xbs: list[int]) -> tuple[list[int], int, int, int, int]:
    """``(D, SD, R, h, d max|X|)`` of a LayerNorm row.

    ``n_t = D_t SD / R 2^(-64-h)`` and ``M/sigma = max|X| d SD / R 2^(-64-h)``:

    ``D_t = d X_t - sum X`` in the row's frame (``x_t = X_t 2^(low - 150)``, truncated to 100 bits below the
    largest), ``SD = isqrt(d 2^128)``, ``R = isqrt(W')`` with ``W' 2^(2h) = sum D_t^2 + eps d^3 2^(300 - 2 low)``.
    """
    d = len(xbs)
    dec = [decode(b) for b in xbs]
    if not all(f for f, _, _, _ in dec):
        raise ValueError("a non-finite input; no bound applies")
    top = max(e for _, _, e, _ in dec) + 24
    low = top - 100 if top > 100 else 0
    xs = [(-1 if neg else 1) * _scale(m, e, low) for _, m, e, neg in dec]
    total = sum(xs)
    dd = [d * v - total for v in xs]
    var = sum(v * v for v in dd)
    mx = max(abs(v) for v in xs)
    q = LN_EPS_M * d**3
    sq = LN_EPS_E + 150 - 2 * low  # eps d^3 / u^2 = q 2^sq
    bw = max(var.bit_length(), q.bit_length() + sq)
    h = (bw - 180) // 2
    w = _shift(var, -2 * h) + _shift(q, sq - 2 * h)
    r = math.isqrt(max(w, 1))
    sd = math.isqrt(d << 128)
    return dd, sd, r, h, mx * d


def ln_may_overflow(xbs: list[int]) -> bool:
    """Whether a float32 LayerNorm of the row may overflow its variance sum (``OperatorStep.ln_ok``'s test).

    ``sum (x_t - mean)^2 < d (2 max|x|)^2 < 2^(2 top - 298 + bits(d))`` with ``|x| < 2^(top - 150)``;
    float32 rounding at most doubles it, so below ``2 top + bits(d) = 425`` no evaluation overflows
    (a row of ``+-2^48``, the tame bound, at ``d = 1024`` gives 409).
    """
    top = max(decode(b)[2] for b in xbs) + 24
    return 2 * top + len(xbs).bit_length() >= 425


def _shift(v: int, e: int) -> int:
    return v << e if e >= 0 else v >> -e


def ln_within(xbs: list[int], gb: int, bb: int, j: int, zb: int, tol_bits: int) -> bool:
    """Whether claimed float32 ``zb`` is element ``j`` of LayerNorm(``x``) ``gamma_j + beta_j`` within the bound.

    The bound is ``2^-tol_bits (|gamma_j| (|n_j| + max|x| / sigma') + |beta_j|)`` plus ``2^-140``,
    ``n_j = (x_j - mean) / sigma'``, ``sigma' = sqrt(var + eps)``, ``eps`` = float32 ``1e-5`` (GPT-2's).

    Args:
        xbs: the row's float32 bit patterns (``d`` of them).
        gb: ``gamma_j``'s bits.
        bb: ``beta_j``'s bits.
        j: the element.
        zb: the claimed value's bits.
        tol_bits: the operator's tolerance exponent, 8..30.

    A row holding an inf or a NaN makes every element NaN; a NaN ``gamma_j`` or ``beta_j`` NaN; an
    infinite ``gamma_j`` any inf or NaN; an infinite ``beta_j`` that inf (or NaN, if ``|gamma_j| >= 2^123``).
    Where the float32 variance may overflow (:func:`ln_may_overflow`), ``beta_j`` (any zero for a zero
    ``beta_j``) and NaN pass as well: a two-pass float32 evaluation gives ``n = 0`` there, or NaN.

    Raises:
        ValueError: if ``tol_bits`` or ``j`` is out of range.
    """
    if not 8 <= tol_bits <= 30:
        raise ValueError(f"tol_bits must be in 8..30, got {tol_bits}")
    if not 0 <= j < len(xbs):
        raise ValueError(f"j must be in 0..{len(xbs) - 1}, got {j}")
    fg, mg, eg, sg = decode(gb)
    fb, mb, eb, sb = decode(bb)
    if not all(decode(b)[0] for b in xbs):  # the row's mean and variance are NaN (or inf - inf): NaN throughout
        return _nan(zb)
    if _nan(gb) or _nan(bb):
        return _nan(zb)
    if not fg:  # inf times n_j (zero or not, by rounding) plus beta: some inf or NaN
        return _nan(zb) or _inf(zb)
    if not fb:  # gamma n_j + inf: that inf, or NaN where gamma n_j (|n_j| < 32) may overflow the other way
        return int(zb) & 0xFFFFFFFF == int(bb) & 0xFFFFFFFF or (_nan(zb) and eg >= 250)
    if ln_may_overflow(xbs) and (_nan(zb) or int(zb) & 0xFFFFFFFF == int(bb) & 0xFFFFFFFF
                                 or (_zero(bb) and _zero(zb))):
        return True  # the two-pass float32 value where the variance overflows: n = 0, so beta; NaN if x - mean does
    dd, sd, r, h, mxd = _ln_stats(xbs)
    n = (abs(dd[j]) * sd << 64) // r
    t = (mxd * sd << 64) // r
    off = 128 + _LN_HOFF
    qn = eg + _LN_HOFF - h  # gamma n = mg n 2^(eg - 150 - 128 - h)
    refs = [(mg * n, qn, sg != (dd[j] < 0)), (mb, eb + off, sb)]
    return _close(zb, refs, [(mg * (n + t), qn), (mb, eb + off)], tol_bits, off, with_ref=False)


def gelu_f64(x: float) -> float:
    """The tanh-form GELU in float64 (a reference for tests, about 1e-16 relative)."""
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def ln_f64(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LayerNorm of the rows of ``x`` in float64 and the bound's base ``|gamma| (|n| + max|x| / sigma') + |beta|``."""
    x = np.asarray(x, np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    sig = np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + float(np.float32(1e-5)))
    n = (x - mu) / sig
    g, b = np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
    return n * g + b, np.abs(g) * (np.abs(n) + np.abs(x).max(axis=-1, keepdims=True) / sig) + np.abs(b)


def _relu(xb: int, zb: int, gb: int) -> bool:
    """``g``'s bits where ``x > 0`` (any NaN for a NaN ``g``), either zero elsewhere; ``x`` NaN: either (``OperatorStep._relu``)."""
    x, z, g = int(xb) & 0xFFFFFFFF, int(zb) & 0xFFFFFFFF, int(gb) & 0xFFFFFFFF
    copied = z == g or (_nan(z) and _nan(g))
    if _nan(x):  # max(NaN, 0) and NaN > 0 differ by implementation: NaN (or g) or zero
        return copied or _zero(z)
    if x >> 31 == 0 and x != 0:
        return copied
    return _zero(z)


def relu_within(xb: int, zb: int) -> bool:
    """Whether claimed float32 ``zb`` is ``max(0, x)`` exactly, as the contract decides (either zero for ``x <= 0``).

    ``relu(+inf) = +inf``, ``relu(-inf)`` either zero; ``relu(NaN)`` is NaN or zero by implementation: either.
    """
    return _relu(xb, zb, xb)


def relu_grad_within(gate_b: int, gb: int, zb: int) -> bool:
    """Whether claimed float32 ``zb`` is ReLU's backward ``g [x > 0]`` exactly, as the contract decides.

    ``gate_b`` is ``x`` (or ``relu(x)``: the same sign test), ``gb`` the incoming gradient; where
    ``x > 0`` the value must be ``g``'s bits (any NaN for a NaN ``g``), elsewhere either zero (torch's
    ``threshold_backward``); a NaN gate allows either.
    """
    return _relu(gate_b, zb, gb)


def _prod(cb: int, vb: int) -> int:
    """IEEE class of ``c v``: 0 finite, 1 ``+inf``, 2 ``-inf``, 3 NaN (a NaN in, or inf times zero)."""
    if _nan(cb) or _nan(vb):
        return 3
    if _inf(cb) or _inf(vb):
        return 3 if _zero(cb) or _zero(vb) else 1 + ((int(cb) ^ int(vb)) >> 31 & 1)
    return 0


def axpby_within(c1b: int, lb: int, c2b: int, rb: int, zb: int, tol_bits: int) -> bool:
    """Whether claimed float32 ``zb`` is ``c1 l + c2 r`` within ``2^-tol_bits (|c1 l| + |c2 r|)`` (+ 2^-140).

    Both products are exact integers (48-bit mantissas), so the reference is exact. Float32
    evaluation rounds at most twice where one constant is 1 (``u |c1 l| + (2u + u^2) |c2 r|``) and
    three times otherwise (``2u (|c1 l| + |c2 r|) + u^2 ...``); ``tol_bits = 22`` (``4u``) holds either,
    with or without an FMA. Non-finite products by IEEE (a NaN or ``0 inf`` is NaN, ``inf - inf`` NaN);
    a finite product beside an inf may itself round to the other inf where ``|p| >= 2^127`` (NaN too);
    with finite products an inf passes where the bound reaches the overflow threshold on its side,
    a NaN where ``(|c1 l| + |c2 r|) (1 + 2^-t)`` reaches it.

    Raises:
        ValueError: if ``tol_bits`` is outside 8..30.
    """
    if not 8 <= tol_bits <= 30:
        raise ValueError(f"tol_bits must be in 8..30, got {tol_bits}")
    c1b, lb, c2b, rb = (int(v) & 0xFFFFFFFF for v in (c1b, lb, c2b, rb))
    (_, m1, e1, s1), (_, ml, el, sl), (_, m2, e2, s2), (_, mr, er, sr) = (decode(b) for b in (c1b, lb, c2b, rb))
    k1, k2 = _prod(c1b, lb), _prod(c2b, rb)
    if k1 == 3 or k2 == 3 or (k1 > 0 and k2 > 0 and k1 != k2):
        return _nan(zb)
    p1, p2 = (m1 * ml, e1 + el), (m2 * mr, e2 + er)
    if k1 > 0 or k2 > 0:
        fin = p2 if k2 == 0 else p1 if k1 == 0 else None
        big = fin is not None and fin[0].bit_length() + fin[1] >= 428  # |p| >= 2^127
        return int(zb) & 0xFFFFFFFF == _POS_INF + ((max(k1, k2) - 1) << 31) or (_nan(zb) and big)
    if _inf(zb):  # a product that alone rounds past the largest float32 is that inf without an FMA
        neg = bool(int(zb) >> 31 & 1)
        if (neg == (s1 != sl) and _ovf(*p1)) or (neg == (s2 != sr) and _ovf(*p2)):
            return True
    return _close(zb, [(*p1, s1 != sl), (*p2, s2 != sr)], [p1, p2], tol_bits, 150, with_ref=False, wide=True)


def _ovf(m: int, q: int) -> bool:
    """Whether the product ``M 2^(q - 300)`` of two decoded float32s rounds to inf: ``|p| >= 2^128 - 2^103``."""
    return m << q >= ((1 << 25) - 1) << 403


def _exp_parts(s: int) -> tuple[int, int]:
    """``e^(-s / 2^64) = E 2^(-64 - n)`` as ``(n, E)``, ``E`` in ``(2^63, 2^64]`` (the contract's ``_exp_parts``)."""
    n, r = s // C_LN2, s % C_LN2
    pos, neg, term = _ONE, 0, _ONE
    for k in range(1, _TERMS + 1):
        term = term * r // (k * _ONE)
        if k % 2:
            neg += term
        else:
            pos += term
    return n, pos - neg


#: The softmax's frame offset: terms ``M 2^(q - 150 - off)`` keep ``q >= 0`` for ``p_j`` down to ``2^-200``.
_SM_OFF = 250


def softmax_window(d: int, blk: int, causal: bool, i: int, j: int) -> tuple[int, int]:
    """``(lo, n)``: element ``j`` of row ``i`` is normalised over lanes ``lo .. lo + n - 1`` (masked if beyond)."""
    lo = j // blk * blk
    return lo, (min(i + 1, blk) if causal else blk)


def softmax_within(xbs: list[int], blk: int, causal: bool, i: int, j: int, zb: int, tol_bits: int) -> bool:
    """Whether claimed float32 ``zb`` is element ``j`` of row ``i``'s block softmax within the bound, as the contract.

    The row is cut into blocks of ``blk``; ``j``'s block is normalised over its first ``n``
    elements (``blk``, or ``min(i + 1, blk)`` if ``causal``); a masked element must be zero
    exactly; otherwise ``|z - p_j| <= 2^-tol_bits p_j (|x_j - max| + 2 n + 8)`` plus ``2^-140``.

    Args:
        xbs: the row's float32 bit patterns (``d`` of them).
        blk: the block width (divides ``d``).
        causal: whether element ``t`` of a block is masked for ``t > i``.
        i: the row (the query position, for the causal mask).
        j: the element.
        zb: the claimed value's bits.
        tol_bits: the operator's tolerance exponent, 8..30.

    Non-finite inputs: ``-inf`` weighs zero (its element is zero); a NaN in the block makes every
    element NaN, a ``+inf`` (or nothing but ``-inf``) NaN or, except at a ``+inf``, zero; a masked
    element may then be NaN too.

    Raises:
        ValueError: on arguments out of range.
    """
    d = len(xbs)
    if not 8 <= tol_bits <= 30:
        raise ValueError(f"tol_bits must be in 8..30, got {tol_bits}")
    if not 0 <= j < d:
        raise ValueError(f"j must be in 0..{d - 1}, got {j}")
    if not (type(blk) is int and blk >= 1 and d % blk == 0):
        raise ValueError(f"blk must divide the row's {d} elements, got {blk!r}")
    lo, n = softmax_window(d, blk, bool(causal), i, j)
    block = [int(b) & 0xFFFFFFFF for b in xbs[lo:lo + n]]
    # -inf weighs zero; a NaN, a +inf, or nothing but -inf makes the block NaN (x - max is NaN), and
    # inf / inf or 0 / 0 without the max: NaN there, zero for the other elements
    nan, pinf = any(_nan(b) for b in block), _POS_INF in block
    fin = [(t, decode(b)) for t, b in enumerate(block) if decode(b)[0]]
    bad = nan or pinf or not fin
    if j >= lo + n:
        return _zero(zb) or (bad and _nan(zb))
    if nan:
        return _nan(zb)
    if bad:
        return _nan(zb) or (_zero(zb) and block[j - lo] != _POS_INF)
    xs = {t: (-1 if neg else 1) * _scale(m, e, 86) for t, (_, m, e, neg) in fin}
    top = max(xs.values())
    total, ej, nj, sj = 0, 0, 200, 0  # x_j = -inf: p_j = 0, decided as an underflowed one
    for t, v in xs.items():
        s = top - v
        nt, et = _exp_parts(s)
        if nt < 128:
            total += (et << 64) >> nt
        if lo + t == j:
            ej, nj, sj = et, nt, s
    if nj >= 200:  # p_j < 2^-199: inside the absolute floor
        return _close(zb, [(0, 0, False)], [], tol_bits, _SM_OFF, with_ref=False)
    r = (ej << 190) // total  # p_j = r 2^(-126 - nj)
    base = r * (sj + ((2 * n + 8) << 64))  # p_j (|x_j - max| + 2n + 8) = base 2^(-190 - nj)
    return _close(zb, [(r, _SM_OFF + 24 - nj, False)], [(base, _SM_OFF - 40 - nj)], tol_bits, _SM_OFF,
                  with_ref=False)


def softmax_f64(a: np.ndarray, blk: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Block softmax of the rows of ``a`` in float64 and the bound's base ``p_j (|x_j - max| + 2 n + 8)`` (0 masked)."""
    a = np.asarray(a, np.float64)
    rows, d = a.shape
    p, base = np.zeros_like(a), np.zeros_like(a)
    for i in range(rows):
        for lo in range(0, d, blk):
            n = min(i + 1, blk) if causal else blk
            v = a[i, lo:lo + n]
            e = np.exp(v - v.max())
            p[i, lo:lo + n] = e / e.sum()
            base[i, lo:lo + n] = p[i, lo:lo + n] * (np.abs(v - v.max()) + 2 * n + 8)
    return p, base


def scaled_bits(zb: int, s: int) -> int:
    """The float32 bits of ``z 2^s``, exactly (``OperatorStep.scaled_bits``): an attention score times ``sqrt(dh)``.

    Raises:
        ValueError: if ``s`` is outside 0..8.
    """
    if not 0 <= s <= 8:
        raise ValueError(f"s must be in 0..8, got {s}")
    b = int(zb) & 0xFFFFFFFF
    sign, e = b & 0x80000000, (b >> 23) & 255
    if e == 255:
        return b
    if e > 0:
        return sign | 0x7F800000 if e + s >= 255 else b + (s << 23)
    f = (b & 0x7FFFFF) << s
    if f <= 0x7FFFFF:
        return sign | f
    n = f.bit_length()
    return sign | ((n - 23) << 23) | ((f >> (n - 24)) & 0x7FFFFF)

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
the check never overflows 256 bits; a non-finite claimed value is outside,
a non-finite input has no bound (the contract reverts, here ``ValueError``).

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

__all__ = ["GELU_REF_ERROR_BITS", "FX", "decode", "gelu_reference", "gelu_within", "add_within", "gelu_f64"]

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


def decode(b: int) -> tuple[bool, int, int, bool]:
    """float32 bits -> ``(finite, M, E, negative)`` with ``|v| = M 2^(E - 150)``, subnormals at ``E = 1``."""
    b = int(b) & 0xFFFFFFFF
    e, f = (b >> 23) & 255, b & (2**23 - 1)
    if e == 255:
        return False, 0, 0, False
    if e == 0:
        return True, f, 1, bool(b >> 31 & 1)
    return True, f | 2**23, e, bool(b >> 31 & 1)


def _scale(m: int, q: int, low: int) -> int:
    return m << (q - low) if q >= low else m >> (low - q)


def _exp_neg(s: int) -> int:
    """``e^(-s / 2^64) 2^64`` for ``s >= 0``, by ``s = n ln2 + r`` and a series for ``e^-r``."""
    n, r = s // C_LN2, s % C_LN2
    pos, neg, term = _ONE, 0, _ONE
    for k in range(1, _TERMS + 1):
        term = term * r // (k * _ONE)
        if k % 2:
            neg += term
        else:
            pos += term
    v = pos - neg
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


def _close(zb: int, refs: list[tuple[int, int, bool]], extra: list[tuple[int, int]], bits: int, off: int) -> bool:
    """``|z - ref| 2^bits <= (extra + |ref|) + slack 2^bits`` in one truncated frame, as the contract.

    ``ref`` is the sum of the signed terms ``refs`` ``(M, q, negative)``, each ``M 2^(q - 150 - off)``;
    ``extra`` holds non-negative terms ``(M, q)`` of the same form (the rest of the tolerance's base).
    """
    fz, mz, ez, sz = decode(zb)
    if not fz:
        return False
    qz = ez + off
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
    base = abs(ref)
    for m, q in extra:
        base += _scale(m, q, low)
    floor_at = off + 150 - _ABS_BITS  # 2^-140 is one unit at this exponent
    slack = 4 + ((1 << (floor_at - low)) if low < floor_at else 1)
    return abs(zi - ref) << bits <= base + (slack << bits)


def gelu_within(xb: int, zb: int, tol_bits: int) -> bool:
    """Whether claimed float32 ``zb`` is GELU(``xb``) within ``2^-tol_bits (|x| + |g|)``, as the contract decides.

    Raises:
        ValueError: if the input is not finite or ``tol_bits`` is outside 8..30.
    """
    if not 8 <= tol_bits <= 30:
        raise ValueError(f"tol_bits must be in 8..30, got {tol_bits}")
    g, q, s = gelu_reference(xb)
    _, mx, ex, _ = decode(xb)
    # |x| = mx 2^(ex - 150) = (mx << 64) 2^(ex - 150 - 64): the reference's units
    return _close(zb, [(g, q, s)], [(mx << FX, ex)], tol_bits, FX)


def add_within(ab: int, bb: int, zb: int, u_bits: int) -> bool:
    """Whether claimed float32 ``zb`` is ``a + b`` within ``2^-u_bits |a + b|``, as the contract decides.

    Raises:
        ValueError: if an input is not finite or ``u_bits`` is outside 8..30.
    """
    if not 8 <= u_bits <= 30:
        raise ValueError(f"u_bits must be in 8..30, got {u_bits}")
    fa, ma, ea, sa = decode(ab)
    fb, mb, eb, sb = decode(bb)
    if not (fa and fb):
        raise ValueError("a non-finite input; no bound applies")
    return _close(zb, [(ma, ea, sa), (mb, eb, sb)], [], u_bits, 0)


def gelu_f64(x: float) -> float:
    """The tanh-form GELU in float64 (a reference for tests, about 1e-16 relative)."""
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))

"""Edwards25519 arithmetic in pure Python: strict encodings, subgroup checks, a reference verifier.

:mod:`vcompute.core.signing` signs with OpenSSL (``cryptography``) or
pycryptodome and uses this module for what those libraries do not do the
same way: the strict checks on public keys and signatures that make every
backend give the same answer (see the rules in :mod:`vcompute.core.signing`),
and a slow reference verifier (:func:`verify_strict`) the tests hold both
libraries to. Points are extended coordinates ``(X, Y, Z, T)`` with
``x = X/Z``, ``y = Y/Z``, ``xy = T/Z`` (the formulas of RFC 8032, 5.1.4).

Example:
    >>> encode(B) == bytes.fromhex("58" + "66" * 31)
    True
    >>> has_prime_order(encode(B)), has_prime_order(encode(IDENTITY))
    (True, False)
    >>> sorted(encode(P)[0] for P in torsion_points())[:3]
    [0, 0, 1]
"""

from __future__ import annotations

import functools
import hashlib

__all__ = ["P", "L", "B", "IDENTITY", "add", "mul", "challenge", "decode", "encode", "is_canonical",
           "has_prime_order", "torsion_points", "verify_strict"]

#: The field prime ``2^255 - 19``.
P = 2**255 - 19
#: The order of the prime-order subgroup (the curve has ``8 L`` points).
L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, P - 2, P) % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)
_BY = 4 * pow(5, P - 2, P) % P


def _recover_x(y: int, sign: int) -> int | None:
    """The x with ``-x^2 + y^2 = 1 + d x^2 y^2`` and parity ``sign``; None if there is none."""
    u, v = (y * y - 1) % P, (_D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P:
        x = x * _SQRT_M1 % P
        if (v * x * x - u) % P:
            return None
    if x == 0 and sign:
        return None
    return P - x if (x & 1) != sign else x


def _affine(x: int, y: int) -> tuple[int, int, int, int]:
    return (x, y, 1, x * y % P)


#: The neutral element ``(0, 1)``.
IDENTITY = _affine(0, 1)
#: The base point of RFC 8032.
B = _affine(_recover_x(_BY, 0), _BY)


def add(p: tuple, q: tuple) -> tuple[int, int, int, int]:
    """The sum of two points (complete formula: valid for every pair, doubling included)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * _D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(k: int, p: tuple) -> tuple[int, int, int, int]:
    """``[k] p`` for an integer ``k >= 0`` (double and add; public values only, not constant time)."""
    q = IDENTITY
    while k > 0:
        if k & 1:
            q = add(q, p)
        p = add(p, p)
        k >>= 1
    return q


def _equal(p: tuple, q: tuple) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def encode(p: tuple) -> bytes:
    """The canonical 32-byte encoding: ``y`` little-endian, the parity of ``x`` in the top bit."""
    zi = pow(p[2], P - 2, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def decode(s: bytes, *, strict: bool = True) -> tuple[int, int, int, int] | None:
    """The point ``s`` encodes, or None.

    Args:
        s: 32 bytes.
        strict: refuse non-canonical encodings (``y >= p``, or ``x = 0``
            with the sign bit set), which lenient decoders map onto the
            same point as a canonical one.
    """
    if len(s) != 32:
        return None
    n = int.from_bytes(s, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= P:
        if strict:
            return None
        y -= P
    x = _recover_x(y, sign)
    if x is None:
        if strict or sign == 0:
            return None
        x = _recover_x(y, 0)  # lenient: x = 0 with the sign bit set
        if x is None:
            return None
    return _affine(x, y)


def is_canonical(s: bytes) -> bool:
    """Whether 32 bytes are the canonical encoding of *some* point, without decoding ``x``.

    Cheap (no square root): ``y < p``, and the sign bit is clear where
    ``x = 0`` (``y = 1`` or ``y = p - 1``). Whether ``y`` is on the curve is
    left to whoever decodes or compares.
    """
    n = int.from_bytes(s, "little")
    y = n & ((1 << 255) - 1)
    return len(s) == 32 and y < P and not (n >> 255 and y in (1, P - 1))


@functools.lru_cache(maxsize=4096)
def has_prime_order(public: bytes) -> bool:
    """Whether ``public`` canonically encodes a point of order exactly ``L``.

    That excludes the 8 small-order points (the identity among them) and
    every mixed-order point ``A + T`` with a torsion part ``T != 0``: what
    an honest key (``[a] B``) always is. Costs one scalar multiplication
    (~ms in Python); cached because keys recur (a ledger has few accounts).
    """
    a = decode(bytes(public))
    return a is not None and not _equal(a, IDENTITY) and _equal(mul(L, a), IDENTITY)


def torsion_points() -> list[tuple[int, int, int, int]]:
    """The 8 points of small order (the torsion subgroup: orders 1, 2, 4 and 8), from the curve maths.

    ``[L] Q`` of a point ``Q`` is its torsion component; the first ``y``
    whose component has order 8 generates the subgroup.
    """
    y = 2
    while True:
        x = _recover_x(y, 0)
        if x is not None:
            t = mul(L, _affine(x, y))
            if not _equal(mul(4, t), IDENTITY):
                out, q = [], IDENTITY
                for _ in range(8):
                    out.append(q)
                    q = add(q, t)
                return out
        y += 1


def challenge(r: bytes, public: bytes, message: bytes) -> int:
    """``SHA512(R || A || M) mod L``: the scalar ``h`` of RFC 8032."""
    return int.from_bytes(hashlib.sha512(bytes(r) + bytes(public) + bytes(message)).digest(), "little") % L


def verify_strict(public: bytes, message: bytes, signature: bytes) -> bool:
    """The reference rules of :mod:`vcompute.core.signing`, in pure Python (~10 ms).

    ``public`` of prime order, ``S < L``, and the cofactorless equation
    ``[S] B - [h] A == R`` checked on the canonical encoding of the left
    side against ``R``'s bytes (so a non-canonical ``R`` never passes).
    """
    if len(public) != 32 or len(signature) != 64 or not has_prime_order(bytes(public)):
        return False
    r, s = bytes(signature[:32]), int.from_bytes(signature[32:], "little")
    if s >= L or not is_canonical(r):
        return False
    h = challenge(r, public, message)
    return encode(add(mul(s, B), mul(L - h, decode(bytes(public))))) == r

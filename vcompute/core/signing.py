"""Ed25519 signatures for claims and ledger entries, verified strictly.

Signing and verification use the ``cryptography`` package (OpenSSL) when it
is installed and fall back to pycryptodome otherwise; both implement RFC 8032
deterministically, so the signatures are byte-for-byte identical. Why
OpenSSL first: measured on this project's 2-core box, ``cryptography`` signs
~20k and verifies ~8k messages/s, while pycryptodome's pure-Python-curve
Ed25519 verifies only ~600/s; the durable SQLite ledger signs *and* verifies
every entry and needs >= 1k entries/s (``benchmarks/ledger.py`` measures
both). Either library is imported lazily: ``import vcompute.verify`` does
not need it. :func:`verify` returns False on any malformed input; it never
raises.

Verification rules (the same answer on every backend). RFC 8032 leaves
implementations free to differ at the edges, and ours did: pycryptodome
checks the cofactored equation ``[8S] B = [8] R + [8h] A`` and accepts
``S = L``; OpenSSL checks the cofactorless one and compares ``R`` by its
bytes; neither refuses small-order public keys. :func:`verify` therefore
accepts ``(A, M, R || S)`` only if

1. ``A``, ``R || S`` and ``M`` are exact ``bytes``/``bytearray`` (``M``
   also ``memoryview``) of lengths 32 and 64: a subclass is refused, since
   it could show other bytes to us than to the library;
2. ``A`` is the canonical encoding (``y < p``; no sign bit on ``x = 0``)
   of a point of order exactly ``L`` (:func:`public_key_problem`): the 8
   small-order points in any of their 14 encodings, non-canonical
   encodings and mixed-order points ``aB + T`` are refused. A small-order
   key has no secret: a signature for it verifies for every message (the
   identity key) or for any message after ~8 tries, so whoever holds such
   a key could later disown what it signed, and anyone could act for it;
3. ``S < L`` (no malleable ``S + L``);
4. the **cofactorless** equation holds on encodings: the canonical
   encoding of ``[S] B - [h] A`` equals the 32 bytes ``R``, with
   ``h = SHA512(R || A || M) mod L``. A non-canonical or mixed-order ``R``
   never passes.

Why cofactorless: it is what OpenSSL, the fast backend, computes, and with
rule 2 the two equations differ only on an ``R`` with a torsion part,
which only a signer can produce (an honest one never does): refusing it
removes the last place where backends could split. The pycryptodome path
computes rule 4 itself with that library's point arithmetic instead of
calling its (cofactored) verifier; :func:`vcompute.core.ed25519.verify_strict`
is the pure-Python reference the tests hold both backends to
(``tests/core/test_signing.py``, ``tests/core/test_ed25519_vectors.py``).
Signing is unchanged: an honest signature satisfies every rule.

Example:
    >>> key = SigningKey.generate(seed=b"\\x01" * 32)
    >>> sig = key.sign(b"hello")
    >>> verify(key.public_bytes, b"hello", sig)
    True
    >>> verify(key.public_bytes, b"hellO", sig)
    False
"""

from __future__ import annotations

import functools
import hashlib
import os
import weakref
from typing import Any

__all__ = ["SigningKey", "backend", "built_public", "key_from_name", "public_key_problem", "verify"]

_BACKEND: str | None = None


def backend() -> str:
    """Which library signs: ``"cryptography"`` (preferred) or ``"pycryptodome"``.

    Raises:
        ImportError: if neither is installed (``pip install cryptography``).
    """
    global _BACKEND
    if _BACKEND is None:
        try:
            import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401

            _BACKEND = "cryptography"
        except ImportError:
            try:
                import Crypto.Signature.eddsa  # noqa: F401

                _BACKEND = "pycryptodome"
            except ImportError as e:
                raise ImportError("Ed25519 needs `cryptography` or `pycryptodome`: "
                                  "pip install 'vcompute[crypto]'") from e
    return _BACKEND


class SigningKey:
    """An Ed25519 private key.

    Args:
        seed: 32 secret bytes.

    Raises:
        ValueError: if ``seed`` is not 32 bytes.
    """

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, (bytes, bytearray)):
            raise ValueError("an Ed25519 seed is exactly 32 bytes")
        seed = bytes(seed)
        if len(seed) != 32:  # measured on the copy: a subclass's __len__ and __bytes__ may disagree
            raise ValueError("an Ed25519 seed is exactly 32 bytes")
        # Locals, not attributes read back: a subclass may make ``_key`` or ``public_bytes``
        # properties that answer something else than what was stored.
        if backend() == "cryptography":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            key = Ed25519PrivateKey.from_private_bytes(seed)
            pub = key.public_key().public_bytes_raw()
        else:
            from Crypto.PublicKey import ECC

            key = ECC.construct(curve="Ed25519", seed=seed)
            pub = key.public_key().export_key(format="raw")
        _remember_derived(pub)
        self._seed = seed
        self._key = key
        self.public_bytes: bytes = pub
        me = id(self)
        _BUILT[me] = (weakref.ref(self, functools.partial(_forget_built, me)), pub)

    @classmethod
    def generate(cls, seed: bytes | None = None) -> SigningKey:
        """A new key from ``seed`` (32 bytes) or from the OS's randomness."""
        return cls(seed if seed is not None else os.urandom(32))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        if _BACKEND == "cryptography":
            return self._key.sign(bytes(message))
        from Crypto.Signature import eddsa

        return eddsa.new(self._key, "rfc8032").sign(bytes(message))

    def derive_secret(self, label: str) -> bytes:
        """A 32-byte secret derived from this key for another scheme (e.g. an EVM account).

        Args:
            label: domain separator naming the use.

        Returns:
            ``SHA256("vcompute-derive:" || label || 0x00 || seed)``.

        Example:
            >>> k = SigningKey(b"\\x02" * 32)
            >>> k.derive_secret("evm") != k.derive_secret("bls")
            True
        """
        return hashlib.sha256(b"vcompute-derive:" + label.encode() + b"\x00" + self._seed).digest()

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_bytes.hex()[:16]}...)"


#: The key objects :class:`SigningKey`'s constructor built in this process, by ``id``: a weak
#: reference to each and the public key the signing library computed from its seed.
_BUILT: dict[int, tuple[Any, bytes]] = {}


def _forget_built(ident: int, ref: Any) -> None:
    ent = _BUILT.get(ident)
    if ent is not None and ent[0] is ref:  # (not a later object that reuses the id)
        del _BUILT[ident]


def built_public(key: object) -> bytes | None:
    """The public key ``key`` was built for from its secret seed in this process, or None.

    A :class:`SigningKey` (exactly that class, not a subclass) whose constructor ran in this
    process was given the secret seed and had the signing library compute the public key from
    it: whoever built it held the secret, and the object holds it. This is a proof of
    possession by construction, for in-process ledgers (:class:`~vcompute.ledger.base.KeyProofs`),
    which then need no signed challenge. The key is returned only while the object still shows
    it as its ``public_bytes``: a key object told to claim another key, a copy, a subclass or
    any other object gets None (and must prove itself by signing).

    Example:
        >>> k = key_from_name("alice")
        >>> built_public(k) == k.public_bytes
        True
        >>> class Claims:
        ...     public_bytes = k.public_bytes
        >>> built_public(Claims()) is None
        True
    """
    if type(key) is not SigningKey:
        return None
    ent = _BUILT.get(id(key))
    if ent is None or ent[0]() is not key:
        return None
    pub = getattr(key, "public_bytes", None)
    return ent[1] if type(pub) is bytes and pub == ent[1] else None


def key_from_name(name: str, *, salt: str = "vcompute") -> SigningKey:
    """A deterministic key for a named simulated agent (experiments only: not secret)."""
    return SigningKey(hashlib.sha256(f"{salt}:{name}".encode()).digest())


def public_key_problem(public: object) -> str | None:
    """Why ``public`` is not an acceptable Ed25519 public key, or None if it is.

    For code that binds a key to an account: refuse a key here rather than
    learn later that every signature "by" it is meaningless.

    Args:
        public: the candidate key (provider data: anything).

    Returns:
        None for the canonical encoding of a point of prime order ``L``;
        otherwise a reason a person can read.

    Example:
        >>> public_key_problem(key_from_name("alice").public_bytes) is None
        True
        >>> public_key_problem(bytes([1]) + bytes(31))
        'not a point of prime order (small-order or mixed-order point)'
    """
    if type(public) not in (bytes, bytearray) or len(public) != 32:
        return "not exactly 32 bytes (bytes or bytearray)"
    public = bytes(public)
    if public in _DERIVED:
        return None
    return _key_problem(public)


#: Public keys a signing library computed in :class:`SigningKey` from a seed, in this process.
#: Such a key is ``encode([s] B)`` for a clamped scalar ``s`` (a multiple of 8 in
#: ``[2^254, 2^255)``, never a multiple of the odd ``L``): canonical and of prime order by
#: construction, so :func:`public_key_problem` need not repeat the ~2 ms scalar multiplication
#: (a market opens one account per provider: 10^4 keys, ~20 s). Keyed by the bytes the library
#: returned, never by what an object later claims. Bounded: past the cap keys are checked in full.
_DERIVED: set[bytes] = set()
_DERIVED_CAP = 1 << 17


def _remember_derived(public: object) -> None:
    if type(public) is bytes and len(public) == 32 and len(_DERIVED) < _DERIVED_CAP:
        _DERIVED.add(public)


@functools.lru_cache(maxsize=4096)
def _key_problem(public: bytes) -> str | None:
    # cached: a ledger verifies many entries by few keys, and the check costs a scalar multiplication
    from vcompute.core import ed25519

    if not ed25519.is_canonical(public) or ed25519.decode(public) is None:
        return "not the canonical encoding of a curve point"
    if not ed25519.has_prime_order(public):
        return "not a point of prime order (small-order or mixed-order point)"
    return None


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by ``public``.

    Applies the strict rules of the module docstring on every backend;
    False (never an exception) on anything else.
    """
    return _verify_with(None, public, message, signature)


def _verify_with(which: str | None, public: object, message: object, signature: object) -> bool:
    """:func:`verify` on backend ``which`` (None: :func:`backend`); the tests compare backends."""
    try:
        if type(public) not in (bytes, bytearray) or len(public) != 32:
            return False
        if type(signature) not in (bytes, bytearray) or len(signature) != 64:
            return False
        if type(message) not in (bytes, bytearray, memoryview):
            return False
        public, signature, message = bytes(public), bytes(signature), bytes(message)
        from vcompute.core import ed25519

        if int.from_bytes(signature[32:], "little") >= ed25519.L:
            return False
        if not ed25519.is_canonical(signature[:32]) or public_key_problem(public) is not None:
            return False
        which = which or backend()
        if which == "cryptography":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
            return True
        if which == "pycryptodome":
            return _cofactorless_pycryptodome(public, message, signature)
        if which == "python":
            return ed25519.verify_strict(public, message, signature)
        raise ValueError(f"unknown Ed25519 backend {which!r}")
    except Exception:
        return False


def _cofactorless_pycryptodome(public: bytes, message: bytes, signature: bytes) -> bool:
    """Rule 4 with pycryptodome's C point arithmetic (its own verifier is cofactored)."""
    from Crypto.PublicKey.ECC import EccPoint

    from vcompute.core import ed25519

    x, y = ed25519.decode(public)[:2]
    a = EccPoint(x, y, "Ed25519")
    base = EccPoint(ed25519.B[0], ed25519.B[1], "Ed25519")
    h = ed25519.challenge(signature[:32], public, message)
    # -[h] A = [L - h] A because A has order L (checked by public_key_problem)
    q = base * int.from_bytes(signature[32:], "little") + a * (ed25519.L - h)
    qx, qy = int(q.x), int(q.y)
    return (qy | (qx & 1) << 255).to_bytes(32, "little") == signature[:32]

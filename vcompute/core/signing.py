"""Ed25519 signatures for claims and ledger entries.

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

Example:
    >>> key = SigningKey.generate(seed=b"\\x01" * 32)
    >>> sig = key.sign(b"hello")
    >>> verify(key.public_bytes, b"hello", sig)
    True
    >>> verify(key.public_bytes, b"hellO", sig)
    False
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["SigningKey", "backend", "key_from_name", "verify"]

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
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
            raise ValueError("an Ed25519 seed is exactly 32 bytes")
        self._seed = bytes(seed)
        if backend() == "cryptography":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            self._key = Ed25519PrivateKey.from_private_bytes(self._seed)
            self.public_bytes: bytes = self._key.public_key().public_bytes_raw()
        else:
            from Crypto.PublicKey import ECC

            self._key = ECC.construct(curve="Ed25519", seed=self._seed)
            self.public_bytes = self._key.public_key().export_key(format="raw")

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


def key_from_name(name: str, *, salt: str = "vcompute") -> SigningKey:
    """A deterministic key for a named simulated agent (experiments only: not secret)."""
    return SigningKey(hashlib.sha256(f"{salt}:{name}".encode()).digest())


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by ``public``."""
    try:
        if not (isinstance(public, (bytes, bytearray)) and len(public) == 32):
            return False
        if not (isinstance(signature, (bytes, bytearray)) and len(signature) == 64):
            return False
        if not isinstance(message, (bytes, bytearray, memoryview)):
            return False
        if backend() == "cryptography":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            Ed25519PublicKey.from_public_bytes(bytes(public)).verify(bytes(signature), bytes(message))
            return True
        from Crypto.Signature import eddsa

        key = eddsa.import_public_key(bytes(public))
        eddsa.new(key, "rfc8032").verify(bytes(message), bytes(signature))
        return True
    except Exception:
        return False

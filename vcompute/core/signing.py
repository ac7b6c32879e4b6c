"""Ed25519 signatures for claims and ledger entries.

Keys come from pycryptodome (imported lazily: ``import vcompute.verify``
does not need it). :func:`verify` returns False on any malformed input; it
never raises.

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

__all__ = ["SigningKey", "verify", "key_from_name"]


class SigningKey:
    """An Ed25519 private key.

    Args:
        seed: 32 secret bytes.

    Raises:
        ValueError: if ``seed`` is not 32 bytes.
    """

    def __init__(self, seed: bytes) -> None:
        from Crypto.PublicKey import ECC

        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
            raise ValueError("an Ed25519 seed is exactly 32 bytes")
        self._seed = bytes(seed)
        self._key = ECC.construct(curve="Ed25519", seed=self._seed)
        self.public_bytes: bytes = self._key.public_key().export_key(format="raw")

    @classmethod
    def generate(cls, seed: bytes | None = None) -> SigningKey:
        """A new key from ``seed`` (32 bytes) or from the OS's randomness."""
        return cls(seed if seed is not None else os.urandom(32))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        from Crypto.Signature import eddsa

        return eddsa.new(self._key, "rfc8032").sign(bytes(message))

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_bytes.hex()[:16]}...)"


def key_from_name(name: str, *, salt: str = "vcompute") -> SigningKey:
    """A deterministic key for a named simulated agent (experiments only: not secret)."""
    return SigningKey(hashlib.sha256(f"{salt}:{name}".encode()).digest())


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by ``public``."""
    try:
        from Crypto.Signature import eddsa

        if not (isinstance(public, (bytes, bytearray)) and len(public) == 32):
            return False
        if not (isinstance(signature, (bytes, bytearray)) and len(signature) == 64):
            return False
        key = eddsa.import_public_key(bytes(public))
        eddsa.new(key, "rfc8032").verify(bytes(message), bytes(signature))
        return True
    except Exception:
        return False

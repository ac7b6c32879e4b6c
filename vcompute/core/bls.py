"""BLS aggregate signatures: a committee of verifiers attests one verdict with one signature.

BLS12-381 with public keys in G1 (48 bytes) and signatures in G2 (96 bytes),
the IETF ciphersuite with proof of possession (``py_ecc``'s
``G2ProofOfPossession``, imported lazily). ``n`` signatures on the *same*
message aggregate into one 96-byte signature that verifies against the list
of public keys (:func:`verify_aggregate`) with two pairings, whatever ``n``.

Rogue-key attacks: an attacker who picks its public key as a function of
honest keys can forge an "aggregate" alone. The defence is proof of
possession: register a committee member's key only after
:func:`verify_possession` accepts its :meth:`BLSKey.prove_possession`.
:class:`Committee` does exactly that.

Every ``verify*`` function returns False on any malformed input; it never
raises. (py_ecc is pure Python: ~1 s per verification, so this is for
verdict attestation, not per-operation ledger signatures.)

Example:
    >>> keys = [BLSKey.from_name(n) for n in ("v1", "v2")]
    >>> msg = b"verdict: job 7 rejected"
    >>> agg = aggregate([k.sign(msg) for k in keys])
    >>> verify_aggregate([k.public_bytes for k in keys], msg, agg)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["BLSKey", "Committee", "aggregate", "verify", "verify_aggregate", "verify_possession"]


def _scheme():
    from py_ecc.bls import G2ProofOfPossession

    return G2ProofOfPossession


class BLSKey:
    """A BLS12-381 secret key.

    Args:
        seed: at least 32 secret bytes (key material for the IETF KeyGen).

    Raises:
        ValueError: if ``seed`` is shorter than 32 bytes.
    """

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, (bytes, bytearray)) or len(seed) < 32:
            raise ValueError("BLS key material must be at least 32 bytes")
        s = _scheme()
        self._sk = s.KeyGen(bytes(seed))
        self.public_bytes: bytes = bytes(s.SkToPk(self._sk))

    @classmethod
    def from_name(cls, name: str, *, salt: str = "vcompute-bls") -> BLSKey:
        """A deterministic key for a named simulated agent (experiments only: not secret).

        Args:
            name: the agent's name.
            salt: domain separator.

        Returns:
            The key derived from ``SHA256(salt:name)``.
        """
        return cls(hashlib.sha256(f"{salt}:{name}".encode()).digest())

    def sign(self, message: bytes) -> bytes:
        """The 96-byte signature of ``message``."""
        return bytes(_scheme().Sign(self._sk, bytes(message)))

    def prove_possession(self) -> bytes:
        """A 96-byte proof that the holder knows this key's secret (defeats rogue keys)."""
        return bytes(_scheme().PopProve(self._sk))

    def __repr__(self) -> str:
        return f"BLSKey(public={self.public_bytes.hex()[:16]}...)"


def _is_bytes(x: object, n: int) -> bool:
    # exact types: a subclass's __bytes__ could show one key to the check and another to the caller
    return type(x) in (bytes, bytearray) and len(x) == n


def aggregate(signatures: Sequence[bytes]) -> bytes:
    """Combine signatures (on one message, by distinct keys) into one 96-byte signature.

    Args:
        signatures: 96-byte signatures.

    Returns:
        The aggregate signature.

    Raises:
        ValueError: if there are none or one is not a valid G2 point encoding.
    """
    sigs = list(signatures)
    if not sigs or not all(_is_bytes(s, 96) for s in sigs):
        raise ValueError("aggregate needs at least one 96-byte BLS signature")
    try:
        return bytes(_scheme().Aggregate([bytes(s) for s in sigs]))
    except Exception as e:  # py_ecc raises several types for bad encodings
        raise ValueError(f"not a valid BLS signature encoding: {e}") from None


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public``'s signature of ``message`` (False on malformed input)."""
    try:
        if not (_is_bytes(public, 48) and _is_bytes(signature, 96) and type(message) in (bytes, bytearray)):
            return False
        return bool(_scheme().Verify(bytes(public), bytes(message), bytes(signature)))
    except Exception:
        return False


def verify_aggregate(publics: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` aggregates signatures of ``message`` by *all* of ``publics``.

    Only sound for keys whose possession was proven (see :class:`Committee`).
    Returns False on malformed input, duplicate keys or an empty key list; never raises.
    """
    try:
        if type(publics) not in (list, tuple) or not all(type(p) in (bytes, bytearray) for p in publics):
            return False
        keys = [bytes(p) for p in publics]
        if not keys or len(set(keys)) != len(keys) or not all(len(p) == 48 for p in keys):
            return False
        if not (_is_bytes(signature, 96) and type(message) in (bytes, bytearray)):
            return False
        return bool(_scheme().FastAggregateVerify(keys, bytes(message), bytes(signature)))
    except Exception:
        return False


def verify_possession(public: bytes, proof: bytes) -> bool:
    """Whether ``proof`` proves possession of ``public``'s secret key (False on malformed input)."""
    try:
        if not (_is_bytes(public, 48) and _is_bytes(proof, 96)):
            return False
        return bool(_scheme().PopVerify(bytes(public), bytes(proof)))
    except Exception:
        return False


class Committee:
    """A set of verifier keys, each admitted only with a valid proof of possession,
    that attests verdicts with one aggregate signature and a quorum.

    Args:
        threshold: how many members must sign for an attestation to count.

    Raises:
        ValueError: if ``threshold`` < 1.
    """

    def __init__(self, threshold: int) -> None:
        if not isinstance(threshold, int) or threshold < 1:
            raise ValueError("threshold must be a positive int")
        self.threshold = threshold
        self.members: list[bytes] = []

    def admit(self, public: bytes, proof: bytes) -> None:
        """Add a member.

        Args:
            public: its 48-byte public key.
            proof: its :meth:`BLSKey.prove_possession`.

        Raises:
            TypeError: if ``public`` is not exactly bytes or bytearray (a subclass
                could present a proven key to the check and a rogue one to the list).
            ValueError: if the proof does not verify or the key is already a member.
        """
        if type(public) not in (bytes, bytearray):
            raise TypeError(f"a member's public key is bytes, not {type(public).__name__}")
        public = bytes(public)
        if public in self.members:
            raise ValueError("already a member")
        if not verify_possession(public, proof):
            raise ValueError("proof of possession does not verify; a key without one enables rogue-key forgeries")
        self.members.append(public)

    def attests(self, signers: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        """Whether at least ``threshold`` distinct members signed ``message`` into ``signature``.

        Returns False (never raises) for non-members, too few signers or a bad signature.
        """
        if type(signers) not in (list, tuple) or not all(type(s) in (bytes, bytearray) for s in signers):
            return False
        keys = [bytes(s) for s in signers]
        if len(set(keys)) < self.threshold or not all(k in self.members for k in keys):
            return False
        return verify_aggregate(keys, message, signature)

"""The signed log format of the SQLite ledger: genesis, entries and checkpoints (anchors).

A ledger file starts from its **genesis**, the canonical JSON of its metadata
(format, random ledger id, minter, withdraw delay); ``genesis_hash`` is the
``prev`` of entry 0. Every **entry** is signed by the party that asked for it
over :func:`entry_bytes`, which names the ledger, the entry's position
(``seq``), its ledger time and the hash of its predecessor, so the signature
pins the entry to one place in one history: an entry cannot be dropped,
moved, re-timed or replayed on another ledger without re-signing everything
after it, and nobody but each entry's signer can re-sign it. Changing the
metadata (swapping the minter, shortening the withdraw delay) changes the
genesis hash and so breaks entry 0's signature and, through the chain, every
later one.

What the signatures cannot show is the tail that is *missing*: the owner of
the file can cut it back to any earlier entry. A :class:`Checkpoint` fixes
that: the head hash at a given length, kept by a party (optionally signed by
it) or posted as a commitment on another ledger. ``verify_chain(path,
anchor=cp)`` then fails unless the file still holds that exact prefix.

Example:
    >>> from vcompute.core.signing import key_from_name
    >>> g = genesis_hash({"format": FORMAT, "ledger_id": "00" * 16, "minter": "11" * 32, "withdraw_delay": 0.0})
    >>> cp = Checkpoint("00" * 16, g, 0, g).signed_by(key_from_name("auditor"))
    >>> cp.signature_ok(), Checkpoint.from_json(cp.to_json()) == cp
    (True, True)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from vcompute.core.hashing import canonical_json
from vcompute.core.signing import verify as verify_signature

__all__ = ["FORMAT", "META_KEYS", "Checkpoint", "entry_bytes", "entry_hash", "genesis_hash", "is_hex"]

#: The ledger file format this code reads and writes (stored as ``meta.format``).
FORMAT = "vcompute-ledger-sqlite/2"
#: The metadata a ledger file's genesis consists of, exactly.
META_KEYS = ("format", "ledger_id", "minter", "withdraw_delay")


def genesis_hash(meta: dict[str, Any]) -> str:
    """``SHA256("vcompute-ledger-genesis:" || canonical_json(meta))`` in hex: the ``prev`` of entry 0.

    Args:
        meta: ``{"format", "ledger_id", "minter", "withdraw_delay"}`` (the delay a float).
    """
    return hashlib.sha256(b"vcompute-ledger-genesis:" + canonical_json(meta)).hexdigest()


def entry_bytes(ledger_id: str, seq: int, time_: float, prev: str, kind: str, actor_hex: str, op_id: str,
                args: Any) -> bytes:
    """The bytes the requesting party signs: the request *and* its place in this ledger's history.

    Args:
        ledger_id: the ledger's random id.
        seq: the entry's position (0-based).
        time_: the ledger time it is applied at.
        prev: hash of the previous entry (the genesis hash for entry 0).
        kind: the operation.
        actor_hex: the signer's public key, hex.
        op_id: the client-chosen operation id.
        args: the normalised arguments (a list or tuple).

    Returns:
        Canonical JSON.
    """
    return canonical_json({"ledger": ledger_id, "seq": seq, "time": time_, "prev": prev, "kind": kind,
                           "actor": actor_hex, "op_id": op_id, "args": list(args)})


def entry_hash(message: bytes, sig_hex: str) -> str:
    """``SHA256("vcompute-ledger-entry:" || message || signature)`` in hex: one link of the chain."""
    return hashlib.sha256(b"vcompute-ledger-entry:" + message + bytes.fromhex(sig_hex)).hexdigest()


def is_hex(s: object, n: int) -> bool:
    """Whether ``s`` is exactly a ``str`` of ``n`` lowercase hex digits."""
    return type(s) is str and len(s) == n and all(c in "0123456789abcdef" for c in s)


@dataclass(frozen=True)
class Checkpoint:
    """An anchor: the head of a ledger's log at a given length, which parties keep.

    Attributes:
        ledger_id: the ledger's id.
        genesis: its genesis hash (binds the metadata: minter, withdraw delay).
        entries: how many entries the log had.
        head: the hash of entry ``entries - 1`` (the genesis hash when ``entries == 0``).
        signer: hex public key of whoever vouches for it, or ``""`` (a record the holder trusts).
        sig: the signer's Ed25519 signature over :meth:`body`, hex, or ``""``.
    """

    ledger_id: str
    genesis: str
    entries: int
    head: str
    signer: str = ""
    sig: str = ""

    def body(self) -> bytes:
        """The signed bytes (everything but the signature)."""
        return canonical_json({"type": "vcompute-ledger-checkpoint", "ledger": self.ledger_id,
                               "genesis": self.genesis, "entries": self.entries, "head": self.head})

    def signed_by(self, key: Any) -> Checkpoint:
        """This checkpoint signed by ``key`` (a :class:`~vcompute.core.signing.SigningKey`).

        Raises:
            ValueError: if ``key``'s signature does not verify against its public key.
        """
        pub = bytes(key.public_bytes)
        sig = bytes(key.sign(self.body()))
        if not verify_signature(pub, self.body(), sig):
            raise ValueError("key's signature does not verify; pass a vcompute.core.signing.SigningKey")
        return replace(self, signer=pub.hex(), sig=sig.hex())

    def signature_ok(self) -> bool:
        """Whether the checkpoint carries a valid signature by ``signer`` (False if unsigned)."""
        if not (is_hex(self.signer, 64) and is_hex(self.sig, 128)):
            return False
        return verify_signature(bytes.fromhex(self.signer), self.body(), bytes.fromhex(self.sig))

    def to_json(self) -> str:
        """Canonical JSON text (what a party stores)."""
        return canonical_json(asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Checkpoint:
        """Parse :meth:`to_json` output.

        Raises:
            ValueError: naming the field that is missing or malformed.
        """
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as e:
            raise ValueError(f"a checkpoint is JSON text: {e}") from None
        if not isinstance(d, dict):
            raise ValueError("a checkpoint is a JSON object")
        cp = cls(**{k: d.get(k, "") for k in ("ledger_id", "genesis", "head", "signer", "sig")},
                 entries=d.get("entries"))
        cp.check()
        return cp

    @classmethod
    def from_commitment(cls, commitment: Any) -> Checkpoint:
        """The checkpoint posted to another ledger by ``SQLiteLedger.anchor`` (trusted as that ledger is).

        Raises:
            ValueError: if the commitment is not a ledger anchor.
        """
        md = commitment.metadata
        if not isinstance(md, dict) or md.get("type") != "vcompute-ledger-anchor":
            raise ValueError(f"commitment {commitment.id!r} is not a ledger anchor")
        cp = cls(md.get("ledger_id"), md.get("genesis"), md.get("entries"), bytes(commitment.digest).hex())
        cp.check()
        return cp

    def check(self) -> None:
        """Raise ``ValueError`` naming the first malformed field."""
        if not is_hex(self.ledger_id, 32):
            raise ValueError(f"checkpoint ledger_id must be 32 hex digits, got {self.ledger_id!r:.40}")
        for name in ("genesis", "head"):
            if not is_hex(getattr(self, name), 64):
                raise ValueError(f"checkpoint {name} must be 64 hex digits, got {getattr(self, name)!r:.70}")
        if type(self.entries) is not int or self.entries < 0:
            raise ValueError(f"checkpoint entries must be an int >= 0, got {self.entries!r}")
        if (self.signer or self.sig) and not (is_hex(self.signer, 64) and is_hex(self.sig, 128)):
            raise ValueError("checkpoint signer/sig must be 64/128 hex digits (or both empty)")

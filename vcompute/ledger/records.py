"""Plain records returned by ledger queries, and argument validation shared by backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The argument rules live in one place, shared by every backend (re-exported here).
from vcompute.ledger.canonical import (
    MAX_AMOUNT,
    check_amount,
    check_digest,
    check_name,
    check_op_id,
    check_time,
)

__all__ = [
    "MAX_AMOUNT",
    "MAX_SUPPLY",
    "Account",
    "Commitment",
    "Escrow",
    "Receipt",
    "Stake",
    "check_amount",
    "check_digest",
    "check_name",
    "check_op_id",
]

#: Largest total supply (SQLite stores signed 64-bit integers).
MAX_SUPPLY = 2**63 - 1


@dataclass(frozen=True)
class Receipt:
    """Proof that an operation was applied (or had been, for a retry).

    Attributes:
        op_id: the client-chosen operation id.
        kind: the operation (``"transfer"``, ``"escrow_open"``, ...).
        seq: its position in the ledger's log (0-based).
        replayed: True when this call was a retry of an already applied
            operation and changed nothing.
        ref: a backend reference (an EVM transaction hash), or ``""``.
    """

    op_id: str
    kind: str
    seq: int
    replayed: bool = False
    ref: str = ""


@dataclass(frozen=True)
class Account:
    """An account: a name bound to an Ed25519 public key.

    Attributes:
        name: the account name.
        public_key: the 32-byte public key whose holder acts for it.
    """

    name: str
    public_key: bytes


@dataclass(frozen=True)
class Escrow:
    """A payment held for a job.

    Attributes:
        id: client-chosen escrow id.
        consumer: the account that paid.
        provider: the account paid on release.
        verifier: the account that may also release, refund or slash, or None.
        amount: the amount held.
        deadline: ledger time after which the consumer may take a refund.
        state: ``"open"``, ``"released"`` or ``"refunded"``.
        locked: provider stake currently locked against this escrow.
    """

    id: str
    consumer: str
    provider: str
    verifier: str | None
    amount: int
    deadline: float
    state: str
    locked: int = 0


@dataclass(frozen=True)
class Stake:
    """An account's stake.

    Attributes:
        free: deposited and neither locked nor unbonding.
        locked: locked against open escrows (slashable).
        unbonding: on its way out; withdrawable once ``ready_at`` has passed.
        ready_at: ledger time when ``unbonding`` may be withdrawn.
    """

    free: int = 0
    locked: int = 0
    unbonding: int = 0
    ready_at: float = 0.0

    @property
    def total(self) -> int:
        """All stake held for the account."""
        return self.free + self.locked + self.unbonding


@dataclass(frozen=True)
class Commitment:
    """A posted 32-byte commitment.

    Attributes:
        id: client-chosen commitment id.
        owner: the account that posted it.
        digest: the 32 committed bytes.
        metadata: a small JSON-able dict posted with it.
        time: ledger time when posted.
    """

    id: str
    owner: str
    digest: bytes
    metadata: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0

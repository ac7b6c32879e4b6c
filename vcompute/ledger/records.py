"""Plain records returned by ledger queries, and argument validation shared by backends."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from vcompute.ledger.errors import InvalidAmount, InvalidRequest

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

#: Largest amount one operation may move (fits every backend's integers).
MAX_AMOUNT = 10**18
#: Largest total supply (SQLite stores signed 64-bit integers).
MAX_SUPPLY = 2**63 - 1

_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


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


def check_name(x: object, what: str = "account name") -> str:
    """Validate a name (account, escrow or commitment id).

    Raises:
        InvalidRequest: unless ``x`` is 1-64 characters of ``A-Za-z0-9_.:@-``.
    """
    if not isinstance(x, str) or not _NAME.match(x):
        raise InvalidRequest(f"{what} must be 1-64 characters of A-Za-z0-9_.:@-, got {x!r}")
    return x


def check_op_id(x: object) -> str:
    """Validate a client-chosen operation id.

    Raises:
        InvalidRequest: unless ``x`` is a non-empty string of at most 128 characters.
    """
    if not isinstance(x, str) or not 0 < len(x) <= 128:
        raise InvalidRequest(f"op_id must be a non-empty string of at most 128 characters, got {x!r}; "
                             "choose one per logical operation and reuse it only to retry")
    return x


def check_amount(x: object) -> int:
    """Validate an amount.

    Raises:
        InvalidAmount: unless ``x`` is an int (not bool) in ``1..MAX_AMOUNT``.
    """
    if isinstance(x, bool) or not isinstance(x, int):
        raise InvalidAmount(f"amount must be an int, got {type(x).__name__} {x!r}")
    if not 0 < x <= MAX_AMOUNT:
        raise InvalidAmount(f"amount must be in 1..{MAX_AMOUNT}, got {x}")
    return x


def check_time(x: object, what: str = "deadline") -> float:
    """Validate a ledger time (finite, non-negative number).

    Raises:
        InvalidRequest: otherwise.
    """
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0 or x > 2**40:
        raise InvalidRequest(f"{what} must be a finite number of seconds in 0..2**40, got {x!r}")
    return float(x)


def check_digest(x: object) -> bytes:
    """Validate a 32-byte digest (bytes, or 64 hex characters).

    Raises:
        InvalidRequest: otherwise.
    """
    if isinstance(x, str):
        try:
            x = bytes.fromhex(x)
        except ValueError:
            raise InvalidRequest("digest must be 32 bytes or 64 hex characters") from None
    if not isinstance(x, (bytes, bytearray)) or len(x) != 32:
        raise InvalidRequest(f"digest must be exactly 32 bytes, got {x!r:.60}")
    return bytes(x)

"""Ledger errors: each says what was refused and what to do next.

Every refused operation raises a :class:`LedgerError` subclass *before*
anything changes, on every backend.
"""

from __future__ import annotations

__all__ = [
    "EscrowStateError",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidRequest",
    "InvalidURL",
    "LedgerError",
    "NotFound",
    "OperationConflict",
    "Unauthorized",
    "UnknownAccount",
]


class LedgerError(Exception):
    """Base class: an operation was refused and the ledger is unchanged."""


class InvalidRequest(LedgerError, ValueError):
    """A malformed argument (bad name, op id, digest, deadline, metadata)."""


class InvalidAmount(InvalidRequest):
    """An amount that is not an int in ``1..MAX_AMOUNT``."""


class InvalidURL(LedgerError, ValueError):
    """A ledger URL with an unknown scheme or a malformed location."""


class UnknownAccount(LedgerError, KeyError):
    """No account has that name, or the signing key is bound to no account."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotFound(LedgerError, KeyError):
    """No escrow or commitment has that id."""

    def __str__(self) -> str:
        return str(self.args[0])


class Unauthorized(LedgerError, PermissionError):
    """The signing key may not perform this operation."""


class InsufficientFunds(LedgerError):
    """A balance, stake or lock is smaller than the amount asked for."""


class EscrowStateError(LedgerError):
    """The escrow, stake or commitment is not in a state that allows this operation."""


class OperationConflict(LedgerError):
    """An operation id was reused for a *different* request by the same key."""

"""Read-only queries shared by the ledgers that keep a :class:`~vcompute.ledger.state.LedgerState`."""

from __future__ import annotations

from vcompute.ledger.records import Account, Commitment, Escrow, Stake
from vcompute.ledger.state import LedgerState

__all__ = ["StateQueries"]


class StateQueries:
    """Read-only queries shared by the ledgers that keep a :class:`LedgerState`.

    The memory and SQLite backends apply every operation to one
    ``self.state`` (SQLite also persists it), so their queries are the same.
    """

    state: LedgerState


    def account(self, name: str) -> Account:
        """The account ``name``."""
        return self.state.account(name)

    def accounts(self) -> list[str]:
        """Names of all accounts, sorted."""
        return sorted(self.state.pub_of)

    def balance(self, name: str) -> int:
        """Spendable balance of ``name``."""
        return self.state.balance(name)

    def escrow(self, escrow_id: str) -> Escrow:
        """The escrow ``escrow_id``."""
        return self.state.escrow(escrow_id)

    def stake(self, name: str) -> Stake:
        """The stake of ``name``."""
        return self.state.stake(name)

    def commitment(self, commitment_id: str) -> Commitment:
        """The commitment ``commitment_id``."""
        return self.state.commitment(commitment_id)

    def total_supply(self) -> int:
        """Minted minus burned."""
        return self.state.supply

    def holdings(self) -> int:
        """Balances + open escrows + stakes."""
        return self.state.holdings()

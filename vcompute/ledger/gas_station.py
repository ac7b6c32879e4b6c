"""Gas for the EVM ledger's senders: each funded with what its own ledger transactions need, never more.

A ledger key acts on chain through the secp256k1 account derived from it,
which needs ether for gas. On a dev node (anvil, hardhat, eth-tester) the
ledger client pays that from the node's first account. Paying a fixed sum
to every address that opens an account (as this client once did: 100 ETH)
lets anyone drain the node's account: open accounts with fresh keys, then
sign plain ether transfers with the derived keys. :class:`GasStation` closes
that class:

- a sender is topped up to a small **float** (the up-front gas of
  ``FLOAT_TXS`` of its transactions at the fee this client signs with), only
  when it cannot pay its next transaction, and only by the shortfall;
- it refills only senders whose every transaction this client signed: a
  sender whose nonce on chain passed the nonces this client signed for it
  sent transactions of its own (it may have moved its float out, or
  installed code that can) and is never refilled (``GasSpentElsewhere``).
  The nonce, not the balance, tells: a receipt lost in transit leaves the
  balance lower than booked, never the nonce higher than signed;
- everything it ever pays out is capped per ledger object (``fund_cap``,
  ether; 0 funds nothing: every sender then brings its own gas).

So a sender's key extracts at most one float, and all senders together at
most ``fund_cap`` (``tests/ledger/test_gas_station.py``). The embedded revm
chain charges no gas (its client calls the contract directly) and needs none
of this.
"""

from __future__ import annotations

from typing import Any

from vcompute.ledger.errors import LedgerError

__all__ = ["FLOAT_TXS", "GasSpentElsewhere", "GasStation", "OutOfGasFunds"]

#: A sender's float covers the up-front gas of this many of its transactions.
FLOAT_TXS = 8
#: Tip per gas (wei): dev nodes and L2 sequencers order first come, first served.
_TIP = 1
_WEI_PER_ETH = 10**18


class OutOfGasFunds(LedgerError):
    """The station may not fund a sender (cap reached, or funding switched off); fund it yourself."""


class GasSpentElsewhere(OutOfGasFunds):
    """A sender holds less ether than this client's own transactions left it: it is not refilled."""


class GasStation:
    """Funds the ledger client's senders from the node's account (see the module docstring).

    Args:
        chain: the transport (``balance``, ``send_from_node``, optionally ``base_fee``).
        gas_limit: the gas limit of every ledger transaction.
        fund_cap: ether this station may pay out in all (0: none; senders fund themselves).

    Raises:
        ValueError: for a negative or non-finite ``fund_cap``.
    """

    def __init__(self, chain: Any, *, gas_limit: int, fund_cap: float) -> None:
        if isinstance(fund_cap, bool) or not (isinstance(fund_cap, (int, float)) and 0 <= fund_cap < 10**9):
            raise ValueError(f"fund_cap is ether in 0..1e9 the ledger may spend on its senders' gas, got {fund_cap!r}")
        self.chain = chain
        base = getattr(chain, "base_fee", None)
        # Twice the base fee leaves room for six full blocks of growth (12.5 % each) before a refusal.
        self.tip = _TIP
        self.max_fee = 2 * int(base()) + self.tip if base is not None else 10**12
        self.gas_limit = int(gas_limit)
        #: wei a sender must hold to send one transaction (the node checks gas_limit x max_fee up front)
        self.need = self.gas_limit * self.max_fee
        self.float = FLOAT_TXS * self.need
        self.cap = int(fund_cap * _WEI_PER_ETH)
        #: wei paid out so far
        self.funded = 0
        self._expected: dict[str, int] = {}
        self._spent_elsewhere: set[str] = set()
        self._clients: set[str] = set()  # senders this station funded (refilled when their gas runs low)
        self._signed: dict[str, int] = {}  # sender -> 1 + the highest nonce this client signed for it

    def ready(self, sender: str, *, opening: bool = False) -> None:
        """Make sure ``sender`` can pay for its next transaction, topping it up if this station may.

        Only a sender opening its account (``opening``) or one this station funded before
        is topped up; any other is left to the node, which refuses a sender without gas.

        Raises:
            GasSpentElsewhere: if it cannot pay and has sent transactions this client did not sign.
            OutOfGasFunds: if it cannot pay and funding it would pass the cap.
        """
        exp = self._expected.get(sender)
        if exp is not None and exp >= self.need:
            return
        bal = int(self.chain.balance(sender))
        self._expected[sender] = bal
        if bal >= self.need or not (opening or sender in self._clients):
            return
        if sender in self._spent_elsewhere or int(self.chain.nonce(sender)) > self._signed.get(sender, 0):
            self._spent_elsewhere.add(sender)
            raise GasSpentElsewhere(f"{sender} sent transactions this ledger client did not sign (it may have "
                                    "moved out the gas it was funded with); it is not refilled: send it ether "
                                    "for gas yourself")
        top_up = self.float - bal
        if self.funded + top_up > self.cap:
            raise OutOfGasFunds(f"{sender} holds {bal} wei, {self.need} are needed for a transaction, and funding "
                                f"it would pass this ledger's fund_cap ({self.cap / _WEI_PER_ETH:g} ETH); send it "
                                "ether for gas, or open the ledger with a larger fund_cap")
        self.chain.send_from_node({"to": sender, "value": top_up})
        self.funded += top_up
        self._clients.add(sender)
        self._expected[sender] = bal + top_up

    def signed(self, sender: str, nonce: int) -> None:
        """Transaction ``nonce`` of ``sender``, signed by this client, is on chain (mined, even if its
        receipt was lost on the way back)."""
        self._signed[sender] = max(self._signed.get(sender, 0), int(nonce) + 1)

    def refused(self, sender: str, *, opening: bool = False) -> None:
        """The node refused or lost a transaction of ``sender``: read its balance (and the base fee)
        again, and top it up if it is short (a lost receipt's gas was never booked).

        Raises:
            GasSpentElsewhere, OutOfGasFunds: as :meth:`ready`.
        """
        self._expected.pop(sender, None)
        base = getattr(self.chain, "base_fee", None)
        if base is not None and 2 * int(base()) + self.tip > self.max_fee:  # a busy chain's base fee rose
            self.max_fee = 2 * int(base()) + self.tip
            self.need = self.gas_limit * self.max_fee
            self.float = FLOAT_TXS * self.need
        self.ready(sender, opening=opening)

    def charged(self, sender: str, receipt: dict) -> None:
        """Book the gas a receipt of ``sender``'s transaction charged (an upper bound if it lacks the price)."""
        used = receipt.get("gasUsed", receipt.get("gas_used"))
        price = receipt.get("effectiveGasPrice", receipt.get("effective_gas_price"))
        cost = int(used if used is not None else self.gas_limit) * int(price if price is not None else self.max_fee)
        if sender in self._expected:
            self._expected[sender] -= cost

    def forget(self, funded: int | None = None) -> None:
        """Drop the tracked balances after a chain revert (they are read again); ``funded``: what
        had been paid out at the snapshot reverted to (the payments since were reverted too)."""
        self._expected.clear()
        if funded is not None:
            self.funded = int(funded)

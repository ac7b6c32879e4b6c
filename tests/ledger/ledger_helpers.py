"""Helpers shared by the ledger tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import vcompute.ledger as vl
from vcompute.core.signing import key_from_name

NAMES = ("alice", "bob", "vera", "trez", "mallory")


class Parties:
    """Named keys for the usual cast: consumer alice, provider bob, verifier vera,
    treasury trez and stranger mallory, each with an account and 1000 units."""

    def __init__(self, led, fund: int = 1000, setup: bool = True) -> None:
        self.minter = vl.default_minter()
        self.keys = {n: key_from_name(n) for n in NAMES}
        for n, k in self.keys.items() if setup else ():
            led.open_account(k, n, op_id=f"open-{n}")
            if fund:
                led.mint(self.minter, n, fund, op_id=f"fund-{n}")

    def __getattr__(self, name: str):
        try:
            return self.__dict__["keys"][name]
        except KeyError:
            raise AttributeError(name) from None


def snapshot(led, escrows=(), commitments=()):
    """Everything observable about a ledger, for "nothing changed" checks."""
    out = {"supply": led.total_supply(), "holdings": led.holdings()}
    for n in led.accounts():
        out[f"bal/{n}"] = led.balance(n)
        out[f"stk/{n}"] = led.stake(n)
    for e in escrows:
        try:
            out[f"esc/{e}"] = led.escrow(e)
        except vl.NotFound:
            out[f"esc/{e}"] = None
    for c in commitments:
        try:
            out[f"com/{c}"] = led.commitment(c)
        except vl.NotFound:
            out[f"com/{c}"] = None
    return out


def fresh_parties(led):
    """``Parties(led)``; on the EVM the setup runs once and is then restored from a chain snapshot."""
    if not led.url.startswith("evm") or led.url.startswith("evm+"):
        # A node (anvil) drops every snapshot newer than the one it reverts to, so the parties'
        # snapshot would not survive the next test's reset: set them up afresh there.
        return Parties(led)
    snap = getattr(led, "_parties_snapshot", None)
    if snap is None:
        led.reset()
        p = Parties(led)
    else:
        led.rollback(snap)
        p = Parties(led, setup=False)
    led._parties_snapshot = led.checkpoint()  # reverting consumes a snapshot: take it again
    return p

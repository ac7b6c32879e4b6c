"""Every movement of money in a market run, through a :class:`vcompute.ledger.Ledger`.

The market never keeps balances of its own: consumers, providers,
auditors and the protocol treasury are ledger accounts, and every payment,
refund and slash is a ledger operation with a fresh operation id. The
``arbiter`` account is each escrow's designated verifier: it executes the
verdicts the auditors reach (release, refund, slash), as a settlement
contract would. Money is conserved by the ledger's own rules;
:meth:`Settlement.conservation` measures it at the end of each run (the
run reports ``ledger_conserved`` from it, 0 when money was created or
lost, rather than raising before anything is reported).
"""

from __future__ import annotations

from typing import Any

from vcompute.ledger.canonical import _NAME, MAX_AMOUNT

__all__ = ["Settlement", "ledger_url"]


class Settlement:
    """Accounts and settlement operations of one market run.

    Args:
        url: the ledger URL (``memory://``, ``sqlite:///run.db``, ``evm://tester``).
        clock: the simulation clock (``lambda: env.now``) for escrow deadlines.

    Example:
        >>> s = Settlement("memory://", clock=lambda: 0.0)
        >>> s.open_account("alice", 100); s.open_account("bob", 0)
        >>> s.open_job("j1", "alice", "bob", amount=30, deadline=10.0, stake=0)
        True
        >>> s.release("j1"); s.balance("bob"), s.check()
        (30, 100)
    """

    def __init__(self, url: str, *, clock: Any) -> None:
        import vcompute.ledger as vl
        from vcompute.core.signing import key_from_name

        self._vl = vl
        self._key_from_name = key_from_name
        # EVM ledgers keep block time; the others follow the simulation clock.
        self.follows_clock = not url.startswith("evm")
        self.clock = clock
        self.ledger = vl.open(url, clock=clock) if self.follows_clock else vl.open(url)
        self.minter = vl.default_minter()
        self.keys: dict[str, Any] = {}
        # The trusted path (memory:// only, the backend of large runs): each account's key as
        # the ledger proved it when this object opened the account, so the per-job operations
        # go through MemoryLedger.apply_proven (see _ours).
        from vcompute.ledger.memory import MemoryLedger

        self._mem = self.ledger if type(self.ledger) is MemoryLedger else None
        self._pub: dict[str, bytes] = {}
        self._minter_pub: bytes | None = None
        self._op = 0
        self.minted = 0
        self.arbiter = "arbiter"
        self.treasury = "treasury"
        self.open_account(self.arbiter, 0)
        self.open_account(self.treasury, 0)

    def _id(self) -> str:
        self._op += 1
        return f"op{self._op}"

    def _ours(self, name: object) -> bool:
        # An account this object opened, named by the exact str: what the trusted path may pass on
        # unchecked (a str subclass could equal one name in a dict and another in the ledger's rules).
        return type(name) is str and name in self._pub

    @property
    def ops(self) -> int:
        """Ledger operations made so far (what settlement gas is charged on)."""
        return self._op

    def locked(self, escrow_id: str) -> int:
        """Stake locked against ``escrow_id``."""
        return self.ledger.escrow(escrow_id).locked

    def deadline(self, escrow_id: str) -> float:
        """Simulated time after which the consumer may reclaim ``escrow_id`` itself.

        EVM ledgers keep block time, not simulation time: there the arbiter
        refunds at once (see :meth:`refund`).
        """
        return float(self.ledger.escrow(escrow_id).deadline) if self.follows_clock else float(self.clock())

    def open_account(self, name: str, amount: int) -> None:
        """Open ``name`` (with a key derived from the name) and mint ``amount`` into it."""
        key = self._key_from_name(name, salt="vcompute-market")
        self.keys[name] = key
        self.ledger.open_account(key, name, op_id=self._id())
        if self._mem is not None:  # the account exists, so ``name`` passed the ledger's name check
            self._pub[name] = self._mem.prove(key)
        if amount > 0:
            amount = int(amount)
            if self._mem is not None and self._ours(name) and _amount(amount):
                if self._minter_pub is None:
                    self._minter_pub = self._mem.prove(self.minter)
                self._mem.apply_proven("mint", self._minter_pub, self._id(), (name, amount))
            else:
                self.ledger.mint(self.minter, name, amount, op_id=self._id())
            self.minted += amount

    def balance(self, name: str) -> int:
        """Spendable balance of ``name``."""
        return self.ledger.balance(name)

    def worth(self, name: str) -> int:
        """Everything ``name`` holds on the ledger: balance plus all of its stake."""
        return self.ledger.balance(name) + self.ledger.stake(name).total

    def in_escrow(self) -> int:
        """Money still held in open escrows (0 once every job is settled)."""
        return int(self.ledger.holdings()) - sum(self.worth(a) for a in self.ledger.accounts())

    def free_stake(self, name: str) -> int:
        """Free (unlocked) stake of ``name``."""
        if self._mem is not None and type(name) is str and name in self._pub:  # self._ours(name), inline
            # The memory ledger's own row (LedgerState.stk: [free, locked, unbonding, ready_at]), read
            # in place of building a Stake record: asked before every match of a run.
            s = self._mem.state.stk.get(name)
            return 0 if s is None else s[0]
        return self.ledger.stake(name).free

    def deposit_stake(self, name: str, amount: int) -> bool:
        """Move ``amount`` of ``name``'s balance into stake; False if it cannot."""
        if amount <= 0:
            return True
        amount = int(amount)
        try:
            if self._mem is not None and self._ours(name) and _amount(amount):
                self._mem.apply_proven("stake_deposit", self._pub[name], self._id(), (amount,))
            else:
                self.ledger.stake_deposit(self.keys[name], amount, op_id=self._id())
        except self._vl.InsufficientFunds:
            return False
        return True

    def open_job(self, escrow_id: str, consumer: str, provider: str, *, amount: int, deadline: float,
                 stake: int) -> bool:
        """Escrow ``amount`` from ``consumer`` for ``provider`` and lock its ``stake``.

        Returns:
            False (and nothing stays changed) if the consumer cannot pay or the
            provider cannot lock the stake.
        """
        led = self.ledger
        if not self.follows_clock:
            deadline = led.now() + max(1.0, deadline - self.clock())
        mem, pub = self._mem, self._pub
        # self._ours(consumer), self._ours(provider), _name(escrow_id), _amount(amount): inline (once per job).
        if (mem is not None and type(consumer) is str and consumer in pub and type(provider) is str
                and provider in pub and type(escrow_id) is str
                and _NAME.fullmatch(escrow_id) is not None and type(amount) is int and 0 < amount <= MAX_AMOUNT
                and type(deadline) is float and 0.0 <= deadline <= 2.0**40 and type(stake) is int
                and 0 <= stake <= MAX_AMOUNT):
            n = self._op + 1  # self._id(), inline (twice per job of a run)
            self._op = n
            try:
                mem.apply_proven("escrow_open", pub[consumer], f"op{n}",
                                 (escrow_id, provider, amount, deadline + 0.0, self.arbiter))
            except self._vl.InsufficientFunds:
                return False
            if stake > 0:
                n += 1
                self._op = n
                try:
                    mem.apply_proven("stake_lock", pub[provider], f"op{n}", (escrow_id, stake))
                except self._vl.InsufficientFunds:
                    mem.apply_proven("escrow_refund", pub[self.arbiter], self._id(), (escrow_id,))
                    return False
            return True
        try:
            led.escrow_open(self.keys[consumer], escrow_id, provider=provider, amount=int(amount),
                            deadline=float(deadline), verifier=self.arbiter, op_id=self._id())
        except self._vl.InsufficientFunds:
            return False
        if stake > 0:
            try:
                led.stake_lock(self.keys[provider], escrow_id, int(stake), op_id=self._id())
            except self._vl.InsufficientFunds:
                led.escrow_refund(self.keys[self.arbiter], escrow_id, op_id=self._id())
                return False
        return True

    def release(self, escrow_id: str) -> None:
        """Pay the escrow to its provider (accepted verdict); frees the locked stake."""
        if self._mem is not None and type(escrow_id) is str and _NAME.fullmatch(escrow_id) is not None:
            n = self._op + 1  # self._id() and _name(escrow_id), inline (once per job of a run)
            self._op = n
            self._mem.apply_proven("escrow_release", self._pub[self.arbiter], f"op{n}", (escrow_id,))
            return
        self.ledger.escrow_release(self.keys[self.arbiter], escrow_id, op_id=self._id())

    def refund(self, escrow_id: str, *, by_consumer: str | None = None) -> None:
        """Return the escrow to its consumer: the arbiter on a rejected verdict,
        or the consumer itself once the deadline has passed (vanished provider)."""
        if not self.follows_clock:
            by_consumer = None  # block time is not simulation time: the arbiter refunds
        by = by_consumer if by_consumer else self.arbiter
        if self._mem is not None and self._ours(by) and _name(escrow_id):
            self._mem.apply_proven("escrow_refund", self._pub[by], self._id(), (escrow_id,))
            return
        self.ledger.escrow_refund(self.keys[by], escrow_id, op_id=self._id())

    def slash(self, escrow_id: str, amount: int, to: str) -> None:
        """Move ``amount`` of the stake locked against ``escrow_id`` to ``to``."""
        if amount > 0:
            amount = int(amount)
            if self._mem is not None and self._ours(to) and _name(escrow_id) and _amount(amount):
                self._mem.apply_proven("stake_slash", self._pub[self.arbiter], self._id(), (escrow_id, amount, to))
                return
            self.ledger.stake_slash(self.keys[self.arbiter], escrow_id, amount, to=to, op_id=self._id())

    def transfer(self, frm: str, to: str, amount: int) -> int:
        """Pay up to ``amount`` from ``frm`` to ``to``; returns what was paid (may be less)."""
        amount = min(int(amount), self.ledger.balance(frm))
        if amount > 0:
            if self._mem is not None and self._ours(frm) and self._ours(to) and _amount(amount):
                self._mem.apply_proven("transfer", self._pub[frm], self._id(), (to, amount))
            else:
                self.ledger.transfer(self.keys[frm], to, amount, op_id=self._id())
        return max(amount, 0)

    def conservation(self) -> tuple[int, bool, str]:
        """Measure conservation: ``(holdings, conserved, reason)``.

        ``holdings`` sums every balance, stake and open escrow on the ledger;
        money is conserved when the ledger's own check passes and the
        holdings equal what was minted. ``reason`` says what failed ("" when
        conserved). Never raises on a broken ledger: the run reports it.
        """
        try:
            supply = int(self._vl.check_conservation(self.ledger))
        except AssertionError as e:
            return int(self.ledger.holdings()), False, str(e)
        if supply != self.minted:
            return supply, False, f"ledger supply {supply} != minted {self.minted}: money created or destroyed"
        return supply, True, ""

    def check(self) -> int:
        """Assert money is conserved (holdings == supply == minted); returns the supply.

        Raises:
            AssertionError: naming the numbers if money was created or lost.
        """
        supply, ok, reason = self.conservation()
        if not ok:
            raise AssertionError(reason)
        return supply

    def close(self) -> None:
        """Close the ledger."""
        self.ledger.close()


def _name(x: object) -> bool:
    # What the ledger's name check accepts, exactly (an exact str: a subclass may lie in == and hash).
    return type(x) is str and _NAME.fullmatch(x) is not None


def _amount(x: object) -> bool:
    return type(x) is int and 0 < x <= MAX_AMOUNT


def ledger_url(params: Any, seed: int) -> str:
    """The run's ledger URL: ``{run}`` becomes a digest of the parameters and seed
    plus a unique suffix.

    A durable ledger must start empty, so a sweep gives each run its own file
    (``sqlite:///runs/ledgers/{run}.db``); the suffix keeps a rerun from
    colliding with an earlier run's ledger (the name never enters the metrics).

    Raises:
        ValueError: for an existing SQLite file (a ledger from an earlier run).

    Example:
        >>> from vcompute.market.config import MarketParams
        >>> ledger_url(MarketParams(), 0)
        'memory://'
    """
    url = params.settlement.ledger
    if "{run}" in url:
        from vcompute.core.hashing import canonical_json, digest_hex

        import os
        import time

        run = digest_hex(canonical_json({"params": params.model_dump(mode="json"), "seed": seed}))[:16]
        run = f"{run}-{os.getpid():x}{time.time_ns():x}"
        url = url.replace("{run}", run)
    if url.startswith("sqlite:///"):
        from pathlib import Path

        path = Path(url[len("sqlite:///"):])
        if path.exists():
            raise ValueError(f"ledger file {path} already exists (a ledger from an earlier run); every run needs a "
                             "fresh ledger: delete it or put {run} in the path, e.g. sqlite:///runs/ledgers/{run}.db")
        path.parent.mkdir(parents=True, exist_ok=True)
    return url

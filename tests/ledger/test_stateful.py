"""Hypothesis stateful test: random operation sequences, refused ones included.

Each backend runs side by side with a ``memory://`` reference (the EVM test runs
memory, SQLite and the contract together: a three-way differential). After every
step: all agree on the outcome (success, retry or the same error), on every
balance, stake, escrow and commitment; supply changes only by mint and burn;
nothing is negative; balances + escrows + stakes equal the supply.

The strategies include hostile inputs on every backend (``ledger_helpers``):
int/str/bytes/dict subclasses that lie in ``==``, ``<``, ``hash`` and arithmetic,
``bool`` amounts, huge, negative and float values, names with a trailing newline
or odd Unicode, op ids with lone surrogates or control characters, impostor keys
(someone's public key, another's secret), and retries whose metadata differ only
by type (``True`` vs ``1``).
"""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import vcompute.ledger as vl
from ledger_helpers import (
    HOSTILE_AMOUNTS,
    HOSTILE_METADATA,
    HOSTILE_NAMES,
    HOSTILE_OP_IDS,
    NAMES,
    LyingBytes,
    Parties,
    Wrapped,
    fresh_parties,
    snapshot,
)
from vcompute.ledger import ManualClock

WHO = st.sampled_from(NAMES + ("ghost",))
AMOUNT = st.sampled_from([1, 7, 50, 120, 300, 999, 1500, 0, -5])
ESCROWS = ("e0", "e1", "e2", "e3", "e4")
ESC = st.sampled_from(ESCROWS)
# Mostly fresh op ids; sometimes one of a small reused pool, so retries and conflicts happen.
OPID = st.sampled_from([None, None, None, None, "op0", "op1"])
CONSUMER = st.sampled_from(["alice", "alice", "bob", "ghost"])
PROVIDER = st.sampled_from(["bob", "bob", "bob", "alice", "ghost"])
VERIFIER = st.sampled_from(["vera", "vera", "vera", "alice", "mallory", "ghost"])
COMS = ("c0", "c1")
METADATA = st.sampled_from([{}, {"x": 1}, {"x": True}, {"a": "é😀", "n": None}]) | st.sampled_from(HOSTILE_METADATA)


def machine_for(make_backend, reopen=None, clock_of=None, extra=()):
    """A state machine running ``make_backend()`` (and each ``extra(clock)``) beside a memory reference."""

    class LedgerMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self):
            self.led = make_backend()
            clock = clock_of(self.led) if clock_of else ManualClock(self.led.now())
            self.ref = vl.open("memory://?withdraw_delay=50", clock=clock)
            self.parties = fresh_parties(self.led)
            Parties(self.ref)
            self.others = [make(self.ref.clock) for make in extra]
            for o in self.others:
                Parties(o)
            k = self.parties.keys
            self.keys = dict(k, ghost=vl.default_minter().__class__(b"\x07" * 32), minter=vl.default_minter(),
                             impostor=Wrapped(k["mallory"], k["alice"].public_bytes),
                             **{"lying-key": Wrapped(k["mallory"], LyingBytes(k["mallory"].public_bytes))})
            self.supply = self.ref.total_supply()

        def both(self, method, who, *args, op_id, **kwargs):
            key = self.keys[who]
            if op_id is None:
                self.fresh = getattr(self, "fresh", 0) + 1
                op_id = f"fresh{self.fresh}"
            kwargs["op_id"] = op_id
            out = []
            # the backend goes last: on the EVM the others read the block time its
            # transaction will be mined at (the SQLite extra follows the chain's clock)
            for led in (self.ref, *self.others, self.led):
                try:
                    r = getattr(led, method)(key, *args, **kwargs)
                    out.append(("ok", r.replayed, r.kind))
                except vl.LedgerError as e:
                    out.append(("err", type(e).__name__))
            assert all(o == out[0] for o in out), \
                f"{method}{args!r}{kwargs!r} by {who}: reference {out[0]} != {out[1:]}"
            return out[0][0] == "ok" and not out[0][1]

        def party(self, eid, role, who, aim):
            """Usually the escrow's own party in ``role`` (so lifecycles get far), else ``who``."""
            if aim:
                try:
                    return getattr(self.ref.escrow(eid), role) or who
                except vl.NotFound:
                    pass
            return who

        @rule(who=WHO, to=WHO, amount=AMOUNT, op=OPID)
        def transfer(self, who, to, amount, op):
            self.both("transfer", who, to, amount, op_id=op)

        @rule(to=WHO, amount=AMOUNT, op=OPID, by_minter=st.booleans())
        def mint(self, to, amount, op, by_minter):
            if self.both("mint", "minter" if by_minter else "alice", to, amount, op_id=op):
                self.supply += amount

        @rule(who=WHO, amount=AMOUNT, op=OPID)
        def burn(self, who, amount, op):
            if self.both("burn", who, amount, op_id=op):
                self.supply -= amount

        @rule(who=CONSUMER, eid=ESC, to=PROVIDER, amount=AMOUNT, ver=st.sampled_from([None, "vera", "vera", "ghost"]),
              dt=st.sampled_from([30, 100]), op=OPID)
        def escrow_open(self, who, eid, to, amount, ver, dt, op):
            self.both("escrow_open", who, eid, provider=to, amount=amount, deadline=self.ref.now() + dt,
                      verifier=ver, op_id=op)

        @rule(who=st.sampled_from(["alice", "vera", "vera", "bob", "mallory"]), eid=ESC, release=st.booleans(),
              op=OPID, aim=st.sampled_from([0, 1, 2]))
        def settle(self, who, eid, release, op, aim):
            who = self.party(eid, "verifier" if aim == 2 else "consumer", who, aim)
            self.both("escrow_release" if release else "escrow_refund", who, eid, op_id=op)

        @rule(who=PROVIDER, amount=AMOUNT, op=OPID)
        def deposit(self, who, amount, op):
            self.both("stake_deposit", who, amount, op_id=op)

        @rule(who=PROVIDER, eid=ESC, amount=AMOUNT, op=OPID, aim=st.sampled_from([0, 1, 1]))
        def lock(self, who, eid, amount, op, aim):
            who = self.party(eid, "provider", who, aim)
            self.both("stake_lock", who, eid, amount, op_id=op)

        @rule(who=VERIFIER, eid=ESC, amount=AMOUNT, to=st.sampled_from(["trez", "trez", "ghost"]), op=OPID,
              aim=st.sampled_from([0, 1, 1]))
        def slash(self, who, eid, amount, to, op, aim):
            who = self.party(eid, "verifier", who, aim)
            self.both("stake_slash", who, eid, amount, to=to, op_id=op)

        @rule(who=PROVIDER, amount=AMOUNT, op=OPID)
        def unbond(self, who, amount, op):
            self.both("stake_unbond", who, amount, op_id=op)

        @rule(who=PROVIDER, op=OPID)
        def withdraw(self, who, op):
            self.both("stake_withdraw", who, op_id=op)

        @rule(eid=ESC, amount=AMOUNT, stake=st.sampled_from([100, 300, 999, 5000]),
              lock=st.sampled_from([50, 100, 300, 0]), cut=st.sampled_from([1, 50, 120, -1]),
              ver=st.sampled_from(["vera", "vera", "vera", "mallory"]),
              end=st.sampled_from(["release", "refund", "slash+refund", "slash+release", "unbond", "none"]))
        def job_lifecycle(self, eid, amount, stake, lock, cut, ver, end):
            """A whole job in one step (open, stake, lock, settle), so long lifecycles are common."""
            self.both("escrow_open", "alice", eid, provider="bob", amount=amount, deadline=self.ref.now() + 100,
                      verifier="vera", op_id=None)
            self.both("stake_deposit", "bob", stake, op_id=None)
            self.both("stake_lock", "bob", eid, lock, op_id=None)
            if end.startswith("slash"):
                self.both("stake_slash", ver, eid, cut, to="trez", op_id=None)
            if end.endswith("release"):
                self.both("escrow_release", "alice", eid, op_id=None)
            if end.endswith("refund"):
                self.both("escrow_refund", "vera", eid, op_id=None)
            if end == "unbond":
                self.both("stake_unbond", "bob", stake, op_id=None)

        # Hostile rules: an honest request (of kind ``kind``) with exactly one slot replaced
        # by a hostile value, so that every call of these rules is an attack.
        def honest(self, kind, who="alice", amount=7, to="bob", eid="e0", provider="bob", verifier="vera",
                   deadline=None, op=None):
            if deadline is None:
                deadline = self.ref.now() + 100
            if kind == "transfer":
                return self.both("transfer", who, to, amount, op_id=op)
            if kind == "mint":
                if self.both("mint", "minter" if who == "alice" else who, to, amount, op_id=op):
                    self.supply += amount
                return None
            if kind == "burn":
                if self.both("burn", who, amount, op_id=op):
                    self.supply -= amount
                return None
            if kind == "stake_deposit":
                return self.both("stake_deposit", who, amount, op_id=op)
            return self.both("escrow_open", who, eid, provider=provider, amount=amount, deadline=deadline,
                             verifier=verifier, op_id=op)

        KINDS = st.sampled_from(["transfer", "mint", "burn", "stake_deposit", "escrow_open"])
        PICK = st.integers(0, 7)

        @rule(kind=KINDS, pick=PICK)
        def hostile_amount(self, kind, pick):
            self.honest(kind, amount=HOSTILE_AMOUNTS[pick])

        @rule(slot=st.sampled_from(["to", "eid", "provider", "verifier"]), pick=PICK)
        def hostile_name(self, slot, pick):
            self.honest("transfer" if slot == "to" else "escrow_open", **{slot: HOSTILE_NAMES[pick]})

        @rule(kind=KINDS, pick=PICK)
        def hostile_op_id(self, kind, pick):
            self.honest(kind, op=HOSTILE_OP_IDS[pick])

        @rule(kind=KINDS, liar=st.sampled_from(["impostor", "lying-key"]))
        def hostile_key(self, kind, liar):
            self.honest(kind, who=liar)

        @rule(pick=PICK)
        def hostile_deadline(self, pick):
            self.honest("escrow_open", deadline=(float("nan"), float("inf"), -5, True, 10**20, "100", None,
                                                 self.ref.now() - 1)[pick])

        @rule(who=st.sampled_from(["alice", "bob", "impostor"]), cid=st.sampled_from(COMS), meta=METADATA,
              op=st.sampled_from(["cop0", "cop1", None]) | st.sampled_from(HOSTILE_OP_IDS))
        def commit(self, who, cid, meta, op):
            self.both("commit", who, cid, bytes(range(32)), metadata=meta, op_id=op)

        @rule(dt=st.sampled_from([10, 60, 200]))
        def advance(self, dt):
            self.led.advance(dt)  # extra backends share the reference's clock
            if clock_of is None:
                self.ref.advance(dt)

        if reopen is not None:
            @rule()
            def reopen_backend(self):
                self.led = reopen(self.led)

        @invariant()
        def conserved_and_agreeing(self):
            if not hasattr(self, "led"):
                return
            assert self.led.total_supply() == self.supply == vl.check_conservation(self.led)
            b = snapshot(self.ref, ESCROWS, COMS)
            for led in (self.led, *self.others):
                assert vl.check_conservation(led) == self.supply
                assert snapshot(led, ESCROWS, COMS) == b
            for n in NAMES:
                s = self.led.stake(n)
                assert self.led.balance(n) >= 0 and min(s.free, s.locked, s.unbonding) >= 0

        def teardown(self):
            if hasattr(self, "led") and self.led.url.startswith("sqlite"):
                self.led.close()
            for o in getattr(self, "others", ()):
                o.close()

    return LedgerMachine


SETTINGS = settings(max_examples=25, stateful_step_count=30, deadline=None,
                    suppress_health_check=list(HealthCheck))


def test_memory_random_sequences():
    run_state_machine_as_test(machine_for(lambda: vl.open("memory://?withdraw_delay=50")),
                              settings=settings(SETTINGS, max_examples=60))


def test_sqlite_random_sequences_with_reopen():
    tmp = tempfile.mkdtemp()
    counter = iter(range(10**9))

    def make():
        return vl.open(f"sqlite:///{os.path.join(tmp, f'l{next(counter)}.db')}", clock=ManualClock(),
                       withdraw_delay=50)

    def reopen(led):
        led.close()
        again = vl.open(led.url, clock=led.clock)
        assert vl.verify_chain(led.path).ok
        return again

    run_state_machine_as_test(machine_for(make, reopen), settings=SETTINGS)


def _three_way(request, examples, steps):
    """memory (reference) vs EVM vs SQLite, all on the chain's block time."""
    base = request.getfixturevalue("evm_base")
    tmp = tempfile.mkdtemp()
    counter = iter(range(10**9))

    def sqlite_on(clock):
        return vl.open(f"sqlite:///{os.path.join(tmp, f'l{next(counter)}.db')}", clock=clock, withdraw_delay=50)

    run_state_machine_as_test(machine_for(lambda: base, clock_of=lambda led: led.now, extra=(sqlite_on,)),
                              settings=settings(SETTINGS, max_examples=examples, stateful_step_count=steps))


def test_evm_random_sequences(request):
    """The three-way differential, hostile inputs included (few examples: py-evm is ~100 tx/s)."""
    _three_way(request, 5, 15)


@pytest.mark.slow
def test_evm_random_sequences_long(request):
    _three_way(request, 40, 40)


@pytest.mark.slow
def test_sqlite_random_sequences_long():
    tmp = tempfile.mkdtemp()
    counter = iter(range(10**9))
    run_state_machine_as_test(
        machine_for(lambda: vl.open(f"sqlite:///{os.path.join(tmp, f'l{next(counter)}.db')}",
                                    clock=ManualClock(), withdraw_delay=50)),
        settings=settings(SETTINGS, max_examples=300, stateful_step_count=60))

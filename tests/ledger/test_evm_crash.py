"""Crash safety of the EVM ledger client on every engine: lost receipts and dropped sends, retried.

The transport fails at random moments, seeded: a transaction is dropped
before it reaches the chain, or it executes and its receipt is lost on the
way back (the client's connection dies, as when a node or the client
crashes mid-call). Every failure surfaces as a ``LedgerError`` asking for a
retry with the same op_id; the retry applies the operation exactly once
(``replayed`` exactly when the lost transaction had been applied), and at the
end every balance, stake, escrow and the supply equal those of a memory
ledger that ran the same operations without faults. Runs on ``evm://``
(revm), ``evm://tester`` (py-evm) and, marked ``anvil``, a real anvil node.
"""

from __future__ import annotations

import random

import pytest

pytest.importorskip("web3")

import vcompute.ledger as vl  # noqa: E402
from ledger_helpers import NAMES, Parties  # noqa: E402


class _Crash(ConnectionError):
    pass


class _Faults:
    """Wraps the chain's send paths: ``plan`` says what the next ledger transaction suffers."""

    def __init__(self, led):
        self.led, self.plan, self.stats = led, None, {"lost": 0, "dropped": 0}
        c = led.chain
        for name in ("transact", "send_raw", "send_from_node"):
            orig = getattr(c, name, None)
            if orig is not None:
                setattr(c, name, self._wrap(name, orig))

    def _wrap(self, name, orig):
        def call(*args, **kw):
            to_ledger = name != "send_from_node" or (args[0].get("to") == self.led.address and args[0].get("data"))
            if name == "transact" and str(args[1]).lower() != self.led.address.lower():
                to_ledger = False
            fault, self.plan = (self.plan, None) if to_ledger else (None, self.plan)
            if fault == "dropped":
                self.stats["dropped"] += 1
                raise _Crash("connection reset before the transaction was sent")
            out = orig(*args, **kw)
            if fault == "lost":
                self.stats["lost"] += 1
                raise _Crash("connection reset before the receipt arrived")
            return out
        return call


def _ops(rng, n):
    """A seeded sequence of (kind, actor, args, kwargs) over the usual cast."""
    out, open_escrows, k = [], [], 0
    for i in range(n):
        r = rng.random()
        if r < 0.35:
            frm, to = rng.sample(NAMES, 2)
            out.append(("transfer", frm, (to, rng.randint(1, 5)), {}))
        elif r < 0.5:
            out.append(("mint", None, (rng.choice(NAMES), rng.randint(1, 50)), {}))
        elif r < 0.65 or not open_escrows:
            k += 1
            eid = f"job{k}"
            open_escrows.append(eid)
            out.append(("escrow_open", "alice", (eid,), {"provider": "bob", "amount": rng.randint(1, 20),
                                                          "verifier": "vera"}))
            out.append(("stake_deposit", "bob", (3,), {}))
            out.append(("stake_lock", "bob", (eid, 2), {}))
        else:
            eid = open_escrows.pop(rng.randrange(len(open_escrows)))
            if rng.random() < 0.5:
                out.append(("escrow_release", "vera", (eid,), {}))
            else:
                out.append(("stake_slash", "vera", (eid, 1), {"to": "trez"}))
                out.append(("escrow_refund", "vera", (eid,), {}))
    return out


def _apply(led, parties, op, op_id, deadline):
    kind, actor, args, kw = op
    key = parties.minter if actor is None else parties.keys[actor]
    if kind == "escrow_open":
        kw = {**kw, "deadline": deadline}
    return getattr(led, kind)(key, *args, op_id=op_id, **kw)


@pytest.fixture(params=["revm", "evm", pytest.param("anvil", marks=pytest.mark.anvil)])
def engine(request):
    if request.param == "revm":
        pytest.importorskip("pyrevm")
        led = vl.open("evm://")
    elif request.param == "evm":
        pytest.importorskip("eth_tester")
        led = vl.open("evm://tester")
    else:
        led = vl.open(request.getfixturevalue("anvil_node").url)
    yield led
    led.close()


def test_lost_receipts_and_dropped_sends_apply_each_operation_exactly_once(engine):
    rng = random.Random(16)
    ref = vl.open("memory://")
    p_evm, p_ref = Parties(engine), Parties(ref)
    faults = _Faults(engine)
    for i, op in enumerate(_ops(rng, 50)):
        op_id = f"op{i}"
        fault = rng.choice([None, None, "lost", "dropped"])
        faults.plan = fault
        deadline = engine.now() + 10_000  # once: a retry must repeat the request exactly
        try:
            r = _apply(engine, p_evm, op, op_id, deadline)
        except vl.LedgerError as e:
            assert fault is not None and "retry" in str(e), (op, e)
            r = _apply(engine, p_evm, op, op_id, deadline)  # the retry
            assert r.replayed == (fault == "lost"), (op, fault)
        else:
            assert fault is None and not r.replayed
        assert r.kind == op[0] and r.op_id == op_id
        _apply(ref, p_ref, op, op_id, 10_000.0)
    assert faults.stats["lost"] >= 5 and faults.stats["dropped"] >= 5
    assert vl.check_conservation(engine) == vl.check_conservation(ref)
    for n in NAMES:
        assert engine.balance(n) == ref.balance(n) and engine.stake(n) == ref.stake(n), n
    # Each operation was counted once, as the reference counts it: nothing applied twice.
    assert engine.op_counts() == ref.op_counts()

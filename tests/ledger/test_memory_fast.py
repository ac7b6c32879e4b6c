"""The memory ledger's fast paths keep every rule of the generic path (issue 17's speed target).

``MemoryLedger`` validates a market run's per-job operations inline and applies a trusted
caller's requests through :meth:`~vcompute.ledger.memory.MemoryLedger.apply_proven`; both
must refuse what the generic path refuses, with the same errors, and count what it counts.
"""

from __future__ import annotations

import pytest

import vcompute.ledger as vl
from ledger_helpers import LyingBytes, Wrapped
from vcompute.core.signing import key_from_name
from vcompute.ledger.memory import MemoryLedger, _receipt
from vcompute.ledger.records import Receipt


def _ledger():
    m = key_from_name("minter")
    led = MemoryLedger(minter=m.public_bytes)
    keys = {n: key_from_name(n) for n in ("alice", "bob", "carol")}
    for i, (n, k) in enumerate(keys.items()):
        led.open_account(k, n, op_id=f"open{i}")
        led.mint(m, n, 1000, op_id=f"mint{i}")
    return led, keys


def test_the_fast_receipt_is_the_dataclass():
    r, ref = _receipt("op1", "transfer", 7), Receipt("op1", "transfer", 7)
    assert r == ref and hash(r) == hash(ref) and repr(r) == repr(ref) and vars(r) == vars(ref)
    with pytest.raises(AttributeError):
        r.seq = 8  # still frozen


def test_a_key_that_changes_its_public_bytes_after_proving_proves_again():
    led, keys = _ledger()
    led.transfer(keys["alice"], "bob", 1, op_id="t1")  # alice's key object has proven
    liar = Wrapped(keys["carol"], keys["alice"].public_bytes)  # carol's key showing alice's public key
    with pytest.raises(vl.Unauthorized):
        led.transfer(liar, "carol", 5, op_id="t2")
    k = key_from_name("alice")
    led.transfer(k, "bob", 1, op_id="t3")
    k.public_bytes = LyingBytes(keys["bob"].public_bytes)  # after its proof, claims to equal any key
    with pytest.raises(vl.InvalidRequest):
        led.transfer(k, "carol", 5, op_id="t4")
    assert led.balance("alice") == 998 and led.balance("carol") == 1000


def test_apply_proven_keeps_the_state_machine_rules():
    led, keys = _ledger()
    alice, bob, carol = (led.prove(keys[n]) for n in ("alice", "bob", "carol"))
    before = led.op_counts()
    with pytest.raises(vl.InsufficientFunds):
        led.apply_proven("transfer", alice, "x1", ("bob", 5000))
    assert led.balance("alice") == 1000 and led.op_counts() == before  # refused: nothing changed, not counted
    seq = led.apply_proven("escrow_open", alice, "x2", ("job", "bob", 100, 50.0, "carol"))
    assert led.apply_proven("escrow_open", alice, "x2", ("job", "bob", 100, 50.0, "carol")) == seq  # a retry
    with pytest.raises(vl.OperationConflict):
        led.apply_proven("escrow_open", alice, "x2", ("job", "bob", 99, 50.0, "carol"))
    with pytest.raises(vl.Unauthorized):  # only the consumer or the verifier releases
        led.apply_proven("escrow_release", bob, "x3", ("job",))
    with pytest.raises(vl.InvalidRequest):  # slashed stake never goes to the provider
        led.apply_proven("stake_slash", carol, "x4", ("job", 1, "bob"))
    led.apply_proven("escrow_release", carol, "x5", ("job",))
    assert led.balance("bob") == 1100 and led.escrow("job").state == "released"
    assert led.op_counts() == {**before, "escrow_open": 1, "escrow_release": 1}
    vl.check_conservation(led)


def test_public_methods_count_each_operation_once():
    led, keys = _ledger()
    r1 = led.escrow_open(keys["alice"], "j", provider="bob", amount=10, deadline=5.0, verifier="carol", op_id="e")
    r2 = led.escrow_open(keys["alice"], "j", provider="bob", amount=10, deadline=5.0, verifier="carol", op_id="e")
    assert r2.replayed and r2.seq == r1.seq and not r1.replayed
    led.escrow_refund(keys["carol"], "j", op_id="r")
    assert led.op_counts() == {"open_account": 3, "mint": 3, "escrow_open": 1, "escrow_refund": 1}

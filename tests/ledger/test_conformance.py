"""One behaviour on every backend: the rules of vcompute.ledger, refused operations included."""

from __future__ import annotations

import pytest

import vcompute.ledger as vl
from vcompute.core.signing import key_from_name

from ledger_helpers import snapshot

ESC = ("job", "job2")
COM = ("c1",)


def refused(led, exc, fn, *args, **kwargs):
    """Call ``fn`` expecting ``exc``; assert the ledger is exactly as before."""
    before = snapshot(led, ESC, COM)
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert snapshot(led, ESC, COM) == before
    assert str(info.value)  # every refusal explains itself
    return info.value


def test_accounts_mint_balance(ledger, parties):
    assert ledger.accounts() == sorted(["alice", "bob", "vera", "trez", "mallory"])
    assert ledger.balance("alice") == 1000
    assert ledger.account("alice").public_key == parties.alice.public_bytes
    assert vl.check_conservation(ledger) == 5000


def test_account_binding_rules(ledger, parties):
    refused(ledger, vl.EscrowStateError, ledger.open_account, key_from_name("zed"), "alice", op_id="x")
    refused(ledger, vl.EscrowStateError, ledger.open_account, parties.alice, "alice2", op_id="x")
    refused(ledger, vl.InvalidRequest, ledger.open_account, key_from_name("zed"), "bad name!", op_id="x")
    refused(ledger, vl.UnknownAccount, ledger.balance, "nobody")


def test_only_minter_mints(ledger, parties):
    refused(ledger, vl.Unauthorized, ledger.mint, parties.alice, "alice", 5, op_id="m")
    refused(ledger, vl.UnknownAccount, ledger.mint, parties.minter, "ghost", 5, op_id="m")
    ledger.mint(parties.minter, "bob", 5, op_id="m-bob")
    assert ledger.balance("bob") == 1005 and ledger.total_supply() == 5005


def test_burn(ledger, parties):
    ledger.burn(parties.alice, 400, op_id="b")
    assert ledger.balance("alice") == 600 and vl.check_conservation(ledger) == 4600
    refused(ledger, vl.InsufficientFunds, ledger.burn, parties.alice, 601, op_id="b2")


def test_transfer_and_bad_input(ledger, parties):
    ledger.transfer(parties.alice, "bob", 300, op_id="t1")
    assert (ledger.balance("alice"), ledger.balance("bob")) == (700, 1300)
    refused(ledger, vl.InsufficientFunds, ledger.transfer, parties.alice, "bob", 701, op_id="t2")
    for bad in (0, -1, 10**18 + 1, 2**256, 1.5, True, "5", None):
        refused(ledger, vl.InvalidAmount, ledger.transfer, parties.alice, "bob", bad, op_id="t3")
    refused(ledger, vl.UnknownAccount, ledger.transfer, parties.alice, "ghost", 1, op_id="t4")
    refused(ledger, vl.UnknownAccount, ledger.transfer, key_from_name("ghost"), "bob", 1, op_id="t5")
    refused(ledger, vl.InvalidRequest, ledger.transfer, "alice", "bob", 1, op_id="t6")  # not a key
    refused(ledger, vl.InvalidRequest, ledger.transfer, parties.alice, "bob", 1, op_id="")
    refused(ledger, vl.InvalidRequest, ledger.transfer, parties.alice, "bob", 1, op_id="x" * 129)
    assert vl.check_conservation(ledger) == 5000


def test_retry_applies_once_and_conflicting_reuse_is_refused(ledger, parties):
    r1 = ledger.transfer(parties.alice, "bob", 10, op_id="pay-1")
    r2 = ledger.transfer(parties.alice, "bob", 10, op_id="pay-1")
    assert not r1.replayed and r2.replayed and r2.seq == r1.seq
    assert ledger.balance("bob") == 1010
    refused(ledger, vl.OperationConflict, ledger.transfer, parties.alice, "bob", 11, op_id="pay-1")
    refused(ledger, vl.OperationConflict, ledger.burn, parties.alice, 10, op_id="pay-1")
    # op ids are scoped per key: bob may use the same id
    ledger.transfer(parties.bob, "alice", 10, op_id="pay-1")
    assert ledger.balance("bob") == 1000


def test_escrow_release_by_consumer(ledger, parties):
    dl = ledger.now() + 100
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=200, deadline=dl, op_id="e")
    e = ledger.escrow("job")
    assert (e.consumer, e.provider, e.verifier, e.amount, e.state) == ("alice", "bob", None, 200, "open")
    assert e.deadline >= dl - 1e-9
    assert ledger.balance("alice") == 800 and vl.check_conservation(ledger) == 5000
    refused(ledger, vl.Unauthorized, ledger.escrow_release, parties.mallory, "job", op_id="r")
    refused(ledger, vl.Unauthorized, ledger.escrow_release, parties.bob, "job", op_id="r")
    ledger.escrow_release(parties.alice, "job", op_id="r")
    assert ledger.balance("bob") == 1200 and ledger.escrow("job").state == "released"
    refused(ledger, vl.EscrowStateError, ledger.escrow_release, parties.alice, "job", op_id="r-again")
    refused(ledger, vl.EscrowStateError, ledger.escrow_refund, parties.alice, "job", op_id="f")
    assert vl.check_conservation(ledger) == 5000


def test_escrow_open_refusals(ledger, parties):
    dl = ledger.now() + 100
    refused(ledger, vl.InsufficientFunds, ledger.escrow_open, parties.alice, "job", provider="bob",
            amount=1001, deadline=dl, op_id="e")
    refused(ledger, vl.UnknownAccount, ledger.escrow_open, parties.alice, "job", provider="ghost",
            amount=1, deadline=dl, op_id="e")
    refused(ledger, vl.UnknownAccount, ledger.escrow_open, parties.alice, "job", provider="bob",
            amount=1, deadline=dl, verifier="ghost", op_id="e")
    refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, "job", provider="bob",
            amount=1, deadline=ledger.now() - 1 if ledger.now() >= 1 else -1, op_id="e")
    refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, "job", provider="bob",
            amount=1, deadline=float("nan"), op_id="e")
    refused(ledger, vl.NotFound, ledger.escrow, "job")
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=1, deadline=dl, op_id="e")
    refused(ledger, vl.EscrowStateError, ledger.escrow_open, parties.bob, "job", provider="alice",
            amount=1, deadline=dl, op_id="e")


def test_escrow_refund_rules(ledger, parties):
    dl = ledger.now() + 100
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=100, deadline=dl, verifier="vera", op_id="e")
    ledger.escrow_open(parties.alice, "job2", provider="bob", amount=100, deadline=dl, op_id="e2")
    # before the deadline the consumer cannot pull the money back; the verifier can
    refused(ledger, vl.Unauthorized, ledger.escrow_refund, parties.alice, "job2", op_id="f2")
    refused(ledger, vl.Unauthorized, ledger.escrow_refund, parties.bob, "job", op_id="f")
    refused(ledger, vl.Unauthorized, ledger.escrow_refund, parties.mallory, "job", op_id="f")
    ledger.escrow_refund(parties.vera, "job", op_id="f")
    assert ledger.escrow("job").state == "refunded" and ledger.balance("alice") == 900
    ledger.advance(150)
    refused(ledger, vl.Unauthorized, ledger.escrow_refund, parties.mallory, "job2", op_id="f2")
    ledger.escrow_refund(parties.alice, "job2", op_id="f2")
    assert ledger.balance("alice") == 1000 and ledger.balance("bob") == 1000
    assert vl.check_conservation(ledger) == 5000


def test_verifier_releases(ledger, parties):
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=100, deadline=ledger.now() + 100,
                       verifier="vera", op_id="e")
    ledger.escrow_release(parties.vera, "job", op_id="r")
    assert ledger.balance("bob") == 1100


def test_stake_lock_slash_and_settle(ledger, parties):
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=100, deadline=ledger.now() + 100,
                       verifier="vera", op_id="e")
    refused(ledger, vl.InsufficientFunds, ledger.stake_lock, parties.bob, "job", 10, op_id="l")
    ledger.stake_deposit(parties.bob, 500, op_id="d")
    assert ledger.stake("bob").free == 500 and ledger.balance("bob") == 500
    refused(ledger, vl.Unauthorized, ledger.stake_lock, parties.mallory, "job", 10, op_id="l")
    refused(ledger, vl.InsufficientFunds, ledger.stake_lock, parties.bob, "job", 501, op_id="l")
    refused(ledger, vl.NotFound, ledger.stake_lock, parties.bob, "nojob", 5, op_id="l")
    ledger.stake_lock(parties.bob, "job", 300, op_id="l")
    assert ledger.stake("bob").locked == 300 and ledger.escrow("job").locked == 300
    # withdraw during lock: locked stake cannot be unbonded
    refused(ledger, vl.InsufficientFunds, ledger.stake_unbond, parties.bob, 201, op_id="u")
    # only the job's verifier slashes, and no more than is locked
    refused(ledger, vl.Unauthorized, ledger.stake_slash, parties.alice, "job", 50, to="trez", op_id="s")
    refused(ledger, vl.Unauthorized, ledger.stake_slash, parties.mallory, "job", 50, to="mallory", op_id="s")
    refused(ledger, vl.InsufficientFunds, ledger.stake_slash, parties.vera, "job", 301, to="trez", op_id="s")
    refused(ledger, vl.UnknownAccount, ledger.stake_slash, parties.vera, "job", 1, to="ghost", op_id="s")
    ledger.stake_slash(parties.vera, "job", 120, to="trez", op_id="s")
    assert ledger.balance("trez") == 1120 and ledger.stake("bob").locked == 180
    assert vl.check_conservation(ledger) == 5000
    ledger.escrow_refund(parties.vera, "job", op_id="f")
    st = ledger.stake("bob")
    assert (st.free, st.locked) == (380, 0)
    refused(ledger, vl.EscrowStateError, ledger.stake_slash, parties.vera, "job", 1, to="trez", op_id="s2")
    refused(ledger, vl.EscrowStateError, ledger.stake_lock, parties.bob, "job", 1, op_id="l2")
    assert vl.check_conservation(ledger) == 5000


def test_no_slash_without_verifier(ledger, parties):
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=100, deadline=ledger.now() + 100, op_id="e")
    ledger.stake_deposit(parties.bob, 100, op_id="d")
    ledger.stake_lock(parties.bob, "job", 100, op_id="l")
    refused(ledger, vl.Unauthorized, ledger.stake_slash, parties.alice, "job", 1, to="alice", op_id="s")
    ledger.escrow_release(parties.alice, "job", op_id="r")
    assert ledger.stake("bob").free == 100 and ledger.balance("bob") == 1000


def test_unbond_then_withdraw_after_delay(ledger, parties):
    ledger.stake_deposit(parties.bob, 300, op_id="d")
    refused(ledger, vl.EscrowStateError, ledger.stake_withdraw, parties.bob, op_id="w0")
    ledger.stake_unbond(parties.bob, 200, op_id="u")
    st = ledger.stake("bob")
    assert (st.free, st.unbonding) == (100, 200) and st.total == 300
    refused(ledger, vl.EscrowStateError, ledger.stake_withdraw, parties.bob, op_id="w")
    ledger.advance(60)   # delay is 50
    ledger.stake_withdraw(parties.bob, op_id="w")
    assert ledger.balance("bob") == 900 and ledger.stake("bob").unbonding == 0
    assert vl.check_conservation(ledger) == 5000


def test_commitments(ledger, parties):
    d = bytes(range(32))
    ledger.commit(parties.bob, "c1", d, metadata={"job": "j1", "step": 3}, op_id="c")
    c = ledger.commitment("c1")
    assert (c.owner, c.digest, c.metadata) == ("bob", d, {"job": "j1", "step": 3})
    assert ledger.commit(parties.bob, "c1", d, metadata={"job": "j1", "step": 3}, op_id="c").replayed
    refused(ledger, vl.EscrowStateError, ledger.commit, parties.alice, "c1", d, op_id="c")
    for bad in (b"short", b"x" * 33, "zz" * 32, 123):
        refused(ledger, vl.InvalidRequest, ledger.commit, parties.alice, "c2", bad, op_id="c2")
    refused(ledger, vl.InvalidRequest, ledger.commit, parties.alice, "c2", d, metadata={"x": object()}, op_id="c2")
    refused(ledger, vl.InvalidRequest, ledger.commit, parties.alice, "c2", d, metadata={"x": "y" * 5000},
            op_id="c2")
    refused(ledger, vl.NotFound, ledger.commitment, "nope")


def test_an_impostor_cannot_spend_anothers_balance(ledger, parties):
    """A key object claiming alice's public key but holding mallory's secret."""
    alice, mallory = parties.alice, parties.mallory

    class Impostor:
        public_bytes = alice.public_bytes

        def sign(self, message):
            return mallory.sign(message)

        def derive_secret(self, label):
            return mallory.derive_secret(label)

    before = ledger.balance("alice")
    try:
        ledger.transfer(Impostor(), "bob", 5, op_id="steal")
    except vl.LedgerError:
        pass
    assert ledger.balance("alice") == before
    assert ledger.balance("mallory") + ledger.balance("bob") == 2000  # at most mallory paid her own money
    assert vl.check_conservation(ledger) == 5000

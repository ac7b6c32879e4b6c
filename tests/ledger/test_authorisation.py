"""Attacks on authorisation and stake, each on every backend (issue 13, classes 1 and 2).

Before the fix each attack below worked on at least one backend; the assertions
say what happens now. Hostile objects lie in ``==``, ``<``, ``hash`` and arithmetic,
as an adversary who has read ``state.py`` would make them.
"""

from __future__ import annotations

import pytest

import vcompute.ledger as vl
from ledger_helpers import EveryName, LyingBytes, LyingInt, Wrapped, contract_call, snapshot
from vcompute.core.signing import SigningKey, key_from_name

ESC = ("job", "job2", "own")


def refused(led, exc, fn, *args, **kwargs):
    before = snapshot(led, ESC)
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert snapshot(led, ESC) == before and str(info.value)
    return info.value


def test_int_subclass_amounts_create_no_money(ledger, parties):
    """Before: an int subclass passed ``0 < x <= MAX_AMOUNT`` and its ``__rsub__`` credited
    the payer (money created). After: every amount must be ``type(x) is int``."""
    liar = LyingInt(5)
    dl = ledger.now() + 100
    for fn, args, kw in [(ledger.transfer, (parties.alice, "bob", liar), {}),
                         (ledger.mint, (parties.minter, "bob", liar), {}),
                         (ledger.burn, (parties.alice, liar), {}),
                         (ledger.stake_deposit, (parties.bob, liar), {}),
                         (ledger.stake_unbond, (parties.bob, liar), {}),
                         (ledger.escrow_open, (parties.alice, "job"), dict(provider="bob", amount=liar, deadline=dl))]:
        err = refused(ledger, vl.InvalidAmount, fn, *args, op_id="x", **kw)
        assert "exactly" in str(err) and "LyingInt" in str(err)
    for odd in (True, 5.0, 10**18 + 1, 2**64, -1, 0):
        refused(ledger, vl.InvalidAmount, ledger.transfer, parties.alice, "bob", odd, op_id="x")
    assert vl.check_conservation(ledger) == 5000


def test_str_subclass_cannot_impersonate_the_verifier(ledger, parties):
    """Before: an escrow whose verifier was a str equal to every name could be released,
    refunded and slashed by anyone. After: names must be exactly ``str``."""
    dl = ledger.now() + 100
    err = refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, "job", provider="bob",
                  amount=10, deadline=dl, verifier=EveryName("vera"), op_id="e")
    assert "verifier" in str(err) and "EveryName" in str(err)
    for bad in (EveryName("bob"), "bob\n", "bob ", "", "b" * 65, "bøb", "\ud800"):
        refused(ledger, vl.InvalidRequest, ledger.transfer, parties.alice, bad, 1, op_id="t")
    refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, EveryName("job"), provider="bob",
            amount=10, deadline=dl, op_id="e")
    refused(ledger, vl.InvalidRequest, ledger.transfer, parties.alice, "bob", 1, op_id=EveryName("t"))


def test_bytes_subclass_public_key_cannot_mint(ledger, parties):
    """Before (memory, SQLite): mallory's key reporting a bytes subclass equal to the minter's
    public key proved itself with mallory's own signature and then passed ``pub != minter``.
    After: ``public_bytes`` must be exactly 32 builtin bytes."""
    fake = Wrapped(parties.mallory, LyingBytes(parties.mallory.public_bytes))
    refused(ledger, vl.InvalidRequest, ledger.mint, fake, "mallory", 10**6, op_id="m")
    assert vl.check_conservation(ledger) == 5000


def test_an_impostor_retrying_someone_elses_op_id_gets_no_receipt(ledger, parties):
    """Before (SQLite): a retry was looked up by (public key, op_id) *before* the request's
    signature was checked, so mallory naming alice's public key and repeating alice's op_id got
    alice's receipt back (found by the long stateful test). After: every backend refuses it."""
    ledger.commit(parties.alice, "c0", bytes(range(32)), op_id="cop0")
    impostor = Wrapped(parties.mallory, parties.alice.public_bytes)
    with pytest.raises(vl.Unauthorized):
        ledger.commit(impostor, "c0", bytes(range(32)), op_id="cop0")
    assert ledger.commit(parties.alice, "c0", bytes(range(32)), op_id="cop0").replayed


def test_the_minters_public_key_alone_mints_nothing(ledger, parties):
    """Before (EVM): a request from any object carrying the minter's *public* key was minted
    by the node account. After: the object must sign a fresh challenge with the minter's secret."""
    fake = Wrapped(parties.mallory, parties.minter.public_bytes)
    refused(ledger, vl.Unauthorized, ledger.mint, fake, "mallory", 10**6, op_id="m")
    refused(ledger, vl.Unauthorized, ledger.open_account, Wrapped(key_from_name("z"), parties.alice.public_bytes),
            "zed", op_id="o")
    ledger.mint(parties.minter, "mallory", 1, op_id="m-real")
    assert ledger.balance("mallory") == 1001


class Replayer:
    """Claims ``public`` and answers every challenge with signatures captured earlier."""

    def __init__(self, public, captured, secret=None):
        self.public_bytes, self.captured, self.secret = public, list(captured), secret

    def sign(self, m):
        return self.captured[-1] if self.captured else b"\0" * 64

    def derive_secret(self, label):
        return self.secret or b"\1" * 32


class Recorder(Wrapped):
    def __init__(self, key):
        super().__init__(key, key.public_bytes)
        self.signed = []

    def sign(self, m):
        sig = self.key.sign(m)
        self.signed.append(sig)
        return sig


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_proof_captured_on_one_ledger_spends_on_no_other(kind, tmp_path):
    """Before (memory): the proof of key ownership signed a constant, so one signature seen
    on any memory ledger let its holder's impostor spend on every other. After: the challenge
    names the ledger's random id and a sequence number; a replay proves nothing."""
    def fresh(i):
        return vl.open("memory://" if kind == "memory" else f"sqlite:///{tmp_path}/l{i}.db",
                       clock=vl.ManualClock())
    alice, minter = key_from_name("alice"), vl.default_minter()
    rec = Recorder(alice)
    a, b = fresh(0), fresh(1)
    for led in (a, b):
        led.open_account(rec if led is a else alice, "alice", op_id="o")
        led.open_account(key_from_name("bob"), "bob", op_id="o")
        led.mint(minter, "alice", 100, op_id="m")
    assert rec.signed  # the signatures alice made on ledger a, seen by an eavesdropper
    for led in (b, a):  # on another ledger, and again on the same one
        with pytest.raises(vl.Unauthorized):
            led.transfer(Replayer(alice.public_bytes, rec.signed), "bob", 100, op_id="steal")
        assert led.balance("alice") == 100
        led.close()


def test_a_captured_mint_proof_does_not_replay_on_evm(request):
    led = request.getfixturevalue("evm_base")
    led.reset()
    led.open_account(key_from_name("alice"), "alice", op_id="o")
    rec = Recorder(vl.default_minter())
    led.mint(rec, "alice", 5, op_id="m")
    with pytest.raises(vl.Unauthorized):
        led.mint(Replayer(rec.public_bytes, rec.signed), "alice", 10**6, op_id="m2")
    assert led.balance("alice") == 5


def test_binding_someone_elses_key_directly_on_the_contract_is_never_reported_as_theirs(request):
    """Before: ``open_account(name, pubkey)`` on the contract bound any public key to the
    sender. After: the binding carries the key's signature; the client verifies it when it
    sends and whenever it reads, so a binding made without the key is refused on read."""
    led = request.getfixturevalue("evm_base")
    led.reset()
    alice, mallory = key_from_name("alice"), key_from_name("mallory")
    led.open_account(alice, "alice", op_id="o")
    assert led.account("alice").public_key == alice.public_bytes
    reason = contract_call(led, mallory, "open_account", ["fakealice", alice.public_bytes, b"\0" * 64, "o"], send=True)
    assert reason == ""  # the chain cannot check Ed25519; the stored proof is what betrays it
    with pytest.raises(vl.Unauthorized, match="without that key's signature"):
        led.account("fakealice")
    # a proof copied from alice's own binding does not fit another name or sender
    from eth_utils import keccak

    (proof,) = led._view("proof_of", keccak(b"alice"))
    contract_call(led, key_from_name("eve"), "open_account", ["alice2", alice.public_bytes, bytes(proof), "o"],
                  send=True)
    with pytest.raises(vl.Unauthorized):
        led.account("alice2")


def test_escrow_roles_must_differ(ledger, parties):
    """Before: with consumer = provider = verifier, alice locked stake and slashed it to
    herself at once, skipping withdraw_delay. After: roles differ, and slashed stake never
    goes to the provider."""
    dl = ledger.now() + 100
    for provider, verifier in (("alice", None), ("alice", "alice"), ("bob", "alice"), ("bob", "bob")):
        err = refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, "own", provider=provider,
                      amount=10, deadline=dl, verifier=verifier, op_id="e")
        assert "third party" in str(err) or "must not be the consumer" in str(err)
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=10, deadline=dl, verifier="vera", op_id="e")
    ledger.stake_deposit(parties.bob, 300, op_id="d")
    ledger.stake_lock(parties.bob, "job", 300, op_id="l")
    refused(ledger, vl.InvalidRequest, ledger.stake_slash, parties.vera, "job", 300, to="bob", op_id="s")
    ledger.stake_slash(parties.vera, "job", 100, to="trez", op_id="s")
    assert ledger.stake("bob").locked == 200 and ledger.balance("bob") == 700


def test_locked_stake_times_out_when_consumer_and_verifier_vanish(ledger, parties):
    """Before: the provider's stake locked against an escrow whose consumer and verifier
    vanished stayed locked forever. After: once the deadline passes the provider may refund
    the escrow (the consumer gets its money back), which frees the stake; it then leaves only
    through unbond + withdraw_delay."""
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=100, deadline=ledger.now() + 100,
                       verifier="vera", op_id="e")
    ledger.stake_deposit(parties.bob, 300, op_id="d")
    ledger.stake_lock(parties.bob, "job", 300, op_id="l")
    refused(ledger, vl.Unauthorized, ledger.escrow_refund, parties.bob, "job", op_id="f")  # not before
    refused(ledger, vl.InsufficientFunds, ledger.stake_unbond, parties.bob, 1, op_id="u0")
    ledger.advance(150)
    refused(ledger, vl.Unauthorized, ledger.escrow_release, parties.bob, "job", op_id="r")  # cannot pay itself
    ledger.escrow_refund(parties.bob, "job", op_id="f")
    assert ledger.balance("alice") == 1000 and ledger.stake("bob").free == 300
    ledger.stake_unbond(parties.bob, 300, op_id="u")
    refused(ledger, vl.EscrowStateError, ledger.stake_withdraw, parties.bob, op_id="w")  # delay is 50
    ledger.advance(60)
    ledger.stake_withdraw(parties.bob, op_id="w")
    assert ledger.balance("bob") == 1000 and vl.check_conservation(ledger) == 5000


def test_ghost_keys_and_non_keys(ledger, parties):
    refused(ledger, vl.UnknownAccount, ledger.transfer, SigningKey(b"\7" * 32), "bob", 1, op_id="g")
    for not_a_key in ("alice", None, 7, Wrapped(parties.alice, parties.alice.public_bytes[:31])):
        refused(ledger, vl.InvalidRequest, ledger.transfer, not_a_key, "bob", 1, op_id="g")


def test_holdings_is_constant_time_on_evm(request):
    """Before: ``holdings()`` looped over every account and escrow (bound 100000), so with
    10^5 escrows conservation could no longer be checked. After: running totals, O(1)."""
    from ledger_helpers import fresh_parties

    led = request.getfixturevalue("evm_base")
    p = fresh_parties(led)

    def gas():
        data = led._c.encode_abi("holdings", [])
        return led.chain.tester.estimate_gas({"from": led.chain.deployer, "to": led.address, "data": data})

    before = gas()
    for i in range(8):
        led.escrow_open(p.alice, f"job{i}", provider="bob", amount=1, deadline=led.now() + 100, op_id=f"e{i}")
    led.escrow_release(p.alice, "job0", op_id="r0")
    assert gas() == before
    assert vl.check_conservation(led) == 5000


class TwoFaced:
    """Signs with mallory's secret; ``public_bytes`` shows ``victim`` on every read but the
    ``k``-th, which shows mallory's own (so the proof of ownership it passes is mallory's)."""

    def __init__(self, mallory, victim, k):
        self.key, self.victim, self.k, self.reads = mallory, victim, k, 0

    @property
    def public_bytes(self):
        self.reads += 1
        return self.key.public_bytes if self.reads == self.k else self.victim

    def sign(self, m):
        return self.key.sign(m)

    def derive_secret(self, label):
        return self.key.derive_secret(label)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_key_that_changes_its_public_key_between_reads_impersonates_no_one(ledger, parties, k):
    """Before (memory, EVM): ``KeyProofs.holder`` proved the key read inside ``prove_holder``
    but returned the one it had read before, so mallory's object showing the minter's (or
    alice's) public key on one read and its own on the read before signing minted money and
    spent alice's balance. After: the public key a request acts for is the one just proven."""
    before = snapshot(ledger, ESC)
    for victim, fn, args in ((parties.minter, ledger.mint, ("mallory", 10**6)),
                             (parties.alice, ledger.transfer, ("mallory", 1000))):
        try:
            fn(TwoFaced(parties.mallory, victim.public_bytes, k), *args, op_id=f"x{k}")
        except (vl.Unauthorized, vl.UnknownAccount, vl.InvalidRequest):
            pass
        assert ledger.balance("alice") == 1000 and vl.check_conservation(ledger) == 5000
    after = snapshot(ledger, ESC)
    assert after["supply"] == before["supply"] and after["bal/alice"] == 1000


def test_a_derived_key_told_to_claim_a_small_order_key_cannot_act(ledger, parties):
    """The subgroup check is skipped only for public keys a signing library derived: a
    derived key object that then claims the identity key (for which anyone forges any
    signature) and forges its proof is refused, on every backend."""
    from vcompute.core import ed25519 as ed

    k = key_from_name("mallory-derived", salt="attack")
    k.public_bytes = ed.encode(ed.IDENTITY)
    k.sign = lambda _m: ed.encode(ed.mul(42, ed.B)) + (42).to_bytes(32, "little")
    refused(ledger, (vl.Unauthorized, vl.InvalidRequest), ledger.open_account, k, "mallory", op_id="x")
    refused(ledger, (vl.Unauthorized, vl.InvalidRequest), ledger.transfer, k, "bob", 1, op_id="y")


def test_per_job_operations_refuse_hostile_arguments(ledger, parties):
    """The market's per-job operations (escrow open / release / refund, stake lock / slash) take
    a fast path for exact builtins on the memory ledger: every lie still takes the checked path."""
    dl = ledger.now() + 100
    ledger.stake_deposit(parties.bob, 50, op_id="dep")
    ledger.escrow_open(parties.alice, "job", provider="bob", amount=10, deadline=dl, verifier="vera", op_id="o")
    ledger.stake_lock(parties.bob, "job", 5, op_id="l")
    names = [EveryName("job"), "job\n", "", "x" * 65, 5, None]
    amounts = [LyingInt(3), True, 3.0, 0, -1, 10**18 + 1]
    for bad in names:
        refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, bad, provider="bob", amount=1,
                deadline=dl, verifier="vera", op_id="x1")
        refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, "job2", provider=bad, amount=1,
                deadline=dl, verifier="vera", op_id="x2")
        if bad is not None:
            refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, "job2", provider="bob",
                    amount=1, deadline=dl, verifier=bad, op_id="x3")
        refused(ledger, vl.InvalidRequest, ledger.escrow_release, parties.vera, bad, op_id="x4")
        refused(ledger, vl.InvalidRequest, ledger.escrow_refund, parties.vera, bad, op_id="x5")
        refused(ledger, vl.InvalidRequest, ledger.stake_lock, parties.bob, bad, 1, op_id="x6")
        refused(ledger, vl.InvalidRequest, ledger.stake_slash, parties.vera, bad, 1, to="trez", op_id="x7")
        refused(ledger, vl.InvalidRequest, ledger.stake_slash, parties.vera, "job", 1, to=bad, op_id="x8")
    for bad in amounts:
        refused(ledger, vl.InvalidAmount, ledger.escrow_open, parties.alice, "job2", provider="bob", amount=bad,
                deadline=dl, verifier="vera", op_id="y1")
        refused(ledger, vl.InvalidAmount, ledger.stake_lock, parties.bob, "job", bad, op_id="y2")
        refused(ledger, vl.InvalidAmount, ledger.stake_slash, parties.vera, "job", bad, to="trez", op_id="y3")
    for bad in (float("nan"), float("inf"), -1.0, 2.0**41, "100", True):
        refused(ledger, vl.InvalidRequest, ledger.escrow_open, parties.alice, "job2", provider="bob", amount=1,
                deadline=bad, verifier="vera", op_id="z1")
    with pytest.raises(vl.InvalidRequest):  # a bad op id on the fast path
        ledger.escrow_release(parties.vera, "job", op_id="bad\nid")
    assert ledger.escrow("job").state == "open" and ledger.escrow("job").locked == 5


def test_possession_by_construction_vouches_only_for_the_built_key_object():
    """A SigningKey this process built from its seed opens an account without signing a
    challenge (the market's 10^4 accounts); anything else still proves by signing: an object
    showing a built key's public bytes, a built key told to claim another key, a subclass."""
    from vcompute.core.signing import built_public
    from vcompute.ledger.memory import MemoryLedger

    minter = key_from_name("minter", salt="construction")
    led = MemoryLedger(minter=minter.public_bytes)
    k = key_from_name("carol", salt="construction")
    assert built_public(k) == k.public_bytes

    def no_signing(_m):
        raise AssertionError("asked to sign a challenge")

    k.sign = no_signing  # proof by construction: the ledger never asks
    led.open_account(k, "carol", op_id="a")
    assert led.prove(k) == k.public_bytes

    class Shows:  # carries carol's public key and a signer that answers anything
        public_bytes = k.public_bytes

        def sign(self, _m):
            return bytes(64)

    assert built_public(Shows()) is None
    with pytest.raises(vl.Unauthorized):
        led.prove(Shows())
    other = key_from_name("dave", salt="construction")
    other.public_bytes = k.public_bytes  # a built key told to claim carol's key: must sign, and cannot
    assert built_public(other) is None
    with pytest.raises(vl.Unauthorized):
        led.prove(other)

    class Sub(SigningKey):
        signed = 0

        def sign(self, message):
            Sub.signed += 1
            return super().sign(message)

    s = Sub(b"\x07" * 32)
    assert built_public(s) is None
    led.open_account(s, "sub", op_id="b")
    assert Sub.signed == 1  # a subclass proves by signing, as before

"""BLS aggregate signatures: completeness, forgery and rogue-key resistance, malformed input."""

from __future__ import annotations

import pytest

pytest.importorskip("py_ecc")

from vcompute.core.bls import (  # noqa: E402
    BLSKey,
    Committee,
    aggregate,
    verify,
    verify_aggregate,
    verify_possession,
)

MSG = b"verdict: job 7 accepted"


@pytest.fixture(scope="module")
def keys():
    return [BLSKey.from_name(f"verifier{i}") for i in range(3)]


@pytest.fixture(scope="module")
def sigs(keys):
    return [k.sign(MSG) for k in keys]


def test_single_signature(keys, sigs):
    assert verify(keys[0].public_bytes, MSG, sigs[0])
    assert not verify(keys[1].public_bytes, MSG, sigs[0])


def test_aggregate_verifies_and_rejects_tampering(keys, sigs):
    pubs = [k.public_bytes for k in keys]
    agg = aggregate(sigs)
    assert len(agg) == 96
    assert verify_aggregate(pubs, MSG, agg)
    assert not verify_aggregate(pubs, b"verdict: job 7 rejected", agg)   # other verdict


@pytest.mark.slow
def test_aggregate_rejects_missing_signers(keys, sigs):
    pubs = [k.public_bytes for k in keys]
    assert not verify_aggregate(pubs[:2], MSG, aggregate(sigs))           # a signer left out
    assert not verify_aggregate(pubs, MSG, aggregate(sigs[:2]))           # a signature left out


@pytest.mark.parametrize("bad", [
    lambda p, s: (p, MSG, s[:-1]),
    lambda p, s: (p, MSG, b"\x00" * 96),
    lambda p, s: (p, MSG, "zz"),
    lambda p, s: ([], MSG, s),
    lambda p, s: (p + [p[0]], MSG, s),            # duplicate key
    lambda p, s: ([x[:-1] for x in p], MSG, s),
    lambda p, s: (p, "a string", s),
    lambda p, s: (None, MSG, s),
])
def test_malformed_input_is_false_not_an_exception(keys, sigs, bad):
    pubs = [k.public_bytes for k in keys]
    agg = aggregate(sigs)
    assert verify_aggregate(*bad(pubs, agg)) is False


def test_malformed_single_and_possession_inputs():
    assert verify(b"\x01" * 48, MSG, b"\x02" * 96) is False
    assert verify(None, MSG, None) is False
    assert verify_possession(b"\x01" * 48, b"\x02" * 96) is False
    with pytest.raises(ValueError):
        aggregate([])
    with pytest.raises(ValueError):
        aggregate([b"\x00" * 95])
    with pytest.raises(ValueError):
        BLSKey(b"short")


@pytest.mark.slow
def test_committee_refuses_a_rogue_key(keys):
    """A rogue key pk_r = pk_a' - pk_honest lets an attacker 'aggregate' alone; proof of possession stops it."""
    from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
    from py_ecc.optimized_bls12_381 import add, neg

    honest = keys[0]
    attacker = BLSKey.from_name("attacker")
    rogue = G1_to_pubkey(add(pubkey_to_G1(attacker.public_bytes), neg(pubkey_to_G1(honest.public_bytes))))
    forged = attacker.sign(MSG)
    # without proof of possession, the forgery "verifies" as if both had signed
    assert verify_aggregate([honest.public_bytes, rogue], MSG, forged)
    c = Committee(threshold=2)
    c.admit(honest.public_bytes, honest.prove_possession())
    with pytest.raises(ValueError, match="possession"):
        c.admit(rogue, attacker.prove_possession())
    assert not c.attests([honest.public_bytes, rogue], MSG, forged)


@pytest.mark.slow
def test_committee_quorum(keys, sigs):
    c = Committee(threshold=2)
    for k in keys:
        c.admit(k.public_bytes, k.prove_possession())
    pubs = [k.public_bytes for k in keys]
    assert c.attests(pubs[:2], MSG, aggregate(sigs[:2]))
    assert not c.attests(pubs[:1], MSG, sigs[0])                      # below quorum
    outsider = BLSKey.from_name("outsider")
    assert not c.attests([pubs[0], outsider.public_bytes], MSG, aggregate([sigs[0], outsider.sign(MSG)]))


def test_committee_refuses_a_key_that_changes_between_check_and_admission(keys):
    """A bytes subclass whose __bytes__ shows the proven key first and a rogue key after is refused."""
    proven, rogue = keys[0].public_bytes, keys[1].public_bytes
    calls = []

    class Shifty(bytes):
        def __bytes__(self):
            calls.append(1)
            return proven if len(calls) == 1 else rogue

    c = Committee(threshold=1)
    with pytest.raises(TypeError, match="bytes"):
        c.admit(Shifty(proven), keys[0].prove_possession())
    assert c.members == [] and not calls
    assert verify(Shifty(proven), MSG, keys[0].sign(MSG)) is False
    assert verify_aggregate((p for p in [proven]), MSG, keys[0].sign(MSG)) is False

"""The client's own transaction signer and RLP encoder produce exactly eth_account's and pyrlp's bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("coincurve")
rlp = pytest.importorskip("rlp")
eth_account = pytest.importorskip("eth_account")

from vcompute.ledger.tx import rlp_encode, sign_1559  # noqa: E402

_ITEMS = st.recursive(st.binary(max_size=300) | st.integers(min_value=0, max_value=2**300),
                      lambda inner: st.lists(inner, max_size=6), max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(_ITEMS)
def test_rlp_matches_pyrlp(item):
    assert rlp_encode(item) == rlp.encode(item)


@pytest.mark.parametrize("bad", [True, -1, "x", 1.0, (b"a",), bytearray(b"a")])
def test_rlp_refuses_what_it_cannot_encode_exactly(bad):
    with pytest.raises(TypeError):
        rlp_encode(bad)


@settings(max_examples=40, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b, "big") < 2**255),
       nonce=st.integers(0, 2**40), fee=st.integers(1, 10**13), tip=st.integers(0, 10**9),
       gas=st.integers(21_000, 30_000_000), value=st.integers(0, 10**20), data=st.binary(max_size=600),
       to=st.binary(min_size=20, max_size=20), chain_id=st.sampled_from([1, 31337, 131277322940537]))
def test_signed_bytes_equal_eth_accounts(secret, nonce, fee, tip, gas, value, data, to, chain_id):
    from eth_utils import to_checksum_address

    addr = to_checksum_address("0x" + to.hex())
    ref = eth_account.Account.from_key(secret).sign_transaction(
        {"to": addr, "data": data, "nonce": nonce, "gas": gas, "maxFeePerGas": fee, "maxPriorityFeePerGas": tip,
         "chainId": chain_id, "value": value, "type": 2}).raw_transaction
    mine = sign_1559(secret, chain_id=chain_id, nonce=nonce, max_priority_fee=tip, max_fee=fee, gas=gas, to=addr,
                     value=value, data=data)
    assert mine == bytes(ref)
    assert eth_account.Account.recover_transaction(mine) == eth_account.Account.from_key(secret).address


def test_sign_refuses_malformed_keys_and_addresses():
    with pytest.raises(ValueError, match="32-byte secret"):
        sign_1559(b"\x01" * 31, chain_id=1, nonce=0, max_priority_fee=0, max_fee=1, gas=21_000,
                  to="0x" + "ab" * 20, value=0, data=b"")
    with pytest.raises(ValueError, match="20-byte"):
        sign_1559(b"\x01" * 32, chain_id=1, nonce=0, max_priority_fee=0, max_fee=1, gas=21_000,
                  to="0x" + "ab" * 19, value=0, data=b"")

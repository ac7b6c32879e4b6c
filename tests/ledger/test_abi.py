"""The fast ABI codec agrees with eth_abi byte for byte; keccak matches eth_utils."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

eth_abi = pytest.importorskip("eth_abi")

from vcompute.ledger.abi import decode_string_uint, encode, keccak256  # noqa: E402

VALUES = {
    "uint256": st.integers(0, 2**256 - 1),
    "bytes32": st.binary(min_size=32, max_size=32),
    "address": st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    "bool": st.booleans(),
    "string": st.text(max_size=80),
    "bytes": st.binary(max_size=80),
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(VALUES)), min_size=0, max_size=6).flatmap(
    lambda ts: st.tuples(st.just(ts), st.tuples(*(VALUES[t] for t in ts)))))
def test_encode_matches_eth_abi(case):
    types, args = case
    assert encode(types, list(args)) == eth_abi.encode(types, list(args))


@given(st.text(max_size=40), st.integers(0, 2**256 - 1))
def test_event_decoding_matches_eth_abi(kind, seq):
    assert decode_string_uint(eth_abi.encode(["string", "uint256"], [kind, seq])) == (kind, seq)


def test_bad_values_and_truncated_events_are_errors():
    with pytest.raises(ValueError):
        encode(["uint256"], [-1])
    with pytest.raises(ValueError):
        encode(["uint256"], [2**256])
    with pytest.raises(ValueError):
        encode(["uint256", "string"], [1])
    with pytest.raises(ValueError):
        decode_string_uint(b"\x00" * 40)
    with pytest.raises(ValueError):
        decode_string_uint((2**200).to_bytes(32, "big") + b"\x00" * 64)


@given(st.binary(max_size=200))
def test_keccak_matches_eth_utils(data):
    from eth_utils import keccak

    assert keccak256(data) == keccak(data)

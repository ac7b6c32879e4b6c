"""One canonical validation on every backend and in the contract itself (issue 13, class 5).

The Python rules (:mod:`vcompute.ledger.canonical`) and ``protocols/VLedger.vy`` are
compared directly: hypothesis draws names, op ids and metadata encodings, hostile ones
included (bytes the client could never send), and the contract, called without the
client, must accept exactly what Python accepts.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import vcompute.ledger as vl
from ledger_helpers import contract_call
from vcompute.core.signing import key_from_name
from vcompute.ledger.canonical import (
    check_metadata,
    check_name,
    check_op_id,
    decode_metadata,
    encode_metadata,
    same_request,
)

D = bytes(range(32))


def test_names_are_matched_whole():
    """Before: ``^...$`` matched ``"alice\\n"`` (``$`` matches before a final newline)."""
    for bad in ("alice\n", "alice\r", "\nalice", "al ice", "", "a" * 65, "ａlice", "alicé"):
        with pytest.raises(vl.InvalidRequest):
            check_name(bad)
    assert check_name("a" * 64) == "a" * 64


def test_lone_surrogates_and_control_characters_are_refused_clearly(ledger, parties):
    """Before: an op id with a lone surrogate raised a bare UnicodeEncodeError on the EVM backend
    (and was accepted by memory). After: InvalidRequest (a ValueError) naming it, everywhere."""
    for bad, why in (("op\ud800", r"lone surrogate U\+D800"), ("op\n", r"control character U\+000A"),
                     ("opé", "non-ASCII"), ("", "empty"), ("x" * 129, "129 characters")):
        with pytest.raises(vl.InvalidRequest, match=why):
            ledger.transfer(parties.alice, "bob", 1, op_id=bad)
    for meta in ({"k": "a\ud800"}, {"k": "a\nb"}, {"k": "\x7f"}, {"k": "\x85"}):
        with pytest.raises(vl.InvalidRequest, match="metadata"):
            ledger.commit(parties.alice, "c1", D, metadata=meta, op_id="c")
    assert ledger.balance("bob") == 1000


def test_retry_equality_is_exact_by_type(ledger, parties):
    """Before: memory and SQLite compared retries with ``==``, so ``{"x": True}`` replayed a
    request made with ``{"x": 1}`` (EVM said conflict). After: a conflict on every backend."""
    ledger.commit(parties.alice, "c1", D, metadata={"x": 1}, op_id="c")
    with pytest.raises(vl.OperationConflict):
        ledger.commit(parties.alice, "c1", D, metadata={"x": True}, op_id="c")
    for odd in ({"x": 1.0}, {"x": [1]}, {"x": {"y": 1}}, {"bad key": 1}, {"x": 10**18}, {1: 1}):
        with pytest.raises(vl.InvalidRequest):
            ledger.commit(parties.alice, "c2", D, metadata=odd, op_id="c2")
    assert ledger.commit(parties.alice, "c1", D, metadata={"x": 1}, op_id="c").replayed
    assert ledger.commitment("c1").metadata == {"x": 1}
    assert not same_request((True,), (1,)) and not same_request((1,), (1.0,)) and same_request((1,), (1,))


def test_metadata_round_trips_exactly(ledger, parties):
    meta = {"z": None, "a": "é😀 \" \\ /", "n": -(10**18 - 1), "t": True, "e": ""}
    ledger.commit(parties.alice, "c1", D, metadata=meta, op_id="c")
    got = ledger.commitment("c1").metadata
    assert got == meta and list(got) == sorted(meta)
    assert encode_metadata(meta) == json.dumps(dict(sorted(meta.items())), separators=(",", ":"))


# -- the contract called directly accepts exactly what Python accepts --------------------

NAME_CHARS = st.sampled_from(list("azAZ09_.:@-") + [" ", "\n", "\x00", "é", "\u202e", "/", "\ud800", "\x7f"])
TEXT = st.text(st.characters(codec=None), max_size=6) | st.sampled_from(["é", "😀", "\x85", "\u00a0", "\ud800",
                                                                           "\udc00", '"', "\\", "\x7f"])
SCALAR = (st.none() | st.booleans() | st.integers(-(10**18), 10**18) | st.floats(allow_nan=False) | TEXT)
KEY = st.text(NAME_CHARS, min_size=0, max_size=4) | st.sampled_from(["a", "b", "a.", "A", "_"])
META = st.dictionaries(KEY, SCALAR | st.lists(SCALAR, max_size=2), max_size=4)


def _encodings(d):
    """Ways an adversary might spell ``d``: canonical, unsorted, spaced, raw UTF-8, escaped."""
    out = []
    for kw in ({}, {"sort_keys": True}, {"ensure_ascii": False, "sort_keys": True}, {"separators": (", ", ": ")}):
        try:
            out.append(json.dumps(d, separators=kw.pop("separators", (",", ":")), **kw))
        except (TypeError, ValueError):
            pass
    return out


def _to_bytes(text):
    return text.encode("utf-8", "surrogatepass")


def _python_accepts_metadata(raw: bytes) -> bool:
    try:
        decode_metadata(raw.decode("utf-8"))
    except (UnicodeDecodeError, vl.InvalidRequest):
        return False
    return True


@pytest.fixture(scope="module")
def direct(evm_base):
    evm_base.reset()
    evm_base.open_account(key_from_name("alice"), "alice", op_id="o")
    return evm_base


def _contract_accepts(led, fn, args, types):
    reason = contract_call(led, key_from_name("alice"), fn, args, types=types)
    return not reason.startswith("invalid:"), reason


MUTATE = st.tuples(st.integers(0, 64), st.integers(0, 2), st.sampled_from(list('{}[]",:\\u0123456789aefnrtlsx -.')))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(d=META, pick=st.integers(0, 3), mutate=st.none() | MUTATE)
@example(d={"a": 1, "b": 2}, pick=0, mutate=None).via("discovered failure")
def test_contract_accepts_exactly_the_metadata_python_accepts(direct, d, pick, mutate):
    texts = _encodings(d)
    try:
        texts.append(encode_metadata(d))
    except vl.InvalidRequest:
        pass
    raw = _to_bytes(texts[pick % len(texts)]) if texts else b"{}"
    if mutate is not None:
        i, op, c = mutate
        i = min(i, len(raw))
        raw = raw[:i] + c.encode() + raw[i + (op > 0):] if op < 2 else raw[:i] + raw[i + 1:]
    ok, reason = _contract_accepts(direct, "commit", ["c1", D, raw, "op"], ["string", "bytes32", "bytes", "string"])
    assert ok == _python_accepts_metadata(raw), f"{raw!r}: contract says {reason!r}"
    if ok:
        assert encode_metadata(check_metadata(decode_metadata(raw.decode()))) == raw.decode()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.text(NAME_CHARS, max_size=66) | st.sampled_from(["a" * 64, "a" * 65, "alice\n"]))
def test_contract_accepts_exactly_the_names_and_op_ids_python_accepts(direct, name):
    def py(check, x):
        try:
            check(x)
        except vl.InvalidRequest:
            return False
        return True

    raw = _to_bytes(name)
    if len(raw) <= 64:
        ok, reason = _contract_accepts(direct, "open_account", [raw, b"\0" * 32, b"", "o"],
                                       ["bytes", "bytes32", "bytes", "string"])
        assert ok == py(check_name, name), f"name {name!r}: {reason!r}"
    if len(raw) <= 128:
        ok, reason = _contract_accepts(direct, "stake_withdraw", [raw], ["bytes"])
        assert ok == py(check_op_id, name), f"op id {name!r}: {reason!r}"

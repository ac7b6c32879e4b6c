"""Opening accounts cannot drain the node's account: each sender gets only the gas its ledger transactions need.

The attack: open accounts with fresh keys on an ``evm+http`` (here the same
client on eth-tester, and on anvil where installed), then sign plain ether
transfers with the derived secp256k1 keys to pull the funding out. Before
the gas station each fresh account was sent 100 ETH.
"""

from __future__ import annotations

import pytest

pytest.importorskip("eth_tester")
pytest.importorskip("coincurve")

import vcompute.ledger as vl  # noqa: E402
from vcompute.core.signing import key_from_name  # noqa: E402
from vcompute.ledger.gas_station import FLOAT_TXS, GasSpentElsewhere, OutOfGasFunds  # noqa: E402
from vcompute.ledger.tx import sign_1559  # noqa: E402

_THIEF = "0x" + "7e" * 20


def _ledger(kind: str, request, query: str = ""):
    if kind == "tester":
        return vl.open(f"evm://tester{query}")
    node = request.getfixturevalue("anvil_node")
    return vl.open(f"{node.url}{query}")


def _drain(led, key) -> int:
    """Sign a plain transfer of everything but the fee from ``key``'s derived account; wei pulled out."""
    from eth_account import Account

    secret = key.derive_secret("evm")
    sender = Account.from_key(secret).address
    fee = led.gas.max_fee
    value = led.chain.balance(sender) - 21_000 * fee
    if value <= 0:
        return 0
    before = led.chain.balance(_THIEF)
    led.chain.send_raw(sign_1559(secret, chain_id=led.chain.chain_id, nonce=led.chain.nonce(sender),
                                 max_priority_fee=led.gas.tip, max_fee=fee, gas=21_000, to=_THIEF, value=value,
                                 data=b""))
    return led.chain.balance(_THIEF) - before


@pytest.fixture(params=["tester", pytest.param("anvil", marks=pytest.mark.anvil)])
def kind(request):
    return request.param


def test_fresh_accounts_yield_at_most_one_gas_float_each(kind, request):
    led = _ledger(kind, request)
    keys = [key_from_name(f"sybil-{i}") for i in range(5)]
    pulled = 0
    for i, k in enumerate(keys):
        led.open_account(k, f"sybil{i}", op_id=f"o{i}")
        pulled += _drain(led, k)
    assert led.gas.float == FLOAT_TXS * led.gas.need
    assert led.gas.funded <= len(keys) * led.gas.float
    assert 0 < pulled <= led.gas.funded < 10**18  # 100 ETH (1e20 wei) per account before
    # A drained sender is never refilled: its next operation is refused, with what to do.
    for i, k in enumerate(keys):
        with pytest.raises(GasSpentElsewhere, match="send it ether for gas yourself"):
            led.transfer(k, "sybil0", 1, op_id=f"t{i}")
    assert _drain(led, keys[0]) == 0
    assert vl.check_conservation(led) == 0


def test_the_funding_cap_bounds_all_senders_together(kind, request):
    # The float follows the node's fee, which falls as a long-lived node's blocks stay empty:
    # size the cap in floats, so the bound bites whatever the fee is now.
    probe = _ledger(kind, request)
    cap_wei = 5 * probe.gas.float + probe.gas.float // 2
    led = _ledger(kind, request, f"?fund_cap={cap_wei / 10**18!r}")
    opened = 0
    with pytest.raises(OutOfGasFunds, match="fund_cap"):
        for i in range(1000):
            led.open_account(key_from_name(f"cap-{i}"), f"s{i}", op_id=f"o{i}")
            opened += 1
    assert 0 < opened < 1000 and led.gas.funded <= cap_wei


def test_an_honest_sender_is_refilled_with_what_its_own_transactions_spent(request):
    led = _ledger("tester", request)
    led.gas.float = led.gas.need + 4 * 10**14  # a float of a few transactions, to reach a refill quickly
    a, b = key_from_name("gs-a"), key_from_name("gs-b")
    led.open_account(a, "a", op_id="oa")
    led.open_account(b, "b", op_id="ob")
    led.mint(vl.default_minter(), "a", 10**6, op_id="m")
    sender = led._account_of(a).address
    funded = led.gas.funded
    for i in range(8):
        led.transfer(a, "b", 5, op_id=f"t{i}")
        assert led.chain.balance(sender) <= led.gas.float
    assert led.gas.funded > funded  # refilled, by what its transactions burned
    assert led.balance("b") == 40


def test_fund_cap_zero_funds_nobody_and_a_self_funded_key_still_works(request):
    led = _ledger("tester", request, "?fund_cap=0")
    k = key_from_name("gs-self")
    with pytest.raises(OutOfGasFunds, match="send it ether for gas"):
        led.open_account(k, "k", op_id="o")
    led.chain.send_from_node({"to": led._account_of(k).address, "value": 10**18})  # its owner funds it
    led.open_account(k, "k", op_id="o")
    assert led.account("k").public_key == k.public_bytes and led.gas.funded == 0


@pytest.mark.parametrize("cap", ["-1", "nan", "1e12"])
def test_a_bad_fund_cap_names_the_option(cap):
    with pytest.raises(vl.InvalidURL, match="fund_cap"):
        vl.open(f"evm://tester?fund_cap={cap}")

"""A real anvil node: started and stopped by vcompute, restarted from its saved state.

Retries with the same op_id stay exactly-once across a node restart: an
operation the saved state holds is recognised as a replay, one it lost (a
node killed before dumping) is applied once.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import vcompute.ledger as vl
from vcompute.core.signing import key_from_name

pytestmark = pytest.mark.anvil

web3 = pytest.importorskip("web3")


def _node(**kw):
    from vcompute.ledger.node import AnvilNode, AnvilNotFound

    try:
        return AnvilNode(**kw)
    except AnvilNotFound as e:
        if os.environ.get("VCOMPUTE_REQUIRE_ANVIL") == "1":
            pytest.fail(f"VCOMPUTE_REQUIRE_ANVIL=1 but {e}")
        pytest.skip(str(e))


def _setup(led):
    a, b = key_from_name("restart-a"), key_from_name("restart-b")
    led.open_account(a, "a", op_id="open-a")
    led.open_account(b, "b", op_id="open-b")
    led.mint(vl.default_minter(), "a", 1000, op_id="fund")
    return a, b


def test_retry_after_a_restart_from_saved_state_is_a_replay(tmp_path):
    state = tmp_path / "anvil-state.json"
    node = _node(state=state).start()
    try:
        led = vl.open(node.url)
        a, _ = _setup(led)
        first = led.transfer(a, "b", 10, op_id="pay-1")
        address = led.address
    finally:
        node.stop()  # SIGTERM: anvil dumps its state
    assert state.exists() and state.stat().st_size > 0
    node = _node(state=state, port=node.port).start()
    try:
        led = vl.open(f"{node.url}?address={address}")
        again = led.transfer(a, "b", 10, op_id="pay-1")
        assert again.replayed and again.seq == first.seq
        assert (led.balance("a"), led.balance("b")) == (990, 10)
        assert vl.check_conservation(led) == 1000
    finally:
        node.stop()


def test_ops_a_killed_node_lost_apply_once_on_retry(tmp_path):
    state = tmp_path / "anvil-state.json"
    node = _node(state=state).start()
    try:
        led = vl.open(node.url)
        a, _ = _setup(led)
        address = led.address
    finally:
        node.stop()  # saved: accounts and funding
    node = _node(state=state, port=node.port).start()
    led = vl.open(f"{node.url}?address={address}")
    led.transfer(a, "b", 7, op_id="pay-lost")
    node.stop(kill=True)  # SIGKILL: the transfer was never dumped
    node = _node(state=state, port=node.port).start()
    try:
        led = vl.open(f"{node.url}?address={address}")
        r = led.transfer(a, "b", 7, op_id="pay-lost")
        assert not r.replayed  # the node lost it: applied now, once
        assert led.transfer(a, "b", 7, op_id="pay-lost").replayed
        assert (led.balance("a"), led.balance("b")) == (993, 7)
    finally:
        node.stop()


def test_vcompute_ledger_node_prints_a_url_that_opens(tmp_path):
    from vcompute.ledger.node import find_anvil

    if find_anvil() is None:
        _node()  # skips (or fails under VCOMPUTE_REQUIRE_ANVIL) with the install hint
    proc = subprocess.Popen([sys.executable, "-m", "vcompute.cli", "ledger", "node"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for _ in range(5):
            line = proc.stdout.readline()
            if line.strip().startswith("evm+http://"):
                url = line.strip()
                break
        assert url, proc.stderr.read() if proc.poll() is not None else "no URL printed"
        led = vl.open(url)
        assert led.total_supply() == 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode in (0, -15)

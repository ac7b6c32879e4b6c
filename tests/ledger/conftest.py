"""Ledger fixtures: every conformance test runs on every backend.

The EVM backend deploys its contract once per module (slow) and each test
starts from a chain snapshot, so the default suite stays fast.
"""

from __future__ import annotations

import os

import pytest

import vcompute.ledger as vl
from ledger_helpers import fresh_parties
from vcompute.ledger import ManualClock

BACKENDS = ["memory", "sqlite", "evm", "revm", pytest.param("anvil", marks=pytest.mark.anvil)]


def _evm_available() -> bool:
    try:
        import eth_tester  # noqa: F401
        import web3  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def evm_base():
    """One embedded chain with the ledger contract deployed, shared by a module's tests."""
    if not _evm_available():
        pytest.skip("web3 / eth-tester not installed (pip install 'vcompute[evm]')")
    led = vl.open("evm://tester?withdraw_delay=50")
    yield led
    led.close()


@pytest.fixture(scope="module")
def revm_base():
    """One embedded revm chain (``evm://``) with the ledger contract deployed, shared by a module's tests."""
    pytest.importorskip("pyrevm", reason="pyrevm not installed (pip install 'vcompute[evm]')")
    led = vl.open("evm://?withdraw_delay=50")
    yield led
    led.close()


@pytest.fixture(scope="session")
def anvil_node():
    """A real anvil node on a free loopback port for the session (tests marked ``anvil``).

    Skips with the reason when anvil is not installed, except when ``VCOMPUTE_REQUIRE_ANVIL=1``
    (``.ci/run`` sets it): then a missing anvil fails the run.
    """
    from vcompute.ledger.node import AnvilNode, AnvilNotFound

    try:
        node = AnvilNode().start()
    except AnvilNotFound as e:
        if os.environ.get("VCOMPUTE_REQUIRE_ANVIL") == "1":
            pytest.fail(f"VCOMPUTE_REQUIRE_ANVIL=1 but {e}")
        pytest.skip(str(e))
    yield node
    node.stop()


@pytest.fixture(scope="module")
def anvil_base(anvil_node):
    """The ledger contract deployed on the session's anvil node, shared by a module's tests."""
    pytest.importorskip("web3")
    led = vl.open(f"{anvil_node.url}?withdraw_delay=50")
    yield led
    led.close()


def make_ledger(kind: str, tmp_path, request, withdraw_delay: float = 50.0):
    """A fresh ledger of backend ``kind`` with a manual (or chain) clock."""
    if kind == "memory":
        return vl.open(f"memory://?withdraw_delay={withdraw_delay}")
    if kind == "sqlite":
        return vl.open(f"sqlite:///{os.path.join(tmp_path, 'ledger.db')}", clock=ManualClock(),
                       withdraw_delay=withdraw_delay)
    if kind in ("evm", "revm", "anvil"):
        base = request.getfixturevalue(f"{kind}_base")
        base.reset()
        return base
    raise ValueError(kind)


@pytest.fixture(params=BACKENDS)
def ledger(request, tmp_path):
    """A fresh ledger on each backend in turn."""
    led = make_ledger(request.param, tmp_path, request)
    yield led
    if request.param not in ("evm", "revm", "anvil"):
        led.close()


@pytest.fixture
def parties(ledger):
    """The usual cast on the ``ledger`` fixture (on the EVM, set up once and then restored)."""
    return fresh_parties(ledger)

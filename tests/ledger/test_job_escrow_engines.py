"""protocols/JobEscrow.vy's tests (tests/ledger/test_job_escrow.py) on revm, the engine of ``evm://``.

The same test functions, collected here with a ``base_chain`` on the embedded
revm chain (through :class:`revm_web3.RevmProvider`), so every transition,
refusal and attack of JobEscrow.md is checked on both engines: py-evm there,
revm here.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("web3")
pytest.importorskip("eth_tester")

import test_job_escrow as on_pyevm  # noqa: E402

globals().update({k: v for k, v in vars(on_pyevm).items() if k.startswith("test_")})
chain = on_pyevm.chain  # the per-test snapshot fixture, over this module's base_chain


class RevmEscrowChain(on_pyevm.Chain):
    """:class:`test_job_escrow.Chain` with web3 on the revm chain."""

    def __init__(self):
        from web3 import Web3

        from revm_web3 import RevmProvider, RevmTester

        provider = RevmProvider()
        self.tester = RevmTester(provider.chain)
        self.w3 = Web3(provider)
        acc = self.w3.eth.accounts
        self.deployer, self.consumer, self.provider, self.verifier, self.treasury, self.stranger = acc[:6]
        self.escrow = self.deploy("JobEscrow", [])  # no dispute games: verifier jobs only


@pytest.fixture(scope="module")
def base_chain():
    return RevmEscrowChain()


def test_this_module_runs_every_job_escrow_test_on_revm(base_chain):
    from revm_web3 import RevmProvider

    assert isinstance(base_chain.w3.provider, RevmProvider)
    mine = {k for k in globals() if k.startswith("test_")} - {"test_this_module_runs_every_job_escrow_test_on_revm"}
    assert mine == {k for k in vars(on_pyevm) if k.startswith("test_")} and len(mine) >= 15

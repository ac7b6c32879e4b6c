"""protocols/JobEscrow.vy on the embedded EVM: every transition of JobEscrow.md, the refused
ones included, and the attacks (stranger release, double release, withdraw during lock,
slash by a non-verifier, re-entrancy through a malicious receiver)."""

from __future__ import annotations

import pytest

pytest.importorskip("eth_tester")
pytest.importorskip("web3")

import re  # noqa: E402

from vcompute.ledger.contracts import load_contract  # noqa: E402

POSTED, ACCEPTED, COMMITTED, FINALIZED, SLASHED, CANCELLED, TIMED_OUT = range(1, 8)
PAY, STAKE = 10**18, 3 * 10**17
ACCEPT_WINDOW, WORK_TIME, CHALLENGE = 100, 200, 300
JOB = b"\x01" * 32
RESULT = b"\xaa" * 32


class Chain:
    def __init__(self):
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider, Web3

        self.tester = EthereumTester(PyEVMBackend())
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        acc = self.w3.eth.accounts
        self.deployer, self.consumer, self.provider, self.verifier, self.treasury, self.stranger = acc[:6]
        self.escrow = self.deploy("JobEscrow", [])  # no dispute games: verifier jobs only

    def deploy(self, name, *args):
        b = load_contract(name)
        c = self.w3.eth.contract(abi=b["abi"], bytecode=b["bytecode"])
        rc = self.w3.eth.wait_for_transaction_receipt(c.constructor(*args).transact({"from": self.deployer}))
        return self.w3.eth.contract(address=rc.contractAddress, abi=b["abi"])

    def deploy_paid(self, name, value):
        b = load_contract(name)
        c = self.w3.eth.contract(abi=b["abi"], bytecode=b["bytecode"])
        rc = self.w3.eth.wait_for_transaction_receipt(c.constructor().transact({"from": self.deployer,
                                                                                  "value": value}))
        return self.w3.eth.contract(address=rc.contractAddress, abi=b["abi"])

    def tx(self, fn, sender, value=0):
        rc = self.w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "value": value}))
        assert rc.status == 1
        return rc

    def now(self):
        return self.w3.eth.get_block("pending")["timestamp"]

    def advance(self, seconds):
        self.tester.time_travel(self.now() + seconds)

    def state(self, job=JOB):
        return self.escrow.functions.jobs(job).call()[-1]

    def conserved(self):
        """Invariant 1: ``held <= balance``, the difference being exactly the surplus nobody owns."""
        held = self.escrow.functions.held().call()
        balance = self.w3.eth.get_balance(self.escrow.address)
        burned = self.escrow.functions.burned().call()
        assert held + burned <= balance and self.escrow.functions.surplus().call() == balance - held - burned
        return held


@pytest.fixture(scope="module")
def base_chain():
    return Chain()


@pytest.fixture
def chain(base_chain):
    snap = base_chain.tester.take_snapshot()
    yield base_chain
    base_chain.conserved()
    base_chain.tester.revert_to_snapshot(snap)


def refused(reason, fn, sender, value=0):
    with pytest.raises(Exception, match=reason):
        fn.transact({"from": sender, "value": value})


def post(c, job=JOB, value=PAY):
    return c.tx(c.escrow.functions.post(job, c.verifier, c.treasury, STAKE, ACCEPT_WINDOW, WORK_TIME, CHALLENGE),
                c.consumer, value)


def accepted(c, job=JOB):
    post(c, job)
    c.tx(c.escrow.functions.accept(job), c.provider, STAKE)


def committed(c, job=JOB):
    accepted(c, job)
    c.tx(c.escrow.functions.commit_result(job, RESULT), c.provider)


def test_post_and_its_refusals(chain):
    e = chain.escrow.functions
    refused("value: a job must pay", e.post(JOB, chain.verifier, chain.treasury, STAKE, 1, 1, 1), chain.consumer, 0)
    refused("third party", e.post(JOB, chain.consumer, chain.treasury, STAKE, 1, 1, 1), chain.consumer, PAY)
    refused("windows must be positive", e.post(JOB, chain.verifier, chain.treasury, STAKE, 0, 1, 1),
            chain.consumer, PAY)
    post(chain)
    assert chain.state() == POSTED and chain.conserved() == PAY
    refused("already used", e.post(JOB, chain.verifier, chain.treasury, STAKE, 1, 1, 1), chain.consumer, PAY)


def test_cancel(chain):
    post(chain)
    refused("unauthorized", chain.escrow.functions.cancel(JOB), chain.stranger)
    chain.tx(chain.escrow.functions.cancel(JOB), chain.consumer)
    assert chain.state() == CANCELLED
    assert chain.escrow.functions.credits(chain.consumer).call() == PAY
    refused("state", chain.escrow.functions.accept(JOB), chain.provider, STAKE)


def test_accept_and_its_refusals(chain):
    post(chain)
    e = chain.escrow.functions
    refused("value: send exactly", e.accept(JOB), chain.provider, STAKE - 1)
    refused("unauthorized", e.accept(JOB), chain.consumer, STAKE)
    refused("unauthorized", e.accept(JOB), chain.verifier, STAKE)
    refused("unauthorized: the beneficiary", e.accept(JOB), chain.treasury, STAKE)
    chain.tx(e.accept(JOB), chain.provider, STAKE)
    assert chain.state() == ACCEPTED and chain.conserved() == PAY + STAKE
    refused("state", e.accept(JOB), chain.stranger, STAKE)
    refused("state: only a posted", e.cancel(JOB), chain.consumer)


def test_accept_window_closes(chain):
    post(chain)
    chain.advance(ACCEPT_WINDOW + 1)
    refused("time: the acceptance window", chain.escrow.functions.accept(JOB), chain.provider, STAKE)
    chain.tx(chain.escrow.functions.cancel(JOB), chain.consumer)  # the unaccepted job's money comes back


def test_commit_and_release_by_consumer(chain):
    accepted(chain)
    e = chain.escrow.functions
    refused("unauthorized", e.commit_result(JOB, RESULT), chain.stranger)
    refused("state", e.release(JOB), chain.consumer)  # nothing committed yet
    chain.tx(e.commit_result(JOB, RESULT), chain.provider)
    assert chain.state() == COMMITTED and chain.escrow.functions.jobs(JOB).call()[12] == RESULT
    # attack: release by a stranger, or by the provider itself
    refused("unauthorized", e.release(JOB), chain.stranger)
    refused("unauthorized", e.release(JOB), chain.provider)
    chain.tx(e.release(JOB), chain.consumer)
    assert chain.state() == FINALIZED
    assert e.credits(chain.provider).call() == PAY + STAKE
    # attack: double release / release then finalize / slash after payment
    refused("state", e.release(JOB), chain.consumer)
    refused("state", e.release(JOB), chain.verifier)
    refused("state", e.finalize(JOB), chain.stranger)
    refused("state", e.slash(JOB), chain.verifier)
    before = chain.w3.eth.get_balance(chain.provider)
    rc = chain.tx(e.withdraw(), chain.provider)
    fee = rc.gasUsed * rc.effectiveGasPrice
    assert chain.w3.eth.get_balance(chain.provider) == before + PAY + STAKE - fee
    refused("nothing to withdraw", e.withdraw(), chain.provider)
    assert chain.conserved() == 0


def test_release_by_verifier(chain):
    committed(chain)
    chain.tx(chain.escrow.functions.release(JOB), chain.verifier)
    assert chain.state() == FINALIZED


def test_commit_deadline(chain):
    accepted(chain)
    chain.advance(WORK_TIME + 1)
    refused("time: the result deadline", chain.escrow.functions.commit_result(JOB, RESULT), chain.provider)


def test_finalize_after_challenge_window_when_everyone_else_vanished(chain):
    committed(chain)
    e = chain.escrow.functions
    refused("time: the challenge window is still open", e.finalize(JOB), chain.provider)
    chain.advance(CHALLENGE + 1)
    refused("time: the challenge window has closed", e.slash(JOB), chain.verifier)
    chain.tx(e.finalize(JOB), chain.provider)
    assert chain.state() == FINALIZED and e.credits(chain.provider).call() == PAY + STAKE


def test_slash_only_by_verifier_within_window(chain):
    committed(chain)
    e = chain.escrow.functions
    for who in (chain.consumer, chain.provider, chain.stranger, chain.treasury):
        refused("unauthorized: only the job's verifier", e.slash(JOB), who)
    chain.tx(e.slash(JOB), chain.verifier)
    assert chain.state() == SLASHED
    assert e.credits(chain.treasury).call() == STAKE and e.credits(chain.consumer).call() == PAY
    assert e.credits(chain.provider).call() == 0
    refused("state", e.slash(JOB), chain.verifier)
    refused("state", e.release(JOB), chain.consumer)


def test_slash_refused_before_commit(chain):
    accepted(chain)
    refused("state: only a committed", chain.escrow.functions.slash(JOB), chain.verifier)


def test_timeout_when_provider_vanishes(chain):
    accepted(chain)
    e = chain.escrow.functions
    refused("time: the provider still has time", e.timeout(JOB), chain.consumer)
    chain.advance(WORK_TIME + 1)
    chain.tx(e.timeout(JOB), chain.stranger)  # anyone may trigger it; money goes to fixed parties
    assert chain.state() == TIMED_OUT
    assert e.credits(chain.consumer).call() == PAY and e.credits(chain.treasury).call() == STAKE
    refused("state", e.commit_result(JOB, RESULT), chain.provider)


def test_timeout_refused_once_committed(chain):
    committed(chain)
    chain.advance(WORK_TIME + 1)
    refused("state: only an accepted", chain.escrow.functions.timeout(JOB), chain.consumer)


def test_withdraw_during_lock_is_refused(chain):
    accepted(chain)
    e = chain.escrow.functions
    refused("nothing to withdraw", e.withdraw(), chain.provider)
    e_commit = e.commit_result(JOB, RESULT)
    chain.tx(e_commit, chain.provider)
    refused("nothing to withdraw", e.withdraw(), chain.provider)
    assert chain.conserved() == PAY + STAKE


def test_reentrancy_through_a_malicious_receiver(chain):
    attacker = chain.deploy("MaliciousProvider", chain.escrow.address)
    post(chain)
    chain.tx(attacker.functions.accept(JOB), chain.stranger, STAKE)
    chain.tx(attacker.functions.commit(RESULT), chain.stranger)
    assert chain.escrow.functions.jobs(JOB).call()[1] == attacker.address
    chain.tx(chain.escrow.functions.release(JOB), chain.consumer)
    chain.tx(attacker.functions.cash_out(), chain.stranger)
    a = attacker.functions
    assert a.attempts().call() >= 1           # it did try to re-enter while being paid
    assert a.reentered().call() == 0          # and every re-entry was refused
    assert a.received().call() == PAY + STAKE  # paid exactly once
    assert chain.w3.eth.get_balance(attacker.address) == PAY + STAKE
    assert chain.conserved() == 0


@pytest.mark.slow
def test_the_reentrancy_test_catches_a_vulnerable_escrow(base_chain):
    """Control: the same attacker drains a copy of JobEscrow whose withdraw() pays before
    zeroing the credit and has no lock, so the test above can fail."""
    import vyper

    from vcompute.ledger.contracts import protocols_dir

    src = (protocols_dir() / "JobEscrow.vy").read_text()
    safe = ('    self._enter()\n'
            '    amount: uint256 = self.credits[msg.sender]\n'
            '    assert amount > 0, "value: nothing to withdraw"\n'
            '    self.credits[msg.sender] = 0\n'
            '    self.held -= amount\n'
            '    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)\n'
            '    assert ok, "value: the receiver refused the ether; withdraw to an address that accepts it"\n'
            '    self._exit()\n')
    vulnerable = ('    amount: uint256 = self.credits[msg.sender]\n'
                  '    assert amount > 0, "value: nothing to withdraw"\n'
                  '    raw_call(msg.sender, b"", value=amount)\n'
                  '    self.credits[msg.sender] = 0\n'
                  '    self.held -= min(amount, self.held)\n')
    assert safe in src
    src = src.replace(safe, vulnerable)
    out = vyper.compile_code(src, output_formats=["abi", "bytecode"])
    c = base_chain
    snap = c.tester.take_snapshot()
    try:
        w3 = c.w3
        k = w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
        rc = w3.eth.wait_for_transaction_receipt(k.constructor([]).transact({"from": c.deployer}))
        weak = w3.eth.contract(address=rc.contractAddress, abi=out["abi"])
        c.tx(weak.functions.post(b"\x02" * 32, c.verifier, c.treasury, 0, 100, 100, 100), c.consumer, PAY)
        c.tx(weak.functions.post(b"\x03" * 32, c.verifier, c.treasury, 0, 100, 100, 100), c.consumer, PAY)
        attacker = c.deploy("MaliciousProvider", weak.address)
        c.tx(attacker.functions.accept(b"\x02" * 32), c.stranger, 0)
        c.tx(attacker.functions.commit(RESULT), c.stranger)
        c.tx(weak.functions.release(b"\x02" * 32), c.consumer)
        c.tx(attacker.functions.cash_out(), c.stranger)
        assert attacker.functions.reentered().call() >= 1
        assert w3.eth.get_balance(attacker.address) > PAY  # drained the other job's money
    finally:
        c.tester.revert_to_snapshot(snap)


def reason_of(fn, sender, value=0):
    """The revert reason of a transaction that must revert."""
    with pytest.raises(Exception) as info:
        fn.transact({"from": sender, "value": value})
    return str(info.value)


CATEGORY = re.compile(r"(state|unauthorized|time|value): ")


def test_post_refuses_windows_whose_sums_could_overflow(chain):
    """Before: a window of 2**256-1 was accepted and finalize/slash then reverted forever, without a reason."""
    e = chain.escrow.functions
    huge = 2**256 - 1
    for windows in ((huge, 1, 1), (1, huge, 1), (1, 1, huge), (2**32 + 1, 1, 1)):
        assert "value: windows must be at most 2**32 seconds" in reason_of(
            e.post(JOB, chain.verifier, chain.treasury, STAKE, *windows), chain.consumer, PAY)
    # the bound itself is usable end to end: finalize after a 2**32-second challenge window
    chain.tx(e.post(JOB, chain.verifier, chain.treasury, STAKE, 2**32, 2**32, 2**32), chain.consumer, PAY)
    chain.tx(e.accept(JOB), chain.provider, STAKE)
    chain.tx(e.commit_result(JOB, RESULT), chain.provider)
    chain.advance(2**32)
    chain.tx(e.finalize(JOB), chain.stranger)
    assert chain.state() == FINALIZED


def test_every_revert_carries_a_reason_category(chain):
    """Every state-changing entry point, called wrongly in every state, with and without ether,
    and unknown selectors and bare ether: each revert names its category."""
    e = chain.escrow.functions
    calls = lambda: [e.post(JOB, chain.verifier, chain.treasury, STAKE, 1, 1, 1), e.cancel(JOB),  # noqa: E731
                     e.accept(JOB), e.commit_result(JOB, RESULT), e.release(JOB), e.finalize(JOB), e.slash(JOB),
                     e.timeout(JOB), e.withdraw()]
    reverts = 0
    for setup in (lambda c: None, post, accepted, committed):
        snap = chain.tester.take_snapshot()
        setup(chain)
        for fn in calls():
            for who in (chain.consumer, chain.provider, chain.verifier):
                for value in (0, STAKE):
                    try:
                        chain.w3.eth.call({"from": who, "to": chain.escrow.address, "value": value,
                                           "data": fn._encode_transaction_data()})
                    except Exception as err:  # noqa: BLE001 - any revert must carry a category
                        reverts += 1
                        assert CATEGORY.search(str(err)), f"{fn.fn_name} by {who} with {value}: {err}"
        chain.tester.revert_to_snapshot(snap)
    for data, value in (("0xdeadbeef", 0), ("0x", 1), ("0x", 0)):
        with pytest.raises(Exception, match="state: unknown function"):
            chain.w3.eth.call({"from": chain.stranger, "to": chain.escrow.address, "data": data, "value": value})
    assert reverts > 150


@pytest.mark.filterwarnings("ignore:SELFDESTRUCT")
def test_forced_ether_is_surplus_and_the_books_still_balance(chain):
    """Ether forced in by selfdestruct breaks ``held == balance`` but not ``held <= balance``:
    it is surplus (``surplus()``) that no transition credits, and every job still settles."""
    forcer = chain.deploy_paid("ForceSend", 7)
    chain.tx(forcer.functions.force(chain.escrow.address), chain.stranger)
    assert chain.escrow.functions.surplus().call() == 7
    committed(chain)
    chain.tx(chain.escrow.functions.release(JOB), chain.consumer)
    chain.tx(chain.escrow.functions.withdraw(), chain.provider)
    assert chain.conserved() == 0
    assert chain.w3.eth.get_balance(chain.escrow.address) == 7 == chain.escrow.functions.surplus().call()

"""JobEscrow.vy trusts only the dispute games it was deployed with (protocols/JobEscrow.md, "Which games
an escrow trusts"; proofs/dispute.md C5): the attacks of a consumer who names a game of its own, on an
embedded revm. Each attack is also run against an escrow that trusts the attacker's game (the control),
to show that the attack would take the provider's stake."""

from __future__ import annotations

import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.dispute_client import ContractRevert, DisputeChain  # noqa: E402
from vcompute.verify.dispute.players import make_player  # noqa: E402
from vcompute.verify.dispute.trace import QuantNet  # noqa: E402

PAY, STAKE, BOND = 3 * 10**18, 2 * 10**18, 10**18
WINDOW, MOVE = 1000, 100
ACCEPTED, COMMITTED, FINALIZED, SLASHED = 2, 3, 4, 5


@pytest.fixture(scope="module")
def job():
    net = QuantNet.random(dims=(32,) * 3, rows=2, seed=4)
    return net, net.random_input(seed=2)


def _chain():
    c = DisputeChain(move_timeout=MOVE)
    for who in ("consumer", "provider", "thief", "stranger"):
        c.fund(who, 100 * PAY)
    c.escrow  # noqa: B018 (deployed trusting c.contract only)
    return c


def _refused(fn, reason):
    with pytest.raises(ContractRevert) as e:
        fn()
    assert e.value.reason.startswith(reason), e.value.reason


def _post(c, jid, game, spec, on="escrow"):
    c.call("consumer", "post_disputed", jid, game, spec, STAKE, 100, 1000, WINDOW, value=PAY, on=on)


def _code_hash(c, on):
    return c.evm.basic(c.at(on)).code_hash


def test_a_lying_game_the_consumer_deployed_is_refused_and_would_have_stolen_the_stake():
    c = _chain()
    spec = b"\x05" * 32
    c.deploy("LyingGame", c.address("provider"), spec, c.address("thief"), as_="liar")
    _refused(lambda: _post(c, b"\x01" * 32, c.at("liar"), spec),
             "unauthorized: the game is not one this escrow was deployed to trust")
    # control: an escrow that trusts the lying game pays the consumer's sybil the stake
    c.deploy("JobEscrow", [c.at("liar")], as_="naive")
    jid = b"\x02" * 32
    _post(c, jid, c.at("liar"), spec, on="naive")
    c.call("provider", "accept", jid, value=STAKE, on="naive")
    c.call("provider", "commit_claim", jid, b"\x03" * 32, on="naive")
    c.call("consumer", "set_lost", True, on="liar")
    c.call("stranger", "settle", jid, on="naive")
    assert c.view("credits", c.address("thief"), on="naive") == STAKE
    assert c.view("credits", c.address("consumer"), on="naive") == PAY


def test_a_proxy_in_front_of_the_audited_game_is_refused():
    """An upgradeable proxy delegating to the audited game's code could be switched to a lying one."""
    c = _chain()
    c.deploy("GameProxy", c.contract, as_="proxy")
    assert c.view("burn_bps", on="proxy") == 0  # it runs the game's code on its own (empty) storage
    _refused(lambda: _post(c, b"\x01" * 32, c.at("proxy"), b"\x05" * 32),
             "unauthorized: the game is not one this escrow was deployed to trust")


def test_a_copy_of_the_audited_code_with_hostile_parameters_is_refused(job):
    """Dispute.vy keeps its parameters in storage: a copy with a one-second move timeout and the
    consumer as treasury has the audited code hash, so a code-hash allowlist alone would admit it."""
    net, x0 = job
    c = _chain()
    c.deploy("Dispute", c.address("thief"), 10000, 1, 1, 2, c.at("float_step"), as_="copy")
    assert _code_hash(c, "copy") == _code_hash(c, "dispute")
    assert c.view("move_timeout", on="copy") == 1 and c.view("burn_bps", on="copy") == 10000
    p = make_player("honest", net, x0, seed=0, name="provider")
    spec = c.view("job_id_of", net.ops_tree.root, p.honest_trace.leaves[0], net.n_layers)
    _refused(lambda: _post(c, b"\x01" * 32, c.at("copy"), spec),
             "unauthorized: the game is not one this escrow was deployed to trust")
    _post(c, b"\x02" * 32, c.contract, spec)  # the audited deployment itself is accepted


def test_an_allowed_game_whose_code_changed_is_refused(job):
    """A metamorphic game (CREATE2, self-destructed and redeployed with other code; here the code is
    swapped in the EVM's state) is refused at post and on every later read of the game."""
    import pyrevm

    net, x0 = job
    c = _chain()
    p = make_player("lie_one", net, x0, seed=3, name="provider")
    spec = c.view("job_id_of", net.ops_tree.root, p.honest_trace.leaves[0], net.n_layers)
    jid = b"\x01" * 32
    _post(c, jid, c.contract, spec)
    c.call("provider", "accept", jid, value=STAKE, on="escrow")
    claim = c.call("provider", "commit", net.ops_tree.root, p.honest_trace.leaves[0], net.n_layers,
                   *p.commitment(), WINDOW + MOVE, value=BOND)
    c.call("provider", "commit_claim", jid, claim, on="escrow")
    c.deploy("LyingGame", c.address("provider"), spec, c.address("thief"), as_="liar")
    c.call("consumer", "set_lost", True, on="liar")
    before = c.evm.basic(c.contract)
    c.evm.insert_account_info(c.contract, pyrevm.AccountInfo(balance=before.balance, nonce=before.nonce,
                                                             code=c.evm.get_code(c.at("liar"))))
    c.advance(10 * WINDOW)
    for fn in ("settle", "finalize"):
        _refused(lambda: c.call("stranger", fn, jid, on="escrow"),
                 "state: the game's code has changed since this escrow was deployed")
    _refused(lambda: _post(c, b"\x02" * 32, c.contract, spec), "state: the game's code has changed")
    assert c.record("jobs", jid, on="escrow")["state"] == COMMITTED


def test_a_claim_in_another_allowed_game_is_refused(job):
    """An escrow trusting two games: a job names one, the provider's claim lives in the other."""
    net, x0 = job
    c = _chain()
    c.deploy("Dispute", "0x" + "00" * 20, 1000, MOVE, 1, 2, c.at("float_step"), as_="second")
    c.deploy("JobEscrow", [c.contract, c.at("second")], as_="two")
    p = make_player("honest", net, x0, seed=0, name="provider")
    spec = c.view("job_id_of", net.ops_tree.root, p.honest_trace.leaves[0], net.n_layers)
    jid = b"\x01" * 32
    _post(c, jid, c.contract, spec, on="two")
    c.call("provider", "accept", jid, value=STAKE, on="two")
    claim = c.call("provider", "commit", net.ops_tree.root, p.honest_trace.leaves[0], net.n_layers,
                   *p.commitment(), WINDOW + MOVE, value=BOND, on="second")
    _refused(lambda: c.call("provider", "commit_claim", jid, claim, on="two"),
             "unauthorized: the claim is not the provider's")
    assert c.record("jobs", jid, on="two")["state"] == ACCEPTED


def test_the_constructor_refuses_a_game_without_code():
    c = _chain()
    with pytest.raises(Exception):  # noqa: B017 (a deploy revert: pyrevm raises before any receipt)
        c.deploy("JobEscrow", [c.address("nobody")], as_="bad")
    assert c.view("GAMES", 0, on="escrow") == c.contract


def test_the_lying_game_is_refused_on_py_evm_too():
    """The same attack on ``evm://tester``'s engine (eth-tester on py-evm): JobEscrow deployed trusting the
    real Dispute.vy refuses the consumer's lying game; the control escrow trusting it hands the stake over."""
    pytest.importorskip("eth_tester")
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider, Web3

    from vcompute.ledger.contracts import load_contract

    w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
    deployer, consumer, provider, thief, stranger = w3.eth.accounts[:5]

    def deploy(name, *args):
        b = load_contract(name)
        k = w3.eth.contract(abi=b["abi"], bytecode=b["bytecode"])
        rc = w3.eth.wait_for_transaction_receipt(k.constructor(*args).transact({"from": deployer}))
        return w3.eth.contract(address=rc.contractAddress, abi=b["abi"])

    def tx(fn, sender, value=0):
        assert w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "value": value})).status == 1

    float_step = deploy("FloatStep")
    game = deploy("Dispute", "0x" + "00" * 20, 1000, MOVE, 1, 2, float_step.address)
    escrow = deploy("JobEscrow", [game.address])
    spec = b"\x05" * 32
    liar = deploy("LyingGame", provider, spec, thief)
    with pytest.raises(Exception, match="unauthorized: the game is not one this escrow was deployed to trust"):
        escrow.functions.post_disputed(b"\x01" * 32, liar.address, spec, STAKE, 100, 1000, WINDOW).transact(
            {"from": consumer, "value": PAY})
    tx(escrow.functions.post_disputed(b"\x02" * 32, game.address, spec, STAKE, 100, 1000, WINDOW), consumer, PAY)
    naive = deploy("JobEscrow", [liar.address])
    jid = b"\x03" * 32
    tx(naive.functions.post_disputed(jid, liar.address, spec, STAKE, 100, 1000, WINDOW), consumer, PAY)
    tx(naive.functions.accept(jid), provider, STAKE)
    tx(naive.functions.commit_claim(jid, b"\x04" * 32), provider)
    tx(liar.functions.set_lost(True), consumer)
    tx(naive.functions.settle(jid), stranger)
    assert naive.functions.credits(thief).call() == STAKE

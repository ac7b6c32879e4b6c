"""JobEscrow.vy settled by OperatorGame.vy on an embedded revm (protocols/JobEscrow.md, "Jobs settled by a
dispute game"; proofs/dispute.md C5, C9): the operator-level game's outcome settles an escrowed job, the
escrow trusts both games, and a claim in one game cannot settle a job posted with the other."""

from __future__ import annotations

import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.dispute_client import ContractRevert  # noqa: E402
from vcompute.ledger.op_dispute import OpChain, play_op_job, referee_op  # noqa: E402
from vcompute.verify.dispute.op_players import MLP_LYING, make_op_player  # noqa: E402
from vcompute.verify.dispute.op_trace import MLPNet  # noqa: E402
from vcompute.verify.dispute.players import make_player  # noqa: E402
from vcompute.verify.dispute.trace import QuantNet  # noqa: E402

PAY, STAKE, BOND = 3 * 10**18, 2 * 10**18, 10**18
WINDOW, MOVE = 1000, 100
ACCEPTED, COMMITTED, FINALIZED, SLASHED = 2, 3, 4, 5


@pytest.fixture(scope="module", params=(False, True), ids=("gelu_mlp", "pre_ln"))
def job(request):
    net = MLPNet.random(d=16, hidden=32, n_layers=2, rows=2, seed=0, pre_ln=request.param)
    return net, net.random_input(seed=1)


def _books(chain):
    """Money is conserved on every contract: what each holds is what it owes plus what it burned."""
    assert chain.contract_balance("escrow") == chain.view("held", on="escrow") + chain.view("burned", on="escrow")
    assert chain.contract_balance("game") == chain.view("held", on="game") + chain.view("burned", on="game")
    assert chain.contract_balance() == chain.view("held") + chain.view("burned")


def _run(net, x0, provider, challenger, *, burn_bps=1000, seed=5):
    chain = OpChain(move_timeout=MOVE, burn_bps=burn_bps)
    p = make_op_player(provider, net, x0, seed=seed, name="provider")
    c = make_op_player(challenger, net, x0, seed=seed + 1, name="challenger") if challenger else None
    out = play_op_job(chain, p, c, ops_root=net.ops_tree.root, input_state=p.honest_trace.leaves[0],
                      n_layers=net.n_layers, per_layer=net.per_layer, payment=PAY, stake=STAKE, bond=BOND,
                      challenge_window=WINDOW)
    _books(chain)
    return chain, out


def test_an_undisputed_honest_job_pays_the_provider(job):
    chain, out = _run(*job, "honest", None)
    assert out.job_state == "finalized" and out.game is None and out.refused == 0
    assert out.escrow_credits == {"consumer": 0, "provider": PAY + STAKE}
    assert chain.view("credits", chain.address("provider"), on="game") == BOND  # its bond back


@pytest.mark.parametrize("liar", MLP_LYING)
def test_a_lying_provider_loses_its_stake_to_the_honest_watcher(job, liar):
    chain, out = _run(*job, liar, "honest", burn_bps=2500)
    assert out.game.winner == "challenger" and out.job_state == "slashed"
    assert out.refused == 1  # finalize while the game ran
    assert out.escrow_credits == {"consumer": PAY, "provider": 0, "challenger": STAKE - STAKE // 4}
    assert chain.view("burned", on="escrow") == STAKE // 4
    assert chain.view("credits", chain.address("challenger"), on="game") == BOND + BOND * 3 // 4
    assert chain.view("credits", chain.address("provider"), on="game") == 0
    # a liar that cannot open its trace, or whose operator breaks the frame, has no valid last move
    assert out.game.how == ("timeout" if liar in ("absent", "bad_openings", "x_tamper") else "step")


@pytest.mark.parametrize("griefer", ("drift", *MLP_LYING))
def test_an_honest_provider_is_paid_whatever_the_griefer_does(job, griefer):
    chain, out = _run(*job, "honest", griefer)
    assert out.game.winner == "claimant" and out.job_state == "finalized" and out.refused == 1
    assert out.escrow_credits == {"consumer": 0, "provider": PAY + STAKE, "challenger": 0}
    assert chain.view("credits", chain.address("provider"), on="game") == BOND + BOND * 9 // 10
    assert chain.view("credits", chain.address("challenger"), on="game") == 0
    assert out.game.how == ("timeout" if griefer in ("absent", "bad_openings") else "step")


def _refused(fn, reason):
    with pytest.raises(ContractRevert) as e:
        fn()
    assert e.value.reason.startswith(reason), e.value.reason


class _Job:
    """A job posted by hand on the escrow that trusts both games, to attack the pairing of job and game."""

    def __init__(self, chain, game, spec, jid):
        self.chain, self.id = chain, jid
        for who in ("consumer", "provider", "watcher", "stranger"):
            chain.fund(who, 100 * PAY)
        chain.call("consumer", "post_disputed", jid, chain.at(game), spec, STAKE, 100, 1000, WINDOW,
                   value=PAY, on="escrow")
        chain.call("provider", "accept", jid, value=STAKE, on="escrow")

    def esc(self, who, fn, *args):
        return self.chain.call(who, fn, *args, on="escrow")

    def state(self):
        return self.chain.record("jobs", self.id, on="escrow")["state"]


def test_a_claim_in_one_game_cannot_settle_a_job_posted_with_the_other(job):
    net, x0 = job
    chain = OpChain(move_timeout=MOVE)
    trusted = [chain.view("GAMES", i, on="escrow").lower() for i in (0, 1)]
    assert trusted == [chain.contract.lower(), chain.at("game").lower()]
    # an operator-level job, and a liar's claim on it in the operator game
    op_spec = chain.view("job_id_of", net.ops_tree.root, x0_leaf := make_op_player(
        "honest", net, x0, seed=0).honest_trace.leaves[0], net.n_layers, net.per_layer, on="game")
    liar, w = (make_op_player(s, net, x0, seed=3, name=n) for s, n in (("lie_one", "provider"), ("honest", "watcher")))
    op_job = _Job(chain, "game", op_spec, b"\x01" * 32)
    op_claim = chain.call("provider", "commit", net.ops_tree.root, x0_leaf, net.n_layers, net.per_layer,
                          *liar.commitment(), WINDOW + MOVE, value=BOND, on="game")
    # a Dispute.vy job, and the same provider's claim on it in Dispute.vy
    qnet = QuantNet.random(dims=(32,) * 3, rows=2, seed=4)
    qp = make_player("lie_one", qnet, qnet.random_input(seed=2), seed=3, name="provider")
    qw = make_player("honest", qnet, qnet.random_input(seed=2), seed=0, name="watcher")
    q_spec = chain.view("job_id_of", qnet.ops_tree.root, qp.honest_trace.leaves[0], qnet.n_layers)
    q_job = _Job(chain, "dispute", q_spec, b"\x02" * 32)
    q_claim = chain.call("provider", "commit", qnet.ops_tree.root, qp.honest_trace.leaves[0], qnet.n_layers,
                         *qp.commitment(), WINDOW + MOVE, value=BOND)
    # each job reads only its own game: the other game's claim is unknown there
    _refused(lambda: op_job.esc("provider", "commit_claim", op_job.id, q_claim), "unauthorized:")
    _refused(lambda: q_job.esc("provider", "commit_claim", q_job.id, op_claim), "unauthorized:")
    op_job.esc("provider", "commit_claim", op_job.id, op_claim)
    q_job.esc("provider", "commit_claim", q_job.id, q_claim)
    # the Dispute.vy claim loses; that settles its own job only
    chain.call("watcher", "dispute", q_claim, *qw.commitment(), value=BOND)
    from vcompute.ledger.dispute_client import referee

    assert referee(chain, q_claim, qp, qw).winner == "challenger"
    q_job.esc("stranger", "settle", q_job.id)
    _refused(lambda: op_job.esc("stranger", "settle", op_job.id), "state: the claim has not lost")
    # the operator-level claim is disputed: its job waits for its own game, whatever the other game did
    w.prepare(liar)
    chain.call("watcher", "dispute", op_claim, *w.commitment(), value=BOND, on="game")
    chain.advance(WINDOW + 10)
    _refused(lambda: op_job.esc("stranger", "finalize", op_job.id), "state: a dispute of the claim is running")
    _refused(lambda: op_job.esc("stranger", "settle", op_job.id), "state: the claim has not lost")
    assert referee_op(chain, op_claim, liar, w).winner == "challenger"
    _refused(lambda: op_job.esc("stranger", "finalize", op_job.id), "state: the claim lost its dispute")
    op_job.esc("stranger", "settle", op_job.id)
    assert op_job.state() == SLASHED and q_job.state() == SLASHED
    assert chain.view("credits", chain.address("watcher"), on="escrow") == 2 * (STAKE - STAKE // 10)
    assert chain.view("credits", chain.address("consumer"), on="escrow") == 2 * PAY
    _books(chain)


def test_an_escrow_trusting_only_dispute_vy_refuses_operator_game_jobs(job):
    chain = OpChain(move_timeout=MOVE)
    chain.deploy("JobEscrow", [chain.contract], as_="dispute_only")
    chain.fund("consumer", 10 * PAY)
    _refused(lambda: chain.call("consumer", "post_disputed", b"\x03" * 32, chain.at("game"), b"\x04" * 32, STAKE,
                                100, 100, WINDOW, value=PAY, on="dispute_only"), "unauthorized:")


def test_a_provider_that_never_commits_forfeits_its_stake_to_the_consumer(job):
    chain = OpChain(move_timeout=MOVE)
    j = _Job(chain, "game", b"\x05" * 32, b"\x06" * 32)
    chain.advance(1000)
    j.esc("stranger", "timeout", j.id)
    assert chain.view("credits", chain.address("consumer"), on="escrow") == PAY + STAKE
    _books(chain)



def test_a_sybil_that_loses_for_the_liar_does_not_run_out_the_honest_watchers_clock(job):
    """A lying provider's sybil disputes with another lie and plays badly, so the claim wins that game; the
    game restarts the claim's window, the escrow waits for it, and the honest watcher still slashes."""
    net, x0 = job
    chain = OpChain(move_timeout=MOVE)
    liar, sybil, w = (make_op_player(s, net, x0, seed=3, name=n)
                      for s, n in (("lie_one", "provider"), ("lie_last", "sybil"), ("honest", "watcher")))
    x0_leaf = liar.honest_trace.leaves[0]
    spec = chain.view("job_id_of", net.ops_tree.root, x0_leaf, net.n_layers, net.per_layer, on="game")
    j = _Job(chain, "game", spec, b"\x0a" * 32)
    chain.fund("sybil", 10 * BOND)
    claim = chain.call("provider", "commit", net.ops_tree.root, x0_leaf, net.n_layers, net.per_layer,
                       *liar.commitment(), WINDOW + MOVE, value=BOND, on="game")
    j.esc("provider", "commit_claim", j.id, claim)
    chain.advance(WINDOW - 50)
    chain.call("sybil", "dispute", claim, *sybil.commitment(), value=BOND, on="game")
    assert referee_op(chain, claim, liar, sybil).winner == "claimant"  # the liar beat its own sybil
    chain.advance(60)  # past the escrow's own window, inside the claim's restarted one
    _refused(lambda: j.esc("stranger", "finalize", j.id), "time: the claim's dispute window is still open")
    w.prepare(liar)
    chain.call("watcher", "dispute", claim, *w.commitment(), value=BOND, on="game")
    assert referee_op(chain, claim, liar, w).winner == "challenger"
    j.esc("stranger", "settle", j.id)
    assert j.state() == SLASHED
    assert chain.view("credits", chain.address("watcher"), on="escrow") == STAKE - STAKE // 10
    assert chain.view("credits", chain.address("consumer"), on="escrow") == PAY
    assert chain.view("credits", chain.address("provider"), on="escrow") == 0
    _books(chain)

"""JobEscrow.vy settled by Dispute.vy, both deployed on an embedded revm (protocols/JobEscrow.md,
"Jobs settled by a dispute game"; proofs/dispute.md C5): a disputed job cannot finalize until its
game ends, the game's outcome settles the escrow, and the attacks on that ordering are refused."""

from __future__ import annotations

import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.dispute_client import ContractRevert, DisputeChain, referee  # noqa: E402
from vcompute.ledger.dispute_escrow import play_job  # noqa: E402
from vcompute.verify.dispute.players import LYING, make_player  # noqa: E402
from vcompute.verify.dispute.trace import QuantNet  # noqa: E402

PAY, STAKE, BOND = 3 * 10**18, 2 * 10**18, 10**18
WINDOW, MOVE = 1000, 100
POSTED, ACCEPTED, COMMITTED, FINALIZED, SLASHED = range(1, 6)


@pytest.fixture(scope="module")
def job():
    net = QuantNet.random(dims=(32,) * 5, rows=2, seed=4)
    return net, net.random_input(seed=2)


def _books(chain):
    """Money is conserved on both contracts: what they hold is what they owe plus what they burned."""
    assert chain.contract_balance("escrow") == chain.view("held", on="escrow") + chain.view("burned", on="escrow")
    assert chain.contract_balance() == chain.view("held") + chain.view("burned")


def _run(net, x0, provider, challenger, *, treasury=None, burn_bps=1000, seed=5):
    chain = DisputeChain(move_timeout=MOVE, burn_bps=burn_bps, treasury=treasury)
    p = make_player(provider, net, x0, seed=seed, name="provider")
    c = make_player(challenger, net, x0, seed=seed + 1, name="challenger") if challenger else None
    out = play_job(chain, p, c, ops_root=net.ops_tree.root, input_state=p.honest_trace.leaves[0],
                   payment=PAY, stake=STAKE, bond=BOND, challenge_window=WINDOW, treasury=treasury)
    _books(chain)
    return chain, out


def test_an_undisputed_honest_job_pays_the_provider(job):
    chain, out = _run(*job, "honest", None)
    assert out.job_state == "finalized" and out.game is None
    assert out.escrow_credits == {"consumer": 0, "provider": PAY + STAKE}


@pytest.mark.parametrize("liar", LYING)
def test_a_lying_provider_loses_its_stake_to_the_honest_watcher(job, liar):
    chain, out = _run(*job, liar, "honest", burn_bps=2500)
    assert out.game.winner == "challenger" and out.job_state == "slashed"
    assert out.refused == 1  # finalize while the game ran
    assert out.escrow_credits == {"consumer": PAY, "provider": 0, "challenger": STAKE - STAKE // 4}
    assert chain.view("burned", on="escrow") == STAKE // 4
    # the bond went the same way in the game
    assert chain.view("credits", chain.address("challenger")) == BOND + BOND * 3 // 4


@pytest.mark.parametrize("liar", LYING)
def test_an_honest_provider_is_paid_whatever_the_griefer_does(job, liar):
    chain, out = _run(*job, "honest", liar)
    assert out.game.winner == "claimant" and out.job_state == "finalized" and out.refused == 1
    assert out.escrow_credits == {"consumer": 0, "provider": PAY + STAKE, "challenger": 0}
    assert chain.view("credits", chain.address("provider")) == BOND + BOND * 9 // 10


def test_nobody_wins_two_liars_the_whole_stake_goes_to_the_treasury(job):
    net, x0 = job
    for seed in range(8):
        chain, out = _run(net, x0, "lie_one", "lie_last", treasury="treasury", seed=seed)
        if out.game.winner == "none":
            assert out.job_state == "slashed"
            assert out.escrow_credits == {"consumer": PAY, "provider": 0, "challenger": 0, "treasury": STAKE}
            return
    pytest.fail("no seed gave two liars who both fail the last step")  # pragma: no cover


class _Job:
    """A disputed job set up by hand, for the attacks on the ordering."""

    def __init__(self, net, x0, *, provider="lie_one", window=WINDOW, claim_window=None):
        self.chain = c = DisputeChain(move_timeout=MOVE)
        self.net = net
        self.p = make_player(provider, net, x0, seed=3, name="provider")
        self.w = make_player("honest", net, x0, seed=0, name="watcher")
        for who in ("consumer", "provider", "watcher", "stranger"):
            c.fund(who, 100 * PAY)
        self.spec = c.view("job_id_of", net.ops_tree.root, self.p.honest_trace.leaves[0], net.n_layers)
        self.id = b"\x07" * 32
        c.call("consumer", "post_disputed", self.id, c.contract, self.spec, STAKE, 100, 1000, window,
               value=PAY, on="escrow")
        c.call("provider", "accept", self.id, value=STAKE, on="escrow")
        self.claim = self.commit("provider", self.p, claim_window or window + MOVE)

    def commit(self, who, player, window):
        return self.chain.call(who, "commit", self.net.ops_tree.root, player.honest_trace.leaves[0],
                               self.net.n_layers, *player.commitment(), window, value=BOND)

    def esc(self, who, fn, *args):
        return self.chain.call(who, fn, *args, on="escrow")

    def state(self):
        return self.chain.record("jobs", self.id, on="escrow")["state"]


def _refused(fn, reason):
    with pytest.raises(ContractRevert) as e:
        fn()
    assert e.value.reason.startswith(reason), e.value.reason


def test_finalize_during_a_dispute_is_refused_until_the_game_ends(job):
    j = _Job(*job)
    j.esc("provider", "commit_claim", j.id, j.claim)
    j.chain.call("watcher", "dispute", j.claim, *j.w.commitment(), value=BOND)
    j.chain.advance(WINDOW + 10)  # the escrow's window is over, the game is not
    _refused(lambda: j.esc("stranger", "finalize", j.id), "state: a dispute of the claim is running")
    _refused(lambda: j.esc("stranger", "settle", j.id), "state: the claim has not lost")
    _refused(lambda: j.esc("consumer", "release", j.id), "state: a job settled by dispute")
    referee(j.chain, j.claim, j.p, j.w)
    _refused(lambda: j.esc("stranger", "finalize", j.id), "state: the claim lost its dispute")
    j.esc("stranger", "settle", j.id)
    assert j.state() == SLASHED
    _refused(lambda: j.esc("stranger", "settle", j.id), "state:")  # a job settles once
    _refused(lambda: j.esc("stranger", "finalize", j.id), "state:")
    _books(j.chain)


def test_a_won_game_restarts_the_window_the_escrow_waits_for(job):
    """A griefer loses; the claim's window restarts; the escrow pays only after the new deadline."""
    net, x0 = job
    j = _Job(net, x0, provider="honest")
    j.esc("provider", "commit_claim", j.id, j.claim)
    griefer = make_player("lie_one", net, x0, seed=11, name="watcher")
    j.chain.advance(WINDOW - 50)
    j.chain.call("watcher", "dispute", j.claim, *griefer.commitment(), value=BOND)
    assert referee(j.chain, j.claim, j.p, griefer).winner == "claimant"
    _refused(lambda: j.esc("stranger", "finalize", j.id), "time: the claim's dispute window is still open")
    j.chain.advance(j.chain.record("claims", j.claim)["deadline"] - j.chain.time)
    j.esc("stranger", "finalize", j.id)
    assert j.state() == FINALIZED
    _books(j.chain)


def test_a_dispute_after_finalize_is_refused(job):
    j = _Job(*job)
    j.esc("provider", "commit_claim", j.id, j.claim)
    j.chain.advance(WINDOW + MOVE)
    j.esc("stranger", "finalize", j.id)
    assert j.state() == FINALIZED
    _refused(lambda: j.chain.call("watcher", "dispute", j.claim, *j.w.commitment(), value=BOND),
             "timeout: the challenge window has closed")
    _refused(lambda: j.esc("stranger", "settle", j.id), "state:")


def test_a_double_dispute_is_refused(job):
    j = _Job(*job)
    j.esc("provider", "commit_claim", j.id, j.claim)
    j.chain.call("watcher", "dispute", j.claim, *j.w.commitment(), value=BOND)
    _refused(lambda: j.chain.call("stranger", "dispute", j.claim, *j.w.commitment(), value=BOND),
             "state: the claim is not open")


def test_commit_claim_refuses_every_claim_that_is_not_this_jobs(job):
    net, x0 = job
    j = _Job(net, x0)
    other = j.commit("stranger", j.w, WINDOW + MOVE)  # someone else's claim on the same spec
    _refused(lambda: j.esc("provider", "commit_result", j.id, b"\x01" * 32), "state: this job settles by dispute")
    _refused(lambda: j.esc("stranger", "commit_claim", j.id, j.claim), "unauthorized: only the provider")
    _refused(lambda: j.esc("provider", "commit_claim", j.id, other), "unauthorized: the claim is not the provider")
    _refused(lambda: j.esc("provider", "commit_claim", j.id, b"\x00" * 32), "unauthorized:")
    j.chain.call("watcher", "dispute", j.claim, *j.w.commitment(), value=BOND)
    _refused(lambda: j.esc("provider", "commit_claim", j.id, j.claim), "state: the claim is not open")
    # a claim on another job spec
    net2 = QuantNet.random(dims=(32,) * 3, rows=2, seed=9)
    p2 = make_player("honest", net2, net2.random_input(seed=0), seed=0, name="provider")
    c2 = j.chain.call("provider", "commit", net2.ops_tree.root, p2.honest_trace.leaves[0], net2.n_layers,
                      *p2.commitment(), WINDOW + MOVE, value=BOND)
    _refused(lambda: j.esc("provider", "commit_claim", j.id, c2), "value: the claim is on another job spec")
    # a claim whose dispute window would close before the escrow's
    j2 = _Job(net, x0, claim_window=WINDOW - 1)
    _refused(lambda: j2.esc("provider", "commit_claim", j2.id, j2.claim), "time: the claim's dispute window ends")
    _refused(lambda: j2.chain.call("consumer", "post_disputed", b"\x09" * 32, j2.chain.address("nobody"), j2.spec,
                                   STAKE, 1, 1, 1, value=PAY, on="escrow"), "value: the game must be a deployed")
    assert j.state() == ACCEPTED and j2.state() == ACCEPTED


def test_a_provider_that_never_commits_forfeits_its_stake_to_the_consumer(job):
    j = _Job(*job)
    j.chain.advance(1000)
    j.esc("stranger", "timeout", j.id)
    assert j.chain.view("credits", j.chain.address("consumer"), on="escrow") == PAY + STAKE
    _books(j.chain)


def test_the_escrow_reads_the_game_without_letting_it_re_enter(job):
    """A hostile game re-enters finalize, settle and withdraw from outcome(): the escrow reads it with
    staticcall, so every re-entry fails and the job pays exactly once."""
    net, x0 = job
    chain = DisputeChain(move_timeout=MOVE)
    for who in ("consumer", "provider"):
        chain.fund(who, 100 * PAY)
    spec = b"\x05" * 32
    # the escrow must trust the hostile game for its reads to happen at all: deploy the game at the
    # address the escrow's next deployment will call, then the escrow trusting it
    from eth_utils import keccak, to_checksum_address

    nonce = chain.evm.basic("0x" + "d0" * 20).nonce
    escrow = to_checksum_address(keccak(b"\xd6\x94" + bytes.fromhex("d0" * 20) + bytes([nonce + 1]))[-20:])
    chain.deploy("HostileGame", escrow, chain.address("provider"), spec, as_="hostile")
    assert chain.deploy("JobEscrow", [chain.at("hostile")], as_="trusting").lower() == escrow.lower()
    jid = b"\x08" * 32
    chain.call("consumer", "post_disputed", jid, chain.at("hostile"), spec, STAKE, 100, 100, WINDOW,
               value=PAY, on="trusting")
    chain.call("provider", "accept", jid, value=STAKE, on="trusting")
    chain.call("provider", "set", jid, 1, chain.time + 10 * WINDOW, on="hostile")
    chain.call("provider", "commit_claim", jid, b"\x01" * 32, on="trusting")
    chain.advance(10 * WINDOW + 1)
    chain.call("provider", "finalize", jid, on="trusting")
    assert chain.record("jobs", jid, on="trusting")["state"] == FINALIZED
    assert chain.view("credits", chain.address("provider"), on="trusting") == PAY + STAKE
    assert chain.view("held", on="trusting") == PAY + STAKE == chain.contract_balance("trusting")

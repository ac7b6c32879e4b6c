"""protocols/Dispute.vy against the players on an embedded revm (proofs/dispute.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.dispute_client import ContractRevert, DisputeChain, play  # noqa: E402
from vcompute.verify.dispute.players import LYING, make_player  # noqa: E402
from vcompute.verify.dispute.trace import QuantNet, Trace, job_id  # noqa: E402

BOND = 10**18
TIMEOUT = 100


@pytest.fixture(scope="module")
def job():
    net = QuantNet.random(dims=(32,) * 6, rows=2, seed=0)  # 5 layers, 6 leaves
    return net, net.random_input(seed=1)


def _play(net, x0, a, b, *, seed=3, **kw):
    chain = kw.pop("chain", None) or DisputeChain(move_timeout=TIMEOUT, **kw)
    p = make_player(a, net, x0, seed=seed, name="claimant")
    q = make_player(b, net, x0, seed=seed + 1, name="challenger")
    r = play(chain, p, q, ops_root=net.ops_tree.root, input_state=p.honest_trace.leaves[0], bond=BOND)
    return chain, r


def test_job_id_and_digests_match_the_contract(job):
    net, x0 = job
    chain = DisputeChain()
    t = Trace.execute(net, x0)
    assert chain.view("job_id_of", net.ops_tree.root, t.leaves[0], net.n_layers) == \
        job_id(net.ops_tree.root, t.leaves[0], net.n_layers)


@pytest.mark.parametrize("liar", LYING)
def test_honest_claimant_beats_every_lying_challenger(job, liar):
    net, x0 = job
    chain, r = _play(net, x0, "honest", liar)
    assert r.winner == "claimant"
    assert chain.record("claims", chain.view_claim_id(net, "claimant"))["state"] == 1  # still committed


@pytest.mark.parametrize("liar", LYING)
def test_honest_challenger_beats_every_lying_claimant(job, liar):
    net, x0 = job
    _, r = _play(net, x0, liar, "honest")
    assert r.winner == "challenger"


def _ceil_log(n: int, b: int) -> int:
    r = 0
    while b**r < n:
        r += 1
    return r


@pytest.mark.parametrize("arity", [3, 4, 8, 16])
@pytest.mark.parametrize("n_layers", [2, 7, 16, 50])
def test_nary_rounds_are_ceil_log_b_and_honest_still_wins(n_layers, arity):
    net = QuantNet.random(dims=(32,) * (n_layers + 1), rows=1, seed=n_layers)
    x0 = net.random_input(seed=0)
    for liar, honest_claims in (("lie_one", False), ("lie_several", True), ("bad_openings", False)):
        chain = DisputeChain(move_timeout=TIMEOUT, arity=arity)
        h = make_player("honest", net, x0, seed=0, name="h")
        c = make_player(liar, net, x0, seed=n_layers + arity, name="c")
        a, b = (h, c) if honest_claims else (c, h)
        r = play(chain, a, b, ops_root=net.ops_tree.root, input_state=h.honest_trace.leaves[0], bond=BOND)
        assert r.winner == ("claimant" if honest_claims else "challenger")
        assert r.rounds <= _ceil_log(n_layers, arity)


def test_arity_out_of_range_is_refused():
    for arity in (0, 1, 17):
        with pytest.raises(RuntimeError):
            DisputeChain(arity=arity)


@pytest.mark.parametrize("n_layers", [1, 2, 3, 5, 8, 13])
def test_rounds_are_ceil_log2_of_the_layers(n_layers):
    net = QuantNet.random(dims=(32,) * (n_layers + 1), rows=1, seed=n_layers)
    x0 = net.random_input(seed=0)
    for liar_seed in range(3):
        _, r = _play(net, x0, "lie_one", "honest", seed=liar_seed)
        assert r.winner == "challenger" and r.how == "step"
        assert r.rounds <= math.ceil(math.log2(n_layers))
        assert r.rounds >= math.floor(math.log2(n_layers))


def test_two_liars_forfeit_both_bonds_to_the_treasury(job):
    net, x0 = job
    chain, r = _play(net, x0, "lie_one", "lie_last", seed=7, treasury="treasury")
    # both traces are wrong; whoever's is wrong at the first disputed layer cannot prove it
    assert r.winner in ("none", "claimant", "challenger")
    if r.winner == "none":
        assert chain.view("credits", chain.address("treasury")) == 2 * BOND
    assert chain.contract_balance() == chain.view("held") + chain.view("burned")


def test_money_is_conserved_and_the_loser_pays_the_winner(job):
    net, x0 = job
    chain, r = _play(net, x0, "lie_one", "honest", burn_bps=2500)
    assert r.winner == "challenger"
    assert chain.view("credits", chain.address("challenger")) == BOND + BOND * 3 // 4
    assert chain.view("credits", chain.address("claimant")) == 0
    assert chain.view("burned") == BOND // 4
    assert chain.contract_balance() == chain.view("held") + chain.view("burned")
    before = chain.balance("challenger")
    chain.call("challenger", "withdraw")
    assert chain.balance("challenger") == before + BOND + BOND * 3 // 4
    assert chain.contract_balance() == chain.view("held") + chain.view("burned")


def _commit(chain, net, x0, who="claimant", window=1000):
    p = make_player("honest", net, x0, seed=0, name=who)
    chain.fund(who, 10 * BOND)
    root, res, proof = p.commitment()
    cid = chain.call(who, "commit", net.ops_tree.root, p.honest_trace.leaves[0], net.n_layers, root, res, proof,
                     window, value=BOND)
    return p, cid


def test_reverts_carry_a_reason_category(job):
    net, x0 = job
    chain = DisputeChain(move_timeout=TIMEOUT)
    p, cid = _commit(chain, net, x0)
    liar = make_player("lie_one", net, x0, seed=1, name="griefer")
    chain.fund("griefer", 10 * BOND)
    root, res, proof = liar.commitment()
    hroot, hres, hproof = p.commitment()
    cases = [
        (lambda: chain.call("claimant", "commit", net.ops_tree.root, p.honest_trace.leaves[0], net.n_layers,
                            hroot, hres, hproof, 1000, value=BOND), "state:"),
        (lambda: chain.call("claimant", "dispute", cid, root, res, proof, value=BOND), "unauthorized:"),
        (lambda: chain.call("griefer", "dispute", cid, root, res, proof, value=BOND - 1), "value:"),
        (lambda: chain.call("griefer", "dispute", cid, hroot, hres, hproof, value=BOND), "value:"),
        (lambda: chain.call("griefer", "dispute", cid, root, res, hproof, value=BOND), "value:"),
        (lambda: chain.call("griefer", "reveal", cid, [res], [proof]), "state:"),
        (lambda: chain.call("griefer", "finalize", cid), "timeout:"),
        (lambda: chain.call("griefer", "withdraw"), "value:"),
    ]
    for fn, category in cases:
        with pytest.raises(ContractRevert) as e:
            fn()
        assert e.value.reason.startswith(category), e.value.reason
    chain.call("griefer", "dispute", cid, root, res, proof, value=BOND)
    mid = net.n_layers // 2
    for fn, category in [
        (lambda: chain.call("griefer", "reveal", cid, [liar.trace.leaves[mid]], [liar.trace.tree.proof(mid)]),
         "unauthorized:"),
        (lambda: chain.call("claimant", "reveal", cid, [b"\x13" * 32], [p.trace.tree.proof(mid)]), "value:"),
        (lambda: chain.call("claimant", "reveal", cid, [], []), "value: open exactly one leaf"),
        (lambda: chain.call("claimant", "reveal", cid, [p.trace.leaves[mid]] * 2, [p.trace.tree.proof(mid)] * 2),
         "value: open exactly one leaf"),
        (lambda: chain.call("griefer", "timeout", cid), "timeout:"),
        (lambda: chain.call("claimant", "decide", cid, *p.prove_step(1).values()), "state:"),
    ]:
        with pytest.raises(ContractRevert) as e:
            fn()
        assert e.value.reason.startswith(category), e.value.reason
    chain.advance(TIMEOUT)
    with pytest.raises(ContractRevert, match="timeout:"):
        chain.call("claimant", "reveal", cid, [p.trace.leaves[mid]], [p.trace.tree.proof(mid)])


def test_window_closes_and_finalize_returns_the_bond(job):
    net, x0 = job
    chain = DisputeChain(move_timeout=TIMEOUT)
    p, cid = _commit(chain, net, x0, window=50)
    chain.advance(60)
    liar = make_player("lie_one", net, x0, seed=1, name="late")
    chain.fund("late", 10 * BOND)
    with pytest.raises(ContractRevert, match="timeout: the challenge window"):
        chain.call("late", "dispute", cid, *liar.commitment(), value=BOND)
    chain.call("anyone", "finalize", cid)
    assert chain.view("credits", chain.address("claimant")) == BOND
    with pytest.raises(ContractRevert, match="state:"):
        chain.call("anyone", "finalize", cid)


def test_a_lost_griefer_does_not_shield_a_cheater_from_an_honest_watcher(job):
    """A cheating claimant's friend disputes with a worse lie and loses; the claim stays open to the watcher."""
    net, x0 = job
    chain = DisputeChain(move_timeout=TIMEOUT)
    cheat = make_player("lie_last", net, x0, seed=2, name="cheat")
    friend = make_player("absent", net, x0, seed=9, name="friend")
    watcher = make_player("honest", net, x0, seed=0, name="watcher")
    r1 = play(chain, cheat, friend, ops_root=net.ops_tree.root, input_state=cheat.honest_trace.leaves[0], bond=BOND)
    assert r1.winner == "claimant"
    cid = chain.view_claim_id(net, "cheat")
    chain.fund("watcher", 10 * BOND)
    chain.call("watcher", "dispute", cid, *watcher.commitment(), value=BOND)
    from vcompute.ledger.dispute_client import referee

    r2 = referee(chain, cid, cheat, watcher)
    assert r2.winner == "challenger"


def test_decide_refuses_a_forged_step(job):
    """The cheater's own last step is refused; an output that is neither party's is refused; a wrong x is refused."""
    net, x0 = job
    chain = DisputeChain(move_timeout=TIMEOUT)
    honest = make_player("honest", net, x0, seed=0, name="h")
    liar = make_player("lie_one", net, x0, seed=4, name="l")
    chain.fund("h", 10 * BOND)
    chain.fund("l", 10 * BOND)
    cid = chain.call("l", "commit", net.ops_tree.root, honest.trace.leaves[0], net.n_layers,
                     *liar.commitment(), 1000, value=BOND)
    chain.call("h", "dispute", cid, *honest.commitment(), value=BOND)
    while chain.record("games", cid)["phase"] != 3:
        g = chain.record("games", cid)
        mover = liar if g["phase"] == 1 else honest
        pts = list(chain.view("points", cid))
        chain.call(mover.name, "reveal", cid, [mover.trace.leaves[i] for i in pts],
                   [mover.trace.tree.proof(i) for i in pts])
    hi = chain.record("games", cid)["hi"]
    args = liar.prove_step(hi)
    with pytest.raises(ContractRevert, match="value: (Freivalds|y is not)"):
        chain.call("l", "decide", cid, *args.values())
    forged = dict(honest.prove_step(hi))
    forged["y"] = list(forged["y"])
    forged["y"][0] ^= 1
    with pytest.raises(ContractRevert, match="value: the output state is neither"):
        chain.call("l", "decide", cid, *forged.values())
    wrong_x = dict(honest.prove_step(hi))
    wrong_x["x"] = [v ^ 1 for v in wrong_x["x"]]
    with pytest.raises(ContractRevert, match="value: x is not the agreed"):
        chain.call("l", "decide", cid, *wrong_x.values())
    wrong_op = dict(honest.prove_step(hi))
    wrong_op["sh"] = (wrong_op["sh"] + 1) % 24
    with pytest.raises(ContractRevert, match="value: w is not the job's operator"):
        chain.call("l", "decide", cid, *wrong_op.values())
    chain.call("h", "decide", cid, *honest.prove_step(hi).values())
    assert chain.record("claims", cid)["state"] == 4  # slashed


def test_freivalds_catches_an_accumulator_lie_the_requantisation_hides():
    """z changed by less than one requantisation step: y is unchanged, only Freivalds can tell."""
    net = QuantNet.random(dims=(32, 32), rows=1, seed=3)
    x0 = net.random_input(seed=0)
    honest = make_player("honest", net, x0, seed=0, name="h")
    liar = make_player("honest", net, x0, seed=0, name="l")
    z, y = liar.trace.states[0]
    z = z.copy()
    z[0, 0] += 1 if (int(z[0, 0]) + 1) >> net.shifts[0] == int(z[0, 0]) >> net.shifts[0] else -1
    liar.trace = Trace(net, x0, [(z, y)])
    liar.strategy = "lie_one"
    chain = DisputeChain(move_timeout=TIMEOUT)
    r = play(chain, liar, honest, ops_root=net.ops_tree.root, input_state=honest.trace.leaves[0], bond=BOND)
    assert r.winner == "challenger" and r.how == "step" and r.refused == 1


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_on_chain_openings_bind_the_leaf_count(n_layers):
    """The contract's Merkle check agrees with vcompute.core.merkle: a path of another tree size fails."""
    net = QuantNet.random(dims=(32,) * (n_layers + 1), rows=1, seed=n_layers)
    x0 = net.random_input(seed=0)
    t = Trace.execute(net, x0)
    chain = DisputeChain()
    chain.fund("p", 10 * BOND)
    for claimed in (n_layers - 1, n_layers + 1):
        if claimed < 1:
            continue
        with pytest.raises(ContractRevert, match="value: the result is not the last leaf"):
            chain.call("p", "commit", net.ops_tree.root, t.leaves[0], claimed, t.tree.root, t.leaves[-1],
                       t.tree.proof(n_layers), 100, value=BOND)
    for i in range(n_layers):  # every other leaf with its own valid path: not the result
        with pytest.raises(ContractRevert, match="value: the result is not the last leaf"):
            chain.call("p", "commit", net.ops_tree.root, t.leaves[0], n_layers, t.tree.root, t.leaves[i],
                       t.tree.proof(i), 100, value=BOND)
    chain.call("p", "commit", net.ops_tree.root, t.leaves[0], n_layers, t.tree.root, t.leaves[-1],
               t.tree.proof(n_layers), 100, value=BOND)

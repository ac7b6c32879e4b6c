"""OperatorGame.vy's "nobody won" ending (protocols/OperatorGame.md, "Nobody won"; proofs/dispute.md C5, C9):
two liars wrong at the same element of one operator, at every operator kind, end with no winner, both bonds
forfeit and the claim slashed; a liar whose own element is within bound still wins; JobEscrow.vy hands a
nobody-won job's whole stake to the share and the payment back."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.op_dispute import OpChain, play_op, play_op_job  # noqa: E402
from vcompute.verify.dispute.op_players import OpPlayer, make_op_player, twin_liars  # noqa: E402
from vcompute.verify.dispute.op_trace import (AV, BIAS, GELU, LIN, LN, QK, RELU, RESID, SOFTMAX, MLPNet,  # noqa: E402
                                              OpTrace, ReluNet, apply_op)

BOND = 10**18
MOVE = 100
PAY, STAKE = 3 * 10**18, 2 * 10**18
_ZERO = "0x" + "00" * 20


@pytest.fixture(scope="module")
def nets():
    """One job per family, together holding every operator kind."""
    from vcompute.verify.dispute.lm_trace import prefill_net
    from vcompute.workloads.lm import config_named
    from vcompute.workloads.lm.torch_model import TransformerLM

    mlp = MLPNet.random(d=16, hidden=32, n_layers=2, rows=2, seed=0, pre_ln=True)
    relu = ReluNet.random((16, 32, 16, 8), rows=2, seed=0, softmax=True)
    lm_net, lm_x0 = prefill_net(TransformerLM(config_named("tiny"), seed=0), list(range(40, 48)))
    return {"mlp": (mlp, mlp.random_input(seed=1)), "relu": (relu, relu.random_input(seed=1)),
            "lm": (lm_net, lm_x0)}


_KINDS = {LIN: "mlp", BIAS: "mlp", GELU: "mlp", RESID: "mlp", LN: "mlp", RELU: "relu", SOFTMAX: "relu",
          QK: "lm", AV: "lm"}
_N = [0]


def _names():
    _N[0] += 1
    return f"ta{_N[0]}", f"tb{_N[0]}"


def _play(chain, net, claimant, challenger):
    return play_op(chain, claimant, challenger, ops_root=net.ops_tree.root,
                   input_state=claimant.honest_trace.leaves[0], n_layers=net.n_layers, per_layer=net.per_layer,
                   bond=BOND)


def _books(chain):
    assert chain.view("held", on="game") + chain.view("burned", on="game") == chain.contract_balance("game")


def _first(net, kind):
    return next(p for p in range(1, net.n_ops + 1) if net.op(p).kind == kind)


@pytest.mark.parametrize("treasury", [None, "treasury"], ids=["burned", "treasury"])
@pytest.mark.parametrize("kind", sorted(_KINDS), ids=lambda k: {v: n for n, v in (
    ("lin", LIN), ("bias", BIAS), ("gelu", GELU), ("resid", RESID), ("ln", LN), ("relu", RELU),
    ("softmax", SOFTMAX), ("qk", QK), ("av", AV))}[k])
def test_two_liars_wrong_at_one_element_leave_nobody_the_winner(nets, kind, treasury):
    """Both parties' outputs of the decided operator are out of bound at the named element: no winner is named,
    both bonds go to the treasury (or are burned), the claim is slashed with winner zero."""
    net, x0 = nets[_KINDS[kind]]
    chain = OpChain(move_timeout=MOVE, treasury=treasury, burn_bps=1000)
    p = _first(net, kind)
    j = 1 if kind != QK else 0  # a qk score lane (token 1 at key 0: unmasked); elsewhere lane 1
    a, b = twin_liars(net, x0, seed=0, names=_names(), at=(p, 1, j))
    r = _play(chain, net, a, b)
    assert (r.winner, r.how, r.kind, r.hi) == ("none", "step", kind, p), r
    assert 0 < r.decide_gas and 0 < r.prove_gas < 3_000_000
    cid = _claim_id(chain, net, a)
    assert chain.record("claims", cid, on="game")["state"] == 4  # SLASHED
    assert chain.view("winner", cid, on="game") == _ZERO
    for who in (a, b):
        assert chain.view("credits", chain.address(who.name), on="game") == 0
    if treasury:
        assert chain.view("credits", chain.address(treasury), on="game") == 2 * BOND
    else:
        assert chain.view("burned", on="game") == 2 * BOND
    _books(chain)


def _claim_id(chain, net, player):
    import hashlib

    from eth_abi import encode

    job = chain.view("job_id_of", net.ops_tree.root, player.honest_trace.leaves[0], net.n_layers, net.per_layer,
                     on="game")
    return hashlib.sha256(encode(["bytes32", "address"], [job, chain.address(player.name)])).digest()


@pytest.mark.parametrize("family", ["mlp", "relu", "lm"])
def test_drawn_twin_liars_never_name_a_winner(nets, family):
    net, x0 = nets[family]
    chain = OpChain(move_timeout=MOVE)
    for seed in range(3):
        for swap in (False, True):  # each twin as claimant
            a, b = twin_liars(net, x0, seed=seed, names=_names())
            claimant, challenger = (b, a) if swap else (a, b)
            r = _play(chain, net, claimant, challenger)
            assert r.winner == "none", (seed, swap, r)
            for who in (a, b):
                assert chain.view("credits", chain.address(who.name), on="game") == 0
            _books(chain)


def _lie_at(net, x0, p, i, j, delta):
    s, states = (x0, x0.copy()), []
    for q in range(1, net.n_ops + 1):
        out = apply_op(net.op(q), s)
        if q == p:
            a = out[1].copy()
            a[i, j] += np.float32(delta)
            out = (a.copy(), a) if net.op(q).kind == RESID else (out[0], a)
        states.append(out)
        s = out
    return OpTrace(net, x0, states)


def test_a_liar_whose_own_element_is_within_bound_wins_against_a_liar_out_of_bound(nets):
    """Claimant out of bound and challenger within at the decided element: the challenger wins, though its own
    trace is wrong later (it proved the claim wrong; its own claim is not on trial)."""
    net, x0 = nets["mlp"]
    chain = OpChain(move_timeout=MOVE)
    honest = OpTrace.execute(net, x0)
    early, late = _first(net, GELU), net.n_ops
    na, nb = _names()
    claimant = OpPlayer(na, "lie_one", _lie_at(net, x0, early, 0, 2, 0.5), honest)
    challenger = OpPlayer(nb, "lie_twin", _lie_at(net, x0, late, 1, 1, 0.5), honest)
    r = _play(chain, net, claimant, challenger)
    assert (r.winner, r.hi) == ("challenger", early)
    assert chain.view("credits", chain.address(nb), on="game") == 2 * BOND - BOND // 10
    # the claimant within bound at the named element: the claim stands, whatever the challenger's element
    honest_claimant = OpPlayer(f"{na}h", "honest", honest, honest)
    r = _play(chain, net, honest_claimant, OpPlayer(f"{nb}x", "lie_twin", _lie_at(net, x0, early, 0, 2, 0.5),
                                                    honest))
    assert r.winner == "claimant" and r.prove_gas == 0
    _books(chain)


def test_the_escrow_hands_a_nobody_won_jobs_whole_stake_to_the_treasury(nets):
    """JobEscrow.vy settles a nobody-won operator game as a Dispute.vy one: the whole stake is the share, the
    payment goes back to the consumer, neither liar is paid."""
    net, x0 = nets["mlp"]
    for treasury in ("treasury", None):
        chain = OpChain(move_timeout=MOVE, treasury=treasury, burn_bps=1000)
        a, b = twin_liars(net, x0, seed=3, names=("provider", "challenger"))
        out = play_op_job(chain, a, b, ops_root=net.ops_tree.root, input_state=a.honest_trace.leaves[0],
                          n_layers=net.n_layers, per_layer=net.per_layer, payment=PAY, stake=STAKE, bond=BOND,
                          challenge_window=1000, treasury=treasury)
        assert out.game.winner == "none" and out.job_state == "slashed"
        expected = {"consumer": PAY, "provider": 0, "challenger": 0}
        if treasury:
            expected["treasury"] = STAKE
        assert out.escrow_credits == expected
        assert chain.view("burned", on="escrow") == (0 if treasury else STAKE)
        assert chain.contract_balance("escrow") == chain.view("held", on="escrow") + chain.view("burned", on="escrow")
        _books(chain)


def test_an_honest_party_never_ends_in_a_nobody_won_game(nets):
    """Against a twin liar, the honest party still wins in both roles (its element is within bound)."""
    for family in ("mlp", "lm"):
        net, x0 = nets[family]
        chain = OpChain(move_timeout=MOVE)
        for honest_claims in (True, False):
            a, _ = twin_liars(net, x0, seed=1, names=_names())
            h = make_op_player("honest", net, x0, seed=0, name=_names()[0] + "h")
            claimant, challenger = (h, a) if honest_claims else (a, h)
            r = _play(chain, net, claimant, challenger)
            assert r.winner == ("claimant" if honest_claims else "challenger"), (family, r)

"""protocols/OperatorGame.vy and OperatorStep.vy against the operator-level players on revm
(protocols/OperatorGame.md; proofs/dispute.md C9-C11)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.contracts import load_contract  # noqa: E402
from vcompute.ledger.dispute_client import ContractRevert  # noqa: E402
from vcompute.ledger.op_dispute import OpChain, play_op  # noqa: E402
from vcompute.verify.dispute import op_step  # noqa: E402
from vcompute.verify.dispute.op_players import MLP_LYING, make_op_player  # noqa: E402
from vcompute.verify.dispute.float_trace import pack_float32  # noqa: E402
from vcompute.verify.dispute.op_trace import BIAS, GELU, LIN, LN, RESID, MLPNet, op_job_id  # noqa: E402

BOND = 10**18
MOVE = 100


@pytest.fixture(scope="module")
def net():
    return MLPNet.random(d=16, hidden=32, n_layers=3, rows=2, seed=0)


@pytest.fixture(scope="module")
def ln_net():
    return MLPNet.random(d=16, hidden=32, n_layers=3, rows=2, seed=0, pre_ln=True)


@pytest.fixture(scope="module")
def chain():
    return OpChain(move_timeout=MOVE)


def _bits(v) -> int:
    return int(np.array([v], dtype=np.float32).view("<u4")[0])


_N = [0]


def _players(net, strategy, honest_claims, seed):
    _N[0] += 1
    x0 = net.random_input(seed=seed)
    h = make_op_player("honest", net, x0, seed=0, name=f"h{_N[0]}")
    c = make_op_player(strategy, net, x0, seed=seed, name=f"c{_N[0]}")
    return (h, c) if honest_claims else (c, h)


def _play(chain, net, claimant, challenger):
    return play_op(chain, claimant, challenger, ops_root=net.ops_tree.root, input_state=claimant.honest_trace.leaves[0],
                   n_layers=net.n_layers, per_layer=net.per_layer, bond=BOND)


def _commit_and_dispute(chain, net, claimant, challenger):
    for who in (claimant, challenger):
        chain.fund(who.name, 10 * BOND)
    root, result, proof = claimant.commitment()
    cid = chain.call(claimant.name, "commit", net.ops_tree.root, claimant.honest_trace.leaves[0], net.n_layers,
                     net.per_layer, root, result, proof, 3600, value=BOND, on="game")
    challenger.prepare(claimant)
    chain.call(challenger.name, "dispute", cid, *challenger.commitment(), value=BOND, on="game")
    return cid


def _bisect(chain, cid, claimant, challenger):
    """Play the bisection honestly to the one-operator phase."""
    while chain.record("games", cid, on="game")["phase"] in (1, 2):
        g = chain.record("games", cid, on="game")
        mover = claimant if g["phase"] == 1 else challenger
        leaves, paths = mover.reveal(list(chain.view("points", cid, on="game")))[0]
        chain.call(mover.name, "reveal", cid, leaves, paths, on="game")
    return chain.record("games", cid, on="game")


def test_the_mirror_decides_exactly_as_the_contract(chain):
    """op_step's add_within / gelu_within / gelu_reference are what OperatorStep.vy computes."""
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.standard_normal(40) * 3, rng.standard_normal(6) * 1e-30,
                         [0.0, -0.0, 8.0, -8.0, 7.9999995, -7.9999995, 3e38, -3e38, 1e-45, 3e-39]]).astype(np.float32)
    seen = set()
    for x in xs:
        assert tuple(chain.view("gelu_reference", _bits(x), on="op_step")) == op_step.gelu_reference(_bits(x))
        g = op_step.gelu_f64(float(x))
        for z in (g, g * (1 + 2**-16), g + 1e-6, float(x), 0.0, np.inf, np.nan, -g):
            for t in (18, 12):
                mine = op_step.gelu_within(_bits(x), _bits(z), t)
                assert chain.view("gelu_ok", _bits(x), _bits(z), t, on="op_step") == mine, (x, z, t)
                seen.add(mine)
    for _ in range(150):
        a, b = (rng.standard_normal(2) * 10.0 ** rng.integers(-40, 38, 2)).astype(np.float32)
        s = float(a) + float(b)
        for z in (s, s * (1 + 2**-25), s * (1 + 2**-22), 0.0, -s):
            mine = op_step.add_within(_bits(a), _bits(b), _bits(z), 24)
            assert chain.view("add_ok", _bits(a), _bits(b), _bits(z), 24, on="op_step") == mine
            seen.add(mine)
    assert seen == {True, False}
    from vcompute.verify.dispute.op_step import ln_f64, ln_within

    for trial in range(30):
        d = int(rng.choice([8, 32, 256]))
        x = ((rng.standard_normal(d) + float(rng.choice([0, 10]))) * float(rng.choice([1, 1e-20, 1e10, 1e-42]))
             ).astype(np.float32)
        if trial % 6 == 0:
            x[:] = x[0]
        g = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
        b = (0.1 * rng.standard_normal(d)).astype(np.float32)
        ref, base = ln_f64(x[None], g, b)
        j = int(rng.integers(d))
        xb = x.view("<u4").tolist()
        for k in (0, 0.99, 1.01, -2, 50):
            zb = _bits(ref[0, j] + k * 2**-12 * base[0, j])
            mine = ln_within(xb, _bits(g[j]), _bits(b[j]), j, zb, 12)
            assert chain.view("ln_ok", pack_float32(x), d, _bits(g[j]), _bits(b[j]), j, zb, 12, on="op_step") == mine
            seen.add(mine)
    for fn, args in (("ln_ok", (pack_float32(np.ones(8, np.float32)), 8, 0, 0, 8, 0, 12)),
                     ("gelu_ok", (0, 0, 40)), ("add_ok", (0, 0, 0, 2))):
        with pytest.raises(Exception):
            chain.view(fn, *args, on="op_step")


def test_job_id_and_state_bytes_match_the_contract(chain, net):
    x0 = net.random_input(seed=3)
    h = make_op_player("honest", net, x0, seed=0)
    leaf0 = h.trace.leaves[0]
    assert chain.view("job_id_of", net.ops_tree.root, leaf0, net.n_layers, net.per_layer, on="game") == \
        op_job_id(net.ops_tree.root, leaf0, net.n_layers, net.per_layer)


def test_the_contracts_fit_under_eip170():
    for name in ("OperatorGame", "OperatorStep"):
        assert len(bytes.fromhex(load_contract(name)["bytecode"].removeprefix("0x"))) < 24_576


@pytest.mark.parametrize("strategy", MLP_LYING)
@pytest.mark.parametrize("honest_claims", [True, False])
@pytest.mark.parametrize("pre_ln", [False, True], ids=["mlp", "pre_ln"])
def test_the_honest_party_wins_against_every_liar_in_both_roles(chain, net, ln_net, strategy, honest_claims, pre_ln):
    net = ln_net if pre_ln else net
    for seed in (1, 2):
        claimant, challenger = _players(net, strategy, honest_claims, seed)
        r = _play(chain, net, claimant, challenger)
        assert r.winner == ("claimant" if honest_claims else "challenger"), (strategy, seed, r)
        liar = challenger if honest_claims else claimant
        # the liar is paid nothing: its bond went to the honest party, less the burned share
        assert chain.view("credits", chain.address(liar.name), on="game") == 0


@pytest.mark.parametrize("pre_ln", [False, True], ids=["mlp", "pre_ln"])
def test_a_griefer_with_another_honest_machines_bits_loses_its_bond(chain, net, ln_net, pre_ln):
    pytest.importorskip("torch")
    net = ln_net if pre_ln else net
    claimant, challenger = _players(net, "drift", True, 4)
    r = _play(chain, net, claimant, challenger)
    assert r.winner == "claimant" and r.how == "step"
    assert chain.view("credits", chain.address(challenger.name), on="game") == 0
    assert chain.view("credits", chain.address(claimant.name), on="game") == BOND - BOND // 10


def test_rounds_are_two_level_first_layers_then_operators(chain, net):
    """Cut points are layer outputs (multiples of P) while more than one layer is disputed."""
    claimant, challenger = _players(net, "lie_last", False, 5)
    cid = _commit_and_dispute(chain, net, claimant, challenger)
    per, seen = net.per_layer, []
    while chain.record("games", cid, on="game")["phase"] in (1, 2):
        g = chain.record("games", cid, on="game")
        pts = list(chain.view("points", cid, on="game"))
        seen.append((g["hi"] - g["lo"], pts))
        mover = claimant if g["phase"] == 1 else challenger
        chain.call(mover.name, "reveal", cid, *mover.reveal(pts)[0], on="game")
    for width, pts in seen:
        if width > per:
            assert all(p % per == 0 for p in pts)
    g = chain.record("games", cid, on="game")
    assert g["hi"] == net.n_ops and g["rounds"] == 2 + 3  # ceil(log2 3) + ceil(log2 6)


def test_a_claimant_cannot_open_another_operator_another_state_or_another_element(chain, net):
    claimant, challenger = _players(net, "lie_one", False, 6)
    cid = _commit_and_dispute(chain, net, claimant, challenger)
    g = _bisect(chain, cid, claimant, challenger)
    hi = g["hi"]
    element = challenger.name_element(hi, claimant)
    chain.call(challenger.name, "challenge_element", cid, *element, on="game")
    good = claimant.respond(hi, element)
    honest_args = challenger.respond(hi, element)  # the honest output: not the claimant's committed state
    other = (hi % net.n_ops) + 1
    bad = [dict(good, op=claimant.respond(other, element)["op"]),  # another operator's leaf
           dict(good, op_proof=net.ops_tree.proof(other - 1)),
           dict(good, f=honest_args["f"], out_row=honest_args["out_row"], out_proof=honest_args["out_proof"]),
           dict(good, out_row=list(honest_args["out_row"])),  # the honest row under its own root
           dict(good, a_row=list(reversed(good["a_row"])))]
    op = good["op"]
    forged = list(op)
    forged[3] = 8  # a looser bound than the job's
    bad.append(dict(good, op=tuple(forged)))
    if op[0] == LIN:
        bad.append(dict(good, p_col=[w ^ 1 for w in good["p_col"]]))
    for args in bad:
        with pytest.raises(ContractRevert, match="^value: "):
            chain.call(claimant.name, "decide", cid, *args.values(), on="game")
    chain.call(claimant.name, "decide", cid, *good.values(), on="game")  # its own data: judged, out of bound
    # the challenger now opens its own output of the element; the claimant's data no longer passes
    assert chain.record("games", cid, on="game")["phase"] == 5
    assert chain.record("claims", cid, on="game")["state"] == 2
    with pytest.raises(ContractRevert, match="^value: not the output state on trial"):
        chain.call(claimant.name, "decide", cid, *good.values(), on="game")
    chain.call(challenger.name, "decide", cid, *honest_args.values(), on="game")
    assert chain.record("claims", cid, on="game")["state"] == 4
    assert chain.view("winner", cid, on="game") == chain.address(challenger.name)


def test_timeouts_fall_on_the_party_that_owes_the_move(chain, net):
    # the challenger does not name an element: the claimant wins
    claimant, challenger = _players(net, "lie_one", True, 7)
    cid = _commit_and_dispute(chain, net, claimant, challenger)
    _bisect(chain, cid, claimant, challenger)
    with pytest.raises(ContractRevert, match="^unauthorized: "):
        chain.call(claimant.name, "challenge_element", cid, 0, 0, on="game")
    with pytest.raises(ContractRevert, match="^timeout: "):
        chain.call("anyone", "timeout", cid, on="game")
    chain.advance(MOVE)
    chain.fund("anyone", BOND)
    chain.call("anyone", "timeout", cid, on="game")
    assert chain.record("claims", cid, on="game")["state"] == 1
    # the claimant does not open the named element: the challenger opens its own, and wins;
    # a challenger that then opens nothing either: nobody won
    for prove in (True, False):
        claimant, challenger = _players(net, "lie_one", False, 8)
        cid = _commit_and_dispute(chain, net, claimant, challenger)
        g = _bisect(chain, cid, claimant, challenger)
        element = challenger.name_element(g["hi"], claimant)
        chain.call(challenger.name, "challenge_element", cid, *element, on="game")
        with pytest.raises(ContractRevert, match="^state: "):
            chain.call(challenger.name, "challenge_element", cid, 0, 0, on="game")
        chain.advance(MOVE)
        chain.call("anyone", "timeout", cid, on="game")
        assert chain.record("claims", cid, on="game")["state"] == 2
        assert chain.record("games", cid, on="game")["phase"] == 5
        with pytest.raises(ContractRevert, match="^timeout: "):
            chain.call("anyone", "timeout", cid, on="game")
        if prove:
            chain.call(challenger.name, "decide", cid, *challenger.respond(g["hi"], element).values(), on="game")
        else:
            chain.advance(MOVE)
            chain.call("anyone", "timeout", cid, on="game")
        assert chain.record("claims", cid, on="game")["state"] == 4
        winner = chain.view("winner", cid, on="game")
        assert winner == (chain.address(challenger.name) if prove else "0x" + "00" * 20)


def test_an_element_outside_the_output_is_the_claimants(chain, net):
    claimant, challenger = _players(net, "lie_one", True, 9)
    cid = _commit_and_dispute(chain, net, claimant, challenger)
    g = _bisect(chain, cid, claimant, challenger)
    chain.call(challenger.name, "challenge_element", cid, 10**6, 0, on="game")
    chain.call(claimant.name, "decide", cid, *claimant.respond(g["hi"], (10**6, 0)).values(), on="game")
    assert chain.record("claims", cid, on="game")["state"] == 1


def test_agreeing_results_cannot_be_disputed_and_bonds_must_match(chain, net):
    claimant, challenger = _players(net, "honest", True, 10)
    for who in (claimant, challenger):
        chain.fund(who.name, 10 * BOND)
    root, result, proof = claimant.commitment()
    cid = chain.call(claimant.name, "commit", net.ops_tree.root, claimant.trace.leaves[0], net.n_layers,
                     net.per_layer, root, result, proof, 3600, value=BOND, on="game")
    with pytest.raises(ContractRevert, match="results agree"):
        chain.call(challenger.name, "dispute", cid, *challenger.commitment(), value=BOND, on="game")
    liar = make_op_player("lie_one", net, claimant.trace.x0, seed=1, name=challenger.name)
    with pytest.raises(ContractRevert, match="bond"):
        chain.call(challenger.name, "dispute", cid, *liar.commitment(), value=BOND // 2, on="game")
    with pytest.raises(ContractRevert, match="last leaf"):
        r, res, p = liar.commitment()
        chain.call(challenger.name, "dispute", cid, r, res, p[:-1], value=BOND, on="game")


@pytest.mark.parametrize("kind", [LIN, BIAS, GELU, RESID, LN])
def test_each_operator_kind_is_decided_on_chain(chain, ln_net, kind):
    """A lie at one element of an operator of each kind ends at that operator, decided by its check."""
    from vcompute.verify.dispute.op_players import OpPlayer
    from vcompute.verify.dispute.op_trace import OpTrace, apply_op

    net = ln_net
    p = next(q for q in range(1, net.n_ops + 1) if net.op(q).kind == kind)
    x0 = net.random_input(seed=11)
    honest = OpTrace.execute(net, x0)
    states, s = [], (x0, x0.copy())
    for q in range(1, net.n_ops + 1):
        s = apply_op(net.op(q), s)
        if q == p:
            x, a = s[0].copy(), s[1].copy()
            a[1, 3] += np.float32(0.5)
            s = (a.copy(), a) if kind == RESID else (x, a)
        states.append(s)
    liar = OpPlayer(f"k{kind}", "lie_one", OpTrace(net, x0, states), honest)
    h = OpPlayer(f"hk{kind}", "honest", honest, honest)
    r = _play(chain, net, liar, h)
    assert (r.winner, r.how, r.kind, r.hi) == ("challenger", "step", kind, p)
    assert 0 < r.decide_gas < 1_000_000


def test_money_is_conserved_across_operator_games(net):
    chain = OpChain(move_timeout=MOVE, treasury=None, burn_bps=2500)
    names = []
    for i, strategy in enumerate(("lie_one", "absent", "bad_openings", "x_tamper")):
        claimant, challenger = _players(net, strategy, i % 2 == 0, 20 + i)
        _play(chain, net, claimant, challenger)
        names += [claimant.name, challenger.name]
        assert chain.view("held", on="game") + chain.view("burned", on="game") == chain.contract_balance("game")
    paid = sum(chain.view("credits", chain.address(n), on="game") for n in names)
    assert chain.view("burned", on="game") == 4 * BOND // 4
    for n in names:
        if chain.view("credits", chain.address(n), on="game"):
            chain.call(n, "withdraw", on="game")
    # the claims the honest party won stay COMMITTED: their bonds are still held until finalize
    assert chain.contract_balance("game") == chain.view("held", on="game") + chain.view("burned", on="game")
    assert paid > 0


def test_a_layernorm_claimant_cannot_swap_gamma_and_beta_or_normalise_another_row(chain, ln_net):
    net = ln_net
    from vcompute.verify.dispute.op_players import OpPlayer
    from vcompute.verify.dispute.op_trace import OpTrace, apply_op

    x0 = net.random_input(seed=12)
    honest = OpTrace.execute(net, x0)
    states, s = [], (x0, x0.copy())
    for q in range(1, net.n_ops + 1):
        s = apply_op(net.op(q), s)
        if q == 1:
            a = s[1].copy()
            a[0, 2] = -a[0, 2]
            s = (s[0], a)
        states.append(s)
    liar = OpPlayer("lnliar", "lie_one", OpTrace(net, x0, states), honest)
    h = OpPlayer("lnhonest", "honest", honest, honest)
    cid = _commit_and_dispute(chain, net, liar, h)
    g = _bisect(chain, cid, liar, h)
    assert g["hi"] == 1
    chain.call(h.name, "challenge_element", cid, *h.name_element(1, liar), on="game")
    good = liar.respond(1, (0, 2))
    x1 = honest.state(0)[0]
    for args in (dict(good, p_col=good["q_row"], q_row=good["p_col"]),  # gamma and beta swapped
                 dict(good, x_row=pack_float32(np.ascontiguousarray(x1[1]))),  # another row of x
                 dict(good, q_row=pack_float32(np.zeros(net.op(1).m, np.float32)))):  # beta dropped
        with pytest.raises(ContractRevert, match="^value: "):
            chain.call(liar.name, "decide", cid, *args.values(), on="game")
    chain.call(liar.name, "decide", cid, *good.values(), on="game")
    assert chain.record("games", cid, on="game")["phase"] == 5  # out of bound: the challenger opens its own
    chain.call(h.name, "decide", cid, *h.respond(1, (0, 2)).values(), on="game")
    assert chain.record("claims", cid, on="game")["state"] == 4
    assert chain.view("winner", cid, on="game") == chain.address(h.name)


@pytest.mark.parametrize("arity", [3, 4])
def test_n_ary_rounds_stay_within_the_two_level_bound(arity):
    net = MLPNet.random(d=16, hidden=16, n_layers=5, rows=1, seed=2, pre_ln=True)
    chain = OpChain(move_timeout=MOVE, arity=arity)

    def ceil_log(n):
        r = 0
        while arity**r < n:
            r += 1
        return r

    for i, strategy in enumerate(("lie_one", "lie_last", "lie_several")):
        claimant, challenger = _players(net, strategy, i % 2 == 1, 30 + i)
        r = _play(chain, net, claimant, challenger)
        assert r.winner == ("claimant" if i % 2 == 1 else "challenger")
        assert r.rounds <= ceil_log(net.n_layers) + ceil_log(net.per_layer)

"""ReLU and softmax operators of protocols/OperatorGame.vy and OperatorStep.vy: the mirror against the
contract, and ReLU MLPs (the forward job kind) disputed down to one operator on revm
(protocols/OperatorGame.md; proofs/dispute.md C12)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.dispute_client import ContractRevert  # noqa: E402
from vcompute.ledger.op_dispute import OpChain, play_op  # noqa: E402
from vcompute.verify.dispute import op_step  # noqa: E402
from vcompute.verify.dispute.float_trace import pack_float32  # noqa: E402
from vcompute.verify.dispute.op_players import RELU_LYING, lying_for, make_op_player  # noqa: E402
from vcompute.verify.dispute.op_trace import LIN, BIAS, RELU, SOFTMAX, ReluNet  # noqa: E402

BOND = 10**18
MOVE = 100


@pytest.fixture(scope="module")
def chain():
    return OpChain(move_timeout=MOVE)


@pytest.fixture(scope="module", params=[False, True], ids=["relu", "relu_softmax"])
def net(request):
    return ReluNet.random((16, 32, 16, 8), rows=2, seed=0, softmax=request.param)


def _bits(v) -> int:
    return int(np.array([v], dtype=np.float32).view("<u4")[0])


_N = [0]


def _play(chain, net, strategy, honest_claims, seed):
    _N[0] += 1
    x0 = net.random_input(seed=seed)
    h = make_op_player("honest", net, x0, seed=0, name=f"rh{_N[0]}")
    c = make_op_player(strategy, net, x0, seed=seed, name=f"rc{_N[0]}")
    claimant, challenger = (h, c) if honest_claims else (c, h)
    r = play_op(chain, claimant, challenger, ops_root=net.ops_tree.root, input_state=h.trace.leaves[0],
                n_layers=net.n_layers, per_layer=net.per_layer, bond=BOND)
    return r, h, c


def test_the_relu_and_softmax_mirrors_decide_exactly_as_the_contract(chain):
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.standard_normal(20) * 3, [0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38]]).astype(np.float32)
    seen = set()
    for x in xs:
        r = max(float(x), 0.0)
        for z in (r, -r, 0.0, -0.0, np.nextafter(np.float32(r), np.float32(1)), 1e-45, float(x), np.nan):
            mine = op_step.relu_within(_bits(x), _bits(z))
            assert chain.view("relu_ok", _bits(x), _bits(z), on="op_step") == mine, (x, z)
            seen.add(mine)
    for trial in range(16):
        d, blk = [(8, 8), (16, 8), (32, 32), (256, 256)][trial % 4]
        causal = trial % 3 == 0
        scale = float(rng.choice([0.1, 1.0, 30.0, 1e3, 1e-30]))
        x = (rng.standard_normal(d) * scale).astype(np.float32)
        i = int(rng.integers(blk))
        p, base = op_step.softmax_f64(x[None], blk, causal) if i == 0 else (None, None)
        if p is None:
            p, base = op_step.softmax_f64(np.repeat(x[None], i + 1, 0), blk, causal)
            p, base = p[i:], base[i:]
        for j in {int(rng.integers(d)), int(np.argmax(x[:blk])), d - 1}:
            for k in (0.0, 0.99, 1.01, -1.01, 3.0):
                zb = _bits(p[0, j] + k * 2**-18 * base[0, j])
                mine = op_step.softmax_within(x.view("<u4").tolist(), blk, causal, i, j, zb, 18)
                assert chain.view("softmax_ok", pack_float32(x), d, blk, causal, i, j, zb, 18, on="op_step") == mine
                seen.add(mine)
    assert seen == {True, False}
    for fn, args in (("softmax_ok", (pack_float32(np.ones(8, np.float32)), 16, 8, False, 0, 0, 0, 18)),
                     ("softmax_ok", (pack_float32(np.ones(8, np.float32)), 8, 3, False, 0, 0, 0, 18))):
        with pytest.raises(Exception):
            chain.view(fn, *args, on="op_step")


@pytest.mark.parametrize("honest_claims", [True, False])
def test_the_honest_party_wins_against_every_relu_liar_in_both_roles(chain, net, honest_claims):
    for strategy in lying_for(net):
        for seed in (1, 2):
            r, h, c = _play(chain, net, strategy, honest_claims, seed)
            assert r.winner == ("claimant" if honest_claims else "challenger"), (strategy, seed)
            assert chain.view("credits", chain.address(c.name), on="game") == 0, (strategy, seed)


def test_a_griefer_with_torch_bits_loses_to_an_honest_relu_claimant(chain, net):
    for seed in (1, 2, 3):
        x0 = net.random_input(seed=seed)
        h = make_op_player("honest", net, x0, seed=0, name=f"gh{seed}{net.softmax}")
        g = make_op_player("drift", net, x0, seed=0, name=f"gd{seed}{net.softmax}")
        if g.trace.leaves[-1] == h.trace.leaves[-1]:
            continue  # same bits: nothing to dispute
        r = play_op(chain, h, g, ops_root=net.ops_tree.root, input_state=h.trace.leaves[0], n_layers=net.n_layers,
                    per_layer=net.per_layer, bond=BOND)
        assert r.winner == "claimant"


@pytest.mark.parametrize("kind", [LIN, BIAS, RELU, SOFTMAX])
def test_each_relu_net_operator_kind_is_decided_on_chain(chain, kind):
    net = ReluNet.random((16, 32, 8), rows=2, seed=1, softmax=True)
    ps = [p for p in range(1, net.n_ops + 1) if net.op(p).kind == kind]
    decided = 0
    for seed in range(12):
        r, h, c = _play(chain, net, ("lie_edge", "lie_one")[seed % 2], True, seed)
        if r.kind == kind:
            assert r.winner == "claimant" and r.how == "step" and r.hi in ps
            decided += 1
        r, h, c = _play(chain, net, ("lie_edge", "lie_one")[seed % 2], False, seed)
        if r.kind == kind:
            assert r.winner == "challenger" and r.how == "step" and r.hi in ps
            decided += 1
    assert decided > 0


def test_a_forward_job_plays_to_one_operator_on_chain(chain):
    from vcompute.workloads.kinds.forward import ForwardKind, honest

    job = ForwardKind().make_job("tiny", seed=3)
    net, x0 = ReluNet.from_forward_job(job)
    assert [net.op(p).kind for p in range(1, net.n_ops + 1)] == [LIN, BIAS, RELU, LIN, BIAS]
    h = make_op_player("honest", net, x0, seed=0, name="fj_h")
    want = honest(job, np.random.default_rng(0))[0].numpy()
    got = h.trace.output()[:, :want.shape[1]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # the trace computes the job's model
    for strategy in RELU_LYING:
        if strategy == "skip_softmax":
            continue
        for honest_claims in (True, False):
            r, _, c = _play(chain, net, strategy, honest_claims, 5)
            assert r.winner == ("claimant" if honest_claims else "challenger"), strategy
            assert r.rounds <= 3  # ceil(log2 5)
    small, _ = ReluNet.from_forward_job(ForwardKind().make_job("small", seed=0))
    assert small.op(small.n_ops).m == 16  # 10 outputs padded to 16
    with pytest.raises(ValueError, match="256"):
        ReluNet.from_forward_job(ForwardKind().make_job("medium", seed=0))


def test_a_relu_claimant_cannot_pass_a_negative_or_a_leaky_value(chain):
    net = ReluNet.random((16, 32, 8), rows=2, seed=2)
    x0 = net.random_input(seed=4)
    for strategy in ("skip_relu", "leaky_relu"):
        c = make_op_player(strategy, net, x0, seed=4, name=f"nr_{strategy}")
        h = make_op_player("honest", net, x0, seed=0, name=f"nh_{strategy}")
        r = play_op(chain, c, h, ops_root=net.ops_tree.root, input_state=h.trace.leaves[0], n_layers=net.n_layers,
                    per_layer=net.per_layer, bond=BOND)
        assert (r.winner, r.how, r.kind) == ("challenger", "step", RELU)

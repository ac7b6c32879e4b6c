"""The market's dispute adapters (vcompute.verify.dispute.market): which kinds a dispute game decides, the
forward kind's operator trace for each market cheat class, and the players the market plays on chain."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify.dispute.market import (FORWARD_CHEATS, ForwardDispute, MarketDispute, MatmulDispute,
                                            dispute_for, forward_trace)
from vcompute.verify.dispute.op_trace import LIN, OpTrace
from vcompute.verify.dispute.op_validity import invalid_elements
from vcompute.workloads.kinds import get_kind


def _first_invalid(trace: OpTrace) -> int | None:
    net = trace.net
    for p in range(1, net.n_ops + 1):
        if invalid_elements(net, p, trace.state(p - 1), trace.state(p)):
            return p
    return None


def test_the_kinds_hooks_name_their_adapters():
    assert isinstance(dispute_for("matmul"), MatmulDispute) and dispute_for("matmul").game == "float"
    assert isinstance(dispute_for("forward"), ForwardDispute) and dispute_for("forward").game == "operator"
    assert dispute_for("inference").game == "operator"  # an alias of forward
    # generate: the game decides a prefill, not the sampled tokens; train: a nonlinear PoL step
    assert dispute_for("generate") is None and dispute_for("train") is None


def test_a_hook_that_names_no_adapter_is_refused(monkeypatch):
    kind = type(get_kind("forward"))
    monkeypatch.setattr(kind, "dispute", "vcompute.verify.dispute.market:DISPUTE_GAS")
    with pytest.raises(TypeError, match="not a MarketDispute"):
        dispute_for("forward")
    monkeypatch.setattr(kind, "dispute", "no-colon")
    with pytest.raises(TypeError, match="module:attr"):
        dispute_for("forward")


def test_forward_sizes_rounds_and_gas():
    d = dispute_for("forward")
    # lin, bias, relu, lin, bias: 5 operators, ceil(log2 5) = 3 rounds, whatever trace_steps says
    assert [d.n_steps(s, 32) for s in ("tiny", "small")] == [5, 5] and d.rounds("small", 2) == 3
    d.check_size("small", 32)
    with pytest.raises(ValueError, match="widths <= 256"):
        d.check_size("medium", 32)  # 512 hidden
    assert d.modelled_gas("small", 32) == 583_000 + 3 * 98_000
    m = dispute_for("matmul")
    assert m.rounds(32, 8) == 3
    with pytest.raises(ValueError, match="n <= 128"):
        m.check_size(256, 8)


@pytest.fixture(scope="module")
def game():
    job = get_kind("forward").make_job("small", seed=5)
    return dispute_for("forward").build(job, 8)


def test_the_honest_forward_trace_is_the_jobs_output_and_valid_everywhere(game):
    import torch

    from vcompute.workloads.kinds.forward import input_of, module_of

    p = dispute_for("forward").provider(None, game, seed=0, name="p")
    assert _first_invalid(p.trace) is None
    job = get_kind("forward").make_job("small", seed=5)
    with torch.no_grad():
        want = module_of(job)(input_of(job)).numpy()
    out = p.trace.output()[:, :want.shape[1]]
    assert np.allclose(out, want, atol=1e-5) and not p.trace.output()[:, want.shape[1]:].any()  # padding is 0


@pytest.mark.parametrize("cheat", FORWARD_CHEATS)
def test_each_forward_cheat_class_is_invalid_where_it_first_lies(game, cheat):
    net = game.net
    lins = [p for p in range(1, net.n_ops + 1) if net.op(p).kind == LIN]
    t = forward_trace(game, cheat, seed=3)
    first = {"random_output": 1, "skip_k": lins[0], "low_precision": lins[-1]}[cheat]
    assert _first_invalid(t) == first
    honest = OpTrace.execute(net, game.x0)
    assert t.leaves[-1] != honest.leaves[-1]  # the result is wrong: a watcher has something to dispute
    assert t.leaves[:first] == honest.leaves[:first]  # and every state before the lie is the honest one


def test_forward_trace_refuses_an_unknown_cheat(game):
    with pytest.raises(ValueError, match="cheat must be one of"):
        forward_trace(game, "honest", seed=0)


def test_the_market_players_against_the_operator_game():
    """One honest watcher against each cheat class and one griefer against an honest provider, on chain."""
    pytest.importorskip("pyrevm")
    from vcompute.ledger.op_dispute import OpChain, referee_op

    d = dispute_for("forward")
    chain = OpChain(move_timeout=100, min_bond=1)
    job = get_kind("forward").make_job("tiny", seed=2)
    g = d.build(job, 8)
    for i, (cheat, griefer) in enumerate([(c, False) for c in FORWARD_CHEATS] + [(None, True)]):
        prov = d.provider(cheat, g, seed=i, name=f"p{i}")
        chal = d.challenger(prov, g, griefer=griefer, seed=i + 100, name=f"c{i}")
        for who in (prov, chal):
            chain.fund(who.name, 10**20)
        net = g.net
        cid = chain.call(prov.name, "commit", net.ops_tree.root, prov.honest_trace.leaves[0], net.n_layers,
                         net.per_layer, *prov.commitment(), 3600, value=10, on="game")
        chain.call(chal.name, "dispute", cid, *chal.commitment(), value=10, on="game")
        res = referee_op(chain, cid, prov, chal)
        assert res.winner == ("claimant" if griefer else "challenger") and res.how == "step", (cheat, res)
        assert res.rounds <= 3


def test_an_adapter_must_implement_its_methods():
    with pytest.raises(NotImplementedError):
        MarketDispute().n_steps("small", 8)

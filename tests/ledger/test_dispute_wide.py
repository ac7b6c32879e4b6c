"""Wider rows for the operator game (protocols/OperatorGame.md, "Wider rows"; proofs/dispute.md C13): benchmark
builds with another MAX_DIM, and the `small` LM's prefill (3d = 768, d_ff = 1024) decided on one."""

from __future__ import annotations

import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.contracts import compile_contract  # noqa: E402
from vcompute.ledger.op_dispute import OpChain, play_op  # noqa: E402

BOND = 10**18


def test_a_benchmark_build_sets_only_literal_constants():
    with pytest.raises(ValueError, match="no literal uint256 constant 'MAX_FW'"):
        compile_contract("OperatorGame", {"MAX_FW": 128})  # derived from MAX_DIM, not a literal
    with pytest.raises(ValueError, match="positive int"):
        compile_contract("OperatorGame", {"MAX_DIM": 0})
    with pytest.raises(ValueError, match="no literal uint256 constant 'NOPE'"):
        compile_contract("FloatStep", {"NOPE": 8})
    for bad in (100, 128, 10**6, 512.0):
        with pytest.raises(ValueError, match="max_dim"):
            OpChain(max_dim=bad)


@pytest.mark.slow
def test_the_small_lms_prefill_is_decided_on_a_wider_build():
    """The checked-in build refuses the small LM; a MAX_DIM = 1024 build decides a lie at its 768- and
    1,024-wide operators and ends a two-liar game with nobody."""
    pytest.importorskip("vyper")
    pytest.importorskip("torch")
    from vcompute.verify.dispute.lm_trace import prefill_net
    from vcompute.verify.dispute.op_players import make_op_player, twin_liars
    from vcompute.verify.dispute.op_trace import BIAS, GELU, LIN
    from vcompute.workloads.lm import config_named
    from vcompute.workloads.lm.torch_model import TransformerLM

    model = TransformerLM(config_named("small"), seed=0)
    with pytest.raises(ValueError, match="outside"):
        prefill_net(model, list(range(8)))
    net, x0 = prefill_net(model, list(range(8)), max_dim=1024)
    chain = OpChain(move_timeout=100, max_dim=1024)
    wide = [p for p in range(1, net.n_ops + 1) if net.op(p).m >= 768 and net.op(p).kind in (LIN, BIAS, GELU)][:3]
    assert {net.op(p).m for p in wide} == {768, 1024}
    job = dict(ops_root=net.ops_tree.root, n_layers=net.n_layers, per_layer=net.per_layer, bond=BOND)
    for n, p in enumerate(wide):
        at = (p, 1, net.op(p).m - 1)  # the last lane of a wide row
        for i, winner in enumerate(("challenger", "claimant", "none")):
            a, b = twin_liars(net, x0, seed=n, names=(f"wa{n}{i}", f"wb{n}{i}"), at=at)
            h = make_op_player("honest", net, x0, seed=0, name=f"wh{n}{i}")
            claimant, challenger = ((a, h), (h, b), (a, b))[i]
            r = play_op(chain, claimant, challenger, input_state=h.trace.leaves[0], **job)
            assert (r.winner, r.hi) == (winner, p), (p, i, r)
            assert r.decide_gas < 30_000_000 and r.prove_gas < 30_000_000

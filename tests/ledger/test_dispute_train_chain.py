"""OperatorStep.block_ok and OperatorGame.vy on a torch PoL training job (proofs/dispute.md C14)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")
pytest.importorskip("torch")

from vcompute.ledger.op_dispute import OpChain, play_op  # noqa: E402
from vcompute.verify.dispute import op_block  # noqa: E402
from vcompute.verify.dispute.float_trace import pack_float32, rows_tree  # noqa: E402
from vcompute.verify.dispute.op_block import BLOCK_KINDS, element_ok, opening, unpack  # noqa: E402
from vcompute.verify.dispute.train_op import TrainOpNet, make_train_player, torch_trace  # noqa: E402
from vcompute.workloads.training.spec import TrainSpec  # noqa: E402

BOND = 10**18


@pytest.fixture(scope="module")
def chain():
    return OpChain(move_timeout=100)


@pytest.fixture(scope="module")
def job():
    spec = TrainSpec(hidden=16, batch_size=16, steps=2, checkpoint_every=1, seed=5)
    net, a0 = TrainOpNet.random(spec, steps=2, seed=5)
    return net, a0, torch_trace(net, a0)


def _b(v) -> int:
    return int(np.array([v], np.float32).view("<u4")[0])


def test_block_ok_is_the_mirror(chain, job):
    """Every block kind: the contract decides each element as op_block.element_ok does (honest values, values
    at twice the bound, one ulp off an exact one, elements outside the block)."""
    net, _, t = job
    rng = np.random.default_rng(0)
    seen = {k: set() for k in BLOCK_KINDS}
    fs = chain.at("float_step")
    for p in range(1, net.per_layer + 1):
        op = net.op(p)
        if op.kind not in BLOCK_KINDS:
            continue
        a, out = t.state(p - 1)[1], t.state(p)[1]
        g = unpack(op.bits)
        at = rows_tree(a)
        for trial in range(6):
            if trial < 5:
                i, j = g.r0 + int(rng.integers(g.rn)), g.o + int(rng.integers(g.m))
            else:
                i, j = int(rng.integers(a.shape[0])), int(rng.integers(a.shape[1]))
            for z in (out[i, j], op_block.edge_value(op, a, i, j, 1.0), op_block.edge_value(op, a, i, j, -1.0)):
                p_col, p_proof = opening(op, a, i, j)
                mine = element_ok(op, a, i, j, _b(z))
                theirs = chain.view("block_ok", op.kind, op.k, op.bits, op.param_root(), a.shape[0], at.root,
                                    pack_float32(np.ascontiguousarray(a[i])), p_col, p_proof, i, j, _b(z), fs,
                                    on="op_step")
                assert theirs == mine, (p, net.role(p), i, j)
                seen[op.kind].add(mine)
    assert all(v == {True, False} for v in seen.values()), seen


def test_a_wrong_opening_is_refused(chain, job):
    net, _, t = job
    p = next(q for q in range(1, net.per_layer + 1) if net.role(q) == "dw2")
    op, a = net.op(p), t.state(p - 1)[1]
    g = unpack(op.bits)
    i, j = g.r0, g.o
    p_col, p_proof = opening(op, a, i, j + 1)  # another row of the canvas
    with pytest.raises(RuntimeError, match=b"value: p_col opening".hex()):  # a view's revert, its reason in hex
        chain.view("block_ok", op.kind, op.k, op.bits, op.param_root(), a.shape[0], rows_tree(a).root,
                   pack_float32(np.ascontiguousarray(a[i])), p_col, p_proof, i, j, 0, chain.at("float_step"),
                   on="op_step")


@pytest.mark.parametrize("strategy,honest_claims", [("lie_update", True), ("lie_update", False),
                                                    ("lie_backward", False), ("lie_forward", False),
                                                    ("lie_copy", False), ("drift", True)])
def test_games_on_a_training_job(chain, job, strategy, honest_claims):
    """Checkpoints bisected to one step, its operators to one; the honest party wins in ceil(log2 L) + ceil(log2 P)."""
    net, a0, t = job
    name = f"{strategy}{int(honest_claims)}"
    h = make_train_player("honest", net, a0, seed=0, name="h" + name, honest=t)
    c = make_train_player(strategy, net, a0, seed=3, name="c" + name, honest=t)
    claimant, challenger = (h, c) if honest_claims else (c, h)
    r = play_op(chain, claimant, challenger, ops_root=net.ops_tree.root, input_state=t.leaves[0],
                n_layers=net.n_layers, per_layer=net.per_layer, bond=BOND)
    assert r.winner == ("claimant" if honest_claims else "challenger") and r.how == "step"
    assert r.rounds <= math.ceil(math.log2(net.n_layers)) + math.ceil(math.log2(net.per_layer))
    assert chain.view("credits", chain.address(c.name), on="game") == 0


@pytest.mark.slow
def test_operator_game_fits_eip170():
    """The block dispatch keeps OperatorGame.vy's runtime code under EIP-170's 24,576 bytes."""
    vyper = pytest.importorskip("vyper")
    from vcompute.ledger.contracts import protocols_dir

    code = vyper.compile_code((protocols_dir() / "OperatorGame.vy").read_text(), output_formats=["bytecode_runtime"])
    assert (len(code["bytecode_runtime"]) - 2) // 2 < 24576

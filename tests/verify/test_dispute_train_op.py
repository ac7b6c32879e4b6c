"""A torch PoL SGD step as block operators (verify/dispute/op_block.py, train_op.py; proofs/dispute.md C14)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from vcompute.verify.dispute import op_block  # noqa: E402
from vcompute.verify.dispute.op_block import (AXPY, MMP, MMS, RELUG, TR, Geometry, apply_block, block_invalid,  # noqa: E402
                                              block_op, element_ok, pack, unpack)
from vcompute.verify.dispute.op_step import axpby_within, relu_grad_within  # noqa: E402
from vcompute.verify.dispute.op_validity import adopt_ops, invalid_elements  # noqa: E402
from vcompute.verify.dispute.train_op import (STEP_OPS, TRAIN_LYING, Layout, TrainOpNet, canvas_of,  # noqa: E402
                                              checkpoint_of, torch_trace, train_lying_trace)
from vcompute.workloads.training.data import load_dataset  # noqa: E402
from vcompute.workloads.training.spec import TrainSpec, init_state  # noqa: E402
from vcompute.workloads.training.torch_backend import run_steps  # noqa: E402


def _b(v) -> int:
    return int(np.array([v], np.float32).view("<u4")[0])


def _job(seed, *, hidden=16, batch=16, steps=2, momentum=0.9, weight_decay=1e-4):
    spec = TrainSpec(hidden=hidden, batch_size=batch, steps=steps, checkpoint_every=1, momentum=momentum,
                     weight_decay=weight_decay, seed=seed)
    net, a0 = TrainOpNet.random(spec, steps=steps, seed=seed)
    return spec, net, a0


@pytest.mark.parametrize("seed", [*range(2), *(pytest.param(s, marks=pytest.mark.slow) for s in range(2, 24))])
@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 1e-4), (0.0, 0.0)])
def test_torchs_own_step_passes_every_operator_and_its_checkpoints_are_torchs(seed, momentum, weight_decay):
    """C14 completeness: autograd's and SGD's float32 intermediates are within every bound, and the
    step-boundary canvases hold run_steps' checkpoints bit for bit (the PoL transcript's)."""
    spec, net, a0 = _job(seed, momentum=momentum, weight_decay=weight_decay)
    t = torch_trace(net, a0)
    for p in range(1, net.n_ops + 1):
        assert invalid_elements(net, p, t.state(p - 1), t.state(p)) == [], (p, net.role(p))
        op = net.op(p)
        if op.kind in op_block.BLOCK_KINDS:
            # the derivation's margin: one or two float32 roundings use at most half of 4u (axpy), and a dot
            # product far less of Higham's gamma; measured at most 0.46 of any bound (proofs/dispute.md C14)
            ref, bound, exact = op_block.element_bound(op, t.state(p - 1)[1])
            g = unpack(op.bits)
            z = t.state(p)[1][g.r0:g.r0 + g.rn, g.o:g.o + g.m].astype(np.float64)
            assert (np.abs(z - ref) <= 0.55 * bound + 2.0**-140)[~exact].all(), net.role(p)
    data = load_dataset(spec.dataset, seed=seed)
    state = init_state(spec, seed)
    for step in range(1, net.n_layers + 1):
        state = run_steps(spec, state, step - 1, 1, data, data_seed=seed, aug_seed=seed + 1)
        ck = checkpoint_of(net.layout, t.state(step * net.per_layer)[1])
        for k, v in state.items():
            assert np.array_equal(ck[k].view("<u4"), v.view("<u4")), (step, k)
    assert net.per_layer == (20 if momentum else 16)


def test_the_pol_default_size_passes_and_another_machine_too():
    """The PoL MLP's default sizes (hidden 32, batch 32): torch passes; numpy float32 (drift) passes too."""
    _, net, a0 = _job(7, hidden=32, batch=32, steps=2)
    assert (net.rows, net.layout.width, net.per_layer) == (128, 208, 20)
    t = torch_trace(net, a0)
    drift = adopt_ops(t)  # the honest challenger adopts all of it
    assert drift.leaves == t.leaves
    from vcompute.verify.dispute.op_trace import OpTrace

    other = OpTrace.execute(net, a0)
    assert other.leaves[-1] != t.leaves[-1]  # other bits ...
    for p in range(1, net.n_ops + 1):  # ... every operator valid
        assert invalid_elements(net, p, other.state(p - 1), other.state(p)) == [], p


@pytest.mark.parametrize("strategy", TRAIN_LYING)
def test_every_liar_has_an_invalid_operator_where_it_lies(strategy):
    """C14 soundness: the first operator where a liar's trace leaves torch's has an element outside its
    bound (or an unwritten element changed), so the honest challenger's adopted trace departs there."""
    _, net, a0 = _job(3)
    honest = torch_trace(net, a0)
    t = train_lying_trace(net, a0, strategy, seed=11, base=honest)
    first = next(p for p in range(1, net.n_ops + 1) if t.leaves[p] != honest.leaves[p])
    assert invalid_elements(net, first, t.state(first - 1), t.state(first)) != []
    if strategy == "lie_update":
        assert net.role(first) in ("wd2", "mom2", "upd2", "wd1", "mom1", "upd1")
    if strategy == "lie_forward":
        assert net.role(first) in ("fwd1", "relu", "tr_h", "fwd2")
    if strategy == "lie_backward":
        assert net.role(first) not in ("fwd1", "relu", "tr_h", "fwd2", "wd2", "mom2", "upd2", "wd1", "mom1", "upd1")
    if strategy == "lie_last":
        assert first == net.n_ops
    mine = adopt_ops(t)
    assert mine.leaves[-1] != t.leaves[-1] and mine.leaves[first - 1] == t.leaves[first - 1]


def test_axpby_holds_every_float32_evaluation_and_rejects_twice_its_bound():
    """The derived bound 2^-22 (|c1 l| + |c2 r|) holds one, two or three roundings (FMA or not)."""
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        c1, l, c2, r = (rng.standard_normal(4) * 10.0 ** rng.integers(-20, 20, 4)).astype(np.float32)
        if rng.random() < 0.3:
            c1 = np.float32(1)
        evals = [np.float32(c1 * l) + np.float32(c2 * r), np.float32(float(c1) * float(l) + float(c2) * float(r)),
                 np.float32(float(np.float32(c1 * l)) + float(c2) * float(r))]
        for z in evals:
            assert axpby_within(_b(c1), _b(l), _b(c2), _b(r), _b(z), 22)
        ref = float(c1) * float(l) + float(c2) * float(r)
        base = abs(float(c1) * float(l)) + abs(float(c2) * float(r))
        for k in (2.0, -2.0, 8.0):
            z = ref + k * 2.0**-22 * base
            if np.isfinite(np.float32(z)) and abs(float(np.float32(z)) - ref) > 2.0**-22 * base + 2.0**-140:
                seen.add(axpby_within(_b(c1), _b(l), _b(c2), _b(r), _b(z), 22))
    assert seen == {False}
    assert axpby_within(_b(1), _b(np.inf), _b(1), _b(0), _b(np.inf), 22)  # inf + 0 = inf
    assert not axpby_within(_b(1), _b(np.inf), _b(1), _b(0), 0, 22)
    assert relu_grad_within(_b(0.5), _b(-3.0), _b(-3.0)) and not relu_grad_within(_b(0.5), _b(-3.0), _b(-3.0001))
    assert relu_grad_within(_b(0.0), _b(-3.0), _b(-0.0)) and not relu_grad_within(_b(-1e-45), _b(2.0), _b(2.0))


def test_geometry_packs_and_bad_geometry_is_refused():
    g = Geometry(22, 1, 2, 3, 4, 5, 16, 7, 8, _b(0.9), _b(-0.05))
    assert unpack(pack(g)) == g
    with pytest.raises(ValueError, match="geometry"):
        block_op(MMS, width=16, rows=8, r0=0, rn=8, o=0, m=8, al=4, n=8, rho=0, be=0)  # misaligned
    with pytest.raises(ValueError, match="geometry"):
        block_op(TR, width=16, rows=8, r0=0, rn=8, o=0, m=8, al=12, rho=0)  # reads beyond the lanes
    with pytest.raises(ValueError, match="param"):
        block_op(MMP, width=16, rows=8, r0=0, rn=8, o=0, m=8, al=0, n=8, param=np.ones((8, 4), np.float32))
    with pytest.raises(ValueError, match="kind"):
        block_op(99, width=16, rows=8, r0=0, rn=8, o=0, m=8)
    for bad in (TrainSpec(model="cnn"), TrainSpec(framework="jax")):
        with pytest.raises(ValueError, match="torch MLP"):
            TrainOpNet.from_spec(bad, {}, start=0, steps=1, data=None, data_seed=0, aug_seed=0)
    with pytest.raises(ValueError, match="batch and hidden"):
        TrainOpNet(Layout(12, 16, True), ((np.zeros((12, 64), np.float32), np.zeros(12, int)),), 0.05, 0.9)


def test_outside_the_block_is_copied_bit_for_bit_and_the_screen_agrees_with_the_mirror():
    """block_invalid (the float64 screen) and element_ok (the exact mirror) decide alike, element by element."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 32)).astype(np.float32)
    ops = [block_op(MMS, width=32, rows=16, r0=0, rn=8, o=16, m=8, al=0, n=8, rho=8, be=8),
           block_op(AXPY, width=32, rows=16, r0=8, rn=8, o=0, m=8, al=0, c1=0.9, c2=1.0, rho=0, be=8),
           block_op(RELUG, width=32, rows=16, r0=0, rn=16, o=24, m=8, al=0, be=8),
           block_op(TR, width=32, rows=16, r0=0, rn=8, o=8, m=8, al=16, rho=8)]
    for op in ops:
        out = apply_block(op, a)
        assert block_invalid(op, a, out) == []
        g = unpack(op.bits)
        for _ in range(40):
            i, j = int(rng.integers(16)), int(rng.integers(32))
            bad = out.copy()
            bad[i, j] = op_block.edge_value(op, a, i, j, 1.0 if rng.random() < 0.5 else -1.0)
            assert block_invalid(op, a, bad) == [(i, j)]
            assert not element_ok(op, a, i, j, _b(bad[i, j]))
            assert element_ok(op, a, i, j, _b(out[i, j]))
        assert g.rn >= 1


def test_canvas_round_trips_a_pol_state():
    spec = TrainSpec(hidden=16, batch_size=16)
    state = init_state(spec, 0)
    state["momentum/fc1.bias"] = np.arange(16, dtype=np.float32)
    L = Layout(16, 16, True)
    back = checkpoint_of(L, canvas_of(L, state))
    assert all(np.array_equal(back[k], v) for k, v in state.items())
    assert len(STEP_OPS) == 20

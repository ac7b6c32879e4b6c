"""Float32 trace commitments and the per-element rounding bound (proofs/dispute.md C6)."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify.dispute.float_players import FLOAT_STRATEGIES, FLOAT_VALID, make_float_player
from vcompute.verify.dispute.float_trace import FloatNet, FloatTrace, adopt, bad_elements, pack_float32


def _tf32(a: np.ndarray) -> np.ndarray:
    """Round float32 to TF32 (10 explicit mantissa bits, nearest even), as tensor cores read inputs."""
    b = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0xFFF + ((b >> 13) & 1)) & ~np.uint64(0x1FFF)
    return b.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_honest_float32_results_of_any_summation_order_are_within_the_bound(seed):
    """Completeness of the bound: BLAS, float64-then-rounded, sequential and reversed sums all pass."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([8, 64, 256]))
    net = FloatNet((rng.standard_normal((k, 16)).astype(np.float32),), rows=4)
    x = (rng.standard_normal((4, k)) * float(rng.choice([1.0, 1e-30, 1e30]))).astype(np.float32)
    w = net.weights[0]
    seq = np.zeros((4, 16), np.float32)
    rev = np.zeros((4, 16), np.float32)
    for t in range(k):
        seq = (seq + x[:, t:t + 1] * w[t:t + 1, :]).astype(np.float32)
        rev = (rev + x[:, k - 1 - t:k - t] * w[k - 1 - t:k - t, :]).astype(np.float32)
    for y in (x @ w, (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32), seq, rev):
        assert bad_elements(net, 1, x, y.astype(np.float32)) == []


def test_tf32_inputs_pass_an_11_bit_bound_and_fail_the_float32_one():
    """The operator's u_bits is the precision contract: a TF32 provider is valid only where the job says so."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((256, 32)).astype(np.float32)
    x = rng.standard_normal((8, 256)).astype(np.float32)
    y = (_tf32(x).astype(np.float64) @ _tf32(w).astype(np.float64)).astype(np.float32)
    assert bad_elements(FloatNet((w,), rows=8, u_bits=11), 1, x, y) == []
    assert len(bad_elements(FloatNet((w,), rows=8, u_bits=24), 1, x, y)) > 0


def test_a_bfloat16_provider_is_out_of_the_float32_bound():
    rng = np.random.default_rng(2)
    net = FloatNet.random(dims=(64, 32), rows=4, seed=2)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    lo = (x.view(np.uint32) & 0xFFFF0000).view(np.float32) @ (net.weights[0].view(np.uint32) & 0xFFFF0000).view(
        np.float32)
    assert len(bad_elements(net, 1, x, lo)) > 0


def test_non_finite_outputs_are_out_of_bound():
    net = FloatNet.random(dims=(16, 16), rows=2, seed=0)
    x = net.random_input(seed=0)
    y = net.layer(1, x)
    y[0, 3], y[1, 5] = np.nan, np.inf
    assert bad_elements(net, 1, x, y) == [(0, 3), (1, 5)]


@pytest.mark.parametrize("strategy", FLOAT_STRATEGIES)
def test_each_strategy_is_valid_or_out_of_bound_as_it_says(strategy):
    net = FloatNet.random(dims=(32,) * 5, rows=2, seed=1)
    x0 = net.random_input(seed=2)
    p = make_float_player(strategy, net, x0, seed=7)
    bad = [l for l in range(1, 5) if bad_elements(net, l, p.trace.state(l - 1), p.trace.states[l - 1])]
    assert (bad == []) == (strategy in FLOAT_VALID)


def test_adopt_keeps_valid_steps_and_diverges_exactly_at_the_first_bad_one():
    net = FloatNet.random(dims=(32,) * 7, rows=2, seed=3)
    x0 = net.random_input(seed=4)
    liar = make_float_player("lie_one", net, x0, seed=9)
    first_bad = min(l for l in range(1, 7) if bad_elements(net, l, liar.trace.state(l - 1), liar.trace.states[l - 1]))
    mine = adopt(liar.trace)
    same = [a == b for a, b in zip(mine.leaves, liar.trace.leaves)]
    assert same[:first_bad] == [True] * first_bad and not same[first_bad]
    assert all(not bad_elements(net, l, mine.state(l - 1), mine.states[l - 1]) for l in range(1, 7))
    drift = make_float_player("drift", net, x0, seed=1)
    assert adopt(drift.trace).leaves == drift.trace.leaves


def test_trace_leaves_bind_every_bit_and_refuse_bad_tensors():
    net = FloatNet.random(dims=(16, 16), rows=2, seed=0)
    t = FloatTrace.execute(net, net.random_input(seed=0))
    y = t.states[0].copy()
    y[1, 2] = np.nextafter(y[1, 2], np.float32(1))
    assert FloatTrace(net, t.x0, [y]).leaves[1] != t.leaves[1]
    with pytest.raises(TypeError, match="float32"):
        pack_float32(np.zeros(8, np.float64))
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_float32(np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="multiples of 8"):
        FloatNet((np.zeros((12, 8), np.float32),), rows=1)
    with pytest.raises(ValueError, match="u_bits"):
        FloatNet((np.zeros((8, 8), np.float32),), rows=1, u_bits=30)


def test_a_training_transcript_is_a_float_trace_of_real_sgd():
    """The operator form S' = S Op_t is the SGD step: the float32 checkpoints follow float64 SGD on the
    same data, and the loss on the planted model falls."""
    from vcompute.verify.dispute.train_trace import linear_training_job, weights_of

    net, s0 = linear_training_job(steps=12, features=24, targets=8, batch=16, eta=0.05, seed=0)
    trace = FloatTrace.execute(net, s0)
    w = weights_of(s0, 8).astype(np.float64)
    for op in net.weights:  # the same step written as SGD: W - eta/b X^T (X W - Y) = A W + B
        a, b = op[:24, :24].T.astype(np.float64), op[24:, :24].T.astype(np.float64)
        w = a @ w + b
    assert np.allclose(weights_of(trace.states[-1], 8), w, rtol=1e-4, atol=1e-5)
    first = np.linalg.norm(weights_of(trace.states[0], 8) - weights_of(s0, 8))
    last = np.linalg.norm(weights_of(trace.states[-1], 8) - weights_of(trace.states[-2], 8))
    assert last < first  # steps shrink as training converges
    for l in range(1, 13):
        assert bad_elements(net, l, trace.state(l - 1), trace.states[l - 1]) == []


def test_skipping_a_training_step_is_out_of_bound():
    from vcompute.verify.dispute.train_trace import linear_training_job

    net, s0 = linear_training_job(steps=6, features=24, targets=8, batch=16, eta=0.05, seed=1)
    lazy = make_float_player("skip", net, s0, seed=3)
    bad = [l for l in range(1, 7) if bad_elements(net, l, lazy.trace.state(l - 1), lazy.trace.states[l - 1])]
    assert len(bad) == 1
    assert np.array_equal(lazy.trace.states[bad[0] - 1], lazy.trace.state(bad[0] - 1))

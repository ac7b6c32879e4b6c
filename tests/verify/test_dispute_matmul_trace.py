"""A matmul job's accumulation trace (vcompute.verify.dispute.matmul_trace): the honest trace is the product
and within bound at every step; each market cheat class is out of bound at its first wrong step; caller misuse
raises naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify.dispute.float_trace import bad_elements
from vcompute.verify.dispute.matmul_trace import CHEATS, blocks, matmul_input, matmul_net, provider_trace


def _job(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))


def _bad_steps(t):
    return [l for l in range(1, t.net.n_layers + 1) if bad_elements(t.net, l, t.state(l - 1), t.states[l - 1])]


@pytest.mark.parametrize("n, steps", [(16, 1), (16, 5), (48, 32), (128, 4)])
def test_the_honest_trace_is_the_product_and_every_step_is_within_bound(n, steps):
    a, b = _job(n)
    net, x0 = matmul_net(b, steps=steps, rows=n), matmul_input(a, n)
    t = provider_trace(net, x0, None, m=n, seed=0)
    assert np.allclose(t.states[-1][:, :n], a.astype(np.float64) @ b.astype(np.float64), atol=1e-3)
    assert all((s[:, n:] == a).all() for s in t.states)  # a is carried exactly
    assert _bad_steps(t) == []
    assert [hi - lo for lo, hi in blocks(n, steps)] == [n * (t + 1) // steps - n * t // steps for t in range(steps)]


@pytest.mark.parametrize("cheat", CHEATS)
@pytest.mark.parametrize("seed", range(3))
def test_every_cheat_class_is_out_of_bound_where_it_first_lies(cheat, seed):
    a, b = _job(16, seed)
    net, x0 = matmul_net(b, steps=8, rows=16), matmul_input(a, 16)
    t = provider_trace(net, x0, cheat, m=16, seed=seed)
    bad = _bad_steps(t)
    assert bad, cheat
    # every step before the first bad one is the honest computation
    honest = provider_trace(net, x0, None, m=16, seed=0)
    assert all((t.states[l - 1] == honest.states[l - 1]).all() for l in range(1, bad[0]))
    assert t.leaves[-1] != honest.leaves[-1]


def test_caller_misuse_raises_naming_the_argument():
    a, b = _job(16)
    with pytest.raises(TypeError, match="b must be"):
        matmul_net(b.astype(np.float64), steps=2, rows=16)
    with pytest.raises(ValueError, match="widths"):
        matmul_net(np.zeros((130, 130), np.float32), steps=2, rows=4)
    with pytest.raises(ValueError, match="steps"):
        matmul_net(b, steps=17, rows=16)
    with pytest.raises(ValueError, match="steps"):
        matmul_net(b, steps=True, rows=16)
    with pytest.raises(TypeError, match="a must be"):
        matmul_input(a.tolist(), 16)
    net, x0 = matmul_net(b, steps=2, rows=16), matmul_input(a, 16)
    with pytest.raises(ValueError, match="cheat"):
        provider_trace(net, x0, "skip_layer", m=16, seed=0)
    with pytest.raises(ValueError, match="nothing to dispute"):
        provider_trace(matmul_net(np.zeros_like(b), steps=2, rows=16), x0, "skip_k", m=16, seed=0)

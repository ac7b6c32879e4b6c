"""JAX whole-model verification with control flow: every iteration, the branch taken, nested jaxprs (issue 12, class 1).

Before: a provider that ran a scan/fori_loop body once was accepted and honest loop, while and cond models
were rejected; now every iteration is checked, and constructs that are not modelled are refused up front.
"""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify.freivalds.model import JaxModelVerifier, verify_jax_model
from vcompute.workloads.models import jax_provider

N = 4


def _wx(seed=0, n=12, m=6):
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    w = jnp.asarray((rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32))
    x = jnp.asarray(rng.standard_normal((m, n)).astype(np.float32))
    return w, x


def _loops():
    import jax.numpy as jnp
    from jax import lax

    def scan(w, x):
        return lax.scan(lambda h, _: (jnp.tanh(h @ w), None), x, None, length=N)[0]

    def scan_xs_reverse(w, x):  # per-iteration inputs, stacked outputs, run backwards
        def body(h, s):
            y = jnp.tanh(h @ w + s)
            return y, y.sum()
        h, ys = lax.scan(body, x, jnp.arange(N, dtype=jnp.float32), reverse=True)
        return h * ys[0]

    def fori(w, x):
        return lax.fori_loop(0, N, lambda i, h: jnp.tanh(h @ w), x)

    def while_(w, x):
        return lax.while_loop(lambda c: c[0] < N, lambda c: (c[0] + 1, jnp.tanh(c[1] @ w)), (0, x))[1]

    return {"scan": scan, "scan_xs_reverse": scan_xs_reverse, "fori": fori, "while": while_}


def _python_loop(w, x, reverse_bias=False):
    """The honest trace computed without the jaxpr walker: what a real provider's GPU did."""
    import jax.numpy as jnp

    h, trace = x, []
    for i in range(N):
        y = h @ w
        trace.append(y)
        h = jnp.tanh(y + (N - 1 - i if reverse_bias else 0))
    return h, trace


@pytest.mark.parametrize("name", ["scan", "scan_xs_reverse", "fori", "while"])
def test_every_iteration_checked_and_lazy_loops_rejected(name):
    fn = _loops()[name]
    w, x = _wx()
    out, trace = jax_provider(fn, w, x)
    assert len(trace) == N
    if name != "scan_xs_reverse":  # the walker's trace is the real per-iteration products
        _, ref = _python_loop(w, x)
        assert all(np.allclose(np.asarray(a), np.asarray(b), atol=1e-5) for a, b in zip(trace, ref))
    v = verify_jax_model(fn, (w, x), out, trace, seed=0)
    assert v.accepted and v.details["layers_checked"] == N, v.reason
    assert v.details["replay"] == ("eager" if name == "while" else "compiled")
    # lazy providers: the body once (the old walker's view), the first product reused, one iteration short
    y0 = trace[0]
    lazy = [
        (out, [y0]),
        (out, [y0] * N),
        (out, trace[:-1]),
    ]
    for claimed, tr in lazy:
        v = verify_jax_model(fn, (w, x), claimed, tr, seed=1)
        assert not v.accepted, v.reason
    # a wrong product in the last iteration only is named
    bad = [*trace[:-1], trace[-1] * 1.001]
    v = verify_jax_model(fn, (w, x), out, bad, seed=2)
    assert not v.accepted and v.details["first_bad_layer"] == f"dot_general[{N - 1}]", v.reason


def test_cond_and_switch_check_the_branch_taken():
    import jax.numpy as jnp
    from jax import lax

    def fn(w, x):
        h = lax.cond(x.sum() > 0, lambda h: jnp.tanh(h @ w), lambda h: h @ (2.0 * w), x)
        return lax.switch(jnp.int32(x.shape[0] % 3 + 5), [lambda h: h, lambda h: h @ w, lambda h: -(h @ w)], h)

    w, x = _wx(1)
    for xx in (x, -x):
        out, trace = jax_provider(fn, w, xx)
        assert len(trace) == 2  # one product per cond; switch index 5 is out of range: XLA takes the last branch
        v = verify_jax_model(fn, (w, xx), out, trace, seed=0)
        assert v.accepted and v.details["replay"] == "eager", v.reason
        assert np.allclose(np.asarray(out), np.asarray(fn(w, xx)), atol=1e-5)
    # the other branch's product, claimed consistently, is rejected at the first layer
    h_other = x @ (2.0 * w) if float(x.sum()) > 0 else jnp.tanh(x @ w)
    lie = [x @ (2.0 * w) if float(x.sum()) > 0 else x @ w, h_other @ w]
    v = verify_jax_model(fn, (w, x), -(h_other @ w), lie, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "dot_general[0]", v.reason


def test_nested_jaxprs_recursed():
    import jax
    import jax.numpy as jnp

    @jax.custom_jvp
    def f(x, w):
        return jnp.tanh(x @ w)

    f.defjvp(lambda p, t: (f(*p), t[0] @ p[1]))

    @jax.custom_vjp
    def g(x, w):
        return x @ w

    g.defvjp(lambda x, w: (g(x, w), (x, w)), lambda r, ct: (ct @ r[1].T, r[0].T @ ct))

    def fn(w, x):
        y = jax.jit(lambda a: a @ w)(x)
        y = g(f(y, w), w)
        return jax.checkpoint(lambda a: jnp.sin(a @ w))(y)

    w, x = _wx(2)
    out, trace = jax_provider(fn, w, x)
    v = verify_jax_model(fn, (w, x), out, trace, seed=0)
    assert v.accepted and v.details["layers_checked"] == 4, v.reason
    for layer in range(4):
        out, trace = jax_provider(fn, w, x, behaviour="swap_weights", layer=layer, rng=np.random.default_rng(layer))
        v = verify_jax_model(fn, (w, x), out, trace, seed=0)
        assert not v.accepted and v.details["first_bad_layer"] == f"dot_general[{layer}]", v.reason


def test_provider_steered_loop_cannot_run_forever():
    """A while loop whose condition depends on claimed products stops when the trace runs out."""
    import jax.numpy as jnp
    from jax import lax

    def fn(w, x):
        return lax.while_loop(lambda h: jnp.abs(h).sum() < 1e6, lambda h: 2.0 * (h @ w), x)

    w = jnp.eye(12, dtype=jnp.float32) * 0.5  # honest: h never grows, the loop never ends
    _, x = _wx(3)
    trace = [x * 0.5] * 3
    v = verify_jax_model(fn, (w, x), x, trace, seed=0)
    assert not v.accepted and "performs more" in v.reason, v.reason


def test_unmodelled_constructs_refused_up_front():
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.sharding import Mesh, PartitionSpec

    try:
        from jax import shard_map
    except ImportError:  # older JAX
        from jax.experimental.shard_map import shard_map

    w, x = _wx(4)
    mesh = Mesh(np.array(jax.devices()[:1]), ("d",))
    sharded = lambda w, x: shard_map(lambda a, b: a @ b, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec()),  # noqa: E731
                                     out_specs=PartitionSpec())(x, w)
    mixed = lambda w, x: lax.dot_general(x, w.astype(jnp.bfloat16), (((1,), (0,)), ((), ())),  # noqa: E731
                                         preferred_element_type=jnp.float32)
    k = jnp.ones((1, 1, 3, 3), jnp.float32)
    transposed = lambda w, x: lax.conv_transpose(x[None, None], k, (2, 2), "SAME",  # noqa: E731
                                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    conv1d = lambda w, x: lax.conv_general_dilated(x[None], w[None, :6, :3], (1,), "VALID")  # noqa: E731
    glue_only = lambda w, x: jnp.tanh(x)  # noqa: E731
    for fn, match in [(sharded, "shard_map"), (mixed, "one dtype"), (transposed, "transposed"),
                      (conv1d, "not 2-D"), (glue_only, "no dot_general")]:
        with pytest.raises(ValueError, match=match):
            JaxModelVerifier(fn).verify((w, x), x, [], seed=0)
    with pytest.raises(TypeError, match="args must be a tuple"):
        JaxModelVerifier(glue_only).verify([w, x], x, [], seed=0)


@pytest.mark.slow  # 16 s: XLA compiles the float64 grouped convolutions of the check
def test_grouped_and_asymmetric_jax_convs_checked():
    import jax.numpy as jnp
    from jax import lax

    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((2, 4, 9, 9)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((6, 2, 2, 3)).astype(np.float32))

    def fn(w, x):
        return jnp.tanh(lax.conv_general_dilated(x, w, (2, 1), "SAME", rhs_dilation=(1, 2), feature_group_count=2,
                                                 dimension_numbers=("NCHW", "OIHW", "NCHW")))

    out, trace = jax_provider(fn, w, x)
    v = verify_jax_model(fn, (w, x), out, trace, seed=0)
    assert v.accepted, v.reason
    out, trace = jax_provider(fn, w, x, behaviour="swap_weights", layer=0)
    assert not verify_jax_model(fn, (w, x), out, trace, seed=0).accepted


def test_eager_replay_with_numpy_float64_arguments_and_claimed_dtypes():
    """The eager replay (a while loop) knows each equation's dtype: float64 numpy inputs compute in float32."""
    import jax.numpy as jnp

    fn = _loops()["while"]
    w, x = _wx(6)
    x64 = np.asarray(x, np.float64)
    out, trace = jax_provider(fn, w, x64)
    v = verify_jax_model(fn, (w, x64), out, trace, seed=0)
    assert v.accepted and v.details["replay"] == "eager", v.reason
    wide = [t.astype(jnp.bfloat16) for t in trace]  # another dtype than the equation computes
    v = verify_jax_model(fn, (w, x64), out, wide, seed=0)
    assert not v.accepted and "dtype" in v.reason, v.reason

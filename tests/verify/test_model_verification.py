"""Whole-model verification: every linear layer of torch modules and JAX functions."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify.freivalds.model import TorchModelVerifier, verify_jax_model, verify_torch_model
from vcompute.workloads.models import (jax_mlp, jax_provider, jax_transformer_block, torch_mlp, torch_provider,
                                       torch_transformer_block)


def _torch_models():
    import torch
    from torch import nn

    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2), nn.Flatten(),
                         nn.Linear(4 * 7 * 7, 5)).eval()
    return {
        "mlp": (torch_mlp((32, 64, 64, 10), seed=0), (torch.randn(16, 32),)),
        "block": (torch_transformer_block(32, 4, 64, seed=0), (torch.randn(2, 8, 32),)),
        "conv": (conv, (torch.randn(2, 3, 16, 16),)),
    }


@pytest.mark.parametrize("name", ["mlp", "block", "conv"])
def test_torch_honest_accepted_and_cheats_named(name):
    module, inputs = _torch_models()[name]
    mv = TorchModelVerifier(module)
    out, trace = torch_provider(module, *inputs)
    v = mv.verify(inputs, out, trace, seed=0)
    assert v.accepted, v.reason
    assert v.details["layers_checked"] == len(mv.layers)
    target = list(mv.layers)[1]
    for beh in ("swap_weights", "low_precision"):
        out, trace = torch_provider(module, *inputs, behaviour=beh, layer=target, rng=np.random.default_rng(1))
        v = mv.verify(inputs, out, trace, seed=1)
        assert not v.accepted, (beh, v.reason)
        assert v.details["first_bad_layer"] == target, v.details["first_bad_layer"]


def test_torch_malformed_traces_rejected():
    import torch

    module, (x,) = _torch_models()["mlp"]
    out, trace = torch_provider(module, x)
    first = list(trace)[0]
    bad_traces = [
        {k: v for k, v in trace.items() if k != first},          # a layer missing
        {**trace, first: [trace[first][0][:, :-1]]},               # wrong shape
        {**trace, first: [trace[first][0].double()]},              # wrong dtype
        {**trace, first: [trace[first][0] * float("nan")]},        # NaN
        {**trace, first: [trace[first][0].numpy()]},               # wrong backend
        {**trace, first: trace[first] * 2},                        # an extra call
        "not a dict",
    ]
    for tr in bad_traces:
        v = verify_torch_model(module, (x,), out, tr, seed=0)
        assert not v.accepted and v.reason
    assert not verify_torch_model(module, (x,), out + 1.0, trace, seed=0).accepted  # glue lie at the end
    assert not verify_torch_model(module, (x,), torch.zeros(3), trace, seed=0).accepted


@pytest.mark.parametrize("which", ["mlp", "block"])
def test_jax_honest_accepted_and_cheats_named(which):
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    if which == "mlp":
        fn, params = jax_mlp((32, 64, 10), seed=0)
        x = jnp.asarray(rng.standard_normal((16, 32)).astype(np.float32))
    else:
        fn, params = jax_transformer_block(32, 4, 64, seed=0)
        x = jnp.asarray(rng.standard_normal((2, 8, 32)).astype(np.float32))
    out, trace = jax_provider(fn, params, x)
    v = verify_jax_model(fn, (params, x), out, trace, seed=0)
    assert v.accepted, v.reason
    for beh in ("swap_weights", "low_precision"):
        out, trace = jax_provider(fn, params, x, behaviour=beh, layer=1, rng=np.random.default_rng(2))
        v = verify_jax_model(fn, (params, x), out, trace, seed=1)
        assert not v.accepted, (beh, v.reason)
        assert v.details["first_bad_layer"] == "dot_general[1]"
    assert not verify_jax_model(fn, (params, x), out, trace[:-1], seed=0).accepted
    assert not verify_jax_model(fn, (params, x), out, "junk", seed=0).accepted


def test_jax_conv_layers_checked():
    import jax.numpy as jnp
    from jax import lax

    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    x = jnp.asarray(rng.standard_normal((2, 3, 10, 10)).astype(np.float32))

    def fn(w, x):
        y = lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jnp.tanh(y).sum(axis=(2, 3))

    out, trace = jax_provider(fn, w, x)
    v = verify_jax_model(fn, (w, x), out, trace, seed=0)
    assert v.accepted and v.details["layers"][0]["name"] == "conv_general_dilated[0]", v.reason
    out, trace = jax_provider(fn, w, x, behaviour="swap_weights", layer=0)
    assert not verify_jax_model(fn, (w, x), out, trace, seed=0).accepted


def _jax_block(seed=0):
    import jax.numpy as jnp

    fn, params = jax_transformer_block(32, 4, 64, seed=0)
    x = jnp.asarray(np.random.default_rng(seed).standard_normal((2, 8, 32)).astype(np.float32))
    return fn, params, x


def test_jax_attention_products_recomputed_or_checked():
    from vcompute.verify.freivalds.model import JaxModelVerifier

    fn, params, x = _jax_block()
    out, trace = jax_provider(fn, params, x)
    rec, chk = JaxModelVerifier(fn), JaxModelVerifier(fn, batched="check")
    v = rec.verify((params, x), out, trace, seed=0)
    assert v.accepted and v.details["replay"] == "compiled", v.reason
    assert v.details["recomputed"] == ["dot_general[3]", "dot_general[4]"]  # q k^T and att v
    assert v.details["layers_checked"] == 6
    v = chk.verify((params, x), out, trace, seed=0)
    assert v.accepted and v.details["layers_checked"] == 8 and v.details["recomputed"] == [], v.reason
    # a tampered attention product: checked, it is named; recomputed, the replay feeds the honest
    # product onwards, so the layer that consumed the tampered one (the output projection) fails
    out, trace = jax_provider(fn, params, x, behaviour="swap_weights", layer=3, magnitude=0.05,
                              rng=np.random.default_rng(3))
    v = chk.verify((params, x), out, trace, seed=1)
    assert not v.accepted and v.details["first_bad_layer"] == "dot_general[3]", v.reason
    v = rec.verify((params, x), out, trace, seed=1)
    assert not v.accepted and v.details["first_bad_layer"] == "dot_general[5]", v.reason
    # a provider that lies only about the recomputed entry of its trace changes nothing the verifier uses
    out, trace = jax_provider(fn, params, x)
    v = rec.verify((params, x), out, [*trace[:3], trace[3] + 1.0, *trace[4:]], seed=1)
    assert v.accepted, v.reason
    # the same with a trace the compiled replay refuses (a missing entry): the eager replay decides alike
    v = rec.verify((params, x), out, trace[:-1], seed=1)
    assert not v.accepted and v.details["replay"] == "eager"
    assert v.details["recomputed"] == ["dot_general[3]", "dot_general[4]"]
    with pytest.raises(ValueError, match="batched"):
        JaxModelVerifier(fn, batched="skip")


def test_jax_prepared_weights_follow_the_arguments():
    """Weights are prepared once per argument leaf, but a different array is never checked with stale ones."""
    import jax.numpy as jnp

    from vcompute.verify.freivalds.model import JaxModelVerifier

    fn, params, x = _jax_block()
    mv = JaxModelVerifier(fn)
    out, trace = jax_provider(fn, params, x)
    assert mv.verify((params, x), out, trace, seed=0).accepted
    other = {**params, "fc1": params["fc1"] * jnp.float32(1.01)}  # a new array for one weight
    v = mv.verify((other, x), out, trace, seed=0)  # the old claim does not fit the new weights
    assert not v.accepted and v.details["first_bad_layer"] == "dot_general[6]", v.reason
    out2, trace2 = jax_provider(fn, other, x)
    assert mv.verify((other, x), out2, trace2, seed=0).accepted
    assert mv.verify((params, x), out, trace, seed=0).accepted


def test_jax_numpy_and_float64_arguments():
    """Leaves JAX demotes (float64 numpy without x64) are not used in place: the checks see the real operands."""
    fn, params = jax_mlp((12, 16, 3), seed=0)
    x64 = np.random.default_rng(0).standard_normal((5, 12))  # float64
    out, trace = jax_provider(fn, params, x64)
    v = verify_jax_model(fn, (params, x64), out, trace, seed=0)
    assert v.accepted and v.details["layers_checked"] == 2, v.reason
    out, trace = jax_provider(fn, params, x64, behaviour="swap_weights", layer=0)
    v = verify_jax_model(fn, (params, x64), out, trace, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "dot_general[0]"


def test_final_output_comparison():
    import torch

    from vcompute.verify.freivalds.model._output import final_output_problem as _final_output_problem

    o = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    assert _final_output_problem(o.copy(), o) is None
    assert _final_output_problem(o + 1e-7 * np.abs(o).max(), o) is None  # within 1e-5 of the scale
    assert "differs" in _final_output_problem(o + 1e-4 * np.abs(o).max(), o)
    bad = o.copy(); bad[1, 2] = np.nan
    assert "NaN" in _final_output_problem(bad, o)
    assert "replay" in _final_output_problem(o, bad)  # a non-finite replay is never accepted
    assert "shape" in _final_output_problem(o[:, :4], o)
    assert "not an array" in _final_output_problem(object(), o)
    t = torch.from_numpy(o)
    assert _final_output_problem(t.to(torch.bfloat16), t.to(torch.bfloat16)) is None
    assert "dtype" in _final_output_problem(t, t.double())  # another dtype is another answer
    assert _final_output_problem(bad.copy(), bad) is None  # the model's own NaN, claimed where it is


def test_torch_prepared_weights_follow_in_place_changes():
    """A weight changed in place or replaced after a verify call is never checked with its stale W^T."""
    import torch

    from vcompute.verify.freivalds.model import TorchModelVerifier

    m = torch_mlp((6, 8, 3), seed=0)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    tv = TorchModelVerifier(m)
    out, trace = torch_provider(m, x)
    assert tv.verify((x,), out, trace, seed=0).accepted
    with torch.no_grad():
        m[2].weight.mul_(1.5)  # in place (an optimiser step)
    v = tv.verify((x,), out, trace, seed=0)  # the claim computed with the old weights
    assert not v.accepted and v.details["first_bad_layer"] == "2", v.reason
    out2, trace2 = torch_provider(m, x)
    assert tv.verify((x,), out2, trace2, seed=0).accepted
    m[2].weight.data = m[2].weight.data * 2.0  # replaced
    assert not tv.verify((x,), out2, trace2, seed=0).accepted
    out3, trace3 = torch_provider(m, x)
    assert tv.verify((x,), out3, trace3, seed=0).accepted


def test_jax_numpy_weights_changed_in_place(monkeypatch):
    """A numpy weight changed in place between calls is checked as it is now (no stale prepared copy)."""
    from vcompute.verify.freivalds import fused as freivalds_fused
    from vcompute.verify.freivalds.model import JaxModelVerifier

    monkeypatch.setattr(freivalds_fused, "available", lambda: False)  # the kernels that copy B on first use
    fn, params = jax_mlp((8, 16, 4), seed=0)
    p = {k: np.array(v) for k, v in params.items()}
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    mv = JaxModelVerifier(fn)
    out, trace = jax_provider(fn, p, x)
    assert mv.verify((p, x), out, trace, seed=0).accepted
    p["w1"] *= 1.5
    v = mv.verify((p, x), out, trace, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "dot_general[1]", v.reason
    out, trace = jax_provider(fn, p, x)
    assert mv.verify((p, x), out, trace, seed=0).accepted


def test_jax_plan_follows_argument_structure():
    """Arguments with the same leaf shapes but another structure get their own plan (the function may branch on it)."""
    import jax.numpy as jnp

    from vcompute.verify.freivalds.model import JaxModelVerifier

    def fn(p, x):
        return x @ (p["w"] if "w" in p else p["v"].T)

    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.standard_normal((6, 6)).astype(np.float32))
    x = jnp.asarray(rng.standard_normal((4, 6)).astype(np.float32))
    mv = JaxModelVerifier(fn)
    out, trace = jax_provider(fn, {"w": w}, x)
    assert mv.verify(({"w": w}, x), out, trace, seed=0).accepted
    lie = x @ w  # the product for {"w": w}, wrong for {"v": w}
    v = mv.verify(({"v": w}, x), lie, [lie], seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "dot_general[0]", v.reason
    out, trace = jax_provider(fn, {"v": w}, x)
    assert mv.verify(({"v": w}, x), out, trace, seed=0).accepted


def test_final_output_several_outputs_and_integers():
    """Each output of a multi-output model is compared on its own scale; integer and bool outputs exactly."""
    import jax.numpy as jnp
    import torch

    from vcompute.verify.freivalds.model import TorchModelVerifier
    from vcompute.verify.freivalds.model._output import final_output_problem as _final_output_problem

    _, p = jax_mlp((8, 4), seed=0)
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)

    def two(p, x):
        h = x @ p["w0"]
        return {"logits": h * 1e6, "probs": jnp.tanh(h)}

    out, trace = jax_provider(two, p, x)  # the flat list of outputs, in sorted-key order
    assert verify_jax_model(two, (p, x), out, trace, seed=0).accepted
    assert verify_jax_model(two, (p, x), two(p, x), trace, seed=0).accepted  # the dict itself
    v = verify_jax_model(two, (p, x), [out[0], out[1] + 1.0], trace, seed=0)  # hidden by the logits' scale before
    assert not v.accepted and v.reason.startswith("output 1:"), v.reason
    v = verify_jax_model(two, (p, x), out[0], trace, seed=0)  # a wrong number of outputs is rejected, not raised
    assert not v.accepted and "arrays" in v.reason, v.reason

    def top(p, x):
        return jnp.argmax(x @ p["w0"], -1) * 100_000  # large integers: a relative tolerance would forgive +1

    out, trace = jax_provider(top, p, x)
    assert verify_jax_model(top, (p, x), out, trace, seed=0).accepted
    v = verify_jax_model(top, (p, x), out + 1, trace, seed=0)
    assert not v.accepted and "3 entries" in v.reason, v.reason
    mask = np.array([True, False])
    assert _final_output_problem(mask.copy(), mask) is None
    assert "2 entries" in _final_output_problem(~mask, mask)  # bool outputs used to raise (-min of a bool)

    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x):
            y = self.lin(x)
            return y, y.sum(-1)

    torch.manual_seed(0)
    m, xt = Pair(), torch.randn(2, 4)
    out, trace = torch_provider(m, xt)
    tv = TorchModelVerifier(m)
    assert tv.verify((xt,), out, trace, seed=0).accepted
    v = tv.verify((xt,), out[0], trace, seed=0)  # used to raise building one array from the replay's tuple
    assert not v.accepted and "arrays" in v.reason, v.reason

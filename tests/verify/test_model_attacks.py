"""A provider who has read the whole-model verifier: each lie aimed at what a check might skip (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify.freivalds.model import TorchModelVerifier, verify_jax_model
from vcompute.workloads.models import jax_mlp, jax_provider, torch_mlp, torch_provider


@pytest.fixture(scope="module")
def torch_claim():
    import torch

    m = torch_mlp((10, 16, 16, 6), seed=0)
    x = torch.randn(9, 10, generator=torch.Generator().manual_seed(0))
    out, trace = torch_provider(m, x)
    return m, x, out, trace


def _lies(out):
    """Final outputs a provider might hope slip through the comparison."""
    import torch

    last_row = out.clone()
    last_row[-1] += 1e-3 * out.abs().max()       # the last batch position only
    one = out.clone()
    one[4, 5] += 1e-3 * out.abs().max()            # one entry, far below the layers' tolerance
    nan = out.clone()
    nan[0, 0] = float("nan")
    return {"last batch row": last_row, "one entry": one, "NaN": nan, "float64": out.double(),
            "bfloat16": out.to(torch.bfloat16), "numpy float64": out.double().numpy(),
            "fewer rows": out[:-1], "tuple": (out,) * 2, "Parameter": torch.nn.Parameter(out.clone()),
            "string": "out"}


def test_torch_final_output_lies_rejected(torch_claim):
    m, x, out, trace = torch_claim
    mv = TorchModelVerifier(m)
    assert mv.verify((x,), out, trace, seed=0).accepted
    assert mv.verify((x,), out.numpy(), trace, seed=0).accepted  # the same values, serialised as numpy
    for name, lie in _lies(out).items():
        v = mv.verify((x,), lie, trace, seed=0)
        assert not v.accepted and v.reason, name


def test_torch_last_layer_and_last_batch_position_checked(torch_claim):
    import torch

    m, x, out, trace = torch_claim
    mv = TorchModelVerifier(m)
    for layer in trace:  # every layer, the last included, and the last row of each
        bad = {k: [t.clone() for t in v] for k, v in trace.items()}
        bad[layer][0][-1] *= 1.001
        y = bad["4"][0]
        v = mv.verify((x,), y if layer == "4" else out, bad, seed=0)
        assert not v.accepted and v.details["first_bad_layer"] == layer, (layer, v.reason)
    nan = {k: [t.clone() for t in v] for k, v in trace.items()}
    nan["2"][0][3, 1] = float("nan")
    v = mv.verify((x,), out, nan, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "2" and "NaN" in v.reason, v.reason
    # a claimed layer output of another dtype or device-free type is rejected, not raised
    v = mv.verify((x,), out, {**trace, "2": [trace["2"][0].to(torch.float16)]}, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "2"


def test_jax_final_output_and_trace_lies_rejected():
    import jax.numpy as jnp
    import torch

    fn, p = jax_mlp((10, 16, 6), seed=0)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((9, 10)).astype(np.float32))
    out, trace = jax_provider(fn, p, x)
    assert verify_jax_model(fn, (p, x), out, trace, seed=0).accepted
    host = np.array(out)
    for name, lie in {"last row": host + np.eye(9, 6, -8, np.float32) * 1e-3, "NaN": np.where(host == host.max(),
                      np.nan, host), "float64": host.astype(np.float64), "int": host.astype(np.int32)}.items():
        v = verify_jax_model(fn, (p, x), lie, trace, seed=0)
        assert not v.accepted, name
    bad_traces = {"torch entry": [torch.from_numpy(np.array(trace[0])), trace[1]], "string": ["x", trace[1]],
                  "extra entry": [*trace, trace[1]], "object array": [np.array([object()]), trace[1]],
                  "last row": [trace[0], trace[1].at[-1].add(1e-3)]}
    for name, tr in bad_traces.items():
        v = verify_jax_model(fn, (p, x), out, tr, seed=0)
        assert not v.accepted and v.reason, name


def test_hostile_containers_and_unreadable_tensors_rejected_not_raised(torch_claim):
    """Evidence that would make a careless verifier raise: lying containers, sparse, meta and subclass tensors."""
    import torch

    m, x, out, trace = torch_claim
    mv = TorchModelVerifier(m)

    class Lying(list):
        def __iter__(self):
            raise RuntimeError("gotcha")

        def __len__(self):
            return 0

    class BadKey:
        def __lt__(self, other):
            raise RuntimeError("gotcha")

        def __hash__(self):
            return 0

    y0 = trace["0"][0]
    assert mv.verify((x,), out, {**trace, "0": Lying(trace["0"])}, seed=0).accepted  # read from storage: honest
    evidence = {
        "sparse entry": {**trace, "0": [y0.to_sparse()]},
        "meta entry": {**trace, "0": [torch.empty_like(y0, device="meta")]},
    }
    for name, tr in evidence.items():
        v = mv.verify((x,), out, tr, seed=0)
        assert not v.accepted and v.details["first_bad_layer"] == "0", name
    outputs = {"sparse": out.to_sparse(), "meta": torch.empty_like(out, device="meta"),
               "hostile dict": {BadKey(): out, BadKey(): out}, "Lying list": Lying([out])}
    for name, o in outputs.items():
        v = mv.verify((x,), o, trace, seed=0)
        assert not v.accepted and v.reason, name


def test_jax_trace_dtype_jax_would_round_is_rejected():
    import jax.numpy as jnp

    fn, p = jax_mlp((10, 6), seed=0)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32))
    out, trace = jax_provider(fn, p, x)
    v = verify_jax_model(fn, (p, x), out, [np.asarray(trace[0], np.float64)], seed=0)
    assert not v.accepted and "float64" in v.reason, v.reason
    assert verify_jax_model(fn, (p, x), out, [np.asarray(trace[0])], seed=0).accepted  # numpy float32 is fine

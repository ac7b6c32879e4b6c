"""Malformed claims are rejected with a reason: never an exception, never an accept."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.types import Claim
from vcompute.verify import Freivalds, VerifyContext
from vcompute.workloads.matmul import make_matmul_job


def _abc(n=8, dtype=np.float32):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    return a, b, a @ b


def _cases():
    import jax.numpy as jnp
    import torch

    a, b, c = _abc()
    nan_c, inf_c, nan_a, inf_b = c.copy(), c.copy(), a.copy(), b.copy()
    nan_c[1, 2] = np.nan
    inf_c[0, 0] = -np.inf
    nan_a[3, 3] = np.nan
    inf_b[2, 5] = np.inf
    return {
        "wrong shape": (a, b, c[:, :-1], None),
        "transposed rectangular": (a[:, :4], b[:4, :6], (a[:, :4] @ b[:4, :6]).T, None),
        "wrong dtype (float16)": (a, b, c.astype(np.float16), None),
        "wrong dtype (float64)": (a, b, c.astype(np.float64), None),
        "integer claim for float job": (a, b, c.astype(np.int32), None),
        "NaN in output": (a, b, nan_c, None),
        "Inf in output": (a, b, inf_c, None),
        "NaN in A": (nan_a, b, c, None),
        "Inf in B": (a, inf_b, c, None),
        "NaN in bias": (a, b, c, np.full(8, np.nan, np.float32)),
        "torch output for numpy job": (a, b, torch.from_numpy(c), None),
        "jax output for numpy job": (a, b, jnp.asarray(c), None),
        "empty output": (a, b, np.zeros((8, 0), np.float32), None),
        "1-D output": (a, b, c[0], None),
        "scalar output": (a, b, np.float32(1.0), None),
        "list output": (a, b, c.tolist(), None),
        "None output": (a, b, None, None),
        "string dtype": (a, b, np.array([["x"] * 8] * 8), None),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_malformed_claims_rejected_with_reason(name):
    a, b, c, bias = _cases()[name]
    v = Freivalds().check(a, b, c, seed=0, bias=bias)
    assert not v.accepted
    assert isinstance(v.reason, str) and len(v.reason) > 10


def test_caller_misuse_raises_naming_the_argument():
    """Inputs a and b are the caller's: mixing backends or dtypes is an integration bug, not provider fraud."""
    import torch

    a, b, c = _abc()
    with pytest.raises(TypeError, match="one backend"):
        Freivalds().check(a, torch.from_numpy(b), c, seed=0)
    with pytest.raises(TypeError, match="bias"):
        Freivalds().check(a, b, c, seed=0, bias=torch.zeros(8))
    with pytest.raises(ValueError, match="cast both"):
        Freivalds().check(a, b.astype(np.float64), c, seed=0)
    with pytest.raises(ValueError, match="unsupported dtype int64"):
        Freivalds().check(a.astype(np.int64), b.astype(np.int64), c.astype(np.int64), seed=0)
    with pytest.raises(TypeError, match="a must be"):
        Freivalds().check(a.tolist(), b, c, seed=0)
    # shapes of the caller's own operands make no product: every provider would be rejected for them
    for (x, y, bias), why in (((a, b, np.zeros(3, np.float32)), "bias has shape"),
                              ((np.zeros((0, 8), np.float32), b, None), "non-empty"),
                              ((a, b[:5], None), "inner dimensions"),
                              ((np.stack([a, a]), np.stack([b, b, b]), None), "do not broadcast")):
        with pytest.raises(ValueError, match=why):
            Freivalds().check(x, y, c, seed=0, bias=bias)


def test_nonfinite_reasons_name_the_operand():
    cases = _cases()
    assert "output" in Freivalds().check(*cases["NaN in output"][:3], seed=0).reason
    assert "input A" in Freivalds().check(*cases["NaN in A"][:3], seed=0).reason
    assert "input B" in Freivalds().check(*cases["Inf in B"][:3], seed=0).reason


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_nonfinite_and_empty_on_other_backends(backend):
    from vcompute.core.arrays import from_numpy

    a, b, c = _abc()
    c[2, 2] = np.nan
    A, B, C = (from_numpy(x, backend) for x in (a, b, c))
    v = Freivalds().check(A, B, C, seed=0)
    assert not v.accepted and "NaN" in v.reason
    E = from_numpy(np.zeros((0, 8), np.float32), backend)
    with pytest.raises(ValueError, match="non-empty"):  # an empty A is the caller's input
        Freivalds().check(E, B, E, seed=0)
    assert not Freivalds().check(A, B, from_numpy(np.zeros((8, 0), np.float32), backend), seed=0).accepted


def test_verify_rejects_protocol_violations():
    job = make_matmul_job(8, seed=0)
    good = job.inputs["a"] @ job.inputs["b"]
    fr, ctx = Freivalds(), VerifyContext(seed=0)
    cases = [  # the provider's evidence: rejected with a reason
        [Claim(job_id="other", provider="p", output=good)],
        [Claim(job_id=job.id, provider="p", output=None)],
        [Claim(job_id=job.id, provider="p", output="not an array")],
        [Claim(job_id=job.id, provider="p", output=good, meta={"shape": [8, 9]})],
        [Claim(job_id=job.id, provider="p", output=good, meta={"dtype": "float64"})],
        [Claim(job_id=job.id, provider="p", output=good.astype(np.float16))],
    ]
    for claims in cases:
        v = fr.verify(job, claims, ctx)
        assert not v.accepted and v.reason


def test_verify_raises_on_the_callers_misuse():
    """How many claims are passed and which job is checked are the caller's doing: a marketplace must
    not slash a provider for them, so they raise instead of rejecting."""
    from vcompute.core.types import Job

    job = make_matmul_job(8, seed=0)
    good = job.inputs["a"] @ job.inputs["b"]
    fr, ctx = Freivalds(), VerifyContext(seed=0)
    for claims in ([], [Claim(job_id=job.id, provider="p", output=good)] * 2):
        with pytest.raises(ValueError, match="exactly 1 claim"):
            fr.verify(job, claims, ctx)
    with pytest.raises(TypeError, match="claims"):
        fr.verify(job, Claim(job_id=job.id, provider="p", output=good), ctx)
    not_matmul = Job("inference", {}, {"x": good})
    with pytest.raises(ValueError, match="not a matmul job"):
        fr.verify(not_matmul, [Claim(job_id=not_matmul.id, provider="p", output=good)], ctx)

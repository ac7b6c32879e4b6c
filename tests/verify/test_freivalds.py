"""Freivalds: completeness, soundness against proofs/freivalds.md, exact integer path, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify import Freivalds, VerifyContext
from vcompute.verify.freivalds.exact import PRIMES
from vcompute.workloads.behaviours import execute
from vcompute.workloads.matmul import make_matmul_job, product

BACKENDS = ["numpy", "torch", "jax"]


def _host(x):
    from vcompute.core.arrays import to_numpy

    return np.asarray(to_numpy(x), dtype=np.float64)


def _like(ref, arr):
    from vcompute.core.arrays import backend_of, from_numpy, namespace

    xp = namespace(ref)
    return xp.astype(from_numpy(arr, backend_of(ref), like=ref), ref.dtype)


# -- completeness -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mean", [0.0, 1.0, -3.0])
def test_honest_products_accepted_on_every_backend(backend, mean):
    fr = Freivalds(rounds=4)
    for n in (1, 7, 128):
        job = make_matmul_job(n, 2 * n + 1, n + 3, backend=backend, seed=n, mean=mean)
        v = fr.check(job.inputs["a"], job.inputs["b"], product(job.inputs["a"], job.inputs["b"]), seed=n)
        assert v.accepted, v.reason
        assert v.details["max_error_ratio"] < 0.5


@pytest.mark.parametrize("backend,dtype", [("torch", "bfloat16"), ("jax", "bfloat16"), ("torch", "float16"),
                                           ("numpy", "float64"), ("numpy", "float16")])
def test_honest_low_and_high_precision_accepted(backend, dtype):
    job = make_matmul_job(96, 200, 64, backend=backend, dtype=dtype, seed=3, mean=0.5)
    a, b = job.inputs["a"], job.inputs["b"]
    v = Freivalds(rounds=2).check(a, b, a @ b, seed=0)
    assert v.accepted, v.reason


def test_mixed_magnitudes_and_biased_inputs_accepted():
    rng = np.random.default_rng(0)
    for trial in range(20):
        m, k, n = rng.integers(1, 150, size=3)
        a = (rng.standard_normal((m, k)) + rng.uniform(-2, 2)) * 10.0 ** rng.uniform(-3, 3, size=(m, 1))
        b = (rng.standard_normal((k, n)) + rng.uniform(-2, 2)) * 10.0 ** rng.uniform(-3, 3, size=(1, n))
        a, b = a.astype(np.float32), b.astype(np.float32)
        v = Freivalds(rounds=2).check(a, b, a @ b, seed=trial)
        assert v.accepted, (trial, v.reason)


def test_batched_rectangular_and_bias():
    rng = np.random.default_rng(1)
    fr = Freivalds(rounds=3)
    a = rng.standard_normal((4, 3, 17, 33)).astype(np.float32)
    b = rng.standard_normal((3, 33, 9)).astype(np.float32)  # broadcasts over the leading 4
    bias = rng.standard_normal(9).astype(np.float32)
    c = a @ b + bias
    assert fr.check(a, b, c, seed=0, bias=bias).accepted
    assert not fr.check(a, b, c, seed=0).accepted  # the bias is part of the claim
    bad = c.copy()
    bad[2, 1, 5, 4] += 1e-3 * np.sqrt(np.mean(c * c))
    v = fr.check(a, b, bad, seed=0, bias=bias)
    assert not v.accepted and "(2, 1, 5)" in v.reason


def test_prepared_weights_give_the_same_verdicts():
    rng = np.random.default_rng(2)
    fr = Freivalds(rounds=2)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    pw = fr.prepare(w)
    for s in range(3):
        x = rng.standard_normal((20, 64)).astype(np.float32)
        c = x @ w
        assert fr.check(x, pw, c, seed=s).details["max_error_ratio"] == pytest.approx(
            fr.check(x, w, c, seed=s).details["max_error_ratio"])
        c[3, 3] += 0.01
        assert not fr.check(x, pw, c, seed=s).accepted


# -- soundness: the claims of proofs/freivalds.md ------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_single_entry_above_tolerance_always_caught(backend):
    """Claim S1: an entry off by more than its row tolerance is caught (here with certainty)."""
    fr = Freivalds(rounds=1)
    job = make_matmul_job(128, backend=backend, seed=5)
    a, b = job.inputs["a"], job.inputs["b"]
    c = _host(a @ b)
    tol = fr.row_tolerances(a, b, a @ b)
    rng = np.random.default_rng(0)
    for t in range(10):
        i, j = rng.integers(128, size=2)
        bad = c.copy()
        bad[i, j] += (1 if t % 2 else -1) * 1.2 * tol[i]
        assert not fr.check(a, b, _like(a @ b, bad), seed=t).accepted


def test_minimum_detectable_error_below_half_a_percent_of_rms_at_1024():
    """Claim S3: at n = 1024 fp32, the tolerance (minimum detectable error) is <= 0.5% of RMS(C) (the
    worst-case-sum model before the partial-sum bound: <= 1%)."""
    job = make_matmul_job(1024, seed=0)
    a, b = job.inputs["a"], job.inputs["b"]
    c = a @ b
    tol = Freivalds(rounds=1).row_tolerances(a, b, c)
    rms = float(np.sqrt(np.mean(c.astype(np.float64) ** 2)))
    assert np.max(tol) / rms < 0.005


def test_cancelling_pair_meets_the_two_to_minus_k_bound():
    """Claim S2 at its tight case: +d/-d in one row is caught with probability 1 - 2^-k.

    300 trials per k; the binomial test fails spuriously with probability < 1e-6 for each k.
    """
    from scipy.stats import binom

    job = make_matmul_job(64, seed=1)
    a, b = job.inputs["a"], job.inputs["b"]
    c = a @ b
    tol = Freivalds(rounds=1).row_tolerances(a, b, c)
    rng = np.random.default_rng(7)
    for k in (1, 2, 3):
        fr = Freivalds(rounds=k)
        detected = 0
        for t in range(300):
            bad = c.astype(np.float64)
            i = rng.integers(64)
            j1, j2 = rng.choice(64, 2, replace=False)
            bad[i, j1] += 3 * tol[i]
            bad[i, j2] -= 3 * tol[i]
            detected += not fr.check(a, b, bad.astype(np.float32), seed=int(rng.integers(2**62))).accepted
        p = 1 - 0.5**k
        assert detected >= binom.ppf(1e-6, 300, p), (k, detected)
        assert detected <= binom.isf(1e-6, 300, p), (k, detected)  # and not far above: the bound is tight


def test_low_precision_cheat_caught_at_256():
    job = make_matmul_job(256, seed=4)
    rng = np.random.default_rng(0)
    fr = Freivalds(rounds=1)
    for t in range(20):
        claim = execute(job, "low_precision", rng=rng)
        assert not fr.verify(job, [claim], VerifyContext(seed=t)).accepted


# -- exact integer path -------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_products_checked_exactly(backend):
    job = make_matmul_job(50, 70, 30, backend=backend, dtype="int8", seed=0)
    a, b = job.inputs["a"], job.inputs["b"]
    c = product(a, b)
    fr = Freivalds(rounds=2)
    v = fr.check(a, b, c, seed=0)
    assert v.accepted and v.details["mode"] == "field"
    assert v.details["false_accept_bound"] <= (1 / PRIMES[-1]) ** 2
    host = np.asarray(_host(c), dtype=np.int64)
    for delta in (1, -1, PRIMES[0], 2**20):
        bad = host.copy()
        bad[7, 3] += delta
        from vcompute.core.arrays import from_numpy

        assert not fr.check(a, b, from_numpy(bad.astype(np.int32), backend, like=a), seed=1).accepted


def test_int16_products_use_enough_primes_and_wrapping_products_use_the_ring():
    rng = np.random.default_rng(0)
    a = rng.integers(-2**15, 2**15, size=(8, 600)).astype(np.int16)
    b = rng.integers(-2**15, 2**15, size=(600, 5)).astype(np.int16)
    c64 = a.astype(np.int64) @ b.astype(np.int64)
    v = Freivalds().check(a, b, c64, seed=0)
    assert v.accepted and len(v.details["primes"]) >= 2
    c32 = (a.astype(np.int32) @ b.astype(np.int32))  # wraps around int32
    v = Freivalds().check(a, b, c32, seed=0)
    assert v.accepted and v.details["mode"] == "ring"
    bad = c32.copy()
    bad[0, 0] += 1
    assert not Freivalds().check(a, b, bad, seed=0).accepted


def test_integer_bias():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, size=(10, 20)).astype(np.int8)
    b = rng.integers(-128, 128, size=(20, 6)).astype(np.int8)
    bias = rng.integers(-1000, 1000, size=6).astype(np.int32)
    c = a.astype(np.int32) @ b.astype(np.int32) + bias
    assert Freivalds().check(a, b, c, seed=0, bias=bias).accepted
    assert not Freivalds().check(a, b, c, seed=0).accepted


# -- the Verifier protocol -----------------------------------------------------------------
def test_verify_protocol_meters_cost():
    job = make_matmul_job(32, seed=0)
    claim = execute(job, "honest", rng=np.random.default_rng(0))
    ctx = VerifyContext(seed=0)
    v = Freivalds().verify(job, [claim], ctx)
    assert v.accepted and ctx.cost.flops > 0 and ctx.cost.seconds > 0
    assert Freivalds().replicas(job) == 1 and Freivalds().evidence(job).kind == "output"


def test_constructor_rejects_bad_arguments():
    for kw in ({"rounds": 0}, {"rounds": 1.5}, {"safety": -1.0}, {"safety": float("nan")},
               {"accumulation": "float8"}):
        with pytest.raises(ValueError):
            Freivalds(**kw)

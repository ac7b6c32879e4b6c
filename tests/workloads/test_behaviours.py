"""Every matmul behaviour is caught by Freivalds on every backend (and honest ones pass)."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.arrays import dtype_name
from vcompute.verify import Freivalds, VerifyContext
from vcompute.workloads.behaviours import BEHAVIOURS, execute
from vcompute.workloads.matmul import make_matmul_job
from vcompute.workloads.matmul_adversaries import ADVERSARIES, round_mantissa

CHEATS = ["corrupt_entry", "low_precision", "skip_k", "random_output", *ADVERSARIES]
#: behaviours that have no meaning for a dtype (an int output cannot hold NaN; bf16 is already low precision)
NOT_APPLICABLE = {"int8": {"nan_inject", "inf_inject"}, "bfloat16": {"low_precision"}}
#: bf16 outputs round each entry by 2^-8: single-entry cheats must be larger to be detectable
PARAMS = {"bfloat16": {"corrupt_entry": {"magnitude": 2.0}, "cancelling_pair": {"magnitude": 2.0},
                       "rank_one": {"magnitude": 0.2}}}
GRID = [("numpy", "float32"), ("numpy", "int8"), ("torch", "float32"), ("torch", "bfloat16"), ("torch", "int8"),
        ("jax", "float32"), ("jax", "bfloat16"), ("jax", "int8")]


def test_registry_lists_the_suite():
    for name in ["honest", *CHEATS]:
        assert callable(BEHAVIOURS.get(name))


@pytest.mark.parametrize("backend,dtype", GRID)
def test_every_behaviour_caught_on_each_backend(backend, dtype):
    fr = Freivalds(rounds=8)  # cancelling_pair is caught with probability 1 - 2^-8 per trial
    for name in ["honest", *CHEATS]:
        if name in NOT_APPLICABLE.get(dtype, ()):
            continue
        params = PARAMS.get(dtype, {}).get(name, {})
        for t in range(2):
            job = make_matmul_job(48, 40, 32, backend=backend, dtype=dtype, seed=t)
            claim = execute(job, name, rng=np.random.default_rng(t), **params)
            v = fr.verify(job, [claim], VerifyContext(seed=100 + t))
            assert v.accepted == (name == "honest"), (name, t, v.reason)


def test_not_applicable_behaviours_refuse_clearly():
    job = make_matmul_job(8, dtype="int8", seed=0)
    with pytest.raises(ValueError, match="integer"):
        execute(job, "nan_inject", rng=np.random.default_rng(0))


def test_low_precision_variants_really_lower_precision():
    job = make_matmul_job(64, seed=0)
    a, b = job.inputs["a"], job.inputs["b"]
    exact = a.astype(np.float64) @ b.astype(np.float64)
    err = {}
    for name in ("honest", "low_precision", "low_precision_fp8"):
        c = execute(job, name, rng=np.random.default_rng(0)).output
        assert dtype_name(c) == "float32"
        err[name] = float(np.max(np.abs(c - exact)))
    assert err["honest"] < err["low_precision"] < err["low_precision_fp8"]
    assert float(round_mantissa(np.array([1.0 + 2**-4]), 3)[0]) == 1.0  # ties to even


def test_replay_returns_another_jobs_answer():
    job = make_matmul_job(16, seed=0)
    c = execute(job, "replay", rng=np.random.default_rng(0)).output
    assert c.shape == (16, 16) and not np.allclose(c, job.inputs["a"] @ job.inputs["b"])

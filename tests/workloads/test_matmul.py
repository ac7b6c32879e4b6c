"""Matmul jobs and the honest product on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.arrays import backend_of, dtype_name, to_numpy
from vcompute.workloads.matmul import honest_matmul, make_matmul_job, matmul_flops, product


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int16"])
def test_jobs_are_seeded_and_typed(backend, dtype):
    if backend == "jax" and dtype == "float64":
        with pytest.raises(ValueError, match="x64"):
            make_matmul_job(5, backend=backend, dtype=dtype, seed=0)
        return
    j1 = make_matmul_job(5, 7, 3, backend=backend, dtype=dtype, seed=4)
    j2 = make_matmul_job(5, 7, 3, backend=backend, dtype=dtype, seed=4)
    assert j1.id == j2.id and j1.id != make_matmul_job(5, 7, 3, backend=backend, dtype=dtype, seed=5).id
    a = j1.inputs["a"]
    assert backend_of(a) == backend and dtype_name(a) == dtype and tuple(a.shape) == (5, 7)
    c = honest_matmul(j1)
    assert tuple(c.shape) == (5, 3)
    ref = to_numpy(j1.inputs["a"]).astype(np.float64) @ to_numpy(j1.inputs["b"]).astype(np.float64)
    if dtype.startswith("int"):
        assert dtype_name(c) == "int32" and np.array_equal(to_numpy(c), ref.astype(np.int64))
    else:
        np.testing.assert_allclose(to_numpy(c), ref, rtol=1e-4, atol=1e-4)
    assert matmul_flops(j1) == 2 * 5 * 7 * 3


def test_bad_arguments_raise():
    for kw in (dict(m=0), dict(m=3, backend="cupy"), dict(m=3, dtype="int4"),
               dict(m=3, backend="numpy", dtype="bfloat16")):
        with pytest.raises(ValueError):
            make_matmul_job(seed=0, **kw)


def test_product_accumulates_integers_in_int32():
    a = np.full((2, 300), 127, np.int8)
    c = product(a, a.T)
    assert c.dtype == np.int32 and int(c[0, 0]) == 127 * 127 * 300

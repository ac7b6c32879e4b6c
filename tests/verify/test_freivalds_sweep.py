"""Zero false rejects over >= 10^4 honest checks spanning sizes, dtypes, scales and biases.

Besides plain 2-D products in float64/32/16 and bfloat16, the grid has
TF32-style products (float32 inputs rounded to 10 mantissa bits, float32
accumulation, checked with ``accumulation="tf32"``) and batched products
(``(nb, m, K) @ (nb, K, n)``, float32 and bfloat16).

On the fused CPU kernels (numba) the sweep takes about 25 s and runs in the
default suite; the same sweep on the reference kernel (no numba) takes about
11 minutes and is marked slow. Print the statistics with ``-s``:
.venv/bin/python -m pytest tests/verify/test_freivalds_sweep.py -q -s
"""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.arrays import to_numpy
from vcompute.verify import Freivalds
from vcompute.verify.freivalds.fused import available as fused_available
from vcompute.workloads.matmul import make_matmul_job, product
from vcompute.workloads.matmul_adversaries import round_mantissa


JAX_SHAPES = [(1, 1, 1), (3, 200, 5), (64, 64, 64), (17, 333, 9), (128, 256, 32), (300, 20, 300), (256, 384, 256)]


def honest_sweep(checks: int, *, seed: int = 0) -> dict:
    """Run ``checks`` honest verifications over a grid of settings; return counts and the worst ratio."""
    rng = np.random.default_rng(seed)
    settings = [("numpy", "float32"), ("numpy", "float64"), ("numpy", "float16"), ("torch", "float32"),
                ("torch", "bfloat16"), ("torch", "float16"), ("jax", "float32"), ("jax", "bfloat16"),
                ("numpy", "tf32"), ("numpy", "float32-batched"), ("torch", "bfloat16-batched")]
    rejects, worst, worst_setting, done, overflowed = 0, 0.0, None, 0, 0
    per, ratios = {}, []
    while done < checks:
        backend, setting = settings[done % len(settings)]
        dtype = setting.split("-")[0].replace("tf32", "float32")
        if backend == "jax":  # a fixed set of shapes: every new shape compiles new XLA kernels
            m, k, n = JAX_SHAPES[int(rng.integers(len(JAX_SHAPES)))]
        else:
            m, k, n = (int(x) for x in np.exp(rng.uniform(0, np.log(384), size=3)).astype(int) + 1)
        nb = int(rng.integers(2, 5)) if setting.endswith("batched") else 1
        if nb > 1:
            m, k, n = max(1, m // nb), max(1, k // 2), max(1, n // 2)
        mean = float(rng.choice([0.0, 0.0, 0.3, 1.0, -5.0, 100.0]))
        spread = float(rng.choice([0.0, 1.0, 3.0])) if dtype in ("float32", "float64") else 0.0
        scale = float(10.0 ** rng.uniform(-3, 3)) if dtype in ("float32", "float64") else 1.0
        job = make_matmul_job(nb * m, nb * k, n, backend=backend, dtype=dtype, seed=int(rng.integers(2**31)),
                              mean=mean, scale=scale, spread=spread)
        a, b = job.inputs["a"], job.inputs["b"]
        if nb > 1:  # nb independent products (nb, m, K) @ (nb, K, n)
            a = a[:, :k].reshape(nb, m, k)
            b = b.reshape(nb, k, n)
        if setting == "tf32":  # what a TF32 GPU multiplies: inputs rounded to 10 mantissa bits
            c = product(*(round_mantissa(x, 10).astype(np.float32) for x in (a, b)))
        else:
            c = product(a, b)
        if not np.all(np.isfinite(np.asarray(to_numpy(c), dtype=np.float64))):
            overflowed += 1  # outside the model (the honest product overflowed): rejected by design
            continue
        fr = Freivalds(rounds=int(rng.integers(1, 9)), accumulation="tf32" if setting == "tf32" else None)
        v = fr.check(a, b, c, seed=int(rng.integers(2**62)))
        r = v.details.get("max_error_ratio", float("inf"))
        ratios.append(r)
        key = f"{backend}/{setting}"
        per[key] = max(per.get(key, 0.0), r)
        if r > worst:
            worst, worst_setting = r, (backend, setting, nb, m, k, n, mean, scale, spread)
        rejects += not v.accepted
        done += 1
    return {"checks": done, "skipped_overflow": overflowed, "rejects": rejects, "max_error_ratio": worst, "worst": worst_setting, "per": per,
            "ratios": ratios}


@pytest.mark.skipif(not fused_available(), reason="fast only on the fused kernels (pip install numba); "
                    "the slow variant checks the reference kernel")
def test_zero_false_rejects_over_ten_thousand_honest_checks():
    out = honest_sweep(10_000)
    print({k: v for k, v in out.items() if k != "ratios"})
    assert out["rejects"] == 0, out


@pytest.mark.slow
def test_zero_false_rejects_over_ten_thousand_honest_checks_reference_kernel(monkeypatch):
    monkeypatch.setenv("VCOMPUTE_NO_NUMBA", "1")
    out = honest_sweep(10_000)
    print({k: v for k, v in out.items() if k != "ratios"})
    assert out["rejects"] == 0, out

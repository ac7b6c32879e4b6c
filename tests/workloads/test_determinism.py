"""Reproducible modes restore state; the divergence tool measures what it claims."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify.replication.equality import Tolerance
from vcompute.verify.replication.determinism import (LAYERS, forward_numpy, jax_environment, measure_divergence,
                                            model_weights, reproducible_torch)

torch = pytest.importorskip("torch")


def test_reproducible_torch_sets_and_restores():
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    with reproducible_torch(threads=1, deterministic=True, seed=3):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
        a = torch.randn(3)
    with reproducible_torch(threads=1, seed=3):
        assert torch.equal(a, torch.randn(3))
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


def test_jax_environment_flags():
    env = jax_environment(threads=1)
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"] and env["OMP_NUM_THREADS"] == "1"
    assert "--xla_gpu_deterministic_ops" not in jax_environment(threads=None, deterministic=False)["XLA_FLAGS"]


def test_reference_model_shapes():
    acts = forward_numpy(model_weights(batch=4, d_in=8, d_hidden=16, d_out=4))
    assert len(acts) == len(LAYERS) and acts[-1].shape == (4, 4)
    assert np.allclose(acts[-1].sum(axis=1), 1.0)


@pytest.fixture(scope="module")
def report():
    return measure_divergence(backends=("torch", "numpy"), repeats=2, batch=16)


def test_repeats_are_bitwise_and_dtypes_diverge_as_expected(report):
    assert report.repeats_bitwise["torch-f32-t1"] == 1
    rows = {(r["config"], r["layer"]): r for r in report.rows}
    # float32 lands within a few float32 ulps of the float64 truth; bfloat16 does not
    assert max(rows[("torch-f32-t1-run0", lay)]["rel_vs_fp64"] for lay in LAYERS) < 1e-5
    assert min(rows[("torch-bf16-t1", lay)]["rel_vs_fp64"] for lay in LAYERS) > 1e-4
    assert max(rows[("torch-f64-t1", lay)]["rel_vs_fp64"] for lay in LAYERS) < 1e-13
    assert "torch-bf16-t1" in report.to_markdown()


def test_calibrated_tolerance_accepts_honest_float32_and_rejects_bfloat16(report):
    honest = ["torch-f32-t2", "torch-f32-t2-nondet", "numpy-f32", "torch-f32-batch1"]
    tol = Tolerance.calibrated(report.max_rel(configs=honest), safety=8.0)
    assert tol.rtol < 1e-4
    assert report.max_rel(configs=["torch-bf16-t1"]) > tol.rtol


@pytest.mark.slow
def test_jax_repeats_and_one_thread_process_agree_with_calibration():
    pytest.importorskip("jax")
    rep = measure_divergence(repeats=2, batch=16, jax_subprocess=True)
    assert rep.repeats_bitwise["jax-f32"] == 1
    tol = Tolerance.calibrated(rep.max_rel(configs=["numpy-f32", "torch-f32-t2"]), safety=8.0)
    assert rep.max_rel(configs=["jax-f32-run0", "jax-f32-xla1thread"]) <= tol.rtol

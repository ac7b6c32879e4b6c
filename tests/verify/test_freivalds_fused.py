"""The fused one-pass CPU kernels of the float check against the reference float64 kernel."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify import Freivalds
from vcompute.verify.freivalds import fused
from vcompute.verify.freivalds.kernel import fused_residual_and_tolerance, host_view
from vcompute.verify.freivalds.tolerance import precision_of

pytestmark = pytest.mark.skipif(not fused.available(), reason="numba is not installed")


def _encode(x: np.ndarray, dtype: str) -> tuple[np.ndarray, str | None, np.ndarray]:
    """``x`` in ``dtype`` as the kernels take it, the bits name, and its exact float64 value."""
    if dtype == "bfloat16":
        X = (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return X, "bfloat16", (X.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if dtype == "float16":
        X = x.astype(np.float16)
        return X.view(np.uint16), "float16", X.astype(np.float64)
    X = x.astype(dtype)
    return X, None, X.astype(np.float64)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 9])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_row_pass_matches_float64_reference(rng, k, dtype):
    m, n = 37, 301  # odd sizes: vector remainders
    scale = rng.uniform(1e-3, 1e3 if dtype != "float16" else 10.0, size=(m, 1))
    X, bits, X64 = _encode(rng.standard_normal((m, n)) * scale, dtype)
    signs = rng.choice([-1.0, 1.0], size=(k, n))
    Y, SQ, _, _ = fused.row_pass(X, signs.astype(np.float32), sq=True, bits=bits)
    np.testing.assert_allclose(Y, X64 @ signs.T, rtol=1e-13, atol=1e-12 * np.abs(X64).sum())
    np.testing.assert_allclose(SQ, (X64**2).sum(1), rtol=1e-13)
    G = rng.standard_normal((k, n))
    w = rng.uniform(0.0, 2.0, n)
    Y, _, SA, ST = fused.row_pass(X, G, w, absw=True, t=True, bits=bits)
    np.testing.assert_allclose(Y, X64 @ G.T, rtol=1e-12, atol=1e-12 * (np.abs(X64) @ np.abs(G).T).max())
    np.testing.assert_allclose(SA, np.abs(X64) @ w, rtol=1e-13)
    np.testing.assert_allclose(ST, X64**2 @ w**2, rtol=1e-13)


def test_row_pass_batched_with_shared_and_per_batch_g(rng):
    X = rng.standard_normal((3, 2, 9, 17)).astype(np.float32)
    X64 = X.astype(np.float64)
    G = rng.standard_normal((5, 17))
    Y, SQ, _, _ = fused.row_pass(X, G, sq=True)
    np.testing.assert_allclose(Y, X64 @ G.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(SQ, (X64**2).sum(-1), rtol=1e-13)
    Gb = rng.standard_normal((3, 2, 5, 17))
    wb = rng.uniform(0, 1, (3, 2, 17))
    Y, _, SA, _ = fused.row_pass(X, Gb, wb, absw=True)
    np.testing.assert_allclose(Y, X64 @ np.swapaxes(Gb, -1, -2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(SA, np.einsum("...ij,...j->...i", np.abs(X64), wb), rtol=1e-13)
    with pytest.raises(ValueError, match="batch"):
        fused.row_pass(X, rng.standard_normal((4, 5, 17)), sq=True)


def test_row_pass_rejects_bad_arguments():
    X = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="G"):
        fused.row_pass(X, np.ones((1, 5)), sq=True)
    with pytest.raises(ValueError, match="float16"):
        fused.row_pass(X.astype(np.float16), np.ones((1, 4)), sq=True)
    with pytest.raises(ValueError, match="bits"):
        fused.row_pass(X, np.ones((1, 4)), sq=True, bits="bfloat16")
    with pytest.raises(ValueError, match="weights"):
        fused.row_pass(X, np.ones((1, 4)), absw=True)
    with pytest.raises(ValueError, match="either"):
        fused.row_pass(X, np.ones((1, 4)))


def test_nan_and_inf_propagate(rng):
    X = rng.standard_normal((8, 64)).astype(np.float32)
    X[3, 17] = np.nan
    X[5, 2] = np.inf
    Y, SQ, _, _ = fused.row_pass(X, np.ones((2, 64), np.float32), sq=True)
    assert np.isnan(Y[3]).all() and np.isnan(SQ[3]) and not np.isfinite(Y[5]).any() and np.isinf(SQ[5])
    _, _, SA, _ = fused.row_pass(X, np.ones((2, 64)), np.full(64, 1e-300), absw=True)
    assert np.isnan(SA[3]) and np.isinf(SA[5]) and np.isfinite(SA[0])


def _operands(backend, dtype, rng, m=48, K=70, n=33, mean=0.0):
    a = (rng.standard_normal((m, K)) + mean).astype(np.float32)
    b = (rng.standard_normal((K, n)) + mean).astype(np.float32)
    if backend == "numpy":
        a, b = a.astype(dtype), b.astype(dtype)
        return a, b, a @ b
    if backend == "torch":
        import torch

        ta, tb = (torch.from_numpy(x).to(getattr(torch, dtype)) for x in (a, b))
        return ta, tb, ta @ tb
    import jax.numpy as jnp

    ja, jb = (jnp.asarray(x).astype(dtype) for x in (a, b))
    return ja, jb, ja @ jb


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("accumulation", [None, "tf32"])
def test_fused_path_equals_reference_kernel(backend, dtype, accumulation, rng, monkeypatch):
    if backend == "numpy" and dtype == "bfloat16":
        pytest.skip("numpy has no bfloat16")
    if backend == "jax" and dtype == "float64":
        pytest.skip("JAX float64 needs x64 mode (covered in test_freivalds.py)")
    if dtype == "float64" and accumulation == "tf32":
        pytest.skip("TF32 applies to float32 inputs")
    a, b, c = _operands(backend, dtype, rng, mean=0.5)
    R = rng.choice([-1.0, 1.0], size=(c.shape[1], 3))
    prec = precision_of(dtype, accumulation)
    got = fused_residual_and_tolerance(a, b, c, R, None, prec=prec, safety=5.5)
    assert got is not None, "CPU 2-D operands must take the fused path"
    diff, tol, c2, _ = got
    fr = Freivalds(rounds=3, accumulation=accumulation)
    fast = fr.check(a, b, c, seed=7)
    monkeypatch.setenv("VCOMPUTE_NO_NUMBA", "1")
    assert fused_residual_and_tolerance(a, b, c, R, None, prec=prec, safety=5.5) is None
    slow = fr.check(a, b, c, seed=7)
    assert fast.accepted and slow.accepted
    for key in ("tolerance_max", "tolerance_over_rms_median"):
        assert fast.details[key] == pytest.approx(slow.details[key], rel=1e-9), key
    if dtype != "float64":  # a float64 product's residual is the check's own (order-dependent) rounding
        assert fast.details["max_error_ratio"] == pytest.approx(slow.details["max_error_ratio"], rel=1e-6)
    assert np.all(np.isfinite(diff)) and np.all(tol > 0) and np.all(c2 > 0)


def test_fused_path_catches_cheats_and_reports_nonfinite(backend, rng):
    a, b, c = _operands(backend, "float32", rng, m=96, K=128, n=80)
    fr = Freivalds(rounds=2)
    tol = fr.row_tolerances(a, b, c)
    cn = np.array(c, dtype=np.float32, copy=True) if backend != "torch" else c.numpy().copy()
    bad = cn.copy()
    bad[11, 5] += 3.0 * tol[11]
    bad_nan = cn.copy()
    bad_nan[40, 1] = np.nan
    to = {"numpy": lambda x: x, "torch": lambda x: __import__("torch").from_numpy(x),
          "jax": lambda x: __import__("jax.numpy").numpy.asarray(x)}[backend]
    caught = sum(not fr.check(a, b, to(bad), seed=s).accepted for s in range(40))
    assert caught >= 40 * (1 - 0.25) - 6  # >= 1 - 2^-2 per check; generous binomial margin
    v = fr.check(a, b, to(bad_nan), seed=0)
    assert not v.accepted and "NaN" in v.reason


def test_prepared_weights_agree_without_a_float64_copy(rng):
    a, b, c = _operands("numpy", "float32", rng)
    fr = Freivalds(rounds=2)
    pb = fr.prepare(b)
    first = fr.check(a, pb, c, seed=3)
    assert pb._work is None, "the fused path needs no float64 copy of B"
    again = fr.check(a, pb, c, seed=3)
    plain = fr.check(a, b, c, seed=3)
    assert first.accepted and again.details == plain.details == first.details


def test_prepared_weights_changed_in_place_do_not_loosen_the_tolerance(rng):
    # Regression: the fused path cached B's row norms on the PreparedMatrix, so after B shrank in place
    # (new weights loaded into the same buffer) the residual used the new B and the tolerance the old
    # norms, 1000x too large: a cheat at 50x the true tolerance was accepted.
    a, b, _ = _operands("numpy", "float32", rng, m=64, K=128, n=32)
    fr = Freivalds(rounds=2)
    pb = fr.prepare(b)
    assert fr.check(a, pb, a @ b, seed=0).accepted
    b *= np.float32(1e-3)
    c = a @ b
    bad = c.copy()
    bad[5, :] += np.float32(50.0) * np.float32(fr.row_tolerances(a, b, c)[5])
    fresh = fr.check(a, pb, c, seed=1)
    assert fresh.accepted
    assert fresh.details["tolerance_max"] == pytest.approx(fr.check(a, b, c, seed=1).details["tolerance_max"])
    assert not fr.check(a, pb, bad, seed=1).accepted


def test_bias_and_noncontiguous_torch_views(rng):
    torch = pytest.importorskip("torch")
    a = torch.from_numpy(rng.standard_normal((64, 40)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((24, 40)).astype(np.float32))  # (out, in), used as w.T
    bias = torch.from_numpy(rng.standard_normal(24).astype(np.float32))
    y = torch.nn.functional.linear(a, w, bias)
    fr = Freivalds(rounds=2)
    assert fr.check(a, w.T, y, seed=1, bias=bias).accepted
    y2 = y.clone()
    y2[3, 4] += 1.0
    assert not fr.check(a, w.T, y2, seed=1, bias=bias).accepted
    assert not fr.check(a, w.T, y, seed=1, bias=bias + 1e-2).accepted


def test_host_view_is_zero_copy_and_declines_what_it_cannot_read():
    x = np.ones((3, 3), np.float32)
    assert host_view(x)[0] is x and host_view(x)[1] is None
    v, bits = host_view(x.astype(np.float16))
    assert bits == "float16" and v.dtype == np.uint16 and np.all(v == 0x3C00)
    assert host_view(x.astype(np.int32)) is None
    # byte-swapped arrays keep their dtype name: viewing their bytes as native would read other values
    for dt in (">f2", ">f4", ">f8"):
        assert host_view(x.astype(dt)) is None
    torch = pytest.importorskip("torch")
    v, bits = host_view(torch.ones(3, 3, dtype=torch.bfloat16))
    assert bits == "bfloat16" and v.dtype == np.uint16 and np.all(v == 0x3F80)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("VCOMPUTE_NO_NUMBA", "1")
    assert not fused.available()


@pytest.mark.parametrize("shapes", [((2, 3, 20, 30), (30, 11)), ((20, 30), (4, 30, 11)), ((4, 1, 20, 30), (3, 30, 11)),
                                    ((5, 20, 30), (5, 30, 11))])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_batched_and_float16_match_reference_kernel(rng, shapes, dtype, monkeypatch):
    sa, sb = shapes
    a = (rng.standard_normal(sa) + 0.3).astype(dtype)
    b = rng.standard_normal(sb).astype(dtype)
    c = (a.astype(np.float32) @ b.astype(np.float32)).astype(dtype)
    bias = rng.standard_normal(sb[-1]).astype(dtype)
    c_b = (a.astype(np.float32) @ b.astype(np.float32) + bias.astype(np.float32)).astype(dtype)
    R = rng.choice([-1.0, 1.0], size=(sb[-1], 2))
    assert fused_residual_and_tolerance(a, b, c, R, None, prec=precision_of(dtype), safety=5.5) is not None
    fr = Freivalds(rounds=2)
    bad = c.copy()
    bad.reshape(-1, c.shape[-1])[7, 3] += 50.0 * float(np.max(fr.row_tolerances(a, b, c)))
    fast = [fr.check(a, b, x, seed=5, bias=bb) for x, bb in ((c, None), (c_b, bias), (bad, None))]
    monkeypatch.setenv("VCOMPUTE_NO_NUMBA", "1")
    slow = [fr.check(a, b, x, seed=5, bias=bb) for x, bb in ((c, None), (c_b, bias), (bad, None))]
    assert [v.accepted for v in fast] == [v.accepted for v in slow] == [True, True, False]
    for f, s in zip(fast, slow):
        assert f.details["tolerance_max"] == pytest.approx(s.details["tolerance_max"], rel=1e-9)
        assert f.details["max_error_ratio"] == pytest.approx(s.details["max_error_ratio"], rel=1e-6)


_CONCURRENT = """
import threading, numpy as np
from vcompute.verify import Freivalds
rng = np.random.default_rng(0)
fr = Freivalds(rounds=2)
ops = []
for m in (640, 40):  # above and below the one-thread size
    a = rng.standard_normal((m, 600)).astype(np.float32); b = rng.standard_normal((600, 500)).astype(np.float32)
    ops.append((a, b, a @ b))
res = []
def work(s):
    for i in range(6):
        a, b, c = ops[i % 2]
        res.append(fr.check(a, b, c, seed=10 * s + i).accepted)
ts = [threading.Thread(target=work, args=(s,)) for s in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
print("verdicts", len(res), all(res))
"""

_FORKED = """
import multiprocessing as mp, numpy as np
from vcompute.verify import Freivalds
rng = np.random.default_rng(0)
a = rng.standard_normal((640, 600)).astype(np.float32); b = rng.standard_normal((600, 500)).astype(np.float32)
c = a @ b
bad = c.copy(); bad[639, 7] += 1.0
fr = Freivalds(rounds=2)
assert fr.check(a, b, c, seed=0).accepted  # the parent launches the parallel kernels
def child(s):
    return fr.check(a, b, c, seed=s).accepted, fr.check(a, b, bad, seed=s).accepted
if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        print("verdicts", pool.map(child, range(2)))
"""


def _run_script(tmp_path, source, env_extra):
    import os
    import subprocess
    import sys

    script = tmp_path / "probe.py"
    script.write_text(source)
    env = {**os.environ, **env_extra}
    env.pop("VCOMPUTE_NO_NUMBA", None)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_concurrent_checks_from_python_threads(tmp_path, layer):
    # Regression: numba's workqueue layer (what numba uses without OpenMP or TBB) aborts the whole process
    # when two threads launch parallel kernels at once; the kernels set one thread for small matrices,
    # which still launched through the layer.
    p = _run_script(tmp_path, _CONCURRENT, {"NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "verdicts 18 True" in p.stdout


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_checks_in_a_process_forked_after_parallel_kernels_ran(tmp_path):
    # Regression: GNU OpenMP (numba's omp layer) terminates a forked child that launches a parallel
    # kernel after its parent did: a multiprocessing pool (fork) of verifiers died on its first check.
    p = _run_script(tmp_path, _FORKED, {"NUMBA_NUM_THREADS": "2"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "verdicts [(True, False), (True, False)]" in p.stdout


def test_generated_kernel_block_matches_its_generator():
    from vcompute.verify.freivalds import _fused_codegen

    assert _fused_codegen.main(["--check"]) == 0, "run: python -m vcompute.verify.freivalds._fused_codegen"


@pytest.mark.parametrize("k", [5, 10, 15])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_four_row_kernels_match_the_reference_and_the_two_row_ones(rng, k, dtype, monkeypatch):
    """The four-row kernels (k a multiple of 5) on every remainder of m mod 4, batched, serial and parallel."""
    for shape in ((4, 33), (5, 33), (6, 33), (7, 33), (2, 11, 65), (3, 130, 2049)):  # the last: parallel driver
        X = (rng.standard_normal(shape) * rng.uniform(1e-3, 1e3, size=shape[:-1] + (1,))).astype(dtype)
        X64 = X.astype(np.float64)
        n = shape[-1]
        signs = rng.choice([-1.0, 1.0], size=(k, n))
        G = rng.standard_normal(shape[:-2] + (k, n))
        w = rng.uniform(0.0, 2.0, n)
        out = {}
        for quad in (True, False):
            monkeypatch.setitem(fused._STATE, "quad", quad)
            out[quad] = (fused.row_pass(X, signs.astype(np.float32), sq=True),
                         fused.row_pass(X, G, w, absw=True, t=True))
        (Y, SQ, _, _), (Yg, _, SA, ST) = out[True]
        np.testing.assert_allclose(Y, X64 @ signs.T, rtol=1e-13, atol=1e-12 * np.abs(X64).sum())
        np.testing.assert_allclose(SQ, (X64**2).sum(-1), rtol=1e-13)
        np.testing.assert_allclose(Yg, X64 @ np.swapaxes(G, -1, -2), rtol=1e-12,
                                   atol=1e-12 * (np.abs(X64) @ np.abs(np.swapaxes(G, -1, -2))).max())
        np.testing.assert_allclose(SA, np.abs(X64) @ w, rtol=1e-13)
        np.testing.assert_allclose(ST, X64**2 @ w**2, rtol=1e-13)
        for a, b in zip(out[True][0] + out[True][1], out[False][0] + out[False][1]):
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(X64).max() * n)

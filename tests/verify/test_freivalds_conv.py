"""Freivalds for conv2d: completeness and soundness on numpy, torch and JAX."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.arrays import from_numpy, to_numpy
from vcompute.verify import Freivalds
from vcompute.verify.conv import check_conv2d, conv2d

CONFIGS = [dict(stride=1, padding=0, dilation=1), dict(stride=2, padding=1, dilation=1),
           dict(stride=(1, 2), padding=(2, 0), dilation=2)]


def _data(seed=0, mean=0.0):
    rng = np.random.default_rng(seed)
    x = (mean + rng.standard_normal((2, 6, 12, 11))).astype(np.float32)
    w = (mean + rng.standard_normal((10, 6, 3, 3))).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
def test_conv_completeness_and_single_entry_soundness(backend, cfg):
    kw = CONFIGS[cfg]
    x, w, b = _data(cfg, mean=0.5 * cfg)
    X, W, B = (from_numpy(t, backend) for t in (x, w, b))
    y = conv2d(X, W, **kw) + (B[None, :, None, None])
    fr = Freivalds(rounds=2)
    v = fr.check_conv2d(X, W, y, seed=1, bias=B, **kw)
    assert v.accepted, v.reason
    assert v.details["max_error_ratio"] < 0.5
    host = np.array(to_numpy(y))
    rms = float(np.sqrt(np.mean(host.astype(np.float64) ** 2)))
    host[1, 7, 2, 3] += 0.02 * rms
    v = fr.check_conv2d(X, W, from_numpy(host, backend), seed=1, bias=B, **kw)
    assert not v.accepted and "(1, 2, 3)" in v.reason


def test_conv_matches_torch_reference():
    import torch
    import torch.nn.functional as F

    x, w, _ = _data(3)
    for kw in CONFIGS:
        ref = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), **kw).numpy()
        np.testing.assert_allclose(conv2d(x.astype(np.float64), w.astype(np.float64), **kw), ref, rtol=1e-10,
                                   atol=1e-10)


def test_conv_wrong_weights_and_malformed_rejected():
    x, w, _ = _data(0)
    y = conv2d(x, w)
    w2 = w.copy()
    w2[3, 1, 1, 1] *= 1.01
    assert not check_conv2d(x, w2, y, seed=0).accepted
    bad = [y[:, :, :-1], y.astype(np.float16), np.where(np.arange(y.size).reshape(y.shape) == 5, np.nan, y),
           y[0], np.zeros((2, 10, 0, 9), np.float32)]
    for c in bad:
        v = check_conv2d(x, w, c, seed=0)
        assert not v.accepted and v.reason
    assert not check_conv2d(x, w[:, :3], y, seed=0).accepted
    assert not check_conv2d(x, w, y, seed=0, stride=0).accepted


def test_conv_check_cost_fraction():
    x, w, _ = _data(0)
    v = check_conv2d(x, w, conv2d(x, w), seed=0, rounds=2)
    assert v.details["cost_fraction_of_conv"] == pytest.approx(3 / 10)

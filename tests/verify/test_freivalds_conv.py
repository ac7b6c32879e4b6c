"""Freivalds for conv2d: completeness and soundness on numpy, torch and JAX."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.arrays import from_numpy, to_numpy
from vcompute.verify import Freivalds
from vcompute.verify.freivalds.conv import check_conv2d, conv2d

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
    # a kernel that does not fit the input, a bad stride: the caller's operands, raised (never a rejection)
    with pytest.raises(ValueError, match="input channels"):
        check_conv2d(x, w[:, :3], y, seed=0)
    with pytest.raises(ValueError, match="bad conv parameters"):
        check_conv2d(x, w, y, seed=0, stride=0)


def test_conv_check_cost_fraction():
    x, w, _ = _data(0)
    v = check_conv2d(x, w, conv2d(x, w), seed=0, rounds=2)
    assert v.details["cost_fraction_of_conv"] == pytest.approx(3 / 10)


@pytest.mark.parametrize("backend", ["numpy", "torch", pytest.param("jax", marks=pytest.mark.slow)])
def test_grouped_conv_completeness_and_soundness(backend):
    """Grouped (and depthwise) convolutions: each group's outputs are checked against that group's inputs only.

    JAX is slow here (27 s compiling the float64 grouped convs): slow-marked, as is
    ``test_model_control_flow.py::test_grouped_and_asymmetric_jax_convs_checked``.
    """
    rng = np.random.default_rng(7)
    for groups, cin, cout in ((2, 6, 4), (6, 6, 6)):
        x = rng.standard_normal((2, cin, 8, 7)).astype(np.float32)
        w = rng.standard_normal((cout, cin // groups, 3, 2)).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        X, W, B = (from_numpy(t, backend) for t in (x, w, b))
        y = conv2d(X, W, padding=1, stride=(1, 2), groups=groups) + B[None, :, None, None]
        v = check_conv2d(X, W, y, seed=0, bias=B, padding=1, stride=(1, 2), groups=groups)
        assert v.accepted, v.reason
        host = np.array(to_numpy(y))
        host[1, -1, 2, 1] += 0.05 * float(np.sqrt(np.mean(host.astype(np.float64) ** 2)))
        v = check_conv2d(X, W, from_numpy(host, backend), seed=0, bias=B, padding=1, stride=(1, 2), groups=groups)
        assert not v.accepted and f"(1, {groups - 1}, 2, 1)" in v.reason, v.reason
        # grouped weights with groups=1 make no convolution of this input: the caller's mistake, raised
        with pytest.raises(ValueError, match="input channels"):
            check_conv2d(X, W, y, seed=0, bias=B, padding=1, stride=(1, 2), groups=1)


def test_grouped_conv_matches_torch_and_caller_misuse_raises():
    import torch
    import torch.nn.functional as F

    x, _, _ = _data(1)
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
    ref = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w), padding=1, groups=2).numpy()
    np.testing.assert_allclose(conv2d(x.astype(np.float64), w, padding=1, groups=2), ref, rtol=1e-10, atol=1e-10)
    y = conv2d(x, w.astype(np.float32), padding=1, groups=2)
    with pytest.raises(TypeError, match="one backend"):
        check_conv2d(x, torch.from_numpy(w.astype(np.float32)), y, seed=0, padding=1, groups=2)
    with pytest.raises(ValueError, match="groups"):
        check_conv2d(x, w.astype(np.float32), y, seed=0, padding=1, groups=0)
    t = torch.from_numpy(x).requires_grad_()  # values are read, autograd is not in the way
    tw = torch.from_numpy(w.astype(np.float32)).requires_grad_()
    assert check_conv2d(t, tw, F.conv2d(t, tw, padding=1, groups=2), seed=0, padding=1, groups=2).accepted

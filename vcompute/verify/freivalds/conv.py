"""Freivalds for 2-D convolutions: one combined-kernel convolution checks them all.

A convolution ``y = conv(x, W) + b`` is linear in ``W``, so for a random
sign vector ``r`` over the output channels

``sum_o r_o y[:, o] = conv(x, sum_o r_o W[o]) + r . b``.

The right side is a convolution with ``k`` output channels instead of
``C_out``: the check costs ``(k + 2) / C_out`` of the convolution (two more
channels compute the tolerance). Each output position ``(n, h, w)`` is a row
of the im2col matrix product, so the row tolerance of
:mod:`vcompute.verify.freivalds.tolerance` applies unchanged with inner dimension
``K = C_in kh kw``; its weighted sums are convolutions of ``|x|`` with the
per-tap norms of ``W`` over output channels.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, dtype_name, from_numpy, namespace, plain, synchronize, to_numpy
from vcompute.core.types import Cost, Verdict
from vcompute.verify.base import Misuse
from vcompute.verify.screening import exact_array_type
from vcompute.verify.freivalds.tolerance import FLOAT_DTYPES, false_reject_bound, precision_of, tolerance_from_sums

__all__ = ["check_conv2d", "conv2d"]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv2d(x: Any, w: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Any:
    """NCHW/OIHW cross-correlation (as ``torch.nn.functional.conv2d``) on numpy, torch or JAX.

    Args:
        x: ``(N, C, H, W)`` input.
        w: ``(O, C / groups, kh, kw)`` kernel.
        stride, padding, dilation: ints or pairs (zero padding).
        groups: input and output channels split into this many independent groups.

    Returns:
        ``(N, O, H', W')`` output in the inputs' dtype.

    Example:
        >>> conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))).shape
        (1, 1, 2, 2)
    """
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    b = backend_of(x)
    if b == "torch":
        import torch.nn.functional as F

        return F.conv2d(x, w, stride=s, padding=p, dilation=d, groups=groups)
    if b == "jax":
        from jax import lax

        return lax.conv_general_dilated(x, w, window_strides=s, padding=[(p[0], p[0]), (p[1], p[1])],
                                        rhs_dilation=d, dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                        feature_group_count=groups, precision=lax.Precision.HIGHEST)
    kh, kw = w.shape[2], w.shape[3]
    xp_ = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    win = np.lib.stride_tricks.sliding_window_view(xp_, (d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1), axis=(2, 3))
    win = win[:, :, ::s[0], ::s[1], ::d[0], ::d[1]]
    n, c = win.shape[:2]
    win = win.reshape((n, groups, c // groups) + win.shape[2:])
    wg = w.reshape((groups, w.shape[0] // groups) + w.shape[1:])
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return out.reshape((n, w.shape[0]) + out.shape[3:])


def _out_hw(h: int, k: int, s: int, p: int, d: int) -> int:
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


def _caller_problem(x: Any, w: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: int) -> str | None:
    """What is wrong with the caller's own input, kernel, bias or parameters (no output could answer them)."""
    for nm, t in (("input", x), ("weight", w)):
        if len(t.shape) != 4:
            return f"conv2d {nm} must be 4-D (NCHW / OIHW), got shape {tuple(t.shape)}"
        if any(v == 0 for v in t.shape):
            return f"conv2d {nm} is empty (shape {tuple(t.shape)})"
    dx, dw = dtype_name(x), dtype_name(w)
    if dx not in FLOAT_DTYPES or dw != dx:
        return f"conv2d check needs float inputs of one dtype, got input {dx} and weight {dw}"
    C, O, C2 = x.shape[1], w.shape[0], w.shape[1]
    if C2 * groups != C or O % groups:
        return (f"a weight of shape {tuple(w.shape)} with groups={groups} expects {C2 * groups} input channels "
                f"and output channels divisible by {groups}; the input has {C}")
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    if min(s) < 1 or min(d) < 1 or min(p) < 0:
        return f"bad conv parameters stride={s} padding={p} dilation={d}"
    if bias is not None and tuple(bias.shape) != (O,):
        return f"bias has shape {tuple(bias.shape)}, expected {(O,)}"
    hw = (_out_hw(x.shape[2], w.shape[2], s[0], p[0], d[0]), _out_hw(x.shape[3], w.shape[3], s[1], p[1], d[1]))
    if min(hw) < 1:
        return f"a {tuple(w.shape[2:])} kernel (dilation {d}, padding {p}) does not fit the {tuple(x.shape[2:])} input"
    return None


def _validate(x: Any, w: Any, y: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
              groups: int) -> str | None:
    if exact_array_type(y) is None:  # the claim runs none of its own code (a subclass's astype could lie)
        return (f"the claimed output is a {type(y).__module__}.{type(y).__name__}, not an exact numpy/torch/JAX "
                "array (a subclass of an array type computes as it likes; send a plain array)")
    try:
        backends = {backend_of(t) for t in (x, w, y) + (() if bias is None else (bias,))}
    except TypeError as e:
        return f"not an array: {e}"
    if len(backends) > 1:
        return f"arrays from different backends: {sorted(backends)}"
    if len(y.shape) != 4:
        return f"conv2d output must be 4-D (NCHW / OIHW), got shape {tuple(y.shape)}"
    if any(v == 0 for v in y.shape):
        return f"conv2d output is empty (shape {tuple(y.shape)})"
    dx, dy = dtype_name(x), dtype_name(y)
    if dy != dx and not (dx in ("float16", "bfloat16") and dy == "float32"):
        return f"the claimed output has dtype {dy}; a {dx} convolution must be {dx}"
    N, C, H, W_ = x.shape
    O, C2, kh, kw = w.shape
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    want = (N, O, _out_hw(H, kh, s[0], p[0], d[0]), _out_hw(W_, kw, s[1], p[1], d[1]))
    if tuple(y.shape) != want:
        return f"conv output has shape {tuple(y.shape)}, expected {want}"
    xp = namespace(x)
    for nm, t in (("input", x), ("weight", w), ("claimed output", y), ("bias", bias)):
        if t is not None and not bool(xp.all(xp.isfinite(t))):
            return f"the {nm} contains NaN or Inf"
    return None


def check_conv2d(x: Any, w: Any, y: Any, *, seed: int | np.random.Generator, bias: Any = None,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1, rounds: int = 2,
                 safety: float = 5.5, accumulation: str | None = None) -> Verdict:
    """Verify ``y == conv2d(x, w) + bias`` up to the honest rounding error.

    Other padding modes (``'same'``, reflect, replicate, circular, asymmetric)
    are checked by padding ``x`` first and passing ``padding=0``: that is how
    ``torch.nn.Conv2d`` computes them too.

    Args:
        x: ``(N, C, H, W)`` input; w: ``(O, C / groups, kh, kw)`` kernel; y: claimed ``(N, O, H', W')``.
        seed: seed or generator, drawn after ``y`` is fixed.
        bias: optional ``(O,)`` bias.
        stride, padding, dilation, groups: as ``torch.nn.functional.conv2d`` (symmetric zero padding).
        rounds, safety, accumulation: as :class:`~vcompute.verify.Freivalds`.

    Returns:
        A verdict; a malformed claim is rejected with a reason.

    Raises:
        TypeError: ``x``, ``w`` or ``bias`` (the caller's) are not arrays of one backend.
        ValueError: ``groups`` is not a positive integer, or the caller's ``x``, ``w``, ``bias`` and
            parameters make no convolution (not 4-D, empty, mixed dtypes, channels that do not match the
            groups, a bad stride/padding/dilation, a bias not ``(O,)``, a kernel larger than the input):
            a :class:`~vcompute.verify.base.Misuse`, never a rejection of the provider.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
        >>> check_conv2d(x, w, conv2d(x, w), seed=1).accepted
        True
    """
    t0 = time.perf_counter()
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or int(groups) < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    groups = int(groups)
    x, w, y, bias = (plain(t) for t in (x, w, y, bias))
    try:
        own = {backend_of(t) for t in (x, w) + (() if bias is None else (bias,))}
    except TypeError as e:
        raise TypeError(f"x, w and bias must be numpy, torch or JAX arrays: {e}") from None
    if len(own) > 1:
        raise TypeError(f"x, w and bias must come from one backend, got {sorted(own)}; convert them first")
    problem = _caller_problem(x, w, bias, stride, padding, dilation, groups)
    if problem is not None:  # the caller's operands: a rejection would slash every provider for them
        raise Misuse(problem)
    problem = _validate(x, w, y, bias, stride, padding, dilation, groups)
    if problem is not None:
        return Verdict.reject(problem, scheme="freivalds-conv2d", cost=Cost(seconds=time.perf_counter() - t0))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # No exception is caught here: the claim was validated above (shape, dtype, backend, finite), so an
    # error from here on is the verifier's or the caller's, never the provider's evidence.
    ok, reason, details, flops = _check(x, w, y, bias, rng, stride, padding, dilation, groups, rounds, safety,
                                        accumulation)
    cost = Cost(flops=flops, seconds=time.perf_counter() - t0)
    return (Verdict.accept if ok else Verdict.reject)(reason, scheme="freivalds-conv2d", cost=cost, details=details)


def _check(x, w, y, bias, rng, stride, padding, dilation, groups, rounds, safety, accumulation):
    from vcompute.verify.freivalds.scheme import _high_precision

    backend = backend_of(x)
    O, C, kh, kw = w.shape          # C = input channels per group
    G, Og = groups, O // groups
    K = C * kh * kw
    prec = precision_of(dtype_name(y), accumulation)
    with _high_precision(backend):
        xp = namespace(x)
        f64 = xp.float64
        X, Wt, Y = xp.astype(x, f64), xp.astype(w, f64), xp.astype(y, f64)
        # one block of signs per group: group g's outputs only see group g's inputs
        R = from_numpy(rng.integers(0, 2, size=(G, Og, rounds)).astype(np.float64) * 2.0 - 1.0, backend, like=x)
        Wflat = xp.reshape(Wt, (G, Og, K))
        WR = xp.matrix_transpose(R) @ Wflat                                  # (G, k, K)
        stats = xp.sqrt(xp.sum(Wflat * Wflat, axis=1))                       # (G, K)
        kern = xp.reshape(WR, (G * rounds, C, kh, kw))
        conv = lambda t, k: conv2d(t, k, stride=stride, padding=padding, dilation=dilation, groups=G)  # noqa: E731
        N = x.shape[0]
        lhs_all = conv(X, kern)
        Ho, Wo = lhs_all.shape[2], lhs_all.shape[3]
        lhs = xp.moveaxis(xp.reshape(lhs_all, (N, G, rounds, Ho, Wo)), 2, -1)   # (N, G, H', W', k)
        st = conv(xp.abs(X), xp.reshape(stats, (G, C, kh, kw)))                # (N, G, H', W')
        Yg = xp.reshape(Y, (N, G, Og, Ho, Wo))
        rhs = xp.moveaxis(Yg, 2, -1) @ R[None, :, None]                        # (N, G, H', W', k)
        if bias is not None:
            bR = xp.reshape(xp.astype(bias, f64), (G, 1, Og)) @ R               # (G, 1, k)
            lhs = lhs + bR[None, :, None]
        diff = xp.max(xp.abs(lhs - rhs), axis=-1)                              # rows: (n, g, h, w)
        C2 = xp.sum(Yg * Yg, axis=2)
        T = conv(X * X, xp.reshape(stats ** 2, (G, C, kh, kw))) if prec.u_in > 0 else None
        tol = tolerance_from_sums(xp, S=st, C2=C2, T=T, K=K, n=Og, prec=prec,
                                  safety=safety, bias=bias is not None)
        synchronize(tol)
        d_np = np.asarray(to_numpy(diff), dtype=np.float64)
        t_np = np.asarray(to_numpy(tol), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(t_np > 0, d_np / np.where(t_np > 0, t_np, 1.0), np.where(d_np > 0, np.inf, 0.0))
    flops = 2.0 * N * Ho * Wo * K * G * (rounds + 1) + 2.0 * N * Ho * Wo * O * rounds
    worst4 = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    failed = int(np.sum(ratio > 1.0))
    details = {"max_error_ratio": float(ratio[worst4]), "positions_failed": failed, "rounds": rounds,
               "safety": safety, "false_reject_bound": false_reject_bound(safety, ratio.size * rounds),
               "false_accept_bound": 0.5**rounds, "cost_fraction_of_conv": (rounds + 1) / Og}
    worst = (worst4[0], worst4[2], worst4[3]) if G == 1 else worst4
    if failed:
        where = "(n, h, w)" if G == 1 else "(n, group, h, w)"
        return False, (f"output position {where} = {tuple(int(i) for i in worst)}: the channel combination "
                       f"is {ratio[worst4]:.3g}x the honest rounding tolerance ({failed} positions fail)"), \
            details, flops
    return True, (f"all {ratio.size} output positions within tolerance over {rounds} random channel "
                  f"combinations (largest {ratio[worst4]:.3g}x)"), details, flops

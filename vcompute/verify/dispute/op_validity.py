"""Which operators of an operator-level trace are valid, and the honest challenger's adoption of them.

:func:`invalid_elements` decides, element by element, what ``OperatorGame.vy``
would decide (a float64 screen for the clear cases, the exact mirror of
:mod:`~vcompute.verify.dispute.op_step` and ``FloatStep.vy`` near each bound);
:func:`adopt_ops` builds the honest challenger's trace from a claimant's
delivered states, so that wherever the two first differ the claimant's
operator is invalid (``proofs/dispute.md`` C9).

Example:
    >>> from vcompute.verify.dispute.op_trace import MLPNet, OpTrace
    >>> net = MLPNet.random(d=16, hidden=32, n_layers=1, rows=2, seed=0)
    >>> t = OpTrace.execute(net, net.random_input(seed=1))
    >>> invalid_elements(net, 3, t.state(2), t.state(3)), adopt_ops(t).leaves == t.leaves
    ([], True)
"""

from __future__ import annotations

import numpy as np

from vcompute.verify.dispute.float_trace import rows_tree, within
from vcompute.verify.dispute.op_block import BLOCK_KINDS, block_invalid, geometry_ok
from vcompute.verify.dispute.op_step import (add_within, gelu_f64, gelu_within, ln_f64, ln_within, relu_within,
                                             scaled_bits, softmax_f64, softmax_within)
from vcompute.verify.dispute.op_trace import (AV, BIAS, GELU, LIN, LN, QK, RELU, RESID, SOFTMAX, MLPNet, OpTrace,
                                              State, apply_op, heads_of, state_leaf)

__all__ = ["op_valid", "operator_valid", "invalid_elements", "adopt_ops", "trace_decidable"]

_MAX_T = 64


def op_valid(kind: int, k: int, m: int, bits: int, param: int, rows: int, dx: int, da: int, *,
             max_dim: int = 256) -> bool:
    """Whether an operator leaf on an input state of ``rows`` rows (``x`` of ``dx``, ``a`` of ``da`` lanes)
    is well formed, exactly as ``OperatorStep.op_valid`` decides: every element of its output can then
    be decided, and ``OperatorGame.vy`` settles a dispute at any other operator for the challenger
    (the claimant committed to the malformed job).

    ``param`` is the leaf's parameter word as an int (a softmax's ``span << 32 | block << 1 | causal``,
    an attention's ``heads << 32 | tokens``; for other kinds it is a root and unread); ``max_dim`` the
    build's ``MAX_DIM`` (256: the checked-in one).
    """
    if not (1 <= kind <= 16 and 1 <= rows <= max_dim and da == k):
        return False
    if any(v < 8 or v > max_dim or v % 8 for v in (k, m, dx)):
        return False
    if kind not in (LIN, QK, AV) and k != m:
        return False
    if kind in (RESID, LN) and dx != m:
        return False
    if kind in (QK, AV):
        h, t = param >> 32, param & 0xFFFFFFFF
        if not (1 <= h <= max_dim and t == rows and t % 8 == 0 and t <= _MAX_T):
            return False
        d = k // 3 if kind == QK else m
        if (kind == QK and (k != 3 * d or m != h * t + d)) or (kind == AV and k != h * t + d):
            return False
        if d % (8 * h) or (kind == QK and d // h not in (16, 64, 256)):
            return False
    if kind in (LIN, QK, AV):
        return 10 <= bits <= 24
    if kind in BLOCK_KINDS:
        return geometry_ok(kind, k, bits, rows)
    if kind == RELU:
        return True
    if not 8 <= bits <= 30:
        return False
    if kind == SOFTMAX:
        span, blk = param >> 32, (param >> 1) & 0x7FFFFFFF
        return 1 <= span <= k and blk >= 1 and span % blk == 0
    return True


def operator_valid(op, s_in: State, *, max_dim: int = 256) -> bool:
    """:func:`op_valid` of operator ``op`` on input state ``s_in`` (as the contract reads them from the leaf and state)."""
    x, a = s_in
    return op_valid(int(op.kind), int(op.k), int(op.m), int(op.bits), int.from_bytes(op.param_root(), "big"),
                    int(x.shape[0]), int(x.shape[1]), int(a.shape[1]), max_dim=max_dim)


#: Above this magnitude a float32 intermediate may overflow (a square, a variance) though the states stay finite.
#: Below it none does: a LayerNorm's variance sums at most 4,096 (the widest build) squares of deviations
#: below 2^49, under 2^110, and a dot product's terms stay under 2^96 each. (It was 2^60, where a 256-wide
#: row of +-2^60 overflows the float32 variance, 256 * 2^120 = 2^128, and the honest output left the
#: contract's rule: finding F2 of the session-8 review, proofs/dispute.md.)
_EXTREME = 2.0**48


def trace_decidable(trace: OpTrace) -> bool:
    """Whether an honest claimant may commit ``trace``: every operator well formed on its input and, where a
    state holds an inf, a NaN or a value beyond ``2^48`` (an intermediate of float32 arithmetic may have
    overflowed), every element of every operator within what the contract accepts (the bounds and the
    non-finite rules of :mod:`~vcompute.verify.dispute.op_step`). Other traces of well-formed operators are
    within their bounds by the rounding model (``proofs/dispute.md`` C9), so they are not re-checked.
    """
    net = trace.net
    with np.errstate(invalid="ignore"):
        tame = all(np.isfinite(t).all() and not (np.abs(t) > _EXTREME).any()
                   for p in range(net.n_ops + 1) for t in trace.state(p))
    for p in range(1, net.n_ops + 1):
        if not operator_valid(net.op(p), trace.state(p - 1), max_dim=net.max_dim):
            return False
        if not tame and invalid_elements(net, p, trace.state(p - 1), trace.state(p)):
            return False
    return True


def invalid_elements(net: MLPNet, p: int, s_in: State, s_out: State) -> list[tuple[int, int]]:
    """The elements of operator ``p``'s written tensor in ``s_out`` outside its bound, given input ``s_in``.

    A float64 screen settles the clear cases (its error is far below every bound's
    margin); elements within 0.1% of their bound are decided exactly, as the
    contract decides. An output the contract could never accept as this operator's
    (another shape or dtype, or the unwritten tensor changed) is ``[(0, 0)]``.
    """
    with np.errstate(all="ignore"):  # non-finite inputs: the float64 screen's NaNs are sent to the exact mirror
        return _invalid_elements(net, p, s_in, s_out)


def _invalid_elements(net: MLPNet, p: int, s_in: State, s_out: State) -> list[tuple[int, int]]:
    op = net.op(p)
    x, a = s_in
    xo, ao = s_out
    rows = x.shape[0]
    # exact ndarrays only: a delivered subclass could lie in its arithmetic when the challenger computes on from it
    ok_types = all(type(t) is np.ndarray and t.dtype == np.float32 and t.ndim == 2 for t in (xo, ao))
    if not ok_types or ao.shape != (rows, op.m) or xo.shape != x.shape:
        return [(0, 0)]
    if op.kind == RESID:
        if rows_tree(xo).root != rows_tree(ao).root:
            return [(0, 0)]
    elif rows_tree(xo).root != rows_tree(x).root:
        return [(0, 0)]
    if not operator_valid(op, s_in, max_dim=net.max_dim):
        return [(0, 0)]  # the contract settles any element of a malformed operator for the challenger
    if op.kind in BLOCK_KINDS:
        return block_invalid(op, a, ao)
    z = ao.astype(np.float64)
    a64 = a.astype(np.float64)
    bits = lambda t, i, j: int(t[i:i + 1, j].view("<u4")[0])  # noqa: E731
    if op.kind == RELU:
        # exact: the contract's own rule, element by element (no rounding to screen)
        return [(int(i), int(j)) for i in range(rows) for j in range(op.m)
                if not relu_within(bits(a, i, j), bits(ao, i, j))]
    copied: list[tuple[int, int]] = []
    exact = np.zeros(ao.shape, bool)  # elements decided bit for bit, outside the screen
    if op.kind in (QK, AV):
        h, t, d, dh, sh = heads_of(op)
        ref, base = np.zeros(ao.shape), np.zeros(ao.shape)
        if rows != t or h * t + d != (op.m if op.kind == QK else op.k):
            return [(0, 0)]  # the contract refuses every opening of it
        if op.kind == QK:
            masked = np.triu(np.ones((t, t), bool), 1)
            for hd in range(h):
                q, k = a64[:, hd * dh:(hd + 1) * dh], a64[:, d + hd * dh:d + (hd + 1) * dh]
                ref[:, hd * t:(hd + 1) * t] = (q @ k.T) * 2.0 ** -sh
                base[:, hd * t:(hd + 1) * t] = (np.abs(q) @ np.abs(k.T)) * 2.0 ** -sh
                exact[:, hd * t:(hd + 1) * t] = masked
            exact[:, h * t:] = True
            want = np.concatenate([np.where(np.tile(masked, (1, h)), np.float32(-np.inf), np.float32(0)),
                                   a[:, 2 * d:]], axis=1).astype(np.float32)
            copied = [(int(i), int(j)) for i, j in zip(*np.nonzero(exact & (ao.view("<u4") != want.view("<u4"))))]
            n = dh + 2
        else:
            for hd in range(h):
                pp, vv = a64[:, hd * t:(hd + 1) * t], a64[:, h * t + hd * dh:h * t + (hd + 1) * dh]
                ref[:, hd * dh:(hd + 1) * dh], base[:, hd * dh:(hd + 1) * dh] = pp @ vv, np.abs(pp) @ np.abs(vv)
            n = t + 2
        u = 2.0 ** -op.bits
        bound = n * u / (1 - n * u) * base
        scale = base
        ref = np.where(exact, z, ref)  # decided above, never by the screen
    elif op.kind == SOFTMAX:
        blk, causal, span = (int(v) for v in op.param)
        # the columns from span on are copied bit for bit; the softmax is screened on the first span
        copied = [(int(i), int(j) + span) for i, j in zip(*np.nonzero(ao[:, span:].view("<u4") != a[:, span:].view("<u4")))]
        z, a64 = z[:, :span], a64[:, :span]
        ref, base = softmax_f64(a[:, :span], blk, bool(causal))
        bound = 2.0 ** -op.bits * base + 2.0 ** -140
        scale = base
    elif op.kind == LN:
        ref, base = ln_f64(x, op.param[0], op.param[1])
        bound = 2.0 ** -op.bits * base + 2.0 ** -140
        scale = base
    elif op.kind == LIN:
        w = op.param.astype(np.float64)
        ref, base = a64 @ w, np.abs(a64) @ np.abs(w)
        n, u = op.k + 2, 2.0 ** -op.bits
        bound = n * u / (1 - n * u) * base
        scale = base
    elif op.kind == GELU:
        ref = np.vectorize(gelu_f64, otypes=[np.float64])(a64)
        bound = 2.0 ** -op.bits * (np.abs(a64) + np.abs(ref)) + 2.0 ** -140
        scale = np.abs(a64)
    else:
        other = op.param.astype(np.float64)[None, :] if op.kind == BIAS else x.astype(np.float64)
        ref = a64 + other
        bound = 2.0 ** -op.bits * np.abs(ref) + 2.0 ** -140
        scale = np.abs(a64) + np.abs(other)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(z - ref)
    err = np.where(np.isfinite(z), err, np.inf)
    # a non-finite value, input or bound, or one near float32's overflow: the exact mirror decides
    with np.errstate(invalid="ignore", over="ignore"):
        odd = ~np.isfinite(z) | ~np.isfinite(ref) | ~np.isfinite(bound) | (np.abs(ref) + bound >= 1e38)
    if op.kind in (QK, AV):
        err = np.where(exact, 0.0, err)
    # the contract's frame keeps 200 bits below its largest term (slack of a few units there): where
    # that is not far below the bound (a + b = 0 from large operands), the exact mirror decides
    with np.errstate(invalid="ignore", over="ignore"):
        scale = scale + np.abs(ref) + np.where(np.isfinite(z), np.abs(z), 0)
    with np.errstate(invalid="ignore"):
        unsure = (np.abs(err - bound) <= 1e-3 * bound + 1e-40 + 2.0 ** -150 * scale) | odd
    if op.kind in (QK, AV):
        unsure &= ~exact
    if op.kind == SOFTMAX:
        unsure |= base == 0  # a masked element (or an underflowed one): zero exactly, decided by the mirror
    if op.kind == LN:
        # a row whose float32 variance may overflow (ln_may_overflow, vectorised: top = max biased exponent + 24)
        # also admits beta or NaN, which the float64 screen would call wrong: the exact mirror decides it
        top = np.maximum((x.view("<u4") >> 23) & 0xFF, 1).max(axis=1).astype(np.int64) + 24
        unsure |= (2 * top + x.shape[1].bit_length() >= 425)[:, None]
    bad = [(int(i), int(j)) for i, j in zip(*np.nonzero((err > bound) & ~unsure))] + copied
    for i, j in zip(*np.nonzero(unsure)):
        i, j = int(i), int(j)
        if op.kind == LIN:
            good = within(a[i], op.param[:, j], op.bits, [bits(ao, i, j)])[0]
        elif op.kind == QK:
            hd, jj = j // t, j % t
            good = within(a[i, hd * dh:(hd + 1) * dh], a[jj, d + hd * dh:d + (hd + 1) * dh], op.bits,
                          [scaled_bits(bits(ao, i, j), sh)])[0]
        elif op.kind == AV:
            hd = j // dh
            good = within(a[i, hd * t:(hd + 1) * t], a[:, h * t + j], op.bits, [bits(ao, i, j)])[0]
        elif op.kind == GELU:
            good = gelu_within(bits(a, i, j), bits(ao, i, j), op.bits)
        elif op.kind == BIAS:
            good = add_within(bits(a, i, j), int(op.param[j:j + 1].view("<u4")[0]), bits(ao, i, j), op.bits)
        elif op.kind == SOFTMAX:
            good = softmax_within(a[i, :span].view("<u4").tolist(), blk, bool(causal), i, j, bits(ao, i, j), op.bits)
        elif op.kind == LN:
            g, b = op.param
            good = ln_within(x[i].view("<u4").tolist(), bits(g[None], 0, j), bits(b[None], 0, j), j,
                             bits(ao, i, j), op.bits)
        else:
            good = add_within(bits(x, i, j), bits(a, i, j), bits(ao, i, j), op.bits)
        if not good:
            bad.append((i, j))
    return sorted(bad)


def _plain(c: object) -> State | None:
    """A delivered state as two plain float32 ndarrays holding its bits (``None``: not a state at all).

    Delivered states are data, not objects to compute with: an ndarray subclass could lie
    in its arithmetic when the challenger computes on from it, so only its bits are kept
    (and still checked against the committed leaf).
    """
    if type(c) is not tuple or len(c) != 2:
        return None
    out = []
    for t in c:
        if not isinstance(t, np.ndarray) or t.dtype != np.float32 or t.ndim != 2:
            return None
        out.append(np.array(np.ndarray.view(t, np.ndarray), dtype=np.float32, copy=True))
    return out[0], out[1]


def _other_than(s: State, leaf: bytes) -> State:
    """``s`` itself, or with one element of ``a`` changed if that is the state ``leaf`` commits to."""
    if state_leaf(s) != leaf:
        return s
    a = s[1].copy()
    a.view("<u4")[0, 0] ^= 1
    return s[0], a


def adopt_ops(claimed: OpTrace, *, machine: str = "numpy") -> OpTrace:
    """The honest challenger's trace against ``claimed``: its states kept while each operator is valid.

    As :func:`~vcompute.verify.dispute.float_trace.adopt`, per operator: where the
    two first differ after an agreed state, the claimant's operator there has an
    element out of bound or changed what it must not (``proofs/dispute.md`` C9).
    """
    net, states, same = claimed.net, [], True
    leaves = claimed.leaves
    for p in range(1, net.n_ops + 1):
        s_in = claimed.x0, claimed.x0
        if p > 1:
            s_in = states[-1]
        c = _plain(claimed.states[p - 1])
        if same and c is not None and not invalid_elements(net, p, s_in, c) and state_leaf(c) == leaves[p]:
            states.append(c)
        else:
            mine = apply_op(net.op(p), s_in, machine=machine) if operator_valid(net.op(p), s_in,
                                                                                max_dim=net.max_dim) else \
                _other_than(s_in, leaves[p])  # a malformed operator: any state but the claimant's (it loses there)
            states.append(mine)
            same = state_leaf(mine) == leaves[p]
    return OpTrace(net, claimed.x0, states)

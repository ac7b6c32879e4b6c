"""Block operators: one operator writes one block of a wide activation, every other element copied bit for bit.

A training step (:mod:`~vcompute.verify.dispute.train_op`) keeps many
tensors live at once (the checkpoint, its momentum, the forward activations,
the gradients), so its state's activation ``a`` is a *canvas*: ``R`` rows by
``W`` lanes, each tensor a block of it. A block operator writes the block
rows ``r0 .. r0 + rn - 1`` by lanes ``o .. o + m - 1`` and leaves every
other element of ``a`` (and all of ``x``) unchanged, bit for bit. For an
element ``(i, j)`` of the block, ``ii = i - r0`` and ``jj = j - o``:

=========  ==========================================================  ====================================
kind       element ``(i, j)``                                          decided by
=========  ==========================================================  ====================================
``mms``    ``a[i, al:al+n] . a[rho + jj, be:be+n]`` (two state rows)   ``FloatStep.within`` (``u_bits``)
``mmp``    ``a[i, al:al+n] . P[:, jj]`` (``P``: ``n x m``, the job's)  ``FloatStep.within`` (``u_bits``)
``tr``     ``a[rho + jj, al + ii]`` (a transpose)                      exact
``axpy``   ``c1 a[i, al+jj] + c2 a[rho + ii, be + jj]``                ``2^-t (|c1 L| + |c2 R|)``
``axpyp``  ``c1 P[ii, jj] + c2 a[i, al + jj]`` (``P``: ``rn x m``)     ``2^-t (|c1 L| + |c2 R|)``
``reluw``  ``max(0, a[i, al + jj])``                                   exact (either zero)
``relug``  ``a[i, al + jj]`` if ``a[i, be + jj] > 0``, else zero       exact (either zero)
=========  ==========================================================  ====================================

``c1``, ``c2`` are float32 constants; ``axpy`` is every elementwise update of
SGD (``g + wd p``, ``mu v + g``, ``p - lr v``: at most two roundings of
float32, ``u |c1 L| + (2u + u^2) |c2 R|``, inside ``t = 22``'s ``4u``; an
FMA is one rounding), ``axpyp`` the cross-entropy's gradient ``gO - s
p`` from the job's scaled one-hot ``gO``, ``relug`` ReLU's backward
(torch's ``threshold_backward``). The geometry and the constants are packed
into the operator leaf's ``bits`` word (:func:`pack`), so the job's
``ops_root`` commits to them; the parameter ``P`` is committed as a Merkle
root over its columns (``mmp``) or rows (``axpyp``). ``OperatorStep.block_ok``
decides one element on chain; :func:`element_ok` is its exact Python mirror.

Example:
    >>> import numpy as np
    >>> op = block_op(TR, width=16, rows=8, r0=0, rn=8, o=8, m=8, al=0, rho=0)
    >>> a = np.arange(128, dtype=np.float32).reshape(8, 16)
    >>> out = apply_block(op, a)
    >>> bool((out[:, 8:] == a[:, :8].T).all()), bool((out[:, :8] == a[:, :8]).all())
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcompute.verify.dispute.float_trace import pack_float32, rows_tree, within
from vcompute.verify.dispute.op_step import axpby_within, relu_grad_within, relu_within

__all__ = ["MMS", "MMP", "TR", "AXPY", "AXPYP", "RELUW", "RELUG", "BLOCK_KINDS", "BLOCK_NAMES", "Geometry",
           "pack", "unpack", "geometry_ok", "block_op", "apply_block", "block_invalid", "element_ok", "element_bound", "edge_value",
           "opening", "f32_bits"]

#: ``a[block] := a[rows, al:al+n] a[rho:rho+m, be:be+n]^T``.
MMS = 10
#: ``a[block] := a[rows, al:al+n] P``.
MMP = 11
#: ``a[block] := a[rho:rho+m, al:al+rn]^T``.
TR = 12
#: ``a[block] := c1 a[rows, al:al+m] + c2 a[rho:rho+rn, be:be+m]``.
AXPY = 13
#: ``a[block] := c1 P + c2 a[rows, al:al+m]``.
AXPYP = 14
#: ``a[block] := max(0, a[rows, al:al+m])``.
RELUW = 15
#: ``a[block] := a[rows, al:al+m] [a[rows, be:be+m] > 0]``.
RELUG = 16
#: The block kinds, by number.
BLOCK_NAMES = {MMS: "mms", MMP: "mmp", TR: "tr", AXPY: "axpy", AXPYP: "axpyp", RELUW: "reluw", RELUG: "relug"}
#: The block kind numbers, in order.
BLOCK_KINDS = tuple(BLOCK_NAMES)
_FIELDS = ("r0", "rn", "o", "m", "al", "n", "rho", "be")


def f32_bits(v: float) -> int:
    """The float32 bit pattern of ``v`` (rounded to float32)."""
    return int(np.array([v], np.float32).view("<u4")[0])


@dataclass(frozen=True)
class Geometry:
    """Where a block operator reads and writes (see the module table), its tolerance and constants."""

    t: int
    r0: int
    rn: int
    o: int
    m: int
    al: int = 0
    n: int = 0
    rho: int = 0
    be: int = 0
    c1: int = 0x3F800000
    c2: int = 0x3F800000


def pack(g: Geometry) -> int:
    """The operator leaf's ``bits`` word: ``t`` in bits 0-7, the eight 16-bit fields from bit 8, ``c1`` at 136, ``c2`` at 168."""
    v = g.t & 255
    for k, name in enumerate(_FIELDS):
        v |= (getattr(g, name) & 0xFFFF) << (8 + 16 * k)
    return v | ((g.c1 & 0xFFFFFFFF) << 136) | ((g.c2 & 0xFFFFFFFF) << 168)


def unpack(bits: int) -> Geometry:
    """Inverse of :func:`pack`."""
    f = {name: (bits >> (8 + 16 * k)) & 0xFFFF for k, name in enumerate(_FIELDS)}
    return Geometry(bits & 255, **f, c1=(bits >> 136) & 0xFFFFFFFF, c2=(bits >> 168) & 0xFFFFFFFF)


def geometry_ok(kind: int, width: int, bits: int, rows: int) -> bool:
    """Whether block operator ``kind``'s packed ``bits`` fit a ``rows x width`` canvas, as ``OperatorStep`` checks.

    Every window inside the canvas, matmul windows word-aligned (``al``, ``n``, and ``be`` of ``mms``,
    multiples of 8), ``axpyp``'s ``m`` a multiple of 8 (its parameter rows are packed 8 lanes a
    word), and the tolerance in its check's range (``u_bits`` 10..24 for a matmul, 8..30 for an
    ``axpy``). :func:`block_op` builds only such operators; the contract rejects a claim on any other.
    """
    g = unpack(int(bits))
    t = g.t
    if g.rn < 1 or g.m < 1 or g.r0 + g.rn > rows or g.o + g.m > width:
        return False
    if kind in (MMS, MMP):
        if kind == MMS and (g.be % 8 or g.be + g.n > width or g.rho + g.m > rows):
            return False
        return g.n >= 8 and g.al % 8 == 0 and g.n % 8 == 0 and g.al + g.n <= width and 10 <= t <= 24
    if kind == TR:
        return g.rho + g.m <= rows and g.al + g.rn <= width
    if g.al + g.m > width or (kind in (AXPY, RELUG) and g.be + g.m > width):
        return False
    if kind == AXPY:
        return g.rho + g.rn <= rows and 8 <= t <= 30
    if kind == AXPYP:
        return g.m % 8 == 0 and 8 <= t <= 30
    return kind in (RELUW, RELUG)


def _c(b: int) -> np.float32:
    return np.array([b], "<u4").view(np.float32)[0]


def block_op(kind: int, *, width: int, rows: int, r0: int, rn: int, o: int, m: int, al: int = 0, n: int = 0,
             rho: int = 0, be: int = 0, c1: float = 1.0, c2: float = 1.0, t: int | None = None,
             param: np.ndarray | None = None):
    """A checked block :class:`~vcompute.verify.dispute.op_trace.Operator` on a ``rows x width`` canvas.

    Args:
        kind: one of :data:`BLOCK_KINDS`.
        width: the canvas's lanes (a multiple of 8, at most 256).
        rows: the canvas's rows (at most 256).
        r0, rn, o, m, al, n, rho, be: the geometry (module table).
        c1, c2: the ``axpy`` / ``axpyp`` constants (rounded to float32).
        t: ``u_bits`` of a matmul (default 24), the tolerance exponent of an ``axpy`` (default 22); unused otherwise.
        param: ``P`` of ``mmp`` (``n x m``) or ``axpyp`` (``rn x m``), float32.

    Raises:
        ValueError: if a window leaves the canvas, a matmul window is not word-aligned, ``t`` is out of
            its check's range (:func:`geometry_ok`), or ``param`` has the wrong shape or is not finite.
    """
    from vcompute.verify.dispute.op_trace import Operator

    if kind not in BLOCK_KINDS:
        raise ValueError(f"kind must be one of {BLOCK_KINDS}, got {kind!r}")
    if width % 8 or not 8 <= width <= 256 or not 1 <= rows <= 256:
        raise ValueError(f"the canvas must be 1..256 rows by a multiple of 8 up to 256 lanes; got {rows} x {width}")
    if t is None:
        t = 24 if kind in (MMS, MMP) else (22 if kind in (AXPY, AXPYP) else 0)
    g = Geometry(*(int(v) for v in (t, r0, rn, o, m, al, n, rho, be)), f32_bits(c1), f32_bits(c2))
    fields = (t, r0, rn, o, m, al, n, rho, be)
    if any(not isinstance(v, (int, np.integer)) or v < 0 for v in fields) or t > 255 or max(fields[1:]) > 0xFFFF \
            or not geometry_ok(kind, width, pack(g), rows):
        raise ValueError(f"{BLOCK_NAMES[kind]} geometry leaves the {rows} x {width} canvas or is misaligned "
                         f"(or t={t} is out of its check's range): "
                         f"r0={r0} rn={rn} o={o} m={m} al={al} n={n} rho={rho} be={be}")
    if kind in (MMP, AXPYP):
        want = (n, m) if kind == MMP else (rn, m)
        if (not isinstance(param, np.ndarray) or param.dtype != np.float32 or param.shape != want
                or not np.isfinite(param).all() or (kind == AXPYP and m % 8)):
            raise ValueError(f"param must be a finite float32 array of shape {want} (axpyp: m a multiple of 8)")
    elif param is not None:
        raise ValueError(f"{BLOCK_NAMES[kind]} takes no param")
    return Operator(kind, width, width, pack(g), param)


def apply_block(op, a: np.ndarray, *, machine: str = "numpy") -> np.ndarray:
    """The honest block operator on ``a`` (``machine="torch"``: float64-accumulated matmuls, another honest machine)."""
    g = unpack(op.bits)
    out = a.copy()
    rs, cs = slice(g.r0, g.r0 + g.rn), slice(g.o, g.o + g.m)
    wide = machine == "torch"
    mm = (lambda u, v: (u.astype(np.float64) @ v.astype(np.float64)).astype(np.float32)) if wide else \
        (lambda u, v: np.matmul(u, v).astype(np.float32))  # noqa: E731
    left = a[rs, g.al:g.al + (g.n if op.kind in (MMS, MMP) else g.m)]
    if op.kind == MMS:
        out[rs, cs] = mm(left, np.ascontiguousarray(a[g.rho:g.rho + g.m, g.be:g.be + g.n].T))
    elif op.kind == MMP:
        out[rs, cs] = mm(left, op.param)
    elif op.kind == TR:
        out[rs, cs] = a[g.rho:g.rho + g.m, g.al:g.al + g.rn].T
    elif op.kind in (AXPY, AXPYP):
        c1, c2 = _c(g.c1), _c(g.c2)
        if op.kind == AXPY:
            lv, rv = left, a[g.rho:g.rho + g.rn, g.be:g.be + g.m]
        else:
            lv, rv = op.param, left
        out[rs, cs] = (c1 * lv + c2 * rv).astype(np.float32)
    elif op.kind == RELUW:
        out[rs, cs] = np.maximum(left, np.float32(0))
    else:
        out[rs, cs] = np.where(a[rs, g.be:g.be + g.m] > 0, left, np.float32(0))
    return out


def _bits(t: np.ndarray, i: int, j: int) -> int:
    return int(t[i:i + 1, j].view("<u4")[0])


def element_ok(op, a: np.ndarray, i: int, j: int, zb: int) -> bool:
    """Whether claimed float32 bits ``zb`` at ``(i, j)`` pass operator ``op`` on input ``a``, as ``block_ok`` decides.

    ``op`` must be well formed (:func:`geometry_ok`; the contract settles a claim on any other before
    this check); non-finite inputs are decided as :mod:`~vcompute.verify.dispute.op_step` and
    :func:`~vcompute.verify.dispute.float_trace.within` state.
    """
    g = unpack(op.bits)
    zb = int(zb) & 0xFFFFFFFF
    if not (g.r0 <= i < g.r0 + g.rn and g.o <= j < g.o + g.m):
        return zb == _bits(a, i, j)
    ii, jj = i - g.r0, j - g.o
    if op.kind == RELUW:
        return relu_within(_bits(a, i, g.al + jj), zb)
    if op.kind == RELUG:
        return relu_grad_within(_bits(a, i, g.be + jj), _bits(a, i, g.al + jj), zb)
    if op.kind == TR:
        return zb == _bits(a, g.rho + jj, g.al + ii)
    if op.kind == MMS:
        return within(a[i, g.al:g.al + g.n], a[g.rho + jj, g.be:g.be + g.n], g.t, [zb])[0]
    if op.kind == MMP:
        return within(a[i, g.al:g.al + g.n], op.param[:, jj], g.t, [zb])[0]
    if op.kind == AXPY:
        lb, rb = _bits(a, i, g.al + jj), _bits(a, g.rho + ii, g.be + jj)
    else:
        lb, rb = _bits(op.param, ii, jj), _bits(a, i, g.al + jj)
    return axpby_within(g.c1, lb, g.c2, rb, zb, g.t)


def element_bound(op, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ref, bound, exact)`` over the block in float64: the exact value, its allowed error, whether it must match bit for bit."""
    g = unpack(op.bits)
    a64 = a.astype(np.float64)
    rs = slice(g.r0, g.r0 + g.rn)
    left = a64[rs, g.al:g.al + (g.n if op.kind in (MMS, MMP) else g.m)]
    exact = np.zeros((g.rn, g.m), bool)
    bound = np.zeros((g.rn, g.m))
    if op.kind in (MMS, MMP):
        w = a64[g.rho:g.rho + g.m, g.be:g.be + g.n].T if op.kind == MMS else op.param.astype(np.float64)
        ref = left @ w
        nn, u = g.n + 2, 2.0 ** -g.t
        bound = nn * u / (1 - nn * u) * (np.abs(left) @ np.abs(w))
    elif op.kind in (AXPY, AXPYP):
        c1, c2 = float(_c(g.c1)), float(_c(g.c2))
        lv, rv = (left, a64[g.rho:g.rho + g.rn, g.be:g.be + g.m]) if op.kind == AXPY else \
            (op.param.astype(np.float64), left)
        ref = c1 * lv + c2 * rv
        bound = 2.0 ** -g.t * (np.abs(c1 * lv) + np.abs(c2 * rv)) + 2.0 ** -140
    else:
        exact[:] = True
        ref = apply_block(op, a)[rs, g.o:g.o + g.m].astype(np.float64)
    return ref, bound, exact


def block_invalid(op, a: np.ndarray, ao: np.ndarray) -> list[tuple[int, int]]:
    """The elements of ``ao`` (a claimed output of block operator ``op`` on ``a``) the contract would reject.

    Outside the block every element must be ``a``'s bits; inside, exact kinds are compared
    bit for bit and bounded ones screened in float64, with the exact mirror
    (:func:`element_ok`) deciding every element within 0.1% of its bound.
    """
    with np.errstate(all="ignore"):  # non-finite inputs: the float64 screen's NaNs are sent to the exact mirror
        return _block_invalid(op, a, ao)


def _block_invalid(op, a: np.ndarray, ao: np.ndarray) -> list[tuple[int, int]]:
    g = unpack(op.bits)
    rs, cs = slice(g.r0, g.r0 + g.rn), slice(g.o, g.o + g.m)
    inside = np.zeros(a.shape, bool)
    inside[rs, cs] = True
    ab, aob = a.view("<u4"), ao.view("<u4")
    bad = [(int(i), int(j)) for i, j in zip(*np.nonzero(~inside & (ab != aob)))]
    ref, bound, exact = element_bound(op, a)
    z = ao[rs, cs].astype(np.float64)
    if exact.all():
        if op.kind == TR:
            miss = aob[rs, cs] != apply_block(op, a).view("<u4")[rs, cs]
        else:  # relu kinds: the contract's own rule, element by element
            miss = np.array([[not element_ok(op, a, i, j, int(aob[i, j])) for j in range(g.o, g.o + g.m)]
                             for i in range(g.r0, g.r0 + g.rn)], bool).reshape(g.rn, g.m)
        bad += [(int(i) + g.r0, int(j) + g.o) for i, j in zip(*np.nonzero(miss))]
        return sorted(bad)
    err = np.where(np.isfinite(z), np.abs(z - ref), np.inf)
    scale = bound + np.abs(ref) + np.where(np.isfinite(z), np.abs(z), 0)
    # a non-finite value, input or bound, or one near float32's overflow: the exact mirror decides
    odd = ~np.isfinite(z) | ~np.isfinite(ref) | ~np.isfinite(bound) | (np.abs(ref) + bound >= 1e38)
    unsure = ((np.abs(err - bound) <= 1e-3 * bound + 1e-40 + 2.0 ** -140 * (1 + scale)) & (err > 0)) | odd
    bad += [(int(i) + g.r0, int(j) + g.o) for i, j in zip(*np.nonzero((err > bound) & ~unsure))]
    for i, j in zip(*np.nonzero(unsure)):
        i, j = int(i) + g.r0, int(j) + g.o
        if not element_ok(op, a, i, j, _bits(ao, i, j)):
            bad.append((i, j))
    return sorted(bad)


def edge_value(op, a: np.ndarray, i: int, j: int, sign: float) -> np.float32:
    """A value just outside what the contract accepts at ``(i, j)``: one ulp off an exact element, twice the bound else."""
    g = unpack(op.bits)
    if not (g.r0 <= i < g.r0 + g.rn and g.o <= j < g.o + g.m):
        return np.nextafter(a[i, j], np.float32(sign * np.inf))
    ref, bound, exact = element_bound(op, a)
    r = ref[i - g.r0, j - g.o]
    if exact[i - g.r0, j - g.o]:
        v = np.float32(r)
        return np.nextafter(v, np.float32(sign * np.inf)) if v != 0 else np.float32(sign * 1e-45)
    return np.float32(r + sign * 2 * bound[i - g.r0, j - g.o] + sign * 2.0 ** -130)


def opening(op, a: np.ndarray, i: int, j: int) -> tuple[list[int], list[bytes]]:
    """``(p_col, p_proof)`` for ``decide``: the second row of ``a`` or the parameter row or column element ``(i, j)`` reads."""
    g = unpack(op.bits)
    if op.kind in (RELUW, RELUG) or not (g.r0 <= i < g.r0 + g.rn and g.o <= j < g.o + g.m):
        return [], []
    ii, jj = i - g.r0, j - g.o
    if op.kind in (MMS, TR, AXPY):
        r = g.rho + (ii if op.kind == AXPY else jj)
        return pack_float32(np.ascontiguousarray(a[r])), rows_tree(a).proof(r)
    if op.kind == MMP:
        return pack_float32(np.ascontiguousarray(op.param[:, jj])), rows_tree(np.ascontiguousarray(op.param.T)).proof(jj)
    return pack_float32(np.ascontiguousarray(op.param[ii])), rows_tree(op.param).proof(ii)

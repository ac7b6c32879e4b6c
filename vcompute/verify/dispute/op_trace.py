"""Operator-level traces: every operator of a GELU-MLP pass committed, for ``protocols/OperatorGame.vy``.

A job is ``L`` residual GELU-MLP blocks (the MLP half of a transformer
layer, GPT-2's ``x + W2 gelu(W1 x + b1) + b2``) over a float32 batch. Each
block is ``P = 6`` operators, each reading and writing a two-tensor state
``(x, a)`` (the residual stream and the current activation):

===========  ====================  ======================================
operator     effect                decided on chain by
===========  ====================  ======================================
``lin``      ``a := a w``          ``FloatStep.within`` (one dot product)
``bias``     ``a := a + b``        ``OperatorStep.add_ok``
``gelu``     ``a := gelu(a)``      ``OperatorStep.gelu_ok`` (tanh form)
``resid``    ``x, a := x + a``     ``OperatorStep.add_ok``
``ln``       ``a := ln(x) g + b``  ``OperatorStep.ln_ok``
``relu``     ``a := max(0, a)``    ``OperatorStep.relu_ok`` (exact)
``softmax``  ``a := softmax(a)``   ``OperatorStep.softmax_ok`` (row blocks)
===========  ====================  ======================================

:class:`ReluNet` is the ``forward`` job kind's ReLU MLP (``lin``, ``bias``,
``relu`` a hidden layer, ``lin``, ``bias`` last, optionally a ``softmax``
over the output) as such a trace, one operator a "layer" (a flat bisection).

The trace has ``L P + 1`` leaves: the input state ``(x0, x0)`` and the
state after every operator, so leaf ``l P`` is layer ``l``'s output (the
per-layer trace the first level of the game bisects) and the leaves between
are that layer's operators (the second level). Each operator leaves the
tensor it does not write bit for bit unchanged; a state that changes it is
invalid whatever its elements (the contract rebuilds the claimant's output
state from the agreed input's untouched tensor). Which operators of a
trace are valid, and the honest challenger's adoption of them, are in
:mod:`~vcompute.verify.dispute.op_validity`.

Commitments (the bytes the contract recomputes): rows and weight columns as
in :mod:`~vcompute.verify.dispute.float_trace` (``sha256(abi(8, n, words))``,
tensors a Merkle root over their rows); a state
``sha256(abi(10, rows, dx, root(x), da, root(a)))``; an operator
``sha256(abi(11, kind, k, m, bits, param))`` (``param``: the root over
``w``'s columns, the bias row's digest, or zero); the job id
``sha256(abi(12, ops_root, input_state, L, P))``. A trace root is signed
for its job and provider with :meth:`OpTrace.commit`, as the other traces are.

Example:
    >>> net = MLPNet.random(d=16, hidden=32, n_layers=2, rows=2, seed=0)
    >>> t = OpTrace.execute(net, net.random_input(seed=1))
    >>> len(t.leaves), net.per_layer, t.layer_outputs()[-1].shape
    (13, 6, (2, 16))
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from vcompute.core.merkle import MerkleTree
from vcompute.verify.dispute.float_trace import row_digest, rows_tree
from vcompute.verify.dispute.op_block import AXPYP, BLOCK_KINDS, BLOCK_NAMES, MMP, apply_block
from vcompute.verify.dispute.trace import TraceCommitment

__all__ = ["LIN", "BIAS", "GELU", "RESID", "LN", "RELU", "SOFTMAX", "QK", "AV", "KIND_NAMES", "OSTATE_TAG",
           "OPL_TAG", "OJOB_TAG", "LNP_TAG", "MLPNet", "ReluNet", "OpNet", "Operator", "heads_of",
           "OpTrace", "State", "apply_op", "state_leaf", "op_job_id"]

#: Operator kind: ``a := a w``.
LIN = 1
#: Operator kind: ``a := a + b``.
BIAS = 2
#: Operator kind: ``a := gelu(a)`` (tanh form).
GELU = 3
#: Operator kind: ``x, a := x + a``.
RESID = 4
#: Operator kind: ``a := layernorm(x) gamma + beta``.
LN = 5
#: Operator kind: ``a := max(0, a)`` (exact).
RELU = 6
#: Operator kind: ``a := softmax(a)`` over row blocks of the first ``span`` columns (param: ``(block, causal, span)``).
SOFTMAX = 7
#: Operator kind: ``a := [q k^T / sqrt(dh) (causal, -inf masked) | v]`` per head from ``a = [q | k | v]``.
QK = 8
#: Operator kind: ``a := p v`` per head from ``a = [p | v]`` (``p`` the softmaxed scores).
AV = 9
#: Operator kinds by number, as the contract numbers them.
KIND_NAMES = {LIN: "lin", BIAS: "bias", GELU: "gelu", RESID: "resid", LN: "ln", RELU: "relu", SOFTMAX: "softmax",
              QK: "qk", AV: "av", **BLOCK_NAMES}
#: Domain tag of a state leaf.
OSTATE_TAG = 10
#: Domain tag of an operator leaf.
OPL_TAG = 11
#: Domain tag of an operator-level job id.
OJOB_TAG = 12
#: Domain tag of a layernorm's parameter (its gamma and beta row digests).
LNP_TAG = 13
_EPS = np.float32(1e-5)
_ZERO = bytes(32)
_SQRT2PI = np.float32(math.sqrt(2.0 / math.pi))

#: A state: ``(x, a)``, both float32 ``rows x width``.
State = tuple[np.ndarray, np.ndarray]


def _u256(v: int) -> bytes:
    return int(v).to_bytes(32, "big")


def state_leaf(s: State) -> bytes:
    """A state's trace leaf ``sha256(abi(10, rows, dx, root(x), da, root(a)))``."""
    x, a = s
    return hashlib.sha256(_u256(OSTATE_TAG) + _u256(x.shape[0]) + _u256(x.shape[1]) + rows_tree(x).root
                          + _u256(a.shape[1]) + rows_tree(a).root).digest()


def op_job_id(ops_root: bytes, input_state: bytes, n_layers: int, per_layer: int) -> bytes:
    """The job id ``OperatorGame.vy`` derives (``job_id_of``)."""
    return hashlib.sha256(_u256(OJOB_TAG) + bytes(ops_root) + bytes(input_state) + _u256(n_layers)
                          + _u256(per_layer)).digest()


@dataclass(frozen=True)
class Operator:
    """One operator of the job: its kind, widths, precision bits and parameter.

    Args:
        kind: :data:`LIN`, :data:`BIAS`, :data:`GELU` or :data:`RESID`.
        k: input width of ``a``.
        m: output width.
        bits: ``u_bits`` of a linear or add operator, ``tol_bits`` of a GELU or a layernorm.
        param: the weight ``k x m`` (lin), the bias ``m`` (bias), ``[gamma; beta]`` ``2 x m`` (ln),
            ``(block, causal, span)`` (softmax over the first ``span`` columns), ``(heads, tokens)``
            (qk, av), or ``None``.

    Raises:
        ValueError: if ``param`` does not describe the operator its leaf commits: a weight, bias or LayerNorm
            parameter of another shape than ``(k, m)``, ``(m,)`` or ``(2, m)``, a block operator's ``P`` of
            another shape than its geometry's, or a softmax / attention tuple that does not round-trip through
            :meth:`param_root` (block < 2^31, causal 0 or 1, tokens < 2^32).
    """

    kind: int
    k: int
    m: int
    bits: int
    param: np.ndarray | None = None

    def __post_init__(self) -> None:
        # The leaf commits (kind, k, m, bits, param_root) and the honest player computes with ``param``: they must
        # describe one operator, or the chain decides another one than was computed (finding F5 of the session-8
        # review, proofs/dispute.md: a lin leaf of m = 16 over a 16 x 8 weight; a softmax block whose bit 31
        # carried into the span). Malformed parameters are the job poster's error.
        kind, k, m, p = self.kind, self.k, self.m, self.param
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 0 for v in (kind, k, m, self.bits)):
            raise ValueError(f"kind, k, m and bits must be non-negative ints; got {kind!r}, {k!r}, {m!r}, {self.bits!r}")

        def shape(want: tuple[int, ...]) -> None:
            # an exact ndarray: a subclass may report a shape its data does not have
            if type(p) is not np.ndarray or p.shape != want:
                raise ValueError(f"the param of a kind-{kind} operator must be an array of shape {want}, got "
                                 f"{getattr(p, 'shape', type(p).__name__)}")

        if kind == LIN:
            shape((k, m))
        elif kind == BIAS:
            shape((m,))
        elif kind == LN:
            shape((2, m))
        elif kind in (SOFTMAX, QK, AV):
            want = 3 if kind == SOFTMAX else 2
            if not isinstance(p, (tuple, list)) or len(p) != want or any(
                    isinstance(v, float) or not isinstance(v, (int, bool, np.integer, np.bool_)) or int(v) < 0 for v in p):
                raise ValueError(f"the param of a kind-{kind} operator must be {want} non-negative ints, got {p!r}")
            if kind == SOFTMAX and (int(p[0]) >= 2**31 or int(p[1]) not in (0, 1) or int(p[2]) >= 2**200):
                raise ValueError(f"a softmax's (block, causal, span) must have block < 2^31, causal 0 or 1 and "
                                 f"span < 2^200 (so that they round-trip through param_root), got {p!r}")
            if kind in (QK, AV) and (int(p[1]) >= 2**32 or int(p[0]) >= 2**200):
                raise ValueError(f"an attention operator's (heads, tokens) must have tokens < 2^32 and heads < 2^200, "
                                 f"got {p!r}")
        elif kind in (MMP, AXPYP):
            from vcompute.verify.dispute.op_block import unpack

            g = unpack(self.bits)
            shape((g.n, g.m) if kind == MMP else (g.rn, g.m))

    def param_root(self) -> bytes:
        """The committed parameter: the root over ``w``'s columns, the bias row's digest, a softmax's
        ``span 2^32 + block 2 + causal``, or zero."""
        if self.kind == LIN:
            return rows_tree(np.ascontiguousarray(self.param.T)).root
        if self.kind == BIAS:
            return row_digest(self.param)
        if self.kind == LN:
            return hashlib.sha256(_u256(LNP_TAG) + row_digest(self.param[0]) + row_digest(self.param[1])).digest()
        if self.kind == SOFTMAX:
            blk, causal, span = self.param
            return _u256((int(span) << 32) | (int(blk) << 1) | int(bool(causal)))
        if self.kind in (QK, AV):
            h, t = self.param
            return _u256((int(h) << 32) | int(t))
        if self.kind == MMP:  # block operators (op_block): P's columns, or its rows
            return rows_tree(np.ascontiguousarray(self.param.T)).root
        if self.kind == AXPYP:
            return rows_tree(self.param).root
        return _ZERO

    def leaf(self) -> bytes:
        """``sha256(abi(11, kind, k, m, bits, param))``."""
        return hashlib.sha256(_u256(OPL_TAG) + _u256(self.kind) + _u256(self.k) + _u256(self.m)
                              + _u256(self.bits) + self.param_root()).digest()


def _gelu32(a: np.ndarray) -> np.ndarray:
    # numpy float32 evaluation of the tanh form, as a CPU kernel would
    a = a.astype(np.float32)
    with np.errstate(over="ignore"):  # x^3 overflows beyond 7e12; tanh(+-inf) still gives the right limit
        return (np.float32(0.5) * a * (np.float32(1) + np.tanh(_SQRT2PI * (a + np.float32(0.044715) * a * a * a)))
                ).astype(np.float32)


def _softmax32(a: np.ndarray, blk: int, causal: bool, span: int | None = None, *,
               machine: str = "numpy") -> np.ndarray:
    # float32 block softmax of the first span columns (masked elements zero, the rest copied), as a CPU kernel would
    if span is not None and span < a.shape[1]:
        out = a.copy()
        out[:, :span] = _softmax32(np.ascontiguousarray(a[:, :span]), blk, causal, machine=machine)
        return out
    rows, d = a.shape
    out = np.zeros_like(a, dtype=np.float32)
    if machine == "torch":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(a)).reshape(rows, d // blk, blk)
        if causal:
            mask = torch.arange(blk)[None, :] > torch.arange(rows)[:, None]
            t = t.masked_fill(mask[:, None, :], float("-inf"))
        return torch.softmax(t, dim=-1).reshape(rows, d).numpy().astype(np.float32)
    for i in range(rows):
        n = min(i + 1, blk) if causal else blk
        for lo in range(0, d, blk):
            v = a[i, lo:lo + n]
            e = np.exp(v - v.max())
            out[i, lo:lo + n] = e / e.sum(dtype=np.float32)
    return out


def heads_of(op: Operator) -> tuple[int, int, int, int, int]:
    """``(H, T, d, dh, s)`` of a ``qk`` or ``av`` operator (``1/sqrt(dh) = 2^-s``), as the contract derives them."""
    h, t = (int(v) for v in op.param)
    d = op.k // 3 if op.kind == QK else op.m
    return h, t, d, d // h, int(round(math.log2(d // h))) // 2


def _attention32(op: Operator, a: np.ndarray, *, machine: str = "numpy") -> np.ndarray:
    h, t, d, dh, s = heads_of(op)
    wide = machine == "torch"  # another honest machine: float64-accumulated products
    mm = (lambda u, v: (u.astype(np.float64) @ v.astype(np.float64)).astype(np.float32)) if wide else \
        (lambda u, v: np.matmul(u, v).astype(np.float32))  # noqa: E731
    if op.kind == QK:
        out = np.empty((a.shape[0], h * t + d), np.float32)
        masked = np.triu(np.ones((t, t), bool), 1)
        for hd in range(h):
            q, k = a[:, hd * dh:(hd + 1) * dh], a[:, d + hd * dh:d + (hd + 1) * dh]
            sc = (mm(q, np.ascontiguousarray(k.T)) * np.float32(2.0 ** -s)).astype(np.float32)
            sc[masked] = -np.inf
            out[:, hd * t:(hd + 1) * t] = sc
        out[:, h * t:] = a[:, 2 * d:]
        return out
    out = np.empty((a.shape[0], d), np.float32)
    for hd in range(h):
        out[:, hd * dh:(hd + 1) * dh] = mm(np.ascontiguousarray(a[:, hd * t:(hd + 1) * t]),
                                           np.ascontiguousarray(a[:, h * t + hd * dh:h * t + (hd + 1) * dh]))
    return out


def apply_op(op: Operator, s: State, *, machine: str = "numpy") -> State:
    """The honest operator on this machine: ``machine`` ``"numpy"`` (float32 throughout) or ``"torch"``.

    ``"torch"`` is another honest machine: float64-accumulated matmuls and torch's
    ``gelu(approximate="tanh")``; its bits differ, its elements are within every bound.
    Float32 overflow and invalid operations give IEEE's inf and NaN, silently (the contract decides
    them: ``proofs/dispute.md``, "Non-finite values").
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _apply_op(op, s, machine=machine)


def _apply_op(op: Operator, s: State, *, machine: str = "numpy") -> State:
    x, a = s
    if op.kind in BLOCK_KINDS:
        return x, apply_block(op, a, machine=machine)
    if op.kind in (QK, AV):
        return x, _attention32(op, a, machine=machine)
    if op.kind == RELU:
        if machine == "torch":
            import torch

            return x, torch.relu(torch.from_numpy(np.ascontiguousarray(a))).numpy()
        return x, np.maximum(a, np.float32(0)).astype(np.float32)
    if op.kind == SOFTMAX:
        return x, _softmax32(a, *op.param, machine=machine)
    if op.kind == LN:
        g, b = op.param
        if machine == "torch":
            import torch

            return x, torch.nn.functional.layer_norm(torch.from_numpy(np.ascontiguousarray(x)), (x.shape[1],),
                                                     torch.from_numpy(g.copy()), torch.from_numpy(b.copy()),
                                                     eps=1e-5).numpy()
        mu = x.mean(axis=1, keepdims=True, dtype=np.float32)
        var = ((x - mu) ** 2).mean(axis=1, keepdims=True, dtype=np.float32)
        return x, ((x - mu) * (np.float32(1) / np.sqrt(var + _EPS)) * g + b).astype(np.float32)
    if op.kind == LIN:
        if machine == "torch":
            return x, (a.astype(np.float64) @ op.param.astype(np.float64)).astype(np.float32)
        return x, np.matmul(a, op.param).astype(np.float32)
    if op.kind == BIAS:
        return x, (a + op.param[None, :]).astype(np.float32)
    if op.kind == GELU:
        if machine == "torch":
            import torch

            return x, torch.nn.functional.gelu(torch.from_numpy(np.ascontiguousarray(a)),
                                               approximate="tanh").numpy()
        return x, _gelu32(a)
    r = (x + a).astype(np.float32)
    return r, r.copy()


class _OpList:
    """What a job given by its operator list ``_ops`` answers: count, operator ``p``, their Merkle tree."""

    #: The widest row of the contract build the job is for (256: the checked-in one; see :class:`OpNet`).
    max_dim = 256

    @property
    def n_ops(self) -> int:
        """Operators of the job (the trace has one more leaf)."""
        return len(self._ops)

    def op(self, p: int) -> Operator:
        """Operator ``p`` (1-based: the one that writes leaf ``p``)."""
        return self._ops[p - 1]

    @functools.cached_property
    def ops_tree(self) -> MerkleTree:
        """The Merkle tree over the operator leaves (operator ``p`` at index ``p - 1``)."""
        return MerkleTree([o.leaf() for o in self._ops])



class _FlatOps(_OpList):
    """An :class:`_OpList` bisected flat: one operator a game "layer"."""

    @property
    def n_layers(self) -> int:
        """Game "layers": one an operator (the bisection is flat)."""
        return len(self._ops)

    @property
    def per_layer(self) -> int:
        """Operators a game layer: 1."""
        return 1


@dataclass(frozen=True)
class MLPNet(_OpList):
    """``n_layers`` residual GELU-MLP blocks: the job's operators (six a block, seven with a pre-LayerNorm).

    Args:
        blocks: per block ``(w1 d x h, b1 h, w2 h x d, b2 d)``, float32; ``d``, ``h`` multiples of 8 up to 256.
        rows: batch rows of the input.
        norms: per block ``[gamma; beta]`` (``2 x d`` float32) of a LayerNorm before its MLP
            (GPT-2's ``ln_2``, eps 1e-5), or ``None``: no LayerNorm.
        u_bits: precision of the linear operators (24: float32; 11: TF32 inputs).
        add_bits: precision of the adds (24: one float32 rounding).
        gelu_bits: the GELU tolerance ``2^-gelu_bits (|x| + |g|)`` (18: 64x the worst float32 error measured).
        ln_bits: the LayerNorm tolerance ``2^-ln_bits (|gamma| (|n| + max|x| / sigma) + |beta|)`` (12: 16x
            the rounding model's ``d u`` at ``d = 256``, 90x the worst float32 error measured).

    Raises:
        TypeError: if a parameter is not a float32 ndarray.
        ValueError: on shapes out of range or mismatched, non-finite parameters, or bits out of range.
    """

    blocks: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]
    rows: int
    norms: tuple[np.ndarray, ...] | None = None
    u_bits: int = 24
    add_bits: int = 24
    gelu_bits: int = 18
    ln_bits: int = 12
    _ops: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.blocks:
            raise ValueError("blocks must be non-empty")
        d = None
        for i, blk in enumerate(self.blocks):
            if len(blk) != 4 or any(not isinstance(p, np.ndarray) or p.dtype != np.float32 for p in blk):
                raise TypeError(f"blocks[{i}] must be four float32 ndarrays (w1, b1, w2, b2)")
            w1, b1, w2, b2 = blk
            d = w1.shape[0] if d is None else d
            h = w1.shape[1] if w1.ndim == 2 else -1
            if (w1.shape != (d, h) or b1.shape != (h,) or w2.shape != (h, d) or b2.shape != (d,) or d % 8 or h % 8
                    or not 8 <= min(d, h) <= max(d, h) <= 256):
                raise ValueError(f"blocks[{i}] has shapes {[p.shape for p in blk]}: want (d, h), (h,), (h, d), "
                                 "(d,) with d, h multiples of 8 in 8..256 and one d throughout")
            if not all(np.isfinite(p).all() for p in blk):
                raise ValueError(f"blocks[{i}] has a non-finite parameter")
        if type(self.rows) is not int or not 1 <= self.rows <= 256:
            raise ValueError(f"rows must be an int in 1..256, got {self.rows!r}")
        if self.norms is not None:
            if len(self.norms) != len(self.blocks) or any(
                    not isinstance(n, np.ndarray) or n.dtype != np.float32 or n.shape != (2, d)
                    or not np.isfinite(n).all() for n in self.norms):
                raise ValueError(f"norms must hold one finite float32 [gamma; beta] of shape (2, {d}) a block")
        for name, lo, hi in (("u_bits", 10, 24), ("add_bits", 8, 30), ("gelu_bits", 8, 30), ("ln_bits", 8, 30)):
            v = getattr(self, name)
            if type(v) is not int or not lo <= v <= hi:
                raise ValueError(f"{name} must be an int in {lo}..{hi}, got {v!r}")
        for i, (w1, b1, w2, b2) in enumerate(self.blocks):
            d, h = w1.shape
            if self.norms is not None:
                self._ops.append(Operator(LN, d, d, self.ln_bits, self.norms[i]))
            self._ops.extend([Operator(LIN, d, h, self.u_bits, w1), Operator(BIAS, h, h, self.add_bits, b1),
                              Operator(GELU, h, h, self.gelu_bits), Operator(LIN, h, d, self.u_bits, w2),
                              Operator(BIAS, d, d, self.add_bits, b2), Operator(RESID, d, d, self.add_bits)])

    @classmethod
    def random(cls, *, d: int, hidden: int, n_layers: int, rows: int, seed: int, pre_ln: bool = False,
               **bits: int) -> MLPNet:
        """A random network (activations of order 1); ``pre_ln``: a LayerNorm before each MLP."""
        rng = np.random.default_rng(seed)
        norms = tuple(np.stack([1 + 0.1 * rng.standard_normal(d), 0.1 * rng.standard_normal(d)]).astype(np.float32)
                      for _ in range(n_layers)) if pre_ln else None
        blocks = []
        for _ in range(n_layers):
            blocks.append(((rng.standard_normal((d, hidden)) / np.sqrt(d)).astype(np.float32),
                           (0.1 * rng.standard_normal(hidden)).astype(np.float32),
                           (rng.standard_normal((hidden, d)) / np.sqrt(hidden) / 2).astype(np.float32),
                           (0.1 * rng.standard_normal(d)).astype(np.float32)))
        return cls(tuple(blocks), rows, norms, **bits)

    @property
    def n_layers(self) -> int:
        """Blocks of the job."""
        return len(self.blocks)

    @property
    def per_layer(self) -> int:
        """Operators a block."""
        return 6 if self.norms is None else 7

    def random_input(self, *, seed: int) -> np.ndarray:
        """A random float32 input of ``rows x d``."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((self.rows, self.blocks[0][0].shape[0])).astype(np.float32)


@dataclass(frozen=True)
class ReluNet(_FlatOps):
    """A ReLU MLP (the ``forward`` job kind's model) as operators: ``lin``, ``bias``, ``relu`` a hidden layer.

    The last layer is ``lin``, ``bias`` (no ReLU), then optionally a ``softmax`` over the
    output row. Widths must be multiples of 8 up to 256 (:meth:`from_forward_job` pads a
    job's widths with zero columns). Each operator is its own "layer" of the game
    (``per_layer = 1``): the bisection is flat, ``ceil(log2 n_ops)`` rounds.

    Args:
        layers: per layer ``(w k x m, b m)``, float32.
        rows: batch rows of the input.
        softmax: a softmax over each output row after the last layer.
        u_bits: precision of the linear operators.
        add_bits: precision of the bias adds.
        softmax_bits: the softmax tolerance ``2^-t p (|x - max| + 2 n + 8)``.

    Raises:
        TypeError: if a parameter is not a float32 ndarray.
        ValueError: on shapes out of range or mismatched, non-finite parameters, or bits out of range.
    """

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    rows: int
    softmax: bool = False
    u_bits: int = 24
    add_bits: int = 24
    softmax_bits: int = 18
    _ops: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("layers must be non-empty")
        width = None
        for i, lay in enumerate(self.layers):
            if len(lay) != 2 or any(not isinstance(p, np.ndarray) or p.dtype != np.float32 for p in lay):
                raise TypeError(f"layers[{i}] must be two float32 ndarrays (w, b)")
            w, b = lay
            if w.ndim != 2 or b.shape != (w.shape[1],) or (width is not None and w.shape[0] != width):
                raise ValueError(f"layers[{i}] has shapes {w.shape}, {b.shape}: want (k, m), (m,) chained")
            if any(v % 8 or not 8 <= v <= 256 for v in w.shape):
                raise ValueError(f"layers[{i}] widths {w.shape} must be multiples of 8 in 8..256 "
                                 "(pad with from_forward_job)")
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ValueError(f"layers[{i}] has a non-finite parameter")
            width = w.shape[1]
        if type(self.rows) is not int or not 1 <= self.rows <= 256:
            raise ValueError(f"rows must be an int in 1..256, got {self.rows!r}")
        for name, lo, hi in (("u_bits", 10, 24), ("add_bits", 8, 30), ("softmax_bits", 8, 30)):
            v = getattr(self, name)
            if type(v) is not int or not lo <= v <= hi:
                raise ValueError(f"{name} must be an int in {lo}..{hi}, got {v!r}")
        for i, (w, b) in enumerate(self.layers):
            k, m = w.shape
            self._ops.extend([Operator(LIN, k, m, self.u_bits, w), Operator(BIAS, m, m, self.add_bits, b)])
            if i < len(self.layers) - 1:
                self._ops.append(Operator(RELU, m, m, 0))
        if self.softmax:
            m = self.layers[-1][0].shape[1]
            self._ops.append(Operator(SOFTMAX, m, m, self.softmax_bits, (m, False, m)))

    @classmethod
    def random(cls, widths: tuple[int, ...], *, rows: int, seed: int, softmax: bool = False, **bits: int) -> ReluNet:
        """A random ReLU MLP of ``widths`` (``nn.Linear``'s initialisation range), activations of order 1."""
        rng = np.random.default_rng(seed)
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            bound = 1.0 / math.sqrt(a)
            layers.append((rng.uniform(-bound, bound, (a, b)).astype(np.float32),
                           rng.uniform(-bound, bound, (b,)).astype(np.float32)))
        return cls(tuple(layers), rows, softmax, **bits)

    @classmethod
    def from_forward_job(cls, job, **kw) -> tuple[ReluNet, np.ndarray]:
        """The operators of a ``forward`` job (:mod:`vcompute.workloads.kinds.forward`) and its padded input.

        Widths are padded with zero columns (and rows) to multiples of 8: a padded output
        column is ``0 w + 0 = 0``, so the job's output is the first ``widths[-1]`` columns.

        Raises:
            ValueError: if the job is not a ``forward`` MLP job or a width exceeds 256.
        """
        from vcompute.core.types import Job

        if type(job) is not Job or job.kind != "forward" or job.spec.get("arch") != "mlp":
            raise ValueError("job must be a 'forward' mlp Job (ForwardKind.make_job)")
        widths = [int(w) for w in job.spec["widths"]]
        pad = [-(-w // 8) * 8 for w in widths]
        if max(pad) > 256:
            raise ValueError(f"job widths {widths} exceed the contract's 256 (MAX_DIM)")
        layers = []
        for i in range(len(widths) - 1):
            w = np.zeros((pad[i], pad[i + 1]), np.float32)
            b = np.zeros(pad[i + 1], np.float32)
            w[:widths[i], :widths[i + 1]] = np.asarray(job.inputs["weights"][f"{2 * i}.weight"], np.float32).T
            b[:widths[i + 1]] = np.asarray(job.inputs["weights"][f"{2 * i}.bias"], np.float32)
            layers.append((w, b))
        x = np.asarray(job.inputs["x"], np.float32)
        x0 = np.zeros((x.shape[0], pad[0]), np.float32)
        x0[:, :widths[0]] = x
        return cls(tuple(layers), int(x.shape[0]), **kw), x0

    def random_input(self, *, seed: int) -> np.ndarray:
        """A random float32 input of ``rows x widths[0]``."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((self.rows, self.layers[0][0].shape[0])).astype(np.float32)


@dataclass(frozen=True)
class OpNet(_FlatOps):
    """A job given as its operator list, one operator a game "layer" (a flat bisection).

    Used for a transformer's prefill (:mod:`~vcompute.verify.dispute.lm_trace`): any
    sequence of the kinds the contract decides, each reading and writing ``(x, a)``.

    Args:
        ops: the operators, in order.
        rows: batch rows (tokens of a prefill).
        max_dim: the widest row of the contract build the job is for (256: the checked-in one; a wider
            benchmark build, ``OpChain(max_dim=...)``, takes wider operators).

    Raises:
        TypeError: if an operator is not an :class:`Operator`.
        ValueError: if there are none or ``rows`` or ``max_dim`` is out of range.
    """

    ops: tuple[Operator, ...]
    rows: int
    max_dim: int = 256

    def __post_init__(self) -> None:
        if not self.ops or any(type(o) is not Operator for o in self.ops):
            raise TypeError("ops must be a non-empty tuple of Operator")
        if type(self.rows) is not int or not 1 <= self.rows <= 256:
            raise ValueError(f"rows must be an int in 1..256, got {self.rows!r}")
        if type(self.max_dim) is not int or self.max_dim % 8 or not 256 <= self.max_dim <= 8192:
            raise ValueError(f"max_dim must be a multiple of 8 in 256..8192, got {self.max_dim!r}")

    @property
    def _ops(self) -> tuple[Operator, ...]:
        return self.ops

    def random_input(self, *, seed: int) -> np.ndarray:
        """A random float32 input of ``rows x k`` of the first operator."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((self.rows, self.ops[0].k)).astype(np.float32)


@dataclass
class OpTrace:
    """A provider's operator-level pass: the state after every operator.

    Args:
        net: the job's operators.
        x0: the job's input (the input state is ``(x0, x0)``).
        states: the state after each operator (what the provider claims).
    """

    net: MLPNet
    x0: np.ndarray
    states: list[State]
    _leaves: list[bytes] | None = field(default=None, repr=False)
    _tree: MerkleTree | None = field(default=None, repr=False)

    @classmethod
    def execute(cls, net: MLPNet, x0: np.ndarray, *, machine: str = "numpy") -> OpTrace:
        """The honest trace of ``net`` on ``x0`` (``machine``: see :func:`apply_op`)."""
        s: State = (x0, x0.copy())
        states = []
        for p in range(1, net.n_ops + 1):
            s = apply_op(net.op(p), s, machine=machine)
            states.append(s)
        return cls(net, x0, states)

    def state(self, p: int) -> State:
        """State ``p`` (0: the input)."""
        return (self.x0, self.x0) if p == 0 else self.states[p - 1]

    @property
    def leaves(self) -> list[bytes]:
        """Leaf data: the input state, then the state after each operator."""
        if self._leaves is None:
            self._leaves = [state_leaf(self.state(p)) for p in range(self.net.n_ops + 1)]
        return self._leaves

    @property
    def tree(self) -> MerkleTree:
        """The Merkle tree over :attr:`leaves`."""
        if self._tree is None:
            self._tree = MerkleTree(self.leaves)
        return self._tree

    def layer_outputs(self) -> list[np.ndarray]:
        """The per-layer outputs (the residual stream at leaves ``P, 2P, ...``): the first level's trace."""
        return [self.state(l * self.net.per_layer)[0] for l in range(1, self.net.n_layers + 1)]

    def output(self) -> np.ndarray:
        """The pass's output: the activation ``a`` of the last state (a ReLU MLP's logits or probabilities)."""
        return self.state(self.net.n_ops)[1]

    def job_id(self) -> bytes:
        """This job's id (the contract's ``job_id_of``)."""
        return op_job_id(self.net.ops_tree.root, self.leaves[0], self.net.n_layers, self.net.per_layer)

    def commit(self, key) -> TraceCommitment:
        """Sign the root for its job with the provider's ``key`` (:class:`vcompute.core.signing.SigningKey`)."""
        job = self.job_id()
        msg = TraceCommitment.message(job, key.public_bytes, self.tree.root, len(self.leaves))
        return TraceCommitment(job, key.public_bytes, self.tree.root, len(self.leaves), key.sign(msg))

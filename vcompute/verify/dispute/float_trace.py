"""Trace commitments for float32 forward passes, and the rounding bound ``FloatStep.vy`` checks.

A float32 job is a network of ``L`` matmul layers ``y = x w`` (float32, any
summation order). Unlike the int8 job its honest states are **not unique**:
two honest providers (other hardware, other reduction orders) commit
different bits. What is checked is a bound: an output element ``z`` of
``x w`` is valid when

``|z - x.w| <= gamma_n sum_t |x_t w_t| + slack``,  ``gamma_n = n u / (1 - n u)``,
``n = k + 2``, ``u = 2^-u_bits``

(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1:
any order of the ``k`` products and additions, FMA or not; ``+2`` covers the
rounding of both inputs to ``u_bits`` bits, e.g. ``u_bits = 11`` for TF32),
with ``slack`` covering gradual underflow (``2^-150`` per rounding) and the
fixed-point evaluation. It is the same rounding model as
:mod:`vcompute.verify.tolerance`'s deterministic bound, taken per element
instead of after a random projection. :func:`within` is the exact mirror of
``protocols/FloatStep.vy`` (Python integers, the same truncations), so a
player knows before it moves what the contract will decide.

Commitments (the bytes ``Dispute.vy`` recomputes): a row (or an operator
column) of float32 bit patterns is packed 8 lanes a 256-bit word, lane ``t``
at bits ``[32t, 32t+32)``, and hashed as ``sha256(abi(8, n, words))``; a
state is ``sha256(abi(7, rows, cols, root over its rows))``; an operator
``sha256(abi(9, k, m, u_bits, root over its columns))``; the job id
``sha256(abi(6, ops_root, input_state, L))``. The Merkle trees over rows and
columns are what let one element be opened without sending a whole tensor.

Example:
    >>> net = FloatNet.random(dims=(16, 16), rows=2, seed=0)
    >>> t = FloatTrace.execute(net, net.random_input(seed=1))
    >>> len(t.leaves), bad_elements(net, 1, t.x0, t.states[0]) == []
    (2, True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from vcompute.core.merkle import MerkleTree

__all__ = ["FJOB_TAG", "FSTATE_TAG", "FROW_TAG", "FOP_TAG", "FloatNet", "FloatTrace", "pack_float32",
           "row_digest", "rows_tree", "float_state_leaf", "float_job_id", "within", "bad_elements", "adopt"]

#: Domain tag of a float32 job id.
FJOB_TAG = 6
#: Domain tag of a float32 state (a Merkle root over its rows).
FSTATE_TAG = 7
#: Domain tag of one packed float32 row or operator column.
FROW_TAG = 8
#: Domain tag of a float32 operator (a Merkle root over its columns, and its ``u_bits``).
FOP_TAG = 9
_HEADROOM = 160  # FloatStep.vy's HEADROOM: terms below 2^(48 + 160), sums below 2^216


def _u256(v: int) -> bytes:
    return int(v).to_bytes(32, "big")


def pack_float32(v: np.ndarray) -> list[int]:
    """Words of a 1-D float32 vector: its bit patterns, 8 lanes a word, lane ``t`` at bits ``[32t, 32t+32)``.

    Raises:
        TypeError: if ``v`` is not a 1-D float32 ndarray.
        ValueError: if its length is not a multiple of 8.
    """
    if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype != np.float32:
        raise TypeError("v must be a 1-D float32 ndarray")
    if v.size % 8:
        raise ValueError("a float32 row packs 8 lanes a word; its length must be a multiple of 8")
    raw = np.ascontiguousarray(v).view("<u4").tobytes()
    return [int.from_bytes(raw[i:i + 32], "little") for i in range(0, len(raw), 32)]


def row_digest(v: np.ndarray) -> bytes:
    """``sha256(abi(FROW_TAG, n, words))`` of one float32 row or column."""
    words = pack_float32(v)
    head = [_u256(FROW_TAG), _u256(v.size), _u256(96), _u256(len(words))]
    return hashlib.sha256(b"".join(head) + b"".join(_u256(w) for w in words)).digest()


def rows_tree(a: np.ndarray) -> MerkleTree:
    """The Merkle tree over the row digests of a 2-D float32 tensor (a state, or an operator's columns)."""
    return MerkleTree([row_digest(np.ascontiguousarray(r)) for r in a])


def float_state_leaf(a: np.ndarray) -> bytes:
    """A float32 state's trace leaf: ``sha256(abi(FSTATE_TAG, rows, cols, root over its rows))``."""
    return hashlib.sha256(_u256(FSTATE_TAG) + _u256(a.shape[0]) + _u256(a.shape[1])
                          + rows_tree(a).root).digest()


def float_job_id(ops_root: bytes, input_state: bytes, n_layers: int) -> bytes:
    """The job id ``Dispute.vy`` derives for a float32 job (``float_job_id_of``)."""
    return hashlib.sha256(_u256(FJOB_TAG) + bytes(ops_root) + bytes(input_state) + _u256(n_layers)).digest()


def _decode(b: int) -> tuple[bool, int, int, bool]:
    e, f = (b >> 23) & 255, b & (2**23 - 1)
    if e == 255:
        return False, 0, 0, False
    if e == 0:
        return True, f, 1, bool(b >> 31 & 1)
    return True, f | 2**23, e, bool(b >> 31 & 1)


def _scale(m: int, q: int, low: int) -> int:
    return m << (q - low) if q >= low else m >> (low - q)


def within(x: np.ndarray, w: np.ndarray, u_bits: int, zs: list[int]) -> list[bool]:
    """Whether each claimed float32 value (bit pattern) of ``x . w`` is within the bound, as ``FloatStep.vy`` decides.

    Args:
        x: the input row (float32, length ``k``).
        w: the operator column (float32, length ``k``).
        u_bits: the operator's precision (``u = 2^-u_bits``).
        zs: the claimed values' bit patterns; each is decided alone, as one contract call (its
            exponent sets the fixed-point frame, so values decided together must not share one).

    Non-finite inputs follow IEEE: a NaN, an inf times zero or infinite products of both signs make
    the value NaN (any payload); infinite products of one sign make it that inf, or NaN where the
    finite rest may overflow the other way. With finite inputs an inf passes only where some summation
    order may overflow with its sign: that sign's terms alone, ``sum (1 + gamma_n)``, reach float32's
    threshold ``(2 - 2^-24) 2^127``; a NaN only where both signs' terms do (finding F4 of the session-8
    review: any inf or NaN passed once the absolute sum reached it).
    """
    k = int(x.size)
    xb, wb = x.astype(np.float32).view("<u4").tolist(), w.astype(np.float32).view("<u4").tolist()
    ms, qs, sg = [], [], []
    nan, infs = False, 0
    isnan = lambda b: b & 0x7FFFFFFF > 0x7F800000  # noqa: E731
    for bx, bw in zip(xb, wb):
        fx, mx, ex, sx = _decode(bx)
        fw, mw, ew, sw = _decode(bw)
        if isnan(bx) or isnan(bw):
            nan = True
        elif not (fx and fw):
            if (fx and mx == 0) or (fw and mw == 0):
                nan = True  # inf times zero
            else:
                infs |= 1 << int(sx != sw)
        else:
            ms.append(mx * mw)
            qs.append(ex + ew)
            sg.append(sx != sw)
    n, den = k + 2, 2**u_bits - (k + 2)
    out = []
    for z in zs:
        z = int(z) & 0xFFFFFFFF
        if nan or infs == 3:
            out.append(isnan(z))
            continue
        if infs and z == 0x7F800000 + ((infs - 1) << 31):
            out.append(True)
            continue
        if infs and not isnan(z):
            out.append(False)
            continue
        f, m, e, s = _decode(z)
        qtop = max([*qs, e + 150 if f else 404])
        low = qtop - _HEADROOM if qtop > _HEADROOM else 0
        pos = sum(_scale(mp, q, low) for mp, q, sp in zip(ms, qs, sg) if not sp)
        neg = sum(_scale(mp, q, low) for mp, q, sp in zip(ms, qs, sg) if sp)
        if not f:  # an inf needs its sign's terms alone to overflow: (sum + truncation) 2^u >= threshold (2^u - n)
            thr = _scale(2**24 - 1, 404, low) * den
            up = bool(infs & 1) or (pos + k) * 2**u_bits >= thr
            down = bool(infs & 2) or (neg + k) * 2**u_bits >= thr
            out.append(up and down if isnan(z) else up if z == 0x7F800000 else down)
            continue
        slack = 2 * k + 2 + 2 * k * 2 ** (150 - low) if low < 150 else 4 * k + 2
        v = _scale(m, e + 150, low)
        a, b = (neg, v + pos) if s else (v + neg, pos)
        out.append(abs(a - b) * den <= n * (pos + neg) + slack * den)
    return out


def bad_elements(net: FloatNet, l: int, x: np.ndarray, y: np.ndarray) -> list[tuple[int, int]]:
    """The elements ``(i, j)`` of ``y`` outside layer ``l``'s bound given the input ``x`` (exact, as the contract).

    A float64 screen settles the clear cases (the bound's margin is far above
    float64's error); only elements within 0.1% of the bound are checked exactly.
    A ``y`` that is not a float32 tensor of the step's shape has no element the
    contract could open as this step's output: ``[(0, 0)]``.
    """
    w = net.weights[l - 1]
    if not isinstance(y, np.ndarray) or y.dtype != np.float32 or y.shape != (x.shape[0], w.shape[1]):
        return [(0, 0)]
    with np.errstate(all="ignore"):
        s = x.astype(np.float64) @ w.astype(np.float64)
        a = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))
        n, u = w.shape[0] + 2, 2.0 ** -net.u_bits
        bound = n * u / (1 - n * u) * a
        err = np.abs(y.astype(np.float64) - s)
        err = np.where(np.isfinite(y), err, np.inf)
        # near the bound, near underflow (the contract adds 2^-150 per rounding), or a non-finite value or
        # one near float32's overflow: the exact check decides
        odd = ~np.isfinite(y) | ~np.isfinite(s) | ~np.isfinite(bound) | (np.abs(s) + bound >= 1e38)
        unsure = (np.abs(err - bound) <= 1e-3 * bound + 1e-40) | odd
    bad = [(int(i), int(j)) for i, j in zip(*np.nonzero((err > bound) & ~unsure))]
    for i, j in zip(*np.nonzero(unsure)):
        if not within(x[i], w[:, j], net.u_bits, [int(y[i:i + 1, j].view("<u4")[0])])[0]:
            bad.append((int(i), int(j)))
    return sorted(bad)


@dataclass(frozen=True)
class FloatNet:
    """A float32 network of matmul layers: the job's operators and their precision.

    Args:
        weights: float32 ``(k, m)`` matrices, each ``k`` the previous ``m``; dimensions multiples of 8, at most 256.
        rows: the batch size of the job's input.
        u_bits: the operators' unit roundoff exponent (24: float32 throughout; 11: TF32 inputs), 10..24.

    Raises:
        ValueError: on mismatched or out-of-range shapes, non-finite weights, or ``u_bits`` out of range.
    """

    weights: tuple[np.ndarray, ...]
    rows: int
    u_bits: int = 24

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("weights must be non-empty")
        for i, w in enumerate(self.weights):
            if not isinstance(w, np.ndarray) or w.ndim != 2 or w.dtype != np.float32:
                raise TypeError(f"weights[{i}] must be a 2-D float32 ndarray")
            if w.shape[0] % 8 or w.shape[1] % 8 or max(w.shape) > 256 or not np.isfinite(w).all():
                raise ValueError(f"weights[{i}] has shape {w.shape}: dimensions must be multiples of 8 up to 256, "
                                 "values finite")
            if i and w.shape[0] != self.weights[i - 1].shape[1]:
                raise ValueError(f"weights[{i}] takes {w.shape[0]} inputs, the previous layer gives "
                                 f"{self.weights[i - 1].shape[1]}")
        if type(self.rows) is not int or not 1 <= self.rows <= 256:
            raise ValueError(f"rows must be an int in 1..256, got {self.rows!r}")
        if type(self.u_bits) is not int or not 10 <= self.u_bits <= 24:
            raise ValueError(f"u_bits must be an int in 10..24, got {self.u_bits!r}")

    @classmethod
    def random(cls, *, dims: tuple[int, ...], rows: int, seed: int, u_bits: int = 24) -> FloatNet:
        """A random network with layer widths ``dims`` (input width first), scaled to keep activations of order 1."""
        rng = np.random.default_rng(seed)
        ws = tuple((rng.standard_normal((dims[i], dims[i + 1])) / np.sqrt(dims[i])).astype(np.float32)
                   for i in range(len(dims) - 1))
        return cls(ws, rows, u_bits)

    @property
    def n_layers(self) -> int:
        """Number of layers (the trace has one more leaf)."""
        return len(self.weights)

    def cols_tree(self, l: int) -> MerkleTree:
        """The Merkle tree over layer ``l``'s operator columns."""
        return rows_tree(np.ascontiguousarray(self.weights[l - 1].T))

    @property
    def ops_tree(self) -> MerkleTree:
        """The Merkle tree over the operator leaves (layer ``l`` at index ``l - 1``)."""
        leaves = []
        for l, w in enumerate(self.weights, 1):
            head = _u256(FOP_TAG) + _u256(w.shape[0]) + _u256(w.shape[1]) + _u256(self.u_bits)
            leaves.append(hashlib.sha256(head + self.cols_tree(l).root).digest())
        return MerkleTree(leaves)

    def random_input(self, *, seed: int) -> np.ndarray:
        """A random float32 input of ``rows`` x the first layer's width."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((self.rows, self.weights[0].shape[0])).astype(np.float32)

    def layer(self, l: int, x: np.ndarray) -> np.ndarray:
        """Honest layer ``l`` (1-based) on this machine: ``x w`` in float32."""
        return np.matmul(x, self.weights[l - 1]).astype(np.float32)


@dataclass
class FloatTrace:
    """A provider's float32 forward pass: every state, and the Merkle tree over their leaves.

    Args:
        net: the job's operators.
        x0: the job's input.
        states: the output of each layer (what the provider claims it computed).
    """

    net: FloatNet
    x0: np.ndarray
    states: list[np.ndarray]
    _tree: MerkleTree | None = field(default=None, repr=False)

    @classmethod
    def execute(cls, net: FloatNet, x0: np.ndarray) -> FloatTrace:
        """The honest trace of ``net`` on ``x0`` on this machine."""
        states, x = [], x0
        for l in range(1, net.n_layers + 1):
            x = net.layer(l, x)
            states.append(x)
        return cls(net, x0, states)

    @property
    def leaves(self) -> list[bytes]:
        """Leaf data: the input state, then each layer's state."""
        return [float_state_leaf(a) for a in (self.x0, *self.states)]

    @property
    def tree(self) -> MerkleTree:
        """The Merkle tree over :attr:`leaves`."""
        if self._tree is None:
            self._tree = MerkleTree(self.leaves)
        return self._tree

    def state(self, l: int) -> np.ndarray:
        """State ``l`` (0: the input)."""
        return self.x0 if l == 0 else self.states[l - 1]


def adopt(claimed: FloatTrace) -> FloatTrace:
    """The honest challenger's trace against ``claimed``: its states kept while each is a valid step.

    Float states are not unique, so an honest challenger that committed its own
    bits could disagree with a valid claim at a step where both are within the
    bound, which nobody can decide. Instead it keeps the claimant's state ``l``
    whenever it agrees on state ``l - 1`` and that step is within the bound,
    and computes the state itself otherwise. Then wherever the two first
    differ after an agreed state, the claimant's step is out of bound there
    (``proofs/dispute.md`` C6). It needs the claimant's states (they are
    delivered with the result, as PoL checkpoints are); a delivered state
    that does not hash to the claimant's leaf is not adopted.
    """
    net, states, same = claimed.net, [], True
    leaves = claimed.leaves
    for l in range(1, net.n_layers + 1):
        x = claimed.x0 if l == 1 else states[-1]
        mine = net.layer(l, x)
        c = claimed.states[l - 1]
        if same and not bad_elements(net, l, x, c) and float_state_leaf(c) == leaves[l]:
            states.append(claimed.states[l - 1])
        else:
            states.append(mine)
            same = float_state_leaf(mine) == leaves[l]
    return FloatTrace(net, claimed.x0, states)

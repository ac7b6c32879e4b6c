"""Trace commitments for quantised forward passes: what a dispute bisects.

A job is an int8 network of ``L`` linear layers. Layer ``l`` takes the int8
state ``x`` (rows x k), multiplies by its int8 weight ``w`` (k x m) into the
int32 accumulator ``z = x w`` and requantises ``y = clip(floor(z / 2^s), -128,
127)``, the next layer's input. The **trace** is ``L + 1`` Merkle leaves
(:mod:`vcompute.core.merkle`, which binds the leaf count): leaf 0 is the
job's input state, leaf ``l`` the state after layer ``l``. A state's leaf is
``sha256(abi(STATE, digest(z), digest(y)))``; committing the accumulator as
well as the output is what makes the on-chain Freivalds check sound: ``z``
is fixed before the challenge vector exists (``proofs/dispute.md``).

Every digest is the one ``protocols/Dispute.vy`` recomputes, byte for byte:
tensors are packed row-major into 256-bit words of biased lanes (int8 + 128
in 8-bit lanes, int32 + 2^31 in 32-bit lanes, lane ``t`` at bits
``[t w, (t+1) w)``) and hashed as the ABI encoding of ``(tag, rows, cols,
words)``. The job id is ``sha256(abi(JOB, ops_root, input_state, L))``, so a
claim cannot name operators or an input other than the job's.

The commitment is signed by the provider over the job id, its public key,
the root and the leaf count, as PoL transcripts are.

Example:
    >>> net = QuantNet.random(dims=(32, 32, 32), rows=2, seed=0)
    >>> trace = Trace.execute(net, net.random_input(seed=1))
    >>> len(trace.leaves), trace.tree.root == Trace.execute(net, trace.x0).tree.root
    (3, True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from vcompute.core.merkle import MerkleTree

__all__ = ["JOB_TAG", "STATE_TAG", "T8_TAG", "T32_TAG", "OP_TAG", "QuantNet", "Trace", "TraceCommitment",
           "pack_int8", "pack_int32", "digest_int8", "digest_int32", "state_leaf", "op_leaf", "job_id",
           "requantise", "MAX_STEP_LANES"]

#: Domain tag of a job id (the first ABI word of what is hashed; the contract uses the same).
JOB_TAG = 1
#: Domain tag of a state leaf.
STATE_TAG = 2
#: Domain tag of an int8 tensor digest.
T8_TAG = 3
#: Domain tag of an int32 tensor digest.
T32_TAG = 4
#: Domain tag of an operator leaf.
OP_TAG = 5
_ZERO = b"\x00" * 32
#: The most lane operations one on-chain layer check may take, ``k m + rows (k + 2 m)``: a
#: 256 x 256 layer on 128 rows, measured at 24.8M gas in the checked-in build
#: (``experiments/dispute-gas.toml``). A layer above it could not be decided within a
#: 30M block, and an honest party could not prove it.
MAX_STEP_LANES = 256 * 256 + 128 * (256 + 2 * 256)
_SIG_DOMAIN = b"vcompute-dispute-trace-v1"


def _u256(v: int) -> bytes:
    return int(v).to_bytes(32, "big")


def _exact_2d(a: np.ndarray, dtype, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype != dtype:
        raise TypeError(f"{name} must be a 2-D {np.dtype(dtype).name} ndarray")
    return np.ascontiguousarray(a).view(np.ndarray)


def _pack(flat: np.ndarray, bits: int) -> list[int]:
    lanes = 256 // bits
    if flat.size % lanes:
        raise ValueError(f"a tensor packs {lanes} elements a word; its column count must be a multiple of {lanes}")
    # little-endian lane order inside a word: lane t at bits [t*bits, (t+1)*bits)
    raw = flat.astype(f"<u{bits // 8}").tobytes()
    return [int.from_bytes(raw[i:i + 32], "little") for i in range(0, len(raw), 32)]


def pack_int8(a: np.ndarray) -> list[int]:
    """Words of an int8 tensor: row-major, ``a + 128`` in 8-bit lanes (32 a word).

    Raises:
        TypeError: if ``a`` is not a 2-D int8 ndarray.
        ValueError: if its size is not a multiple of 32.
    """
    a = _exact_2d(a, np.int8, "a")
    return _pack(a.reshape(-1).astype(np.int16) + 128, 8)


def pack_int32(a: np.ndarray) -> list[int]:
    """Words of an int32 tensor: row-major, ``a + 2^31`` in 32-bit lanes (8 a word).

    Raises:
        TypeError: if ``a`` is not a 2-D int32 ndarray.
        ValueError: if its size is not a multiple of 8.
    """
    a = _exact_2d(a, np.int32, "a")
    return _pack(a.reshape(-1).astype(np.int64) + 2**31, 32)


def _abi_tagged(head: list[int], words: list[int]) -> bytes:
    # abi.encode(uint256..., uint256[]): the heads, the array's offset, its length, its words
    parts = [_u256(h) for h in head] + [_u256(32 * (len(head) + 1)), _u256(len(words))]
    return b"".join(parts) + b"".join(_u256(w) for w in words)


def digest_int8(a: np.ndarray) -> bytes:
    """The digest of an int8 tensor as ``Dispute.vy`` computes it."""
    return hashlib.sha256(_abi_tagged([T8_TAG, a.shape[0], a.shape[1]], pack_int8(a))).digest()


def digest_int32(a: np.ndarray) -> bytes:
    """The digest of an int32 tensor as ``Dispute.vy`` computes it."""
    return hashlib.sha256(_abi_tagged([T32_TAG, a.shape[0], a.shape[1]], pack_int32(a))).digest()


def state_leaf(z_digest: bytes, y_digest: bytes) -> bytes:
    """A trace leaf: ``sha256(abi(STATE, digest(z), digest(y)))`` (``z_digest`` is 32 zero bytes for the input)."""
    return hashlib.sha256(_u256(STATE_TAG) + bytes(z_digest) + bytes(y_digest)).digest()


def op_leaf(w: np.ndarray, shift: int) -> bytes:
    """A layer's operator leaf: its weight and requantisation shift."""
    w = _exact_2d(w, np.int8, "w")
    return hashlib.sha256(_abi_tagged([OP_TAG, w.shape[0], w.shape[1], shift], pack_int8(w))).digest()


def job_id(ops_root: bytes, input_state: bytes, n_layers: int) -> bytes:
    """The job id ``Dispute.vy`` derives from a job's operators, input state and depth."""
    return hashlib.sha256(_u256(JOB_TAG) + bytes(ops_root) + bytes(input_state) + _u256(n_layers)).digest()


def requantise(z: np.ndarray, shift: int) -> np.ndarray:
    """``clip(floor(z / 2^shift), -128, 127)`` as int8 (an arithmetic right shift)."""
    return np.clip(z.astype(np.int64) >> shift, -128, 127).astype(np.int8)


@dataclass(frozen=True)
class QuantNet:
    """An int8 network of linear layers with requantisation: the job's operators.

    Args:
        weights: int8 ``(k, m)`` matrices, each ``k`` the previous ``m``; every dimension a multiple of 32.
        shifts: the requantisation shift of each layer (``0..23``: the contract's requantisation
            is exact in the biased domain for those).
        rows: the batch size of the job's input.
        max_dim: the largest dimension the contract accepts (256 in the checked-in build).
        max_step_lanes: the largest on-chain layer check (lane operations) a block holds.

    Raises:
        ValueError: on mismatched shapes, dimensions not a multiple of 32 or above 256, shifts
            out of range, or a layer whose on-chain check would not fit a block (:data:`MAX_STEP_LANES`).
    """

    weights: tuple[np.ndarray, ...]
    shifts: tuple[int, ...]
    rows: int
    max_dim: int = 256
    max_step_lanes: int = MAX_STEP_LANES

    def __post_init__(self) -> None:
        if not self.weights or len(self.weights) != len(self.shifts):
            raise ValueError("weights and shifts must be non-empty and of equal length")
        for i, (w, s) in enumerate(zip(self.weights, self.shifts)):
            _exact_2d(w, np.int8, f"weights[{i}]")
            if w.shape[0] % 32 or w.shape[1] % 32:
                raise ValueError(f"weights[{i}] has shape {w.shape}; dimensions must be multiples of 32")
            if i and w.shape[0] != self.weights[i - 1].shape[1]:
                raise ValueError(f"weights[{i}] takes {w.shape[0]} inputs, the previous layer gives "
                                 f"{self.weights[i - 1].shape[1]}")
            if type(s) is not int or not 0 <= s <= 23:
                raise ValueError(f"shifts[{i}] must be an int in 0..23, got {s!r}")
        if type(self.rows) is not int or not 1 <= self.rows <= self.max_dim:
            raise ValueError(f"rows must be an int in 1..{self.max_dim}, got {self.rows!r}")
        for i, w in enumerate(self.weights):
            k, m = w.shape
            lanes = k * m + self.rows * (k + 2 * m)
            if k > self.max_dim or m > self.max_dim or lanes > self.max_step_lanes:
                raise ValueError(f"weights[{i}] ({k} x {m}) on {self.rows} rows would need {lanes} lane operations "
                                 f"on chain (at most {self.max_step_lanes}, dimensions at most {self.max_dim}): "
                                 "no block could "
                                 "decide a dispute on it; use fewer rows or narrower layers")

    @classmethod
    def random(cls, *, dims: tuple[int, ...], rows: int, seed: int, **limits: int) -> QuantNet:
        """A random network with layer widths ``dims`` (input width first), shifts keeping outputs in range.

        ``limits`` (``max_dim``, ``max_step_lanes``) are passed on, for builds with other bounds.
        """
        rng = np.random.default_rng(seed)
        ws = tuple(rng.integers(-128, 128, size=(dims[i], dims[i + 1]), dtype=np.int8) for i in range(len(dims) - 1))
        # |z| ~ 128 * 128 * sqrt(k) / 3: a shift of about log2 of that keeps y spread over int8
        shifts = tuple(int(min(23, max(0, round(np.log2(128 * 128 * np.sqrt(d) / 3 / 64))))) for d in dims[:-1])
        return cls(ws, shifts, rows, **limits)

    @property
    def n_layers(self) -> int:
        """Number of layers (the trace has one more leaf)."""
        return len(self.weights)

    @property
    def ops_tree(self) -> MerkleTree:
        """The Merkle tree over the operator leaves (layer ``l`` at index ``l - 1``)."""
        return MerkleTree([op_leaf(w, s) for w, s in zip(self.weights, self.shifts)])

    def random_input(self, *, seed: int) -> np.ndarray:
        """A random int8 input of ``rows`` x the first layer's width."""
        rng = np.random.default_rng(seed)
        return rng.integers(-128, 128, size=(self.rows, self.weights[0].shape[0]), dtype=np.int8)

    def layer(self, l: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Honest layer ``l`` (1-based): ``(z, y)`` for input ``x``."""
        z = (x.astype(np.int64) @ self.weights[l - 1].astype(np.int64)).astype(np.int32)
        return z, requantise(z, self.shifts[l - 1])


@dataclass
class Trace:
    """A provider's forward pass: every state, and the Merkle tree over their leaves.

    Args:
        net: the job's operators.
        x0: the job's input.
        states: ``(z, y)`` of each layer (what the provider claims it computed).
    """

    net: QuantNet
    x0: np.ndarray
    states: list[tuple[np.ndarray, np.ndarray]]
    _tree: MerkleTree | None = field(default=None, repr=False)

    @classmethod
    def execute(cls, net: QuantNet, x0: np.ndarray) -> Trace:
        """The honest trace of ``net`` on ``x0``."""
        states, x = [], x0
        for l in range(1, net.n_layers + 1):
            z, x = net.layer(l, x)
            states.append((z, x))
        return cls(net, x0, states)

    @property
    def leaves(self) -> list[bytes]:
        """Leaf data: the input state, then each layer's state."""
        return [state_leaf(_ZERO, digest_int8(self.x0))] + [state_leaf(digest_int32(z), digest_int8(y))
                                                            for z, y in self.states]

    @property
    def tree(self) -> MerkleTree:
        """The Merkle tree over :attr:`leaves` (its root binds the leaf count)."""
        if self._tree is None:
            self._tree = MerkleTree(self.leaves)
        return self._tree

    def state_in(self, l: int) -> tuple[bytes, np.ndarray]:
        """The input of layer ``l``: the accumulator digest inside its state leaf and the int8 tensor."""
        if l == 1:
            return _ZERO, self.x0
        z, y = self.states[l - 2]
        return digest_int32(z), y

    def commit(self, key, job: bytes) -> TraceCommitment:
        """Sign this trace's root for ``job`` with the provider's ``key`` (:class:`vcompute.core.signing.SigningKey`)."""
        msg = TraceCommitment.message(job, key.public_bytes, self.tree.root, len(self.leaves))
        return TraceCommitment(job, key.public_bytes, self.tree.root, len(self.leaves), key.sign(msg))


@dataclass(frozen=True)
class TraceCommitment:
    """A signed trace root, bound to its job and provider.

    Args:
        job: the 32-byte job id (:func:`job_id`).
        provider: the provider's Ed25519 public key.
        root: the trace's Merkle root.
        n_leaves: the number of leaves (layers + 1).
        signature: the provider's signature over :meth:`message`.
    """

    job: bytes
    provider: bytes
    root: bytes
    n_leaves: int
    signature: bytes

    @staticmethod
    def message(job: bytes, provider: bytes, root: bytes, n_leaves: int) -> bytes:
        """The signed bytes: a domain tag, the job, the provider, the root and the leaf count."""
        return _SIG_DOMAIN + bytes(job) + bytes(provider) + bytes(root) + int(n_leaves).to_bytes(8, "big")

    def verify(self, *, job: bytes, n_leaves: int) -> bool:
        """Whether the signature holds for the caller's job and leaf count (False, never raises, on bad data)."""
        from vcompute.core.signing import verify

        try:
            if not (type(self.job) is bytes and type(self.root) is bytes and len(self.root) == 32
                    and type(self.n_leaves) is int and type(self.provider) is bytes):
                return False
            if self.job != bytes(job) or self.n_leaves != n_leaves:
                return False
            return verify(self.provider, self.message(self.job, self.provider, self.root, self.n_leaves),
                          self.signature)
        except Exception:  # provider data must never raise
            return False

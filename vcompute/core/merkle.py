"""Merkle trees with inclusion proofs (SHA-256, domain-separated, size-bound roots).

Three hashes, each with its own first byte so none can pass for another:

- a leaf is ``H(0x00 || data)`` (:func:`leaf_hash`);
- an inner node is ``H(0x01 || left || right)`` (:func:`node_hash`); an odd
  node at a level is promoted unchanged;
- the **root** is ``H(0x02 || n || top)`` (:func:`root_hash`), with ``n``
  the number of leaves as 8 bytes big-endian and ``top`` the node at the
  top of the tree.

Why the leaf count is in the root: with promotion, trees of different
sizes share paths (leaf 2 of ``[a, b, c]`` has the same path as leaf 1 of
a two-leaf tree ``[ab, c]``), so a root that did not bind ``n`` let a
prover claim a leaf at a position of a tree of another size, and any
caller that took ``n`` from the prover trusted whatever it said. Now a
proof checked against the wrong ``n`` fails, whoever supplied ``n``.
Callers still take ``n`` from their own state where they have it (the
job), and a count a prover supplies is checked by :func:`verify_proof`
against the root (``proofs/signatures.md``).

Provider data versus caller misuse: :func:`verify_proof` returns False
(never raises) on any malformed proof, root, leaf, index or count,
including ``int``/``bytes``/``list`` subclasses (which could lie in
``__eq__``, ``__index__``, ``__len__`` or ``__iter__``): only exact
builtins pass. Building a tree or a proof from the caller's own data
raises ``ValueError``/``TypeError`` on misuse.

Example:
    >>> tree = MerkleTree([b"a", b"b", b"c"])
    >>> proof = tree.proof(2)
    >>> verify_proof(tree.root, b"c", 2, proof, n_leaves=3)
    True
    >>> verify_proof(tree.root, b"x", 2, proof, n_leaves=3)
    False
    >>> verify_proof(tree.root, b"c", 1, proof, n_leaves=2)  # same path, another tree size
    False
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["MAX_LEAVES", "LeafIndexError", "MerkleTree", "leaf_hash", "node_hash", "root_hash", "verify_proof"]

#: The most leaves a tree may have (the count is committed as 8 bytes).
MAX_LEAVES = 2**64 - 1


class LeafIndexError(IndexError, ValueError):
    """A caller asked for the proof of a leaf the tree does not have (an ``IndexError`` and a ``ValueError``)."""


def _exact_bytes(x: object) -> bool:
    return type(x) in (bytes, bytearray)


def leaf_hash(data: bytes) -> bytes:
    """Hash of a leaf: ``SHA256(0x00 || data)``.

    Raises:
        TypeError: if ``data`` is not bytes or bytearray.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"a Merkle leaf is bytes, not {type(data).__name__}")
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an inner node: ``SHA256(0x01 || left || right)``.

    Raises:
        ValueError: if ``left`` or ``right`` is not 32 bytes.
    """
    if not (isinstance(left, (bytes, bytearray)) and isinstance(right, (bytes, bytearray))
            and len(left) == len(right) == 32):
        raise ValueError("Merkle children are 32-byte hashes")
    return hashlib.sha256(b"\x01" + bytes(left) + bytes(right)).digest()


def root_hash(n_leaves: int, top: bytes) -> bytes:
    """The root of a tree of ``n_leaves`` whose top node is ``top``: ``SHA256(0x02 || n (8 bytes BE) || top)``.

    Raises:
        TypeError: if ``n_leaves`` is not an int.
        ValueError: if ``n_leaves`` is outside ``1..MAX_LEAVES`` or ``top`` is not 32 bytes.
    """
    if type(n_leaves) is not int:
        raise TypeError(f"n_leaves must be an int, not {type(n_leaves).__name__}")
    if not 1 <= n_leaves <= MAX_LEAVES:
        raise ValueError(f"n_leaves must be in 1..2**64-1, got {n_leaves}")
    if not (isinstance(top, (bytes, bytearray)) and len(top) == 32):
        raise ValueError("the top node is a 32-byte hash")
    return hashlib.sha256(b"\x02" + n_leaves.to_bytes(8, "big") + bytes(top)).digest()


class MerkleTree:
    """A Merkle tree over a sequence of byte strings.

    Args:
        leaves: the data items (bytes or bytearray), in order. At least one.

    Raises:
        ValueError: if ``leaves`` is empty or not all bytes.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        items = list(leaves)  # one pass: a sequence's __len__ and __getitem__ need not agree
        if len(items) == 0:
            raise ValueError("a Merkle tree needs at least one leaf")
        if not all(isinstance(x, (bytes, bytearray)) for x in items):
            raise ValueError("Merkle leaves must be bytes")
        level = [hashlib.sha256(b"\x00" + bytes(x)).digest() for x in items]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)
            level = nxt
        self._root = root_hash(len(items), level[0])

    @property
    def root(self) -> bytes:
        """The 32-byte root, which binds the number of leaves (:func:`root_hash`)."""
        return self._root

    def __len__(self) -> int:
        return len(self.levels[0])

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf ``index`` up to the top node.

        Raises:
            TypeError: if ``index`` is not an int (a bool or an int subclass included).
            LeafIndexError: if ``index`` is out of range (an ``IndexError`` and a ``ValueError``).
        """
        if type(index) is not int:
            raise TypeError(f"a leaf index is an int, not {type(index).__name__}")
        if not 0 <= index < len(self):
            raise LeafIndexError(f"leaf index {index} out of range for {len(self)} leaves")
        out = []
        for level in self.levels[:-1]:
            sib = index ^ 1
            if sib < len(level):
                out.append(level[sib])
            index //= 2
        return out


def _path_shape(index: int, n_leaves: int) -> list[bool]:
    """For each level, whether the node at ``index`` has a sibling."""
    shape = []
    n = n_leaves
    while n > 1:
        shape.append((index ^ 1) < n)
        index //= 2
        n = (n + 1) // 2
    return shape


def verify_proof(root: bytes, data: bytes, index: int, proof: Sequence[bytes], *, n_leaves: int) -> bool:
    """Check that ``data`` is leaf ``index`` of a tree of ``n_leaves`` leaves with ``root``.

    A proof made for another tree size, another index or other data fails:
    ``n_leaves`` is part of the root. Take ``n_leaves`` from your own state
    where you can; a count from the prover is safe only because it is checked
    here.

    Args:
        root: the 32-byte root (bytes or bytearray).
        data: the leaf's data (bytes or bytearray).
        index: the leaf's position (an exact ``int``).
        proof: the sibling hashes (a ``list`` or ``tuple`` of 32-byte bytes).
        n_leaves: the number of leaves (an exact ``int``, ``1..MAX_LEAVES``).

    Returns:
        Whether the proof holds; False (never an exception) on any malformed
        argument, subclasses of the builtin types included.
    """
    try:
        if not (_exact_bytes(root) and len(root) == 32 and _exact_bytes(data)):
            return False
        if not (type(index) is int and type(n_leaves) is int and 0 <= index < n_leaves <= MAX_LEAVES):
            return False
        if type(proof) not in (list, tuple):
            return False
        sibs = list(proof)
        if not all(_exact_bytes(s) and len(s) == 32 for s in sibs):
            return False
        shape = _path_shape(index, n_leaves)
        if len(sibs) != sum(shape):
            return False
        h = hashlib.sha256(b"\x00" + bytes(data)).digest()
        it = iter(sibs)
        for has_sibling in shape:
            if has_sibling:
                sib = bytes(next(it))
                h = node_hash(h, sib) if index % 2 == 0 else node_hash(sib, h)
            index //= 2
        return root_hash(n_leaves, h) == bytes(root)
    except Exception:  # defence in depth: provider data must never raise
        return False

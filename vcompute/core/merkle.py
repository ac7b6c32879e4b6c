"""Merkle trees with inclusion proofs (SHA-256, domain-separated).

Leaves are hashed as ``H(0x00 || data)`` and inner nodes as
``H(0x01 || left || right)`` so a leaf can never be passed off as a node
(the second-preimage attack on naive Merkle trees). An odd node at a level
is promoted unchanged. :func:`verify_proof` returns False on any malformed
input; it never raises.

Example:
    >>> tree = MerkleTree([b"a", b"b", b"c"])
    >>> proof = tree.proof(2)
    >>> verify_proof(tree.root, b"c", 2, proof, n_leaves=3)
    True
    >>> verify_proof(tree.root, b"x", 2, proof, n_leaves=3)
    False
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["MerkleTree", "leaf_hash", "node_hash", "verify_proof"]


def leaf_hash(data: bytes) -> bytes:
    """Hash of a leaf: ``SHA256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an inner node: ``SHA256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """A Merkle tree over a sequence of byte strings.

    Args:
        leaves: the data items (bytes), in order. At least one.

    Raises:
        ValueError: if ``leaves`` is empty or not all bytes.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if len(leaves) == 0:
            raise ValueError("a Merkle tree needs at least one leaf")
        if not all(isinstance(x, (bytes, bytearray)) for x in leaves):
            raise ValueError("Merkle leaves must be bytes")
        level = [leaf_hash(x) for x in leaves]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)
            level = nxt

    @property
    def root(self) -> bytes:
        """The 32-byte root."""
        return self.levels[-1][0]

    def __len__(self) -> int:
        return len(self.levels[0])

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf ``index`` up to the root.

        Raises:
            IndexError: if ``index`` is out of range.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"leaf index {index} out of range for {len(self)} leaves")
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
    """Check that ``data`` is leaf ``index`` of a tree of ``n_leaves`` with ``root``.

    Returns False (never raises) on any malformed argument.
    """
    try:
        if not (isinstance(root, (bytes, bytearray)) and len(root) == 32):
            return False
        if not isinstance(data, (bytes, bytearray)):
            return False
        if not (isinstance(index, int) and isinstance(n_leaves, int) and 0 <= index < n_leaves):
            return False
        shape = _path_shape(index, n_leaves)
        if len(proof) != sum(shape):
            return False
        h = leaf_hash(data)
        it = iter(proof)
        for has_sibling in shape:
            if has_sibling:
                sib = next(it)
                if not (isinstance(sib, (bytes, bytearray)) and len(sib) == 32):
                    return False
                h = node_hash(h, bytes(sib)) if index % 2 == 0 else node_hash(bytes(sib), h)
            index //= 2
        return h == bytes(root)
    except Exception:  # malformed proof objects of any kind
        return False

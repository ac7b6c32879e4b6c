"""Merkle trees: every leaf proves, nothing else does, malformed proofs are False.

The root binds the number of leaves: a leaf cannot be proven at a position of a
tree of another size (``proofs/signatures.md``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcompute.core.merkle import MAX_LEAVES, LeafIndexError, MerkleTree, leaf_hash, node_hash, root_hash, verify_proof


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=33), st.data())
def test_every_leaf_proves_and_tampering_fails(leaves, data):
    t = MerkleTree(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    p = t.proof(i)
    assert verify_proof(t.root, leaves[i], i, p, n_leaves=len(leaves))
    assert verify_proof(bytearray(t.root), bytearray(leaves[i]), i, tuple(p), n_leaves=len(leaves))
    assert not verify_proof(t.root, leaves[i] + b"x", i, p, n_leaves=len(leaves))
    if len(leaves) > 1 and leaves[i] != leaves[i ^ 1 if (i ^ 1) < len(leaves) else 0]:
        j = i ^ 1 if (i ^ 1) < len(leaves) else 0
        assert not verify_proof(t.root, leaves[i], j, t.proof(j), n_leaves=len(leaves))
    if p:
        bad = list(p)
        bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
        assert not verify_proof(t.root, leaves[i], i, bad, n_leaves=len(leaves))


def test_root_binds_the_leaf_count():
    leaves = [b"a", b"b", b"c"]
    t = MerkleTree(leaves)
    assert t.root == root_hash(3, node_hash(node_hash(leaf_hash(b"a"), leaf_hash(b"b")), leaf_hash(b"c")))
    # before: leaf 2 of 3 has the same path as leaf 1 of 2 ([ab, c]) and verified under the same root
    assert verify_proof(t.root, b"c", 2, t.proof(2), n_leaves=3)
    assert not verify_proof(t.root, b"c", 1, t.proof(2), n_leaves=2)
    assert MerkleTree([b"a"]).root == root_hash(1, leaf_hash(b"a")) != leaf_hash(b"a")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 40), data=st.data())
def test_no_proof_verifies_at_a_position_of_a_tree_of_another_size(n, m, data):
    """Whatever index and count a prover claims, only the committed (index, n) verifies."""
    leaves = [b"%d" % k for k in range(n)]
    t = MerkleTree(leaves)
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, m - 1))
    ok = verify_proof(t.root, leaves[i], j, t.proof(i), n_leaves=m)
    assert ok == (m == n and j == i)


def test_inner_node_cannot_pose_as_leaf():
    t = MerkleTree([b"a", b"b", b"c", b"d"])
    inner = node_hash(leaf_hash(b"a"), leaf_hash(b"b"))
    assert not verify_proof(t.root, inner, 0, t.proof(2)[1:], n_leaves=2)


class LyingInt(int):
    """Claims to equal and be less than everything; its arithmetic is an int's."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __lt__(self, other):
        return True

    def __le__(self, other):
        return True

    def __hash__(self):
        return 0


class LyingList(list):
    def __len__(self):
        return 0


@pytest.mark.parametrize("args", [
    (b"\x00" * 31, b"a", 0, [], 1),
    ("root", b"a", 0, [], 1),
    (b"\x00" * 32, "a", 0, [], 1),
    (b"\x00" * 32, b"a", -1, [], 1),
    (b"\x00" * 32, b"a", 0, None, 2),
    (b"\x00" * 32, b"a", 0, [b"short"], 2),
    (b"\x00" * 32, b"a", 0, [b"\x00" * 32, b"\x00" * 32], 2),
    (b"\x00" * 32, b"a", 3, [], 2),
    (b"\x00" * 32, b"a", 0, [], 0),
    (b"\x00" * 32, b"a", 0, [], MAX_LEAVES + 1),
    (b"\x00" * 32, b"a", 0, [], 10**400),
    (b"\x00" * 32, b"a", 0, [b"\x00" * 32] * 64, MAX_LEAVES),
    (b"\x00" * 32, b"a", 0, iter([b"\x00" * 32]), 2),
    (b"\x00" * 32, b"a", 0, b"\x00" * 32, 2),
    (b"\x00" * 32, b"a", 0.0, [], 1),
    (b"\x00" * 32, b"a", 0, [], 1.0),
])
def test_malformed_is_false(args):
    root, data, index, proof, n = args
    assert verify_proof(root, data, index, proof, n_leaves=n) is False


def test_hostile_objects_are_false_never_raise():
    leaves = [b"a", b"b", b"c"]
    t = MerkleTree(leaves)
    p = t.proof(2)
    assert verify_proof(t.root, b"c", 2, p, n_leaves=3)
    for index, n in [(LyingInt(2), 3), (2, LyingInt(3)), (True, 3), (np.int64(2), 3), (2, np.int64(3))]:
        assert verify_proof(t.root, b"c", index, p, n_leaves=n) is False
    assert verify_proof(t.root, b"c", 2, LyingList(p), n_leaves=3) is False
    assert verify_proof(t.root, b"c", 2, [type("B", (bytes,), {})(p[0])], n_leaves=3) is False
    assert verify_proof(type("B", (bytes,), {})(t.root), b"c", 2, p, n_leaves=3) is False
    assert verify_proof(t.root, type("B", (bytes,), {"__eq__": lambda s, o: True})(b"x"), 2, p, n_leaves=3) is False


def test_caller_misuse_raises():
    with pytest.raises(ValueError):
        MerkleTree([])
    with pytest.raises(ValueError):
        MerkleTree(["str"])
    t = MerkleTree([b"a"])
    with pytest.raises(IndexError):
        t.proof(1)
    with pytest.raises(ValueError, match="out of range"):
        t.proof(-1)
    assert issubclass(LeafIndexError, IndexError) and issubclass(LeafIndexError, ValueError)
    for bad in (True, LyingInt(0), 0.0, np.int64(0)):
        with pytest.raises(TypeError):
            t.proof(bad)
    with pytest.raises(TypeError):
        leaf_hash(5)
    with pytest.raises(ValueError):
        node_hash(b"x", b"y")
    with pytest.raises(ValueError):
        root_hash(0, bytes(32))
    with pytest.raises(TypeError):
        root_hash(LyingInt(1), bytes(32))


def test_hashes_are_domain_separated():
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(bytes(32), bytes(32)) == hashlib.sha256(b"\x01" + bytes(64)).digest()
    assert root_hash(2, bytes(32)) == hashlib.sha256(b"\x02" + (2).to_bytes(8, "big") + bytes(32)).digest()

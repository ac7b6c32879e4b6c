"""Merkle trees: every leaf proves, nothing else does, malformed proofs are False."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vcompute.core.merkle import MerkleTree, leaf_hash, node_hash, verify_proof


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=33), st.data())
def test_every_leaf_proves_and_tampering_fails(leaves, data):
    t = MerkleTree(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    p = t.proof(i)
    assert verify_proof(t.root, leaves[i], i, p, n_leaves=len(leaves))
    assert not verify_proof(t.root, leaves[i] + b"x", i, p, n_leaves=len(leaves))
    if len(leaves) > 1 and leaves[i] != leaves[i ^ 1 if (i ^ 1) < len(leaves) else 0]:
        j = i ^ 1 if (i ^ 1) < len(leaves) else 0
        assert not verify_proof(t.root, leaves[i], j, t.proof(j), n_leaves=len(leaves))
    if p:
        bad = list(p)
        bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
        assert not verify_proof(t.root, leaves[i], i, bad, n_leaves=len(leaves))


def test_inner_node_cannot_pose_as_leaf():
    t = MerkleTree([b"a", b"b", b"c", b"d"])
    inner = node_hash(leaf_hash(b"a"), leaf_hash(b"b"))
    assert not verify_proof(t.root, inner, 0, t.proof(2)[1:], n_leaves=2)


@pytest.mark.parametrize("args", [
    (b"\x00" * 31, b"a", 0, [], 1),
    ("root", b"a", 0, [], 1),
    (b"\x00" * 32, "a", 0, [], 1),
    (b"\x00" * 32, b"a", -1, [], 1),
    (b"\x00" * 32, b"a", 0, None, 2),
    (b"\x00" * 32, b"a", 0, [b"short"], 2),
    (b"\x00" * 32, b"a", 0, [b"\x00" * 32, b"\x00" * 32], 2),
    (b"\x00" * 32, b"a", 3, [], 2),
])
def test_malformed_is_false(args):
    root, data, index, proof, n = args
    assert verify_proof(root, data, index, proof, n_leaves=n) is False


def test_constructor_errors():
    with pytest.raises(ValueError):
        MerkleTree([])
    with pytest.raises(ValueError):
        MerkleTree(["str"])
    with pytest.raises(IndexError):
        MerkleTree([b"a"]).proof(1)

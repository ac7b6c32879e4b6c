"""Trace commitments of quantised forward passes (proofs/dispute.md, "Trace commitments")."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.merkle import verify_proof
from vcompute.core.signing import SigningKey
from vcompute.verify.dispute.players import STRATEGIES, corrupt_trace, make_player
from vcompute.verify.dispute.trace import (QuantNet, Trace, TraceCommitment, digest_int8, job_id, pack_int8,
                                           pack_int32, requantise)


@pytest.fixture(scope="module")
def job():
    net = QuantNet.random(dims=(32, 64, 32, 32), rows=3, seed=0)
    return net, net.random_input(seed=1)


def test_packing_is_biased_little_endian_lanes():
    a = np.arange(-16, 16, dtype=np.int8).reshape(1, 32)
    (w,) = pack_int8(a)
    assert [(w >> (8 * t)) & 255 for t in range(32)] == [int(v) + 128 for v in a[0]]
    b = np.array([[-2**31, -1, 0, 1, 2**31 - 1, 5, 6, 7]], dtype=np.int32)
    (w32,) = pack_int32(b)
    assert [(w32 >> (32 * t)) & 0xFFFFFFFF for t in range(8)] == [int(v) + 2**31 for v in b[0]]


def test_packing_refuses_other_dtypes_and_ragged_sizes():
    with pytest.raises(TypeError, match="int8"):
        pack_int8(np.zeros((1, 32), np.int16))
    with pytest.raises(ValueError, match="multiple of 32"):
        pack_int8(np.zeros((1, 31), np.int8))


def test_honest_trace_is_deterministic_and_binds_every_layer(job):
    net, x0 = job
    t = Trace.execute(net, x0)
    assert len(t.leaves) == net.n_layers + 1
    assert t.tree.root == Trace.execute(net, x0.copy()).tree.root
    for l in range(1, net.n_layers + 1):
        bad = corrupt_trace(net, x0, [l], seed=l)
        diff = [i for i, (a, b) in enumerate(zip(t.leaves, bad.leaves)) if a != b]
        assert diff[0] == l and diff[-1] == net.n_layers or diff == [l]
        assert bad.tree.root != t.tree.root


def test_leaf_openings_bind_the_leaf_count(job):
    net, x0 = job
    t = Trace.execute(net, x0)
    n = len(t.leaves)
    for i in range(n):
        assert verify_proof(t.tree.root, t.leaves[i], i, t.tree.proof(i), n_leaves=n)
        assert not verify_proof(t.tree.root, t.leaves[i], i, t.tree.proof(i), n_leaves=n + 1)


def test_requantise_is_floor_shift_and_clip():
    z = np.array([[-2**20, -9, -8, -1, 0, 7, 8, 2**20]], dtype=np.int32)
    assert requantise(z, 3).tolist() == [[-128, -2, -1, -1, 0, 0, 1, 127]]


@pytest.fixture(scope="module")
def signed(job):
    net, x0 = job
    t = Trace.execute(net, x0)
    jid = job_id(net.ops_tree.root, t.leaves[0], net.n_layers)
    return net, jid, t.commit(SigningKey.generate(seed=b"\x07" * 32), jid)


def test_commitment_signature_binds_job_provider_root_and_count(signed):
    net, jid, c = signed
    assert c.verify(job=jid, n_leaves=net.n_layers + 1)
    assert not c.verify(job=b"\x00" * 32, n_leaves=net.n_layers + 1)
    assert not c.verify(job=jid, n_leaves=net.n_layers)
    other = SigningKey.generate(seed=b"\x08" * 32)
    assert not TraceCommitment(jid, other.public_bytes, c.root, c.n_leaves, c.signature).verify(
        job=jid, n_leaves=c.n_leaves)
    assert not TraceCommitment(jid, c.provider, b"\x01" * 32, c.n_leaves, c.signature).verify(
        job=jid, n_leaves=c.n_leaves)


def test_commitment_refuses_hostile_objects(signed):
    _, jid, c = signed

    class LyingInt(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    class LyingBytes(bytes):
        def __eq__(self, other):
            return True

        __hash__ = bytes.__hash__

    assert not TraceCommitment(jid, c.provider, c.root, LyingInt(99), c.signature).verify(
        job=jid, n_leaves=c.n_leaves)
    assert not TraceCommitment(LyingBytes(b"\x00" * 32), c.provider, c.root, c.n_leaves, c.signature).verify(
        job=jid, n_leaves=c.n_leaves)
    assert not TraceCommitment(jid, c.provider, c.root, c.n_leaves, None).verify(job=jid, n_leaves=c.n_leaves)


def test_net_misuse_raises_naming_the_argument():
    w = np.zeros((32, 32), np.int8)
    with pytest.raises(ValueError, match="shifts\\[0\\]"):
        QuantNet((w,), (24,), 1)
    with pytest.raises(ValueError, match="multiples of 32"):
        QuantNet((np.zeros((32, 30), np.int8),), (3,), 1)
    with pytest.raises(ValueError, match="weights\\[1\\]"):
        QuantNet((w, np.zeros((64, 32), np.int8)), (3, 3), 1)
    with pytest.raises(ValueError, match="rows"):
        QuantNet((w,), (3,), 0)


def test_a_job_no_block_could_decide_is_refused():
    """An honest party must be able to prove any layer in one block (proofs/dispute.md, A6)."""
    w = np.zeros((256, 256), np.int8)
    QuantNet((w,), (3,), 128)  # 24.8M gas: fits
    with pytest.raises(ValueError, match="no block could"):
        QuantNet((w,), (3,), 256)
    with pytest.raises(ValueError, match="no block could"):
        QuantNet((np.zeros((288, 32), np.int8),), (3,), 1)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_lying_strategy_commits_a_wrong_result(job, strategy):
    net, x0 = job
    p = make_player(strategy, net, x0, seed=5)
    assert (p.trace.leaves[-1] == p.honest_trace.leaves[-1]) == (strategy == "honest")
    if strategy == "lie_output":  # the accumulator stays honest at the lying layer
        l = next(i for i, (a, b) in enumerate(zip(p.trace.states, p.honest_trace.states)) if a[1].tobytes() != b[1].tobytes())
        assert np.array_equal(p.trace.states[l][0], p.honest_trace.states[l][0])


@pytest.mark.parametrize("seed", range(20))
def test_a_lie_always_changes_the_result_even_through_saturated_layers(seed):
    net = QuantNet.random(dims=(32,) * 9, rows=2, seed=seed)
    x0 = net.random_input(seed=seed)
    honest = Trace.execute(net, x0)
    for l in range(1, net.n_layers + 1):
        bad = corrupt_trace(net, x0, [l], seed=seed)
        assert bad.leaves[-1] != honest.leaves[-1]
        assert bad.leaves[:l] == honest.leaves[:l] and bad.leaves[l] != honest.leaves[l]


def test_unknown_strategy_is_refused(job):
    net, x0 = job
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_player("sneaky", net, x0, seed=0)


def test_digest_depends_on_shape():
    a = np.zeros((2, 32), np.int8)
    assert digest_int8(a) != digest_int8(a.reshape(1, 64))

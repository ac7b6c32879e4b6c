"""PoL takes no leaf count on the prover's word (issue 13, class 7; ``proofs/signatures.md``).

The transcript's Merkle root binds its number of leaves, and the verifier
checks the count it is given as an exact ``int`` against the root and
against the job (``C + 2`` leaves for ``C`` segments).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vcompute.core.signing import key_from_name
from vcompute.core.types import Claim
from vcompute.verify.pol import PoLVerifier, Transcript, pol_context, prove, sign_claim
from vcompute.workloads.training import TrainSpec, make_training_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountThatAgrees(int):
    """A leaf count whose arithmetic is its real value but that compares equal to any expected count."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


@pytest.fixture(scope="module")
def honest():
    job = make_training_job(TrainSpec(framework="torch", dataset="synthetic", steps=16, checkpoint_every=2,
                                      hidden=16))
    claim, tr = prove(job, "alice")
    return job, claim, tr


def _resign(claim: Claim, evidence: dict, meta: dict) -> Claim:
    c = dataclasses.replace(claim, evidence=evidence, meta=meta, signature=None)
    return dataclasses.replace(c, signature=key_from_name(c.provider).sign(c.signing_payload()))


def _lazy(job, tr: Transcript, trained: int) -> tuple[Claim, Transcript]:
    """A prover that trained ``trained`` of the job's segments but claims them all.

    Its header is the honest one (all segments declared; the untrained ones
    declared as tiny updates so that top-Q never picks them), its tree has
    only the checkpoints it has, and it says its tree has the job's count.
    """
    header = dict(tr.header)
    table = np.asarray(header["segment_metrics"], np.float64)
    table[trained:] = 1e-12
    header["segment_metrics"] = table.tolist()
    lazy = Transcript(header, tr.checkpoints[:trained + 1], dataset=tr.dataset)
    return sign_claim(job, "alice", lazy), lazy


def test_honest_claim_still_accepted(honest):
    job, claim, tr = honest
    v = PoLVerifier(top_q=1, random_segments=0).verify(job, [claim], pol_context([claim], {"alice": tr}, seed=0))
    assert v.accepted, v.reason


def test_truncated_transcript_with_a_count_that_agrees_is_rejected(honest):
    """Before: the count passed ``n_leaves != C + 2`` by lying in ``!=``; top-Q opened only trained segments: accepted."""
    job, _, tr = honest
    claim, lazy = _lazy(job, tr, trained=4)
    n = CountThatAgrees(lazy.n_leaves)
    bad = _resign(claim, {**claim.evidence, "n_leaves": n}, {**claim.meta, "n_leaves": n})
    v = PoLVerifier(top_q=1, random_segments=0).verify(job, [bad], pol_context([bad], {"alice": lazy}, seed=0))
    assert not v.accepted
    assert "leaf count" in v.reason or "Merkle" in v.reason


@pytest.mark.parametrize("delta", [-1, 1, 2, 6])
def test_an_exact_count_that_is_not_the_trees_is_rejected(honest, delta):
    """The job's count (exact int) over a tree of another size: the header's proof fails against the root."""
    job, _, tr = honest
    claim, lazy = _lazy(job, tr, trained=7)  # 9 leaves: the depth of the job's 10-leaf tree
    n = lazy.n_leaves + 1 + delta if delta != 1 else tr.n_leaves
    bad = _resign(claim, {**claim.evidence, "n_leaves": n}, {**claim.meta, "n_leaves": n})
    v = PoLVerifier(top_q=1, random_segments=0).verify(job, [bad], pol_context([bad], {"alice": lazy}, seed=0))
    assert not v.accepted and v.reason


def test_honest_tree_with_another_claimed_count_is_rejected(honest):
    job, claim, tr = honest
    for n in (tr.n_leaves - 1, tr.n_leaves + 1, CountThatAgrees(tr.n_leaves), True, float(tr.n_leaves)):
        bad = _resign(claim, {**claim.evidence, "n_leaves": n}, {**claim.meta, "n_leaves": n})
        v = PoLVerifier(top_q=1, random_segments=0).verify(job, [bad], pol_context([bad], {"alice": tr}, seed=0))
        assert not v.accepted and v.reason, n

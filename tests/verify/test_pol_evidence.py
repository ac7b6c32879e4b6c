"""PoL evidence read without running the provider's code, and allocations bounded by the job (review of issue 12).

A ``MemoryError`` passes :meth:`~vcompute.verify.base.Scheme.verify` as the
verifier's machine failing, so evidence that can raise one (a hostile key's
``__eq__`` in a lookup, a ``bytes`` subclass's ``__len__``, a ``list``
subclass serialised for the signature, a reply ``Mapping`` answering
``__getitem__``) or make the verifier allocate what it declares (a delivered
model of broadcast views, a header declaring a larger model than the job's)
crashes the consumer instead of being rejected. Each is a rejection now.
"""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

from vcompute.core.signing import key_from_name
from vcompute.core.types import Claim
from vcompute.verify import VerifyContext
from vcompute.verify.pol import PoLVerifier, Transcript, pol_context, prove, sign_claim
from vcompute.workloads.training import TrainSpec, decode_state, make_training_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def honest():
    job = make_training_job(TrainSpec(framework="torch", dataset="synthetic", steps=8, checkpoint_every=2, hidden=16))
    claim, tr = prove(job, "alice")
    return job, claim, tr


def _resign(claim: Claim, **fields) -> Claim:
    c = dataclasses.replace(claim, signature=None, **fields)
    return dataclasses.replace(c, signature=key_from_name(c.provider).sign(c.signing_payload()))


def _verify(job, claim, tr, verifier=None, ctx=None):
    ctx = ctx or pol_context([claim], {claim.provider: tr}, seed=0)
    return (verifier or PoLVerifier(random_segments=1)).verify(job, [claim], ctx)


class Armed:
    on = False


class CollidingKey(str):
    """A meta key hashed like ``"n_leaves"``: looking that key up runs its ``__eq__``."""

    def __hash__(self):
        return str.__hash__("n_leaves")

    def __eq__(self, other):
        if Armed.on:
            raise MemoryError("raised by the provider's key")
        return str.__eq__(self, other)


class LoudBytes(bytes):
    def __len__(self):
        raise MemoryError("raised by the provider's bytes")


class LoudList(list):
    def __iter__(self):
        raise MemoryError("raised by the provider's list")


class LoudReply(dict):
    def __getitem__(self, key):
        raise MemoryError("raised by the provider's reply")

    def get(self, key, default=None):
        raise MemoryError("raised by the provider's reply")


def test_the_honest_transcript_is_still_accepted(honest):
    job, claim, tr = honest
    assert _verify(job, claim, tr).accepted


def test_evidence_that_would_raise_memory_error_is_rejected_not_raised(honest):
    """Before: 4 of 4 raised MemoryError out of verify (the consumer crashed); after: rejected with a reason."""
    job, claim, tr = honest
    attacks = {
        "a meta key colliding with n_leaves": _resign(claim, meta={**claim.meta, CollidingKey("zz"): 1}),
        "a bytes subclass as the header": dataclasses.replace(
            claim, evidence={**claim.evidence, "header": LoudBytes(claim.evidence["header"])}),
        "a list subclass in the signed meta": dataclasses.replace(claim, meta={**claim.meta, "note": LoudList([1])}),
    }
    Armed.on = True
    try:
        for name, bad in attacks.items():
            v = _verify(job, bad, tr)
            assert not v.accepted and v.blamed(1) == {0}, name
        hostile_reply = VerifyContext(seed=0, challenge=lambda c, request: LoudReply(tr.open(request)))
        v = _verify(job, claim, tr, ctx=hostile_reply)
        assert not v.accepted and "not a plain mapping" in v.reason, v.reason
    finally:
        Armed.on = False


def test_a_delivered_model_is_checked_against_the_jobs_layout_before_it_is_encoded(honest):
    """Before: a state of broadcast views was copied at its declared size; after: refused unallocated."""
    job, claim, tr = honest
    state = decode_state(tr.checkpoints[-1])[1]
    name = next(iter(state))
    big = {**state, name: np.broadcast_to(np.float32(0), (2**13, 2**13))}  # 256 MB declared over 4 bytes
    tracemalloc.start()
    try:
        v = _verify(job, dataclasses.replace(claim, output=big), tr)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not v.accepted and "delivered model" in v.reason and name in v.reason, v.reason
    assert peak < 64 * 2**20, peak
    v = _verify(job, dataclasses.replace(claim, output=state), tr)
    assert v.accepted, v.reason


def test_hyperparameters_taken_on_faith_may_not_declare_a_larger_model_than_the_jobs(honest):
    """Before: a header declaring hidden=10**9 had the verifier allocate 10**11 parameters (MemoryError)."""
    job, claim, tr = honest
    hidden, d = 10**9, 64  # 8x8 digits
    layout = [["fc1.weight", [hidden, d]], ["fc1.bias", [hidden]], ["fc2.weight", [10, hidden]], ["fc2.bias", [10]]]
    header = dict(tr.header, hparams=dict(tr.header["hparams"], hidden=hidden),
                  layout=layout + [["momentum/" + n, s] for n, s in layout])
    big = Transcript(header, tr.checkpoints, dataset=tr.dataset)
    liar = sign_claim(job, "alice", big)
    v = _verify(job, liar, big, verifier=PoLVerifier(random_segments=1, bind_hparams=False))
    assert not v.accepted and "more than the job's" in v.reason, v.reason


def test_a_failing_trusted_backend_is_the_callers_not_a_rejection(honest):
    """Before: a caller's re-execution backend raising (or no challenge channel) rejected the honest prover."""
    from vcompute.verify.base import Misuse

    job, claim, tr = honest

    def broken(job, piece):
        raise RuntimeError("the trusted cluster is down")

    ctx = pol_context([claim], {"alice": tr}, seed=0, reexecute=broken)
    with pytest.raises(Misuse, match="trusted cluster is down"):
        PoLVerifier(random_segments=1).verify(job, [claim], ctx)
    with pytest.raises(ValueError, match="challenge="):
        PoLVerifier(random_segments=1).verify(job, [claim], VerifyContext(seed=0))


def _trained(job, spec, provider="alice"):
    """``provider``'s honest states of ``spec`` (the job's seeds and data), and the signed claim declaring it."""
    from vcompute.workloads.training import backend
    from vcompute.workloads.training.pol.prover import build_transcript
    from vcompute.workloads.training.spec import dataset_of, derive_seeds, init_state

    seeds, data, k = derive_seeds(job.id, provider), dataset_of(job), spec.checkpoint_every
    states = [init_state(spec, seeds.init)]
    for j in range(spec.n_segments):
        states.append(backend(spec.framework).run_steps(spec, states[-1], j * k, k, data, data_seed=seeds.data,
                                                        aug_seed=seeds.aug))
    tr = build_transcript(job, provider, states, seeds=seeds, dataset=(data.x, data.y), declared_spec=spec)
    return sign_claim(job, provider, tr), tr


@pytest.mark.parametrize("steps,every", [(4, 2), (16, 2), (8, 1), (8, 4)])
def test_the_segment_count_is_the_jobs_even_with_hyperparameters_on_faith(honest, steps, every):
    """Before: with bind_hparams=False the transcript's own steps and checkpoint interval set the segment count:
    a lazy provider training half the job's steps (4 of 8) was accepted, and a header declaring more segments
    made the verifier walk (and allocate for) as many as the header could list."""
    job, _, _ = honest
    spec = dataclasses.replace(TrainSpec.from_dict(job.spec), steps=steps, checkpoint_every=every)
    claim, tr = _trained(job, spec)
    for verifier in (PoLVerifier(random_segments=1, bind_hparams=False), PoLVerifier.reference(delta=0.03)):
        v = _verify(job, claim, tr, verifier=verifier)
        assert not v.accepted and "the job's 8 steps every 2 give 4 segments" in v.reason, v.reason
        assert v.blamed(1) == {0}
    # the same honest training of the job's own steps is accepted in that mode
    claim, tr = _trained(job, TrainSpec.from_dict(job.spec))
    assert _verify(job, claim, tr, verifier=PoLVerifier(random_segments=1, bind_hparams=False)).accepted

"""An accepting verdict binds the exact bytes it checked (review of issue 17).

Before: a Freivalds verdict recorded nothing of the output it accepted and
ignored the claim's commitment, so the provider could keep a reference to
the array it sent (or a hostile PoL prover could rewrite the delivered model
while answering a challenge) and change it after, or during, the check; and a
claim whose commitment named other bytes than its output was accepted, while
settlement goes by the commitment. Now the :class:`~vcompute.verify.base.Scheme`
base checks a private copy of every bound claim's output, taken before the
check reads it, hands it back as ``verdict.outputs[i]``, and blames a claim
whose commitment is not the content hash of that copy (schemes whose
commitment means something else, PoL's transcript root, bind it themselves).
"""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim, Cost, Job, Verdict
from vcompute.verify import Freivalds, Replication, SpotCheck, VerifyContext
from vcompute.verify.base import Scheme
from vcompute.workloads.kinds import get_kind
from vcompute.workloads.matmul import honest_matmul, make_matmul_job

MATMUL = get_kind("matmul")
JOB = make_matmul_job(8, seed=0)


def _ctx(seed: int = 0) -> VerifyContext:
    return VerifyContext(seed=seed, reexecute=lambda job, piece: honest_matmul(job))


def _matmul_claim(behaviour="honest", provider="p", seed=0):
    return MATMUL.execute(JOB, behaviour, rng=np.random.default_rng(seed), provider=provider)


def _forward():
    from vcompute.verify.freivalds.model.job import ModelVerifier

    kind = get_kind("forward")
    job = kind.make_job("tiny", seed=0)
    return ModelVerifier(), job, kind.execute(job, "honest", rng=np.random.default_rng(0), provider="p")


def _generate():
    from vcompute.verify.inference import GenerationVerifier

    kind = get_kind("generate")
    job = kind.make_job(None, seed=0)
    return GenerationVerifier(), job, kind.execute(job, "honest", rng=np.random.default_rng(0), provider="p")


CASES = {
    "freivalds": lambda: (Freivalds(rounds=2), JOB, _matmul_claim()),
    "spotcheck": lambda: (SpotCheck(p=1.0), JOB, _matmul_claim()),
    "replication": lambda: (Replication(k=1, quorum=1), JOB, _matmul_claim()),
    "model": _forward,
    "generate": _generate,
}


def _zero(x):
    """Overwrite the provider's own object in place (what a provider keeping a reference can do)."""
    if type(x) is np.ndarray:
        x[...] = 0
    else:  # torch
        x.zero_()


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_accepted_output_changed_afterwards_is_not_what_the_verdict_holds(name):
    verifier, job, claim = CASES[name]()
    honest = content_hash(claim.output)
    v = verifier.verify(job, [claim], _ctx())
    assert v.accepted, v.reason
    _zero(claim.output)
    assert content_hash(claim.output) != honest
    assert content_hash(v.outputs[0]) == honest == claim.commitment
    assert v.outputs[0] is not claim.output


@pytest.mark.parametrize("name", ["freivalds", "model", "generate", "spotcheck", "replication"])
def test_a_commitment_naming_other_bytes_than_the_output_is_blamed(name):
    verifier, job, claim = CASES[name]()
    lie = dataclasses.replace(claim, commitment=content_hash(b"other bytes"))
    v = verifier.verify(job, [lie], _ctx())
    assert not v.accepted and v.blamed(1) == {0}
    assert "commitment" in v.reason or "commitment" in v.blame[0].reason, v.reason
    assert not verifier.verify(job, [dataclasses.replace(claim, commitment=b"x" * 64)], _ctx()).accepted


def test_a_replica_whose_commitment_lies_is_blamed_and_the_vote_stands_without_it():
    claims = [_matmul_claim(provider=f"p{i}") for i in range(3)]
    claims[1] = dataclasses.replace(claims[1], commitment=content_hash(b"other bytes"))
    v = Replication(k=3).verify(JOB, claims, _ctx())
    assert v.blamed(3) == {1} and "commitment" in v.blame[0].reason


def test_a_pol_prover_rewriting_the_delivered_model_while_answering_challenges():
    """The challenge channel is the provider's code running inside the check: it may write to what it sent."""
    from vcompute.verify.pol import PoLVerifier, pol_context, prove
    from vcompute.workloads.training import TrainSpec, decode_state, make_training_job

    job = make_training_job(TrainSpec(framework="torch", dataset="synthetic", steps=8, checkpoint_every=2, hidden=16))
    claim, tr = prove(job, "alice")
    model = decode_state(tr.checkpoints[-1])[1]
    claim = dataclasses.replace(claim, output=model)
    honest = content_hash(model)
    ctx = pol_context([claim], {"alice": tr}, seed=0)
    answer = ctx._challenge

    def rewriting(c, request):
        for a in model.values():
            a[...] = 0  # the object the claim carries, rewritten after the verifier compared it
        return answer(c, request)

    ctx._challenge = rewriting
    v = PoLVerifier(random_segments=1).verify(job, [claim], ctx)
    assert v.accepted, v.reason
    assert content_hash(claim.output) != honest and content_hash(v.outputs[0]) == honest


class _TakesAnything(Scheme):
    """A scheme that accepts whatever it is given: the base alone decides what can be bound."""

    name = "anything"

    def _check(self, job, claims, ctx):
        return Verdict.accept("fine", cost=Cost())


class Opaque:
    def __init__(self):
        self.values = [1, 2, 3]


@pytest.mark.parametrize("output,why", [
    (Opaque(), "cannot copy"),
    (np.broadcast_to(np.float32(1), (2**15, 2**15)), "broadcast"),
    (np.array([object()], dtype=object), "Python objects"),
    ([np.zeros(3)] * 2, "share memory"),
    ([[np.zeros(3)]] * 2, "reached twice"),
    (np.zeros((2, 1)).T.view(type("Sub", (np.ndarray,), {})), "cannot copy"),
])
def test_an_output_that_cannot_be_copied_is_never_accepted(output, why):
    job = Job("anything")
    tracemalloc.start()
    try:
        v = _TakesAnything().verify(job, [Claim(job.id, "p", output=output)], VerifyContext(seed=0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not v.accepted and why in v.reason and v.blamed(1) == {0}, v.reason
    assert peak < 16 * 2**20  # nothing copied at the size a view declares


def test_plain_outputs_are_copied_structure_and_all():
    job = Job("anything")
    out = {"b": [np.arange(3), (1, 2.5, "s", b"x")], "a": bytearray(b"yz"), "n": None}
    v = _TakesAnything().verify(job, [Claim(job.id, "p", output=out)], VerifyContext(seed=0))
    assert v.accepted and content_hash(v.outputs[0]) == content_hash(out)
    got = v.outputs[0]
    assert list(got) == ["b", "a", "n"] and got["b"][0] is not out["b"][0] and got["a"] is not out["a"]
    assert Freivalds().verify(JOB, [dataclasses.replace(_matmul_claim(), output=None)], _ctx()).outputs == (None,)


def test_a_structured_numpy_scalar_is_never_kept_as_a_private_copy():
    """np.void is a live view into its array (and may hold objects): refused, never kept by reference."""
    from vcompute.verify.screening import private_copy

    arr = np.zeros(2, dtype=[("a", "f8")])
    copy, why = private_copy({"y": arr[0]})
    assert copy is None and why
    objs = np.empty(1, dtype=[("a", object)])
    objs["a"][0] = object()
    copy, why = private_copy(objs[0])
    assert copy is None and why
    # plain numpy scalars stay accepted
    copy, why = private_copy({"y": np.float32(1.5)})
    assert why is None and copy["y"] == np.float32(1.5)

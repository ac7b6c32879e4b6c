"""A provider's evidence keys and token arrays run none of the provider's code and allocate nothing it did not send.

Found by the adversarial review: a ``str`` subclass key hashed like
``"proof"`` whose ``__eq__`` raised ``MemoryError`` crashed
``GenerationVerifier.verify`` (a verifier's own out-of-memory passes through
by design); a broadcast token array declaring 2^26 tokens over 8 bytes was
copied at its declared size.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from vcompute.core.types import Claim, Cost, Job, Verdict
from vcompute.verify import VerifyContext
from vcompute.verify.base import Scheme
from vcompute.verify.claims import plain_evidence
from vcompute.verify.inference.tokens import as_tokens


class Colliding(str):
    """A key equal in hash to ``target`` whose ``__eq__`` raises once armed."""

    target = "proof"
    armed = False

    def __hash__(self):
        return str.__hash__(Colliding.target)

    def __eq__(self, other):
        if Colliding.armed:
            raise MemoryError("raised by the provider's key")
        return str.__eq__(self, other)


class Looks(Scheme):
    """A scheme that looks its evidence up by key, as every real one does."""

    name = "looks"

    def _check(self, job, claims, ctx):
        ok = claims[0].evidence.get("proof") == b"ok"
        return Verdict(ok, "proof ok" if ok else "no proof", cost=Cost(flops=1))


@pytest.fixture
def armed():
    Colliding.armed = True
    yield
    Colliding.armed = False


def test_plain_evidence_keeps_only_exact_str_keys(armed):
    Colliding.armed = False
    hostile = MappingProxyType({Colliding("zz"): 1, "proof": b"ok"})
    Colliding.armed = True
    ev = plain_evidence(hostile)
    assert dict(ev) == {"proof": b"ok"}
    plain = MappingProxyType({"proof": b"ok"})
    assert plain_evidence(plain) is plain  # nothing to drop: the claim's own mapping


def test_plain_evidence_refuses_what_is_not_a_mapping():
    assert "not a mapping" in plain_evidence([("proof", b"ok")])


def test_colliding_key_is_not_looked_up(armed):
    job = Job("x")
    Colliding.armed = False
    claim = Claim(job.id, "p", output=0, evidence={Colliding("zz"): 1, "proof": b"ok"})
    Colliding.armed = True
    v = Looks().verify(job, [claim], VerifyContext(seed=0))
    assert v.accepted, v.reason


def test_swapped_in_evidence_is_a_blamed_rejection():
    job = Job("x")
    claim = Claim(job.id, "p", output=0, evidence={"proof": b"ok"})
    object.__setattr__(claim, "evidence", [("proof", b"ok")])
    v = Looks().verify(job, [claim], VerifyContext(seed=0))
    assert not v.accepted and v.blamed(1) == {0} and "not a mapping" in v.reason


def test_generation_verifier_ignores_a_colliding_key(armed):
    pytest.importorskip("torch")
    from vcompute.verify import create_verifier
    from vcompute.workloads.kinds import get_kind

    Colliding.armed = False
    kind = get_kind("generate")
    job = kind.make_job("tiny", seed=0)
    honest = kind.execute(job, "honest", rng=np.random.default_rng(0), provider="p")
    bad = Claim(job.id, "p", output=honest.output, evidence={Colliding("zz"): 1, **honest.evidence})
    Colliding.armed = True
    v = create_verifier("generate").verify(job, [bad], VerifyContext(seed=0))
    assert v.accepted, v.reason


@pytest.mark.parametrize("shape", [(2**26,), (2**40,)])
def test_broadcast_tokens_are_refused_before_any_copy(shape):
    why = as_tokens(np.broadcast_to(np.int64(0), shape), 100)
    assert isinstance(why, str) and "broadcast" in why


def test_honest_token_views_still_read():
    assert as_tokens(np.arange(10)[::-2], 100).tolist() == [9, 7, 5, 3, 1]
    assert as_tokens(np.arange(4, dtype=np.int32), 100).dtype == np.int64

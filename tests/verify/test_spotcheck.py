"""Spot-checks: known-answer jobs, re-execution audits, and the per-identity bound."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.types import Claim
from vcompute.verify import VerifyContext, create_verifier
from vcompute.verify.spotcheck import KnownAnswers, SpotCheck
from vcompute.verify.voting import wilson_interval, wrong_accepted_per_identity
from vcompute.workloads import execute, honest_matmul, make_matmul_job


def _pool(n=4):
    return KnownAnswers(lambda r: make_matmul_job(n, seed=int(r.integers(2**31))), honest_matmul)


def _ctx(seed=0):
    return VerifyContext(seed=seed, reexecute=lambda job, piece: honest_matmul(job))


def test_known_answer_jobs_catch_cheaters_and_pass_honest(rng):
    pool = _pool()
    sc = SpotCheck(q=0.5, p=0.0, known=pool)
    job = pool.draw(rng)
    assert sc.verify(job, [execute(job, "honest", rng=rng)], _ctx()).accepted
    v = sc.verify(job, [execute(job, "corrupt_entry", rng=rng)], _ctx())
    assert not v.accepted and v.details == {"check": "known_answer", "caught": True}


def test_audit_reexecutes_and_meters(rng):
    job = make_matmul_job(8, seed=1)
    ctx = _ctx()
    v = SpotCheck(p=1.0).verify(job, [execute(job, "skip_k", rng=rng)], ctx)
    assert not v.accepted and v.details["check"] == "audit"
    assert v.cost.reexecuted_fraction == 1.0 and ctx.cost.reexecuted_fraction == 1.0
    assert SpotCheck(p=1.0).verify(job, [execute(job, "honest", rng=rng)], _ctx()).accepted


def test_unchecked_jobs_are_accepted_and_say_so(rng):
    job = make_matmul_job(8, seed=1)
    v = SpotCheck(p=0.0).verify(job, [execute(job, "corrupt_entry", rng=rng)], _ctx())
    assert v.accepted and v.details["check"] == "none" and "unchecked" in v.reason


def test_audit_without_backend_rejects_with_instructions(rng):
    job = make_matmul_job(4, seed=1)
    v = SpotCheck(p=1.0).verify(job, [execute(job, "honest", rng=rng)], VerifyContext(seed=0))
    assert not v.accepted and "reexecute=" in v.reason


@pytest.mark.parametrize("behaviour", ["nan_output", "wrong_shape"])
def test_malformed_claims_rejected_even_when_unchecked(behaviour, rng):
    job = make_matmul_job(4, seed=1)
    v = SpotCheck(p=0.0).verify(job, [execute(job, behaviour, rng=rng)], _ctx())
    assert not v.accepted and "malformed" in v.reason


def test_wrong_number_of_claims_or_job(rng):
    job = make_matmul_job(4, seed=1)
    c = execute(job, "honest", rng=rng)
    assert not SpotCheck().verify(job, [c, c], _ctx()).accepted
    assert not SpotCheck().verify(job, [Claim("0" * 64, "p", output=c.output)], _ctx()).accepted
    assert not SpotCheck().verify(job, ["junk"], _ctx()).accepted


def test_mix_rate_is_q():
    sc = SpotCheck(q=0.2, p=0.0, known=_pool(2))
    jobs = [make_matmul_job(2, seed=i) for i in range(2000)]
    mixed = sc.mix(jobs, np.random.default_rng(0))
    known = sum(j.id in sc.known for j in mixed)
    lo, hi = wilson_interval(known, len(mixed), z=4)
    assert lo <= 0.2 <= hi
    # indistinguishable: known-answer jobs come from the same generator (same kind and spec keys)
    assert {j.kind for j in mixed} == {"matmul"} and len({tuple(sorted(j.spec)) for j in mixed}) == 1


def test_wrong_results_per_identity_match_the_formula():
    """A cheater (s = 1) gets (1-q)(1-p)/(q+(1-q)p) wrong results accepted before it is caught."""
    q, p = 0.2, 0.1
    rng = np.random.default_rng(3)
    pool = _pool(2)
    sc = SpotCheck(q=q, p=p, known=pool)
    real = make_matmul_job(2, seed=99)
    counts = []
    for _ in range(400):
        wrong = 0
        while True:
            job = pool.draw(rng) if rng.random() < q else real
            v = sc.verify(job, [execute(job, "corrupt_entry", rng=rng, magnitude=1.0)], _ctx(int(rng.integers(2**31))))
            if not v.accepted:
                break
            wrong += 1
        counts.append(wrong)
    mean, se = np.mean(counts), np.std(counts) / np.sqrt(len(counts))
    assert abs(mean - wrong_accepted_per_identity(q, p)) < 4 * se


def test_registry_and_bad_configuration():
    assert isinstance(create_verifier("spotcheck", p=0.5), SpotCheck)
    with pytest.raises(ValueError, match="known-answer pool"):
        SpotCheck(q=0.1)
    with pytest.raises(ValueError):
        SpotCheck(p=1.5)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(i=st.integers(0, 3), j=st.integers(0, 3), ulps=st.integers(1, 1 << 20), known=st.booleans())
def test_every_checked_tampering_is_caught(i, j, ulps, known):
    """Soundness of a check: a known-answer or audited job with any changed entry is rejected."""
    rng = np.random.default_rng(0)
    pool = _pool(4)
    job = pool.draw(rng) if known else make_matmul_job(4, seed=5)
    out = np.asarray(honest_matmul(job)).copy()
    out[i, j] += ulps * np.spacing(out[i, j])
    v = SpotCheck(q=0.5 if known else 0.0, p=1.0, known=pool).verify(job, [Claim(job.id, "p", output=out)], _ctx())
    assert not v.accepted and v.details["caught"]

"""Spot-checks: known-answer jobs, re-execution audits, and the per-identity bound."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.types import Claim
from vcompute.verify import VerifyContext, create_verifier
from vcompute.verify.replication.spotcheck import KnownAnswers, SpotCheck
from vcompute.trust.voting import wilson_interval, wrong_accepted_per_identity
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


def test_audit_without_backend_is_a_caller_error_with_instructions(rng):
    job = make_matmul_job(4, seed=1)
    with pytest.raises(ValueError, match="reexecute="):
        SpotCheck(p=1.0).verify(job, [execute(job, "honest", rng=rng)], VerifyContext(seed=0))


@pytest.mark.parametrize("behaviour", ["nan_output", "wrong_shape"])
def test_malformed_claims_rejected_even_when_unchecked(behaviour, rng):
    job = make_matmul_job(4, seed=1)
    v = SpotCheck(p=0.0).verify(job, [execute(job, behaviour, rng=rng)], _ctx())
    assert not v.accepted and "malformed" in v.reason


def test_wrong_job_is_rejected_and_wrong_arguments_raise(rng):
    job = make_matmul_job(4, seed=1)
    c = execute(job, "honest", rng=rng)
    assert not SpotCheck().verify(job, [Claim("0" * 64, "p", output=c.output)], _ctx()).accepted
    with pytest.raises(ValueError, match="exactly 1 claim"):
        SpotCheck().verify(job, [c, c], _ctx())
    with pytest.raises(TypeError, match=r"claims\[0\]"):
        SpotCheck().verify(job, ["junk"], _ctx())
    with pytest.raises(TypeError, match="claims"):
        SpotCheck().verify(job, c, _ctx())
    with pytest.raises(ValueError, match="trusted answer"):
        SpotCheck(p=1.0).verify(job, [c], VerifyContext(seed=0, reexecute=lambda j, piece: "oops"))


def test_mix_rate_is_q():
    sc = SpotCheck(q=0.2, p=0.0, known=_pool(2))
    jobs = [make_matmul_job(2, seed=int(s)) for s in np.random.default_rng(1).integers(2**31, size=2000)]
    mixed = sc.mix(jobs, np.random.default_rng(0))
    known = sum(j.id in sc.known for j in mixed)
    assert known == sc.known_count(2000) == 500 and len(mixed) == 2500
    assert [j for j in mixed if j.id not in sc.known] == jobs  # real jobs keep their order
    # indistinguishable: known-answer jobs come from the same generator (same kind and spec keys)
    assert {j.kind for j in mixed} == {"matmul"} and len({tuple(sorted(j.spec)) for j in mixed}) == 1


@pytest.mark.parametrize("q, n", [(0.2, 4), (0.3, 3), (0.5, 1)])
def test_mix_positions_are_uniform_and_batch_size_fixed(q, n):
    """C10: every slot, the last included, is known-answer with probability K/N >= q; N depends on n only."""
    from vcompute.core.types import Job

    toy = lambda r: Job("toy", {"seed": int(r.integers(2**31))})  # noqa: E731  (cheap jobs: only positions matter)
    sc = SpotCheck(q=q, p=0.0, known=KnownAnswers(toy, lambda job: np.zeros(1)))
    rng = np.random.default_rng(2)
    k = sc.known_count(n)
    assert k / (n + k) >= q and (k - 1) / (n + k - 1) < q
    hits, trials = np.zeros(n + k), 800
    for _ in range(trials):
        batch = sc.mix([toy(rng) for _ in range(n)], rng)
        assert len(batch) == n + k
        hits += [j.id in sc.known for j in batch]
    for h in hits:  # each position, first and last included, at the rate K/N
        lo, hi = wilson_interval(int(h), trials, z=4)
        assert lo <= k / (n + k) <= hi


@pytest.mark.parametrize("cheater", ["last_slot", "first_slot"])
def test_position_aware_cheater_is_caught_at_the_claimed_rate(cheater):
    """C10: before, a last-slot cheater was never caught by a known answer; now per cheat q + (1-q) p."""
    from vcompute.experiment.tasks.replication import SpotCheckIdentity

    t = SpotCheckIdentity()
    r = t.run(t.Params(stream="mix", q=0.2, p=0.05, batch=8, cheater=cheater, identities=25, n=2, horizon=40), 0)
    assert r["claimed_per_cheat"] == pytest.approx(0.2 + 0.8 * 0.05)
    assert r["cheat_within_4se"] == 1 and r["cheats"] > 1


def test_batch_size_aware_cheater_finds_no_batch_without_known_answers():
    """C10: under the old geometric mix 42% of 4-job batches had no known job and their size showed it."""
    from vcompute.experiment.tasks.replication import SpotCheckIdentity

    t = SpotCheckIdentity()
    r = t.run(t.Params(stream="mix", q=0.2, p=0.05, batch=4, cheater="batch_size", identities=10, n=2, horizon=5), 0)
    assert r["cheats"] == 0.0 and r["wrong_per_identity"] == 0.0


def test_violated_distribution_assumption_is_measured():
    """C10's assumption: real jobs seeded 0, 1, 2... are told apart by seed; known answers then never catch."""
    from vcompute.experiment.tasks.replication import SpotCheckIdentity

    t = SpotCheckIdentity()
    r = t.run(t.Params(stream="mix", q=0.2, p=0.05, batch=8, cheater="seed", real_jobs="sequential",
                       identities=20, n=2, horizon=40), 0)
    se = np.sqrt(0.05 * 0.95 / (r["cheats"] * 20))
    assert abs(r["caught_per_cheat"] - 0.05) <= 4 * se  # audits only
    assert r["cheat_within_4se"] == 0 and r["wrong_per_identity"] > 2 * r["formula"]


def test_mix_refuses_a_known_answer_job_that_stands_out():
    sc = SpotCheck(q=0.5, p=0.0, known=_pool(2))
    with pytest.raises(ValueError, match="form no real job"):
        sc.mix([make_matmul_job(3, seed=1)], np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"jobs\[1\]"):
        sc.mix([make_matmul_job(2, seed=1), "job"], np.random.default_rng(0))
    assert SpotCheck(p=0.1).mix([make_matmul_job(2, seed=1)], np.random.default_rng(0))[0].spec["seed"] == 1


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

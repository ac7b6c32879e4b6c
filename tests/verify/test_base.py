"""The Scheme base: one boundary for every verifier (issue 17, item 3), and per-claim blame from each scheme.

Each attack runs against every scheme built on the base, so a defect found
here is fixed once for all of them: hostile containers and Claim subclasses
are the caller's mistake (raised), hostile values inside a claim are the
provider's (blamed), an exception while checking evidence is a rejection,
and the cost a verdict reports is the cost the context was charged.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vcompute.core.types import Claim, Cost, Job, Verdict
from vcompute.verify import Audit, Freivalds, Replication, SpotCheck, VerifyContext
from vcompute.verify.base import Misuse, Scheme
from vcompute.workloads.kinds import get_kind
from vcompute.workloads.matmul import honest_matmul, make_matmul_job

MATMUL = get_kind("matmul")
JOB = make_matmul_job(8, seed=0)


def _claim(behaviour: str, provider: str, job: Job = JOB, seed: int = 0) -> Claim:
    return MATMUL.execute(job, behaviour, rng=np.random.default_rng(seed), provider=provider)


def _ctx(seed: int = 0) -> VerifyContext:
    return VerifyContext(seed=seed, reexecute=lambda job, piece: honest_matmul(job))


# one-claim and voting schemes over the same matmul job: every boundary test runs on each
SCHEMES = {
    "freivalds": lambda: Freivalds(rounds=2),
    "spotcheck": lambda: SpotCheck(p=1.0),
    "replication": lambda: Replication(k=1, quorum=1),
}


class LyingStr(str):
    """Equal to everything, hashed by identity: the shape of a job id or identity that lies."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __hash__(self):
        return id(self)


class LyingList(list):
    """Reports one claim and iterates an honest one, whatever it holds."""

    def __len__(self):
        return 1

    def __iter__(self):
        return iter([_claim("honest", "p")])


class ClaimSub(Claim):
    pass


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_hostile_containers_and_claim_subclasses_are_the_callers_mistake(name):
    v, good = SCHEMES[name](), _claim("honest", "p")
    with pytest.raises(TypeError, match="exact list or tuple"):
        v.verify(JOB, LyingList([_claim("random_output", "p")]), _ctx())
    with pytest.raises(TypeError, match=r"claims\[0\] is a ClaimSub"):
        v.verify(JOB, [ClaimSub(**{f.name: getattr(good, f.name) for f in dataclasses.fields(Claim)})], _ctx())
    with pytest.raises(TypeError, match="job must be"):
        v.verify(type("J", (Job,), {})(JOB.kind, dict(JOB.spec), dict(JOB.inputs)), [good], _ctx())
    with pytest.raises(TypeError, match="ctx must be"):
        v.verify(JOB, [good], object())
    assert v.verify(JOB, (good,), _ctx()).accepted  # an exact tuple is fine


@pytest.mark.parametrize("name", sorted(SCHEMES))
@pytest.mark.parametrize("field,value,why", [
    ("job_id", LyingStr("0" * 64), "another job"),
    ("job_id", b"x" * 32, "another job"),
    ("provider", 7, "not a str"),
    ("provider", "  ", "empty provider"),
    ("provider", "p\n", "control characters"),
])
def test_a_badly_bound_claim_is_rejected_and_blamed_in_every_scheme(name, field, value, why):
    bad = dataclasses.replace(_claim("honest", "p"), **{field: value})
    v = SCHEMES[name]().verify(JOB, [bad], _ctx())
    assert not v.accepted and v.blamed(1) == {0} and why in v.blame[0].reason
    if name != "replication":  # a vote without this claim has its own reason ("no quorum: ...")
        assert why in v.reason


def test_a_lying_provider_name_is_read_as_its_exact_value():
    """A str subclass as provider is copied with str.__str__: its __eq__/__hash__ cannot split or merge identities."""
    lying = [dataclasses.replace(_claim("random_output", "x"), provider=LyingStr("evil")) for _ in range(2)]
    v = Replication(k=3).verify(JOB, [_claim("honest", "honest")] + lying, _ctx())
    assert not (v.accepted and v.details["canonical_provider"] != "honest")
    assert v.blamed(3) >= {1, 2} and all(type(b.provider) is str and b.provider == "evil" for b in v.blame)


def test_a_provider_answering_twice_is_blamed_on_each_claim():
    claims = [_claim("honest", "a"), _claim("honest", "b"), _claim("random_output", "b"), _claim("honest", "c")]
    v = Replication(k=3).verify(JOB, claims, _ctx())
    assert v.accepted and v.details["agreeing"] == ["a", "c"]
    assert v.blamed(4) == {1, 2} and {b.provider for b in v.blame} == {"b"}


def test_the_number_of_claims_is_the_callers_doing():
    for n in (0, 2):
        with pytest.raises(ValueError, match="exactly 1 claim"):
            Freivalds().verify(JOB, [_claim("honest", f"p{i}") for i in range(n)], _ctx())
    assert not Replication(k=3).verify(JOB, [], _ctx()).accepted  # replicas arrive one by one: any number


class _Raising(Scheme):
    name = "raising"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def _check(self, job, claims, ctx):
        raise self.exc


def test_an_exception_while_checking_is_a_blamed_rejection_but_misuse_and_memory_are_raised():
    v = _Raising(ZeroDivisionError("hostile evidence")).verify(JOB, [_claim("honest", "p")], _ctx())
    assert not v.accepted and "ZeroDivisionError: hostile evidence" in v.reason and v.blamed(1) == {0}
    assert v.scheme == "raising"
    for exc in (Misuse("the trusted answer is malformed"), MemoryError(), RuntimeError("CUDA out of memory")):
        with pytest.raises(type(exc)):
            _Raising(exc).verify(JOB, [_claim("honest", "p")], _ctx())
    with pytest.raises(ValueError, match="trusted answer"):  # SpotCheck's caller error passes through the guard
        SpotCheck(p=1.0).verify(JOB, [_claim("honest", "p")], VerifyContext(seed=0, reexecute=lambda j, p: "x"))


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_the_verdicts_cost_is_what_the_context_was_charged(name):
    ctx = _ctx()
    ctx.add_cost(Cost(flops=5.0, seconds=1.0))
    before = ctx.cost
    v = SCHEMES[name]().verify(JOB, [_claim("honest", "p")], ctx)
    assert v.scheme == SCHEMES[name]().name and v.cost.seconds > 0
    for f in dataclasses.fields(Cost):
        assert getattr(ctx.cost, f.name) - getattr(before, f.name) == pytest.approx(getattr(v.cost, f.name)), f.name
    if name == "freivalds":
        assert v.cost.flops > 0  # the declared FLOPs are folded in once, not twice
    if name == "spotcheck":
        assert v.cost.reexecuted_fraction == 1.0


# -- per-claim blame against real cheating providers ----------------------------
@pytest.mark.parametrize("cheat", ["random_output", "corrupt_entry", "skip_k", "nan_output", "wrong_shape"])
def test_single_claim_schemes_blame_the_cheating_claim(cheat):
    for v in (Freivalds(rounds=8), SpotCheck(p=1.0)):
        verdict = v.verify(JOB, [_claim(cheat, "mallory")], _ctx())
        assert not verdict.accepted and verdict.blame[0].provider == "mallory" and verdict.blamed(1) == {0}
        assert verdict.blame[0].reason == verdict.reason
    assert not Freivalds().verify(JOB, [_claim("honest", "alice")], _ctx()).blame


def test_replication_blames_each_dissenter_and_only_them():
    claims = [_claim("honest", "h1"), _claim("random_output", "cheat", seed=1), _claim("honest", "h2"),
              dataclasses.replace(_claim("honest", "broken"), output=np.zeros((8, 9)), commitment=None)]
    v = Replication(k=4, quorum=2).verify(JOB, claims, _ctx())
    assert v.accepted and v.blamed(4) == {1, 3}
    by = {b.claim: b for b in v.blame}
    assert "differs from the answer" in by[1].reason and "malformed replica" in by[3].reason


def test_replication_without_quorum_blames_only_the_provably_wrong():
    """A tie blames no well-formed voter (who is right is unknown); see proofs/replication.md."""
    claims = [_claim("honest", "h"), _claim("random_output", "c", seed=1),
              dataclasses.replace(_claim("honest", "m"), output=np.full((8, 8), np.nan))]
    v = Replication(k=3).verify(JOB, claims, _ctx())
    assert not v.accepted and "tie" in v.reason and v.blamed(3) == {2}
    tie = Replication(k=2).verify(JOB, claims[:2], _ctx())
    assert not tie.accepted and tie.blame == () and tie.blamed(2) == {0, 1}  # Verdict's rule for no blame


def test_forward_model_verifier_blames_the_cheating_claim_alone():
    fw = get_kind("forward")
    job = fw.make_job("tiny", seed=0)
    good = fw.execute(job, "honest", rng=np.random.default_rng(0), provider="alice")
    bad = fw.execute(job, "random_output", rng=np.random.default_rng(1), provider="mallory")
    from vcompute.verify import create_verifier

    v = create_verifier("model").verify(job, [good, bad], VerifyContext(seed=0))
    assert not v.accepted and v.blamed(2) == {1} and v.blame[0].provider == "mallory"
    both = create_verifier("model").verify(job, [good, dataclasses.replace(good, provider="bob")],
                                           VerifyContext(seed=0))
    assert both.accepted and not both.blame


def test_pol_blames_the_claim_and_names_the_failing_segment():
    from vcompute.verify.pol import PoLVerifier, pol_context
    from vcompute.workloads.training import make_training_job
    from vcompute.workloads.training.pol.adversaries import run_adversary

    job = make_training_job(dataset="synthetic", steps=8, checkpoint_every=2)
    spoof = run_adversary("truncate", job, "mallory", rng=np.random.default_rng(0), trained_fraction=0.5)
    v = PoLVerifier(random_segments=1).verify(job, [spoof.claim],
                                              pol_context([spoof.claim], {"mallory": spoof.transcript}, seed=0))
    assert not v.accepted and v.blamed(1) == {0} and v.blame[0].provider == "mallory"
    seg = v.details["failed_segment"]
    assert f"segment {seg}" in v.blame[0].reason


def test_an_unaudited_verdict_blames_nobody():
    v = Audit(Freivalds(), p=0.0).verify(JOB, [_claim("random_output", "m")], _ctx())
    assert v.accepted and not v.blame
    v = Audit(Freivalds(), p=1.0).verify(JOB, [_claim("random_output", "m")], _ctx())
    assert not v.accepted and v.blamed(1) == {0}


def test_a_third_party_scheme_gets_the_plumbing_for_free():
    class Even(Scheme):
        name = "even"

        def _check(self, job, claims, ctx):
            return Verdict(int(np.sum(claims[0].output)) % 2 == 0, "parity")

    job = Job("parity")
    assert Even().verify(job, [Claim(job.id, "p", output=np.array([2]))], _ctx()).accepted
    v = Even().verify(job, [Claim(job.id, "p", output="not a number")], _ctx())  # np.sum raises on a str
    assert not v.accepted and v.blamed(1) == {0} and "could not check the evidence" in v.reason


def test_an_unprintable_exception_is_still_a_rejection():
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    v = _Raising(Unprintable()).verify(JOB, [_claim("honest", "p")], _ctx())
    assert not v.accepted and "Unprintable: <unprintable>" in v.reason


def test_a_provider_raised_base_exception_or_hostile_exception_class_is_still_a_rejection():
    class Escape(BaseException):  # not an Exception: `except Exception` alone lets it out of verify
        pass

    class NamelessMeta(type):
        @property
        def __name__(cls):
            raise ValueError("a metaclass may make even the class name hostile")

    class Nameless(Exception, metaclass=NamelessMeta):
        pass

    for exc in (Escape("out of the guard"), Nameless("hostile")):
        v = _Raising(exc).verify(JOB, [_claim("honest", "p")], _ctx())
        assert not v.accepted and v.blamed(1) == {0} and "could not check the evidence" in v.reason
    assert "Escape: out of the guard" in _Raising(Escape("out of the guard")).verify(
        JOB, [_claim("honest", "p")], _ctx()).reason
    with pytest.raises(KeyboardInterrupt):  # the operator's interrupt is never swallowed
        _Raising(KeyboardInterrupt()).verify(JOB, [_claim("honest", "p")], _ctx())


def test_a_check_returning_a_non_verdict_is_the_schemes_bug_named_not_an_attribute_error():
    class Sloppy(Scheme):
        name = "sloppy"

        def _check(self, job, claims, ctx):
            return True  # a bool, not a Verdict

    with pytest.raises(TypeError, match="Sloppy._check must return a Verdict, got bool"):
        Sloppy().verify(JOB, [_claim("honest", "p")], _ctx())


def test_an_audit_probability_too_large_for_a_float_is_a_value_error():
    from vcompute.verify.audit import audit_probability

    with pytest.raises(ValueError, match="p must be in"):
        audit_probability(10**400)
    with pytest.raises(TypeError):
        audit_probability(np.bool_(True))


def test_an_unaudited_job_still_checks_the_callers_arguments_and_each_claims_binding():
    """The coin decides whether the output is checked, never whether a claim answers this job."""
    honest = _claim("honest", "p")
    for p in (0.0, 1.0):
        with pytest.raises(TypeError, match="claims must be an exact list"):
            Audit(Freivalds(), p=p).verify(JOB, "abc", _ctx())
        with pytest.raises(TypeError, match="ctx must be a VerifyContext"):
            Audit(Freivalds(), p=p).verify(JOB, [honest], object())
        replayed = dataclasses.replace(honest, job_id="another job")  # a claim for another job, replayed
        v = Audit(Freivalds(), p=p).verify(JOB, [replayed], _ctx())
        assert not v.accepted and v.blamed(1) == {0} and "another job" in v.reason
    twice = [_claim("honest", "p"), _claim("honest", "p", seed=1)]
    v = Audit(Replication(k=2, quorum=2), p=0.0).verify(JOB, twice + [_claim("honest", "q")], _ctx())
    assert v.blamed(3) == {0, 1} and v.details["audited"] is False
    rng_draws = [Audit(Freivalds(), p=0.5).verify(JOB, [c], _ctx(7)).details["audited"] for c in (honest, replayed)]
    assert rng_draws[0] == rng_draws[1]  # the coin is tossed whatever the binding: one draw, same stream


def test_an_unaudited_job_refuses_a_number_of_claims_the_verifier_does_not_take():
    """Before: p=0 accepted zero claims (or two for a one-claim scheme) on trust, where p=1 raised ValueError."""
    for p in (0.0, 1.0):
        for claims in ([], [_claim("honest", "p"), _claim("honest", "q")]):
            with pytest.raises(ValueError, match="claim"):
                Audit(Freivalds(), p=p).verify(JOB, claims, _ctx())
    v = Audit(Replication(k=3), p=0.0).verify(JOB, [_claim("honest", "p")], _ctx())  # replicas arrive one by one
    assert v.accepted and v.details["audited"] is False

"""Replication verifier: completeness across backends, collusion against the formula, malformed replicas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vcompute.core.types import Claim, Job
from vcompute.verify import VERIFIERS, Verifier, VerifyContext, create_verifier
from vcompute.verify.replication.equality import Bitwise, Homogeneous, Tolerance
from vcompute.verify.replication import Replication
from vcompute.trust.voting import majority_error, wilson_interval
from vcompute.workloads import execute, make_matmul_job


def _claims(job, behaviours, seed=0):
    rng = np.random.default_rng(seed)
    return [execute(job, b, rng=rng, provider=f"p{i}") for i, b in enumerate(behaviours)]


@pytest.mark.parametrize("quorum", ["unanimity", "majority", 2])
def test_unanimous_honest_replicas_accepted_on_every_backend(backend, quorum):
    job = make_matmul_job(16, backend=backend, seed=3)
    v = Replication(k=3, quorum=quorum).verify(job, _claims(job, ["honest"] * 3), VerifyContext(seed=0))
    assert v.accepted, v.reason
    assert v.details["canonical_provider"] == "p0"
    assert v.details["disagreeing"] == []
    assert v.cost.reexecuted_fraction == 2.0


def test_honest_replicas_on_different_backends_agree_under_calibrated_tolerance():
    from vcompute.core.arrays import from_numpy

    base = make_matmul_job(32, seed=4)
    outs = {}
    for b in ("numpy", "torch", "jax"):
        pytest.importorskip(b) if b != "numpy" else None
        a, bb = (from_numpy(np.asarray(base.inputs[x]), b) for x in ("a", "b"))
        outs[b] = a @ bb
    claims = [Claim(base.id, name, output=np.asarray(o) if name != "torch" else o.numpy())
              for name, o in outs.items()]
    v = Replication(k=3, quorum="unanimity", equality=Tolerance(rtol=1e-5)).verify(
        base, claims, VerifyContext(seed=0))
    assert v.accepted, v.reason


def test_minority_cheater_is_named_and_outvoted():
    job = make_matmul_job(8, seed=1)
    v = Replication(k=3).verify(job, _claims(job, ["honest", "corrupt_entry", "honest"]), VerifyContext(seed=0))
    assert v.accepted
    assert v.details["agreeing"] == ["p0", "p2"] and v.details["disagreeing"] == ["p1"]


def test_colluding_majority_wins_and_honest_replica_is_the_dissenter():
    job = make_matmul_job(8, seed=1)
    v = Replication(k=3).verify(job, _claims(job, ["colluding", "honest", "colluding"]), VerifyContext(seed=0))
    assert v.accepted  # the limitation voting's error formula quantifies
    assert v.details["canonical_provider"] == "p0" and v.details["disagreeing"] == ["p1"]


def test_non_colluding_cheaters_cannot_form_a_quorum():
    job = make_matmul_job(8, seed=1)
    v = Replication(k=3).verify(job, _claims(job, ["corrupt_entry", "honest", "random_output"]),
                                VerifyContext(seed=0))
    assert not v.accepted and "no quorum" in v.reason


def test_colluding_majority_rate_matches_the_formula():
    """k=3 majority voting with colluders at rate phi accepts a wrong answer w.p. majority_error(3, phi)."""
    job = make_matmul_job(4, seed=2)
    honest, bad = _claims(job, ["honest", "colluding"])
    rng = np.random.default_rng(7)
    phi, trials, wrong = 0.3, 1500, 0
    verifier = Replication(k=3)
    for _ in range(trials):
        picks = rng.random(3) < phi
        claims = [Claim(job.id, f"p{i}", output=(bad if b else honest).output) for i, b in enumerate(picks)]
        v = verifier.verify(job, claims, VerifyContext(rng=rng))
        assert v.accepted
        wrong += v.details["canonical_commitment"] == bad.commitment
    lo, hi = wilson_interval(wrong, trials, z=4.0)
    assert lo <= majority_error(3, phi) <= hi


def test_coordinated_colluders_are_bounded_by_the_coordinated_formula_not_the_independent_one():
    """C9: a ring deciding from the job id when to cheat beats majority_error(3, phi s) ~3x; the bound holds."""
    from vcompute.experiment.tasks.replication import ReplicationCollusion

    task = ReplicationCollusion()
    r = task.run(task.Params(k=3, phi=0.3, s=0.3, coordination="job", trials=800, n=2), 0)
    assert r["error_lo"] > 1.5 * r["formula"]  # the independent claim is broken
    assert r["bound_within_ci"] == 1 and r["coordinated_bound"] == pytest.approx(0.3 * majority_error(3, 0.3))
    ind = task.run(task.Params(k=3, phi=0.3, s=0.3, coordination="independent", trials=600, n=2), 0)
    assert ind["within_ci"] == 1 and ind["bound_holds"] == 1


def test_m_first_more_needed():
    job = make_matmul_job(8, seed=1)
    r = Replication(quorum=3)
    assert r.k == 5
    claims = _claims(job, ["honest", "colluding", "honest"])
    assert r.more_needed(job, claims) == 1
    assert not r.verify(job, claims, VerifyContext(seed=0)).accepted
    claims += [execute(job, "honest", rng=np.random.default_rng(0), provider="p9")]
    assert r.more_needed(job, claims) == 0
    assert r.verify(job, claims, VerifyContext(seed=0)).accepted


def test_tie_is_not_accepted():
    job = make_matmul_job(8, seed=1)
    v = Replication(k=2, quorum=1).verify(job, _claims(job, ["honest", "colluding"]), VerifyContext(seed=0))
    assert not v.accepted and "tie" in v.reason


def test_tolerance_separates_low_precision_from_honest():
    job = make_matmul_job(64, seed=5)
    claims = _claims(job, ["honest", "honest", "low_precision"])
    v = Replication(k=3, quorum="unanimity", equality="tolerance", rtol=1e-5).verify(job, claims, VerifyContext(seed=0))
    assert not v.accepted and v.details["disagreeing"] == ["p2"]


def test_homogeneous_redundancy_compares_only_within_a_class():
    job = make_matmul_job(8, seed=1)
    out = _claims(job, ["honest"])[0].output
    claims = [Claim(job.id, f"p{i}", output=out, meta={"hardware_class": hc})
              for i, hc in enumerate(["sm90", "sm80", "sm90"])]
    v = Replication(k=3, equality=Homogeneous()).verify(job, claims, VerifyContext(seed=0))
    assert v.accepted and v.details["disagreeing"] == ["p1"]
    v = Replication(k=3, quorum="unanimity", equality=Homogeneous()).verify(job, claims, VerifyContext(seed=0))
    assert not v.accepted


def _malformed(job, good):
    return {
        "nan": Claim(job.id, "nan", output=np.where(np.arange(good.size).reshape(good.shape) == 0, np.nan, good)),
        "inf": Claim(job.id, "inf", output=good * np.inf),
        "shape": Claim(job.id, "shape", output=good[:, :-1]),
        "missing": Claim(job.id, "missing", output=None),
        "string": Claim(job.id, "string", output="the answer is 42"),
        "object": Claim(job.id, "object", output=object()),
        "dtype": Claim(job.id, "dtype", output=np.array([["a"] * good.shape[1]] * good.shape[0])),
        "other-job": Claim("0" * 64, "other-job", output=good),
        "commitment": Claim(job.id, "commitment", output=good, commitment="f" * 64),
        "empty": Claim(job.id, "empty", output={}),
    }


def test_malformed_replicas_count_as_disagreeing_never_crash():
    job = make_matmul_job(6, seed=1)
    good = np.asarray(job.inputs["a"] @ job.inputs["b"])
    bad = _malformed(job, good)
    for name, claim in bad.items():
        claims = [Claim(job.id, "h1", output=good), claim, Claim(job.id, "h2", output=good)]
        v = Replication(k=3).verify(job, claims, VerifyContext(seed=0))
        assert v.accepted, (name, v.reason)
        assert name in v.details["disagreeing"] and name in v.details["malformed"], name
        v = Replication(k=3, quorum="unanimity").verify(job, claims, VerifyContext(seed=0))
        assert not v.accepted, name
    v = Replication(k=3).verify(job, list(bad.values())[:3], VerifyContext(seed=0))
    assert not v.accepted and "no well-formed replica" in v.reason


def test_duplicate_provider_loses_its_vote_and_non_claims_are_caller_errors():
    """A provider answers a job once: every claim of a repeated identity is blamed and gets no vote."""
    job = make_matmul_job(6, seed=1)
    good = np.asarray(job.inputs["a"] @ job.inputs["b"])
    claims = [Claim(job.id, "same", output=good), Claim(job.id, "same", output=good)]
    v = Replication(k=3).verify(job, claims, VerifyContext(seed=0))
    assert not v.accepted and v.details["group_sizes"] == [] and v.details["identities"] == 0
    assert v.blamed(2) == {0, 1} and "sent 2 claims" in v.blame[0].reason
    with pytest.raises(TypeError, match=r"claims\[2\]"):
        Replication(k=3).verify(job, claims + ["not a claim"], VerifyContext(seed=0))


class _LyingStr(str):
    """A provider name that is never equal to anything and hashes by object identity."""

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    def __hash__(self):
        return id(self)


@pytest.mark.parametrize("ids", [[None, None], ["", ""], [" ", "  "], [7, 8], [b"x", b"y"], ["\n", "\t"],
                                 [_LyingStr("evil"), _LyingStr("evil")], ["evil", "evil"], ["evil", "evil "],
                                 [None, "evil"]])
def test_anonymous_or_repeated_identities_cannot_outvote_an_honest_replica(ids):
    """Class 5: two wrong claims without distinct real identities never beat one honest replica."""
    job = make_matmul_job(4, seed=1)
    good = np.asarray(job.inputs["a"] @ job.inputs["b"])
    bad = good + 1
    claims = [Claim(job.id, "honest", output=good)] + [Claim(job.id, i, output=bad) for i in ids]
    for k in (3, 2):
        v = Replication(k=k, quorum=2).verify(job, claims, VerifyContext(seed=0))
        assert not (v.accepted and v.details["canonical_provider"] != "honest"), (ids, v.reason)
        names = v.details["agreeing"] + v.details["disagreeing"]
        assert all(type(n) is str for n in names)  # identities are exact builtins in the verdict
    assert max(Replication(k=3).verify(job, claims, VerifyContext(seed=0)).details["group_sizes"]) == 1


def test_a_provider_that_equivocates_forfeits_its_vote():
    job = make_matmul_job(4, seed=1)
    good = np.asarray(job.inputs["a"] @ job.inputs["b"])
    claims = [Claim(job.id, "a", output=good), Claim(job.id, "b", output=good + 1),
              Claim(job.id, "b", output=good), Claim(job.id, "c", output=good)]
    v = Replication(k=3).verify(job, claims, VerifyContext(seed=0))
    assert v.accepted and v.details["agreeing"] == ["a", "c"] and "sent 2 claims" in v.details["malformed"]["b"]


def test_anonymous_claims_never_win_the_tolerance_or_homogeneous_vote():
    job = make_matmul_job(4, seed=1)
    good = np.asarray(job.inputs["a"] @ job.inputs["b"])
    meta = {"hardware_class": "sm90"}
    claims = [Claim(job.id, "h", output=good, meta=meta), Claim(job.id, "", output=good + 1, meta=meta),
              Claim(job.id, None, output=good + 1, meta=meta), Claim(job.id, "h2", output=good, meta=meta)]
    for eq in (Tolerance(rtol=1e-5), Homogeneous()):
        v = Replication(k=3, equality=eq).verify(job, claims, VerifyContext(seed=0))
        assert v.accepted and v.details["agreeing"] == ["h", "h2"] and len(v.details["malformed"]) == 2


@pytest.mark.parametrize("bad_call", [dict(claims=None), dict(claims="abc"), dict(claims=5), dict(job="job"),
                                      dict(ctx=None), dict(claims={"p": 1})])
def test_caller_misuse_raises_naming_the_argument(bad_call):
    """Class 4: a caller's wrong arguments raise TypeError, never a rejection that slashes a provider."""
    job = make_matmul_job(4, seed=1)
    args = dict(job=job, claims=[Claim(job.id, "p", output=np.zeros((4, 4), np.float32))], ctx=VerifyContext(seed=0))
    args.update(bad_call)
    name = next(iter(bad_call))
    with pytest.raises(TypeError, match=name):
        Replication(k=3).verify(args["job"], args["claims"], args["ctx"])


@given(st.lists(st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5),
                          st.lists(st.floats(allow_nan=True), max_size=4)), min_size=0, max_size=5))
def test_garbage_outputs_give_a_verdict(outputs):
    job = make_matmul_job(2, seed=0)
    claims = [Claim(job.id, f"g{i}", output=np.asarray(o) if isinstance(o, list) else o)
              for i, o in enumerate(outputs)]
    v = Replication(k=3).verify(job, claims, VerifyContext(seed=0))
    assert isinstance(v.accepted, bool)
    if len(outputs) < 2:
        assert not v.accepted


def test_registry_and_protocol():
    assert "replication" in VERIFIERS.names()
    r = create_verifier("replication", k=5, quorum=3, equality="tolerance", rtol=1e-6)
    assert isinstance(r, Verifier) and r.replicas(Job("x")) == 5 and isinstance(r.equality, Tolerance)
    assert isinstance(Replication().equality, Bitwise)


@pytest.mark.parametrize("kw", [dict(k=0), dict(quorum="most"), dict(quorum=4, k=3), dict(equality="fuzzy"),
                                dict(equality="tolerance")])
def test_bad_configuration_is_a_clear_error(kw):
    with pytest.raises(ValueError):
        Replication(**kw)


@given(i=st.integers(0, 5), j=st.integers(0, 5), ulps=st.integers(1, 1 << 20), sign=st.sampled_from([-1, 1]),
       where=st.integers(0, 2))
def test_any_tampering_is_a_disagreement_under_bitwise(i, j, ulps, sign, where):
    """Soundness of bitwise equality: a replica changed by even one ULP never joins the honest group."""
    job = make_matmul_job(6, seed=11)
    good = np.asarray(job.inputs["a"] @ job.inputs["b"])
    bad = good.copy()
    bad[i, j] = np.float32(bad[i, j]) + sign * ulps * np.spacing(np.float32(bad[i, j]))
    outs = [good, good, good]
    outs[where] = bad
    claims = [Claim(job.id, f"p{k}", output=o) for k, o in enumerate(outs)]
    v = Replication(k=3).verify(job, claims, VerifyContext(seed=0))
    assert v.accepted and v.details["disagreeing"] == [f"p{where}"]
    assert v.details["canonical_provider"] != f"p{where}"
    assert not Replication(k=3, quorum="unanimity").verify(job, claims, VerifyContext(seed=0)).accepted


@given(factor=st.floats(1.5, 1e6), i=st.integers(0, 5), j=st.integers(0, 5))
def test_tampering_beyond_the_tolerance_is_a_disagreement(factor, i, j):
    """Soundness of tolerance equality: a change above rtol x max|C| is always detected."""
    rtol = 1e-5
    job = make_matmul_job(6, seed=12)
    good = np.asarray(job.inputs["a"] @ job.inputs["b"]).astype(np.float64)
    bad = good.copy()
    bad[i, j] += factor * rtol * np.max(np.abs(good)) * 1.01
    claims = [Claim(job.id, "h", output=good), Claim(job.id, "t", output=bad)]
    v = Replication(k=2, quorum="unanimity", equality="tolerance", rtol=rtol).verify(job, claims, VerifyContext(seed=0))
    assert not v.accepted and v.details["group_sizes"] == [1, 1]

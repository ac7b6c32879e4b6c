"""Job kinds: every honest job is accepted by each of its kind's verifiers; every behaviour is caught."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.registry import UnknownPluginError
from vcompute.verify import VERIFIERS, VerifyContext
from vcompute.workloads.behaviours import BEHAVIOURS as OLD_BEHAVIOURS
from vcompute.workloads.behaviours import execute as old_execute
from vcompute.workloads.kinds import KINDS, JobKind, canonical_kind, get_kind, kind_of_job
from vcompute.workloads.kinds.behaviours import BEHAVIOURS

pytest.importorskip("torch")

BUILTIN = ("matmul", "forward", "generate", "train")


def _job(kind: JobKind, seed: int):
    return kind.make_job("tiny", seed=seed)


def _check(kind: JobKind, scheme: str, job, claims, seed: int):
    ctx = VerifyContext(rng=np.random.default_rng([seed, 9]), reexecute=kind.reexecute,
                        challenge=kind.challenge_channel(job, claims))
    return VERIFIERS.create(scheme, **kind.verifier_params(scheme)).verify(job, claims, ctx)


def test_builtins_are_registered_lazily_and_declare_everything():
    assert set(BUILTIN) <= set(KINDS.names())
    for name in BUILTIN:
        k = get_kind(name)
        assert k.name == name and k.verifiers and all(v in VERIFIERS for v in k.verifiers)
        assert set(k.cheats) == {"random_output", "skip_k", "low_precision"}
        assert all(b in k.behaviours for b in k.cheats.values()) and k.behaviours[0] == "honest"
        assert k.flops(_job(k, 0)) > 0
    assert canonical_kind("inference") == "forward" and canonical_kind("training") == "train"
    with pytest.raises(UnknownPluginError, match="unknown job kind 'bogus'"):
        get_kind("bogus")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_honest_job_is_accepted_by_each_default_verifier(name):
    kind = get_kind(name)
    for scheme in kind.verifiers:
        for seed in range(2):
            job = _job(kind, seed)
            k = VERIFIERS.create(scheme).replicas(job)
            claims = [kind.execute(job, "honest", rng=np.random.default_rng([seed, i]), provider=f"p{i}")
                      for i in range(k)]
            v = _check(kind, scheme, job, claims, seed)
            assert v.accepted, (name, scheme, seed, v.reason)
            assert not v.blame


def _cases():
    out = []
    for name in BUILTIN:
        kind = get_kind(name)
        out += [pytest.param(name, b, id=f"{name}/{b}") for b in kind.behaviours if b != "honest"]
    return out


@pytest.mark.parametrize("name,behaviour", _cases())
def test_every_behaviour_is_rejected_by_the_default_verifier(name, behaviour):
    kind = get_kind(name)
    scheme = kind.verifiers[0]
    reasons = []
    for seed in range(4):  # a real cheater; a near-tie may let one seed through (see proofs/inference.md)
        job = _job(kind, seed)
        claim = kind.execute(job, behaviour, rng=np.random.default_rng(seed), provider="mallory")
        v = _check(kind, scheme, job, [claim], seed)
        if not v.accepted:
            assert v.blamed(1) == frozenset({0})
            return
        reasons.append(v.reason)
    pytest.fail(f"{name}/{behaviour} was accepted on every seed: {reasons}")


def test_one_registry_keyed_per_kind_with_the_old_names_still_working():
    assert OLD_BEHAVIOURS is BEHAVIOURS
    assert BEHAVIOURS.of("matmul", "skip_k") is BEHAVIOURS.get("skip_k") is BEHAVIOURS.get("matmul/skip_k")
    assert BEHAVIOURS.get("generate.fewer_layers") is BEHAVIOURS.of("generate", "fewer_layers")
    assert "skip_k" in BEHAVIOURS and "skip_k" not in BEHAVIOURS.names()  # resolved, not listed
    assert all("/" in n for n in BEHAVIOURS.names())
    assert get_kind("train").behaviours == ["honest", *sorted(b for b in BEHAVIOURS.of_kind("train") if b != "honest")]
    mm = get_kind("matmul")
    job = mm.make_job(16, seed=0)
    old = old_execute(job, "skip_k", rng=np.random.default_rng(3))
    new = mm.execute(job, "skip_k", rng=np.random.default_rng(3))
    assert old.commitment == new.commitment
    fw = get_kind("forward")
    fjob = fw.make_job("tiny", seed=0)
    assert kind_of_job(fjob) is fw
    assert old_execute(fjob, "honest", rng=np.random.default_rng(0)).commitment == \
        fw.execute(fjob, "honest", rng=np.random.default_rng(0)).commitment
    with pytest.raises(UnknownPluginError, match="known forward behaviours: honest"):
        fw.execute(fjob, "skip_k", rng=np.random.default_rng(0))


def test_misuse_raises_and_names_the_argument():
    mm, fw = get_kind("matmul"), get_kind("forward")
    with pytest.raises(ValueError, match="expected a 'forward' job"):
        fw.execute(mm.make_job(8, seed=0), "honest", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown forward job size 'huge'"):
        fw.make_job("huge", seed=0)
    with pytest.raises(ValueError, match="forward jobs run on backend torch"):
        fw.make_job("tiny", seed=0, backend="jax")
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        mm.execute(mm.make_job(8, seed=0), "honest", rng=0)

    class LyingStr(str):
        def __eq__(self, other):
            return True

        __hash__ = str.__hash__

    with pytest.raises(ValueError, match="unknown forward job size"):
        fw.make_job(LyingStr("huge"), seed=0)  # its __eq__ runs in no lookup
    assert mm.size(np.int64(32)) == 32 and type(mm.size(np.int64(32))) is int
    with pytest.raises(ValueError, match="matmul size"):
        mm.size(True)


def test_a_forward_claim_without_its_trace_or_for_another_job_is_a_blamed_rejection():
    from vcompute.core.types import Claim

    fw = get_kind("forward")
    job, other = fw.make_job("tiny", seed=0), fw.make_job("tiny", seed=1)
    good = fw.execute(job, "honest", rng=np.random.default_rng(0))
    bare = Claim(job_id=job.id, provider="p0", output=good.output, commitment=good.commitment)
    stale = fw.execute(other, "honest", rng=np.random.default_rng(0), provider="p1")

    class Liar(str):
        def __ne__(self, other):
            return False

        __hash__ = str.__hash__

    lying = Claim(job_id=Liar(other.id), provider="p0", output=stale.output, commitment=stale.commitment,
                  evidence=dict(stale.evidence))
    cases = ((bare, "no trace"), (stale, "another job"), (lying, "another job"))
    for bad, why in cases:
        v = _check(fw, "model", job, [good, bad], 0)
        assert not v.accepted and why in v.reason and v.blamed(2) == frozenset({1})
    with pytest.raises(TypeError, match="not an exact Claim"):  # the caller assembles the claims list
        _check(fw, "model", job, [good, "not a claim"], 0)


class _HostileName(str):
    """A provider name whose every own method is the provider's code."""

    def __str__(self):
        raise RuntimeError("a provider's __str__ ran")

    __repr__ = __format__ = __str__

    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


def test_a_forward_provider_holding_the_job_cannot_rewrite_the_model_it_is_checked_against():
    # the module is the provider's own copy; the arrays are read-only against accidental writes (a holder
    # may clear the flag: real mode gives each provider its own job, tests/market/test_job_isolation.py)
    import torch

    from vcompute.workloads.kinds.forward import input_of, module_of
    from vcompute.workloads.models import torch_provider

    fw = get_kind("forward")
    job = fw.make_job("tiny", seed=0)
    lazy = module_of(job)
    with torch.no_grad():
        lazy[0].weight.mul_(0.5)  # a module it was handed is its own, not the verifier's
    out, trace = torch_provider(lazy, input_of(job))
    assert module_of(job) is not module_of(job)
    with pytest.raises(ValueError, match="read-only"):
        job.inputs["weights"]["0.weight"][:] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        job.inputs["x"][:] = 0.0
    with pytest.raises(TypeError):
        job.inputs["weights"]["0.weight"] = np.zeros((32, 16), np.float32)
    from vcompute.core.types import Claim

    honest_claim = fw.execute(job, "honest", rng=np.random.default_rng(0))
    assert _check(fw, "model", job, [honest_claim], 0).accepted
    poisoned = Claim(job_id=job.id, provider="p1", output=out, evidence={"trace": trace})
    v = _check(fw, "model", job, [honest_claim, poisoned], 0)
    assert not v.accepted and v.blamed(2) == frozenset({1})


def test_a_provider_name_whose_own_methods_lie_or_raise_is_a_rejection_not_a_crash():
    from vcompute.core.types import Claim

    fw = get_kind("forward")
    job = fw.make_job("tiny", seed=0)
    good = fw.execute(job, "honest", rng=np.random.default_rng(0))
    hostile = Claim(job_id=job.id, provider=_HostileName("p1"), output=np.zeros((4, 8), np.float32),
                    evidence=dict(good.evidence))
    v = _check(fw, "model", job, [good, hostile], 0)
    assert not v.accepted and v.blamed(2) == frozenset({1})
    assert type(v.blame[0].provider) is str and v.blame[0].provider == "p1"

    tr = get_kind("train")
    tjob = tr.make_job("tiny", seed=0)
    claim = tr.execute(tjob, "honest", rng=np.random.default_rng(0), provider="p0")
    channel = tr.challenge_channel(tjob, [claim])
    lying = Claim(job_id=claim.job_id, provider=_HostileName("p0"), output=claim.output,
                  commitment=_HostileName(claim.commitment), evidence=dict(claim.evidence), meta=dict(claim.meta))
    assert "error" in channel(lying, {"kind": "anything"})
    assert _check(tr, "pol", tjob, [claim], 0).accepted

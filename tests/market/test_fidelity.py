"""Real mode (real jobs, real verifiers) and modelled mode (calibration table) agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vcompute.market.calibration import default_table
from vcompute.market.config import MarketParams
from vcompute.market.fidelity import ModelledWork, RealWork, resolve
from vcompute.market.sim import run_market
from vcompute.verify import VERIFIERS


def _two_proportion_ok(h1, n1, h2, n2, z=3.29):
    """|p1 - p2| within the 99.9 % two-sided band of a pooled two-proportion test."""
    p = (h1 + h2) / (n1 + n2)
    se = math.sqrt(max(p * (1 - p), 1e-12) * (1 / n1 + 1 / n2))
    return abs(h1 / n1 - h2 / n2) <= z * se + 1e-12


@pytest.mark.parametrize("verifier, audit_p", [("spotcheck", 1.0), ("freivalds", 0.3)])
def test_real_and_modelled_modes_agree_within_confidence_intervals(verifier, audit_p):
    mix = [{"name": "mm", "kind": "matmul", "pflop": 30.0, "memory_gb": 8, "real_n": 16}]
    base = {"jobs": 1200, "providers": {"count": 12}, "consumers": {"count": 4, "mix": mix, "verifier": verifier,
            "audit_p": audit_p}, "adversary": {"behaviour": "lazy", "fraction": 0.5, "cheat_rate": 0.5},
            "matching": {"reputation_weight": 0.0}}
    real = run_market(MarketParams.model_validate({**base, "mode": "real"}), seed=11)
    model = run_market(MarketParams.model_validate({**base, "mode": "modelled"}), seed=11)
    for a, b in ((real, model), (model, real)):
        assert a["cheat_rate"] > 0.1
    # detection: caught per cheat
    assert _two_proportion_ok(real["caught"], real["cheat_rate"] * real["jobs_completed"],
                              model["caught"], model["cheat_rate"] * model["jobs_completed"])
    # fraud: wrong results accepted per completed job
    assert _two_proportion_ok(real["wrong_accepted"], real["jobs_completed"],
                              model["wrong_accepted"], model["jobs_completed"])
    assert real["false_rejects"] == model["false_rejects"] == 0
    # checking cost: the modelled share is the calibrated one
    assert model["verify_compute_share"] == pytest.approx(real["verify_compute_share"], rel=0.5, abs=0.01)


def test_real_work_catches_real_cheats_with_freivalds():
    w = RealWork(VERIFIERS.create("freivalds"), seed=3)
    for key, cheat in enumerate(["random_output", "skip_k", "low_precision"]):
        out = w.run(job_key=key, n=32, cheats=[cheat], audit=True)
        assert out.accepted is False and out.reason
    honest = w.run(job_key=9, n=32, cheats=[None], audit=True)
    assert honest.accepted is True and 0 < honest.verify_fraction < 1
    unchecked = w.run(job_key=9, n=32, cheats=["random_output"], audit=False)
    assert unchecked.accepted is None


def test_real_replication_colluders_agree_and_referee_settles_a_tie():
    w = RealWork(VERIFIERS.create("replication", k=3), seed=0)
    out = w.run(job_key=1, n=16, cheats=["random_output"] * 2 + [None], audit=True, colluding=[True, True, False])
    assert out.tokens[0] == out.tokens[1] != out.tokens[2]
    assert out.reference == out.tokens[0]  # the colluding majority stands
    w2 = RealWork(VERIFIERS.create("replication", k=2), seed=0)
    tie = w2.run(job_key=2, n=16, cheats=["random_output", None], audit=True)
    assert tie.reference == tie.tokens[1] and tie.verify_fraction >= 1.0  # the referee re-executed


def test_modelled_work_draws_the_calibrated_detection():
    table = default_table()
    w = ModelledWork(table, "spotcheck", 1, np.random.default_rng(0))
    n = 4000
    caught = sum(w.run(job_key=i, n=48, cheats=["skip_k"], audit=True).accepted is False for i in range(n))
    lo, hi = table.interval("spotcheck", "skip_k")
    p = table.detect("spotcheck", "skip_k")
    assert abs(caught / n - p) < 3.3 * math.sqrt(p * (1 - p) / n) + 1e-9
    assert lo <= p <= hi


def test_resolve_majority_and_referee():
    assert resolve([1, 1, 2]) == (1, False)
    assert resolve([1, 2]) == (None, True)
    assert resolve([3, 3, 3]) == (None, False)
    assert resolve([1, 2, 3]) == (None, True)


def test_a_colluding_majority_a_scheme_refused_is_settled_by_the_referee_not_by_its_votes():
    """Unanimity rejects [honest, c, c]: the verdict names nobody, so the colluders' majority must not decide."""
    w = RealWork(VERIFIERS.create("replication", k=3, quorum="unanimity"), seed=0)
    out = w.run(job_key=1, n=16, cheats=[None, "skip_k", "skip_k"], audit=True, colluding=[False, True, True])
    assert out.accepted is False and out.blame == frozenset({1, 2}), out
    assert w.stats.false_rejects == 0 and w.stats.caught == 2
    # a scheme that accepted the majority's answer still settles by it (majority vote's known weakness)
    w = RealWork(VERIFIERS.create("replication", k=3), seed=0)
    out = w.run(job_key=1, n=16, cheats=[None, "skip_k", "skip_k"], audit=True, colluding=[False, True, True])
    assert out.accepted is True and out.blame == frozenset({0})


def test_settlement_pays_only_for_a_commitment_the_verdict_bound_to_the_bytes_it_checked():
    """Before: a provider committing to other bytes than the (correct) output it sent was accepted, and settlement,
    which goes by the commitment, paid for bytes Freivalds never checked; now the claim is blamed (review of issue 17)."""
    import dataclasses

    from vcompute.core.hashing import content_hash
    from vcompute.market.fidelity import RealWork
    from vcompute.verify import Freivalds

    class CommitsElsewhere:
        def __init__(self, kind):
            self._kind = kind

        def __getattr__(self, name):
            return getattr(self._kind, name)

        def execute(self, job, behaviour, **kw):
            claim = self._kind.execute(job, behaviour, **kw)
            return dataclasses.replace(claim, commitment=content_hash(b"promised")) if kw["provider"] == "p0" else claim

    work = RealWork(Freivalds(rounds=2), seed=0)
    assert work.run(job_key=1, n=16, cheats=[None], audit=True).accepted
    work.kind = CommitsElsewhere(work.kind)
    out = work.run(job_key=1, n=16, cheats=[None], audit=True)
    assert not out.accepted and out.blame == frozenset({0}) and "commitment" in out.reason

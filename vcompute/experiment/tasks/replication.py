"""Replication, spot-check and adaptive-replication experiments.

Five tasks, each reproducing a claim of ``proofs/replication.md``:

- ``replication.voting``: M-first voting Monte Carlo against Sarmenta's
  formula (``within_ci`` says whether the formula is inside the 3-sigma
  interval of the simulated error).
- ``replication.collusion``: the real :class:`~vcompute.verify.Replication`
  verifier on real matmul claims from a mix of honest and colluding
  providers, against the majority-vote formula.
- ``replication.adaptive``: adaptive replication policies over a host
  population with faulty hosts and streak-then-cheat attackers: residual
  error and overhead (BOINC's goal: ``<= 1e-4`` at ``<= 10%``).
- ``replication.credibility``: credibility-based fault tolerance against
  the redundancy M-first voting needs for the same error.
- ``spotcheck.identity``: the real :class:`~vcompute.verify.replication.spotcheck.SpotCheck`
  verifier against a cheater: wrong results accepted per identity.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from vcompute.core.types import Claim
from vcompute.experiment.tasks.base import TaskParams
from vcompute.verify.base import VerifyContext
from vcompute.trust.montecarlo import simulate_adaptive, simulate_credibility, simulate_m_first
from vcompute.trust.policies import Blacklist, ConsecutiveValid, ErrorRate, FixedReplication, ReplicationPolicy
from vcompute.trust.voting import (m_first_redundancy, majority_error, min_m_for_error, wilson_interval,
                                    wrong_accepted_per_identity)

__all__ = ["MFirstVoting", "ReplicationCollusion", "AdaptiveReplication", "CredibilityVsVoting",
           "SpotCheckIdentity", "POLICY_PRESETS", "make_preset"]


class MFirstVotingParams(TaskParams):
    """Parameters of :class:`MFirstVoting`."""

    m: int = Field(15, ge=1, le=200, description="votes needed (M)")
    f: float = Field(0.35, ge=0, le=1, description="saboteur fraction")
    s: float = Field(1.0, ge=0, le=1, description="sabotage rate")
    c: float = Field(1.0, ge=0, le=1, description="collusion rate")
    trials: int = Field(100_000, ge=100, le=100_000_000, description="jobs simulated")


class MFirstVoting:
    """M-first voting error and redundancy, simulated and from the formula.

    Metrics: ``error_rate``, ``error_lo``, ``error_hi``, ``formula``,
    ``within_ci`` (1 if the formula lies in the interval; expected for
    ``c = 1``), ``redundancy``, ``formula_redundancy``.
    """

    Params = MFirstVotingParams
    description = "M-first voting against colluding saboteurs, checked against err(M, f s)"
    metrics = ("error_rate", "error_lo", "error_hi", "formula", "within_ci", "redundancy", "formula_redundancy",
               "trials")

    def run(self, params: MFirstVotingParams, seed: int) -> dict[str, Any]:
        """Simulate ``trials`` jobs."""
        r = simulate_m_first(params.m, params.f, s=params.s, c=params.c, trials=params.trials,
                             rng=np.random.default_rng(seed))
        r["within_ci"] = int(r["error_lo"] <= r["formula"] <= r["error_hi"])
        return r


class ReplicationCollusionParams(TaskParams):
    """Parameters of :class:`ReplicationCollusion`."""

    k: int = Field(3, ge=1, le=99, description="replicas (majority vote)")
    phi: float = Field(0.3, ge=0, le=1, description="probability a replica is a colluder")
    s: float = Field(1.0, ge=0, le=1, description="share of jobs a colluder cheats on")
    coordination: Literal["job", "independent"] = Field(
        "job", description="job: the ring decides from a hash of the job id (all cheat together); "
                           "independent: each colluder flips its own coin")
    n: int = Field(8, ge=2, le=512, description="matrix size of each job")
    trials: int = Field(1000, ge=10, le=1_000_000, description="jobs verified")


class ReplicationCollusion:
    """The real replication verifier against colluders, vs the independent formula and the coordinated bound.

    Each replica is a colluder with probability ``phi``; a colluder cheats
    on a share ``s`` of jobs, decided from the job (``coordination="job"``:
    the whole ring cheats together) or by its own coin (``"independent"``).

    Metrics: ``wrong_accepted`` (fraction of jobs whose canonical result is
    the colluders'), ``error_lo``/``error_hi``, ``formula`` (the
    independent formula ``majority_error(k, phi s)``), ``within_ci``
    (formula inside the 3-sigma interval), ``over_formula``
    (``wrong_accepted / formula``), ``coordinated_bound``
    (``coordinated_majority_error(k, phi, s)``), ``bound_holds`` (the
    bound is not below the interval), ``bound_within_ci`` and ``accepted``.
    """

    Params = ReplicationCollusionParams
    description = "Replication verifier (majority) on real matmul claims with colluding replicas"
    metrics = ("wrong_accepted", "error_lo", "error_hi", "formula", "within_ci", "over_formula",
               "coordinated_bound", "bound_holds", "bound_within_ci", "accepted")

    def run(self, params: ReplicationCollusionParams, seed: int) -> dict[str, Any]:
        """Verify ``trials`` jobs, each replica colluding with probability ``phi``."""
        from vcompute.verify.replication import Replication
        from vcompute.trust.correlated import coordinated_majority_error
        from vcompute.workloads import execute, make_matmul_job

        rng = np.random.default_rng(seed)
        verifier = Replication(k=params.k)
        wrong = accepted = 0
        for _ in range(params.trials):
            job = make_matmul_job(params.n, seed=int(rng.integers(2**31)))
            honest = execute(job, "honest", rng=rng)
            bad = execute(job, "colluding", rng=rng)  # the ring's shared wrong answer
            picks = rng.random(params.k) < params.phi
            if params.coordination == "job":
                ring = execute(job, "colluding", rng=rng, rate=params.s)  # honest output unless the ring cheats
                outs = [(ring if b else honest).output for b in picks]
            else:
                cheat = rng.random(params.k) < params.s
                outs = [(bad if b and c else honest).output for b, c in zip(picks, cheat)]
            claims = [Claim(job.id, f"p{i}", output=o) for i, o in enumerate(outs)]
            v = verifier.verify(job, claims, VerifyContext(rng=rng))
            accepted += v.accepted
            wrong += bool(v.accepted and v.details["canonical_commitment"] == bad.commitment)
        lo, hi = wilson_interval(wrong, params.trials)
        formula = majority_error(params.k, params.phi * params.s)
        bound = coordinated_majority_error(params.k, params.phi, params.s)
        rate = wrong / params.trials
        return {"wrong_accepted": rate, "error_lo": lo, "error_hi": hi, "formula": formula,
                "within_ci": int(lo <= formula <= hi), "over_formula": rate / formula if formula > 0 else 0.0,
                "coordinated_bound": bound, "bound_holds": int(lo <= bound),
                "bound_within_ci": int(lo <= bound <= hi), "accepted": accepted / params.trials}


#: Named policy setups for ``replication.adaptive``: (policy factory, backtrack).
POLICY_PRESETS: dict[str, str] = {
    "fixed2": "two replicas for every job (plain redundancy)",
    "boinc_cv": "BOINC adaptive replication: trust w.p. 1 - 1/CV once CV >= 10",
    "boinc_error_rate": "BOINC's older error-rate rule (limit 0.05)",
    "cv_backtrack": "BOINC CV rule + backtracking of a caught host's unchecked results",
    "resist": "CV rule with a 5% checking floor + ban on first invalid + backtracking",
    "cv_throttle": "BOINC CV rule + punitive throttling (quota halved per invalid, doubled per valid), no ban",
}


def make_preset(name: str) -> tuple[ReplicationPolicy, bool]:
    """A fresh policy and its backtracking flag for a preset of :data:`POLICY_PRESETS`.

    Raises:
        ValueError: for an unknown preset, listing the known ones.

    Example:
        >>> make_preset("resist")[1]
        True
    """
    if name == "fixed2":
        return FixedReplication(k=2), False
    if name == "boinc_cv":
        return ConsecutiveValid(threshold=10), False
    if name == "boinc_error_rate":
        return ErrorRate(), False
    if name == "cv_backtrack":
        return ConsecutiveValid(threshold=10), True
    if name == "resist":
        return Blacklist(ConsecutiveValid(threshold=10, min_check=0.05), max_invalid=1), True
    if name == "cv_throttle":
        return Blacklist(ConsecutiveValid(threshold=10), max_invalid=10**9, max_quota=64), False
    raise ValueError(f"unknown policy preset {name!r}; known: {', '.join(POLICY_PRESETS)}")


class AdaptiveReplicationParams(TaskParams):
    """Parameters of :class:`AdaptiveReplication`."""

    policy: Literal["fixed2", "boinc_cv", "boinc_error_rate", "cv_backtrack", "resist", "cv_throttle"] = "boinc_cv"
    hosts: int = Field(1000, ge=10, le=1_000_000)
    jobs: int = Field(300_000, ge=100, le=100_000_000)
    faulty_fraction: float = Field(0.01, ge=0, le=1, description="share of faulty hosts")
    fault_rate: float = Field(0.05, ge=0, le=1, description="error rate of a faulty host")
    attacker_fraction: float = Field(0.0, ge=0, le=1, description="share of streak-then-cheat hosts")
    attacker_streak: int = Field(20, ge=0, le=1_000_000, description="honest results before cheating")
    honest_error_rate: float = Field(0.0, ge=0, le=1, description="occasional errors of honest hosts")
    residual_target: float = Field(1e-4, gt=0, description="BOINC's residual error goal")
    overhead_target: float = Field(0.10, gt=0, description="BOINC's overhead goal")


class AdaptiveReplication:
    """Residual error and overhead of a replication policy over a host population.

    Metrics: ``residual_error``, ``error_hi``, ``overhead``,
    ``meets_target`` (1 if residual ``<=`` target and overhead ``<=``
    target), ``unreplicated_share``, ``banned``, ``backtracked``.
    """

    Params = AdaptiveReplicationParams
    description = "adaptive replication: residual error vs overhead, with faulty hosts and streak attackers"
    metrics = ("residual_error", "error_lo", "error_hi", "overhead", "meets_target", "unreplicated_share", "banned",
               "backtracked", "accepted", "wrong_accepted")

    def run(self, params: AdaptiveReplicationParams, seed: int) -> dict[str, Any]:
        """Dispatch ``jobs`` through the preset policy."""
        policy, backtrack = make_preset(params.policy)
        r = simulate_adaptive(policy, hosts=params.hosts, jobs=params.jobs,
                              faulty_fraction=params.faulty_fraction, fault_rate=params.fault_rate,
                              attacker_fraction=params.attacker_fraction, attacker_streak=params.attacker_streak,
                              honest_error_rate=params.honest_error_rate, backtrack=backtrack,
                              rng=np.random.default_rng(seed))
        r["meets_target"] = int(r["residual_error"] <= params.residual_target
                                and r["overhead"] <= params.overhead_target)
        return r


class CredibilityParams(TaskParams):
    """Parameters of :class:`CredibilityVsVoting`."""

    workers: int = Field(100, ge=2, le=100_000)
    entries: int = Field(10_000, ge=1, le=10_000_000)
    f: float = Field(0.35, ge=0, le=0.99)
    s: float = Field(1.0, ge=0, le=1)
    q: float = Field(0.1, ge=0, le=0.99, description="spot-check rate")
    threshold: float = Field(0.999, gt=0, lt=1, description="credibility threshold 1 - eps")
    coordinated: bool = Field(False, description="saboteurs cheat together on the same entries (decided from the job)")
    rule: Literal["independent", "coordinated"] = Field(
        "independent", description="group credibility: Sarmenta's (independent) or the coordinated bound")


class CredibilityVsVoting:
    """Credibility-based fault tolerance vs the M-first voting it replaces.

    Metrics: ``error_rate``, ``error_hi``, ``redundancy`` (results per
    entry), ``slowdown`` (turns per entry, spot-checks included),
    ``voting_m`` (smallest ``M`` with ``err(M, f s) <= 1 - threshold``),
    ``voting_redundancy`` (M-first's expected replicas for that ``M``) and
    ``slowdown_over_voting``, ``over_target`` (``error_rate`` over the
    target ``1 - threshold``) and ``meets_target`` (1 unless the error is
    significantly above the target: the 3-sigma interval's lower end
    ``error_lo <= 1 - threshold``).
    """

    Params = CredibilityParams
    description = "Sarmenta's credibility-based fault tolerance vs M-first voting at the same error"
    metrics = ("error_rate", "error_lo", "error_hi", "redundancy", "slowdown", "overhead", "caught", "unfinished",
               "voting_m", "voting_redundancy", "slowdown_over_voting", "over_target", "meets_target")

    def run(self, params: CredibilityParams, seed: int) -> dict[str, Any]:
        """Simulate one batch."""
        r = simulate_credibility(workers=params.workers, entries=params.entries, f=params.f, s=params.s,
                                 q=params.q, threshold=params.threshold, coordinated=params.coordinated,
                                 rule=params.rule, rng=np.random.default_rng(seed))
        eps = 1.0 - params.threshold
        r.update(over_target=r["error_rate"] / eps, meets_target=int(r["error_lo"] <= eps))
        phi = params.f * params.s
        m = min_m_for_error(1.0 - params.threshold, phi) if phi < 0.5 else None
        vr = m_first_redundancy(m, phi) if m else float("inf")
        r.update(voting_m=float(m) if m else float("inf"), voting_redundancy=vr,
                 slowdown_over_voting=r["slowdown"] / vr)
        return r


class SpotCheckIdentityParams(TaskParams):
    """Parameters of :class:`SpotCheckIdentity`."""

    q: float = Field(0.1, ge=0, lt=1, description="known-answer rate")
    p: float = Field(0.05, ge=0, le=1, description="audit probability of real jobs")
    behaviour: str = Field("corrupt_entry", description="the cheater's behaviour")
    identities: int = Field(200, ge=1, le=1_000_000, description="cheater identities, each run until caught")
    n: int = Field(4, ge=2, le=256, description="matrix size")
    stream: Literal["coin", "mix"] = Field(
        "coin", description="coin: each slot is known-answer with probability q; mix: batches of SpotCheck.mix")
    batch: int = Field(8, ge=1, le=4096, description="real jobs per mixed batch (stream = mix)")
    cheater: Literal["always", "last_slot", "first_slot", "batch_size", "seed"] = Field(
        "always", description="when it cheats: every slot; only the last / first slot of a batch; only in "
                              "batches of exactly `batch` jobs; only on jobs whose spec seed is below 2**20")
    real_jobs: Literal["same", "sequential"] = Field(
        "same", description="same: real jobs from the known-answer generator; sequential: seeds 0, 1, 2, ... "
                            "(a distribution a provider can tell from the known-answer one)")
    horizon: int = Field(200, ge=1, le=1_000_000, description="batches an identity plays at most (stream = mix)")


class SpotCheckIdentity:
    """The real spot-check verifier against a cheater that re-enters when caught.

    With ``stream = "coin"`` each slot is a known-answer job with
    probability ``q``. With ``stream = "mix"`` the consumer sends batches
    made by :meth:`~vcompute.verify.replication.spotcheck.SpotCheck.mix` and the
    cheater picks *where* to cheat from what it sees (position, batch size,
    the job's seed); ``q`` is then the batch's known share ``K / N``.

    Metrics: ``wrong_per_identity`` (mean), its standard error ``se``,
    ``formula`` (``(1-q)(1-p)/(q+(1-q)p)``), ``within_4se``;
    ``caught_per_cheat`` (share of its cheats that are caught),
    ``claimed_per_cheat`` (``q + (1-q) p``), ``cheat_within_4se`` and
    ``cheats`` (cheats per identity).
    """

    Params = SpotCheckIdentityParams
    description = "SpotCheck (known answers at rate q, audits at p) vs a cheater: wrong results per identity"
    metrics = ("wrong_per_identity", "se", "formula", "within_4se", "caught_per_cheat", "claimed_per_cheat",
               "cheat_within_4se", "cheats")

    def run(self, params: SpotCheckIdentityParams, seed: int) -> dict[str, Any]:
        """Run each identity until it is caught (or, for ``mix``, its horizon ends)."""
        from vcompute.verify.replication.spotcheck import KnownAnswers, SpotCheck
        from vcompute.workloads import execute, honest_matmul, make_matmul_job

        rng = np.random.default_rng(seed)
        make = lambda r: make_matmul_job(params.n, seed=int(r.integers(2**31)))  # noqa: E731
        pool = KnownAnswers(make, honest_matmul)
        sc = SpotCheck(q=params.q, p=params.p, known=pool)
        q_eff = params.q
        if params.stream == "mix":
            k = sc.known_count(params.batch)
            q_eff = k / (params.batch + k)
        counter = iter(range(1 << 62))
        counts, cheats, caught = [], 0, 0

        def check(job, cheat) -> bool:
            claim = execute(job, params.behaviour if cheat else "honest", rng=rng)
            ctx = VerifyContext(rng=rng, reexecute=lambda j, piece: honest_matmul(j))
            return sc.verify(job, [claim], ctx).accepted

        for _ in range(params.identities):
            wrong, out = 0, False
            if params.stream == "coin":
                while wrong < 100_000 and not out:
                    job = pool.draw(rng) if rng.random() < params.q else make(rng)
                    cheats += 1
                    out = not check(job, True)
                    wrong += not out
            else:
                for _ in range(params.horizon):
                    real = [make(rng) if params.real_jobs == "same"
                            else make_matmul_job(params.n, seed=next(counter)) for _ in range(params.batch)]
                    mixed = sc.mix(real, rng)
                    for pos, job in enumerate(mixed):
                        cheat = {"always": True, "last_slot": pos == len(mixed) - 1, "first_slot": pos == 0,
                                 "batch_size": len(mixed) == params.batch,
                                 "seed": int(job.spec["seed"]) < 2**20}[params.cheater]
                        if not cheat:
                            continue
                        cheats += 1
                        out = not check(job, True)
                        if out:
                            break
                        wrong += 1
                    if out:
                        break
            caught += out
            counts.append(wrong)
        mean, se = float(np.mean(counts)), float(np.std(counts) / np.sqrt(len(counts)))
        formula = wrong_accepted_per_identity(q_eff, params.p)
        d = q_eff + (1.0 - q_eff) * params.p
        rate = caught / cheats if cheats else float("nan")
        cse = float(np.sqrt(d * (1.0 - d) / max(cheats, 1)))
        return {"wrong_per_identity": mean, "se": se, "formula": formula,
                "within_4se": int(abs(mean - formula) <= 4 * max(se, 1e-12)),
                "caught_per_cheat": rate, "claimed_per_cheat": d,
                "cheat_within_4se": int(cheats > 0 and abs(rate - d) <= 4 * max(cse, 1e-12)),
                "cheats": cheats / params.identities}

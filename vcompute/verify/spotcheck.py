"""Spot-checks: known-answer jobs mixed in at rate q, and random re-execution audits.

Paper: L. F. G. Sarmenta, "Sabotage-tolerance mechanisms for volunteer
computing systems", FGCS 18(4), 2002 (spot-checking with blacklisting).

A consumer precomputes the answers of a few jobs drawn from the *same*
generator as its real jobs (so a provider cannot tell them apart) and mixes
them into its stream at rate ``q``; a real job is re-executed on trusted
hardware with probability ``p``. One claim per job; an unchecked real job is
accepted on trust, and the verdict says so. The error bounds (linear in the
work, unlike voting's exponential fall) are in ``proofs/replication.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.base import VerifyContext
from vcompute.verify.equality import Equality
from vcompute.verify.replication import expected_shape, make_equality, screen_output

__all__ = ["KnownAnswers", "SpotCheck"]


class KnownAnswers:
    """The consumer's pool of jobs whose answers it computed itself.

    Args:
        make_job: draws a job from the consumer's real job distribution.
        solve: the trusted computation of a job's answer.

    Example:
        >>> from vcompute.workloads.matmul import make_matmul_job, honest_matmul
        >>> pool = KnownAnswers(lambda r: make_matmul_job(4, seed=int(r.integers(2**31))), honest_matmul)
        >>> job = pool.draw(np.random.default_rng(0))
        >>> job.id in pool
        True
    """

    def __init__(self, make_job: Callable[[np.random.Generator], Job], solve: Callable[[Job], Any]) -> None:
        self.make_job = make_job
        self.solve = solve
        self._answers: dict[str, Any] = {}

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._answers

    def __len__(self) -> int:
        return len(self._answers)

    def add(self, job: Job, answer: Any) -> None:
        """Record a job whose answer the consumer already knows."""
        self._answers[job.id] = answer

    def draw(self, rng: np.random.Generator) -> Job:
        """Make a fresh job from the real distribution and precompute its answer."""
        job = self.make_job(rng)
        self._answers[job.id] = self.solve(job)
        return job

    def answer(self, job_id: str) -> Any:
        """The known answer of ``job_id``.

        Raises:
            KeyError: if the job is not a known-answer job.
        """
        return self._answers[job_id]


class SpotCheck:
    """Accept single claims, checking a random fraction of them.

    Args:
        q: rate of known-answer jobs in the stream :meth:`mix` produces.
        p: probability that a real job is re-executed (``ctx.reexecute``).
        known: the known-answer pool (needed for ``q > 0``).
        equality: how a claim is compared with the trusted answer
            (an :class:`~vcompute.verify.equality.Equality` or its name).
        rtol, ulp: bounds for ``equality="tolerance"``.

    Raises:
        ValueError: for rates outside ``[0, 1)``/``[0, 1]`` or ``q > 0`` without a pool.

    Example:
        >>> from vcompute.workloads.matmul import make_matmul_job, honest_matmul
        >>> job = make_matmul_job(4, seed=0)
        >>> ctx = VerifyContext(seed=0, reexecute=lambda j, piece: honest_matmul(j))
        >>> claim = Claim(job.id, "p", output=honest_matmul(job) + 1)
        >>> SpotCheck(p=1.0).verify(job, [claim], ctx).accepted
        False
    """

    name = "spotcheck"

    def __init__(self, *, q: float = 0.0, p: float = 0.1, known: KnownAnswers | None = None,
                 equality: Equality | str | None = None, rtol: float | None = None,
                 ulp: float | None = None) -> None:
        if not (isinstance(q, (int, float)) and 0.0 <= q < 1.0):
            raise ValueError(f"q must be in [0, 1), got {q!r}")
        if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        if q > 0 and known is None:
            raise ValueError("q > 0 needs a known-answer pool: pass known=KnownAnswers(make_job, solve)")
        self.q, self.p = float(q), float(p)
        self.known = known
        self.equality = make_equality(equality, rtol=rtol, ulp=ulp)

    def __repr__(self) -> str:
        return f"SpotCheck(q={self.q}, p={self.p}, equality={self.equality!r})"

    @property
    def detection_probability(self) -> float:
        """Chance that one slot of the mixed stream is checked: ``q + (1 - q) p``."""
        return self.q + (1.0 - self.q) * self.p

    def mix(self, jobs: Iterable[Job], rng: np.random.Generator) -> list[Job]:
        """Interleave known-answer jobs so that a fraction ``q`` of the stream is known.

        Before each real job, known-answer jobs are inserted while a coin of
        bias ``q`` comes up heads (a geometric count with mean ``q/(1-q)``).
        """
        out: list[Job] = []
        for job in jobs:
            while self.q > 0 and rng.random() < self.q:
                out.append(self.known.draw(rng))  # type: ignore[union-attr]
            out.append(job)
        return out

    # -- Verifier protocol ------------------------------------------------
    def replicas(self, job: Job) -> int:
        """One claim."""
        return 1

    def evidence(self, job: Job) -> EvidenceSpec:
        """Only the output."""
        return EvidenceSpec("output")

    def verify(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext) -> Verdict:
        """Check a known-answer job always, a real job with probability ``p``."""
        t0, before = time.perf_counter(), ctx.cost
        try:
            verdict = self._verify(job, list(claims), ctx)
        except Exception as e:  # a backend error on hostile data must not escape
            verdict = Verdict.reject(f"could not check the claim: {type(e).__name__}: {e}", scheme=self.name)
        elapsed = time.perf_counter() - t0
        metered = ctx.cost  # includes the re-execution ctx.reexecute metered
        ctx.add_cost(Cost(seconds=max(0.0, elapsed - (metered.seconds - before.seconds))))
        return verdict.with_cost(Cost(flops=metered.flops - before.flops, seconds=elapsed,
                                      reexecuted_fraction=metered.reexecuted_fraction - before.reexecuted_fraction))

    def _verify(self, job: Job, claims: list[Claim], ctx: VerifyContext) -> Verdict:
        audit_draw = float(ctx.rng.random())  # drawn always, so streams do not depend on the branch
        if len(claims) != 1:
            return Verdict.reject(f"expected exactly 1 claim, got {len(claims)}", scheme=self.name)
        claim = claims[0]
        if not isinstance(claim, Claim) or claim.job_id != job.id:
            return Verdict.reject("claim answers another job (job id mismatch)", scheme=self.name)
        known = self.known is not None and job.id in self.known
        reason = screen_output(claim, expected_shape(job))
        if reason is not None:
            return Verdict.reject(f"malformed output: {reason}", scheme=self.name,
                                  details={"check": "known_answer" if known else "screen", "caught": True})
        if known:
            expected, check = self.known.answer(job.id), "known_answer"  # type: ignore[union-attr]
        elif audit_draw < self.p:
            try:
                expected = ctx.reexecute(job, None, fraction=1.0)
            except RuntimeError as e:
                return Verdict.reject(f"audit drawn but {e}", scheme=self.name, details={"check": "audit"})
            check = "audit"
        else:
            return Verdict.accept(f"accepted unchecked (audit probability {self.p:g} not drawn)",
                                  scheme=self.name, details={"check": "none", "caught": False})
        trusted = Claim(job.id, "trusted", output=expected)
        if self.equality.equal(trusted, claim):
            return Verdict.accept(f"{check.replace('_', '-')} check passed", scheme=self.name,
                                  details={"check": check, "caught": False})
        return Verdict.reject(f"{check.replace('_', '-')} check failed: output differs from the trusted answer",
                              scheme=self.name, details={"check": check, "caught": True})

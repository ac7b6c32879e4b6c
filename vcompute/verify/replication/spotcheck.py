"""Spot-checks: known-answer jobs mixed in at rate q, and random re-execution audits.

Paper: L. F. G. Sarmenta, "Sabotage-tolerance mechanisms for volunteer
computing systems", FGCS 18(4), 2002 (spot-checking with blacklisting).

A consumer precomputes the answers of a few jobs drawn from the *same*
generator as its real jobs and mixes them into each batch at rate ``q``
(:meth:`SpotCheck.mix`: uniformly random slots, a batch size that depends
only on the number of real jobs, so neither position nor size nor seed
gives them away; claim C10 of ``proofs/replication.md``); a real job is re-executed on trusted
hardware with probability ``p``. One claim per job; an unchecked real job is
accepted on trust, and the verdict says so. The error bounds (linear in the
work, unlike voting's exponential fall) are in ``proofs/replication.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Job, Verdict
from vcompute.verify.audit import audit_probability, draw_audit
from vcompute.verify.base import Misuse, Scheme, VerifyContext, verifier_fault
from vcompute.verify.replication.equality import Bitwise, Equality, Homogeneous
from vcompute.verify.replication import expected_dtype, expected_kind, expected_shape, make_equality, screen_output
from vcompute.verify.screening import leaf_dtype, leaves

__all__ = ["KnownAnswers", "SpotCheck"]


def _exact_rule(equality: Equality) -> bool:
    """Whether ``equality`` compares bytes (so a trusted answer of another dtype can never match)."""
    if isinstance(equality, Homogeneous):
        return _exact_rule(equality.inner)
    return isinstance(equality, Bitwise)


def _form(job: Job) -> tuple:
    """What a provider sees of a job besides its values: kind, spec keys, input names, shapes, dtypes."""
    shapes = tuple(sorted((name, tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", type(x).__name__)))
                          for name, x in job.inputs.items()))
    return job.kind, tuple(sorted(job.spec)), shapes


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


class SpotCheck(Scheme):
    """Accept single claims, checking a random fraction of them.

    Args:
        q: rate of known-answer jobs in the stream :meth:`mix` produces.
        p: probability that a real job is re-executed (``ctx.reexecute``).
        known: the known-answer pool (needed for ``q > 0``).
        equality: how a claim is compared with the trusted answer
            (an :class:`~vcompute.verify.replication.equality.Equality` or its name).
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
    binds_commitment = False  # screen_output compares the commitment with the (private) output

    def __init__(self, *, q: float = 0.0, p: float = 0.1, known: KnownAnswers | None = None,
                 equality: Equality | str | None = None, rtol: float | None = None,
                 ulp: float | None = None) -> None:
        if not (isinstance(q, (int, float)) and 0.0 <= q < 1.0):
            raise ValueError(f"q must be in [0, 1), got {q!r}")
        p = audit_probability(p, name="p")
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

    def known_count(self, n: int) -> int:
        """Known-answer jobs :meth:`mix` adds to ``n`` real ones: the least ``K`` with ``K / (n + K) >= q``.

        A deterministic function of ``n``: the batch size says nothing about
        how many of its jobs are known-answer ones beyond what ``n`` does.

        Example:
            >>> SpotCheck(q=0.2, p=0.0, known=KnownAnswers(lambda r: None, lambda j: None)).known_count(8)
            2
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if self.q == 0.0 or n == 0:
            return 0
        q = Fraction(repr(self.q))  # the decimal the caller wrote: 0.2 is 1/5, not 0.2000...011
        return math.ceil(q * n / (1 - q))

    def mix(self, jobs: Iterable[Job], rng: np.random.Generator) -> list[Job]:
        """One batch: the real ``jobs`` and :meth:`known_count` fresh known-answer jobs, indistinguishable.

        What a provider sees of a batch, and what it cannot learn from it:

        - *position*: the known-answer jobs occupy a uniformly random set of
          the ``N = n + K`` slots (every slot, the first and the last
          included, is one with probability ``K / N >= q``);
        - *batch size*: ``N`` depends only on ``n``, never on the draw;
          even knowing ``K`` exactly, each slot is known-answer with
          probability ``K / N >= q`` and the positions stay uniform;
        - *ids and seeds*: known-answer jobs come from the consumer's own
          job generator (:class:`KnownAnswers`), so their ids are content
          hashes like any job's, and they are drawn from a child stream of
          ``rng`` independent of the one that picks positions;
        - *form*: a known-answer job whose form (kind, spec keys, input
          names, shapes and dtypes) no real job of the batch has would stand
          out, so that is refused as a caller error.

        Real jobs keep their relative order. Dispatch timing is the
        caller's: send every slot of the batch the same way.

        Args:
            jobs: the real jobs of this batch.
            rng: the consumer's generator (never shared with providers).

        Returns:
            The mixed batch.

        Raises:
            TypeError: if an element of ``jobs`` is not a Job.
            ValueError: if a known-answer job has a form no real job has
                (make ``KnownAnswers.make_job`` draw from the real job
                distribution).
        """
        real = list(jobs)
        for i, j in enumerate(real):
            if not isinstance(j, Job):
                raise TypeError(f"jobs[{i}] is a {type(j).__name__}, not a Job")
        k = self.known_count(len(real))
        if k == 0:
            return real
        place_rng, job_rng = rng.spawn(2)
        known = [self.known.draw(job_rng) for _ in range(k)]  # type: ignore[union-attr]
        forms = {_form(j) for j in real}
        for j in known:
            if _form(j) not in forms:
                raise ValueError(f"known-answer job {j.id[:12]} ({_form(j)}) has a form no real job of the "
                                 "batch has, so a provider could tell it apart; make KnownAnswers.make_job "
                                 "draw jobs like the real ones")
        slots = set(int(i) for i in place_rng.choice(len(real) + k, size=k, replace=False))
        known_it, real_it = iter(known), iter(real)
        return [next(known_it) if i in slots else next(real_it) for i in range(len(real) + k)]

    # -- Verifier protocol (one claim, its output) --------------------------
    def _check(self, job: Job, claims: tuple[Claim, ...], ctx: VerifyContext) -> Verdict:
        """Check a known-answer job always, a real job with probability ``p``.

        Raises:
            Misuse: (a ``ValueError``) for an audit drawn with no
                ``reexecute`` backend in ``ctx``, or a trusted answer
                (``known`` or ``ctx.reexecute``) that is not a well-formed
                numeric array or pytree: the caller's data, so never a
                rejection of the provider.
        """
        return self._verify(job, claims[0], ctx)

    def _verify(self, job: Job, claim: Claim, ctx: VerifyContext) -> Verdict:
        audited = draw_audit(ctx.rng, self.p)  # tossed for every bound claim, so streams do not depend on the branch
        known = self.known is not None and job.id in self.known
        reason = screen_output(claim, expected_shape(job), kind=expected_kind(job))
        if reason is not None:
            return Verdict.reject(f"malformed output: {reason}",
                                  details={"check": "known_answer" if known else "screen", "caught": True})
        if known:
            expected, check, source = self.known.answer(job.id), "known_answer", "known"  # type: ignore[union-attr]
        elif audited:
            try:
                expected = ctx.reexecute(job, None, fraction=1.0)
            except Exception as e:  # the trusted backend (or its absence) is the caller's, never the provider's
                if verifier_fault(e):
                    raise
                raise Misuse(f"SpotCheck(p={self.p:g}) drew an audit but {e}") from e
            check, source = "audit", "ctx.reexecute"
        else:
            return Verdict.accept(f"accepted unchecked (audit probability {self.p:g} not drawn)",
                                  details={"check": "none", "caught": False})
        trusted = Claim(job.id, "trusted", output=expected)
        bad = screen_output(trusted)
        if bad is not None:
            raise Misuse(f"the trusted answer from {source} is malformed ({bad}); it must be a numeric "
                         "numpy/torch/JAX array or a dict/list/tuple of them, with finite values")
        want = expected_dtype(job)
        if want is not None and _exact_rule(self.equality):
            got = [leaf_dtype(leaf) for _, leaf in leaves(expected)]
            if any(g != want for g in got):
                raise Misuse(f"the trusted answer from {source} has dtype {got[0]} but job {job.id[:12]} "
                             f"outputs {want}; bitwise equality needs the job's exact dtype: cast the "
                             "trusted answer, or use equality='tolerance'")
        if self.equality.equal(trusted, claim):
            return Verdict.accept(f"{check.replace('_', '-')} check passed",
                                  details={"check": check, "caught": False})
        return Verdict.reject(f"{check.replace('_', '-')} check failed: output differs from the trusted answer",
                              details={"check": check, "caught": True})

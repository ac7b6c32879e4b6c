"""An audit: check with verifier V with probability p.

The one wrapper every probabilistic trust policy is made of: the market's
audits (``consumers.audit_p``), spot-check re-execution, and the adaptive
policies (which only change ``p`` per provider). The coin is drawn from
the verification context's generator, which the caller derives *after*
the claims are committed, so a provider cannot know in advance whether
its job is checked. The caller's arguments are checked and every claim's
binding screened whatever the coin says (a claim replayed from another job
is blamed even unaudited); an unaudited job's well-bound claims are then
accepted on trust and the verdict says so (``details["audited"] is False``);
what trust costs in fraud is the policy's business, bounded in
``proofs/replication.md``.

Example:
    >>> import numpy as np
    >>> from vcompute.verify import Freivalds, VerifyContext
    >>> from vcompute.workloads.matmul import make_matmul_job
    >>> from vcompute.workloads.behaviours import execute
    >>> job = make_matmul_job(8, seed=0)
    >>> bad = execute(job, "random_output", rng=np.random.default_rng(1), provider="p0")
    >>> Audit(Freivalds(rounds=2), p=1.0).verify(job, [bad], VerifyContext(seed=0)).accepted
    False
    >>> Audit(Freivalds(rounds=2), p=0.0).verify(job, [bad], VerifyContext(seed=0)).details["audited"]
    False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from vcompute.core.types import Blame, Claim, EvidenceSpec, Job, Verdict
from vcompute.verify.base import Verifier, VerifyContext
from vcompute.verify.claims import check_arguments, screen_claims

__all__ = ["Audit", "audit_probability", "draw_audit"]


def audit_probability(p: Any, *, name: str = "p") -> float:
    """``p`` as an exact float in [0, 1].

    Raises:
        TypeError: if ``p`` is not a real number (bools are refused too).
        ValueError: if it is NaN or outside [0, 1].

    Example:
        >>> audit_probability(0.25)
        0.25
    """
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a probability (a float in [0, 1]), got {type(p).__name__}")
    try:
        value = float(p)
    except OverflowError:  # an int past the float range is outside [0, 1], a ValueError like any other
        raise ValueError(f"{name} must be in [0, 1], got a number too large for a float") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def draw_audit(rng: np.random.Generator, p: float) -> bool:
    """The audit coin: exactly one uniform draw from ``rng``, True with probability ``p``.

    Drawing even when ``p`` is 0 or 1 keeps every later draw of a seeded run
    where it was, whatever a policy does to ``p``. :class:`Audit`, the
    spot-check's re-execution audit and the market's audits all toss this coin.

    Example:
        >>> draw_audit(np.random.default_rng(0), 1.0), draw_audit(np.random.default_rng(0), 0.0)
        (True, False)
    """
    return bool(rng.random() < p)


class Audit:
    """Check a job with ``verifier`` with probability ``p``; accept it on trust otherwise.

    Args:
        verifier: the scheme an audited job is checked with.
        p: audit probability in [0, 1].

    Raises:
        TypeError: if ``verifier`` lacks the :class:`~vcompute.verify.Verifier`
            methods or ``p`` is not a number.
        ValueError: if ``p`` is outside [0, 1].
    """

    def __init__(self, verifier: Verifier, p: float) -> None:
        if not all(callable(getattr(verifier, m, None)) for m in ("verify", "replicas", "evidence")):
            raise TypeError(f"verifier must implement the Verifier protocol, got {type(verifier).__name__}")
        self.verifier = verifier
        self.p = audit_probability(p)
        self.name = f"audit({getattr(verifier, 'name', type(verifier).__name__)})"

    def with_p(self, p: float) -> Audit:
        """The same audit at another probability (what an adaptive policy changes)."""
        return Audit(self.verifier, p)

    def drawn(self, rng: np.random.Generator) -> bool:
        """Whether this job is audited (:func:`draw_audit`: one uniform draw from ``rng``, always exactly one)."""
        return draw_audit(rng, self.p)

    def replicas(self, job: Job) -> int:
        """Claims an audited job needs (the inner verifier's)."""
        return int(self.verifier.replicas(job))

    def evidence(self, job: Job) -> EvidenceSpec:
        """Evidence the inner verifier asks for (recorded whether or not the job is drawn)."""
        return self.verifier.evidence(job)

    def verify(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext) -> Verdict:
        """Draw the coin from ``ctx.rng``; run the inner verifier if it comes up.

        The caller's arguments are checked first (``TypeError``, as in
        :meth:`~vcompute.verify.base.Scheme.verify`, and ``ValueError`` for a
        number of claims the inner verifier does not take), whatever the coin says.
        An unaudited verdict accepts every well-bound claim on trust
        (``details["audited"] is False``) and blames each badly bound one
        (:func:`~vcompute.verify.claims.screen_claims`: trust covers the
        output, never which job a claim answers); it rejects when no claim is
        well bound or the inner verifier is not a voting one. An audited
        verdict is the inner verifier's, with ``details["audited"] = True`` added.
        """
        claims = check_arguments(job, claims, ctx, ctx_type=VerifyContext)  # raised whatever the coin says
        takes = getattr(self.verifier, "takes", None)
        if not (takes(job, len(claims)) if callable(takes) else len(claims) == self.replicas(job)):
            need = self.replicas(job)  # how many claims a job gets is the caller's doing, audited or not
            raise ValueError(f"{self.name} checks {need} claim{'s' * (need != 1)} per job, got {len(claims)}; "
                             "pass the claims replicas(job) asks for (one: [claim])")
        if not self.drawn(ctx.rng):
            details = {"audited": False, "p": self.p}
            providers, unbound = screen_claims(job, claims)  # trust covers the output, never the binding
            blame = tuple(Blame(i, providers[i], why) for i, why in unbound.items())
            if blame and (len(unbound) == len(claims) or not getattr(self.verifier, "exclude_unbound", False)):
                return Verdict.reject("; ".join(dict.fromkeys(unbound.values())), scheme=self.name,
                                      details=details, blame=blame)
            return Verdict.accept("not audited: accepted on trust", scheme=self.name, details=details, blame=blame)
        verdict = self.verifier.verify(job, claims, ctx)
        return Verdict(verdict.accepted, verdict.reason, cost=verdict.cost, scheme=verdict.scheme,
                       details={**dict(verdict.details), "audited": True, "p": self.p}, blame=verdict.blame)

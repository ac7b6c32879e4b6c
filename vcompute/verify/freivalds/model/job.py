"""Whole-model Freivalds as a :class:`~vcompute.verify.Verifier` of ``forward`` jobs (registered as ``"model"``).

The job carries the consumer's weights and the input batch
(:class:`~vcompute.workloads.kinds.forward.ForwardKind`); each claim carries
the model output and ``evidence["trace"]`` (every linear layer's output).
Each claim is checked on its own by :class:`~vcompute.verify.freivalds.model.TorchModelVerifier`
with challenges from ``ctx.rng``; the verdict accepts when every claim
passes and blames each one that fails. Soundness and cost: ``proofs/freivalds.md``
(claims V2-V5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vcompute.core.types import Blame, Claim, Cost, EvidenceSpec, Job, Verdict

__all__ = ["ModelVerifier"]


class ModelVerifier:
    """Checks forward-pass claims layer by layer with Freivalds (Slalom-style, float tolerances).

    Args:
        rounds: Freivalds rounds per linear layer call.
        functional: ``"recompute"`` (products outside checked layers are recomputed) or ``"refuse"``.

    Raises:
        ValueError: for ``rounds`` below 1 or an unknown ``functional``.

    Notes:
        The job's weights are trusted: the module is rebuilt from them at every call (never
        shared with a provider), and their arrays are read-only. In one process, hand providers
        their own copy of the job (as :class:`~vcompute.market.fidelity.RealWork` does): code
        holding the verifier's job object could clear that flag.

    Example:
        >>> import numpy as np
        >>> from vcompute.verify import VerifyContext
        >>> from vcompute.workloads.kinds import get_kind
        >>> k = get_kind("forward"); job = k.make_job("tiny", seed=0)
        >>> claim = k.execute(job, "honest", rng=np.random.default_rng(0))
        >>> ModelVerifier().verify(job, [claim], VerifyContext(seed=1)).accepted
        True
    """

    name = "model"

    def __init__(self, *, rounds: int = 2, functional: str = "recompute") -> None:
        if type(rounds) is not int or rounds < 1:
            raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
        if functional not in ("recompute", "refuse"):
            raise ValueError(f"functional must be 'recompute' or 'refuse', got {functional!r}")
        self.rounds = rounds
        self.functional = functional

    def replicas(self, job: Job) -> int:
        """One claim."""
        return 1

    def evidence(self, job: Job) -> EvidenceSpec:
        """Every linear layer's output (``claim.evidence["trace"]``)."""
        return EvidenceSpec("model-trace", {"layers": "all"})

    def verify(self, job: Job, claims: Sequence[Claim], ctx: Any) -> Verdict:
        """Decide on the claims of a ``forward`` job; a malformed claim is a rejection that blames it.

        Raises:
            ValueError: if ``job`` is not a forward job or no claim is given (the caller's misuse).
        """
        from vcompute.verify.freivalds import Freivalds
        from vcompute.verify.freivalds.model._torch import TorchModelVerifier
        from vcompute.verify.screening import exact_str
        from vcompute.workloads.kinds.forward import input_of, module_of

        module = module_of(job)  # raises ValueError for another kind of job
        if isinstance(claims, (str, bytes)) or not isinstance(claims, Sequence) or len(claims) == 0:
            raise ValueError("claims must be a non-empty sequence of Claim")
        checker = TorchModelVerifier(module, Freivalds(rounds=self.rounds), functional=self.functional)
        x = input_of(job)
        blame, cost, reasons = [], Cost(), []
        for i, c in enumerate(claims):
            # builtin str only: a provider name's own __str__ is the provider's code
            provider = (exact_str(c.provider) if isinstance(c, Claim) else None) or "?"
            problem = _claim_problem(c, job)
            if problem is None:
                v = checker.verify((x,), c.output, dict(c.evidence)["trace"], seed=ctx.rng)
                cost = cost + v.cost
                problem = None if v.accepted else v.reason
            if problem is not None:
                blame.append(Blame(i, provider, problem))
                reasons.append(f"claim {i} ({provider}): {problem}")
        if blame:
            return Verdict(False, "; ".join(reasons), cost=cost, scheme=self.name, blame=tuple(blame))
        return Verdict(True, f"all {len(claims)} forward pass(es) verified layer by layer", cost=cost,
                       scheme=self.name)


def _claim_problem(c: Any, job: Job) -> str | None:
    if not isinstance(c, Claim):
        return f"not a Claim ({type(c).__name__})"
    if type(c.job_id) is not str or c.job_id != job.id:  # an exact str: a subclass's __ne__ could lie
        return "the claim answers another job"
    ev = c.evidence
    if "trace" not in ev:
        return "the claim carries no trace (evidence['trace'])"
    return None

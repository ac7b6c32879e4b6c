"""Whole-model Freivalds as a :class:`~vcompute.verify.Verifier` of ``forward`` jobs (registered as ``"model"``).

The job carries the consumer's weights and the input batch
(:class:`~vcompute.workloads.kinds.forward.ForwardKind`); each claim carries
the model output and ``evidence["trace"]`` (every linear layer's output).
Each claim is checked on its own by :class:`~vcompute.verify.freivalds.model.TorchModelVerifier`
with challenges from ``ctx.rng``; the verdict accepts when every claim
passes and blames each one that fails (claims for another job, without an
identity or from a repeated one are blamed by the
:class:`~vcompute.verify.base.Scheme` base; an exception checking one claim
blames that claim alone). Soundness and cost: ``proofs/freivalds.md``
(claims V2-V5).
"""

from __future__ import annotations

from collections.abc import Mapping

from vcompute.core.types import Blame, Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.base import Scheme, VerifyContext

__all__ = ["ModelVerifier"]


class ModelVerifier(Scheme):
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
    exclude_unbound = True

    def __init__(self, *, rounds: int = 2, functional: str = "recompute") -> None:
        if type(rounds) is not int or rounds < 1:
            raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
        if functional not in ("recompute", "refuse"):
            raise ValueError(f"functional must be 'recompute' or 'refuse', got {functional!r}")
        self.rounds = rounds
        self.functional = functional

    def takes(self, job: Job, n_claims: int) -> bool:
        """One claim or more: each is checked on its own."""
        return n_claims >= 1

    def evidence(self, job: Job) -> EvidenceSpec:
        """Every linear layer's output (``claim.evidence["trace"]``)."""
        return EvidenceSpec("model-trace", {"layers": "all"})

    def check_job(self, job: Job, ctx: VerifyContext) -> None:
        """Refuse a job that is not a ``forward`` job (the caller's misuse).

        Raises:
            ValueError: if ``job`` is not a forward job.
        """
        from vcompute.workloads.kinds.forward import module_of

        module_of(job)

    def _check(self, job: Job, claims: tuple[Claim, ...], ctx: VerifyContext, *,
               unbound: Mapping[int, str]) -> Verdict:
        """Check each bound claim layer by layer; blame each that fails (an exception blames only its claim)."""
        from vcompute.verify.freivalds import Freivalds
        from vcompute.verify.freivalds.model._torch import TorchModelVerifier
        from vcompute.workloads.kinds.forward import input_of, module_of

        checker = TorchModelVerifier(module_of(job), Freivalds(rounds=self.rounds), functional=self.functional)
        x = input_of(job)
        blame, cost, reasons = [], Cost(), [f"claim {i}: {why}" for i, why in unbound.items()]
        for i, c in enumerate(claims):
            if i in unbound:
                continue
            # exact str keys only: looking "trace" up would run the __eq__ of a provider's key hashed like it
            evidence = {k: v for k, v in c.evidence.items() if type(k) is str}
            if "trace" not in evidence:
                v = Verdict.reject("the claim carries no trace (evidence['trace'] under a plain str key)")
            else:
                v = self._guarded(lambda c=c, tr=evidence["trace"]: checker.verify((x,), c.output, tr, seed=ctx.rng))
            cost = cost + v.cost
            if not v.accepted:
                blame.append(Blame(i, c.provider, v.reason))
                reasons.append(f"claim {i} ({c.provider}): {v.reason}")
        if reasons:
            return Verdict(False, "; ".join(reasons), cost=cost, blame=tuple(blame))
        return Verdict(True, f"all {len(claims)} forward pass(es) verified layer by layer", cost=cost)

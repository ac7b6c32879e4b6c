"""The Verifier protocol and the metered context verifiers work in.

Every scheme fits one shape (DESIGN.md): given a job and one or more
claims, and a metered way to re-execute pieces of the job or challenge a
prover to open committed evidence, return a :class:`~vcompute.core.Verdict`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vcompute.core.types import Claim, Cost, EvidenceSpec, Job, Verdict

__all__ = ["Verifier", "VerifyContext", "ChallengeFn", "ReexecuteFn"]

#: Re-executes a piece of a job on trusted hardware: ``(job, piece) -> result``.
ReexecuteFn = Callable[[Job, Any], Any]
#: Asks the prover behind ``claim`` to open evidence: ``(claim, request) -> response``.
ChallengeFn = Callable[[Claim, Any], Any]


@runtime_checkable
class Verifier(Protocol):
    """One verification scheme.

    Attributes:
        name: the registry name of the scheme.
    """

    name: str

    def replicas(self, job: Job) -> int:
        """How many independent claims the scheme needs for ``job`` (1, or k for replication)."""
        ...

    def evidence(self, job: Job) -> EvidenceSpec:
        """What a prover must record while executing ``job``."""
        ...

    def verify(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext) -> Verdict:
        """Decide on ``claims`` for ``job``; never raises on malformed claims."""
        ...


class VerifyContext:
    """What a verifier may use; everything it does here is metered.

    Args:
        rng: randomness for the verifier. Derive it *after* the claims are
            committed (e.g. from a seed hashed with the claim commitments),
            so a prover cannot predict the challenges.
        reexecute: trusted re-execution of part of a job, or None.
        challenge: a channel to the prover to open committed evidence, or None.

    Example:
        >>> ctx = VerifyContext(seed=0)
        >>> with ctx.meter(flops=100):
        ...     pass
        >>> ctx.cost.flops
        100.0
    """

    def __init__(
        self,
        *,
        rng: np.random.Generator | None = None,
        seed: int | None = None,
        reexecute: ReexecuteFn | None = None,
        challenge: ChallengeFn | None = None,
    ) -> None:
        if rng is None:
            if seed is None:
                raise ValueError("VerifyContext needs an explicit rng or seed (randomness is never implicit)")
            rng = np.random.default_rng(seed)
        self.rng = rng
        self._reexecute = reexecute
        self._challenge = challenge
        self.cost = Cost()

    def add_cost(self, cost: Cost) -> None:
        """Add ``cost`` to the running total."""
        self.cost = self.cost + cost

    def meter(self, *, flops: float = 0.0, evidence_bytes: float = 0.0, reexecuted_fraction: float = 0.0):
        """Context manager timing a block and adding its declared cost."""
        return _Meter(self, flops, evidence_bytes, reexecuted_fraction)

    def reexecute(self, job: Job, piece: Any, *, flops: float = 0.0, fraction: float = 0.0) -> Any:
        """Re-execute ``piece`` of ``job`` on trusted hardware (metered).

        Raises:
            RuntimeError: if the context has no re-execution backend.
        """
        if self._reexecute is None:
            raise RuntimeError("this VerifyContext has no re-execution backend; pass reexecute=...")
        with self.meter(flops=flops, reexecuted_fraction=fraction):
            return self._reexecute(job, piece)

    def challenge(self, claim: Claim, request: Any) -> Any:
        """Ask the prover behind ``claim`` to open evidence (metered by response size).

        Raises:
            RuntimeError: if the context has no challenge channel.
        """
        if self._challenge is None:
            raise RuntimeError("this VerifyContext has no challenge channel; pass challenge=...")
        t = time.perf_counter()
        resp = self._challenge(claim, request)
        self.add_cost(Cost(seconds=time.perf_counter() - t, evidence_bytes=_nbytes(resp)))
        return resp


class _Meter:
    def __init__(self, ctx: VerifyContext, flops: float, nbytes: float, frac: float) -> None:
        self.ctx, self.flops, self.nbytes, self.frac = ctx, flops, nbytes, frac

    def __enter__(self) -> _Meter:
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.add_cost(Cost(flops=self.flops, seconds=time.perf_counter() - self.t,
                               evidence_bytes=self.nbytes, reexecuted_fraction=self.frac))


def _nbytes(x: Any) -> int:
    if x is None:
        return 0
    if isinstance(x, (bytes, bytearray, memoryview)):
        return len(x)
    if hasattr(x, "nbytes"):
        try:
            return int(x.nbytes)
        except Exception:
            return 0
    if isinstance(x, dict):
        return sum(_nbytes(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(v) for v in x)
    if isinstance(x, str):
        return len(x.encode())
    return 0

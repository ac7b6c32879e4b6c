"""The :class:`JobKind` base: what a job kind declares, and the plumbing every kind shares.

A kind is one workload a consumer can post (matmul, forward, generate,
train, or a third-party one). It declares

- its **spec**: :meth:`JobKind.make_job` builds a job of a named size, seeded,
  on an array backend;
- **execution** (real mode): :meth:`JobKind.execute` runs a job as a provider
  with ``honest`` or any behaviour of the kind (registered in
  :data:`~vcompute.workloads.kinds.behaviours.BEHAVIOURS` as ``"<kind>/<name>"``)
  and returns the :class:`~vcompute.core.Claim`;
- what a market **cheat class** (``random_output``, ``skip_k``: lazy,
  ``low_precision``) means for it (:attr:`JobKind.cheats`);
- its default **verifiers**, by :data:`~vcompute.verify.VERIFIERS` name
  (workloads never import verify);
- its trusted **re-execution** (:meth:`JobKind.reexecute`, what a
  :class:`~vcompute.verify.VerifyContext` re-executes with) and, for schemes
  that challenge the prover, the prover's side of the channel;
- its **FLOPs** and its **cost model** for modelled mode: the calibration
  table's row for (kind, scheme), the scheme's own row as fallback;
- how the market plays its **disputes** (:attr:`JobKind.dispute`): the
  ``"module:attr"`` path of a dispute adapter
  (:class:`vcompute.verify.dispute.market.MarketDispute`, named by path since
  workloads never import verify), or ``""`` if no dispute game decides the kind
  (the ``optimistic`` trust policy then does not apply to it).

A subclass fills the class attributes and implements :meth:`make_job`,
:meth:`flops` and, if its behaviours are not ``(job, rng, **params) ->
output``, :meth:`_claim_of`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim, Job

__all__ = ["JobKind", "MARKET_CHEATS"]

#: The market's cheat classes (:class:`~vcompute.market.config.AdversaryConfig.cheat`); each kind maps
#: every one of them to one of its behaviours.
MARKET_CHEATS = ("random_output", "skip_k", "low_precision")


class JobKind(ABC):
    """One job kind. Subclasses set the class attributes and implement :meth:`make_job` and :meth:`flops`.

    Attributes:
        name: the registry name (``KINDS``) and the prefix of its behaviours' names.
        job_kind: the :attr:`~vcompute.core.Job.kind` its jobs carry (default: ``name``).
        sizes: named sizes :meth:`make_job` accepts.
        default_size: the size used when none is given.
        verifiers: default verifiers by registry name; the first is the kind's default.
        cheats: market cheat class -> the behaviour it means for this kind.
        backends: array backends :meth:`make_job` supports.
        dispute: ``"module:attr"`` of the kind's market dispute adapter (its trace, its players, the
            contract that decides its games), or ``""``: no dispute game decides it.
    """

    name: ClassVar[str]
    job_kind: ClassVar[str] = ""
    sizes: ClassVar[Mapping[str, Any]] = {}
    default_size: ClassVar[Any] = None
    verifiers: ClassVar[tuple[str, ...]] = ()
    cheats: ClassVar[Mapping[str, str]] = {}
    backends: ClassVar[tuple[str, ...]] = ("numpy",)
    dispute: ClassVar[str] = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- spec --------------------------------------------------------------------
    def size(self, size: Any = None) -> Any:
        """``size`` as the exact builtin value :meth:`make_job` uses (a name of :attr:`sizes`).

        Raises:
            ValueError: for a size the kind does not know (the message lists them).
        """
        if size is None:
            size = self.default_size
        if type(size) is not str and isinstance(size, str):
            size = str.__str__(size)  # a str subclass's __eq__/__hash__ would run in the lookup
        if type(size) is str and size in self.sizes:
            return size
        raise ValueError(f"unknown {self.name} job size {size!r}; known: {', '.join(map(str, self.sizes))}")

    def _backend(self, backend: str) -> str:
        if type(backend) is not str or backend not in self.backends:
            raise ValueError(f"{self.name} jobs run on backend {' or '.join(self.backends)}, got {backend!r}")
        return backend

    def resolve(self, size: Any, backend: str) -> Any:
        """:meth:`size` of ``size``, after checking the kind runs on ``backend`` (what :meth:`make_job` starts with).

        Raises:
            ValueError: for an unknown size or backend.
        """
        self._backend(backend)
        return self.size(size)

    @abstractmethod
    def make_job(self, size: Any = None, *, seed: int, backend: str = "numpy") -> Job:
        """A seeded job of this kind at ``size`` (a name of :attr:`sizes`; None: :attr:`default_size`).

        Raises:
            ValueError: for an unknown size or a backend the kind does not run on.
        """

    @abstractmethod
    def flops(self, job: Job) -> float:
        """Floating-point operations an honest provider spends on ``job``."""

    def check_job(self, job: Any) -> Job:
        """``job`` if it is a job of this kind.

        Raises:
            ValueError: naming the kind expected.
        """
        if not isinstance(job, Job) or job.kind != (self.job_kind or self.name):
            got = job.kind if isinstance(job, Job) else type(job).__name__
            raise ValueError(f"expected a {self.job_kind or self.name!r} job (kind {self.name!r}), got {got!r}")
        return job

    # -- behaviours ----------------------------------------------------------------
    @property
    def behaviours(self) -> list[str]:
        """The names of this kind's provider behaviours (``honest`` first)."""
        from vcompute.workloads.kinds.behaviours import BEHAVIOURS

        own = BEHAVIOURS.of_kind(self.name)
        return ["honest", *sorted(b for b in own if b != "honest")] if "honest" in own else sorted(own)

    def behaviour_for(self, cheat: str | None) -> str:
        """The behaviour a market cheat class means for this kind (None: ``honest``).

        Raises:
            ValueError: for a cheat class the kind does not map.
        """
        if cheat is None:
            return "honest"
        if cheat in self.cheats:
            return self.cheats[cheat]
        if cheat in self.behaviours:
            return cheat
        raise ValueError(f"job kind {self.name!r} has no behaviour for the market cheat {cheat!r}; "
                         f"it maps {', '.join(self.cheats) or 'none'}")

    def execute(self, job: Job, behaviour: str = "honest", *, rng: np.random.Generator,
                provider: str = "provider", **params: Any) -> Claim:
        """Run ``job`` as ``provider`` with the named behaviour of this kind and return its claim.

        Args:
            job: a job of this kind.
            behaviour: ``honest`` or a name in :attr:`behaviours`.
            rng: the provider's randomness (explicit, for reproducibility).
            provider: the provider's name, recorded in the claim.
            **params: behaviour parameters.

        Raises:
            ValueError: for a job of another kind or an unknown behaviour (the message lists the kind's).
            TypeError: if ``rng`` is not a numpy Generator or ``provider`` not a str.
        """
        from vcompute.workloads.kinds.behaviours import BEHAVIOURS

        self.check_job(job)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        if type(provider) is not str:
            raise TypeError(f"provider must be a str, got {type(provider).__name__}")
        fn = BEHAVIOURS.of(self.name, behaviour)
        return self._claim_of(job, behaviour, fn, rng, provider, params)

    def _claim_of(self, job: Job, behaviour: str, fn: Any, rng: np.random.Generator, provider: str,
                  params: Mapping[str, Any]) -> Claim:
        """Call the behaviour ``fn`` and wrap what it returns into a claim (override per calling convention)."""
        out = fn(job, rng, **params)
        meta = {"behaviour": behaviour}
        if hasattr(out, "shape") and hasattr(out, "dtype"):
            from vcompute.core.arrays import backend_of

            meta.update(shape=list(out.shape), dtype=str(out.dtype).split(".")[-1], backend=backend_of(out))
        return Claim(job_id=job.id, provider=provider, output=out, commitment=content_hash(out), meta=meta)

    # -- checking ------------------------------------------------------------------
    def reexecute(self, job: Job, piece: Any = None) -> Any:
        """Trusted re-execution for a :class:`~vcompute.verify.VerifyContext`: the honest output."""
        return self.execute(job, "honest", rng=np.random.default_rng(0), provider="referee").output

    def challenge_channel(self, job: Job, claims: Sequence[Claim]) -> Any:
        """The provers' side of a challenge channel for ``claims``, or None (the kind has no evidence to open)."""
        return None

    def verifier_params(self, scheme: str) -> dict[str, Any]:
        """Keyword arguments this kind's jobs need for ``scheme`` when the consumer gives none."""
        return {}

    # -- cost model (modelled mode) ------------------------------------------------
    def table_size(self, size: Any = None) -> str:
        """The key of :attr:`sizes` under which the calibration table measured ``size``."""
        return str(self.size(size))

    def detect(self, table: Any, scheme: str, cheat: str) -> float:
        """Calibrated probability a checked claim with ``cheat`` is rejected (the (kind, scheme) row,
        else the scheme's own row)."""
        return table.detect(scheme, cheat, kind=self.name)

    def verify_fraction(self, table: Any, scheme: str, size: Any = None, *, n: int = 48) -> float:
        """Calibrated checking work as a share of the job's compute at ``size``.

        The (kind, scheme) row at ``size``, else the scheme's own row (measured on
        matmul proxy jobs) at matrix size ``n``.
        """
        if table.has_kind(self.name, scheme):
            return table.verify_fraction(scheme, self.table_size(size), kind=self.name)
        return table.verify_fraction(scheme, n)

"""The Verifier protocol, the metered context verifiers work in, and the base schemes build on.

Every scheme fits one shape (DESIGN.md): given a job and one or more
claims, and a metered way to re-execute pieces of the job or challenge a
prover to open committed evidence, return a :class:`~vcompute.core.Verdict`.
:class:`Scheme` carries what every scheme needs around its check, once
(as optax's ``stateless`` or Opacus's accountant base do): argument and
claim screening, the never-raise rule, blame and cost metering.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vcompute.core.types import Blame, Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.claims import check_arguments, plain_evidence, screen_claims

__all__ = ["Verifier", "VerifyContext", "Scheme", "Misuse", "ChallengeFn", "ReexecuteFn", "verifier_fault",
           "caller_code"]

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

    @property
    def can_reexecute(self) -> bool:
        """Whether the context has a trusted re-execution backend."""
        return self._reexecute is not None

    @property
    def can_challenge(self) -> bool:
        """Whether the context has a challenge channel (a scheme that opens evidence checks it in ``check_job``)."""
        return self._challenge is not None

    def add_cost(self, cost: Cost) -> None:
        """Add ``cost`` to the running total."""
        self.cost = self.cost + cost

    def meter(self, *, flops: float = 0.0, evidence_bytes: float = 0.0, reexecuted_fraction: float = 0.0):
        """Context manager timing a block and adding its declared cost."""
        return _Meter(self, flops, evidence_bytes, reexecuted_fraction)

    def reexecute(self, job: Job, piece: Any, *, flops: float = 0.0, fraction: float = 0.0) -> Any:
        """Re-execute ``piece`` of ``job`` on trusted hardware (metered).

        The backend is the caller's trusted machinery: its failure is
        never the provider's (a rejection would slash an honest provider for
        it), so it is raised as :class:`Misuse`, the original exception
        chained; out-of-memory (:func:`verifier_fault`) passes as it is.

        Raises:
            RuntimeError: if the context has no re-execution backend.
            Misuse: if the backend raises.
        """
        if self._reexecute is None:
            raise RuntimeError("this VerifyContext has no re-execution backend; pass reexecute=...")
        with self.meter(flops=flops, reexecuted_fraction=fraction), caller_code("the re-execution backend"):
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


class Misuse(ValueError):
    """The caller's mistake found while checking (e.g. a malformed trusted answer): raised, never a rejection.

    A scheme's ``_check`` raises this (not a plain ``ValueError``, which
    hostile evidence can provoke inside numpy or torch) for what the caller
    supplied; :meth:`Scheme.verify` lets it through.
    """


#: How the allocators vcompute runs on word running out of memory in a ``RuntimeError``: PyTorch's CUDA
#: ("CUDA out of memory") and CPU ("DefaultCPUAllocator: can't allocate memory") allocators, XLA's
#: ("RESOURCE_EXHAUSTED: Out of memory ...").
_OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "resource_exhausted")


def verifier_fault(e: BaseException) -> bool:
    """Whether ``e`` is the verifier's machine failing (out of memory): never the provider's to be slashed for.

    ``MemoryError``, ``torch.OutOfMemoryError`` and a ``RuntimeError`` in
    which an allocator says it ran out (PyTorch's CPU allocator raises a
    plain ``RuntimeError``). The message is read with
    ``BaseException.__str__``, which runs no code of the exception's class.
    That such an error is the machine's and not the evidence's holds only
    because every scheme bounds what it allocates by the job's own sizes
    before reading the evidence (the rule in :class:`Scheme`).

    Example:
        >>> verifier_fault(RuntimeError("DefaultCPUAllocator: can't allocate memory")), verifier_fault(ValueError())
        (True, False)
    """
    t = type(e)
    if issubclass(t, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(t, getattr(torch, "OutOfMemoryError", ())):
        return True
    if not issubclass(t, RuntimeError):
        return False
    try:
        text = BaseException.__str__(e).lower()
    except Exception:
        return False
    return any(w in text for w in _OOM_WORDS)


_verifier_fault = verifier_fault


class caller_code:
    """Context manager around the *caller's* code run inside a check: its failure raises :class:`Misuse`.

    A scheme's ``_check`` is guarded: whatever it raises is a rejection of
    the provider. Code the caller supplied or trusts (a trusted re-execution
    backend, the consumer's model replayed on values the verifier has
    validated, the job's own model) runs inside that guard too, and its
    failure must not become a rejection: it is raised as :class:`Misuse`
    (a ``ValueError``) naming ``what``, with the original exception chained.
    ``Misuse`` itself, out-of-memory (:func:`verifier_fault`),
    ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` pass as they are.

    Only code whose every input the verifier has validated (or computed
    itself) belongs here: where the caller's code runs on values a provider
    chose, the provider may be the one who made it fail, and the scheme must
    tell the two apart (the model verifier runs the module once more on the
    caller's inputs alone).

    Args:
        what: the code, as the message names it (e.g. ``"the re-execution backend"``).

    Example:
        >>> with caller_code("the job's model"):
        ...     {}["weights"]
        Traceback (most recent call last):
        ...
        vcompute.verify.base.Misuse: the job's model raised KeyError: 'weights' (the caller's code, not the provider's evidence)
    """

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> caller_code:
        return self

    def __exit__(self, t: Any, e: BaseException | None, tb: Any) -> bool:
        if e is None or isinstance(e, (Misuse, KeyboardInterrupt, SystemExit, GeneratorExit)) or verifier_fault(e):
            return False
        raise Misuse(f"{self.what} raised {_type_name(e)}: {_message(e)} (the caller's code, not the provider's "
                     "evidence)") from e


def _type_name(e: BaseException) -> str:
    """The class name of ``e`` read from ``type`` itself: a hostile metaclass may make ``__name__`` a property."""
    return type.__dict__["__name__"].__get__(type(e), type)


def _message(e: BaseException) -> str:
    """``str(e)``, or a placeholder if even that fails (an exception's ``__str__`` may be hostile code)."""
    try:
        return str(e)[:500]
    except Exception:
        return "<unprintable>"


class Scheme:
    """Base of vcompute's verifiers: the plumbing around a scheme's own check, written once.

    A scheme subclasses it, sets :attr:`name`, and implements
    ``_check(job, claims, ctx) -> Verdict`` (and, if it needs them,
    :meth:`replicas`, :meth:`evidence`, :meth:`check_job`). :meth:`verify`
    then does, in this order:

    1. **The caller's arguments** (may raise): ``job`` an exact ``Job``,
       ``claims`` an exact ``list``/``tuple`` of exact ``Claim``, ``ctx`` a
       :class:`VerifyContext` (``TypeError``); a number of claims
       :meth:`takes` refuses (``ValueError``: how many claims a job gets is
       the caller's doing, never a provider's); :meth:`check_job`.
    2. **Binding** (:func:`~vcompute.verify.claims.screen_claims`): a claim
       for another job, without an identity, or sharing its identity with
       another claim is blamed with the reason. With ``exclude_unbound =
       False`` (single-claim schemes) any such claim rejects the verdict
       before the check runs; with ``True`` (voting schemes) ``_check``
       receives the reasons as ``unbound`` and decides on the others.
       Each bound claim's evidence is then read once
       (:func:`~vcompute.verify.claims.plain_evidence`): only exact-``str``
       keys are kept, so no provider key's ``__eq__`` runs when a scheme
       looks one up; evidence that cannot be read is a badly bound claim.
       Each bound claim's output is replaced by a private copy
       (:func:`~vcompute.verify.screening.private_copy`), which is what the
       check reads and what the verdict hands back as ``outputs``; a
       commitment that is not the content hash of the copy is a badly bound
       claim (unless :attr:`binds_commitment` is False), and an output no
       copy can be taken of is never accepted (blamed after the check).
    3. **The check, guarded**: an exception raised in ``_check`` is a
       rejected verdict with the exception in its reason, blaming every
       claim checked, never an accept (any ``BaseException``, as hostile
       evidence may raise one). What passes through, as it is not the
       provider's doing: :class:`Misuse` (what the caller's own code raises
       under :class:`caller_code`, and a failing ``ctx.reexecute``), ``MemoryError``, out-of-memory
       ``RuntimeError`` (:func:`verifier_fault`), ``KeyboardInterrupt`` and
       ``SystemExit``; a ``_check`` returning a non-``Verdict`` raises ``TypeError``.
       That an out-of-memory error is the verifier's machine failing holds
       only under the **bounded-allocation rule** every ``_check`` follows:
       nothing is allocated, copied, converted, moved or hashed in proportion
       to what evidence *declares* (a shape, a length, a count, a segment
       number) before it has been compared with the job's own sizes, or,
       where the job declares none, with the memory the provider really holds
       (:func:`~vcompute.verify.screening.memory_span`); a mismatch is a
       rejection with a reason. Provider mappings and values are read as exact
       builtins, so that no provider code (which could raise ``MemoryError``
       itself) runs inside the check.
    4. **Blame**: a rejected verdict without blame of a one-claim call
       blames that claim with the verdict's reason; blame for every
       unbound claim is added; indices stay those of ``claims``.
    5. **Cost**: the verdict's declared cost (e.g. Freivalds' FLOPs) plus
       what ``_check`` metered through ``ctx``, with ``seconds`` the wall
       time of the whole call; ``ctx.cost`` grows by exactly the verdict's
       cost. :attr:`name` becomes the verdict's ``scheme``.

    Example:
        >>> class Even(Scheme):
        ...     name = "even"
        ...     def _check(self, job, claims, ctx):
        ...         ok = claims[0].output % 2 == 0
        ...         return Verdict(ok, "even" if ok else "odd", cost=Cost(flops=1))
        >>> job = Job("parity")
        >>> v = Even().verify(job, [Claim(job.id, "p", output=3)], VerifyContext(seed=0))
        >>> v.accepted, v.blame[0].reason, v.cost.flops, v.scheme
        (False, 'odd', 1.0, 'even')
        >>> Even().verify(job, [Claim("another", "p", output=2)], VerifyContext(seed=0)).reason
        'claim answers another job (job id mismatch)'
    """

    name: str = ""
    #: whether badly bound claims are handed to ``_check`` as ``unbound`` (voting) or reject at once.
    exclude_unbound: bool = False
    #: whether a claim's commitment, when it sends one, must be the content hash of its output (checked by the
    #: base on the private copy); False for schemes whose commitment means something else (PoL: the transcript's
    #: Merkle root) or that check it themselves.
    binds_commitment: bool = True

    def replicas(self, job: Job) -> int:
        """How many claims the scheme needs for ``job`` (default one)."""
        return 1

    def evidence(self, job: Job) -> EvidenceSpec:
        """What a prover must record (default: only the output)."""
        return EvidenceSpec("output")

    def takes(self, job: Job, n_claims: int) -> bool:
        """Whether a call may pass ``n_claims`` claims (default: exactly :meth:`replicas`)."""
        return n_claims == self.replicas(job)

    def check_job(self, job: Job, ctx: VerifyContext) -> None:
        """Raise ``TypeError``/``ValueError`` if ``job`` or ``ctx`` is not one the scheme checks (default: any).

        Runs before any provider evidence is looked at, unguarded: what is
        raised here is the caller's mistake.
        """

    def _check(self, job: Job, claims: tuple[Claim, ...], ctx: VerifyContext, **kw: Any) -> Verdict:
        raise NotImplementedError(f"{type(self).__name__} must implement _check(job, claims, ctx)")

    def verify(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext) -> Verdict:
        """Decide on ``claims`` for ``job``: screened, guarded, blamed and metered (see the class docstring).

        Raises:
            TypeError: ``job``, ``claims`` or ``ctx`` is not what the call needs (named in the message).
            ValueError: a number of claims the scheme does not take, or a job it does not check.
        """
        claims = check_arguments(job, claims, ctx, ctx_type=VerifyContext)
        if not self.takes(job, len(claims)):
            need = self.replicas(job)
            raise ValueError(f"{type(self).__name__} checks exactly {need} claim{'s' * (need != 1)} per job, got "
                             f"{len(claims)}; pass the claims replicas(job) asks for (one: [claim])")
        self.check_job(job, ctx)
        t0, before = time.perf_counter(), ctx.cost
        providers, unbound = screen_claims(job, claims)
        # from here on a bound claim's job_id and provider are exact str: no subclass's __eq__ runs in a check
        claims = tuple(c if i in unbound or (type(c.job_id) is str and type(c.provider) is str)
                       else dataclasses.replace(c, job_id=job.id, provider=providers[i])
                       for i, c in enumerate(claims))
        # and its evidence has exact-str keys only: no provider key's __eq__ runs in a scheme's lookup
        screened = []
        for i, c in enumerate(claims):
            ev = plain_evidence(c.evidence) if i not in unbound else c.evidence
            if isinstance(ev, str):
                unbound[i] = ev
            elif ev is not c.evidence:
                c = dataclasses.replace(c, evidence=ev)
            screened.append(c)
        # and its output is a private copy, bound to its commitment: what the check reads is what the verdict holds
        claims, outputs, unbindable = self._bind_outputs(tuple(screened), unbound)
        unbound = dict(sorted(unbound.items()))
        if unbound and not self.exclude_unbound:
            verdict = Verdict.reject("; ".join(dict.fromkeys(unbound.values())))
        else:
            kw = {"unbound": unbound} if self.exclude_unbound else {}
            verdict = self._guarded(lambda: self._check(job, claims, ctx, **kw))
            if type(verdict) is not Verdict:  # the scheme's own bug: neither a provider's fault nor a rejection
                raise TypeError(f"{type(self).__name__}._check must return a Verdict, got {type(verdict).__name__}")
        blame = {b.claim: b for b in verdict.blame}
        for i, why in unbound.items():
            blame.setdefault(i, Blame(i, providers[i], why))
        if not verdict.accepted and not blame and len(claims) == 1:
            blame[0] = Blame(0, providers[0], verdict.reason)
        # an output no private copy could be taken of is never accepted: its bytes are not pinned down
        late = {i: f"the output cannot be bound to the verdict: {why}" for i, why in unbindable.items()
                if i not in blame and (verdict.accepted or i not in verdict.blamed(len(claims)))}
        for i, why in late.items():
            blame[i] = Blame(i, providers[i], why)
        if late and verdict.accepted and len(blame) == len(claims):
            verdict = dataclasses.replace(verdict, accepted=False, reason="; ".join(dict.fromkeys(late.values())))
        return self._metered(dataclasses.replace(verdict, blame=tuple(blame.values()), outputs=outputs),
                             ctx, t0, before)

    def _bind_outputs(self, claims: tuple[Claim, ...], unbound: dict[int, str]
                      ) -> tuple[tuple[Claim, ...], tuple[Any, ...], dict[int, str]]:
        """Each bound claim with its output replaced by a private copy, and its commitment checked against it.

        Returns the claims, the copies per index (None where there is none) and
        ``{index: reason}`` for outputs no copy could be taken of (left as they
        are, for the check to judge; :meth:`verify` never lets one be accepted).
        A commitment that is not the content hash of the copy is added to
        ``unbound`` (when :attr:`binds_commitment`).
        """
        from vcompute.core.hashing import content_hash
        from vcompute.verify.screening import exact_str, private_copy

        out, copies, unbindable = [], [], {}
        for i, c in enumerate(claims):
            if i in unbound or c.output is None:
                out.append(c)
                copies.append(None)
                continue
            copy, why = private_copy(c.output)
            if why is not None:
                unbindable[i] = why
                out.append(c)
                copies.append(None)
                continue
            if self.binds_commitment and c.commitment is not None:
                commitment = exact_str(c.commitment)
                if commitment is None:
                    unbound[i] = f"the commitment is a {type(c.commitment).__name__}, not a str"
                elif commitment != content_hash(copy):
                    unbound[i] = "the commitment is not the content hash of the output (it names other bytes " \
                                 "than those checked)"
            out.append(dataclasses.replace(c, output=copy))
            copies.append(copy)
        return tuple(out), tuple(copies), unbindable

    def _guarded(self, check: Callable[[], Verdict]) -> Verdict:
        """``check()``, with any exception but the caller's or the machine's a rejection (the never-raise rule)."""
        try:
            return check()
        except (Misuse, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # not only Exception: hostile evidence may raise any BaseException subclass
            if _verifier_fault(e):
                raise
            return Verdict.reject(f"could not check the evidence: {_type_name(e)}: {_message(e)}")

    def _metered(self, verdict: Verdict, ctx: VerifyContext | None, t0: float, before: Cost | None) -> Verdict:
        """``verdict`` with its scheme set and its cost folded once: declared + metered, wall-time seconds."""
        declared = verdict.cost
        metered = Cost() if ctx is None else Cost(*(max(0.0, getattr(ctx.cost, f.name) - getattr(before, f.name))
                                                   for f in dataclasses.fields(Cost)))
        total = Cost(flops=declared.flops + metered.flops, seconds=time.perf_counter() - t0,
                     evidence_bytes=declared.evidence_bytes + metered.evidence_bytes,
                     reexecuted_fraction=declared.reexecuted_fraction + metered.reexecuted_fraction)
        if ctx is not None:  # what the context has not metered yet, so that it grows by the verdict's cost
            ctx.add_cost(Cost(flops=declared.flops, seconds=max(0.0, total.seconds - metered.seconds),
                              evidence_bytes=declared.evidence_bytes,
                              reexecuted_fraction=declared.reexecuted_fraction))
        return dataclasses.replace(verdict, cost=total, scheme=self.name)

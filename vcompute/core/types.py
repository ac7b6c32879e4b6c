"""The vocabulary of DESIGN.md as small immutable types.

``Job``, ``Claim``, ``Verdict`` and ``Cost`` are what every layer speaks.
They are frozen dataclasses; their JSON form (``to_dict``) carries specs and
content hashes, never raw arrays, so a job or a verdict can be logged,
posted to a ledger or shipped to another process.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from vcompute.core.hashing import canonical_json, content_hash, digest_hex

__all__ = ["Blame", "Cost", "Job", "Claim", "Verdict", "EvidenceSpec"]


def _frozen_mapping(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Cost:
    """What verifying (or computing) cost, in the units DESIGN.md names.

    Costs add with ``+`` so a verifier can meter each step and sum them.

    Attributes:
        flops: floating-point (or integer multiply-add) operations performed.
        seconds: wall-clock seconds spent.
        evidence_bytes: bytes of evidence received from provers.
        reexecuted_fraction: fraction of the job's own work re-executed
            (1.0 = the whole job was recomputed once).

    Example:
        >>> (Cost(flops=10, seconds=0.5) + Cost(flops=5)).flops
        15.0
    """

    flops: float = 0.0
    seconds: float = 0.0
    evidence_bytes: float = 0.0
    reexecuted_fraction: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
                raise ValueError(f"Cost.{f.name} must be a non-negative number, got {v!r}")
            object.__setattr__(self, f.name, float(v))

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)))

    def to_dict(self) -> dict[str, float]:
        """The cost as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EvidenceSpec:
    """What a prover must record while executing a job for a given scheme.

    Attributes:
        kind: name of the evidence (``"none"``, ``"output"``, ``"pol-transcript"``...).
        params: scheme-specific parameters (e.g. ``{"checkpoint_every": 20}``).
    """

    kind: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen_mapping(self.params))


@dataclass(frozen=True)
class Job:
    """What a consumer wants computed.

    A job is a serialisable spec (``kind`` + ``spec``) plus its inputs.
    The inputs stay in-process (they may be numpy, torch or JAX arrays);
    only their content hashes enter the job's identity and JSON form.

    Attributes:
        kind: the workload kind, e.g. ``"matmul"``, ``"inference"``, ``"training"``.
        spec: JSON-serialisable parameters of the workload.
        inputs: named input arrays (not serialised; hashed).

    Example:
        >>> import numpy as np
        >>> job = Job("matmul", {"n": 2}, {"a": np.eye(2), "b": np.eye(2)})
        >>> len(job.id)
        64
    """

    kind: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError("Job.kind must be a non-empty string")
        object.__setattr__(self, "spec", _frozen_mapping(self.spec))
        object.__setattr__(self, "inputs", _frozen_mapping(self.inputs))
        canonical_json(dict(self.spec))  # fail early if the spec is not serialisable

    @property
    def input_hashes(self) -> dict[str, str]:
        """Content hash of each input (see :func:`vcompute.core.hashing.content_hash`)."""
        cache = self.__dict__.get("_input_hashes")
        if cache is None:
            cache = {k: content_hash(v) for k, v in sorted(self.inputs.items())}
            object.__setattr__(self, "_input_hashes", cache)
        return dict(cache)

    @property
    def id(self) -> str:
        """Hex SHA-256 of the job's JSON form: equal jobs have equal ids."""
        return digest_hex(canonical_json(self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """JSON form: kind, spec and input hashes (no raw arrays)."""
        return {"kind": self.kind, "spec": dict(self.spec), "inputs": self.input_hashes}


@dataclass(frozen=True)
class Claim:
    """A provider's answer to a job.

    Attributes:
        job_id: the :attr:`Job.id` this claim answers.
        provider: the provider's name or account.
        output: the result itself (array, pytree, bytes) or ``None`` if only
            committed.
        commitment: hex commitment to the output (e.g. its content hash).
        evidence: what the scheme asked the provider to record.
        signature: the provider's signature over :meth:`signing_payload`, if any.
        meta: declared facts about the output (dtype, shape, backend, timing).
    """

    job_id: str
    provider: str
    output: Any = field(default=None, repr=False, compare=False)
    commitment: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    signature: bytes | None = field(default=None, repr=False)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", _frozen_mapping(self.evidence))
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))

    def signing_payload(self) -> bytes:
        """Canonical bytes a provider signs: job id, provider, commitment, meta."""
        commitment = self.commitment
        if commitment is None and self.output is not None:
            commitment = content_hash(self.output)
        return canonical_json(
            {"job_id": self.job_id, "provider": self.provider, "commitment": commitment,
             "meta": dict(self.meta)}
        )


@dataclass(frozen=True)
class Blame:
    """One claim a verifier judged wrong, and why.

    Attributes:
        claim: the claim's index in the sequence passed to ``verify``.
        provider: the claim's provider (as the claim names it).
        reason: a sentence a person can read.

    Example:
        >>> Blame(0, "p0", "output differs from the majority").to_dict()["claim"]
        0
    """

    claim: int
    provider: str
    reason: str

    def __post_init__(self) -> None:
        if type(self.claim) is not int or self.claim < 0:
            raise ValueError(f"Blame.claim must be a non-negative int index, got {self.claim!r}")
        object.__setattr__(self, "provider", str(self.provider))
        object.__setattr__(self, "reason", str(self.reason))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"claim": self.claim, "provider": self.provider, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    """A verifier's decision on one job.

    Attributes:
        accepted: whether the claim(s) were accepted.
        reason: a sentence a person can read.
        cost: what verifying cost.
        scheme: name of the verifier that decided.
        details: scheme-specific facts (per-layer verdicts, disagreeing
            replicas, the canonical result's provider, ...).
        blame: the claims judged wrong (:class:`Blame`, at most one per
            claim index). Settlement pays every claim not blamed and
            slashes every claim blamed, from the verdict alone. A rejected
            verdict with no blame of its own blames every claim (see
            :meth:`blamed`); an accepted one may blame the minority it
            outvoted.
        outputs: the outputs the verifier judged, per claim index: private
            copies taken before its check read them (None where a claim
            carried no output; empty when nothing was checked). A consumer
            takes an accepted claim's result from here, never from
            ``claim.output``, which the provider may still hold and change.
            Not part of the JSON form (hash them with
            :func:`~vcompute.core.hashing.content_hash`).

    Example:
        >>> v = Verdict.reject("output has shape (2, 3), expected (2, 2)", scheme="freivalds")
        >>> bool(v), v.reason
        (False, 'output has shape (2, 3), expected (2, 2)')
    """

    accepted: bool
    reason: str
    cost: Cost = field(default_factory=Cost)
    scheme: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    blame: tuple[Blame, ...] = ()
    outputs: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "accepted", bool(self.accepted))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "details", _frozen_mapping(self.details))
        blame = tuple(self.blame)
        if not all(type(b) is Blame for b in blame):
            raise TypeError("Verdict.blame must be a sequence of Blame")
        if len({b.claim for b in blame}) != len(blame):
            raise ValueError("Verdict.blame names a claim more than once")
        object.__setattr__(self, "blame", tuple(sorted(blame, key=lambda b: b.claim)))

    def blamed(self, n_claims: int) -> frozenset[int]:
        """Indices (into the ``n_claims`` claims verified) of the claims judged wrong.

        An explicit :attr:`blame` is taken as given; a rejected verdict
        without one blames every claim (a single-claim scheme need not
        say whom it rejected).

        Raises:
            ValueError: if the blame names a claim index ``>= n_claims``.

        Example:
            >>> Verdict.reject("bad").blamed(1), Verdict.accept().blamed(2)
            (frozenset({0}), frozenset())
        """
        if any(b.claim >= n_claims for b in self.blame):
            raise ValueError(f"the verdict blames claim {max(b.claim for b in self.blame)} of {n_claims}")
        if self.blame:
            return frozenset(b.claim for b in self.blame)
        return frozenset() if self.accepted else frozenset(range(n_claims))

    def __bool__(self) -> bool:
        return self.accepted

    @classmethod
    def accept(cls, reason: str = "accepted", **kw: Any) -> Verdict:
        """An accepting verdict."""
        return cls(True, reason, **kw)

    @classmethod
    def reject(cls, reason: str, **kw: Any) -> Verdict:
        """A rejecting verdict with a reason."""
        return cls(False, reason, **kw)

    def with_cost(self, cost: Cost) -> Verdict:
        """A copy with ``cost`` replacing the current cost."""
        return dataclasses.replace(self, cost=cost)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (details are included as given)."""
        return {"accepted": self.accepted, "reason": self.reason, "scheme": self.scheme,
                "cost": self.cost.to_dict(), "details": dict(self.details),
                "blame": [b.to_dict() for b in self.blame]}

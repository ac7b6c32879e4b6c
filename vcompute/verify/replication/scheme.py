"""Redundant execution: dispatch a job to k replicas and decide by quorum.

Papers: D. P. Anderson, "BOINC: a system for public-resource computing and
storage", GRID 2004 (quorum, canonical result, homogeneous redundancy);
L. F. G. Sarmenta, "Sabotage-tolerance mechanisms for volunteer computing
systems", FGCS 18(4), 2002 (M-first voting).

Replicas are grouped by a pluggable :mod:`~vcompute.verify.replication.equality` rule
and the largest group wins if it reaches the quorum. One provider, one
vote: identities become exact builtin ``str`` at the boundary
(:class:`~vcompute.verify.base.Scheme`), a claim without one, for another
job, or from a provider that sent several claims gets no vote and is
blamed. The verdict blames every malformed replica and, when a quorum
decides, every dissenter; without a quorum it blames only the malformed
(who is right is then unknown). A replica whose output is
malformed (missing, not an exact array type, wrong shape, NaN/Inf, a
commitment that does not match the output) counts as disagreeing; it never
crashes the verdict. A caller's wrong arguments raise :class:`TypeError`.
Error bounds and their assumptions are in ``proofs/replication.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.types import Blame, Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.base import Scheme, VerifyContext, verifier_fault
from vcompute.verify.claims import check_arguments, provider_identity, screen_claims
from vcompute.verify.replication.equality import Bitwise, Equality, Homogeneous, Tolerance, output_hash
from vcompute.verify.screening import exact_array_type, leaf_dtype, leaves, screen_leaves

__all__ = ["Replication", "expected_shape", "expected_kind", "expected_dtype", "screen_output", "make_equality",
           "provider_identity", "check_call"]


def expected_shape(job: Job) -> tuple[int, ...] | None:
    """The output shape a job declares: ``(m, n)`` for matmul, else ``spec['output_shape']``.

    Example:
        >>> expected_shape(Job("matmul", {"m": 2, "k": 3, "n": 4}))
        (2, 4)
    """
    if job.kind == "matmul" and "m" in job.spec and "n" in job.spec:
        return (int(job.spec["m"]), int(job.spec["n"]))
    shape = job.spec.get("output_shape")
    return tuple(int(d) for d in shape) if shape is not None else None


def expected_kind(job: Job) -> str | None:
    """The dtype family a job's output must have: ``"f"`` (float), ``"i"`` (integer), ``"b"`` or None.

    From ``spec['output_dtype']`` if declared, else for matmul from the input
    ``spec['dtype']`` (float inputs give a float product, int8/int16 an int32 one).

    Example:
        >>> expected_kind(Job("matmul", {"dtype": "bfloat16"})), expected_kind(Job("x"))
        ('f', None)
    """
    name = job.spec.get("output_dtype") or (job.spec.get("dtype") if job.kind == "matmul" else None)
    if not isinstance(name, str):
        return None
    name = name.split(".")[-1]
    if name.startswith(("float", "bfloat")):
        return "f"
    if name.startswith(("int", "uint")):
        return "i"
    return "b" if name == "bool" else None


def expected_dtype(job: Job) -> str | None:
    """The exact output dtype a job declares, or None: ``spec['output_dtype']``, else matmul's product dtype.

    Example:
        >>> expected_dtype(Job("matmul", {"dtype": "int8"})), expected_dtype(Job("matmul", {"dtype": "float32"}))
        ('int32', 'float32')
    """
    name = job.spec.get("output_dtype") or (job.spec.get("dtype") if job.kind == "matmul" else None)
    if not isinstance(name, str):
        return None
    name = name.split(".")[-1]
    return "int32" if job.kind == "matmul" and "output_dtype" not in job.spec and name.startswith("int") else name


def _family(leaf: Any) -> str:
    t = type(leaf)
    if t in (bool, int, float):
        return {bool: "b", int: "i", float: "f"}[t]
    name = str(leaf.dtype).split(".")[-1]
    return "f" if name.startswith(("float", "bfloat")) else "b" if name == "bool" else "i"


def screen_output(claim: Claim, shape: tuple[int, ...] | None = None, *,
                  commitment_only_ok: bool = False, kind: str | None = None) -> str | None:
    """Why a claim's output is malformed, or None if it is well formed.

    The output must pass :func:`~vcompute.verify.screening.screen_leaves`
    (exact containers and array types, numeric dtype, finite values); a
    single-array output must have ``shape``; a commitment, if sent, must be
    an exact ``str`` equal to the output's content hash. Nothing here runs a
    method of the provider's objects, so nothing here raises on them.

    Args:
        claim: the replica's claim.
        shape: the shape a single-array output must have, if known.
        commitment_only_ok: accept a claim that carries only a commitment (no
            :class:`Replication` vote does: a posted commitment is copied for free).
        kind: the dtype family every leaf must have (:func:`expected_kind`), if known.

    Returns:
        A reason a person can read, or None.

    Example:
        >>> screen_output(Claim("j", "p", output=np.array([1.0, np.nan])))
        'output leaf 0 contains NaN or Inf'
    """
    output, commitment = claim.output, claim.commitment
    if commitment is not None and type(commitment) is not str:
        return f"commitment is a {type(commitment).__name__}, not a str"
    if output is None:
        if commitment_only_ok and commitment:
            return None
        return "missing output"
    if shape is not None:  # the job's own size first: no value is read before the output is that size
        items = leaves(output)
        leaf = items[0][1] if items else None
        if len(items) != 1 or type(leaf) in (bool, int, float):
            return f"output is a structure of {len(items)} leaves, expected one array of shape {tuple(shape)}"
        if exact_array_type(leaf) is not None:  # anything else is refused by screen_leaves, with its reason
            got = tuple(int(d) for d in leaf.shape)
            if got != tuple(shape):
                return f"output has shape {got}, expected {tuple(shape)}"
    items, reason = screen_leaves(output)
    if reason is not None:
        return reason
    if kind is not None:
        for path, leaf in items:
            if _family(leaf) != kind:
                return f"output leaf {path or 0} has dtype {leaf_dtype(leaf)}, the job's output is {_KINDS[kind]}"
    if commitment is not None and commitment != content_hash(output):
        return "commitment does not match the output"
    return None


_KINDS = {"f": "float", "i": "integer", "b": "bool"}


def check_call(job: Any, claims: Any, ctx: Any = None) -> list[Claim]:
    """Deprecated: the caller's arguments of ``verify``; use :func:`vcompute.verify.claims.check_arguments`.

    Raises:
        TypeError: as :func:`~vcompute.verify.claims.check_arguments`.
    """
    return list(check_arguments(job, claims, ctx, ctx_type=None if ctx is None else VerifyContext))


def make_equality(spec: Equality | str | None = None, *, rtol: float | None = None,
                  ulp: float | None = None) -> Equality:
    """An equality rule from an instance or a name (``bitwise``, ``tolerance``, ``homogeneous``).

    Raises:
        ValueError: for an unknown name, or ``tolerance`` without bounds.

    Example:
        >>> make_equality("tolerance", rtol=1e-6).rtol
        1e-06
    """
    if spec is None or spec == "bitwise":
        return Bitwise()
    if isinstance(spec, str):
        if spec == "tolerance":
            return Tolerance(rtol=rtol, ulp=ulp)
        if spec == "homogeneous":
            inner = Tolerance(rtol=rtol, ulp=ulp) if (rtol is not None or ulp is not None) else Bitwise()
            return Homogeneous(inner)
        raise ValueError(f"unknown equality {spec!r}; known: bitwise, tolerance, homogeneous")
    if not hasattr(spec, "equal"):
        raise ValueError(f"equality must have an equal(a, b) method, got {type(spec).__name__}")
    return spec


class Replication(Scheme):
    """Accept the answer that a quorum of independent replicas agree on.

    Args:
        k: replicas requested per job. Defaults to 3 for ``majority`` and
            ``unanimity`` and to ``2M - 1`` for M-first voting.
        quorum: ``"majority"`` (more than ``k/2`` agree), ``"unanimity"``
            (all ``k`` agree, none malformed or missing) or an int ``M``
            (M-first voting: accept once one answer has ``M`` votes).
        equality: an :class:`~vcompute.verify.replication.equality.Equality` or its name.
        rtol, ulp: bounds for ``equality="tolerance"`` (or ``"homogeneous"``
            with a tolerance inside).
        shape_of: maps a job to its expected output shape (default
            :func:`expected_shape`); return None to skip the shape check.

    Raises:
        ValueError: for a bad ``k``, ``quorum`` or equality.

    Example:
        >>> from vcompute.verify import VerifyContext
        >>> job = Job("matmul", {"m": 1, "k": 1, "n": 2})
        >>> good = np.array([[1.0, 2.0]])
        >>> claims = [Claim(job.id, p, output=o) for p, o in
        ...           [("a", good), ("b", good), ("c", good + 1)]]
        >>> v = Replication(k=3).verify(job, claims, VerifyContext(seed=0))
        >>> v.accepted, v.details["canonical_provider"], v.details["disagreeing"]
        (True, 'a', ['c'])
    """

    name = "replication"
    exclude_unbound = True
    binds_commitment = False  # screen_output compares each vote's commitment with its (private) output

    def __init__(self, *, k: int | None = None, quorum: str | int = "majority",
                 equality: Equality | str | None = None, rtol: float | None = None,
                 ulp: float | None = None,
                 shape_of: Callable[[Job], tuple[int, ...] | None] | None = expected_shape) -> None:
        if isinstance(quorum, bool) or not (quorum in ("majority", "unanimity") or
                                            (isinstance(quorum, int) and quorum >= 1)):
            raise ValueError(f"quorum must be 'majority', 'unanimity' or a positive int M, got {quorum!r}")
        if k is None:
            k = 2 * quorum - 1 if isinstance(quorum, int) else 3
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if isinstance(quorum, int) and quorum > k:
            raise ValueError(f"quorum M={quorum} can never be reached with k={k} replicas; use k >= M")
        self.k = k
        self.quorum = quorum
        self.equality = make_equality(equality, rtol=rtol, ulp=ulp)
        self.shape_of = shape_of

    def __repr__(self) -> str:
        return f"Replication(k={self.k}, quorum={self.quorum!r}, equality={self.equality!r})"

    @property
    def votes_needed(self) -> int:
        """Agreeing replicas needed to accept."""
        if self.quorum == "majority":
            return self.k // 2 + 1
        if self.quorum == "unanimity":
            return self.k
        return int(self.quorum)

    # -- Verifier protocol ------------------------------------------------
    def replicas(self, job: Job) -> int:
        """``k``: the most replicas a decision may need."""
        return self.k

    def takes(self, job: Job, n_claims: int) -> bool:
        """Any number: replicas arrive one by one (M-first voting), and surplus claims vote by identity."""
        return True

    def _check(self, job: Job, claims: tuple[Claim, ...], ctx: VerifyContext, *,
               unbound: Mapping[int, str]) -> Verdict:
        """Group the replicas, pick the canonical result by quorum, blame the dissenters."""
        verdict = self._decide(job, claims, unbound)
        # the k - 1 extra replicas are the scheme's re-execution (done by the paid replicas, not the checker)
        return verdict.with_cost(Cost(reexecuted_fraction=float(max(0, len(claims) - 1))))

    def more_needed(self, job: Job, claims: Sequence[Claim]) -> int:
        """Fewest further replicas that could still settle the job (0 once decided).

        For M-first voting this is how a dispatcher knows when to stop; for
        majority and unanimity it is what is missing from ``k``.
        """
        claims = check_arguments(job, claims)
        groups, _, voter = self._groups(job, claims, screen_claims(job, claims)[1])
        identities = len(voter)  # duplicates and anonymous claims fill no replica slot
        best = max((len(g) for g in groups), default=0)
        if best >= self.votes_needed and (self.quorum != "unanimity" or identities >= self.k):
            return 0
        return max(0, min(self.votes_needed - best, self.k - identities))

    # -- internals --------------------------------------------------------
    def _groups(self, job: Job, claims: tuple[Claim, ...], unbound: Mapping[int, str]
                ) -> tuple[list[list[int]], dict[int, str], dict[int, str]]:
        """Well-formed votes (claim indices) grouped by answer, the reason each other claim has no vote,
        and the identity of each claim that has one.

        One identity, one vote: the base has already set apart (``unbound``)
        every claim for another job, without an identity, or whose identity
        sent more than one claim; of the rest, a claim whose output is
        malformed gets no vote.
        """
        shape = self.shape_of(job) if self.shape_of is not None else None
        kind = expected_kind(job) if self.shape_of is not None else None
        # a commitment alone proves no work: it is public once posted and an unsalted hash is copied for
        # free, so a claim without its output has no vote (before, two copiers made a quorum of nothing)
        commit_ok = False
        bitwise = type(self.equality) is Bitwise
        malformed: dict[int, str] = dict(unbound)
        voter: dict[int, str] = {}
        keys: dict[int, str | None] = {}

        def same(i: int, j: int) -> bool:
            if bitwise:
                return keys[i] == keys[j]
            try:
                return bool(self.equality.equal(claims[i], claims[j]))
            except Exception as e:  # answers that cannot be compared do not agree (blaming either is a guess)
                if verifier_fault(e):
                    raise
                return False

        def screen(i: int, c: Claim) -> str | None:
            reason = screen_output(c, shape, commitment_only_ok=commit_ok, kind=kind)
            if reason is None and bitwise:  # hash each output once instead of once per comparison
                keys[i] = output_hash(c)
            return reason

        votes: list[int] = []
        for i, c in enumerate(claims):
            if i in unbound:
                continue
            voter[i] = provider_identity(c.provider)[0]  # type: ignore[assignment]
            # one replica's evidence raising is that replica's fault: it must not cost the others their quorum
            verdict = self._guarded(lambda i=i, c=c: Verdict.reject(why) if (why := screen(i, c)) else Verdict.accept(""))
            if not verdict.accepted:
                malformed[i] = verdict.reason
                continue
            votes.append(i)
        groups: list[list[int]] = []
        for i in votes:
            for g in groups:  # greedy: tolerances are not transitive, so compare with the first member
                if same(g[0], i):
                    g.append(i)
                    break
            else:
                groups.append([i])
        groups.sort(key=len, reverse=True)  # stable: ties keep arrival order
        return groups, malformed, voter

    def _decide(self, job: Job, claims: tuple[Claim, ...], unbound: Mapping[int, str]) -> Verdict:
        groups, malformed, voter = self._groups(job, claims, unbound)
        need = self.votes_needed
        identities = len(voter)
        missing = max(0, self.k - identities)

        def who(i: int) -> str:
            return voter.get(i) or provider_identity(claims[i].provider)[0] or f"replica-{i}"

        details: dict[str, Any] = {
            "quorum": self.quorum, "k": self.k, "votes_needed": need, "received": len(claims),
            "identities": identities, "missing": missing, "group_sizes": [len(g) for g in groups],
            "malformed": {who(i): why for i, why in malformed.items()},
            "equality": self.equality.to_dict() if hasattr(self.equality, "to_dict") else self.equality.name,
        }
        best = groups[0] if groups else []
        tie = len(groups) > 1 and len(groups[1]) == len(best)
        details["agreeing"] = [who(i) for i in best]
        details["disagreeing"] = [who(i) for g in groups[1:] for i in g] + sorted({who(i) for i in malformed})
        ok = len(best) >= need and not tie
        if self.quorum == "unanimity":
            ok = ok and not malformed and missing == 0 and len(groups) == 1
        # a malformed or unbound claim is wrong on its own; a well-formed dissenter only against a canonical answer
        blame = [Blame(i, who(i), why if i in unbound else f"malformed replica: {why}")
                 for i, why in malformed.items()]
        if ok:
            canonical = claims[best[0]]
            details["canonical_provider"] = who(best[0])
            details["canonical_commitment"] = output_hash(canonical)
            blame += [Blame(i, who(i), f"output differs from the answer {len(best)} of {identities} providers "
                                       "agree on") for g in groups[1:] for i in g]
            return Verdict.accept(
                f"{len(best)} of {identities} providers agree ({need} needed); "
                f"{len(details['disagreeing'])} disagreed", details=details, blame=tuple(blame))
        details["canonical_provider"] = None
        details["canonical_commitment"] = None
        details["more_needed"] = self.more_needed(job, claims)
        if not groups:
            why = f"no well-formed replica among {len(claims)}"
        elif tie:
            why = f"tie: two answers with {len(best)} votes each"
        else:
            why = f"largest agreeing group has {len(best)} of {len(claims)} replicas, {need} needed"
        if malformed:
            why += f"; {len(malformed)} malformed"
        return Verdict.reject(f"no quorum: {why}", details=details, blame=tuple(blame))

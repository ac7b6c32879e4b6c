"""Redundant execution: dispatch a job to k replicas and decide by quorum.

Papers: D. P. Anderson, "BOINC: a system for public-resource computing and
storage", GRID 2004 (quorum, canonical result, homogeneous redundancy);
L. F. G. Sarmenta, "Sabotage-tolerance mechanisms for volunteer computing
systems", FGCS 18(4), 2002 (M-first voting).

Replicas are grouped by a pluggable :mod:`~vcompute.verify.equality` rule
and the largest group wins if it reaches the quorum. A replica whose output
is malformed (missing, not an array, wrong shape, NaN/Inf, a commitment
that does not match the output, a second answer from the same provider)
counts as disagreeing; it never crashes the verdict. Error bounds and
their assumptions are in ``proofs/replication.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vcompute.core.arrays import is_array
from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.base import VerifyContext
from vcompute.verify.equality import Bitwise, Equality, Homogeneous, Tolerance, leaves, output_hash

__all__ = ["Replication", "expected_shape", "screen_output", "make_equality"]

_NUMERIC_KINDS = "biuf"


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


def screen_output(claim: Claim, shape: tuple[int, ...] | None = None, *,
                  commitment_only_ok: bool = False) -> str | None:
    """Why a claim's output is malformed, or None if it is well formed.

    Args:
        claim: the replica's claim.
        shape: the shape a single-array output must have, if known.
        commitment_only_ok: accept a claim that carries only a commitment
            (fine for bitwise comparison, not for tolerances).

    Returns:
        A reason a person can read, or None.

    Example:
        >>> screen_output(Claim("j", "p", output=np.array([1.0, np.nan])))
        'output leaf 0 contains NaN or Inf'
    """
    try:
        if claim.output is None:
            if commitment_only_ok and isinstance(claim.commitment, str) and claim.commitment:
                return None
            return "missing output"
        items = leaves(claim.output)
        if not items:
            return "output is an empty structure"
        for i, (path, leaf) in enumerate(items):
            where = path or str(i)
            if isinstance(leaf, (bool, int, float)):
                if isinstance(leaf, float) and not math.isfinite(leaf):
                    return f"output leaf {where} is NaN or Inf"
                continue
            if not is_array(leaf):
                return f"output leaf {where} is a {type(leaf).__name__}, not an array"
            from vcompute.core.arrays import to_numpy

            a = np.asarray(to_numpy(leaf))
            if a.dtype.kind not in _NUMERIC_KINDS:
                return f"output leaf {where} has non-numeric dtype {a.dtype}"
            if a.dtype.kind == "f" and not bool(np.all(np.isfinite(a))):
                return f"output leaf {where} contains NaN or Inf"
        if shape is not None:
            if len(items) != 1 or not hasattr(items[0][1], "shape"):
                return f"output is a structure of {len(items)} leaves, expected one array of shape {shape}"
            got = tuple(int(d) for d in items[0][1].shape)
            if got != tuple(shape):
                return f"output has shape {got}, expected {tuple(shape)}"
        if claim.commitment is not None and claim.commitment != content_hash(claim.output):
            return "commitment does not match the output"
    except Exception as e:  # hostile objects must not escape the verdict
        return f"could not inspect the output: {type(e).__name__}: {e}"
    return None


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


class Replication:
    """Accept the answer that a quorum of independent replicas agree on.

    Args:
        k: replicas requested per job. Defaults to 3 for ``majority`` and
            ``unanimity`` and to ``2M - 1`` for M-first voting.
        quorum: ``"majority"`` (more than ``k/2`` agree), ``"unanimity"``
            (all ``k`` agree, none malformed or missing) or an int ``M``
            (M-first voting: accept once one answer has ``M`` votes).
        equality: an :class:`~vcompute.verify.equality.Equality` or its name.
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

    def evidence(self, job: Job) -> EvidenceSpec:
        """Only the outputs themselves."""
        return EvidenceSpec("output")

    def verify(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext) -> Verdict:
        """Group the replicas, pick the canonical result by quorum, name the dissenters."""
        t0 = time.perf_counter()
        try:
            verdict = self._decide(job, list(claims))
        except Exception as e:  # a hostile claim must never escape as an exception
            verdict = Verdict.reject(f"could not compare replicas: {type(e).__name__}: {e}", scheme=self.name)
        cost = Cost(seconds=time.perf_counter() - t0,
                    reexecuted_fraction=float(max(0, len(claims) - 1)))
        ctx.add_cost(cost)
        return verdict.with_cost(cost)

    def more_needed(self, job: Job, claims: Sequence[Claim]) -> int:
        """Fewest further replicas that could still settle the job (0 once decided).

        For M-first voting this is how a dispatcher knows when to stop; for
        majority and unanimity it is what is missing from ``k``.
        """
        groups, _ = self._groups(job, list(claims))
        best = max((len(g) for g in groups), default=0)
        if best >= self.votes_needed and (self.quorum != "unanimity" or len(claims) >= self.k):
            return 0
        return max(0, min(self.votes_needed - best, self.k - len(claims)))

    # -- internals --------------------------------------------------------
    def _groups(self, job: Job, claims: list[Claim]) -> tuple[list[list[Claim]], dict[str, str]]:
        shape = self.shape_of(job) if self.shape_of is not None else None
        commit_ok = isinstance(self.equality, Bitwise)
        malformed: dict[str, str] = {}
        seen: set[str] = set()
        groups: list[list[Claim]] = []
        bitwise = type(self.equality) is Bitwise
        keys: dict[int, str | None] = {}
        for i, c in enumerate(claims):
            who = getattr(c, "provider", None) or f"replica-{i}"
            if not isinstance(c, Claim):
                malformed[f"replica-{i}"] = f"not a Claim but a {type(c).__name__}"
                continue
            if c.job_id != job.id:
                malformed[who] = "answers another job (job id mismatch)"
                continue
            if who in seen:  # BOINC: one result per user per workunit
                malformed[f"{who}#{i}"] = "second replica from the same provider"
                continue
            seen.add(who)
            reason = screen_output(c, shape, commitment_only_ok=commit_ok)
            if reason is not None:
                malformed[who] = reason
                continue
            if bitwise:  # hash each output once instead of once per comparison
                keys[id(c)] = output_hash(c)
            for g in groups:  # greedy: tolerances are not transitive, so compare with the first member
                same = keys[id(g[0])] == keys[id(c)] if bitwise else self.equality.equal(g[0], c)
                if same:
                    g.append(c)
                    break
            else:
                groups.append([c])
        groups.sort(key=len, reverse=True)  # stable: ties keep arrival order
        return groups, malformed

    def _decide(self, job: Job, claims: list[Claim]) -> Verdict:
        groups, malformed = self._groups(job, claims)
        need = self.votes_needed
        missing = max(0, self.k - len(claims))
        details: dict[str, Any] = {
            "quorum": self.quorum, "k": self.k, "votes_needed": need, "received": len(claims),
            "missing": missing, "group_sizes": [len(g) for g in groups], "malformed": dict(malformed),
            "equality": self.equality.to_dict() if hasattr(self.equality, "to_dict") else self.equality.name,
        }
        best = groups[0] if groups else []
        tie = len(groups) > 1 and len(groups[1]) == len(best)
        details["agreeing"] = [c.provider for c in best]
        details["disagreeing"] = [c.provider for g in groups[1:] for c in g] + sorted(malformed)
        ok = len(best) >= need and not tie
        if self.quorum == "unanimity":
            ok = ok and not malformed and missing == 0 and len(groups) == 1
        if ok:
            canonical = best[0]
            details["canonical_provider"] = canonical.provider
            details["canonical_commitment"] = output_hash(canonical)
            return Verdict.accept(
                f"{len(best)} of {len(claims)} replicas agree ({need} needed); "
                f"{len(details['disagreeing'])} disagreed", scheme=self.name, details=details)
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
        return Verdict.reject(f"no quorum: {why}", scheme=self.name, details=details)

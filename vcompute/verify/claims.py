"""The boundary of ``verify``: the caller's arguments checked, each claim's binding screened.

Two kinds of fault meet here, and they must never be confused (a
marketplace slashes on rejections):

- the **caller's** (:func:`check_arguments`): ``job`` not an exact
  :class:`~vcompute.core.types.Job`, ``claims`` not an exact ``list`` /
  ``tuple`` of exact :class:`~vcompute.core.types.Claim`, ``ctx`` not a
  :class:`~vcompute.verify.base.VerifyContext`, or a number of claims the
  scheme does not take. The caller assembles the claims list (it wraps each
  provider message in a ``Claim``), so these raise ``TypeError`` /
  ``ValueError``. Exact types only: a ``list`` subclass could lie in
  ``__len__`` / ``__iter__``, a ``Claim`` subclass answer each attribute
  read differently, a ``Job`` subclass override ``id``.
- a **provider's** (:func:`screen_claims`): a claim that answers another
  job, names no usable identity, or shares its identity with another claim
  of the same call. Each is a reason attached to *that* claim's index; the
  scheme's verdict blames it.

Nothing here runs a method a provider's object could override: ``str``
values are copied with ``str.__str__`` before they are compared or hashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from typing import Any

from vcompute.core.types import Claim, Job

__all__ = ["check_arguments", "screen_claims", "provider_identity", "JOB_MISMATCH"]

#: The reason a claim bound to another job is blamed with.
JOB_MISMATCH = "claim answers another job (job id mismatch)"


def check_arguments(job: Any, claims: Any, ctx: Any = None, *, ctx_type: type | None = None) -> tuple[Claim, ...]:
    """The caller's arguments of ``verify``, checked; raises on the caller's mistakes.

    Args:
        job: the job (an exact :class:`~vcompute.core.types.Job`).
        claims: the claims, as the caller assembled them.
        ctx: the verification context (checked when ``ctx_type`` is given).
        ctx_type: the class ``ctx`` must be an instance of.

    Returns:
        The claims as a tuple (the same exact ``Claim`` objects).

    Raises:
        TypeError: naming the argument (and the offending index) and the fix.

    Example:
        >>> check_arguments(Job("x"), "abc")
        Traceback (most recent call last):
        ...
        TypeError: claims must be an exact list or tuple of Claim objects, got str; wrap a single claim as [claim]
    """
    if type(job) is not Job:
        raise TypeError(f"job must be a vcompute.core.types.Job (not a subclass), got {type(job).__name__}")
    if type(claims) not in (list, tuple):  # a subclass could lie in __len__ / __iter__ / __getitem__
        raise TypeError(f"claims must be an exact list or tuple of Claim objects, got {type(claims).__name__}; "
                        "wrap a single claim as [claim]")
    out = tuple(list.__iter__(claims) if type(claims) is list else tuple.__iter__(claims))
    for i, c in enumerate(out):
        if type(c) is not Claim:  # a subclass's properties could answer differently on every read
            raise TypeError(f"claims[{i}] is a {type(c).__name__}, not an exact Claim; wrap each provider's "
                            "answer as Claim(job.id, provider, output=...)")
    if ctx_type is not None and not isinstance(ctx, ctx_type):
        raise TypeError(f"ctx must be a {ctx_type.__name__}, got {type(ctx).__name__}")
    return out


def provider_identity(provider: Any) -> tuple[str | None, str | None]:
    """The identity a claim answers under, as an exact builtin ``str``, or why it has none.

    An identity is a non-empty ``str`` without surrounding whitespace or
    control characters. A ``str`` subclass is copied to an exact ``str``
    (``str.__str__``, which runs none of the subclass's code), so its
    ``__eq__`` and ``__hash__`` cannot make one provider look like many.

    Args:
        provider: ``claim.provider`` as received.

    Returns:
        ``(identity, None)`` or ``(None, reason)``.

    Example:
        >>> provider_identity("p1"), provider_identity("  ")
        (('p1', None), (None, 'empty provider identity'))
    """
    if provider is None:
        return None, "no provider identity"
    if not issubclass(type(provider), str):  # not isinstance: that would consult the object's __class__
        return None, f"provider identity is a {type(provider).__name__}, not a str"
    ident = str.__str__(provider)
    if not ident.strip():
        return None, "empty provider identity"
    if ident != ident.strip() or not ident.isprintable():
        return None, "provider identity has surrounding whitespace or control characters"
    return ident, None


def screen_claims(job: Job, claims: tuple[Claim, ...]) -> tuple[list[str], dict[int, str]]:
    """Each claim's provider identity, and the reason each badly bound claim is blamed.

    A claim is badly bound if its ``job_id`` is not (an exact copy of) a
    ``str`` equal to ``job.id``, if its provider has no identity
    (:func:`provider_identity`), or if another claim of the call has the
    same identity: a provider answers a job once, so every claim of a
    repeated identity is blamed (which of them is "the" answer is not ours
    to guess, and one vote per identity is what replication's bounds assume).

    Args:
        job: the job (already checked by :func:`check_arguments`).
        claims: the claims (already checked).

    Returns:
        ``(providers, problems)``: the exact-``str`` identity of each claim
        (``""`` where it has none, for :class:`~vcompute.core.types.Blame`)
        and ``{index: reason}`` for the badly bound claims.

    Example:
        >>> job = Job("x")
        >>> screen_claims(job, (Claim(job.id, "a"), Claim("other", "b"), Claim(job.id, "a")))[1]
        {0: 'provider a sent 2 claims for this job', 1: 'claim answers another job (job id mismatch)', \
2: 'provider a sent 2 claims for this job'}
    """
    providers: list[str] = []
    problems: dict[int, str] = {}
    seen: dict[str, list[int]] = {}
    for i, c in enumerate(claims):
        who, why = provider_identity(c.provider)
        providers.append(who or "")
        job_id = c.job_id
        if not issubclass(type(job_id), str) or str.__str__(job_id) != job.id:
            problems[i] = JOB_MISMATCH
        elif who is None:
            problems[i] = why  # type: ignore[assignment]
        if who is not None:
            seen.setdefault(who, []).append(i)
    for who, idx in seen.items():
        if len(idx) > 1:
            for i in idx:
                problems.setdefault(i, f"provider {who} sent {len(idx)} claims for this job")
    return providers, dict(sorted(problems.items()))


def plain_evidence(evidence: Any) -> Mapping[str, Any] | str:
    """A claim's evidence as a read-only mapping with exact-``str`` keys, or why it cannot be read.

    A provider's key that is a ``str`` subclass hashing like ``"proof"``
    would run its own ``__eq__`` (which may raise anything, a
    ``MemoryError`` included) when a scheme looks ``"proof"`` up: only
    exact-``str`` keys are kept, so no provider code runs in a lookup.
    Evidence that is not the plain mapping :class:`~vcompute.core.types.Claim`
    builds (e.g. swapped in with ``object.__setattr__``) is read once,
    guarded; what fails is the provider's.

    Args:
        evidence: ``claim.evidence``.

    Returns:
        The mapping (the claim's own when every key is already an exact
        ``str``), or the reason it was refused.

    Example:
        >>> class Sly(str):
        ...     __hash__ = str.__hash__
        >>> sorted(plain_evidence({"seed": 1, Sly("proof"): b"q"}))
        ['seed']
    """
    try:
        if type(evidence) is MappingProxyType or type(evidence) is dict:
            items = list(dict.items(evidence) if type(evidence) is dict else evidence.items())
        else:
            return f"evidence is a {type(evidence).__name__}, not a mapping"
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - a hostile mapping's failure is the provider's
        return f"evidence could not be read ({type(e).__name__})"
    if all(type(k) is str for k, _ in items) and type(evidence) is MappingProxyType:
        return evidence
    return MappingProxyType({k: v for k, v in items if type(k) is str})

"""Adaptive replication in the market: a consumer trust policy with per-provider memory.

With ``consumers.adaptive_policy`` set, the fixed audit probability is
replaced by a policy from :data:`vcompute.trust.policies.POLICIES`
(BOINC's consecutive-valid rule, the error-rate rule, credibility, a
blacklist wrapper, ...). The policy only sets the audit probability per
provider (:meth:`AdaptiveTrust.audit_plan`): once a job's primary claim is
committed the market draws the coin, as for a fixed ``audit_p``, and a
checked job is checked with replication schemes (several claims) by
running the extra replicas then; with single-claim schemes (Freivalds,
spot-checks) by having the verifier check it. After a checked job every replica's verdict is recorded
with the policy, and a provider the policy no longer allows is banned from
the market. One policy instance serves all consumers (like a BOINC project
server), so a provider's streak carries across jobs and consumers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["BACKTRACKING", "PRESETS", "AdaptiveTrust", "build_policy"]

_RESIST = {"max_invalid": 1, "inner": {"name": "consecutive_valid", "params": {"threshold": 10, "min_check": 0.05}}}

#: Named setups (``consumers.adaptive_policy = "resist"``), after the presets
#: of the Monte-Carlo task ``replication.adaptive`` (throttling quotas are not
#: modelled): preset -> (policy name, parameters). ``adaptive_params``
#: override a preset's parameters. Presets in :data:`BACKTRACKING` also
#: re-execute a caught provider's unchecked results.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "fixed2": ("fixed", {"k": 2}),
    "boinc_cv": ("consecutive_valid", {"threshold": 10}),
    "boinc_error_rate": ("error_rate", {}),
    "cv_backtrack": ("consecutive_valid", {"threshold": 10}),
    "resist": ("blacklist", _RESIST),
    "resist_backtrack": ("blacklist", _RESIST),
}

#: Presets that backtrack: when a provider's checked result is invalid, every
#: result it had accepted unchecked since its last catch is re-executed and a
#: wrong one corrected (the Monte-Carlo ``resist`` and ``cv_backtrack``). The
#: re-execution counts as computed work; the money already paid is not clawed back.
BACKTRACKING = frozenset({"cv_backtrack", "resist_backtrack"})


def build_policy(name: str, params: dict[str, Any]) -> Any:
    """Instantiate policy ``name`` with ``params``, turning every failure into a ``ValueError``.

    Args:
        name: a name registered in :data:`vcompute.trust.policies.POLICIES`,
            or a preset of :data:`PRESETS`.
        params: its keyword arguments (``blacklist`` takes ``inner`` as a
            ``{"name": ..., "params": {...}}`` table); for a preset, overrides.

    Returns:
        The policy.

    Raises:
        ValueError: for an unknown name (listing the known ones) or bad parameters.

    Example:
        >>> build_policy("consecutive_valid", {"min_check": 0.05}).params["min_check"]
        0.05
    """
    from vcompute.trust.policies import POLICIES, create_policy

    if name in PRESETS:
        name, base = PRESETS[name]
        params = {**base, **params}
    elif name not in POLICIES:
        raise ValueError(f"unknown adaptive policy {name!r}; known policies: {', '.join(POLICIES.names())}; "
                         f"presets: {', '.join(PRESETS)}")
    try:
        return create_policy(name, **params)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"bad consumers.adaptive_params for policy {name!r}: {e}") from e


class AdaptiveTrust:
    """The market's side of an adaptive policy: each provider's audit probability, verdicts, bans.

    The policy changes only ``p``, per provider: :meth:`audit_plan` says
    with what probability the primary provider's job is checked and with
    how many claims; the market draws the coin itself, with the same
    :meth:`~vcompute.verify.audit.Audit.drawn` rule as a fixed ``audit_p``,
    once the provider's claim is committed.

    Args:
        name: the policy's registry name or a preset.
        params: its parameters.
        ban: called with a provider the policy no longer allows (the market takes it off the book).

    Attributes:
        policy: the :class:`~vcompute.trust.policies.ReplicationPolicy`
            (its ``state_dict()`` is the per-provider state).
        trusted: jobs the policy let run unchecked.
        checked: jobs it had checked.
        banned: providers it banned.
        backtrack: whether caught providers' unchecked results are re-executed.
        backtracked: results re-executed by backtracking.
        corrected: wrong results backtracking found and corrected.

    Example:
        >>> t = AdaptiveTrust("consecutive_valid", {"threshold": 1})
        >>> t.audit_plan("p0")
        (1.0, 2)
    """

    def __init__(self, name: str, params: dict[str, Any], ban: Callable[[Any], None] | None = None) -> None:
        self.policy = build_policy(name, params)
        self.ban = ban
        self.trusted = 0
        self.checked = 0
        self.banned = 0
        self.backtrack = name in BACKTRACKING
        self.backtracked = 0
        self.corrected = 0
        self._unchecked: dict[str, list[tuple[bool, float]]] = {}  # provider -> [(wrong, re-execution cost)]
        self._still = np.random.default_rng(0)  # for policies whose replicas_for ignores its generator

    def audit_plan(self, provider: str) -> tuple[float, int]:
        """``(p, k)``: the probability that ``provider``'s next job is checked, and the claims a check compares.

        A policy that states a probability (``check_probability``, or
        ``trust_probability`` as its complement) gives it; one that decides
        outright (``fixed``, ``credibility``) gives p = 1 when it wants more
        than one claim, else 0.
        """
        pol = self.policy
        while hasattr(pol, "inner"):  # the blacklist wrapper forwards the decision
            pol = pol.inner
        quorum = int(pol.params.get("quorum", 2)) if hasattr(pol, "params") else 2
        if hasattr(pol, "check_probability"):
            return float(pol.check_probability(provider)), quorum
        if hasattr(pol, "trust_probability"):
            return 1.0 - float(pol.trust_probability(provider)), quorum
        k = max(1, int(pol.replicas_for(provider, self._still)))
        return (1.0 if k > 1 else 0.0), k

    def drawn(self, audited: bool) -> None:
        """Count a job as checked or trusted once its coin is drawn."""
        if audited:
            self.checked += 1
        else:
            self.trusted += 1

    def accepted_unchecked(self, provider: str, wrong: bool, cost_usd: float) -> None:
        """Remember a result accepted without a check (for backtracking; ``cost_usd``: re-executing it)."""
        if self.backtrack:
            self._unchecked.setdefault(provider, []).append((wrong, cost_usd))

    def record(self, replicas: Sequence[Any], verdicts: Sequence[bool], source: str) -> tuple[int, int, float]:
        """Record each checked replica's verdict; backtrack a caught one; ban providers no longer allowed.

        Returns:
            ``(re-executed, corrected, cost_usd)`` of the backtracking this triggered.
        """
        redo = fixed = 0
        cost = 0.0
        for pr, ok in zip(replicas, verdicts):
            self.policy.record(pr.name, "valid" if ok else "invalid", source=source)
            if not ok and self.backtrack:
                for wrong, c in self._unchecked.pop(pr.name, []):
                    redo += 1
                    fixed += wrong  # the consumer now holds the re-executed, correct result
                    cost += c
            if not pr.banned and not self.policy.allowed(pr.name):
                self.banned += 1
                if self.ban is not None:
                    self.ban(pr)
        self.backtracked += redo
        self.corrected += fixed
        return redo, fixed, cost

    def summary(self) -> dict[str, float]:
        """``adaptive_trusted_share`` (jobs run unchecked), ``adaptive_banned``, ``backtracked``, ``backtrack_corrected``."""
        n = self.trusted + self.checked
        return {"adaptive_trusted_share": self.trusted / n if n else float("nan"),
                "adaptive_banned": self.banned, "backtracked": self.backtracked,
                "backtrack_corrected": self.corrected}

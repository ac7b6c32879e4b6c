"""Adaptive replication in the market: a consumer trust policy with per-provider memory.

With ``consumers.adaptive_policy`` set, the fixed audit probability is
replaced by a policy from :data:`vcompute.trust.policies.POLICIES`
(BOINC's consecutive-valid rule, the error-rate rule, credibility, a
blacklist wrapper, ...). For each job the market picks its primary
provider, asks the policy how many replicas that provider's job needs
(``1`` = trust it alone, unchecked), and checks the job when more are
needed: with replication schemes (several claims) by running that many
replicas; with single-claim schemes (Freivalds, spot-checks) by having the
verifier check it. After a checked job every replica's verdict is recorded
with the policy, and a provider the policy no longer allows is banned from
the market. One policy instance serves all consumers (like a BOINC project
server), so a provider's streak carries across jobs and consumers.
"""

from __future__ import annotations

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
    """The market's side of an adaptive policy: plan each job's replicas, record verdicts, ban.

    Args:
        name: the policy's registry name or a preset.
        params: its parameters.

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
        >>> t.replicas("p0", np.random.default_rng(0))
        2
    """

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        self.policy = build_policy(name, params)
        self.trusted = 0
        self.checked = 0
        self.banned = 0
        self.backtrack = name in BACKTRACKING
        self.backtracked = 0
        self.corrected = 0
        self._unchecked: dict[str, list[tuple[bool, float]]] = {}  # provider -> [(wrong, re-execution cost)]

    def replicas(self, provider: str, rng: np.random.Generator) -> int:
        """Replicas (this provider's included) its next job needs; 1 means trusted."""
        return max(1, int(self.policy.replicas_for(provider, rng)))

    def plan(self, mk: Any, job: Any, check: Any) -> list[tuple[Any, float]] | None:
        """Pick ``job``'s primary provider, ask the policy, pick the replicas it wants.

        The decision is kept on the job while it waits for replicas, so a
        busy market does not re-roll it until trust wins; it is re-drawn only
        if a different primary is picked later.

        Returns:
            ``[(provider, price), ...]`` removed from the book, or None (wait).
        """
        cons = mk.p.consumers
        first = mk.matcher.pick(1, memory_gb=job.jtype.memory_gb, rng=mk.rng, max_price=cons.max_price_usd_per_pflop)
        if first is None:
            return None
        name = first[0][0].name
        if job.plan is None or job.plan[0] != name:
            # Capped at the market's size: more replicas than providers would stall the queue.
            job.plan = (name, min(self.replicas(name, mk.rng), len(mk.providers)))
        k = job.plan[1]
        job.audit = k > 1 and check.scheme != "none"
        extra = k - 1 if job.audit and check.k > 1 else 0
        if extra == 0:
            return first
        more = mk.matcher.pick(extra, memory_gb=job.jtype.memory_gb, rng=mk.rng,
                               max_price=cons.max_price_usd_per_pflop)
        if more is None:
            mk.matcher.add(first[0][0])
            return None
        return first + more

    def started(self, job: Any) -> None:
        """Count the job as trusted or checked once it runs."""
        if job.audit:
            self.checked += 1
        else:
            self.trusted += 1

    def accepted_unchecked(self, mk: Any, job: Any, r: int, wrong: bool) -> None:
        """Remember a result accepted without a check (for backtracking)."""
        if self.backtrack:
            cost = job.jtype.pflop * mk.a100_cpp * mk.p.auditors.cost_factor
            self._unchecked.setdefault(job.replicas[r].name, []).append((wrong, cost))

    def _backtrack(self, mk: Any, name: str) -> None:
        m = mk.m
        for wrong, cost in self._unchecked.pop(name, []):
            self.backtracked += 1
            m.verify_compute_usd += cost
            if wrong:  # the consumer now holds the re-executed, correct result
                self.corrected += 1
                m.wrong_accepted -= 1
                m.correct += 1

    def record(self, mk: Any, job: Any, live: list[int], verdicts: list[bool], source: str) -> None:
        """Record each checked replica's verdict; backtrack a caught one; ban providers no longer allowed."""
        for r, ok in zip(live, verdicts):
            pr = job.replicas[r]
            self.policy.record(pr.name, "valid" if ok else "invalid", source=source)
            if not ok and self.backtrack:
                self._backtrack(mk, pr.name)
            if not pr.banned and not self.policy.allowed(pr.name):
                pr.banned = True
                mk.matcher.remove(pr)
                mk.m.banned += 1
                self.banned += 1

    def summary(self) -> dict[str, float]:
        """``adaptive_trusted_share`` (jobs run unchecked), ``adaptive_banned``, ``backtracked``, ``backtrack_corrected``."""
        n = self.trusted + self.checked
        return {"adaptive_trusted_share": self.trusted / n if n else float("nan"),
                "adaptive_banned": self.banned, "backtracked": self.backtracked,
                "backtrack_corrected": self.corrected}

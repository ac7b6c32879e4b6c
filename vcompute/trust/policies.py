"""Adaptive replication policies: how many replicas a provider's job needs.

A policy keeps per-provider state and answers two questions for a
dispatcher (the Monte-Carlo models here, the marketplace later)::

    k = policy.replicas_for(provider_id, rng)   # 1 = trust its answer alone
    policy.record(provider_id, "valid")         # after a checked result

Built-ins, registered in :data:`POLICIES`:

- ``fixed``: always ``k`` replicas (plain voting; the baseline).
- ``consecutive_valid``: BOINC's adaptive replication. A host with ``CV``
  consecutive valid results, ``CV >= threshold``, is trusted with
  probability ``1 - 1/CV``; an invalid result resets ``CV``. Optional
  ``min_check`` keeps a floor on the checking probability (it resists
  hosts that build a streak and then cheat).
- ``error_rate``: BOINC's older rule: a decaying error-rate estimate
  (``*0.95`` per valid, ``+0.1`` per invalid) below ``limit`` earns trust.
- ``credibility``: Sarmenta's credibility-based fault tolerance: a
  worker's credibility grows with passed spot-checks; a job gets enough
  agreeing replicas for the group credibility to reach ``threshold``. By
  default the group bound is the one for colluders who coordinate *when*
  to cheat (:func:`~vcompute.trust.correlated.coordinated_group_credibility`);
  Sarmenta's independent product is ``collusion="independent"``.
- ``blacklist``: wraps any policy, banning a provider after
  ``max_invalid`` invalid results and halving its quota on each one
  (BOINC's punitive throttling).

Every policy's state is a JSON-ready dict (:meth:`state_dict`) and comes
back with :func:`policy_from_state`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from vcompute.core.registry import Registry
from vcompute.trust.correlated import coordinated_group_credibility
from vcompute.trust.voting import worker_credibility

__all__ = ["POLICIES", "ReplicationPolicy", "FixedReplication", "ConsecutiveValid", "ErrorRate",
           "Credibility", "Blacklist", "create_policy", "policy_from_state", "OUTCOMES"]

#: What :meth:`ReplicationPolicy.record` accepts.
OUTCOMES = ("valid", "invalid")

#: Replication policies by name (entry-point group ``vcompute.policies``).
POLICIES: Registry = Registry("replication policy", group="vcompute.policies")


@runtime_checkable
class ReplicationPolicy(Protocol):
    """Per-provider replication decisions.

    Attributes:
        name: the registry name.
    """

    name: str

    def replicas_for(self, provider_id: str, rng: np.random.Generator) -> int:
        """Replicas (including this provider's) its next job needs; 1 means trusted."""
        ...

    def record(self, provider_id: str, outcome: str, *, source: str = "replication") -> None:
        """Record a checked result: ``outcome`` is ``"valid"`` or ``"invalid"``."""
        ...

    def allowed(self, provider_id: str) -> bool:
        """Whether the provider may receive work at all."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready parameters and per-provider state."""
        ...


class _Policy:
    """Shared plumbing: parameters, per-provider state, JSON round trip."""

    name: ClassVar[str] = ""
    _fresh: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.providers: dict[str, dict[str, Any]] = {}

    def _st(self, pid: str) -> dict[str, Any]:
        pid = _pid(pid)
        st = self.providers.get(pid)
        if st is None:
            st = self.providers[pid] = dict(self._fresh)
        return st

    def _check_outcome(self, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")

    def allowed(self, provider_id: str) -> bool:
        """Every provider may work (wrap in :class:`Blacklist` to ban)."""
        return True

    def state_dict(self) -> dict[str, Any]:
        """``{"name", "params", "providers"}``, all JSON-ready."""
        return {"name": self.name, "params": dict(self.params),
                "providers": {k: dict(v) for k, v in self.providers.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace per-provider state with ``state['providers']``."""
        self.providers = {str(k): dict(v) for k, v in state.get("providers", {}).items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _pid(pid: Any) -> str:
    """A provider id as an exact builtin ``str``: a subclass lying in ``__hash__``/``__eq__`` would give a
    banned or distrusted provider a fresh record (or pollute another's).

    Raises:
        TypeError: ``pid`` is not a ``str``.
        ValueError: ``pid`` is empty.
    """
    if type(pid) is not str:
        if not issubclass(type(pid), str):  # not isinstance: that would consult the object's __class__
            raise TypeError(f"provider_id must be a str, got {type(pid).__name__}")
        pid = str.__str__(pid)
    if not pid:
        raise ValueError("provider_id must be a non-empty str: an anonymous provider has no record to keep")
    return pid


def _prob(name: str, x: float) -> float:
    if not (isinstance(x, (int, float)) and 0.0 <= x <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {x!r}")
    return float(x)


def _count(name: str, x: int, lo: int = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {x!r}")
    return x


class FixedReplication(_Policy):
    """Always ``k`` replicas: plain redundancy, the baseline.

    Example:
        >>> FixedReplication(k=3).replicas_for("h1", np.random.default_rng(0))
        3
    """

    name = "fixed"
    _fresh = {"valid": 0, "invalid": 0}

    def __init__(self, *, k: int = 2) -> None:
        super().__init__(k=_count("k", k))

    def replicas_for(self, provider_id: str, rng: np.random.Generator) -> int:
        """``k``."""
        rng.random()  # keep the stream aligned with the adaptive policies
        return self.params["k"]

    def record(self, provider_id: str, outcome: str, *, source: str = "replication") -> None:
        """Counts outcomes (for reports only)."""
        self._check_outcome(outcome)
        self._st(provider_id)[outcome] += 1


class ConsecutiveValid(_Policy):
    """BOINC adaptive replication by consecutive valid results.

    Args:
        threshold: ``CV`` needed before a host is trusted at all (BOINC: 10).
        quorum: replicas for an untrusted job (BOINC: 2).
        min_check: floor on the probability of replicating a trusted host's
            job; 0 is BOINC's rule, ``> 0`` bounds how many wrong results a
            streak-then-cheat host can slip through before it is caught.

    Example:
        >>> p = ConsecutiveValid(threshold=2)
        >>> for _ in range(2): p.record("h", "valid")
        >>> p.trust_probability("h")
        0.5
    """

    name = "consecutive_valid"
    _fresh = {"cv": 0}

    def __init__(self, *, threshold: int = 10, quorum: int = 2, min_check: float = 0.0) -> None:
        super().__init__(threshold=_count("threshold", threshold), quorum=_count("quorum", quorum, 2),
                         min_check=_prob("min_check", min_check))

    def trust_probability(self, provider_id: str) -> float:
        """Probability that the host's next job runs unreplicated."""
        cv = self._st(provider_id)["cv"]
        if cv < self.params["threshold"]:
            return 0.0
        return max(0.0, 1.0 - max(1.0 / cv, self.params["min_check"]))

    def replicas_for(self, provider_id: str, rng: np.random.Generator) -> int:
        """1 with the trust probability, else ``quorum``."""
        return 1 if rng.random() < self.trust_probability(provider_id) else self.params["quorum"]

    def record(self, provider_id: str, outcome: str, *, source: str = "replication") -> None:
        """A valid result extends the streak; an invalid one resets it."""
        self._check_outcome(outcome)
        st = self._st(provider_id)
        st["cv"] = st["cv"] + 1 if outcome == "valid" else 0


class ErrorRate(_Policy):
    """BOINC's older rule: trust hosts whose estimated error rate is low.

    The estimate follows BOINC's validator (``update_error_rate``): it
    starts at ``initial`` (0.1), is multiplied by ``decay`` (0.95) on each
    valid result, raised by ``penalty`` (0.1) on each invalid one and
    clamped to 1. The trust rule is ours: a host with estimate
    ``E < limit`` has its job replicated with probability
    ``max(E / limit, min_check)``, otherwise always.

    Example:
        >>> p = ErrorRate()
        >>> p.replicas_for("new-host", np.random.default_rng(0))
        2
    """

    name = "error_rate"
    _fresh: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, limit: float = 0.05, initial: float = 0.1, decay: float = 0.95,
                 penalty: float = 0.1, quorum: int = 2, min_check: float = 0.0) -> None:
        super().__init__(limit=_prob("limit", limit), initial=_prob("initial", initial),
                         decay=_prob("decay", decay), penalty=_prob("penalty", penalty),
                         quorum=_count("quorum", quorum, 2), min_check=_prob("min_check", min_check))

    def _st(self, pid: str) -> dict[str, Any]:
        pid = _pid(pid)
        st = self.providers.get(pid)
        if st is None:
            st = self.providers[pid] = {"error_rate": self.params["initial"]}
        return st

    def check_probability(self, provider_id: str) -> float:
        """Probability that the host's next job is replicated."""
        e, lim = self._st(provider_id)["error_rate"], self.params["limit"]
        if lim <= 0 or e >= lim:
            return 1.0
        return min(1.0, max(e / lim, self.params["min_check"]))

    def replicas_for(self, provider_id: str, rng: np.random.Generator) -> int:
        """``quorum`` with the check probability, else 1."""
        return self.params["quorum"] if rng.random() < self.check_probability(provider_id) else 1

    def record(self, provider_id: str, outcome: str, *, source: str = "replication") -> None:
        """Decay the estimate on a valid result, raise it on an invalid one."""
        self._check_outcome(outcome)
        st = self._st(provider_id)
        if outcome == "valid":
            st["error_rate"] *= self.params["decay"]
        else:
            st["error_rate"] = min(1.0, st["error_rate"] + self.params["penalty"])


class Credibility(_Policy):
    """Sarmenta's credibility-based fault tolerance.

    A worker that passed ``k`` spot-checks has credibility
    :func:`~vcompute.trust.voting.worker_credibility` ``(f, k)``; a job is
    settled once a group of agreeing results has group credibility
    ``>= threshold``. Only spot-check outcomes (``source="spotcheck"``)
    raise credibility: agreement in a vote can be faked by colluders.

    Args:
        f: assumed upper bound on the saboteur fraction.
        threshold: target credibility ``1 - eps``.
        blacklisting: ban a worker caught once (else its count resets).
        max_replicas: cap on :meth:`replicas_for`.
        collusion: ``"coordinated"`` (default: saboteurs may cheat on the
            same jobs, so agreeing results get no independence discount:
            odds ``(f/(1-f))^m / (e m k)``) or ``"independent"`` (Sarmenta's
            product of worker odds, valid only if saboteurs flip
            independent coins; claim C9 of ``proofs/replication.md``
            measures what coordinated ones do to it).

    Example:
        >>> p = Credibility(f=0.2, threshold=0.99)
        >>> for _ in range(10): p.record("w", "valid", source="spotcheck")
        >>> p.replicas_for("w", np.random.default_rng(0))
        1
    """

    name = "credibility"
    _fresh = {"passed": 0, "blacklisted": False}

    def __init__(self, *, f: float = 0.2, threshold: float = 0.999, blacklisting: bool = True,
                 max_replicas: int = 64, collusion: str = "coordinated") -> None:
        if not 0.0 <= f < 1.0:
            raise ValueError(f"f must be in [0, 1), got {f!r}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if collusion not in ("coordinated", "independent"):
            raise ValueError(f"collusion must be 'coordinated' or 'independent', got {collusion!r}")
        super().__init__(f=float(f), threshold=float(threshold), blacklisting=bool(blacklisting),
                         max_replicas=_count("max_replicas", max_replicas), collusion=str(collusion))

    def credibility(self, provider_id: str) -> float:
        """The worker's current credibility (0 once blacklisted)."""
        st = self._st(provider_id)
        if st["blacklisted"]:
            return 0.0
        return worker_credibility(self.params["f"], st["passed"], blacklisting=self.params["blacklisting"])

    def allowed(self, provider_id: str) -> bool:
        """False once blacklisted."""
        return not self._st(provider_id)["blacklisted"]

    def replicas_for(self, provider_id: str, rng: np.random.Generator) -> int:
        """Fewest agreeing replicas of this credibility whose group reaches the threshold."""
        c, th = self.credibility(provider_id), self.params["threshold"]
        if c <= 0.5:
            return self.params["max_replicas"]
        if self.params.get("collusion", "independent") == "coordinated":
            passed, f, cap = self._st(provider_id)["passed"], self.params["f"], self.params["max_replicas"]
            for m in range(1, cap + 1):
                if coordinated_group_credibility([[passed] * m], 0, f=f,
                                                 blacklisting=self.params["blacklisting"]) >= th:
                    return m
            return cap
        # group of m agreeing, no dissent: c^m / (c^m + (1-c)^m) >= th
        m = math.ceil(math.log(th / (1.0 - th)) / math.log(c / (1.0 - c)))
        return int(min(max(1, m), self.params["max_replicas"]))

    def record(self, provider_id: str, outcome: str, *, source: str = "replication") -> None:
        """Passed spot-checks raise credibility; a failed one blacklists (or resets)."""
        self._check_outcome(outcome)
        st = self._st(provider_id)
        if outcome == "invalid":
            if self.params["blacklisting"]:
                st["blacklisted"] = True
            st["passed"] = 0
        elif source == "spotcheck":
            st["passed"] += 1


class Blacklist(_Policy):
    """Wraps a policy: ban after ``max_invalid`` invalid results; halve the quota on each.

    Args:
        inner: the wrapped policy (or its state dict).
        max_invalid: invalid results before a ban.
        max_quota: the daily quota of a clean host (BOINC's punitive
            throttling halves it per invalid result and doubles it back per
            valid one).

    Example:
        >>> p = Blacklist(ConsecutiveValid(), max_invalid=1)
        >>> p.record("h", "invalid"); p.allowed("h")
        False
    """

    name = "blacklist"
    _fresh = {"invalid": 0, "quota": 0}

    def __init__(self, inner: ReplicationPolicy | dict[str, Any] | None = None, *, max_invalid: int = 1,
                 max_quota: int = 100) -> None:
        super().__init__(max_invalid=_count("max_invalid", max_invalid), max_quota=_count("max_quota", max_quota))
        if inner is None:
            inner = ConsecutiveValid()
        self.inner = policy_from_state(inner) if isinstance(inner, dict) else inner

    def _st(self, pid: str) -> dict[str, Any]:
        pid = _pid(pid)
        st = self.providers.get(pid)
        if st is None:
            st = self.providers[pid] = {"invalid": 0, "quota": self.params["max_quota"]}
        return st

    def allowed(self, provider_id: str) -> bool:
        """False once banned, or if the inner policy says so."""
        return self._st(provider_id)["invalid"] < self.params["max_invalid"] and self.inner.allowed(provider_id)

    def quota(self, provider_id: str) -> int:
        """Jobs per day the provider may take (0 once banned)."""
        return self._st(provider_id)["quota"] if self.allowed(provider_id) else 0

    def replicas_for(self, provider_id: str, rng: np.random.Generator) -> int:
        """The inner policy's answer."""
        return self.inner.replicas_for(provider_id, rng)

    def record(self, provider_id: str, outcome: str, *, source: str = "replication") -> None:
        """Track invalid results and the quota, then forward to the inner policy."""
        self._check_outcome(outcome)
        st = self._st(provider_id)
        if outcome == "invalid":
            st["invalid"] += 1
            st["quota"] = max(1, st["quota"] // 2)
        else:
            st["quota"] = min(self.params["max_quota"], st["quota"] * 2)
        self.inner.record(provider_id, outcome, source=source)

    def state_dict(self) -> dict[str, Any]:
        """As the base, plus the inner policy's state under ``"inner"``."""
        d = super().state_dict()
        d["inner"] = self.inner.state_dict()
        return d

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore this wrapper's and the inner policy's state."""
        super().load_state(state)
        if "inner" in state:
            self.inner.load_state(state["inner"])  # type: ignore[attr-defined]


for _cls in (FixedReplication, ConsecutiveValid, ErrorRate, Credibility, Blacklist):
    POLICIES.register(_cls.name, _cls)
del _cls


def create_policy(name: str, **params: Any) -> ReplicationPolicy:
    """Instantiate the policy registered as ``name``.

    Raises:
        UnknownPluginError: naming the known policies.

    Example:
        >>> create_policy("consecutive_valid", threshold=5).params["threshold"]
        5
    """
    return POLICIES.create(name, **params)


def policy_from_state(state: dict[str, Any]) -> ReplicationPolicy:
    """Rebuild a policy, parameters and per-provider state, from :meth:`state_dict`.

    Raises:
        ValueError: if ``state`` has no ``name``.
        UnknownPluginError: for an unknown policy name.

    Example:
        >>> p = ConsecutiveValid(); p.record("h", "valid")
        >>> policy_from_state(p.state_dict()).providers
        {'h': {'cv': 1}}
    """
    if not isinstance(state, dict) or "name" not in state:
        raise ValueError("a policy state must be a dict with a 'name' (from policy.state_dict())")
    params = dict(state.get("params", {}))
    if state["name"] == Blacklist.name:
        policy = Blacklist(state.get("inner"), **params)
    else:
        policy = create_policy(state["name"], **params)
    policy.load_state(state)  # type: ignore[attr-defined]
    return policy

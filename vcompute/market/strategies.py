"""Strategies: how a provider decides, job by job, whether to cheat.

A *strategy* is the market's when-to-cheat decision; *how* a cheat is
computed is a provider behaviour from :data:`vcompute.workloads.behaviours.BEHAVIOURS`
(``random_output``, ``skip_k``, ``low_precision``), executed for real in
real mode and looked up in the calibration table in modelled mode.

- ``honest``: never cheats.
- ``lazy``: cheats on a random share of jobs (``cheat_rate``) by skipping work.
- ``low_precision``: computes a share of jobs in bfloat16.
- ``colluding``: cheats with the other colluders on the *same* jobs with the
  *same* wrong output, so replicas agree (the attack replication fears).
- ``streak_then_cheat``: builds reputation for ``streak`` honest jobs, then cheats.
- ``strategic``: cheats exactly when the gain beats the expected loss,
  ``gain > p_hat * d * (stake + price)``, with ``p_hat`` its running
  estimate of the audit rate from the audits it has seen.

Third-party strategies come in through the ``vcompute.strategies``
entry-point group: a class taking ``(cfg, seed)`` with ``decide`` and
``observe`` like :class:`Honest`. :data:`CHEAT_SAVINGS` is the table of what
each cheat saves (a property of the behaviour, looked up by the strategy's
offer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vcompute.core.registry import Registry

__all__ = [
    "CHEAT_SAVINGS",
    "STRATEGIES",
    "CheatOffer",
    "Colluding",
    "Honest",
    "Lazy",
    "LowPrecision",
    "Strategic",
    "Strategy",
    "StreakThenCheat",
    "unit_hash",
]

#: Share of a job's compute cost each cheat saves: ``random_output`` skips
#: everything but loading inputs and returning an output (95 %), ``skip_k``
#: skips 10 % of the inner dimension (its default fraction),
#: ``low_precision`` runs bfloat16 at about twice float32 speed.
CHEAT_SAVINGS: dict[str, float] = {"random_output": 0.95, "skip_k": 0.1, "low_precision": 0.5}

#: Strategies by name (entry-point group ``vcompute.strategies``).
STRATEGIES: Registry = Registry("strategy", group="vcompute.strategies")

_MASK = (1 << 64) - 1


def unit_hash(a: int, b: int) -> float:
    """A uniform number in [0, 1) from two integers (splitmix64 finaliser).

    Colluders use it to agree on which jobs to cheat without talking.

    Example:
        >>> unit_hash(1, 2) == unit_hash(1, 2), 0 <= unit_hash(3, 4) < 1
        (True, True)
    """
    z = (a * 0x9E3779B97F4A7C15 + b + 0x632BE59BD9B4E019) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


@dataclass(frozen=True)
class CheatOffer:
    """What a provider knows when deciding on one job.

    Attributes:
        job_key: the job's sequence number (shared by all its replicas).
        gain_usd: compute cost the cheat would save.
        loss_usd: what being caught costs: the slashed stake plus the forfeited price.
        announced_p: the consumers' announced audit probability.
        detect_p: probability the scheme catches this cheat when it checks.
    """

    job_key: int
    gain_usd: float
    loss_usd: float
    announced_p: float
    detect_p: float


class Strategy(Protocol):
    """A provider's when-to-cheat decision (one instance per provider)."""

    name: str
    cheat: str

    def decide(self, offer: CheatOffer, rng: np.random.Generator) -> bool:
        """True to cheat on this job."""
        ...

    def observe(self, audited: bool, caught: bool) -> None:
        """Learn whether the last job was audited and whether it was caught."""
        ...


class Honest:
    """Never cheats.

    Args:
        cfg: the run's :class:`~vcompute.market.config.AdversaryConfig` (unused).
        seed: unused.
    """

    name = "honest"
    default_cheat = "random_output"

    def __init__(self, cfg: Any = None, seed: int = 0) -> None:
        self.cheat = (getattr(cfg, "cheat", None) or self.default_cheat)

    def decide(self, offer: CheatOffer, rng: np.random.Generator) -> bool:
        """Never."""
        return False

    def observe(self, audited: bool, caught: bool) -> None:
        """Nothing to learn."""


class Lazy(Honest):
    """Cheats on each job with probability ``cfg.cheat_rate``.

    Args:
        cfg: the adversary config (``cheat_rate``, ``cheat``).
        seed: unused (decisions use the provider's generator).
    """

    name = "lazy"
    default_cheat = "skip_k"

    def __init__(self, cfg: Any = None, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.rate = float(getattr(cfg, "cheat_rate", 1.0))

    def decide(self, offer: CheatOffer, rng: np.random.Generator) -> bool:
        """A coin with probability ``cheat_rate``."""
        return bool(rng.random() < self.rate)


class LowPrecision(Lazy):
    """Computes a share ``cheat_rate`` of jobs in bfloat16 (see :class:`Lazy`)."""

    name = "low_precision"
    default_cheat = "low_precision"


class Colluding(Lazy):
    """Cheats on the same jobs as every other colluder, with the same output.

    The decision is a hash of the run's collusion seed and the job, so
    colluders replicating one job all cheat or all compute honestly.

    Args:
        cfg: the adversary config (``cheat_rate``).
        seed: the collusion seed, shared by all colluders of a run.
    """

    name = "colluding"
    default_cheat = "random_output"

    def __init__(self, cfg: Any = None, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.seed = int(seed)

    def decide(self, offer: CheatOffer, rng: np.random.Generator) -> bool:
        """Cheat iff the shared hash of the job falls under ``cheat_rate``."""
        return unit_hash(self.seed, offer.job_key) < self.rate


class StreakThenCheat(Lazy):
    """Honest for ``cfg.streak`` jobs to build reputation, then cheats at ``cheat_rate``.

    With ``cfg.restreak`` it starts a new honest streak each time it is
    caught (the attacker of adaptive replication's trust argument).
    """

    name = "streak_then_cheat"
    default_cheat = "random_output"

    def __init__(self, cfg: Any = None, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.streak = int(getattr(cfg, "streak", 20))
        self.restreak = bool(getattr(cfg, "restreak", False))
        self.done = 0

    def observe(self, audited: bool, caught: bool) -> None:
        """Caught: start over with a new honest streak (if ``restreak``)."""
        if caught and self.restreak:
            self.done = 0

    def decide(self, offer: CheatOffer, rng: np.random.Generator) -> bool:
        """Honest while the streak lasts, then a ``cheat_rate`` coin."""
        self.done += 1
        if self.done <= self.streak:
            return False
        return bool(rng.random() < self.rate)


class Strategic(Honest):
    """Cheats exactly when the gain beats the expected loss it observes.

    It starts from the announced audit probability (worth ``prior_jobs``
    observations) and updates with every job: whether it was audited.
    It cheats iff ``gain > p_hat * detect_p * loss`` (ties stay honest),
    the deterrence condition of ``proofs/market.md``.

    Args:
        cfg: the adversary config (``cheat``).
        seed: unused.
        prior_jobs: weight of the announced probability, in jobs.
    """

    name = "strategic"
    default_cheat = "random_output"

    def __init__(self, cfg: Any = None, seed: int = 0, prior_jobs: float = 20.0) -> None:
        super().__init__(cfg, seed)
        self.prior_jobs = float(prior_jobs)
        self.seen = 0
        self.audited = 0

    def p_hat(self, announced_p: float) -> float:
        """Current estimate of the audit probability."""
        return (self.audited + self.prior_jobs * announced_p) / (self.seen + self.prior_jobs)

    def decide(self, offer: CheatOffer, rng: np.random.Generator) -> bool:
        """Cheat iff ``gain > p_hat * detect_p * loss``."""
        return offer.gain_usd > self.p_hat(offer.announced_p) * offer.detect_p * offer.loss_usd

    def observe(self, audited: bool, caught: bool) -> None:
        """Count the job and whether it was audited."""
        self.seen += 1
        self.audited += bool(audited)


for _cls in (Honest, Lazy, LowPrecision, Colluding, StreakThenCheat, Strategic):
    STRATEGIES.register(_cls.name, _cls)

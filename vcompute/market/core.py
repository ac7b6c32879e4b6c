"""The market's core interfaces: what its parts may see of each other, and nothing more.

The event loop (:mod:`vcompute.market.sim`) owns the clock, the queue and
the providers' processes. Every other part talks to it through one of the
small types here, never through the :class:`~vcompute.market.sim.Market`
object itself or its private members:

- :class:`MarketView`: the public facts a routing consumer, the cloud tier
  or a policy may read (parameters, providers, checks, the settlement
  accounts, the clock, the expected verification work).
- :class:`Matcher`: the order book of idle providers
  (:mod:`vcompute.market.matching`).
- :class:`MarketHooks`: what a market with extra tiers (the cloud and
  routing consumers of :mod:`vcompute.market.hybrid`) is told, event by event.
- :class:`Settled`: one settled job as the verdict left it, given to the
  hooks and the adaptive trust policy instead of the market's counters.
- :class:`Scheduler`: the simulation clock and its timer.
- :class:`AuditCoin`: an audit's coin where there is no
  :class:`~vcompute.verify.Verifier` object (modelled mode): the same
  :meth:`vcompute.verify.audit.Audit.drawn` rule, one uniform per job.

Example:
    >>> import numpy as np
    >>> coin = AuditCoin(0.25)
    >>> [coin.drawn(np.random.default_rng(s)) for s in range(4)]
    [False, False, False, True]
    >>> coin.with_p(1.0).drawn(np.random.default_rng(0))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from vcompute.verify.audit import Audit, audit_probability

if TYPE_CHECKING:
    from vcompute.market.agents import MarketJob, Provider
    from vcompute.market.checks import Check
    from vcompute.market.config import MarketParams
    from vcompute.market.settlement import Settlement

__all__ = ["AuditCoin", "Coin", "MarketHooks", "MarketView", "Matcher", "Scheduler", "Settled"]


class Coin(Protocol):
    """An audit's "check with probability p": :class:`~vcompute.verify.audit.Audit` or :class:`AuditCoin`."""

    p: float

    def drawn(self, rng: np.random.Generator) -> bool:
        """Whether this job is checked: exactly one uniform from ``rng``."""
        ...

    def with_p(self, p: float) -> Coin:
        """The same audit at probability ``p`` (what an adaptive policy changes)."""
        ...


@dataclass(frozen=True)
class AuditCoin:
    """The audit of a scheme the market models from its calibration (no Verifier object to wrap).

    Args:
        p: audit probability in [0, 1].

    Raises:
        TypeError: if ``p`` is not a number.
        ValueError: if it is outside [0, 1].
    """

    p: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", audit_probability(self.p))

    #: The rule of :meth:`vcompute.verify.audit.Audit.drawn`, the very function.
    drawn = Audit.drawn

    def with_p(self, p: float) -> AuditCoin:
        """The same audit at probability ``p``."""
        return AuditCoin(p)


class Scheduler(Protocol):
    """The simulation clock, and a timer on it."""

    def now(self) -> float:
        """Simulated time in seconds."""
        ...

    def after(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once ``delay`` simulated seconds have passed."""
        ...


class Matcher(Protocol):
    """The book of idle providers a job is matched from (:data:`~vcompute.market.matching.MATCHERS`)."""

    def __len__(self) -> int:
        """Idle providers in the book."""
        ...

    def __contains__(self, provider: Any) -> bool:
        """Whether ``provider`` is in the book."""
        ...

    def add(self, provider: Provider) -> None:
        """Offer ``provider`` (no-op if present)."""
        ...

    def remove(self, provider: Provider) -> None:
        """Withdraw ``provider`` (no-op if absent)."""
        ...

    def pick(self, k: int, *, memory_gb: float, rng: np.random.Generator,
             max_price: float) -> list[tuple[Provider, float]] | None:
        """``k`` providers (removed from the book) with the price each is paid, or None."""
        ...


class MarketView(Protocol):
    """The public facts of a running market that its tiers and consumers may read.

    Attributes:
        p: the run's :class:`~vcompute.market.config.MarketParams`.
        seed: the run's seed (tiers derive their own generators from it).
        providers: every provider (posted prices and hardware are public).
        consumers: the consumers' account names.
        checks: per job kind, how its jobs are checked.
        settle: the run's ledger accounts (a tier opens its own and is paid through it).
    """

    p: MarketParams
    seed: int
    providers: Sequence[Provider]
    consumers: Sequence[str]
    checks: Mapping[str, Check]
    settle: Settlement

    def now(self) -> float:
        """Simulated time in seconds."""
        ...

    def verify_fraction_est(self, job: MarketJob) -> float:
        """Expected checking work for ``job`` as a share of its compute."""
        ...


class Settled(NamedTuple):
    """One job as settlement left it (a named tuple: one is made per job, on the hot path).

    Its fields (autodoc lists each as a tuple field; their meaning is here):
    ``job``, the job; ``live``, indices of the replicas that returned a claim
    (empty: all vanished); ``audited``, whether the claims were checked;
    ``verdicts``, per live replica, True if its claim stands (paid) and False
    if blamed; ``correct``, whether the consumer kept a correct result (None:
    none kept); ``verify_usd``, the checkers' compute for this job (A100
    cost, USD); ``latency_s``, simulated seconds the check took before
    settlement.
    """

    job: MarketJob
    live: tuple[int, ...]
    audited: bool
    verdicts: tuple[bool, ...]
    correct: bool | None
    verify_usd: float = 0.0
    latency_s: float = 0.0


class MarketHooks(Protocol):
    """What the market tells an extra tier (the cloud and routing of :mod:`vcompute.market.hybrid`)."""

    def route(self, job: MarketJob) -> bool:
        """An arrival: True if the tier took it (the market does not queue it)."""
        ...

    def at_risk(self, job: MarketJob, now: float, deadline_s: float) -> bool:
        """A queued job looked at: True if the tier took it off the queue."""
        ...

    def expired(self, job: MarketJob) -> None:
        """A queued job passed its deadline unmatched."""
        ...

    def started(self, job: MarketJob) -> None:
        """Every replica of ``job`` has returned (or vanished): its replicas and prices are final."""
        ...

    def settled(self, s: Settled) -> None:
        """``s.job`` was settled."""
        ...

    def summary(self, totals: Mapping[str, float], ledger_ops: Mapping[str, int], *,
                correct: int) -> dict[str, float]:
        """The tier's metrics, given the market's money totals, the ledger's operation counts and the
        market's correct results."""
        ...

"""The market's agents as plain records: providers, auditors and jobs.

Their *processes* (arrivals, execution, churn, withdrawals) live in
:mod:`vcompute.market.sim`; what is here is each agent's state and the
small decisions that need no clock: a provider's price and reputation,
an auditor's choice to check or skip (the verifier's dilemma).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Auditor", "MarketJob", "Provider"]

#: How many accepted jobs one caught cheat outweighs in a reputation.
CAUGHT_WEIGHT = 10.0


class Provider:
    """One GPU offered on the market.

    Args:
        idx: index (also the tiebreak in matching).
        name: ledger account name.
        hardware: its :class:`~vcompute.market.config.HardwareClass`.
        markup: its price markup over own cost.
        strategy: when it cheats (:mod:`vcompute.market.strategies`).
        group: the label its metrics are reported under (the strategy's name).
        colluding: whether it shares cheats with other colluders.
    """

    __slots__ = ("idx", "name", "hw", "markup", "strategy", "group", "colluding", "cost_per_pflop",
                 "price", "memory_gb", "online", "busy", "banned", "ok", "caught", "jobs", "cheats",
                 "earned", "slashed", "compute_cost", "busy_time", "proc", "dues", "first_cheat_t",
                 "first_cheat_job", "detect_latency_s", "detect_latency_jobs", "unpaid_cost", "wasted_cost")

    def __init__(self, idx: int, name: str, hardware: Any, markup: float, strategy: Any, group: str,
                 colluding: bool = False) -> None:
        self.idx = idx
        self.name = name
        self.hw = hardware
        self.markup = markup
        self.strategy = strategy
        self.group = group
        self.colluding = colluding
        # USD per PFLOP: hourly cost over PFLOP per hour.
        self.cost_per_pflop = hardware.hourly_cost / (hardware.tflops * 3.6)
        self.price = self.cost_per_pflop * (1.0 + markup)
        self.memory_gb = hardware.memory_gb
        self.online = True
        self.busy = False
        self.banned = False
        self.ok = 0
        self.caught = 0
        self.jobs = 0
        self.cheats = 0
        self.earned = 0
        self.slashed = 0
        self.compute_cost = 0.0
        self.busy_time = 0.0
        self.proc: Any = None  # the execution in progress (sim's _Run), for churn to cut short
        self.dues: list[tuple[str, int, float]] = []
        self.first_cheat_t: float | None = None
        self.first_cheat_job: int | None = None
        self.detect_latency_s: float | None = None
        self.detect_latency_jobs: int | None = None
        self.unpaid_cost = 0.0
        self.wasted_cost = 0.0

    @property
    def reputation(self) -> float:
        """Golem-style score in [0, 1]: a Beta mean where a caught cheat weighs ``CAUGHT_WEIGHT`` jobs."""
        return (1.0 + self.ok) / (2.0 + self.ok + CAUGHT_WEIGHT * self.caught)

    def seconds_for(self, pflop: float) -> float:
        """Seconds this GPU needs for ``pflop`` PFLOP of honest work."""
        return pflop * 1000.0 / self.hw.tflops


class Auditor:
    """The verifier role: paid per check, it may skip checks that do not pay.

    A ``rational`` auditor checks iff the reward it expects from checking
    beats the cost: ``q * d * share * stake + f * d_f * jackpot >= cost``,
    where ``q`` is its running belief in the cheat rate (from what its own
    checks found), ``f`` the forced-error rate and ``d``, ``d_f`` detection
    probabilities. The per-check fee is paid whether or not it checks, so
    it does not enter: that is the verifier's dilemma.

    Args:
        name: ledger account name.
        policy: ``always`` or ``rational``.
        prior_cheat: prior belief in the cheat rate, worth ``prior_jobs`` checks.
        prior_jobs: weight of the prior.
    """

    __slots__ = ("name", "policy", "prior", "prior_jobs", "checked", "found", "skipped", "fees", "rewards",
                 "cost")

    def __init__(self, name: str, policy: str, prior_cheat: float, prior_jobs: float = 20.0) -> None:
        self.name = name
        self.policy = policy
        self.prior = prior_cheat
        self.prior_jobs = prior_jobs
        self.checked = 0
        self.found = 0
        self.skipped = 0
        self.fees = 0
        self.rewards = 0
        self.cost = 0.0

    def belief(self) -> float:
        """Current belief that a claim it is asked to check is a cheat."""
        return (self.found + self.prior * self.prior_jobs) / (self.checked + self.prior_jobs)

    def will_check(self, *, cost_usd: float, detect_p: float, cheat_reward_usd: float, forced_rate: float,
                   forced_detect_p: float, jackpot_usd: float) -> bool:
        """Decide whether to actually run the check it was paid for."""
        if self.policy == "always":
            return True
        gain = self.belief() * detect_p * cheat_reward_usd + forced_rate * forced_detect_p * jackpot_usd
        return gain >= cost_usd


class MarketJob:
    """One consumer request moving through the market.

    Args:
        key: sequence number (seeds the real job and colluders' decisions).
        jtype: its :class:`~vcompute.market.config.JobType`.
        consumer: the consumer's account name.
        submitted: simulation time of arrival.
    """

    __slots__ = ("key", "jtype", "consumer", "submitted", "audit", "replicas", "pending", "cheats",
                 "prices", "escrows", "forced", "crashed", "started", "want", "k", "phase", "claimed")

    def __init__(self, key: int, jtype: Any, consumer: str, submitted: float) -> None:
        self.key = key
        self.jtype = jtype
        self.consumer = consumer
        self.submitted = submitted
        self.audit = False
        self.replicas: list[Provider] = []
        self.pending = 0
        self.cheats: list[str | None] = []
        self.prices: list[int] = []
        self.escrows: list[str] = []
        self.forced = False
        self.crashed: list[bool] = []
        self.started = 0.0
        self.want = 1  # replicas the next match needs
        self.k = 1  # claims the check compares, once the audit coin came up
        self.phase = 1  # 1: the primary runs; 2: the audit's extra replicas run
        self.claimed = 0.0  # when the last claim came in (the check starts)

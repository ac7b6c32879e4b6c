"""The marketplace's parameters as one nested, validated pydantic model.

Every knob of a market run lives here, so an invalid config (a negative
price, a probability outside [0, 1], an unknown behaviour or verifier)
fails at validation, before anything runs, with a message saying which
field is wrong. Grid keys in experiment configs reach into the nesting
with dots (``"consumers.audit_p" = [0.01, 0.1]``).

Money is configured in US dollars and settled on the ledger in integer
units of :data:`UNITS_PER_USD`; time is simulated in seconds and
configured in hours where people think in hours.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from vcompute.market.costs import GasConfig

__all__ = [
    "HARDWARE",
    "UNITS_PER_USD",
    "AdversaryConfig",
    "AuditorsConfig",
    "ConsumersConfig",
    "HardwareClass",
    "JobType",
    "MarketParams",
    "MatchingConfig",
    "OptimisticConfig",
    "ProvidersConfig",
    "SettlementConfig",
]

#: Ledger units per US dollar (1 unit = 0.01 cent): prices of minute-long
#: jobs stay exact integers without overflowing any backend.
UNITS_PER_USD = 10_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HardwareClass(_Model):
    """A kind of GPU a provider can offer.

    Attributes:
        tflops: sustained throughput in TFLOP/s on the job mix.
        memory_gb: device memory; jobs needing more cannot be placed here.
        hourly_cost: the provider's own cost of running it, USD per hour.
    """

    tflops: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    hourly_cost: float = Field(ge=0)


#: Built-in hardware classes (rough public rental costs, dense fp16/bf16
#: throughput at a realistic 40 % utilisation).
HARDWARE: dict[str, HardwareClass] = {
    "t4": HardwareClass(tflops=25.0, memory_gb=16, hourly_cost=0.20),
    "rtx4090": HardwareClass(tflops=66.0, memory_gb=24, hourly_cost=0.35),
    "l4": HardwareClass(tflops=48.0, memory_gb=24, hourly_cost=0.30),
    "a100": HardwareClass(tflops=125.0, memory_gb=80, hourly_cost=1.10),
    "h100": HardwareClass(tflops=400.0, memory_gb=80, hourly_cost=2.00),
}


class JobType(_Model):
    """One entry of the consumers' job mix.

    Attributes:
        name: label used in metrics.
        kind: a job kind from :data:`vcompute.workloads.kinds.KINDS` (``matmul``,
            ``forward``, ``generate``, ``train``, or a plugin's). The old names
            ``inference`` and ``training`` are accepted as aliases of ``forward``
            and ``train`` (deprecated; kept as written, so metrics and
            ``verifier_by_kind`` keys that use them still match).
        pflop: simulated work in PFLOP (sets the duration on each GPU).
        memory_gb: device memory the job needs.
        weight: relative frequency in the mix.
        size: the real job's size in real mode, a name of the kind's
            :attr:`~vcompute.workloads.kinds.JobKind.sizes` (matmul also takes an
            int ``n``); None: ``real_n`` for matmul, the kind's default otherwise.
            Modelled mode looks the checking cost up at this size (the kind's
            calibration row) or at ``real_n`` (the per-scheme fallback row).
        real_n: deprecated: the matrix size of a matmul job without ``size``,
            and the size at which a per-scheme calibration row is read.
            Checking cost at this size is conservative: Freivalds' share of
            the work falls like 1/n.
    """

    name: str
    kind: str = "matmul"
    pflop: float = Field(gt=0)
    memory_gb: float = Field(8.0, gt=0)
    weight: float = Field(1.0, gt=0)
    size: int | str | None = None
    real_n: int = Field(48, ge=2, le=2048)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        from vcompute.workloads.kinds import canonical_kind

        canonical_kind(v)  # raises, listing the known kinds
        return v

    @model_validator(mode="after")
    def _known_size(self) -> JobType:
        if self.size is not None:
            from vcompute.workloads.kinds import get_kind

            object.__setattr__(self, "size", get_kind(self.kind).size(self.size))
        return self

    @property
    def job_kind(self) -> str:
        """The registered kind this entry names (an alias resolved)."""
        from vcompute.workloads.kinds import canonical_kind

        return canonical_kind(self.kind)


def _default_mix() -> list[JobType]:
    return [
        JobType(name="matmul", kind="matmul", pflop=30.0, memory_gb=8, weight=3),
        JobType(name="inference", kind="inference", pflop=60.0, memory_gb=16, weight=2),
        JobType(name="training", kind="training", pflop=300.0, memory_gb=40, weight=1),
    ]


class ProvidersConfig(_Model):
    """The provider population.

    Attributes:
        count: number of providers (each offers one GPU).
        hardware: hardware class name -> relative share of providers.
        markup: mean price markup over own cost (0.3 = price is 1.3x cost).
        markup_spread: uniform spread of each provider's markup around the mean.
        mean_online_h: mean hours online before leaving (0 = never leaves).
        mean_offline_h: mean hours away before rejoining.
        crash_rate: probability a job crashes mid-execution (hardware failure).
        initial_usd: each provider's opening balance (funds its stakes).
    """

    count: int = Field(20, ge=1, le=1_000_000)
    hardware: dict[str, float] = Field(default_factory=lambda: {"a100": 1.0, "rtx4090": 1.0})
    markup: float = Field(0.3, ge=0)
    markup_spread: float = Field(0.2, ge=0)
    mean_online_h: float = Field(0.0, ge=0)
    mean_offline_h: float = Field(1.0, gt=0)
    crash_rate: float = Field(0.0, ge=0, le=1)
    initial_usd: float = Field(1000.0, ge=0)

    @field_validator("hardware")
    @classmethod
    def _known_hardware(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("providers.hardware needs at least one hardware class")
        for name, share in v.items():
            if name not in HARDWARE:
                raise ValueError(f"unknown hardware class {name!r}; known: {', '.join(HARDWARE)}")
            if not share > 0:
                raise ValueError(f"hardware share for {name!r} must be > 0, got {share}")
        return v

    @model_validator(mode="after")
    def _markup_positive(self) -> ProvidersConfig:
        if self.markup_spread > self.markup + 1.0:
            raise ValueError("providers.markup_spread would give negative prices; keep it <= markup + 1")
        return self


class AdversaryConfig(_Model):
    """The share of providers that run a (possibly) cheating strategy.

    Attributes:
        strategy: a name from :data:`vcompute.market.strategies.STRATEGIES`
            (when to cheat). The old key ``behaviour`` is accepted as an alias.
        fraction: share of providers running it (rounded to a whole number).
        cheat: how a cheat is produced: a provider behaviour name
            (``random_output``, ``skip_k``, ``low_precision``), or None for
            the strategy's own default.
        cheat_rate: per-job cheating probability (lazy, low-precision, colluding).
        streak: honest jobs a streak-then-cheat provider completes first.
        restreak: a caught streak-then-cheat provider builds a new streak.
        saving: fraction of compute cost a cheat saves, or None for the
            cheat's own value (see :data:`vcompute.market.strategies.CHEAT_SAVINGS`).

    Example:
        >>> AdversaryConfig(behaviour="lazy").strategy
        'lazy'
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    strategy: str = Field("honest", validation_alias=AliasChoices("strategy", "behaviour"))
    fraction: float = Field(0.0, ge=0, le=1)
    cheat: Literal["random_output", "skip_k", "low_precision"] | None = None
    cheat_rate: float = Field(1.0, ge=0, le=1)
    streak: int = Field(20, ge=0)
    restreak: bool = False
    saving: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _one_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "strategy" in data and "behaviour" in data:
            raise ValueError("adversary: give 'strategy' only ('behaviour' is its old name)")
        return data

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        from vcompute.market.strategies import STRATEGIES

        STRATEGIES.get(v)  # raises, listing the known strategies
        return v


class ConsumersConfig(_Model):
    """The consumers and their trust policy.

    Attributes:
        count: number of consumer accounts.
        load: offered load as a fraction of the providers' total capacity
            (sets the Poisson arrival rate).
        trace: a CSV of arrivals replacing the Poisson process: one row per
            job, ``hours`` since the start and optionally ``job`` (a mix
            entry's name; else drawn from the mix). A header row is allowed.
        mix: the job mix.
        budget_usd: each consumer's opening balance.
        deadline_h: a job not matched within this many hours is abandoned.
        max_price_usd_per_pflop: consumers refuse quotes above this.
        verifier: a registered verifier name, or ``"none"``.
        verifier_params: keyword arguments for the verifier.
        verifier_by_kind: per job kind, a different verifier (with its
            default parameters), e.g. ``{"train": "pol"}``: combinations;
            ``"default"`` means ``verifier`` (handy in grids). In real mode a
            kind without an entry whose verifiers do not include ``verifier``
            is checked by the kind's default verifier
            (:mod:`vcompute.market.checks`).
        audit_p: probability a completed job is sent for verification
            (ignored when ``adaptive_policy`` is set).
        stake_usd: stake a provider locks per job (slashed if caught).
        adaptive_policy: a policy name from
            :data:`vcompute.trust.policies.POLICIES` (e.g.
            ``"consecutive_valid"``) deciding per job, from the primary
            provider's record, whether it is checked (see
            :mod:`vcompute.market.adaptive`); None uses ``audit_p``.
        adaptive_params: the policy's parameters (``blacklist`` takes
            ``inner = {name = "consecutive_valid", params = {...}}``).
        trust: ``audit`` (each result checked with probability ``audit_p`` by the
            verifier) or ``optimistic`` (accepted after a challenge window unless a
            watcher disputes it: :class:`OptimisticConfig`, :mod:`vcompute.market.optimistic`;
            ``verifier`` and ``audit_p`` are then unused).
    """

    count: int = Field(10, ge=1)
    load: float = Field(0.7, gt=0, le=5)
    trace: str | None = None
    mix: list[JobType] = Field(default_factory=_default_mix, min_length=1)
    budget_usd: float = Field(1e6, ge=0)
    deadline_h: float = Field(4.0, gt=0)
    max_price_usd_per_pflop: float = Field(1.0, gt=0)
    verifier: str = "freivalds"
    verifier_params: dict[str, Any] = Field(default_factory=dict)
    verifier_by_kind: dict[str, str] = Field(default_factory=dict)
    audit_p: float = Field(0.1, ge=0, le=1)
    stake_usd: float = Field(5.0, ge=0)
    adaptive_policy: str | None = None
    adaptive_params: dict[str, Any] = Field(default_factory=dict)
    trust: Literal["audit", "optimistic"] = "audit"

    @model_validator(mode="after")
    def _known_policy(self) -> ConsumersConfig:
        if self.adaptive_policy is None:
            if self.adaptive_params:
                raise ValueError("consumers.adaptive_params is set but consumers.adaptive_policy is not; name a policy")
            return self
        from vcompute.market.adaptive import build_policy

        build_policy(self.adaptive_policy, self.adaptive_params)  # raises, listing the known policies
        if self.verifier == "none":
            raise ValueError("consumers.adaptive_policy needs a verifier to check the jobs it does not trust; "
                             "set consumers.verifier (e.g. 'replication')")
        return self

    @field_validator("verifier")
    @classmethod
    def _known_verifier(cls, v: str) -> str:
        return _check_verifier(v)

    @field_validator("verifier_by_kind")
    @classmethod
    def _known_kinds(cls, v: dict[str, str]) -> dict[str, str]:
        from vcompute.workloads.kinds import KIND_ALIASES, KINDS

        seen: dict[str, str] = {}
        for kind, name in v.items():
            canonical = KIND_ALIASES.get(kind, kind)
            if canonical not in KINDS:
                raise ValueError(f"verifier_by_kind: unknown job kind {kind!r}; known: {', '.join(KINDS.names())} "
                                 f"(aliases: {', '.join(f'{a}={b}' for a, b in KIND_ALIASES.items())})")
            if canonical in seen:
                raise ValueError(f"verifier_by_kind names job kind {canonical!r} twice ({seen[canonical]!r} and "
                                 f"{kind!r}); keep one")
            seen[canonical] = kind
            if name != "default":
                _check_verifier(name)
        return v


def _check_verifier(v: str) -> str:
    if v != "none":
        from vcompute.verify import VERIFIERS

        if v not in VERIFIERS:
            raise ValueError(f"unknown verifier {v!r}; known: none, {', '.join(VERIFIERS.names())}")
    return v


class AuditorsConfig(_Model):
    """The verifier role: who checks, what they are paid, whether they bother.

    Attributes:
        count: number of auditors (checks are assigned round-robin).
        fee_usd: paid by the consumer per check requested.
        cost_factor: an auditor's cost per check as a multiple of the
            calibrated verification work (in GPU time at ``a100`` cost).
        policy: ``always`` checks every assigned job; ``rational`` checks
            only when the expected reward beats the cost (verifier's dilemma).
        forced_error_rate: probability the protocol injects a known-wrong
            result into an audited job (Truebit's forced errors).
        jackpot_usd: paid from the treasury to an auditor who finds a forced error.
        tax: share of each job price paid into the treasury that funds jackpots.
        whistleblower_share: share of a slashed stake paid to the auditor who caught it.
        prior_cheat: an auditor's prior belief in the cheat rate.
        latency_s: simulated seconds every check takes before its job settles, or
            None for the check's own work on the auditor's A100 (its verify
            fraction times the job's duration there).
    """

    count: int = Field(3, ge=1)
    fee_usd: float = Field(0.01, ge=0)
    cost_factor: float = Field(1.0, ge=0)
    policy: Literal["always", "rational"] = "always"
    forced_error_rate: float = Field(0.0, ge=0, le=1)
    jackpot_usd: float = Field(0.0, ge=0)
    tax: float = Field(0.0, ge=0, le=1)
    whistleblower_share: float = Field(0.5, ge=0, le=1)
    prior_cheat: float = Field(0.05, ge=0, le=1)
    latency_s: float | None = Field(None, ge=0)


class OptimisticConfig(_Model):
    """Watchers and the dispute game of the ``optimistic`` trust policy (``consumers.trust``).

    Forced errors reuse ``auditors.forced_error_rate`` and ``auditors.jackpot_usd``
    (funded by ``auditors.tax``); see :mod:`vcompute.market.optimistic`.

    Attributes:
        window_h: the challenge window: hours after its claim before a result is final.
        watchers: honest watchers (each re-executes the jobs it watches).
        griefers: griefing challengers (dispute honest results without re-executing).
        watch_p: probability a watcher looks at a given job, or None for
            ``consumers.audit_p`` (so one grid key sweeps both trust policies).
        grief_p: probability a griefer disputes a given honest result.
        hardware: the watchers' hardware class (their re-execution cost and time).
        policy: ``always`` watches every job drawn; ``rational`` only when the
            expected reward beats the re-execution cost (the verifier's dilemma).
        bond_usd: the challenger's bond (a losing challenger forfeits it).
        burn_share: share of a loser's stake or bond burned (paid to the treasury).
        trace_steps: committed steps of a matmul job's trace: a dispute takes
            ``ceil(log2 trace_steps)`` rounds (a forward job commits its operators, 5 for its
            ``tiny`` and ``small`` sizes: 3 rounds).
        move_timeout_s: the game's timeout per move (each round takes at most this).
        watcher_usd: each watcher's and griefer's opening balance (funds bonds).
    """

    window_h: float = Field(1.0, gt=0)
    watchers: int = Field(3, ge=0)
    griefers: int = Field(0, ge=0)
    watch_p: float | None = Field(None, ge=0, le=1)
    grief_p: float = Field(0.0, ge=0, le=1)
    hardware: str = "a100"
    policy: Literal["always", "rational"] = "always"
    bond_usd: float = Field(5.0, ge=0)
    burn_share: float = Field(0.1, ge=0, le=1)
    trace_steps: int = Field(32, ge=1, le=1 << 40)
    move_timeout_s: float = Field(3600.0, gt=0)
    watcher_usd: float = Field(1000.0, ge=0)

    @field_validator("hardware")
    @classmethod
    def _known_hardware(cls, v: str) -> str:
        if v not in HARDWARE:
            raise ValueError(f"optimistic.hardware: unknown hardware class {v!r}; known: {', '.join(HARDWARE)}")
        return v


class MatchingConfig(_Model):
    """How jobs meet providers.

    Attributes:
        kind: ``posted`` (cheapest idle posted price wins) or ``auction``
            (a reverse auction among sampled idle providers).
        reputation_weight: score = price / reputation**weight (0 ignores reputation).
        bidders: providers invited to each auction.
        bid_shading: auction bidders shade their markup by up to this share.
    """

    kind: Literal["posted", "auction"] = "posted"
    reputation_weight: float = Field(1.0, ge=0)
    bidders: int = Field(8, ge=1)
    bid_shading: float = Field(0.5, ge=0, le=1)


class SettlementConfig(_Model):
    """How money moves on the ledger.

    Attributes:
        ledger: ledger URL (``memory://``, ``sqlite:///run.db``, ``evm://tester``).
        mode: ``escrow`` locks the price at match; ``stream`` pays at the
            provider's next withdrawal from the consumer's balance (Akash-style,
            which can overdraw).
        withdraw_interval_h: hours between a streaming provider's withdrawals.
        timeout_factor: a job's escrow can be refunded after this many times
            its expected duration (vanished providers).
        gas: the gas price settling the run's ledger operations on chain would
            pay (:class:`~vcompute.market.costs.GasConfig`: an L1 or L2 preset);
            the run reports it as ``settlement_gas_usd`` whatever the ledger.
    """

    ledger: str = "memory://"
    mode: Literal["escrow", "stream"] = "escrow"
    withdraw_interval_h: float = Field(1.0, gt=0)
    timeout_factor: float = Field(3.0, ge=1)
    gas: GasConfig = Field(default_factory=GasConfig)


class MarketParams(_Model):
    """Everything one market run needs.

    Attributes:
        mode: ``modelled`` (detection and verification cost from the
            calibration table) or ``real`` (providers execute real jobs and
            real verifiers check them).
        real_backend: array framework the real-mode jobs execute on (for kinds that run on
            it, e.g. matmul; the others run on their own framework, torch for forward,
            generate and train).
        real_timing: in real mode, also report each job kind's wall-clock throughput and
            verify/compute (``jobs_per_s_<kind>``, ``verify_over_compute_<kind>``); off by default
            because wall-clock numbers make a run's results differ from one run to the next.
        jobs: job arrivals to simulate (at most the trace's length with a trace).
        providers, adversary, consumers, auditors, matching, settlement, optimistic: see
            their own models.
        calibration: path of a calibration table JSON, or None for the
            built-in one.

    Example:
        >>> p = MarketParams(jobs=100, adversary={"strategy": "lazy", "fraction": 0.2})
        >>> p.adversary.strategy, p.consumers.audit_p
        ('lazy', 0.1)
    """

    mode: Literal["modelled", "real"] = "modelled"
    real_backend: Literal["numpy", "torch", "jax"] = "numpy"
    real_timing: bool = False
    jobs: int = Field(2000, ge=1, le=10_000_000)
    providers: ProvidersConfig = Field(default_factory=ProvidersConfig)
    adversary: AdversaryConfig = Field(default_factory=AdversaryConfig)
    consumers: ConsumersConfig = Field(default_factory=ConsumersConfig)
    auditors: AuditorsConfig = Field(default_factory=AuditorsConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    settlement: SettlementConfig = Field(default_factory=SettlementConfig)
    optimistic: OptimisticConfig = Field(default_factory=OptimisticConfig)
    calibration: str | None = None

    def _playable(self) -> None:
        """Real-mode optimistic runs play their disputes on chain: an EVM ledger, kinds with a dispute game.

        Each job type's kind must declare a dispute adapter (its ``dispute`` hook,
        :func:`vcompute.verify.dispute.market.dispute_for`) that can play jobs of its size.
        """
        from vcompute.verify.dispute.market import dispute_for
        from vcompute.workloads.kinds import KINDS, get_kind

        if not self.settlement.ledger.startswith("evm"):
            raise ValueError("consumers.trust = 'optimistic' in mode = 'real' plays its disputes on the dispute "
                             "contract: set settlement.ledger = 'evm://tester' (or use mode = 'modelled')")
        steps = self.optimistic.trace_steps
        for jt in self.consumers.mix:
            adapter = dispute_for(jt.job_kind)
            if adapter is None:
                able = [k for k in KINDS.names() if get_kind(k).dispute]
                raise ValueError(f"job type {jt.name!r}: no dispute game decides {jt.kind!r} jobs, so a played "
                                 f"dispute (optimistic, real mode) cannot settle them; kinds with one: "
                                 f"{', '.join(able)}")
            size = jt.size if jt.size is not None else (jt.real_n if jt.job_kind == "matmul" else None)
            try:
                adapter.check_size(size if size is not None else get_kind(jt.job_kind).size(None), steps)
            except ValueError as e:
                raise ValueError(f"job type {jt.name!r}: {e}") from None

    @model_validator(mode="after")
    def _consistent(self) -> MarketParams:
        if self.consumers.trust == "optimistic" and (self.consumers.adaptive_policy is not None
                                                     or self.settlement.mode != "escrow"):
            raise ValueError("consumers.trust = 'optimistic' needs settlement.mode = 'escrow' (stakes to slash) "
                             "and no consumers.adaptive_policy")
        if self.consumers.trust == "optimistic" and self.mode == "real":
            self._playable()
        if self.consumers.adaptive_policy is not None and self.auditors.forced_error_rate > 0:
            raise ValueError("auditors.forced_error_rate is not modelled with consumers.adaptive_policy; set it to 0")
        biggest = max(HARDWARE[h].memory_gb for h in self.providers.hardware)
        for jt in self.consumers.mix:
            if jt.memory_gb > biggest:
                raise ValueError(f"job type {jt.name!r} needs {jt.memory_gb} GB but the largest GPU "
                                 f"in providers.hardware has {biggest} GB; add bigger hardware or shrink the job")
        return self

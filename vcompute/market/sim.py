"""The marketplace as a SimPy discrete-event simulation.

A job's life: arrive -> wait in the order book -> match (escrow + stake
lock on the ledger) -> execute (the provider's strategy may cheat) -> its
claim is committed -> the audit coin is drawn (``Audit.drawn``: with the
fixed ``consumers.audit_p`` or the adaptive policy's probability for this
provider) -> if checked by a replication scheme, the extra replicas are
matched and run now -> the auditor checks (or skips: the verifier's
dilemma) -> the check takes simulated time -> settle (release, or refund +
slash, from the verdict's blame) -> metrics.

Events are SimPy timeouts with callbacks (arrivals, executions, checks,
refunds) plus one process per provider for churn and for streaming
withdrawals. Every random draw comes from one seeded generator in event
order, and SimPy breaks time ties by insertion order, so a seed fixes the
run bit for bit.

The parts talk through :mod:`vcompute.market.core`: the checking step
(:class:`~vcompute.market.checking.Checking`) and settlement
(:class:`~vcompute.market.settle_job.JobSettler`) are given their
collaborators explicitly, an extra tier gets a
:class:`~vcompute.market.core.MarketView` (this object, read only) and
:class:`~vcompute.market.core.Settled` records.
"""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy
from simpy.events import NORMAL as _NORMAL

from vcompute.market.adaptive import AdaptiveTrust
from vcompute.market.agents import Auditor, MarketJob, Provider
from vcompute.market.checking import Checking
from vcompute.market.arrivals import arrival_schedule
from vcompute.market.calibration import default_table
from vcompute.market.checks import Check, build_checks, kind_metrics
from vcompute.market.config import HARDWARE, UNITS_PER_USD, MarketParams
from vcompute.market.core import AuditCoin, Coin, MarketHooks, Settled
from vcompute.market.costs import settlement_gas_metrics
from vcompute.market.matching import MATCHERS
from vcompute.market.metrics import Metrics
from vcompute.market.optimistic import trust_metrics
from vcompute.market.settle_job import JobSettler
from vcompute.market.settlement import Settlement, ledger_url
from vcompute.market.strategies import CHEAT_SAVINGS, STRATEGIES, CheatOffer

__all__ = ["Market", "run_market"]

_H = 3600.0
_new = object.__new__


class _Wake:
    """A SimPy event that only calls back when its time comes: what the event loop needs of a
    ``Timeout`` (``callbacks``, ``_ok``), scheduled with the public ``Environment.schedule`` at the
    same priority, so events keep their order (one sequence number each, as a Timeout takes)."""

    __slots__ = ("callbacks",)
    _ok = True

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self.callbacks = [fn]


class _Run:
    """One replica's execution in progress (what churn cuts short); its own end-of-run event."""

    __slots__ = ("job", "r", "pr", "t0", "completes", "over", "callbacks")
    _ok = True

    def __init__(self, job: MarketJob, r: int, pr: Provider, t0: float, completes: bool,
                 done: Callable[[Any], None]) -> None:
        self.job, self.r, self.pr, self.t0, self.completes = job, r, pr, t0, completes
        self.over = False
        self.callbacks = [done]


class Market:
    """One market run.

    Args:
        params: the validated :class:`~vcompute.market.config.MarketParams`.
        seed: the run's seed.
        settlement: the class of the run's ledger accounts, opened on
            ``params.settlement.ledger`` with the simulation clock (default
            :class:`~vcompute.market.settlement.Settlement`); a subclass can
            be given to test what the metrics say about a faulty one.

    Raises:
        ValueError: if modelled mode is asked for a verifier (or verifier
            parameters) the calibration table lacks.

    Example:
        >>> m = Market(MarketParams(jobs=50), seed=0)
        >>> out = m.run()
        >>> out["jobs_submitted"], out["ledger_conserved"], out["settlement_consistent"]
        (50, 1, 1)
    """

    def __init__(self, params: MarketParams, seed: int, *, settlement: type[Settlement] = Settlement) -> None:
        self.p = params
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.env = simpy.Environment()
        self.m = Metrics()
        cons, aud = params.consumers, params.auditors
        self.table = default_table(params.calibration)
        # One check per job kind of the mix (vcompute.market.checks picks each kind's scheme).
        self.checks: dict[str, Check] = build_checks(params, table=self.table, seed=self.seed, rng=self.rng)
        # The audit of each kind: "check with its verifier with probability audit_p".
        self.audits: dict[str, Coin] = {kind: _audit(c, cons.audit_p) for kind, c in self.checks.items()}
        env = self.env
        # Read several times per job: getattr through functools.partial adds no Python frame, and
        # SimPy's own field behind its ``now`` property (when it is there, as in SimPy 4) no
        # property call either.
        self._clock = functools.partial(getattr, env, _now_field(env))
        self.now = self._clock  # the same as the method below, without its frame
        self.settle = settlement(ledger_url(params, self.seed), clock=self._clock)
        self.settler = JobSettler(params, self.settle, self.m)
        self.matcher = MATCHERS.create(params.matching.kind, **params.matching.model_dump(exclude={"kind"}))
        self._escrow_mode = params.settlement.mode == "escrow"
        self._timeout_factor = params.settlement.timeout_factor
        self._crash_rate = params.providers.crash_rate
        self._deadline_s = params.consumers.deadline_h * _H  # read once per match
        self._max_price = params.consumers.max_price_usd_per_pflop
        self.stake = int(round(cons.stake_usd * UNITS_PER_USD))
        self.adaptive = (AdaptiveTrust(cons.adaptive_policy, cons.adaptive_params, ban=self._ban)
                         if cons.adaptive_policy is not None else None)
        self._build_agents()
        self.queue: deque[MarketJob] = deque()
        self.inflight = 0
        self.arrivals_done = False
        self.done = env.event()
        self.hybrid: MarketHooks | None = None  # a cloud tier and routing consumers (HybridParams) only
        if hasattr(params, "cloud"):
            from vcompute.market.hybrid import HybridHooks

            self.hybrid = HybridHooks(self)
        self.checking = Checking(params=params, checks=self.checks, audits=self.audits, auditors=self.auditors,
                                 settle=self.settle, settler=self.settler, metrics=self.m, rng=self.rng, clock=self,
                                 adaptive=self.adaptive, hooks=self.hybrid, requeue=self._requeue,
                                 refund_later=self._refund_later, settled=self._settled,
                                 n_providers=len(self.providers))
        # An optimistic result settles only after its window (and a dispute): the escrow must stay
        # open that long, or either party could refund it first (the consumer to stiff an honest
        # provider, a cheater to free its stake before the watcher's dispute lands).
        self._hold_s = self.checking.optimistic.hold_s if self.checking.optimistic is not None else 0.0

    # -- the public view (vcompute.market.core.MarketView) ----------------------
    def now(self) -> float:
        """Simulated time in seconds."""
        return self.env.now

    def verify_fraction_est(self, job: MarketJob) -> float:
        """Expected checking work for ``job`` as a share of its compute (calibrated, or real mode's running mean)."""
        return self.checking.fraction_est(job)

    def after(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once ``delay`` simulated seconds have passed (the :class:`~vcompute.market.core.Scheduler`).

        Raises:
            ValueError: for a negative delay.
        """
        if delay < 0:
            raise ValueError(f"delay must be >= 0 simulated seconds, got {delay}")
        self.env.schedule(_Wake(lambda _e: fn()), _NORMAL, delay)

    def _at(self, delay: float, cb: Callable[[Any], None]) -> None:
        # after() for the event loop's own callbacks, which take the event (no wrapper frame).
        self.env.schedule(_Wake(cb), _NORMAL, delay)

    # -- setup -------------------------------------------------------------
    def _build_agents(self) -> None:
        p, rng = self.p, self.rng
        pc, adv = p.providers, p.adversary
        names = list(pc.hardware)
        shares = np.array([pc.hardware[h] for h in names], dtype=float)
        hw_idx = rng.choice(len(names), size=pc.count, p=shares / shares.sum())
        markups = np.maximum(0.0, pc.markup + pc.markup_spread * (rng.random(pc.count) - 0.5))
        n_adv = int(round(adv.fraction * pc.count))
        adv_set = set(rng.permutation(pc.count)[:n_adv].tolist())
        coll_seed = int(rng.integers(2**62))
        adv_cls, honest_cls = STRATEGIES.get(adv.strategy), STRATEGIES.get("honest")
        self.providers: list[Provider] = []
        self.initial = init = int(round(pc.initial_usd * UNITS_PER_USD))
        for i in range(pc.count):
            is_adv = i in adv_set
            strat = adv_cls(adv, coll_seed) if is_adv else honest_cls(adv, coll_seed)
            prov = Provider(i, f"p{i}", HARDWARE[names[hw_idx[i]]], float(markups[i]), strat,
                            strat.name if is_adv else "honest", colluding=is_adv and adv.strategy == "colluding")
            self.settle.open_account(prov.name, init)
            self.settle.deposit_stake(prov.name, init)
            self.providers.append(prov)
            self.matcher.add(prov)
        self.consumers = [f"c{i}" for i in range(p.consumers.count)]
        for c in self.consumers:
            self.settle.open_account(c, int(round(p.consumers.budget_usd * UNITS_PER_USD)))
        self.auditors = [Auditor(f"a{i}", p.auditors.policy, p.auditors.prior_cheat) for i in range(p.auditors.count)]
        for a in self.auditors:
            self.settle.open_account(a.name, 0)
        self.groups = sorted({pr.group for pr in self.providers})

    # -- arrivals ------------------------------------------------------------
    def _start_arrivals(self) -> None:
        p = self.p
        gaps, types = arrival_schedule(p.consumers, p.jobs, sum(pr.hw.tflops for pr in self.providers), self.rng)
        who = self.rng.integers(len(self.consumers), size=len(gaps))
        self._gaps, self._types, self._who, self._next = gaps.tolist(), types.tolist(), who.tolist(), 0
        self._mix = list(p.consumers.mix)
        # One event object for every arrival, rescheduled as each one runs (one is pending at a
        # time; SimPy orders events by time and sequence number, never by the object).
        self._arrival = _Wake(self._arrive)
        self._arrival_cbs = self._arrival.callbacks
        if self._gaps:
            self.env.schedule(self._arrival, _NORMAL, self._gaps[0])
        else:
            self._arrivals_over()

    def _arrive(self, _e: Any = None) -> None:
        i = self._next
        self._next = i + 1
        job = MarketJob(i, self._mix[self._types[i]], self.consumers[self._who[i]], self._clock())
        self.m.submitted += 1
        n = len(self._gaps)
        if i + 1 < n:
            w = self._arrival
            w.callbacks = self._arrival_cbs  # (the event loop set them to None before calling back)
            self.env.schedule(w, _NORMAL, self._gaps[i + 1])
        if self.hybrid is None or not self.hybrid.route(job):  # else served by the cloud tier
            self.queue.append(job)
            self._match()
        if i + 1 == n:
            self._arrivals_over()

    def _arrivals_over(self) -> None:
        self.arrivals_done = True
        if self.queue:
            self.env.process(self._sweeper())
        self._maybe_finish()

    def _sweeper(self):
        step = self.p.consumers.deadline_h * _H / 4
        while self.queue:
            yield self.env.timeout(step)
            self._match()
        self._maybe_finish()

    # -- churn ------------------------------------------------------------------
    def _churn(self, pr: Provider):
        pc, env, rng = self.p.providers, self.env, self.rng
        while True:
            yield env.timeout(float(rng.exponential(pc.mean_online_h * _H)))
            if pr.online:
                self._leave(pr)
            yield env.timeout(float(rng.exponential(pc.mean_offline_h * _H)))
            self._rejoin(pr)

    def _leave(self, pr: Provider) -> None:
        pr.online = False
        self.matcher.remove(pr)
        self.m.departures += 1
        run = pr.proc
        if run is not None and not run.over:
            self._ended(run, finished=False)

    def _rejoin(self, pr: Provider) -> None:
        if pr.online:
            return
        pr.online = True
        if not pr.busy and not pr.banned:
            self.matcher.add(pr)
            self._match()

    def _ban(self, pr: Provider) -> None:
        pr.banned = True
        self.matcher.remove(pr)
        self.m.banned += 1

    def _withdrawals(self, pr: Provider):
        step = self.p.settlement.withdraw_interval_h * _H
        while True:
            yield self.env.timeout(step)
            self._withdraw(pr)

    # -- matching ------------------------------------------------------------
    def _match(self) -> None:
        q = self.queue
        if q:
            matcher, rng = self.matcher, self.rng
            deadline_s, max_price = self._deadline_s, self._max_price
            hybrid = self.hybrid
            now = self._clock()  # no simulated time passes while matching
            while q:
                job = q[0]
                if job.phase == 1:
                    if hybrid is not None and hybrid.at_risk(job, now, deadline_s):
                        q.popleft()
                        continue
                    if now - job.submitted > deadline_s:
                        q.popleft()
                        self.m.expired += 1
                        if hybrid is not None:
                            hybrid.expired(job)
                        continue
                    picked = matcher.pick(1, memory_gb=job.jtype.memory_gb, rng=rng, max_price=max_price)
                elif now - job.claimed > deadline_s:  # no replicas for the audit in time: trusted after all
                    q.popleft()
                    self.checking.unchecked(job)
                    continue
                else:  # the audit's extra replicas: never the job's own providers
                    aside = [pr for pr in job.replicas if pr in matcher]
                    for pr in aside:
                        matcher.remove(pr)
                    picked = matcher.pick(job.want, memory_gb=job.jtype.memory_gb, rng=rng, max_price=max_price)
                    for pr in aside:
                        matcher.add(pr)
                if picked is None:
                    return
                q.popleft()
                self._start(job, picked)
        if self.arrivals_done:  # (the first of _maybe_finish's tests, before its call)
            self._maybe_finish()

    def _ensure_stake(self, pr: Provider) -> bool:
        if self.stake == 0 or not self._escrow_mode:
            return True
        free = self.settle.free_stake(pr.name)
        if free >= self.stake:
            return True
        top_up = min(self.settle.balance(pr.name), max(self.stake - free, 10 * self.stake))
        if top_up > 0 and self.settle.deposit_stake(pr.name, top_up) and free + top_up >= self.stake:
            return True
        pr.banned = True  # cannot back its work with stake any more: it leaves the market
        self.m.banned += 1
        return False

    def _start(self, job: MarketJob, picked: list[tuple[Provider, float]]) -> bool:
        st, matcher = self.settle, self.matcher
        escrow = self._escrow_mode
        if escrow and len(picked) == 1:
            # One escrowed replica (every job's primary): the general path below, without its lists.
            pr, price = picked[0]
            stake = self.stake
            if stake != 0 and st.free_stake(pr.name) < stake and not self._ensure_stake(pr):
                if not pr.banned:
                    matcher.add(pr)
                self.queue.appendleft(job)
                return False
            now, pflop, r = self._clock(), job.jtype.pflop, len(job.replicas)
            amount = max(1, int(round(price * pflop * UNITS_PER_USD)))
            eid = f"j{job.key}r{r}"
            deadline = now + self._timeout_factor * (pflop * 1000.0 / pr.hw.tflops) + 1.0 + self._hold_s
            if not st.open_job(eid, job.consumer, pr.name, amount=amount, deadline=deadline, stake=stake):
                matcher.add(pr)
                self._unaffordable(job)
                return False
            job.replicas.append(pr)
            job.prices.append(amount)
            job.escrows.append(eid)
            job.cheats.append(None)
            job.crashed.append(False)
            m = self.m
            m.replicas_run += 1
            if job.phase == 1:
                job.started = now
                m.matched += 1
                m.wait_s += now - job.submitted
                self.inflight += 1
            job.pending = 1
            self._execute(job, r, pr)
            return True
        if self.stake != 0 and escrow:  # else _ensure_stake holds for everyone
            for pr, _ in picked:
                if not self._ensure_stake(pr):
                    for pr2, _ in picked:
                        if not pr2.banned:
                            matcher.add(pr2)
                    self.queue.appendleft(job)
                    return False
        now, pflop, first = self._clock(), job.jtype.pflop, len(job.replicas)
        new: list[tuple[Provider, int, str]] = []
        r = first
        for pr, price in picked:
            amount = max(1, int(round(price * pflop * UNITS_PER_USD)))
            eid = f"j{job.key}r{r}"
            r += 1
            if escrow:
                # pr.seconds_for(pflop), inline
                deadline = now + self._timeout_factor * (pflop * 1000.0 / pr.hw.tflops) + 1.0 + self._hold_s
                if not st.open_job(eid, job.consumer, pr.name, amount=amount, deadline=deadline, stake=self.stake):
                    for _, _, e in new:  # undo the replicas already escrowed in this match
                        st.refund(e)
                    for pr2, _ in picked:
                        matcher.add(pr2)
                    self._unaffordable(job)
                    return False
            elif st.balance(job.consumer) < amount:
                # Streaming consumers see only their balance, not the dues not yet
                # withdrawn: the gap is what overdraws (Akash's problem).
                for pr2, _ in picked:
                    matcher.add(pr2)
                self._unaffordable(job)
                return False
            new.append((pr, amount, eid))
        for pr, amount, eid in new:
            job.replicas.append(pr)
            job.prices.append(amount)
            job.escrows.append(eid)
            job.cheats.append(None)
            job.crashed.append(False)
        m = self.m
        m.replicas_run += len(new)
        if job.phase == 1:
            job.started = now
            m.matched += 1
            m.wait_s += now - job.submitted
            self.inflight += 1
        job.pending = len(new)
        r = first
        for pr, _, _ in new:
            self._execute(job, r, pr)
            r += 1
        return True

    def _unaffordable(self, job: MarketJob) -> None:
        if job.phase == 2:  # the audit's replicas cannot be paid: the claims settle unchecked
            self.checking.unchecked(job)
        else:
            self.m.unaffordable += 1

    def _requeue(self, job: MarketJob) -> None:
        self.queue.appendleft(job)
        # Wake the queue once the wait is over, whatever else happens (the job then settles unchecked).
        self.after(self.p.consumers.deadline_h * _H + 1e-6, self._match)
        self._match()

    # -- execution -----------------------------------------------------------
    def _execute(self, job: MarketJob, r: int, pr: Provider) -> None:
        strat = pr.strategy
        honest_s = job.jtype.pflop * 1000.0 / pr.hw.tflops  # pr.seconds_for(pflop), inline
        if strat.name == "honest":
            dur = honest_s  # never cheats: skip building the offer (the hot path of large runs)
        else:
            p = self.p
            cheat_kind = strat.cheat
            saving = p.adversary.saving if p.adversary.saving is not None else CHEAT_SAVINGS[cheat_kind]
            # CheatOffer(job.key, gain_usd=..., ...) without the frozen dataclass's per-field
            # object.__setattr__: the same fields in the instance dict (once per adversary job).
            offer = _new(CheatOffer)
            offer.__dict__.update(job_key=job.key, gain_usd=saving * honest_s / _H * pr.hw.hourly_cost,
                                  loss_usd=p.consumers.stake_usd + job.prices[r] / UNITS_PER_USD,
                                  announced_p=p.consumers.audit_p,
                                  detect_p=self.checking.detect_est(job.jtype.kind, cheat_kind))
            if strat.decide(offer, self.rng):
                job.cheats[r] = cheat_kind
                dur = honest_s * (1.0 - saving)
            else:
                dur = honest_s
        crash_at = None
        rate = self._crash_rate
        if rate > 0 and self.rng.random() < rate:
            crash_at = dur * float(self.rng.random())
        run = _Run(job, r, pr, self._clock(), crash_at is None, self._run_over)
        pr.busy = True
        pr.proc = run
        self.env.schedule(run, _NORMAL, dur if crash_at is None else crash_at)

    def _run_over(self, run: _Run) -> None:
        if not run.over:  # (churn may have ended it first)
            self._ended(run, run.completes)

    def _ended(self, run: _Run, finished: bool) -> None:
        run.over = True
        job, pr = run.job, run.pr
        spent = self._clock() - run.t0
        cost = spent / _H * pr.hw.hourly_cost
        pr.busy_time += spent
        pr.compute_cost += cost
        pr.busy = False
        pr.proc = None
        if not finished:
            job.crashed[run.r] = True
            pr.wasted_cost += cost
            pr.unpaid_cost += cost
            self.m.crashed += 1
            if not run.completes and pr.online:  # a crash takes the provider down for a while
                pr.online = False
                self.after(float(self.rng.exponential(self.p.providers.mean_offline_h * _H)), lambda: self._rejoin(pr))
        job.pending -= 1
        if job.pending == 0:
            self.checking.claims_in(job)
        if pr.online and not pr.banned:
            self.matcher.add(pr)
        if self.queue:
            self._match()
        elif self.arrivals_done:
            self._maybe_finish()  # what _match does with nothing queued

    # -- after the check ----------------------------------------------------------
    def _settled(self, s: Settled) -> None:
        if self.hybrid is not None:
            self.hybrid.settled(s)
        self.inflight -= 1
        if self.arrivals_done:
            self._maybe_finish()

    def _refund_later(self, job: MarketJob, eid: str, deadline: float) -> None:
        self.inflight += 1
        # A hair past the deadline: now + (deadline - now) can round to just below it.
        self.after(max(0.0, deadline - self.env.now) + 1e-6, lambda: self._refund_late(job, eid))

    def _refund_late(self, job: MarketJob, eid: str) -> None:
        self.settle.refund(eid, by_consumer=job.consumer)
        self.m.timeouts += 1
        self.inflight -= 1
        self._maybe_finish()

    def _withdraw(self, pr: Provider) -> None:
        for consumer, amount, cost in pr.dues:
            paid = self.settle.transfer(consumer, pr.name, amount)
            pr.earned += paid
            if paid < amount:
                self.m.unpaid_units += amount - paid
                self.m.unpaid_usd += (amount - paid) / UNITS_PER_USD
                pr.unpaid_cost += cost * (amount - paid) / amount
        pr.dues = []

    def _maybe_finish(self) -> None:
        if self.arrivals_done and self.inflight == 0 and not self.queue and not self.done.triggered:
            self.done.succeed()

    # -- run -------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Simulate until every job is settled; return flat metrics.

        The ledger is checked at the end, not trusted: ``ledger_conserved``
        and ``settlement_consistent`` are 0 when money was created or lost,
        left in escrow, or moved otherwise than the counters say (see
        :meth:`~vcompute.market.metrics.Metrics.ledger_summary`). A run
        reports that rather than raising, so a sweep shows which runs broke.
        """
        env = self.env
        self._start_arrivals()
        if self.p.providers.mean_online_h > 0:
            for pr in self.providers:
                env.process(self._churn(pr))
        if self.p.settlement.mode == "stream":
            for pr in self.providers:
                env.process(self._withdrawals(pr))
        batch = getattr(self.settle.ledger, "batch", None)
        # A durable ledger that can batch commits the run as one transaction
        # (each operation still signed and chained) instead of one per operation.
        with batch() if batch is not None else contextlib.nullcontext(), _no_cyclic_gc():
            if not self.done.triggered:
                env.run(until=self.done)
            if self.p.settlement.mode == "stream":
                for pr in self.providers:
                    self._withdraw(pr)
        m = self.m
        out = m.summary(params=self.p, providers=self.providers, auditors=self.auditors, groups=self.groups,
                        horizon_s=env.now, extra=self.adaptive.summary() if self.adaptive is not None else None)
        out.update(m.ledger_summary(self.settle, self.providers, self.initial))
        out.update(settlement_gas_metrics(self.settle.ledger.op_counts(), self.p.settlement.gas, m.correct))
        out.update(trust_metrics(m, self.checking.optimistic, out["time_to_settlement_s"]))
        out.update(kind_metrics(self.checks, timing=self.p.real_timing))  # real mode: the per-job-kind table
        if self.hybrid is not None:
            out.update(self.hybrid.summary(m.totals(), self.settle.ledger.op_counts(), correct=m.correct))
        self.settle.close()
        return out


def _now_field(env: simpy.Environment) -> str:
    """The attribute holding ``env``'s time: SimPy's ``_now`` field, which its ``now`` property
    returns, where that is so (checked here, on this very environment); else ``now`` itself."""
    if type(env) is simpy.Environment and type(getattr(env, "_now", None)) in (int, float) and env._now == env.now:
        return "_now"
    return "now"


@contextlib.contextmanager
def _no_cyclic_gc():
    """The event loop without Python's cycle collector, which it is restored to afterwards.

    A run allocates a few objects per event and keeps millions alive (ledger entries, escrows),
    so the collector re-scans an ever larger heap: ~16 % of a 10^5-job run, for a few hundred
    cycles in all (reference counting frees everything else). Results do not depend on it.
    """
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _audit(check: Check, p: float) -> Coin:
    """The audit of ``check``'s jobs at probability ``p``: the real verifier wrapped in
    :class:`~vcompute.verify.audit.Audit` (real mode), else an :class:`~vcompute.market.core.AuditCoin`."""
    verifier = getattr(check.work, "verifier", None)
    if verifier is not None:
        from vcompute.verify.audit import Audit

        return Audit(verifier, p)
    return AuditCoin(p if check.scheme != "none" else 0.0)


def run_market(params: MarketParams | dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Validate ``params`` (a model or a dict) and run one seeded market.

    Example:
        >>> run_market({"jobs": 30, "adversary": {"strategy": "lazy", "fraction": 0.5}}, seed=1)["jobs_submitted"]
        30
    """
    if not isinstance(params, MarketParams):
        params = MarketParams.model_validate(params)
    return Market(params, seed).run()

"""The marketplace as a SimPy discrete-event simulation.

Processes (generators yielding SimPy events): Poisson job arrivals, one
execution per matched replica (interruptible by churn or a crash), each
provider's churn (leave / rejoin) and, in streaming settlement, its
periodic withdrawals. A job's life: arrive -> wait in the order book ->
match (escrow + stake lock on the ledger) -> execute (maybe cheat) ->
maybe audit (the verifier role may skip) -> settle (release, or refund +
slash) -> metrics. Every random draw comes from one seeded generator in
event order, and SimPy breaks time ties by insertion order, so a seed
fixes the run bit for bit.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

import numpy as np
import simpy

from vcompute.market.adaptive import AdaptiveTrust
from vcompute.market.agents import Auditor, MarketJob, Provider
from vcompute.market.arrivals import arrival_schedule
from vcompute.market.behaviours import CHEAT_SAVINGS, MARKET_BEHAVIOURS, CheatOffer
from vcompute.market.calibration import default_table
from vcompute.market.config import HARDWARE, UNITS_PER_USD, MarketParams
from vcompute.market.checks import Check, build_checks, kind_metrics
from vcompute.market.matching import MATCHERS
from vcompute.market.metrics import Metrics
from vcompute.market.settlement import Settlement, ledger_url

__all__ = ["Market", "run_market"]

_H = 3600.0


class Market:
    """One market run.

    Args:
        params: the validated :class:`~vcompute.market.config.MarketParams`.
        seed: the run's seed.

    Raises:
        ValueError: if modelled mode is asked for a verifier (or verifier
            parameters) the calibration table lacks.

    Example:
        >>> m = Market(MarketParams(jobs=50), seed=0)
        >>> out = m.run()
        >>> out["jobs_submitted"], out["ledger_conserved"]
        (50, 1)
    """

    def __init__(self, params: MarketParams, seed: int) -> None:
        self.p = params
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.env = simpy.Environment()
        self.m = Metrics()
        cons, aud = params.consumers, params.auditors
        self.table = default_table(params.calibration)
        # One check per job kind of the mix (vcompute.market.checks picks each kind's scheme).
        self.checks: dict[str, Check] = build_checks(params, table=self.table, seed=self.seed, rng=self.rng)
        adv = params.adversary
        self.adv_cheat = adv.cheat or MARKET_BEHAVIOURS.get(adv.behaviour).default_cheat
        self.settle = Settlement(ledger_url(params, self.seed), clock=lambda: self.env.now)
        self.matcher = MATCHERS.create(params.matching.kind, **params.matching.model_dump(exclude={"kind"}))
        self.stake = int(round(cons.stake_usd * UNITS_PER_USD))
        self.fee = int(round(aud.fee_usd * UNITS_PER_USD))
        self.adaptive = (AdaptiveTrust(cons.adaptive_policy, cons.adaptive_params)
                         if cons.adaptive_policy is not None else None)
        self.a100_cpp = HARDWARE["a100"].hourly_cost / (HARDWARE["a100"].tflops * 3.6)
        self._build_agents()
        self.queue: deque[MarketJob] = deque()
        self.inflight = 0
        self.arrivals_done = False
        self.done = self.env.event()
        self._frac_mean = 0.1  # running verify fraction (real mode, uncalibrated schemes)
        self.hybrid: Any = None  # a cloud tier and routing consumers (HybridParams) only
        if hasattr(params, "cloud"):
            from vcompute.market.hybrid import HybridHooks

            self.hybrid = HybridHooks(self)

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
        adv_cls, honest_cls = MARKET_BEHAVIOURS.get(adv.behaviour), MARKET_BEHAVIOURS.get("honest")
        self.providers: list[Provider] = []
        init = int(round(pc.initial_usd * UNITS_PER_USD))
        for i in range(pc.count):
            is_adv = i in adv_set
            beh = adv_cls(adv, coll_seed) if is_adv else honest_cls(adv, coll_seed)
            prov = Provider(i, f"p{i}", HARDWARE[names[hw_idx[i]]], float(markups[i]), beh,
                            beh.name if is_adv else "honest", colluding=is_adv and adv.behaviour == "colluding")
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

    # -- processes ---------------------------------------------------------
    def _arrivals(self):
        p, rng, env = self.p, self.rng, self.env
        mix = p.consumers.mix
        gaps, types = arrival_schedule(p.consumers, p.jobs, sum(pr.hw.tflops for pr in self.providers), rng)
        n = len(gaps)
        who = rng.integers(len(self.consumers), size=n)
        audit = rng.random(n) < p.consumers.audit_p
        forced = rng.random(n) < p.auditors.forced_error_rate
        for i in range(n):
            yield env.timeout(float(gaps[i]))
            job = MarketJob(i, mix[int(types[i])], self.consumers[int(who[i])], env.now)
            job.audit = bool(audit[i]) and self.checks[job.jtype.kind].scheme != "none"
            job.forced = bool(forced[i]) and job.audit
            self.m.submitted += 1
            if self.hybrid is not None and self.hybrid.route(job):
                continue  # served by the cloud tier
            self.queue.append(job)
            self._match()
        self.arrivals_done = True
        if self.queue:
            env.process(self._sweeper())
        self._maybe_finish()

    def _sweeper(self):
        step = self.p.consumers.deadline_h * _H / 4
        while self.queue:
            yield self.env.timeout(step)
            self._match()
        self._maybe_finish()

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
        if pr.proc is not None and pr.proc.is_alive:
            pr.proc.interrupt("left")

    def _rejoin(self, pr: Provider) -> None:
        if pr.online:
            return
        pr.online = True
        if not pr.busy and not pr.banned:
            self.matcher.add(pr)
            self._match()

    def _away(self, pr: Provider, seconds: float):
        yield self.env.timeout(seconds)
        self._rejoin(pr)

    def _withdrawals(self, pr: Provider):
        step = self.p.settlement.withdraw_interval_h * _H
        while True:
            yield self.env.timeout(step)
            self._withdraw(pr)

    # -- matching ------------------------------------------------------------
    def _match(self) -> None:
        env, q, cons = self.env, self.queue, self.p.consumers
        deadline_s = cons.deadline_h * _H
        while q:
            job = q[0]
            if self.hybrid is not None and self.hybrid.at_risk(job, env.now, deadline_s):
                q.popleft()
                continue
            if env.now - job.submitted > deadline_s:
                q.popleft()
                self.m.expired += 1
                if self.hybrid is not None:
                    self.hybrid.expired(job)
                continue
            check = self.checks[job.jtype.kind]
            if self.adaptive is not None:  # the policy decides from the primary provider's record
                picked = self.adaptive.plan(self, job, check)
            else:
                picked = self.matcher.pick(check.k if job.audit else 1, memory_gb=job.jtype.memory_gb,
                                           rng=self.rng, max_price=cons.max_price_usd_per_pflop)
            if picked is None:
                return
            q.popleft()
            if not self._start(job, picked):
                continue
        self._maybe_finish()

    def _ensure_stake(self, pr: Provider) -> bool:
        if self.stake == 0 or self.p.settlement.mode == "stream":
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
        env, st = self.env, self.settle
        ok = [self._ensure_stake(pr) for pr, _ in picked]
        if not all(ok):
            for (pr, _), good in zip(picked, ok):
                if good:
                    self.matcher.add(pr)
            self.queue.appendleft(job)
            return False
        escrow = self.p.settlement.mode == "escrow"
        job.started = env.now
        for r, (pr, price) in enumerate(picked):
            amount = max(1, int(round(price * job.jtype.pflop * UNITS_PER_USD)))
            eid = f"j{job.key}r{r}"
            if escrow:
                dur = pr.seconds_for(job.jtype.pflop)
                deadline = env.now + self.p.settlement.timeout_factor * dur + 1.0
                if not st.open_job(eid, job.consumer, pr.name, amount=amount, deadline=deadline, stake=self.stake):
                    for e in job.escrows:  # undo the replicas already escrowed
                        st.refund(e)
                    for pr2, _ in picked:
                        self.matcher.add(pr2)
                    self.m.unaffordable += 1
                    return False
            elif st.balance(job.consumer) < amount:
                # Streaming consumers see only their balance, not the dues not yet
                # withdrawn: the gap is what overdraws (Akash's problem).
                for pr2, _ in picked:
                    self.matcher.add(pr2)
                self.m.unaffordable += 1
                return False
            job.replicas.append(pr)
            job.prices.append(amount)
            job.escrows.append(eid)
        self.m.matched += 1
        self.m.replicas_run += len(picked)
        if self.adaptive is not None:
            self.adaptive.started(job)
        if self.hybrid is not None:
            self.hybrid.started(job)
        self.m.wait_s += env.now - job.submitted
        self.inflight += 1
        job.pending = len(picked)
        job.cheats = [None] * len(picked)
        job.crashed = [False] * len(picked)
        for r, pr in enumerate(job.replicas):
            pr.busy = True
            pr.proc = env.process(self._execute(job, r, pr))
        return True

    # -- execution -----------------------------------------------------------
    def _execute(self, job: MarketJob, r: int, pr: Provider):
        env, rng, p = self.env, self.rng, self.p
        cheat_kind = pr.behaviour.cheat
        saving = p.adversary.saving if p.adversary.saving is not None else CHEAT_SAVINGS[cheat_kind]
        honest_s = pr.seconds_for(job.jtype.pflop)
        hourly = pr.hw.hourly_cost
        offer = CheatOffer(job.key, gain_usd=saving * honest_s / _H * hourly,
                           loss_usd=p.consumers.stake_usd + job.prices[r] / UNITS_PER_USD,
                           announced_p=p.consumers.audit_p,
                           detect_p=self.checks[job.jtype.kind].detect_est(cheat_kind))
        cheat = pr.behaviour.decide(offer, rng)
        if cheat:
            job.cheats[r] = cheat_kind
        dur = honest_s * (1.0 - saving) if cheat else honest_s
        crash_at = None
        if p.providers.crash_rate > 0 and rng.random() < p.providers.crash_rate:
            crash_at = dur * float(rng.random())
        t0 = env.now
        finished = False
        try:
            if crash_at is None:
                yield env.timeout(dur)
                finished = True
            else:
                yield env.timeout(crash_at)
        except simpy.Interrupt:
            pass
        spent = env.now - t0
        cost = spent / _H * hourly
        pr.busy_time += spent
        pr.compute_cost += cost
        pr.busy = False
        pr.proc = None
        if not finished:
            job.crashed[r] = True
            pr.wasted_cost += cost
            pr.unpaid_cost += cost
            self.m.crashed += 1
            if crash_at is not None and pr.online:  # a crash takes the provider down for a while
                pr.online = False
                env.process(self._away(pr, float(rng.exponential(p.providers.mean_offline_h * _H))))
        job.pending -= 1
        if job.pending == 0:
            self._finish(job)
        if pr.online and not pr.banned:
            self.matcher.add(pr)
        self._match()

    # -- verification and settlement ------------------------------------------
    def _finish(self, job: MarketJob) -> None:
        from vcompute.market.settle_job import settle_job

        settle_job(self, job)

    def _refund_later(self, job: MarketJob, eid: str, deadline: float):
        # A hair past the deadline: now + (deadline - now) can round to just below it.
        yield self.env.timeout(max(0.0, deadline - self.env.now) + 1e-6)
        self.settle.refund(eid, by_consumer=job.consumer)
        self.m.timeouts += 1
        self.inflight -= 1
        self._maybe_finish()

    def _withdraw(self, pr: Provider) -> None:
        for consumer, amount, cost in pr.dues:
            paid = self.settle.transfer(consumer, pr.name, amount)
            pr.earned += paid
            if paid < amount:
                self.m.unpaid_usd += (amount - paid) / UNITS_PER_USD
                pr.unpaid_cost += cost * (amount - paid) / amount
        pr.dues = []

    def _maybe_finish(self) -> None:
        if self.arrivals_done and self.inflight == 0 and not self.queue and not self.done.triggered:
            self.done.succeed()

    # -- run -------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Simulate until every job is settled; check conservation; return flat metrics.

        Raises:
            AssertionError: if the ledger did not conserve money.
        """
        env = self.env
        env.process(self._arrivals())
        if self.p.providers.mean_online_h > 0:
            for pr in self.providers:
                env.process(self._churn(pr))
        if self.p.settlement.mode == "stream":
            for pr in self.providers:
                env.process(self._withdrawals(pr))
        batch = getattr(self.settle.ledger, "batch", None)
        # A durable ledger that can batch commits the run as one transaction
        # (each operation still signed and chained) instead of one per operation.
        with batch() if batch is not None else contextlib.nullcontext():
            env.run(until=self.done)
            if self.p.settlement.mode == "stream":
                for pr in self.providers:
                    self._withdraw(pr)
        supply = self.settle.check()
        out = self.m.summary(self)
        out["ledger_supply_usd"] = supply / UNITS_PER_USD
        out["ledger_conserved"] = 1
        out.update(kind_metrics(self.checks, timing=self.p.real_timing))  # real mode: the per-job-kind table
        if self.hybrid is not None:
            out.update(self.hybrid.summary())
        self.settle.close()
        return out


def run_market(params: MarketParams | dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Validate ``params`` (a model or a dict) and run one seeded market.

    Example:
        >>> run_market({"jobs": 30, "adversary": {"behaviour": "lazy", "fraction": 0.5}}, seed=1)["jobs_submitted"]
        30
    """
    if not isinstance(params, MarketParams):
        params = MarketParams.model_validate(params)
    return Market(params, seed).run()

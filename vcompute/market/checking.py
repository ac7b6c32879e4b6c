"""From committed claims to settlement: the audit coin, the check, its latency.

Once every replica of a job has returned (or vanished), :class:`Checking`
draws the job's audit coin (``Audit.drawn``: the consumers' ``audit_p``, or
the adaptive policy's probability for the primary provider), sends a
replication check back to the queue for its extra replicas, has the auditor
check (or skip: the verifier's dilemma), waits the check's simulated time and
hands the verdict to :class:`~vcompute.market.settle_job.JobSettler`. It is
given every collaborator explicitly and sees nothing else of the market.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import numpy as np

from vcompute.market.adaptive import AdaptiveTrust
from vcompute.market.agents import Auditor, MarketJob
from vcompute.market.checks import Check
from vcompute.market.config import HARDWARE, UNITS_PER_USD, MarketParams
from vcompute.market.core import Coin, MarketHooks, Scheduler, Settled
from vcompute.market.fidelity import Outcome
from vcompute.market.metrics import Metrics
from vcompute.market.settle_job import JobSettler
from vcompute.market.settlement import Settlement

__all__ = ["Checking"]

_TRUSTED = Outcome((), None, 0.0, "not audited: accepted on trust")


class Checking:
    """The market's checking step.

    Args:
        params: the run's parameters.
        checks: per job kind, how its jobs are checked.
        audits: per job kind, its audit ("check with probability p").
        auditors: the auditors (a job goes to ``auditors[key % len]``).
        settle: the ledger accounts (audit fees).
        settler: pays and slashes from the verdict.
        metrics: the run's counters.
        rng: the run's generator (coins and forced-error draws, in event order).
        clock: the simulation clock and its timer.
        adaptive: the adaptive trust policy, or None.
        hooks: an extra tier told of each job's final replicas, or None.
        requeue: puts a job at the head of the queue (for an audit's extra replicas).
        refund_later: reclaims a vanished replica's escrow at its deadline.
        settled: told of every job settlement is done with.
        n_providers: providers in the market (a check never asks for more replicas).
    """

    def __init__(self, *, params: MarketParams, checks: Mapping[str, Check], audits: Mapping[str, Coin],
                 auditors: Sequence[Auditor], settle: Settlement, settler: JobSettler, metrics: Metrics,
                 rng: np.random.Generator, clock: Scheduler, adaptive: AdaptiveTrust | None,
                 hooks: MarketHooks | None, requeue: Callable[[MarketJob], None],
                 refund_later: Callable[[MarketJob, str, float], None], settled: Callable[[Settled], None],
                 n_providers: int) -> None:
        from vcompute.market.strategies import STRATEGIES

        self.p, self.checks, self.audits, self.auditors = params, checks, audits, auditors
        self.st, self.settler, self.m, self.rng, self.clock = settle, settler, metrics, rng, clock
        self.adaptive, self.hooks = adaptive, hooks
        self.requeue, self.refund_later, self.settled = requeue, refund_later, settled
        self.n_providers = int(n_providers)
        adv = params.adversary
        self.adv_cheat = adv.cheat or STRATEGIES.get(adv.strategy).default_cheat
        self.fee = int(round(params.auditors.fee_usd * UNITS_PER_USD))
        self.a100_cpp = HARDWARE["a100"].hourly_cost / (HARDWARE["a100"].tflops * 3.6)
        self.auditor_tflops = HARDWARE["a100"].tflops
        self.frac_mean = 0.1  # running verify fraction (real mode, uncalibrated schemes)
        self.real = params.mode == "real"
        self.escrow = params.settlement.mode == "escrow"
        self._detect: dict[tuple[str, str], float] = {}
        self._frac: dict[tuple[str, int], float] = {}
        self.optimistic = None  # the optimistic trust policy: a challenge window instead of an audit
        if params.consumers.trust == "optimistic":
            from vcompute.market.optimistic import Optimistic

            self.optimistic = Optimistic(params=params, checks=checks, settle=settle, metrics=metrics, rng=rng, clock=clock)
        # check()'s shortcut for an unaudited job applies: nothing to run, no window, no tier.
        self._plain = not self.real and self.optimistic is None and hooks is None

    def detect_est(self, kind: str, cheat: str) -> float:
        """``checks[kind].detect_est(cheat)``, looked up in the table once per (kind, cheat)."""
        key = (kind, cheat)
        d = self._detect.get(key)
        if d is None:
            d = self._detect[key] = self.checks[kind].detect_est(cheat)
        return d

    def fraction_est(self, job: MarketJob) -> float:
        """Expected checking work for ``job`` as a share of its compute."""
        jt = job.jtype
        if self.real:  # the running mean moves
            return self.checks[jt.kind].frac_est(jt.real_n, self.frac_mean)
        # Modelled: a function of the kind, its size and the calibration table alone (the running
        # mean never moves), looked up once per (kind, n).
        key = (jt.kind, jt.real_n)
        f = self._frac.get(key)
        if f is None:
            f = self._frac[key] = self.checks[jt.kind].frac_est(jt.real_n, self.frac_mean)
        return f

    def claims_in(self, job: MarketJob) -> None:
        """Every replica of this phase returned or vanished: its claims are committed."""
        job.claimed = self.clock.now()
        if job.phase == 2 or job.crashed[0] or self.optimistic is not None:
            self.check(job)
            return
        kind = job.jtype.kind
        check = self.checks[kind]
        coin, k = self.audits[kind], check.k
        if self.adaptive is not None:  # the policy only changes p, from the primary provider's record
            p_pr, k_pol = self.adaptive.audit_plan(job.replicas[0].name)
            coin = coin.with_p(p_pr)
            k = k_pol if check.k > 1 else 1  # the policy sets the quorum of a replication check
        # The coin is drawn now, after the claim is committed: a provider cannot know it in advance.
        job.audit = coin.drawn(self.rng) and check.scheme != "none"
        if self.adaptive is not None:
            self.adaptive.drawn(job.audit)
        if not job.audit:
            self.check(job)
            return
        job.forced = bool(self.rng.random() < self.p.auditors.forced_error_rate)
        job.k = min(k, self.n_providers)
        if job.k > 1:  # replication: the extra replicas are matched and run now
            job.phase, job.want = 2, job.k - 1
            self.requeue(job)
            return
        self.check(job)

    def unchecked(self, job: MarketJob) -> None:
        """The consumer wanted the check but could not have it done (no replicas in time, or no funds)."""
        # The verdict is trust; check_participation (checks done per check requested) shows the shortfall.
        self.m.checks_requested += 1
        job.audit = False
        self.check(job)

    def check(self, job: MarketJob) -> None:
        """Check ``job``'s claims (if drawn and the auditor bothers), then settle after the check's latency."""
        crashed = job.crashed
        if not job.audit and self._plain and True not in crashed:
            # Not audited, modelled, no tier to tell, every claim in (most jobs of a large run):
            # what the steps below come to, a trusted verdict settled at once.
            self._settle(job, list(range(len(crashed))), False, _TRUSTED,
                         self.auditors[job.key % len(self.auditors)], 0.0, 0.0)
            return
        p, st, m = self.p, self.st, self.m
        if self.hooks is not None:
            self.hooks.started(job)
        if True in crashed:
            live = [r for r in range(len(crashed)) if not crashed[r]]
            if self.escrow:
                for r in range(len(crashed)):
                    if crashed[r]:  # the consumer reclaims it once the deadline passes
                        self.refund_later(job, job.escrows[r], st.deadline(job.escrows[r]))
        else:
            live = list(range(len(crashed)))
        if not live:
            m.failed += 1
            self.settled(Settled(job, (), False, (), None))
            return
        aud = p.auditors
        auditor = self.auditors[job.key % len(self.auditors)]
        # A check needs every replica's claim; with one vanished the rest settle unchecked.
        audit = job.audit and len(live) == len(job.replicas)
        jt = job.jtype
        check = self.checks[jt.kind]
        if job.audit and self.fee:  # the fee is owed for the request, checked or not
            auditor.fees += st.transfer(job.consumer, auditor.name, self.fee)
        if audit:
            m.checks_requested += 1
            check_cost = self.fraction_est(job) * jt.pflop * self.a100_cpp * aud.cost_factor
            reward = aud.whistleblower_share * p.consumers.stake_usd
            if not auditor.will_check(cost_usd=check_cost, detect_p=self.detect_est(jt.kind, self.adv_cheat),
                                      cheat_reward_usd=reward, forced_rate=aud.forced_error_rate,
                                      forced_detect_p=self.detect_est(jt.kind, "random_output"),
                                      jackpot_usd=aud.jackpot_usd):
                auditor.skipped += 1
                m.checks_skipped += 1
                audit = False
        if audit or self.real:  # real providers compute their outputs, checked or not
            out = check.work.run(job_key=job.key, n=jt.real_n, cheats=[job.cheats[r] for r in live], audit=audit,
                                 colluding=[job.replicas[r].colluding for r in live])
        else:
            out = _TRUSTED  # an unchecked modelled job: nothing to draw, nobody blamed
        cost = latency = 0.0
        if audit:
            m.checks_done += 1
            auditor.checked += 1
            cost = out.verify_fraction * jt.pflop * self.a100_cpp * aud.cost_factor
            auditor.cost += cost
            m.verify_compute_usd += cost
            if self.real:
                self.frac_mean += 0.1 * (out.verify_fraction - self.frac_mean)
            if job.forced:
                self.settler.forced_error(auditor, bool(self.rng.random() < self.detect_est(jt.kind, "random_output")))
            # The check runs on the auditor's hardware: its share of the job's work, or a fixed latency.
            latency = (aud.latency_s if aud.latency_s is not None
                       else out.verify_fraction * jt.pflop * 1000.0 / self.auditor_tflops)
            m.verify_latency_s += latency
        if self.optimistic is not None:
            self.optimistic.open(job, live, out, auditor, self._settle)
            return
        if latency > 0:
            self.clock.after(latency, lambda: self._settle(job, live, audit, out, auditor, cost, latency))
        else:
            self._settle(job, live, audit, out, auditor, cost, latency)

    def _settle(self, job: MarketJob, live: list[int], audit: bool, out: Outcome, auditor: Auditor, cost: float,
                latency: float, split: tuple[float, str] | None = None) -> None:
        s = self.settler.settle(job, live, audit, out, auditor, verify_usd=cost, latency_s=latency, split=split)
        ad, m = self.adaptive, self.m
        if ad is not None:
            if audit:
                redo, fixed, redo_usd = ad.record([job.replicas[r] for r in live], s.verdicts,
                                                  "replication" if len(live) > 1 else "spotcheck")
                if redo:
                    m.backtracked += redo
                    m.verify_compute_usd += redo_usd
                    m.wrong_accepted -= fixed
                    m.correct += fixed
            elif s.correct is not None and len(live) == 1:
                ad.accepted_unchecked(job.replicas[live[0]].name, not s.correct,
                                      job.jtype.pflop * self.a100_cpp * self.p.auditors.cost_factor)
        m.settled += 1
        m.settle_s += self.clock.now() - job.submitted
        self.settled(s)


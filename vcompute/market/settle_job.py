"""Settling one checked (or trusted) job: pay every claim the verdict does not blame, slash the rest.

:class:`JobSettler` is given what it moves money with and what it counts
into, explicitly: the run's parameters, its
:class:`~vcompute.market.settlement.Settlement` and its
:class:`~vcompute.market.metrics.Metrics`. It never sees the market. The
event loop (:mod:`vcompute.market.sim`) decides when a job is checked and
how long the check takes; this module reads the verdict's blame alone
(:attr:`~vcompute.market.fidelity.Outcome.blame`), so a new multi-claim
scheme needs no change here.
"""

from __future__ import annotations

from collections.abc import Sequence

from vcompute.market.agents import Auditor, MarketJob, Provider
from vcompute.market.config import UNITS_PER_USD, MarketParams
from vcompute.market.core import Settled
from vcompute.market.fidelity import Outcome, resolve
from vcompute.market.metrics import Metrics
from vcompute.market.settlement import Settlement

__all__ = ["JobSettler"]

_STANDS = (True,)
_tuple_new = tuple.__new__


class JobSettler:
    """Pays, refunds and slashes the replicas of settled jobs, and counts what it did.

    Args:
        params: the run's parameters.
        settle: the run's ledger accounts.
        metrics: the run's counters.
    """

    def __init__(self, params: MarketParams, settle: Settlement, metrics: Metrics) -> None:
        self.p, self.st, self.m = params, settle, metrics
        self.escrow = params.settlement.mode == "escrow"
        self._tax = params.auditors.tax  # read once per paid claim

    def forced_error(self, auditor: Auditor, found: bool) -> None:
        """A forced error was injected into an audited job; ``found``: the auditor caught it (jackpot)."""
        self.m.forced += 1
        if found:
            self.m.forced_found += 1
            auditor.rewards += self.st.transfer(self.st.treasury, auditor.name,
                                                int(round(self.p.auditors.jackpot_usd * UNITS_PER_USD)))

    def settle(self, job: MarketJob, live: Sequence[int], audited: bool, out: Outcome, auditor: Auditor, *,
               verify_usd: float = 0.0, latency_s: float = 0.0, split: tuple[float, str] | None = None) -> Settled:
        """Settle every live replica of ``job`` from the verdict in ``out``; return what stood.

        Args:
            job: the job, all of whose replicas have returned or vanished.
            live: indices of the replicas that returned a claim.
            audited: whether the claims were checked.
            out: the check's outcome (its ``blame`` indexes ``live``).
            auditor: who checked (receives the whistleblower's share).
            verify_usd: the checkers' compute for this job.
            latency_s: how long the check took.
            split: a slashed stake's share to ``auditor`` and who gets the rest, or None for
                ``auditors.whistleblower_share`` and the consumer (an optimistic dispute's winner
                gets all but the burned share: :mod:`vcompute.market.optimistic`).
        """
        m = self.m
        if len(live) == 1 and not audited and not out.blame:
            # One unchecked claim (most jobs of a large run): it stands; the loop below for one
            # replica, without its per-claim lists.
            r = live[0]
            pr, cheat = job.replicas[r], job.cheats[r]
            pr.jobs += 1
            if cheat is not None:
                pr.cheats += 1
                m.cheats += 1
                if pr.first_cheat_t is None:
                    pr.first_cheat_t, pr.first_cheat_job = job.started, pr.jobs
            self._pay(job, r, pr, cheat)
            pr.ok += 1
            pr.strategy.observe(audited, False)
            m.completed += 1
            if cheat is None:
                m.correct += 1
                correct = True
            else:
                m.wrong_accepted += 1
                correct = False
            # Settled(...) without the named tuple's __new__ frame (the same tuple, all fields given)
            return _tuple_new(Settled, (job, (r,), audited, _STANDS, correct, verify_usd, latency_s))
        cheats = [job.cheats[r] for r in live]
        # Each claim stands unless the verdict blames it: settlement reads the verdict alone.
        blame = out.blame
        verdicts = tuple([i not in blame for i in range(len(live))]) if blame else (True,) * len(live)
        if audited:
            if any(c is not None for c, v in zip(cheats, verdicts) if not v):
                auditor.found += 1
            tokens = out.tokens
            if len(set(tokens)) > 1 and resolve(tokens)[1]:
                m.referees += 1
        # The consumer keeps a paid result: correct if any paid replica was honest (None: none paid).
        correct = None
        for c, v in zip(cheats, verdicts):
            if v:
                if c is None:
                    correct = True
                    break
                correct = False
        for i, r in enumerate(live):
            pr, cheat, paid = job.replicas[r], cheats[i], verdicts[i]
            pr.jobs += 1
            if cheat is not None:
                pr.cheats += 1
                m.cheats += 1
                if pr.first_cheat_t is None:
                    pr.first_cheat_t, pr.first_cheat_job = job.started, pr.jobs
            if paid:
                self._pay(job, r, pr, cheat)
                pr.ok += 1
            else:
                self._punish(job, r, pr, auditor, honest=cheat is None, split=split)
            pr.strategy.observe(audited, not paid)
        m.completed += 1
        if correct is True:
            m.correct += 1
        elif correct is False:
            m.wrong_accepted += 1
        else:
            m.rejected += 1
        return Settled(job, tuple(live), audited, verdicts, correct, verify_usd, latency_s)

    def _pay(self, job: MarketJob, r: int, pr: Provider, cheat: str | None) -> None:
        m = self.m
        amount = job.prices[r]
        if self.escrow:
            self.st.release(job.escrows[r])
            pr.earned += amount
        else:
            pr.dues.append((job.consumer, amount, pr.seconds_for(job.jtype.pflop) / 3600 * pr.hw.hourly_cost))
        usd = amount / UNITS_PER_USD
        m.paid_units += amount
        m.paid_usd += usd
        if r == 0:
            m.base_usd += usd
        else:
            m.replica_usd += usd
        if cheat is not None:
            m.fraud_usd += usd
        tax = self._tax
        if tax > 0:
            st = self.st
            m.tax_usd += st.transfer(job.consumer, st.treasury, int(round(amount * tax))) / UNITS_PER_USD

    def _punish(self, job: MarketJob, r: int, pr: Provider, auditor: Auditor, *, honest: bool,
                split: tuple[float, str] | None = None) -> None:
        st, m = self.st, self.m
        m.caught += not honest
        m.false_rejects += honest
        pr.caught += 1
        if pr.detect_latency_s is None and not honest and pr.first_cheat_t is not None:
            pr.detect_latency_s = st.clock() - pr.first_cheat_t
            pr.detect_latency_jobs = pr.jobs - pr.first_cheat_job + 1
        pr.unpaid_cost += pr.seconds_for(job.jtype.pflop) / 3600 * pr.hw.hourly_cost if honest else 0.0
        if not self.escrow:
            return  # streaming payments have no escrow to slash against: the provider just goes unpaid
        eid = job.escrows[r]
        locked = st.locked(eid)
        if locked:
            frac, rest_to = split if split is not None else (self.p.auditors.whistleblower_share, job.consumer)
            share = int(locked * frac)
            st.slash(eid, share, auditor.name)
            st.slash(eid, locked - share, rest_to)
            auditor.rewards += share
            pr.slashed += locked
            m.slashed_units += locked
            m.slashed_usd += locked / UNITS_PER_USD
        st.refund(eid)

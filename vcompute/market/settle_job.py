"""What happens when every replica of a job has finished (or vanished).

The job is audited if the consumer's trust policy drew it and the
auditor bothers (:meth:`~vcompute.market.agents.Auditor.will_check`);
the verifier (real or modelled) decides; then each replica is settled on
the ledger: paid when its result stands, refunded and slashed when it is
caught, refunded after the deadline when it vanished.
"""

from __future__ import annotations

from typing import Any

from vcompute.market.agents import MarketJob
from vcompute.market.config import UNITS_PER_USD
from vcompute.market.fidelity import resolve

__all__ = ["settle_job"]


def settle_job(mk: Any, job: MarketJob) -> None:
    """Verify and settle ``job`` in market ``mk`` (a :class:`~vcompute.market.sim.Market`)."""
    p, st, m = mk.p, mk.settle, mk.m
    escrow = p.settlement.mode == "escrow"
    live = [r for r in range(len(job.replicas)) if not job.crashed[r]]
    for r in range(len(job.replicas)):
        if job.crashed[r] and escrow:  # the consumer reclaims it once the deadline passes
            mk.inflight += 1
            deadline = st.ledger.escrow(job.escrows[r]).deadline if st.follows_clock else mk.env.now
            mk.env.process(mk._refund_later(job, job.escrows[r], deadline))
    mk.inflight -= 1
    if not live:
        m.failed += 1
        if mk.hybrid is not None:
            mk.hybrid.settled(job, live, False, [], None)
        return
    aud = p.auditors
    auditor = mk.auditors[job.key % len(mk.auditors)]
    # A check needs every replica's claim; with one vanished the rest settle unchecked.
    audit = job.audit and len(live) == len(job.replicas)
    jt = job.jtype
    check = mk.checks[jt.kind]
    if job.audit and mk.fee:  # the fee is owed for the request, checked or not
        auditor.fees += st.transfer(job.consumer, auditor.name, mk.fee)
    if audit:
        m.checks_requested += 1
        frac_est = check.frac_est(jt.real_n, mk._frac_mean)
        check_cost = frac_est * jt.pflop * mk.a100_cpp * aud.cost_factor
        reward = aud.whistleblower_share * p.consumers.stake_usd
        if not auditor.will_check(cost_usd=check_cost, detect_p=check.detect_est(mk.adv_cheat),
                                  cheat_reward_usd=reward, forced_rate=aud.forced_error_rate,
                                  forced_detect_p=check.detect_est("random_output"), jackpot_usd=aud.jackpot_usd):
            auditor.skipped += 1
            m.checks_skipped += 1
            audit = False
    cheats = [job.cheats[r] for r in live]
    colluding = [job.replicas[r].colluding for r in live]
    out = check.work.run(job_key=job.key, n=jt.real_n, cheats=cheats, audit=audit, colluding=colluding)
    if audit:
        m.checks_done += 1
        auditor.checked += 1
        cost = out.verify_fraction * jt.pflop * mk.a100_cpp * aud.cost_factor
        auditor.cost += cost
        m.verify_compute_usd += cost
        if p.mode == "real":
            mk._frac_mean += 0.1 * (out.verify_fraction - mk._frac_mean)
        if job.forced:
            m.forced += 1
            if mk.rng.random() < check.detect_est("random_output"):
                m.forced_found += 1
                auditor.rewards += st.transfer(st.treasury, auditor.name, int(round(aud.jackpot_usd * UNITS_PER_USD)))
    tokens = out.tokens
    agree = all(t == tokens[0] for t in tokens)
    # Each claim stands unless the verdict blames it: settlement reads the verdict alone.
    verdicts = [i not in out.blame for i in range(len(live))]
    if audit and any(c is not None for c, v in zip(cheats, verdicts) if not v):
        auditor.found += 1
    if audit and not agree and resolve(tokens)[1]:
        m.referees += 1
    paid_cheats = [c for c, v in zip(cheats, verdicts) if v]
    # The consumer keeps a paid result: correct if any paid replica was honest.
    correct = None if not paid_cheats else any(c is None for c in paid_cheats)
    for i, r in enumerate(live):
        pr, cheat, paid = job.replicas[r], cheats[i], verdicts[i]
        pr.jobs += 1
        if cheat is not None:
            pr.cheats += 1
            m.cheats += 1
            if pr.first_cheat_t is None:
                pr.first_cheat_t, pr.first_cheat_job = job.started, pr.jobs
        if paid:
            _pay(mk, job, r, pr, cheat)
            pr.ok += 1
        else:
            _punish(mk, job, r, pr, auditor, honest=cheat is None)
        pr.behaviour.observe(audit, not paid)
    if audit and mk.adaptive is not None:
        mk.adaptive.record(mk, job, live, verdicts, "replication" if len(live) > 1 else "spotcheck")
    elif mk.adaptive is not None and correct is not None and len(live) == 1:
        mk.adaptive.accepted_unchecked(mk, job, live[0], wrong=not correct)
    if mk.hybrid is not None:
        mk.hybrid.settled(job, live, audit, verdicts, correct)
    m.completed += 1
    if correct is True:
        m.correct += 1
    elif correct is False:
        m.wrong_accepted += 1
    else:
        m.rejected += 1


def _pay(mk: Any, job: MarketJob, r: int, pr: Any, cheat: str | None) -> None:
    p, st, m = mk.p, mk.settle, mk.m
    amount = job.prices[r]
    if p.settlement.mode == "escrow":
        st.release(job.escrows[r])
        pr.earned += amount
    else:
        pr.dues.append((job.consumer, amount, pr.seconds_for(job.jtype.pflop) / 3600 * pr.hw.hourly_cost))
    usd = amount / UNITS_PER_USD
    m.paid_usd += usd
    if r == 0:
        m.base_usd += usd
    else:
        m.replica_usd += usd
    if cheat is not None:
        m.fraud_usd += usd
    if p.auditors.tax > 0:
        m.tax_usd += st.transfer(job.consumer, st.treasury, int(round(amount * p.auditors.tax))) / UNITS_PER_USD


def _punish(mk: Any, job: MarketJob, r: int, pr: Any, auditor: Any, *, honest: bool) -> None:
    p, st, m = mk.p, mk.settle, mk.m
    m.caught += not honest
    m.false_rejects += honest
    pr.caught += 1
    if pr.detect_latency_s is None and not honest and pr.first_cheat_t is not None:
        pr.detect_latency_s = mk.env.now - pr.first_cheat_t
        pr.detect_latency_jobs = pr.jobs - pr.first_cheat_job + 1
    pr.unpaid_cost += pr.seconds_for(job.jtype.pflop) / 3600 * pr.hw.hourly_cost if honest else 0.0
    if p.settlement.mode != "escrow":
        return  # streaming payments have no escrow to slash against: the provider just goes unpaid
    eid = job.escrows[r]
    locked = st.ledger.escrow(eid).locked
    if locked:
        share = int(locked * p.auditors.whistleblower_share)
        st.slash(eid, share, auditor.name)
        st.slash(eid, locked - share, job.consumer)
        auditor.rewards += share
        pr.slashed += locked
        m.slashed_usd += locked / UNITS_PER_USD
    st.refund(eid)

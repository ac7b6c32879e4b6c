"""What a market run measures, as one flat dict of numbers.

Counters are accumulated during the run by :mod:`vcompute.market.sim` and
:mod:`vcompute.market.settle_job`; :meth:`Metrics.summary` turns them
into the run's metrics. Money is in US dollars, times in seconds.

Headline metrics:

- ``cost_per_correct``: everything consumers paid (providers, audit fees,
  tax) per correct result; the slashed stake they received back is
  ``consumer_compensation``.
- ``verification_overhead``: audit fees, extra replicas and tax as a
  share of the base price of the results (what consumers pay for trust);
  ``trust_overhead``: extra replicas plus the checkers' own compute (at
  A100 cost) as a share of it (what trust costs the economy).
- ``fraud_loss``: dollars paid for wrong results that were accepted;
  ``fraud_rate``: wrong results accepted per completed job;
  ``residual_error``: wrong results accepted per result accepted (the
  replication literature's measure).
- ``compute_overhead``: results computed (replicas, crashed ones, referee
  and backtracking re-executions included) per result accepted, minus 1: the
  Monte-Carlo models' overhead of :mod:`vcompute.trust.montecarlo`.
- ``adaptive_trusted_share`` / ``adaptive_banned``: with an adaptive
  policy, the share of jobs it let run unchecked and the providers it banned.
- ``detect_latency_jobs`` / ``detect_latency_s``: from a cheater's first
  cheat to its first catch (mean over caught cheaters).
- ``profit_<strategy>``: mean profit per provider of each strategy
  (payments - own compute cost - slashed stake); ``cheat_rate_<strategy>``.
- ``verify_latency_s``: simulated seconds a check takes (mean over checks);
  ``time_to_settlement_s``: from arrival to settlement (mean over settled jobs).
- ``settlement_gas_usd``: what settling the run's ledger operations on
  chain costs at ``settlement.gas`` (each operation at its gas in
  ``protocols/gas.json``); ``settlement_gas_usd_per_correct``, ``settlement_gas``
  and ``settlement_ops`` (:func:`vcompute.market.costs.settlement_gas_metrics`).
- ``utilisation``, ``wait_s``, ``check_participation``, ``unpaid_compute``,
  ``wasted_work``.
- From the ledger at the end of the run (:meth:`ledger_summary`), not from
  these counters: ``ledger_conserved`` (1 when supply = holdings = minted),
  ``ledger_in_escrow_usd`` (money left in open escrows), ``ledger_provider_net_usd``
  (what providers gained on the ledger), ``settlement_gap_usd`` (that minus
  what the counters say they were paid net of slashing and unpaid dues) and
  ``settlement_consistent`` (1 when conserved, no escrow left open and no gap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vcompute.market.config import UNITS_PER_USD, MarketParams

__all__ = ["Metrics", "caught_within"]


class Metrics:
    """Counters of one run (see the module docstring for the metrics)."""

    def __init__(self) -> None:
        for name in ("submitted", "matched", "expired", "unaffordable", "completed", "failed", "correct",
                     "wrong_accepted", "rejected", "cheats", "caught", "false_rejects", "checks_requested",
                     "checks_done", "checks_skipped", "forced", "forced_found", "crashed", "timeouts",
                     "departures", "banned", "replicas_run", "referees", "backtracked", "settled",
                     "paid_units", "slashed_units", "unpaid_units"):  # exact ledger units, for the ledger check
            setattr(self, name, 0)
        for name in ("wait_s", "paid_usd", "base_usd", "replica_usd", "fraud_usd", "tax_usd", "slashed_usd",
                     "verify_compute_usd", "unpaid_usd", "verify_latency_s", "settle_s"):
            setattr(self, name, 0.0)

    def totals(self) -> dict[str, float]:
        """The money totals an extra tier prices its side with (USD)."""
        return {"base_usd": self.base_usd, "replica_usd": self.replica_usd, "paid_usd": self.paid_usd,
                "slashed_usd": self.slashed_usd, "verify_compute_usd": self.verify_compute_usd}

    def summary(self, *, params: MarketParams, providers: Sequence[Any], auditors: Sequence[Any], groups: Sequence[str],
                horizon_s: float, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The run's flat metrics dict.

        Args:
            params: the run's parameters.
            providers: every provider (their own records: jobs, cheats, earnings).
            auditors: every auditor.
            groups: the strategies' metric labels.
            horizon_s: simulated length of the run.
            extra: metrics of the adaptive policy, merged in.
        """
        provs, auds = providers, auditors
        fees = sum(a.fees for a in auds) / UNITS_PER_USD
        spend = self.paid_usd + fees + self.tax_usd
        compensation = self.slashed_usd * (1 - params.auditors.whistleblower_share)
        horizon = max(horizon_s, 1e-9)
        accepted = self.correct + self.wrong_accepted
        backtracked = self.backtracked
        out: dict[str, Any] = {
            "jobs_submitted": self.submitted,
            "jobs_matched": self.matched,
            "jobs_completed": self.completed,
            "jobs_correct": self.correct,
            "jobs_expired": self.expired,
            "jobs_failed": self.failed,
            "jobs_unaffordable": self.unaffordable,
            "jobs_rejected": self.rejected,
            "wrong_accepted": self.wrong_accepted,
            "fraud_rate": self.wrong_accepted / max(self.completed, 1),
            "residual_error": self.wrong_accepted / accepted if accepted else float("nan"),
            "compute_overhead": (self.replicas_run + self.referees + backtracked) / accepted - 1.0
            if accepted else float("nan"),
            "fraud_loss": self.fraud_usd,
            "fraud_loss_share": self.fraud_usd / self.paid_usd if self.paid_usd else 0.0,
            "cheat_rate": self.cheats / max(sum(p.jobs for p in provs), 1),
            "caught": self.caught,
            "false_rejects": self.false_rejects,
            "cost_per_correct": spend / self.correct if self.correct else float("nan"),
            "consumer_compensation": compensation,
            "verification_overhead": (fees + self.replica_usd + self.tax_usd) / self.base_usd if self.base_usd else 0.0,
            "trust_overhead": (self.replica_usd + self.verify_compute_usd) / self.base_usd if self.base_usd else 0.0,
            "verify_compute_share": self.verify_compute_usd / max(sum(p.compute_cost for p in provs), 1e-12),
            "checks_requested": self.checks_requested,
            "checks_done": self.checks_done,
            "check_participation": self.checks_done / self.checks_requested if self.checks_requested else float("nan"),
            "forced_errors": self.forced,
            "forced_found": self.forced_found,
            "auditor_profit": (fees * UNITS_PER_USD + sum(a.rewards for a in auds)) / UNITS_PER_USD
            - sum(a.cost for a in auds),
            "wait_s": self.wait_s / self.matched if self.matched else 0.0,
            "verify_latency_s": self.verify_latency_s / self.checks_done if self.checks_done else 0.0,
            "time_to_settlement_s": self.settle_s / self.settled if self.settled else float("nan"),
            "utilisation": sum(p.busy_time for p in provs) / (len(provs) * horizon),
            "sim_hours": horizon / 3600.0,
            "crashed_replicas": self.crashed,
            "timeout_refunds": self.timeouts,
            "departures": self.departures,
            "banned_providers": self.banned,
            "unpaid_compute": sum(p.unpaid_cost for p in provs),
            "unpaid_usd": self.unpaid_usd,
            "wasted_work": sum(p.wasted_cost for p in provs),
            "paid_usd": self.paid_usd,
            "slashed_usd": self.slashed_usd,
        }
        lat_s = [p.detect_latency_s for p in provs if p.detect_latency_s is not None]
        lat_j = [p.detect_latency_jobs for p in provs if p.detect_latency_jobs is not None]
        out["detect_latency_s"] = sum(lat_s) / len(lat_s) if lat_s else float("nan")
        out["detect_latency_jobs"] = sum(lat_j) / len(lat_j) if lat_j else float("nan")
        cheaters = [p for p in provs if p.cheats]
        for k, v in zip((1, 4, 16, 64), caught_within(cheaters, (1, 4, 16, 64))):
            out[f"caught_by_{k}"] = v
        out["cheaters_caught_share"] = (len(lat_j) / sum(1 for p in provs if p.cheats)
                                        if any(p.cheats for p in provs) else float("nan"))
        if extra:
            out.update(extra)
        adv = params.adversary.strategy
        for g in sorted(set(groups) | {"honest"}):
            members = [p for p in provs if p.group == g]
            key = g
            out[f"profit_{key}"] = (sum(_profit(p) for p in members) / len(members)) if members else float("nan")
            jobs = sum(p.jobs for p in members)
            out[f"cheat_rate_{key}"] = sum(p.cheats for p in members) / jobs if jobs else float("nan")
        advs = [p for p in provs if p.group != "honest"] if adv != "honest" else []
        out["profit_adversary"] = sum(_profit(p) for p in advs) / len(advs) if advs else float("nan")
        jobs = sum(p.jobs for p in advs)
        out["cheat_rate_adversary"] = sum(p.cheats for p in advs) / jobs if jobs else float("nan")
        return out


    def ledger_summary(self, settle: Any, providers: Sequence[Any], initial: int) -> dict[str, Any]:
        """What the ledger itself says at the end of a run, against what these counters say.

        The comparison is exact, in ledger units: a settlement that moves a
        single unit more or less than it counts shows as a gap.

        Args:
            settle: the run's :class:`~vcompute.market.settlement.Settlement`.
            providers: every provider (each opened with ``initial`` units).
            initial: each provider's opening units.

        Returns:
            ``ledger_supply_usd``, ``ledger_conserved``, ``ledger_in_escrow_usd``,
            ``ledger_provider_net_usd``, ``settlement_gap_usd`` and ``settlement_consistent``
            (see the module docstring).
        """
        supply, ok, _ = settle.conservation()
        held = settle.in_escrow()
        net = sum(settle.worth(p.name) for p in providers) - initial * len(providers)
        gap = (net - (self.paid_units - self.unpaid_units - self.slashed_units)) / UNITS_PER_USD
        return {"ledger_supply_usd": supply / UNITS_PER_USD, "ledger_conserved": int(ok),
                "ledger_in_escrow_usd": held / UNITS_PER_USD, "ledger_provider_net_usd": net / UNITS_PER_USD,
                "settlement_gap_usd": gap, "settlement_consistent": int(ok and held == 0 and gap == 0.0)}


def caught_within(cheaters: list[Any], ks: tuple[int, ...]) -> list[float]:
    """Kaplan-Meier estimate of P(caught within k jobs of the first cheat), for each k.

    A cheater caught at its j-th job since its first cheat is an event at j;
    one never caught is censored at the number of jobs it was seen doing.
    Returns NaN for a k no cheater was observed up to.

    Example:
        >>> from types import SimpleNamespace as C
        >>> cs = [C(detect_latency_jobs=1, jobs=5, first_cheat_job=1), C(detect_latency_jobs=None, jobs=2,
        ...       first_cheat_job=1)]
        >>> caught_within(cs, (1, 2, 3))
        [0.5, 0.5, nan]
    """
    events: dict[int, int] = {}
    exits: dict[int, int] = {}
    for p in cheaters:
        if p.detect_latency_jobs is not None:
            t = int(p.detect_latency_jobs)
            events[t] = events.get(t, 0) + 1
        else:
            t = int(p.jobs - p.first_cheat_job + 1)
        exits[t] = exits.get(t, 0) + 1
    at_risk, survive, out, j, observed = len(cheaters), 1.0, [], 0, True
    for k in ks:
        while j < k and observed:
            j += 1
            observed = at_risk > 0  # someone was still being watched at their j-th job
            if observed:
                survive *= 1.0 - events.get(j, 0) / at_risk
                at_risk -= exits.get(j, 0)
        # Everyone caught before k: certainly caught by k. Everyone censored: unknown.
        out.append(1.0 - survive if observed or survive == 0.0 else float("nan"))
    return out


def _profit(p: Any) -> float:
    return (p.earned - p.slashed) / UNITS_PER_USD - p.compute_cost

"""One seeded marketplace run (:mod:`vcompute.market`) as an experiment task."""

from __future__ import annotations

from typing import Any

from vcompute.market.config import MarketParams

__all__ = ["DISPUTE_KIND_METRICS", "KIND_METRICS", "MarketHybrid", "MarketRun"]


#: Metrics of every market run (:meth:`vcompute.market.metrics.Metrics.summary`, the adaptive
#: policy's summary, the ledger check and :func:`_deterrence`); per-strategy ones are added by
#: :class:`_MarketMetrics`.
_RUN_METRICS = (
    "jobs_submitted", "jobs_matched", "jobs_completed", "jobs_correct", "jobs_expired", "jobs_failed",
    "jobs_unaffordable", "jobs_rejected", "wrong_accepted", "fraud_rate", "residual_error", "compute_overhead",
    "fraud_loss", "fraud_loss_share", "cheat_rate", "caught", "false_rejects", "cost_per_correct",
    "consumer_compensation", "verification_overhead", "trust_overhead", "verify_compute_share",
    "checks_requested", "checks_done", "check_participation", "forced_errors", "forced_found", "auditor_profit",
    "wait_s", "verify_latency_s", "time_to_settlement_s", "utilisation", "sim_hours", "crashed_replicas", "timeout_refunds", "departures", "banned_providers",
    "unpaid_compute", "unpaid_usd", "wasted_work", "paid_usd", "slashed_usd", "detect_latency_s",
    "detect_latency_jobs", "caught_by_1", "caught_by_4", "caught_by_16", "caught_by_64", "cheaters_caught_share",
    # with an adaptive policy (vcompute.market.adaptive)
    "adaptive_trusted_share", "adaptive_banned", "backtracked", "backtrack_corrected",
    "profit_adversary", "cheat_rate_adversary",
    "ledger_supply_usd", "ledger_conserved", "ledger_in_escrow_usd", "ledger_provider_net_usd",
    "settlement_gap_usd", "settlement_consistent",
    "settlement_ops", "settlement_gas", "settlement_gas_usd", "settlement_gas_usd_per_correct",
    # trust compared across policies, and the optimistic policy's (vcompute.market.optimistic)
    "time_to_finality_s", "economy_cost_per_correct", "optimistic_disputes", "optimistic_disputes_won",
    "optimistic_griefing", "optimistic_missed", "watcher_profit", "griefer_profit", "watch_participation",
    "watch_compute_usd", "dispute_gas_usd", "dispute_rounds", "optimistic_watchers_lost",
    # real mode: the disputes played on Dispute.vy and OperatorGame.vy (vcompute.market.chain_disputes)
    "disputes_played", "dispute_model_agree", "dispute_rounds_played", "dispute_rounds_max", "dispute_gas_played",
    "dispute_gas_modelled", "dispute_commit_gas", "honest_lost", "cheater_won",
    "gain_usd", "p_times_penalty", "deterrence_ratio",
    "theory_caught_by_1", "theory_caught_by_4", "theory_caught_by_16", "theory_caught_by_64",
)


#: Real mode's per-job-kind metrics (``<name>_<kind>``, :meth:`vcompute.market.fidelity.KindStats.summary`;
#: the last two only with ``real_timing``).
KIND_METRICS = ("real_jobs", "verify_flops_share", "detection", "wrong_accepted", "jobs_per_s", "verify_over_compute")
#: Real mode's played disputes per job kind (``<name>_<kind>``, :meth:`vcompute.market.chain_disputes.ChainDisputes.summary`),
#: for every kind that declares a dispute game.
DISPUTE_KIND_METRICS = ("disputes_played", "dispute_gas_played", "dispute_rounds_played")


def _disputed_kinds() -> list[str]:
    from vcompute.market.chain_disputes import disputed_kinds

    return disputed_kinds()


class _MarketMetrics:
    """``MarketRun.metrics``: the fixed metrics plus ``profit_B`` / ``cheat_rate_B`` for every market
    strategy ``B`` and the per-kind table (:data:`KIND_METRICS`) for every job kind registered when
    it is read (so a plugin strategy's or job kind's metrics are declared too)."""

    def __get__(self, obj: object, owner: type | None = None) -> tuple[str, ...]:
        from vcompute.market.strategies import STRATEGIES
        from vcompute.workloads.kinds import KINDS

        groups = sorted(set(STRATEGIES.names()) | {"honest"})
        return (_RUN_METRICS + tuple(f"{m}_{g}" for g in groups for m in ("profit", "cheat_rate"))
                + tuple(f"{m}_{k}" for k in KINDS.names() for m in KIND_METRICS)
                + tuple(f"{m}_{k}" for k in _disputed_kinds() for m in DISPUTE_KIND_METRICS))


class MarketRun:
    """Simulates a market with :class:`~vcompute.market.config.MarketParams` and returns its metrics.

    Grid keys reach into the nested parameters with dots, e.g.
    ``"consumers.audit_p" = [0.01, 0.1]`` or ``"adversary.strategy" = ["lazy", "strategic"]``.
    Metrics are listed in :mod:`vcompute.market.metrics` (and all of their names in
    ``MarketRun.metrics``); a real-mode run adds the per-job-kind table
    (:data:`KIND_METRICS`, e.g. ``jobs_per_s_forward``); every run also
    reads the ledger at the end: ``ledger_conserved`` and ``settlement_consistent``
    are 1 for a sound run and 0 (reported, not raised) when money was created,
    lost or moved otherwise than the counters say.

    Example:
        >>> out = MarketRun().run(MarketParams(jobs=20), seed=0)
        >>> out["ledger_conserved"]
        1
    """

    Params = MarketParams
    description = "a SimPy marketplace with real verifiers and a real ledger: what trust costs"
    metrics = _MarketMetrics()

    def run(self, params: MarketParams, seed: int) -> dict[str, Any]:
        """Run one market with ``params`` and ``seed``; return its flat metrics."""
        from vcompute.market.sim import Market

        out = Market(params, seed).run()
        # Derived inputs the plots need (the deterrence ratio of proofs/market.md).
        out.update(_deterrence(params))
        return out


def _deterrence(p: MarketParams) -> dict[str, float]:
    """Expected-loss / gain ratio of the adversary's cheat on the average job, and the
    catch probabilities 1 - (1 - p d)^k it implies (proofs/market.md)."""
    from vcompute.market.config import HARDWARE
    from vcompute.market.strategies import CHEAT_SAVINGS, STRATEGIES

    cheat = p.adversary.cheat or STRATEGIES.get(p.adversary.strategy).default_cheat
    saving = p.adversary.saving if p.adversary.saving is not None else CHEAT_SAVINGS[cheat]
    hw = [HARDWARE[h] for h in p.providers.hardware]
    share = [p.providers.hardware[h] for h in p.providers.hardware]
    cpp = sum(s * h.hourly_cost / (h.tflops * 3.6) for s, h in zip(share, hw)) / sum(share)
    mix = p.consumers.mix
    pflop = sum(j.weight * j.pflop for j in mix) / sum(j.weight for j in mix)
    gain = saving * cpp * pflop
    price = cpp * (1 + p.providers.markup) * pflop
    loss = p.consumers.stake_usd + price
    d = _detect(p, cheat)
    pd = p.consumers.audit_p * d
    out = {"gain_usd": gain, "p_times_penalty": pd * loss,
           "deterrence_ratio": pd * loss / gain if gain > 0 else float("inf")}
    for k in (1, 4, 16, 64):
        out[f"theory_caught_by_{k}"] = 1.0 - (1.0 - pd) ** k
    return out


def _detect(p: MarketParams, cheat: str) -> float:
    """The scheme's calibrated detection probability for ``cheat`` (1 if uncalibrated, 0 for none)."""
    from vcompute.market.calibration import default_table

    if p.consumers.verifier == "none":
        return 0.0
    table = default_table(p.calibration)
    if not table.has(p.consumers.verifier):
        return 1.0
    if table.schemes[p.consumers.verifier].get("replicas", 1) > 1:
        return 1.0  # a lone deviating replica always disagrees
    return table.detect(p.consumers.verifier, cheat)


#: Metrics a routed run adds (:meth:`vcompute.market.hybrid.HybridHooks.summary`) and the
#: three-policy comparison's (:func:`vcompute.market.hybrid.compare_policies`).
_HYBRID_METRICS = (
    "cost_compute", "cost_replicas", "cost_verification", "cost_capital", "cost_gas", "cost_fraud",
    "cost_misses", "cost_all_in", "job_settlement_ops", "compensation_credit", "results_correct", "cloud_share", "dec_share",
    "fallback_share", "late_share", "cloud_outages", "dec_cost_per_correct", "cloud_cost_per_correct", "break_even_discount",
    "price_discount", "cloud_reference_cpc",
    "cpc_cloud", "cpc_decentralized", "cpc_hybrid", "share_cloud_cloud", "share_cloud_decentralized",
    "share_cloud_hybrid", "hybrid_margin", "cpc_side", "share_cloud_side", "side_margin", "runtime_s", "applicable",
)


class _HybridMetrics(_MarketMetrics):
    def __get__(self, obj: object, owner: type | None = None) -> tuple[str, ...]:
        return super().__get__(obj, owner) + _HYBRID_METRICS


class MarketHybrid:
    """A market with a cloud tier and routing consumers: cloud-only vs decentralized-only vs hybrid.

    With ``compare = true`` (the default) each run simulates the same seeded
    market three times, every consumer on one policy (cloud-only,
    decentralized-only, and ``routing``: the per-job ``hybrid`` router or the
    ``bandit``), and a fourth time with ``side_routing`` if set, and reports the
    routed run's metrics plus each policy's all-in cost per correct result
    (``cpc_<policy>``), the break-even decentralized discount and
    ``hybrid_margin`` (:func:`vcompute.market.hybrid.compare_policies`).
    A cell whose scheme cannot check its job kind (proof-of-learning on a
    product, Freivalds on a training run:
    :meth:`~vcompute.market.hybrid.HybridParams.applicable`) is reported as
    ``applicable = 0`` and not simulated.

    Example:
        >>> from vcompute.market.hybrid import HybridParams
        >>> out = MarketHybrid().run(HybridParams(jobs=60, kind="matmul"), seed=0)
        >>> out["applicable"], out["cpc_hybrid"] <= 1.02 * min(out["cpc_cloud"], out["cpc_decentralized"])
        (1, True)
    """

    from vcompute.market.hybrid import HybridParams as Params

    description = "cloud vs decentralized vs hybrid routing: all-in cost per correct result and break-even"
    metrics = _HybridMetrics()

    def run(self, params: Any, seed: int) -> dict[str, Any]:
        """Run the comparison (or the configured routing alone) with ``params`` and ``seed``."""
        from vcompute.market.hybrid import compare_policies
        from vcompute.market.sim import Market

        if not params.applicable():
            out = {"applicable": 0, "hybrid_margin": float("nan"), "break_even_discount": float("nan")}
            if params.side_routing is not None:
                out["side_margin"] = float("nan")
            return out
        out = compare_policies(params, seed) if params.compare else Market(params.routed(params.routing),
                                                                           seed).run()
        out["applicable"] = 1
        return out

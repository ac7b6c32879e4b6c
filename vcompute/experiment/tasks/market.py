"""One seeded marketplace run (:mod:`vcompute.market`) as an experiment task."""

from __future__ import annotations

from typing import Any

from vcompute.market.config import MarketParams

__all__ = ["MarketRun"]


class MarketRun:
    """Simulates a market with :class:`~vcompute.market.config.MarketParams` and returns its metrics.

    Grid keys reach into the nested parameters with dots, e.g.
    ``"consumers.audit_p" = [0.01, 0.1]`` or ``"adversary.behaviour" = ["lazy", "strategic"]``.
    Metrics are listed in :mod:`vcompute.market.metrics`; every run also
    checks that the ledger conserved money (``ledger_conserved = 1``) and
    fails otherwise.

    Example:
        >>> out = MarketRun().run(MarketParams(jobs=20), seed=0)
        >>> out["ledger_conserved"]
        1
    """

    Params = MarketParams
    description = "a SimPy marketplace with real verifiers and a real ledger: what trust costs"

    def run(self, params: MarketParams, seed: int) -> dict[str, Any]:
        """Run one market with ``params`` and ``seed``; return its flat metrics."""
        from vcompute.market.sim import Market

        out = Market(params, seed).run()
        # Derived inputs the plots need (the deterrence ratio of proofs/market.md).
        out.update(_deterrence(params))
        return out


def _deterrence(p: MarketParams) -> dict[str, float]:
    """Expected-loss / gain ratio of the adversary's cheat on the average job."""
    from vcompute.market.behaviours import CHEAT_SAVINGS, MARKET_BEHAVIOURS
    from vcompute.market.config import HARDWARE

    cheat = p.adversary.cheat or MARKET_BEHAVIOURS.get(p.adversary.behaviour).default_cheat
    saving = p.adversary.saving if p.adversary.saving is not None else CHEAT_SAVINGS[cheat]
    hw = [HARDWARE[h] for h in p.providers.hardware]
    share = [p.providers.hardware[h] for h in p.providers.hardware]
    cpp = sum(s * h.hourly_cost / (h.tflops * 3.6) for s, h in zip(share, hw)) / sum(share)
    mix = p.consumers.mix
    pflop = sum(j.weight * j.pflop for j in mix) / sum(j.weight for j in mix)
    gain = saving * cpp * pflop
    price = cpp * (1 + p.providers.markup) * pflop
    loss = p.consumers.stake_usd + price
    return {"gain_usd": gain, "p_times_penalty": p.consumers.audit_p * loss,
            "deterrence_ratio": p.consumers.audit_p * loss / gain if gain > 0 else float("inf")}

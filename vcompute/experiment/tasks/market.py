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
    """Expected-loss / gain ratio of the adversary's cheat on the average job, and the
    catch probabilities 1 - (1 - p d)^k it implies (proofs/market.md)."""
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

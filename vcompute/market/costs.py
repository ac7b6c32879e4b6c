"""Cost per correct result, all in: each component of what a consumer's results cost.

A routed market run (:mod:`vcompute.market.hybrid`) books every job's
cost into one :class:`CostBook`, split so that a plot can stack the parts
(USD per correct result, over both sides of the market):

- ``cost_compute``: the price paid for results (first replica; the cloud's bill).
- ``cost_replicas``: what extra replicas were paid.
- ``cost_verification``: the checkers' compute at the verifier's own
  hardware price (``costs.verifier_hardware``); audit fees are the transfer
  that pays for it, so they are not counted a second time.
- ``cost_capital``: the opportunity cost of the providers' stake locked
  over each replica's escrow time, at ``costs.stake_rate_annual``.
- ``cost_gas``: ledger operations of decentralized settlement times
  ``costs.gas_usd_per_op`` (0 until per-operation gas prices land).
- ``cost_fraud``: wrong results accepted, each valued at its price times
  ``costs.fraud_loss_multiple``.
- ``cost_misses``: jobs that produced no result (expired, failed, rejected,
  cloud outage), each valued at ``costs.miss_multiple`` times the cloud's
  price for it (the price of having it done reliably).

``cost_all_in`` is their sum. The slashed stake paid back to consumers is
reported apart, as ``compensation_credit`` (USD per correct result): it is
a transfer from cheaters whose size the stake rule sets, not a cost of
computing, so it is not netted into the all-in cost. The derivation is in ``proofs/market.md``
(section "Cloud, decentralized, hybrid").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["COMPONENTS", "CostBook", "CostConfig", "break_even_discount"]

#: The stacked components of ``cost_all_in``, in plotting order.
COMPONENTS = ("compute", "replicas", "verification", "capital", "gas", "fraud", "misses")
#: Components proportional to the decentralized price level (the rest do not move with it).
PRICE_PROPORTIONAL = ("compute", "replicas", "fraud")
_YEAR_S = 365.0 * 24 * 3600


class CostConfig(BaseModel):
    """How the all-in cost values what money does not show directly.

    Attributes:
        stake_rate_annual: annual cost of capital of locked stake (0.05 = 5 %/year).
        gas_usd_per_op: settlement gas per ledger operation, USD (the hook a
            per-operation gas price fills; 0 until then).
        fraud_loss_multiple: a wrong result accepted costs this many times its price.
        miss_multiple: a job with no result costs this many times the cloud's price for it.
        verifier_hardware: the hardware class whose cost prices the checkers' compute.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stake_rate_annual: float = Field(0.05, ge=0, le=10)
    gas_usd_per_op: float = Field(0.0, ge=0)
    fraud_loss_multiple: float = Field(1.0, ge=0)
    miss_multiple: float = Field(1.0, ge=0)
    verifier_hardware: str = "a100"

    @field_validator("verifier_hardware")
    @classmethod
    def _known(cls, v: str) -> str:
        from vcompute.market.cloud import known_hardware

        return known_hardware(v, "costs.verifier_hardware")


class CostBook:
    """Running cost totals of one routed run, per side (``"dec"`` and ``"cloud"``).

    Args:
        cfg: the :class:`CostConfig`.
    """

    def __init__(self, cfg: CostConfig) -> None:
        self.cfg = cfg
        self.usd = {side: dict.fromkeys(COMPONENTS, 0.0) for side in ("dec", "cloud")}
        self.correct = {"dec": 0, "cloud": 0}
        self.jobs = {"dec": 0, "cloud": 0}
        self.cloud_ref_usd = 0.0  # the cloud's price for the decentralized side's jobs
        self.dec_pflop_paid = 0.0

    def add(self, side: str, component: str, usd: float) -> None:
        """Book ``usd`` of ``component`` on ``side``."""
        self.usd[side][component] += usd

    def capital(self, stake_usd: float, seconds: float) -> float:
        """Cost of locking ``stake_usd`` for ``seconds``."""
        return stake_usd * self.cfg.stake_rate_annual * seconds / _YEAR_S

    def summary(self, prefix: str = "cost_") -> dict[str, float]:
        """Per-correct-result components over both sides, their sum and the side shares."""
        correct = self.correct["dec"] + self.correct["cloud"]
        out = {}
        for c in COMPONENTS:
            total = self.usd["dec"][c] + self.usd["cloud"][c]
            out[f"{prefix}{c}"] = total / correct if correct else float("nan")
        out[f"{prefix}all_in"] = sum(out[f"{prefix}{c}"] for c in COMPONENTS)
        return out

    def side_cost_per_correct(self, side: str) -> float:
        """All-in cost per correct result of one side's jobs alone (nan without a correct one)."""
        n = self.correct[side]
        return sum(self.usd[side].values()) / n if n else float("nan")


def break_even_discount(book: CostBook, *, cloud_usd_per_pflop: float, availability: float,
                        miss_multiple: float) -> dict[str, float]:
    """The decentralized price discount (vs the cloud's price per PFLOP) at which both sides cost the same.

    Scaling every decentralized price by ``s`` scales the price-proportional
    components (compute, replicas, fraud) by ``s`` and leaves the others
    (verification, capital, gas, misses) and the count of
    correct results unchanged, so the decentralized side's cost per correct
    result is ``s A + B``. The cloud's for the same jobs is
    ``C = (price + (1 - a) miss) / a``. Break-even is ``s* = (C - B) / A``; the
    price discount it means is ``1 - s* P_d / P_c`` (``P_d``: the paid price
    per PFLOP, ``P_c``: the cloud's).

    Returns:
        ``break_even_discount``, ``price_discount`` (the discount the run's
        decentralized prices actually had) and ``cloud_reference_cpc``
        (``C``); all nan without decentralized correct results.
    """
    nan = float("nan")
    n = book.correct["dec"]
    if not n or book.dec_pflop_paid <= 0 or book.jobs["dec"] == 0:
        return {"break_even_discount": nan, "price_discount": nan, "cloud_reference_cpc": nan}
    usd = book.usd["dec"]
    a = sum(usd[c] for c in PRICE_PROPORTIONAL) / n
    b = sum(usd[c] for c in COMPONENTS if c not in PRICE_PROPORTIONAL) / n
    ref = book.cloud_ref_usd / book.jobs["dec"]
    c = (ref + (1 - availability) * miss_multiple * ref) / availability
    p_d = usd["compute"] / book.dec_pflop_paid
    s_star = (c - b) / a if a > 0 else nan
    return {"break_even_discount": 1.0 - s_star * p_d / cloud_usd_per_pflop,
            "price_discount": 1.0 - p_d / cloud_usd_per_pflop, "cloud_reference_cpc": c}


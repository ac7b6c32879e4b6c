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
- ``cost_gas``: the on-chain settlement of the decentralized side's jobs:
  the ledger operations applied after the market's accounts were opened,
  funded and staked (``job_settlement_ops``, from
  :meth:`vcompute.ledger.Ledger.op_counts`; the cloud's bills are paid
  off-chain), each at its gas in ``protocols/gas.json``, at the gas price
  ``settlement.gas`` (an L1 or L2 preset of :mod:`vcompute.ledger.gas`, or
  gwei and ETH/USD given). ``costs.gas_usd_per_op``, if set, prices every
  operation flat instead. (The run's ``settlement_gas_usd`` also counts
  setting the accounts up.)
- ``cost_fraud``: wrong results accepted, each valued at its price times
  ``costs.fraud_loss_multiple``.
- ``cost_misses``: jobs that produced no result (expired, failed, rejected,
  cloud outage), each valued at ``costs.miss_multiple`` times the cloud's
  price for it (the price of having it done reliably). With
  ``costs.finality_deadline_h`` set, a result final (settled: checked, or its
  challenge window closed) later than that after the job's arrival is a miss
  too: it was paid for but came too late to count as a correct result.

``cost_all_in`` is their sum. The slashed stake paid back to consumers is
reported apart, as ``compensation_credit`` (USD per correct result): it is
a transfer from cheaters whose size the stake rule sets, not a cost of
computing, so it is not netted into the all-in cost. The derivation is in ``proofs/market.md``
(section "Cloud, decentralized, hybrid").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["COMPONENTS", "JOB_SETTLEMENT_OPS", "CostBook", "CostConfig", "GasConfig", "break_even_discount",
           "settlement_gas_metrics"]

#: The stacked components of ``cost_all_in``, in plotting order.
COMPONENTS = ("compute", "replicas", "verification", "capital", "gas", "fraud", "misses")
#: Components proportional to the decentralized price level (the rest do not move with it).
PRICE_PROPORTIONAL = ("compute", "replicas", "fraud")
_YEAR_S = 365.0 * 24 * 3600
#: The ledger operations that settle one escrowed replica when it is accepted.
JOB_SETTLEMENT_OPS = ("escrow_open", "stake_lock", "escrow_release")


class GasConfig(BaseModel):
    """The gas price settlement pays on chain.

    Attributes:
        chain: a preset of :data:`vcompute.ledger.gas.PRESETS` (``l1``: Ethereum
            mainnet; ``l2``: Arbitrum One's execution gas), with its source and date.
        gwei: the gas price in gwei, instead of the preset's.
        eth_usd: the ETH price in USD, instead of the preset's.

    Example:
        >>> GasConfig(chain="l1", gwei=20).price().gwei
        20.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: Literal["l1", "l2"] = "l2"
    gwei: float | None = Field(None, ge=0, lt=1e6)
    eth_usd: float | None = Field(None, ge=0, lt=1e9)

    def price(self) -> Any:
        """The :class:`~vcompute.ledger.gas.GasPrice` this config means."""
        from dataclasses import replace

        from vcompute.ledger.gas import preset

        p = preset(self.chain)
        if self.gwei is None and self.eth_usd is None:
            return p
        return replace(p, name=f"{p.name} (custom price)",
                       gwei=p.gwei if self.gwei is None else float(self.gwei),
                       eth_usd=p.eth_usd if self.eth_usd is None else float(self.eth_usd),
                       source="set in the config" if self.gwei is not None and self.eth_usd is not None
                       else f"set in the config, the rest from: {p.source}")

    def usd_per_op(self) -> float:
        """Mean USD per ledger operation of an accepted replica's settlement
        (:data:`JOB_SETTLEMENT_OPS`), the per-operation estimate routing uses."""
        from vcompute.ledger.gas import gas_table

        table = gas_table("VLedger")
        return sum(table[k] for k in JOB_SETTLEMENT_OPS) / len(JOB_SETTLEMENT_OPS) * self.price().usd_per_gas


def settlement_gas_metrics(op_counts: Mapping[str, int], gas: GasConfig, correct: int,
                           off_chain: Mapping[str, int] | None = None) -> dict[str, float]:
    """A run's on-chain settlement cost from its ledger operations.

    Args:
        op_counts: ledger operation kind -> count (``ledger.op_counts()``).
        gas: the gas price.
        correct: correct results of the run (for the per-result figure).
        off_chain: operations to leave out (settled elsewhere, e.g. cloud bills).

    Returns:
        ``settlement_ops``, ``settlement_gas``, ``settlement_gas_usd`` and
        ``settlement_gas_usd_per_correct`` (nan without a correct result).

    Example:
        >>> m = settlement_gas_metrics({"transfer": 2}, GasConfig(chain="l1", gwei=10, eth_usd=1000), correct=2)
        >>> m["settlement_ops"], m["settlement_gas"] == 2 * 91595, round(m["settlement_gas_usd_per_correct"], 4)
        (2, True, 0.916)
    """
    from vcompute.ledger.gas import gas_usd, settlement_gas

    counts = dict(op_counts)
    for k, n in (off_chain or {}).items():
        counts[k] = max(counts.get(k, 0) - int(n), 0)
    g = settlement_gas(counts)
    usd = gas_usd(g, gas.price())
    return {"settlement_ops": sum(counts.values()), "settlement_gas": g, "settlement_gas_usd": usd,
            "settlement_gas_usd_per_correct": usd / correct if correct else float("nan")}


class CostConfig(BaseModel):
    """How the all-in cost values what money does not show directly.

    Attributes:
        stake_rate_annual: annual cost of capital of locked stake (0.05 = 5 %/year).
        gas_usd_per_op: settlement gas per ledger operation, USD, flat for every
            operation; None (the default) prices each operation at its gas in
            ``protocols/gas.json`` at ``settlement.gas``.
        fraud_loss_multiple: a wrong result accepted costs this many times its price.
        miss_multiple: a job with no result costs this many times the cloud's price for it.
        verifier_hardware: the hardware class whose cost prices the checkers' compute.
        finality_deadline_h: a result final later than this many hours after its
            job's arrival is a miss (a challenge window, a dispute, replicas queueing:
            time to finality counts against the deadline); None never.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stake_rate_annual: float = Field(0.05, ge=0, le=10)
    gas_usd_per_op: float | None = Field(None, ge=0)
    fraud_loss_multiple: float = Field(1.0, ge=0)
    miss_multiple: float = Field(1.0, ge=0)
    verifier_hardware: str = "a100"
    finality_deadline_h: float | None = Field(None, gt=0)

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


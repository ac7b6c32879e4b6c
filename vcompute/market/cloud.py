"""The cloud tier: trusted GPUs rented at list prices, the alternative a consumer really has.

A cloud provider needs no verification (it does not cheat: its contract
and reputation are the trust), is highly available and has, for the
purposes of one consumer, unbounded capacity: a job sent to the cloud runs
at once on the configured hardware class and is paid at the on-demand or
reserved price per GPU-hour. With probability ``1 - availability`` the run
fails (an outage) and the job is a miss, unpaid.

:data:`CLOUD_PRICES` is the default price table. Its figures are round,
labelled per-GPU-hour list prices, not quotes: a config overrides any of
them with ``cloud.prices``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CLOUD_PRICES", "CloudConfig", "CloudPrice", "CloudTier", "cloud_price_usd", "known_hardware"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def known_hardware(name: str, where: str) -> str:
    """``name`` if it is a :data:`~vcompute.market.config.HARDWARE` class.

    Raises:
        ValueError: naming the field ``where`` and the known classes.
    """
    from vcompute.market.config import HARDWARE

    if name not in HARDWARE:
        raise ValueError(f"{where}: unknown hardware class {name!r}; known: {', '.join(HARDWARE)}")
    return name


class CloudPrice(_Model):
    """List prices of one GPU class in the cloud, USD per GPU-hour.

    Attributes:
        on_demand: pay-as-you-go price.
        reserved: committed-use price (1-year term), paid per hour used
            (a reservation kept busy; idle reserved hours are not modelled).
    """

    on_demand: float = Field(gt=0)
    reserved: float = Field(gt=0)


#: Default cloud list prices per GPU-hour (USD), rounded. Sources, as listed in 2025-06:
#:
#: - h100: AWS p5.48xlarge on-demand $55.04/h for 8 GPUs after AWS's June 2025 price cut
#:   (~$6.88/GPU-h, rounded to 6.90); 1-year savings plan ~35 % lower (4.50).
#: - a100: AWS p4d.24xlarge (8x A100 40 GB) $32.77/h (~$4.10/GPU-h); 1-year reserved ~2.50.
#: - l4: AWS g6.xlarge (1x L4) $0.805/h, GCP g2-standard-4 ~$0.71/h: 0.80; 1-year ~0.50.
#: - t4: AWS g4dn.xlarge (1x T4) $0.526/h: 0.53; 1-year reserved ~0.33.
#: - rtx4090 (consumer GPUs): no hyperscaler lists them; RunPod secure cloud listed ~$0.69/h:
#:   0.70; monthly commitment ~0.50.
CLOUD_PRICES: dict[str, CloudPrice] = {
    "h100": CloudPrice(on_demand=6.90, reserved=4.50),
    "a100": CloudPrice(on_demand=4.10, reserved=2.50),
    "l4": CloudPrice(on_demand=0.80, reserved=0.50),
    "t4": CloudPrice(on_demand=0.53, reserved=0.33),
    "rtx4090": CloudPrice(on_demand=0.70, reserved=0.50),
}


class CloudConfig(_Model):
    """The cloud tier a routing consumer can send jobs to.

    Attributes:
        hardware: the GPU class cloud jobs run on (a :data:`~vcompute.market.config.HARDWARE` name).
        pricing: ``on_demand`` or ``reserved``.
        availability: probability a cloud run completes (1 - outage rate).
        prices: per hardware class, prices replacing :data:`CLOUD_PRICES` entries.
    """

    hardware: str = "a100"
    pricing: Literal["on_demand", "reserved"] = "on_demand"
    availability: float = Field(0.999, gt=0, le=1)
    prices: dict[str, CloudPrice] = Field(default_factory=dict)

    @field_validator("hardware")
    @classmethod
    def _known(cls, v: str) -> str:
        return known_hardware(v, "cloud.hardware")

    def price(self) -> CloudPrice:
        """The list prices of :attr:`hardware` (an override from :attr:`prices` first).

        Raises:
            ValueError: if the class has no default price and none is configured.
        """
        table = {**CLOUD_PRICES, **self.prices}
        if self.hardware not in table:
            raise ValueError(f"cloud.hardware {self.hardware!r} has no default price; set "
                             f"cloud.prices.{self.hardware} = {{on_demand = ..., reserved = ...}}")
        return table[self.hardware]

    def hourly(self) -> float:
        """USD per GPU-hour at the configured pricing."""
        return getattr(self.price(), self.pricing)


def cloud_price_usd(cloud: CloudConfig, pflop: float) -> float:
    """What the cloud charges for ``pflop`` PFLOP of work on its hardware, in USD.

    Example:
        >>> round(cloud_price_usd(CloudConfig(hardware="a100"), 45.0), 4)  # 6 minutes on an A100
        0.41
    """
    from vcompute.market.config import HARDWARE

    hw = HARDWARE[cloud.hardware]
    return cloud.hourly() * pflop * 1000.0 / hw.tflops / 3600.0


class CloudTier:
    """Serves the jobs routed to the cloud in market ``mk``; pays through the ledger.

    Args:
        mk: the :class:`~vcompute.market.sim.Market` (its settlement and clock).
        cloud: the tier's :class:`CloudConfig`.
        rng: the tier's own generator (outages), apart from the market's.
    """

    def __init__(self, mk: Any, cloud: CloudConfig, rng: Any) -> None:
        from vcompute.market.config import UNITS_PER_USD

        self.mk, self.cfg, self.rng = mk, cloud, rng
        self.units = UNITS_PER_USD
        self.account = "cloud"
        mk.settle.open_account(self.account, 0)
        self.jobs = self.correct = self.outages = self.unaffordable = 0
        self.paid_usd = 0.0

    def serve(self, job: Any) -> bool:
        """Run ``job`` in the cloud: True for a correct result, False for a miss (outage or no funds)."""
        self.jobs += 1
        if self.rng.random() >= self.cfg.availability:
            self.outages += 1
            return False
        usd = cloud_price_usd(self.cfg, job.jtype.pflop)
        amount = max(1, int(round(usd * self.units)))
        paid = self.mk.settle.transfer(job.consumer, self.account, amount) if self.mk.settle.balance(
            job.consumer) >= amount else 0
        if paid < amount:
            self.unaffordable += 1
            return False
        self.paid_usd += paid / self.units
        self.correct += 1
        return True

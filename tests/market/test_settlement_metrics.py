"""The settlement metrics are read from the ledger: each one fails on a deliberately broken settlement."""

from __future__ import annotations

import pytest

from vcompute.market.config import MarketParams
from vcompute.market.settlement import Settlement
from vcompute.market.sim import Market

P = MarketParams.model_validate({"jobs": 150, "providers": {"count": 8}, "consumers": {"count": 3, "audit_p": 0.5},
                                 "adversary": {"strategy": "lazy", "fraction": 0.5, "cheat_rate": 1.0,
                                               "cheat": "random_output"}})


class PaysTwice(Settlement):
    """Releases the escrow, then pays the provider the price once more out of the consumer's balance."""

    def release(self, escrow_id: str) -> None:
        e = self.ledger.escrow(escrow_id)
        super().release(escrow_id)
        self.transfer(e.consumer, e.provider, e.amount)


class MintsPayments(Settlement):
    """Pays providers with freshly minted money (never recorded as minted) and refunds the escrow."""

    def release(self, escrow_id: str) -> None:
        e = self.ledger.escrow(escrow_id)
        self.ledger.mint(self.minter, e.provider, e.amount, op_id=self._id())
        super().refund(escrow_id)


class ForgetsRefunds(Settlement):
    """Slashes a caught provider but never refunds its escrow: the price stays locked."""

    def refund(self, escrow_id: str, *, by_consumer: str | None = None) -> None:
        return None


def _run(cls: type[Settlement] | None) -> dict:
    return Market(P, seed=0, settlement=cls or Settlement).run()


def test_a_sound_settlement_is_consistent_with_the_ledger():
    out = _run(None)
    assert out["caught"] > 0 and out["paid_usd"] > 0  # both kinds of settlement happened
    assert out["ledger_conserved"] == 1 and out["settlement_consistent"] == 1
    assert out["settlement_gap_usd"] == 0.0 and out["ledger_in_escrow_usd"] == 0.0
    assert out["ledger_provider_net_usd"] == pytest.approx(out["paid_usd"] - out["slashed_usd"])


def test_paying_twice_shows_as_a_gap_between_counters_and_ledger():
    out = _run(PaysTwice)
    assert out["ledger_conserved"] == 1  # every move was a legal transfer ...
    assert out["settlement_gap_usd"] == pytest.approx(out["paid_usd"])  # ... but providers got twice the counted pay
    assert out["settlement_consistent"] == 0


def test_minting_payments_breaks_conservation():
    out = _run(MintsPayments)
    assert out["ledger_conserved"] == 0 and out["settlement_consistent"] == 0
    assert out["ledger_supply_usd"] > _run(None)["ledger_supply_usd"]


def test_a_forgotten_refund_leaves_money_in_escrow():
    out = _run(ForgetsRefunds)
    assert out["caught"] > 0
    assert out["ledger_in_escrow_usd"] > 0 and out["settlement_consistent"] == 0
    assert out["ledger_conserved"] == 1  # money is not lost, only stuck: the escrow metric is what shows it


class SkimsOneUnit(Settlement):
    """Pays every provider one ledger unit (0.0001 USD) short of the price it counts."""

    def release(self, escrow_id: str) -> None:
        e = self.ledger.escrow(escrow_id)
        super().release(escrow_id)
        self.transfer(e.provider, e.consumer, 1)


def test_a_single_unit_skimmed_per_job_shows_exactly():
    out = _run(SkimsOneUnit)
    paid_jobs = out["jobs_completed"] - out["jobs_rejected"]
    assert out["ledger_conserved"] == 1 and out["settlement_consistent"] == 0
    assert out["settlement_gap_usd"] == pytest.approx(-paid_jobs / 10_000)

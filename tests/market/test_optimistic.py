"""The optimistic trust policy: challenge windows, watchers, modelled disputes, griefers, forced errors."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from vcompute.market.config import UNITS_PER_USD, MarketParams
from vcompute.market.optimistic import dispute_gas, dispute_rounds
from vcompute.market.settlement import Settlement
from vcompute.market.sim import Market

LAZY = {"strategy": "lazy", "fraction": 0.3, "cheat_rate": 0.5, "cheat": "random_output"}


def _p(*, jobs=300, adversary=None, optimistic=None, consumers=None, auditors=None):
    return MarketParams.model_validate({
        "jobs": jobs, "providers": {"count": 12}, "consumers": {"count": 4, "trust": "optimistic", "verifier": "none",
                                                                **(consumers or {})},
        "adversary": adversary or {}, "optimistic": optimistic or {}, "auditors": auditors or {}})


def _run(p, seed=0):
    m = Market(p, seed)
    return m, m.run()


def test_rounds_and_gas_follow_the_measured_game():
    assert [dispute_rounds(n) for n in (1, 2, 3, 8, 32, 33, 128)] == [0, 1, 2, 3, 5, 6, 7]
    # proofs/dispute.md C4 (experiments/dispute-games.toml): full disputes at L = 2, 8, 32, 128.
    for steps, measured in ((2, 1.93e6), (8, 2.12e6), (32, 2.33e6), (128, 2.56e6)):
        assert abs(dispute_gas(steps) - measured) / measured < 0.02


def test_without_watchers_every_cheat_stands_after_the_window():
    m, out = _run(_p(adversary=LAZY, optimistic={"watchers": 0, "window_h": 2.0}))
    assert out["cheat_rate"] > 0.05
    assert out["wrong_accepted"] == m.m.cheats > 0 and out["caught"] == 0
    assert out["optimistic_disputes"] == 0 and out["fraud_loss"] > 0
    assert out["time_to_finality_s"] >= 2.0 * 3600
    assert out["settlement_consistent"] == 1


def test_watching_every_job_catches_every_cheat_and_pays_the_watcher():
    p = _p(adversary=LAZY, optimistic={"watchers": 2, "watch_p": 1.0, "burn_share": 0.2})
    m, out = _run(p)
    opt = m.checking.optimistic
    assert out["wrong_accepted"] == 0 and out["fraud_loss"] == 0
    assert out["optimistic_disputes_won"] == out["caught"] == m.m.cheats > 0
    assert out["settlement_consistent"] == 1 and out["ledger_conserved"] == 1
    # The first watcher disputes every wrong result and is paid the stake less the burned share, on the ledger.
    w0 = opt.watchers[0]
    stake = int(round(p.consumers.stake_usd * UNITS_PER_USD))
    won = out["caught"] * int(stake * 0.8)
    assert w0.rewards == won
    assert m.settle.balance("w0") - int(round(p.optimistic.watcher_usd * UNITS_PER_USD)) == won
    assert out["watcher_profit"] > 0 and out["watch_participation"] == 1.0
    assert out["dispute_gas_usd"] > 0 and out["watch_compute_usd"] > 0
    assert out["economy_cost_per_correct"] > out["cost_per_correct"]


def test_a_griefer_loses_its_bond_and_delays_honest_results():
    p = _p(optimistic={"watchers": 1, "griefers": 1, "grief_p": 1.0, "window_h": 1.0, "move_timeout_s": 600.0,
                       "bond_usd": 2.0, "burn_share": 0.1})
    m, out = _run(p)
    n = out["jobs_completed"]
    assert out["optimistic_griefing"] == n > 0
    assert out["jobs_correct"] == n and out["caught"] == 0 and out["false_rejects"] == 0
    bond = int(round(2.0 * UNITS_PER_USD))
    assert m.settle.balance("g0") == int(round(p.optimistic.watcher_usd * UNITS_PER_USD)) - n * bond
    assert out["griefer_profit"] < -n * 2.0 * 0.99
    # A won game restarts the window: no griefed result is final before game + window.
    assert out["time_to_finality_s"] >= 5 * 600.0 + 3600.0
    assert out["settlement_consistent"] == 1


def test_a_griefer_without_its_bond_cannot_dispute():
    p = _p(optimistic={"griefers": 1, "grief_p": 1.0, "bond_usd": 2.0, "watcher_usd": 10.0})
    _, out = _run(p)
    assert out["optimistic_griefing"] == 5 and out["settlement_consistent"] == 1


def test_a_window_shorter_than_the_re_execution_lets_cheats_through():
    p = _p(adversary=LAZY, optimistic={"watch_p": 1.0, "window_h": 0.01})  # 36 s; a job takes minutes
    m, out = _run(p)
    assert out["optimistic_missed"] == m.m.cheats == out["wrong_accepted"] > 0
    assert out["optimistic_disputes"] == 0


def test_a_cheaper_check_finds_what_it_is_calibrated_to_find():
    re_exec = _run(_p(adversary=LAZY, consumers={"audit_p": 0.5}))[1]
    spot = _run(_p(adversary=LAZY, consumers={"audit_p": 0.5, "verifier": "spotcheck"}))[1]
    assert spot["watch_compute_usd"] < re_exec["watch_compute_usd"]
    assert spot["optimistic_disputes_won"] < re_exec["optimistic_disputes_won"]


def test_rational_watchers_stop_watching_an_honest_market_unless_forced_errors_pay():
    quiet = _p(jobs=400, consumers={"audit_p": 0.5, "stake_usd": 0.5}, optimistic={"policy": "rational"})
    forced = _p(jobs=400, consumers={"audit_p": 0.5, "stake_usd": 0.5}, optimistic={"policy": "rational"},
                auditors={"forced_error_rate": 0.05, "jackpot_usd": 20.0, "tax": 0.05})
    q, f = _run(quiet)[1], _run(forced)[1]
    assert q["watch_participation"] < 0.5  # the verifier's dilemma
    assert f["watch_participation"] == 1.0 and f["forced_found"] > 0
    assert f["settlement_consistent"] == 1 and q["settlement_consistent"] == 1


def test_same_seed_same_metrics():
    p = _p(adversary=LAZY, optimistic={"griefers": 1, "grief_p": 0.2, "policy": "rational"},
           auditors={"forced_error_rate": 0.1, "jackpot_usd": 5.0, "tax": 0.05})
    a, b = _run(p, 3)[1], _run(p, 3)[1]
    assert all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@pytest.mark.parametrize("over, word", [
    ({"settlement": {"mode": "stream"}}, "escrow"),
    ({"mode": "real"}, "modelled"),
    ({"optimistic": {"hardware": "tpu"}}, "optimistic.hardware"),
    ({"optimistic": {"watch_p": 1.5}}, "watch_p"),
])
def test_misconfiguration_is_refused_naming_the_fix(over, word):
    d = {"consumers": {"trust": "optimistic"}, **over}
    with pytest.raises(ValidationError, match=word):
        MarketParams.model_validate(d)


class _Recording(Settlement):
    """Records each escrow's deadline and when it was settled, to compare them."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.deadlines, self.settled_at = {}, {}

    def open_job(self, escrow_id, consumer, provider, *, amount, deadline, stake):
        self.deadlines[escrow_id] = deadline
        return super().open_job(escrow_id, consumer, provider, amount=amount, deadline=deadline, stake=stake)

    def release(self, escrow_id):
        self.settled_at[escrow_id] = self.clock()
        super().release(escrow_id)

    def refund(self, escrow_id, *, by_consumer=None):
        self.settled_at[escrow_id] = self.clock()
        super().refund(escrow_id, by_consumer=by_consumer)


def test_no_escrow_can_be_refunded_by_a_party_before_its_window_and_dispute_end():
    # Past the deadline the consumer (or provider) may refund an escrow itself: a consumer could stiff an honest
    # provider, a cheater free its stake before the dispute lands. Every settlement must come before it.
    p = _p(adversary=LAZY, optimistic={"watch_p": 0.5, "griefers": 1, "grief_p": 0.5, "window_h": 2.0})
    m = Market(p, 0, settlement=_Recording)
    out = m.run()
    st = m.settle
    assert out["optimistic_disputes_won"] > 0 and out["optimistic_griefing"] > 0
    assert st.settled_at and all(t < st.deadlines[e] for e, t in st.settled_at.items())

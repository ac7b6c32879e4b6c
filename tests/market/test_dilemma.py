"""The verifier's dilemma and forced errors (proofs/market.md, claim 3)."""

from __future__ import annotations

from vcompute.market.agents import Auditor
from vcompute.market.config import MarketParams
from vcompute.market.sim import run_market


def test_rational_auditor_checks_iff_expected_reward_beats_cost():
    a = Auditor("a", "rational", prior_cheat=0.1, prior_jobs=10)
    kw = dict(detect_p=1.0, cheat_reward_usd=2.0, forced_rate=0.0, forced_detect_p=1.0, jackpot_usd=0.0)
    assert a.will_check(cost_usd=0.19, **kw)      # 0.1 * 2 = 0.2 >= 0.19
    assert not a.will_check(cost_usd=0.21, **kw)
    # forced errors: f * J alone keeps it checking
    assert a.will_check(cost_usd=0.6, **{**kw, "forced_rate": 0.05, "jackpot_usd": 10.0})
    assert Auditor("b", "always", 0.0).will_check(cost_usd=1e9, **kw)


def _run(cost_factor, forced):
    return run_market(MarketParams.model_validate({
        "jobs": 1500, "providers": {"count": 20},
        "consumers": {"audit_p": 0.2, "stake_usd": 2.0},
        "adversary": {"behaviour": "strategic", "fraction": 0.3},
        "auditors": {"policy": "rational", "cost_factor": cost_factor, "forced_error_rate": forced,
                     "jackpot_usd": 10.0, "tax": 0.05}}), seed=0)


def test_expensive_checks_without_forced_errors_collapse_participation_and_invite_cheating():
    cheap, dear = _run(0.25, 0.0), _run(16.0, 0.0)
    assert dear["check_participation"] == 0.0 < cheap["check_participation"]
    assert dear["cheat_rate_adversary"] > cheap["cheat_rate_adversary"] + 0.2
    assert dear["caught"] == 0


def test_forced_errors_with_a_jackpot_keep_auditors_checking():
    # f * J = 0.05 * 10 = 0.5 USD per check beats the check cost at cost_factor 1
    out = _run(1.0, 0.05)
    assert out["check_participation"] == 1.0
    assert out["forced_found"] > 0
    assert out["cheat_rate_adversary"] < _run(1.0, 0.0)["cheat_rate_adversary"]

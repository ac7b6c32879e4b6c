"""The market core's interfaces: one audit rule, the adaptive policy only sets p, the view is enough."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.market.adaptive import AdaptiveTrust
from vcompute.market.config import MarketParams
from vcompute.market.core import AuditCoin
from vcompute.market.sim import Market
from vcompute.verify.audit import Audit

SMALL = {"jobs": 60, "providers": {"count": 6}, "consumers": {"count": 2}}


def test_the_modelled_coin_is_the_audit_rule_one_uniform_per_job():
    assert AuditCoin.drawn is Audit.drawn
    for p in (0.0, 0.3, 1.0):
        a, b = np.random.default_rng(7), np.random.default_rng(7)
        got = [AuditCoin(p).drawn(a) for _ in range(50)]
        assert got == [bool(u < p) for u in b.random(50)]  # exactly one draw each, whatever p
        assert a.random() == b.random()


@pytest.mark.parametrize("p, err", [(1.5, ValueError), (float("nan"), ValueError), ("0.1", TypeError),
                                    (True, TypeError)])
def test_a_bad_audit_probability_is_the_callers_error(p, err):
    with pytest.raises(err, match="p must be"):
        AuditCoin(p)


def test_real_mode_wraps_the_real_verifier_in_audit_and_modelled_mode_uses_the_coin():
    real = Market(MarketParams.model_validate({**SMALL, "mode": "real", "consumers": {"audit_p": 0.4}}), seed=0)
    coin = real.audits["matmul"]
    assert isinstance(coin, Audit) and coin.p == 0.4 and coin.verifier is real.checks["matmul"].work.verifier
    modelled = Market(MarketParams.model_validate({**SMALL, "consumers": {"audit_p": 0.4}}), seed=0)
    assert modelled.audits["matmul"] == AuditCoin(0.4)
    off = Market(MarketParams.model_validate({**SMALL, "consumers": {"verifier": "none"}}), seed=0)
    assert off.audits["matmul"] == AuditCoin(0.0)


def test_an_adaptive_policy_only_sets_each_providers_audit_probability():
    t = AdaptiveTrust("consecutive_valid", {"threshold": 3, "min_check": 0.1})
    assert t.audit_plan("p0") == (1.0, 2)  # no record yet: always checked, by two replicas
    for _ in range(3):
        t.policy.record("p0", "valid")
    p, k = t.audit_plan("p0")
    assert k == 2 and p == pytest.approx(1 - t.policy.trust_probability("p0")) and 0 < p < 1
    assert AdaptiveTrust("fixed", {"k": 3}).audit_plan("p0") == (1.0, 3)
    assert AdaptiveTrust("error_rate", {}).audit_plan("p0")[0] == pytest.approx(
        AdaptiveTrust("error_rate", {}).policy.check_probability("p0"))


def test_the_market_is_a_view_and_a_scheduler():
    mk = Market(MarketParams.model_validate(SMALL), seed=0)
    fired = []
    mk.after(5.0, lambda: fired.append(mk.now()))
    mk.env.run(until=10.0)
    assert fired == [5.0]
    for name in ("p", "seed", "providers", "consumers", "checks", "settle"):
        assert hasattr(mk, name)
    assert 0 < mk.verify_fraction_est(type("J", (), {"jtype": mk.p.consumers.mix[0]})()) < 1

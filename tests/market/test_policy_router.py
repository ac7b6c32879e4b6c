"""The policy-level router (vcompute.market.policy_router): blocks of whole policies, public evidence only."""

from __future__ import annotations

import pytest

from tests.market.test_hybrid_optimistic import _params, _run
from vcompute.market.hybrid import HybridParams
from vcompute.market.policy_router import PolicyBandit


def test_block_jobs_is_validated_naming_the_argument():
    with pytest.raises(ValueError, match="block_jobs"):
        PolicyBandit(block_jobs=1)
    with pytest.raises(ValueError, match="block_jobs"):
        PolicyBandit(block_jobs=True)
    with pytest.raises(ValueError):
        HybridParams.model_validate({"routing": "bandit", "routing_params": {"block_jobs": 0}})


def test_the_bandit_tries_the_per_job_arm_only_when_the_market_alone_lost_to_the_cloud():
    p = _params(jobs=3000, routing_params={"block_jobs": 100})
    out, mk = _run(p, "bandit")
    routers = list(mk.hybrid.routers.values())
    assert routers
    for r in routers:
        for k in r.kinds.values():
            assert {"dec", "cloud"} <= set(k.est), k.est
            assert k.block >= 2
    # Each market arm judges only the jobs it routed itself: no job is in two arms' views, and
    # every market job is in one (the consumer's own view counts them all).
    for c, r in mk.hybrid.routers.items():
        whole = mk.hybrid.views[c].seen["matmul"]
        arms = [r.views[a].seen.get("matmul") for a in ("dec", "hybrid")]
        resolved = sum(s.resolved for s in arms if s is not None)
        assert 0 < resolved <= whole.resolved
        assert sum(s.matched for s in arms if s is not None) == whole.matched
    assert 0.0 < out["dec_share"] <= 1.0


def test_on_a_cheap_honest_market_the_bandit_stays_on_it_untried():
    p = _honest_cheap()
    out, mk = _run(p, "bandit")
    for r in mk.hybrid.routers.values():
        for k in r.kinds.values():
            assert k.est["dec"] < k.est["cloud"] and "hybrid" not in k.est, k.est
    assert out["cloud_share"] == 0.0


# -- the routed policy of compare_policies is selectable; the bandit beside the per-job router -------

def _honest_cheap(**upd) -> HybridParams:
    """A small honest market under audits, far cheaper than the cloud: the market alone is the better policy."""
    from tests.market.test_hybrid import BASE

    raw = {**BASE, "jobs": 1200, "adversary": {"behaviour": "honest", "fraction": 0.0},
           "routing_params": {"block_jobs": 100}, **upd}
    return HybridParams.model_validate(raw)


def _margin(out: dict, cpc: str) -> float:
    return out[cpc] / min(out["cpc_cloud"], out["cpc_decentralized"]) - 1.0


def test_side_routing_runs_beside_the_same_pure_runs_and_is_reported():
    from vcompute.market.hybrid import compare_policies

    plain = compare_policies(_honest_cheap(), seed=0)
    both = compare_policies(_honest_cheap(side_routing="bandit"), seed=0)
    assert "side_margin" not in plain and "cpc_side" not in plain  # unchanged without side_routing
    for key in ("cpc_cloud", "cpc_decentralized", "cpc_hybrid", "hybrid_margin"):
        assert both[key] == plain[key], key  # the same seeded pure and per-job runs
    assert both["side_margin"] == pytest.approx(_margin(both, "cpc_side"))
    assert 0.0 <= both["share_cloud_side"] <= 1.0
    # routing names the routed policy: the bandit in the hybrid slot is the side run above
    swapped = compare_policies(_honest_cheap(routing="bandit", side_routing="hybrid"), seed=0)
    assert swapped["cpc_hybrid"] == both["cpc_side"] and swapped["cpc_side"] == both["cpc_hybrid"]
    assert swapped["hybrid_margin"] == both["side_margin"]


def test_side_routing_is_validated():
    with pytest.raises(ValueError, match="nope"):
        HybridParams.model_validate({"side_routing": "nope"})
    with pytest.raises(ValueError, match="schedule"):
        HybridParams.model_validate({"routing": "bandit", "routing_params": {"schedule": "often"}})
    with pytest.raises(ValueError, match="reexplore_z"):
        PolicyBandit(reexplore_z=-1.0)


def _backwards_close(self, view, job, k):
    """A broken bandit: after each block it exploits the arm it measured as the *most* costly."""
    _CLOSE(self, view, job, k)
    k.arm = max(k.est, key=lambda a: (k.est[a], a))


_CLOSE = PolicyBandit._close


def test_the_target_check_fails_a_bandit_that_exploits_the_worse_policy(monkeypatch):
    from vcompute.market.hybrid import compare_policies

    out = compare_policies(_honest_cheap(side_routing="bandit"), seed=0)
    assert out["cpc_decentralized"] < 0.7 * out["cpc_cloud"]  # a cell with a clearly better pure policy
    assert out["side_margin"] <= 0.02, out["side_margin"]
    monkeypatch.setattr(PolicyBandit, "_close", _backwards_close)
    broken = compare_policies(_honest_cheap(side_routing="bandit"), seed=0)
    assert broken["cpc_cloud"] == out["cpc_cloud"] and broken["cpc_decentralized"] == out["cpc_decentralized"]
    assert broken["side_margin"] > 0.02, broken["side_margin"]

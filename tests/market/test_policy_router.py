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


def test_the_bandit_explores_both_market_arms_then_exploits():
    p = _params(jobs=3000, routing_params={"block_jobs": 100})
    out, mk = _run(p, "bandit")
    routers = mk.hybrid.routers.values() if hasattr(mk, "hybrid") else []
    for r in routers:
        for k in r.kinds.values():
            assert {"dec", "hybrid", "cloud"} <= set(k.est), k.est
    assert 0.0 < out["dec_share"] <= 1.0
